// The commit protocol: presumed-abort two-phase commit with the read-only
// and one-phase optimisations, and the background retries that carry a
// COMMIT decision to every branch.
#pragma once

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "common/metrics.h"
#include "common/runtime.h"
#include "coordinator/participants.h"
#include "coordinator/transaction.h"
#include "journal/journal.h"

namespace pact {

struct ProtocolOptions {
  // Called once when a decision's outcome became unknown because the journal
  // failed (the coordinator must stop; recovery decides). May be empty.
  std::function<void(const Status&)> on_journal_lost;
  int prepare_timeout_ms = 5000;        // per prepare RPC; no answer = ABORT vote
  int commit_retry_initial_ms = 100;    // first backoff after a failed commit message
  int commit_retry_max_ms = 10000;      // backoff cap
  int one_phase_attempts = 3;           // one-phase commits whose reply was lost are re-asked
};

// When a commit that decided COMMIT returns: once every branch acknowledged
// (the default: a read anywhere afterwards sees the commit), or as soon as
// the decision is durable, with phase two in the background. The answer is
// as final either way; only a read at a participant right after may still
// find the branch prepared (its rows locked, or their old versions).
enum class CommitReturn { kAfterBranches, kAtDecision };

struct CommitOutcome {
  TxnState state = TxnState::kAborted;  // kCommitted or kAborted
  std::string reason;                   // why it aborted
};

class TwoPhaseCommit {
 public:
  // `on_finished` is called once a transaction reaches COMMITTED or ABORTED.
  TwoPhaseCommit(ProtocolOptions options, Runtime runtime, Journal* journal,
                 Participants* participants,
                 std::function<void(const std::shared_ptr<Txn>&)> on_finished,
                 Counter* heuristic_mixes);
  ~TwoPhaseCommit();

  // The one place a transaction changes state, by the moves in the table in
  // two_phase_commit.cc; idempotent if already in `to`. Journal first (the
  // COMMIT record before COMMITTING, whose failure leaves the state unchanged;
  // the END record before COMMITTING becomes COMMITTED), then memory and the
  // waiters on txn->changed, then on_finished for COMMITTED and ABORTED.
  // Refused, changing nothing: an illegal move (kInternal, logged as a bug),
  // and with `only_from` a move from any other state (kFailedPrecondition).
  // Only a move to COMMITTING fails otherwise: callers of the others may
  // ignore the result.
  Status Transition(const std::shared_ptr<Txn>& txn, TxnState to, const std::string& reason = "",
                    std::optional<TxnState> only_from = std::nullopt);

  // Moves an ACTIVE transaction to `to` (kPreparing or kAborting) if it is
  // still ACTIVE; false if someone else moved it first. Under presumed abort
  // neither state is journaled.
  bool Claim(const std::shared_ptr<Txn>& txn, TxnState to, const std::string& reason = "");

  // REQUIRES: the caller claimed txn for kPreparing. Runs the protocol and
  // returns once the outcome is decided (and, for COMMITTED, durable), then
  // as `when` says. Branches that did not acknowledge the commit are retried
  // in the background.
  // kUnavailable: a one-phase commit whose outcome could not be learned.
  Result<CommitOutcome> Commit(const std::shared_ptr<Txn>& txn,
                               CommitReturn when = CommitReturn::kAfterBranches);

  // REQUIRES: the caller claimed txn for kAborting (or Commit decided ABORT).
  // Tells every branch that may hold work to roll back; ends ABORTED.
  void Abort(const std::shared_ptr<Txn>& txn);

  // Recovery: txn is COMMITTING from the journal; drive its pending branches.
  // (The retry queue also holds one-phase commits whose outcome is unknown:
  // they are asked again until the participant answers.)
  void ResumeCommit(const std::shared_ptr<Txn>& txn);

  // Retries the pending commits of txn now instead of at the next backoff.
  void RetryNow(const std::string& txn_id);

  // Re-sends the commits that are due. The retry thread calls it; without
  // background threads the owner does.
  void Tick();

  // Stops the retry thread; pending commits stay in the journal.
  void Stop();

  // Transactions whose commits wait for their next retry.
  size_t PendingRetries();

