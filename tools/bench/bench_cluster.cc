#include "tools/bench/bench_cluster.h"

#include <sys/stat.h>

#include "cluster/wait_until.h"
#include "gen-cpp/Coordinator.h"

namespace pact {
namespace {

constexpr RpcTimeouts kAdminTimeouts{1000, 10000};

int64_t FileBytes(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0 ? static_cast<int64_t>(st.st_size) : 0;
}

}  // namespace

BenchCluster::BenchCluster(const BenchClusterOptions& options, ClusterOptions cluster_options)
    : cluster_(std::move(cluster_options)) {
  cluster_.coordinator_flags = options.coordinator_flags;
  cluster_.participant_flags = options.participant_flags;
}

BenchCluster::~BenchCluster() { Stop(); }

Result<std::unique_ptr<BenchCluster>> BenchCluster::Create(BenchClusterOptions options) {
  ClusterOptions cluster_options;
  cluster_options.dir = options.dir;
  cluster_options.coordinator_bin = options.coordinator_bin;
  cluster_options.participant_bin = options.participant_bin;
  cluster_options.coordinator_name = options.coordinator_name;
  cluster_options.own_certificate = "bench-client";
  // Ctrl-C ends the run through pact-bench, which then stops the cluster in
  // order and still reports.
  cluster_options.own_process_groups = true;
  std::unique_ptr<BenchCluster> bench(new BenchCluster(options, std::move(cluster_options)));
  for (int i = 0; i < options.participants; ++i) {
    std::vector<std::string> backend = {"--backend=" + options.backend};
    if (options.backend == "sqlite") backend.push_back("--sqlite_path=" + bench->sqlite_path(i));
    if (options.backend == "postgresql") {
      backend.push_back("--pg_conninfo=" + options.pg_conninfo[i]);
    }
    bench->cluster_.SetBackend("p" + std::to_string(i + 1), backend);
  }
  if (options.tls) RETURN_NOT_OK(bench->cluster_.UseTls());
  return bench;
}

RpcConnection<rpc::CoordinatorClient>& BenchCluster::Admin() {
  if (!admin_) {
    admin_ = std::make_unique<RpcConnection<rpc::CoordinatorClient>>(
        Endpoint{"127.0.0.1", cluster_.coordinator_port()}, kAdminTimeouts, credentials());
  }
  return *admin_;
}

int BenchCluster::participant_port(int index) const {
  return cluster_.participant_port(participant_names()[index]);
}

std::string BenchCluster::sqlite_path(int index) const {
  return cluster_.db_path("p" + std::to_string(index + 1));
}

int64_t BenchCluster::JournalBytes() const {
  return FileBytes(journal_path()) + FileBytes(journal_path() + "-wal");
}

Status BenchCluster::Start() {
  RETURN_NOT_OK(cluster_.StartCoordinator());
  for (const std::string& name : participant_names()) {
    RETURN_NOT_OK(cluster_.StartParticipant(name));
  }
  return Status::Ok();
}

Status BenchCluster::LaunchParticipants() {
  for (const std::string& name : participant_names()) {
    RETURN_NOT_OK(cluster_.LaunchParticipant(name));
  }
  return Status::Ok();
}

Status BenchCluster::LaunchCoordinator() { return cluster_.LaunchCoordinator(); }

Status BenchCluster::WaitParticipantsServing(int timeout_ms) {
  for (const std::string& name : participant_names()) {
    RETURN_NOT_OK(cluster_.WaitParticipantServing(name, timeout_ms));
  }
  return Status::Ok();
}

Result<std::map<std::string, int64_t>> BenchCluster::CoordinatorStats() {
  std::map<std::string, int64_t> stats;
  RETURN_NOT_OK(Admin().Call([&](rpc::CoordinatorClient& c) { c.stats(stats); }));
  return stats;
}

Result<int64_t> BenchCluster::CountTransactions(const std::vector<TxnState>& states) {
  std::vector<rpc::TxnState::type> wire;
  for (TxnState s : states) wire.push_back(TxnStateToRpc(s));
  std::vector<rpc::TxnStatus> txns;
  RETURN_NOT_OK(Admin().Call([&](rpc::CoordinatorClient& c) { c.listTransactions(txns, wire); }));
  return static_cast<int64_t>(txns.size());
}

Result<int64_t> BenchCluster::CountOpenBranches() {
  int64_t open = 0;
  for (const std::string& name : participant_names()) {
    // A participant that died is reported as such; its branches wait for its restart.
    if (!cluster_.participant(name).running()) continue;
    ASSIGN_OR_RETURN(std::vector<std::string> branches, cluster_.OpenBranches(name));
    open += static_cast<int64_t>(branches.size());
  }
  return open;
}

Status BenchCluster::WaitQuiescent(int timeout_ms) {
  const std::vector<TxnState> in_flight = {TxnState::kActive, TxnState::kPreparing,
                                           TxnState::kCommitting, TxnState::kAborting};
  Result<int64_t> txns = int64_t{0}, branches = int64_t{0};
  Status st = WaitUntil(
      [&] {
        txns = CountTransactions(in_flight);
        branches = CountOpenBranches();
        return txns.ok() && *txns == 0 && branches.ok() && *branches == 0;
      },
      [] { return Status::Ok(); }, timeout_ms, 50, "still in flight at the end");
  if (st.ok()) return st;
  auto count = [](const Result<int64_t>& n) {
    return n.ok() ? std::to_string(*n) : "? (" + n.status().ToString() + ")";
  };
  return Status(st.code(), st.message() + ": " + count(txns) +
                               " transaction(s) at the coordinator, " + count(branches) +
                               " branch(es) at the participants");
}

}  // namespace pact
