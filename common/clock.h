// Time. Deadlines use a monotonic clock; wall-clock milliseconds are only for
// display and for ages persisted across restarts. The core takes a Clock so
// that the simulation can run it on simulated time.
#pragma once

#include <chrono>
#include <cstdint>

namespace pact {

using SteadyClock = std::chrono::steady_clock;
using TimePoint = SteadyClock::time_point;
using Millis = std::chrono::milliseconds;

class Clock {
 public:
  virtual ~Clock() = default;
  virtual TimePoint Now() = 0;
  virtual int64_t WallMillis() = 0;
  // Blocks the caller for `d` of this clock's time.
  virtual void SleepFor(Millis d) = 0;

  int64_t MillisUntil(TimePoint deadline) {
    return std::chrono::duration_cast<Millis>(deadline - Now()).count();
  }
};

// The machine's clocks; never destroyed.
Clock* RealClock();

inline int64_t WallMillis() { return RealClock()->WallMillis(); }
inline int64_t MillisUntil(TimePoint deadline) { return RealClock()->MillisUntil(deadline); }

}  // namespace pact
