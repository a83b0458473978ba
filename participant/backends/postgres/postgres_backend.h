// The PostgreSQL backend, over libpq. A branch is a pooled connection, inside
// BEGIN from its first statement on (BEGIN goes in that statement's round
// trip); Prepare is PREPARE TRANSACTION with the gid "pact:<participant>:<txn id>",
// after which PostgreSQL itself keeps the branch durable and invisible, and
// the connection goes back to the pool: a prepared branch holds only its gid.
// CommitPrepared / Rollback use any connection and retry through connection
// failures for a bounded time; failing to reach the server never counts as
// done. RecoverPrepared reads pg_prepared_xacts for this participant's gids.
//
// Every branch that writes inserts a marker row into kMarkerTable inside its
// own transaction, in the same round trip as its COMMIT or PREPARE
// TRANSACTION, so the row exists exactly when the branch committed and
// IsCommitted can answer after a restart of the adapter. Markers are kept
// commit_marker_retention_ms (counted from the branch's start).
//
// After a COMMIT or PREPARE whose reply was lost, the session that sent it is
// terminated, and its end awaited, before any answer about that branch: until
// then it could still commit or prepare it.
//
// Statements take ?1 / ? placeholders like every backend (translated to $1
// outside literals and comments), or PostgreSQL's own $1; so with parameters,
// jsonb's ? operators need the $1 form. Parameters go untyped, like quoted
// literals, and PostgreSQL infers their types from the context (where there is
// none, cast: SELECT ?1::bigint + ?2). numeric results come back as double.
// After any statement error PostgreSQL has aborted the transaction, so the
// branch can then only roll back (Prepare votes kAbort).
//
// A statement with parameters and no result columns runs as a named prepared
// statement of its connection, prepared once (pg_statement_cache.h). So the
// session is reset between branches by what DISCARD ALL does less dropping
// prepared statements, sent with the statements that end the branch.
//
// Needs PostgreSQL 13 or later and max_prepared_transactions > 0.
#pragma once

#include <cstdint>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "participant/backend.h"

namespace pact {

struct PostgresBackendOptions {
  std::string conninfo;          // libpq connection string or URI
  std::string participant_name;  // goes into every gid: [A-Za-z0-9_-]{1,64}
  int max_idle_connections = 32;
  int connect_timeout_s = 5;
  int64_t commit_marker_retention_ms = 3600000;
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

  // One row per committed branch that wrote: (txn_id, participant, committed_at).
  static constexpr const char* kMarkerTable = "pact_committed_branches";

  // This participant's prepared transactions in the connected database.
  Result<std::vector<RecoveredBranch>> RecoverPrepared() override;

  // The same, less the branches in `held`.
  Result<std::vector<RecoveredBranch>> FindOrphans(const std::set<std::string>& held) override;

  // True while the branch's marker is retained (a read-only branch has none).
  // kUnavailable when the server cannot be asked, or when a session that lost
  // a reply for this branch cannot be ended yet: never a guess.
  Result<bool> IsCommitted(const std::string& txn_id) override;

 private:
  struct Shared;
  class PgBranch;

  Result<std::vector<RecoveredBranch>> PreparedBranches(const std::set<std::string>& skip);

  explicit PostgresBackend(std::shared_ptr<Shared> shared);

  std::shared_ptr<Shared> shared_;  // outlives the backend while branches use it
};

}  // namespace pact
