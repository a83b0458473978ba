#include "tools/bench/bench_cluster.h"

#include <sys/stat.h>

#include <chrono>
#include <cstdlib>
#include <thread>

#include "gen-cpp/Coordinator.h"
#include "gen-cpp/Participant.h"

namespace pact {
namespace {

constexpr RpcTimeouts kAdminTimeouts{1000, 10000};

int64_t FileBytes(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0 ? static_cast<int64_t>(st.st_size) : 0;
}

// Polls `ready` every `interval_ms` until it returns true or timeout_ms
// passes; gives up at once when `failed` says why waiting is pointless.
template <typename Ready, typename Failed>
Status PollUntil(Ready ready, Failed failed, int timeout_ms, int interval_ms,
                 const std::string& what) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (true) {
    if (ready()) return Status::Ok();
    Status st = failed();
    if (!st.ok()) return st;
    if (std::chrono::steady_clock::now() > deadline) {
      return Status::TimedOut(what + " after " + std::to_string(timeout_ms) + " ms");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(interval_ms));
  }
}

}  // namespace

BenchCluster::BenchCluster(BenchClusterOptions options) : options_(std::move(options)) {}

BenchCluster::~BenchCluster() { Stop(); }

Result<std::unique_ptr<BenchCluster>> BenchCluster::Create(BenchClusterOptions options) {
  std::unique_ptr<BenchCluster> cluster(new BenchCluster(std::move(options)));
  ASSIGN_OR_RETURN(cluster->coordinator_port_, FreeLoopbackPort());
  for (int i = 0; i < cluster->options_.participants; ++i) {
    ASSIGN_OR_RETURN(int port, FreeLoopbackPort());
    cluster->participant_ports_.push_back(port);
  }
  if (cluster->options_.tls) RETURN_NOT_OK(cluster->MakeCertificates());
  cluster->admin_ = std::make_unique<RpcConnection<rpc::CoordinatorClient>>(
      Endpoint{"127.0.0.1", cluster->coordinator_port_}, kAdminTimeouts, cluster->credentials_);
  return cluster;
}

Status BenchCluster::MakeCertificates() {
  std::string cmd = std::string(PACT_SOURCE_DIR) + "/scripts/make-tls-certs '" + options_.dir +
                    "/tls' '" + options_.coordinator_name + ":coordinator' " +
                    "bench-client:application+operator";
  for (const std::string& name : participant_names()) cmd += " " + name + ":participant";
  if (std::system((cmd + " >/dev/null").c_str()) != 0) {
    return Status::Internal("cannot make TLS certificates: " + cmd);
  }
  std::string dir = options_.dir + "/tls/";
  ASSIGN_OR_RETURN(credentials_.tls, TlsContext::ForClient({dir + "bench-client.pem", dir + "bench-client-key.pem",
                                                           dir + "ca.pem"}));
  return Status::Ok();
}

std::vector<std::string> BenchCluster::TlsFlags(const std::string& name) const {
  if (!options_.tls) return {};
  std::string dir = options_.dir + "/tls/";
  return {"--tls_cert_path=" + dir + name + ".pem", "--tls_key_path=" + dir + name + "-key.pem",
          "--tls_ca_path=" + dir + "ca.pem"};
}

std::string BenchCluster::coordinator_address() const {
  return "127.0.0.1:" + std::to_string(coordinator_port_);
}

std::vector<std::string> BenchCluster::participant_names() const {
  std::vector<std::string> names;
  for (int i = 0; i < options_.participants; ++i) names.push_back("p" + std::to_string(i + 1));
  return names;
}

std::string BenchCluster::sqlite_path(int index) const {
  return options_.dir + "/p" + std::to_string(index + 1) + ".db";
}

int64_t BenchCluster::JournalBytes() const {
  return FileBytes(journal_path()) + FileBytes(journal_path() + "-wal");
}

std::vector<const ChildProcess*> BenchCluster::processes() const {
  std::vector<const ChildProcess*> out;
  if (coordinator_) out.push_back(coordinator_.get());
  for (const auto& p : participants_) out.push_back(p.get());
  return out;
}

Status BenchCluster::Died(const ChildProcess& process) const {
  return Status::Unavailable(process.name() + " exited with code " +
                             std::to_string(process.exit_code()) + "; the end of " +
                             process.log_path() + ":\n" + TailOfFile(process.log_path(), 15));
}

Status BenchCluster::StartCoordinator() {
  std::vector<std::string> argv = {options_.coordinator_bin, "--name=" + options_.coordinator_name,
                                   "--port=" + std::to_string(coordinator_port_),
                                   "--journal=" + journal_path()};
  argv.insert(argv.end(), options_.coordinator_flags.begin(), options_.coordinator_flags.end());
  for (const std::string& flag : TlsFlags(options_.coordinator_name)) argv.push_back(flag);
  coordinator_ =
      std::make_unique<ChildProcess>("coordinator", argv, options_.dir + "/coordinator.log");
  return coordinator_->Start();
}

