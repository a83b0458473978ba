// How the coordinator reaches participants, by name. The Thrift
// implementation lives in thrift_participants.h; tests use a scripted fake.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "common/protocol.h"
#include "common/runtime.h"
#include "common/status.h"

namespace pact {

struct PreparedBranch {
  std::string txn_id;
  int64_t age_ms = 0;
};

class Participants {
 public:
  virtual ~Participants() = default;

  // Set once the epoch is raised, before any other call.
  virtual void SetFence(const Fence& fence) = 0;

  // Adds or moves a participant's endpoint.
  virtual void SetEndpoint(const std::string& participant, const std::string& host, int port) = 0;

  // An error (including kUnavailable after timeout_ms) counts as an ABORT vote.
  // `opening` is the branch opening the client reported: another one there
  // votes ABORT.
  virtual Result<Vote> Prepare(const std::string& participant, const std::string& txn_id,
                               const std::string& opening, int timeout_ms) = 0;

  // kUnavailable: unknown whether it committed; retry. kNotFound: the
  // participant holds no such branch.
  virtual Status Commit(const std::string& participant, const std::string& txn_id,
                        bool one_phase) = 0;

  virtual Status Rollback(const std::string& participant, const std::string& txn_id) = 0;

  // One transaction's prepares, two-phase commits or rollbacks at several
  // participants, all sent before any answer is awaited: one answer per
  // participant, in order, each as the single call above would give it.
  // `answered(i)` runs once the answer of the i-th is in, on whichever
  // thread got it (crash points use it). The defaults send the single calls
  // through `fan_out`; a batching implementation queues them all and waits
  // once, which spares a thread hand-off per call.
  using Answered = std::function<void(size_t)>;
  virtual std::vector<Result<Vote>> PrepareEach(const std::vector<EnlistedBranch>& branches,
                                                const std::string& txn_id, int timeout_ms,
                                                const FanOut& fan_out, const Answered& answered);
  virtual std::vector<Status> CommitEach(const std::vector<std::string>& participants,
                                         const std::string& txn_id, const FanOut& fan_out,
                                         const Answered& answered);
  virtual std::vector<Status> RollbackEach(const std::vector<std::string>& participants,
                                           const std::string& txn_id, const FanOut& fan_out);

  // The participant's prepared branches (of every coordinator).
  virtual Result<std::vector<PreparedBranch>> Recover(const std::string& participant) = 0;

  // Tells the participant an operator dealt with its heuristic decision.
  virtual Status ForgetHeuristic(const std::string& participant, const std::string& txn_id) = 0;

  // Every branch the participant holds, active or prepared (no fence: read-only).
  virtual Result<std::vector<PreparedBranch>> ListBranches(const std::string& participant) = 0;
};

}  // namespace pact
