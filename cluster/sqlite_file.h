// A participant's SQLite file read and written directly, like any other
// client of the database (never while its adapter holds it for a schema
// change).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/sql_value.h"
#include "common/status.h"

namespace pact {

// Runs statements (several allowed) on the file, creating it if need be.
Status ExecFile(const std::string& db_path, const std::string& sql);
// Runs a query on a second, read-only connection.
Result<std::vector<std::vector<SqlValue>>> QueryFile(const std::string& db_path,
                                                     const std::string& sql);
// One integer from a query on the file, e.g. a balance.
Result<int64_t> QueryInt(const std::string& db_path, const std::string& sql);

}  // namespace pact
