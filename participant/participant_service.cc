#include "participant/participant_service.h"

#include <algorithm>

#include <glog/logging.h>

#include "common/crash_point.h"
#include "common/state_moves.h"
#include "common/txn_id.h"

namespace pact {
namespace {

Status NoSuchBranch(const std::string& txn_id) {
  return Status::NotFound("no branch of transaction " + txn_id +
                          " here (never executed here, or already finished)");
}

// Every move a branch makes here; anything else is a bug.
constexpr StateMove<BranchPhase> kPhaseMoves[] = {
    // Voted COMMIT: the backend made it durable as prepared.
    {BranchPhase::kActive, BranchPhase::kPrepared},
    // Committed in one phase; rolled back (asked to, its deadline passed, its
    // coordinator restarted, this process stops); voted READ_ONLY or ABORT;
    // or its opening failed.
    {BranchPhase::kActive, BranchPhase::kDone},
    // Committed or rolled back as its coordinator, or an operator, decided.
    {BranchPhase::kPrepared, BranchPhase::kDone},
};

}  // namespace

const char* BranchPhaseName(BranchPhase phase) {
  switch (phase) {
    case BranchPhase::kActive: return "active";
    case BranchPhase::kPrepared: return "prepared";
    case BranchPhase::kDone: return "done";
  }
  return "?";
}

bool BranchMoveAllowed(BranchPhase from, BranchPhase to) {
  return IsListedMove(kPhaseMoves, from, to);
}

ParticipantService::ParticipantService(ParticipantOptions options, Backend* backend,
                                       StateStore* state, CoordinatorLink* coordinator)
    : options_(std::move(options)),
      backend_(backend),
      state_(state),
      coordinator_(coordinator) {
  RegisterMetrics();
}

void ParticipantService::RegisterMetrics() {
  MetricsRegistry& r = metrics_.registry;
  metrics_.votes_commit = r.AddCounter("pact_participant_votes_commit_total",
                                       "Prepares answered COMMIT (durable as prepared).");
  metrics_.votes_abort = r.AddCounter("pact_participant_votes_abort_total",
                                      "Prepares answered ABORT or failed.");
  metrics_.votes_read_only =
      r.AddCounter("pact_participant_votes_read_only_total", "Prepares answered READ_ONLY.");
  metrics_.commits = r.AddCounter("pact_participant_commits_total",
                                  "Branches committed (one or two phases).");
  metrics_.rollbacks = r.AddCounter("pact_participant_rollbacks_total", "Branches rolled back.");
  metrics_.deadline_rollbacks =
      r.AddCounter("pact_participant_deadline_rollbacks_total",
                   "Unprepared branches rolled back here because their deadline passed.");
  metrics_.heuristic_decisions = r.AddCounter("pact_participant_heuristic_decisions_total",
                                              "Branches decided by an operator.");
  metrics_.fences_refused = r.AddCounter(
      "pact_participant_fences_refused_total",
      "Calls whose fence raised a coordinator's epoch without the coordinator's confirmation "
      "(forged, another coordinator, or it could not be asked).");
  auto count = [this](bool prepared) {
    int64_t n = 0;
    for (const auto& b : ListBranches()) n += b.prepared == prepared;
    return n;
  };
  r.AddCallbackGauge("pact_participant_active_branches", "Branches executing, not prepared.",
                     [count] { return count(false); });
  r.AddCallbackGauge("pact_participant_prepared_branches",
                     "Branches prepared and waiting for the decision (in doubt).",
                     [count] { return count(true); });
  r.AddCallbackGauge("pact_participant_unreconciled_heuristics",
                     "Heuristic decisions not yet reconciled with their coordinator.",
                     [this] { return static_cast<int64_t>(state_->Heuristics().size()); });
}

ParticipantService::~ParticipantService() { Stop(); }

Status ParticipantService::Start() {
  if (options_.incarnation.empty()) {
    return Status::InvalidArgument("a participant needs an incarnation (unique per start)");
  }
  ASSIGN_OR_RETURN(auto recovered, backend_->RecoverPrepared());
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& r : recovered) {
      // Ask after one interval: a coordinator that is re-driving its commits
      // at its own restart usually delivers the decision first.
      branches_[r.txn_id] =
          HeldPrepared(std::move(r.branch),
                       clock()->Now() - Millis(clock()->WallMillis() - r.prepared_at_ms),
                       clock()->Now() + Millis(options_.inquiry_interval_ms));
      LOG(INFO) << "restored prepared branch of " << r.txn_id << "; asking its coordinator";
    }
  }
  next_orphan_check_ = clock()->Now() + Millis(options_.orphan_check_interval_ms);
  if (options_.runtime.background_threads) {
    housekeeping_.emplace_back([this] {
      Loop(options_.housekeeping_interval_ms, &ParticipantService::RollBackAbandonedBranches);
    });
    housekeeping_.emplace_back([this] {
      Loop(options_.housekeeping_interval_ms, &ParticipantService::TalkToCoordinator);
    });
  }
  return Status::Ok();
}

