#include "journal/sqlite_journal.h"

#include <fcntl.h>
#include <glog/logging.h>
#include <sqlite3.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <set>
#include <utility>

#include "common/txn_id.h"
#include "journal/journal_schema.h"

namespace pact {

// A LogCommit caller waiting for its batch; lives on the caller's stack.
struct SqliteJournal::PendingCommit {
  const CommitRecord* record;
  Status status;
  bool done = false;  // guarded by mu_
};

namespace {

std::string JoinBranches(const std::vector<std::string>& branches) {
  std::string joined;
  for (const std::string& b : branches) {
    if (!joined.empty()) joined += ',';
    joined += b;
  }
  return joined;
}


std::string ColumnText(sqlite3_stmt* stmt, int column) {
  const unsigned char* text = sqlite3_column_text(stmt, column);
  return text == nullptr
             ? std::string()
             : std::string(reinterpret_cast<const char*>(text), sqlite3_column_bytes(stmt, column));
}

void BindText(sqlite3_stmt* stmt, int index, const std::string& value) {
  // SQLITE_TRANSIENT: the string may not outlive the step.
  sqlite3_bind_text(stmt, index, value.data(), static_cast<int>(value.size()), SQLITE_TRANSIENT);
}

// Leaves a reused prepared statement ready for the next caller.
class ResetOnExit {
 public:
  explicit ResetOnExit(sqlite3_stmt* stmt) : stmt_(stmt) {}
  ~ResetOnExit() {
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
  }

 private:
  sqlite3_stmt* stmt_;
};

}  // namespace

std::vector<std::string> SplitBranches(const std::string& joined) {
  std::vector<std::string> branches;
  size_t start = 0;
  while (start < joined.size()) {
    size_t comma = joined.find(',', start);
    if (comma == std::string::npos) comma = joined.size();
    branches.push_back(joined.substr(start, comma - start));
    start = comma + 1;
  }
  return branches;
}

void SqliteJournal::CloseDb::operator()(sqlite3* db) const { sqlite3_close_v2(db); }
void SqliteJournal::FinalizeStmt::operator()(sqlite3_stmt* stmt) const { sqlite3_finalize(stmt); }

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
  for (Stmt* stmt : {&begin_, &commit_, &rollback_, &insert_commit_, &delete_commit_,
                     &select_commits_, &raise_epoch_, &read_epoch_, &put_participant_,
                     &select_participants_}) {
    stmt->reset();
  }
  db_.reset();
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
  sqlite3* db = nullptr;
  int rc = sqlite3_open_v2(path_.c_str(), &db,
                           SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX,
                           options_.vfs.empty() ? nullptr : options_.vfs.c_str());
  db_.reset(db);  // closed by db_ even when open failed
  if (rc != SQLITE_OK) return Error(rc, "open");
  sqlite3_extended_result_codes(db, 1);
  sqlite3_busy_timeout(db, 5000);  // a tool may hold a read lock briefly

  // Before anything writes: a damaged file must stop the coordinator, never
  // be "repaired" into an empty journal that forgets committed decisions.
  Stmt check;
  RETURN_NOT_OK(Prepare("PRAGMA quick_check", &check));
  std::string problems;
  while ((rc = sqlite3_step(check.get())) == SQLITE_ROW) {
    std::string line = ColumnText(check.get(), 0);
    if (line != "ok" && problems.size() < 300) problems += (problems.empty() ? "" : "; ") + line;
  }
  if (rc != SQLITE_DONE) return Error(rc, "quick_check");
  if (!problems.empty()) return Status::Corruption("quick_check: " + problems);
  check.reset();

  RETURN_NOT_OK(SetDurabilityPragmas());
  RETURN_NOT_OK(Prepare("BEGIN IMMEDIATE", &begin_));
  RETURN_NOT_OK(Prepare("COMMIT", &commit_));
  RETURN_NOT_OK(Prepare("ROLLBACK", &rollback_));
  RETURN_NOT_OK(LoadOrCreateSchema());

