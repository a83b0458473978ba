#include "client/pact_client.h"

#include <algorithm>

#include "common/clock.h"
#include "common/txn_id.h"
#include "gen-cpp/Coordinator.h"
#include "gen-cpp/Participant.h"
#include "rpc/rpc_convert.h"
#include "zookeeper/shard_directory.h"

namespace pact {

Result<std::unique_ptr<Client>> Client::Connect(const std::string& coordinator,
                                                ClientOptions options) {
  ASSIGN_OR_RETURN(auto coordinators, MakeCoordinatorRoutes(coordinator, options.timeouts,
                                                            options.credentials));
  return std::unique_ptr<Client>(new Client(std::move(coordinators), options));
}

Client::Client(std::unique_ptr<CoordinatorRoutes> coordinators, ClientOptions options)
    : options_(options), coordinators_(std::move(coordinators)) {}

Client::~Client() = default;

Result<std::unique_ptr<Transaction>> Client::Begin(int64_t timeout_ms) {
  ASSIGN_OR_RETURN(std::vector<std::string> shards, coordinators_->ShardsFor(""));
  return BeginOn(shards, timeout_ms);
}

Result<std::unique_ptr<Transaction>> Client::BeginFor(const std::string& key,
                                                      int64_t timeout_ms) {
  if (key.empty()) return Status::InvalidArgument("BeginFor needs a key; Begin takes none");
  ASSIGN_OR_RETURN(std::vector<std::string> shards, coordinators_->ShardsFor(key));
  return BeginOn(shards, timeout_ms);
}

Result<std::unique_ptr<Transaction>> Client::BeginOn(const std::vector<std::string>& shards,
                                                     int64_t timeout_ms) {
  Status st = Status::Unavailable("no shard to begin on");
  for (const std::string& shard : shards) {
    std::string id;
    int64_t timeout = 0;
    Result<CoordinatorRoute*> coordinator = coordinators_->To(shard);
    st = coordinator.ok() ? NextId(*coordinator, timeout_ms, &id, &timeout)
                          : coordinator.status();
    if (st.ok()) {
      return std::unique_ptr<Transaction>(
          new Transaction(this, *coordinator, std::move(id), SteadyClock::now() + Millis(timeout)));
    }
    // Only a shard that cannot be reached now is passed over.
    if (st.code() != StatusCode::kUnavailable) break;
  }
  return st;
}

Status Client::NextId(CoordinatorRoute* coordinator, int64_t timeout_ms, std::string* txn_id,
                      int64_t* effective_timeout_ms) {
  std::unique_lock<std::mutex> lock(mu_);
  // A map's entries stay where they are: valid while the lock is dropped.
  IdBlock* ids = &ids_[coordinator];
  auto usable = [ids] { return ids->next < ids->end && SteadyClock::now() < ids->valid_until; };
  if (!usable()) {
    lock.unlock();
    // Valid from before the ask: the coordinator counts from its answer, so
    // this side never uses an id later than the coordinator allows.
    TimePoint asked = SteadyClock::now();
    rpc::IdBlock block;
    const int count = std::max(1, options_.id_block);
    RETURN_NOT_OK(
        coordinator->Call([&](rpc::CoordinatorClient& c) { c.reserveTxnIds(block, count); }));
    lock.lock();
    if (!usable()) {  // or another thread's block arrived first: use that one
      *ids = IdBlock{block.coordinator + "." + std::to_string(block.epoch) + ".",
                     block.first_seq,
                     block.first_seq + block.count,
                     asked + Millis(block.valid_ms),
                     block.default_timeout_ms,
                     block.max_timeout_ms};
    }
  }
  int64_t timeout = timeout_ms > 0 ? timeout_ms : ids->default_timeout_ms;
  if (timeout > ids->max_timeout_ms) {
    return Status::InvalidArgument("timeout " + std::to_string(timeout) +
                                   " ms exceeds the maximum of " +
                                   std::to_string(ids->max_timeout_ms) + " ms");
  }
  *txn_id = ids->prefix + std::to_string(ids->next++);
  *effective_timeout_ms = timeout;
  return Status::Ok();
}

void Client::DropIdBlock(CoordinatorRoute* coordinator) {
  std::lock_guard<std::mutex> lock(mu_);
  ids_[coordinator] = IdBlock{};
}

Result<TxnState> Client::GetState(const std::string& txn_id) {
  // A malformed id goes to a fixed coordinator as it is: it says what is wrong.
  Result<TxnId> id = TxnId::Parse(txn_id);
  ASSIGN_OR_RETURN(CoordinatorRoute * coordinator,
                   coordinators_->To(id.ok() ? id->coordinator : ""));
  rpc::TxnStatus status;
  RETURN_NOT_OK(coordinator->Call([&](rpc::CoordinatorClient& c) { c.status(status, txn_id); }));
  return TxnStateFromRpc(status.state);
}

Result<std::shared_ptr<Client::ParticipantPool>> Client::PoolFor(const std::string& participant,
                                                                 CoordinatorRoute* coordinator) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = participants_.find(participant);
    if (it != participants_.end()) return it->second;
  }
  std::vector<rpc::ParticipantEndpoint> registered;
  RETURN_NOT_OK(
      coordinator->Call([&](rpc::CoordinatorClient& c) { c.listParticipants(registered); }));
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
    // Best effort: if this fails, each branch rolls back at its deadline.
    (void)Rollback();
  }
}

