// The coordinator's protocol against scripted participants and a real
// SQLite journal: every vote combination, timeouts, retries, the read-only
// and one-phase paths, journal failure, deadlines and recovery; and the
// tables of moves of the transaction and branch state machines.
#include <gtest/gtest.h>

#include <chrono>
#include <future>
#include <map>
#include <optional>
#include <set>
#include <thread>

#include "common/txn_id.h"
#include "coordinator/coordinator.h"
#include "coordinator/id_reservations.h"
#include "journal/sqlite_journal.h"
#include "tests/fake_participants.h"
#include "cluster/temp_dir.h"
#include "cluster/wait_until.h"

namespace pact {
namespace {

using namespace std::chrono_literals;

// LogCommit fails like a full disk; everything else is the real journal.
class FullDiskJournal : public JournalWrapper {
 public:
  using JournalWrapper::JournalWrapper;
  Status LogCommit(const CommitRecord&) override {
    return Status::IoError("database or disk is full");
  }
};

// LogCommit fails at its commit point (the record may be on disk); LogAbort
// fails too while abort_fails is set.
class AmbiguousJournal : public JournalWrapper {
 public:
  using JournalWrapper::JournalWrapper;
  Status LogCommit(const CommitRecord& r) override {
    Status written = JournalWrapper::LogCommit(r);  // it did reach the disk
    EXPECT_TRUE(written.ok()) << written.ToString();
    return Status::Unavailable("fsync failed: the transaction may or may not be durable");
  }
  Status LogAbort(const std::string& txn_id) override {
    if (abort_fails) return Status::IoError("fsync failed again");
    return JournalWrapper::LogAbort(txn_id);
  }
  bool abort_fails = false;
};

class CoordinatorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    SqliteJournalOptions journal_options;
    journal_options.coordinator_name = "c1";
    auto journal = SqliteJournal::Open(dir_.File("journal.db"), journal_options);
    ASSERT_TRUE(journal.ok()) << journal.status().ToString();
    journal_ = std::move(*journal);
    options_.name = "c1";
    options_.protocol.prepare_timeout_ms = 200;
    options_.protocol.commit_retry_initial_ms = 10;
    options_.protocol.commit_retry_max_ms = 40;
    options_.deadline_check_interval_ms = 10;
  }

  void StartCoordinator(Journal* journal = nullptr) {
    coordinator_ = std::make_unique<Coordinator>(options_, journal ? journal : journal_.get(),
                                                 &participants_);
    ASSERT_TRUE(coordinator_->Start().ok());
    for (const char* p : {"a", "b", "c"}) {
      ASSERT_TRUE(coordinator_->RegisterParticipant({p, "127.0.0.1", 1, "fake"}).ok());
    }
  }

  // Begins a transaction whose client opened branches at `participants`
  // (Commit and Rollback below report them).
  std::string BeginWith(const std::vector<std::string>& participants, int64_t timeout_ms = 0) {
    auto begun = coordinator_->Begin(timeout_ms);
    EXPECT_TRUE(begun.ok()) << begun.status().ToString();
    for (const auto& p : participants) opened_[begun->txn_id].push_back({p, "run1.1"});
    return begun->txn_id;
  }

  // As the client library calls them: with the branches it opened.
  Result<CommitOutcome> Commit(const std::string& txn_id,
                               CommitReturn when = CommitReturn::kAfterBranches) {
    return coordinator_->Commit(txn_id, opened_[txn_id], when);
  }
  Status Rollback(const std::string& txn_id) {
    return coordinator_->Rollback(txn_id, opened_[txn_id]);
  }

  TxnState StateOf(const std::string& txn_id) {
    auto status = coordinator_->GetStatus(txn_id);
    EXPECT_TRUE(status.ok()) << status.status().ToString();
    return status.ok() ? status->state : TxnState::kActive;
  }

  // Waits (bounded) until the transaction reaches `state`.
  bool EventuallyInState(const std::string& txn_id, TxnState state) {
    return PollUntil([&] { return StateOf(txn_id) == state; }, 3000, 10);
  }

  TempDir dir_;
  std::unique_ptr<SqliteJournal> journal_;
  CoordinatorOptions options_;
  FakeParticipants participants_;
  std::unique_ptr<Coordinator> coordinator_;
  std::map<std::string, std::vector<EnlistedBranch>> opened_;  // by transaction
};

TEST_F(CoordinatorTest, AllCommitVotesCommitEveryBranchAfterOneJournalRecord) {
  StartCoordinator();
  std::string txn = BeginWith({"a", "b"});
  auto outcome = Commit(txn);
  ASSERT_TRUE(outcome.ok()) << outcome.status().ToString();
  EXPECT_EQ(outcome->state, TxnState::kCommitted);
  EXPECT_EQ(participants_.Count("prepare", "a"), 1);
  EXPECT_EQ(participants_.Count("prepare", "b"), 1);
  EXPECT_EQ(participants_.Count("commit", "a"), 1);
  EXPECT_EQ(participants_.Count("commit", "b"), 1);
  EXPECT_EQ(participants_.Count("rollback", "a") + participants_.Count("rollback", "b"), 0);
  EXPECT_EQ(journal_->Stats().commit_records, 1);
  EXPECT_EQ(StateOf(txn), TxnState::kCommitted);
}

TEST_F(CoordinatorTest, DecisionIsDurableBeforeAnyCommitIsSent) {
  StartCoordinator();
  // A journal whose LogCommit records whether any commit message went out first.
  struct OrderCheckingJournal : JournalWrapper {
    OrderCheckingJournal(Journal* j, FakeParticipants* p) : JournalWrapper(j), fake(p) {}
    Status LogCommit(const CommitRecord& r) override {
      commits_before_log = fake->Count("commit", "a") + fake->Count("commit", "b");
      return JournalWrapper::LogCommit(r);
    }
    FakeParticipants* fake;
    int commits_before_log = -1;
  } journal(journal_.get(), &participants_);
  coordinator_.reset();
  StartCoordinator(&journal);
  auto outcome = Commit(BeginWith({"a", "b"}));
  ASSERT_TRUE(outcome.ok());
  EXPECT_EQ(outcome->state, TxnState::kCommitted);
  EXPECT_EQ(journal.commits_before_log, 0);
  coordinator_.reset();
}

