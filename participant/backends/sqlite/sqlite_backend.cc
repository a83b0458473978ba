#include "participant/backends/sqlite/sqlite_backend.h"

// Debian's libsqlite3 is built with both; the header hides the declarations
// unless asked.
#define SQLITE_ENABLE_SESSION
#define SQLITE_ENABLE_PREUPDATE_HOOK
#include <fcntl.h>
#include <glog/logging.h>
#include <sqlite3.h>
#include <strings.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <cstring>
#include <mutex>
#include <set>
#include <string_view>
#include <utility>

#include "common/clock.h"
#include "participant/backends/branch_state_machine.h"
#include "sqlite/sqlite.h"

namespace pact {
namespace {

// Old markers are pruned inside every Nth commit, which holds the write lock
// anyway, so the marker table stays bounded without a thread of its own.
constexpr uint64_t kPruneEveryCommits = 1000;

struct SessionDeleter {
  void operator()(sqlite3_session* session) const { sqlite3session_delete(session); }
};
struct SqliteFree {
  void operator()(void* p) const { sqlite3_free(p); }
};
using SessionPtr = std::unique_ptr<sqlite3_session, SessionDeleter>;

Status Exec(SqliteConnection* db, const char* sql) { return db->Exec(sql).WithContext(sql); }

// Binds, steps to the end and collects the rows.
Result<QueryResult> RunStatement(SqliteConnection* db, SqliteStatement* stmt,
                                 const std::vector<SqlValue>& params, const std::string& context) {
  RETURN_NOT_OK(stmt->BindAll(params));
  QueryResult result;
  const int columns = stmt->ColumnCount();
  for (int i = 0; i < columns; ++i) result.columns.push_back(stmt->ColumnName(i));
  const int64_t changes_before = db->TotalChanges();
  RETURN_NOT_OK(stmt->Run([&](const SqliteStatement& row) {
                      std::vector<SqlValue>& values = result.rows.emplace_back();
                      values.reserve(columns);
                      for (int i = 0; i < columns; ++i) values.push_back(row.Value(i));
                    })
                    .WithContext(context));
  // sqlite3_changes keeps the count of the last INSERT/UPDATE/DELETE, so a read
  // or a schema change would report a stale number without this check.
  if (db->TotalChanges() != changes_before) result.affected_rows = db->Changes();
  return result;
}

// Runs one trusted statement of Pact's own.
Result<QueryResult> Query(SqliteConnection* db, const std::string& sql,
                          const std::vector<SqlValue>& params = {}) {
  Result<SqliteStatement> stmt = db->Prepare(sql);
  if (!stmt.ok()) return stmt.status().WithContext(sql);
  return RunStatement(db, &*stmt, params, sql);
}

Result<SqliteConnection> OpenDb(const std::string& path, int busy_timeout_ms) {
  Result<SqliteConnection> db =
      SqliteConnection::Open(path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
  if (!db.ok()) return db.status().WithContext("cannot open " + path);
  db->SetBusyTimeout(busy_timeout_ms);
  // synchronous is per connection, and a commit is only as durable as the
  // connection that made it.
  RETURN_NOT_OK(Exec(&*db, "PRAGMA synchronous=FULL"));
  // Foreign keys are what users of a database expect enforced; deferred ones
  // are checked at prepare (see WhyNotDurable).
  RETURN_NOT_OK(Exec(&*db, "PRAGMA foreign_keys=ON"));
  return db;
}

// WAL lets readers see the last committed state while a branch holds the
// write transaction open, which is what keeps prepared changes invisible.
Status UseWal(SqliteConnection* db, const std::string& path) {
  ASSIGN_OR_RETURN(QueryResult result, Query(db, "PRAGMA journal_mode=WAL"));
  const std::string* mode =
      result.rows.empty() ? nullptr : std::get_if<std::string>(&result.rows[0].at(0));
  if (mode == nullptr || *mode != "wal") {
    return Status::FailedPrecondition(path + " cannot use WAL journal mode");
  }
  return Status::Ok();
}

struct StoredBranch {
  std::string txn_id;
  std::string changeset;
  int64_t prepared_at_ms = 0;
};

// What sqlite3changeset_apply found wrong while re-applying a changeset.
struct ApplyCheck {
  sqlite3* db;
  std::string problem;
};

int ApplyFilter(void* context, const char* table) {
  auto* check = static_cast<ApplyCheck*>(context);
  // A missing table is skipped silently by sqlite3changeset_apply.
  if (sqlite3_table_column_metadata(check->db, "main", table, nullptr, nullptr, nullptr, nullptr,
                                    nullptr, nullptr) != SQLITE_OK) {
    check->problem = "table " + std::string(table) + " is gone";
    return 0;
  }
  return 1;
}

int ApplyConflict(void* context, int conflict, sqlite3_changeset_iter* it) {
  auto* check = static_cast<ApplyCheck*>(context);
  const char* table = "?";
  int columns, op, indirect;
  if (conflict != SQLITE_CHANGESET_FOREIGN_KEY) {  // the iterator is not valid then
    sqlite3changeset_op(it, &table, &columns, &op, &indirect);
  }
  const char* what = conflict == SQLITE_CHANGESET_DATA       ? "a row was changed"
                     : conflict == SQLITE_CHANGESET_NOTFOUND ? "a row is missing"
                     : conflict == SQLITE_CHANGESET_CONFLICT ? "a row already exists"
                                                             : "a constraint fails";
  check->problem = std::string(what) + " in table " + table;
  return SQLITE_CHANGESET_ABORT;
}

// SQLite's write lock, handed to branches in the order they ask. SQLite's
// own busy handler sleeps in growing steps (up to 100 ms) while it waits, so
// behind a few busy branches a waiter often sleeps long after the lock was
// freed: that was most of the p99 at 16 clients. One backend owns the file
// (flock), so a queue in this process hands the lock over the moment it is
// released, first come first served.
class WriteTurns {
 public:
  // Waits up to timeout_ms for the turn; false when it timed out.
  bool Take(int timeout_ms) {
    std::unique_lock<std::mutex> lock(mu_);
    if (!held_ && waiting_.empty()) {
      held_ = true;
      return true;
    }
    Waiter me;
    waiting_.push_back(&me);
    const bool got = me.woken.wait_for(lock, std::chrono::milliseconds(timeout_ms),
                                       [&] { return me.granted; });
    if (!got) waiting_.erase(std::find(waiting_.begin(), waiting_.end(), &me));
    return got;
  }

  // Hands the turn to the longest waiter, waking only that one.
  void Release() {
    std::lock_guard<std::mutex> lock(mu_);
    if (waiting_.empty()) {
      held_ = false;
      return;
    }
    Waiter* next = waiting_.front();
    waiting_.pop_front();
    next->granted = true;
    next->woken.notify_one();
  }

 private:
  struct Waiter {
    std::condition_variable woken;
    bool granted = false;  // guarded by mu_
  };
  std::mutex mu_;
  bool held_ = false;             // guarded by mu_
  std::deque<Waiter*> waiting_;   // guarded by mu_; in arrival order
};

}  // namespace

struct SqliteBackend::Shared {
  SqliteBackendOptions options;
  int lock_fd = -1;  // flock'ed: one backend per database
  std::atomic<uint64_t> commits{0};

