#include "participant/state_store.h"

#include <sqlite3.h>

namespace pact {
namespace {

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
  Result<SqliteConnection> db =
      SqliteConnection::Open(path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
  if (!db.ok()) return db.status().WithContext("cannot open state store " + path);
  std::unique_ptr<SqliteStateStore> store(new SqliteStateStore(std::move(db).value()));
  SqliteConnection& conn = store->db_;
  const char* kSetup =
      "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;"
      "CREATE TABLE IF NOT EXISTS fences(coordinator TEXT PRIMARY KEY, epoch INTEGER NOT NULL);"
      "CREATE TABLE IF NOT EXISTS heuristics(txn_id TEXT PRIMARY KEY,"
      "  committed INTEGER NOT NULL, at_ms INTEGER NOT NULL)";
  RETURN_NOT_OK(conn.Exec(kSetup).WithContext("cannot set up state store " + path));
  RETURN_NOT_OK(conn.Run("SELECT coordinator, epoch FROM fences", {},
                         [&](const SqliteStatement& row) {
                           store->highest_[row.Text(0)] = row.Int64(1);
                         })
                    .WithContext("cannot read state store " + path));
  RETURN_NOT_OK(conn.Run("SELECT txn_id, committed, at_ms FROM heuristics", {},
                         [&](const SqliteStatement& row) {
                           HeuristicDecision h{row.Text(0), row.Int64(1) != 0, row.Int64(2)};
                           store->heuristics_[h.txn_id] = h;
                         })
                    .WithContext("cannot read state store " + path));
  return store;
}

SqliteStateStore::~SqliteStateStore() = default;

Result<bool> SqliteStateStore::Admit(const std::string& coordinator, int64_t epoch) {
  std::lock_guard<std::mutex> lock(mu_);
  ASSIGN_OR_RETURN(bool raise, AdmitInto(highest_, coordinator, epoch));
  if (!raise) return false;
  RETURN_NOT_OK(db_.Run("INSERT OR REPLACE INTO fences(coordinator, epoch) VALUES(?, ?)",
                        {coordinator, epoch})
                    .WithContext("state store write"));
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
  RETURN_NOT_OK(
      db_.Run("INSERT OR REPLACE INTO heuristics(txn_id, committed, at_ms) VALUES(?, ?, ?)",
              {decision.txn_id, int64_t{decision.committed ? 1 : 0}, decision.at_ms})
          .WithContext("state store write"));
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
  RETURN_NOT_OK(db_.Run("DELETE FROM heuristics WHERE txn_id = ?", {txn_id})
                    .WithContext("state store write"));
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
