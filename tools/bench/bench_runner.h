// Runs the load: N client threads, each with its own driver, repeating
// transfers through a warm-up and then a measured window of a duration or a
// count, with a progress line once a second. Warm-up transactions count in
// no figure; a transaction belongs to the window it began in.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "common/status.h"
#include "tools/bench/bench_histogram.h"
#include "tools/bench/bench_workload.h"

namespace pact {

struct Tally {
  int64_t attempted = 0;
  int64_t committed = 0;
  int64_t aborted = 0;
  int64_t errors = 0;

  void Add(TxnOutcome outcome);
  void Merge(const Tally& other);
  // Every attempted transaction has exactly one outcome.
  bool AccountedFor() const { return attempted == committed + aborted + errors; }
};

struct LoadOptions {
  int clients = 4;
  double warmup_s = 1;
  double duration_s = 10;
  int64_t count = 0;  // > 0: the window ends after this many transactions instead
  WorkloadOptions workload;
  uint64_t seed = 1;
  bool progress = true;                          // the live line on stderr
  const std::atomic<bool>* interrupt = nullptr;  // set (e.g. by Ctrl-C): end the window now
  // Set: the window ends now, as planned (e.g. the failovers are done); not
  // an interruption.
  const std::atomic<bool>* end_window = nullptr;
};

struct LoadResult {
  Tally measured;
  Tally total;               // warm-up included, for cross-checks with the coordinator
  LatencyHistogram latency;  // committed transactions of the window, begin to commit returned
  double measured_seconds = 0;
  std::map<std::string, int64_t> failures_by_code;  // aborted and errors, by status code
  std::vector<std::string> failure_examples;        // the first few messages
  bool interrupted = false;
};

using DriverFactory = std::function<Result<std::unique_ptr<TransferDriver>>(int client)>;

// Creates every driver first (so a failure to connect is reported before any
// load), then runs. on_window_start runs just before the measured window
// opens and on_window_end just after it closes, on the calling thread, so
// the caller samples its counters at the window's edges.
Result<LoadResult> RunLoad(const LoadOptions& options, const DriverFactory& make_driver,
                           const std::function<void()>& on_window_start,
                           const std::function<void()>& on_window_end);

}  // namespace pact
