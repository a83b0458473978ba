// The properties every run must keep, checked as effects happen (cheap ones)
// and once the run has settled (the rest). Effects are reported by the
// simulated backends; clients report what they were told.
#pragma once

#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "common/protocol.h"
#include "common/status.h"
#include "tests/sim/history.h"

namespace pact::sim {

// What a client was told about its transaction.
enum class Told { kNothing, kCommitted, kAborted, kTimedOut, kRolledBack, kUnknown };
const char* ToldName(Told told);

class Invariants {
 public:
  explicit Invariants(History* history) : history_(history) {}

  // The highest epoch a participant has admitted for the coordinator.
  std::function<int64_t(const std::string& participant)> highest_epoch;

  // --- effects at participants, as their databases apply them
  void Wrote(const std::string& txn, const std::string& participant);
  void Prepared(const std::string& txn, const std::string& participant);
  void Committed(const std::string& txn, const std::string& participant);
  // A branch that had written something lost it (rollback, or a crash).
  void RolledBack(const std::string& txn, const std::string& participant);

  // The network delivers a coordinator's message carrying `fence` to a
  // participant: effects meanwhile are that message's (a message of a
  // superseded epoch, e.g. the zombie's, must have none).
  // A forged message (a stranger's made-up fence) must have no effect at
  // all, and must be refused.
  void BeginDelivery(const std::string& participant, const Fence& fence, bool forged = false);
  void EndDelivery(const Status& answer);
  // The participant crashed: what it loses now is the crash's doing, not
  // that of the message it was handling.
  void Crashed(const std::string& participant);
  int64_t fenced_answers() const { return fenced_answers_; }
  // Whether a participant is handling a coordinator's message right now.
  bool delivering() const { return !deliveries_.empty(); }

  // --- clients
  void Tell(const std::string& txn, Told told);

  // --- after the run settled
  void CheckOutcomes();
  void Violation(const std::string& what);
  const std::vector<std::string>& violations() const { return violations_; }

 private:
  struct Txn {
    std::set<std::string> wrote, committed, rolled_back;
    Told told = Told::kNothing;
  };
  // An effect at `participant` while a superseded epoch's message is delivered.
  void CheckFence(const std::string& txn, const std::string& participant, const char* effect);
  static std::string Names(const std::set<std::string>& names);

  History* history_;
  std::map<std::string, Txn> txns_;
  struct Delivery {
    std::string participant;
    Fence fence;
    bool forged = false;
    bool crashed = false;  // the participant crashed while handling it
  };
  std::vector<Delivery> deliveries_;  // nested deliveries, innermost last
  int64_t fenced_answers_ = 0;        // messages the participants refused as superseded
  std::vector<std::string> violations_;
};

}  // namespace pact::sim
