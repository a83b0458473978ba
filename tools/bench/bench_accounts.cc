#include "tools/bench/bench_accounts.h"

#include <sqlite3.h>

#include <memory>

#include "tools/bench/bench_pg.h"

namespace pact {
namespace {

struct CloseSqlite {
  void operator()(sqlite3* db) const { sqlite3_close(db); }
};
using SqliteDb = std::unique_ptr<sqlite3, CloseSqlite>;

Result<SqliteDb> OpenSqlite(const std::string& path, int flags) {
  sqlite3* raw = nullptr;
  int rc = sqlite3_open_v2(path.c_str(), &raw, flags, nullptr);
  SqliteDb db(raw);
  if (rc != SQLITE_OK) {
    return Status::IoError("open " + path + ": " + (raw ? sqlite3_errmsg(raw) : "out of memory"));
  }
  sqlite3_busy_timeout(raw, 5000);
  return db;
}

Status SqliteExec(sqlite3* db, const std::string& sql) {
  char* error = nullptr;
  if (sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &error) != SQLITE_OK) {
    std::string message = error ? error : "unknown error";
    sqlite3_free(error);
    return Status::IoError(sql + ": " + message);
  }
  return Status::Ok();
}

}  // namespace

Status CreateSqliteAccounts(const std::string& path, int64_t rows) {
  ASSIGN_OR_RETURN(SqliteDb db, OpenSqlite(path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE));
  RETURN_NOT_OK(SqliteExec(db.get(), "PRAGMA journal_mode=WAL"));
  RETURN_NOT_OK(SqliteExec(db.get(),
                           "DROP TABLE IF EXISTS accounts;"
                           "CREATE TABLE accounts(id INTEGER PRIMARY KEY, "
                           "balance INTEGER NOT NULL)"));
  // One recursive INSERT in one transaction: thousands of rows in a blink.
  return SqliteExec(db.get(),
                    "WITH RECURSIVE n(id) AS (SELECT 1 UNION ALL SELECT id + 1 FROM n WHERE id < " +
                        std::to_string(rows) + ") INSERT INTO accounts SELECT id, " +
                        std::to_string(kInitialBalance) + " FROM n");
}

Result<int64_t> SumSqliteBalances(const std::string& path) {
  ASSIGN_OR_RETURN(SqliteDb db, OpenSqlite(path, SQLITE_OPEN_READONLY));
  sqlite3_stmt* stmt = nullptr;
  if (sqlite3_prepare_v2(db.get(), "SELECT COALESCE(SUM(balance), 0) FROM accounts", -1, &stmt,
                         nullptr) != SQLITE_OK) {
    return Status::IoError(path + ": " + sqlite3_errmsg(db.get()));
  }
  int rc = sqlite3_step(stmt);
  int64_t sum = rc == SQLITE_ROW ? sqlite3_column_int64(stmt, 0) : 0;
  std::string message = sqlite3_errmsg(db.get());
  sqlite3_finalize(stmt);
  if (rc != SQLITE_ROW) return Status::IoError(path + ": sum of balances: " + message);
  return sum;
}

Status CreatePostgresAccounts(const std::string& conninfo, int64_t rows) {
  ASSIGN_OR_RETURN(auto conn, PgConnection::Connect(conninfo));
  // A prepared transaction left by an earlier run would hold its locks
  // forever: fail clearly instead of hanging on DROP TABLE.
  RETURN_NOT_OK(conn->Exec("SET lock_timeout = '5s'"));
  RETURN_NOT_OK(
      conn->Exec("DROP TABLE IF EXISTS accounts;"
                 "CREATE TABLE accounts(id INTEGER PRIMARY KEY, balance INTEGER NOT NULL);"
                 "INSERT INTO accounts SELECT g, " +
                 std::to_string(kInitialBalance) + " FROM generate_series(1, " +
                 std::to_string(rows) + ") g"));
  // Outside the implicit transaction of the statements above, as VACUUM must be.
  return conn->Exec("VACUUM ANALYZE accounts");
}

Result<int64_t> SumPostgresBalances(const std::string& conninfo) {
  ASSIGN_OR_RETURN(auto conn, PgConnection::Connect(conninfo));
  return conn->QueryInt("SELECT COALESCE(SUM(balance), 0) FROM accounts");
}

Result<int64_t> CountPostgresPrepared(const std::string& conninfo) {
  ASSIGN_OR_RETURN(auto conn, PgConnection::Connect(conninfo));
  return conn->QueryInt(
      "SELECT count(*) FROM pg_prepared_xacts WHERE database = current_database()");
}

}  // namespace pact
