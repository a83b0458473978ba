// Journal write errors at every kind of write, each followed by a crash and
// a restart of the real coordinator. The fault is an fsync that fails after
// the data was written (PACT_INJECT_JOURNAL_FSYNC_ERROR): the write may or
// may not be on disk, the case where answering ABORTED is a lie waiting for
// a crash.
#include <signal.h>

#include <fstream>

#include "common/txn_id.h"
#include "tests/bank_fixture.h"

namespace pact {
namespace {

class JournalFaultsTest : public BankTest {
 protected:
  void SetUp() override {
    BankTest::SetUp();
    if (HasFatalFailure()) return;
    KillCoordinator();
    StartCoordinatorWithFaults();
  }
  void KillCoordinator() {
    cluster_.coordinator().Signal(SIGKILL);
    cluster_.coordinator().WaitForExit(5000);
  }
  void StartCoordinatorWithFaults() {
    Status st = cluster_.StartCoordinator({{"PACT_INJECT_JOURNAL_FSYNC_ERROR", trigger_}});
    ASSERT_TRUE(st.ok()) << st.ToString();
  }
  // "" fails every fsync; "N" the next N; "S N" lets S pass first.
  void Arm(const std::string& spec) { std::ofstream(trigger_) << spec; }
  void Disarm() { std::remove(trigger_.c_str()); }

  std::string JournalDump() {
    return RunPactctl({"--json", "journal", dir_.File("journal.db")}).out;
  }
  void ExpectSettled(int64_t a1, int64_t b1) {
    EXPECT_TRUE(cluster_.EventuallyNoOpenBranches());
    EXPECT_EQ(Balance("bank_a", 1), a1);
    EXPECT_EQ(Balance("bank_b", 1), b1);
    EXPECT_EQ(Total("bank_a") + Total("bank_b"), 6 * kInitialBalance);
  }

