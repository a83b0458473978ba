#include "tests/sim/transfer_client.h"

#include "common/txn_id.h"
#include "tests/sim/sim_backend.h"

namespace pact::sim {
namespace {

// What execute answers: the statement's result, and the branch's opening
// also when the statement failed (the client library reads it from the error).
struct ExecuteAnswer {
  ExecuteAnswer(Status failed) : result(std::move(failed)) {}  // what the network fails with
  ExecuteAnswer(Result<QueryResult> r, std::string o)
      : result(std::move(r)), opening(std::move(o)) {}
  Result<QueryResult> result;
  std::string opening;
};

std::string Show(const ExecuteAnswer& answer) {
  return sim::Show(answer.result) + (answer.opening.empty() ? "" : " in " + answer.opening);
}

}  // namespace

TransferClient::TransferClient(int id, TransferPlan plan, SimNetwork* network,
                               Directory* directory, Invariants* invariants, History* history)
    : id_(id),
      plan_(std::move(plan)),
      network_(network),
      directory_(directory),
      invariants_(invariants),
      history_(history) {}

std::string TransferClient::Name() const {
  return "client#" + std::to_string(id_) + (txn_.empty() ? "" : " " + txn_);
}

void TransferClient::Step() {
  switch (stage_) {
    case Stage::kBegin: {
      Directory* d = directory_;
      int64_t timeout = plan_.timeout_ms;
      Result<std::string> begun = Status::Internal("not begun");
      if (plan_.reserved_id) {
        auto block = CallCoordinator<Result<IdBlock>>(
            network_, d, d->client, "reserve ids", [](Coordinator* c) { return c->ReserveIds(1); },
            /*idempotent=*/false);
        if (block.ok()) begun = TxnId{block->coordinator, block->epoch, block->first_seq}.ToString();
        else begun = block.status();
      } else {
        auto info = CallCoordinator<Result<BeginInfo>>(
            network_, d, d->client, "begin", [=](Coordinator* c) { return c->Begin(timeout); },
            /*idempotent=*/false);
        if (info.ok()) begun = info->txn_id;
        else begun = info.status();
      }
      if (!begun.ok()) {
        if (++begin_attempts_ < plan_.begin_attempts) return;  // try again at a later step
        history_->Add(Name() + ": could not begin; gives up");
        stage_ = Stage::kDone;
        return;
      }
      txn_ = *begun;
      history_->Add(Name() + ": transfers " + std::to_string(plan_.amount) + " from " +
                    plan_.from + "/" + plan_.from_account + " to " + plan_.to + "/" +
                    plan_.to_account + (plan_.application_rollback ? ", then rolls back" : ""));
      stage_ = Stage::kFirst;
      return;
    }
    case Stage::kFirst: return Execute(true);
    case Stage::kSecond: return Execute(false);
    case Stage::kCommit: return Commit();
    case Stage::kRollback: return Rollback();
    case Stage::kDone: return;
  }
}

void TransferClient::Execute(bool first) {
  bool credit = first == plan_.credit_first;
  const std::string& participant = credit ? plan_.to : plan_.from;
  std::string account = credit ? plan_.to_account : plan_.from_account;
  int64_t delta = credit ? plan_.amount : -plan_.amount;
  Directory::Node* node = directory_->Find(participant);
  std::string txn = txn_;
  int64_t timeout = plan_.timeout_ms;
  openings_.emplace(participant, "");
  auto answer = network_->Send<ExecuteAnswer>(
      directory_->client, node->process,
      "execute " + txn + " " + account + (delta >= 0 ? " +" : " ") + std::to_string(delta),
      [=] {
        std::string opening;
        auto result = node->service->Execute(txn, kAddSql, {SqlValue(account), SqlValue(delta)},
                                             timeout, &opening);
        return ExecuteAnswer(std::move(result), opening);
      },
      /*idempotent=*/false);
  const Result<QueryResult>& result = answer.result;
  std::string& known = openings_[participant];
  if (!answer.opening.empty() && !known.empty() && known != answer.opening) {
    // The participant lost the earlier work (it restarted): roll back.
    history_->Add(Name() + ": " + participant + " answered from a new opening " +
                  answer.opening + " (was " + known + ")");
    stage_ = Stage::kRollback;
    return;
  }
  if (!answer.opening.empty()) known = answer.opening;
  if (result.ok()) {
    stage_ = first ? Stage::kSecond
                   : (plan_.application_rollback ? Stage::kRollback : Stage::kCommit);
    return;
  }
  // After any failed statement a correct application rolls back, except
  // that this one may commit an overdraft anyway to see it refused.
  overdrawn_ = result.status().code() == StatusCode::kFailedPrecondition;
  stage_ = overdrawn_ && plan_.commit_after_overdraft ? Stage::kCommit : Stage::kRollback;
}

bool TransferClient::AtZombie() const {
  const Directory* d = directory_;
  if (d->zombie_object == nullptr || !d->zombie.up() || d->zombie.asleep) return false;
  auto id = TxnId::Parse(txn_);
  return id.ok() && id->epoch == d->zombie_object->epoch();
}

// What the zombie answers counts as unknown for the checks: it may be a lie
// that Pact cannot help. A decision the zombie made after it froze is durable
// only on its own copy of the journal, which the new run never reads (it
// presumes abort), so its COMMITTED can be false; and its ABORTED too (an
// ABORT record on its copy overruling a COMMIT record on the real disk). The
// fence keeps the participants from acting on such decisions; nothing keeps
// the zombie from telling its clients about them.
void TransferClient::Commit() {
  Directory* d = directory_;
  std::string txn = txn_;
  ++commit_attempts_;
  const bool zombie = AtZombie();
  const CommitReturn when =
      plan_.return_at_decision ? CommitReturn::kAtDecision : CommitReturn::kAfterBranches;
  const std::vector<EnlistedBranch> branches = Branches(/*for_commit=*/true);
  auto commit = [=](Coordinator* c) { return c->Commit(txn, branches, when); };
  auto outcome =
      zombie ? network_->Send<Result<CommitOutcome>>(
                   d->client, d->zombie, "commit " + txn,
                   [=] { return commit(d->zombie_object); })
             : CallCoordinator<Result<CommitOutcome>>(network_, d, d->client, "commit " + txn,
                                                      commit);
  if (zombie && outcome.status().code() != StatusCode::kUnavailable) {
    history_->Add(Name() + ": the zombie's answer (" + Show(outcome) + ") counts as unknown");
    return Tell(Told::kUnknown);
  }
  if (outcome.ok()) {
    Told told = outcome->state == TxnState::kCommitted ? Told::kCommitted : Told::kAborted;
    if (told == Told::kCommitted && overdrawn_) {
      invariants_->Violation("outcome: " + txn + " committed although a statement overdrew");
    }
    return Tell(told);
  }
  if (outcome.status().code() == StatusCode::kTimedOut) return Tell(Told::kTimedOut);
  // Unknown, or a standby that did nothing (the client library follows it
  // to the active); asked again (idempotent) at a later step, a few times.
  const StatusCode code = outcome.status().code();
  if ((code == StatusCode::kUnavailable || code == StatusCode::kNotLeader) &&
      commit_attempts_ < plan_.commit_attempts) {
    return;
  }
  Tell(Told::kUnknown);
}

void TransferClient::Rollback() {
  Directory* d = directory_;
  std::string txn = txn_;
  const bool zombie = AtZombie();
  const std::vector<EnlistedBranch> branches = Branches(/*for_commit=*/false);
  auto rollback = [=](Coordinator* c) { return c->Rollback(txn, branches); };
  Status st = zombie ? network_->Send<Status>(d->client, d->zombie, "rollback " + txn,
                                              [=] { return rollback(d->zombie_object); })
                     : CallCoordinator<Status>(network_, d, d->client, "rollback " + txn, rollback);
  Tell(st.ok() && !zombie ? Told::kRolledBack : Told::kUnknown);  // the zombie: see Commit
}

std::vector<EnlistedBranch> TransferClient::Branches(bool for_commit) const {
  std::vector<EnlistedBranch> out;
  for (const auto& [participant, opening] : openings_) {
    if (for_commit && opening.empty()) continue;  // no branch opened there
    out.push_back({participant, opening});
  }
  return out;
}

void TransferClient::Tell(Told told) {
  told_ = told;
  stage_ = Stage::kDone;
  history_->Add(Name() + ": told " + ToldName(told));
  invariants_->Tell(txn_, told);
}

}  // namespace pact::sim
