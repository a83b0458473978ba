// The PostgreSQL backend, over libpq. A branch is a connection inside BEGIN;
// Prepare is PREPARE TRANSACTION with the gid "pact:<participant>:<txn id>",
// after which PostgreSQL itself keeps the branch durable and invisible, and
// the connection goes back to the pool: a prepared branch holds only its gid.
// CommitPrepared / Rollback use any connection and retry through connection
// failures for a bounded time; failing to reach the server never counts as
// done. RecoverPrepared reads pg_prepared_xacts for this participant's gids.
//
// Statements take ?1 / ? placeholders like every backend (translated to $1
// outside literals and comments), or PostgreSQL's own $1; so with parameters,
// jsonb's ? operators need the $1 form. Parameters go untyped, like quoted
// literals, and PostgreSQL infers their types from the context (where there is
// none, cast: SELECT ?1::bigint + ?2). numeric results come back as double.
// After any statement error PostgreSQL has aborted the transaction, so the
// branch can then only roll back (Prepare votes kAbort).
//
// Needs PostgreSQL 13 or later and max_prepared_transactions > 0.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "participant/backend.h"

namespace pact {

struct PostgresBackendOptions {
  std::string conninfo;          // libpq connection string or URI
  std::string participant_name;  // goes into every gid: [A-Za-z0-9_-]{1,64}
  int max_idle_connections = 32;
  int connect_timeout_s = 5;
};

class PostgresBackend : public Backend {
 public:
  // Fails with kUnavailable when the server cannot be reached, and with
  // kFailedPrecondition when it cannot prepare transactions.
  static Result<std::unique_ptr<PostgresBackend>> Open(const PostgresBackendOptions& options);

  // The gid of a branch: unique across the databases of one cluster because
  // the participant name is in it.
  static std::string Gid(const std::string& participant_name, const std::string& txn_id);

  ~PostgresBackend() override;

  std::string Name() const override { return "postgresql"; }

  Result<std::unique_ptr<Branch>> Begin(const std::string& txn_id) override;

  // This participant's prepared transactions in the connected database.
  Result<std::vector<RecoveredBranch>> RecoverPrepared() override;

  // PostgreSQL keeps no record of a finished transaction by gid, so this
  // answers only for branches this process finished recently (the last
  // kRememberedOutcomes); for any other it says false. After a restart of the
  // adapter a forgotten one-phase branch can therefore not be told apart.
  Result<bool> IsCommitted(const std::string& txn_id) override;

  static constexpr size_t kRememberedOutcomes = 100000;

 private:
  struct Shared;
  class PgBranch;

  explicit PostgresBackend(std::shared_ptr<Shared> shared);

  std::shared_ptr<Shared> shared_;  // outlives the backend while branches use it
};

}  // namespace pact