TEST_F(CoordinatorTest, AbortVoteAbortsAndRollsBackOnlyBranchesThatMayHoldWork) {
  StartCoordinator();
  participants_.SetVote("b", Status::Aborted("constraint failed"));
  participants_.SetVote("c", Vote::kAbort);
  std::string txn = BeginWith({"a", "b", "c"});
  auto outcome = Commit(txn);
  ASSERT_TRUE(outcome.ok());
  EXPECT_EQ(outcome->state, TxnState::kAborted);
  EXPECT_NE(outcome->reason.find("voted ABORT"), std::string::npos) << outcome->reason;
  EXPECT_EQ(participants_.Count("rollback", "a"), 1);  // prepared: must be told
  EXPECT_EQ(participants_.Count("rollback", "b"), 0);  // voted ABORT: already released
  EXPECT_EQ(participants_.Count("rollback", "c"), 0);
  EXPECT_EQ(participants_.Count("commit", "a"), 0);
  EXPECT_EQ(journal_->Stats().commit_records, 0);  // presumed abort: nothing logged
  EXPECT_EQ(StateOf(txn), TxnState::kAborted);
}

TEST_F(CoordinatorTest, PrepareErrorCountsAsAbortAndTheBranchIsStillRolledBack) {
  StartCoordinator();
  participants_.SetVote("b", Status::Unavailable("connection reset"));
  std::string txn = BeginWith({"a", "b"});
  auto outcome = Commit(txn);
  ASSERT_TRUE(outcome.ok());
  EXPECT_EQ(outcome->state, TxnState::kAborted);
  EXPECT_NE(outcome->reason.find("did not vote"), std::string::npos) << outcome->reason;
  // b may have prepared before the connection broke.
  EXPECT_EQ(participants_.Count("rollback", "a"), 1);
  EXPECT_EQ(participants_.Count("rollback", "b"), 1);
}

TEST_F(CoordinatorTest, PrepareTimeoutAbortsWithinTheDeadline) {
  StartCoordinator();
  participants_.SetPrepareDelay("b", 5000);
  std::string txn = BeginWith({"a", "b"});
  auto start = std::chrono::steady_clock::now();
  auto outcome = Commit(txn);
  auto took = std::chrono::steady_clock::now() - start;
  ASSERT_TRUE(outcome.ok());
  EXPECT_EQ(outcome->state, TxnState::kAborted);
  EXPECT_LT(took, 2s);  // bounded by prepare_timeout_ms (200 ms), not by b
  EXPECT_EQ(participants_.Count("rollback", "b"), 1);
}

TEST_F(CoordinatorTest, AllReadOnlyVotesCommitWithoutJournalOrSecondPhase) {
  StartCoordinator();
  participants_.SetVote("a", Vote::kReadOnly);
  participants_.SetVote("b", Vote::kReadOnly);
  auto outcome = Commit(BeginWith({"a", "b"}));
  ASSERT_TRUE(outcome.ok());
  EXPECT_EQ(outcome->state, TxnState::kCommitted);
  EXPECT_EQ(journal_->Stats().commit_records, 0);
  EXPECT_EQ(participants_.Count("commit", "a") + participants_.Count("commit", "b"), 0);
}

TEST_F(CoordinatorTest, ReadOnlyVoterIsLeftOutOfTheDecisionAndPhaseTwo) {
  StartCoordinator();
  participants_.SetVote("b", Vote::kReadOnly);
  std::string txn = BeginWith({"a", "b"});
  auto outcome = Commit(txn);
  ASSERT_TRUE(outcome.ok());
  EXPECT_EQ(outcome->state, TxnState::kCommitted);
  EXPECT_EQ(participants_.Count("commit", "a"), 1);
  EXPECT_EQ(participants_.Count("commit", "b"), 0);
  EXPECT_EQ(journal_->Stats().commit_records, 1);
}

TEST_F(CoordinatorTest, SingleBranchCommitsInOnePhaseWithoutPrepareOrJournal) {
  StartCoordinator();
  auto outcome = Commit(BeginWith({"a"}));
  ASSERT_TRUE(outcome.ok());
  EXPECT_EQ(outcome->state, TxnState::kCommitted);
  EXPECT_EQ(participants_.Count("prepare", "a"), 0);
  EXPECT_EQ(participants_.Count("commit1pc", "a"), 1);
  EXPECT_EQ(journal_->Stats().commit_records, 0);
}

TEST_F(CoordinatorTest, OnePhaseRefusalAbortsWithTheParticipantsReason) {
  StartCoordinator();
  participants_.FailCommits("a", 1, Status::Aborted("UNIQUE constraint failed"));
  auto outcome = Commit(BeginWith({"a"}));
  ASSERT_TRUE(outcome.ok());
  EXPECT_EQ(outcome->state, TxnState::kAborted);
  EXPECT_NE(outcome->reason.find("UNIQUE"), std::string::npos);
}

TEST_F(CoordinatorTest, OnePhaseLostReplyIsAskedAgain) {
  StartCoordinator();
  participants_.FailCommits("a", 1, Status::Unavailable("connection reset"));
  auto outcome = Commit(BeginWith({"a"}));
  ASSERT_TRUE(outcome.ok());
  EXPECT_EQ(outcome->state, TxnState::kCommitted);
  EXPECT_EQ(participants_.Count("commit1pc", "a"), 2);
}

