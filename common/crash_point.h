// Named crash points: a test arms one, and the process ends with _exit at that
// protocol step like a power cut (no destructors, no flushing, no goodbye).
// Compiled into the shipped binaries so tests crash the real thing.
//
// Arm with the environment variable PACT_CRASH_POINT=name[:count] or the
// --crash_point option of each binary. With a count N the process survives
// the first N-1 passes and crashes on the Nth.
#pragma once

#include <string>
#include <vector>

#include "common/status.h"

namespace pact {

// The exit code of a crashed process, so a test can tell a crash from a failure.
constexpr int kCrashExitCode = 86;

// Every point the binaries define. Arming a name not listed here is an error,
// so a typo in a test cannot silently disarm it.
const std::vector<std::string>& KnownCrashPoints();

// Arms from "name" or "name:count". An empty spec disarms.
Status ArmCrashPoint(const std::string& spec);

// Arms from PACT_CRASH_POINT when it is set.
Status ArmCrashPointFromEnv();

// Ends the process if `name` is armed and this is the counted pass.
void CrashPoint(const char* name);

}  // namespace pact
