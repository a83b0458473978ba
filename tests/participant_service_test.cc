// The participant service over its seams: a scripted backend, an in-memory
// state store, a coordinator link and a clock the test controls. The phase
// table, fencing, ownership, branch openings, epoch raises, retries,
// deadlines, inquiries, orphan adoption, heuristics and the housekeeping
// threads, without a database, a network or a sleep.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "participant/participant_service.h"
#include "tests/call_gate.h"

namespace pact {
namespace {

using namespace std::chrono_literals;

// Time moves only when a test says so (Advance); safe to read from the
// housekeeping threads while the test moves it.
class ManualClock : public Clock {
 public:
  TimePoint Now() override { return TimePoint(Millis(kStartMs + elapsed_ms_)); }
  int64_t WallMillis() override { return kWallStartMs + elapsed_ms_; }
  void SleepFor(Millis d) override { Advance(d.count()); }
  void Advance(int64_t ms) { elapsed_ms_ += ms; }

 private:
  // Far from zero, so "the distant past" (a default TimePoint) stays past.
  static constexpr int64_t kStartMs = 1000000;
  static constexpr int64_t kWallStartMs = 1700000000000;
  std::atomic<int64_t> elapsed_ms_{0};
};

// Every branch call lands in one log; prepared branches survive "restarts"
// of the service (the backend object outlives it, like a database).
class ScriptedBackend : public Backend {
 public:
  std::string Name() const override { return "scripted"; }

  Result<std::unique_ptr<Branch>> Begin(const std::string& txn_id) override {
    return std::unique_ptr<Branch>(new ScriptedBranch(this, txn_id));
  }
  Result<std::vector<RecoveredBranch>> RecoverPrepared() override {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<RecoveredBranch> out;
    for (const auto& id : prepared_) out.push_back({id, 0, std::make_unique<ScriptedBranch>(this, id)});
    return out;
  }
  Result<bool> IsCommitted(const std::string& txn_id) override {
    std::lock_guard<std::mutex> lock(mu_);
    return committed_.count(txn_id) > 0;
  }
  Result<std::vector<RecoveredBranch>> FindOrphans(const std::set<std::string>& held) override {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<RecoveredBranch> out;
    for (const auto& id : prepared_) {
      if (held.count(id) == 0) out.push_back({id, 0, std::make_unique<ScriptedBranch>(this, id)});
    }
    return out;
  }

  void AddPrepared(const std::string& txn_id) {
    std::lock_guard<std::mutex> lock(mu_);
    prepared_.insert(txn_id);
  }
  int Count(const std::string& verb, const std::string& txn_id) {
    std::lock_guard<std::mutex> lock(mu_);
    return calls_[verb + " " + txn_id];
  }
  // For the housekeeping threads: true once `verb` was called `n` times on
  // the branch (and its effect is visible), false if not within `timeout`.
  bool WaitFor(const std::string& verb, const std::string& txn_id, int n,
               std::chrono::milliseconds timeout) {
    std::unique_lock<std::mutex> lock(mu_);
    return noted_.wait_for(lock, timeout, [&] { return calls_[verb + " " + txn_id] >= n; });
  }
  bool Prepared(const std::string& txn_id) {
    std::lock_guard<std::mutex> lock(mu_);
    return prepared_.count(txn_id) > 0;
  }

 private:
  class ScriptedBranch : public Branch {
   public:
    ScriptedBranch(ScriptedBackend* backend, std::string txn_id)
        : backend_(backend), txn_id_(std::move(txn_id)) {}
    Result<QueryResult> Execute(const std::string&, const std::vector<SqlValue>&) override {
      backend_->Note("execute", txn_id_);
      return QueryResult{};
    }
    Result<Vote> Prepare(std::string*) override {
      backend_->Note("prepare", txn_id_, [this] { backend_->prepared_.insert(txn_id_); });
      return Vote::kCommit;
    }
    Status CommitOnePhase() override { return Finish("commit", true); }
    Status CommitPrepared() override { return Finish("commit", true); }
    Status Rollback() override { return Finish("rollback", false); }

   private:
    Status Finish(const char* verb, bool committed) {
      backend_->Note(verb, txn_id_, [this, committed] {
        backend_->prepared_.erase(txn_id_);
        if (committed) backend_->committed_.insert(txn_id_);
      });
      return Status::Ok();
    }
    ScriptedBackend* const backend_;
    const std::string txn_id_;
  };

  // One call and its effect on the database (run under mu_), seen together.
  void Note(const std::string& verb, const std::string& txn_id,
            const std::function<void()>& effect = [] {}) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      calls_[verb + " " + txn_id]++;
      effect();
    }
    noted_.notify_all();
  }

  std::mutex mu_;
  std::condition_variable noted_;
  std::map<std::string, int> calls_;
  std::set<std::string> prepared_;
  std::set<std::string> committed_;
};