  std::mutex db_mu;
  SqliteConnection db;  // guarded by db_mu: schema setup, IsCommitted, pruning at start

  std::mutex store_mu;
  SqliteConnection store;  // guarded by store_mu: the prepared store

  WriteTurns write_turns;  // whose BEGIN IMMEDIATE goes next

  ~Shared() {
    store = SqliteConnection();
    db = SqliteConnection();
    if (lock_fd >= 0) close(lock_fd);  // only after the connections are closed
  }

  // A branch's own connection, on which it holds the write transaction.
  Result<SqliteConnection> OpenBranchDb() const {
    return OpenDb(options.db_path, options.busy_timeout_ms);
  }

  // One autocommit statement: durable (synchronous=FULL) when it returns.
  Status PutPrepared(const std::string& txn_id, const std::string& changeset) {
    std::lock_guard<std::mutex> lock(store_mu);
    return Query(&store,
                 "INSERT OR REPLACE INTO pact_prepared_branches(txn_id, changeset, prepared_at_ms)"
                 " VALUES(?1, ?2, ?3)",
                 {txn_id, Blob{changeset}, WallMillis()})
        .status();
  }

  Status DeletePrepared(const std::string& txn_id) {
    std::lock_guard<std::mutex> lock(store_mu);
    return Query(&store, "DELETE FROM pact_prepared_branches WHERE txn_id = ?1", {txn_id})
        .status();
  }

