// The participant service over its seams: a scripted backend, an in-memory
// state store and a coordinator link the test controls. Fencing, branch
// openings, epoch raises, orphan adoption, heuristics and the housekeeping
// threads, without a database or a network.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>
#include <thread>

#include "participant/participant_service.h"

namespace pact {
namespace {

using namespace std::chrono_literals;

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
      backend_->Note("prepare", txn_id_);
      std::lock_guard<std::mutex> lock(backend_->mu_);
      backend_->prepared_.insert(txn_id_);
      return Vote::kCommit;
    }
    Status CommitOnePhase() override { return Finish("commit", true); }
    Status CommitPrepared() override { return Finish("commit", true); }
    Status Rollback() override { return Finish("rollback", false); }

   private:
    Status Finish(const char* verb, bool committed) {
      backend_->Note(verb, txn_id_);
      std::lock_guard<std::mutex> lock(backend_->mu_);
      backend_->prepared_.erase(txn_id_);
      if (committed) backend_->committed_.insert(txn_id_);
      return Status::Ok();
    }
    ScriptedBackend* const backend_;
    const std::string txn_id_;
  };

  void Note(const std::string& verb, const std::string& txn_id) {
    std::lock_guard<std::mutex> lock(mu_);
    calls_[verb + " " + txn_id]++;
  }

  std::mutex mu_;
  std::map<std::string, int> calls_;
  std::set<std::string> prepared_;
  std::set<std::string> committed_;
};

// The coordinator as the test scripts it. Inquire can be frozen (it blocks
// until thawed), like a coordinator stopped with SIGSTOP.
class ScriptedLink : public CoordinatorLink {
 public:
  Result<int64_t> Enlist(const std::string& txn_id, const std::string&,
                         const std::string& branch) override {
    std::lock_guard<std::mutex> lock(mu_);
    openings_[txn_id].push_back(branch);
    return deadline_ms_;
  }
  Result<Outcome> Inquire(const std::string& txn_id) override {
    std::unique_lock<std::mutex> lock(mu_);
    inquiries_++;
    thawed_.wait(lock, [&] { return !frozen_; });
    auto it = outcomes_.find(txn_id);
    return it == outcomes_.end() ? Outcome::kActive : it->second;
  }
  Status Register(const ParticipantAddress&) override { return Status::Ok(); }
  Status ReportHeuristic(const std::string&, const HeuristicDecision&) override {
    return Status::Ok();
  }

  void Freeze() {
    std::lock_guard<std::mutex> lock(mu_);
    frozen_ = true;
  }
  void Thaw() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      frozen_ = false;
    }
    thawed_.notify_all();
  }
  void SetOutcome(const std::string& txn_id, Outcome outcome) {
    std::lock_guard<std::mutex> lock(mu_);
    outcomes_[txn_id] = outcome;
  }
  void SetDeadline(int64_t ms) {
    std::lock_guard<std::mutex> lock(mu_);
    deadline_ms_ = ms;
  }
  std::vector<std::string> Openings(const std::string& txn_id) {
    std::lock_guard<std::mutex> lock(mu_);
    return openings_[txn_id];
  }
  int inquiries() {
    std::lock_guard<std::mutex> lock(mu_);
    return inquiries_;
  }

 private:
  std::mutex mu_;
  std::condition_variable thawed_;
  bool frozen_ = false;
  int64_t deadline_ms_ = 60000;
  int inquiries_ = 0;
  std::map<std::string, Outcome> outcomes_;
  std::map<std::string, std::vector<std::string>> openings_;
};

template <typename Fn>
bool Eventually(Fn done, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (done()) return true;
    std::this_thread::sleep_for(5ms);
  }
  return done();
}

class ParticipantServiceTest : public ::testing::Test {
 protected:
  void Start(bool threads = false) {
    ParticipantOptions options;
    options.self = {"p1", "127.0.0.1", 1, "scripted"};
    options.incarnation = "run" + std::to_string(++runs_);
    options.inquiry_interval_ms = 0;
    options.housekeeping_interval_ms = 10;
    options.orphan_check_interval_ms = 0;
    options.runtime.background_threads = threads;
    service_ = std::make_unique<ParticipantService>(options, &backend_, &state_, &link_);
    ASSERT_TRUE(service_->Start().ok());
  }
  // A restart: memory is gone, the database and the state store stay.
  void Restart(bool threads = false) {
    service_.reset();
    Start(threads);
  }

  ScriptedBackend backend_;
  MemoryStateStore state_;
  ScriptedLink link_;
  std::unique_ptr<ParticipantService> service_;
  int runs_ = 0;
};

