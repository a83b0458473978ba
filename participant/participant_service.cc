#include "participant/participant_service.h"

#include <glog/logging.h>

#include "common/crash_point.h"
#include "common/txn_id.h"

namespace pact {
namespace {

Status NoSuchBranch(const std::string& txn_id) {
  return Status::NotFound("no branch of transaction " + txn_id +
                          " here (never executed here, or already finished)");
}

}  // namespace

ParticipantService::ParticipantService(ParticipantOptions options, Backend* backend,
                                       FenceStore* fences, CoordinatorLink* coordinator)
    : options_(std::move(options)),
      backend_(backend),
      fences_(fences),
      coordinator_(coordinator) {}

ParticipantService::~ParticipantService() { Stop(); }

Status ParticipantService::Start() {
  ASSIGN_OR_RETURN(auto recovered, backend_->RecoverPrepared());
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& r : recovered) {
      auto entry = std::make_shared<Entry>();
      entry->branch = std::move(r.branch);
      entry->phase = Phase::kPrepared;
      entry->since = SteadyClock::now() - Millis(WallMillis() - r.prepared_at_ms);
      entry->next_inquiry = SteadyClock::now();  // ask at once
      LOG(INFO) << "restored prepared branch of " << r.txn_id << "; asking its coordinator";
      branches_[r.txn_id] = std::move(entry);
    }
  }
  housekeeping_ = std::thread([this] { HousekeepingLoop(); });
  return Status::Ok();
}

void ParticipantService::Stop() {
  {
    std::lock_guard<std::mutex> lock(stop_mu_);
    stopping_ = true;
  }
  stop_cv_.notify_all();
  if (housekeeping_.joinable()) housekeeping_.join();
}

bool ParticipantService::registered() const {
  std::lock_guard<std::mutex> lock(mu_);
  return registered_;
}

std::shared_ptr<ParticipantService::Entry> ParticipantService::Lookup(const std::string& txn_id) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = branches_.find(txn_id);
  return it == branches_.end() ? nullptr : it->second;
}

void ParticipantService::Forget(const std::string& txn_id, Entry* entry) {
  entry->phase = Phase::kDone;
  entry->branch.reset();
  std::lock_guard<std::mutex> lock(mu_);
  auto it = branches_.find(txn_id);
  if (it != branches_.end() && it->second.get() == entry) branches_.erase(it);
}

Status ParticipantService::Open(const std::string& txn_id, Entry* entry) {
  ASSIGN_OR_RETURN(auto branch, backend_->Begin(txn_id));
  // Enlisting before the first statement runs means the coordinator cannot
  // commit the transaction without this branch.
  auto left_ms = coordinator_->Enlist(txn_id, name());
  if (!left_ms.ok()) {
    Status rolled_back = branch->Rollback();
    LOG_IF(WARNING, !rolled_back.ok()) << rolled_back.ToString();
    return left_ms.status().WithContext("cannot enlist in " + txn_id);
  }
  entry->branch = std::move(branch);
  entry->since = SteadyClock::now();
  entry->deadline = entry->since + Millis(*left_ms);
  return Status::Ok();
}

Result<QueryResult> ParticipantService::Execute(const std::string& txn_id,
                                                const std::string& sql,
                                                const std::vector<SqlValue>& params) {
  RETURN_NOT_OK(TxnId::Parse(txn_id).status());
  std::shared_ptr<Entry> entry;
  bool created = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto& slot = branches_[txn_id];
    if (!slot) {
      slot = std::make_shared<Entry>();
      created = true;
    }
    entry = slot;
  }
  std::lock_guard<std::mutex> lock(entry->mu);
  if (created) {
    Status opened = Open(txn_id, entry.get());
    if (!opened.ok()) {
      Forget(txn_id, entry.get());
      return opened;
    }
  }
  switch (entry->phase) {
    case Phase::kActive: break;
    case Phase::kPrepared:
      return Status::FailedPrecondition("transaction " + txn_id +
                                        " is prepared here; it accepts no more statements");
    case Phase::kDone:
      return Status::FailedPrecondition("the branch of transaction " + txn_id +
                                        " here has ended");
  }
  return entry->branch->Execute(sql, params);
}

