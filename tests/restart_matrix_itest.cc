// The restart matrix: a participant restarted (kill -9, and a clean SIGTERM)
// at every point of a transaction's life, the coordinator restarted while
// branches are ACTIVE, and two coordinators started on one journal. Real
// processes over loopback; every case checks what a user relies on: what the
// client was told, the balances, and that nothing is left prepared.
#include <signal.h>

#include <chrono>
#include <filesystem>
#include <thread>

#include "tests/bank_fixture.h"

namespace pact {
namespace {

enum class How { kKill, kClean };

void PrintTo(How how, std::ostream* os) { *os << (how == How::kKill ? "Kill" : "Clean"); }

class RestartMatrixTest : public BankTest, public ::testing::WithParamInterface<How> {
 protected:
  // Restarts a participant on the same files, as `how` says. With the
  // coordinator down it cannot register, so then only wait until it serves.
  void RestartParticipant(const std::string& name, bool coordinator_up = true) {
    Process& p = cluster_.participant(name);
    p.Signal(GetParam() == How::kKill ? SIGKILL : SIGTERM);
    ASSERT_GE(p.WaitForExit(10000), 0) << name << " did not stop";
    if (coordinator_up) {
      Status st = cluster_.StartParticipant(name);
      ASSERT_TRUE(st.ok()) << st.ToString();
      return;
    }
    ASSERT_TRUE(p.Start().ok());
    ASSERT_TRUE(PollUntil([&] { return cluster_.OpenBranches(name).ok(); }, 10000))
        << name << " did not come back";
  }
  void RestartCoordinator() {
    Process& c = cluster_.coordinator();
    c.Signal(GetParam() == How::kKill ? SIGKILL : SIGTERM);
    ASSERT_GE(c.WaitForExit(15000), 0) << "coordinator did not stop";
    Status st = cluster_.StartCoordinator();
    ASSERT_TRUE(st.ok()) << st.ToString();
  }

  // Restarts the coordinator armed with a crash point, and commits a
  // transfer that kills it there: the client hears the outcome is unknown.
  void CommitUntilTheCoordinatorDiesAt(const std::string& point, Client& client,
                                       std::unique_ptr<Transaction>* txn) {
    cluster_.coordinator().Signal(SIGKILL);
    cluster_.coordinator().WaitForExit(5000);
    ASSERT_TRUE(cluster_.StartCoordinator({{"PACT_CRASH_POINT", point}}).ok());
    *txn = PrepareTransfer(client, 30);
    ASSERT_TRUE(*txn);
    Status st = (*txn)->Commit();
    EXPECT_EQ(st.code(), StatusCode::kUnavailable) << st.ToString();
    ASSERT_GE(cluster_.coordinator().WaitForExit(10000), 0);
  }