  // The tables exist, so a statement that does not prepare means the schema
  // is not the one Pact wrote.
  Status prepared = [&]() -> Status {
    RETURN_NOT_OK(
        Prepare("INSERT OR REPLACE INTO commit_records (txn_id, branches, "
                "decided_at_ms) VALUES (?1, ?2, ?3)",
                &insert_commit_));
    RETURN_NOT_OK(Prepare("DELETE FROM commit_records WHERE txn_id = ?1", &delete_commit_));
    RETURN_NOT_OK(Prepare(kSelectUnfinished, &select_commits_));
    RETURN_NOT_OK(Prepare("UPDATE meta SET epoch = epoch + 1 WHERE id = 1", &raise_epoch_));
    RETURN_NOT_OK(Prepare("SELECT epoch FROM meta WHERE id = 1", &read_epoch_));
    RETURN_NOT_OK(
        Prepare("INSERT OR REPLACE INTO participants (name, host, port, backend) "
                "VALUES (?1, ?2, ?3, ?4)",
                &put_participant_));
    return Prepare(kSelectParticipants, &select_participants_);
  }();
  if (!prepared.ok()) return Status::Corruption("unexpected schema: " + prepared.message());
  return Status::Ok();
}

Status SqliteJournal::SetDurabilityPragmas() {
  // WAL + synchronous=FULL: COMMIT fsyncs the WAL once, which is what makes a
  // batch durable and what group commit amortizes. Verified, not assumed.
  RETURN_NOT_OK(Exec("PRAGMA journal_mode = WAL", "set journal_mode"));
  RETURN_NOT_OK(Exec("PRAGMA synchronous = FULL", "set synchronous"));
  ASSIGN_OR_RETURN(std::string mode, QueryText("PRAGMA journal_mode"));
  if (mode != "wal") {
    return Status::FailedPrecondition("SQLite refused WAL mode (journal_mode is '" + mode + "')");
  }
  ASSIGN_OR_RETURN(int64_t sync, QueryInt("PRAGMA synchronous"));
  if (sync != 2) {
    return Status::FailedPrecondition("SQLite refused synchronous=FULL (got " +
                                      std::to_string(sync) + ")");
  }
  return Status::Ok();
}

Status SqliteJournal::LoadOrCreateSchema() {
  Stmt tables;
  RETURN_NOT_OK(
      Prepare("SELECT name FROM sqlite_master WHERE type = 'table' "
              "AND name NOT LIKE 'sqlite_%'",
              &tables));
  std::set<std::string> names;
  int rc;
  while ((rc = sqlite3_step(tables.get())) == SQLITE_ROW) names.insert(ColumnText(tables.get(), 0));
  if (rc != SQLITE_DONE) return Error(rc, "list tables");

  if (names.empty()) {
    return RunTransaction([&]() -> Status {
      RETURN_NOT_OK(Exec(kCreateJournalTables, "create tables"));
      RETURN_NOT_OK(Exec(kCreateAbortedDecisions, "create tables"));
      Stmt insert;
      RETURN_NOT_OK(
          Prepare("INSERT INTO meta (id, schema_version, coordinator_name, epoch) "
                  "VALUES (1, ?1, ?2, 0)",
                  &insert));
      sqlite3_bind_int64(insert.get(), 1, kJournalSchemaVersion);
      BindText(insert.get(), 2, options_.coordinator_name);
      return StepDone(insert.get(), "write meta");
    });
  }
  for (const char* table : {"meta", "participants", "commit_records", "heuristics"}) {
    if (names.count(table) == 0) {
      return Status::Corruption(std::string("table '") + table +
                                "' is missing; this is not a Pact journal");
    }
  }
  Stmt meta;
  RETURN_NOT_OK(Prepare("SELECT schema_version, coordinator_name FROM meta WHERE id = 1", &meta));
  rc = sqlite3_step(meta.get());
  if (rc == SQLITE_DONE) return Status::Corruption("the meta row is missing");
  if (rc != SQLITE_ROW) return Error(rc, "read meta");
  int64_t version = sqlite3_column_int64(meta.get(), 0);
  std::string owner = ColumnText(meta.get(), 1);
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
    meta.reset();
    return RunTransaction([&]() -> Status {
      RETURN_NOT_OK(Exec(kCreateAbortedDecisions, "upgrade to schema 2"));
      return Exec("UPDATE meta SET schema_version = 2 WHERE id = 1", "upgrade to schema 2");
    });
  }
  if (names.count("aborted_decisions") == 0) {
    return Status::Corruption("table 'aborted_decisions' is missing; this is not a Pact journal");
  }
  return Status::Ok();
}

