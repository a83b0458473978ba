#include <gtest/gtest.h>
#include <sqlite3.h>
#include <stdlib.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "cluster/wait_until.h"
#include "common/status.h"
#include "journal/journal_reader.h"
#include "journal/sqlite_journal.h"
#include "sqlite/sqlite.h"

namespace pact {
namespace {

namespace fs = std::filesystem;

// The bound only keeps a broken build from hanging the suite.
bool WaitFor(const std::function<bool()>& cond) { return PollUntil(cond, 10000, 1); }

CommitRecord Record(const std::string& txn_id, std::vector<std::string> branches,
                    int64_t decided_at_ms = 0) {
  CommitRecord r;
  r.txn_id = txn_id;
  r.branches = std::move(branches);
  r.decided_at_ms = decided_at_ms;
  return r;
}

// Changes the file outside the journal, as another program might.
Status ExecOnFile(const std::string& path, const char* sql) {
  ASSIGN_OR_RETURN(SqliteConnection db,
                   SqliteConnection::Open(path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE));
  return db.Exec(sql);
}

std::set<std::string> TxnIds(const std::vector<CommitRecord>& records) {
  std::set<std::string> ids;
  for (const CommitRecord& r : records) ids.insert(r.txn_id);
  return ids;
}

class JournalTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/pact_journal_test.XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    path_ = dir_ + "/journal.db";
    options_.coordinator_name = "coord-a";
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::unique_ptr<SqliteJournal> OpenOrDie() {
    auto journal = SqliteJournal::Open(path_, options_);
    EXPECT_TRUE(journal.ok()) << journal.status().ToString();
    return journal.ok() ? std::move(journal).value() : nullptr;
  }

  std::vector<CommitRecord> LoadOrDie(SqliteJournal* journal) {
    auto records = journal->LoadUnfinished();
    EXPECT_TRUE(records.ok()) << records.status().ToString();
    return records.ok() ? *records : std::vector<CommitRecord>();
  }

  // Runs LogCommit for txn ids prefix0..prefix(n-1) on n threads at once.
  std::vector<Status> LogConcurrently(SqliteJournal* journal, const std::string& prefix, int n) {
    std::vector<Status> results(n);
    std::vector<std::thread> threads;
    for (int i = 0; i < n; ++i) {
      threads.emplace_back([&, i] {
        results[i] = journal->LogCommit(Record(prefix + std::to_string(i), {"pg-1", "maria_2"}));
      });
    }
    for (std::thread& t : threads) t.join();
    return results;
  }