  Result<int64_t> CountPreparedExcept(const std::string& txn_id) {
    std::lock_guard<std::mutex> lock(store_mu);
    return store.QueryInt("SELECT count(*) FROM pact_prepared_branches WHERE txn_id <> ?1",
                          {txn_id});
  }

  Result<std::vector<StoredBranch>> ListPrepared() {
    std::lock_guard<std::mutex> lock(store_mu);
    ASSIGN_OR_RETURN(QueryResult result,
                     Query(&store,
                           "SELECT txn_id, changeset, prepared_at_ms FROM pact_prepared_branches"
                           " ORDER BY prepared_at_ms"));
    std::vector<StoredBranch> branches;
    for (const std::vector<SqlValue>& row : result.rows) {
      const auto* txn_id = std::get_if<std::string>(&row[0]);
      const auto* changeset = std::get_if<Blob>(&row[1]);
      const auto* prepared_at_ms = std::get_if<int64_t>(&row[2]);
      if (txn_id == nullptr || changeset == nullptr || prepared_at_ms == nullptr) {
        return Status::Corruption(options.prepared_store_path + " holds a row Pact did not write");
      }
      branches.push_back({*txn_id, changeset->bytes, *prepared_at_ms});
    }
    return branches;
  }
};

class SqliteBackend::SqliteBranch : public Branch {
 public:
  SqliteBranch(std::shared_ptr<Shared> shared, std::string txn_id, SqliteConnection db)
      : shared_(std::move(shared)),
        txn_id_(std::move(txn_id)),
        db_(std::move(db)),
        state_(State::kActive, kMoves, &StateName, txn_id_) {}

  ~SqliteBranch() override {
    if (state_.Is(State::kPrepared)) {
      LOG(ERROR) << "prepared branch " << txn_id_ << " dropped undecided; its changes stay in "
                 << shared_->options.prepared_store_path << " and are held again at restart";
    }
    session_.reset();
    db_ = SqliteConnection();  // rolls back whatever is open, before the turn goes
    ReleaseTurn();
  }

  // A new branch: takes the write lock and starts recording changes.
  Status Start() {
    sqlite3_set_authorizer(db_.get(), &Authorize, this);
    RETURN_NOT_OK(BeginImmediate());
    ASSIGN_OR_RETURN(schema_version_, db_.QueryInt("PRAGMA schema_version"));
    sqlite3_session* session = nullptr;
    int rc = sqlite3session_create(db_.get(), "main", &session);
    if (rc != SQLITE_OK) return db_.LastError(rc).WithContext("cannot create a session");
    session_.reset(session);
    sqlite3session_table_filter(session, &TrackTable, this);
    rc = sqlite3session_attach(session, nullptr);
    if (rc != SQLITE_OK) return db_.LastError(rc).WithContext("cannot attach the session");
    return Status::Ok();
  }

  // A branch found in the prepared store at start: holds its changes again.
  Status HoldPrepared(std::string changeset) {
    changeset_ = std::move(changeset);
    maybe_stored_ = true;
    RETURN_NOT_OK(Reapply());
    return MoveTo(State::kPrepared);
  }

  Result<QueryResult> Execute(const std::string& sql,
                              const std::vector<SqlValue>& params) override {
    RETURN_NOT_OK(state_.Require(State::kActive, "take more statements"));
    if (TransactionLost()) return LostStatus();
    Result<QueryResult> result = RunUserStatement(sql, params);
    if (!result.ok() && TransactionLost()) {
      return Status(result.status().code(),
                    result.status().message() + " (SQLite rolled back the whole branch)");
    }
    return result;
  }

