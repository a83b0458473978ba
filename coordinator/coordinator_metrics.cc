#include "coordinator/coordinator_metrics.h"

namespace pact {

CoordinatorMetrics::CoordinatorMetrics()
    : txns_begun(registry.AddCounter("pact_txns_begun_total", "Transactions begun.")),
      txns_committed(registry.AddCounter("pact_txns_committed_total", "Transactions committed.")),
      txns_aborted(registry.AddCounter("pact_txns_aborted_total",
                                       "Transactions rolled back, for any reason.")),
      txns_timed_out(registry.AddCounter("pact_txns_timed_out_total",
                                         "Transactions rolled back because their deadline "
                                         "passed (also counted as aborted).")),
      heuristic_mixes(registry.AddCounter("pact_heuristic_mixes_total",
                                          "Branches an operator decided against the "
                                          "coordinator's decision.")),
      commit_latency_seconds(registry.AddHistogram(
          "pact_commit_latency_seconds", "Time from a commit request to its decision.",
          {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1,
           2.5, 5, 10})),
      journal_fsyncs(registry.AddCounter("pact_journal_fsyncs_total",
                                         "Journal transactions (one fsync each) that made "
                                         "commit decisions durable.")),
      journal_commit_records(registry.AddCounter("pact_journal_commit_records_total",
                                                 "COMMIT decisions made durable.")),
      journal_batch_size(registry.AddHistogram(
          "pact_journal_batch_size", "COMMIT decisions per journal fsync (group commit).",
          {1, 2, 4, 8, 16, 32, 64, 128, 256})) {}

}  // namespace pact
