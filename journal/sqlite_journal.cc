#include "journal/sqlite_journal.h"

#include <fcntl.h>
#include <glog/logging.h>
#include <sqlite3.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <optional>
#include <set>
#include <utility>

#include "common/txn_id.h"
#include "journal/journal_schema.h"

namespace pact {

// A LogCommit caller waiting for its batch; lives on the caller's stack.
// Each has its own condition variable, so a finished batch wakes its own
// callers only, not those already queued for the next one.
struct SqliteJournal::PendingCommit {
  const CommitRecord* record;
  Status status;
  bool done = false;                // guarded by mu_
  std::condition_variable written;  // with mu_: done
};

SqliteJournal::SqliteJournal(std::string path, SqliteJournalOptions options)
    : path_(std::move(path)), options_(std::move(options)) {}

Result<std::unique_ptr<SqliteJournal>> SqliteJournal::Open(const std::string& path,
                                                           const SqliteJournalOptions& options) {
  if (!IsValidName(options.coordinator_name)) {
    return Status::InvalidArgument("coordinator name must match [A-Za-z0-9_-]{1,64}, got '" +
                                   options.coordinator_name + "'");
  }
  if (options.end_flush_delay_ms < 0) {
    return Status::InvalidArgument("end_flush_delay_ms must not be negative");
  }
  std::unique_ptr<SqliteJournal> journal(new SqliteJournal(path, options));
  Status status = journal->Init();
  if (status.code() == StatusCode::kCorruption) {
    return Status::Corruption("journal " + path + " is damaged (" + status.message() +
                              "); the coordinator refuses to start rather than guess which "
                              "transactions committed");
  }
  if (!status.ok()) return status.WithContext("opening journal " + path);
  journal->writer_ = std::thread(&SqliteJournal::WriterLoop, journal.get());
  LOG(INFO) << "journal " << path << " open for coordinator " << options.coordinator_name
            << (options.group_commit ? " (group commit)" : " (one fsync per decision)");
  return Result<std::unique_ptr<SqliteJournal>>(std::move(journal));
}

SqliteJournal::~SqliteJournal() {
  if (writer_.joinable()) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    writer_cv_.notify_one();
    writer_.join();
  }
  // Close the file before giving up ownership.
  StmtsAndDbClose();
  if (lock_fd_ >= 0) close(lock_fd_);
}

void SqliteJournal::StmtsAndDbClose() {
  for (SqliteStatement* stmt : {&begin_, &commit_, &rollback_, &insert_commit_, &delete_commit_,
                                &select_commits_, &raise_epoch_, &read_epoch_, &put_participant_,
                                &select_participants_}) {
    *stmt = SqliteStatement();
  }
  db_ = SqliteConnection();
}

Status SqliteJournal::LockFile() {
  // One journal, one owner: a second coordinator on the same file would
  // raise the epoch and presume-abort the first one's transactions. The
  // lock is the first thing taken and lives as long as the process holds
  // the journal (the kernel drops it when the process dies).
  std::string lock_path = path_ + ".lock";
  lock_fd_ = open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (lock_fd_ < 0) {
    return Status::IoError("cannot open lock file " + lock_path + ": " + std::strerror(errno));
  }
  if (flock(lock_fd_, LOCK_EX | LOCK_NB) != 0) {
    char owner[32] = {0};
    ssize_t n = pread(lock_fd_, owner, sizeof(owner) - 1, 0);
    std::string pid = n > 0 ? std::string(owner, static_cast<size_t>(n)) : "?";
    while (!pid.empty() && (pid.back() == '\n' || pid.back() == ' ')) pid.pop_back();
    return Status::FailedPrecondition("journal " + path_ +
                                      " is in use by another coordinator process (pid " + pid +
                                      "); a journal has exactly one owner");
  }
  std::string pid = std::to_string(getpid()) + "\n";
  if (ftruncate(lock_fd_, 0) != 0 || pwrite(lock_fd_, pid.data(), pid.size(), 0) < 0) {
    LOG(WARNING) << "cannot note the owner in " << lock_path;
  }
  return Status::Ok();
}

