// Fan-out for protocol messages: runs tasks concurrently and waits for all.
#pragma once

#include <cstddef>
#include <functional>

namespace pact {

// Runs fn(0) .. fn(n-1) concurrently (the last on the calling thread) and
// returns when all have finished. Each call must bound its own duration
// (RPC timeouts do). The other tasks run on reused worker threads: starting
// a thread per message cost a third of the coordinator's CPU (docs/BENCHMARKS.md).
void RunInParallel(size_t n, const std::function<void(size_t)>& fn);

// Runs `task` on one of those worker threads and returns at once. The caller
// keeps whatever the task uses alive until it has run.
void RunDetached(std::function<void()> task);

}  // namespace pact