void ParticipantService::Stop() {
  {
    std::lock_guard<std::mutex> lock(stop_mu_);
    if (stopping_) return;
    stopping_ = true;
  }
  stop_cv_.notify_all();
  for (auto& thread : housekeeping_) thread.join();
  housekeeping_.clear();
  for (const auto& [txn_id, entry] : AllEntries()) {
    std::lock_guard<std::mutex> lock(entry->mu);
    if (entry->phase != BranchPhase::kActive) continue;
    Status st;
    if (!Move(txn_id, entry.get(), BranchPhase::kDone, &Branch::Rollback, &st).ok()) continue;
    LOG(INFO) << "stopping: rolled back the unprepared branch of " << txn_id
              << (st.ok() ? "" : ": " + st.ToString());
  }
}

bool ParticipantService::registered() const {
  std::lock_guard<std::mutex> lock(mu_);
  return registered_;
}

ParticipantService::Entries ParticipantService::AllEntries() {
  std::lock_guard<std::mutex> lock(mu_);
  return Entries(branches_.begin(), branches_.end());
}

std::shared_ptr<ParticipantService::Entry> ParticipantService::Lookup(const std::string& txn_id) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = branches_.find(txn_id);
  return it == branches_.end() ? nullptr : it->second;
}

Status ParticipantService::Move(const std::string& txn_id, Entry* entry, BranchPhase to,
                                Step step, Status* step_answer) {
  if (!BranchMoveAllowed(entry->phase, to)) {
    Status refused = Status::Internal(std::string("illegal move ") +
                                      BranchPhaseName(entry->phase) + " -> " +
                                      BranchPhaseName(to) + " of the branch of " + txn_id);
    LOG(ERROR) << refused.ToString();
    return refused;
  }
  if (step != nullptr) {
    // The database first: the phase published below must be one it holds.
    Status answer = (entry->branch.get()->*step)();
    if (step_answer != nullptr) {
      *step_answer = answer;
    } else if (!answer.ok()) {
      return answer;
    }
  }
  entry->phase = to;
  switch (to) {
    case BranchPhase::kActive:
      break;  // no move leads back here
    case BranchPhase::kPrepared:
      entry->since = clock()->Now();
      entry->next_inquiry = entry->since + Millis(options_.inquiry_interval_ms);
      break;
    case BranchPhase::kDone: {
      entry->branch.reset();
      std::lock_guard<std::mutex> lock(mu_);
      auto it = branches_.find(txn_id);
      if (it != branches_.end() && it->second.get() == entry) branches_.erase(it);
      // A branch that never opened ends nothing: the statement may be sent again.
      const bool opened = !entry->opening.empty() || step != nullptr;
      if (opened) {
        const bool committed = step == &Branch::CommitPrepared || step == &Branch::CommitOnePhase;
        RememberEnded(txn_id, committed                    ? "committed"
                              : step == &Branch::Rollback ? "rolled back"
                                                          : "released at prepare");
      }
      break;
    }
  }
  return Status::Ok();
}

std::shared_ptr<ParticipantService::Entry> ParticipantService::HeldPrepared(
    std::unique_ptr<Branch> branch, TimePoint since, TimePoint first_inquiry) {
  auto entry = std::make_shared<Entry>(BranchPhase::kPrepared);
  entry->branch = std::move(branch);
  entry->since = since;
  entry->next_inquiry = first_inquiry;
  return entry;
}

Status ParticipantService::Open(const std::string& txn_id, Entry* entry, int64_t timeout_ms) {
  if (timeout_ms <= 0) timeout_ms = options_.default_branch_timeout_ms;
  timeout_ms = std::min(timeout_ms, options_.max_branch_timeout_ms);
  ASSIGN_OR_RETURN(entry->branch, backend_->Begin(txn_id));
  std::lock_guard<std::mutex> lock(mu_);
  entry->opening = options_.incarnation + "." + std::to_string(++branches_opened_);
  entry->since = clock()->Now();
  entry->deadline = entry->since + Millis(timeout_ms);
  entry->next_inquiry = entry->since + Millis(std::min(options_.first_active_inquiry_ms,
                                                      options_.inquiry_interval_ms));
  return Status::Ok();
}

