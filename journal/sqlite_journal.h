// SqliteJournal: the Journal on one SQLite file in WAL mode with
// synchronous=FULL, so a committed SQLite transaction is on disk. COMMIT
// records are written by one writer thread in batches (group commit): one
// SQLite transaction, hence one fsync, carries every decision waiting at that
// moment.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/clock.h"
#include "common/status.h"
#include "journal/journal.h"
#include "sqlite/sqlite.h"

namespace pact {

struct SqliteJournalOptions {
  // Stored in the file when it is created; a journal written by another
  // coordinator is refused, so no coordinator replays another's decisions.
  std::string coordinator_name;
  // false: one SQLite transaction (one fsync) per COMMIT record, for
  // benchmarks that compare against group commit.
  bool group_commit = true;
  // Longest a lazy END waits for a decision batch to ride along with.
  int end_flush_delay_ms = 50;
  // With group commit: a batch that has fewer COMMIT records than
  // decisions_coming() says are being decided waits up to this long for
  // them (like PostgreSQL's commit_delay with commit_siblings), so that
  // concurrent decisions share one fsync. A lone decision never waits.
  int group_commit_wait_us = 0;
  // How many decisions are being made now, each of which may queue a COMMIT
  // record soon. Called on the writer thread with the journal's lock held:
  // must be quick and take no lock of the journal's.
  std::function<int64_t()> decisions_coming;
  // Called on the writer thread after each batch of COMMIT records is durable,
  // with how many it carried (for metrics). Must be quick.
  std::function<void(size_t commit_records)> on_batch_durable;

  // Test seams; leave empty in production. Both run on the writer thread
  // inside every batch's SQLite transaction, just before its COMMIT.
  // Gets the number of COMMIT records in the batch (0 for an END-only flush);
  // may block to hold the batch while later records queue up.
  std::function<void(size_t commit_records)> before_batch_commit;
  // A non-OK result fails the batch exactly like a SQLite error: it is rolled
  // back and every caller in it gets this Status.
  std::function<Status()> inject_batch_error;
  // The SQLite VFS to open the file with; empty: the default. A test seam
  // too (see fsync_fault_vfs.h).
  std::string vfs;
};

class SqliteJournal : public Journal {
 public:
  // Opens or creates the journal at `path`, first locking `path`.lock so
  // that no other process uses it meanwhile. Fails with kCorruption when the
  // file is not an intact Pact journal, and with kFailedPrecondition when
  // another process holds it, it belongs to another coordinator or schema
  // version, or SQLite refuses WAL.
  static Result<std::unique_ptr<SqliteJournal>> Open(const std::string& path,
                                                     const SqliteJournalOptions& options);

  // Flushes queued ENDs, stops the writer and closes the file.
  // REQUIRES: no call on this journal is in progress.
  ~SqliteJournal() override;

  SqliteJournal(const SqliteJournal&) = delete;
  SqliteJournal& operator=(const SqliteJournal&) = delete;

  Result<int64_t> RaiseEpoch() override;
  // A record with decided_at_ms == 0 is stamped with the wall clock when
  // written. Branch names must pass IsValidName (they are stored comma-joined).
  // kUnavailable: the batch failed at its commit point and may be durable.
  Status LogCommit(const CommitRecord& record) override;
  Status LogAbort(const std::string& txn_id) override;
  void LogEnd(const std::string& txn_id) override;
  Result<std::vector<CommitRecord>> LoadUnfinished() override;
  Status PutParticipant(const ParticipantRecord& participant) override;
  Result<std::vector<ParticipantRecord>> LoadParticipants() override;
  Status DeleteParticipant(const std::string& name) override;
  Status PutHeuristic(const HeuristicRecord& heuristic) override;
  Result<std::vector<HeuristicRecord>> LoadHeuristics() override;
  Status ForgetHeuristics(const std::string& txn_id) override;
  JournalStats Stats() override;

  // Read back from the connection, for tests and tools: 2 means FULL.
  Result<int64_t> ReadPragmaSynchronous();
  Result<std::string> ReadPragmaJournalMode();

  // COMMIT records queued and not yet taken by the writer. Test seam only.
  size_t QueuedCommitsForTesting();

 private:
  struct PendingCommit;

  SqliteJournal(std::string path, SqliteJournalOptions options);

  // Everything in these helpers REQUIRES db_mu_ held (or no writer yet).
  Status Init();
  Status LockFile();
  void StmtsAndDbClose();
  Status SetDurabilityPragmas();
  Status LoadOrCreateSchema();
  // A statement kept for the journal's lifetime.
  Status Prepare(const char* sql, SqliteStatement* stmt);
  // Runs body between BEGIN IMMEDIATE and COMMIT; rolls back if either fails.
  Status RunTransaction(const std::function<Status()>& body);
  Status WriteBatch(const std::vector<PendingCommit*>& commits,
                    const std::vector<std::string>& ends);

  // REQUIRES: lock holds mu_. See SqliteJournalOptions::group_commit_wait_us.
  void WaitForDecisionsComing(std::unique_lock<std::mutex>& lock);
  void WriterLoop();

  const std::string path_;
  const SqliteJournalOptions options_;

  std::mutex db_mu_;  // serializes every use of db_ and its statements
  SqliteConnection db_;
  // Declared after db_ so they are finalized before it closes.
  SqliteStatement begin_, commit_, rollback_;
  SqliteStatement insert_commit_, delete_commit_, select_commits_;
  SqliteStatement raise_epoch_, read_epoch_;
  SqliteStatement put_participant_, select_participants_;

  std::mutex mu_;                      // guards the queues, stop_ and stats_
  std::condition_variable writer_cv_;  // work queued or stop_ set
  std::deque<PendingCommit*> commits_;
  // While the writer waits for decisions on their way: the queue length that
  // ends its wait (0 otherwise). A LogCommit wakes the writer only when it
  // sleeps for it, not for every record.
  size_t writer_awaits_ = 0;
  std::vector<std::string> ends_;
  TimePoint ends_deadline_;  // when the oldest queued END must be flushed
  bool stop_ = false;
  JournalStats stats_;

  std::thread writer_;
  int lock_fd_ = -1;  // holds the flock on path_.lock
};

}  // namespace pact
