#include "cluster/sqlite_file.h"

#include <sqlite3.h>

#include <memory>

namespace pact {
namespace {

struct CloseSqlite {
  void operator()(sqlite3* db) const { sqlite3_close(db); }
};
using SqliteDb = std::unique_ptr<sqlite3, CloseSqlite>;

Result<SqliteDb> Open(const std::string& path, int flags) {
  sqlite3* raw = nullptr;
  int rc = sqlite3_open_v2(path.c_str(), &raw, flags, nullptr);
  SqliteDb db(raw);
  if (rc != SQLITE_OK) {
    return Status::IoError("open " + path + ": " + (raw ? sqlite3_errmsg(raw) : "out of memory"));
  }
  sqlite3_busy_timeout(raw, 2000);
  return db;
}

}  // namespace

Status ExecFile(const std::string& db_path, const std::string& sql) {
  ASSIGN_OR_RETURN(SqliteDb db, Open(db_path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE));
  char* error = nullptr;
  if (sqlite3_exec(db.get(), sql.c_str(), nullptr, nullptr, &error) != SQLITE_OK) {
    Status st = Status::IoError(db_path + ": " + (error ? error : sqlite3_errmsg(db.get())));
    sqlite3_free(error);
    return st;
  }
  return Status::Ok();
}

Result<std::vector<std::vector<SqlValue>>> QueryFile(const std::string& db_path,
                                                     const std::string& sql) {
  ASSIGN_OR_RETURN(SqliteDb db, Open(db_path, SQLITE_OPEN_READONLY));
  sqlite3_stmt* stmt = nullptr;
  if (sqlite3_prepare_v2(db.get(), sql.c_str(), -1, &stmt, nullptr) != SQLITE_OK) {
    return Status::InvalidArgument(sql + ": " + sqlite3_errmsg(db.get()));
  }
  std::vector<std::vector<SqlValue>> rows;
  int rc;
  while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
    std::vector<SqlValue> row;
    for (int i = 0; i < sqlite3_column_count(stmt); ++i) {
      switch (sqlite3_column_type(stmt, i)) {
        case SQLITE_INTEGER: row.emplace_back(int64_t{sqlite3_column_int64(stmt, i)}); break;
        case SQLITE_FLOAT: row.emplace_back(sqlite3_column_double(stmt, i)); break;
        case SQLITE_NULL: row.emplace_back(std::monostate{}); break;
        default:
          row.emplace_back(std::string(reinterpret_cast<const char*>(sqlite3_column_text(stmt, i))));
      }
    }
    rows.push_back(std::move(row));
  }
  std::string msg = sqlite3_errmsg(db.get());
  sqlite3_finalize(stmt);
  if (rc != SQLITE_DONE) return Status::Internal(sql + ": " + msg);
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
