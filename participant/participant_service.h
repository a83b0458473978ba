// The database-independent half of a participant adapter: the branch table,
// fencing, enlistment, deadlines for abandoned branches, and asking the
// coordinator about prepared branches left waiting (after a crash, or when a
// decision never arrives). The Backend does the database's half.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/clock.h"
#include "common/protocol.h"
#include "participant/backend.h"
#include "participant/coordinator_link.h"
#include "participant/fence_store.h"

namespace pact {

struct ParticipantOptions {
  ParticipantAddress self;            // name and where the coordinator reaches us
  int inquiry_interval_ms = 1000;     // a prepared branch waits this long before asking
  int housekeeping_interval_ms = 100;  // deadline checks and due inquiries
};

struct BranchSnapshot {
  std::string txn_id;
  bool prepared = false;
  int64_t age_ms = 0;          // since begun (active) or prepared
  int64_t deadline_in_ms = 0;  // active only
};

class ParticipantService {
 public:
  ParticipantService(ParticipantOptions options, Backend* backend, FenceStore* fences,
                     CoordinatorLink* coordinator);
  ~ParticipantService();

  // Restores the branches that were prepared when the process stopped (they
  // stay prepared and ask their coordinator) and starts the housekeeping
  // thread, which also registers this participant with the coordinator.
  Status Start();
  void Stop();

  const std::string& name() const { return options_.self.name; }
  std::string backend_name() const { return backend_->Name(); }
  bool registered() const;

  Result<QueryResult> Execute(const std::string& txn_id, const std::string& sql,
                              const std::vector<SqlValue>& params);
  // An ABORT vote comes back as kAborted with the reason.
  Result<Vote> Prepare(const Fence& fence, const std::string& txn_id);
  Status Commit(const Fence& fence, const std::string& txn_id, bool one_phase);
  Status Rollback(const Fence& fence, const std::string& txn_id);
  Result<std::vector<BranchSnapshot>> Recover(const Fence& fence);
  std::vector<BranchSnapshot> ListBranches();

 private:
  enum class Phase { kActive, kPrepared, kDone };
  struct Entry {
    std::mutex mu;
    std::unique_ptr<Branch> branch;  // guarded by mu
    Phase phase = Phase::kActive;    // guarded by mu
    TimePoint since;                 // guarded by mu; begun, or prepared
    TimePoint deadline;              // guarded by mu; kActive only
    TimePoint next_inquiry;          // guarded by mu; kPrepared only
  };

  std::shared_ptr<Entry> Lookup(const std::string& txn_id);
  // REQUIRES: entry->mu held. Marks the branch finished and forgets it.
  void Forget(const std::string& txn_id, Entry* entry);
  // REQUIRES: entry->mu held. Begins the branch and enlists it.
  Status Open(const std::string& txn_id, Entry* entry);
  // Answers commit for a branch not held in memory.
  Status CommitForgotten(const std::string& txn_id, bool one_phase);
  // Local decisions, no fence: the deadline passed, or the coordinator answered.
  void RollBackExpired(const std::string& txn_id, const std::shared_ptr<Entry>& entry);
  void ResolveByInquiry(const std::string& txn_id, const std::shared_ptr<Entry>& entry);
  void HousekeepingLoop();

  const ParticipantOptions options_;
  Backend* const backend_;
  FenceStore* const fences_;
  CoordinatorLink* const coordinator_;

  mutable std::mutex mu_;
  std::map<std::string, std::shared_ptr<Entry>> branches_;  // guarded by mu_
  bool registered_ = false;                                  // guarded by mu_

  std::mutex stop_mu_;
  std::condition_variable stop_cv_;
  bool stopping_ = false;  // guarded by stop_mu_
  std::thread housekeeping_;
};

}  // namespace pact
