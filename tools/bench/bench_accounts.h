// The benchmark's data: the bank's accounts table (cluster/bank_schema.h) of
// `rows` rows with equal starting balances in every participant's database,
// and the total of all balances, which every transfer conserves: the
// correctness check of a run.
#pragma once

#include <cstdint>
#include <string>

#include "common/status.h"

namespace pact {

constexpr int64_t kInitialBalance = 1000;

// Creates the file (WAL mode, as the adapter runs it) before its adapter
// starts: schema changes are not part of two-phase transactions.
Status CreateSqliteAccounts(const std::string& path, int64_t rows);
// Reads through a second, read-only connection, like any other reader.
Result<int64_t> SumSqliteBalances(const std::string& path);

// Replaces any accounts table in the database.
Status CreatePostgresAccounts(const std::string& conninfo, int64_t rows);
Result<int64_t> SumPostgresBalances(const std::string& conninfo);
// Prepared transactions left in the connected database.
Result<int64_t> CountPostgresPrepared(const std::string& conninfo);

}  // namespace pact