TEST_F(ParticipantServiceTest, EveryOpeningOfABranchIsEnlistedUnderItsOwnName) {
  Start();
  ASSERT_TRUE(service_->Execute("c1.1.1", "UPDATE x", {}).ok());
  ASSERT_TRUE(service_->Execute("c1.1.1", "UPDATE y", {}).ok());  // same opening
  Restart();
  ASSERT_TRUE(service_->Execute("c1.1.1", "UPDATE z", {}).ok());
  auto openings = link_.Openings("c1.1.1");
  ASSERT_EQ(openings.size(), 2u);
  EXPECT_EQ(openings[0], "run1.1");
  EXPECT_EQ(openings[1], "run2.1");
}

TEST_F(ParticipantServiceTest, RaisedEpochRollsBackOlderActiveBranchesAtOnce) {
  Start();
  ASSERT_TRUE(service_->Execute("c1.1.1", "UPDATE x", {}).ok());
  ASSERT_TRUE(service_->Execute("c1.1.2", "UPDATE x", {}).ok());
  ASSERT_TRUE(service_->Prepare({"c1", 1}, "c1.1.2").ok());
  ASSERT_TRUE(service_->Execute("other.1.1", "UPDATE x", {}).ok());
  // The coordinator restarted as epoch 2 and asks for its prepared branches.
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
  ASSERT_TRUE(Eventually([&] { return link_.inquiries() > 0; }, 2s));
  link_.SetDeadline(50);
  ASSERT_TRUE(service_->Execute("c1.1.2", "UPDATE x", {}).ok());
  // Rolled back at its deadline while the inquiry is stuck.
  EXPECT_TRUE(Eventually([&] { return backend_.Count("rollback", "c1.1.2") == 1; }, 2s));
  EXPECT_TRUE(backend_.Prepared("c1.1.1"));
  link_.SetOutcome("c1.1.1", Outcome::kAborted);
  link_.Thaw();
  EXPECT_TRUE(Eventually([&] { return !backend_.Prepared("c1.1.1"); }, 2s));
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
  ASSERT_TRUE(service_->Execute("c1.1.1", "UPDATE x", {}).ok());
  ASSERT_TRUE(service_->Commit({"c1", 1}, "c1.1.1", /*one_phase=*/true).ok());
  Restart();
  // The reply was lost and the coordinator asks again: committed, not rolled back.
  EXPECT_TRUE(service_->Commit({"c1", 1}, "c1.1.1", /*one_phase=*/true).ok());
  // A branch lost before it committed is rolled back, and says so.
  ASSERT_TRUE(service_->Execute("c1.1.2", "UPDATE x", {}).ok());
  Restart();
  EXPECT_EQ(service_->Commit({"c1", 1}, "c1.1.2", /*one_phase=*/true).code(),
            StatusCode::kAborted);
}

TEST_F(ParticipantServiceTest, AgreeingHeuristicIsSettledByTheDecisionItself) {
  Start();
  ASSERT_TRUE(service_->Execute("c1.1.1", "UPDATE x", {}).ok());
  ASSERT_TRUE(service_->Prepare({"c1", 1}, "c1.1.1").ok());
  ASSERT_TRUE(service_->Resolve("c1.1.1", /*commit=*/true).ok());
  EXPECT_EQ(service_->ListHeuristics().size(), 1u);
  EXPECT_TRUE(service_->Commit({"c1", 1}, "c1.1.1", false).ok());
  // Reconciled now: a later inquiry about a transaction the coordinator has
  // forgotten (presumed abort) cannot turn it into a false mix.
  EXPECT_TRUE(service_->ListHeuristics().empty());
  EXPECT_TRUE(service_->Commit({"c1", 1}, "c1.1.1", false).ok());  // repeated
}

TEST_F(ParticipantServiceTest, StaleFenceIsRefusedAndChangesNothing) {
  Start();
  ASSERT_TRUE(service_->Execute("c1.3.1", "UPDATE x", {}).ok());
  ASSERT_TRUE(service_->Prepare({"c1", 3}, "c1.3.1").ok());
  EXPECT_EQ(service_->Rollback({"c1", 2}, "c1.3.1").code(), StatusCode::kFenced);
  EXPECT_EQ(service_->Recover({"c1", 2}).status().code(), StatusCode::kFenced);
  EXPECT_TRUE(backend_.Prepared("c1.3.1"));
  EXPECT_EQ(state_.HighestEpoch("c1"), 3);
}

}  // namespace
}  // namespace pact
