// Reads a journal file with no coordinator running, for `pactctl journal`:
// what an operator needs after a crash before deciding anything by hand.
#pragma once

#include <string>
#include <vector>

#include "common/status.h"
#include "journal/journal.h"

namespace pact {

struct JournalContents {
  std::string coordinator_name;
  int64_t schema_version = 0;
  int64_t epoch = 0;
  std::vector<ParticipantRecord> participants;
  std::vector<CommitRecord> unfinished;  // COMMIT decisions not yet acknowledged everywhere
  std::vector<HeuristicRecord> heuristics;
};

// Opens the file read-only (never creates or changes it). kNotFound when it
// does not exist; kCorruption when it is not a Pact journal.
Result<JournalContents> ReadJournalFile(const std::string& path);

}  // namespace pact
