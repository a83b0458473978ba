// The bank every multi-process test, pact-chaos-bank and pact-bench run
// over, in each SQL dialect: the one definition of its tables in the code
// (examples/bank_schema.sql is the version for people). An operator creates
// it before the adapter starts: schema changes are not part of Pact
// transactions.
#pragma once

#include <cstdint>
#include <string>

#include "common/status.h"

namespace pact {

enum class SqlDialect { kSqlite, kPostgres, kMariaDb };

struct BankSpec {
  enum class Ledger {
    kNone,
    // ledger(id, account, amount), its account checked against accounts at
    // commit time: a bad account number makes the participant vote ABORT at
    // prepare. (MariaDB checks at once: InnoDB has no deferred keys.)
    kCheckedAtCommit,
    // ledger(txn_id PRIMARY KEY, account, delta): each side of a transfer,
    // under the transaction that made it, so the data tells which committed.
    kPerTransaction,
  };

  int64_t accounts = 3;  // ids 1..accounts
  int64_t initial_balance = 100;
  // CHECK (balance >= 0): an overdraft fails its statement.
  bool non_negative = true;
  Ledger ledger = Ledger::kCheckedAtCommit;
  // Drops older tables of the names it creates first.
  bool replace = false;
};

// The statements that create and fill the bank (SQLite: also WAL mode, as
// the adapter runs the file).
std::string BankSchemaSql(SqlDialect dialect, const BankSpec& spec);

// Creates the bank in a SQLite file.
Status CreateSqliteBank(const std::string& db_path, const BankSpec& spec);
// The tests' bank: accounts 1..`accounts` holding 100 each, and the ledger
// checked at commit.
Status CreateSqliteBank(const std::string& db_path, int accounts);

}  // namespace pact