// The coordinator as the test scripts it. Inquire can be frozen (it blocks
// until thawed), like a coordinator stopped with SIGSTOP. Identify answers
// as coordinator c1 at its current run's epoch (Restart raises it), or
// UNAVAILABLE while it is down.
class ScriptedLink : public CoordinatorLink {
 public:
  Result<Outcome> Inquire(const std::string& txn_id) override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      inquiries_++;
    }
    asked_.notify_all();
    frozen_.Pass();
    std::lock_guard<std::mutex> lock(mu_);
    auto it = outcomes_.find(txn_id);
    return it == outcomes_.end() ? Outcome::kActive : it->second;
  }
  Status Register(const ParticipantAddress&) override { return Status::Ok(); }
  Result<CoordinatorIdentity> Identify(const std::string&) override {
    if (on_identify_) on_identify_();
    std::lock_guard<std::mutex> lock(mu_);
    identifies_++;
    if (down_) return Status::Unavailable("127.0.0.1:7700: connection refused");
    return CoordinatorIdentity{"c1", epoch_, "127.0.0.1:7700"};
  }
  Status ReportHeuristic(const std::string&, const HeuristicDecision&) override {
    return Status::Ok();
  }

  void Freeze() { frozen_.Close(); }
  void Thaw() { frozen_.Open(); }
  // The coordinator restarts: its new run serves at the next epoch.
  void RestartCoordinator() {
    std::lock_guard<std::mutex> lock(mu_);
    epoch_++;
  }
  void SetEpoch(int64_t epoch) {
    std::lock_guard<std::mutex> lock(mu_);
    epoch_ = epoch;
  }
  void SetDown(bool down) {
    std::lock_guard<std::mutex> lock(mu_);
    down_ = down;
  }
  int identifies() {
    std::lock_guard<std::mutex> lock(mu_);
    return identifies_;
  }
  // Runs at each Identify, before it answers. Set before the calls start.
  void OnIdentify(std::function<void()> fn) { on_identify_ = std::move(fn); }
  void SetOutcome(const std::string& txn_id, Outcome outcome) {
    std::lock_guard<std::mutex> lock(mu_);
    outcomes_[txn_id] = outcome;
  }
  int inquiries() {
    std::lock_guard<std::mutex> lock(mu_);
    return inquiries_;
  }
  // True once `n` inquiries have been made, false if not within `timeout`.
  bool WaitForInquiries(int n, std::chrono::milliseconds timeout) {
    std::unique_lock<std::mutex> lock(mu_);
    return asked_.wait_for(lock, timeout, [&] { return inquiries_ >= n; });
  }

 private:
  std::mutex mu_;
  std::condition_variable asked_;
  CallGate frozen_;  // closed: inquiries wait, as at a coordinator stopped with SIGSTOP
  std::function<void()> on_identify_;
  int inquiries_ = 0;
  int64_t epoch_ = 1;
  bool down_ = false;
  int identifies_ = 0;
  std::map<std::string, Outcome> outcomes_;
};

class ParticipantServiceTest : public ::testing::Test {
 protected:
  void Start(bool threads = false) {
    ParticipantOptions options;
    options.self = {"p1", "127.0.0.1", 1, "scripted"};
    options.incarnation = "run" + std::to_string(++runs_);
    options.inquiry_interval_ms = inquiry_interval_ms_;
    options.housekeeping_interval_ms = 10;
    options.orphan_check_interval_ms = orphan_check_interval_ms_;
    options.runtime.clock = &clock_;
    options.runtime.background_threads = threads;
    service_ = std::make_unique<ParticipantService>(options, &backend_, &state_, &link_);
    ASSERT_TRUE(service_->Start().ok());
  }
  // A restart: memory is gone, the database and the state store stay.
  void Restart(bool threads = false) {
    service_.reset();
    Start(threads);
  }

  // As the client sends it, with the transaction's time left (timeout_ms_);
  // notes the opening it answered from, as the client does.
  Result<QueryResult> Execute(const std::string& txn_id, const std::string& sql) {
    std::string opening;
    auto result = service_->Execute(txn_id, sql, {}, timeout_ms_, &opening);
    if (!opening.empty()) openings_[txn_id] = opening;
    return result;
  }
  void SetTimeout(int64_t ms) { timeout_ms_ = ms; }
  Result<std::vector<BranchSnapshot>> Recover(const Fence& fence) {
    return service_->Recover(fence);
  }
  // As the coordinator sends it: for the opening the client saw last.
  Result<Vote> Prepare(const Fence& fence, const std::string& txn_id) {
    auto it = openings_.find(txn_id);
    return service_->Prepare(fence, txn_id, it == openings_.end() ? "never.opened" : it->second);
  }

  // 0: every Tick asks about prepared branches and looks for orphans.
  int inquiry_interval_ms_ = 0;
  int orphan_check_interval_ms_ = 0;
  ManualClock clock_;
  ScriptedBackend backend_;
  MemoryStateStore state_;
  ScriptedLink link_;
  std::unique_ptr<ParticipantService> service_;
  int runs_ = 0;
  int64_t timeout_ms_ = 60000;
  std::map<std::string, std::string> openings_;  // the last opening seen, by transaction
};