void ParticipantService::RememberEnded(const std::string& txn_id, const char* how) {
  if (ended_.insert_or_assign(txn_id, how).second) ended_order_.push_back(txn_id);
  while (ended_order_.size() > options_.ended_kept) {
    ended_.erase(ended_order_.front());
    ended_order_.pop_front();
  }
}

Status ParticipantService::CheckNotSuperseded(const std::string& txn_id) {
  ASSIGN_OR_RETURN(TxnId id, TxnId::Parse(txn_id));
  int64_t highest = state_->HighestEpoch(id.coordinator);
  if (id.epoch >= highest) return Status::Ok();
  return Status::Fenced("transaction " + txn_id + " is from run " + std::to_string(id.epoch) +
                         " of coordinator " + id.coordinator + ", which run " +
                         std::to_string(highest) + " replaced: it can never commit");
}

Result<QueryResult> ParticipantService::Execute(const std::string& txn_id,
                                                const std::string& sql,
                                                const std::vector<SqlValue>& params,
                                                int64_t timeout_ms, std::string* opening) {
  RETURN_NOT_OK(CheckNotSuperseded(txn_id));
  std::shared_ptr<Entry> entry;
  std::unique_lock<std::mutex> lock;
  bool created = false;
  {
    std::lock_guard<std::mutex> map_lock(mu_);
    auto ended = ended_.find(txn_id);
    if (ended != ended_.end() && branches_.count(txn_id) == 0) {
      return Status::FailedPrecondition("the branch of transaction " + txn_id + " here has " +
                                        "ended (" + ended->second +
                                        "); it takes no more statements");
    }
    auto& slot = branches_[txn_id];
    if (!slot) {
      slot = std::make_shared<Entry>(BranchPhase::kActive);
      // Locked before it is published: no other thread (housekeeping, a
      // listing) may see a branch that is not open yet. Uncontended, so
      // taking it under mu_ cannot deadlock.
      lock = std::unique_lock<std::mutex>(slot->mu);
      created = true;
    }
    entry = slot;
  }
  if (!created) lock = std::unique_lock<std::mutex>(entry->mu);
  if (created) {
    Status opened = Open(txn_id, entry.get(), timeout_ms);
    if (!opened.ok()) {
      RETURN_NOT_OK(Move(txn_id, entry.get(), BranchPhase::kDone));  // nothing to undo
      return opened;
    }
  }
  switch (entry->phase) {
    case BranchPhase::kActive: break;
    case BranchPhase::kPrepared:
      return Status::FailedPrecondition("transaction " + txn_id +
                                        " is prepared here; it accepts no more statements");
    case BranchPhase::kDone:
      return Status::FailedPrecondition("the branch of transaction " + txn_id +
                                        " here has ended");
  }
  *opening = entry->opening;
  return entry->branch->Execute(sql, params);
}

Status ParticipantService::AdmitFence(const Fence& fence) {
  std::unique_lock<std::mutex> raising(raise_mu_, std::defer_lock);
  if (RaisesEpoch(fence)) {
    raising.lock();
    if (RaisesEpoch(fence)) {  // not admitted by a call ahead of us
      Status confirmed = ConfirmRaise(fence);
      if (!confirmed.ok()) {
        // Anyone can send these: the first and every 100th are logged, not
        // all. Counted per service, so a simulated run logs deterministically.
        metrics_.fences_refused->Add();
        int64_t refused = metrics_.fences_refused->value();
        LOG_IF(WARNING, refused % 100 == 1)
            << "refused a fence (" << refused << " so far): " << confirmed.ToString();
        return confirmed;
      }
    }
  }
  ASSIGN_OR_RETURN(bool raised, state_->Admit(fence.coordinator, fence.epoch));
  if (raising.owns_lock()) raising.unlock();
  if (raised) RollBackSupersededBranches();
  return Status::Ok();
}

bool ParticipantService::RaisesEpoch(const Fence& fence) {
  // 0: a name never admitted. Epochs start at 1, so that is also the
  // answer for an unknown name, which must be confirmed whatever its epoch.
  int64_t highest = state_->HighestEpoch(fence.coordinator);
  return highest == 0 || fence.epoch > highest;
}

