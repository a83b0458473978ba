#include "tests/sim/sim_backend.h"

namespace pact::sim {

const char kAddSql[] = "UPDATE accounts SET balance = balance + ?2 WHERE id = ?1";

int64_t BankDisk::Total() const {
  int64_t total = 0;
  for (const auto& [account, balance] : balances) total += balance;
  return total;
}

class SimBranch : public Branch {
 public:
  enum class State { kActive, kPrepared, kDone };

  SimBranch(SimBackend* backend, int64_t serial, std::string txn_id, State state)
      : backend_(backend), serial_(serial), txn_(std::move(txn_id)), state_(state) {
    backend_->branches_[serial_] = this;
  }
  ~SimBranch() override { backend_->branches_.erase(serial_); }

  const std::string& txn() const { return txn_; }
  State state() const { return state_; }
  const std::map<std::string, int64_t>& deltas() const { return deltas_; }

  Result<QueryResult> Execute(const std::string& sql, const std::vector<SqlValue>& params) override {
    RETURN_NOT_OK(Usable());
    if (state_ != State::kActive) return Status::FailedPrecondition("branch is not active");
    if (sql != kAddSql || params.size() != 2 || !std::holds_alternative<std::string>(params[0]) ||
        !std::holds_alternative<int64_t>(params[1])) {
      return Status::InvalidArgument("the bank only runs: " + std::string(kAddSql));
    }
    const std::string& account = std::get<std::string>(params[0]);
    int64_t delta = std::get<int64_t>(params[1]);
    auto balance = backend_->disk_->balances.find(account);
    if (balance == backend_->disk_->balances.end()) {
      return Status::InvalidArgument("no account " + account);
    }
    if (backend_->LockedByOther(account, txn_)) {
      return Status::Busy("account " + account + " is locked by another transaction");
    }
    if (balance->second + deltas_[account] + delta < 0) {
      doomed_ = "insufficient funds in " + account;
      return Status::FailedPrecondition(doomed_);
    }
    deltas_[account] += delta;
    backend_->invariants_->Wrote(txn_, backend_->participant_);
    QueryResult result;
    result.affected_rows = 1;
    return result;
  }

  Result<Vote> Prepare(std::string* abort_reason) override {
    RETURN_NOT_OK(Usable());
    if (state_ != State::kActive) return Status::FailedPrecondition("branch is not active");
    if (!doomed_.empty()) {
      *abort_reason = doomed_;
      Discard();
      return Vote::kAbort;
    }
    if (deltas_.empty()) {
      state_ = State::kDone;
      return Vote::kReadOnly;
    }
    BankDisk* disk = backend_->disk_;
    if (disk->prepared.count(txn_) > 0) {
      return Status::FailedPrecondition("a prepared branch of " + txn_ + " exists already");
    }
    const Faults& faults = *backend_->faults_;
    if (backend_->random_->Chance(faults.prepare_failure)) {
      return Status::Unavailable("sim: prepare failed before it was durable");
    }
    disk->prepared[txn_] = {deltas_, backend_->clock_->WallMillis()};
    backend_->invariants_->Prepared(txn_, backend_->participant_);
    if (backend_->random_->Chance(faults.prepare_ambiguous)) {
      // The database prepared it; the connection broke before the answer.
      broken_ = true;
      state_ = State::kDone;
      return Status::Unavailable("sim: connection lost during PREPARE");
    }
    state_ = State::kPrepared;
    return Vote::kCommit;
  }

  Status CommitOnePhase() override {
    RETURN_NOT_OK(Usable());
    if (state_ != State::kActive) return Status::FailedPrecondition("branch is not active");
    if (!doomed_.empty()) {
      Discard();
      return Status::Aborted(doomed_);
    }
    BankDisk* disk = backend_->disk_;
    for (const auto& [account, delta] : deltas_) disk->balances[account] += delta;
    disk->commit_markers.insert(txn_);
    if (!deltas_.empty()) backend_->invariants_->Committed(txn_, backend_->participant_);
    state_ = State::kDone;
    if (backend_->random_->Chance(backend_->faults_->one_phase_ambiguous)) {
      broken_ = true;
      return Status::Unavailable("sim: connection lost during COMMIT");
    }
    return Status::Ok();
  }