TEST_F(CoordinatorTest, OnePhaseOutcomeStillUnknownIsAskedAgainInTheBackground) {
  StartCoordinator();
  // Every ask in the call is lost; the next one in the background is answered.
  participants_.FailCommits("a", options_.protocol.one_phase_attempts,
                            Status::Unavailable("connection reset"));
  std::string txn = BeginWith({"a"});
  EXPECT_EQ(Commit(txn).status().code(), StatusCode::kUnavailable);
  // Meanwhile an inquiry hears ACTIVE (never ABORTED), then the outcome settles.
  PollUntil([&] { return coordinator_->GetStatus(txn)->state == TxnState::kCommitted; }, 5000, 5);
  EXPECT_EQ(coordinator_->GetStatus(txn)->state, TxnState::kCommitted);
  auto again = Commit(txn);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->state, TxnState::kCommitted);
  EXPECT_EQ(participants_.Count("commit1pc", "a"), options_.protocol.one_phase_attempts + 1);
}

// The first one-phase commit's answer is lost (it may have committed); the
// participant then refuses this coordinator (replaced by a newer run, seen
// first by the HA simulation, seed 575): that says nothing of the first
// attempt, so the outcome is unknown, never ABORTED.
TEST_F(CoordinatorTest, OnePhaseRefusedAfterALostAnswerStaysUnknown) {
  StartCoordinator();
  participants_.AnswerCommits(
      "a", {Status::Unavailable("connection reset"),
            Status::Fenced("coordinator pact epoch 1 was replaced by epoch 2")});
  std::string txn = BeginWith({"a"});
  Status st = Commit(txn).status();
  EXPECT_EQ(st.code(), StatusCode::kUnavailable) << st.ToString();
  EXPECT_NE(st.message().find("may have committed"), std::string::npos) << st.ToString();
  EXPECT_EQ(coordinator_->GetStatus(txn)->state, TxnState::kPreparing);
  EXPECT_EQ(participants_.Count("rollback", "a"), 0);  // nothing undone that may have committed
}

// Refused at the first ask: nothing was applied, so it aborts.
TEST_F(CoordinatorTest, OnePhaseRefusedAtTheFirstAskAborts) {
  StartCoordinator();
  participants_.AnswerCommits("a", {Status::Fenced("coordinator pact epoch 1 was replaced")});
  auto outcome = Commit(BeginWith({"a"}));
  ASSERT_TRUE(outcome.ok()) << outcome.status().ToString();
  EXPECT_EQ(outcome->state, TxnState::kAborted);
}

TEST_F(CoordinatorTest, UnacknowledgedCommitIsRetriedUntilAcknowledged) {
  StartCoordinator();
  participants_.FailCommits("b", 4);
  std::string txn = BeginWith({"a", "b"});
  auto outcome = Commit(txn);
  ASSERT_TRUE(outcome.ok());
  EXPECT_EQ(outcome->state, TxnState::kCommitted);  // the decision is durable
  EXPECT_TRUE(EventuallyInState(txn, TxnState::kCommitted));
  EXPECT_EQ(participants_.Count("commit", "a"), 1);
  EXPECT_EQ(participants_.Count("commit", "b"), 5);
  auto status = coordinator_->GetStatus(txn);
  ASSERT_TRUE(status.ok());
  for (const auto& b : status->branches) EXPECT_EQ(b.state, BranchState::kCommitted);
  // END forgets the decision.
  coordinator_.reset();
  journal_.reset();
  SqliteJournalOptions o;
  o.coordinator_name = "c1";
  auto reopened = SqliteJournal::Open(dir_.File("journal.db"), o);
  ASSERT_TRUE(reopened.ok());
  auto unfinished = (*reopened)->LoadUnfinished();
  ASSERT_TRUE(unfinished.ok());
  EXPECT_TRUE(unfinished->empty());
}

TEST_F(CoordinatorTest, CommitReturningAtDecisionAnswersBeforePhaseTwoAndStillFinishesIt) {
  StartCoordinator();
  participants_.HoldCommits("b");
  std::string txn = BeginWith({"a", "b"});
  auto answered = std::async(std::launch::async, [&] {
    return Commit(txn, CommitReturn::kAtDecision);
  });
  // Answered while b still holds its branch prepared: the decision is durable.
  ASSERT_EQ(answered.wait_for(5s), std::future_status::ready);
  auto outcome = answered.get();
  ASSERT_TRUE(outcome.ok()) << outcome.status().ToString();
  EXPECT_EQ(outcome->state, TxnState::kCommitted);
  EXPECT_EQ(StateOf(txn), TxnState::kCommitting);
  EXPECT_EQ(*coordinator_->Inquire(txn), Outcome::kCommitted);
  auto unfinished = journal_->LoadUnfinished();
  ASSERT_TRUE(unfinished.ok());
  ASSERT_EQ(unfinished->size(), 1u);
  EXPECT_EQ(unfinished->front().txn_id, txn);
  // Asked again, the same answer.
  auto again = Commit(txn, CommitReturn::kAtDecision);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->state, TxnState::kCommitted);
  participants_.ReleaseCommits("b");
  EXPECT_TRUE(EventuallyInState(txn, TxnState::kCommitted));
  EXPECT_EQ(participants_.Count("commit", "a"), 1);
  EXPECT_EQ(participants_.Count("commit", "b"), 1);
}

TEST_F(CoordinatorTest, CommitByDefaultAnswersOnlyOncePhaseTwoIsDone) {
  StartCoordinator();
  participants_.HoldCommits("b");
  std::string txn = BeginWith({"a", "b"});
  auto answered = std::async(std::launch::async, [&] { return Commit(txn); });
  EXPECT_EQ(answered.wait_for(300ms), std::future_status::timeout);
  participants_.ReleaseCommits("b");
  auto outcome = answered.get();
  ASSERT_TRUE(outcome.ok());
  EXPECT_EQ(outcome->state, TxnState::kCommitted);
  EXPECT_EQ(StateOf(txn), TxnState::kCommitted);
}

