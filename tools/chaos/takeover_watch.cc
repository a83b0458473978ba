#include "tools/chaos/takeover_watch.h"

#include <memory>

#include "tools/chaos/coordinator_probe.h"

namespace pact {

TakeOverWatch::TakeOverWatch(std::vector<int> ports, int interval_ms)
    : ports_(std::move(ports)), interval_ms_(interval_ms), thread_([this] { Run(); }) {}

TakeOverWatch::~TakeOverWatch() {
  stop_ = true;
  thread_.join();
}

void TakeOverWatch::ActiveStopped(const std::string& how, int64_t epoch, bool clean) {
  std::lock_guard<std::mutex> lock(mu_);
  Outage outage;
  outage.how = how;
  outage.epoch = epoch;
  outage.clean = clean;
  outage.at = Clock::now();
  stats_.outages.push_back(outage);
}

void TakeOverWatch::OtherFault() {
  std::lock_guard<std::mutex> lock(mu_);
  for (Outage& outage : stats_.outages) {
    if (outage.ms < 0) outage.clean = false;
  }
}

TakeOverWatch::Stats TakeOverWatch::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  return stats_;
}

void TakeOverWatch::Run() {
  std::vector<std::unique_ptr<CoordinatorProbe>> probes;
  // Short timeouts: a stuck coordinator must not hide the other one's answer.
  for (int port : ports_) probes.push_back(std::make_unique<CoordinatorProbe>(port, 200));
  while (!stop_) {
    int serving = 0;
    int64_t epoch = 0;  // the highest serving now
    for (auto& probe : probes) {
      const CoordinatorView view = probe->Ask();
      if (view.role != CoordinatorRole::kActive) continue;
      ++serving;
      epoch = std::max(epoch, view.epoch);
    }
    const auto now = Clock::now();
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (serving > 1) stats_.both_active++;
      if (epoch > stats_.last_epoch) {
        if (stats_.first_epoch == 0) {
          stats_.first_epoch = epoch;
        } else {
          stats_.take_overs++;
        }
        stats_.last_epoch = epoch;
      }
      for (Outage& outage : stats_.outages) {
        if (outage.ms < 0 && epoch > outage.epoch) {
          outage.ms =
              std::chrono::duration_cast<std::chrono::milliseconds>(now - outage.at).count();
        }
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(interval_ms_));
  }
}

}  // namespace pact
