#include "coordinator/coordinator.h"

#include <algorithm>

#include <glog/logging.h>

#include "common/crash_point.h"
#include "common/txn_id.h"

namespace pact {
namespace {

// The reason recorded for a transaction rolled back at its deadline; commit
// reports it as TIMED_OUT rather than a plain abort.
const char kDeadlineReason[] = "transaction timed out: its deadline passed before commit";

std::string JoinNames(const std::map<std::string, ParticipantRecord>& registry) {
  std::string out;
  for (const auto& [name, record] : registry) out += (out.empty() ? "" : ", ") + name;
  return out.empty() ? "none" : out;
}

}  // namespace

Coordinator::Coordinator(CoordinatorOptions options, Journal* journal, Participants* participants,
                         CoordinatorMetrics* metrics)
    : options_(std::move(options)), journal_(journal), participants_(participants) {
  if (metrics == nullptr) {
    own_metrics_ = std::make_unique<CoordinatorMetrics>();
    metrics = own_metrics_.get();
  }
  metrics_ = metrics;
  protocol_ = std::make_unique<TwoPhaseCommit>(
      options_.protocol, options_.runtime, journal_, participants_,
      [this](const std::shared_ptr<Txn>& txn) { OnFinished(txn); },
      metrics_->heuristic_mixes);
  metrics_->registry.AddCallbackGauge(
      "pact_txns_open", "Transactions begun and not yet committed or aborted.", [this] {
        return static_cast<int64_t>(ListTransactions({TxnState::kActive, TxnState::kPreparing,
                                                      TxnState::kCommitting,
                                                      TxnState::kAborting})
                                        .size());
      });
  metrics_->registry.AddCallbackGauge(
      "pact_in_doubt_branches",
      "Branches told to commit that have not acknowledged yet (retried with backoff).", [this] {
        int64_t n = 0;
        for (const auto& t : ListTransactions({TxnState::kCommitting})) {
          for (const auto& b : t.branches) n += b.state == BranchState::kCommitPending;
        }
        return n;
      });
  metrics_->registry.AddCallbackGauge(
      "pact_pending_commit_retries", "Transactions whose commit is waiting for a retry.",
      [this] { return static_cast<int64_t>(protocol_->PendingRetries()); });
}

Coordinator::~Coordinator() { Stop(); }

Status Coordinator::Start() {
  if (!IsValidName(options_.name)) {
    return Status::InvalidArgument("coordinator name '" + options_.name +
                                   "' must be 1-64 of [A-Za-z0-9_-]");
  }
  ASSIGN_OR_RETURN(int64_t epoch, journal_->RaiseEpoch());
  epoch_ = epoch;
  participants_->SetFence({options_.name, epoch});
  ASSIGN_OR_RETURN(auto registered, journal_->LoadParticipants());
  ASSIGN_OR_RETURN(auto unfinished, journal_->LoadUnfinished());
  {
    // Participants may register already: the port is bound before Start.
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& p : registered) {
      registry_[p.name] = p;
      participants_->SetEndpoint(p.name, p.host, p.port);
    }
    for (const auto& record : unfinished) {
      auto txn = std::make_shared<Txn>(record.txn_id, options_.default_txn_timeout_ms,
                                       TxnState::kCommitting, clock()->Now());
      for (const auto& participant : record.branches) {
        // All the COMMIT record says: it voted COMMIT and must hear the commit.
        txn->branches.push_back(BranchProgress{participant, /*opening=*/"", Vote::kCommit,
                                               BranchState::kCommitPending, /*attempts=*/0,
                                               /*last_error=*/""});
      }
      txns_[record.txn_id] = txn;
    }
  }
  LOG(INFO) << "coordinator " << options_.name << " epoch " << epoch << ": "
            << unfinished.size() << " unfinished commit decisions, " << registered.size()
            << " registered participants";
  decisions_loaded_ = true;
  RETURN_NOT_OK(Recover());
  if (options_.runtime.background_threads) {
    deadline_thread_ = std::thread([this] { DeadlineLoop(); });
  }
  ready_ = true;
  return Status::Ok();
}

