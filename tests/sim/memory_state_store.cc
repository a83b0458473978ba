#include "tests/sim/memory_state_store.h"

namespace pact::sim {

Result<bool> MemoryStateStore::Admit(const std::string& coordinator, int64_t epoch) {
  int64_t& highest = highest_[coordinator];
  if (epoch < highest) {
    return Status::Fenced("coordinator " + coordinator + " epoch " + std::to_string(epoch) +
                          " was replaced by epoch " + std::to_string(highest));
  }
  bool raised = epoch > highest;
  highest = epoch;
  return raised;
}

int64_t MemoryStateStore::HighestEpoch(const std::string& coordinator) {
  auto it = highest_.find(coordinator);
  return it == highest_.end() ? 0 : it->second;
}

Status MemoryStateStore::RecordHeuristic(const HeuristicDecision& decision) {
  heuristics_[decision.txn_id] = decision;
  return Status::Ok();
}

std::optional<HeuristicDecision> MemoryStateStore::FindHeuristic(const std::string& txn_id) {
  auto it = heuristics_.find(txn_id);
  if (it == heuristics_.end()) return std::nullopt;
  return it->second;
}

std::vector<HeuristicDecision> MemoryStateStore::Heuristics() {
  std::vector<HeuristicDecision> out;
  for (const auto& [id, h] : heuristics_) out.push_back(h);
  return out;
}

Status MemoryStateStore::ForgetHeuristic(const std::string& txn_id) {
  heuristics_.erase(txn_id);
  return Status::Ok();
}

}  // namespace pact::sim
