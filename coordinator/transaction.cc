#include "coordinator/transaction.h"

#include <glog/logging.h>

#include "common/state_moves.h"

namespace pact {
namespace {

// The moves of the branch machine (see BranchState for what each state
// means). Besides these, any state but itself may become HEURISTIC_MIXED: a
// participant's report of an operator's decision is taken as it says.
constexpr StateMove<BranchState> kBranchMoves[] = {
    // ENLISTED: the answer to its prepare, to its one-phase commit, or to the rollback.
    {BranchState::kEnlisted, BranchState::kPrepared},
    {BranchState::kEnlisted, BranchState::kReadOnly},
    {BranchState::kEnlisted, BranchState::kRolledBack},      // voted ABORT, refused, rolled back
    {BranchState::kEnlisted, BranchState::kCommitPending},   // one-phase commit, no answer
    {BranchState::kEnlisted, BranchState::kCommitted},       // one-phase commit
    {BranchState::kEnlisted, BranchState::kRollbackFailed},
    // PREPARED: the answer to the decision's message.
    {BranchState::kPrepared, BranchState::kCommitted},
    {BranchState::kPrepared, BranchState::kCommitPending},
    {BranchState::kPrepared, BranchState::kRolledBack},
    {BranchState::kPrepared, BranchState::kRollbackFailed},
    // COMMIT_PENDING: asked again until it answers.
    {BranchState::kCommitPending, BranchState::kCommitted},
    {BranchState::kCommitPending, BranchState::kRolledBack},  // a one-phase commit refused
    // ROLLBACK_FAILED: told again.
    {BranchState::kRollbackFailed, BranchState::kRolledBack},
    // READ_ONLY, COMMITTED, ROLLED_BACK: acknowledged; only a heuristic mix follows.
    // HEURISTIC_MIXED: final.
};

bool IsAllowedMove(BranchState from, BranchState to) {
  if (to == BranchState::kHeuristicMixed) return from != BranchState::kHeuristicMixed;
  return IsListedMove(kBranchMoves, from, to);
}

}  // namespace

const char* BranchStateName(BranchState state) {
  switch (state) {
    case BranchState::kEnlisted: return "enlisted";
    case BranchState::kPrepared: return "prepared";
    case BranchState::kReadOnly: return "read-only";
    case BranchState::kCommitPending: return "commit pending";
    case BranchState::kCommitted: return "committed";
    case BranchState::kRolledBack: return "rolled back";
    case BranchState::kRollbackFailed: return "rollback unacknowledged";
    case BranchState::kHeuristicMixed: return "HEURISTIC MIX";
  }
  return "?";
}

bool Txn::MoveBranch(BranchProgress* branch, BranchState to) {
  if (branch->state == to) return true;
  if (!IsAllowedMove(branch->state, to)) {
    LOG(ERROR) << "txn " << id << ": illegal branch move " << BranchStateName(branch->state)
               << " -> " << BranchStateName(to) << " of " << branch->participant << " refused";
    return false;
  }
  branch->state = to;
  return true;
}

}  // namespace pact