Status SqliteJournal::Error(int rc, const std::string& what) {
  std::string message = what + ": " + (db_ ? sqlite3_errmsg(db_.get()) : sqlite3_errstr(rc));
  switch (rc & 0xff) {
    case SQLITE_FULL:
    case SQLITE_IOERR:
    case SQLITE_CANTOPEN:
    case SQLITE_READONLY:
    case SQLITE_PERM:
      return Status::IoError(message);
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
      return Status::Corruption(message);
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      return Status::Busy(message);
    default:
      return Status::Internal(message);
  }
}

Status SqliteJournal::Prepare(const char* sql, Stmt* stmt) {
  sqlite3_stmt* raw = nullptr;
  int rc = sqlite3_prepare_v3(db_.get(), sql, -1, SQLITE_PREPARE_PERSISTENT, &raw, nullptr);
  stmt->reset(raw);
  if (rc != SQLITE_OK) return Error(rc, std::string("prepare '") + sql + "'");
  return Status::Ok();
}

Status SqliteJournal::Exec(const char* sql, const char* what) {
  int rc = sqlite3_exec(db_.get(), sql, nullptr, nullptr, nullptr);
  return rc == SQLITE_OK ? Status::Ok() : Error(rc, what);
}

Status SqliteJournal::StepDone(sqlite3_stmt* stmt, const char* what) {
  ResetOnExit reset(stmt);
  int rc = sqlite3_step(stmt);
  return rc == SQLITE_DONE ? Status::Ok() : Error(rc, what);
}

Result<int64_t> SqliteJournal::QueryInt(const char* sql) {
  Stmt stmt;
  RETURN_NOT_OK(Prepare(sql, &stmt));
  int rc = sqlite3_step(stmt.get());
  if (rc != SQLITE_ROW) return Error(rc, sql);
  return static_cast<int64_t>(sqlite3_column_int64(stmt.get(), 0));
}

Result<std::string> SqliteJournal::QueryText(const char* sql) {
  Stmt stmt;
  RETURN_NOT_OK(Prepare(sql, &stmt));
  int rc = sqlite3_step(stmt.get());
  if (rc != SQLITE_ROW) return Error(rc, sql);
  return ColumnText(stmt.get(), 0);
}

Status SqliteJournal::RunTransaction(const std::function<Status()>& body) {
  RETURN_NOT_OK(StepDone(begin_.get(), "begin"));
  Status status = body();
  if (status.ok()) {
    status = StepDone(commit_.get(), "commit");
    if (!status.ok()) {
      // At the commit point the pages are being written and synced: a
      // failure here (an fsync error, say) may still leave the transaction
      // on disk, to be replayed after a crash.
      status = Status::Unavailable("the transaction may or may not be durable: " +
                                   status.message());
    }
  }
  // SQLite may already have rolled back (e.g. after an I/O error).
  if (!status.ok() && !sqlite3_get_autocommit(db_.get())) {
    Status rolled_back = StepDone(rollback_.get(), "rollback");
    LOG_IF(ERROR, !rolled_back.ok()) << "journal " << path_ << ": " << rolled_back.ToString();
  }
  return status;
}

Result<int64_t> SqliteJournal::RaiseEpoch() {
  std::lock_guard<std::mutex> db_lock(db_mu_);
  int64_t epoch = 0;
  RETURN_NOT_OK(RunTransaction([&]() -> Status {
    RETURN_NOT_OK(StepDone(raise_epoch_.get(), "raise epoch"));
    if (sqlite3_changes(db_.get()) != 1) return Status::Corruption("the meta row is missing");
    ResetOnExit reset(read_epoch_.get());
    int rc = sqlite3_step(read_epoch_.get());
    if (rc != SQLITE_ROW) return Error(rc, "read epoch");
    epoch = sqlite3_column_int64(read_epoch_.get(), 0);
    return Status::Ok();
  }));
  return epoch;
}

