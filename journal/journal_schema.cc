#include "journal/journal_schema.h"

#include <utility>

namespace pact {
namespace {

std::string JoinBranches(const std::vector<std::string>& branches) {
  std::string joined;
  for (const std::string& b : branches) {
    if (!joined.empty()) joined += ',';
    joined += b;
  }
  return joined;
}

// Runs `select` and decodes each row with `decode`.
template <typename Record, typename Decode>
Result<std::vector<Record>> ReadAll(SqliteStatement* select, Decode decode) {
  std::vector<Record> records;
  RETURN_NOT_OK(select->Run([&](const SqliteStatement& row) { records.push_back(decode(row)); }));
  return records;
}

}  // namespace

std::vector<std::string> SplitBranches(const std::string& joined) {
  std::vector<std::string> branches;
  size_t start = 0;
  while (start < joined.size()) {
    size_t comma = joined.find(',', start);
    if (comma == std::string::npos) comma = joined.size();
    branches.push_back(joined.substr(start, comma - start));
    start = comma + 1;
  }
  return branches;
}

Result<std::optional<JournalMeta>> ReadJournalMeta(SqliteConnection* db) {
  ASSIGN_OR_RETURN(SqliteStatement select,
                   db->Prepare(kSelectMeta));
  std::optional<JournalMeta> meta;
  RETURN_NOT_OK(select.Run([&](const SqliteStatement& row) {
    meta = JournalMeta{row.Int64(0), row.Text(1), row.Int64(2)};
  }));
  return meta;
}

Status BindCommitRecord(SqliteStatement* insert, const CommitRecord& record, int64_t now_ms) {
  return insert->BindAll({record.txn_id, JoinBranches(record.branches),
                          record.decided_at_ms != 0 ? record.decided_at_ms : now_ms});
}

Status BindParticipant(SqliteStatement* insert, const ParticipantRecord& participant) {
  return insert->BindAll({participant.name, participant.host, int64_t{participant.port},
                          participant.backend});
}

Status BindHeuristic(SqliteStatement* insert, const HeuristicRecord& h) {
  return insert->BindAll(
      {h.txn_id, h.participant, int64_t{h.committed ? 1 : 0}, h.decision, h.at_ms});
}

Result<std::vector<CommitRecord>> ReadCommitRecords(SqliteStatement* select) {
  return ReadAll<CommitRecord>(select, [](const SqliteStatement& row) {
    return CommitRecord{row.Text(0), SplitBranches(row.Text(1)), row.Int64(2)};
  });
}

Result<std::vector<ParticipantRecord>> ReadParticipants(SqliteStatement* select) {
  return ReadAll<ParticipantRecord>(select, [](const SqliteStatement& row) {
    return ParticipantRecord{row.Text(0), row.Text(1), static_cast<int>(row.Int64(2)),
                             row.Text(3)};
  });
}

Result<std::vector<HeuristicRecord>> ReadHeuristics(SqliteStatement* select) {
  return ReadAll<HeuristicRecord>(select, [](const SqliteStatement& row) {
    return HeuristicRecord{row.Text(0), row.Text(1), row.Int64(2) != 0, row.Text(3),
                           row.Int64(4)};
  });
}

}  // namespace pact
