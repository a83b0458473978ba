#include "common/clock.h"

#include <thread>

namespace pact {
namespace {

class MachineClock : public Clock {
 public:
  TimePoint Now() override { return SteadyClock::now(); }
  int64_t WallMillis() override {
    return std::chrono::duration_cast<Millis>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
  }
  void SleepFor(Millis d) override { std::this_thread::sleep_for(d); }
};

}  // namespace

Clock* RealClock() {
  static MachineClock* clock = new MachineClock();
  return clock;
}

}  // namespace pact