Status Coordinator::Recover() {
  std::vector<std::shared_ptr<Txn>> committing;
  std::map<std::string, ParticipantRecord> registry;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& [id, txn] : txns_) committing.push_back(txn);
    registry = registry_;
  }
  for (const auto& txn : committing) protocol_->ResumeCommit(txn);

  // Presumed abort: a prepared branch of ours without a COMMIT record was
  // never decided, so it is rolled back.
  for (const auto& [name, record] : registry) {
    auto prepared = participants_->Recover(name);
    if (prepared.status().code() == StatusCode::kFenced) {
      // The epoch just raised is not the newest: another run of this
      // coordinator is deciding (on another copy of the journal). Serving
      // now would presume-abort its transactions.
      return prepared.status().WithContext("participant " + name +
                                           " knows a newer run of coordinator " +
                                           options_.name + "; refusing to start");
    }
    if (!prepared.ok()) {
      LOG(WARNING) << "recovery: participant " << name << " unreachable ("
                   << prepared.status().ToString()
                   << "); it will ask about its prepared branches itself";
      continue;
    }
    for (const auto& branch : *prepared) {
      auto id = TxnId::Parse(branch.txn_id);
      if (!id.ok() || id->coordinator != options_.name) continue;
      {
        std::lock_guard<std::mutex> lock(mu_);
        if (txns_.count(branch.txn_id) > 0) continue;  // COMMITTING: re-driven above
      }
      Status st = participants_->Rollback(name, branch.txn_id);
      LOG(WARNING) << "recovery: txn " << branch.txn_id << " ABORTED participants=" << name
                   << " reason=\"prepared without a commit record (presumed abort)\""
                   << (st.ok() ? "" : " rollback failed: " + st.ToString());
    }
  }
  return Status::Ok();
}

void Coordinator::Stop() {
  {
    std::lock_guard<std::mutex> lock(stop_mu_);
    stopping_ = true;
  }
  stop_cv_.notify_all();
  if (deadline_thread_.joinable()) deadline_thread_.join();
  protocol_->Stop();
}

Result<BeginInfo> Coordinator::Begin(int64_t timeout_ms) {
  if (!ready_) return Status::Unavailable("coordinator is recovering; try again shortly");
  if (draining_) return Status::Unavailable("coordinator is shutting down");
  if (!protocol_->deciding()) return protocol_->WhyNotDeciding();
  if (timeout_ms <= 0) timeout_ms = options_.default_txn_timeout_ms;
  if (timeout_ms > options_.max_txn_timeout_ms) {
    return Status::InvalidArgument("timeout " + std::to_string(timeout_ms) +
                                   " ms exceeds the maximum of " +
                                   std::to_string(options_.max_txn_timeout_ms) + " ms");
  }
  TxnId id{options_.name, epoch_, next_seq_++};
  auto txn = std::make_shared<Txn>(id.ToString(), timeout_ms, TxnState::kActive, clock()->Now());
  {
    std::lock_guard<std::mutex> lock(mu_);
    txns_[txn->id] = txn;
    deadlines_.emplace(txn->deadline, txn->id);
  }
  metrics_->txns_begun->Add();
  CrashPoint("after_begin");
  return BeginInfo{txn->id, timeout_ms};
}

Result<std::shared_ptr<Txn>> Coordinator::Find(const std::string& txn_id) {
  ASSIGN_OR_RETURN(TxnId id, TxnId::Parse(txn_id));
  if (!ready_) return Status::Unavailable("coordinator is recovering; ask again shortly");
  if (id.coordinator != options_.name) {
    return Status::NotFound("transaction " + txn_id + " belongs to coordinator '" +
                            id.coordinator + "', not to this one ('" + options_.name + "')");
  }
  bool reserved;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = txns_.find(txn_id);
    if (it != txns_.end()) return it->second;
    reserved = id.epoch == epoch_ && reserved_.IsUnused(id.seq);
  }
  if (id.epoch > epoch_ || (id.epoch == epoch_ && id.seq >= next_seq_)) {
    return Status::NotFound("unknown transaction " + txn_id + ": never begun");
  }
  if (id.epoch == epoch_) {
    if (reserved) {
      return Status::NotFound("transaction " + txn_id +
                              " is a reserved id not committed or rolled back yet (a client "
                              "begins from reserved ids; the coordinator hears of it then)");
    }
    return Status::NotFound("transaction " + txn_id +
                            " finished and is no longer remembered (only the last " +
                            std::to_string(options_.finished_txns_kept) + " are)");
  }
  return Status::NotFound("transaction " + txn_id + " is from an earlier run (epoch " +
                          std::to_string(id.epoch) +
                          ") and has no commit record: it aborted, or committed everywhere "
                          "and was forgotten");
}