  Result<Vote> Prepare(std::string* abort_reason) override {
    if (state_.Is(State::kPrepared)) return Vote::kCommit;
    RETURN_NOT_OK(state_.Require(State::kActive, "prepare"));
    std::string reason;
    if (TransactionLost()) {
      reason = LostStatus().message();
    } else {
      ASSIGN_OR_RETURN(reason, WhyNotDurable());
    }
    if (!reason.empty()) {
      RETURN_NOT_OK(MoveTo(State::kRolledBack));
      if (abort_reason != nullptr) *abort_reason = std::move(reason);
      return Vote::kAbort;
    }

    int size = 0;
    void* raw = nullptr;
    int rc = sqlite3session_changeset(session_.get(), &size, &raw);
    std::unique_ptr<void, SqliteFree> buffer(raw);
    if (rc != SQLITE_OK) return db_.LastError(rc).WithContext("cannot take the changeset");
    if (size == 0) {
      RETURN_NOT_OK(MoveTo(State::kRolledBack));  // read-only: the next branch may have the lock
      return Vote::kReadOnly;
    }
    changeset_.assign(static_cast<const char*>(raw), size);
    // The row may be written even when the call fails; Rollback removes it.
    // Until then the branch keeps the lock, so no other branch can prepare.
    maybe_stored_ = true;
    RETURN_NOT_OK(shared_->PutPrepared(txn_id_, changeset_)
                      .WithContext("cannot make branch " + txn_id_ + " durable as prepared"));
    RETURN_NOT_OK(MoveTo(State::kPrepared));
    return Vote::kCommit;
  }

  Status CommitOnePhase() override {
    if (state_.Is(State::kCommitted)) return Status::Ok();
    RETURN_NOT_OK(state_.Require(State::kActive, "commit in one phase"));
    Status status = TransactionLost() ? LostStatus() : CommitTransaction();
    if (!status.ok()) {
      RETURN_NOT_OK(MoveTo(State::kRolledBack));
      return status.WithContext("branch " + txn_id_ + " rolled back");
    }
    return MoveTo(State::kCommitted);
  }

  Status CommitPrepared() override {
    if (state_.Is(State::kCommitted)) return Status::Ok();
    RETURN_NOT_OK(state_.Require(State::kPrepared, "commit as prepared"));
    bool committed = false;
    if (TransactionLost()) {  // an earlier attempt failed
      ASSIGN_OR_RETURN(committed, CommittedOrHeldAgain());
    }
    if (!committed) {
      Status status = CommitTransaction();
      if (!status.ok() && TransactionLost()) {
        Result<bool> result = CommittedOrHeldAgain();
        if (!result.ok()) LOG(ERROR) << result.status().ToString();
        committed = result.ok() && *result;
      }
      if (!status.ok() && !committed) return status.WithContext("commit of branch " + txn_id_);
    }
    RETURN_NOT_OK(MoveTo(State::kCommitted));
    maybe_stored_ = false;
    // The marker already says committed, and restart forgets a store row
    // whose marker exists, so a failure here loses nothing.
    Status deleted = shared_->DeletePrepared(txn_id_);
    if (!deleted.ok()) LOG(WARNING) << "committed " << txn_id_ << ": " << deleted.ToString();
    return Status::Ok();
  }

  Status Rollback() override {
    if (state_.Is(State::kRolledBack)) return Status::Ok();
    if (state_.Is(State::kCommitted)) {
      return Status::FailedPrecondition("branch " + txn_id_ + " already committed");
    }
    // Store row first: once it is gone a crash rolls the open transaction back
    // anyway, while the other order could revive a rolled-back branch.
    if (maybe_stored_) {
      RETURN_NOT_OK(shared_->DeletePrepared(txn_id_).WithContext("rollback of branch " + txn_id_));
      maybe_stored_ = false;
    }
    return MoveTo(State::kRolledBack);
  }

