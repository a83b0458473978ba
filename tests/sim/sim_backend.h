// A participant's database, scripted: a small bank of accounts. A branch's
// writes are volatile until Prepare makes them durable as prepared (held,
// invisible to others, their accounts locked) until commit or rollback;
// commit applies them durably with a commit marker. A crash loses everything
// that is not durable. Faults: a prepare that fails, a prepare that became
// durable yet answers kUnavailable (its connection is lost, like a PREPARE
// whose reply never came), a prepared commit that fails, a one-phase commit
// applied yet answering kUnavailable.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "participant/backend.h"
#include "tests/sim/faults.h"
#include "tests/sim/invariants.h"
#include "tests/sim/process.h"
#include "tests/sim/sim_clock.h"

namespace pact::sim {

// The one statement the bank runs: ?1 = account (text), ?2 = delta (integer).
// It fails with kFailedPrecondition when the balance would go negative, and
// the branch then votes ABORT.
extern const char kAddSql[];

// What survives the participant's crashes.
struct BankDisk {
  struct Prepared {
    std::map<std::string, int64_t> deltas;  // by account
    int64_t prepared_at_ms = 0;
  };
  std::map<std::string, int64_t> balances;  // by account
  std::map<std::string, Prepared> prepared;  // by txn id
  std::set<std::string> commit_markers;      // txn ids

  int64_t Total() const;
};

class SimBranch;

// One run of the participant's database connection pool; a restart makes a
// new one over the same BankDisk.
class SimBackend : public Backend {
 public:
  SimBackend(std::string participant, BankDisk* disk, const Process* process, SimRandom* random,
             const Faults* faults, Invariants* invariants, SimClock* clock);
  ~SimBackend() override;

  std::string Name() const override { return "sim"; }
  Result<std::unique_ptr<Branch>> Begin(const std::string& txn_id) override;
  Result<std::vector<RecoveredBranch>> RecoverPrepared() override;
  Result<bool> IsCommitted(const std::string& txn_id) override;
  Result<std::vector<RecoveredBranch>> FindOrphans(const std::set<std::string>& held) override;

  // The process crashed: the open branches' writes are gone.
  void LoseVolatile();

 private:
  friend class SimBranch;
  bool Alive() const { return process_->Alive(incarnation_); }
  // Whether a transaction other than `txn` holds `account`.
  bool LockedByOther(const std::string& account, const std::string& txn) const;
  std::unique_ptr<SimBranch> NewBranch(const std::string& txn_id, bool prepared);

  const std::string participant_;
  BankDisk* const disk_;
  const Process* const process_;
  const int incarnation_;
  SimRandom* const random_;
  const Faults* const faults_;
  Invariants* const invariants_;
  SimClock* const clock_;
  int64_t next_serial_ = 1;
  std::map<int64_t, SimBranch*> branches_;  // by serial (never by address: determinism)
};

}  // namespace pact::sim
