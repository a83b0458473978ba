#include "client/pact_client.h"

#include <algorithm>

#include "common/clock.h"
#include "gen-cpp/Coordinator.h"
#include "gen-cpp/Participant.h"
#include "rpc/rpc_convert.h"

namespace pact {

Result<std::unique_ptr<Client>> Client::Connect(const std::string& coordinator,
                                                ClientOptions options) {
  ASSIGN_OR_RETURN(Endpoint endpoint, Endpoint::Parse(coordinator));
  return std::unique_ptr<Client>(new Client(endpoint, options));
}

Client::Client(Endpoint coordinator, ClientOptions options)
    : options_(options),
      coordinator_(std::make_unique<CoordinatorPool>(
          std::move(coordinator), options.timeouts,
          options.credentials.ToServer(Role::kCoordinator))) {}

Client::~Client() = default;

Result<std::unique_ptr<Transaction>> Client::Begin(int64_t timeout_ms) {
  rpc::BeginResult begun;
  RETURN_NOT_OK(coordinator_->Call([&](rpc::CoordinatorClient& c) { c.beginTxn(begun, timeout_ms); }));
  return std::unique_ptr<Transaction>(new Transaction(this, begun.txn_id));
}

Result<TxnState> Client::GetState(const std::string& txn_id) {
  rpc::TxnStatus status;
  RETURN_NOT_OK(coordinator_->Call([&](rpc::CoordinatorClient& c) { c.status(status, txn_id); }));
  return TxnStateFromRpc(status.state);
}

Result<std::shared_ptr<Client::ParticipantPool>> Client::PoolFor(const std::string& participant) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = participants_.find(participant);
    if (it != participants_.end()) return it->second;
  }
  std::vector<rpc::ParticipantEndpoint> registered;
  RETURN_NOT_OK(
      coordinator_->Call([&](rpc::CoordinatorClient& c) { c.listParticipants(registered); }));
  std::lock_guard<std::mutex> lock(mu_);
  std::string known;
  for (const auto& p : registered) {
    auto& pool = participants_[p.name];
    if (!pool || pool->endpoint().host != p.host || pool->endpoint().port != p.port) {
      pool = std::make_shared<ParticipantPool>(
          Endpoint{p.host, p.port}, options_.timeouts,
          options_.credentials.ToServer(Role::kParticipant, p.name));
    }
    known += (known.empty() ? "" : ", ") + p.name;
  }
  auto it = participants_.find(participant);
  if (it == participants_.end()) {
    return Status::NotFound("unknown participant '" + participant +
                            "'; registered: " + (known.empty() ? "none" : known));
  }
  return it->second;
}

Transaction::~Transaction() {
  if (phase_ == Phase::kOpen) {
    // Best effort: if this fails, the coordinator rolls back at the deadline.
    (void)Rollback();
  }
}

Status Transaction::RequireOpen() const {
  switch (phase_) {
    case Phase::kOpen: return Status::Ok();
    case Phase::kCommitted:
      return Status::FailedPrecondition("transaction " + id_ + " is already committed");
    case Phase::kRolledBack:
      return Status::FailedPrecondition("transaction " + id_ + " is already rolled back");
    case Phase::kUnknown:
      return Status::FailedPrecondition("transaction " + id_ +
                                        " has an unknown outcome; ask GetState");
  }
  return Status::Internal("bad phase");
}

Result<QueryResult> Transaction::Execute(const std::string& participant, const std::string& sql,
                                         const std::vector<SqlValue>& params) {
  RETURN_NOT_OK(RequireOpen());
  ASSIGN_OR_RETURN(auto pool, client_->PoolFor(participant));
  rpc::ExecuteResult result;
  const std::vector<rpc::Value> wire_params = ToRpcValues(params);
  Status st = pool->Call(
      [&](rpc::ParticipantClient& c) { c.execute(result, id_, sql, wire_params); });
  if (st.code() == StatusCode::kUnavailable && doubtful_.empty()) {
    doubtful_ = "statement on " + participant + " may or may not have run (" + st.message() + ")";
  }
  RETURN_NOT_OK(st);
  return FromRpcResult(result);
}

Status Transaction::Commit() {
  RETURN_NOT_OK(RequireOpen());
  if (!doubtful_.empty()) {
    // Committing would commit whatever that statement did or did not do.
    Status rolled_back = Rollback();
    return Status::Aborted("transaction " + id_ + " rolled back because a " + doubtful_ +
                           (rolled_back.ok() ? "" : "; rollback: " + rolled_back.message()));
  }
  rpc::CommitResult result;
  auto lost = [](const Status& s) {
    return s.code() == StatusCode::kUnavailable || s.code() == StatusCode::kInternal;
  };
  int64_t give_up = WallMillis() + client_->options_.commit_budget_ms;
  int backoff_ms = 50;
  Status st;
  for (int attempt = 1;; ++attempt) {
    // One ask may take the coordinator's prepare timeout plus its first
    // commit round: never cut it shorter than the budget.
    const bool at_decision = client_->options_.return_at_decision;
    st = client_->coordinator_->Call(
        [&](rpc::CoordinatorClient& c) { c.commitTxn(result, id_, at_decision); },
        std::max(client_->options_.timeouts.call_ms, client_->options_.commit_budget_ms));
    if (attempt > 1 && st.code() == StatusCode::kNotFound) {
      // Asked again after a lost answer, and the coordinator (restarted
      // meanwhile) no longer knows it: it may have committed and forgotten.
      st = Status::Unavailable("the coordinator no longer knows it: " + st.message());
      break;
    }
    if (attempt > 1 && (st.code() == StatusCode::kUnauthenticated ||
                        st.code() == StatusCode::kPermissionDenied)) {
      // A refusal of the caller says nothing of what the first ask did.
      st = Status::Unavailable("asking again was refused: " + st.message());
      break;
    }
    if (!lost(st) || WallMillis() + backoff_ms >= give_up) break;
    RealClock()->SleepFor(Millis(backoff_ms));
    backoff_ms = std::min(backoff_ms * 2, 1000);
  }
  if (lost(st)) {
    phase_ = Phase::kUnknown;
    return Status::Unavailable("outcome of " + id_ + " unknown: " + st.message());
  }
  if (!st.ok()) {
    // The coordinator's answer (deadline passed, unknown id, ...): nothing
    // of this transaction committed.
    phase_ = Phase::kRolledBack;
    return st;
  }
  if (result.state == rpc::TxnState::COMMITTED) {
    phase_ = Phase::kCommitted;
    return Status::Ok();
  }
  phase_ = Phase::kRolledBack;
  return Status::Aborted("transaction " + id_ + " rolled back: " + result.reason);
}

Status Transaction::Rollback() {
  RETURN_NOT_OK(RequireOpen());
  Status st = client_->coordinator_->Call([&](rpc::CoordinatorClient& c) { c.rollbackTxn(id_); });
  if (st.ok()) phase_ = Phase::kRolledBack;
  return st;
}

}  // namespace pact
