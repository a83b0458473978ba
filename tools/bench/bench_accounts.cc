#include "tools/bench/bench_accounts.h"

#include "cluster/bank_schema.h"
#include "cluster/sqlite_file.h"
#include "participant/backends/postgres/postgres_backend.h"
#include "tools/bench/bench_pg.h"

namespace pact {
namespace {

// The bank's accounts alone, replacing an older run's: transfers may
// overdraw (no CHECK), so no transaction aborts for want of money.
BankSpec BenchBank(int64_t rows) {
  BankSpec spec;
  spec.accounts = rows;
  spec.initial_balance = kInitialBalance;
  spec.non_negative = false;
  spec.ledger = BankSpec::Ledger::kNone;
  spec.replace = true;
  return spec;
}

}  // namespace

Status CreateSqliteAccounts(const std::string& path, int64_t rows) {
  return CreateSqliteBank(path, BenchBank(rows));
}

Result<int64_t> SumSqliteBalances(const std::string& path) {
  return QueryInt(path, "SELECT COALESCE(SUM(balance), 0) FROM accounts");
}

Status CreatePostgresAccounts(const std::string& conninfo, int64_t rows) {
  ASSIGN_OR_RETURN(auto conn, PgConnection::Connect(conninfo));
  // A prepared transaction left by an earlier run would hold its locks
  // forever: fail clearly instead of hanging on DROP TABLE.
  RETURN_NOT_OK(conn->Exec("SET lock_timeout = '5s'"));
  RETURN_NOT_OK(conn->Exec(BankSchemaSql(SqlDialect::kPostgres, BenchBank(rows))));
  // Each run's coordinator is new and numbers its transactions from 1 again:
  // an earlier run's commit markers would make every such id vote ABORT.
  RETURN_NOT_OK(conn->Exec(std::string("DROP TABLE IF EXISTS ") + PostgresBackend::kMarkerTable));
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
