#include "coordinator/coordinator_handler.h"

#include "rpc/rpc_auth.h"
#include "rpc/rpc_convert.h"

namespace pact {
namespace {


std::vector<EnlistedBranch> FromRpc(const std::vector<rpc::EnlistedBranch>& branches) {
  std::vector<EnlistedBranch> out;
  out.reserve(branches.size());
  for (const auto& b : branches) out.push_back({b.participant, b.branch});
  return out;
}

rpc::TxnStatus ToRpc(const TxnSnapshot& s) {
  rpc::TxnStatus out;
  out.txn_id = s.id;
  out.state = TxnStateToRpc(s.state);
  out.age_ms = s.age_ms;
  out.deadline_in_ms = s.deadline_in_ms;
  out.reason = s.reason;
  for (const auto& b : s.branches) {
    rpc::BranchStatus branch;
    branch.participant = b.participant;
    if (b.vote) branch.__set_vote(VoteToRpc(*b.vote));
    branch.state = BranchStateName(b.state);
    branch.attempts = b.attempts;
    branch.last_error = b.last_error;
    out.branches.push_back(std::move(branch));
  }
  return out;
}

template <typename T>
T ValueOrThrow(Result<T> result) {
  ThrowIfError(result.status());
  return std::move(result).value();
}

// Who may call what (README, "Security model"). A participant acts under its
// own name only: AuthorizeAs binds the name to the caller's certificate.
constexpr Roles kAnyone = Roles::All();
constexpr Roles kApplicationOrOperator = Roles(Role::kApplication) | Role::kOperator;

void Allow(Roles roles, const char* what) { ThrowIfError(Authorize(roles, what)); }
void AllowParticipant(const std::string& name, const char* what) {
  ThrowIfError(AuthorizeAs(Role::kParticipant, name, what));
}

}  // namespace

void CoordinatorHandler::authenticate(const std::string& token) {
  ThrowIfError(AuthenticateConnection(token));
}

void CoordinatorHandler::info(rpc::CoordinatorInfo& out) {
  Allow(kAnyone, "info");
  out.name = coordinator_->name();
  out.epoch = coordinator_->epoch();
  out.ready = coordinator_->ready();
}

void CoordinatorHandler::beginTxn(rpc::BeginResult& out, int64_t timeout_ms) {
  Allow(Role::kApplication, "beginTxn");
  BeginInfo begun = ValueOrThrow(coordinator_->Begin(timeout_ms));
  out.txn_id = begun.txn_id;
  out.timeout_ms = begun.timeout_ms;
}

void CoordinatorHandler::reserveTxnIds(rpc::IdBlock& out, int32_t count) {
  Allow(Role::kApplication, "reserveTxnIds");
  IdBlock block = ValueOrThrow(coordinator_->ReserveIds(count));
  out.coordinator = block.coordinator;
  out.epoch = block.epoch;
  out.first_seq = block.first_seq;
  out.count = block.count;
  out.valid_ms = block.valid_ms;
  out.default_timeout_ms = block.default_timeout_ms;
  out.max_timeout_ms = block.max_timeout_ms;
}

void CoordinatorHandler::commitTxn(rpc::CommitResult& out, const std::string& txn_id,
                                   bool return_at_decision,
                                   const std::vector<rpc::EnlistedBranch>& branches) {
  Allow(Role::kApplication, "commitTxn");
  CommitOutcome outcome = ValueOrThrow(coordinator_->Commit(
      txn_id, FromRpc(branches),
      return_at_decision ? CommitReturn::kAtDecision : CommitReturn::kAfterBranches));
  out.state = TxnStateToRpc(outcome.state);
  out.reason = outcome.reason;
}

void CoordinatorHandler::rollbackTxn(const std::string& txn_id,
                                     const std::vector<rpc::EnlistedBranch>& branches) {
  Allow(Role::kApplication, "rollbackTxn");
  ThrowIfError(coordinator_->Rollback(txn_id, FromRpc(branches)));
}

void CoordinatorHandler::status(rpc::TxnStatus& out, const std::string& txn_id) {
  Allow(kApplicationOrOperator, "status");
  out = ToRpc(ValueOrThrow(coordinator_->GetStatus(txn_id)));
}

rpc::Outcome::type CoordinatorHandler::outcome(const std::string& txn_id) {
  Allow(Role::kParticipant, "outcome");
  return OutcomeToRpc(ValueOrThrow(coordinator_->Inquire(txn_id)));
}

void CoordinatorHandler::registerParticipant(const rpc::ParticipantEndpoint& participant) {
  AllowParticipant(participant.name, "registerParticipant");
  ThrowIfError(coordinator_->RegisterParticipant(
      {participant.name, participant.host, participant.port, participant.backend}));
}

void CoordinatorHandler::listParticipants(std::vector<rpc::ParticipantEndpoint>& out) {
  Allow(kApplicationOrOperator, "listParticipants");  // clients find participants here
  for (const auto& p : coordinator_->ListParticipants()) {
    rpc::ParticipantEndpoint endpoint;
    endpoint.name = p.name;
    endpoint.host = p.host;
    endpoint.port = p.port;
    endpoint.backend = p.backend;
    out.push_back(std::move(endpoint));
  }
}

void CoordinatorHandler::listTransactions(std::vector<rpc::TxnStatus>& out,
                                          const std::vector<rpc::TxnState::type>& states) {
  Allow(Role::kOperator, "listTransactions");
  std::vector<TxnState> wanted;
  for (auto s : states) wanted.push_back(ValueOrThrow(TxnStateFromRpc(s)));
  for (const auto& s : coordinator_->ListTransactions(wanted)) out.push_back(ToRpc(s));
}

void CoordinatorHandler::stats(std::map<std::string, int64_t>& out) {
  Allow(Role::kOperator, "stats");
  out = coordinator_->Stats();
}

void CoordinatorHandler::retryCommit(const std::string& txn_id) {
  Allow(Role::kOperator, "retryCommit");
  ThrowIfError(coordinator_->RetryCommit(txn_id));
}

void CoordinatorHandler::removeParticipant(const std::string& name, bool force) {
  Allow(Role::kOperator, "removeParticipant");
  ThrowIfError(coordinator_->RemoveParticipant(name, force));
}

void CoordinatorHandler::reportHeuristic(const rpc::HeuristicInfo& h) {
  AllowParticipant(h.participant, "reportHeuristic");
  ThrowIfError(coordinator_->ReportHeuristic(
      {h.txn_id, h.participant, h.committed, h.decision, h.at_ms}));
}

void CoordinatorHandler::listHeuristics(std::vector<rpc::HeuristicInfo>& out) {
  Allow(Role::kOperator, "listHeuristics");
  for (const auto& h : ValueOrThrow(coordinator_->ListHeuristics())) {
    rpc::HeuristicInfo info;
    info.txn_id = h.txn_id;
    info.participant = h.participant;
    info.committed = h.committed;
    info.decision = h.decision;
    info.at_ms = h.at_ms;
    out.push_back(std::move(info));
  }
}

void CoordinatorHandler::forgetHeuristic(const std::string& txn_id) {
  Allow(Role::kOperator, "forgetHeuristic");
  ThrowIfError(coordinator_->ForgetHeuristic(txn_id));
}

}  // namespace pact
