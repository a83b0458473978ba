// The coordinator's durable log. It holds the coordinator's epoch, the
// participant registry and one COMMIT record per transaction in COMMITTING
// state; nothing for transactions that abort (presumed abort) and nothing once
// every branch acknowledged (END forgets the record), so it stays small.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/status.h"

namespace pact {

struct CommitRecord {
  std::string txn_id;
  std::vector<std::string> branches;  // participants that voted COMMIT
  int64_t decided_at_ms = 0;          // wall clock, for operators
};

struct ParticipantRecord {
  std::string name;
  std::string host;
  int port = 0;
  std::string backend;
};

// An operator decided a branch at a participant one way, and the
// coordinator decided the other: kept until an operator forgets it.
struct HeuristicRecord {
  std::string txn_id;
  std::string participant;
  bool committed = false;  // what the operator did at the participant
  std::string decision;    // the coordinator's decision: "COMMIT" or "ABORT"
  int64_t at_ms = 0;       // wall clock
};

struct JournalStats {
  int64_t commit_records = 0;  // COMMIT records made durable
  int64_t fsync_batches = 0;   // SQLite transactions that carried them (one fsync each)
};

class Journal {
 public:
  virtual ~Journal() = default;

  // Raises the stored epoch by one and returns it once durable. Called at
  // every start before serving, so ids and fences of an older run lose.
  virtual Result<int64_t> RaiseEpoch() = 0;

  // Returns once the record is durable on disk. Concurrent callers share one
  // SQLite transaction and fsync (group commit). kUnavailable means the
  // write failed where it may still have reached the disk: the record may be
  // replayed at the next start unless LogAbort overrules it. Any other error
  // means it is not durable.
  virtual Status LogCommit(const CommitRecord& record) = 0;

  // Makes "txn_id did not commit" durable, overruling a COMMIT record whose
  // write failed ambiguously: recovery then ignores that record. Returns once
  // durable; an error means the outcome is unknown.
  virtual Status LogAbort(const std::string& txn_id) = 0;

  // Forgets a transaction whose branches all acknowledged. Lazy: returns
  // before it is durable; a crash may leave the record, whose commit is then
  // re-driven harmlessly (commit is idempotent).
  virtual void LogEnd(const std::string& txn_id) = 0;

  // COMMIT records without END, oldest first.
  virtual Result<std::vector<CommitRecord>> LoadUnfinished() = 0;

  // Inserts or replaces a participant by name; durable on return.
  virtual Status PutParticipant(const ParticipantRecord& participant) = 0;
  virtual Result<std::vector<ParticipantRecord>> LoadParticipants() = 0;
  // Durable on return.
  virtual Status DeleteParticipant(const std::string& name) = 0;

  // Inserts or replaces by (txn_id, participant); durable on return.
  virtual Status PutHeuristic(const HeuristicRecord& heuristic) = 0;
  virtual Result<std::vector<HeuristicRecord>> LoadHeuristics() = 0;
  // kNotFound when the transaction has none.
  virtual Status ForgetHeuristics(const std::string& txn_id) = 0;

  virtual JournalStats Stats() = 0;
};

// Forwards every call to a target, so a test double overrides only what it
// needs (e.g. LogCommit failing like a full disk).
class JournalWrapper : public Journal {
 public:
  explicit JournalWrapper(Journal* target) : target_(target) {}
  Result<int64_t> RaiseEpoch() override { return target_->RaiseEpoch(); }
  Status LogCommit(const CommitRecord& r) override { return target_->LogCommit(r); }
  Status LogAbort(const std::string& txn_id) override { return target_->LogAbort(txn_id); }
  void LogEnd(const std::string& txn_id) override { target_->LogEnd(txn_id); }
  Result<std::vector<CommitRecord>> LoadUnfinished() override {
    return target_->LoadUnfinished();
  }
  Status PutParticipant(const ParticipantRecord& p) override {
    return target_->PutParticipant(p);
  }
  Result<std::vector<ParticipantRecord>> LoadParticipants() override {
    return target_->LoadParticipants();
  }
  Status DeleteParticipant(const std::string& name) override {
    return target_->DeleteParticipant(name);
  }
  Status PutHeuristic(const HeuristicRecord& h) override { return target_->PutHeuristic(h); }
  Result<std::vector<HeuristicRecord>> LoadHeuristics() override {
    return target_->LoadHeuristics();
  }
  Status ForgetHeuristics(const std::string& txn_id) override {
    return target_->ForgetHeuristics(txn_id);
  }
  JournalStats Stats() override { return target_->Stats(); }

 private:
  Journal* target_;
};

}  // namespace pact
