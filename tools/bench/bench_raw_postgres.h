// The --raw baseline: the same transfer as through Pact, run directly on
// PostgreSQL with PREPARE TRANSACTION / COMMIT PREPARED from the client, no
// Pact process in the path. What Pact costs is the difference.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "tools/bench/bench_pg.h"
#include "tools/bench/bench_workload.h"

namespace pact {

class RawPostgresDriver : public TransferDriver {
 public:
  // One connection per database (conninfo[i] holds participant i's accounts).
  // Gids are "raw-<run>-<client>-<n>-<database index>": a gid is unique per
  // PostgreSQL cluster, not per database, and both databases usually share one.
  static Result<std::unique_ptr<TransferDriver>> Create(const std::vector<std::string>& conninfo,
                                                        const std::string& run, int client);
  TxnResult Run(const std::vector<Update>& transfer) override;

 private:
  RawPostgresDriver(std::vector<std::unique_ptr<PgConnection>> connections, std::string prefix)
      : connections_(std::move(connections)), gid_prefix_(std::move(prefix)) {}

  std::string Gid(size_t database) const;
  void RollbackOpen();
  // Prepares every branch at once; on a failed one rolls back the others.
  Status PrepareAll();
  // Commits every prepared branch at once, re-asking a failed one a few times.
  Status CommitAll();

  std::vector<std::unique_ptr<PgConnection>> connections_;
  const std::string gid_prefix_;
  int64_t seq_ = 0;
};

}  // namespace pact