Result<Vote> ParticipantService::Prepare(const Fence& fence, const std::string& txn_id) {
  RETURN_NOT_OK(fences_->Admit(fence.coordinator, fence.epoch));
  auto entry = Lookup(txn_id);
  if (!entry) return NoSuchBranch(txn_id);
  std::lock_guard<std::mutex> lock(entry->mu);
  if (entry->phase == Phase::kPrepared) return Vote::kCommit;  // a repeated prepare
  if (entry->phase == Phase::kDone) return NoSuchBranch(txn_id);
  std::string reason;
  auto vote = entry->branch->Prepare(&reason);
  if (!vote.ok()) {
    // Not durable as prepared: release it, the coordinator takes this as ABORT.
    Status rolled_back = entry->branch->Rollback();
    LOG_IF(WARNING, !rolled_back.ok()) << rolled_back.ToString();
    Forget(txn_id, entry.get());
    return vote.status();
  }
  switch (*vote) {
    case Vote::kCommit:
      entry->phase = Phase::kPrepared;
      entry->since = SteadyClock::now();
      entry->next_inquiry = entry->since + Millis(options_.inquiry_interval_ms);
      CrashPoint("after_prepare_durable");
      return Vote::kCommit;
    case Vote::kReadOnly:
      Forget(txn_id, entry.get());
      return Vote::kReadOnly;
    case Vote::kAbort:
      break;
  }
  Forget(txn_id, entry.get());
  LOG(WARNING) << "txn " << txn_id << ": voted ABORT: " << reason;
  return Status::Aborted(reason);
}

Status ParticipantService::CommitForgotten(const std::string& txn_id, bool one_phase) {
  ASSIGN_OR_RETURN(bool committed, backend_->IsCommitted(txn_id));
  if (committed) return Status::Ok();  // a repeated commit
  if (one_phase) {
    return Status::Aborted("the branch of transaction " + txn_id +
                           " here is gone without committing (rolled back)");
  }
  return NoSuchBranch(txn_id);
}

Status ParticipantService::Commit(const Fence& fence, const std::string& txn_id, bool one_phase) {
  RETURN_NOT_OK(fences_->Admit(fence.coordinator, fence.epoch));
  auto entry = Lookup(txn_id);
  if (!entry) return CommitForgotten(txn_id, one_phase);
  std::lock_guard<std::mutex> lock(entry->mu);
  if (entry->phase == Phase::kDone) return CommitForgotten(txn_id, one_phase);
  if (one_phase) {
    if (entry->phase == Phase::kPrepared) {
      return Status::FailedPrecondition("the branch of " + txn_id +
                                        " is prepared; a one-phase commit does not apply");
    }
    Status st = entry->branch->CommitOnePhase();
    Forget(txn_id, entry.get());
    if (!st.ok()) return Status::Aborted("one-phase commit failed and rolled back: " + st.message());
    CrashPoint("after_commit_applied");
    return Status::Ok();
  }
  if (entry->phase == Phase::kActive) {
    return Status::FailedPrecondition("the branch of " + txn_id +
                                      " is not prepared; commit needs a COMMIT vote first");
  }
  CrashPoint("before_commit_applied");
  RETURN_NOT_OK(entry->branch->CommitPrepared());  // on error it stays prepared
  CrashPoint("after_commit_applied");
  Forget(txn_id, entry.get());
  return Status::Ok();
}

Status ParticipantService::Rollback(const Fence& fence, const std::string& txn_id) {
  RETURN_NOT_OK(fences_->Admit(fence.coordinator, fence.epoch));
  auto entry = Lookup(txn_id);
  if (!entry) return Status::Ok();  // nothing held: already rolled back
  std::lock_guard<std::mutex> lock(entry->mu);
  if (entry->phase == Phase::kDone) return Status::Ok();
  RETURN_NOT_OK(entry->branch->Rollback());  // on error a prepared branch stays prepared
  CrashPoint("after_rollback_applied");
  Forget(txn_id, entry.get());
  return Status::Ok();
}

Result<std::vector<BranchSnapshot>> ParticipantService::Recover(const Fence& fence) {
  RETURN_NOT_OK(fences_->Admit(fence.coordinator, fence.epoch));
  std::vector<BranchSnapshot> prepared;
  for (auto& b : ListBranches()) {
    if (b.prepared) prepared.push_back(std::move(b));
  }
  return prepared;
}

