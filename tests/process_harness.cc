#include "tests/process_harness.h"

namespace pact {

ClusterOptions TestClusterOptions(const TempDir& dir) {
  ClusterOptions options;
  options.dir = dir.path();
  options.coordinator_bin = PACT_COORDINATOR_BIN;
  options.participant_bin = PACT_PARTICIPANT_BIN;
  options.pactctl_bin = PACTCTL_BIN;
  return options;
}

Ran RunPactctl(const std::vector<std::string>& args) {
  std::vector<std::string> argv = {PACTCTL_BIN};
  argv.insert(argv.end(), args.begin(), args.end());
  return RunToEnd(argv);
}

}  // namespace pact
