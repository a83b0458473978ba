// The coordinator's journal in memory. JournalDisk is what survives the
// coordinator's crashes; SimJournal is one run's handle on it, which writes
// nothing once that run crashed. END records are lazy: they wait in memory
// until a later COMMIT record or a Flush carries them, and a crash loses them.
// Faults: a COMMIT write that fails cleanly (nothing written, kIoError) or
// ambiguously (maybe written, kUnavailable), and a LogAbort that fails.
#pragma once

#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "journal/journal.h"
#include "tests/sim/faults.h"
#include "tests/sim/history.h"
#include "tests/sim/process.h"

namespace pact::sim {

struct JournalDisk {
  int64_t epoch = 0;
  std::vector<CommitRecord> commits;  // oldest first; END removes
  std::set<std::string> aborts;       // LogAbort overrules a COMMIT record
  std::map<std::string, ParticipantRecord> participants;
  std::map<std::pair<std::string, std::string>, HeuristicRecord> heuristics;
  JournalStats stats;

  bool HasCommit(const std::string& txn_id) const;
};

class SimJournal : public Journal {
 public:
  SimJournal(JournalDisk* disk, Process* process, SimRandom* random, const Faults* faults,
             History* history);

  // Makes the lazy END records durable (a background flush in the real one).
  void Flush();
  // From now on, writes to `disk` for `process` (the zombie's private copy).
  void Fork(JournalDisk* disk, Process* process);
  Process* process() const { return process_; }

  Result<int64_t> RaiseEpoch() override;
  Status LogCommit(const CommitRecord& record) override;
  Status LogAbort(const std::string& txn_id) override;
  void LogEnd(const std::string& txn_id) override;
  Result<std::vector<CommitRecord>> LoadUnfinished() override;
  Status PutParticipant(const ParticipantRecord& participant) override;
  Result<std::vector<ParticipantRecord>> LoadParticipants() override;
  Status DeleteParticipant(const std::string& name) override;
  Status PutHeuristic(const HeuristicRecord& heuristic) override;
  Result<std::vector<HeuristicRecord>> LoadHeuristics() override;
  Status ForgetHeuristics(const std::string& txn_id) override;
  JournalStats Stats() override { return disk_->stats; }

 private:
  bool Alive() const { return process_->Alive(incarnation_); }
  // A write the process may crash at (an armed crash). Returns false when it
  // crashed; *before says whether that happened before the write.
  bool Survives(const std::string& what, bool* before);

  JournalDisk* disk_;
  Process* process_;
  int incarnation_;
  SimRandom* const random_;
  const Faults* const faults_;
  History* const history_;
  std::vector<std::string> pending_ends_;
};

}  // namespace pact::sim
