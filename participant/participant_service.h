// The database-independent half of a participant adapter: the branch table,
// fencing, branch openings, deadlines for abandoned branches, and asking the
// coordinator about prepared branches left waiting (after a crash, or when a
// decision never arrives). The Backend does the database's half.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "common/clock.h"
#include "common/metrics.h"
#include "common/protocol.h"
#include "common/runtime.h"
#include "common/txn_id.h"
#include "participant/backend.h"
#include "participant/coordinator_link.h"
#include "participant/state_store.h"

namespace pact {

struct ParticipantOptions {
  ParticipantAddress self;  // name and where the coordinator reaches us
  // Names this run of the process; unique per start (main picks a random
  // one). Every branch opens as "<incarnation>.<n>", the name execute
  // answers and prepare checks, so a branch that a restart (or a rollback)
  // lost can never be silently re-opened within the same transaction: the
  // client sees a second opening, and a prepare for the first finds none.
  std::string incarnation;
  // A branch's time when execute names none, and the most it may ask for.
  int64_t default_branch_timeout_ms = 30000;
  int64_t max_branch_timeout_ms = 3600000;
  // Transactions whose branch ended here (committed, rolled back) that are
  // remembered, so that a late statement of one opens nothing new.
  size_t ended_kept = 10000;
  // A prepared branch waits this long before asking its coordinator, and an
  // active one between asking whether its transaction can still commit.
  int inquiry_interval_ms = 1000;
  // An active branch asks first after this: a statement with an id nobody
  // handed out (a stranger's, a stale one) holds its locks this long only.
  int first_active_inquiry_ms = 200;
  int housekeeping_interval_ms = 100;  // deadline checks
  // How often the database's own list of prepared branches is compared with
  // the ones held here (Backend::FindOrphans).
  int orphan_check_interval_ms = 10000;
  // Its clock times deadlines, inquiries and orphan checks (the housekeeping
  // threads only pace their rounds in real time); tests and the simulation
  // pass their own.
  Runtime runtime;
};

// A branch's life in this service. Every change goes through
// ParticipantService::Move: the database's half first, then the phase. A
// branch is born kActive (Execute opens it) or kPrepared (the database holds
// it prepared: restored at Start, or adopted as an orphan).
enum class BranchPhase {
  // Open in the database and taking statements. Nothing durable backs it: a
  // restart loses it (the client learns so from the incarnation in its
  // opening's name), and its deadline rolls it back.
  kActive,
  // Voted COMMIT. The backend's prepared record backs it, so it survives a
  // crash (Backend::RecoverPrepared); it waits for the decision and asks its
  // coordinator. An operator's decision goes to the state store's heuristics
  // before it is applied.
  kPrepared,
  // Committed or rolled back in the database, or never opened; the entry is
  // forgotten. A commit stays answerable from the backend (IsCommitted), a
  // rollback from nothing held (presumed abort), an operator's decision from
  // its heuristic record until it is reconciled.
  kDone,
};

const char* BranchPhaseName(BranchPhase phase);
// Whether a branch may move from `from` to `to` (the table is in the .cc).
// Never to the phase it is in: a repeated message is answered by its verb (a
// second prepare votes again, a commit of a forgotten branch asks the
// database), not by a move.
bool BranchMoveAllowed(BranchPhase from, BranchPhase to);

struct BranchSnapshot {
  std::string txn_id;
  bool prepared = false;
  int64_t age_ms = 0;          // since begun (active) or prepared
  int64_t deadline_in_ms = 0;  // active only
};

class ParticipantService {
 public:
  ParticipantService(ParticipantOptions options, Backend* backend, StateStore* state,
                     CoordinatorLink* coordinator);
  ~ParticipantService();

  // Restores the branches that were prepared when the process stopped (they
  // stay prepared and ask their coordinator) and starts the housekeeping
  // threads: one rolls back abandoned branches, one talks to the
  // coordinator (registration, inquiries, heuristics) and reconciles with
  // the database, so a frozen coordinator never delays a deadline rollback.
  Status Start();
  // Stops housekeeping and rolls back the branches that are not prepared, so
  // a clean stop leaves no locks behind; prepared ones stay durable.
  void Stop();

  const std::string& name() const { return options_.self.name; }
  std::string backend_name() const { return backend_->Name(); }
  bool registered() const;