  const std::string trigger_ = dir_.File("fsync-fault");
};

// The decision's fsync fails once: the record may be on disk, so the
// coordinator makes an abort durable before it says ABORTED. A crash right
// after must not resurrect the commit.
TEST_F(JournalFaultsTest, DecisionFsyncErrorAbortsOnlyAfterADurableAbort) {
  auto client = Connect();
  auto txn = PrepareTransfer(*client, 30);
  ASSERT_TRUE(txn);
  Arm("1");
  Status st = txn->Commit();
  EXPECT_EQ(st.code(), StatusCode::kAborted) << st.ToString();
  ExpectSettled(100, 100);
  KillCoordinator();
  Disarm();
  StartCoordinatorWithFaults();
  ExpectSettled(100, 100);
  EXPECT_NE(JournalDump().find("\"unfinished\":[]"), std::string::npos) << JournalDump();
}

// Every fsync fails: neither the decision nor an abort can be made durable,
// so the outcome is unknown. The client hears UNAVAILABLE, nothing is rolled
// back, the coordinator stops (exit 3), and its restart decides from what is
// on disk, the same way everywhere.
TEST_F(JournalFaultsTest, DecisionAndAbortFsyncErrorsAreUnknownAndRecoveryDecides) {
  auto client = Connect();
  auto txn = PrepareTransfer(*client, 30);
  ASSERT_TRUE(txn);
  Arm("");
  Status st = txn->Commit();
  EXPECT_EQ(st.code(), StatusCode::kUnavailable) << st.ToString();
  EXPECT_EQ(cluster_.coordinator().WaitForExit(10000), 3);
  // Still prepared on both sides: nobody acted on a write that may be on disk.
  for (const char* p : {"bank_a", "bank_b"}) {
    auto held = cluster_.OpenBranches(p);
    ASSERT_TRUE(held.ok());
    ASSERT_EQ(held->size(), 1u) << p;
    EXPECT_NE(held->front().find("PREPARED"), std::string::npos) << p;
  }
  Disarm();
  StartCoordinatorWithFaults();
  EXPECT_TRUE(cluster_.EventuallyNoOpenBranches());
  int64_t a = Balance("bank_a", 1), b = Balance("bank_b", 1);
  EXPECT_TRUE((a == 70 && b == 130) || (a == 100 && b == 100)) << a << " " << b;
  EXPECT_EQ(Total("bank_a") + Total("bank_b"), 6 * kInitialBalance);
  ExpectSettled(a, b);
}

// The lazy END's fsync fails, then the coordinator crashes: the decision is
// re-driven (harmlessly) and the journal ends clean.
TEST_F(JournalFaultsTest, EndFsyncErrorThenCrashRedrivesAndEndsClean) {
  auto client = Connect();
  auto txn = PrepareTransfer(*client, 30);
  ASSERT_TRUE(txn);
  Arm("1 1");  // the decision's fsync passes, the END batch's fails
  ASSERT_TRUE(txn->Commit().ok());
  ExpectSettled(70, 130);
  KillCoordinator();
  Disarm();
  StartCoordinatorWithFaults();
  ExpectSettled(70, 130);
  // The re-driven END is lazy; a clean stop flushes it.
  cluster_.coordinator().Signal(SIGTERM);
  EXPECT_EQ(cluster_.coordinator().WaitForExit(15000), 0);
  EXPECT_NE(JournalDump().find("\"unfinished\":[]"), std::string::npos) << JournalDump();
}

// The epoch's fsync fails at start: the coordinator refuses to serve rather
// than run with an epoch that may not be durable, and the next start takes a
// higher one than any before.
TEST_F(JournalFaultsTest, EpochFsyncErrorRefusesToStartAndTheNextStartRaisesIt) {
  KillCoordinator();
  Arm("1");
  EXPECT_FALSE(cluster_.StartCoordinator({{"PACT_INJECT_JOURNAL_FSYNC_ERROR", trigger_}}).ok());
  EXPECT_GE(cluster_.coordinator().WaitForExit(10000), 1);
  Disarm();
  StartCoordinatorWithFaults();
  auto client = Connect();
  auto txn = PrepareTransfer(*client, 30);
  ASSERT_TRUE(txn);
  // Epochs 1 (fixture) and 2 (SetUp) served; the refused start's may or may
  // not be on disk, so this one is 3 or 4, never one that served.
  auto id = TxnId::Parse(txn->id());
  ASSERT_TRUE(id.ok());
  EXPECT_GE(id->epoch, 3) << txn->id();
  ASSERT_TRUE(txn->Commit().ok());
  ExpectSettled(70, 130);
}

// A registration's fsync fails: the participant is told so and registers
// again; after a crash the coordinator still knows it.
TEST_F(JournalFaultsTest, RegistryFsyncErrorIsRetriedAndSurvivesACrash) {
  CreateBank("bank_c");
  Arm("1");
  Status st = cluster_.StartParticipant("bank_c");
  ASSERT_TRUE(st.ok()) << st.ToString();
  KillCoordinator();
  StartCoordinatorWithFaults();
  Ran listed = RunPactctl({"--coordinator=" + cluster_.coordinator_address(), "participants"});
  EXPECT_NE(listed.out.find("bank_c"), std::string::npos) << listed.out;
  auto client = Connect();
  auto txn = client->Begin();
  ASSERT_TRUE(txn.ok());
  ASSERT_TRUE((*txn)->Execute("bank_c", "UPDATE accounts SET balance = balance - 5 WHERE id = 1")
                  .ok());
  ASSERT_TRUE((*txn)->Execute("bank_a", "UPDATE accounts SET balance = balance + 5 WHERE id = 1")
                  .ok());
  ASSERT_TRUE((*txn)->Commit().ok());
  EXPECT_EQ(Balance("bank_c", 1), 95);
}

// A heuristic mix whose journal write fails is reported again by the
// participant until it is journaled, and survives a crash after that.
TEST_F(JournalFaultsTest, HeuristicRecordFsyncErrorIsReportedAgainAndSurvivesACrash) {
  KillCoordinator();
  ASSERT_TRUE(cluster_.StartCoordinator({{"PACT_INJECT_JOURNAL_FSYNC_ERROR", trigger_},
                                         {"PACT_CRASH_POINT", "after_decision_logged"}})
                  .ok());
  auto client = Connect();
  auto txn = PrepareTransfer(*client, 5);
  ASSERT_TRUE(txn);
  EXPECT_EQ(txn->Commit().code(), StatusCode::kUnavailable);
  ASSERT_GE(cluster_.coordinator().WaitForExit(5000), 0);
  // The coordinator is lost; an operator rolls bank_b's branch back by hand.
  Ran resolved = RunPactctl({"resolve", txn->id(), "--rollback", "--participant", "bank_b",
                             "--journal", dir_.File("journal.db")});
  ASSERT_EQ(resolved.code, 0) << resolved.out;
  // Back, it re-drives COMMIT and hears of the mix; the epoch's fsync passes,
  // the next one (the mix's record) fails.
  Arm("1 1");
  StartCoordinatorWithFaults();
  EXPECT_TRUE(cluster_.EventuallyNoOpenBranches());
  const std::string address = "--coordinator=" + cluster_.coordinator_address();
  auto mix_listed = [&] {
    return RunPactctl({address, "--json", "heuristics"}).out.find(txn->id()) !=
           std::string::npos;
  };
  EXPECT_TRUE(PollUntil(mix_listed, 10000)) << RunPactctl({address, "heuristics"}).out;
  KillCoordinator();
  Disarm();
  StartCoordinatorWithFaults();
  EXPECT_TRUE(mix_listed()) << RunPactctl({address, "heuristics"}).out;
  EXPECT_EQ(Balance("bank_a", 1), 95);
  EXPECT_EQ(Balance("bank_b", 1), 100);
}

}  // namespace
}  // namespace pact
