// Time helpers. Deadlines use the monotonic clock; wall-clock milliseconds are
// only for display and for ages persisted across restarts.
#pragma once

#include <chrono>
#include <cstdint>

namespace pact {

using SteadyClock = std::chrono::steady_clock;
using TimePoint = SteadyClock::time_point;
using Millis = std::chrono::milliseconds;

inline int64_t WallMillis() {
  return std::chrono::duration_cast<Millis>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

inline int64_t MillisUntil(TimePoint deadline) {
  return std::chrono::duration_cast<Millis>(deadline - SteadyClock::now()).count();
}

}  // namespace pact
