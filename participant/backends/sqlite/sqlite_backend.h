// The SQLite backend. SQLite has no prepared state, so a branch holds the
// database's single write transaction from Begin to the decision, and Prepare
// makes the branch's changes (a session changeset) durable in a separate
// "prepared store" file before voting. After a crash the open transaction is
// gone; RecoverPrepared re-applies each stored changeset in a new write
// transaction and holds it prepared again. A commit inserts a marker row in
// the same transaction, so a commit that crashed before its store row was
// deleted is recognised as done.
//
// Branches serialize on SQLite's write lock: a Begin waits up to
// busy_timeout_ms while another branch is active or prepared.
//
// Limits of the scheme (Prepare votes kAbort rather than lose data):
// - every table a branch writes needs a PRIMARY KEY (sessions skip others);
// - a branch that changed the schema can only commit in one phase.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "participant/backend.h"

namespace pact {

struct SqliteBackendOptions {
  std::string db_path;
  std::string prepared_store_path;  // empty: db_path + "-pact"
  int busy_timeout_ms = 5000;       // how long a Begin waits for the write lock
  int64_t commit_marker_retention_ms = 3600000;
};

class SqliteBackend : public Backend {
 public:
  // Marker rows in the user database: one per committed branch, kept for
  // commit_marker_retention_ms.
  static constexpr const char* kMarkerTable = "pact_committed_branches";
  // Prepared branches in the prepared store: (txn_id, changeset, prepared_at_ms).
  static constexpr const char* kPreparedTable = "pact_prepared_branches";

  // Opens or creates both files (WAL, synchronous=FULL). Fails with kBusy when
  // another SqliteBackend (in any process) has the same database open: the
  // scheme relies on one adapter owning the file.
  static Result<std::unique_ptr<SqliteBackend>> Open(const SqliteBackendOptions& options);

  ~SqliteBackend() override;

  std::string Name() const override { return "sqlite"; }

  // Waits up to busy_timeout_ms for the write lock, then kBusy.
  Result<std::unique_ptr<Branch>> Begin(const std::string& txn_id) override;

  // Forgets stored branches that had committed, prunes old markers, and holds
  // the rest prepared again. kCorruption when a changeset no longer applies
  // (the database was changed behind the adapter's back).
  Result<std::vector<RecoveredBranch>> RecoverPrepared() override;

  // True while the branch's marker row is retained.
  Result<bool> IsCommitted(const std::string& txn_id) override;

 private:
  struct Shared;
  class SqliteBranch;

  explicit SqliteBackend(std::shared_ptr<Shared> shared);

  std::shared_ptr<Shared> shared_;  // outlives the backend while branches use it
};

}  // namespace pact
