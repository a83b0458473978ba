// Watches a shard's coordinators from a thread of its own, asking each one
// info() every few milliseconds: each take-over (a higher epoch than any seen
// before serving), and how long after the chaos stopped an active some
// coordinator served again. It only asks; it starts and signals nothing.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace pact {

class TakeOverWatch {
 public:
  using Clock = std::chrono::steady_clock;

  // One active stopped by the chaos, and how long until a coordinator served
  // at a higher epoch (-1 while none has).
  struct Outage {
    std::string how;  // e.g. "kill -9", "SIGTERM"
    int64_t epoch = 0;
    // A standby stood by and every ZooKeeper server served when it was
    // stopped, and no other fault of the shard came before a coordinator
    // served again: the take-over as designed, not slowed by another fault.
    bool clean = false;
    Clock::time_point at;
    int64_t ms = -1;
  };
  struct Stats {
    int take_overs = 0;  // higher epochs seen serving after the first
    int64_t first_epoch = 0, last_epoch = 0;
    int both_active = 0;  // asks in which both coordinators said they serve
    std::vector<Outage> outages;
  };

  explicit TakeOverWatch(std::vector<int> ports, int interval_ms = 10);
  ~TakeOverWatch();  // stops the thread

  // The chaos just stopped the active that served at `epoch`.
  void ActiveStopped(const std::string& how, int64_t epoch, bool clean);
  // Another fault of the shard (a coordinator, a ZooKeeper server) while
  // some take-over is still under way: those are not clean any more.
  void OtherFault();
  Stats stats() const;

 private:
  void Run();

  const std::vector<int> ports_;
  const int interval_ms_;
  std::atomic<bool> stop_{false};
  mutable std::mutex mu_;
  Stats stats_;  // guarded by mu_
  std::thread thread_;
};

}  // namespace pact