  // False once this coordinator must decide nothing more: a participant said
  // a newer run of it exists (fenced), or a decision's write failed so that
  // its outcome is unknown (only recovery from the journal can tell).
  bool deciding() const { return !fenced_ && !journal_lost_; }
  // Transactions collecting votes now (PREPARING): each may write a COMMIT
  // record soon, which the journal's group commit can wait for.
  int64_t Deciding() const { return deciding_.load(std::memory_order_relaxed); }
  Status WhyNotDeciding() const;

 private:
  Result<CommitOutcome> CommitOnePhase(const std::shared_ptr<Txn>& txn,
                                       const std::string& participant);
  // One one-phase commit message; kUnavailable: still unknown.
  Status AskOnePhase(const std::shared_ptr<Txn>& txn, const std::string& participant);
  // The participant's answer decides: COMMITTED, or ABORTED with its reason.
  CommitOutcome SettleOnePhase(const std::shared_ptr<Txn>& txn, const std::string& participant,
                               const Status& answer);
  // An answer about the caller (FENCED, not authenticated, not allowed), not
  // the branch: after an attempt whose outcome is unknown it settles nothing.
  static bool RefusesTheCaller(const Status& answer);
  // Such a refusal after an unknown attempt: the outcome stays unknown for
  // good (kUnavailable); the transaction stays PREPARING.
  Status OnePhaseUnknowable(const std::shared_ptr<Txn>& txn, const std::string& participant,
                            const Status& answer);
  // A retry of a queued transaction: its pending commits, or the unknown
  // outcome of its one-phase commit. True once it is finished.
  bool Redrive(const std::shared_ptr<Txn>& txn);
  // The COMMIT record's write failed. Answers ABORTED once no COMMIT record
  // can be on disk; otherwise the outcome is unknown (kUnavailable), nothing
  // is rolled back and this coordinator stops deciding.
  Result<CommitOutcome> AbandonDecision(const std::shared_ptr<Txn>& txn, const Status& failure);
  // Aborts txn (ABORTING, then every branch told) and answers ABORTED.
  CommitOutcome AbortWith(const std::shared_ptr<Txn>& txn, const std::string& reason);
  // Notes a participant's FENCED answer: a newer run of this coordinator exists.
  void NoteAnswer(const Status& answer);
  // Sends commit to every kPrepared/kCommitPending branch once, in parallel.
  // Returns true when every branch has acknowledged.
  bool SendCommits(const std::shared_ptr<Txn>& txn, bool first_round);
  // REQUIRES: txn->mu held. A participant answered that an operator decided
  // its branch against `decision`: journal it for operators, stop telling it.
  void RecordHeuristicMix(Txn& txn, BranchProgress* branch, const char* decision,
                          const Status& answer);
  // END record and COMMITTED, once every branch acknowledged.
  void Finish(const std::shared_ptr<Txn>& txn);
  void Schedule(const std::shared_ptr<Txn>& txn, int delay_ms);
  // The first round of phase two once the decision is durable; the branches
  // that did not acknowledge go to the retry queue.
  void PhaseTwo(const std::shared_ptr<Txn>& txn);
  // PhaseTwo on a worker thread, for a commit that returned at its
  // decision. Stop waits for it.
  void FinishInBackground(const std::shared_ptr<Txn>& txn);
  struct Pending;
  // REQUIRES: retry_mu_ held. Removes and returns the retries due now.
  std::vector<Pending> TakeDue();
  void RunRetries(const std::vector<Pending>& batch);
  void RetryLoop();

  const ProtocolOptions options_;
  const Runtime runtime_;
  Journal* const journal_;
  Participants* const participants_;
  const std::function<void(const std::shared_ptr<Txn>&)> on_finished_;
  Counter* const heuristic_mixes_;

  struct Pending {
    std::shared_ptr<Txn> txn;
    TimePoint due;
    int backoff_ms;
  };
  std::mutex retry_mu_;
  std::condition_variable retry_cv_;
  std::map<std::string, Pending> pending_;         // guarded by retry_mu_; by txn id
  std::multimap<TimePoint, std::string> due_;      // guarded by retry_mu_; may hold stale entries
  bool stopping_ = false;                   // guarded by retry_mu_
  int finishing_in_background_ = 0;         // guarded by retry_mu_; FinishInBackground tasks
  std::thread retry_thread_;

  // Keeps deciding_ in step with a published move.
  void CountDeciding(TxnState from, TxnState to);

  std::atomic<int64_t> deciding_{0};  // transactions in PREPARING
  std::atomic<bool> fenced_{false};
  std::atomic<bool> journal_lost_{false};
};

}  // namespace pact
