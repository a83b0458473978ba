#include "common/protocol.h"

namespace pact {

const char* VoteName(Vote vote) {
  switch (vote) {
    case Vote::kCommit: return "COMMIT";
    case Vote::kAbort: return "ABORT";
    case Vote::kReadOnly: return "READ_ONLY";
  }
  return "?";
}

const char* TxnStateName(TxnState state) {
  switch (state) {
    case TxnState::kActive: return "ACTIVE";
    case TxnState::kPreparing: return "PREPARING";
    case TxnState::kCommitting: return "COMMITTING";
    case TxnState::kCommitted: return "COMMITTED";
    case TxnState::kAborting: return "ABORTING";
    case TxnState::kAborted: return "ABORTED";
  }
  return "?";
}

const char* OutcomeName(Outcome outcome) {
  switch (outcome) {
    case Outcome::kCommitted: return "COMMITTED";
    case Outcome::kAborted: return "ABORTED";
    case Outcome::kActive: return "ACTIVE";
  }
  return "?";
}

}  // namespace pact
