// The Participant Thrift service: convert, call the core, convert back.
#pragma once

#include <atomic>
#include <functional>

#include "gen-cpp/Participant.h"
#include "participant/participant_service.h"

namespace pact {

// Runs the items of batches of one verb. While they are quick (a backend
// that answers from memory), one after another on the serving thread:
// handing each to a thread would cost more than the item. Once one blocks
// (PostgreSQL's PREPARE waits for its fsync), the rest all at once, and so
// the next batches, so that their waits overlap instead of adding up; back
// to one after another once a batch's items were all quick again.
class BatchItemRunner {
 public:
  // Returns once answer(0) .. answer(items - 1) have all run.
  void Run(size_t items, const std::function<void(size_t)>& answer);

 private:
  std::atomic<bool> blocking_{false};  // the latest item (of this verb) blocked
};

class ParticipantHandler : public rpc::ParticipantIf {
 public:
  explicit ParticipantHandler(ParticipantService* service) : service_(service) {}

  void authenticate(const std::string& token) override;
  void info(rpc::ParticipantInfo& out) override;
  void execute(rpc::ExecuteResult& out, const std::string& txn_id, const std::string& sql,
               const std::vector<rpc::Value>& params, int64_t timeout_ms) override;
  void abandon(const std::string& txn_id, const std::string& branch) override;
  rpc::Vote::type prepare(const rpc::Fence& fence, const std::string& txn_id,
                          const std::string& branch) override;
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
  BatchItemRunner prepare_items_;
  BatchItemRunner commit_items_;
  BatchItemRunner rollback_items_;
};

}  // namespace pact
