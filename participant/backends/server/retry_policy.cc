#include "participant/backends/server/retry_policy.h"

#include <glog/logging.h>

#include <algorithm>

namespace pact {

Status RetryPolicy::Run(const std::function<Status()>& attempt,
                        const std::function<void()>& after_transient) const {
  const TimePoint deadline = clock->Now() + Millis(window_ms);
  int backoff_ms = first_backoff_ms;
  while (true) {
    Status status = attempt();
    if (!IsTransient(status)) return status;
    if (after_transient) after_transient();
    if (clock->Now() + Millis(backoff_ms) > deadline) return status;
    LOG_IF(WARNING, log_retries) << "retrying in " << backoff_ms << " ms: " << status.ToString();
    clock->SleepFor(Millis(backoff_ms));
    backoff_ms = std::min(backoff_ms * 2, max_backoff_ms);
  }
}

}  // namespace pact
