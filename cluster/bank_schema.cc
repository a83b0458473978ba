#include "cluster/bank_schema.h"

#include "cluster/sqlite_file.h"

namespace pact {
namespace {

std::string Accounts(SqlDialect dialect, const BankSpec& spec) {
  const std::string check = spec.non_negative ? " CHECK (balance >= 0)" : "";
  switch (dialect) {
    case SqlDialect::kSqlite:
      return "CREATE TABLE accounts(id INTEGER PRIMARY KEY,"
             " balance INTEGER NOT NULL" + check + ");";
    case SqlDialect::kPostgres:
      return "CREATE TABLE accounts(id INT PRIMARY KEY, balance BIGINT NOT NULL" + check + ");";
    case SqlDialect::kMariaDb:
      return "CREATE TABLE accounts(id INT PRIMARY KEY, balance BIGINT NOT NULL" + check +
             ") ENGINE=InnoDB;";
  }
  return "";
}

std::string CheckedLedger(SqlDialect dialect) {
  switch (dialect) {
    case SqlDialect::kSqlite:
      return "CREATE TABLE ledger(id INTEGER PRIMARY KEY,"
             " account INTEGER NOT NULL REFERENCES accounts(id) DEFERRABLE INITIALLY DEFERRED,"
             " amount INTEGER);";
    case SqlDialect::kPostgres:
      return "CREATE TABLE ledger(id SERIAL PRIMARY KEY,"
             " account INT NOT NULL REFERENCES accounts(id) DEFERRABLE INITIALLY DEFERRED,"
             " amount BIGINT);";
    case SqlDialect::kMariaDb:
      return "CREATE TABLE ledger(id INT AUTO_INCREMENT PRIMARY KEY, account INT NOT NULL,"
             " amount BIGINT, FOREIGN KEY (account) REFERENCES accounts(id)) ENGINE=InnoDB;";
  }
  return "";
}

std::string PerTransactionLedger(SqlDialect dialect) {
  switch (dialect) {
    case SqlDialect::kSqlite:
      return "CREATE TABLE ledger(txn_id TEXT PRIMARY KEY, account INTEGER NOT NULL,"
             " delta INTEGER NOT NULL);";
    case SqlDialect::kPostgres:
      return "CREATE TABLE ledger(txn_id VARCHAR(200) PRIMARY KEY, account INT NOT NULL,"
             " delta BIGINT NOT NULL);";
    case SqlDialect::kMariaDb:
      return "CREATE TABLE ledger(txn_id VARCHAR(200) PRIMARY KEY, account INT NOT NULL,"
             " delta BIGINT NOT NULL) ENGINE=InnoDB;";
  }
  return "";
}

// Accounts 1..n, each with the initial balance, in one statement (no ';' after
// it: MariaDB would take an empty statement after it for an error).
std::string Seed(SqlDialect dialect, const BankSpec& spec) {
  const std::string n = std::to_string(spec.accounts);
  const std::string balance = std::to_string(spec.initial_balance);
  switch (dialect) {
    case SqlDialect::kSqlite:
      return "WITH RECURSIVE n(id) AS (SELECT 1 UNION ALL SELECT id + 1 FROM n WHERE id < " + n +
             ") INSERT INTO accounts SELECT id, " + balance + " FROM n";
    case SqlDialect::kPostgres:
      return "INSERT INTO accounts SELECT g, " + balance + " FROM generate_series(1, " + n +
             ") g";
    case SqlDialect::kMariaDb: {
      std::string values;
      for (int64_t id = 1; id <= spec.accounts; ++id) {
        values += (id > 1 ? ", (" : "(") + std::to_string(id) + ", " + balance + ")";
      }
      return "INSERT INTO accounts VALUES " + values;
    }
  }
  return "";
}

}  // namespace

std::string BankSchemaSql(SqlDialect dialect, const BankSpec& spec) {
  std::string sql = dialect == SqlDialect::kSqlite ? "PRAGMA journal_mode=WAL;" : "";
  if (spec.replace && spec.ledger != BankSpec::Ledger::kNone) sql += "DROP TABLE IF EXISTS ledger;";
  if (spec.replace) sql += "DROP TABLE IF EXISTS accounts;";
  sql += Accounts(dialect, spec);
  switch (spec.ledger) {
    case BankSpec::Ledger::kNone:
      break;
    case BankSpec::Ledger::kCheckedAtCommit:
      sql += CheckedLedger(dialect);
      break;
    case BankSpec::Ledger::kPerTransaction:
      sql += PerTransactionLedger(dialect);
      break;
  }
  return sql + Seed(dialect, spec);
}

Status CreateSqliteBank(const std::string& db_path, const BankSpec& spec) {
  return ExecFile(db_path, BankSchemaSql(SqlDialect::kSqlite, spec));
}

Status CreateSqliteBank(const std::string& db_path, int accounts) {
  BankSpec spec;
  spec.accounts = accounts;
  return CreateSqliteBank(db_path, spec);
}

}  // namespace pact