TEST_F(CoordinatorTest, CommitReturningAtDecisionStillAbortsOnAnAbortVote) {
  StartCoordinator();
  participants_.SetVote("b", Vote::kAbort);
  std::string txn = BeginWith({"a", "b"});
  auto outcome = Commit(txn, CommitReturn::kAtDecision);
  ASSERT_TRUE(outcome.ok());
  EXPECT_EQ(outcome->state, TxnState::kAborted);
  EXPECT_EQ(participants_.Count("commit", "a"), 0);
}

TEST_F(CoordinatorTest, PendingCommitIsShownAsCommittingWithTheLastError) {
  StartCoordinator();
  participants_.FailCommits("b", 1000000, Status::Unavailable("connection refused"));
  std::string txn = BeginWith({"a", "b"});
  ASSERT_TRUE(Commit(txn).ok());
  auto status = coordinator_->GetStatus(txn);
  ASSERT_TRUE(status.ok());
  EXPECT_EQ(status->state, TxnState::kCommitting);
  for (const auto& b : status->branches) {
    if (b.participant == "b") {
      EXPECT_EQ(b.state, BranchState::kCommitPending);
      EXPECT_NE(b.last_error.find("connection refused"), std::string::npos);
    }
  }
  EXPECT_EQ(*coordinator_->Inquire(txn), Outcome::kCommitted);
}

TEST_F(CoordinatorTest, JournalWriteFailureTurnsTheDecisionIntoAbort) {
  FullDiskJournal journal(journal_.get());
  StartCoordinator(&journal);
  std::string txn = BeginWith({"a", "b"});
  auto outcome = Commit(txn);
  ASSERT_TRUE(outcome.ok());
  EXPECT_EQ(outcome->state, TxnState::kAborted);
  EXPECT_NE(outcome->reason.find("disk is full"), std::string::npos) << outcome->reason;
  EXPECT_EQ(participants_.Count("commit", "a") + participants_.Count("commit", "b"), 0);
  EXPECT_EQ(participants_.Count("rollback", "a"), 1);
  EXPECT_EQ(participants_.Count("rollback", "b"), 1);
  EXPECT_EQ(*coordinator_->Inquire(txn), Outcome::kAborted);
  coordinator_.reset();
}

TEST_F(CoordinatorTest, RepeatedCommitReturnsTheSameOutcome) {
  StartCoordinator();
  std::string committed = BeginWith({"a", "b"});
  ASSERT_EQ(Commit(committed)->state, TxnState::kCommitted);
  EXPECT_EQ(Commit(committed)->state, TxnState::kCommitted);
  EXPECT_EQ(participants_.Count("prepare", "a"), 1);

  participants_.SetVote("b", Vote::kAbort);
  std::string aborted = BeginWith({"a", "b"});
  ASSERT_EQ(Commit(aborted)->state, TxnState::kAborted);
  EXPECT_EQ(Commit(aborted)->state, TxnState::kAborted);
}

TEST_F(CoordinatorTest, TransactionPastItsDeadlineIsRolledBackAndCommitSaysTimedOut) {
  StartCoordinator();
  std::string txn = BeginWith({"a", "b"}, /*timeout_ms=*/50);
  EXPECT_TRUE(EventuallyInState(txn, TxnState::kAborted));
  // The coordinator hears of branches only at commit: each rolls back at the
  // deadline it took from execute.
  EXPECT_EQ(participants_.calls().size(), 0u);
  auto outcome = Commit(txn);
  EXPECT_EQ(outcome.status().code(), StatusCode::kTimedOut) << outcome.status().ToString();
  EXPECT_EQ(participants_.Count("prepare", "a"), 0);
}

