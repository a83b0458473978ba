// Plain C++ forms of SQL parameters and results, shared by the client, the
// participant core and the backends. Thrift types stay at the RPC boundary.
#pragma once

#include <cstdint>
#include <string>
#include <variant>
#include <vector>

namespace pact {

struct Blob {
  std::string bytes;
  bool operator==(const Blob& other) const { return bytes == other.bytes; }
};

// NULL, INTEGER, REAL, TEXT or BLOB: the types every backend can bind and return.
using SqlValue = std::variant<std::monostate, int64_t, double, std::string, Blob>;

struct QueryResult {
  std::vector<std::string> columns;
  std::vector<std::vector<SqlValue>> rows;
  int64_t affected_rows = 0;  // rows changed by INSERT/UPDATE/DELETE
};

// Renders a value for logs and tables: NULL, 42, 1.5, text, x'0a0b'.
std::string SqlValueToString(const SqlValue& value);

}  // namespace pact
