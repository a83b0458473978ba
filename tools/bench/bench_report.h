// What pact-bench prints at the end: a table for people (default) or one
// JSON object for scripts (--json), for a load run and for a recovery run.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "tools/bench/bench_histogram.h"
#include "tools/bench/bench_runner.h"

namespace pact {

struct ProcessUsage {
  std::string name;  // coordinator, p1, ..., pact-bench
  double cpu_seconds = 0;
};

// Values that stay flat over a long run if nothing leaks.
struct StartEnd {
  int64_t start = 0;
  int64_t end = 0;
};

// One kill -9 of a shard's active under load (pact-bench --failovers).
struct FailoverKill {
  int killed_member = 0;       // 0 or 1
  int64_t serving_ms = 0;      // kill until the standby answered info() as ready
  int64_t first_commit_ms = 0;  // kill until a transaction begun after it committed
  int64_t standing_by_ms = 0;  // relaunch of the killed one until it stood by
};

struct LoadReport {
  std::string mode;           // "pact" or "raw"
  std::string backend;        // null | sqlite | postgresql
  std::string backend_label;  // what the figures mean for that backend
  int clients = 0;
  int participants = 0;
  int statements = 0;
  int64_t accounts = 0;
  double warmup_s = 0;
  double measured_seconds = 0;
  std::vector<std::string> coordinator_flags;
  // Where decisions are made durable: "journal" (the coordinator's SQLite
  // file, one fsync per batch) or "zookeeper" (one multi per batch).
  std::string decisions_in = "journal";
  int shards = 1;

  Tally measured;
  LatencyHistogram latency;
  std::map<std::string, int64_t> failures_by_code;
  std::vector<std::string> failure_examples;
  bool interrupted = false;

  // Pact mode only (absent in raw mode or when the coordinator did not say).
  std::optional<double> fsyncs_per_commit;
  std::optional<int64_t> fsync_batches;
  std::optional<int64_t> coordinator_commits;
  std::vector<ProcessUsage> cpu;  // over the measured window
  std::optional<StartEnd> coordinator_rss_bytes;
  std::optional<StartEnd> journal_bytes;
  // --failovers: the kills made during the window, and the session timeout
  // they were made with (0: the coordinator's default).
  std::vector<FailoverKill> failovers;
  int zk_session_timeout_ms = 0;

  // Correctness: the sum of every balance before and after (sqlite,
  // postgresql), and anything that did not add up. ok() iff none.
  std::optional<StartEnd> balance_sum;
  std::vector<std::string> problems;
  std::vector<std::string> notes;

  double tx_per_s() const {
    return measured_seconds > 0 ? measured.committed / measured_seconds : 0;
  }
  bool ok() const { return problems.empty(); }
};

struct RecoveryReport {
  int64_t decisions = 0;  // unfinished COMMIT records in the journal at start
  int participants = 0;
  double journal_setup_seconds = 0;  // writing those records (not part of recovery)
  double serving_seconds = 0;        // coordinator start until it first answered
  double finished_seconds = 0;       // coordinator start until no COMMITTING transaction is left
  std::optional<int64_t> committed;  // the coordinator's txns_committed once finished
  std::optional<int64_t> left_in_journal;  // unfinished records after it stopped
  double coordinator_cpu_seconds = 0;
  std::vector<std::string> problems;
  std::vector<std::string> notes;

  bool ok() const { return problems.empty(); }
};

void PrintLoadReport(const LoadReport& report, bool json, std::ostream& out);
void PrintRecoveryReport(const RecoveryReport& report, bool json, std::ostream& out);

}  // namespace pact