TEST_F(ParticipantServiceTest, EveryOpeningOfABranchHasItsOwnNameAndPrepareChecksIt) {
  Start();
  ASSERT_TRUE(Execute("c1.1.1", "UPDATE x").ok());
  ASSERT_TRUE(Execute("c1.1.1", "UPDATE y").ok());  // same opening
  EXPECT_EQ(openings_["c1.1.1"], "run1.1");
  Restart();  // a clean stop rolls run1.1 back
  const int rollbacks = backend_.Count("rollback", "c1.1.1");
  // The client worked in run1.1, which the restart lost; a statement now
  // opens the branch again, holding only what comes after.
  std::string opening;
  ASSERT_TRUE(service_->Execute("c1.1.1", "UPDATE z", {}, timeout_ms_, &opening).ok());
  EXPECT_EQ(opening, "run2.1");
  // Prepared for the opening the client saw first: ABORT, and rolled back.
  auto vote = service_->Prepare({"c1", 1}, "c1.1.1", "run1.1");
  EXPECT_EQ(vote.status().code(), StatusCode::kAborted) << vote.status().ToString();
  EXPECT_NE(vote.status().message().find("work done in run1.1 is lost"), std::string::npos);
  EXPECT_EQ(backend_.Count("rollback", "c1.1.1"), rollbacks + 1);
  EXPECT_FALSE(backend_.Prepared("c1.1.1"));
  EXPECT_TRUE(service_->ListBranches().empty());
  // A prepare naming no opening is refused.
  ASSERT_TRUE(Execute("c1.1.2", "UPDATE x").ok());
  EXPECT_EQ(service_->Prepare({"c1", 1}, "c1.1.2", "").status().code(),
            StatusCode::kInvalidArgument);
}

TEST_F(ParticipantServiceTest, ActiveBranchNobodyCanCommitIsRolledBackAtItsFirstInquiry) {
  inquiry_interval_ms_ = 1000;
  Start();
  ASSERT_TRUE(Execute("c1.1.1", "UPDATE x").ok());  // the coordinator says ACTIVE
  ASSERT_TRUE(Execute("c1.1.2", "UPDATE x").ok());  // a stranger's id, or ended without it
  link_.SetOutcome("c1.1.2", Outcome::kAborted);
  service_->Tick();  // too young to ask
  EXPECT_EQ(link_.inquiries(), 0);
  clock_.Advance(1000);
  service_->Tick();
  EXPECT_EQ(link_.inquiries(), 2);
  EXPECT_EQ(backend_.Count("rollback", "c1.1.2"), 1);
  EXPECT_EQ(backend_.Count("rollback", "c1.1.1"), 0);
  // Ended here: a late statement opens nothing new.
  auto late = Execute("c1.1.2", "UPDATE y");
  EXPECT_EQ(late.status().code(), StatusCode::kFailedPrecondition) << late.status().ToString();
  EXPECT_NE(late.status().message().find("ended (rolled back)"), std::string::npos);
  auto listed = service_->ListBranches();
  ASSERT_EQ(listed.size(), 1u);
  EXPECT_EQ(listed.front().txn_id, "c1.1.1");
}

TEST_F(ParticipantServiceTest, ClientMayAbandonOnlyItsOwnActiveBranch) {
  Start();
  ASSERT_TRUE(Execute("c1.1.1", "UPDATE x").ok());
  ASSERT_TRUE(Execute("c1.1.2", "UPDATE x").ok());
  ASSERT_TRUE(Prepare({"c1", 1}, "c1.1.2").ok());
  // Not the opening's name: whoever sends it did not run the statements.
  EXPECT_EQ(service_->Abandon("c1.1.1", "run1.99").code(), StatusCode::kPermissionDenied);
  EXPECT_EQ(backend_.Count("rollback", "c1.1.1"), 0);
  // Prepared: only its coordinator decides it.
  EXPECT_EQ(service_->Abandon("c1.1.2", openings_["c1.1.2"]).code(),
            StatusCode::kFailedPrecondition);
  EXPECT_TRUE(backend_.Prepared("c1.1.2"));
  EXPECT_TRUE(service_->Abandon("c1.1.1", openings_["c1.1.1"]).ok());
  EXPECT_EQ(backend_.Count("rollback", "c1.1.1"), 1);
  EXPECT_TRUE(service_->Abandon("c1.1.1", openings_["c1.1.1"]).ok());  // gone already: OK
  EXPECT_EQ(Prepare({"c1", 1}, "c1.1.1").status().code(), StatusCode::kNotFound);
}

TEST_F(ParticipantServiceTest, StatementArrivingAfterItsRollbackOpensNothing) {
  Start();
  // The coordinator rolled the transaction back before the client's delayed
  // statement arrived.
  ASSERT_TRUE(service_->Rollback({"c1", 1}, "c1.1.3").ok());
  auto late = Execute("c1.1.3", "UPDATE x");
  EXPECT_EQ(late.status().code(), StatusCode::kFailedPrecondition) << late.status().ToString();
  EXPECT_EQ(backend_.Count("execute", "c1.1.3"), 0);
  EXPECT_TRUE(service_->ListBranches().empty());
}

TEST_F(ParticipantServiceTest, BranchPastItsDeadlineVotesAbortEvenBeforeHousekeepingRuns) {
  timeout_ms_ = 100;
  Start();
  ASSERT_TRUE(Execute("c1.1.1", "UPDATE x").ok());
  clock_.Advance(100);  // no Tick: the deadline rollback has not run yet
  auto vote = Prepare({"c1", 1}, "c1.1.1");
  EXPECT_EQ(vote.status().code(), StatusCode::kAborted) << vote.status().ToString();
  EXPECT_EQ(backend_.Count("rollback", "c1.1.1"), 1);
  EXPECT_FALSE(backend_.Prepared("c1.1.1"));
}