Status ParticipantService::ConfirmRaise(const Fence& fence) {
  auto serving = coordinator_->Identify(fence.coordinator);
  if (serving.status().code() == StatusCode::kUnauthenticated) {
    // TLS: whoever serves at the address holds another certificate, so the
    // caller is not the coordinator serving there.
    return Status::Fenced("coordinator " + fence.coordinator +
                          " is not the one this participant serves: " +
                          serving.status().message());
  }
  if (!serving.ok()) {
    // Nothing is stored; the coordinator retries, and a real raise is
    // confirmed once its address answers.
    return Status::Unavailable("cannot confirm epoch " + std::to_string(fence.epoch) +
                               " of coordinator " + fence.coordinator +
                               " with the coordinator: " + serving.status().message());
  }
  if (serving->name != fence.coordinator) {
    return Status::Fenced("coordinator '" + fence.coordinator +
                          "' is not the one this participant serves ('" + serving->name +
                          "' at " + serving->address + ")");
  }
  if (serving->epoch < fence.epoch) {
    // A forgery, or a second run of the coordinator that is not the one at
    // its address (FENCED makes such a run stop deciding).
    return Status::Fenced("epoch " + std::to_string(fence.epoch) + " of coordinator " +
                          fence.coordinator + " is not the one serving at " + serving->address +
                          " (epoch " + std::to_string(serving->epoch) + ")");
  }
  return Status::Ok();
}

Status ParticipantService::CheckOwner(const Fence& fence, const std::string& txn_id) {
  auto id = TxnId::Parse(txn_id);
  if (!id.ok() || id->coordinator == fence.coordinator) return Status::Ok();
  return Status::PermissionDenied("transaction " + txn_id + " belongs to coordinator " +
                                  id->coordinator + ", not to " + fence.coordinator);
}

Status ParticipantService::CheckFence(const Fence& fence) {
  int64_t highest = state_->HighestEpoch(fence.coordinator);
  if (fence.epoch >= highest) return Status::Ok();
  return Status::Fenced("coordinator " + fence.coordinator + " epoch " +
                        std::to_string(fence.epoch) + " was replaced by epoch " +
                        std::to_string(highest));
}

void ParticipantService::RollBackSupersededBranches() {
  for (const auto& [txn_id, entry] : AllEntries()) {
    auto id = TxnId::Parse(txn_id);
    if (!id.ok()) continue;
    const int64_t highest = state_->HighestEpoch(id->coordinator);
    if (id->epoch >= highest) continue;
    // Never waits: a branch busy in a statement may be waiting for a
    // database lock that a prepared branch holds, which the new run's
    // recovery (that raised the epoch, and waits for this) rolls back. A busy
    // one is rolled back at a later housekeeping round.
    std::unique_lock<std::mutex> lock(entry->mu, std::try_to_lock);
    if (lock.owns_lock()) RollBackSupersededLocked(txn_id, entry.get(), id->coordinator, highest);
  }
}

void ParticipantService::RollBackSupersededLocked(const std::string& txn_id, Entry* entry,
                                                  const std::string& coordinator,
                                                  int64_t epoch) {
  if (entry->phase != BranchPhase::kActive) return;  // prepared ones wait for the decision
  // Its coordinator restarted: the new run does not know the transaction, so
  // it can never commit; holding its locks until the deadline only blocks
  // others.
  Status st;
  if (!Move(txn_id, entry, BranchPhase::kDone, &Branch::Rollback, &st).ok()) return;
  metrics_.rollbacks->Add();
  LOG(WARNING) << "txn " << txn_id << ": rolled back the unprepared branch here, coordinator "
               << coordinator << " restarted (epoch " << epoch << ")"
               << (st.ok() ? "" : " (rollback error: " + st.ToString() + ")");
}

