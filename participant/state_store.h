// The adapter's own durable state, apart from the database it fronts:
// - the highest epoch seen per coordinator name, so that a replaced
//   coordinator stays fenced off even after this process restarts;
// - heuristic decisions operators made here, until they are reconciled with
//   the coordinator's decision.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "common/status.h"
#include "sqlite/sqlite.h"

namespace pact {

struct HeuristicDecision {
  std::string txn_id;
  bool committed = false;  // what the operator did
  int64_t at_ms = 0;       // wall clock
};

class StateStore {
 public:
  virtual ~StateStore() = default;

  // OK when `epoch` is at least the highest seen for `coordinator`; a higher
  // one is made durable first, and then the answer is true ("raised").
  // kFenced when it is lower.
  virtual Result<bool> Admit(const std::string& coordinator, int64_t epoch) = 0;
  // The highest epoch admitted for `coordinator`; 0 if none.
  virtual int64_t HighestEpoch(const std::string& coordinator) = 0;

  // Durable on return.
  virtual Status RecordHeuristic(const HeuristicDecision& decision) = 0;
  virtual std::optional<HeuristicDecision> FindHeuristic(const std::string& txn_id) = 0;
  virtual std::vector<HeuristicDecision> Heuristics() = 0;
  virtual Status ForgetHeuristic(const std::string& txn_id) = 0;
};

// The state in memory: "durable" for as long as the object lives. For tests
// and the simulation, which decide themselves what survives a crash.
class MemoryStateStore : public StateStore {
 public:
  Result<bool> Admit(const std::string& coordinator, int64_t epoch) override;
  int64_t HighestEpoch(const std::string& coordinator) override;
  Status RecordHeuristic(const HeuristicDecision& decision) override;
  std::optional<HeuristicDecision> FindHeuristic(const std::string& txn_id) override;
  std::vector<HeuristicDecision> Heuristics() override;
  Status ForgetHeuristic(const std::string& txn_id) override;

 private:
  std::mutex mu_;
  std::map<std::string, int64_t> highest_;               // guarded by mu_
  std::map<std::string, HeuristicDecision> heuristics_;  // guarded by mu_
};

// The state in a SQLite file of its own (WAL, synchronous=FULL).
class SqliteStateStore : public StateStore {
 public:
  static Result<std::unique_ptr<SqliteStateStore>> Open(const std::string& path);
  ~SqliteStateStore() override;

  Result<bool> Admit(const std::string& coordinator, int64_t epoch) override;
  int64_t HighestEpoch(const std::string& coordinator) override;
  Status RecordHeuristic(const HeuristicDecision& decision) override;
  std::optional<HeuristicDecision> FindHeuristic(const std::string& txn_id) override;
  std::vector<HeuristicDecision> Heuristics() override;
  Status ForgetHeuristic(const std::string& txn_id) override;

 private:
  explicit SqliteStateStore(SqliteConnection db) : db_(std::move(db)) {}

  std::mutex mu_;
  SqliteConnection db_;                                    // guarded by mu_
  std::map<std::string, int64_t> highest_;                 // guarded by mu_
  std::map<std::string, HeuristicDecision> heuristics_;    // guarded by mu_
};

}  // namespace pact
