#include "journal/journal_reader.h"

#include <sqlite3.h>
#include <sys/stat.h>

#include <utility>

#include "journal/journal_schema.h"

namespace pact {
namespace {

// Decodes the rows of `sql` with `read`; a query that does not prepare means
// the file lacks a table or column a Pact journal has.
template <typename Records>
Status ReadTable(SqliteConnection* db, const std::string& path, const char* sql,
                 Result<Records> (*read)(SqliteStatement*), Records* out) {
  Result<SqliteStatement> stmt = db->Prepare(sql);
  if (!stmt.ok()) {
    return Status::Corruption(path + " is not a Pact journal: " + stmt.status().message());
  }
  Result<Records> records = read(&*stmt);
  if (!records.ok()) return Status::Corruption(path + ": " + records.status().message());
  *out = std::move(records).value();
  return Status::Ok();
}

}  // namespace

Result<JournalContents> ReadJournalFile(const std::string& path) {
  struct stat st;
  if (stat(path.c_str(), &st) != 0) return Status::NotFound("no journal file at " + path);
  Result<SqliteConnection> db = SqliteConnection::Open(path, SQLITE_OPEN_READONLY);
  if (!db.ok()) return Status::IoError("cannot open " + path + ": " + db.status().message());

  Result<std::optional<JournalMeta>> meta = ReadJournalMeta(&*db);
  if (!meta.ok()) {
    return Status::Corruption(path + " is not a Pact journal: " + meta.status().message());
  }
  if (!meta->has_value()) return Status::Corruption(path + " has no meta row: not a Pact journal");
  JournalContents contents;
  contents.schema_version = (*meta)->schema_version;
  contents.coordinator_name = (*meta)->coordinator_name;
  contents.epoch = (*meta)->epoch;
  RETURN_NOT_OK(
      ReadTable(&*db, path, kSelectParticipants, &ReadParticipants, &contents.participants));
  const char* select_unfinished =
      contents.schema_version >= 2 ? kSelectUnfinished : kSelectUnfinishedSchema1;
  RETURN_NOT_OK(
      ReadTable(&*db, path, select_unfinished, &ReadCommitRecords, &contents.unfinished));
  RETURN_NOT_OK(ReadTable(&*db, path, kSelectHeuristics, &ReadHeuristics, &contents.heuristics));
  return contents;
}

}  // namespace pact