Result<Vote> ParticipantService::Prepare(const Fence& fence, const std::string& txn_id,
                                         const std::string& opening) {
  RETURN_NOT_OK(CheckOwner(fence, txn_id));
  if (opening.empty()) {
    return Status::InvalidArgument("prepare of " + txn_id +
                                   " names no branch opening (the name execute answered)");
  }
  RETURN_NOT_OK(AdmitFence(fence));
  auto entry = Lookup(txn_id);
  if (!entry) return NoSuchBranch(txn_id);
  std::lock_guard<std::mutex> lock(entry->mu);
  RETURN_NOT_OK(CheckFence(fence));
  if (entry->phase == BranchPhase::kPrepared) return Vote::kCommit;  // a repeated prepare
  if (entry->phase == BranchPhase::kDone) return NoSuchBranch(txn_id);
  std::string reason;
  if (entry->opening != opening) {
    // The opening the client worked in is gone (this process restarted, or
    // rolled it back) and this one holds only what came after.
    reason = "the branch here opened as " + entry->opening + ", not as " + opening +
             ": the work done in " + opening + " is lost";
  } else if (entry->deadline <= clock()->Now()) {
    reason = "the branch's deadline passed before prepare";
  }
  if (!reason.empty()) {
    metrics_.votes_abort->Add();
    Status rolled_back;
    RETURN_NOT_OK(
        Move(txn_id, entry.get(), BranchPhase::kDone, &Branch::Rollback, &rolled_back));
    LOG(WARNING) << "txn " << txn_id << ": voted ABORT: " << reason
                 << (rolled_back.ok() ? "" : " (rollback error: " + rolled_back.ToString() + ")");
    return Status::Aborted(reason);
  }
  auto vote = entry->branch->Prepare(&reason);
  if (!vote.ok()) {
    // Not durable as prepared: release it, the coordinator takes this as ABORT.
    metrics_.votes_abort->Add();
    Status rolled_back;
    RETURN_NOT_OK(
        Move(txn_id, entry.get(), BranchPhase::kDone, &Branch::Rollback, &rolled_back));
    LOG_IF(WARNING, !rolled_back.ok()) << rolled_back.ToString();
    return vote.status();
  }
  // The vote's own step made the database's half: prepared, or released.
  switch (*vote) {
    case Vote::kCommit:
      metrics_.votes_commit->Add();
      RETURN_NOT_OK(Move(txn_id, entry.get(), BranchPhase::kPrepared));
      CrashPoint("after_prepare_durable");
      return Vote::kCommit;
    case Vote::kReadOnly:
      metrics_.votes_read_only->Add();
      RETURN_NOT_OK(Move(txn_id, entry.get(), BranchPhase::kDone));
      return Vote::kReadOnly;
    case Vote::kAbort:
      break;
  }
  metrics_.votes_abort->Add();
  RETURN_NOT_OK(Move(txn_id, entry.get(), BranchPhase::kDone));
  LOG(WARNING) << "txn " << txn_id << ": voted ABORT: " << reason;
  return Status::Aborted(reason);
}

Status ParticipantService::CompareWithHeuristic(const HeuristicDecision& heuristic,
                                                bool committed) {
  if (heuristic.committed == committed) return Status::Ok();
  return Status::HeuristicMixed(
      "the branch of " + heuristic.txn_id + " here was heuristically " +
      (heuristic.committed ? "committed" : "rolled back") +
      " by an operator, but the coordinator decided " + (committed ? "COMMIT" : "ABORT"));
}

Status ParticipantService::CompareAndSettleHeuristic(const HeuristicDecision& heuristic,
                                                     bool committed) {
  Status st = CompareWithHeuristic(heuristic, committed);
  if (st.ok()) {
    // The coordinator's decision agrees and it hears so now: reconciled. A
    // repeated message finds the branch's own outcome (a commit marker, or
    // nothing held = rolled back) and gets the same answer.
    Status forgot = state_->ForgetHeuristic(heuristic.txn_id);
    LOG_IF(WARNING, !forgot.ok()) << forgot.ToString();
  }
  return st;
}

Status ParticipantService::CommitForgotten(const std::string& txn_id, bool one_phase) {
  if (auto heuristic = state_->FindHeuristic(txn_id)) {
    return CompareAndSettleHeuristic(*heuristic, /*committed=*/true);
  }
  ASSIGN_OR_RETURN(bool committed, backend_->IsCommitted(txn_id));
  if (committed) return Status::Ok();  // a repeated commit
  if (one_phase) {
    return Status::Aborted("the branch of transaction " + txn_id +
                           " here is gone without committing (rolled back)");
  }
  return NoSuchBranch(txn_id);
}

Status ParticipantService::Commit(const Fence& fence, const std::string& txn_id, bool one_phase) {
  RETURN_NOT_OK(CheckOwner(fence, txn_id));
  RETURN_NOT_OK(AdmitFence(fence));
  auto entry = Lookup(txn_id);
  if (!entry) return CommitForgotten(txn_id, one_phase);
  std::lock_guard<std::mutex> lock(entry->mu);
  RETURN_NOT_OK(CheckFence(fence));
  if (entry->phase == BranchPhase::kDone) return CommitForgotten(txn_id, one_phase);
  if (one_phase) {
    if (entry->phase == BranchPhase::kPrepared) {
      return Status::FailedPrecondition("the branch of " + txn_id +
                                        " is prepared; a one-phase commit does not apply");
    }
    Status st;
    RETURN_NOT_OK(
        Move(txn_id, entry.get(), BranchPhase::kDone, &Branch::CommitOnePhase, &st));
    if (st.code() == StatusCode::kUnavailable) {
      // The database did not answer the COMMIT: it may have committed. A
      // repeated commit asks the backend (IsCommitted) what happened.
      return st;
    }
    if (!st.ok()) {
      metrics_.rollbacks->Add();
      return Status::Aborted("one-phase commit failed and rolled back: " + st.message());
    }
    metrics_.commits->Add();
    CrashPoint("after_commit_applied");
    return Status::Ok();
  }
  if (entry->phase == BranchPhase::kActive) {
    return Status::FailedPrecondition("the branch of " + txn_id +
                                      " is not prepared; commit needs a COMMIT vote first");
  }
  if (auto heuristic = state_->FindHeuristic(txn_id)) {
    // An operator decided while we crashed before applying it: that stands.
    RETURN_NOT_OK(ApplyHeuristic(txn_id, entry.get(), heuristic->committed));
    return CompareAndSettleHeuristic(*heuristic, /*committed=*/true);
  }
  CrashPoint("before_commit_applied");
  // On error it stays prepared.
  RETURN_NOT_OK(Move(txn_id, entry.get(), BranchPhase::kDone, &Branch::CommitPrepared));
  CrashPoint("after_commit_applied");
  metrics_.commits->Add();
  return Status::Ok();
}