 private:
  // A branch's life. Each state names the durable record that backs it; a
  // move is made only once that record is written (persist, then publish).
  enum class State {
    // The write transaction is open and the session records the changes.
    // Nothing durable: a crash rolls it back, which presumed abort expects.
    kActive,
    // The changeset is a pact_prepared_branches row in the prepared store
    // and the write transaction is held open; a restart re-applies the row
    // and holds it again.
    kPrepared,
    // The changes and the branch's pact_committed_branches marker committed
    // in one transaction; the connection is closed. A store row left behind
    // is forgotten at restart because the marker exists.
    kCommitted,
    // The transaction rolled back and no pact_prepared_branches row is left
    // (Rollback deletes it first); the connection is closed. Also after a
    // read-only or abort vote and a failed one-phase commit.
    kRolledBack,
  };

  // Every move a branch may make; MoveTo refuses the rest.
  static constexpr StateMove<State> kMoves[] = {
      {State::kActive, State::kPrepared},      // Prepare voted COMMIT, or held again at restart
      {State::kActive, State::kCommitted},     // CommitOnePhase
      {State::kActive, State::kRolledBack},    // Rollback, an abort or read-only vote, a failed
                                               // one-phase commit
      {State::kPrepared, State::kCommitted},   // CommitPrepared
      {State::kPrepared, State::kRolledBack},  // Rollback
  };

  static const char* StateName(State state) {
    switch (state) {
      case State::kActive:
        return "active";
      case State::kPrepared:
        return "prepared";
      case State::kCommitted:
        return "committed";
      case State::kRolledBack:
        return "rolled back";
    }
    return "?";
  }

  // The only writer of state_; idempotent when already there. Entering
  // kPrepared stops the session; entering an end state rolls back whatever
  // is still open (closing the connection would too) and closes the
  // connection, so the write lock goes to the next branch.
  // REQUIRES: the record backing `next` (see State) is durable.
  Status MoveTo(State next) {
    if (state_.Is(next)) return Status::Ok();
    RETURN_NOT_OK(state_.MoveTo(next));
    session_.reset();
    if (next != State::kPrepared) {
      RollbackOpenTransaction();
      db_ = SqliteConnection();
      ReleaseTurn();
    }
    return Status::Ok();
  }

  void ReleaseTurn() {
    if (!has_turn_) return;
    has_turn_ = false;
    shared_->write_turns.Release();
  }

  // Polices the caller's SQL only; Pact's own statements pass.
  static int Authorize(void* self, int action, const char* arg1, const char*, const char*,
                       const char*) {
    auto* branch = static_cast<SqliteBranch*>(self);
    if (!branch->user_statement_) return SQLITE_OK;
    switch (action) {
      case SQLITE_TRANSACTION:
      case SQLITE_SAVEPOINT:
      case SQLITE_ATTACH:
      case SQLITE_DETACH:
        branch->denied_ = "transaction control is Pact's job";
        return SQLITE_DENY;
      case SQLITE_INSERT:
      case SQLITE_UPDATE:
      case SQLITE_DELETE:
      case SQLITE_DROP_TABLE:
        if (arg1 != nullptr && strcasecmp(arg1, kMarkerTable) == 0) {
          branch->denied_ = std::string(kMarkerTable) + " belongs to Pact";
          return SQLITE_DENY;
        }
        return SQLITE_OK;
      default:
        return SQLITE_OK;
    }
  }

  // The session asks once per table on its first change: the list of tables
  // to check for a primary key at Prepare.
  static int TrackTable(void* self, const char* table) {
    if (strcasecmp(table, kMarkerTable) == 0) return 0;  // part of the commit, not the changes
    static_cast<SqliteBranch*>(self)->tables_.insert(table);
    return 1;
  }