Status SqliteJournal::Init() {
  RETURN_NOT_OK(LockFile());
  Result<SqliteConnection> db = SqliteConnection::Open(
      path_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX, options_.vfs);
  if (!db.ok()) return db.status().WithContext("open");
  db_ = std::move(db).value();
  db_.SetBusyTimeout(5000);  // a tool may hold a read lock briefly

  // Before anything writes: a damaged file must stop the coordinator, never
  // be "repaired" into an empty journal that forgets committed decisions.
  std::string problems;
  RETURN_NOT_OK(db_.Exec("PRAGMA quick_check",
                         [&](const SqliteStatement& row) {
                           std::string line = row.Text(0);
                           if (line != "ok" && problems.size() < 300) {
                             problems += (problems.empty() ? "" : "; ") + line;
                           }
                         })
                    .WithContext("quick_check"));
  if (!problems.empty()) return Status::Corruption("quick_check: " + problems);

  RETURN_NOT_OK(SetDurabilityPragmas());
  RETURN_NOT_OK(Prepare("BEGIN IMMEDIATE", &begin_));
  RETURN_NOT_OK(Prepare("COMMIT", &commit_));
  RETURN_NOT_OK(Prepare("ROLLBACK", &rollback_));
  RETURN_NOT_OK(LoadOrCreateSchema());

  // The tables exist, so a statement that does not prepare means the schema
  // is not the one Pact wrote.
  Status prepared = [&]() -> Status {
    RETURN_NOT_OK(Prepare(kInsertCommitRecord, &insert_commit_));
    RETURN_NOT_OK(Prepare(kDeleteCommitRecord, &delete_commit_));
    RETURN_NOT_OK(Prepare(kSelectUnfinished, &select_commits_));
    RETURN_NOT_OK(Prepare(kRaiseEpoch, &raise_epoch_));
    RETURN_NOT_OK(Prepare(kSelectEpoch, &read_epoch_));
    RETURN_NOT_OK(Prepare(kInsertParticipant, &put_participant_));
    return Prepare(kSelectParticipants, &select_participants_);
  }();
  if (!prepared.ok()) return Status::Corruption("unexpected schema: " + prepared.message());
  return Status::Ok();
}

Status SqliteJournal::SetDurabilityPragmas() {
  // WAL + synchronous=FULL: COMMIT fsyncs the WAL once, which is what makes a
  // batch durable and what group commit amortizes. Verified, not assumed.
  RETURN_NOT_OK(db_.Exec("PRAGMA journal_mode = WAL").WithContext("set journal_mode"));
  RETURN_NOT_OK(db_.Exec("PRAGMA synchronous = FULL").WithContext("set synchronous"));
  ASSIGN_OR_RETURN(std::string mode, db_.QueryText("PRAGMA journal_mode"));
  if (mode != "wal") {
    return Status::FailedPrecondition("SQLite refused WAL mode (journal_mode is '" + mode + "')");
  }
  ASSIGN_OR_RETURN(int64_t sync, db_.QueryInt("PRAGMA synchronous"));
  if (sync != 2) {
    return Status::FailedPrecondition("SQLite refused synchronous=FULL (got " +
                                      std::to_string(sync) + ")");
  }
  return Status::Ok();
}

