// Protocol vocabulary shared by the coordinator, the participants and the
// client, in plain C++ (the IDL has the wire forms).
#pragma once

#include <cstdint>
#include <string>

namespace pact {

// Who sends a protocol message: a participant refuses epochs lower than the
// highest it has seen for that coordinator name.
struct Fence {
  std::string coordinator;
  int64_t epoch = 0;
};

// A branch as the client reports it at commit: where it opened, and the
// participant's name for that opening (unique per participant run), so that a
// branch whose work was lost and that opened again is never prepared for it.
struct EnlistedBranch {
  std::string participant;
  std::string opening;
};

// A participant's answer to prepare.
enum class Vote {
  kCommit,    // durable as prepared; will commit if told, whatever happens
  kAbort,     // rolled back; the transaction must abort
  kReadOnly,  // wrote nothing and is released; needs no second phase
};

// A transaction's state at its coordinator. Every change goes through
// TwoPhaseCommit::Transition (coordinator/two_phase_commit.h): journal first,
// then memory, then messages. Its table of moves says which record backs each.
enum class TxnState {
  kActive,      // begun; its branches execute statements (the coordinator learns them at commit)
  kPreparing,   // commit requested; collecting votes. No journal record yet.
  kCommitting,  // COMMIT record durable; telling the branches (retried until acked)
  kCommitted,   // every branch acknowledged (or none needed telling); no record left
  kAborting,    // decided ABORT (nothing journaled: presumed abort); telling branches
  kAborted,     // rolled back wherever it had reached
};

// What a coordinator answers a participant that asks about a prepared branch.
enum class Outcome { kCommitted, kAborted, kActive };

const char* VoteName(Vote vote);
const char* TxnStateName(TxnState state);
const char* OutcomeName(Outcome outcome);

}  // namespace pact