std::vector<std::string> BenchCluster::ParticipantArgv(int index) const {
  std::string name = "p" + std::to_string(index + 1);
  std::vector<std::string> argv = {options_.participant_bin,
                                   "--name=" + name,
                                   "--port=" + std::to_string(participant_ports_[index]),
                                   "--coordinator=" + coordinator_address(),
                                   "--state_dir=" + options_.dir,
                                   "--backend=" + options_.backend};
  if (options_.backend == "sqlite") argv.push_back("--sqlite_path=" + sqlite_path(index));
  if (options_.backend == "postgresql") {
    argv.push_back("--pg_conninfo=" + options_.pg_conninfo[index]);
  }
  argv.insert(argv.end(), options_.participant_flags.begin(), options_.participant_flags.end());
  for (const std::string& flag : TlsFlags(name)) argv.push_back(flag);
  return argv;
}

Status BenchCluster::StartParticipants() {
  for (int i = 0; i < options_.participants; ++i) {
    std::string name = "p" + std::to_string(i + 1);
    participants_.push_back(std::make_unique<ChildProcess>(name, ParticipantArgv(i),
                                                           options_.dir + "/" + name + ".log"));
    RETURN_NOT_OK(participants_.back()->Start());
  }
  return Status::Ok();
}

Status BenchCluster::WaitCoordinatorReady(int timeout_ms) {
  return PollUntil(
      [&] {
        rpc::CoordinatorInfo info;
        return admin_->Call([&](rpc::CoordinatorClient& c) { c.info(info); }).ok() && info.ready;
      },
      [&] { return coordinator_->Running() ? Status::Ok() : Died(*coordinator_); }, timeout_ms, 20,
      "the coordinator did not come up (log: " + coordinator_->log_path() + ")");
}

Status BenchCluster::WaitParticipantsRegistered(int timeout_ms) {
  auto all_registered = [&] {
    std::vector<rpc::ParticipantEndpoint> registered;
    if (!admin_->Call([&](rpc::CoordinatorClient& c) { c.listParticipants(registered); }).ok()) {
      return false;
    }
    for (int i = 0; i < options_.participants; ++i) {
      bool found = false;
      for (const auto& r : registered) {
        found = found || (r.name == participants_[i]->name() && r.port == participant_ports_[i]);
      }
      if (!found) return false;
    }
    return true;
  };
  return PollUntil(
      all_registered, [&] { return AnyParticipantDied(); }, timeout_ms, 20,
      "the participants did not all register (logs in " + options_.dir + ")");
}

Status BenchCluster::WaitParticipantsServing(int timeout_ms) {
  auto all_serving = [&] {
    for (int port : participant_ports_) {
      RpcConnection<rpc::ParticipantClient> conn(Endpoint{"127.0.0.1", port}, kAdminTimeouts,
                                                 credentials_);
      rpc::ParticipantInfo info;
      if (!conn.Call([&](rpc::ParticipantClient& c) { c.info(info); }).ok()) return false;
    }
    return true;
  };
  return PollUntil(
      all_serving, [&] { return AnyParticipantDied(); }, timeout_ms, 20,
      "the participants did not come up (logs in " + options_.dir + ")");
}

Status BenchCluster::AnyParticipantDied() const {
  for (const auto& p : participants_) {
    if (!p->Running()) return Died(*p);
  }
  return Status::Ok();
}

Status BenchCluster::Start() {
  RETURN_NOT_OK(StartCoordinator());
  RETURN_NOT_OK(WaitCoordinatorReady(15000));
  RETURN_NOT_OK(StartParticipants());
  return WaitParticipantsRegistered(15000);
}

void BenchCluster::Stop() {
  for (auto& p : participants_) p->Terminate();
  for (auto& p : participants_) p->Stop();
  if (coordinator_) coordinator_->Stop();
}

Result<std::map<std::string, int64_t>> BenchCluster::CoordinatorStats() {
  std::map<std::string, int64_t> stats;
  RETURN_NOT_OK(admin_->Call([&](rpc::CoordinatorClient& c) { c.stats(stats); }));
  return stats;
}

Result<int64_t> BenchCluster::CountTransactions(const std::vector<TxnState>& states) {
  std::vector<rpc::TxnState::type> wire;
  for (TxnState s : states) wire.push_back(TxnStateToRpc(s));
  std::vector<rpc::TxnStatus> txns;
  RETURN_NOT_OK(admin_->Call([&](rpc::CoordinatorClient& c) { c.listTransactions(txns, wire); }));
  return static_cast<int64_t>(txns.size());
}

Result<int64_t> BenchCluster::CountOpenBranches() {
  int64_t open = 0;
  for (size_t i = 0; i < participants_.size(); ++i) {
    // A participant that died is reported as such; its branches wait for its restart.
    if (!participants_[i]->Running()) continue;
    RpcConnection<rpc::ParticipantClient> conn(Endpoint{"127.0.0.1", participant_ports_[i]},
                                               kAdminTimeouts, credentials_);
    std::vector<rpc::BranchInfo> branches;
    RETURN_NOT_OK(conn.Call([&](rpc::ParticipantClient& c) { c.listBranches(branches); }));
    open += static_cast<int64_t>(branches.size());
  }
  return open;
}

Status BenchCluster::WaitQuiescent(int timeout_ms) {
  const std::vector<TxnState> in_flight = {TxnState::kActive, TxnState::kPreparing,
                                           TxnState::kCommitting, TxnState::kAborting};
  Result<int64_t> txns = int64_t{0}, branches = int64_t{0};
  Status st = PollUntil(
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