  Result<QueryResult> RunUserStatement(const std::string& sql,
                                       const std::vector<SqlValue>& params) {
    struct Policing {  // the authorizer also runs when a step re-prepares
      explicit Policing(SqliteBranch* b) : branch(b) {
        branch->user_statement_ = true;
        branch->denied_.clear();
      }
      ~Policing() { branch->user_statement_ = false; }
      SqliteBranch* branch;
    } policing(this);

    std::string_view rest;
    Result<SqliteStatement> stmt = db_.Prepare(sql, 0, &rest);
    if (!stmt.ok()) {
      if (!denied_.empty()) return Status::InvalidArgument(denied_ + ": refused " + sql);
      return stmt.status().WithContext("cannot prepare");
    }
    if (stmt->empty()) return Status::InvalidArgument("no SQL statement in \"" + sql + "\"");
    if (!rest.empty()) {  // comments and whitespace compile to nothing
      Result<SqliteStatement> next = db_.Prepare(rest);
      if (!next.ok() || !next->empty()) {
        return Status::InvalidArgument("one statement per Execute; refused the rest: " +
                                       std::string(rest));
      }
    }
    return RunStatement(&db_, &*stmt, params, "execute");
  }

  // Takes the write lock, waiting for this branch's turn first. The turn is
  // the branch's until it ends (MoveTo an end state), also when SQLite drops
  // the transaction under it and it is taken back (CommittedOrHeldAgain).
  Status BeginImmediate() {
    auto busy = [this] {
      return Status::Busy("database is locked by another transaction (waited " +
                          std::to_string(shared_->options.busy_timeout_ms) + " ms for " +
                          shared_->options.db_path + ")");
    };
    if (!has_turn_) {
      if (!shared_->write_turns.Take(shared_->options.busy_timeout_ms)) return busy();
      has_turn_ = true;
    }
    Status status = db_.Exec("BEGIN IMMEDIATE");
    if (status.code() == StatusCode::kBusy) return busy();
    return status.WithContext("BEGIN IMMEDIATE");
  }

  // After a crash: the same changes in a new write transaction, or kCorruption
  // when they no longer apply cleanly.
  Status Reapply() {
    RETURN_NOT_OK(BeginImmediate());
    ApplyCheck check{db_.get(), ""};
    int rc = sqlite3changeset_apply(db_.get(), static_cast<int>(changeset_.size()),
                                    changeset_.data(), &ApplyFilter, &ApplyConflict, &check);
    if (rc == SQLITE_OK && check.problem.empty()) return Status::Ok();
    Status status = db_.LastError(rc).WithContext("cannot re-apply prepared branch " + txn_id_);
    if (!check.problem.empty()) {
      status =
          Status::Corruption("prepared branch " + txn_id_ + " no longer applies: " + check.problem +
                             "; the database was changed outside Pact");
    }
    RollbackOpenTransaction();
    return status;
  }

  // Empty when the branch can commit and its changes can be held prepared
  // across a crash, otherwise why not.
  Result<std::string> WhyNotDurable() {
    int deferred_violations = 0, unused = 0;
    sqlite3_db_status(db_.get(), SQLITE_DBSTATUS_DEFERRED_FKS, &deferred_violations, &unused, 0);
    if (deferred_violations > 0) {
      // COMMIT would fail: refuse now, while the vote can still say so.
      return std::string("a deferred FOREIGN KEY constraint failed");
    }
    ASSIGN_OR_RETURN(int64_t schema_version, db_.QueryInt("PRAGMA schema_version"));
    if (schema_version != schema_version_) {
      return std::string(
          "the branch changed the schema, which a changeset cannot carry across a crash; "
          "run schema changes in a transaction with a single participant");
    }
    for (const std::string& table : tables_) {
      if (table.rfind("sqlite_", 0) == 0) continue;  // sqlite_stat1 is recorded specially
      ASSIGN_OR_RETURN(
          int64_t key_columns,
          db_.QueryInt("SELECT count(*) FROM pragma_table_info(?1) WHERE pk > 0", {table}));
      if (key_columns == 0) {
        return "table " + table +
               " has no PRIMARY KEY; Pact's SQLite backend needs one to make prepared changes "
               "durable";
      }
    }
    return std::string();
  }

