// The Participant Thrift service: convert, call the core, convert back.
#pragma once

#include "gen-cpp/Participant.h"
#include "participant/participant_service.h"

namespace pact {

class ParticipantHandler : public rpc::ParticipantIf {
 public:
  explicit ParticipantHandler(ParticipantService* service) : service_(service) {}

  void authenticate(const std::string& token) override;
  void info(rpc::ParticipantInfo& out) override;
  void execute(rpc::ExecuteResult& out, const std::string& txn_id, const std::string& sql,
               const std::vector<rpc::Value>& params) override;
  rpc::Vote::type prepare(const rpc::Fence& fence, const std::string& txn_id) override;
  void commit(const rpc::Fence& fence, const std::string& txn_id, bool one_phase) override;
  void rollback(const rpc::Fence& fence, const std::string& txn_id) override;
  void recover(std::vector<rpc::BranchInfo>& out, const rpc::Fence& fence) override;
  void listBranches(std::vector<rpc::BranchInfo>& out) override;
  void resolve(const std::string& txn_id, bool commit) override;
  void listHeuristics(std::vector<rpc::HeuristicInfo>& out) override;
  void forgetHeuristic(const std::string& txn_id) override;
  // Each item runs as its single call would, concurrently with the batch's
  // others (a backend's prepare may wait for an fsync).
  void prepareBatch(std::vector<rpc::PrepareAnswer>& out, const rpc::Fence& fence,
                    const std::vector<rpc::PrepareItem>& items) override;
  void commitBatch(std::vector<rpc::BatchAnswer>& out, const rpc::Fence& fence,
                   const std::vector<std::string>& txn_ids) override;
  void rollbackBatch(std::vector<rpc::BatchAnswer>& out, const rpc::Fence& fence,
                     const std::vector<std::string>& txn_ids) override;

 private:
  ParticipantService* service_;
};

}  // namespace pact
