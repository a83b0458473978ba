// pact-sim: runs the deterministic simulation over a range of seeds.
//   pact-sim --seeds N [--first S] [--verbose] [--check-replay]
//   pact-sim --seed S          one seed, with its whole history
//   --ha                       HA runs: coordinator members elected in a
//                              simulated ZooKeeper (see simulation.h)
// A failing seed prints its violations and the end of its history; it
// replays exactly with --seed. --check-replay runs every seed twice and
// fails when the two histories differ by a byte.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>

#include <glog/logging.h>

#include "tests/sim/simulation.h"

namespace {

void QuietLogging(const char* argv0) {
  google::InitGoogleLogging(argv0);
  for (int s = google::GLOG_INFO; s < google::NUM_SEVERITIES; ++s) {
    google::SetLogDestination(s, "");  // no log files
  }
  google::SetStderrLogging(google::GLOG_FATAL);
  FLAGS_minloglevel = google::GLOG_WARNING;  // the history keeps warnings and errors
}

void Usage() {
  std::fprintf(stderr,
               "usage: pact-sim --seeds N [--first S] [--verbose] [--check-replay] [--ha]\n"
               "       pact-sim --seed S [--ha]\n");
  std::exit(2);
}

void PrintHistory(const pact::sim::SimulationResult& r, size_t tail) {
  size_t first = tail == 0 || tail >= r.history.size() ? 0 : r.history.size() - tail;
  if (first > 0) std::printf("  ... %zu earlier lines (replay with --seed %llu) ...\n", first,
                             static_cast<unsigned long long>(r.seed));
  for (size_t i = first; i < r.history.size(); ++i) std::printf("%s\n", r.history[i].c_str());
}

}  // namespace

int main(int argc, char** argv) {
  uint64_t first = 1, seeds = 0;
  bool verbose = false, check_replay = false, single = false, ha = false;
  for (int i = 1; i < argc; ++i) {
    auto value = [&]() -> uint64_t {
      if (i + 1 >= argc) Usage();
      return std::strtoull(argv[++i], nullptr, 10);
    };
    if (!std::strcmp(argv[i], "--seeds")) {
      seeds = value();
    } else if (!std::strcmp(argv[i], "--first")) {
      first = value();
    } else if (!std::strcmp(argv[i], "--seed")) {
      first = value();
      seeds = 1;
      single = true;
    } else if (!std::strcmp(argv[i], "--verbose")) {
      verbose = true;
    } else if (!std::strcmp(argv[i], "--check-replay")) {
      check_replay = true;
    } else if (!std::strcmp(argv[i], "--ha")) {
      ha = true;
    } else {
      Usage();
    }
  }
  if (seeds == 0) Usage();
  QuietLogging(argv[0]);

  auto start = std::chrono::steady_clock::now();
  uint64_t failures = 0;
  std::map<std::string, int64_t> totals;
  for (uint64_t seed = first; seed < first + seeds; ++seed) {
    pact::sim::SimulationResult r = pact::sim::RunSimulation(seed, ha);
    if (check_replay) {
      pact::sim::SimulationResult again = pact::sim::RunSimulation(seed, ha);
      if (again.history != r.history) {
        size_t i = 0;
        while (i < r.history.size() && i < again.history.size() && r.history[i] == again.history[i]) ++i;
        r.violations.push_back("replay: the second run's history differs at line " +
                               std::to_string(i + 1));
      }
    }
    for (const auto& [k, v] : r.counts) totals[k] += v;
    bool failed = !r.violations.empty();
    failures += failed;
    if (single || verbose) PrintHistory(r, 0);
    if (failed) {
      std::printf("FAIL seed %llu:\n", static_cast<unsigned long long>(seed));
      for (const auto& v : r.violations) std::printf("  %s\n", v.c_str());
      if (!single && !verbose) PrintHistory(r, 80);
      std::printf("replay: pact-sim --seed %llu%s\n\n", static_cast<unsigned long long>(seed),
                  ha ? " --ha" : "");
    }
    std::fflush(stdout);
  }
  double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("exercised:");
  for (const auto& [k, v] : totals) std::printf(" %s=%lld", k.c_str(), static_cast<long long>(v));
  std::printf("\nRESULT seeds=%llu failures=%llu first=%llu seconds=%.1f\n",
              static_cast<unsigned long long>(seeds), static_cast<unsigned long long>(failures),
              static_cast<unsigned long long>(first), seconds);
  return failures == 0 ? 0 : 1;
}