  // The marker and the changes commit together: after a crash the marker is
  // how restart tells a committed branch from one still prepared.
  Status CommitTransaction() {
    RETURN_NOT_OK(Query(&db_,
                        "INSERT OR REPLACE INTO pact_committed_branches(txn_id, committed_at_ms)"
                        " VALUES(?1, ?2)",
                        {txn_id_, WallMillis()})
                      .status());
    if (shared_->commits.fetch_add(1) % kPruneEveryCommits == kPruneEveryCommits - 1) {
      PruneMarkers();
    }
    return Exec(&db_, "COMMIT");
  }

  // A store row left by a failed cleanup still needs its marker, so prune
  // only when the store holds nothing else.
  void PruneMarkers() {
    Result<int64_t> others = shared_->CountPreparedExcept(txn_id_);
    if (!others.ok() || *others > 0) return;
    Status status =
        Query(&db_, "DELETE FROM pact_committed_branches WHERE committed_at_ms < ?1",
              {WallMillis() - shared_->options.commit_marker_retention_ms})
            .status();
    if (!status.ok()) LOG(WARNING) << "pruning commit markers: " << status.ToString();
  }

  // SQLite dropped the prepared transaction (a COMMIT failing on a full disk
  // or an I/O error does). The marker says whether the commit made it; if not,
  // the changes are taken back so the branch stays prepared.
  Result<bool> CommittedOrHeldAgain() {
    ASSIGN_OR_RETURN(
        QueryResult marker,
        Query(&db_, "SELECT 1 FROM pact_committed_branches WHERE txn_id = ?1", {txn_id_}));
    if (!marker.rows.empty()) return true;
    RETURN_NOT_OK(Reapply());
    return false;
  }

  bool TransactionLost() const { return db_.get() == nullptr || !db_.InTransaction(); }

  Status LostStatus() const {
    return Status::Aborted("SQLite rolled back branch " + txn_id_ + " after an earlier error");
  }

  void RollbackOpenTransaction() {
    if (TransactionLost()) return;
    Status status = Exec(&db_, "ROLLBACK");
    if (!status.ok()) LOG(WARNING) << txn_id_ << ": " << status.ToString();
  }

