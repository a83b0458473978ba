// Faults that are not crashes: a participant frozen (SIGSTOP) while it should
// vote or commit, a coordinator frozen while a participant restarts, a
// journal that cannot be written, and a journal damaged while the coordinator
// was down. Real processes, SQLite participants.
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <deque>
#include <fstream>
#include <functional>
#include <random>
#include <regex>
#include <thread>

#include "tests/bank_fixture.h"

namespace pact {
namespace {

using Clock = std::chrono::steady_clock;

bool Has(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}


std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

class FaultsTest : public BankTest {
 protected:
  // Nothing starts by itself: each test chooses the coordinator's options.
  void SetUp() override {
    CreateBank("bank_a");
    CreateBank("bank_b");
    CreateBank("bank_c");
  }

  // Starts the coordinator with the harness defaults plus `flags` (a flag
  // given here replaces the default of the same name), then bank_a, bank_b
  // and, if asked, bank_c.
  void StartCluster(const std::vector<std::string>& flags, bool with_bank_c = false,
                    std::map<std::string, std::string> coordinator_env = {}) {
    cluster_.OverrideCoordinatorFlags(flags);
    Status st = cluster_.StartCoordinator(coordinator_env);
    ASSERT_TRUE(st.ok()) << st.ToString();
    std::vector<std::string> banks = {"bank_a", "bank_b"};
    if (with_bank_c) banks.push_back("bank_c");
    for (const auto& bank : banks) {
      st = cluster_.StartParticipant(bank);
      ASSERT_TRUE(st.ok()) << st.ToString();
    }
  }

  Ran Pactctl(std::vector<std::string> args) {
    args.insert(args.begin(), {"--coordinator", cluster_.coordinator_address()});
    return RunPactctl(args);
  }

  // The state of one branch and its attempts, from `pactctl --json show`.
  struct BranchView {
    std::string state;
    int attempts = -1;
  };
  BranchView ShowBranch(const std::string& txn_id, const std::string& participant) {
    Ran shown = Pactctl({"--json", "show", txn_id});
    std::smatch m;
    std::regex re("\"participant\":\"" + participant +
                  "\",\"vote\":\"[A-Z_-]*\",\"state\":\"([^\"]*)\",\"attempts\":([0-9]+)");
    if (shown.code != 0 || !std::regex_search(shown.out, m, re)) return {};
    return {m[1], std::stoi(m[2])};
  }

  // True while `participant` holds exactly `txn_id`, prepared.
  bool HoldsPrepared(const std::string& participant, const std::string& txn_id) {
    auto open = cluster_.OpenBranches(participant);
    return open.ok() && open->size() == 1 && (*open)[0] == txn_id + " PREPARED";
  }

  // Leaves `txn` (a transfer bank_a -> bank_b of `amount`, plus a ledger row
  // at bank_c) decided COMMIT with its commit to bank_b undelivered: bank_b
  // is frozen (SIGSTOP) after it prepared. To freeze bank_b between its
  // vote and the commit without a race, bank_c is frozen first, so the
  // decision waits for bank_c's vote while bank_b's branch is prepared.
  // REQUIRES: a prepare timeout much longer than the wait for bank_b.
  void CommitWithBankBFrozenAfterItsVote(Transaction& txn, int64_t amount) {
    ASSERT_TRUE(
        txn.Execute("bank_c", "INSERT INTO ledger(account, amount) VALUES (1, ?1)", {amount}).ok());
    cluster_.participant("bank_c").Signal(SIGSTOP);
    Status told = Status::Internal("commit did not return");
    std::thread committer([&] { told = txn.Commit(); });
    bool prepared = PollUntil([&] { return HoldsPrepared("bank_b", txn.id()); }, 15000);
    cluster_.participant("bank_b").Signal(SIGSTOP);
    cluster_.participant("bank_c").Signal(SIGCONT);
    committer.join();
    ASSERT_TRUE(prepared) << "bank_b never showed the branch prepared";
    // The decision is durable although bank_b has not acknowledged.
    ASSERT_TRUE(told.ok()) << told.ToString();
  }

  std::string journal() { return dir_.File("journal.db"); }

  // Stops the coordinator cleanly and expects an empty list of unfinished
  // commit decisions in its journal.
  void ExpectJournalHasNothingUnfinished() {
    Status st = cluster_.StopCoordinatorAndCheckJournal();
    EXPECT_TRUE(st.ok()) << st.ToString();
  }

