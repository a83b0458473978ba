// Operating Pact: every pactctl command against real processes, heuristic
// decisions end to end, deadlines, metrics and a clean stop under load.
#include <signal.h>
#include <sys/wait.h>

#include <atomic>
#include <cstdio>
#include <thread>

#include <httplib.h>

#include "common/crash_point.h"
#include "tests/bank_fixture.h"

namespace pact {
namespace {

class OperationsTest : public BankTest {
 protected:
  Ran Pactctl(std::vector<std::string> args) {
    args.insert(args.begin(), {"--coordinator", cluster_.coordinator_address()});
    return RunPactctl(args);
  }

  std::string Committed(int64_t amount) {
    auto client = Connect();
    auto txn = PrepareTransfer(*client, amount);
    EXPECT_TRUE(txn && txn->Commit().ok());
    return txn ? txn->id() : "";
  }

  // Restarts the coordinator with extra flags (e.g. a long retry backoff).
  void RestartCoordinatorWith(std::vector<std::string> flags,
                              std::map<std::string, std::string> env = {}) {
    cluster_.OverrideCoordinatorFlags(flags);
    Status started = cluster_.StartCoordinator(env);
    ASSERT_TRUE(started.ok()) << started.ToString();
  }

  std::string journal() { return dir_.File("journal.db"); }
};

bool Has(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

TEST_F(OperationsTest, TxnsAndShowListTransactionsWithTheirBranches) {
  std::string txn = Committed(5);
  Ran txns = Pactctl({"--json", "txns", "--state", "COMMITTED"});
  EXPECT_EQ(txns.code, 0) << txns.out;
  EXPECT_TRUE(Has(txns.out, "\"txn_id\":\"" + txn + "\"")) << txns.out;
  EXPECT_EQ(Pactctl({"txns", "--state", "ACTIVE"}).out.find(txn), std::string::npos);
  EXPECT_EQ(Pactctl({"txns", "--state", "BOGUS"}).code, 2);

  Ran show = Pactctl({"show", txn});
  EXPECT_EQ(show.code, 0);
  EXPECT_TRUE(Has(show.out, "COMMITTED")) << show.out;
  EXPECT_TRUE(Has(show.out, "bank_a")) << show.out;
  EXPECT_TRUE(Has(show.out, "bank_b")) << show.out;
  Ran unknown = Pactctl({"show", "c1.1.99999"});
  EXPECT_EQ(unknown.code, 1);
  EXPECT_TRUE(Has(unknown.out, "NOT_FOUND")) << unknown.out;
  EXPECT_EQ(Pactctl({"bogus-command"}).code, 2);
}

TEST_F(OperationsTest, ParticipantsShowsWhoIsReachable) {
  cluster_.participant("bank_b").Signal(SIGKILL);
  cluster_.participant("bank_b").WaitForExit(5000);
  Ran ran = Pactctl({"--json", "participants"});
  EXPECT_EQ(ran.code, 0);
  EXPECT_TRUE(Has(ran.out, "\"name\":\"bank_a\",\"backend\":\"sqlite\"")) << ran.out;
  EXPECT_TRUE(Has(ran.out, "\"reachable\":true")) << ran.out;
  EXPECT_TRUE(Has(ran.out, "\"reachable\":false")) << ran.out;
}

TEST_F(OperationsTest, InDoubtBranchIsShownAndRetryDeliversTheCommitNow) {
  // A coordinator that waits ten minutes before re-sending a commit, and a
  // participant that waits as long before asking: bank_b stays in doubt.
  RestartCoordinatorWith({"--commit_retry_initial_ms=600000", "--commit_retry_max_ms=600000"});
  ASSERT_TRUE(cluster_.StartParticipant("bank_b", {{"PACT_CRASH_POINT", "before_commit_applied"}})
                  .ok());
  auto client = Connect();
  auto txn = PrepareTransfer(*client, 5);
  ASSERT_TRUE(txn && txn->Commit().ok());
  ASSERT_EQ(cluster_.participant("bank_b").WaitForExit(5000), kCrashExitCode);
  cluster_.participant_flags = {"--inquiry_interval_ms=600000"};
  ASSERT_TRUE(cluster_.StartParticipant("bank_b").ok());

  Ran in_doubt = Pactctl({"in-doubt"});
  EXPECT_EQ(in_doubt.code, 0) << in_doubt.out;
  EXPECT_TRUE(Has(in_doubt.out, "bank_b")) << in_doubt.out;
  EXPECT_TRUE(Has(in_doubt.out, txn->id())) << in_doubt.out;
  EXPECT_TRUE(Has(in_doubt.out, "COMMITTED")) << in_doubt.out;
  Ran branches = Pactctl({"--json", "branches", "bank_b"});
  EXPECT_EQ(branches.code, 0) << branches.out;
  EXPECT_TRUE(Has(branches.out, "\"participant\":\"bank_b\",\"txn_id\":\"" + txn->id() +
                                    "\",\"state\":\"PREPARED\""))
      << branches.out;
  EXPECT_EQ(Pactctl({"branches", "nobody"}).code, 1);
  Ran show = Pactctl({"show", txn->id()});
  EXPECT_TRUE(Has(show.out, "COMMITTING")) << show.out;
  EXPECT_TRUE(Has(show.out, "commit pending")) << show.out;

  // The coordinator knows the outcome, so deciding by hand is refused.
  Ran refused = Pactctl({"resolve", txn->id(), "--rollback"});
  EXPECT_EQ(refused.code, 1);
  EXPECT_TRUE(Has(refused.out, "refused")) << refused.out;

  Ran retry = Pactctl({"retry", txn->id()});
  EXPECT_EQ(retry.code, 0) << retry.out;
  EXPECT_TRUE(cluster_.EventuallyNoOpenBranches(5000));
  EXPECT_EQ(Balance("bank_b", 1), 105);
  EXPECT_EQ(Pactctl({"retry", txn->id()}).code, 1);  // nothing left to retry
}

TEST_F(OperationsTest, HeuristicRollbackAgainstACommitIsReportedListedAndForgotten) {
  RestartCoordinatorWith({}, {{"PACT_CRASH_POINT", "after_decision_logged"}});
  auto client = Connect();
  auto txn = PrepareTransfer(*client, 5);
  ASSERT_TRUE(txn);
  EXPECT_EQ(txn->Commit().code(), StatusCode::kUnavailable);
  ASSERT_EQ(cluster_.coordinator().WaitForExit(5000), kCrashExitCode);

  // The coordinator is lost. Its journal, read offline, has the decision.
  Ran offline = Pactctl({"--json", "journal", journal()});
  EXPECT_EQ(offline.code, 0) << offline.out;
  EXPECT_TRUE(Has(offline.out, "\"coordinator\":\"c1\"")) << offline.out;
  EXPECT_TRUE(Has(offline.out, "\"txn_id\":\"" + txn->id() + "\",\"branches\":[\"bank_a\",\"bank_b\"]"))
      << offline.out;
  Ran in_doubt = Pactctl({"in-doubt", "--journal", journal()});
  EXPECT_TRUE(Has(in_doubt.out, "unreachable")) << in_doubt.out;
  // An operator rolls back bank_b's branch by hand.
  Ran resolved = Pactctl({"resolve", txn->id(), "--rollback", "--participant", "bank_b",
                          "--journal", journal()});
  EXPECT_EQ(resolved.code, 0) << resolved.out;
  EXPECT_EQ(Balance("bank_b", 1), 100);

  // The coordinator comes back and commits: bank_a commits, bank_b is a mix.
  cluster_.coordinator_flags.clear();
  ASSERT_TRUE(cluster_.StartCoordinator().ok());
  EXPECT_TRUE(cluster_.EventuallyNoOpenBranches());
  EXPECT_EQ(Balance("bank_a", 1), 95);
  Ran mixes;
  for (int i = 0; i < 100; ++i) {
    mixes = Pactctl({"--json", "heuristics"});
    if (Has(mixes.out, txn->id())) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_TRUE(Has(mixes.out, "\"participant\":\"bank_b\",\"decision\":\"COMMIT\","
                             "\"operator\":\"ROLLBACK\""))
      << mixes.out;
  EXPECT_TRUE(Has(Pactctl({"show", txn->id()}).out, "HEURISTIC MIX"));
  EXPECT_EQ(Pactctl({"forget", txn->id()}).code, 0);
  EXPECT_FALSE(Has(Pactctl({"heuristics"}).out, txn->id()));
  EXPECT_EQ(Pactctl({"forget", txn->id()}).code, 1);
}

TEST_F(OperationsTest, StatsCountTransactionsAndLatency) {
  for (int i = 0; i < 3; ++i) Committed(1);
  Ran stats = Pactctl({"--json", "stats"});
  EXPECT_EQ(stats.code, 0);
  EXPECT_TRUE(Has(stats.out, "\"txns_committed\":3")) << stats.out;
  EXPECT_TRUE(Has(stats.out, "\"journal_commit_records\":3")) << stats.out;
  EXPECT_TRUE(Has(stats.out, "\"commit_latency_count\":3")) << stats.out;
  EXPECT_FALSE(Has(stats.out, "\"commit_latency_p50_us\":0,")) << stats.out;
}

TEST_F(OperationsTest, ParticipantHoldingABranchCannotBeRemoved) {
  auto client = Connect();
  auto txn = client->Begin();
  ASSERT_TRUE(txn.ok());
  ASSERT_TRUE((*txn)->Execute("bank_a", "UPDATE accounts SET balance = 1 WHERE id = 3").ok());
  // The coordinator hears of the branch only at commit; the participant
  // itself says it holds one.
  Ran refused = Pactctl({"remove-participant", "bank_a"});
  EXPECT_EQ(refused.code, 1);
  EXPECT_TRUE(Has(refused.out, "still holds 1 branch(es), e.g. " + (*txn)->id())) << refused.out;
  ASSERT_TRUE((*txn)->Rollback().ok());
  EXPECT_TRUE(cluster_.EventuallyNoOpenBranches());
  Ran removed = Pactctl({"remove-participant", "bank_a"});
  EXPECT_EQ(removed.code, 0) << removed.out;
  EXPECT_FALSE(Has(Pactctl({"participants"}).out, "bank_a"));
  EXPECT_EQ(Pactctl({"remove-participant", "nobody"}).code, 1);
}

TEST_F(OperationsTest, TransactionPastItsDeadlineRollsBackEverywhereAndCommitSaysTimedOut) {
  auto client = Connect();
  auto txn = client->Begin(/*timeout_ms=*/300);
  ASSERT_TRUE(txn.ok());
  ASSERT_TRUE((*txn)->Execute("bank_a", "UPDATE accounts SET balance = 0 WHERE id = 1").ok());
  ASSERT_TRUE((*txn)->Execute("bank_b", "UPDATE accounts SET balance = 0 WHERE id = 1").ok());
  std::this_thread::sleep_for(std::chrono::milliseconds(800));
  Status st = (*txn)->Commit();
  EXPECT_EQ(st.code(), StatusCode::kTimedOut) << st.ToString();
  EXPECT_TRUE(Has(st.message(), "timed out")) << st.ToString();
  EXPECT_TRUE(cluster_.EventuallyNoOpenBranches());
  EXPECT_EQ(Balance("bank_a", 1), 100);
  EXPECT_EQ(Balance("bank_b", 1), 100);
}

int64_t Scrape(int port, const std::string& metric) {
  httplib::Client http("127.0.0.1", port);
  auto res = http.Get("/metrics");
  if (!res || res->status != 200) return -1;
  size_t at = res->body.find("\n" + metric + " ");
  if (at == std::string::npos) return -1;
  return std::stoll(res->body.substr(at + metric.size() + 2));
}

TEST_F(OperationsTest, MetricsCountersMoveAsTransactionsRun) {
  int coordinator_port = FreePort(), participant_port = FreePort();
  RestartCoordinatorWith({"--metrics_port=" + std::to_string(coordinator_port)});
  cluster_.SetBackend("bank_a", {"--backend=sqlite", "--sqlite_path=" + cluster_.db_path("bank_a"),
                                 "--metrics_port=" + std::to_string(participant_port)});
  ASSERT_TRUE(cluster_.StartParticipant("bank_a").ok());
  int64_t committed_before = Scrape(coordinator_port, "pact_txns_committed_total");
  int64_t commits_before = Scrape(participant_port, "pact_participant_commits_total");
  ASSERT_EQ(committed_before, 0);
  ASSERT_EQ(commits_before, 0);
  for (int i = 0; i < 3; ++i) Committed(1);
  EXPECT_EQ(Scrape(coordinator_port, "pact_txns_committed_total"), 3);
  EXPECT_EQ(Scrape(coordinator_port, "pact_journal_commit_records_total"), 3);
  EXPECT_GE(Scrape(coordinator_port, "pact_journal_fsyncs_total"), 1);
  EXPECT_EQ(Scrape(coordinator_port, "pact_commit_latency_seconds_count"), 3);
  EXPECT_EQ(Scrape(coordinator_port, "pact_in_doubt_branches"), 0);
  EXPECT_EQ(Scrape(participant_port, "pact_participant_commits_total"), 3);
  EXPECT_EQ(Scrape(participant_port, "pact_participant_votes_commit_total"), 3);
  EXPECT_EQ(Scrape(participant_port, "pact_participant_prepared_branches"), 0);
}

TEST_F(OperationsTest, SigtermUnderLoadLeavesNothingInDoubt) {
  std::atomic<bool> stop{false};
  std::atomic<int> committed{0}, unknown{0};
  std::vector<std::thread> clients;
  for (int c = 0; c < 4; ++c) {
    clients.emplace_back([&, c] {
      auto client = Connect();
      for (int i = 0; !stop; ++i) {
        auto txn = client->Begin();
        if (!txn.ok()) continue;
        bool ok = (*txn)->Execute("bank_a", "UPDATE accounts SET balance = balance - 1 WHERE id = ?1",
                                  {int64_t{1 + (c + i) % 3}}).ok() &&
                  (*txn)->Execute("bank_b", "UPDATE accounts SET balance = balance + 1 WHERE id = ?1",
                                  {int64_t{1 + i % 3}}).ok();
        if (!ok) continue;
        Status st = (*txn)->Commit();
        if (st.ok()) committed++;
        if (st.code() == StatusCode::kUnavailable) unknown++;
      }
    });
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(700));
  cluster_.coordinator().Signal(SIGTERM);
  EXPECT_EQ(cluster_.coordinator().WaitForExit(15000), 0);
  stop = true;
  for (auto& t : clients) t.join();
  EXPECT_GT(committed, 0);
  // Nothing in doubt: no prepared branch anywhere, no unfinished decision.
  EXPECT_TRUE(cluster_.EventuallyNoOpenBranches(5000));
  Ran offline = Pactctl({"--json", "journal", journal()});
  EXPECT_TRUE(Has(offline.out, "\"unfinished\":[]")) << offline.out;
  // Every commit the clients saw is in the data; money is conserved.
  EXPECT_EQ(Total("bank_a") + Total("bank_b"), 6 * kInitialBalance);
  int64_t moved = Total("bank_b") - 3 * kInitialBalance;
  EXPECT_GE(moved, committed);
  EXPECT_LE(moved, committed + unknown);
}

}  // namespace
}  // namespace pact
