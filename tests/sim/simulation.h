// One seeded run: a coordinator and three participants (each a small bank)
// over the simulated network, clock and disks; concurrent transfers; faults,
// crashes, restarts and zombie coordinators (a frozen old run that wakes and
// carries on with its old epoch); then every fault healed, ticks until quiet, and the
// invariants checked. The same seed always gives the same run.
// An HA run (`ha`) has two or three coordinator members of one shard
// elected in a simulated ZooKeeper instead (ShardMembers), with their own
// faults: kill -9 of actives and standbys, paused and stopped actives,
// ZooKeeper lost.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace pact::sim {

struct SimulationResult {
  uint64_t seed = 0;
  std::vector<std::string> violations;  // empty: the run kept every invariant
  std::vector<std::string> history;
  std::map<std::string, int64_t> counts;  // what the run exercised
};

SimulationResult RunSimulation(uint64_t seed, bool ha = false);

}  // namespace pact::sim
