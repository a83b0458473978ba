// A transaction as the coordinator holds it in memory.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "common/clock.h"
#include "common/protocol.h"

namespace pact {

// One participant's part in a transaction, as far as the coordinator knows.
// Memory only, except where a state says which record backs it. Every change
// goes through Txn::MoveBranch; its allowed moves are in transaction.cc.
enum class BranchState {
  kEnlisted,        // executing; not asked to prepare yet (or asked, and no vote came)
  kPrepared,        // voted COMMIT
  kReadOnly,        // voted READ_ONLY; released, needs nothing more
  kCommitPending,   // told to commit, not acknowledged yet: retried with backoff. Backed by
                    // the COMMIT record (recovery rebuilds it), or a one-phase commit's
                    // outcome is unknown
  kCommitted,       // acknowledged the commit
  kRolledBack,      // acknowledged the rollback, or voted ABORT
  kRollbackFailed,  // unreachable; it rolls back by itself (deadline or inquiry)
  kHeuristicMixed,  // an operator decided it the other way; a heuristic record is journaled
                    // for operators. Final: nothing the protocol does undoes it
};

const char* BranchStateName(BranchState state);

struct BranchProgress {
  std::string participant;
  std::string opening;     // the participant's name for this opening of the branch
  std::optional<Vote> vote;
  BranchState state = BranchState::kEnlisted;
  int attempts = 0;        // commit or rollback messages sent
  std::string last_error;  // of the latest failed message
};

struct Txn {
  Txn(std::string txn_id, int64_t timeout, TxnState initial, TimePoint now)
      : id(std::move(txn_id)),
        timeout_ms(timeout),
        begun(now),
        deadline(begun + Millis(timeout)),
        state(initial) {}

  const std::string id;
  const int64_t timeout_ms;
  const TimePoint begun;
  const TimePoint deadline;

  std::mutex mu;
  std::condition_variable changed;  // notified on every state change
  // guarded by mu; written only by TwoPhaseCommit::Transition.
  TxnState state;
  std::vector<BranchProgress> branches;  // guarded by mu
  std::string reason;                    // guarded by mu; why it aborted
  // guarded by mu; non-empty once the transaction can only abort (a branch
  // lost its work), saying why. Commit then aborts it.
  std::string doomed;

  // REQUIRES: mu held. The one place a branch changes state: true once it is
  // in `to` (at once if it already was); an illegal move is refused, logged,
  // and changes nothing.
  bool MoveBranch(BranchProgress* branch, BranchState to);

  // REQUIRES: mu held.
  BranchProgress* FindBranch(const std::string& participant) {
    for (auto& b : branches) {
      if (b.participant == participant) return &b;
    }
    return nullptr;
  }
};

// A copy of a transaction's state, for status and listings.
struct TxnSnapshot {
  std::string id;
  TxnState state = TxnState::kActive;
  std::vector<BranchProgress> branches;
  int64_t age_ms = 0;
  int64_t deadline_in_ms = 0;
  std::string reason;
};

}  // namespace pact