Result<IdBlock> Coordinator::ReserveIds(int count) {
  if (!ready_) return Status::Unavailable("coordinator is recovering; try again shortly");
  if (draining_) return Status::Unavailable("coordinator is shutting down");
  if (!protocol_->deciding()) return protocol_->WhyNotDeciding();
  if (count < 1 || count > options_.max_id_block) {
    return Status::InvalidArgument("a block of " + std::to_string(count) +
                                   " ids; ask for 1 to " + std::to_string(options_.max_id_block));
  }
  IdBlock block{options_.name,
                epoch_,
                /*first_seq=*/0,
                count,
                options_.id_block_valid_ms,
                options_.default_txn_timeout_ms,
                options_.max_txn_timeout_ms};
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (reserved_.unused() + count > options_.max_unused_ids) {
      return Status::Busy(std::to_string(reserved_.unused()) +
                          " reserved transaction ids are not used yet; begin with those first");
    }
    block.first_seq = next_seq_.fetch_add(count);
    // The last first commit of these ids can arrive once the last is begun
    // (valid_ms) and has run its longest (the maximum timeout); the slack
    // covers a late answer to this call and the commit's own travel.
    constexpr int64_t kSlackMs = 60000;
    reserved_.Add(block.first_seq, count,
                  clock()->Now() + Millis(options_.id_block_valid_ms +
                                          options_.max_txn_timeout_ms + kSlackMs));
  }
  CrashPoint("after_begin");  // the client's Begin, for the ids it reserves
  return block;
}

Result<std::shared_ptr<Txn>> Coordinator::FindOrStart(const std::string& txn_id) {
  Result<TxnId> id = TxnId::Parse(txn_id);
  if (id.ok() && ready_ && id->coordinator == options_.name && id->epoch == epoch_) {
    // One look under one lock (every commit of a reserved id comes here): in
    // the table, or the id's first use, which makes it a transaction.
    std::lock_guard<std::mutex> lock(mu_);
    auto it = txns_.find(txn_id);
    if (it != txns_.end()) return it->second;
    if (reserved_.Use(id->seq)) {
      auto txn = std::make_shared<Txn>(txn_id, options_.default_txn_timeout_ms,
                                       TxnState::kActive, clock()->Now());
      txns_[txn_id] = txn;
      metrics_->txns_begun->Add();
      return txn;
    }
  }
  return Find(txn_id);  // a transaction begun otherwise, or why there is none
}

Status Coordinator::CheckBranches(const std::vector<EnlistedBranch>& branches,
                                  bool for_commit) {
  if (branches.size() > options_.max_branches) {
    return Status::InvalidArgument(std::to_string(branches.size()) +
                                   " branches; a transaction has at most " +
                                   std::to_string(options_.max_branches));
  }
  // A rollback tells what it can: one a participant removed since cannot
  // hear it and rolls back at its deadline.
  if (!for_commit) return Status::Ok();
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& b : branches) {
    if (registry_.count(b.participant) == 0) {
      return Status::NotFound("unknown participant '" + b.participant +
                              "'; registered: " + JoinNames(registry_));
    }
    if (b.opening.empty()) {
      return Status::InvalidArgument("the branch at " + b.participant +
                                     " names no opening (the branch name execute answered)");
    }
  }
  return Status::Ok();
}

void Coordinator::AttachBranches(Txn& txn, const std::vector<EnlistedBranch>& branches) {
  std::lock_guard<std::mutex> lock(txn.mu);
  if (txn.state != TxnState::kActive || !txn.branches.empty()) return;
  for (const auto& b : branches) {
    BranchProgress* known = txn.FindBranch(b.participant);
    if (known == nullptr) {
      BranchProgress added;
      added.participant = b.participant;
      added.opening = b.opening;
      txn.branches.push_back(added);
    } else if (known->opening != b.opening) {
      // The participant holds no trace of the first opening (it restarted, or
      // rolled the branch back): committing now would commit half the work.
      txn.doomed = "participant " + b.participant +
                   " lost the transaction's earlier work there (it restarted or rolled the "
                   "branch back) and opened the branch again";
      known->last_error = "opened twice: " + known->opening + ", then " + b.opening;
      LOG(WARNING) << "txn " << txn.id << " doomed: " << txn.doomed;
    }
  }
}