TEST_F(ParticipantServiceTest, TransactionOfAReplacedCoordinatorRunOpensNoBranch) {
  Start();
  link_.RestartCoordinator();  // c1 runs as epoch 2 now
  ASSERT_TRUE(Recover({"c1", 2}).ok());
  std::string opening;
  auto old = service_->Execute("c1.1.5", "UPDATE x", {}, timeout_ms_, &opening);
  EXPECT_EQ(old.status().code(), StatusCode::kFenced) << old.status().ToString();
  EXPECT_TRUE(opening.empty());
  EXPECT_EQ(backend_.Count("execute", "c1.1.5"), 0);
  EXPECT_TRUE(service_->ListBranches().empty());
  EXPECT_TRUE(Execute("c1.2.1", "UPDATE x").ok());  // the new run's work opens
}

TEST_F(ParticipantServiceTest, RaisedEpochRollsBackOlderActiveBranchesAtOnce) {
  Start();
  ASSERT_TRUE(Execute("c1.1.1", "UPDATE x").ok());
  ASSERT_TRUE(Execute("c1.1.2", "UPDATE x").ok());
  ASSERT_TRUE(Prepare({"c1", 1}, "c1.1.2").ok());
  ASSERT_TRUE(Execute("other.1.1", "UPDATE x").ok());
  // The coordinator restarted as epoch 2 and asks for its prepared branches.
  link_.RestartCoordinator();
  auto prepared = service_->Recover({"c1", 2});
  ASSERT_TRUE(prepared.ok());
  EXPECT_EQ(backend_.Count("rollback", "c1.1.1"), 1);  // active, older epoch: gone
  EXPECT_EQ(backend_.Count("rollback", "c1.1.2"), 0);  // prepared: waits for the decision
  EXPECT_EQ(backend_.Count("rollback", "other.1.1"), 0);  // another coordinator's
  ASSERT_EQ(prepared->size(), 1u);
  EXPECT_EQ(prepared->front().txn_id, "c1.1.2");
  // The old run can decide nothing any more.
  EXPECT_EQ(service_->Commit({"c1", 1}, "c1.1.2", false).code(), StatusCode::kFenced);
  EXPECT_TRUE(backend_.Prepared("c1.1.2"));
}

TEST_F(ParticipantServiceTest, FrozenCoordinatorDoesNotDelayDeadlineRollbacks) {
  backend_.AddPrepared("c1.1.1");  // restored at start: it asks the coordinator
  link_.Freeze();
  Start(/*threads=*/true);
  ASSERT_TRUE(link_.WaitForInquiries(1, 2s));
  SetTimeout(50);
  ASSERT_TRUE(Execute("c1.1.2", "UPDATE x").ok());
  clock_.Advance(50);
  // Rolled back at its deadline while the inquiry is stuck.
  EXPECT_TRUE(backend_.WaitFor("rollback", "c1.1.2", 1, 2s));
  EXPECT_EQ(backend_.Count("rollback", "c1.1.2"), 1);
  EXPECT_TRUE(backend_.Prepared("c1.1.1"));
  link_.SetOutcome("c1.1.1", Outcome::kAborted);
  link_.Thaw();
  EXPECT_TRUE(backend_.WaitFor("rollback", "c1.1.1", 1, 2s));
  EXPECT_FALSE(backend_.Prepared("c1.1.1"));
  service_.reset();
}

TEST_F(ParticipantServiceTest, PreparedBranchTheServiceLostIsAdoptedAndResolved) {
  Start();
  // A PREPARE that landed in the database although its answer was lost.
  backend_.AddPrepared("c1.1.9");
  EXPECT_TRUE(service_->ListBranches().empty());
  service_->Tick();
  auto listed = service_->ListBranches();
  ASSERT_EQ(listed.size(), 1u);
  EXPECT_TRUE(listed.front().prepared);
  link_.SetOutcome("c1.1.9", Outcome::kAborted);
  service_->Tick();
  EXPECT_EQ(backend_.Count("rollback", "c1.1.9"), 1);
  EXPECT_TRUE(service_->ListBranches().empty());
}

TEST_F(ParticipantServiceTest, OnePhaseCommitAskedAgainAfterARestartAnswersFromTheDatabase) {
  Start();
  ASSERT_TRUE(Execute("c1.1.1", "UPDATE x").ok());
  ASSERT_TRUE(service_->Commit({"c1", 1}, "c1.1.1", /*one_phase=*/true).ok());
  Restart();
  // The reply was lost and the coordinator asks again: committed, not rolled back.
  EXPECT_TRUE(service_->Commit({"c1", 1}, "c1.1.1", /*one_phase=*/true).ok());
  // A branch lost before it committed is rolled back, and says so.
  ASSERT_TRUE(Execute("c1.1.2", "UPDATE x").ok());
  Restart();
  EXPECT_EQ(service_->Commit({"c1", 1}, "c1.1.2", /*one_phase=*/true).code(),
            StatusCode::kAborted);
}

TEST_F(ParticipantServiceTest, AgreeingHeuristicIsSettledByTheDecisionItself) {
  Start();
  ASSERT_TRUE(Execute("c1.1.1", "UPDATE x").ok());
  ASSERT_TRUE(Prepare({"c1", 1}, "c1.1.1").ok());
  ASSERT_TRUE(service_->Resolve("c1.1.1", /*commit=*/true).ok());
  EXPECT_EQ(service_->ListHeuristics().size(), 1u);
  EXPECT_TRUE(service_->Commit({"c1", 1}, "c1.1.1", false).ok());
  // Reconciled now: a later inquiry about a transaction the coordinator has
  // forgotten (presumed abort) cannot turn it into a false mix.
  EXPECT_TRUE(service_->ListHeuristics().empty());
  EXPECT_TRUE(service_->Commit({"c1", 1}, "c1.1.1", false).ok());  // repeated
}