  // Money is where it started, nothing is held, and the next transfer works.
  void ExpectUnchangedAndFree() {
    EXPECT_TRUE(cluster_.EventuallyNoOpenBranches());
    EXPECT_EQ(Total("bank_a"), 3 * kInitialBalance);
    EXPECT_EQ(Total("bank_b"), 3 * kInitialBalance);
    EXPECT_EQ(Balance("bank_a", 1), kInitialBalance);
    EXPECT_EQ(Balance("bank_b", 1), kInitialBalance);
    ExpectNextTransferCommits();
  }
  void ExpectNextTransferCommits() {
    auto client = Connect();
    int64_t a = Balance("bank_a", 2), b = Balance("bank_b", 2);
    auto txn = PrepareTransfer(*client, 1, 2, 2);
    ASSERT_TRUE(txn);
    Status st = txn->Commit();
    EXPECT_TRUE(st.ok()) << st.ToString();
    EXPECT_EQ(Balance("bank_a", 2), a - 1);
    EXPECT_EQ(Balance("bank_b", 2), b + 1);
  }
  Status Debit(Transaction& txn, const std::string& participant, int64_t amount, int64_t account) {
    return txn.Execute(participant, "UPDATE accounts SET balance = balance - ?1 WHERE id = ?2",
                       {amount, account})
        .status();
  }
  Status Credit(Transaction& txn, const std::string& participant, int64_t amount,
                int64_t account) {
    return txn.Execute(participant, "UPDATE accounts SET balance = balance + ?1 WHERE id = ?2",
                       {amount, account})
        .status();
  }
};

// The reported bug: a debit lost with the restart, the credit kept, COMMITTED.
TEST_P(RestartMatrixTest, ParticipantRestartBetweenStatementsAborts) {
  auto client = Connect();
  auto txn = client->Begin();
  ASSERT_TRUE(txn.ok());
  ASSERT_TRUE(Debit(**txn, "bank_a", 30, 1).ok());
  RestartParticipant("bank_a");
  // One more statement at the restarted participant: it opens the branch
  // again, and the coordinator hears of a second opening.
  Status again = Debit(**txn, "bank_a", 5, 2);
  EXPECT_EQ(again.code(), StatusCode::kAborted) << again.ToString();
  (void)Credit(**txn, "bank_b", 30, 1);
  Status st = (*txn)->Commit();
  EXPECT_EQ(st.code(), StatusCode::kAborted) << st.ToString();
  ExpectUnchangedAndFree();
}

TEST_P(RestartMatrixTest, ParticipantRestartBeforePrepareAborts) {
  auto client = Connect();
  auto txn = PrepareTransfer(*client, 30);
  ASSERT_TRUE(txn);
  RestartParticipant("bank_a");
  Status st = txn->Commit();
  EXPECT_EQ(st.code(), StatusCode::kAborted) << st.ToString();
  ExpectUnchangedAndFree();
}

TEST_P(RestartMatrixTest, ParticipantRestartMidTransactionAbortsTheOnePhaseCommit) {
  auto client = Connect();
  auto txn = client->Begin();
  ASSERT_TRUE(txn.ok());
  ASSERT_TRUE(Debit(**txn, "bank_a", 30, 1).ok());
  RestartParticipant("bank_a");
  (void)Credit(**txn, "bank_a", 30, 2);
  Status st = (*txn)->Commit();
  EXPECT_EQ(st.code(), StatusCode::kAborted) << st.ToString();
  ExpectUnchangedAndFree();
}

// Coordinator dies once the votes are in (both branches prepared), a
// participant restarts while prepared, then the coordinator comes back:
// no decision was recorded, so both roll back.
TEST_P(RestartMatrixTest, ParticipantRestartAfterTheVoteKeepsThePreparedBranch) {
  auto client = Connect();
  std::unique_ptr<Transaction> txn;
  CommitUntilTheCoordinatorDiesAt("after_votes_collected", *client, &txn);
  if (HasFatalFailure()) return;
  auto held = cluster_.OpenBranches("bank_a");
  ASSERT_TRUE(held.ok());
  ASSERT_EQ(held->size(), 1u);
  EXPECT_NE(held->front().find("PREPARED"), std::string::npos);
  RestartParticipant("bank_a", /*coordinator_up=*/false);
  held = cluster_.OpenBranches("bank_a");
  ASSERT_TRUE(held.ok());
  ASSERT_EQ(held->size(), 1u) << "a prepared branch must survive its adapter's restart";
  ASSERT_TRUE(cluster_.StartCoordinator().ok());
  ExpectUnchangedAndFree();
}

// Coordinator dies once the decision is durable, before any commit went out;
// bank_b restarts, still prepared; the re-driven decision commits both.
TEST_P(RestartMatrixTest, ParticipantRestartDuringCommitStillCommits) {
  auto client = Connect();
  std::unique_ptr<Transaction> txn;
  CommitUntilTheCoordinatorDiesAt("after_decision_logged", *client, &txn);
  if (HasFatalFailure()) return;
  RestartParticipant("bank_b", /*coordinator_up=*/false);
  ASSERT_TRUE(cluster_.StartCoordinator().ok());
  EXPECT_TRUE(cluster_.EventuallyNoOpenBranches());
  EXPECT_EQ(Balance("bank_a", 1), 70);
  EXPECT_EQ(Balance("bank_b", 1), 130);
  auto state = client->GetState(txn->id());
  ASSERT_TRUE(state.ok()) << state.status().ToString();
  EXPECT_EQ(*state, TxnState::kCommitted);
  ExpectNextTransferCommits();
}

// A restarted coordinator's participants roll back the older run's ACTIVE
// branches at once instead of holding their locks until the deadline.
TEST_P(RestartMatrixTest, CoordinatorRestartWithActiveBranchesReleasesThemAtOnce) {
  auto client = Connect();
  auto txn = client->Begin(/*timeout_ms=*/600000);
  ASSERT_TRUE(txn.ok());
  ASSERT_TRUE(Debit(**txn, "bank_a", 30, 1).ok());  // holds bank_a's write lock
  RestartCoordinator();
  auto start = std::chrono::steady_clock::now();
  ExpectNextTransferCommits();
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
  Status st = (*txn)->Commit();
  EXPECT_FALSE(st.ok());
  EXPECT_NE(st.code(), StatusCode::kOk);
  EXPECT_TRUE(cluster_.EventuallyNoOpenBranches());
  EXPECT_EQ(Total("bank_a") + Total("bank_b"), 6 * kInitialBalance);
  EXPECT_EQ(Balance("bank_a", 1), kInitialBalance);
}

INSTANTIATE_TEST_SUITE_P(Both, RestartMatrixTest, ::testing::Values(How::kKill, How::kClean));

using DuplicateCoordinatorTest = BankTest;

// A second coordinator on the live one's journal is refused before it
// touches anything: the live one's transaction in flight still commits, and
// nothing after it is fenced.
TEST_F(DuplicateCoordinatorTest, SecondCoordinatorOnOneJournalIsRefusedAndChangesNothing) {
  auto client = Connect();
  auto txn = PrepareTransfer(*client, 30);
  ASSERT_TRUE(txn);
  Process second({PACT_COORDINATOR_BIN, "--name=c1", "--port=" + std::to_string(FreePort()),
                  "--journal=" + dir_.File("journal.db")},
                 {}, dir_.File("second-coordinator.log"));
  ASSERT_TRUE(second.Start().ok());
  EXPECT_EQ(second.WaitForExit(10000), 1);
  ASSERT_TRUE(txn->Commit().ok());
  EXPECT_EQ(Balance("bank_a", 1), 70);
  EXPECT_EQ(Balance("bank_b", 1), 130);
  auto next = PrepareTransfer(*client, 10);
  ASSERT_TRUE(next);
  EXPECT_TRUE(next->Commit().ok());
  EXPECT_TRUE(cluster_.EventuallyNoOpenBranches());
}

// A copy of the journal started on the live one's port fails to bind before
// recovery runs: it raises no epoch, so it fences nobody and rolls nothing
// back of the live one's.
TEST_F(DuplicateCoordinatorTest, SecondCoordinatorOnTheSamePortFailsBeforeRecovery) {
  auto client = Connect();
  auto txn = PrepareTransfer(*client, 30);
  ASSERT_TRUE(txn);
  for (const char* suffix : {"", "-wal"}) {
    std::filesystem::copy_file(dir_.File(std::string("journal.db") + suffix),
                               dir_.File(std::string("other-journal.db") + suffix));
  }
  std::string port = cluster_.coordinator_address().substr(
      cluster_.coordinator_address().rfind(':') + 1);
  Process second({PACT_COORDINATOR_BIN, "--name=c1", "--port=" + port,
                  "--journal=" + dir_.File("other-journal.db")},
                 {}, dir_.File("second-coordinator.log"));
  ASSERT_TRUE(second.Start().ok());
  EXPECT_EQ(second.WaitForExit(10000), 1);
  ASSERT_TRUE(txn->Commit().ok());
  EXPECT_EQ(Balance("bank_a", 1), 70);
  EXPECT_EQ(Balance("bank_b", 1), 130);
}

}  // namespace
}  // namespace pact
