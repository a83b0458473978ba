// The coordinator's core: the transaction table, begin/reserve/commit/rollback,
// status and outcome inquiries, deadlines, the participant registry and
// recovery at start. Plain C++; the Thrift handler is a thin layer on top.
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "coordinator/coordinator_metrics.h"
#include "coordinator/id_reservations.h"
#include "coordinator/participants.h"
#include "coordinator/transaction.h"
#include "coordinator/two_phase_commit.h"
#include "journal/journal.h"

namespace pact {

struct CoordinatorOptions {
  std::string name = "pact";
  int64_t default_txn_timeout_ms = 30000;
  int64_t max_txn_timeout_ms = 3600000;
  int deadline_check_interval_ms = 100;
  size_t finished_txns_kept = 10000;  // finished transactions kept for status
  int max_id_block = 1024;            // ids one reserveTxnIds may hand out
  int64_t id_block_valid_ms = 10000;  // a reserved id is begun within this
  int64_t max_unused_ids = 1 << 24;   // reserved and not used yet, over all clients
  size_t max_branches = 256;          // per transaction
  ProtocolOptions protocol;
  Runtime runtime;
};

struct BeginInfo {
  std::string txn_id;
  int64_t timeout_ms = 0;
};

// Ids "<coordinator>.<epoch>.<seq>" for seq in [first_seq, first_seq + count).
struct IdBlock {
  std::string coordinator;
  int64_t epoch = 0;
  int64_t first_seq = 0;
  int count = 0;
  int64_t valid_ms = 0;  // each begun within this of the answer
  int64_t default_timeout_ms = 0;
  int64_t max_timeout_ms = 0;
};

class Coordinator {
 public:
  // `metrics` may be null: the coordinator then keeps its own.
  Coordinator(CoordinatorOptions options, Journal* journal, Participants* participants,
              CoordinatorMetrics* metrics = nullptr);
  ~Coordinator();

  // Recovery, then ready: raises the epoch, re-drives unfinished COMMIT
  // records, rolls back prepared branches this coordinator owns that have no
  // record (presumed abort). Participants that cannot be reached now resolve
  // their branches by asking later.
  Status Start();
  // A clean stop, before Stop: refuses new transactions, rolls back the
  // ACTIVE ones, and waits up to grace_ms for transactions being decided to
  // be decided and for commits to reach every branch, so that a clean stop
  // leaves nothing in doubt. Returns how many transactions are still open.
  size_t Drain(int grace_ms);
  // Stops the background work; unfinished commits stay in the journal.
  void Stop();

  // One round of background work: rolls back transactions past their
  // deadline and re-sends due commits. Threads call it unless
  // options.runtime.background_threads is false; then the owner does.
  void Tick();

  const std::string& name() const { return options_.name; }
  int64_t epoch() const { return epoch_; }
  bool ready() const { return ready_; }
  // Transactions collecting votes right now (see TwoPhaseCommit::Deciding).
  int64_t Deciding() const { return protocol_->Deciding(); }

  // One transaction, in the table at once (status shows it; its deadline
  // rolls it back).
  Result<BeginInfo> Begin(int64_t timeout_ms);
  // Up to `count` ids for a client to begin transactions with, without a
  // round trip each: one becomes a transaction at its first Commit or
  // Rollback, and only then, once (IdReservations).
  Result<IdBlock> ReserveIds(int count);
  // Runs the protocol over `branches`, every branch the client opened (each
  // with the participant's name for its opening). Idempotent: a repeated
  // call returns the outcome of the first, whose branch list stands. Two
  // openings at one participant mean the first one's work is lost: ABORTED.
  Result<CommitOutcome> Commit(const std::string& txn_id,
                               const std::vector<EnlistedBranch>& branches,
                               CommitReturn when = CommitReturn::kAfterBranches);
  // Rolls back a transaction not decided yet and tells `branches` (whose
  // openings may be unknown: a rollback is by transaction id).
  Status Rollback(const std::string& txn_id, const std::vector<EnlistedBranch>& branches);
  Result<TxnSnapshot> GetStatus(const std::string& txn_id);
  // A participant holding a branch asks what became of it: prepared, to
  // learn the decision; still active after a while, to learn whether anyone
  // can still commit it (kActive: not decided yet, or a reserved id).
  Result<Outcome> Inquire(const std::string& txn_id);
  // Open, recently finished and unfinished-from-the-journal transactions,
  // only those in `states` unless it is empty.
  std::vector<TxnSnapshot> ListTransactions(const std::vector<TxnState>& states);