  std::string dir_;
  std::string path_;
  SqliteJournalOptions options_;
};

TEST_F(JournalTest, PragmasReadBackAsWalAndSynchronousFull) {
  auto journal = OpenOrDie();
  ASSERT_NE(journal, nullptr);
  auto mode = journal->ReadPragmaJournalMode();
  ASSERT_TRUE(mode.ok()) << mode.status().ToString();
  EXPECT_EQ(*mode, "wal");
  auto sync = journal->ReadPragmaSynchronous();
  ASSERT_TRUE(sync.ok()) << sync.status().ToString();
  EXPECT_EQ(*sync, 2);
}

TEST_F(JournalTest, RaiseEpochCountsUpByOneAndSurvivesReopen) {
  {
    auto journal = OpenOrDie();
    ASSERT_NE(journal, nullptr);
    for (int64_t want = 1; want <= 3; ++want) {
      auto epoch = journal->RaiseEpoch();
      ASSERT_TRUE(epoch.ok()) << epoch.status().ToString();
      EXPECT_EQ(*epoch, want);
    }
  }
  auto journal = OpenOrDie();
  ASSERT_NE(journal, nullptr);
  auto epoch = journal->RaiseEpoch();
  ASSERT_TRUE(epoch.ok()) << epoch.status().ToString();
  EXPECT_EQ(*epoch, 4);
}

TEST_F(JournalTest, ReopenFindsUnfinishedDecisionsButNotEndedOnes) {
  options_.end_flush_delay_ms = 60000;  // only the destructor may flush the END
  {
    auto journal = OpenOrDie();
    ASSERT_NE(journal, nullptr);
    ASSERT_TRUE(journal->LogCommit(Record("coord-a.1.1", {"pg-1", "maria_2"}, 1000)).ok());
    ASSERT_TRUE(journal->LogCommit(Record("coord-a.1.2", {"pg-1"}, 1001)).ok());
    ASSERT_TRUE(journal->LogCommit(Record("coord-a.1.3", {"lite"}, 1002)).ok());
    journal->LogEnd("coord-a.1.2");
    // Every COMMIT that returned OK is visible right away, through the journal.
    EXPECT_GE(LoadOrDie(journal.get()).size(), 2u);
  }
  auto journal = OpenOrDie();
  ASSERT_NE(journal, nullptr);
  std::vector<CommitRecord> records = LoadOrDie(journal.get());
  ASSERT_EQ(records.size(), 2u);
  EXPECT_EQ(records[0].txn_id, "coord-a.1.1");
  EXPECT_EQ(records[0].branches, (std::vector<std::string>{"pg-1", "maria_2"}));
  EXPECT_EQ(records[0].decided_at_ms, 1000);
  EXPECT_EQ(records[1].txn_id, "coord-a.1.3");
  EXPECT_EQ(records[1].branches, (std::vector<std::string>{"lite"}));
}

TEST_F(JournalTest, UnfinishedDecisionsLoadOldestFirstThenById) {
  auto journal = OpenOrDie();
  ASSERT_NE(journal, nullptr);
  ASSERT_TRUE(journal->LogCommit(Record("c.1.3", {"p"}, 20)).ok());
  ASSERT_TRUE(journal->LogCommit(Record("c.1.2", {"p"}, 10)).ok());
  ASSERT_TRUE(journal->LogCommit(Record("c.1.1", {"p"}, 20)).ok());
  ASSERT_TRUE(journal->LogCommit(Record("c.1.4", {}, 5)).ok());
  std::vector<CommitRecord> records = LoadOrDie(journal.get());
  ASSERT_EQ(records.size(), 4u);
  EXPECT_EQ(records[0].txn_id, "c.1.4");
  EXPECT_TRUE(records[0].branches.empty());
  EXPECT_EQ(records[1].txn_id, "c.1.2");
  EXPECT_EQ(records[2].txn_id, "c.1.1");
  EXPECT_EQ(records[3].txn_id, "c.1.3");
}

TEST_F(JournalTest, LoneEndIsFlushedAfterTheDelayWithoutBlocking) {
  options_.end_flush_delay_ms = 20;
  auto journal = OpenOrDie();
  ASSERT_NE(journal, nullptr);
  ASSERT_TRUE(journal->LogCommit(Record("c.1.1", {"p"})).ok());
  journal->LogEnd("c.1.1");
  EXPECT_TRUE(WaitFor([&] { return LoadOrDie(journal.get()).empty(); }));
  // The END flush carried no COMMIT record, so it is not a decision batch.
  EXPECT_EQ(journal->Stats().fsync_batches, 1);
}

// Decisions still being made are waited for (up to the wait), so three that
// arrive apart share one fsync; with none other coming, each goes at once.
TEST_F(JournalTest, BatchWaitsForDecisionsStillComingButALoneOneDoesNot) {
  std::atomic<int64_t> coming{3};
  options_.group_commit_wait_us = 5'000'000;  // far longer than the test: the count ends it
  options_.decisions_coming = [&] { return coming.load(); };
  auto journal = OpenOrDie();
  ASSERT_NE(journal, nullptr);
  std::vector<std::thread> deciders;
  for (int i = 0; i < 3; ++i) {
    deciders.emplace_back([&, i] {
      std::this_thread::sleep_for(std::chrono::milliseconds(30 * i));
      EXPECT_TRUE(journal->LogCommit({"coord-a.1." + std::to_string(i), {"p"}, 0}).ok());
    });
  }
  for (auto& t : deciders) t.join();
  EXPECT_EQ(journal->Stats().fsync_batches, 1);
  coming = 1;  // only the one deciding: it goes alone, without the wait
  for (int i = 3; i < 5; ++i) {
    EXPECT_TRUE(journal->LogCommit({"coord-a.1." + std::to_string(i), {"p"}, 0}).ok());
  }
  EXPECT_EQ(journal->Stats().fsync_batches, 3);
  EXPECT_EQ(journal->Stats().commit_records, 5);
}

TEST_F(JournalTest, ConcurrentDecisionsShareOneFsyncBatch) {
  constexpr int kThreads = 32;
  SqliteJournal* raw = nullptr;
  std::atomic<int> batches_seen{0};
  // Hold the first batch until every other caller has queued behind it, so
  // they must all ride in the second one.
  options_.before_batch_commit = [&](size_t records) {
    if (records > 0 && batches_seen++ == 0) {
      EXPECT_TRUE(WaitFor([&] { return raw->QueuedCommitsForTesting() == kThreads - records; }));
    }
  };
  {
    auto journal = OpenOrDie();
    ASSERT_NE(journal, nullptr);
    raw = journal.get();
    for (const Status& s : LogConcurrently(journal.get(), "coord-a.1.", kThreads)) {
      EXPECT_TRUE(s.ok()) << s.ToString();
    }
    JournalStats stats = journal->Stats();
    EXPECT_EQ(stats.commit_records, kThreads);
    EXPECT_LT(stats.fsync_batches, stats.commit_records);
    EXPECT_EQ(stats.fsync_batches, 2);
  }
  options_.before_batch_commit = nullptr;
  auto journal = OpenOrDie();
  ASSERT_NE(journal, nullptr);
  std::vector<CommitRecord> records = LoadOrDie(journal.get());
  EXPECT_EQ(records.size(), static_cast<size_t>(kThreads));
  for (const CommitRecord& r : records) {
    EXPECT_EQ(r.branches, (std::vector<std::string>{"pg-1", "maria_2"}));
  }
}

TEST_F(JournalTest, WithoutGroupCommitEveryDecisionGetsItsOwnFsync) {
  constexpr int kThreads = 8;
  options_.group_commit = false;
  auto journal = OpenOrDie();
  ASSERT_NE(journal, nullptr);
  for (const Status& s : LogConcurrently(journal.get(), "coord-a.1.", kThreads)) {
    EXPECT_TRUE(s.ok()) << s.ToString();
  }
  JournalStats stats = journal->Stats();
  EXPECT_EQ(stats.commit_records, kThreads);
  EXPECT_EQ(stats.fsync_batches, kThreads);
  EXPECT_EQ(LoadOrDie(journal.get()).size(), static_cast<size_t>(kThreads));
}

TEST_F(JournalTest, FailedBatchFailsEveryCallerAndLaterBatchesSucceed) {
  constexpr int kThreads = 8;
  SqliteJournal* raw = nullptr;
  std::atomic<int> batch_no{0};
  std::atomic<bool> holding{false};
  // Batch 1 (one record) is held until kThreads records queue behind it;
  // batch 2 carries them all and fails like a full disk.
  options_.before_batch_commit = [&](size_t records) {
    if (records == 0) return;
    if (++batch_no == 1) {
      holding = true;
      EXPECT_TRUE(WaitFor([&] { return raw->QueuedCommitsForTesting() == kThreads; }));
    }
  };
  options_.inject_batch_error = [&]() -> Status {
    return batch_no == 2 ? Status::IoError("injected: disk full") : Status::Ok();
  };
  {
    auto journal = OpenOrDie();
    ASSERT_NE(journal, nullptr);
    raw = journal.get();
    Status first;
    std::thread holder([&] { first = journal->LogCommit(Record("coord-a.1.0", {"p"})); });
    ASSERT_TRUE(WaitFor([&] { return holding.load(); }));
    std::vector<Status> results = LogConcurrently(journal.get(), "coord-a.2.", kThreads);
    holder.join();
    EXPECT_TRUE(first.ok()) << first.ToString();
    for (const Status& s : results) {
      EXPECT_EQ(s.code(), StatusCode::kIoError) << s.ToString();
    }
    EXPECT_EQ(TxnIds(LoadOrDie(journal.get())), std::set<std::string>{"coord-a.1.0"});
    EXPECT_TRUE(journal->LogCommit(Record("coord-a.3.0", {"p"})).ok());
    JournalStats stats = journal->Stats();
    EXPECT_EQ(stats.commit_records, 2);
    EXPECT_EQ(stats.fsync_batches, 2);
  }
  options_.before_batch_commit = nullptr;
  options_.inject_batch_error = nullptr;
  auto journal = OpenOrDie();
  ASSERT_NE(journal, nullptr);
  EXPECT_EQ(TxnIds(LoadOrDie(journal.get())),
            (std::set<std::string>{"coord-a.1.0", "coord-a.3.0"}));
}

TEST_F(JournalTest, FailedBatchKeepsItsEndsForALaterFlush) {
  options_.end_flush_delay_ms = 5;
  std::atomic<bool> fail{false};
  options_.inject_batch_error = [&]() -> Status {
    return fail ? Status::IoError("injected") : Status::Ok();
  };
  auto journal = OpenOrDie();
  ASSERT_NE(journal, nullptr);
  ASSERT_TRUE(journal->LogCommit(Record("c.1.1", {"p"})).ok());
  fail = true;
  journal->LogEnd("c.1.1");
  EXPECT_EQ(journal->LogCommit(Record("c.1.2", {"p"})).code(), StatusCode::kIoError);
  fail = false;
  EXPECT_TRUE(WaitFor([&] { return LoadOrDie(journal.get()).empty(); }));
}

TEST_F(JournalTest, InvalidBranchNameIsRejectedBeforeWriting) {
  auto journal = OpenOrDie();
  ASSERT_NE(journal, nullptr);
  EXPECT_EQ(journal->LogCommit(Record("c.1.1", {"a,b"})).code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(LoadOrDie(journal.get()).empty());
}

TEST_F(JournalTest, OpeningAnotherCoordinatorsJournalIsRefused) {
  { ASSERT_NE(OpenOrDie(), nullptr); }
  options_.coordinator_name = "coord-b";
  auto journal = SqliteJournal::Open(path_, options_);
  ASSERT_FALSE(journal.ok());
  EXPECT_EQ(journal.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(journal.status().message().find("coord-a"), std::string::npos);
  EXPECT_NE(journal.status().message().find("coord-b"), std::string::npos);
}

TEST_F(JournalTest, JournalWithAnotherSchemaVersionIsRefused) {
  { ASSERT_NE(OpenOrDie(), nullptr); }
  Status changed = ExecOnFile(path_, "UPDATE meta SET schema_version = 3");
  ASSERT_TRUE(changed.ok()) << changed.ToString();
  auto journal = SqliteJournal::Open(path_, options_);
  ASSERT_FALSE(journal.ok());
  EXPECT_EQ(journal.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(journal.status().message().find("schema version 3"), std::string::npos)
      << journal.status().ToString();
}

TEST_F(JournalTest, SchemaOneJournalIsUpgradedKeepingItsDecisions) {
  {
    auto journal = OpenOrDie();
    ASSERT_TRUE(journal->LogCommit({"c1.1.5", {"a", "b"}, 0}).ok());
  }
  Status changed =
      ExecOnFile(path_, "DROP TABLE aborted_decisions; UPDATE meta SET schema_version = 1");
  ASSERT_TRUE(changed.ok()) << changed.ToString();
  auto journal = OpenOrDie();
  auto unfinished = journal->LoadUnfinished();
  ASSERT_TRUE(unfinished.ok()) << unfinished.status().ToString();
  ASSERT_EQ(unfinished->size(), 1u);
  EXPECT_EQ(unfinished->front().txn_id, "c1.1.5");
  ASSERT_TRUE(journal->LogAbort("c1.1.5").ok());
}

TEST_F(JournalTest, SecondOpenOfALockedJournalIsRefused) {
  auto first = OpenOrDie();
  auto second = SqliteJournal::Open(path_, options_);
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(second.status().message().find("in use by another coordinator process"),
            std::string::npos)
      << second.status().ToString();
  first.reset();
  EXPECT_TRUE(SqliteJournal::Open(path_, options_).ok());
}

TEST_F(JournalTest, AbortRecordOverrulesACommitRecordAcrossReopen) {
  {
    auto journal = OpenOrDie();
    ASSERT_TRUE(journal->LogCommit({"c1.1.7", {"a", "b"}, 0}).ok());
    ASSERT_TRUE(journal->LogCommit({"c1.1.8", {"a", "b"}, 0}).ok());
    ASSERT_TRUE(journal->LogAbort("c1.1.7").ok());
  }
  auto journal = OpenOrDie();
  auto unfinished = journal->LoadUnfinished();
  ASSERT_TRUE(unfinished.ok());
  ASSERT_EQ(unfinished->size(), 1u);
  EXPECT_EQ(unfinished->front().txn_id, "c1.1.8");
  auto contents = ReadJournalFile(path_);
  ASSERT_TRUE(contents.ok());
  ASSERT_EQ(contents->unfinished.size(), 1u);
  EXPECT_EQ(contents->unfinished.front().txn_id, "c1.1.8");
}

TEST_F(JournalTest, GarbageFileIsRefusedAsCorruption) {
  {
    std::mt19937 rng(42);
    std::ofstream out(path_, std::ios::binary);
    for (int i = 0; i < 16384; ++i) out.put(static_cast<char>(rng()));
  }
  auto journal = SqliteJournal::Open(path_, options_);
  ASSERT_FALSE(journal.ok());
  EXPECT_EQ(journal.status().code(), StatusCode::kCorruption) << journal.status().ToString();
  EXPECT_NE(journal.status().message().find(path_), std::string::npos);
  EXPECT_NE(journal.status().message().find("refuses to start"), std::string::npos);
}

TEST_F(JournalTest, SqliteFileOfAnotherProgramIsRefusedAsCorruption) {
  Status created = ExecOnFile(path_, "CREATE TABLE t (x)");
  ASSERT_TRUE(created.ok()) << created.ToString();
  auto journal = SqliteJournal::Open(path_, options_);
  ASSERT_FALSE(journal.ok());
  EXPECT_EQ(journal.status().code(), StatusCode::kCorruption) << journal.status().ToString();
}

TEST_F(JournalTest, TruncatedJournalIsRefusedAsCorruption) {
  {
    auto journal = OpenOrDie();
    ASSERT_NE(journal, nullptr);
    ASSERT_TRUE(journal->RaiseEpoch().ok());
    // Enough records with long branch lists to span many pages.
    std::vector<std::string> branches;
    for (int i = 0; i < 20; ++i) branches.push_back("participant-" + std::to_string(i));
    std::vector<std::thread> threads;
    for (int t = 0; t < 8; ++t) {
      threads.emplace_back([&, t] {
        for (int i = 0; i < 40; ++i) {
          std::string id = "coord-a.1." + std::to_string(t * 1000 + i);
          EXPECT_TRUE(journal->LogCommit(Record(id, branches)).ok());
        }
      });
    }
    for (std::thread& t : threads) t.join();
  }
  ASSERT_FALSE(fs::exists(path_ + "-wal"));  // a clean close checkpoints into the file
  uintmax_t size = fs::file_size(path_);
  ASSERT_GT(size, 8u * 4096);
  fs::resize_file(path_, size / 2);
  auto journal = SqliteJournal::Open(path_, options_);
  ASSERT_FALSE(journal.ok());
  EXPECT_EQ(journal.status().code(), StatusCode::kCorruption) << journal.status().ToString();
  EXPECT_NE(journal.status().message().find(path_), std::string::npos);
  EXPECT_NE(journal.status().message().find("refuses to start"), std::string::npos);
}

TEST_F(JournalTest, ParticipantsUpsertAndLoadByName) {
  {
    auto journal = OpenOrDie();
    ASSERT_NE(journal, nullptr);
    ASSERT_TRUE(journal->PutParticipant({"pg-1", "db1", 9091, "postgres"}).ok());
    ASSERT_TRUE(journal->PutParticipant({"lite", "localhost", 9092, "sqlite"}).ok());
    ASSERT_TRUE(journal->PutParticipant({"pg-1", "db2", 9093, "postgres"}).ok());
    EXPECT_EQ(journal->PutParticipant({"bad,name", "h", 1, "sqlite"}).code(),
              StatusCode::kInvalidArgument);
  }
  auto journal = OpenOrDie();
  ASSERT_NE(journal, nullptr);
  auto participants = journal->LoadParticipants();
  ASSERT_TRUE(participants.ok()) << participants.status().ToString();
  ASSERT_EQ(participants->size(), 2u);
  EXPECT_EQ((*participants)[0].name, "lite");
  EXPECT_EQ((*participants)[0].port, 9092);
  EXPECT_EQ((*participants)[1].name, "pg-1");
  EXPECT_EQ((*participants)[1].host, "db2");
  EXPECT_EQ((*participants)[1].port, 9093);
  EXPECT_EQ((*participants)[1].backend, "postgres");
}

}  // namespace
}  // namespace pact
