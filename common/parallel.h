// Fan-out for protocol messages: runs tasks concurrently and waits for all.
#pragma once

#include <functional>
#include <thread>
#include <vector>

namespace pact {

// Runs fn(0) .. fn(n-1) concurrently (the last on the calling thread) and
// returns when all have finished. Each call must bound its own duration
// (RPC timeouts do).
inline void RunInParallel(size_t n, const std::function<void(size_t)>& fn) {
  if (n == 0) return;
  std::vector<std::thread> threads;
  threads.reserve(n - 1);
  for (size_t i = 0; i + 1 < n; ++i) threads.emplace_back(fn, i);
  fn(n - 1);
  for (auto& t : threads) t.join();
}

}  // namespace pact
