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

Result<rpc::CoordinatorInfo> CoordinatorInfoAt(int port, const RpcCredentials& credentials) {
  RpcConnection<rpc::CoordinatorClient> conn(Endpoint{"127.0.0.1", port}, RpcTimeouts{500, 500},
                                             credentials);
  rpc::CoordinatorInfo info;
  RETURN_NOT_OK(conn.Call([&](rpc::CoordinatorClient& c) { c.info(info); }));
  return info;
}

bool CoordinatorReadyAt(int port, const RpcCredentials& credentials) {
  auto info = CoordinatorInfoAt(port, credentials);
  return info.ok() && info->ready;
}

}  // namespace pact
