// Waiting for something another process does: a server coming up, a branch
// being resolved. The one polling loop of the tests, the bench and the chaos.
#pragma once

#include <chrono>
#include <string>
#include <thread>

#include "common/status.h"

namespace pact {

// Polls `ready` every interval_ms until it holds or timeout_ms passed;
// returns its last answer.
template <typename Ready>
bool PollUntil(Ready ready, int timeout_ms, int interval_ms = 20) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (std::chrono::steady_clock::now() < deadline) {
    if (ready()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(interval_ms));
  }
  return ready();
}

// The same, but gives up at once when `failed` says why waiting is
// pointless (e.g. the process died), and times out saying `what`.
template <typename Ready, typename Failed>
Status WaitUntil(Ready ready, Failed failed, int timeout_ms, int interval_ms,
                 const std::string& what) {
  Status why = Status::Ok();
  bool done = PollUntil(
      [&] {
        if (ready()) return true;
        why = failed();
        return !why.ok();
      },
      timeout_ms, interval_ms);
  if (!why.ok()) return why;
  if (done) return Status::Ok();
  return Status::TimedOut(what + " after " + std::to_string(timeout_ms) + " ms");
}

}  // namespace pact
