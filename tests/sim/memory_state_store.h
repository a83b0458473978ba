// A StateStore in memory. In the simulation it is the participant's disk: it
// outlives the participant's crashes, so epochs seen stay fenced off.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "participant/state_store.h"

namespace pact::sim {

class MemoryStateStore : public StateStore {
 public:
  Result<bool> Admit(const std::string& coordinator, int64_t epoch) override;
  int64_t HighestEpoch(const std::string& coordinator) override;
  Status RecordHeuristic(const HeuristicDecision& decision) override;
  std::optional<HeuristicDecision> FindHeuristic(const std::string& txn_id) override;
  std::vector<HeuristicDecision> Heuristics() override;
  Status ForgetHeuristic(const std::string& txn_id) override;

 private:
  std::map<std::string, int64_t> highest_;
  std::map<std::string, HeuristicDecision> heuristics_;
};

}  // namespace pact::sim