Result<CommitOutcome> Coordinator::Commit(const std::string& txn_id,
                                          const std::vector<EnlistedBranch>& branches,
                                          CommitReturn when) {
  TimePoint start = clock()->Now();
  Result<CommitOutcome> outcome = Decide(txn_id, branches, when);
  double seconds = std::chrono::duration<double>(clock()->Now() - start).count();
  metrics_->commit_latency_seconds->Observe(seconds);
  int64_t micros = static_cast<int64_t>(seconds * 1e6);
  int64_t seen = max_commit_latency_us_.load();
  while (micros > seen && !max_commit_latency_us_.compare_exchange_weak(seen, micros)) {
  }
  return outcome;
}

Result<CommitOutcome> Coordinator::Decide(const std::string& txn_id,
                                          const std::vector<EnlistedBranch>& branches,
                                          CommitReturn when) {
  RETURN_NOT_OK(CheckBranches(branches, /*for_commit=*/true));
  ASSIGN_OR_RETURN(auto txn, FindOrStart(txn_id));
  AttachBranches(*txn, branches);
  std::string must_abort;
  {
    std::lock_guard<std::mutex> lock(txn->mu);
    must_abort = txn->doomed;
  }
  if (must_abort.empty() && clock()->Now() >= txn->deadline) must_abort = kDeadlineReason;
  if (must_abort.empty() && !protocol_->deciding()) must_abort = protocol_->WhyNotDeciding().message();
  if (!must_abort.empty()) {
    if (protocol_->Claim(txn, TxnState::kAborting, must_abort)) protocol_->Abort(txn);
  } else if (protocol_->Claim(txn, TxnState::kPreparing)) {
    return protocol_->Commit(txn, when);
  }
  // Decided, or being decided by another caller: report that decision.
  std::unique_lock<std::mutex> lock(txn->mu);
  int wait_ms = DecidingWaitMs();
  if (!txn->changed.wait_for(lock, Millis(wait_ms),
                             [&] { return txn->state != TxnState::kPreparing; })) {
    return Status::Unavailable("transaction " + txn_id + " is still being decided; ask again");
  }
  switch (txn->state) {
    case TxnState::kCommitting:
    case TxnState::kCommitted:
      return CommitOutcome{TxnState::kCommitted, ""};
    case TxnState::kAborting:
    case TxnState::kAborted:
      if (txn->reason == kDeadlineReason) return Status::TimedOut(txn_id + ": " + txn->reason);
      return CommitOutcome{TxnState::kAborted, txn->reason};
    case TxnState::kActive:
    case TxnState::kPreparing:
      break;
  }
  return Status::Internal("transaction " + txn_id + " in unexpected state");
}

int Coordinator::DecidingWaitMs() const {
  // Single-threaded (the simulation), nobody else can be deciding it.
  if (!options_.runtime.background_threads) return 0;
  return options_.protocol.prepare_timeout_ms * 2 + 1000;
}

Status Coordinator::Rollback(const std::string& txn_id,
                             const std::vector<EnlistedBranch>& branches) {
  RETURN_NOT_OK(CheckBranches(branches, /*for_commit=*/false));
  ASSIGN_OR_RETURN(auto txn, FindOrStart(txn_id));
  AttachBranches(*txn, branches);
  if (protocol_->Claim(txn, TxnState::kAborting, "rolled back by the application")) {
    protocol_->Abort(txn);
    return Status::Ok();
  }
  std::unique_lock<std::mutex> lock(txn->mu);
  int wait_ms = DecidingWaitMs();
  txn->changed.wait_for(lock, Millis(wait_ms),
                        [&] { return txn->state != TxnState::kPreparing; });
  if (txn->state == TxnState::kAborting || txn->state == TxnState::kAborted) {
    return Status::Ok();
  }
  return Status::FailedPrecondition("transaction " + txn_id + " is " +
                                    TxnStateName(txn->state) + "; it can no longer roll back");
}

TxnSnapshot Coordinator::Snapshot(Txn& txn) {
  std::lock_guard<std::mutex> lock(txn.mu);
  TxnSnapshot s;
  s.id = txn.id;
  s.state = txn.state;
  s.branches = txn.branches;
  s.age_ms = -clock()->MillisUntil(txn.begun);
  s.deadline_in_ms = clock()->MillisUntil(txn.deadline);
  s.reason = txn.reason;
  return s;
}

