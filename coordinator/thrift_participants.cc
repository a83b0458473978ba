#include "coordinator/thrift_participants.h"

namespace pact {

void ThriftParticipants::SetFence(const Fence& fence) {
  fence_.coordinator = fence.coordinator;
  fence_.epoch = fence.epoch;
}

void ThriftParticipants::SetEndpoint(const std::string& participant, const std::string& host,
                                     int port) {
  std::lock_guard<std::mutex> lock(mu_);
  auto& pool = pools_[participant];
  if (pool && pool->endpoint().host == host && pool->endpoint().port == port) return;
  pool = std::make_shared<Pool>(Endpoint{host, port}, timeouts_,
                                credentials_.ToServer(Role::kParticipant, participant));
}

Result<std::shared_ptr<ThriftParticipants::Pool>> ThriftParticipants::PoolFor(
    const std::string& participant) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = pools_.find(participant);
  if (it == pools_.end()) {
    return Status::NotFound("participant '" + participant + "' is not registered");
  }
  return it->second;
}

Result<Vote> ThriftParticipants::Prepare(const std::string& participant,
                                         const std::string& txn_id, const std::string& opening,
                                         int timeout_ms) {
  ASSIGN_OR_RETURN(auto pool, PoolFor(participant));
  rpc::Vote::type vote = rpc::Vote::ABORT;
  RETURN_NOT_OK(pool->Call(
      [&](rpc::ParticipantClient& c) { vote = c.prepare(fence_, txn_id, opening); }, timeout_ms));
  return VoteFromRpc(vote);
}

Status ThriftParticipants::Commit(const std::string& participant, const std::string& txn_id,
                                  bool one_phase) {
  ASSIGN_OR_RETURN(auto pool, PoolFor(participant));
  return pool->Call([&](rpc::ParticipantClient& c) { c.commit(fence_, txn_id, one_phase); });
}

Status ThriftParticipants::Rollback(const std::string& participant, const std::string& txn_id) {
  ASSIGN_OR_RETURN(auto pool, PoolFor(participant));
  return pool->Call([&](rpc::ParticipantClient& c) { c.rollback(fence_, txn_id); });
}

Result<std::vector<PreparedBranch>> ThriftParticipants::Recover(const std::string& participant) {
  ASSIGN_OR_RETURN(auto pool, PoolFor(participant));
  std::vector<rpc::BranchInfo> branches;
  RETURN_NOT_OK(pool->Call([&](rpc::ParticipantClient& c) { c.recover(branches, fence_); }));
  std::vector<PreparedBranch> out;
  for (const auto& b : branches) out.push_back({b.txn_id, b.age_ms});
  return out;
}

Result<std::vector<PreparedBranch>> ThriftParticipants::ListBranches(
    const std::string& participant) {
  ASSIGN_OR_RETURN(auto pool, PoolFor(participant));
  std::vector<rpc::BranchInfo> branches;
  RETURN_NOT_OK(pool->Call([&](rpc::ParticipantClient& c) { c.listBranches(branches); }));
  std::vector<PreparedBranch> out;
  for (const auto& b : branches) out.push_back({b.txn_id, b.age_ms});
  return out;
}

Status ThriftParticipants::ForgetHeuristic(const std::string& participant,
                                           const std::string& txn_id) {
  ASSIGN_OR_RETURN(auto pool, PoolFor(participant));
  return pool->Call([&](rpc::ParticipantClient& c) { c.forgetHeuristic(txn_id); });
}

}  // namespace pact