Status ParticipantService::Rollback(const Fence& fence, const std::string& txn_id) {
  RETURN_NOT_OK(CheckOwner(fence, txn_id));
  RETURN_NOT_OK(AdmitFence(fence));
  auto entry = Lookup(txn_id);
  auto heuristic = state_->FindHeuristic(txn_id);
  std::unique_lock<std::mutex> lock;
  if (entry) lock = std::unique_lock<std::mutex>(entry->mu);
  if (!entry || entry->phase == BranchPhase::kDone) {
    // Nothing held: already rolled back, unless an operator committed it. A
    // statement of it arriving late (delayed on the way) must open nothing.
    if (!heuristic) {
      std::lock_guard<std::mutex> map_lock(mu_);
      if (branches_.count(txn_id) == 0) RememberEnded(txn_id, "rolled back");
      return Status::Ok();
    }
    return CompareAndSettleHeuristic(*heuristic, /*committed=*/false);
  }
  RETURN_NOT_OK(CheckFence(fence));
  if (heuristic && entry->phase == BranchPhase::kPrepared) {
    RETURN_NOT_OK(ApplyHeuristic(txn_id, entry.get(), heuristic->committed));
    return CompareAndSettleHeuristic(*heuristic, /*committed=*/false);
  }
  // On error it stays where it was (prepared, or active until its deadline).
  RETURN_NOT_OK(Move(txn_id, entry.get(), BranchPhase::kDone, &Branch::Rollback));
  CrashPoint("after_rollback_applied");
  metrics_.rollbacks->Add();
  return Status::Ok();
}

Status ParticipantService::Abandon(const std::string& txn_id, const std::string& opening) {
  auto entry = Lookup(txn_id);
  if (!entry) return Status::Ok();  // gone already
  std::lock_guard<std::mutex> lock(entry->mu);
  if (entry->phase == BranchPhase::kDone) return Status::Ok();
  if (opening.empty() || entry->opening != opening) {
    return Status::PermissionDenied("the branch of " + txn_id +
                                    " here is not the opening named; only the client that "
                                    "opened a branch may abandon it");
  }
  if (entry->phase == BranchPhase::kPrepared) {
    return Status::FailedPrecondition("the branch of " + txn_id +
                                      " is prepared; only its coordinator decides it now");
  }
  RETURN_NOT_OK(Move(txn_id, entry.get(), BranchPhase::kDone, &Branch::Rollback));
  metrics_.rollbacks->Add();
  LOG(INFO) << "txn " << txn_id << ": its client abandoned the unprepared branch here";
  return Status::Ok();
}

Result<std::vector<BranchSnapshot>> ParticipantService::Recover(const Fence& fence) {
  RETURN_NOT_OK(AdmitFence(fence));
  std::vector<BranchSnapshot> prepared;
  for (auto& b : ListBranches()) {
    auto id = TxnId::Parse(b.txn_id);
    // Only its own: another coordinator's branches are none of its business.
    if (b.prepared && id.ok() && id->coordinator == fence.coordinator) {
      prepared.push_back(std::move(b));
    }
  }
  return prepared;
}

std::vector<BranchSnapshot> ParticipantService::ListBranches() {
  std::vector<BranchSnapshot> out;
  for (const auto& [txn_id, entry] : AllEntries()) {
    // try_lock: a listing must not wait behind a statement holding the branch.
    std::unique_lock<std::mutex> lock(entry->mu, std::try_to_lock);
    BranchSnapshot s;
    s.txn_id = txn_id;
    if (lock.owns_lock()) {
      if (entry->phase == BranchPhase::kDone) continue;
      s.prepared = entry->phase == BranchPhase::kPrepared;
      s.age_ms = -clock()->MillisUntil(entry->since);
      if (!s.prepared) s.deadline_in_ms = clock()->MillisUntil(entry->deadline);
    }
    out.push_back(std::move(s));
  }
  return out;
}

