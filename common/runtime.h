// What the core takes from its surroundings besides its interfaces: time,
// how protocol messages fan out, and who runs the background work. The
// defaults are the machine's; the deterministic simulation replaces all three
// so that one seed always gives the same run.
#pragma once

#include <cstddef>
#include <functional>

#include "common/clock.h"
#include "common/parallel.h"

namespace pact {

// Runs fn(0) .. fn(n-1) and returns when all have finished.
using FanOut = std::function<void(size_t n, const std::function<void(size_t)>& fn)>;

struct Runtime {
  Clock* clock = RealClock();
  FanOut fan_out = RunInParallel;
  // false: no threads of their own; the owner calls each component's Tick().
  bool background_threads = true;
};

}  // namespace pact
