#include "coordinator/two_phase_commit.h"

#include <algorithm>

#include <glog/logging.h>

#include "common/clock.h"
#include "common/crash_point.h"
#include "common/parallel.h"

namespace pact {
namespace {

// The moves the protocol makes; anything else is a bug.
bool IsAllowed(TxnState from, TxnState to) {
  switch (from) {
    case TxnState::kActive:
      return to == TxnState::kPreparing || to == TxnState::kAborting;
    case TxnState::kPreparing:
      return to == TxnState::kCommitting || to == TxnState::kCommitted ||
             to == TxnState::kAborting;
    case TxnState::kCommitting:
      return to == TxnState::kCommitted;
    case TxnState::kAborting:
      return to == TxnState::kAborted;
    case TxnState::kCommitted:
    case TxnState::kAborted:
      return false;
  }
  return false;
}

std::string Join(const std::vector<std::string>& names) {
  std::string out;
  for (const auto& n : names) out += (out.empty() ? "" : ",") + n;
  return out;
}

std::vector<std::string> BranchNames(Txn& txn) {
  std::lock_guard<std::mutex> lock(txn.mu);
  std::vector<std::string> names;
  for (const auto& b : txn.branches) names.push_back(b.participant);
  return names;
}

}  // namespace

const char* BranchStateName(BranchState state) {
  switch (state) {
    case BranchState::kEnlisted: return "enlisted";
    case BranchState::kPrepared: return "prepared";
    case BranchState::kReadOnly: return "read-only";
    case BranchState::kCommitPending: return "commit pending";
    case BranchState::kCommitted: return "committed";
    case BranchState::kRolledBack: return "rolled back";
    case BranchState::kRollbackFailed: return "rollback unacknowledged";
    case BranchState::kHeuristicMixed: return "HEURISTIC MIX";
  }
  return "?";
}

TwoPhaseCommit::TwoPhaseCommit(ProtocolOptions options, Journal* journal,
                               Participants* participants,
                               std::function<void(const std::shared_ptr<Txn>&)> on_finished,
                               Counter* heuristic_mixes)
    : options_(options),
      journal_(journal),
      participants_(participants),
      on_finished_(std::move(on_finished)),
      heuristic_mixes_(heuristic_mixes),
      retry_thread_([this] { RetryLoop(); }) {}

TwoPhaseCommit::~TwoPhaseCommit() { Stop(); }

void TwoPhaseCommit::Stop() {
  {
    std::lock_guard<std::mutex> lock(retry_mu_);
    stopping_ = true;
  }
  retry_cv_.notify_all();
  if (retry_thread_.joinable()) retry_thread_.join();
}

bool TwoPhaseCommit::Claim(Txn& txn, TxnState to, const std::string& reason) {
  std::lock_guard<std::mutex> lock(txn.mu);
  if (txn.state != TxnState::kActive) return false;
  txn.state = to;
  if (!reason.empty()) txn.reason = reason;
  txn.changed.notify_all();
  return true;
}

Status TwoPhaseCommit::Transition(const std::shared_ptr<Txn>& txn, TxnState to,
                                  const std::string& reason) {
  CommitRecord record;
  {
    std::lock_guard<std::mutex> lock(txn->mu);
    if (txn->state == to) return Status::Ok();
    if (!IsAllowed(txn->state, to)) {
      return Status::Internal(std::string("illegal transition ") + TxnStateName(txn->state) +
                              " -> " + TxnStateName(to) + " of " + txn->id);
    }
    if (to == TxnState::kCommitting) {
      record.txn_id = txn->id;
      record.decided_at_ms = WallMillis();
      for (const auto& b : txn->branches) {
        if (b.vote == Vote::kCommit) record.branches.push_back(b.participant);
      }
    }
  }
  if (to == TxnState::kCommitting) {
    // Journal first: nobody may hear COMMITTED before the record is on disk.
    RETURN_NOT_OK(journal_->LogCommit(record));
  }
  {
    std::lock_guard<std::mutex> lock(txn->mu);
    txn->state = to;
    if (!reason.empty()) txn->reason = reason;
    txn->changed.notify_all();
  }
  if (to == TxnState::kCommitted || to == TxnState::kAborted) on_finished_(txn);
  return Status::Ok();
}

Result<CommitOutcome> TwoPhaseCommit::Commit(const std::shared_ptr<Txn>& txn) {
  const std::vector<std::string> names = BranchNames(*txn);
  if (names.empty()) {
    // Nothing was enlisted: there is nothing to make durable.
    Status st = Transition(txn, TxnState::kCommitted);
    LOG_IF(ERROR, !st.ok()) << st.ToString();
    return CommitOutcome{TxnState::kCommitted, ""};
  }
  if (names.size() == 1) return CommitOnePhase(txn, names[0]);

  // Phase one: every branch prepares in parallel, each bounded by the timeout.
  std::vector<Result<Vote>> votes(names.size(), Status::Internal("prepare not sent"));
  RunInParallel(names.size(), [&](size_t i) {
    votes[i] = participants_->Prepare(names[i], txn->id, options_.prepare_timeout_ms);
    if (i == 0) CrashPoint("after_prepare_sent");
  });

  std::string abort_reason;
  {
    std::lock_guard<std::mutex> lock(txn->mu);
    for (size_t i = 0; i < names.size(); ++i) {
      BranchProgress* branch = txn->FindBranch(names[i]);
      if (votes[i].status().code() == StatusCode::kAborted) {
        // An ABORT vote with the participant's reason.
        branch->vote = Vote::kAbort;
        branch->state = BranchState::kRolledBack;
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
        case Vote::kCommit: branch->state = BranchState::kPrepared; break;
        case Vote::kReadOnly: branch->state = BranchState::kReadOnly; break;
        case Vote::kAbort:
          branch->state = BranchState::kRolledBack;
          if (abort_reason.empty()) abort_reason = "participant " + names[i] + " voted ABORT";
          break;
      }
    }
  }
  CrashPoint("after_votes_collected");

  if (!abort_reason.empty()) {
    Status st = Transition(txn, TxnState::kAborting, abort_reason);
    LOG_IF(ERROR, !st.ok()) << st.ToString();
    Abort(txn);
    return CommitOutcome{TxnState::kAborted, abort_reason};
  }

  bool any_commit_vote = std::any_of(votes.begin(), votes.end(),
                                     [](const Result<Vote>& v) { return *v == Vote::kCommit; });
  if (!any_commit_vote) {
    // All READ_ONLY: no branch holds anything; no journal write needed.
    Status st = Transition(txn, TxnState::kCommitted);
    LOG_IF(ERROR, !st.ok()) << st.ToString();
    return CommitOutcome{TxnState::kCommitted, ""};
  }

  Status logged = Transition(txn, TxnState::kCommitting);
  if (!logged.ok()) {
    std::string reason = "commit decision could not be made durable: " + logged.ToString();
    Status st = Transition(txn, TxnState::kAborting, reason);
    LOG_IF(ERROR, !st.ok()) << st.ToString();
    Abort(txn);
    return CommitOutcome{TxnState::kAborted, reason};
  }
  CrashPoint("after_decision_logged");

  // Phase two: the decision is durable, so the answer is COMMITTED whatever
  // the branches say now; the ones that do not acknowledge are retried.
  if (SendCommits(txn, /*first_round=*/true)) {
    Finish(txn);
  } else {
    Schedule(txn, options_.commit_retry_initial_ms);
  }
  return CommitOutcome{TxnState::kCommitted, ""};
}

Result<CommitOutcome> TwoPhaseCommit::CommitOnePhase(const std::shared_ptr<Txn>& txn,
                                             const std::string& participant) {
  // The participant decides alone; nothing is journaled. A lost reply is
  // re-asked: the participant answers a repeated one-phase commit from what
  // it durably knows (committed, or no such branch = rolled back).
  Status st;
  int backoff_ms = options_.commit_retry_initial_ms;
  for (int attempt = 1; attempt <= options_.one_phase_attempts; ++attempt) {
    st = participants_->Commit(participant, txn->id, /*one_phase=*/true);
    if (st.code() != StatusCode::kUnavailable) break;
    if (attempt < options_.one_phase_attempts) {
      std::this_thread::sleep_for(Millis(backoff_ms));
      backoff_ms = std::min(backoff_ms * 2, options_.commit_retry_max_ms);
    }
  }
  {
    std::lock_guard<std::mutex> lock(txn->mu);
    BranchProgress* branch = txn->FindBranch(participant);
    branch->attempts++;
    branch->state = st.ok() ? BranchState::kCommitted : BranchState::kRolledBack;
    if (!st.ok()) branch->last_error = st.ToString();
  }
  if (st.ok()) {
    Status t = Transition(txn, TxnState::kCommitted);
    LOG_IF(ERROR, !t.ok()) << t.ToString();
    return CommitOutcome{TxnState::kCommitted, ""};
  }
  if (st.code() == StatusCode::kUnavailable) {
    // Honest answer: we do not know. The participant rolls the branch back at
    // its deadline unless the commit reached it.
    LOG(ERROR) << "txn " << txn->id << " one-phase commit outcome unknown at " << participant
               << ": " << st.ToString();
    return Status::Unavailable("one-phase commit outcome unknown: " + st.message());
  }
  std::string reason = "participant " + participant + " could not commit: " + st.ToString();
  Status t = Transition(txn, TxnState::kAborting, reason);
  LOG_IF(ERROR, !t.ok()) << t.ToString();
  Abort(txn);
  return CommitOutcome{TxnState::kAborted, reason};
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
  std::vector<Status> results(to_tell.size());
  RunInParallel(to_tell.size(), [&](size_t i) {
    results[i] = participants_->Rollback(to_tell[i], txn->id);
  });
  std::vector<std::string> all;
  {
    std::lock_guard<std::mutex> lock(txn->mu);
    for (size_t i = 0; i < to_tell.size(); ++i) {
      BranchProgress* branch = txn->FindBranch(to_tell[i]);
      branch->attempts++;
      if (results[i].ok()) {
        branch->state = BranchState::kRolledBack;
      } else if (results[i].code() == StatusCode::kHeuristicMixed) {
        RecordHeuristicMix(*txn, branch, "ABORT", results[i]);
      } else {
        // Presumed abort makes this safe: a prepared branch asks us and hears
        // ABORTED; an unprepared one rolls back at its deadline.
        branch->state = BranchState::kRollbackFailed;
        branch->last_error = results[i].ToString();
      }
    }
    for (const auto& b : txn->branches) all.push_back(b.participant);
  }
  LOG(WARNING) << "txn " << txn->id << " ABORTED participants=" << Join(all)
               << " reason=\"" << reason << "\"";
  Status st = Transition(txn, TxnState::kAborted);
  LOG_IF(ERROR, !st.ok()) << st.ToString();
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
  std::vector<Status> results(to_tell.size());
  RunInParallel(to_tell.size(), [&](size_t i) {
    results[i] = participants_->Commit(to_tell[i], txn->id, /*one_phase=*/false);
    if (first_round && i == 0) CrashPoint("after_first_commit_sent");
  });
  bool all_done = true;
  std::lock_guard<std::mutex> lock(txn->mu);
  for (size_t i = 0; i < to_tell.size(); ++i) {
    BranchProgress* branch = txn->FindBranch(to_tell[i]);
    branch->attempts++;
    if (branch->state == BranchState::kHeuristicMixed) continue;  // reported meanwhile
    const Status& st = results[i];
    if (st.ok()) {
      branch->state = BranchState::kCommitted;
    } else if (st.code() == StatusCode::kHeuristicMixed) {
      RecordHeuristicMix(*txn, branch, "COMMIT", st);
    } else if (st.code() == StatusCode::kNotFound) {
      // XA's NOTA: the participant holds no such branch any more. After a
      // COMMIT decision that means it already committed (and forgot it).
      LOG(WARNING) << "txn " << txn->id << ": " << to_tell[i]
                   << " has no branch to commit; taking it as committed: " << st.ToString();
      branch->state = BranchState::kCommitted;
    } else {
      branch->state = BranchState::kCommitPending;
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
  branch->state = BranchState::kHeuristicMixed;
  branch->last_error = answer.ToString();
  heuristic_mixes_->Add();
  HeuristicRecord record{txn.id, branch->participant,
                         /*committed=*/std::string(decision) == "ABORT", decision, WallMillis()};
  Status st = journal_->PutHeuristic(record);
  LOG(ERROR) << "txn " << txn.id << " HEURISTIC MIX participant=" << branch->participant
             << " decided=" << decision << " answer=\"" << answer.message() << "\""
             << (st.ok() ? "" : " (not journaled: " + st.ToString() + ")");
}

void TwoPhaseCommit::Finish(const std::shared_ptr<Txn>& txn) {
  CrashPoint("before_end_logged");
  journal_->LogEnd(txn->id);
  Status st = Transition(txn, TxnState::kCommitted);
  LOG_IF(ERROR, !st.ok()) << st.ToString();
}

size_t TwoPhaseCommit::PendingRetries() {
  std::lock_guard<std::mutex> lock(retry_mu_);
  return pending_.size();
}

void TwoPhaseCommit::ResumeCommit(const std::shared_ptr<Txn>& txn) { Schedule(txn, 0); }

void TwoPhaseCommit::Schedule(const std::shared_ptr<Txn>& txn, int delay_ms) {
  std::lock_guard<std::mutex> lock(retry_mu_);
  TimePoint due = SteadyClock::now() + Millis(delay_ms);
  auto [it, inserted] = pending_.try_emplace(txn->id, Pending{txn, due, delay_ms});
  if (!inserted) it->second.due = due;
  due_.emplace(due, txn->id);
  retry_cv_.notify_all();
}

void TwoPhaseCommit::RetryNow(const std::string& txn_id) {
  std::lock_guard<std::mutex> lock(retry_mu_);
  auto it = pending_.find(txn_id);
  if (it == pending_.end()) return;
  it->second.due = SteadyClock::now();
  due_.emplace(it->second.due, txn_id);
  retry_cv_.notify_all();
}

void TwoPhaseCommit::RetryLoop() {
  // Up to this many transactions are retried at once, so one frozen
  // participant cannot hold up the commits of all the others.
  constexpr size_t kMaxConcurrentRetries = 32;
  std::unique_lock<std::mutex> lock(retry_mu_);
  while (!stopping_) {
    if (due_.empty()) {
      retry_cv_.wait(lock);
      continue;
    }
    if (due_.begin()->first > SteadyClock::now()) {
      retry_cv_.wait_until(lock, due_.begin()->first);
      continue;
    }
    std::vector<Pending> batch;
    while (!due_.empty() && due_.begin()->first <= SteadyClock::now() &&
           batch.size() < kMaxConcurrentRetries) {
      auto [due, id] = *due_.begin();
      due_.erase(due_.begin());
      auto it = pending_.find(id);
      if (it == pending_.end() || it->second.due != due) continue;  // stale entry
      batch.push_back(it->second);
      pending_.erase(it);
    }
    lock.unlock();
    std::vector<bool> done(batch.size());
    RunInParallel(batch.size(), [&](size_t i) {
      done[i] = SendCommits(batch[i].txn, /*first_round=*/false);
    });
    for (size_t i = 0; i < batch.size(); ++i) {
      if (done[i]) {
        Finish(batch[i].txn);
      } else {
        int next = std::min(std::max(batch[i].backoff_ms * 2, options_.commit_retry_initial_ms),
                            options_.commit_retry_max_ms);
        Schedule(batch[i].txn, next);
      }
    }
    lock.lock();
  }
}

}  // namespace pact