  // Opens the branch on first use with `timeout_ms` to live (<= 0: the
  // default), refused (kFenced) for a transaction of a coordinator run that
  // was replaced (it can never commit). Sets *opening to the branch's opening
  // whenever one is open, also when the statement fails.
  Result<QueryResult> Execute(const std::string& txn_id, const std::string& sql,
                              const std::vector<SqlValue>& params, int64_t timeout_ms,
                              std::string* opening);
  // An ABORT vote comes back as kAborted with the reason; so does a branch
  // not opened as `opening` (the client's work there is gone), or past its
  // deadline.
  Result<Vote> Prepare(const Fence& fence, const std::string& txn_id,
                       const std::string& opening);
  Status Commit(const Fence& fence, const std::string& txn_id, bool one_phase);
  // The client gives up its active branch opened as `opening` (no fence: the
  // opening's name is the client's proof). A prepared branch is refused.
  Status Abandon(const std::string& txn_id, const std::string& opening);
  Status Rollback(const Fence& fence, const std::string& txn_id);
  Result<std::vector<BranchSnapshot>> Recover(const Fence& fence);
  std::vector<BranchSnapshot> ListBranches();

  // An operator's heuristic decision for a prepared branch: recorded durably,
  // then applied. Reconciled with the coordinator's decision later.
  Status Resolve(const std::string& txn_id, bool commit);
  std::vector<HeuristicDecision> ListHeuristics() { return state_->Heuristics(); }
  Status ForgetHeuristic(const std::string& txn_id) { return state_->ForgetHeuristic(txn_id); }

  const MetricsRegistry& metrics() const { return metrics_.registry; }
  MetricsRegistry& metrics() { return metrics_.registry; }

  // One round of housekeeping: both threads' work. Threads call the halves
  // unless options.runtime.background_threads is false; then the owner calls
  // this.
  void Tick();

 private:
  struct Entry {
    explicit Entry(BranchPhase born) : phase(born) {}
    std::mutex mu;
    std::unique_ptr<Branch> branch;  // guarded by mu
    std::string opening;             // guarded by mu; "" when restored or adopted
    BranchPhase phase;               // guarded by mu; changed by Move only
    TimePoint since;                 // guarded by mu; begun, or prepared
    TimePoint deadline;              // guarded by mu; kActive only
    TimePoint next_inquiry;          // guarded by mu; kPrepared only
  };
  using Entries = std::vector<std::pair<std::string, std::shared_ptr<Entry>>>;
  Entries AllEntries();

