#include "tools/bench/bench_failover.h"

#include <thread>

#include "cluster/wait_until.h"

namespace pact {
namespace {

using Clock = CommitWatch::Clock;

int64_t MillisBetween(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(b - a).count();
}

bool Interrupted(const FailoverOptions& o) { return o.interrupt != nullptr && o.interrupt->load(); }

}  // namespace

void CommitWatch::Arm(Clock::time_point since) {
  std::lock_guard<std::mutex> lock(mu_);
  since_ = since;
  first_.reset();
}

void CommitWatch::Committed(Clock::time_point begun, Clock::time_point done) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!since_ || begun < *since_) return;
  if (!first_ || done < *first_) first_ = done;
}

std::optional<Clock::time_point> CommitWatch::first() const {
  std::lock_guard<std::mutex> lock(mu_);
  return first_;
}

TxnResult WatchedDriver::Run(const std::vector<Update>& transfer) {
  const auto begun = Clock::now();
  TxnResult result = inner_->Run(transfer);
  if (result.outcome == TxnOutcome::kCommitted) watch_->Committed(begun, Clock::now());
  return result;
}

std::vector<FailoverKill> RunFailovers(BenchCluster& cluster, CommitWatch& watch,
                                       const FailoverOptions& options, std::string* problem) {
  std::vector<FailoverKill> kills;
  for (int n = 0; n < options.failovers && !Interrupted(options); ++n) {
    auto active = cluster.FindActive(options.timeout_ms);
    if (!active.ok()) {
      *problem = active.status().ToString();
      break;
    }
    const int standby = 1 - *active;
    // Steady load first: a commit of a transaction begun now, then the interval.
    watch.Arm(Clock::now());
    if (!PollUntil([&] { return watch.first().has_value() || Interrupted(options); },
                   options.timeout_ms, 5)) {
      *problem = "no transaction committed before kill " + std::to_string(n + 1);
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(options.interval_ms));
    if (Interrupted(options)) break;

    FailoverKill kill;
    kill.killed_member = *active;
    const auto killed = Clock::now();
    watch.Arm(killed);
    cluster.KillMember(*active);
    if (!PollUntil([&] { return cluster.MemberReady(standby); }, options.timeout_ms, 5)) {
      *problem = "kill " + std::to_string(n + 1) + ": the standby did not take over within " +
                 std::to_string(options.timeout_ms) + " ms";
      break;
    }
    kill.serving_ms = MillisBetween(killed, Clock::now());
    if (!PollUntil([&] { return watch.first().has_value(); }, options.timeout_ms, 5)) {
      *problem = "kill " + std::to_string(n + 1) + ": no transaction committed within " +
                 std::to_string(options.timeout_ms) + " ms";
      break;
    }
    kill.first_commit_ms = MillisBetween(killed, *watch.first());
    // The killed process comes back as the standby, as its supervisor would start it.
    const auto relaunched = Clock::now();
    Status st = cluster.RelaunchMember(*active);
    if (!st.ok()) {
      *problem = "kill " + std::to_string(n + 1) + ": " + st.ToString();
      break;
    }
    kill.standing_by_ms = MillisBetween(relaunched, Clock::now());
    kills.push_back(kill);
  }
  return kills;
}

}  // namespace pact
