// ZooKeeperJournal on a real three-node ZooKeeper ensemble on loopback: the
// epoch rises by compare-and-set across coordinators, a replaced coordinator
// (another one raised the epoch) writes nothing, concurrent decisions share
// one multi and large batches are split under ZooKeeper's request limit,
// END forgets records, and a decision write cut off by a frozen ensemble is
// reported as UNKNOWN (kUnavailable), then settled by LogAbort.
#include "journal/zookeeper_journal.h"

#include <gtest/gtest.h>

#include <atomic>
#include <iostream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "cluster/wait_until.h"
#include "tests/zookeeper_fixture.h"

namespace pact {
namespace {

constexpr const char* kRoot = "/pact/shards/c1";

CommitRecord Record(const std::string& txn_id, std::vector<std::string> branches = {"p1", "p2"}) {
  CommitRecord record;
  record.txn_id = txn_id;
  record.branches = std::move(branches);
  return record;
}

std::vector<std::string> Ids(const std::vector<CommitRecord>& records) {
  std::vector<std::string> ids;
  for (const CommitRecord& r : records) ids.push_back(r.txn_id);
  return ids;
}

class ZooKeeperJournalTest : public ZooKeeperFixture {
 protected:
  std::unique_ptr<ZooKeeperJournal> Open(ZkSession* session,
                                         ZooKeeperJournalOptions options = {}) {
    options.root = kRoot;
    auto journal = ZooKeeperJournal::Open(session, std::move(options));
    EXPECT_TRUE(journal.ok()) << journal.status().ToString();
    return journal.ok() ? std::move(*journal) : nullptr;
  }
};

TEST_F(ZooKeeperJournalTest, EpochRisesAcrossCoordinatorsAndRecordsSurviveThem) {
  auto first_session = Connect();
  ASSERT_NE(first_session, nullptr);
  auto first = Open(first_session.get());
  ASSERT_NE(first, nullptr);
  EXPECT_EQ(first->LogCommit(Record("c1.0.1")).code(), StatusCode::kFailedPrecondition)
      << "a write before RaiseEpoch must be refused";
  auto epoch = first->RaiseEpoch();
  ASSERT_TRUE(epoch.ok()) << epoch.status().ToString();
  EXPECT_EQ(*epoch, 1);
  epoch = first->RaiseEpoch();
  ASSERT_TRUE(epoch.ok());
  EXPECT_EQ(*epoch, 2);

  CommitRecord stamped = Record("c1.2.1", {"p1", "p2", "p3"});
  stamped.decided_at_ms = 1234;
  ASSERT_TRUE(first->LogCommit(stamped).ok());
  ASSERT_TRUE(first->LogCommit(Record("c1.2.2")).ok());
  ASSERT_TRUE(first->LogCommit(Record("c1.2.3")).ok());
  // Written again, as after an unknown outcome: the record is there, so Ok.
  Status again = first->LogCommit(Record("c1.2.3"));
  EXPECT_TRUE(again.ok()) << again.ToString();
  ASSERT_TRUE(first->PutParticipant({"p1", "127.0.0.1", 9001, "sqlite"}).ok());
  ASSERT_TRUE(first->PutParticipant({"p1", "127.0.0.2", 9002, "postgresql"}).ok());
  ASSERT_TRUE(first->PutParticipant({"p2", "127.0.0.1", 9003, "null"}).ok());
  ASSERT_TRUE(first->DeleteParticipant("p2").ok());
  ASSERT_TRUE(first->DeleteParticipant("never-there").ok());
  ASSERT_TRUE(first->PutHeuristic({"c1.2.1", "p1", true, "ABORT", 77}).ok());
  ASSERT_TRUE(first->PutHeuristic({"c1.2.1", "p2", false, "COMMIT", 78}).ok());
  ASSERT_TRUE(first->PutHeuristic({"c1.2.1", "p2", true, "COMMIT", 79}).ok());  // replaced
  first->LogEnd("c1.2.2");
  // END is lazy; it must land before the take-over, which fences it.
  EXPECT_TRUE(PollUntil(
      [&] {
        auto unfinished = first->LoadUnfinished();
        return unfinished.ok() && unfinished->size() == 2;
      },
      5000));

  // Like a take-over: another session and journal load what was written.
  auto second_session = Connect();
  ASSERT_NE(second_session, nullptr);
  auto second = Open(second_session.get());
  ASSERT_NE(second, nullptr);
  epoch = second->RaiseEpoch();
  ASSERT_TRUE(epoch.ok());
  EXPECT_EQ(*epoch, 3);
  auto unfinished = second->LoadUnfinished();
  ASSERT_TRUE(unfinished.ok()) << unfinished.status().ToString();
  EXPECT_EQ(Ids(*unfinished), (std::vector<std::string>{"c1.2.1", "c1.2.3"}));
  EXPECT_EQ((*unfinished)[0].branches, (std::vector<std::string>{"p1", "p2", "p3"}));
  EXPECT_EQ((*unfinished)[0].decided_at_ms, 1234);
  EXPECT_GT((*unfinished)[1].decided_at_ms, 1234);  // stamped with the wall clock

  auto participants = second->LoadParticipants();
  ASSERT_TRUE(participants.ok());
  ASSERT_EQ(participants->size(), 1u);
  EXPECT_EQ((*participants)[0].host, "127.0.0.2");
  EXPECT_EQ((*participants)[0].port, 9002);
  EXPECT_EQ((*participants)[0].backend, "postgresql");

  auto heuristics = second->LoadHeuristics();
  ASSERT_TRUE(heuristics.ok()) << heuristics.status().ToString();
  ASSERT_EQ(heuristics->size(), 2u);
  EXPECT_EQ((*heuristics)[1].participant, "p2");
  EXPECT_TRUE((*heuristics)[1].committed);
  EXPECT_EQ((*heuristics)[1].at_ms, 79);
  ASSERT_TRUE(second->ForgetHeuristics("c1.2.1").ok());
  EXPECT_EQ(second->ForgetHeuristics("c1.2.1").code(), StatusCode::kNotFound);
  heuristics = second->LoadHeuristics();
  ASSERT_TRUE(heuristics.ok());
  EXPECT_TRUE(heuristics->empty());
}

TEST_F(ZooKeeperJournalTest, ReplacedCoordinatorCanMakeNoRecordDurable) {
  auto old_session = Connect();
  auto new_session = Connect();
  ASSERT_NE(old_session, nullptr);
  ASSERT_NE(new_session, nullptr);
  auto old_active = Open(old_session.get());
  auto new_active = Open(new_session.get());
  ASSERT_NE(old_active, nullptr);
  ASSERT_NE(new_active, nullptr);
  ASSERT_TRUE(old_active->RaiseEpoch().ok());
  ASSERT_TRUE(old_active->LogCommit(Record("c1.1.1")).ok());

  auto epoch = new_active->RaiseEpoch();  // the take-over
  ASSERT_TRUE(epoch.ok());
  EXPECT_EQ(*epoch, 2);

  // Several at once, so the refusal meets a whole batch.
  std::vector<std::thread> writers;
  std::atomic<int> fenced{0};
  for (int i = 0; i < 8; ++i) {
    writers.emplace_back([&, i] {
      Status st = old_active->LogCommit(Record("c1.1.late" + std::to_string(i)));
      if (st.code() == StatusCode::kFenced) ++fenced;
      EXPECT_EQ(st.code(), StatusCode::kFenced) << st.ToString();
    });
  }
  for (auto& w : writers) w.join();
  EXPECT_EQ(fenced.load(), 8);
  EXPECT_EQ(old_active->LogAbort("c1.1.1").code(), StatusCode::kFenced);
  EXPECT_EQ(old_active->PutParticipant({"p9", "127.0.0.1", 1, "null"}).code(),
            StatusCode::kFenced);
  EXPECT_EQ(old_active->PutHeuristic({"c1.1.1", "p1", true, "COMMIT", 1}).code(),
            StatusCode::kFenced);
  old_active->LogEnd("c1.1.1");

  ASSERT_TRUE(new_active->LogCommit(Record("c1.2.1")).ok());
  // The old one's END (refused) and late records never landed.
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  auto unfinished = new_active->LoadUnfinished();
  ASSERT_TRUE(unfinished.ok()) << unfinished.status().ToString();
  EXPECT_EQ(Ids(*unfinished), (std::vector<std::string>{"c1.1.1", "c1.2.1"}));
  auto participants = new_active->LoadParticipants();
  ASSERT_TRUE(participants.ok());
  EXPECT_TRUE(participants->empty());
  auto heuristics = new_active->LoadHeuristics();
  ASSERT_TRUE(heuristics.ok());
  EXPECT_TRUE(heuristics->empty());
  EXPECT_EQ(old_active->Stats().commit_records, 1);
}

TEST_F(ZooKeeperJournalTest, ConcurrentDecisionsShareOneMultiAndBigBatchesAreSplit) {
  auto session = Connect();
  ASSERT_NE(session, nullptr);
  std::atomic<bool> hold{true};
  ZooKeeperJournalOptions options;
  ZooKeeperJournal* journal_ptr = nullptr;
  std::atomic<size_t> expected_queue{0};
  options.before_batch_write = [&](size_t) {
    // Hold the first batch until the others queued up behind it.
    if (hold.exchange(false)) {
      PollUntil([&] { return journal_ptr->QueuedCommitsForTesting() >= expected_queue; }, 10000,
                5);
    }
  };
  auto journal = Open(session.get(), options);
  ASSERT_NE(journal, nullptr);
  journal_ptr = journal.get();
  ASSERT_TRUE(journal->RaiseEpoch().ok());

  // 16 decisions: the first alone, the other 15 in one multi.
  expected_queue = 15;
  std::vector<std::thread> writers;
  for (int i = 0; i < 16; ++i) {
    writers.emplace_back([&, i] {
      Status st = journal->LogCommit(Record("c1.1." + std::to_string(i)));
      EXPECT_TRUE(st.ok()) << st.ToString();
    });
    if (i == 0) PollUntil([&] { return !hold.load(); }, 5000, 1);  // the first is being held
  }
  for (auto& w : writers) w.join();
  EXPECT_EQ(journal->Stats().commit_records, 16);
  EXPECT_EQ(journal->Stats().fsync_batches, 2);

  // 400 records of 250 branches: about 1.7 MB, more than one ZooKeeper
  // request may carry (1 MB), so the writer must split them.
  std::vector<std::string> branches;
  for (int b = 0; b < 250; ++b) branches.push_back("participant-" + std::to_string(b));
  size_t bytes = 0;
  hold = true;
  expected_queue = 399;
  writers.clear();
  for (int i = 0; i < 400; ++i) {
    CommitRecord record = Record("c1.1.big" + std::to_string(i), branches);
    for (const std::string& b : branches) bytes += b.size() + 1;
    writers.emplace_back([&, record] {
      Status st = journal->LogCommit(record);
      EXPECT_TRUE(st.ok()) << st.ToString();
    });
    if (i == 0) PollUntil([&] { return !hold.load(); }, 5000, 1);
  }
  for (auto& w : writers) w.join();
  const JournalStats stats = journal->Stats();
  EXPECT_EQ(stats.commit_records, 16 + 400);
  const int64_t multis = stats.fsync_batches - 2;
  std::cout << "400 records, " << bytes << " bytes of branches, in " << multis << " multis\n";
  EXPECT_GT(bytes, 1024u * 1024u);
  // The held one, then the rest in batches of at most max_batch_bytes.
  EXPECT_GE(multis, 1 + static_cast<int64_t>(bytes / options.max_batch_bytes));
  auto unfinished = journal->LoadUnfinished();
  ASSERT_TRUE(unfinished.ok()) << unfinished.status().ToString();
  EXPECT_EQ(unfinished->size(), 416u);

  // END deletes them in later batches, a missing one not holding back the rest.
  journal->LogEnd("c1.1.never-recorded");
  for (int i = 0; i < 16; ++i) journal->LogEnd("c1.1." + std::to_string(i));
  EXPECT_TRUE(PollUntil(
      [&] {
        auto left = journal->LoadUnfinished();
        return left.ok() && left->size() == 400;
      },
      10000, 50));
}

// A decision's multi cut off by a frozen ensemble (the client still thinks
// it is connected). Held briefly, the write is settled when ZooKeeper
// returns: the journal reads whether the record exists and sends it again if
// not, so the caller hears Ok, not "unknown".
class ZooKeeperJournalCutOffTest : public ZooKeeperJournalTest {
 protected:
  // Starts LogCommit("c1.1.cut") and freezes every server while its multi
  // is on its way.
  void CutOffAWrite(ZkSession* session) {
    options_.before_batch_write = [this](size_t) {
      if (!hold_.load()) return;
      held_ = true;
      PollUntil([&] { return release_.load(); }, 20000, 5);
    };
    journal_ = Open(session, options_);
    ASSERT_NE(journal_, nullptr);
    ASSERT_TRUE(journal_->RaiseEpoch().ok());
    ASSERT_TRUE(journal_->LogCommit(Record("c1.1.before")).ok());
    hold_ = true;
    writer_ = std::thread([this] { cut_off_ = journal_->LogCommit(Record("c1.1.cut")); });
    ASSERT_TRUE(PollUntil([&] { return held_.load(); }, 5000, 1));
    for (int i = 0; i < zk_->size(); ++i) ASSERT_TRUE(zk_->Freeze(i).ok());
    release_ = true;
  }
  void TearDown() override {
    if (writer_.joinable()) writer_.join();
  }

