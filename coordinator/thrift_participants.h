// Participants over Thrift: a connection pool per participant, every call
// fenced with this coordinator's name and epoch. With max_batch > 1 the
// prepares, two-phase commits and rollbacks of concurrent transactions go to
// a participant in batches (participant_batcher.h).
#pragma once

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "coordinator/participant_batcher.h"
#include "coordinator/participants.h"
#include "gen-cpp/Participant.h"
#include "rpc/rpc_client.h"

namespace pact {

class ThriftParticipants : public Participants, private BatchTransport {
 public:
  // max_batch <= 1: every call is its own RPC, as before batching.
  // max_in_flight: see ParticipantBatcher.
  ThriftParticipants(RpcTimeouts timeouts, RpcCredentials credentials, size_t max_batch = 1,
                     size_t max_in_flight = 1);

  void SetFence(const Fence& fence) override;
  void SetEndpoint(const std::string& participant, const std::string& host, int port) override;
  Result<Vote> Prepare(const std::string& participant, const std::string& txn_id,
                       const std::string& opening, int timeout_ms) override;
  Status Commit(const std::string& participant, const std::string& txn_id,
                bool one_phase) override;
  Status Rollback(const std::string& participant, const std::string& txn_id) override;
  std::vector<Result<Vote>> PrepareEach(const std::vector<EnlistedBranch>& branches,
                                        const std::string& txn_id, int timeout_ms,
                                        const FanOut& fan_out, const Answered& answered) override;
  std::vector<Status> CommitEach(const std::vector<std::string>& participants,
                                 const std::string& txn_id, const FanOut& fan_out,
                                 const Answered& answered) override;
  std::vector<Status> RollbackEach(const std::vector<std::string>& participants,
                                   const std::string& txn_id, const FanOut& fan_out) override;
  Result<std::vector<PreparedBranch>> Recover(const std::string& participant) override;
  Result<std::vector<PreparedBranch>> ListBranches(const std::string& participant) override;
  Status ForgetHeuristic(const std::string& participant, const std::string& txn_id) override;

  const ParticipantBatcher* batcher() const { return batcher_.get(); }

 private:
  using Pool = RpcPool<rpc::ParticipantClient>;
  // One endpoint of a participant.
  struct Peer {
    std::shared_ptr<Pool> pool;
    // It answered a batch method with UNKNOWN_METHOD (it predates them):
    // its batches go as single calls.
    std::atomic<bool> singles_only{false};
  };
  Result<std::shared_ptr<Peer>> PeerFor(const std::string& participant);

  Result<Vote> PrepareOne(Pool& pool, const std::string& txn_id, const std::string& opening,
                          int timeout_ms);
  Status CommitOne(Pool& pool, const std::string& txn_id, bool one_phase);
  Status RollbackOne(Pool& pool, const std::string& txn_id);

  // BatchTransport
  Result<std::vector<Result<Vote>>> PrepareBatch(const std::string& participant,
                                                 const std::vector<PrepareRequest>& items,
                                                 int timeout_ms) override;
  Result<std::vector<Status>> CommitBatch(const std::string& participant,
                                          const std::vector<std::string>& txn_ids) override;
  Result<std::vector<Status>> RollbackBatch(const std::string& participant,
                                            const std::vector<std::string>& txn_ids) override;

  const RpcTimeouts timeouts_;
  const RpcCredentials credentials_;  // as this coordinator
  rpc::Fence fence_;  // set before use, then read-only
  std::mutex mu_;
  std::map<std::string, std::shared_ptr<Peer>> peers_;  // guarded by mu_
  std::unique_ptr<ParticipantBatcher> batcher_;  // null: no batching
};

}  // namespace pact
