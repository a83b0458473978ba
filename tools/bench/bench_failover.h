// Failover under load (pact-bench --ha --failovers N): while clients run
// transfers through a highly available shard, kill -9 its active N times and
// time each take-over from the client's side and from the standby's: kill
// until the standby answers info() as ready, and kill until a transaction
// begun after the kill committed. The killed process is started again as the
// new standby, and the next kill waits until it stands by.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <vector>

#include "common/status.h"
#include "tools/bench/bench_cluster.h"
#include "tools/bench/bench_report.h"
#include "tools/bench/bench_workload.h"

namespace pact {

// When the first transaction begun at or after a moment committed; shared by
// every client's driver and the thread that kills.
class CommitWatch {
 public:
  using Clock = std::chrono::steady_clock;

  // Forgets what it saw and watches transactions begun at `since` or later.
  void Arm(Clock::time_point since);
  void Committed(Clock::time_point begun, Clock::time_point done);
  // The earliest such commit (done), if any yet.
  std::optional<Clock::time_point> first() const;

 private:
  mutable std::mutex mu_;
  std::optional<Clock::time_point> since_;  // guarded by mu_
  std::optional<Clock::time_point> first_;  // guarded by mu_
};

// A driver that tells a CommitWatch of each of its commits.
class WatchedDriver : public TransferDriver {
 public:
  WatchedDriver(std::unique_ptr<TransferDriver> inner, CommitWatch* watch)
      : inner_(std::move(inner)), watch_(watch) {}
  TxnResult Run(const std::vector<Update>& transfer) override;

 private:
  const std::unique_ptr<TransferDriver> inner_;
  CommitWatch* const watch_;
};

struct FailoverOptions {
  int failovers = 20;
  // Load before each kill, once the previous kill's process stands by again.
  int interval_ms = 1000;
  // Longest a take-over, the first commit or a restart may take.
  int timeout_ms = 30000;
  const std::atomic<bool>* interrupt = nullptr;  // set: no further kill
};

// REQUIRES: called from the thread that started the cluster (the relaunched
// coordinators die with the thread that forks them), while the load runs on
// other threads through WatchedDrivers sharing `watch`. Returns what it
// measured so far when a kill goes wrong, with the reason in *problem.
std::vector<FailoverKill> RunFailovers(BenchCluster& cluster, CommitWatch& watch,
                                       const FailoverOptions& options, std::string* problem);

}  // namespace pact