Status SqliteJournal::LogCommit(const CommitRecord& record) {
  if (record.txn_id.empty()) return Status::InvalidArgument("COMMIT record without txn_id");
  for (const std::string& branch : record.branches) {
    if (!IsValidName(branch)) {
      return Status::InvalidArgument("bad branch participant name '" + branch + "' in " +
                                     record.txn_id);
    }
  }
  PendingCommit pending{&record, Status::Ok(), false};
  std::unique_lock<std::mutex> lock(mu_);
  commits_.push_back(&pending);
  writer_cv_.notify_one();
  done_cv_.wait(lock, [&] { return pending.done; });
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
    // Everything queued now forms the batch; what arrives while it is being
    // fsynced waits for the next one. No timer: a lone decision goes at once.
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
    }
    if (!batch.empty()) done_cv_.notify_all();
  }
}

Status SqliteJournal::WriteBatch(const std::vector<PendingCommit*>& commits,
                                 const std::vector<std::string>& ends) {
  std::lock_guard<std::mutex> db_lock(db_mu_);
  return RunTransaction([&]() -> Status {
    for (const PendingCommit* pending : commits) {
      const CommitRecord& record = *pending->record;
      BindText(insert_commit_.get(), 1, record.txn_id);
      BindText(insert_commit_.get(), 2, JoinBranches(record.branches));
      sqlite3_bind_int64(insert_commit_.get(), 3,
                         record.decided_at_ms != 0 ? record.decided_at_ms : WallMillis());
      RETURN_NOT_OK(StepDone(insert_commit_.get(), "insert COMMIT record"));
    }
    for (const std::string& txn_id : ends) {
      BindText(delete_commit_.get(), 1, txn_id);
      RETURN_NOT_OK(StepDone(delete_commit_.get(), "delete ended COMMIT record"));
    }
    if (options_.before_batch_commit) options_.before_batch_commit(commits.size());
    if (options_.inject_batch_error) RETURN_NOT_OK(options_.inject_batch_error());
    return Status::Ok();
  });
}

Result<std::vector<CommitRecord>> SqliteJournal::LoadUnfinished() {
  // Same connection as the writer: every LogCommit that returned OK is visible.
  std::lock_guard<std::mutex> db_lock(db_mu_);
  sqlite3_stmt* stmt = select_commits_.get();
  ResetOnExit reset(stmt);
  std::vector<CommitRecord> records;
  int rc;
  while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
    CommitRecord record;
    record.txn_id = ColumnText(stmt, 0);
    record.branches = SplitBranches(ColumnText(stmt, 1));
    record.decided_at_ms = sqlite3_column_int64(stmt, 2);
    records.push_back(std::move(record));
  }
  if (rc != SQLITE_DONE) return Error(rc, "load COMMIT records");
  return records;
}

Status SqliteJournal::LogAbort(const std::string& txn_id) {
  std::lock_guard<std::mutex> db_lock(db_mu_);
  return RunTransaction([&]() -> Status {
    BindText(delete_commit_.get(), 1, txn_id);
    RETURN_NOT_OK(StepDone(delete_commit_.get(), "delete overruled COMMIT record"));
    Stmt insert;
    RETURN_NOT_OK(Prepare(
        "INSERT OR REPLACE INTO aborted_decisions (txn_id, at_ms) VALUES (?1, ?2)", &insert));
    BindText(insert.get(), 1, txn_id);
    sqlite3_bind_int64(insert.get(), 2, WallMillis());
    return StepDone(insert.get(), "insert abort record");
  });
}

Status SqliteJournal::PutParticipant(const ParticipantRecord& participant) {
  if (!IsValidName(participant.name)) {
    return Status::InvalidArgument("participant name must match [A-Za-z0-9_-]{1,64}, got '" +
                                   participant.name + "'");
  }
  std::lock_guard<std::mutex> db_lock(db_mu_);
  sqlite3_stmt* stmt = put_participant_.get();
  BindText(stmt, 1, participant.name);
  BindText(stmt, 2, participant.host);
  sqlite3_bind_int(stmt, 3, participant.port);
  BindText(stmt, 4, participant.backend);
  // One statement in autocommit mode is its own durable transaction.
  return StepDone(stmt, "put participant");
}

