// The cluster library (cluster/) with the binaries of this build, for the
// multi-process tests: real pact-coordinator and pact-participant processes
// on loopback ports, with their files in a temp directory, killed with the
// test (also when the test binary dies).
#pragma once

#include <string>
#include <vector>

#include "cluster/bank_schema.h"
#include "cluster/cluster.h"
#include "cluster/fault_proxy.h"
#include "cluster/ports.h"
#include "cluster/process.h"
#include "cluster/sqlite_file.h"
#include "cluster/temp_dir.h"
#include "cluster/tls_certificates.h"
#include "cluster/wait_until.h"
#include "gen-cpp/Coordinator.h"
#include "rpc/rpc_client.h"

namespace pact {

// This build's programs, with every file in `dir`.
ClusterOptions TestClusterOptions(const TempDir& dir);

// A Cluster of this build's programs in the test's directory.
class TestCluster : public Cluster {
 public:
  explicit TestCluster(const TempDir& dir) : Cluster(TestClusterOptions(dir)) {}
};

// Runs the real pactctl binary with `args` (add --coordinator yourself).
Ran RunPactctl(const std::vector<std::string>& args);

// info() of the coordinator on 127.0.0.1:port, with short timeouts; and
// whether it serves (answers info() as ready).
Result<rpc::CoordinatorInfo> CoordinatorInfoAt(int port, const RpcCredentials& credentials = {});
bool CoordinatorReadyAt(int port, const RpcCredentials& credentials = {});

}  // namespace pact