TEST_F(ParticipantServiceTest, StaleFenceIsRefusedAndChangesNothing) {
  link_.SetEpoch(3);
  Start();
  ASSERT_TRUE(Execute("c1.3.1", "UPDATE x").ok());
  ASSERT_TRUE(Prepare({"c1", 3}, "c1.3.1").ok());
  EXPECT_EQ(service_->Rollback({"c1", 2}, "c1.3.1").code(), StatusCode::kFenced);
  EXPECT_EQ(service_->Recover({"c1", 2}).status().code(), StatusCode::kFenced);
  EXPECT_TRUE(backend_.Prepared("c1.3.1"));
  EXPECT_EQ(state_.HighestEpoch("c1"), 3);
}

// Anyone who reaches the port can send a fence: the "highest epoch" of the
// real coordinator's name must not rise on the sender's word, or every
// transaction of the real coordinator is FENCED from then on, for good.
TEST_F(ParticipantServiceTest, ForgedHigherEpochIsRefusedAndNotStored) {
  Start();
  ASSERT_TRUE(Execute("c1.1.1", "UPDATE x").ok());
  ASSERT_TRUE(Prepare({"c1", 1}, "c1.1.1").ok());
  ASSERT_TRUE(Execute("c1.1.2", "UPDATE x").ok());
  const int64_t forged = 1000000000000;
  Status st = service_->Rollback({"c1", forged}, "c1.1.1");
  EXPECT_EQ(st.code(), StatusCode::kFenced) << st.ToString();
  EXPECT_NE(st.message().find("epoch 1000000000000 of coordinator c1 is not the one serving at "
                              "127.0.0.1:7700 (epoch 1)"),
            std::string::npos)
      << st.ToString();
  EXPECT_EQ(Prepare({"c1", forged}, "c1.1.2").status().code(), StatusCode::kFenced);
  EXPECT_EQ(service_->Commit({"c1", forged}, "c1.1.1", false).code(), StatusCode::kFenced);
  EXPECT_EQ(service_->Rollback({"c1", 2}, "c1.1.1").code(), StatusCode::kFenced);
  EXPECT_EQ(service_->Recover({"c1", forged}).status().code(), StatusCode::kFenced);
  EXPECT_EQ(state_.HighestEpoch("c1"), 1);
  // Nothing was rolled back (no raise happened), and the real run carries on.
  EXPECT_EQ(backend_.Count("rollback", "c1.1.1"), 0);
  EXPECT_EQ(backend_.Count("rollback", "c1.1.2"), 0);
  EXPECT_TRUE(service_->Commit({"c1", 1}, "c1.1.1", false).ok());
  EXPECT_TRUE(service_->Commit({"c1", 1}, "c1.1.2", /*one_phase=*/true).ok());
  EXPECT_NE(service_->metrics().RenderPrometheus().find("pact_participant_fences_refused_total 5"),
            std::string::npos);
}

TEST_F(ParticipantServiceTest, UnknownCoordinatorIsRefusedAndNotStored) {
  Start();
  ASSERT_TRUE(Execute("c1.1.1", "UPDATE x").ok());
  // Another coordinator's transaction is refused before its fence is looked at.
  Status refused = service_->Rollback({"stranger", 1}, "c1.1.1");
  EXPECT_EQ(refused.code(), StatusCode::kPermissionDenied) << refused.ToString();
  for (int64_t epoch : {0, 1, 7}) {
    Status st = service_->Rollback({"stranger", epoch}, "stranger.1.1");
    EXPECT_EQ(st.code(), StatusCode::kFenced) << st.ToString();
    EXPECT_NE(st.message().find("coordinator 'stranger' is not the one this participant serves "
                                "('c1' at 127.0.0.1:7700)"),
              std::string::npos)
        << st.ToString();
    EXPECT_EQ(state_.HighestEpoch("stranger"), 0);
  }
  EXPECT_EQ(service_->Recover({"stranger", 1}).status().code(), StatusCode::kFenced);
  EXPECT_EQ(state_.HighestEpoch("stranger"), 0);
  EXPECT_EQ(state_.HighestEpoch("c1"), 0);
  EXPECT_EQ(backend_.Count("rollback", "c1.1.1"), 0);
  EXPECT_TRUE(service_->Commit({"c1", 1}, "c1.1.1", /*one_phase=*/true).ok());
}