  ZooKeeperJournalOptions options_;
  std::atomic<bool> hold_{false}, held_{false}, release_{false};
  std::unique_ptr<ZooKeeperJournal> journal_;
  std::thread writer_;
  Status cut_off_;
};

TEST_F(ZooKeeperJournalCutOffTest, BriefCutOffIsHeldAndSettledWhenZooKeeperReturns) {
  auto session = Connect(8000);
  ASSERT_NE(session, nullptr);
  CutOffAWrite(session.get());
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  for (int i = 0; i < zk_->size(); ++i) ASSERT_TRUE(zk_->Thaw(i).ok());
  writer_.join();
  EXPECT_TRUE(cut_off_.ok()) << cut_off_.ToString();
  auto unfinished = UntilAvailable([&] { return journal_->LoadUnfinished(); });
  ASSERT_TRUE(unfinished.ok()) << unfinished.status().ToString();
  EXPECT_EQ(Ids(*unfinished), (std::vector<std::string>{"c1.1.before", "c1.1.cut"}));
}

// Cut off for longer than twice the session timeout, the write stays
// unknown (kUnavailable, never a clean failure); the next active, on a new
// session, decides by what the journal holds.
TEST_F(ZooKeeperJournalCutOffTest, LongCutOffIsUnknownAndTheNextActiveReadsTheJournal) {
  auto session = Connect(2000);
  ASSERT_NE(session, nullptr);
  CutOffAWrite(session.get());
  writer_.join();
  EXPECT_EQ(cut_off_.code(), StatusCode::kUnavailable) << cut_off_.ToString();
  EXPECT_NE(cut_off_.message().find("UNKNOWN"), std::string::npos) << cut_off_.ToString();
  for (int i = 0; i < zk_->size(); ++i) ASSERT_TRUE(zk_->Thaw(i).ok());
  auto next_session = Connect(2000);
  ASSERT_NE(next_session, nullptr);
  auto next = Open(next_session.get());
  ASSERT_NE(next, nullptr);
  ASSERT_TRUE(UntilAvailable([&] { return next->RaiseEpoch(); }).ok());
  auto unfinished = UntilAvailable([&] { return next->LoadUnfinished(); });
  ASSERT_TRUE(unfinished.ok()) << unfinished.status().ToString();
  std::vector<std::string> ids = Ids(*unfinished);
  ASSERT_FALSE(ids.empty());
  EXPECT_EQ(ids.front(), "c1.1.before");
  EXPECT_LE(ids.size(), 2u);  // c1.1.cut once, if the frozen leader had applied it
}

}  // namespace
}  // namespace pact