Status ParticipantService::Resolve(const std::string& txn_id, bool commit) {
  auto entry = Lookup(txn_id);
  if (!entry) return Status::NotFound("no prepared branch of transaction " + txn_id + " here");
  std::lock_guard<std::mutex> lock(entry->mu);
  if (entry->phase != BranchPhase::kPrepared) {
    return Status::FailedPrecondition("the branch of " + txn_id +
                                      " here is not prepared; only in-doubt branches can be "
                                      "resolved by hand");
  }
  // Recorded before applied: after a crash in between, restart finds the
  // record and applies it again; the reverse order could lose the fact.
  RETURN_NOT_OK(state_->RecordHeuristic({txn_id, commit, clock()->WallMillis()}));
  metrics_.heuristic_decisions->Add();
  return ApplyHeuristic(txn_id, entry.get(), commit);
}

Status ParticipantService::ApplyHeuristic(const std::string& txn_id, Entry* entry, bool commit) {
  RETURN_NOT_OK(Move(txn_id, entry, BranchPhase::kDone,
                     commit ? &Branch::CommitPrepared : &Branch::Rollback));
  LOG(WARNING) << "txn " << txn_id << " HEURISTIC " << (commit ? "COMMIT" : "ROLLBACK")
               << " participant=" << name() << " by an operator";
  return Status::Ok();
}

void ParticipantService::ReconcileHeuristics() {
  for (const HeuristicDecision& h : state_->Heuristics()) {
    auto entry = Lookup(h.txn_id);
    if (entry) {
      // Recorded but not applied (a crash in between): apply it first.
      std::lock_guard<std::mutex> lock(entry->mu);
      if (entry->phase == BranchPhase::kPrepared) {
        Status st = ApplyHeuristic(h.txn_id, entry.get(), h.committed);
        LOG_IF(WARNING, !st.ok()) << st.ToString();
        continue;
      }
    }
    auto outcome = coordinator_->Inquire(h.txn_id);
    if (!outcome.ok() || *outcome == Outcome::kActive) continue;  // ask again later
    bool committed = *outcome == Outcome::kCommitted;
    if (committed != h.committed) {
      LOG(ERROR) << "txn " << h.txn_id << " HEURISTIC MIX participant=" << name()
                 << " coordinator decided " << (committed ? "COMMIT" : "ABORT")
                 << ", operator " << (h.committed ? "committed" : "rolled back");
      Status reported = coordinator_->ReportHeuristic(name(), h);
      if (!reported.ok()) {
        LOG(WARNING) << "cannot report the heuristic mix yet: " << reported.ToString();
        continue;
      }
    }
    Status st = state_->ForgetHeuristic(h.txn_id);
    LOG_IF(WARNING, !st.ok()) << st.ToString();
  }
}

void ParticipantService::RollBackExpired(const std::string& txn_id,
                                         const std::shared_ptr<Entry>& entry) {
  std::lock_guard<std::mutex> lock(entry->mu);
  if (entry->phase != BranchPhase::kActive || entry->deadline > clock()->Now()) return;
  // The client vanished or is too slow: release the locks it held.
  Status st;
  if (!Move(txn_id, entry.get(), BranchPhase::kDone, &Branch::Rollback, &st).ok()) return;
  metrics_.deadline_rollbacks->Add();
  LOG(WARNING) << "txn " << txn_id << ": rolled back the branch here, its deadline passed"
               << (st.ok() ? "" : " (rollback error: " + st.ToString() + ")");
}