TEST_F(ParticipantServiceTest, ConfirmedRaiseIsAdmittedOnceAndRollsBackOlderActiveBranches) {
  Start();
  ASSERT_TRUE(Execute("c1.1.1", "UPDATE x").ok());
  ASSERT_TRUE(Execute("c1.1.2", "UPDATE x").ok());
  ASSERT_TRUE(Prepare({"c1", 1}, "c1.1.2").ok());
  EXPECT_EQ(link_.identifies(), 1);  // the first sight of c1 is confirmed too
  EXPECT_TRUE(Prepare({"c1", 1}, "c1.1.2").ok());
  EXPECT_EQ(link_.identifies(), 1);  // an admitted epoch is not asked again
  link_.RestartCoordinator();        // epoch 2, and it says so while recovering
  auto prepared = service_->Recover({"c1", 2});
  ASSERT_TRUE(prepared.ok()) << prepared.status().ToString();
  EXPECT_EQ(link_.identifies(), 2);
  EXPECT_EQ(state_.HighestEpoch("c1"), 2);
  EXPECT_EQ(backend_.Count("rollback", "c1.1.1"), 1);  // active, older epoch: gone
  EXPECT_EQ(backend_.Count("rollback", "c1.1.2"), 0);  // prepared: waits for the decision
  ASSERT_EQ(prepared->size(), 1u);
  EXPECT_TRUE(service_->Rollback({"c1", 2}, "c1.1.2").ok());
  EXPECT_EQ(link_.identifies(), 2);
  // A late message of a run that is already gone (epoch 3 died, 4 serves)
  // is confirmed too: the coordinator is past it.
  link_.SetEpoch(4);
  EXPECT_TRUE(service_->Recover({"c1", 3}).ok());
  EXPECT_EQ(state_.HighestEpoch("c1"), 3);
  EXPECT_NE(service_->metrics().RenderPrometheus().find("pact_participant_fences_refused_total 0"),
            std::string::npos);
}