Result<TxnSnapshot> Coordinator::GetStatus(const std::string& txn_id) {
  ASSIGN_OR_RETURN(auto txn, Find(txn_id));
  return Snapshot(*txn);
}

Result<Outcome> Coordinator::Inquire(const std::string& txn_id) {
  ASSIGN_OR_RETURN(TxnId id, TxnId::Parse(txn_id));
  if (id.coordinator != options_.name) {
    return Status::NotFound("transaction " + txn_id + " belongs to coordinator '" +
                            id.coordinator + "'");
  }
  // While recovering, a transaction of an earlier run can be answered once
  // every recorded decision is in the table: an unprepared branch of it may
  // hold the locks a recovering commit waits for, and must not wait for the
  // recovery in turn.
  if (!ready_ && !(decisions_loaded_ && id.epoch < epoch_)) {
    return Status::Unavailable("coordinator is recovering; ask again shortly");
  }
  std::shared_ptr<Txn> txn;
  {
    // One look under one lock: a reserved id becomes a transaction in the
    // table in one step (FindOrStart), so it is seen as one or the other.
    std::lock_guard<std::mutex> lock(mu_);
    auto it = txns_.find(txn_id);
    if (it != txns_.end()) {
      txn = it->second;
    } else {
      // A reserved id not committed or rolled back yet: its branches are
      // still executing. Otherwise presumed abort: every undecided-or-
      // committing transaction is in the table (loaded from the journal at
      // start), so absence means aborted.
      bool reserved = id.epoch == epoch_ && reserved_.IsUnused(id.seq);
      return reserved ? Outcome::kActive : Outcome::kAborted;
    }
  }
  std::lock_guard<std::mutex> lock(txn->mu);
  switch (txn->state) {
    case TxnState::kActive:
    case TxnState::kPreparing:
      return Outcome::kActive;
    case TxnState::kCommitting:
    case TxnState::kCommitted:
      return Outcome::kCommitted;
    case TxnState::kAborting:
    case TxnState::kAborted:
      break;
  }
  return Outcome::kAborted;
}

std::vector<TxnSnapshot> Coordinator::ListTransactions(const std::vector<TxnState>& states) {
  std::vector<std::shared_ptr<Txn>> all;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& [id, txn] : txns_) all.push_back(txn);
  }
  std::vector<TxnSnapshot> out;
  for (const auto& txn : all) {
    TxnSnapshot s = Snapshot(*txn);
    if (states.empty() || std::find(states.begin(), states.end(), s.state) != states.end()) {
      out.push_back(std::move(s));
    }
  }
  std::sort(out.begin(), out.end(),
            [](const TxnSnapshot& a, const TxnSnapshot& b) { return a.age_ms > b.age_ms; });
  return out;
}

Status Coordinator::RegisterParticipant(const ParticipantRecord& participant) {
  if (!IsValidName(participant.name)) {
    return Status::InvalidArgument("participant name '" + participant.name +
                                   "' must be 1-64 of [A-Za-z0-9_-]");
  }
  if (participant.host.empty() || participant.port <= 0 || participant.port > 65535) {
    return Status::InvalidArgument("participant " + participant.name +
                                   " needs a host and a port in 1-65535");
  }
  std::lock_guard<std::mutex> lock(mu_);
  auto it = registry_.find(participant.name);
  bool unchanged = it != registry_.end() && it->second.host == participant.host &&
                   it->second.port == participant.port &&
                   it->second.backend == participant.backend;
  if (unchanged) return Status::Ok();
  // Durable before use: recovery after a crash must know every participant
  // that may hold a branch.
  RETURN_NOT_OK(journal_->PutParticipant(participant));
  registry_[participant.name] = participant;
  participants_->SetEndpoint(participant.name, participant.host, participant.port);
  LOG(INFO) << "participant " << participant.name << " (" << participant.backend << ") at "
            << participant.host << ":" << participant.port;
  return Status::Ok();
}

