// How a backend that reaches its database over the network retries a call
// whose server could not be reached or whose reply was lost: which errors
// count as transient, how long it backs off between attempts, and the
// deadline that bounds it all. Failing to reach the server never counts as
// an answer, so the caller gets the last transient error when time is up.
#pragma once

#include <functional>

#include "common/clock.h"
#include "common/status.h"

namespace pact {

struct RetryPolicy {
  // Attempts go on until this long after the first one (plus one connect
  // timeout at most: an attempt is never cut short).
  int window_ms = 2000;
  // The wait after the first transient failure; it doubles up to max_backoff_ms.
  int first_backoff_ms = 50;
  int max_backoff_ms = 400;
  // The connect timeout of a connection opened while retrying.
  int connect_timeout_s = 5;
  // A warning before every wait.
  bool log_retries = false;
  Clock* clock = RealClock();

  // kUnavailable: the server could not be reached or its reply was lost, so
  // the call may succeed on another connection. Anything else is an answer.
  static bool IsTransient(const Status& status) {
    return status.code() == StatusCode::kUnavailable;
  }

  // Calls `attempt` until it returns a status that is not transient, or the
  // next wait would end past the deadline; returns the last status.
  // `after_transient` runs after each transient failure, before the wait.
  Status Run(const std::function<Status()>& attempt,
             const std::function<void()>& after_transient = {}) const;
};

}  // namespace pact
