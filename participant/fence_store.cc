#include "participant/fence_store.h"

#include <sqlite3.h>

namespace pact {
namespace {

Status SqliteError(sqlite3* db, const std::string& what) {
  int code = sqlite3_errcode(db);
  std::string msg = what + ": " + sqlite3_errmsg(db);
  if (code == SQLITE_FULL || (code & 0xff) == SQLITE_IOERR) return Status::IoError(msg);
  if (code == SQLITE_CORRUPT || code == SQLITE_NOTADB) return Status::Corruption(msg);
  return Status::Internal(msg);
}

}  // namespace

Result<std::unique_ptr<FenceStore>> FenceStore::Open(const std::string& path) {
  sqlite3* db = nullptr;
  if (sqlite3_open(path.c_str(), &db) != SQLITE_OK) {
    Status st = SqliteError(db, "cannot open fence store " + path);
    sqlite3_close(db);
    return st;
  }
  std::unique_ptr<FenceStore> store(new FenceStore(db));
  const char* kSetup =
      "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;"
      "CREATE TABLE IF NOT EXISTS fences(coordinator TEXT PRIMARY KEY, epoch INTEGER NOT NULL)";
  if (sqlite3_exec(db, kSetup, nullptr, nullptr, nullptr) != SQLITE_OK) {
    return SqliteError(db, "cannot set up fence store " + path);
  }
  sqlite3_stmt* stmt = nullptr;
  if (sqlite3_prepare_v2(db, "SELECT coordinator, epoch FROM fences", -1, &stmt, nullptr) !=
      SQLITE_OK) {
    return SqliteError(db, "cannot read fence store " + path);
  }
  while (sqlite3_step(stmt) == SQLITE_ROW) {
    store->highest_[reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0))] =
        sqlite3_column_int64(stmt, 1);
  }
  sqlite3_finalize(stmt);
  return store;
}

FenceStore::~FenceStore() { sqlite3_close(db_); }

Status FenceStore::Admit(const std::string& coordinator, int64_t epoch) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = highest_.find(coordinator);
  if (it != highest_.end() && epoch == it->second) return Status::Ok();
  if (it != highest_.end() && epoch < it->second) {
    return Status::Fenced("coordinator " + coordinator + " epoch " + std::to_string(epoch) +
                          " was replaced by epoch " + std::to_string(it->second));
  }
  sqlite3_stmt* stmt = nullptr;
  if (sqlite3_prepare_v2(db_, "INSERT OR REPLACE INTO fences(coordinator, epoch) VALUES(?, ?)",
                         -1, &stmt, nullptr) != SQLITE_OK) {
    return SqliteError(db_, "fence store");
  }
  sqlite3_bind_text(stmt, 1, coordinator.c_str(), -1, SQLITE_TRANSIENT);
  sqlite3_bind_int64(stmt, 2, epoch);
  int rc = sqlite3_step(stmt);
  sqlite3_finalize(stmt);
  if (rc != SQLITE_DONE) return SqliteError(db_, "cannot record coordinator epoch");
  highest_[coordinator] = epoch;
  return Status::Ok();
}

}  // namespace pact