Result<std::vector<ParticipantRecord>> SqliteJournal::LoadParticipants() {
  std::lock_guard<std::mutex> db_lock(db_mu_);
  sqlite3_stmt* stmt = select_participants_.get();
  ResetOnExit reset(stmt);
  std::vector<ParticipantRecord> participants;
  int rc;
  while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
    ParticipantRecord p;
    p.name = ColumnText(stmt, 0);
    p.host = ColumnText(stmt, 1);
    p.port = sqlite3_column_int(stmt, 2);
    p.backend = ColumnText(stmt, 3);
    participants.push_back(std::move(p));
  }
  if (rc != SQLITE_DONE) return Error(rc, "load participants");
  return participants;
}

Status SqliteJournal::DeleteParticipant(const std::string& name) {
  std::lock_guard<std::mutex> db_lock(db_mu_);
  Stmt stmt;
  RETURN_NOT_OK(Prepare("DELETE FROM participants WHERE name = ?1", &stmt));
  BindText(stmt.get(), 1, name);
  return StepDone(stmt.get(), "delete participant");
}

Status SqliteJournal::PutHeuristic(const HeuristicRecord& h) {
  std::lock_guard<std::mutex> db_lock(db_mu_);
  Stmt stmt;
  RETURN_NOT_OK(Prepare("INSERT OR REPLACE INTO heuristics "
                        "(txn_id, participant, committed, decision, at_ms) "
                        "VALUES (?1, ?2, ?3, ?4, ?5)",
                        &stmt));
  BindText(stmt.get(), 1, h.txn_id);
  BindText(stmt.get(), 2, h.participant);
  sqlite3_bind_int(stmt.get(), 3, h.committed ? 1 : 0);
  BindText(stmt.get(), 4, h.decision);
  sqlite3_bind_int64(stmt.get(), 5, h.at_ms);
  return StepDone(stmt.get(), "put heuristic");
}

Result<std::vector<HeuristicRecord>> SqliteJournal::LoadHeuristics() {
  std::lock_guard<std::mutex> db_lock(db_mu_);
  Stmt stmt;
  RETURN_NOT_OK(Prepare(kSelectHeuristics, &stmt));
  std::vector<HeuristicRecord> out;
  int rc;
  while ((rc = sqlite3_step(stmt.get())) == SQLITE_ROW) {
    HeuristicRecord h;
    h.txn_id = ColumnText(stmt.get(), 0);
    h.participant = ColumnText(stmt.get(), 1);
    h.committed = sqlite3_column_int(stmt.get(), 2) != 0;
    h.decision = ColumnText(stmt.get(), 3);
    h.at_ms = sqlite3_column_int64(stmt.get(), 4);
    out.push_back(std::move(h));
  }
  if (rc != SQLITE_DONE) return Error(rc, "load heuristics");
  return out;
}

Status SqliteJournal::ForgetHeuristics(const std::string& txn_id) {
  std::lock_guard<std::mutex> db_lock(db_mu_);
  Stmt stmt;
  RETURN_NOT_OK(Prepare("DELETE FROM heuristics WHERE txn_id = ?1", &stmt));
  BindText(stmt.get(), 1, txn_id);
  RETURN_NOT_OK(StepDone(stmt.get(), "forget heuristics"));
  if (sqlite3_changes(db_.get()) == 0) {
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
  return QueryInt("PRAGMA synchronous");
}

Result<std::string> SqliteJournal::ReadPragmaJournalMode() {
  std::lock_guard<std::mutex> db_lock(db_mu_);
  return QueryText("PRAGMA journal_mode");
}

size_t SqliteJournal::QueuedCommitsForTesting() {
  std::lock_guard<std::mutex> lock(mu_);
  return commits_.size();
}

}  // namespace pact
