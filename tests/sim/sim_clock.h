// Simulated time: only the simulation moves it (Advance), and a component
// that sleeps (SleepFor) moves it by as much. Nothing waits for real.
#pragma once

#include <cstdint>

#include "common/clock.h"

namespace pact::sim {

class SimClock : public Clock {
 public:
  TimePoint Now() override { return TimePoint(Millis(kStartMs + elapsed_ms_)); }
  int64_t WallMillis() override { return kWallStartMs + elapsed_ms_; }
  void SleepFor(Millis d) override { Advance(d.count()); }

  void Advance(int64_t ms) {
    if (ms > 0) elapsed_ms_ += ms;
  }
  // Since the simulation began.
  int64_t elapsed_ms() const { return elapsed_ms_; }

 private:
  // Far from zero, so "the distant past" (a default TimePoint) stays past.
  static constexpr int64_t kStartMs = 1000000;
  static constexpr int64_t kWallStartMs = 1700000000000;  // a fixed 2023 date
  int64_t elapsed_ms_ = 0;
};

}  // namespace pact::sim