  // Stops the coordinator cleanly, lets `damage` change its journal, and
  // expects the next start to be refused, quickly and saying why.
  void ExpectRefusedAfter(const std::function<void(const std::string&)>& damage) {
    auto client = Connect();
    auto txn = PrepareTransfer(*client, 10);
    ASSERT_TRUE(txn && txn->Commit().ok());
    cluster_.coordinator().Signal(SIGTERM);
    ASSERT_EQ(cluster_.coordinator().WaitForExit(20000), 0);
    struct stat wal;
    ASSERT_FALSE(stat((journal() + "-wal").c_str(), &wal) == 0 && wal.st_size > 0)
        << "a clean stop should leave everything in the main file";
    damage(journal());

    const std::string log_before = ReadFile(dir_.File("coordinator.log"));
    auto start = Clock::now();
    Status started = cluster_.StartCoordinator();
    int code = cluster_.coordinator().WaitForExit(10000);
    auto seconds = std::chrono::duration<double>(Clock::now() - start).count();
    EXPECT_FALSE(started.ok()) << "the coordinator started on a damaged journal";
    EXPECT_NE(code, -1) << "the coordinator is still running";
    EXPECT_NE(code, 0);
    EXPECT_LT(seconds, 10.0);
    std::string log = ReadFile(dir_.File("coordinator.log")).substr(log_before.size());
    EXPECT_TRUE(Has(log, journal())) << log;
    EXPECT_TRUE(Has(log, "refuses to start")) << log;
    // Participants keep their state; nothing was decided for them.
    EXPECT_EQ(Balance("bank_a", 1), 90);
    EXPECT_EQ(Balance("bank_b", 1), 110);
  }
};

TEST_F(FaultsTest, ParticipantFrozenDuringPrepareIsAbortedAndRolledBackWhenItResumes) {
  // The frozen participant never acknowledges the rollback either; its
  // branch, unprepared, ends at the transaction's deadline at the latest.
  StartCluster({"--prepare_timeout_ms=500", "--rpc_timeout_ms=1000", "--txn_timeout_ms=8000"});
  auto client = Connect();
  auto txn = PrepareTransfer(*client, 40);
  ASSERT_TRUE(txn);
  cluster_.participant("bank_b").Signal(SIGSTOP);
  Status st = txn->Commit();
  EXPECT_EQ(st.code(), StatusCode::kAborted) << st.ToString();
  EXPECT_TRUE(Has(st.message(), "bank_b")) << st.ToString();
  // bank_a was told to roll back before the client heard ABORTED.
  auto open_a = cluster_.OpenBranches("bank_a");
  ASSERT_TRUE(open_a.ok());
  EXPECT_TRUE(open_a->empty());
  EXPECT_EQ(Balance("bank_a", 1), 100);
  auto state = client->GetState(txn->id());
  ASSERT_TRUE(state.ok()) << state.status().ToString();
  EXPECT_EQ(*state, TxnState::kAborted);

  // Resumed, bank_b works through what arrived meanwhile (the prepare and
  // the rollback, in any order) and ends with its branch rolled back.
  cluster_.participant("bank_b").Signal(SIGCONT);
  EXPECT_TRUE(cluster_.EventuallyNoOpenBranches(20000));
  EXPECT_EQ(Balance("bank_a", 1), 100);
  EXPECT_EQ(Balance("bank_b", 1), 100);
  // Its locks are gone: the same accounts move in the next transfer.
  auto next = PrepareTransfer(*client, 5);
  ASSERT_TRUE(next);
  EXPECT_TRUE(next->Commit().ok());
  EXPECT_EQ(Balance("bank_a", 1), 95);
  EXPECT_EQ(Balance("bank_b", 1), 105);
  ExpectJournalHasNothingUnfinished();
}

// The coordinator takes its prepare timeout plus a rollback round to answer;
// a client whose call timeout is shorter must still hear that answer, not
// "unknown".
TEST_F(FaultsTest, ClientWithAShortCallTimeoutStillHearsTheDecision) {
  StartCluster({"--prepare_timeout_ms=500", "--rpc_timeout_ms=1000", "--txn_timeout_ms=8000"});
  ClientOptions options;
  options.timeouts.call_ms = 200;
  auto client = Client::Connect(cluster_.coordinator_address(), options);
  ASSERT_TRUE(client.ok());
  auto txn = PrepareTransfer(**client, 40);
  ASSERT_TRUE(txn);
  cluster_.participant("bank_b").Signal(SIGSTOP);
  Status st = txn->Commit();
  EXPECT_EQ(st.code(), StatusCode::kAborted) << st.ToString();
  cluster_.participant("bank_b").Signal(SIGCONT);
  EXPECT_TRUE(cluster_.EventuallyNoOpenBranches(20000));
  EXPECT_EQ(Balance("bank_a", 1), 100);
  EXPECT_EQ(Balance("bank_b", 1), 100);
}

TEST_F(FaultsTest, ParticipantFrozenDuringCommitIsRetriedAndCommitsWhenItResumes) {
  StartCluster({"--prepare_timeout_ms=30000", "--rpc_timeout_ms=1000",
                "--commit_retry_initial_ms=50", "--commit_retry_max_ms=400"},
               /*with_bank_c=*/true);
  auto client = Connect();
  auto txn = PrepareTransfer(*client, 40);
  ASSERT_TRUE(txn);
  CommitWithBankBFrozenAfterItsVote(*txn, 40);
  if (HasFatalFailure()) return;
  EXPECT_EQ(Balance("bank_a", 1), 60);
  EXPECT_EQ(Balance("bank_b", 1), 100);  // prepared, invisible
  auto ledger_c = QueryInt(cluster_.db_path("bank_c"), "SELECT count(*) FROM ledger");
  ASSERT_TRUE(ledger_c.ok()) << ledger_c.status().ToString();
  EXPECT_EQ(*ledger_c, 1);

  // pactctl shows bank_b pending while the coordinator keeps retrying.
  BranchView first = ShowBranch(txn->id(), "bank_b");
  EXPECT_EQ(first.state, "commit pending");
  BranchView later;
  EXPECT_TRUE(PollUntil(
      [&] {
        later = ShowBranch(txn->id(), "bank_b");
        return later.attempts >= first.attempts + 2;
      },
      15000))
      << "attempts stayed at " << later.attempts;
  EXPECT_EQ(later.state, "commit pending");
  Ran text = Pactctl({"show", txn->id()});
  EXPECT_TRUE(Has(text.out, "COMMITTING")) << text.out;
  EXPECT_TRUE(Has(text.out, "commit pending")) << text.out;
  auto state = client->GetState(txn->id());
  ASSERT_TRUE(state.ok());
  EXPECT_EQ(*state, TxnState::kCommitting);

  cluster_.participant("bank_b").Signal(SIGCONT);
  EXPECT_TRUE(cluster_.EventuallyNoOpenBranches(20000));
  EXPECT_EQ(Balance("bank_b", 1), 140);
  EXPECT_TRUE(PollUntil(
      [&] {
        auto s = client->GetState(txn->id());
        return s.ok() && *s == TxnState::kCommitted;
      },
      10000));
  EXPECT_EQ(ShowBranch(txn->id(), "bank_b").state, "committed");
  ExpectJournalHasNothingUnfinished();
}

TEST_F(FaultsTest, CoordinatorFrozenAfterTheDecisionAnswersARestartedParticipantWhenItResumes) {
  // The coordinator never re-sends the commit here (its backoff is ten
  // minutes): only bank_b's own inquiry can finish the branch.
  cluster_.participant_flags = {"--inquiry_interval_ms=200", "--rpc_timeout_ms=1000"};
  StartCluster({"--prepare_timeout_ms=30000", "--rpc_timeout_ms=1000",
                "--commit_retry_initial_ms=600000", "--commit_retry_max_ms=600000"},
               /*with_bank_c=*/true);
  auto client = Connect();
  auto txn = PrepareTransfer(*client, 40);
  ASSERT_TRUE(txn);
  CommitWithBankBFrozenAfterItsVote(*txn, 40);
  if (HasFatalFailure()) return;

  cluster_.coordinator().Signal(SIGSTOP);
  cluster_.participant("bank_b").Signal(SIGKILL);
  ASSERT_EQ(cluster_.participant("bank_b").WaitForExit(5000), 128 + SIGKILL);
  // StartParticipant returns once bank_b registered, which needs the
  // coordinator: meanwhile a watcher checks bank_b, then resumes the
  // coordinator. (The start stays on this thread: a child started by a
  // thread gets SIGKILL when that thread ends.)
  bool restored = false, stayed = false;
  int64_t balance_while_frozen = -1;
  std::thread watcher([&] {
    restored = PollUntil([&] { return HoldsPrepared("bank_b", txn->id()); }, 10000);
    // Several inquiry intervals pass unanswered: the branch stays prepared.
    stayed = restored;
    for (auto until = Clock::now() + std::chrono::milliseconds(1500);
         stayed && Clock::now() < until;
         std::this_thread::sleep_for(std::chrono::milliseconds(100))) {
      stayed = HoldsPrepared("bank_b", txn->id());
    }
    balance_while_frozen = Balance("bank_b", 1);
    cluster_.coordinator().Signal(SIGCONT);
  });
  Status restarted = cluster_.StartParticipant("bank_b");
  watcher.join();
  ASSERT_TRUE(restored) << "bank_b did not restore its prepared branch";
  EXPECT_TRUE(stayed) << "the branch was decided while its coordinator was frozen";
  EXPECT_EQ(balance_while_frozen, 100);
  EXPECT_TRUE(restarted.ok()) << restarted.ToString();

  EXPECT_TRUE(cluster_.EventuallyNoOpenBranches(20000));
  EXPECT_EQ(Balance("bank_a", 1), 60);
  EXPECT_EQ(Balance("bank_b", 1), 140);
  std::string log = ReadFile(dir_.File("bank_b.log"));
  EXPECT_TRUE(Has(log, "txn " + txn->id() + ": coordinator says COMMITTED")) << log;
  // The coordinator learns it at its next attempt (asked for now): a commit
  // bank_b already applied counts as acknowledged.
  EXPECT_EQ(Pactctl({"retry", txn->id()}).code, 0);
  EXPECT_TRUE(PollUntil(
      [&] {
        auto s = client->GetState(txn->id());
        return s.ok() && *s == TxnState::kCommitted;
      },
      10000));
  ExpectJournalHasNothingUnfinished();
}

TEST_F(FaultsTest, JournalWriteFailureAbortsAndTheCoordinatorServesAgainOnceItCanWrite) {
  const std::string flag = dir_.File("journal-full");
  StartCluster({}, /*with_bank_c=*/false, {{"PACT_INJECT_JOURNAL_ERROR", flag}});
  std::ofstream(flag).put('x');

  auto client = Connect();
  auto txn = PrepareTransfer(*client, 40);
  ASSERT_TRUE(txn);
  Status st = txn->Commit();
  EXPECT_EQ(st.code(), StatusCode::kAborted) << st.ToString();
  EXPECT_TRUE(Has(st.message(), "durable")) << st.ToString();
  EXPECT_TRUE(Has(st.message(), "disk is full")) << st.ToString();
  EXPECT_TRUE(cluster_.EventuallyNoOpenBranches(10000));
  EXPECT_EQ(Balance("bank_a", 1), 100);
  EXPECT_EQ(Balance("bank_b", 1), 100);
  auto state = client->GetState(txn->id());
  ASSERT_TRUE(state.ok());
  EXPECT_EQ(*state, TxnState::kAborted);
  // One participant commits in one phase: no journal write, so it still works.
  auto single = client->Begin();
  ASSERT_TRUE(single.ok());
  ASSERT_TRUE(
      (*single)->Execute("bank_a", "UPDATE accounts SET balance = balance - 1 WHERE id = 2").ok());
  EXPECT_TRUE((*single)->Commit().ok());
  EXPECT_EQ(Balance("bank_a", 2), 99);

  // Space is back: the same coordinator, not restarted, commits again.
  ASSERT_EQ(unlink(flag.c_str()), 0);
  auto next = PrepareTransfer(*client, 40);
  ASSERT_TRUE(next);
  EXPECT_TRUE(next->Commit().ok());
  EXPECT_EQ(Balance("bank_a", 1), 60);
  EXPECT_EQ(Balance("bank_b", 1), 140);
  EXPECT_TRUE(cluster_.EventuallyNoOpenBranches(10000));
  EXPECT_TRUE(cluster_.coordinator().running());
  ExpectJournalHasNothingUnfinished();
}

TEST_F(FaultsTest, CorruptedJournalIsRefusedAtStart) {
  StartCluster({});
  ExpectRefusedAfter([](const std::string& path) {
    struct stat st;
    ASSERT_EQ(stat(path.c_str(), &st), 0);
    // Garbage over the middle half of the file, header and schema page intact.
    std::mt19937 rng(42);
    std::string garbage(st.st_size / 2, '\0');
    for (char& c : garbage) c = static_cast<char>(rng());
    std::fstream file(path, std::ios::in | std::ios::out | std::ios::binary);
    file.seekp(st.st_size / 4);
    file.write(garbage.data(), static_cast<std::streamsize>(garbage.size()));
    ASSERT_TRUE(file.good());
  });
}

TEST_F(FaultsTest, TruncatedJournalIsRefusedAtStart) {
  StartCluster({});
  ExpectRefusedAfter([](const std::string& path) {
    struct stat st;
    ASSERT_EQ(stat(path.c_str(), &st), 0);
    ASSERT_EQ(truncate(path.c_str(), st.st_size / 2), 0);
  });
}

}  // namespace
}  // namespace pact
