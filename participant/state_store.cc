#include "participant/state_store.h"

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

// The fence rule both stores apply: equal admits, higher raises, lower is
// refused. REQUIRES: the caller's lock over `highest`.
Result<bool> AdmitInto(std::map<std::string, int64_t>& highest, const std::string& coordinator,
                       int64_t epoch) {
  auto it = highest.find(coordinator);
  if (it != highest.end() && epoch == it->second) return false;
  if (it != highest.end() && epoch < it->second) {
    return Status::Fenced("coordinator " + coordinator + " epoch " + std::to_string(epoch) +
                          " was replaced by epoch " + std::to_string(it->second));
  }
  return true;
}

}  // namespace

Result<std::unique_ptr<SqliteStateStore>> SqliteStateStore::Open(const std::string& path) {
  sqlite3* db = nullptr;
  if (sqlite3_open(path.c_str(), &db) != SQLITE_OK) {
    Status st = SqliteError(db, "cannot open state store " + path);
    sqlite3_close(db);
    return st;
  }
  std::unique_ptr<SqliteStateStore> store(new SqliteStateStore(db));
  const char* kSetup =
      "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;"
      "CREATE TABLE IF NOT EXISTS fences(coordinator TEXT PRIMARY KEY, epoch INTEGER NOT NULL);"
      "CREATE TABLE IF NOT EXISTS heuristics(txn_id TEXT PRIMARY KEY,"
      "  committed INTEGER NOT NULL, at_ms INTEGER NOT NULL)";
  if (sqlite3_exec(db, kSetup, nullptr, nullptr, nullptr) != SQLITE_OK) {
    return SqliteError(db, "cannot set up state store " + path);
  }
  sqlite3_stmt* stmt = nullptr;
  if (sqlite3_prepare_v2(db, "SELECT coordinator, epoch FROM fences", -1, &stmt, nullptr) !=
      SQLITE_OK) {
    return SqliteError(db, "cannot read state store " + path);
  }
  while (sqlite3_step(stmt) == SQLITE_ROW) {
    store->highest_[reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0))] =
        sqlite3_column_int64(stmt, 1);
  }
  sqlite3_finalize(stmt);
  if (sqlite3_prepare_v2(db, "SELECT txn_id, committed, at_ms FROM heuristics", -1, &stmt,
                         nullptr) != SQLITE_OK) {
    return SqliteError(db, "cannot read state store " + path);
  }
  while (sqlite3_step(stmt) == SQLITE_ROW) {
    HeuristicDecision h;
    h.txn_id = reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0));
    h.committed = sqlite3_column_int64(stmt, 1) != 0;
    h.at_ms = sqlite3_column_int64(stmt, 2);
    store->heuristics_[h.txn_id] = h;
  }
  sqlite3_finalize(stmt);
  return store;
}

SqliteStateStore::~SqliteStateStore() { sqlite3_close(db_); }

Status SqliteStateStore::Run(const char* sql, const std::string& text, int64_t a, int64_t b) {
  sqlite3_stmt* stmt = nullptr;
  if (sqlite3_prepare_v2(db_, sql, -1, &stmt, nullptr) != SQLITE_OK) {
    return SqliteError(db_, "state store");
  }
  sqlite3_bind_text(stmt, 1, text.c_str(), -1, SQLITE_TRANSIENT);
  if (sqlite3_bind_parameter_count(stmt) >= 2) sqlite3_bind_int64(stmt, 2, a);
  if (sqlite3_bind_parameter_count(stmt) >= 3) sqlite3_bind_int64(stmt, 3, b);
  int rc = sqlite3_step(stmt);
  sqlite3_finalize(stmt);
  if (rc != SQLITE_DONE) return SqliteError(db_, "state store write");
  return Status::Ok();
}

Result<bool> SqliteStateStore::Admit(const std::string& coordinator, int64_t epoch) {
  std::lock_guard<std::mutex> lock(mu_);
  ASSIGN_OR_RETURN(bool raise, AdmitInto(highest_, coordinator, epoch));
  if (!raise) return false;
  RETURN_NOT_OK(Run("INSERT OR REPLACE INTO fences(coordinator, epoch) VALUES(?, ?)",
                    coordinator, epoch));
  highest_[coordinator] = epoch;
  return true;
}

int64_t SqliteStateStore::HighestEpoch(const std::string& coordinator) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = highest_.find(coordinator);
  return it == highest_.end() ? 0 : it->second;
}

Status SqliteStateStore::RecordHeuristic(const HeuristicDecision& decision) {
  std::lock_guard<std::mutex> lock(mu_);
  RETURN_NOT_OK(Run("INSERT OR REPLACE INTO heuristics(txn_id, committed, at_ms) VALUES(?, ?, ?)",
                    decision.txn_id, decision.committed ? 1 : 0, decision.at_ms));
  heuristics_[decision.txn_id] = decision;
  return Status::Ok();
}

std::optional<HeuristicDecision> SqliteStateStore::FindHeuristic(const std::string& txn_id) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = heuristics_.find(txn_id);
  if (it == heuristics_.end()) return std::nullopt;
  return it->second;
}

std::vector<HeuristicDecision> SqliteStateStore::Heuristics() {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<HeuristicDecision> out;
  for (const auto& [id, h] : heuristics_) out.push_back(h);
  return out;
}

Status SqliteStateStore::ForgetHeuristic(const std::string& txn_id) {
  std::lock_guard<std::mutex> lock(mu_);
  RETURN_NOT_OK(Run("DELETE FROM heuristics WHERE txn_id = ?", txn_id));
  heuristics_.erase(txn_id);
  return Status::Ok();
}

Result<bool> MemoryStateStore::Admit(const std::string& coordinator, int64_t epoch) {
  std::lock_guard<std::mutex> lock(mu_);
  ASSIGN_OR_RETURN(bool raise, AdmitInto(highest_, coordinator, epoch));
  if (raise) highest_[coordinator] = epoch;
  return raise;
}

int64_t MemoryStateStore::HighestEpoch(const std::string& coordinator) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = highest_.find(coordinator);
  return it == highest_.end() ? 0 : it->second;
}

Status MemoryStateStore::RecordHeuristic(const HeuristicDecision& decision) {
  std::lock_guard<std::mutex> lock(mu_);
  heuristics_[decision.txn_id] = decision;
  return Status::Ok();
}

std::optional<HeuristicDecision> MemoryStateStore::FindHeuristic(const std::string& txn_id) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = heuristics_.find(txn_id);
  if (it == heuristics_.end()) return std::nullopt;
  return it->second;
}

std::vector<HeuristicDecision> MemoryStateStore::Heuristics() {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<HeuristicDecision> out;
  for (const auto& [id, h] : heuristics_) out.push_back(h);
  return out;
}

Status MemoryStateStore::ForgetHeuristic(const std::string& txn_id) {
  std::lock_guard<std::mutex> lock(mu_);
  heuristics_.erase(txn_id);
  return Status::Ok();
}

}  // namespace pact
