// Real crashes: a process _exits at a named protocol step (like kill -9 at
// exactly that moment), is restarted on the same files, and the transaction
// must end the same way everywhere.
#include <thread>

#include "common/crash_point.h"
#include "common/txn_id.h"
#include "gen-cpp/Participant.h"
#include "rpc/rpc_client.h"
#include "tests/bank_fixture.h"

namespace pact {
namespace {

using RecoveryTest = BankTest;

std::map<std::string, std::string> CrashAt(const std::string& point) {
  return {{"PACT_CRASH_POINT", point}};
}

TEST_F(RecoveryTest, ParticipantCrashAfterVotingCommitsAfterRestart) {
  ASSERT_TRUE(cluster_.StartParticipant("bank_b", CrashAt("before_commit_applied")).ok());
  auto client = Connect();
  auto txn = PrepareTransfer(*client, 40);
  ASSERT_TRUE(txn);
  // The decision is durable once both voted, whatever happens to bank_b next.
  ASSERT_TRUE(txn->Commit().ok());
  EXPECT_EQ(cluster_.participant("bank_b").WaitForExit(5000), kCrashExitCode);
  EXPECT_EQ(Balance("bank_a", 1), 60);
  EXPECT_EQ(Balance("bank_b", 1), 100);  // prepared, not yet committed
  auto pending = client->GetState(txn->id());
  ASSERT_TRUE(pending.ok());
  EXPECT_EQ(*pending, TxnState::kCommitting);

  ASSERT_TRUE(cluster_.StartParticipant("bank_b").ok());
  EXPECT_TRUE(cluster_.EventuallyNoOpenBranches());
  EXPECT_EQ(Balance("bank_b", 1), 140);
  PollUntil([&] { return *client->GetState(txn->id()) == TxnState::kCommitted; }, 5000, 50);
  EXPECT_EQ(*client->GetState(txn->id()), TxnState::kCommitted);
}

TEST_F(RecoveryTest, ParticipantCrashBeforeItsVoteAbortsAndItsBranchRollsBackAfterRestart) {
  ASSERT_TRUE(cluster_.StartParticipant("bank_b", CrashAt("after_prepare_durable")).ok());
  auto client = Connect();
  auto txn = PrepareTransfer(*client, 40);
  ASSERT_TRUE(txn);
  Status st = txn->Commit();
  EXPECT_EQ(st.code(), StatusCode::kAborted) << st.ToString();
  EXPECT_EQ(cluster_.participant("bank_b").WaitForExit(5000), kCrashExitCode);
  // bank_b's branch was durable as prepared when it died: restart restores it,
  // asks the coordinator, hears ABORTED (presumed abort) and rolls it back.
  ASSERT_TRUE(cluster_.StartParticipant("bank_b").ok());
  EXPECT_TRUE(cluster_.EventuallyNoOpenBranches());
  EXPECT_EQ(Balance("bank_a", 1), 100);
  EXPECT_EQ(Balance("bank_b", 1), 100);
  auto next = PrepareTransfer(*client, 1);
  ASSERT_TRUE(next);
  EXPECT_TRUE(next->Commit().ok());
}

TEST_F(RecoveryTest, CoordinatorCrashAfterTheDecisionCommitsBothOnRestart) {
  ASSERT_TRUE(cluster_.StartCoordinator(CrashAt("after_decision_logged")).ok());
  auto client = Connect();
  auto txn = PrepareTransfer(*client, 25);
  ASSERT_TRUE(txn);
  Status st = txn->Commit();
  EXPECT_EQ(st.code(), StatusCode::kUnavailable) << st.ToString();  // outcome unknown
  EXPECT_EQ(cluster_.coordinator().WaitForExit(5000), kCrashExitCode);
  EXPECT_EQ(Balance("bank_a", 1), 100);  // both prepared, neither committed

  ASSERT_TRUE(cluster_.StartCoordinator().ok());
  EXPECT_TRUE(cluster_.EventuallyNoOpenBranches());
  EXPECT_EQ(Balance("bank_a", 1), 75);
  EXPECT_EQ(Balance("bank_b", 1), 125);
}

TEST_F(RecoveryTest, PreparedBranchesWithoutACommitRecordRollBackWhenTheCoordinatorRestarts) {
  ASSERT_TRUE(cluster_.StartCoordinator(CrashAt("after_votes_collected")).ok());
  auto client = Connect();
  auto txn = PrepareTransfer(*client, 25);
  ASSERT_TRUE(txn);
  EXPECT_EQ(txn->Commit().code(), StatusCode::kUnavailable);
  EXPECT_EQ(cluster_.coordinator().WaitForExit(5000), kCrashExitCode);
  auto open = cluster_.OpenBranches("bank_a");
  ASSERT_TRUE(open.ok());
  ASSERT_EQ(open->size(), 1u);
  EXPECT_EQ((*open)[0], txn->id() + " PREPARED");

  ASSERT_TRUE(cluster_.StartCoordinator().ok());
  EXPECT_TRUE(cluster_.EventuallyNoOpenBranches());
  EXPECT_EQ(Balance("bank_a", 1), 100);
  EXPECT_EQ(Balance("bank_b", 1), 100);
}

// The coordinator hears of a transaction only at its commit: with the
// coordinator gone, the client itself gives up the branches it opened, so
// that their locks go at once rather than at their deadline.
TEST_F(RecoveryTest, ClientGivesUpItsBranchesWhenTheCoordinatorIsGone) {
  auto client = Connect();
  auto txn = client->Begin(/*timeout_ms=*/60000);
  ASSERT_TRUE(txn.ok());
  ASSERT_TRUE((*txn)->Execute("bank_a", "UPDATE accounts SET balance = 0 WHERE id = 1").ok());
  ASSERT_TRUE((*txn)->Execute("bank_b", "UPDATE accounts SET balance = 0 WHERE id = 1").ok());
  cluster_.coordinator().Signal(SIGKILL);
  cluster_.coordinator().WaitForExit(5000);
  Status rolled_back = (*txn)->Rollback();
  EXPECT_TRUE(rolled_back.ok()) << rolled_back.ToString();
  EXPECT_TRUE(cluster_.EventuallyNoOpenBranches(3000));  // long before the deadline
  EXPECT_EQ(Balance("bank_a", 1), 100);
  EXPECT_EQ(Balance("bank_b", 1), 100);
  // Until the coordinator is back, Begin asks it (and fails) rather than
  // open branches nobody could commit.
  EXPECT_EQ(client->Begin().status().code(), StatusCode::kUnavailable);
  ASSERT_TRUE(cluster_.StartCoordinator().ok());
  auto next = PrepareTransfer(*client, 1);
  ASSERT_TRUE(next && next->Commit().ok());
  EXPECT_EQ(Balance("bank_a", 1), 99);
}

TEST_F(RecoveryTest, ReplacedCoordinatorEpochIsFencedOff) {
  // Make bank_a see epoch 1, then restart the coordinator (epoch 2).
  auto client = Connect();
  auto txn = PrepareTransfer(*client, 1);
  ASSERT_TRUE(txn && txn->Commit().ok());
  cluster_.coordinator().Signal(SIGKILL);
  cluster_.coordinator().WaitForExit(5000);
  ASSERT_TRUE(cluster_.StartCoordinator().ok());
  // The client's ids were reserved from the old run, which can commit none:
  // the first statement is refused there and the client takes a fresh id.
  auto again = client->Begin();
  ASSERT_TRUE(again.ok());
  const std::string reserved_before = (*again)->id();
  ASSERT_TRUE((*again)->Execute("bank_a", "UPDATE accounts SET balance = balance - 1 WHERE id = 1")
                  .ok());
  EXPECT_NE((*again)->id(), reserved_before);
  EXPECT_EQ(TxnId::Parse((*again)->id())->epoch, TxnId::Parse(reserved_before)->epoch + 1);
  ASSERT_TRUE((*again)->Execute("bank_b", "UPDATE accounts SET balance = balance + 1 WHERE id = 1")
                  .ok());
  ASSERT_TRUE((*again)->Commit().ok());
  EXPECT_EQ(Balance("bank_a", 1), 98);
  EXPECT_EQ(Balance("bank_b", 1), 102);

  RpcConnection<rpc::ParticipantClient> bank_a(
      Endpoint{"127.0.0.1", cluster_.participant_port("bank_a")}, RpcTimeouts{});
  rpc::Fence stale;
  stale.coordinator = "c1";
  stale.epoch = 1;
  Status st = bank_a.Call([&](rpc::ParticipantClient& c) { c.rollback(stale, "c1.1.1"); });
  EXPECT_EQ(st.code(), StatusCode::kFenced) << st.ToString();
}

}  // namespace
}  // namespace pact
