#include "sqlite/sqlite.h"

#include <sqlite3.h>

#include <optional>
#include <utility>

namespace pact {

Status SqliteStatus(int rc, std::string message) {
  switch (rc & 0xff) {
    case SQLITE_OK:
    case SQLITE_ROW:
    case SQLITE_DONE:
      return Status::Ok();
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      return Status::Busy(std::move(message));
    case SQLITE_FULL:
    case SQLITE_IOERR:
    case SQLITE_CANTOPEN:
    case SQLITE_READONLY:
    case SQLITE_PERM:
      return Status::IoError(std::move(message));
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
      return Status::Corruption(std::move(message));
    case SQLITE_ERROR:
    case SQLITE_CONSTRAINT:
    case SQLITE_MISMATCH:
    case SQLITE_RANGE:
    case SQLITE_TOOBIG:
    case SQLITE_AUTH:
      return Status::InvalidArgument(std::move(message));
    default:
      return Status::Internal(std::move(message));
  }
}

namespace {

// SQLite's message for `rc` on `db`; the generic text when there is no
// connection to ask (an open that failed before allocating one).
Status StatusOf(sqlite3* db, int rc) {
  return SqliteStatus(rc, db != nullptr ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
}

}  // namespace

void SqliteStatement::Finalize::operator()(sqlite3_stmt* stmt) const { sqlite3_finalize(stmt); }

Status SqliteStatement::Bind(int index, const SqlValue& value) {
  sqlite3_stmt* stmt = stmt_.get();
  int rc;
  if (auto* v = std::get_if<int64_t>(&value)) {
    rc = sqlite3_bind_int64(stmt, index, *v);
  } else if (auto* v = std::get_if<double>(&value)) {
    rc = sqlite3_bind_double(stmt, index, *v);
  } else if (auto* v = std::get_if<std::string>(&value)) {
    rc = sqlite3_bind_text64(stmt, index, v->data(), v->size(), SQLITE_TRANSIENT, SQLITE_UTF8);
  } else if (auto* v = std::get_if<Blob>(&value)) {
    rc = sqlite3_bind_blob64(stmt, index, v->bytes.data(), v->bytes.size(), SQLITE_TRANSIENT);
  } else {
    rc = sqlite3_bind_null(stmt, index);
  }
  if (rc == SQLITE_OK) return Status::Ok();
  return StatusOf(sqlite3_db_handle(stmt), rc).WithContext("parameter " + std::to_string(index));
}

Status SqliteStatement::BindAll(const std::vector<SqlValue>& params) {
  const int expected = sqlite3_bind_parameter_count(stmt_.get());
  if (static_cast<size_t>(expected) != params.size()) {
    return Status::InvalidArgument("the statement takes " + std::to_string(expected) +
                                   " parameters, got " + std::to_string(params.size()));
  }
  for (size_t i = 0; i < params.size(); ++i) {
    RETURN_NOT_OK(Bind(static_cast<int>(i) + 1, params[i]));
  }
  return Status::Ok();
}

Status SqliteStatement::Run(const SqliteRowFn& on_row) {
  sqlite3_stmt* stmt = stmt_.get();
  int rc;
  while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
    if (on_row) on_row(*this);
  }
  // Read the message before the reset, which may replace it.
  Status status = rc == SQLITE_DONE ? Status::Ok() : StatusOf(sqlite3_db_handle(stmt), rc);
  sqlite3_reset(stmt);
  sqlite3_clear_bindings(stmt);
  return status;
}

int SqliteStatement::ColumnCount() const { return sqlite3_column_count(stmt_.get()); }

std::string SqliteStatement::ColumnName(int column) const {
  const char* name = sqlite3_column_name(stmt_.get(), column);
  return name != nullptr ? name : "";
}

bool SqliteStatement::IsNull(int column) const {
  return sqlite3_column_type(stmt_.get(), column) == SQLITE_NULL;
}

int64_t SqliteStatement::Int64(int column) const {
  return sqlite3_column_int64(stmt_.get(), column);
}

std::string SqliteStatement::Text(int column) const {
  const unsigned char* text = sqlite3_column_text(stmt_.get(), column);
  if (text == nullptr) return std::string();
  return std::string(reinterpret_cast<const char*>(text),
                     sqlite3_column_bytes(stmt_.get(), column));
}

SqlValue SqliteStatement::Value(int column) const {
  sqlite3_stmt* stmt = stmt_.get();
  switch (sqlite3_column_type(stmt, column)) {
    case SQLITE_INTEGER:
      return static_cast<int64_t>(sqlite3_column_int64(stmt, column));
    case SQLITE_FLOAT:
      return sqlite3_column_double(stmt, column);
    case SQLITE_TEXT:
      return Text(column);
    case SQLITE_BLOB: {
      const auto* bytes = static_cast<const char*>(sqlite3_column_blob(stmt, column));
      const int size = sqlite3_column_bytes(stmt, column);  // bytes is null when size is 0
      return Blob{size > 0 ? std::string(bytes, size) : std::string()};
    }
    default:
      return std::monostate();
  }
}

void SqliteConnection::Close::operator()(sqlite3* db) const { sqlite3_close_v2(db); }

Result<SqliteConnection> SqliteConnection::Open(const std::string& path, int flags,
                                                const std::string& vfs) {
  sqlite3* raw = nullptr;
  int rc = sqlite3_open_v2(path.c_str(), &raw, flags, vfs.empty() ? nullptr : vfs.c_str());
  SqliteConnection connection;
  connection.db_.reset(raw);  // set even when the open fails, and must be closed
  if (rc != SQLITE_OK) return StatusOf(raw, rc);
  sqlite3_extended_result_codes(raw, 1);
  return connection;
}

void SqliteConnection::SetBusyTimeout(int ms) { sqlite3_busy_timeout(db_.get(), ms); }

Result<SqliteStatement> SqliteConnection::Prepare(std::string_view sql, unsigned prepare_flags,
                                                  std::string_view* rest) {
  sqlite3_stmt* raw = nullptr;
  const char* tail = nullptr;
  int rc = sqlite3_prepare_v3(db_.get(), sql.data(), static_cast<int>(sql.size()), prepare_flags,
                              &raw, &tail);
  SqliteStatement stmt(raw);
  if (rc != SQLITE_OK) return LastError(rc);
  if (rest != nullptr) {
    *rest = tail != nullptr ? sql.substr(static_cast<size_t>(tail - sql.data())) : "";
  }
  return stmt;
}

Status SqliteConnection::Run(std::string_view sql, const std::vector<SqlValue>& params,
                             const SqliteRowFn& on_row) {
  ASSIGN_OR_RETURN(SqliteStatement stmt, Prepare(sql));
  RETURN_NOT_OK(stmt.BindAll(params));
  return stmt.Run(on_row);
}

Status SqliteConnection::Exec(std::string_view script, const SqliteRowFn& on_row) {
  while (!script.empty()) {
    ASSIGN_OR_RETURN(SqliteStatement stmt, Prepare(script, 0, &script));
    if (!stmt.empty()) RETURN_NOT_OK(stmt.Run(on_row));
  }
  return Status::Ok();
}

Result<SqlValue> SqliteConnection::FirstValue(std::string_view sql,
                                              const std::vector<SqlValue>& params) {
  std::optional<SqlValue> first;
  RETURN_NOT_OK(Run(sql, params, [&](const SqliteStatement& row) {
    if (!first) first = row.Value(0);
  }));
  if (!first) return Status::NotFound(std::string(sql) + ": no row");
  return *std::move(first);
}

Result<int64_t> SqliteConnection::QueryInt(std::string_view sql,
                                           const std::vector<SqlValue>& params) {
  ASSIGN_OR_RETURN(SqlValue value, FirstValue(sql, params));
  const int64_t* number = std::get_if<int64_t>(&value);
  if (number == nullptr) return Status::Internal(std::string(sql) + ": expected an integer");
  return *number;
}

Result<std::string> SqliteConnection::QueryText(std::string_view sql,
                                                const std::vector<SqlValue>& params) {
  ASSIGN_OR_RETURN(SqlValue value, FirstValue(sql, params));
  std::string* text = std::get_if<std::string>(&value);
  if (text == nullptr) return Status::Internal(std::string(sql) + ": expected text");
  return std::move(*text);
}

Status SqliteConnection::LastError(int rc) const { return StatusOf(db_.get(), rc); }

bool SqliteConnection::InTransaction() const { return sqlite3_get_autocommit(db_.get()) == 0; }

int64_t SqliteConnection::Changes() const { return sqlite3_changes64(db_.get()); }

int64_t SqliteConnection::TotalChanges() const { return sqlite3_total_changes64(db_.get()); }

}  // namespace pact
