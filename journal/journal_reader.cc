#include "journal/journal_reader.h"

#include <sqlite3.h>
#include <sys/stat.h>

#include <functional>
#include <memory>

#include "journal/journal_schema.h"

namespace pact {
namespace {

struct CloseDb {
  void operator()(sqlite3* db) const { sqlite3_close(db); }
};

std::string Text(sqlite3_stmt* stmt, int column) {
  const unsigned char* text = sqlite3_column_text(stmt, column);
  return text ? reinterpret_cast<const char*>(text) : "";
}

// Runs `sql` and calls `row` for every result row.
Status ForEachRow(sqlite3* db, const std::string& path, const char* sql,
                  const std::function<void(sqlite3_stmt*)>& row) {
  sqlite3_stmt* stmt = nullptr;
  if (sqlite3_prepare_v2(db, sql, -1, &stmt, nullptr) != SQLITE_OK) {
    return Status::Corruption(path + " is not a Pact journal: " + sqlite3_errmsg(db));
  }
  int rc;
  while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) row(stmt);
  sqlite3_finalize(stmt);
  if (rc != SQLITE_DONE) return Status::Corruption(path + ": " + sqlite3_errmsg(db));
  return Status::Ok();
}

}  // namespace

Result<JournalContents> ReadJournalFile(const std::string& path) {
  struct stat st;
  if (stat(path.c_str(), &st) != 0) return Status::NotFound("no journal file at " + path);
  sqlite3* raw = nullptr;
  int rc = sqlite3_open_v2(path.c_str(), &raw, SQLITE_OPEN_READONLY, nullptr);
  std::unique_ptr<sqlite3, CloseDb> db(raw);
  if (rc != SQLITE_OK) return Status::IoError("cannot open " + path + ": " + sqlite3_errmsg(raw));

  JournalContents contents;
  bool has_meta = false;
  RETURN_NOT_OK(ForEachRow(db.get(), path,
                           "SELECT schema_version, coordinator_name, epoch FROM meta",
                           [&](sqlite3_stmt* s) {
                             has_meta = true;
                             contents.schema_version = sqlite3_column_int64(s, 0);
                             contents.coordinator_name = Text(s, 1);
                             contents.epoch = sqlite3_column_int64(s, 2);
                           }));
  if (!has_meta) return Status::Corruption(path + " has no meta row: not a Pact journal");
  RETURN_NOT_OK(ForEachRow(db.get(), path, kSelectParticipants,
                           [&](sqlite3_stmt* s) {
                             contents.participants.push_back({Text(s, 0), Text(s, 1),
                                                              sqlite3_column_int(s, 2),
                                                              Text(s, 3)});
                           }));
  // Schema 1 had no abort records; its coordinator upgrades it at start.
  const char* select_unfinished =
      contents.schema_version >= 2
          ? kSelectUnfinished
          : "SELECT txn_id, branches, decided_at_ms FROM commit_records "
            "ORDER BY decided_at_ms, txn_id";
  RETURN_NOT_OK(ForEachRow(
      db.get(), path, select_unfinished,
      [&](sqlite3_stmt* s) {
        CommitRecord record;
        record.txn_id = Text(s, 0);
        record.branches = SplitBranches(Text(s, 1));
        record.decided_at_ms = sqlite3_column_int64(s, 2);
        contents.unfinished.push_back(std::move(record));
      }));
  RETURN_NOT_OK(ForEachRow(db.get(), path, kSelectHeuristics,
                           [&](sqlite3_stmt* s) {
                             contents.heuristics.push_back({Text(s, 0), Text(s, 1),
                                                            sqlite3_column_int(s, 2) != 0,
                                                            Text(s, 3),
                                                            sqlite3_column_int64(s, 4)});
                           }));
  return contents;
}

}  // namespace pact