  // Counters since start, by name (see the IDL's stats()).
  std::map<std::string, int64_t> Stats();
  const MetricsRegistry& metrics() const { return metrics_->registry; }

  Status RegisterParticipant(const ParticipantRecord& participant);
  std::vector<ParticipantRecord> ListParticipants();
  Status RemoveParticipant(const std::string& name, bool force);

  // Re-sends the pending commits of a COMMITTING transaction now.
  Status RetryCommit(const std::string& txn_id);

  // A participant reports an operator's heuristic decision; journaled when
  // it disagrees with this coordinator's decision.
  Status ReportHeuristic(HeuristicRecord heuristic);
  Result<std::vector<HeuristicRecord>> ListHeuristics() { return journal_->LoadHeuristics(); }
  Status ForgetHeuristic(const std::string& txn_id);

 private:
  // Commit without the measuring.
  Result<CommitOutcome> Decide(const std::string& txn_id,
                               const std::vector<EnlistedBranch>& branches, CommitReturn when);
  // NotFound with an explanation when the id is unknown.
  Result<std::shared_ptr<Txn>> Find(const std::string& txn_id);
  // Find, or the transaction a reserved id becomes at its first commit or
  // rollback.
  Result<std::shared_ptr<Txn>> FindOrStart(const std::string& txn_id);
  // A branch list as a client sent it: not too long, and for a commit, at
  // registered participants, each with its opening's name.
  Status CheckBranches(const std::vector<EnlistedBranch>& branches, bool for_commit);
  // The client's branch list becomes the transaction's, unless it has one
  // (a repeated ask) or is decided already.
  void AttachBranches(Txn& txn, const std::vector<EnlistedBranch>& branches);
  Status Recover();
  void OnFinished(const std::shared_ptr<Txn>& txn);
  void CheckDeadlines();
  void DeadlineLoop();
  TxnSnapshot Snapshot(Txn& txn);
  Clock* clock() const { return options_.runtime.clock; }
  // How long a caller waits for another caller's decision of the same
  // transaction before answering "still being decided".
  int DecidingWaitMs() const;

  const CoordinatorOptions options_;
  Journal* const journal_;
  Participants* const participants_;
  std::unique_ptr<TwoPhaseCommit> protocol_;

  std::atomic<int64_t> epoch_{0};
  std::atomic<int64_t> next_seq_{1};
  std::atomic<bool> ready_{false};
  // Start loaded the journal's decisions (recovery may still be running).
  std::atomic<bool> decisions_loaded_{false};
  std::atomic<bool> draining_{false};
  std::unique_ptr<CoordinatorMetrics> own_metrics_;  // when none was given
  CoordinatorMetrics* metrics_;
  std::atomic<int64_t> max_commit_latency_us_{0};

  std::mutex mu_;
  std::unordered_map<std::string, std::shared_ptr<Txn>> txns_;  // guarded by mu_
  std::deque<std::string> finished_;                           // guarded by mu_; oldest first
  std::map<std::string, ParticipantRecord> registry_;          // guarded by mu_
  // Deadlines of begun transactions by id, soonest first; each is checked
  // once. Ids rather than pointers: a finished transaction is freed at once.
  std::multimap<TimePoint, std::string> deadlines_;  // guarded by mu_
  IdReservations reserved_;                          // guarded by mu_

  std::mutex stop_mu_;
  std::condition_variable stop_cv_;
  bool stopping_ = false;  // guarded by stop_mu_
  std::thread deadline_thread_;
};

}  // namespace pact
