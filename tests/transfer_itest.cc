// Bank transfers through real processes: a coordinator and two SQLite
// participant adapters on loopback, driven by the client library.
#include <thread>

#include "tests/bank_fixture.h"

namespace pact {
namespace {

using TransferTest = BankTest;

TEST_F(TransferTest, TransferCommitsOnBothParticipants) {
  auto client = Connect();
  auto txn = PrepareTransfer(*client, 30);
  ASSERT_TRUE(txn);
  ASSERT_TRUE(txn->Commit().ok());
  EXPECT_EQ(Balance("bank_a", 1), 70);
  EXPECT_EQ(Balance("bank_b", 1), 130);
  auto state = client->GetState(txn->id());
  ASSERT_TRUE(state.ok());
  EXPECT_EQ(*state, TxnState::kCommitted);
  EXPECT_TRUE(cluster_.EventuallyNoOpenBranches());
}

TEST_F(TransferTest, UncommittedChangesAreInvisibleToOtherReaders) {
  auto client = Connect();
  auto txn = PrepareTransfer(*client, 30);
  ASSERT_TRUE(txn);
  EXPECT_EQ(Balance("bank_a", 1), 100);
  EXPECT_EQ(Balance("bank_b", 1), 100);
  ASSERT_TRUE(txn->Commit().ok());
}

TEST_F(TransferTest, TransferAbortsOnBothWhenOneParticipantVotesNo) {
  auto client = Connect();
  auto txn = PrepareTransfer(*client, 30);
  ASSERT_TRUE(txn);
  // A deferred foreign key to an account that does not exist: bank_b can
  // only find out at prepare, and votes ABORT.
  auto bad = txn->Execute("bank_b", "INSERT INTO ledger(account, amount) VALUES (99, 30)");
  ASSERT_TRUE(bad.ok()) << bad.status().ToString();
  Status st = txn->Commit();
  EXPECT_EQ(st.code(), StatusCode::kAborted) << st.ToString();
  EXPECT_NE(st.message().find("bank_b voted ABORT"), std::string::npos) << st.ToString();
  EXPECT_EQ(Balance("bank_a", 1), 100);
  EXPECT_EQ(Balance("bank_b", 1), 100);
  EXPECT_TRUE(cluster_.EventuallyNoOpenBranches());
  // Nothing stayed locked: the next transfer goes through.
  auto next = PrepareTransfer(*client, 10);
  ASSERT_TRUE(next);
  EXPECT_TRUE(next->Commit().ok());
  EXPECT_EQ(Balance("bank_a", 1), 90);
}

TEST_F(TransferTest, ApplicationRollbackLeavesBothUnchanged) {
  auto client = Connect();
  auto txn = PrepareTransfer(*client, 30);
  ASSERT_TRUE(txn);
  ASSERT_TRUE(txn->Rollback().ok());
  EXPECT_EQ(Balance("bank_a", 1), 100);
  EXPECT_EQ(Balance("bank_b", 1), 100);
  EXPECT_TRUE(cluster_.EventuallyNoOpenBranches());
}

TEST_F(TransferTest, DroppedTransactionObjectRollsBack) {
  auto client = Connect();
  {
    auto txn = PrepareTransfer(*client, 30);
    ASSERT_TRUE(txn);
  }
  EXPECT_TRUE(cluster_.EventuallyNoOpenBranches());
  EXPECT_EQ(Balance("bank_a", 1), 100);
}

TEST_F(TransferTest, ClientThatVanishesLeavesNoLocksBehind) {
  auto client = Connect();
  auto txn = client->Begin(/*timeout_ms=*/500);
  ASSERT_TRUE(txn.ok());
  ASSERT_TRUE((*txn)->Execute("bank_a", "UPDATE accounts SET balance = 0 WHERE id = 2").ok());
  // The client dies here: no commit, no rollback, the object is never destroyed.
  (void)txn->release();
  EXPECT_TRUE(cluster_.EventuallyNoOpenBranches(5000));
  EXPECT_EQ(Balance("bank_a", 2), 100);
  auto next = PrepareTransfer(*client, 5, 2, 2);
  ASSERT_TRUE(next);
  EXPECT_TRUE(next->Commit().ok());
  EXPECT_EQ(Balance("bank_a", 2), 95);
}

TEST_F(TransferTest, SingleParticipantTransactionCommitsInOnePhase) {
  auto client = Connect();
  auto txn = client->Begin();
  ASSERT_TRUE(txn.ok());
  auto moved = (*txn)->Execute(
      "bank_a", "UPDATE accounts SET balance = balance + (CASE id WHEN 1 THEN -7 ELSE 7 END) "
                "WHERE id IN (1, 2)");
  ASSERT_TRUE(moved.ok()) << moved.status().ToString();
  EXPECT_EQ(moved->affected_rows, 2);
  ASSERT_TRUE((*txn)->Commit().ok());
  EXPECT_EQ(Balance("bank_a", 1), 93);
  EXPECT_EQ(Balance("bank_a", 2), 107);
}

TEST_F(TransferTest, ReadsReturnTypedRows) {
  auto client = Connect();
  auto txn = client->Begin();
  ASSERT_TRUE(txn.ok());
  auto rows = (*txn)->Execute("bank_b", "SELECT id, balance, 'x' || id, 0.5 FROM accounts "
                                        "WHERE id <= ?1 ORDER BY id",
                              {int64_t{2}});
  ASSERT_TRUE(rows.ok()) << rows.status().ToString();
  ASSERT_EQ(rows->rows.size(), 2u);
  EXPECT_EQ(rows->columns[1], "balance");
  EXPECT_EQ(std::get<int64_t>(rows->rows[1][0]), 2);
  EXPECT_EQ(std::get<int64_t>(rows->rows[1][1]), 100);
  EXPECT_EQ(std::get<std::string>(rows->rows[1][2]), "x2");
  EXPECT_EQ(std::get<double>(rows->rows[1][3]), 0.5);
  EXPECT_TRUE((*txn)->Commit().ok());  // read-only, one phase
}

TEST_F(TransferTest, ConcurrentTransfersConserveTheTotal) {
  constexpr int kClients = 4;
  constexpr int kTransfersEach = 10;
  auto client = Connect();
  std::vector<std::thread> threads;
  std::atomic<int> committed{0};
  for (int c = 0; c < kClients; ++c) {
    threads.emplace_back([&, c] {
      for (int i = 0; i < kTransfersEach; ++i) {
        auto txn = PrepareTransfer(*client, 1, 1 + (c + i) % 3, 1 + i % 3);
        if (txn && txn->Commit().ok()) committed++;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(committed, kClients * kTransfersEach);
  EXPECT_EQ(Total("bank_a") + Total("bank_b"), 6 * kInitialBalance);
  EXPECT_EQ(Total("bank_b") - Total("bank_a"), 2 * committed);
  EXPECT_TRUE(cluster_.EventuallyNoOpenBranches());
}

// Every link through a proxy, so that a test can hold phase two back.
class CommitReturnTest : public BankTest {
 protected:
  static constexpr int kCommitHeldMs = 3000;

  void SetUp() override {
    cluster_.ProxyEveryLink();
    // A prepared branch asks its coordinator late, so only phase two commits it.
    cluster_.participant_flags = {"--inquiry_interval_ms=10000"};
    BankTest::SetUp();
  }
  bool EventuallyCommitted(Client& client, const std::string& txn_id) {
    return PollUntil(
        [&] {
          Result<TxnState> state = client.GetState(txn_id);
          return state.ok() && *state == TxnState::kCommitted;
        },
        10000);
  }
  // bank_b's COMMIT of phase two arrives kCommitHeldMs late, or never.
  RuleId HoldBankBsCommit(Fault fault = Fault::kDelayRequest) {
    return cluster_.to_participant("bank_b").AddRule({"commit", fault, 1, kCommitHeldMs});
  }
};

TEST_F(CommitReturnTest, ReturningAtDecisionAnswersBeforeASlowParticipantCommitsThenItCommits) {
  auto client = Connect(/*return_at_decision=*/true);
  HoldBankBsCommit();
  auto txn = PrepareTransfer(*client, 30);
  ASSERT_TRUE(txn);
  ASSERT_TRUE(txn->Commit().ok());
  // Answered while bank_b's branch is still prepared: a reader there sees
  // the balance as it was (the documented read-your-writes consequence).
  EXPECT_EQ(Balance("bank_b", 1), 100);
  auto state = client->GetState(txn->id());
  ASSERT_TRUE(state.ok());
  EXPECT_EQ(*state, TxnState::kCommitting);
  EXPECT_TRUE(EventuallyCommitted(*client, txn->id()));
  EXPECT_TRUE(cluster_.EventuallyNoOpenBranches());
  EXPECT_EQ(Balance("bank_a", 1), 70);
  EXPECT_EQ(Balance("bank_b", 1), 130);
}

TEST_F(CommitReturnTest, ByDefaultCommitAnswersOnceEveryBranchCommitted) {
  auto client = Connect();
  HoldBankBsCommit();
  auto txn = PrepareTransfer(*client, 30);
  ASSERT_TRUE(txn);
  ASSERT_TRUE(txn->Commit().ok());
  EXPECT_EQ(Balance("bank_a", 1), 70);
  EXPECT_EQ(Balance("bank_b", 1), 130);
}

TEST_F(CommitReturnTest, ReturningAtDecisionSurvivesACoordinatorCrashBeforePhaseTwo) {
  auto client = Connect(/*return_at_decision=*/true);
  RuleId lost = HoldBankBsCommit(Fault::kDropRequest);
  auto txn = PrepareTransfer(*client, 30);
  ASSERT_TRUE(txn);
  ASSERT_TRUE(txn->Commit().ok());
  // The coordinator dies once bank_b's commit was lost; its restart finishes
  // phase two from the journal, well before bank_b would ask.
  ASSERT_TRUE(cluster_.to_participant("bank_b").WaitUntilFired(lost, 5000));
  cluster_.coordinator().Signal(SIGKILL);
  cluster_.coordinator().WaitForExit(5000);
  EXPECT_EQ(Balance("bank_b", 1), 100);
  ASSERT_TRUE(cluster_.StartCoordinator().ok());
  EXPECT_TRUE(cluster_.EventuallyNoOpenBranches(5000));
  EXPECT_EQ(Balance("bank_a", 1), 70);
  EXPECT_EQ(Balance("bank_b", 1), 130);
}

}  // namespace
}  // namespace pact
