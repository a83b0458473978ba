// One application transaction: begin, debit one account, credit another
// (sometimes at the same participant: one phase), then commit with the
// branches it opened, as the client library does; sometimes it overdraws and
// must abort, sometimes the application rolls back. Each Step is one action;
// what the client was told goes to the invariants.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "tests/sim/invariants.h"
#include "tests/sim/sim_links.h"
#include "tests/sim/sim_random.h"

namespace pact::sim {

struct TransferPlan {
  std::string from, from_account;  // participant and account debited
  std::string to, to_account;      // credited
  int64_t amount = 0;
  int64_t timeout_ms = 0;
  bool credit_first = false;
  bool application_rollback = false;
  bool commit_after_overdraft = false;  // the application commits anyway: must abort
  bool return_at_decision = false;      // commit answers once the decision is durable
  bool reserved_id = false;             // begins from a reserved id, not with Begin
  // Steps at which a begin, or an unanswered commit, is tried before giving
  // up (an HA run's clients wait out a take-over).
  int begin_attempts = 4;
  int commit_attempts = 3;
};

class TransferClient {
 public:
  TransferClient(int id, TransferPlan plan, SimNetwork* network, Directory* directory,
                 Invariants* invariants, History* history);

  bool done() const { return stage_ == Stage::kDone; }
  Told told() const { return told_; }
  void Step();

 private:
  enum class Stage { kBegin, kFirst, kSecond, kCommit, kRollback, kDone };
  void Execute(bool first);
  void Commit();
  void Rollback();
  void Tell(Told told);
  // The branches as the client library reports them at commit (with their
  // openings) or rollback (every participant a statement went to).
  std::vector<EnlistedBranch> Branches(bool for_commit) const;
  // Whether the transaction is the awake zombie's: its client still talks to it.
  bool AtZombie() const;
  std::string Name() const;

  const int id_;
  const TransferPlan plan_;
  SimNetwork* const network_;
  Directory* const directory_;
  Invariants* const invariants_;
  History* const history_;
  Stage stage_ = Stage::kBegin;
  std::string txn_;
  int begin_attempts_ = 0;
  int commit_attempts_ = 0;
  bool overdrawn_ = false;
  std::map<std::string, std::string> openings_;  // by participant; "" while unknown
  Told told_ = Told::kNothing;
};

}  // namespace pact::sim