TEST_F(ParticipantServiceTest, RaiseThatCannotBeConfirmedIsUnavailableAndStoresNothing) {
  Start();
  ASSERT_TRUE(Execute("c1.1.1", "UPDATE x").ok());
  ASSERT_TRUE(Prepare({"c1", 1}, "c1.1.1").ok());
  link_.RestartCoordinator();
  link_.SetDown(true);
  Status st = service_->Rollback({"c1", 2}, "c1.1.1");
  EXPECT_EQ(st.code(), StatusCode::kUnavailable) << st.ToString();
  EXPECT_EQ(service_->Recover({"c1", 2}).status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(state_.HighestEpoch("c1"), 1);
  EXPECT_TRUE(backend_.Prepared("c1.1.1"));
  // The coordinator retries once its address answers.
  link_.SetDown(false);
  EXPECT_TRUE(service_->Rollback({"c1", 2}, "c1.1.1").ok());
  EXPECT_EQ(state_.HighestEpoch("c1"), 2);
  EXPECT_FALSE(backend_.Prepared("c1.1.1"));
}

// The first calls of a restarted coordinator arrive together: one asks.
TEST_F(ParticipantServiceTest, ConcurrentFirstCallsOfANewEpochConfirmItOnce) {
  Start();
  std::vector<std::thread> callers;
  std::atomic<int> ok{0};
  for (int i = 0; i < 8; i++) {
    callers.emplace_back([&] { ok += service_->Recover({"c1", 1}).ok(); });
  }
  for (auto& t : callers) t.join();
  EXPECT_EQ(ok, 8);
  EXPECT_EQ(link_.identifies(), 1);
  EXPECT_EQ(state_.HighestEpoch("c1"), 1);
}

// The table: a branch only moves forward, and never to where it already is.
TEST(BranchPhaseTest, OnlyTheProtocolsMovesAreAllowed) {
  const BranchPhase all[] = {BranchPhase::kActive, BranchPhase::kPrepared, BranchPhase::kDone};
  std::set<std::pair<BranchPhase, BranchPhase>> allowed;
  for (BranchPhase from : all) {
    for (BranchPhase to : all) {
      if (BranchMoveAllowed(from, to)) allowed.insert({from, to});
    }
  }
  std::set<std::pair<BranchPhase, BranchPhase>> expected = {
      {BranchPhase::kActive, BranchPhase::kPrepared},
      {BranchPhase::kActive, BranchPhase::kDone},
      {BranchPhase::kPrepared, BranchPhase::kDone},
  };
  EXPECT_EQ(allowed, expected);
  EXPECT_STREQ(BranchPhaseName(BranchPhase::kActive), "active");
  EXPECT_STREQ(BranchPhaseName(BranchPhase::kPrepared), "prepared");
  EXPECT_STREQ(BranchPhaseName(BranchPhase::kDone), "done");
}

// A verb that would need a move the table does not have is refused, and
// the database is not touched.
TEST_F(ParticipantServiceTest, VerbThatDoesNotFitTheBranchsPhaseIsRefusedAndChangesNothing) {
  Start();
  ASSERT_TRUE(Execute("c1.1.1", "UPDATE x").ok());
  // Active: no second-phase commit without a COMMIT vote, no operator's decision.
  EXPECT_EQ(service_->Commit({"c1", 1}, "c1.1.1", false).code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(service_->Resolve("c1.1.1", true).code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(backend_.Count("commit", "c1.1.1"), 0);
  // Prepared: no more statements, no one-phase commit.
  ASSERT_TRUE(Prepare({"c1", 1}, "c1.1.1").ok());
  EXPECT_EQ(Execute("c1.1.1", "UPDATE y").status().code(),
            StatusCode::kFailedPrecondition);
  EXPECT_EQ(service_->Commit({"c1", 1}, "c1.1.1", true).code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(backend_.Count("execute", "c1.1.1"), 1);
  EXPECT_EQ(backend_.Count("commit", "c1.1.1"), 0);
  EXPECT_TRUE(backend_.Prepared("c1.1.1"));
  auto listed = service_->ListBranches();
  ASSERT_EQ(listed.size(), 1u);
  EXPECT_TRUE(listed.front().prepared);
  // Unknown here: nothing to prepare or resolve.
  EXPECT_EQ(Prepare({"c1", 1}, "c1.1.2").status().code(), StatusCode::kNotFound);
  EXPECT_EQ(service_->Resolve("c1.1.2", true).code(), StatusCode::kNotFound);
}

TEST_F(ParticipantServiceTest, StaleFenceCannotPrepareCommitOrRollBackAnActiveBranch) {
  link_.SetEpoch(3);
  Start();
  ASSERT_TRUE(Execute("c1.3.1", "UPDATE x").ok());
  ASSERT_TRUE(service_->Recover({"c1", 3}).ok());
  EXPECT_EQ(Prepare({"c1", 2}, "c1.3.1").status().code(), StatusCode::kFenced);
  EXPECT_EQ(service_->Commit({"c1", 2}, "c1.3.1", /*one_phase=*/true).code(),
            StatusCode::kFenced);
  EXPECT_EQ(service_->Rollback({"c1", 2}, "c1.3.1").code(), StatusCode::kFenced);
  EXPECT_EQ(backend_.Count("prepare", "c1.3.1"), 0);
  EXPECT_EQ(backend_.Count("commit", "c1.3.1"), 0);
  EXPECT_EQ(backend_.Count("rollback", "c1.3.1"), 0);
  EXPECT_EQ(link_.identifies(), 1);  // a lower epoch raises nothing to confirm
  EXPECT_EQ(state_.HighestEpoch("c1"), 3);
  // The serving run still has it.
  EXPECT_TRUE(Prepare({"c1", 3}, "c1.3.1").ok());
}

// A stored epoch fences off every lower one for good: it is stored only once
// the coordinator at the configured address has said it is serving.
TEST_F(ParticipantServiceTest, RaisedEpochIsConfirmedBeforeItIsStored) {
  std::vector<int64_t> stored_while_asked;
  link_.OnIdentify([&] { stored_while_asked.push_back(state_.HighestEpoch("c1")); });
  Start();
  ASSERT_TRUE(service_->Recover({"c1", 1}).ok());
  link_.RestartCoordinator();
  ASSERT_TRUE(service_->Recover({"c1", 2}).ok());
  EXPECT_EQ(stored_while_asked, (std::vector<int64_t>{0, 1}));
  EXPECT_EQ(state_.HighestEpoch("c1"), 2);
}

// The transaction id names its coordinator; a confirmed coordinator can
// still decide only its own.
TEST_F(ParticipantServiceTest, CoordinatorCannotDecideAnotherCoordinatorsBranch) {
  backend_.AddPrepared("c2.1.2");
  Start();
  ASSERT_TRUE(Execute("c2.1.1", "UPDATE x").ok());
  ASSERT_TRUE(service_->Recover({"c1", 1}).ok());
  const int identifies = link_.identifies();
  EXPECT_EQ(Prepare({"c1", 1}, "c2.1.1").status().code(),
            StatusCode::kPermissionDenied);
  EXPECT_EQ(service_->Commit({"c1", 1}, "c2.1.1", /*one_phase=*/true).code(),
            StatusCode::kPermissionDenied);
  EXPECT_EQ(service_->Commit({"c1", 1}, "c2.1.2", false).code(), StatusCode::kPermissionDenied);
  EXPECT_EQ(service_->Rollback({"c1", 1}, "c2.1.2").code(), StatusCode::kPermissionDenied);
  for (const char* txn : {"c2.1.1", "c2.1.2"}) {
    EXPECT_EQ(backend_.Count("prepare", txn), 0) << txn;
    EXPECT_EQ(backend_.Count("commit", txn), 0) << txn;
    EXPECT_EQ(backend_.Count("rollback", txn), 0) << txn;
  }
  EXPECT_TRUE(backend_.Prepared("c2.1.2"));
  EXPECT_EQ(service_->ListBranches().size(), 2u);
  EXPECT_EQ(link_.identifies(), identifies);  // refused before its fence is looked at
}

TEST_F(ParticipantServiceTest, RecoverReturnsOnlyTheCallersPreparedBranches) {
  backend_.AddPrepared("c1.1.1");
  backend_.AddPrepared("c2.1.1");
  Start();
  ASSERT_TRUE(Execute("c1.1.2", "UPDATE x").ok());  // active: not in doubt
  auto prepared = service_->Recover({"c1", 1});
  ASSERT_TRUE(prepared.ok()) << prepared.status().ToString();
  ASSERT_EQ(prepared->size(), 1u);
  EXPECT_EQ(prepared->front().txn_id, "c1.1.1");
  EXPECT_TRUE(prepared->front().prepared);
}

// After a lost reply the coordinator asks again: the answer is the same and
// the database does the work once.
TEST_F(ParticipantServiceTest, RepeatedPrepareCommitAndRollbackDoTheWorkOnce) {
  Start();
  ASSERT_TRUE(Execute("c1.1.1", "UPDATE x").ok());
  for (int i = 0; i < 2; i++) {
    auto vote = Prepare({"c1", 1}, "c1.1.1");
    ASSERT_TRUE(vote.ok()) << vote.status().ToString();
    EXPECT_EQ(*vote, Vote::kCommit);
  }
  EXPECT_EQ(backend_.Count("prepare", "c1.1.1"), 1);
  EXPECT_TRUE(service_->Commit({"c1", 1}, "c1.1.1", false).ok());
  EXPECT_TRUE(service_->Commit({"c1", 1}, "c1.1.1", false).ok());  // forgotten: the database says
  Restart();
  EXPECT_TRUE(service_->Commit({"c1", 1}, "c1.1.1", false).ok());
  EXPECT_EQ(backend_.Count("commit", "c1.1.1"), 1);
  // A rolled-back branch stays rolled back, and a commit of it is no success.
  ASSERT_TRUE(Execute("c1.1.2", "UPDATE x").ok());
  ASSERT_TRUE(Prepare({"c1", 1}, "c1.1.2").ok());
  EXPECT_TRUE(service_->Rollback({"c1", 1}, "c1.1.2").ok());
  EXPECT_TRUE(service_->Rollback({"c1", 1}, "c1.1.2").ok());
  EXPECT_EQ(backend_.Count("rollback", "c1.1.2"), 1);
  EXPECT_EQ(service_->Commit({"c1", 1}, "c1.1.2", false).code(), StatusCode::kNotFound);
  EXPECT_EQ(backend_.Count("commit", "c1.1.2"), 0);
}

TEST_F(ParticipantServiceTest, ActiveBranchIsRolledBackWhenItsDeadlinePasses) {
  SetTimeout(1000);
  Start();
  ASSERT_TRUE(Execute("c1.1.1", "UPDATE x").ok());
  ASSERT_TRUE(Execute("c1.1.2", "UPDATE x").ok());
  ASSERT_TRUE(Prepare({"c1", 1}, "c1.1.2").ok());
  clock_.Advance(999);
  service_->Tick();
  EXPECT_EQ(backend_.Count("rollback", "c1.1.1"), 0);
  auto listed = service_->ListBranches();
  ASSERT_EQ(listed.size(), 2u);
  EXPECT_EQ(listed.front().txn_id, "c1.1.1");
  EXPECT_EQ(listed.front().deadline_in_ms, 1);
  clock_.Advance(1);
  service_->Tick();
  EXPECT_EQ(backend_.Count("rollback", "c1.1.1"), 1);
  EXPECT_EQ(backend_.Count("rollback", "c1.1.2"), 0);  // prepared: waits for the decision
  EXPECT_TRUE(backend_.Prepared("c1.1.2"));
  listed = service_->ListBranches();
  ASSERT_EQ(listed.size(), 1u);
  EXPECT_EQ(listed.front().txn_id, "c1.1.2");
  EXPECT_NE(service_->metrics().RenderPrometheus().find(
                "pact_participant_deadline_rollbacks_total 1"),
            std::string::npos);
  // The coordinator learns it is gone.
  EXPECT_EQ(Prepare({"c1", 1}, "c1.1.1").status().code(), StatusCode::kNotFound);
  EXPECT_EQ(service_->Commit({"c1", 1}, "c1.1.1", /*one_phase=*/true).code(),
            StatusCode::kAborted);
}

// A prepared branch asks its coordinator once per inquiry interval: the
// decision usually arrives on its own first.
TEST_F(ParticipantServiceTest, PreparedBranchAsksItsCoordinatorOncePerInquiryInterval) {
  inquiry_interval_ms_ = 1000;
  backend_.AddPrepared("c1.1.1");  // restored at start
  Start();
  ASSERT_TRUE(Execute("c1.1.2", "UPDATE x").ok());
  clock_.Advance(500);
  ASSERT_TRUE(Prepare({"c1", 1}, "c1.1.2").ok());
  clock_.Advance(499);
  service_->Tick();
  EXPECT_EQ(link_.inquiries(), 0);
  clock_.Advance(1);
  service_->Tick();
  EXPECT_EQ(link_.inquiries(), 1);  // the restored one; still undecided
  clock_.Advance(500);
  link_.SetOutcome("c1.1.2", Outcome::kCommitted);
  service_->Tick();
  EXPECT_EQ(link_.inquiries(), 2);
  EXPECT_EQ(backend_.Count("commit", "c1.1.2"), 1);
  link_.SetOutcome("c1.1.1", Outcome::kAborted);
  clock_.Advance(499);
  service_->Tick();
  EXPECT_EQ(link_.inquiries(), 2);
  EXPECT_TRUE(backend_.Prepared("c1.1.1"));
  clock_.Advance(1);
  service_->Tick();
  EXPECT_EQ(link_.inquiries(), 3);
  EXPECT_EQ(backend_.Count("rollback", "c1.1.1"), 1);
  EXPECT_TRUE(service_->ListBranches().empty());
}

// The database's list of prepared branches is compared once per check
// interval; a branch found there asks its coordinator at once.
TEST_F(ParticipantServiceTest, OrphanIsLookedForOncePerCheckIntervalAndAsksAtOnce) {
  inquiry_interval_ms_ = 1000;
  orphan_check_interval_ms_ = 10000;
  Start();
  backend_.AddPrepared("c1.1.9");
  clock_.Advance(9999);
  service_->Tick();
  EXPECT_TRUE(service_->ListBranches().empty());
  clock_.Advance(1);
  service_->Tick();
  auto listed = service_->ListBranches();
  ASSERT_EQ(listed.size(), 1u);
  EXPECT_TRUE(listed.front().prepared);
  EXPECT_EQ(link_.inquiries(), 0);
  link_.SetOutcome("c1.1.9", Outcome::kCommitted);
  service_->Tick();  // no time passed
  EXPECT_EQ(link_.inquiries(), 1);
  EXPECT_EQ(backend_.Count("commit", "c1.1.9"), 1);
  EXPECT_TRUE(service_->ListBranches().empty());
}

}  // namespace
}  // namespace pact
