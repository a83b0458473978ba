// --recovery N: how long a coordinator takes, from its start, to finish N
// COMMIT decisions it finds unfinished in its journal, delivering each to
// local null participants until acknowledged.
#pragma once

#include <cstdint>

#include "common/status.h"
#include "tools/bench/bench_cluster.h"
#include "tools/bench/bench_report.h"

namespace pact {

// REQUIRES: options.backend == "null" and options.dir is empty and ours.
// An error means the measurement could not be taken at all; problems found
// while taking it are in the report.
Result<RecoveryReport> MeasureRecovery(const BenchClusterOptions& options, int64_t decisions);

}  // namespace pact