  std::shared_ptr<Entry> Lookup(const std::string& txn_id);
  // The database's half of a move: one call on the branch.
  using Step = Status (Branch::*)();
  // REQUIRES: entry->mu held. The one place a branch changes phase. A move
  // BranchMoveAllowed does not list is refused (kInternal, logged) and
  // nothing runs. Otherwise `step` runs first and the phase is published
  // after it: kPrepared starts the wait for an inquiry, kDone forgets the
  // entry. When the step fails the branch stays where it was and the error
  // is returned, unless `step_answer` is given: then the branch is let go
  // whatever the database answers (an unprepared branch holds nothing
  // durable) and the answer lands there.
  Status Move(const std::string& txn_id, Entry* entry, BranchPhase to, Step step = nullptr,
              Status* step_answer = nullptr);
  // A branch the database holds prepared and this process did not (restored
  // or adopted); it asks its coordinator from `first_inquiry` on.
  static std::shared_ptr<Entry> HeldPrepared(std::unique_ptr<Branch> branch, TimePoint since,
                                             TimePoint first_inquiry);
  // REQUIRES: entry->mu held. Begins the branch in the database and names
  // this opening.
  Status Open(const std::string& txn_id, Entry* entry, int64_t timeout_ms);
  // kFenced when txn_id's coordinator run was replaced by a newer one.
  Status CheckNotSuperseded(const std::string& txn_id);
  Clock* clock() const { return options_.runtime.clock; }
  // Answers commit for a branch not held in memory.
  Status CommitForgotten(const std::string& txn_id, bool one_phase);
  // The coordinator decided `committed` for a branch an operator decided
  // heuristically: OK when they agree, kHeuristicMixed when not.
  Status CompareWithHeuristic(const HeuristicDecision& heuristic, bool committed);
  // The same, for the coordinator's own decision message: an agreeing
  // record is reconciled then and there, so that no later inquiry (about a
  // transaction the coordinator has since forgotten) can report a false mix.
  Status CompareAndSettleHeuristic(const HeuristicDecision& heuristic, bool committed);
  // REQUIRES: entry->mu held and the branch prepared. Applies a recorded
  // heuristic decision.
  Status ApplyHeuristic(const std::string& txn_id, Entry* entry, bool commit);
  // Asks the coordinator about each heuristic decision; forgets those that
  // agree with it and reports those that do not.
  void ReconcileHeuristics();
  // Admits the caller's fence. A fence is only its sender's claim, and
  // anyone who reaches our port can send one: one that would raise its
  // coordinator's epoch (or names a coordinator not seen before) is stored
  // only once the coordinator confirms it (ConfirmRaise), since a stored
  // epoch fences off every lower one for good. When it raises the epoch, the
  // unprepared branches of older epochs can only roll back: done at once.
  Status AdmitFence(const Fence& fence);
  // A coordinator decides its own transactions only (the id names it).
  Status CheckOwner(const Fence& fence, const std::string& txn_id);
  // Whether admitting `fence` would store an epoch not confirmed yet.
  bool RaisesEpoch(const Fence& fence);
  // REQUIRES: raise_mu_ held. OK when the coordinator at the configured
  // address is fence.coordinator, at fence.epoch or later; kFenced when it
  // is another one or an older epoch, kUnavailable when it cannot be asked.
  Status ConfirmRaise(const Fence& fence);
  // REQUIRES: entry->mu held. The fence is still the newest of its
  // coordinator (re-checked under the branch's lock, so a fence raised
  // meanwhile wins over a message admitted just before).
  Status CheckFence(const Fence& fence);
  // Unprepared branches of a coordinator run older than the highest epoch
  // admitted can never commit: rolls back those not busy now (the others at
  // the next housekeeping round).
  void RollBackSupersededBranches();
  // One housekeeping round: branches past their deadline, and branches of
  // replaced coordinator runs.
  void RollBackAbandonedBranches();
  // REQUIRES: entry->mu held.
  void RollBackSupersededLocked(const std::string& txn_id, Entry* entry,
                                const std::string& coordinator, int64_t epoch);
  // Local decisions, no fence: the deadline passed, or the coordinator answered.
  void RollBackExpired(const std::string& txn_id, const std::shared_ptr<Entry>& entry);
  // Prepared: applies the decision the coordinator answers. Active: rolls
  // back a branch whose transaction the coordinator no longer knows as
  // undecided (it ended without this opening, or was never handed out:
  // nothing can commit it), instead of holding its locks until the deadline.
  void ResolveByInquiry(const std::string& txn_id, const std::shared_ptr<Entry>& entry);
  // REQUIRES: mu_ held. Remembers that txn_id's branch here ended `how`.
  void RememberEnded(const std::string& txn_id, const char* how);
  // Prepared branches the database holds and this process had lost track of.
  void AdoptOrphans();
  // The two halves of Tick().
  void RollBackExpiredBranches();
  void TalkToCoordinator();
  // Runs `round` every `interval_ms` until Stop.
  void Loop(int interval_ms, void (ParticipantService::*round)());

  struct Metrics {
    MetricsRegistry registry;
    Counter* votes_commit;
    Counter* votes_abort;
    Counter* votes_read_only;
    Counter* commits;
    Counter* rollbacks;
    Counter* deadline_rollbacks;
    Counter* heuristic_decisions;
    Counter* fences_refused;
  };
  void RegisterMetrics();

  const ParticipantOptions options_;
  Metrics metrics_;
  Backend* const backend_;
  StateStore* const state_;
  CoordinatorLink* const coordinator_;

  // One epoch raise is confirmed at a time: the first calls of a restarted
  // coordinator arrive together, and those behind the first find its epoch
  // admitted instead of asking again. Never held on the hot path.
  std::mutex raise_mu_;

  mutable std::mutex mu_;
  std::map<std::string, std::shared_ptr<Entry>> branches_;  // guarded by mu_
  std::unordered_map<std::string, const char*> ended_;      // guarded by mu_; how each ended
  std::deque<std::string> ended_order_;                      // guarded by mu_; oldest first
  bool registered_ = false;                                  // guarded by mu_
  std::string register_failure_;                             // guarded by mu_; "" if none
  int64_t branches_opened_ = 0;                              // guarded by mu_
  TimePoint next_reconcile_;     // TalkToCoordinator only
  TimePoint next_orphan_check_;  // TalkToCoordinator only

  std::mutex stop_mu_;
  std::condition_variable stop_cv_;
  bool stopping_ = false;  // guarded by stop_mu_
  std::vector<std::thread> housekeeping_;
};

}  // namespace pact
