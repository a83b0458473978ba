#include "tests/sim/sim_journal.h"

#include <algorithm>

namespace pact::sim {
namespace {
const Status kDown = Status::IoError("sim: the coordinator's process is down");
}

bool JournalDisk::HasCommit(const std::string& txn_id) const {
  return std::any_of(commits.begin(), commits.end(),
                     [&](const CommitRecord& r) { return r.txn_id == txn_id; });
}

SimJournal::SimJournal(JournalDisk* disk, Process* process, SimRandom* random,
                       const Faults* faults, History* history)
    : disk_(disk),
      process_(process),
      incarnation_(process->incarnation()),
      random_(random),
      faults_(faults),
      history_(history) {}

void SimJournal::Fork(JournalDisk* disk, Process* process) {
  disk_ = disk;
  process_ = process;
  incarnation_ = process->incarnation();
}

bool SimJournal::Survives(const std::string& what, bool* before) {
  *before = false;
  if (!process_->CountEvent()) return true;
  *before = random_->Chance(0.5);
  process_->Crash(std::string("at its journal write ") + what +
                  (*before ? " (not written)" : " (written)"));
  return false;
}

Result<int64_t> SimJournal::RaiseEpoch() {
  if (!Alive()) return kDown;
  bool before;
  if (!Survives("epoch", &before)) {
    if (!before) disk_->epoch++;
    return kDown;
  }
  return ++disk_->epoch;
}

Status SimJournal::LogCommit(const CommitRecord& record) {
  if (!Alive()) return kDown;
  bool before;
  auto write = [&] {
    disk_->commits.push_back(record);
    disk_->stats.commit_records++;
    disk_->stats.fsync_batches++;
  };
  if (!Survives("COMMIT " + record.txn_id, &before)) {
    if (!before) write();
    return kDown;
  }
  if (random_->Chance(faults_->journal_clean_failure)) {
    history_->Add("journal: COMMIT " + record.txn_id + " fails cleanly (not written)");
    return Status::IoError("sim: disk full");
  }
  if (random_->Chance(faults_->journal_ambiguous_failure)) {
    bool written = random_->Chance(0.5);
    if (written) write();
    history_->Add("journal: COMMIT " + record.txn_id + " fails ambiguously (" +
                  (written ? "written" : "not written") + ")");
    return Status::Unavailable("sim: fsync failed");
  }
  write();
  Flush();
  return Status::Ok();
}

Status SimJournal::LogAbort(const std::string& txn_id) {
  if (!Alive()) return kDown;
  bool before;
  if (!Survives("ABORT " + txn_id, &before)) {
    if (!before) disk_->aborts.insert(txn_id);
    return kDown;
  }
  if (random_->Chance(faults_->journal_abort_failure)) {
    history_->Add("journal: ABORT " + txn_id + " fails");
    return Status::IoError("sim: abort record not written");
  }
  disk_->aborts.insert(txn_id);
  return Status::Ok();
}

void SimJournal::LogEnd(const std::string& txn_id) {
  if (Alive()) pending_ends_.push_back(txn_id);
}

void SimJournal::Flush() {
  if (!Alive()) return;
  for (const auto& id : pending_ends_) {
    auto& c = disk_->commits;
    c.erase(std::remove_if(c.begin(), c.end(), [&](const CommitRecord& r) { return r.txn_id == id; }),
            c.end());
  }
  pending_ends_.clear();
}

Result<std::vector<CommitRecord>> SimJournal::LoadUnfinished() {
  if (!Alive()) return kDown;
  std::vector<CommitRecord> out;
  for (const auto& r : disk_->commits) {
    if (disk_->aborts.count(r.txn_id) == 0) out.push_back(r);
  }
  return out;
}

Status SimJournal::PutParticipant(const ParticipantRecord& participant) {
  if (!Alive()) return kDown;
  disk_->participants[participant.name] = participant;
  return Status::Ok();
}

Result<std::vector<ParticipantRecord>> SimJournal::LoadParticipants() {
  if (!Alive()) return kDown;
  std::vector<ParticipantRecord> out;
  for (const auto& [name, p] : disk_->participants) out.push_back(p);
  return out;
}

Status SimJournal::DeleteParticipant(const std::string& name) {
  if (!Alive()) return kDown;
  disk_->participants.erase(name);
  return Status::Ok();
}

Status SimJournal::PutHeuristic(const HeuristicRecord& heuristic) {
  if (!Alive()) return kDown;
  disk_->heuristics[{heuristic.txn_id, heuristic.participant}] = heuristic;
  return Status::Ok();
}

Result<std::vector<HeuristicRecord>> SimJournal::LoadHeuristics() {
  if (!Alive()) return kDown;
  std::vector<HeuristicRecord> out;
  for (const auto& [key, h] : disk_->heuristics) out.push_back(h);
  return out;
}

Status SimJournal::ForgetHeuristics(const std::string& txn_id) {
  if (!Alive()) return kDown;
  bool found = false;
  for (auto it = disk_->heuristics.begin(); it != disk_->heuristics.end();) {
    if (it->first.first == txn_id) {
      it = disk_->heuristics.erase(it);
      found = true;
    } else {
      ++it;
    }
  }
  return found ? Status::Ok() : Status::NotFound("no heuristic records for " + txn_id);
}

}  // namespace pact::sim