Status Coordinator::RemoveParticipant(const std::string& name, bool force) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (registry_.count(name) == 0) {
      return Status::NotFound("unknown participant '" + name + "'; registered: " +
                              JoinNames(registry_));
    }
  }
  for (const TxnSnapshot& t : ListTransactions({TxnState::kActive, TxnState::kPreparing,
                                                TxnState::kCommitting, TxnState::kAborting})) {
    for (const auto& b : t.branches) {
      if (b.participant == name) {
        return Status::FailedPrecondition("participant " + name + " has a branch in " + t.id +
                                          " (" + TxnStateName(t.state) +
                                          "); finish or resolve it before removing " + name);
      }
    }
  }
  if (!force) {
    auto held = participants_->ListBranches(name);
    if (!held.ok()) {
      return Status::FailedPrecondition("cannot ask " + name + " whether it holds branches (" +
                                        held.status().ToString() +
                                        "); start it, or remove with force");
    }
    if (!held->empty()) {
      return Status::FailedPrecondition("participant " + name + " still holds " +
                                        std::to_string(held->size()) + " branch(es), e.g. " +
                                        held->front().txn_id + "; resolve them first");
    }
  }
  std::lock_guard<std::mutex> lock(mu_);
  RETURN_NOT_OK(journal_->DeleteParticipant(name));
  registry_.erase(name);
  LOG(INFO) << "participant " << name << " removed";
  return Status::Ok();
}

Status Coordinator::RetryCommit(const std::string& txn_id) {
  ASSIGN_OR_RETURN(auto txn, Find(txn_id));
  {
    std::lock_guard<std::mutex> lock(txn->mu);
    if (txn->state != TxnState::kCommitting) {
      return Status::FailedPrecondition("transaction " + txn_id + " is " +
                                        TxnStateName(txn->state) +
                                        "; only COMMITTING transactions have commits to retry");
    }
  }
  protocol_->RetryNow(txn_id);
  return Status::Ok();
}

Status Coordinator::ReportHeuristic(HeuristicRecord heuristic) {
  // The participant reports until acknowledged, and the commit path may have
  // journaled the same mix already: count and log it once. Checked before
  // asking the outcome, which presumes ABORTED once a transaction is forgotten.
  ASSIGN_OR_RETURN(auto known, journal_->LoadHeuristics());
  for (const auto& h : known) {
    if (h.txn_id == heuristic.txn_id && h.participant == heuristic.participant) {
      return Status::Ok();
    }
  }
  ASSIGN_OR_RETURN(Outcome outcome, Inquire(heuristic.txn_id));
  if (outcome == Outcome::kActive) {
    return Status::FailedPrecondition("transaction " + heuristic.txn_id +
                                      " is not decided yet");
  }
  bool committed = outcome == Outcome::kCommitted;
  if (committed == heuristic.committed) return Status::Ok();  // they agree: no mix
  heuristic.decision = committed ? "COMMIT" : "ABORT";
  heuristic.at_ms = clock()->WallMillis();
  {
    // Show it on the transaction too, and stop telling that branch.
    std::shared_ptr<Txn> txn;
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = txns_.find(heuristic.txn_id);
      if (it != txns_.end()) txn = it->second;
    }
    if (txn) {
      std::lock_guard<std::mutex> lock(txn->mu);
      if (BranchProgress* branch = txn->FindBranch(heuristic.participant)) {
        txn->MoveBranch(branch, BranchState::kHeuristicMixed);
        branch->last_error = "reported by the participant: an operator " +
                             std::string(heuristic.committed ? "committed" : "rolled back") +
                             " this branch";
      }
    }
  }
  metrics_->heuristic_mixes->Add();
  LOG(ERROR) << "txn " << heuristic.txn_id << " HEURISTIC MIX participant="
             << heuristic.participant << " decided=" << heuristic.decision
             << " operator " << (heuristic.committed ? "committed" : "rolled back");
  return journal_->PutHeuristic(heuristic);
}

Status Coordinator::ForgetHeuristic(const std::string& txn_id) {
  ASSIGN_OR_RETURN(auto known, journal_->LoadHeuristics());
  for (const auto& h : known) {
    if (h.txn_id != txn_id) continue;
    // So that the participant does not report it again. Best effort: one
    // that is down reports it again later, and it shows up again.
    Status st = participants_->ForgetHeuristic(h.participant, txn_id);
    LOG_IF(WARNING, !st.ok()) << "txn " << txn_id << ": " << h.participant
                              << " did not forget its heuristic record: " << st.ToString();
  }
  RETURN_NOT_OK(journal_->ForgetHeuristics(txn_id));
  LOG(INFO) << "txn " << txn_id << ": heuristic records forgotten by an operator";
  return Status::Ok();
}

