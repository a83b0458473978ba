// A thin libpq connection for pact-bench: the accounts table set-up and the
// --raw driver, which talks to PostgreSQL directly with no Pact in the path.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/status.h"

struct pg_conn;

namespace pact {

class PgConnection {
 public:
  static Result<std::unique_ptr<PgConnection>> Connect(const std::string& conninfo);
  ~PgConnection();

  PgConnection(const PgConnection&) = delete;
  PgConnection& operator=(const PgConnection&) = delete;

  // Runs one or more statements; their results are dropped.
  Status Exec(const std::string& sql);
  // One statement with $1, $2 ... bound to the text of each parameter;
  // returns the number of rows it changed.
  Result<int64_t> ExecParams(const std::string& sql, const std::vector<std::string>& params);
  // The first column of the only row, as an integer (NULL reads as 0).
  Result<int64_t> QueryInt(const std::string& sql);

  // Sends a statement without waiting, so several databases work at once;
  // Finish collects its outcome. One outstanding statement at a time.
  Status Send(const std::string& sql);
  Status Finish();

 private:
  explicit PgConnection(pg_conn* conn) : conn_(conn) {}
  Status Error(const std::string& what) const;

  pg_conn* conn_;
  std::string pending_;  // the statement Send started, for Finish's error message
};

}  // namespace pact