Status SqliteJournal::LoadOrCreateSchema() {
  std::set<std::string> names;
  RETURN_NOT_OK(
      db_.Exec(kSelectTables, [&](const SqliteStatement& row) { names.insert(row.Text(0)); })
          .WithContext("list tables"));

  if (names.empty()) {
    return RunTransaction([&]() -> Status {
      RETURN_NOT_OK(db_.Exec(kCreateJournalTables).WithContext("create tables"));
      RETURN_NOT_OK(db_.Exec(kCreateAbortedDecisions).WithContext("create tables"));
      return db_.Run(kInsertMeta, {int64_t{kJournalSchemaVersion}, options_.coordinator_name})
          .WithContext("write meta");
    });
  }
  for (const char* table : kJournalTables) {
    if (names.count(table) == 0) {
      return Status::Corruption(std::string("table '") + table +
                                "' is missing; this is not a Pact journal");
    }
  }
  Result<std::optional<JournalMeta>> meta = ReadJournalMeta(&db_);
  if (!meta.ok()) return meta.status().WithContext("read meta");
  if (!meta->has_value()) return Status::Corruption("the meta row is missing");
  const int64_t version = (*meta)->schema_version;
  const std::string& owner = (*meta)->coordinator_name;
  if (version != 1 && version != kJournalSchemaVersion) {
    return Status::FailedPrecondition("journal " + path_ + " has schema version " +
                                      std::to_string(version) + "; this build reads versions 1-" +
                                      std::to_string(kJournalSchemaVersion));
  }
  if (owner != options_.coordinator_name) {
    return Status::FailedPrecondition("journal " + path_ + " belongs to coordinator '" + owner +
                                      "', not '" + options_.coordinator_name +
                                      "'; refusing to replay another coordinator's decisions");
  }
  if (version == 1) {
    return RunTransaction([&]() -> Status {
      RETURN_NOT_OK(db_.Exec(kCreateAbortedDecisions).WithContext("upgrade to schema 2"));
      return db_.Exec(kUpgradeToSchema2).WithContext("upgrade to schema 2");
    });
  }
  if (names.count("aborted_decisions") == 0) {
    return Status::Corruption("table 'aborted_decisions' is missing; this is not a Pact journal");
  }
  return Status::Ok();
}

Status SqliteJournal::Prepare(const char* sql, SqliteStatement* stmt) {
  Result<SqliteStatement> prepared = db_.Prepare(sql, SQLITE_PREPARE_PERSISTENT);
  if (!prepared.ok()) return prepared.status().WithContext(std::string("prepare '") + sql + "'");
  *stmt = std::move(prepared).value();
  return Status::Ok();
}

Status SqliteJournal::RunTransaction(const std::function<Status()>& body) {
  RETURN_NOT_OK(begin_.Run().WithContext("begin"));
  Status status = body();
  if (status.ok()) {
    status = commit_.Run().WithContext("commit");
    if (!status.ok()) {
      // At the commit point the pages are being written and synced: a
      // failure here (an fsync error, say) may still leave the transaction
      // on disk, to be replayed after a crash.
      status = Status::Unavailable("the transaction may or may not be durable: " +
                                   status.message());
    }
  }
  // SQLite may already have rolled back (e.g. after an I/O error).
  if (!status.ok() && db_.InTransaction()) {
    Status rolled_back = rollback_.Run().WithContext("rollback");
    LOG_IF(ERROR, !rolled_back.ok()) << "journal " << path_ << ": " << rolled_back.ToString();
  }
  return status;
}

Result<int64_t> SqliteJournal::RaiseEpoch() {
  std::lock_guard<std::mutex> db_lock(db_mu_);
  std::optional<int64_t> epoch;
  RETURN_NOT_OK(RunTransaction([&]() -> Status {
    RETURN_NOT_OK(raise_epoch_.Run().WithContext("raise epoch"));
    if (db_.Changes() != 1) return Status::Corruption("the meta row is missing");
    return read_epoch_.Run([&](const SqliteStatement& row) { epoch = row.Int64(0); })
        .WithContext("read epoch");
  }));
  if (!epoch) return Status::Corruption("the meta row is missing");
  return *epoch;
}

Status SqliteJournal::LogCommit(const CommitRecord& record) {
  if (record.txn_id.empty()) return Status::InvalidArgument("COMMIT record without txn_id");
  for (const std::string& branch : record.branches) {
    if (!IsValidName(branch)) {
      return Status::InvalidArgument("bad branch participant name '" + branch + "' in " +
                                     record.txn_id);
    }
  }
  PendingCommit pending{&record, Status::Ok()};
  std::unique_lock<std::mutex> lock(mu_);
  commits_.push_back(&pending);
  // The writer sleeps on an empty queue, or until writer_awaits_ records are
  // queued; otherwise it finds this one when its current batch is written.
  if (commits_.size() == 1 || commits_.size() == writer_awaits_) writer_cv_.notify_one();
  pending.written.wait(lock, [&] { return pending.done; });
  return pending.status;
}