TEST_F(CoordinatorTest, BadRequestsGetClearErrors) {
  StartCoordinator();
  EXPECT_EQ(Commit("garbage").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(Commit("c1.1.999").status().code(), StatusCode::kNotFound);
  EXPECT_EQ(Commit("other.1.1").status().code(), StatusCode::kNotFound);
  std::string txn = BeginWith({});
  auto unknown = coordinator_->Commit(txn, {{"nobody", "run1.1"}});
  EXPECT_EQ(unknown.status().code(), StatusCode::kNotFound);
  EXPECT_NE(unknown.status().message().find("registered: a, b, c"), std::string::npos);
  ASSERT_TRUE(Commit(txn).ok());
  EXPECT_EQ(Rollback(txn).code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(coordinator_->Begin(options_.max_txn_timeout_ms + 1).status().code(),
            StatusCode::kInvalidArgument);
}

TEST_F(CoordinatorTest, RestartRaisesTheEpochAndFencesWithIt) {
  StartCoordinator();
  int64_t first = coordinator_->epoch();
  EXPECT_EQ(participants_.fence().epoch, first);
  coordinator_.reset();
  StartCoordinator();
  EXPECT_EQ(coordinator_->epoch(), first + 1);
  EXPECT_EQ(participants_.fence().epoch, first + 1);
  EXPECT_EQ(participants_.fence().coordinator, "c1");
}

TEST_F(CoordinatorTest, RecoveryRedrivesRecordedCommitsAndRollsBackUnrecordedBranches) {
  // A previous run decided COMMIT for c1.1.7 and crashed before telling anyone.
  ASSERT_TRUE(journal_->RaiseEpoch().ok());
  ASSERT_TRUE(journal_->LogCommit({"c1.1.7", {"a", "b"}, 0}).ok());
  ASSERT_TRUE(journal_->PutParticipant({"a", "127.0.0.1", 1, "fake"}).ok());
  ASSERT_TRUE(journal_->PutParticipant({"b", "127.0.0.1", 1, "fake"}).ok());
  // a holds c1.1.7 (decided), c1.1.8 (ours, undecided) and another coordinator's.
  participants_.SetPrepared("a", {"c1.1.7", "c1.1.8", "other.3.1"});
  participants_.FailCommits("b", 2);
  StartCoordinator();
  EXPECT_TRUE(EventuallyInState("c1.1.7", TxnState::kCommitted));
  EXPECT_EQ(participants_.Count("commit", "a"), 1);
  EXPECT_EQ(participants_.Count("commit", "b"), 3);
  int rollbacks_of_8 = 0, touched_other = 0;
  for (const auto& c : participants_.calls()) {
    rollbacks_of_8 += (c.verb == "rollback" && c.txn_id == "c1.1.8");
    touched_other += (c.txn_id == "other.3.1");
  }
  EXPECT_EQ(rollbacks_of_8, 1);
  EXPECT_EQ(touched_other, 0);
  EXPECT_EQ(*coordinator_->Inquire("c1.1.8"), Outcome::kAborted);
  EXPECT_EQ(*coordinator_->Inquire("c1.1.7"), Outcome::kCommitted);
}

TEST_F(CoordinatorTest, InquiryAnswersActiveWhileUndecided) {
  StartCoordinator();
  std::string txn = BeginWith({"a", "b"});
  EXPECT_EQ(*coordinator_->Inquire(txn), Outcome::kActive);
}

TEST_F(CoordinatorTest, BranchOpenedTwiceDoomsTheTransaction) {
  StartCoordinator();
  std::string txn = BeginWith({"a", "b"});
  // The client saw "a" answer from two openings: it restarted and opened the
  // branch again, so the first opening's work is gone. (The same opening
  // twice is harmless.)
  opened_[txn].push_back({"b", "run1.1"});
  opened_[txn].push_back({"a", "run2.1"});
  auto outcome = Commit(txn);
  ASSERT_TRUE(outcome.ok()) << outcome.status().ToString();
  EXPECT_EQ(outcome->state, TxnState::kAborted);
  EXPECT_NE(outcome->reason.find("lost the transaction's earlier work"), std::string::npos)
      << outcome->reason;
  EXPECT_EQ(participants_.Count("prepare", "a") + participants_.Count("prepare", "b"), 0);
  EXPECT_EQ(participants_.Count("rollback", "a") + participants_.Count("rollback", "b"), 2);
}

TEST_F(CoordinatorTest, BranchWithoutAnOpeningsNameIsRefusedAtCommit) {
  StartCoordinator();
  std::string txn = BeginWith({});
  EXPECT_EQ(coordinator_->Commit(txn, {{"a", ""}}).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(StateOf(txn), TxnState::kActive);  // refused before anything ran
  EXPECT_EQ(participants_.calls().size(), 0u);
}

TEST_F(CoordinatorTest, ReservedIdBecomesATransactionAtItsFirstCommitOnly) {
  options_.finished_txns_kept = 1;
  StartCoordinator();
  auto block = coordinator_->ReserveIds(3);
  ASSERT_TRUE(block.ok()) << block.status().ToString();
  EXPECT_EQ(block->count, 3);
  auto id = [&](int i) {
    return TxnId{block->coordinator, block->epoch, block->first_seq + i}.ToString();
  };
  // Not a transaction before its commit.
  EXPECT_EQ(coordinator_->GetStatus(id(0)).status().code(), StatusCode::kNotFound);
  opened_[id(0)] = {{"a", "run1.1"}, {"b", "run1.1"}};
  auto first = Commit(id(0));
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  EXPECT_EQ(first->state, TxnState::kCommitted);
  auto again = Commit(id(0));  // a repeated ask, answered from memory
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_EQ(again->state, TxnState::kCommitted);
  // Another transaction finishes and pushes the first out of memory: asked
  // again now, the coordinator must not run it a second time (its branches
  // are gone; a second run would answer ABORTED for a committed transaction).
  opened_[id(1)] = {{"a", "run1.1"}};
  ASSERT_TRUE(Commit(id(1)).ok());
  auto forgotten = Commit(id(0));
  EXPECT_EQ(forgotten.status().code(), StatusCode::kNotFound) << forgotten.status().ToString();
  EXPECT_EQ(participants_.Count("prepare", "a"), 1);
  EXPECT_EQ(participants_.Count("prepare", "b"), 1);
  // A rollback is a first use too, and tells the branches.
  opened_[id(2)] = {{"c", ""}};
  ASSERT_TRUE(Rollback(id(2)).ok());
  EXPECT_EQ(participants_.Count("rollback", "c"), 1);
  EXPECT_EQ(StateOf(id(2)), TxnState::kAborted);
  // Ids never handed out are no transaction.
  auto beyond = TxnId{block->coordinator, block->epoch, block->first_seq + 3}.ToString();
  EXPECT_EQ(Commit(beyond).status().code(), StatusCode::kNotFound);
}

// A participant asking about its active branch while the commit of the
// reserved id arrives must hear ACTIVE or the decision, never "aborted" from
// the moment between the two.
TEST_F(CoordinatorTest, InquiryRacingTheFirstCommitOfAReservedIdNeverSaysAborted) {
  StartCoordinator();
  constexpr int kIds = 400;
  auto block = coordinator_->ReserveIds(kIds);
  ASSERT_TRUE(block.ok());
  std::atomic<int> committed_up_to{-1};
  std::atomic<int> false_aborts{0};
  std::thread asker([&] {
    for (int i = 0; i < kIds; ++i) {
      const std::string id = TxnId{block->coordinator, block->epoch, block->first_seq + i}.ToString();
      while (committed_up_to.load() < i) {
        auto outcome = coordinator_->Inquire(id);
        if (outcome.ok() && *outcome == Outcome::kAborted) false_aborts++;
      }
    }
  });
  for (int i = 0; i < kIds; ++i) {
    const std::string id = TxnId{block->coordinator, block->epoch, block->first_seq + i}.ToString();
    auto outcome = coordinator_->Commit(id, {{"a", "run1.1"}, {"b", "run1.1"}});
    ASSERT_TRUE(outcome.ok() && outcome->state == TxnState::kCommitted);
    committed_up_to = i;
  }
  asker.join();
  EXPECT_EQ(false_aborts.load(), 0);
}

TEST_F(CoordinatorTest, ReservationsAreBounded) {
  options_.max_id_block = 8;
  options_.max_unused_ids = 10;
  StartCoordinator();
  EXPECT_EQ(coordinator_->ReserveIds(0).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(coordinator_->ReserveIds(9).status().code(), StatusCode::kInvalidArgument);
  auto block = coordinator_->ReserveIds(8);
  ASSERT_TRUE(block.ok());
  EXPECT_EQ(coordinator_->ReserveIds(3).status().code(), StatusCode::kBusy);
  // Using ids frees room for more.
  for (int i = 0; i < 2; ++i) {
    ASSERT_TRUE(Rollback(TxnId{block->coordinator, block->epoch, block->first_seq + i}
                             .ToString())
                    .ok());
  }
  EXPECT_TRUE(coordinator_->ReserveIds(3).ok());
}

TEST(IdReservationsTest, EachReservedIdIsUsedOnceAndOnlyWhileItsBlockLasts) {
  IdReservations reserved;
  TimePoint now = SteadyClock::now();
  reserved.Add(10, 4, now + Millis(100));  // 10..13
  reserved.Add(20, 2, now + Millis(200));  // 20..21
  EXPECT_EQ(reserved.unused(), 6);
  EXPECT_FALSE(reserved.Use(9));
  EXPECT_FALSE(reserved.Use(14));
  EXPECT_TRUE(reserved.IsUnused(11));
  EXPECT_TRUE(reserved.Use(11));
  EXPECT_FALSE(reserved.IsUnused(11));
  EXPECT_FALSE(reserved.Use(11));  // a second first use: a repeat
  EXPECT_TRUE(reserved.Use(20));
  EXPECT_TRUE(reserved.Use(21));  // the block is used up and goes
  EXPECT_FALSE(reserved.IsUnused(21));
  EXPECT_EQ(reserved.unused(), 3);
  reserved.DropExpired(now + Millis(150));  // the first block expires
  EXPECT_FALSE(reserved.Use(12));
  EXPECT_EQ(reserved.unused(), 0);
}

TEST_F(CoordinatorTest, AmbiguousDecisionWriteAbortsOnlyOnceTheAbortIsDurable) {
  AmbiguousJournal journal(journal_.get());
  StartCoordinator(&journal);
  std::string txn = BeginWith({"a", "b"});
  auto outcome = Commit(txn);
  ASSERT_TRUE(outcome.ok()) << outcome.status().ToString();
  EXPECT_EQ(outcome->state, TxnState::kAborted);
  EXPECT_EQ(participants_.Count("commit", "a") + participants_.Count("commit", "b"), 0);
  // The record reached the file, but the abort overrules it at recovery.
  auto unfinished = journal_->LoadUnfinished();
  ASSERT_TRUE(unfinished.ok());
  EXPECT_TRUE(unfinished->empty());
  EXPECT_TRUE(coordinator_->Begin(0).ok());
}

TEST_F(CoordinatorTest, AmbiguousDecisionWriteWithoutDurableAbortIsUnknownAndStopsDeciding) {
  AmbiguousJournal journal(journal_.get());
  journal.abort_fails = true;
  int lost = 0;
  options_.protocol.on_journal_lost = [&](const Status&) { lost++; };
  StartCoordinator(&journal);
  std::string txn = BeginWith({"a", "b"});
  auto outcome = Commit(txn);
  EXPECT_EQ(outcome.status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(lost, 1);
  // Nothing is rolled back on the strength of a write that may be on disk.
  EXPECT_EQ(participants_.Count("rollback", "a") + participants_.Count("rollback", "b"), 0);
  EXPECT_EQ(participants_.Count("commit", "a") + participants_.Count("commit", "b"), 0);
  auto asked = coordinator_->Inquire(txn);
  ASSERT_TRUE(asked.ok());
  EXPECT_EQ(*asked, Outcome::kActive);
  EXPECT_EQ(coordinator_->Begin(0).status().code(), StatusCode::kUnavailable);
  // Recovery decides from the disk: here the record is there.
  auto unfinished = journal_->LoadUnfinished();
  ASSERT_TRUE(unfinished.ok());
  ASSERT_EQ(unfinished->size(), 1u);
  EXPECT_EQ(unfinished->front().txn_id, txn);
}

TEST_F(CoordinatorTest, NoBranchAfterCommitDecisionIsShownAsAHeuristicHazard) {
  StartCoordinator();
  std::string txn = BeginWith({"a", "b"});
  participants_.FailCommits("b", 1, Status::NotFound("no branch of transaction here"));
  auto outcome = Commit(txn);
  ASSERT_TRUE(outcome.ok());
  EXPECT_EQ(outcome->state, TxnState::kCommitted);
  auto heuristics = coordinator_->ListHeuristics();
  ASSERT_TRUE(heuristics.ok());
  ASSERT_EQ(heuristics->size(), 1u);
  EXPECT_EQ(heuristics->front().participant, "b");
  EXPECT_EQ(heuristics->front().decision, "COMMIT");
}

TEST_F(CoordinatorTest, FencedAnswerStopsTheCoordinatorDeciding) {
  StartCoordinator();
  std::string txn = BeginWith({"a", "b"});
  participants_.SetVote("b", Status::Fenced("coordinator c1 epoch 1 was replaced by epoch 2"));
  auto outcome = Commit(txn);
  ASSERT_TRUE(outcome.ok());
  EXPECT_EQ(outcome->state, TxnState::kAborted);
  EXPECT_EQ(coordinator_->Begin(0).status().code(), StatusCode::kFenced);
  auto unfinished = journal_->LoadUnfinished();
  ASSERT_TRUE(unfinished.ok());
  EXPECT_TRUE(unfinished->empty());
}

// The transaction and branch machines, driven directly: each table is
// written out again here, so that a change to one is a deliberate change to
// both.
class StateMachineTest : public CoordinatorTest {
 protected:
  void SetUp() override {
    CoordinatorTest::SetUp();
    protocol_ = ProtocolOver(journal_.get());
  }

  std::unique_ptr<TwoPhaseCommit> ProtocolOver(Journal* journal) {
    Runtime runtime;
    runtime.background_threads = false;
    return std::make_unique<TwoPhaseCommit>(
        options_.protocol, runtime, journal, &participants_,
        [this](const std::shared_ptr<Txn>& txn) { finished_.push_back(txn->id); },
        &heuristic_mixes_);
  }

  // A transaction in `state` with one branch that voted COMMIT.
  std::shared_ptr<Txn> TxnIn(TxnState state) {
    auto txn = std::make_shared<Txn>("c1.1." + std::to_string(next_seq_++), 30000, state,
                                     RealClock()->Now());
    BranchProgress branch;
    branch.participant = "a";
    branch.vote = Vote::kCommit;
    txn->branches.push_back(branch);
    return txn;
  }

  int64_t CommitRecords() { return journal_->Stats().commit_records; }

  size_t Unfinished() {
    auto unfinished = journal_->LoadUnfinished();
    EXPECT_TRUE(unfinished.ok()) << unfinished.status().ToString();
    return unfinished.ok() ? unfinished->size() : 0;
  }

  const std::vector<TxnState> kTxnStates = {
      TxnState::kActive,    TxnState::kPreparing, TxnState::kCommitting,
      TxnState::kCommitted, TxnState::kAborting,  TxnState::kAborted};
  const std::vector<BranchState> kBranchStates = {
      BranchState::kEnlisted,      BranchState::kPrepared,   BranchState::kReadOnly,
      BranchState::kCommitPending, BranchState::kCommitted,  BranchState::kRolledBack,
      BranchState::kRollbackFailed, BranchState::kHeuristicMixed};

  Counter heuristic_mixes_;
  std::vector<std::string> finished_;  // ids given to on_finished, in order
  std::unique_ptr<TwoPhaseCommit> protocol_;
  int next_seq_ = 1;
};

TEST_F(StateMachineTest, TransactionMachineMakesExactlyTheMovesOfItsTable) {
  const std::map<TxnState, std::set<TxnState>> successors = {
      {TxnState::kActive, {TxnState::kPreparing, TxnState::kAborting}},
      {TxnState::kPreparing, {TxnState::kCommitting, TxnState::kCommitted, TxnState::kAborting}},
      {TxnState::kCommitting, {TxnState::kCommitted}},
      {TxnState::kAborting, {TxnState::kAborted}}};
  for (TxnState from : kTxnStates) {
    for (TxnState to : kTxnStates) {
      if (from == to) continue;
      SCOPED_TRACE(std::string(TxnStateName(from)) + " -> " + TxnStateName(to));
      auto txn = TxnIn(from);
      int64_t records = CommitRecords();
      finished_.clear();
      Status st = protocol_->Transition(txn, to, "a reason");
      bool ends = to == TxnState::kCommitted || to == TxnState::kAborted;
      auto it = successors.find(from);
      if (it != successors.end() && it->second.count(to) > 0) {
        EXPECT_TRUE(st.ok()) << st.ToString();
        EXPECT_EQ(txn->state, to);
        EXPECT_EQ(txn->reason, "a reason");
        EXPECT_EQ(CommitRecords(), records + (to == TxnState::kCommitting ? 1 : 0));
        EXPECT_EQ(finished_.size(), ends ? 1u : 0u);
      } else {
        EXPECT_EQ(st.code(), StatusCode::kInternal) << st.ToString();
        EXPECT_EQ(txn->state, from);
        EXPECT_EQ(txn->reason, "");
        EXPECT_EQ(CommitRecords(), records);
        EXPECT_TRUE(finished_.empty());
      }
    }
  }
}

TEST_F(StateMachineTest, DecidedTransactionCannotBeDecidedTheOtherWay) {
  auto committed = TxnIn(TxnState::kCommitted);
  EXPECT_EQ(protocol_->Transition(committed, TxnState::kAborting, "too late").code(),
            StatusCode::kInternal);
  EXPECT_EQ(committed->state, TxnState::kCommitted);
  EXPECT_EQ(committed->reason, "");

  auto aborted = TxnIn(TxnState::kAborted);
  EXPECT_EQ(protocol_->Transition(aborted, TxnState::kCommitting).code(), StatusCode::kInternal);
  EXPECT_EQ(aborted->state, TxnState::kAborted);
  // Refused before the journal: no COMMIT record for a transaction that aborted.
  EXPECT_EQ(CommitRecords(), 0);
  EXPECT_EQ(Unfinished(), 0u);
  EXPECT_TRUE(finished_.empty());
}

TEST_F(StateMachineTest, RepeatedMoveIsAcceptedOnceAndFinishesOnce) {
  auto txn = TxnIn(TxnState::kAborting);
  EXPECT_TRUE(protocol_->Transition(txn, TxnState::kAborted).ok());
  EXPECT_TRUE(protocol_->Transition(txn, TxnState::kAborted).ok());
  EXPECT_EQ(txn->state, TxnState::kAborted);
  EXPECT_EQ(finished_.size(), 1u);
}

TEST_F(StateMachineTest, RecordsAreJournaledBeforeTheMovesTheyBack) {
  // Notes the transaction's state when each record is written.
  struct StateAtWriteJournal : JournalWrapper {
    using JournalWrapper::JournalWrapper;
    Status LogCommit(const CommitRecord& r) override {
      at_commit = txn->state;
      return JournalWrapper::LogCommit(r);
    }
    void LogEnd(const std::string& txn_id) override {
      at_end = txn->state;
      JournalWrapper::LogEnd(txn_id);
    }
    std::shared_ptr<Txn> txn;
    std::optional<TxnState> at_commit, at_end;
  } journal(journal_.get());
  auto protocol = ProtocolOver(&journal);
  journal.txn = TxnIn(TxnState::kPreparing);
  ASSERT_TRUE(protocol->Transition(journal.txn, TxnState::kCommitting).ok());
  EXPECT_EQ(journal.at_commit, TxnState::kPreparing);
  auto unfinished = journal_->LoadUnfinished();
  ASSERT_TRUE(unfinished.ok());
  ASSERT_EQ(unfinished->size(), 1u);
  EXPECT_EQ(unfinished->front().txn_id, journal.txn->id);
  EXPECT_EQ(unfinished->front().branches, std::vector<std::string>{"a"});
  EXPECT_FALSE(journal.at_end.has_value());
  ASSERT_TRUE(protocol->Transition(journal.txn, TxnState::kCommitted).ok());
  EXPECT_EQ(journal.at_end, TxnState::kCommitting);
  EXPECT_EQ(finished_.size(), 1u);
}

TEST_F(StateMachineTest, FailedCommitRecordLeavesTheTransactionPreparing) {
  FullDiskJournal full(journal_.get());
  auto protocol = ProtocolOver(&full);
  auto txn = TxnIn(TxnState::kPreparing);
  EXPECT_EQ(protocol->Transition(txn, TxnState::kCommitting).code(), StatusCode::kIoError);
  EXPECT_EQ(txn->state, TxnState::kPreparing);
  EXPECT_TRUE(finished_.empty());
}

TEST_F(StateMachineTest, OnlyTheFirstClaimOfAnActiveTransactionWins) {
  auto txn = TxnIn(TxnState::kActive);
  EXPECT_TRUE(protocol_->Claim(txn, TxnState::kPreparing));
  EXPECT_FALSE(protocol_->Claim(txn, TxnState::kAborting, "deadline"));
  EXPECT_FALSE(protocol_->Claim(txn, TxnState::kPreparing));
  EXPECT_EQ(txn->state, TxnState::kPreparing);
  EXPECT_EQ(txn->reason, "");
  // A claim is a move the table allows from ACTIVE, and nothing else.
  auto active = TxnIn(TxnState::kActive);
  EXPECT_FALSE(protocol_->Claim(active, TxnState::kCommitted));
  EXPECT_EQ(active->state, TxnState::kActive);
  EXPECT_TRUE(finished_.empty());
}

TEST_F(StateMachineTest, BranchMachineMakesExactlyTheMovesOfItsTable) {
  // From each state, where it may go besides HEURISTIC_MIXED, which a
  // participant's report of an operator's decision reaches from any other.
  const std::map<BranchState, std::set<BranchState>> successors = {
      {BranchState::kEnlisted,
       {BranchState::kPrepared, BranchState::kReadOnly, BranchState::kRolledBack,
        BranchState::kCommitPending, BranchState::kCommitted, BranchState::kRollbackFailed}},
      {BranchState::kPrepared,
       {BranchState::kCommitted, BranchState::kCommitPending, BranchState::kRolledBack,
        BranchState::kRollbackFailed}},
      {BranchState::kCommitPending, {BranchState::kCommitted, BranchState::kRolledBack}},
      {BranchState::kRollbackFailed, {BranchState::kRolledBack}}};
  auto is_legal = [&](BranchState from, BranchState to) {
    if (to == BranchState::kHeuristicMixed) return from != to;
    auto it = successors.find(from);
    return it != successors.end() && it->second.count(to) > 0;
  };
  for (BranchState from : kBranchStates) {
    for (BranchState to : kBranchStates) {
      SCOPED_TRACE(std::string(BranchStateName(from)) + " -> " + BranchStateName(to));
      auto txn = TxnIn(TxnState::kActive);
      BranchProgress& branch = txn->branches.front();
      branch.state = from;  // placed directly: this tests the move, not the way there
      std::lock_guard<std::mutex> lock(txn->mu);
      bool moved = txn->MoveBranch(&branch, to);
      bool expected = from == to || is_legal(from, to);
      EXPECT_EQ(moved, expected);
      EXPECT_EQ(branch.state, expected ? to : from);
    }
  }
}

TEST_F(StateMachineTest, CommittedBranchCannotGoBackToPrepared) {
  auto txn = TxnIn(TxnState::kCommitting);
  std::lock_guard<std::mutex> lock(txn->mu);
  BranchProgress* branch = txn->FindBranch("a");
  ASSERT_TRUE(txn->MoveBranch(branch, BranchState::kPrepared));
  ASSERT_TRUE(txn->MoveBranch(branch, BranchState::kCommitted));
  EXPECT_FALSE(txn->MoveBranch(branch, BranchState::kPrepared));
  EXPECT_FALSE(txn->MoveBranch(branch, BranchState::kCommitPending));
  EXPECT_FALSE(txn->MoveBranch(branch, BranchState::kRolledBack));
  EXPECT_EQ(branch->state, BranchState::kCommitted);
  // An operator's decision is final too.
  ASSERT_TRUE(txn->MoveBranch(branch, BranchState::kHeuristicMixed));
  EXPECT_FALSE(txn->MoveBranch(branch, BranchState::kCommitted));
  EXPECT_EQ(branch->state, BranchState::kHeuristicMixed);
}

}  // namespace
}  // namespace pact
