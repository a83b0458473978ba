// What a database must offer to be a Pact participant. The participant core
// (fencing, enlistment, deadlines, inquiry) is shared; one Backend per
// database implements only the database's side of a branch.
#pragma once

#include <cstdint>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "common/protocol.h"
#include "common/sql_value.h"
#include "common/status.h"

namespace pact {

// One branch: the open database transaction of one Pact transaction. The
// caller serializes calls on one Branch; different Branches run concurrently.
class Branch {
 public:
  virtual ~Branch() = default;

  // Runs one statement with positional parameters (?1 or ? placeholders).
  // A statement error returns a Status and leaves the branch open; whether it
  // can still commit is the database's rule (Prepare then votes kAbort).
  virtual Result<QueryResult> Execute(const std::string& sql,
                                      const std::vector<SqlValue>& params) = 0;

  // Votes. kCommit: the branch is durable as prepared, survives a crash of
  // this process and stays invisible to others until CommitPrepared or
  // RollbackPrepared. kReadOnly: it wrote nothing and is already released.
  // kAbort: it is rolled back; `abort_reason` says why.
  virtual Result<Vote> Prepare(std::string* abort_reason) = 0;

  // REQUIRES: not prepared. Commits in one step; an error means rolled back.
  virtual Status CommitOnePhase() = 0;

  // REQUIRES: Prepare voted kCommit. On error the branch stays prepared and
  // the call may be retried.
  virtual Status CommitPrepared() = 0;

  // Rolls back an active or prepared branch. On error a prepared branch stays
  // prepared and the call may be retried.
  virtual Status Rollback() = 0;
};

// A branch found prepared in the database at start, held prepared again.
struct RecoveredBranch {
  std::string txn_id;
  int64_t prepared_at_ms = 0;  // wall clock
  std::unique_ptr<Branch> branch;
};

class Backend {
 public:
  virtual ~Backend() = default;

  virtual std::string Name() const = 0;  // "sqlite", "postgresql", ...

  // Opens a branch for a transaction.
  virtual Result<std::unique_ptr<Branch>> Begin(const std::string& txn_id) = 0;

  // Branches that were prepared when the process last stopped. Called once at
  // start, before Begin.
  virtual Result<std::vector<RecoveredBranch>> RecoverPrepared() = 0;

  // Whether the branch of `txn_id` committed, for a branch no longer held in
  // memory: lets a repeated commit answer "done" and a one-phase commit whose
  // reply was lost tell committed from rolled back.
  virtual Result<bool> IsCommitted(const std::string& txn_id) = 0;

  // Prepared branches of this participant that the database holds but the
  // service does not (`held` lists the txn ids it holds): a PREPARE whose
  // answer was lost with its connection may still have prepared. The service
  // calls this periodically and adopts what it returns like recovered
  // branches (they ask their coordinator). Backends that cannot leave such a
  // branch behind keep the default.
  virtual Result<std::vector<RecoveredBranch>> FindOrphans(const std::set<std::string>& held) {
    (void)held;
    return std::vector<RecoveredBranch>{};
  }
};

}  // namespace pact