std::vector<BranchSnapshot> ParticipantService::ListBranches() {
  std::vector<std::pair<std::string, std::shared_ptr<Entry>>> entries;
  {
    std::lock_guard<std::mutex> lock(mu_);
    entries.assign(branches_.begin(), branches_.end());
  }
  std::vector<BranchSnapshot> out;
  for (const auto& [txn_id, entry] : entries) {
    // try_lock: a listing must not wait behind a statement holding the branch.
    std::unique_lock<std::mutex> lock(entry->mu, std::try_to_lock);
    BranchSnapshot s;
    s.txn_id = txn_id;
    if (lock.owns_lock()) {
      if (entry->phase == Phase::kDone) continue;
      s.prepared = entry->phase == Phase::kPrepared;
      s.age_ms = -MillisUntil(entry->since);
      if (!s.prepared) s.deadline_in_ms = MillisUntil(entry->deadline);
    }
    out.push_back(std::move(s));
  }
  return out;
}

void ParticipantService::RollBackExpired(const std::string& txn_id,
                                         const std::shared_ptr<Entry>& entry) {
  std::lock_guard<std::mutex> lock(entry->mu);
  if (entry->phase != Phase::kActive || entry->deadline > SteadyClock::now()) return;
  // The client vanished or is too slow: release the locks it held.
  Status st = entry->branch->Rollback();
  LOG(WARNING) << "txn " << txn_id << ": rolled back the branch here, its deadline passed"
               << (st.ok() ? "" : " (rollback error: " + st.ToString() + ")");
  Forget(txn_id, entry.get());
}

void ParticipantService::ResolveByInquiry(const std::string& txn_id,
                                          const std::shared_ptr<Entry>& entry) {
  auto outcome = coordinator_->Inquire(txn_id);
  std::lock_guard<std::mutex> lock(entry->mu);
  if (entry->phase != Phase::kPrepared) return;  // decided meanwhile
  entry->next_inquiry = SteadyClock::now() + Millis(options_.inquiry_interval_ms);
  if (!outcome.ok()) {
    LOG(WARNING) << "txn " << txn_id << ": prepared here, coordinator did not answer: "
                 << outcome.status().ToString();
    return;
  }
  if (*outcome == Outcome::kActive) return;
  bool commit = *outcome == Outcome::kCommitted;
  Status st = commit ? entry->branch->CommitPrepared() : entry->branch->Rollback();
  if (!st.ok()) {
    LOG(WARNING) << "txn " << txn_id << ": " << (commit ? "commit" : "rollback")
                 << " after inquiry failed, will retry: " << st.ToString();
    return;
  }
  LOG(INFO) << "txn " << txn_id << ": coordinator says " << OutcomeName(*outcome) << "; "
            << (commit ? "committed" : "rolled back") << " the prepared branch here";
  Forget(txn_id, entry.get());
}

void ParticipantService::HousekeepingLoop() {
  std::unique_lock<std::mutex> stop_lock(stop_mu_);
  do {
    stop_lock.unlock();
    if (!registered()) {
      Status st = coordinator_->Register(options_.self);
      std::lock_guard<std::mutex> lock(mu_);
      registered_ = st.ok();
      LOG_IF(WARNING, !st.ok()) << "cannot register with the coordinator yet: " << st.ToString();
    }
    std::vector<std::pair<std::string, std::shared_ptr<Entry>>> entries;
    {
      std::lock_guard<std::mutex> lock(mu_);
      entries.assign(branches_.begin(), branches_.end());
    }
    TimePoint now = SteadyClock::now();
    for (const auto& [txn_id, entry] : entries) {
      Phase phase;
      TimePoint deadline, next_inquiry;
      {
        std::unique_lock<std::mutex> lock(entry->mu, std::try_to_lock);
        if (!lock.owns_lock()) continue;  // busy: a call is deciding it
        phase = entry->phase;
        deadline = entry->deadline;
        next_inquiry = entry->next_inquiry;
      }
      if (phase == Phase::kActive && deadline <= now) RollBackExpired(txn_id, entry);
      if (phase == Phase::kPrepared && next_inquiry <= now) ResolveByInquiry(txn_id, entry);
    }
    stop_lock.lock();
  } while (!stop_cv_.wait_for(stop_lock, Millis(options_.housekeeping_interval_ms),
                              [this] { return stopping_; }));
}

}  // namespace pact