size_t Coordinator::Drain(int grace_ms) {
  draining_ = true;
  for (const TxnSnapshot& t : ListTransactions({TxnState::kActive})) {
    auto txn = Find(t.id);
    if (txn.ok() && protocol_->Claim(*txn, TxnState::kAborting, "coordinator shutting down")) {
      protocol_->Abort(*txn);
    }
  }
  const std::vector<TxnState> open = {TxnState::kActive, TxnState::kPreparing,
                                      TxnState::kCommitting, TxnState::kAborting};
  TimePoint deadline = SteadyClock::now() + Millis(grace_ms);
  size_t left = ListTransactions(open).size();
  while (left > 0 && SteadyClock::now() < deadline) {
    std::this_thread::sleep_for(Millis(20));
    left = ListTransactions(open).size();
  }
  LOG_IF(WARNING, left > 0) << left << " transactions still open at shutdown; "
                            << "their decisions are in the journal";
  return left;
}

std::vector<ParticipantRecord> Coordinator::ListParticipants() {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<ParticipantRecord> out;
  for (const auto& [name, record] : registry_) out.push_back(record);
  return out;
}

std::map<std::string, int64_t> Coordinator::Stats() {
  JournalStats journal = journal_->Stats();
  HistogramSnapshot latency = metrics_->commit_latency_seconds->Snapshot();
  auto micros = [&](double q) { return static_cast<int64_t>(latency.Percentile(q) * 1e6); };
  return {{"txns_begun", metrics_->txns_begun->value()},
          {"txns_committed", metrics_->txns_committed->value()},
          {"txns_aborted", metrics_->txns_aborted->value()},
          {"txns_timed_out", metrics_->txns_timed_out->value()},
          {"heuristic_mixes", metrics_->heuristic_mixes->value()},
          {"pending_commit_retries", static_cast<int64_t>(protocol_->PendingRetries())},
          {"journal_commit_records", journal.commit_records},
          {"journal_fsync_batches", journal.fsync_batches},
          {"commit_latency_p50_us", micros(0.50)},
          {"commit_latency_p95_us", micros(0.95)},
          {"commit_latency_p99_us", micros(0.99)},
          {"commit_latency_max_us", max_commit_latency_us_.load()},
          {"commit_latency_count", static_cast<int64_t>(latency.count)}};
}

void Coordinator::OnFinished(const std::shared_ptr<Txn>& txn) {
  {
    std::lock_guard<std::mutex> lock(txn->mu);
    if (txn->state == TxnState::kCommitted) {
      metrics_->txns_committed->Add();
    } else {
      metrics_->txns_aborted->Add();
      if (txn->reason == kDeadlineReason) metrics_->txns_timed_out->Add();
    }
  }
  std::lock_guard<std::mutex> lock(mu_);
  finished_.push_back(txn->id);
  while (finished_.size() > options_.finished_txns_kept) {
    txns_.erase(finished_.front());
    finished_.pop_front();
  }
}

void Coordinator::Tick() {
  CheckDeadlines();
  protocol_->Tick();
}

void Coordinator::CheckDeadlines() {
  std::vector<std::shared_ptr<Txn>> expired;
  {
    std::lock_guard<std::mutex> lock(mu_);
    TimePoint now = clock()->Now();
    reserved_.DropExpired(now);
    while (!deadlines_.empty() && deadlines_.begin()->first <= now) {
      auto it = txns_.find(deadlines_.begin()->second);
      if (it != txns_.end()) expired.push_back(it->second);
      deadlines_.erase(deadlines_.begin());
    }
  }
  for (const auto& txn : expired) {
    if (protocol_->Claim(txn, TxnState::kAborting, kDeadlineReason)) protocol_->Abort(txn);
  }
}

void Coordinator::DeadlineLoop() {
  std::unique_lock<std::mutex> stop_lock(stop_mu_);
  while (!stop_cv_.wait_for(stop_lock, Millis(options_.deadline_check_interval_ms),
                            [this] { return stopping_; })) {
    stop_lock.unlock();
    CheckDeadlines();
    stop_lock.lock();
  }
}

}  // namespace pact
