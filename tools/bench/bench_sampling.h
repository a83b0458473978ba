// What the kernel says about a process (pact-bench's own, or one of the
// cluster's) at one moment: the CPU time and memory figures of a run.
#pragma once

#include <sys/types.h>

#include <cstdint>

#include "common/status.h"

namespace pact {

struct ProcessSample {
  double cpu_seconds = 0;  // user + system, since it started
  int64_t rss_bytes = 0;   // resident set (VmRSS)
};

// From /proc/<pid>/stat and /proc/<pid>/status.
Result<ProcessSample> SampleProcess(pid_t pid);

}  // namespace pact