void SqliteJournal::LogEnd(const std::string& txn_id) {
  std::lock_guard<std::mutex> lock(mu_);
  if (ends_.empty()) {
    ends_deadline_ = SteadyClock::now() + Millis(options_.end_flush_delay_ms);
    writer_cv_.notify_one();  // so the writer starts the flush timer
  }
  ends_.push_back(txn_id);
}

void SqliteJournal::WaitForDecisionsComing(std::unique_lock<std::mutex>& lock) {
  if (!options_.group_commit || options_.group_commit_wait_us <= 0 ||
      !options_.decisions_coming || commits_.empty()) {
    return;
  }
  const int64_t coming = options_.decisions_coming();
  if (coming <= static_cast<int64_t>(commits_.size())) return;
  writer_awaits_ = static_cast<size_t>(coming);
  writer_cv_.wait_for(lock, std::chrono::microseconds(options_.group_commit_wait_us), [&] {
    return stop_ || commits_.size() >= writer_awaits_;
  });
  writer_awaits_ = 0;
}

void SqliteJournal::WriterLoop() {
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    writer_cv_.wait(lock, [this] { return stop_ || !commits_.empty() || !ends_.empty(); });
    if (commits_.empty() && !ends_.empty() && !stop_) {
      // END is lazy: let it ride along with the next decision, but not for long.
      writer_cv_.wait_until(lock, ends_deadline_, [this] { return stop_ || !commits_.empty(); });
    }
    if (commits_.empty() && ends_.empty()) {
      if (stop_) return;
      continue;
    }
    WaitForDecisionsComing(lock);
    // Everything queued now forms the batch; what arrives while it is being
    // fsynced waits for the next one. A lone decision goes at once.
    size_t take = options_.group_commit ? commits_.size() : std::min<size_t>(commits_.size(), 1);
    std::vector<PendingCommit*> batch(commits_.begin(), commits_.begin() + take);
    commits_.erase(commits_.begin(), commits_.begin() + take);
    std::vector<std::string> ends;
    ends.swap(ends_);
    lock.unlock();
    Status status = WriteBatch(batch, ends);
    lock.lock();

    if (status.ok()) {
      if (!batch.empty()) {
        stats_.commit_records += static_cast<int64_t>(batch.size());
        stats_.fsync_batches += 1;
        if (options_.on_batch_durable) options_.on_batch_durable(batch.size());
      }
    } else {
      LOG(ERROR) << "journal " << path_ << ": batch of " << batch.size() << " COMMIT and "
                 << ends.size() << " END records failed: " << status.ToString();
      if (stop_) {
        LOG_IF(WARNING, !ends.empty())
            << ends.size() << " END records not flushed; their commits are re-driven at restart";
      } else if (!ends.empty()) {
        // Keep the ENDs for a later batch; a record that stays is only re-driven.
        if (ends_.empty()) {
          ends_deadline_ = SteadyClock::now() + Millis(options_.end_flush_delay_ms);
        }
        ends_.insert(ends_.end(), ends.begin(), ends.end());
      }
    }
    for (PendingCommit* pending : batch) {
      pending->status = status;
      pending->done = true;
      pending->written.notify_one();  // under mu_: the waiter cannot be gone yet
    }
  }
}

Status SqliteJournal::WriteBatch(const std::vector<PendingCommit*>& commits,
                                 const std::vector<std::string>& ends) {
  std::lock_guard<std::mutex> db_lock(db_mu_);
  return RunTransaction([&]() -> Status {
    for (const PendingCommit* pending : commits) {
      RETURN_NOT_OK(BindCommitRecord(&insert_commit_, *pending->record, WallMillis()));
      RETURN_NOT_OK(insert_commit_.Run().WithContext("insert COMMIT record"));
    }
    for (const std::string& txn_id : ends) {
      RETURN_NOT_OK(delete_commit_.Bind(1, txn_id));
      RETURN_NOT_OK(delete_commit_.Run().WithContext("delete ended COMMIT record"));
    }
    if (options_.before_batch_commit) options_.before_batch_commit(commits.size());
    if (options_.inject_batch_error) RETURN_NOT_OK(options_.inject_batch_error());
    return Status::Ok();
  });
}

