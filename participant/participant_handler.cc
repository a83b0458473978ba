#include "participant/participant_handler.h"

#include <chrono>

#include "common/parallel.h"
#include "gen-cpp/pact_constants.h"
#include "rpc/rpc_auth.h"
#include "rpc/rpc_convert.h"

namespace pact {
namespace {

// Who may call what (README, "Security model"). Prepare, commit, rollback
// and recover are the fence's coordinator's alone: AuthorizeAs binds the
// fence name to the caller's certificate.
constexpr Roles kAnyone = Roles::All();
constexpr Roles kOperatorOrCoordinator = Roles(Role::kOperator) | Role::kCoordinator;

void Allow(Roles roles, const char* what) { ThrowIfError(Authorize(roles, what)); }
void AllowCoordinator(const rpc::Fence& fence, const char* what) {
  ThrowIfError(AuthorizeAs(Role::kCoordinator, fence.coordinator, what));
}

Fence FromRpc(const rpc::Fence& fence) { return {fence.coordinator, fence.epoch}; }

rpc::BranchInfo ToRpc(const BranchSnapshot& s) {
  rpc::BranchInfo out;
  out.txn_id = s.txn_id;
  out.state = s.prepared ? rpc::BranchState::PREPARED : rpc::BranchState::ACTIVE;
  out.age_ms = s.age_ms;
  if (!s.prepared) out.__set_deadline_in_ms(s.deadline_in_ms);
  return out;
}

// A batch the sender should never have built is refused whole, before any
// item runs.
void CheckBatchSize(size_t items, const char* what) {
  const size_t max = static_cast<size_t>(rpc::g_pact_constants.MAX_BATCH_ITEMS);
  if (items == 0) ThrowIfError(Status::InvalidArgument(std::string(what) + ": an empty batch"));
  if (items > max) {
    ThrowIfError(Status::InvalidArgument(std::string(what) + ": a batch of " +
                                         std::to_string(items) + " items (at most " +
                                         std::to_string(max) + ")"));
  }
}

}  // namespace

void BatchItemRunner::Run(size_t items, const std::function<void(size_t)>& answer) {
  using Clock = std::chrono::steady_clock;
  constexpr auto kQuick = std::chrono::microseconds(100);
  size_t next = 0;
  if (!blocking_) {
    while (next < items) {
      auto start = Clock::now();
      answer(next++);
      if (Clock::now() - start > kQuick) {
        blocking_ = true;
        break;
      }
    }
    if (next == items) return;
  }
  // Every thread takes the next item not taken yet.
  std::atomic<size_t> taken{next};
  std::atomic<bool> all_quick{true};
  RunInParallel(items - next, [&](size_t) {
    for (size_t i = taken++; i < items; i = taken++) {
      auto start = Clock::now();
      answer(i);
      if (Clock::now() - start > kQuick) all_quick = false;
    }
  });
  if (all_quick) blocking_ = false;
}

void ParticipantHandler::authenticate(const std::string& token) {
  ThrowIfError(AuthenticateConnection(token));
}

void ParticipantHandler::info(rpc::ParticipantInfo& out) {
  Allow(kAnyone, "info");
  out.name = service_->name();
  out.backend = service_->backend_name();
}

void ParticipantHandler::execute(rpc::ExecuteResult& out, const std::string& txn_id,
                                 const std::string& sql, const std::vector<rpc::Value>& params,
                                 int64_t timeout_ms) {
  Allow(Role::kApplication, "execute");
  auto values = FromRpcValues(params);
  ThrowIfError(values.status());
  std::string opening;
  auto result = service_->Execute(txn_id, sql, *values, timeout_ms, &opening);
  if (!result.ok()) {
    rpc::PactError error = ToPactError(result.status());
    if (!opening.empty()) error.__set_branch(opening);
    throw error;
  }
  out = ToRpcResult(*result);
  out.branch = opening;
}

void ParticipantHandler::abandon(const std::string& txn_id, const std::string& branch) {
  Allow(Role::kApplication, "abandon");
  ThrowIfError(service_->Abandon(txn_id, branch));
}

rpc::Vote::type ParticipantHandler::prepare(const rpc::Fence& fence, const std::string& txn_id,
                                            const std::string& branch) {
  AllowCoordinator(fence, "prepare");
  auto vote = service_->Prepare(FromRpc(fence), txn_id, branch);
  ThrowIfError(vote.status());
  return VoteToRpc(*vote);
}

void ParticipantHandler::commit(const rpc::Fence& fence, const std::string& txn_id,
                                bool one_phase) {
  AllowCoordinator(fence, "commit");
  ThrowIfError(service_->Commit(FromRpc(fence), txn_id, one_phase));
}

void ParticipantHandler::rollback(const rpc::Fence& fence, const std::string& txn_id) {
  AllowCoordinator(fence, "rollback");
  ThrowIfError(service_->Rollback(FromRpc(fence), txn_id));
}

void ParticipantHandler::prepareBatch(std::vector<rpc::PrepareAnswer>& out,
                                      const rpc::Fence& fence,
                                      const std::vector<rpc::PrepareItem>& items) {
  AllowCoordinator(fence, "prepareBatch");
  CheckBatchSize(items.size(), "prepareBatch");
  out.resize(items.size());
  prepare_items_.Run(items.size(), [&](size_t i) {
    out[i] = PrepareAnswerToRpc(
        service_->Prepare(FromRpc(fence), items[i].txn_id, items[i].branch));
  });
}

void ParticipantHandler::commitBatch(std::vector<rpc::BatchAnswer>& out, const rpc::Fence& fence,
                                     const std::vector<std::string>& txn_ids) {
  AllowCoordinator(fence, "commitBatch");
  CheckBatchSize(txn_ids.size(), "commitBatch");
  out.resize(txn_ids.size());
  commit_items_.Run(txn_ids.size(), [&](size_t i) {
    out[i] = BatchAnswerToRpc(service_->Commit(FromRpc(fence), txn_ids[i], /*one_phase=*/false));
  });
}

void ParticipantHandler::rollbackBatch(std::vector<rpc::BatchAnswer>& out,
                                       const rpc::Fence& fence,
                                       const std::vector<std::string>& txn_ids) {
  AllowCoordinator(fence, "rollbackBatch");
  CheckBatchSize(txn_ids.size(), "rollbackBatch");
  out.resize(txn_ids.size());
  rollback_items_.Run(txn_ids.size(), [&](size_t i) {
    out[i] = BatchAnswerToRpc(service_->Rollback(FromRpc(fence), txn_ids[i]));
  });
}

void ParticipantHandler::recover(std::vector<rpc::BranchInfo>& out, const rpc::Fence& fence) {
  AllowCoordinator(fence, "recover");
  auto prepared = service_->Recover(FromRpc(fence));
  ThrowIfError(prepared.status());
  for (const auto& b : *prepared) out.push_back(ToRpc(b));
}

void ParticipantHandler::listBranches(std::vector<rpc::BranchInfo>& out) {
  Allow(kOperatorOrCoordinator, "listBranches");
  for (const auto& b : service_->ListBranches()) out.push_back(ToRpc(b));
}

void ParticipantHandler::resolve(const std::string& txn_id, bool commit) {
  Allow(Role::kOperator, "resolve");
  ThrowIfError(service_->Resolve(txn_id, commit));
}

void ParticipantHandler::listHeuristics(std::vector<rpc::HeuristicInfo>& out) {
  Allow(Role::kOperator, "listHeuristics");
  for (const auto& h : service_->ListHeuristics()) {
    rpc::HeuristicInfo info;
    info.txn_id = h.txn_id;
    info.participant = service_->name();
    info.committed = h.committed;
    info.at_ms = h.at_ms;
    out.push_back(std::move(info));
  }
}

void ParticipantHandler::forgetHeuristic(const std::string& txn_id) {
  Allow(kOperatorOrCoordinator, "forgetHeuristic");
  ThrowIfError(service_->ForgetHeuristic(txn_id));
}

}  // namespace pact
