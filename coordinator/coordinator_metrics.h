// What the coordinator counts, served on /metrics and by the stats RPC.
#pragma once

#include "common/metrics.h"

namespace pact {

struct CoordinatorMetrics {
  CoordinatorMetrics();

  MetricsRegistry registry;
  Counter* txns_begun;
  Counter* txns_committed;
  Counter* txns_aborted;
  Counter* txns_timed_out;
  Counter* heuristic_mixes;
  Histogram* commit_latency_seconds;  // commit RPC: request to decision
  Counter* journal_fsyncs;            // journal batches that carried decisions
  Counter* journal_commit_records;
  Histogram* journal_batch_size;      // decisions per fsync (group commit)
};

}  // namespace pact