std::vector<rpc::EnlistedBranch> Transaction::WireBranches(bool opened_only) const {
  std::vector<rpc::EnlistedBranch> out;
  for (const auto& [participant, opening] : openings_) {
    if (opened_only && opening.empty()) continue;
    rpc::EnlistedBranch& wire = out.emplace_back();
    wire.participant = participant;
    wire.branch = opening;
  }
  return out;
}

void Transaction::NoteOpening(const std::string& participant, const std::string& opening) {
  if (opening.empty()) return;
  std::string& known = openings_[participant];
  if (known.empty()) {
    known = opening;
  } else if (known != opening && doubtful_.empty()) {
    doubtful_ = "participant " + participant + " lost the transaction's earlier work there (" +
                "it restarted or rolled the branch back: opened as " + known + ", then as " +
                opening + ")";
  }
}

Status Transaction::RollBackAnd(Status why) {
  Status rolled_back = Rollback();
  if (!rolled_back.ok()) why = why.WithContext("rollback: " + rolled_back.message());
  return why;
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

Status Transaction::Send(RpcPool<rpc::ParticipantClient>& pool, const std::string& sql,
                         const std::vector<rpc::Value>& params, rpc::ExecuteResult* result,
                         std::string* opening) {
  const int64_t left_ms = MillisUntil(deadline_);
  if (left_ms <= 0) return Status::TimedOut("transaction " + id_ + " timed out");
  Status st = pool.Call([&](rpc::ParticipantClient& c) {
    try {
      c.execute(*result, id_, sql, params, left_ms);
    } catch (const rpc::PactError& e) {
      *opening = e.branch;
      throw;
    }
  });
  if (st.ok()) *opening = result->branch;
  return st;
}

Result<QueryResult> Transaction::Execute(const std::string& participant, const std::string& sql,
                                         const std::vector<SqlValue>& params) {
  RETURN_NOT_OK(RequireOpen());
  ASSIGN_OR_RETURN(auto pool, client_->PoolFor(participant, coordinator_));
  const std::vector<rpc::Value> wire_params = ToRpcValues(params);
  rpc::ExecuteResult result;
  std::string opening;
  openings_.emplace(participant, "");  // sent there: a rollback tells it
  Status st = Send(*pool, sql, wire_params, &result, &opening);
  if (st.code() == StatusCode::kFenced) {
    // The id is of a coordinator run that was replaced: that run's ids can
    // never commit. While no branch of the transaction opened anywhere,
    // nothing of it exists yet, so the statement goes again under a fresh
    // id; otherwise the transaction can only roll back.
    client_->DropIdBlock(coordinator_);
    const bool untouched = doubtful_.empty() &&
                           std::all_of(openings_.begin(), openings_.end(),
                                       [](const auto& o) { return o.second.empty(); });
    int64_t unused_timeout = 0;
    if (untouched &&
        client_->NextId(coordinator_, /*timeout_ms=*/0, &id_, &unused_timeout).ok()) {
      openings_ = {{participant, ""}};
      st = Send(*pool, sql, wire_params, &result, &opening);
    }
  }
  if (st.code() == StatusCode::kUnavailable && doubtful_.empty()) {
    doubtful_ = "statement on " + participant + " may or may not have run (" + st.message() + ")";
  }
  if (st.code() == StatusCode::kFenced) {
    if (doubtful_.empty()) doubtful_ = st.message();
    return Status::Aborted("transaction " + id_ + " can never commit: " + st.message());
  }
  const bool had_no_doubt = doubtful_.empty();
  NoteOpening(participant, opening);
  if (had_no_doubt && !doubtful_.empty()) {
    return Status::Aborted("transaction " + id_ + " can only roll back: " + doubtful_);
  }
  RETURN_NOT_OK(st);
  return FromRpcResult(result);
}

Status Transaction::Commit() {
  RETURN_NOT_OK(RequireOpen());
  if (!doubtful_.empty()) {
    // Committing would commit whatever that statement did or did not do, or
    // half the work.
    return RollBackAnd(Status::Aborted("transaction " + id_ + " rolled back: " + doubtful_));
  }
  if (MillisUntil(deadline_) <= 0) {
    return RollBackAnd(
        Status::TimedOut("transaction " + id_ + " timed out: its deadline passed before commit"));
  }
  // A participant that answered without opening a branch holds nothing.
  const std::vector<rpc::EnlistedBranch> branches = WireBranches(/*opened_only=*/true);
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
    st = coordinator_->Call(
        [&](rpc::CoordinatorClient& c) { c.commitTxn(result, id_, at_decision, branches); },
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
    // The coordinator may be gone: the next Begin asks it first. Branches it
    // never prepared would hold their locks until their deadline; giving
    // them up can only make the outcome an abort, and the budget spent
    // means the coordinator, if alive, decided long ago.
    client_->DropIdBlock(coordinator_);
    (void)AbandonBranches();
    phase_ = Phase::kUnknown;
    return Status::Unavailable("outcome of " + id_ + " unknown: " + st.message());
  }
  if (!st.ok()) {
    // The coordinator's answer (deadline passed, unknown id, ...): nothing
    // of this transaction committed. An unknown id may mean it restarted.
    if (st.code() == StatusCode::kNotFound) client_->DropIdBlock(coordinator_);
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
  const std::vector<rpc::EnlistedBranch> branches = WireBranches(/*opened_only=*/false);
  Status st = coordinator_->Call(
      [&](rpc::CoordinatorClient& c) { c.rollbackTxn(id_, branches); });
  if (st.code() == StatusCode::kNotFound) {
    // Of an earlier run of the coordinator (it restarted): that run's
    // transactions can never commit, and their branches roll back by
    // themselves; give them up now all the same.
    client_->DropIdBlock(coordinator_);
    (void)AbandonBranches();
    st = Status::Ok();
  }
  if (st.code() == StatusCode::kUnavailable) {
    client_->DropIdBlock(coordinator_);
    Status abandoned = AbandonBranches();
    if (abandoned.ok()) st = abandoned;
  }
  if (st.ok()) phase_ = Phase::kRolledBack;
  return st;
}

Status Transaction::AbandonBranches() {
  Status first_failure;
  for (const auto& [participant, opening] : openings_) {
    if (opening.empty()) {
      // A statement went there and no opening came back: whether a branch
      // opened is unknown; its deadline rolls it back.
      if (first_failure.ok()) first_failure = Status::Unavailable(participant + ": branch unknown");
      continue;
    }
    auto pool = client_->PoolFor(participant, coordinator_);
    Status st = pool.ok() ? (*pool)->Call([&, &opening = opening](rpc::ParticipantClient& c) {
                              c.abandon(id_, opening);
                            })
                          : pool.status();
    if (!st.ok() && first_failure.ok()) first_failure = st.WithContext(participant);
  }
  return first_failure;
}

}  // namespace pact
