#include "coordinator/two_phase_commit.h"

#include <algorithm>

#include <glog/logging.h>

#include "common/clock.h"
#include "common/crash_point.h"
#include "common/parallel.h"
#include "common/state_moves.h"

namespace pact {
namespace {

// The moves of the transaction machine; anything else is a bug. One comment
// per state: what it means, and the durable record behind it.
constexpr StateMove<TxnState> kTxnMoves[] = {
    // ACTIVE: begun; branches enlist and execute. Nothing journaled: forgotten
    // at a crash, which presumed abort answers as ABORTED.
    {TxnState::kActive, TxnState::kPreparing},  // commit asked
    {TxnState::kActive, TxnState::kAborting},   // rollback, deadline, doomed, drained, not deciding
    // PREPARING: collecting votes, or a one-phase commit's outcome is unknown
    // (inquiries hear ACTIVE). Nothing journaled.
    {TxnState::kPreparing, TxnState::kCommitting},  // every vote COMMIT or READ_ONLY
    {TxnState::kPreparing, TxnState::kCommitted},   // no branch, all READ_ONLY, or one phase
    {TxnState::kPreparing, TxnState::kAborting},    // an ABORT vote or none, or no COMMIT record
    // COMMITTING: the COMMIT record, forced before the move; recovery resumes
    // it and the branches that have not acknowledged are retried.
    {TxnState::kCommitting, TxnState::kCommitted},  // every branch acknowledged
    // ABORTING: telling the branches. Nothing journaled (presumed abort), but
    // an ABORT record once a failed COMMIT write may have reached the disk.
    {TxnState::kAborting, TxnState::kAborted},
    // COMMITTED: final. From COMMITTING the END record, written first, retires
    // the COMMIT record (recovery no longer sees it); otherwise none was written.
    // ABORTED: final; rolled back wherever it had reached.
};

// What must be durable before a move: the COMMIT record before COMMITTING,
// the END record before COMMITTING becomes COMMITTED.
bool IsJournaled(TxnState from, TxnState to) {
  return to == TxnState::kCommitting || from == TxnState::kCommitting;
}

// REQUIRES: txn.mu held. The COMMIT record of txn: the branches that voted COMMIT.
CommitRecord DecisionRecord(const Txn& txn, int64_t decided_at_ms) {
  CommitRecord record;
  record.txn_id = txn.id;
  record.decided_at_ms = decided_at_ms;
  for (const auto& b : txn.branches) {
    if (b.vote == Vote::kCommit) record.branches.push_back(b.participant);
  }
  return record;
}

// REQUIRES: txn.mu held, and the move allowed and durable. Makes it visible.
void Publish(Txn& txn, TxnState to, const std::string& reason) {
  txn.state = to;
  if (!reason.empty()) txn.reason = reason;
  txn.changed.notify_all();
}

std::string Join(const std::vector<std::string>& names) {
  std::string out;
  for (const auto& n : names) out += (out.empty() ? "" : ",") + n;
  return out;
}

std::vector<EnlistedBranch> Branches(Txn& txn) {
  std::lock_guard<std::mutex> lock(txn.mu);
  std::vector<EnlistedBranch> branches;
  for (const auto& b : txn.branches) branches.push_back({b.participant, b.opening});
  return branches;
}

}  // namespace

TwoPhaseCommit::TwoPhaseCommit(ProtocolOptions options, Runtime runtime, Journal* journal,
                               Participants* participants,
                               std::function<void(const std::shared_ptr<Txn>&)> on_finished,
                               Counter* heuristic_mixes)
    : options_(options),
      runtime_(std::move(runtime)),
      journal_(journal),
      participants_(participants),
      on_finished_(std::move(on_finished)),
      heuristic_mixes_(heuristic_mixes) {
  if (runtime_.background_threads) retry_thread_ = std::thread([this] { RetryLoop(); });
}

TwoPhaseCommit::~TwoPhaseCommit() { Stop(); }

void TwoPhaseCommit::Stop() {
  {
    std::unique_lock<std::mutex> lock(retry_mu_);
    stopping_ = true;
    retry_cv_.wait(lock, [this] { return finishing_in_background_ == 0; });
  }
  retry_cv_.notify_all();
  if (retry_thread_.joinable()) retry_thread_.join();
}

void TwoPhaseCommit::FinishInBackground(const std::shared_ptr<Txn>& txn) {
  // Single-threaded (the simulation), the retry queue's next Tick sends it.
  if (!runtime_.background_threads) return Schedule(txn, 0);
  {
    std::lock_guard<std::mutex> lock(retry_mu_);
    if (stopping_) return;  // the journal has the decision: the next start finishes it
    ++finishing_in_background_;
  }
  RunDetached([this, txn] {
    PhaseTwo(txn);
    std::lock_guard<std::mutex> lock(retry_mu_);
    if (--finishing_in_background_ == 0) retry_cv_.notify_all();
  });
}

void TwoPhaseCommit::CountDeciding(TxnState from, TxnState to) {
  if (to == TxnState::kPreparing) deciding_.fetch_add(1, std::memory_order_relaxed);
  if (from == TxnState::kPreparing) deciding_.fetch_sub(1, std::memory_order_relaxed);
}

bool TwoPhaseCommit::Claim(const std::shared_ptr<Txn>& txn, TxnState to,
                           const std::string& reason) {
  return Transition(txn, to, reason, /*only_from=*/TxnState::kActive).ok();
}

Status TwoPhaseCommit::Transition(const std::shared_ptr<Txn>& txn, TxnState to,
                                  const std::string& reason, std::optional<TxnState> only_from) {
  TxnState from;
  CommitRecord record;
  {
    std::lock_guard<std::mutex> lock(txn->mu);
    from = txn->state;
    if (only_from && from != *only_from) {
      return Status::FailedPrecondition(txn->id + " is " + TxnStateName(from) + ", not " +
                                        TxnStateName(*only_from));
    }
    if (from == to) return Status::Ok();
    if (!IsListedMove(kTxnMoves, from, to)) {
      Status refused = Status::Internal(std::string("illegal transition ") + TxnStateName(from) +
                                        " -> " + TxnStateName(to) + " of " + txn->id +
                                        " refused");
      LOG(ERROR) << refused.ToString();
      return refused;
    }
    if (!IsJournaled(from, to)) {
      Publish(*txn, to, reason);
      CountDeciding(from, to);
    } else if (to == TxnState::kCommitting) {
      record = DecisionRecord(*txn, runtime_.clock->WallMillis());
    }
  }
  if (IsJournaled(from, to)) {
    if (to == TxnState::kCommitting) {
      // Journal first: nobody may hear COMMITTED before the record is on disk.
      RETURN_NOT_OK(journal_->LogCommit(record));
    } else {
      // Unchecked: a lost END record leaves a COMMIT record that recovery
      // re-drives, and the branches acknowledge their commit again.
      journal_->LogEnd(txn->id);
    }
    std::lock_guard<std::mutex> lock(txn->mu);
    Publish(*txn, to, reason);
    CountDeciding(from, to);
  }
  if (to == TxnState::kCommitted || to == TxnState::kAborted) on_finished_(txn);
  return Status::Ok();
}

Result<CommitOutcome> TwoPhaseCommit::Commit(const std::shared_ptr<Txn>& txn, CommitReturn when) {
  const std::vector<EnlistedBranch> branches = Branches(*txn);
  if (branches.empty()) {
    // The client opened no branch: there is nothing to make durable.
    (void)Transition(txn, TxnState::kCommitted);
    return CommitOutcome{TxnState::kCommitted, ""};
  }
  if (branches.size() == 1) return CommitOnePhase(txn, branches[0].participant);

  // Phase one: every branch prepares in parallel, each bounded by the timeout.
  std::vector<std::string> names;
  for (const auto& b : branches) names.push_back(b.participant);
  std::vector<Result<Vote>> votes = participants_->PrepareEach(
      branches, txn->id, options_.prepare_timeout_ms, runtime_.fan_out,
      [](size_t i) {
        if (i == 0) CrashPoint("after_prepare_sent");
      });

  std::string abort_reason;
  for (const auto& vote : votes) NoteAnswer(vote.status());
  {
    std::lock_guard<std::mutex> lock(txn->mu);
    for (size_t i = 0; i < names.size(); ++i) {
      BranchProgress* branch = txn->FindBranch(names[i]);
      if (votes[i].status().code() == StatusCode::kAborted) {
        // An ABORT vote with the participant's reason.
        branch->vote = Vote::kAbort;
        txn->MoveBranch(branch, BranchState::kRolledBack);
        branch->last_error = votes[i].status().message();
        if (abort_reason.empty()) {
          abort_reason = "participant " + names[i] + " voted ABORT: " + branch->last_error;
        }
        continue;
      }
      if (!votes[i].ok()) {
        // No vote is an ABORT vote; the branch may still have prepared, so it
        // stays kEnlisted and is told to roll back.
        branch->last_error = votes[i].status().ToString();
        if (abort_reason.empty()) {
          abort_reason = "participant " + names[i] + " did not vote: " + branch->last_error;
        }
        continue;
      }
      branch->vote = *votes[i];
      switch (*votes[i]) {
        case Vote::kCommit: txn->MoveBranch(branch, BranchState::kPrepared); break;
        case Vote::kReadOnly: txn->MoveBranch(branch, BranchState::kReadOnly); break;
        case Vote::kAbort:
          txn->MoveBranch(branch, BranchState::kRolledBack);
          if (abort_reason.empty()) abort_reason = "participant " + names[i] + " voted ABORT";
          break;
      }
    }
  }
  CrashPoint("after_votes_collected");

  if (abort_reason.empty() && !deciding()) abort_reason = WhyNotDeciding().message();
  if (!abort_reason.empty()) return AbortWith(txn, abort_reason);

  bool any_commit_vote = std::any_of(votes.begin(), votes.end(),
                                     [](const Result<Vote>& v) { return *v == Vote::kCommit; });
  if (!any_commit_vote) {
    // All READ_ONLY: no branch holds anything; no journal write needed.
    (void)Transition(txn, TxnState::kCommitted);
    return CommitOutcome{TxnState::kCommitted, ""};
  }

  Status logged = Transition(txn, TxnState::kCommitting);
  if (!logged.ok()) return AbandonDecision(txn, logged);
  CrashPoint("after_decision_logged");

  // Phase two: the decision is durable, so the answer is COMMITTED whatever
  // the branches say now; the ones that do not acknowledge are retried.
  if (when == CommitReturn::kAtDecision) {
    FinishInBackground(txn);
  } else {
    PhaseTwo(txn);
  }
  return CommitOutcome{TxnState::kCommitted, ""};
}

void TwoPhaseCommit::PhaseTwo(const std::shared_ptr<Txn>& txn) {
  if (SendCommits(txn, /*first_round=*/true)) {
    Finish(txn);
  } else {
    Schedule(txn, options_.commit_retry_initial_ms);
  }
}

CommitOutcome TwoPhaseCommit::AbortWith(const std::shared_ptr<Txn>& txn,
                                        const std::string& reason) {
  (void)Transition(txn, TxnState::kAborting, reason);
  Abort(txn);
  return CommitOutcome{TxnState::kAborted, reason};
}

Result<CommitOutcome> TwoPhaseCommit::AbandonDecision(const std::shared_ptr<Txn>& txn,
                                                      const Status& failure) {
  // kUnavailable: the write failed at its commit point (an fsync error, say),
  // so the record may be on disk and a restart would replay it. Then an
  // abort record must be durable before anyone hears ABORTED.
  Status abort_durable =
      failure.code() == StatusCode::kUnavailable ? journal_->LogAbort(txn->id) : Status::Ok();
  if (abort_durable.ok()) {
    return AbortWith(txn, "commit decision could not be made durable: " + failure.ToString());
  }
  // Unknown: tell nobody ABORTED and roll nothing back; the prepared branches
  // wait, and recovery decides from whatever the journal holds.
  Status unknown = Status::Unavailable(
      "the commit decision of " + txn->id + " may or may not be durable (journal: " +
      failure.message() + "; abort record: " + abort_durable.message() +
      "); the coordinator stops deciding; ask again once it has restarted");
  if (!journal_lost_.exchange(true)) {
    LOG(ERROR) << "JOURNAL LOST: " << unknown.message();
    if (options_.on_journal_lost) options_.on_journal_lost(unknown);
  }
  return unknown;
}

Status TwoPhaseCommit::WhyNotDeciding() const {
  if (fenced_) {
    return Status::Fenced("a newer run of this coordinator exists (a participant refused its "
                          "epoch); this one decides nothing more: stop it");
  }
  if (journal_lost_) {
    return Status::Unavailable("the journal failed in a way that leaves a decision unknown; "
                               "restart the coordinator so that recovery decides");
  }
  return Status::Ok();
}

void TwoPhaseCommit::NoteAnswer(const Status& answer) {
  if (answer.code() != StatusCode::kFenced || fenced_.exchange(true)) return;
  LOG(ERROR) << "FENCED: " << answer.message()
             << ". Another coordinator runs under this name with a newer epoch (two processes "
                "on copies of one journal?). This one stops deciding: new transactions are "
                "refused and undecided ones abort.";
}

Result<CommitOutcome> TwoPhaseCommit::CommitOnePhase(const std::shared_ptr<Txn>& txn,
                                                     const std::string& participant) {
  // The participant decides alone; nothing is journaled. A lost reply is
  // re-asked: the participant answers a repeated one-phase commit from what
  // it durably knows (committed, or no such branch = rolled back).
  Status st;
  int backoff_ms = options_.commit_retry_initial_ms;
  for (int attempt = 1; attempt <= options_.one_phase_attempts; ++attempt) {
    st = AskOnePhase(txn, participant);
    if (attempt > 1 && RefusesTheCaller(st)) return OnePhaseUnknowable(txn, participant, st);
    if (st.code() != StatusCode::kUnavailable) return SettleOnePhase(txn, participant, st);
    if (attempt < options_.one_phase_attempts) {
      runtime_.clock->SleepFor(Millis(backoff_ms));
      backoff_ms = std::min(backoff_ms * 2, options_.commit_retry_max_ms);
    }
  }
  // Honest answer: we do not know yet. It stays PREPARING (inquiries hear
  // ACTIVE) and is asked again in the background until the participant says.
  LOG(ERROR) << "txn " << txn->id << " one-phase commit outcome unknown at " << participant
             << " (asking again in the background): " << st.ToString();
  Schedule(txn, backoff_ms);
  return Status::Unavailable("one-phase commit outcome unknown: " + st.message());
}

bool TwoPhaseCommit::RefusesTheCaller(const Status& answer) {
  return answer.code() == StatusCode::kFenced || answer.code() == StatusCode::kUnauthenticated ||
         answer.code() == StatusCode::kPermissionDenied;
}

Status TwoPhaseCommit::OnePhaseUnknowable(const std::shared_ptr<Txn>& txn,
                                          const std::string& participant, const Status& answer) {
  // An earlier attempt may have committed (its answer was lost), and this
  // refusal is about the caller, not the branch: nothing this run can ask
  // will tell. It stays PREPARING here; the participant alone knows.
  LOG(ERROR) << "txn " << txn->id << " one-phase commit outcome unknown at " << participant
             << ", which now refuses this coordinator: " << answer.ToString();
  return Status::Unavailable("one-phase commit outcome unknown: an earlier attempt may have "
                             "committed at " + participant + ", which now refuses this "
                             "coordinator (" + answer.message() + ")");
}

Status TwoPhaseCommit::AskOnePhase(const std::shared_ptr<Txn>& txn,
                                   const std::string& participant) {
  Status st = participants_->Commit(participant, txn->id, /*one_phase=*/true);
  NoteAnswer(st);
  std::lock_guard<std::mutex> lock(txn->mu);
  BranchProgress* branch = txn->FindBranch(participant);
  branch->attempts++;
  if (!st.ok()) branch->last_error = st.ToString();
  if (st.code() == StatusCode::kUnavailable) txn->MoveBranch(branch, BranchState::kCommitPending);
  return st;
}

CommitOutcome TwoPhaseCommit::SettleOnePhase(const std::shared_ptr<Txn>& txn,
                                             const std::string& participant,
                                             const Status& answer) {
  {
    std::lock_guard<std::mutex> lock(txn->mu);
    txn->MoveBranch(txn->FindBranch(participant),
                    answer.ok() ? BranchState::kCommitted : BranchState::kRolledBack);
  }
  if (!answer.ok()) {
    return AbortWith(txn, "participant " + participant + " could not commit: " + answer.ToString());
  }
  (void)Transition(txn, TxnState::kCommitted);
  return CommitOutcome{TxnState::kCommitted, ""};
}

bool TwoPhaseCommit::Redrive(const std::shared_ptr<Txn>& txn) {
  std::string one_phase;
  {
    // Only a one-phase commit whose outcome is unknown waits here PREPARING.
    std::lock_guard<std::mutex> lock(txn->mu);
    if (txn->state == TxnState::kPreparing) one_phase = txn->branches.front().participant;
  }
  if (!one_phase.empty()) {
    Status st = AskOnePhase(txn, one_phase);
    if (st.code() == StatusCode::kUnavailable) return false;
    if (RefusesTheCaller(st)) {
      (void)OnePhaseUnknowable(txn, one_phase, st);
      return true;  // asking again cannot help
    }
    SettleOnePhase(txn, one_phase, st);
    return true;
  }
  if (!SendCommits(txn, /*first_round=*/false)) return false;
  Finish(txn);
  return true;
}

void TwoPhaseCommit::Abort(const std::shared_ptr<Txn>& txn) {
  std::vector<std::string> to_tell;
  std::string reason;
  {
    std::lock_guard<std::mutex> lock(txn->mu);
    reason = txn->reason;
    for (const auto& b : txn->branches) {
      // READ_ONLY and ABORT voters already released everything.
      if (b.state == BranchState::kEnlisted || b.state == BranchState::kPrepared ||
          b.state == BranchState::kRollbackFailed) {
        to_tell.push_back(b.participant);
      }
    }
  }
  std::vector<Status> results = participants_->RollbackEach(to_tell, txn->id, runtime_.fan_out);
  for (const auto& result : results) NoteAnswer(result);
  std::vector<std::string> all;
  {
    std::lock_guard<std::mutex> lock(txn->mu);
    for (size_t i = 0; i < to_tell.size(); ++i) {
      BranchProgress* branch = txn->FindBranch(to_tell[i]);
      branch->attempts++;
      if (branch->state == BranchState::kHeuristicMixed) continue;  // reported meanwhile
      if (results[i].ok()) {
        txn->MoveBranch(branch, BranchState::kRolledBack);
      } else if (results[i].code() == StatusCode::kHeuristicMixed) {
        RecordHeuristicMix(*txn, branch, "ABORT", results[i]);
      } else {
        // Presumed abort makes this safe: a prepared branch asks us and hears
        // ABORTED; an unprepared one rolls back at its deadline.
        txn->MoveBranch(branch, BranchState::kRollbackFailed);
        branch->last_error = results[i].ToString();
      }
    }
    for (const auto& b : txn->branches) all.push_back(b.participant);
  }
  LOG(WARNING) << "txn " << txn->id << " ABORTED participants=" << Join(all)
               << " reason=\"" << reason << "\"";
  (void)Transition(txn, TxnState::kAborted);
}

bool TwoPhaseCommit::SendCommits(const std::shared_ptr<Txn>& txn, bool first_round) {
  std::vector<std::string> to_tell;
  {
    std::lock_guard<std::mutex> lock(txn->mu);
    for (const auto& b : txn->branches) {
      if (b.state == BranchState::kPrepared || b.state == BranchState::kCommitPending) {
        to_tell.push_back(b.participant);
      }
    }
  }
  std::vector<Status> results =
      participants_->CommitEach(to_tell, txn->id, runtime_.fan_out, [first_round](size_t i) {
        if (first_round && i == 0) CrashPoint("after_first_commit_sent");
      });
  for (const auto& result : results) NoteAnswer(result);
  bool all_done = true;
  std::lock_guard<std::mutex> lock(txn->mu);
  for (size_t i = 0; i < to_tell.size(); ++i) {
    BranchProgress* branch = txn->FindBranch(to_tell[i]);
    branch->attempts++;
    if (branch->state == BranchState::kHeuristicMixed) continue;  // reported meanwhile
    const Status& st = results[i];
    if (st.ok()) {
      txn->MoveBranch(branch, BranchState::kCommitted);
    } else if (st.code() == StatusCode::kHeuristicMixed) {
      RecordHeuristicMix(*txn, branch, "COMMIT", st);
    } else if (st.code() == StatusCode::kNotFound) {
      // It voted COMMIT, yet holds no such branch and no record that it
      // committed one (Pact's participants keep a commit marker): its work
      // may be gone. Not retried for ever, and never hidden: operators see
      // it beside the heuristic mixes.
      RecordHeuristicMix(*txn, branch, "COMMIT",
                         st.WithContext("voted COMMIT, then held no branch and no record of "
                                        "committing it (heuristic hazard)"));
    } else {
      txn->MoveBranch(branch, BranchState::kCommitPending);
      branch->last_error = st.ToString();
      all_done = false;
    }
  }
  for (const auto& b : txn->branches) {
    if (b.state == BranchState::kCommitPending) all_done = false;
  }
  return all_done;
}

void TwoPhaseCommit::RecordHeuristicMix(Txn& txn, BranchProgress* branch, const char* decision,
                                        const Status& answer) {
  if (branch->state == BranchState::kHeuristicMixed) return;  // reported by the participant
  txn.MoveBranch(branch, BranchState::kHeuristicMixed);
  branch->last_error = answer.ToString();
  heuristic_mixes_->Add();
  HeuristicRecord record{txn.id, branch->participant,
                         /*committed=*/std::string(decision) == "ABORT", decision, runtime_.clock->WallMillis()};
  Status st = journal_->PutHeuristic(record);
  LOG(ERROR) << "txn " << txn.id << " HEURISTIC MIX participant=" << branch->participant
             << " decided=" << decision << " answer=\"" << answer.message() << "\""
             << (st.ok() ? "" : " (not journaled: " + st.ToString() + ")");
}

void TwoPhaseCommit::Finish(const std::shared_ptr<Txn>& txn) {
  CrashPoint("before_end_logged");
  (void)Transition(txn, TxnState::kCommitted);
}

size_t TwoPhaseCommit::PendingRetries() {
  std::lock_guard<std::mutex> lock(retry_mu_);
  return pending_.size();
}

void TwoPhaseCommit::ResumeCommit(const std::shared_ptr<Txn>& txn) { Schedule(txn, 0); }

void TwoPhaseCommit::Schedule(const std::shared_ptr<Txn>& txn, int delay_ms) {
  std::lock_guard<std::mutex> lock(retry_mu_);
  TimePoint due = runtime_.clock->Now() + Millis(delay_ms);
  auto [it, inserted] = pending_.try_emplace(txn->id, Pending{txn, due, delay_ms});
  if (!inserted) it->second.due = due;
  due_.emplace(due, txn->id);
  retry_cv_.notify_all();
}

void TwoPhaseCommit::RetryNow(const std::string& txn_id) {
  std::lock_guard<std::mutex> lock(retry_mu_);
  auto it = pending_.find(txn_id);
  if (it == pending_.end()) return;
  it->second.due = runtime_.clock->Now();
  due_.emplace(it->second.due, txn_id);
  retry_cv_.notify_all();
}

// Up to this many transactions are retried at once, so one frozen
// participant cannot hold up the commits of all the others.
constexpr size_t kMaxConcurrentRetries = 32;

std::vector<TwoPhaseCommit::Pending> TwoPhaseCommit::TakeDue() {
  std::vector<Pending> batch;
  TimePoint now = runtime_.clock->Now();
  while (!due_.empty() && due_.begin()->first <= now && batch.size() < kMaxConcurrentRetries) {
    auto [due, id] = *due_.begin();
    due_.erase(due_.begin());
    auto it = pending_.find(id);
    if (it == pending_.end() || it->second.due != due) continue;  // stale entry
    batch.push_back(it->second);
    pending_.erase(it);
  }
  return batch;
}

void TwoPhaseCommit::RunRetries(const std::vector<Pending>& batch) {
  std::vector<char> done(batch.size());
  runtime_.fan_out(batch.size(), [&](size_t i) { done[i] = Redrive(batch[i].txn); });
  for (size_t i = 0; i < batch.size(); ++i) {
    if (done[i]) continue;
    int next = std::min(std::max(batch[i].backoff_ms * 2, options_.commit_retry_initial_ms),
                        options_.commit_retry_max_ms);
    Schedule(batch[i].txn, next);
  }
}

void TwoPhaseCommit::Tick() {
  std::vector<Pending> batch;
  {
    std::lock_guard<std::mutex> lock(retry_mu_);
    batch = TakeDue();
  }
  RunRetries(batch);
}

void TwoPhaseCommit::RetryLoop() {
  std::unique_lock<std::mutex> lock(retry_mu_);
  while (!stopping_) {
    if (due_.empty()) {
      retry_cv_.wait(lock);
      continue;
    }
    if (due_.begin()->first > runtime_.clock->Now()) {
      retry_cv_.wait_until(lock, due_.begin()->first);
      continue;
    }
    std::vector<Pending> batch = TakeDue();
    lock.unlock();
    RunRetries(batch);
    lock.lock();
  }
}

}  // namespace pact
