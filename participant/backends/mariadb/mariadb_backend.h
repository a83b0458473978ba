// The MariaDB backend, on XA transactions (MariaDB 10.5 or later). A branch
// is an XA transaction whose xid is (gtrid = txn id, bqual = participant
// name, formatID = kFormatId); it holds one pooled connection from Begin
// until it is decided. MariaDB keeps a prepared XA transaction bound to the
// session that prepared it (other sessions get "unknown XID" meanwhile) until
// that session decides it or ends; from 10.5 on it then survives, detached,
// the end of the session and a server crash. So a prepared branch commits on
// its own connection, and after losing it on any other one.
//
// A one-phase commit inserts a marker row in the same transaction, so a
// commit whose reply was lost can be told from a rollback; a 2PC commit
// cannot add one (a prepared transaction is frozen) and relies on XA's NOTA:
// "unknown XID" after a commit attempt, with XA RECOVER no longer listing the
// xid, means an earlier attempt did it.
//
// After a statement whose reply was lost (the connection broke or the read
// timed out), that session is killed, and its end awaited, before the
// branch's outcome or an "unknown XID" is trusted: until then it could still
// prepare or commit the branch.
//
// Prepare always votes kCommit: MariaDB gives no cheap sign of a read-only
// branch (it "prepares" one, then answers its commit with XA_RBROLLBACK,
// which is taken as done).
//
// Statements run as server-side prepared statements with `?` placeholders,
// one statement per Execute; the session is reset when a branch ends.
// Tables must be InnoDB (or another XA-capable engine): changes to others are
// neither held prepared nor rolled back.
//
// Prepared XA transactions are server-wide, not per database: participants
// sharing a server must have different names.
#pragma once

#include <cstdint>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "participant/backend.h"

namespace pact {

struct MariaDbBackendOptions {
  std::string host = "127.0.0.1";
  int port = 3306;
  std::string user;
  std::string password;
  std::string database;          // holds the user's tables and the marker table
  std::string participant_name;  // the xid's bqual: at most 64 bytes
  int max_idle_connections = 32;
  int connect_timeout_s = 5;
  // A call whose reply does not come within these fails as kUnavailable (its
  // outcome unknown), so a hung server cannot block a branch for ever. Longer
  // than any statement the application runs, lock waits included.
  int read_timeout_s = 60;
  int write_timeout_s = 60;
  int64_t commit_marker_retention_ms = 3600000;
};

class MariaDbBackend : public Backend {
 public:
  // "PACT": the formatID of every xid Pact creates.
  static constexpr int64_t kFormatId = 0x50414354;
  // MariaDB's limit on gtrid and bqual.
  static constexpr size_t kMaxXidPartBytes = 64;
  // One row per branch committed in one phase, kept commit_marker_retention_ms.
  static constexpr const char* kMarkerTable = "pact_committed_branches";

  // Connects (kUnavailable with the client library's message when the server
  // cannot be reached), checks the server version and creates the marker
  // table if missing.
  static Result<std::unique_ptr<MariaDbBackend>> Open(const MariaDbBackendOptions& options);

  ~MariaDbBackend() override;

  std::string Name() const override { return "mariadb"; }

  // kInvalidArgument when txn_id does not fit an xid.
  Result<std::unique_ptr<Branch>> Begin(const std::string& txn_id) override;

  // XA RECOVER filtered to this participant's xids. prepared_at_ms is the
  // time of the call: MariaDB does not keep when a branch prepared.
  Result<std::vector<RecoveredBranch>> RecoverPrepared() override;

  // The same, less the branches in `held`.
  Result<std::vector<RecoveredBranch>> FindOrphans(const std::set<std::string>& held) override;

  // True while a one-phase commit's marker row is retained; false for a
  // branch committed in two phases (the core treats "no such branch" after a
  // 2PC commit as done). kUnavailable, never false, while the answer is not
  // final: the server cannot be asked, a commit still in flight holds the
  // marker, or a session that lost a reply cannot be ended yet.
  Result<bool> IsCommitted(const std::string& txn_id) override;

 private:
  struct Shared;
  class MariaDbBranch;

  Result<std::vector<RecoveredBranch>> PreparedBranches(const std::set<std::string>& skip);

  explicit MariaDbBackend(std::shared_ptr<Shared> shared);

  std::shared_ptr<Shared> shared_;  // outlives the backend while branches use it
};

}  // namespace pact
