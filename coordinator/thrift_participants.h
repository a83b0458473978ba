// Participants over Thrift: a connection pool per participant, every call
// fenced with this coordinator's name and epoch.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "coordinator/participants.h"
#include "gen-cpp/Participant.h"
#include "rpc/rpc_client.h"

namespace pact {

class ThriftParticipants : public Participants {
 public:
  ThriftParticipants(RpcTimeouts timeouts, RpcCredentials credentials)
      : timeouts_(timeouts), credentials_(std::move(credentials)) {}

  void SetFence(const Fence& fence) override;
  void SetEndpoint(const std::string& participant, const std::string& host, int port) override;
  Result<Vote> Prepare(const std::string& participant, const std::string& txn_id,
                       const std::string& opening, int timeout_ms) override;
  Status Commit(const std::string& participant, const std::string& txn_id,
                bool one_phase) override;
  Status Rollback(const std::string& participant, const std::string& txn_id) override;
  Result<std::vector<PreparedBranch>> Recover(const std::string& participant) override;
  Result<std::vector<PreparedBranch>> ListBranches(const std::string& participant) override;
  Status ForgetHeuristic(const std::string& participant, const std::string& txn_id) override;

 private:
  using Pool = RpcPool<rpc::ParticipantClient>;
  Result<std::shared_ptr<Pool>> PoolFor(const std::string& participant);

  const RpcTimeouts timeouts_;
  const RpcCredentials credentials_;  // as this coordinator
  rpc::Fence fence_;  // set before use, then read-only
  std::mutex mu_;
  std::map<std::string, std::shared_ptr<Pool>> pools_;  // guarded by mu_
};

}  // namespace pact