Result<std::vector<CommitRecord>> SqliteJournal::LoadUnfinished() {
  // Same connection as the writer: every LogCommit that returned OK is visible.
  std::lock_guard<std::mutex> db_lock(db_mu_);
  Result<std::vector<CommitRecord>> records = ReadCommitRecords(&select_commits_);
  if (!records.ok()) return records.status().WithContext("load COMMIT records");
  return records;
}

Status SqliteJournal::LogAbort(const std::string& txn_id) {
  std::lock_guard<std::mutex> db_lock(db_mu_);
  return RunTransaction([&]() -> Status {
    RETURN_NOT_OK(delete_commit_.Bind(1, txn_id));
    RETURN_NOT_OK(delete_commit_.Run().WithContext("delete overruled COMMIT record"));
    return db_.Run(kInsertAbortedDecision, {txn_id, WallMillis()})
        .WithContext("insert abort record");
  });
}

Status SqliteJournal::PutParticipant(const ParticipantRecord& participant) {
  if (!IsValidName(participant.name)) {
    return Status::InvalidArgument("participant name must match [A-Za-z0-9_-]{1,64}, got '" +
                                   participant.name + "'");
  }
  std::lock_guard<std::mutex> db_lock(db_mu_);
  RETURN_NOT_OK(BindParticipant(&put_participant_, participant));
  // One statement in autocommit mode is its own durable transaction.
  return put_participant_.Run().WithContext("put participant");
}

Result<std::vector<ParticipantRecord>> SqliteJournal::LoadParticipants() {
  std::lock_guard<std::mutex> db_lock(db_mu_);
  Result<std::vector<ParticipantRecord>> participants = ReadParticipants(&select_participants_);
  if (!participants.ok()) return participants.status().WithContext("load participants");
  return participants;
}

Status SqliteJournal::DeleteParticipant(const std::string& name) {
  std::lock_guard<std::mutex> db_lock(db_mu_);
  return db_.Run(kDeleteParticipant, {name}).WithContext("delete participant");
}

Status SqliteJournal::PutHeuristic(const HeuristicRecord& h) {
  std::lock_guard<std::mutex> db_lock(db_mu_);
  ASSIGN_OR_RETURN(SqliteStatement stmt, db_.Prepare(kInsertHeuristic));
  RETURN_NOT_OK(BindHeuristic(&stmt, h));
  return stmt.Run().WithContext("put heuristic");
}

Result<std::vector<HeuristicRecord>> SqliteJournal::LoadHeuristics() {
  std::lock_guard<std::mutex> db_lock(db_mu_);
  ASSIGN_OR_RETURN(SqliteStatement stmt, db_.Prepare(kSelectHeuristics));
  Result<std::vector<HeuristicRecord>> heuristics = ReadHeuristics(&stmt);
  if (!heuristics.ok()) return heuristics.status().WithContext("load heuristics");
  return heuristics;
}

Status SqliteJournal::ForgetHeuristics(const std::string& txn_id) {
  std::lock_guard<std::mutex> db_lock(db_mu_);
  RETURN_NOT_OK(db_.Run(kDeleteHeuristics, {txn_id}).WithContext("forget heuristics"));
  if (db_.Changes() == 0) {
    return Status::NotFound("no heuristic record for transaction " + txn_id);
  }
  return Status::Ok();
}

JournalStats SqliteJournal::Stats() {
  std::lock_guard<std::mutex> lock(mu_);
  return stats_;
}

Result<int64_t> SqliteJournal::ReadPragmaSynchronous() {
  std::lock_guard<std::mutex> db_lock(db_mu_);
  return db_.QueryInt("PRAGMA synchronous");
}

Result<std::string> SqliteJournal::ReadPragmaJournalMode() {
  std::lock_guard<std::mutex> db_lock(db_mu_);
  return db_.QueryText("PRAGMA journal_mode");
}

size_t SqliteJournal::QueuedCommitsForTesting() {
  std::lock_guard<std::mutex> lock(mu_);
  return commits_.size();
}

}  // namespace pact