  const std::shared_ptr<Shared> shared_;
  const std::string txn_id_;
  SqliteConnection db_;
  SessionPtr session_;  // declared after db_: deleted before the connection closes
  BranchStateMachine<State> state_;
  bool user_statement_ = false;  // the authorizer polices only the caller's SQL
  std::string denied_;           // why the authorizer refused the caller's statement
  bool maybe_stored_ = false;    // a store row may exist, so Rollback must delete it
  bool has_turn_ = false;        // holds shared_->write_turns (see BeginImmediate)
  int64_t schema_version_ = 0;
  std::set<std::string> tables_;  // every table the session saw change
  std::string changeset_;         // once prepared, to hold the changes again
};

SqliteBackend::SqliteBackend(std::shared_ptr<Shared> shared) : shared_(std::move(shared)) {}

SqliteBackend::~SqliteBackend() = default;

Result<std::unique_ptr<SqliteBackend>> SqliteBackend::Open(const SqliteBackendOptions& options) {
  if (options.db_path.empty()) return Status::InvalidArgument("db_path is empty");
  auto shared = std::make_shared<Shared>();
  shared->options = options;
  if (shared->options.prepared_store_path.empty()) {
    shared->options.prepared_store_path = options.db_path + "-pact";
  }
  const SqliteBackendOptions& opts = shared->options;

  // Recovery assumes nobody else writes the database or the store.
  const std::string lock_path = opts.db_path + "-pact.lock";
  shared->lock_fd = open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (shared->lock_fd < 0) {
    return Status::IoError("cannot open " + lock_path + ": " + std::strerror(errno));
  }
  if (flock(shared->lock_fd, LOCK_EX | LOCK_NB) != 0) {
    if (errno == EWOULDBLOCK) {
      return Status::Busy(opts.db_path + " is already open in another Pact SQLite backend");
    }
    return Status::IoError("cannot lock " + lock_path + ": " + std::strerror(errno));
  }

  ASSIGN_OR_RETURN(shared->db, OpenDb(opts.db_path, opts.busy_timeout_ms));
  RETURN_NOT_OK(UseWal(&shared->db, opts.db_path));
  RETURN_NOT_OK(Exec(&shared->db,
                     "CREATE TABLE IF NOT EXISTS pact_committed_branches("
                     "txn_id TEXT PRIMARY KEY, committed_at_ms INTEGER NOT NULL)"));

  ASSIGN_OR_RETURN(shared->store, OpenDb(opts.prepared_store_path, opts.busy_timeout_ms));
  RETURN_NOT_OK(UseWal(&shared->store, opts.prepared_store_path));
  RETURN_NOT_OK(Exec(&shared->store,
                     "CREATE TABLE IF NOT EXISTS pact_prepared_branches("
                     "txn_id TEXT PRIMARY KEY, changeset BLOB NOT NULL,"
                     " prepared_at_ms INTEGER NOT NULL)"));
  return std::unique_ptr<SqliteBackend>(new SqliteBackend(std::move(shared)));
}

Result<std::unique_ptr<Branch>> SqliteBackend::Begin(const std::string& txn_id) {
  if (txn_id.empty()) return Status::InvalidArgument("empty transaction id");
  ASSIGN_OR_RETURN(SqliteConnection db, shared_->OpenBranchDb());
  auto branch = std::make_unique<SqliteBranch>(shared_, txn_id, std::move(db));
  RETURN_NOT_OK(branch->Start());
  return std::unique_ptr<Branch>(std::move(branch));
}

Result<std::vector<RecoveredBranch>> SqliteBackend::RecoverPrepared() {
  ASSIGN_OR_RETURN(std::vector<StoredBranch> stored, shared_->ListPrepared());
  std::vector<StoredBranch> undecided;
  for (StoredBranch& branch : stored) {
    ASSIGN_OR_RETURN(bool committed, IsCommitted(branch.txn_id));
    if (!committed) {
      undecided.push_back(std::move(branch));
      continue;
    }
    LOG(INFO) << "branch " << branch.txn_id << " committed before the restart; forgetting it";
    RETURN_NOT_OK(shared_->DeletePrepared(branch.txn_id));
  }
  // A branch leaves the store before it gives up the write lock, so only the
  // one holding the lock at the crash can be undecided.
  if (undecided.size() > 1) {
    return Status::Corruption(std::to_string(undecided.size()) + " undecided branches in " +
                              shared_->options.prepared_store_path +
                              "; at most one can exist, so the files were changed outside Pact");
  }
  {
    // Safe now: no store row left has a marker that recognises it.
    std::lock_guard<std::mutex> lock(shared_->db_mu);
    RETURN_NOT_OK(Query(&shared_->db,
                        "DELETE FROM pact_committed_branches WHERE committed_at_ms < ?1",
                        {WallMillis() - shared_->options.commit_marker_retention_ms})
                      .status());
  }
  std::vector<RecoveredBranch> recovered;
  for (StoredBranch& stored_branch : undecided) {
    ASSIGN_OR_RETURN(SqliteConnection db, shared_->OpenBranchDb());
    auto branch = std::make_unique<SqliteBranch>(shared_, stored_branch.txn_id, std::move(db));
    RETURN_NOT_OK(branch->HoldPrepared(std::move(stored_branch.changeset)));
    LOG(INFO) << "holding branch " << stored_branch.txn_id << " prepared again";
    recovered.push_back(
        RecoveredBranch{stored_branch.txn_id, stored_branch.prepared_at_ms, std::move(branch)});
  }
  return recovered;
}

Result<bool> SqliteBackend::IsCommitted(const std::string& txn_id) {
  std::lock_guard<std::mutex> lock(shared_->db_mu);
  ASSIGN_OR_RETURN(QueryResult marker,
                   Query(&shared_->db,
                         "SELECT 1 FROM pact_committed_branches WHERE txn_id = ?1", {txn_id}));
  return !marker.rows.empty();
}

}  // namespace pact
