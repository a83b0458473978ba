// What happened in one run, line by line with the simulated time: messages
// and their fates, faults, crashes, clients' answers, the core's warnings.
// Two runs of one seed must produce byte-identical histories.
#pragma once

#include <string>
#include <vector>

#include "tests/sim/sim_clock.h"

namespace pact::sim {

class History {
 public:
  explicit History(const SimClock* clock) : clock_(clock) {}

  void Add(const std::string& what);
  const std::vector<std::string>& lines() const { return lines_; }
  // All lines, or the last `tail` of them.
  std::string Text(size_t tail = 0) const;

 private:
  const SimClock* clock_;
  std::vector<std::string> lines_;
};

}  // namespace pact::sim