void ParticipantService::ResolveByInquiry(const std::string& txn_id,
                                          const std::shared_ptr<Entry>& entry) {
  auto outcome = coordinator_->Inquire(txn_id);
  std::lock_guard<std::mutex> lock(entry->mu);
  if (entry->phase == BranchPhase::kDone) return;  // decided meanwhile
  entry->next_inquiry = clock()->Now() + Millis(options_.inquiry_interval_ms);
  if (entry->phase == BranchPhase::kActive) {
    // NOT_FOUND (or, with TLS, UNAUTHENTICATED): the coordinator at our
    // address does not own the id, so no coordinator can ever prepare it here
    // (a fence must match that one). Rolling back an unprepared branch is
    // always safe: at worst its transaction aborts.
    const StatusCode code = outcome.status().code();
    const bool nobody_commits = outcome.ok() ? *outcome != Outcome::kActive
                                             : code == StatusCode::kNotFound ||
                                                   code == StatusCode::kUnauthenticated;
    if (!nobody_commits) return;  // its deadline still holds
    Status st;
    if (!Move(txn_id, entry.get(), BranchPhase::kDone, &Branch::Rollback, &st).ok()) return;
    metrics_.rollbacks->Add();
    LOG(WARNING) << "txn " << txn_id << ": rolled back the unprepared branch here, its "
                 << "coordinator answers "
                 << (outcome.ok() ? OutcomeName(*outcome) : outcome.status().ToString())
                 << " (ended without it, or never begun): nothing can commit it"
                 << (st.ok() ? "" : " (rollback error: " + st.ToString() + ")");
    return;
  }
  if (!outcome.ok()) {
    LOG(WARNING) << "txn " << txn_id << ": prepared here, coordinator did not answer: "
                 << outcome.status().ToString();
    return;
  }
  if (*outcome == Outcome::kActive) return;
  bool commit = *outcome == Outcome::kCommitted;
  Status st = Move(txn_id, entry.get(), BranchPhase::kDone,
                   commit ? &Branch::CommitPrepared : &Branch::Rollback);
  if (!st.ok()) {
    LOG(WARNING) << "txn " << txn_id << ": " << (commit ? "commit" : "rollback")
                 << " after inquiry failed, will retry: " << st.ToString();
    return;
  }
  (commit ? metrics_.commits : metrics_.rollbacks)->Add();
  LOG(INFO) << "txn " << txn_id << ": coordinator says " << OutcomeName(*outcome) << "; "
            << (commit ? "committed" : "rolled back") << " the prepared branch here";
}

void ParticipantService::AdoptOrphans() {
  std::set<std::string> held;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& [txn_id, entry] : branches_) held.insert(txn_id);
  }
  auto orphans = backend_->FindOrphans(held);
  if (!orphans.ok()) {
    LOG(WARNING) << "cannot compare prepared branches with the database yet: "
                 << orphans.status().ToString();
    return;
  }
  std::lock_guard<std::mutex> lock(mu_);
  for (auto& orphan : *orphans) {
    // A branch opened since `held` was taken is the live one: keep that.
    if (branches_.count(orphan.txn_id) > 0) continue;
    branches_[orphan.txn_id] =
        HeldPrepared(std::move(orphan.branch), clock()->Now(), clock()->Now());
    LOG(WARNING) << "txn " << orphan.txn_id
                 << ": the database holds a prepared branch this process had lost track of "
                    "(its prepare's answer was lost); holding it and asking its coordinator";
  }
}

void ParticipantService::RollBackExpiredBranches() {
  TimePoint now = clock()->Now();
  for (const auto& [txn_id, entry] : AllEntries()) {
    {
      std::unique_lock<std::mutex> lock(entry->mu, std::try_to_lock);
      if (!lock.owns_lock()) continue;  // busy: a call is deciding it
      if (entry->phase != BranchPhase::kActive || entry->deadline > now) continue;
    }
    RollBackExpired(txn_id, entry);
  }
}

void ParticipantService::TalkToCoordinator() {
  {
    // Every round: a shard that appeared since must learn of this participant.
    Status st = coordinator_->Register(options_.self);
    std::lock_guard<std::mutex> lock(mu_);
    // Said once per reason, not every round.
    LOG_IF(WARNING, !st.ok() && st.message() != register_failure_)
        << "cannot register with the coordinator: " << st.ToString();
    register_failure_ = st.ok() ? "" : st.message();
    registered_ = st.ok();
  }
  TimePoint now = clock()->Now();
  for (const auto& [txn_id, entry] : AllEntries()) {
    {
      std::unique_lock<std::mutex> lock(entry->mu, std::try_to_lock);
      if (!lock.owns_lock()) continue;
      if (entry->phase == BranchPhase::kDone || entry->next_inquiry > now) continue;
    }
    ResolveByInquiry(txn_id, entry);
  }
  if (next_reconcile_ <= now) {
    ReconcileHeuristics();
    next_reconcile_ = now + Millis(options_.inquiry_interval_ms);
  }
  if (next_orphan_check_ <= now) {
    AdoptOrphans();
    next_orphan_check_ = now + Millis(options_.orphan_check_interval_ms);
  }
}

void ParticipantService::RollBackAbandonedBranches() {
  RollBackExpiredBranches();
  RollBackSupersededBranches();
}

void ParticipantService::Tick() {
  RollBackAbandonedBranches();
  TalkToCoordinator();
}

void ParticipantService::Loop(int interval_ms, void (ParticipantService::*round)()) {
  std::unique_lock<std::mutex> stop_lock(stop_mu_);
  do {
    stop_lock.unlock();
    (this->*round)();
    stop_lock.lock();
  } while (!stop_cv_.wait_for(stop_lock, Millis(interval_ms), [this] { return stopping_; }));
}

}  // namespace pact
