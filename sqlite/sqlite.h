// A thin layer over the SQLite C API: a connection and a prepared statement
// that close themselves, binding of SqlValues, row iteration, and the one
// mapping from an SQLite result code to a Status. Everything else (sessions,
// authorizers, VFSes) stays the C API, reached through get().
//
// Error messages are SQLite's own; callers add what they were doing with
// Status::WithContext.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/sql_value.h"
#include "common/status.h"

struct sqlite3;
struct sqlite3_stmt;

namespace pact {

// BUSY/LOCKED -> kBusy (another connection holds the lock); FULL, IOERR,
// CANTOPEN, READONLY, PERM -> kIoError (local storage failed); CORRUPT,
// NOTADB -> kCorruption; ERROR, CONSTRAINT, MISMATCH, RANGE, TOOBIG, AUTH ->
// kInvalidArgument (the statement or its data was refused); anything else
// kInternal. Extended codes are reduced to their primary code first.
Status SqliteStatus(int rc, std::string message);

class SqliteStatement;
using SqliteRowFn = std::function<void(const SqliteStatement& row)>;

// One prepared statement; finalized when dropped. May be empty (SQL that
// compiles to nothing, such as a comment).
class SqliteStatement {
 public:
  SqliteStatement() = default;
  explicit SqliteStatement(sqlite3_stmt* stmt) : stmt_(stmt) {}

  sqlite3_stmt* get() const { return stmt_.get(); }
  bool empty() const { return stmt_ == nullptr; }

  // Binds parameter `index` (1-based). SQLite copies text and blobs, so the
  // value need not outlive the call.
  Status Bind(int index, const SqlValue& value);
  // Binds params[i] to parameter i+1; kInvalidArgument unless the statement
  // takes exactly params.size() parameters.
  Status BindAll(const std::vector<SqlValue>& params);

  // Steps to the end, calling `on_row` for every row, then resets the
  // statement and clears its bindings (also on error), so a statement kept
  // for reuse is ready for the next caller.
  Status Run(const SqliteRowFn& on_row = nullptr);

  // Column accessors, valid inside `on_row`. Text of a NULL is "".
  int ColumnCount() const;
  std::string ColumnName(int column) const;
  bool IsNull(int column) const;
  int64_t Int64(int column) const;
  std::string Text(int column) const;
  SqlValue Value(int column) const;  // by the column's SQLite type

 private:
  struct Finalize {
    void operator()(sqlite3_stmt* stmt) const;
  };
  std::unique_ptr<sqlite3_stmt, Finalize> stmt_;
};

// One connection with extended result codes; closed when dropped (once its
// statements are finalized too).
class SqliteConnection {
 public:
  SqliteConnection() = default;

  // `flags` are SQLITE_OPEN_*; an empty `vfs` is the default one.
  static Result<SqliteConnection> Open(const std::string& path, int flags,
                                       const std::string& vfs = "");

  sqlite3* get() const { return db_.get(); }

  void SetBusyTimeout(int ms);

  // Prepares the first statement of `sql`; `rest`, when given, receives what
  // follows it. `prepare_flags` are SQLITE_PREPARE_* (PERSISTENT for a
  // statement kept for the connection's lifetime).
  Result<SqliteStatement> Prepare(std::string_view sql, unsigned prepare_flags = 0,
                                  std::string_view* rest = nullptr);

  // Prepares `sql` (one statement), binds `params` and runs it.
  Status Run(std::string_view sql, const std::vector<SqlValue>& params = {},
             const SqliteRowFn& on_row = nullptr);

  // Runs every statement of `script` in turn, with `on_row` for their rows;
  // stops at the first error.
  Status Exec(std::string_view script, const SqliteRowFn& on_row = nullptr);

  // The first column of the first row of `sql`: kNotFound when there is no
  // row, kInternal when the value is not of the type asked for.
  Result<int64_t> QueryInt(std::string_view sql, const std::vector<SqlValue>& params = {});
  Result<std::string> QueryText(std::string_view sql, const std::vector<SqlValue>& params = {});

  // This connection's last error as a Status.
  Status LastError(int rc) const;

  // False in autocommit mode: no transaction open (SQLite may have rolled one
  // back by itself after an I/O error or a full disk).
  bool InTransaction() const;
  // Rows changed by the last INSERT/UPDATE/DELETE, and by all of them so far.
  int64_t Changes() const;
  int64_t TotalChanges() const;

 private:
  Result<SqlValue> FirstValue(std::string_view sql, const std::vector<SqlValue>& params);

  struct Close {
    void operator()(sqlite3* db) const;
  };
  std::unique_ptr<sqlite3, Close> db_;
};

}  // namespace pact