  Status CommitPrepared() override {
    RETURN_NOT_OK(Usable());
    if (state_ != State::kPrepared) return Status::FailedPrecondition("branch is not prepared");
    if (backend_->random_->Chance(backend_->faults_->commit_failure)) {
      return Status::Unavailable("sim: COMMIT PREPARED failed; still prepared");
    }
    BankDisk* disk = backend_->disk_;
    for (const auto& [account, delta] : disk->prepared[txn_].deltas) {
      disk->balances[account] += delta;
    }
    disk->prepared.erase(txn_);
    disk->commit_markers.insert(txn_);
    backend_->invariants_->Committed(txn_, backend_->participant_);
    state_ = State::kDone;
    return Status::Ok();
  }

  Status Rollback() override {
    RETURN_NOT_OK(Usable());
    if (state_ == State::kPrepared) {
      backend_->disk_->prepared.erase(txn_);
      backend_->invariants_->RolledBack(txn_, backend_->participant_);
      state_ = State::kDone;
    } else if (state_ == State::kActive) {
      Discard();
    }
    return Status::Ok();
  }

  // The process crashed under an active branch.
  void Lose() {
    if (state_ == State::kActive) Discard();
  }

 private:
  Status Usable() const {
    if (!backend_->Alive()) return Status::Unavailable("sim: the database's process is down");
    if (broken_) return Status::Unavailable("sim: connection lost");
    return Status::Ok();
  }
  // Rolls back an active branch.
  void Discard() {
    if (!deltas_.empty()) backend_->invariants_->RolledBack(txn_, backend_->participant_);
    deltas_.clear();
    state_ = State::kDone;
  }

  SimBackend* const backend_;
  const int64_t serial_;
  const std::string txn_;
  State state_;
  std::map<std::string, int64_t> deltas_;  // active only
  std::string doomed_;                     // why it must vote ABORT
  bool broken_ = false;
};

SimBackend::SimBackend(std::string participant, BankDisk* disk, const Process* process,
                       SimRandom* random, const Faults* faults, Invariants* invariants,
                       SimClock* clock)
    : participant_(std::move(participant)),
      disk_(disk),
      process_(process),
      incarnation_(process->incarnation()),
      random_(random),
      faults_(faults),
      invariants_(invariants),
      clock_(clock) {}

SimBackend::~SimBackend() = default;

std::unique_ptr<SimBranch> SimBackend::NewBranch(const std::string& txn_id, bool prepared) {
  return std::make_unique<SimBranch>(
      this, next_serial_++, txn_id,
      prepared ? SimBranch::State::kPrepared : SimBranch::State::kActive);
}

Result<std::unique_ptr<Branch>> SimBackend::Begin(const std::string& txn_id) {
  if (!Alive()) return Status::Unavailable("sim: the database's process is down");
  return std::unique_ptr<Branch>(NewBranch(txn_id, false));
}

Result<std::vector<RecoveredBranch>> SimBackend::RecoverPrepared() {
  std::vector<RecoveredBranch> out;
  for (const auto& [txn, prepared] : disk_->prepared) {
    out.push_back({txn, prepared.prepared_at_ms, NewBranch(txn, true)});
  }
  return out;
}

Result<bool> SimBackend::IsCommitted(const std::string& txn_id) {
  if (!Alive()) return Status::Unavailable("sim: the database's process is down");
  return disk_->commit_markers.count(txn_id) > 0;
}

Result<std::vector<RecoveredBranch>> SimBackend::FindOrphans(const std::set<std::string>& held) {
  if (!Alive()) return Status::Unavailable("sim: the database's process is down");
  std::vector<RecoveredBranch> out;
  for (const auto& [txn, prepared] : disk_->prepared) {
    if (held.count(txn) == 0) out.push_back({txn, prepared.prepared_at_ms, NewBranch(txn, true)});
  }
  return out;
}

bool SimBackend::LockedByOther(const std::string& account, const std::string& txn) const {
  for (const auto& [serial, branch] : branches_) {
    if (branch->txn() != txn && branch->state() == SimBranch::State::kActive &&
        branch->deltas().count(account) > 0) {
      return true;
    }
  }
  for (const auto& [other, prepared] : disk_->prepared) {
    if (other != txn && prepared.deltas.count(account) > 0) return true;
  }
  return false;
}

void SimBackend::LoseVolatile() {
  for (const auto& [serial, branch] : branches_) branch->Lose();
}

}  // namespace pact::sim
