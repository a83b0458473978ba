#include "tools/bench/bench_cluster.h"

#include <signal.h>
#include <sys/stat.h>

#include <chrono>
#include <thread>

#include "cluster/ports.h"
#include "cluster/wait_until.h"
#include "gen-cpp/Coordinator.h"

namespace pact {
namespace {

constexpr RpcTimeouts kAdminTimeouts{1000, 10000};
// info() of a shard member: a dead or frozen one must not stall the poll.
constexpr RpcTimeouts kMemberTimeouts{500, 500};
constexpr int kStandbyUpTimeoutMs = 30000;

int64_t FileBytes(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0 ? static_cast<int64_t>(st.st_size) : 0;
}

}  // namespace

BenchCluster::BenchCluster(const BenchClusterOptions& options, ClusterOptions cluster_options)
    : options_(options), cluster_(std::move(cluster_options)) {
  cluster_.coordinator_flags = options.coordinator_flags;
  cluster_.participant_flags = options.participant_flags;
  if (highly_available()) {
    standby_port_ = FreePort();
    cluster_.standby_coordinators = "127.0.0.1:" + std::to_string(standby_port_);
    std::vector<std::string> shard = {"--zookeeper=" + options.zookeeper};
    if (options.zk_session_timeout_ms > 0) {
      shard.push_back("--zk_session_timeout_ms=" + std::to_string(options.zk_session_timeout_ms));
    }
    cluster_.OverrideCoordinatorFlags(shard);
    cluster_.participants_find_coordinators = options.participants_find_coordinators;
  }
}

BenchCluster::~BenchCluster() { Stop(); }

void BenchCluster::Stop() {
  // The standby first: stopping the active hands the shard over to it at once.
  if (standby_ && standby_->running()) standby_->Stop();
  cluster_.Stop();
}

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
        Endpoint{"127.0.0.1", MemberPort(active_member_)}, kAdminTimeouts, credentials());
  }
  return *admin_;
}

int BenchCluster::MemberPort(int member) const {
  return member == 0 ? cluster_.coordinator_port() : standby_port_;
}

std::string BenchCluster::coordinator_address() const {
  if (!highly_available()) return cluster_.coordinator_address();
  return cluster_.coordinator_address() + "," + cluster_.standby_coordinators;
}

std::vector<const Process*> BenchCluster::processes() const {
  std::vector<const Process*> all = cluster_.processes();
  if (standby_) all.push_back(standby_.get());
  return all;
}

// The shard's second coordinator: the same name and flags on its own port
// (the journal flag is unused: decisions live in ZooKeeper).
Status BenchCluster::LaunchStandby() {
  ProcessOptions process;
  process.name = "standby";
  process.argv = {options_.coordinator_bin, "--name=" + coordinator_name(),
                  "--port=" + std::to_string(standby_port_),
                  "--journal=" + options_.dir + "/standby-journal.db"};
  process.argv.insert(process.argv.end(), cluster_.coordinator_flags.begin(),
                      cluster_.coordinator_flags.end());
  for (const std::string& flag : cluster_.SecurityFlagsOf(coordinator_name())) {
    process.argv.push_back(flag);
  }
  process.log_path = options_.dir + "/standby.log";
  process.own_process_group = true;
  standby_ = std::make_unique<Process>(std::move(process));
  return standby_->Start();
}

bool BenchCluster::MemberReady(int member) {
  RpcConnection<rpc::CoordinatorClient> conn(Endpoint{"127.0.0.1", MemberPort(member)},
                                             kMemberTimeouts, credentials());
  rpc::CoordinatorInfo info;
  return conn.Call([&](rpc::CoordinatorClient& c) { c.info(info); }).ok() && info.ready;
}

bool BenchCluster::MemberStandingBy(int member) {
  RpcConnection<rpc::CoordinatorClient> conn(Endpoint{"127.0.0.1", MemberPort(member)},
                                             kMemberTimeouts, credentials());
  rpc::CoordinatorInfo info;
  return conn.Call([&](rpc::CoordinatorClient& c) { c.info(info); }).code() ==
         StatusCode::kNotLeader;
}

Result<int> BenchCluster::FindActive(int timeout_ms) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  const int members = highly_available() ? 2 : 1;
  while (true) {
    for (int m = 0; m < members; ++m) {
      if (!MemberReady(m)) continue;
      if (m != active_member_) {
        active_member_ = m;
        admin_.reset();
      }
      return m;
    }
    if (std::chrono::steady_clock::now() >= deadline) {
      return Status::TimedOut("no coordinator of " + coordinator_name() + " serves");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

void BenchCluster::KillMember(int member) {
  Process* p = member == 0 ? &cluster_.coordinator() : standby_.get();
  p->Signal(SIGKILL);
  p->WaitForExit(-1);
}

Status BenchCluster::RelaunchMember(int member) {
  // The killed process's port may take a moment to be free again.
  Status st;
  for (int attempt = 0; attempt < 5; ++attempt) {
    st = member == 0 ? cluster_.LaunchCoordinator() : LaunchStandby();
    if (!st.ok()) return st;
    Process* p = member == 0 ? &cluster_.coordinator() : standby_.get();
    bool up = PollUntil([&] { return !p->running() || MemberStandingBy(member); },
                        kStandbyUpTimeoutMs, 10);
    if (up && p->running()) return Status::Ok();
    if (p->running()) {
      return Status::TimedOut("the relaunched " + p->name() + " does not stand by (log: " +
                              p->log_path() + ")");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    st = Status::Unavailable(p->name() + " exited with code " + std::to_string(p->exit_code()) +
                             " (log: " + p->log_path() + ")");
  }
  return st;
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
  if (!highly_available()) return Status::Ok();
  RETURN_NOT_OK(LaunchStandby());
  return WaitUntil([&] { return MemberStandingBy(1); },
                   [&] {
                     return standby_->running()
                                ? Status::Ok()
                                : Status::Unavailable("the standby exited (log: " +
                                                      standby_->log_path() + ")");
                   },
                   kStandbyUpTimeoutMs, 20, "the standby does not stand by");
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

Result<int64_t> BenchCluster::CountRegisteredParticipants() {
  std::vector<rpc::ParticipantEndpoint> registered;
  RETURN_NOT_OK(Admin().Call([&](rpc::CoordinatorClient& c) { c.listParticipants(registered); }));
  return static_cast<int64_t>(registered.size());
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
