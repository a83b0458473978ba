// The Coordinator Thrift service: convert, call the core, convert back.
#pragma once

#include "coordinator/coordinator.h"
#include "gen-cpp/Coordinator.h"

namespace pact {

class CoordinatorHandler : public rpc::CoordinatorIf {
 public:
  explicit CoordinatorHandler(Coordinator* coordinator) : coordinator_(coordinator) {}

  void authenticate(const std::string& token) override;
  void info(rpc::CoordinatorInfo& out) override;
  void beginTxn(rpc::BeginResult& out, int64_t timeout_ms) override;
  void reserveTxnIds(rpc::IdBlock& out, int32_t count) override;
  void commitTxn(rpc::CommitResult& out, const std::string& txn_id, bool return_at_decision,
                 const std::vector<rpc::EnlistedBranch>& branches) override;
  void rollbackTxn(const std::string& txn_id,
                   const std::vector<rpc::EnlistedBranch>& branches) override;
  void status(rpc::TxnStatus& out, const std::string& txn_id) override;
  rpc::Outcome::type outcome(const std::string& txn_id) override;
  void registerParticipant(const rpc::ParticipantEndpoint& participant) override;
  void listParticipants(std::vector<rpc::ParticipantEndpoint>& out) override;
  void listTransactions(std::vector<rpc::TxnStatus>& out,
                        const std::vector<rpc::TxnState::type>& states) override;
  void stats(std::map<std::string, int64_t>& out) override;
  void retryCommit(const std::string& txn_id) override;
  void removeParticipant(const std::string& name, bool force) override;
  void reportHeuristic(const rpc::HeuristicInfo& heuristic) override;
  void listHeuristics(std::vector<rpc::HeuristicInfo>& out) override;
  void forgetHeuristic(const std::string& txn_id) override;

 private:
  Coordinator* coordinator_;
};

}  // namespace pact
