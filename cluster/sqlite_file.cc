#include "cluster/sqlite_file.h"

#include <sqlite3.h>

#include "sqlite/sqlite.h"

namespace pact {
namespace {

constexpr int kBusyTimeoutMs = 2000;  // the adapter may hold the write lock briefly

Result<SqliteConnection> Open(const std::string& path, int flags) {
  ASSIGN_OR_RETURN(SqliteConnection db, SqliteConnection::Open(path, flags));
  db.SetBusyTimeout(kBusyTimeoutMs);
  return db;
}

}  // namespace

Status ExecFile(const std::string& db_path, const std::string& sql) {
  ASSIGN_OR_RETURN(SqliteConnection db, Open(db_path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE));
  return db.Exec(sql).WithContext(db_path);
}

Result<std::vector<std::vector<SqlValue>>> QueryFile(const std::string& db_path,
                                                     const std::string& sql) {
  ASSIGN_OR_RETURN(SqliteConnection db, Open(db_path, SQLITE_OPEN_READONLY));
  std::vector<std::vector<SqlValue>> rows;
  RETURN_NOT_OK(db.Exec(sql, [&](const SqliteStatement& row) {
                    std::vector<SqlValue> values;
                    for (int i = 0; i < row.ColumnCount(); ++i) values.push_back(row.Value(i));
                    rows.push_back(std::move(values));
                  }).WithContext(sql));
  return rows;
}

Result<int64_t> QueryInt(const std::string& db_path, const std::string& sql) {
  ASSIGN_OR_RETURN(auto rows, QueryFile(db_path, sql));
  if (rows.size() != 1 || rows[0].size() != 1 || !std::holds_alternative<int64_t>(rows[0][0])) {
    return Status::NotFound(sql + ": expected one integer");
  }
  return std::get<int64_t>(rows[0][0]);
}

}  // namespace pact
