#include "common/crash_point.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>

namespace pact {
namespace {

std::mutex g_mu;
std::string g_armed;           // guarded by g_mu
std::atomic<bool> g_any_armed{false};
std::atomic<long> g_remaining{0};

}  // namespace

const std::vector<std::string>& KnownCrashPoints() {
  static const std::vector<std::string> kPoints = {
      // coordinator
      "after_begin",
      "after_prepare_sent",
      "after_votes_collected",
      "after_decision_logged",
      "after_first_commit_sent",
      "before_end_logged",
      // participant
      "after_prepare_durable",
      "before_commit_applied",
      "after_commit_applied",
      "after_rollback_applied",
  };
  return kPoints;
}

Status ArmCrashPoint(const std::string& spec) {
  std::lock_guard<std::mutex> lock(g_mu);
  if (spec.empty()) {
    g_armed.clear();
    g_any_armed = false;
    return Status::Ok();
  }
  std::string name = spec;
  long count = 1;
  if (size_t colon = spec.find(':'); colon != std::string::npos) {
    name = spec.substr(0, colon);
    char* end = nullptr;
    count = std::strtol(spec.c_str() + colon + 1, &end, 10);
    if (*end != '\0' || count < 1) {
      return Status::InvalidArgument("bad crash point count in '" + spec + "'");
    }
  }
  const auto& known = KnownCrashPoints();
  if (std::find(known.begin(), known.end(), name) == known.end()) {
    return Status::InvalidArgument("unknown crash point '" + name + "'");
  }
  g_armed = name;
  g_remaining = count;
  g_any_armed = true;
  return Status::Ok();
}

Status ArmCrashPointFromEnv() {
  const char* spec = std::getenv("PACT_CRASH_POINT");
  if (spec == nullptr || *spec == '\0') return Status::Ok();
  return ArmCrashPoint(spec);
}

void CrashPoint(const char* name) {
  if (!g_any_armed.load(std::memory_order_relaxed)) return;
  {
    std::lock_guard<std::mutex> lock(g_mu);
    if (g_armed != name) return;
  }
  if (g_remaining.fetch_sub(1) != 1) return;
  // write(2) rather than stdio: nothing buffered may survive a power cut.
  char msg[160];
  int n = std::snprintf(msg, sizeof(msg), "pact: crash point %s reached, exiting\n", name);
  if (n > 0) (void)!write(STDERR_FILENO, msg, static_cast<size_t>(n));
  _exit(kCrashExitCode);
}

}  // namespace pact
