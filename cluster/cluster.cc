#include "cluster/cluster.h"

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <thread>

#include "cluster/ports.h"
#include "cluster/tls_certificates.h"
#include "cluster/wait_until.h"
#include "gen-cpp/Coordinator.h"
#include "gen-cpp/Participant.h"
#include "rpc/rpc_client.h"

namespace pact {
namespace {

constexpr RpcTimeouts kCheckTimeouts{500, 2000};
constexpr int kStartTimeoutMs = 15000;

// Ports come from FreePort(), which another process may take before the
// server binds it (tests run in parallel): a start that failed to bind is
// tried again, on a new port if nobody knows the old one yet.
bool FailedToBind(const std::string& log) {
  return LogTail(log).find("cannot serve on") != std::string::npos;
}

}  // namespace

void ClusterOptions::UseBinariesIn(const std::string& bin_dir) {
  coordinator_bin = bin_dir + "/pact-coordinator";
  participant_bin = bin_dir + "/pact-participant";
  pactctl_bin = bin_dir + "/pactctl";
}

Result<std::string> ExecutableDir() {
  std::error_code ec;
  auto self = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (ec) return Status::NotFound("cannot tell where this program is: " + ec.message());
  return self.parent_path().string();
}

Cluster::Cluster(ClusterOptions options)
    : options_(std::move(options)), coordinator_port_(FreePort()) {}

Cluster::~Cluster() {
  // Participants first, so none logs about a vanished coordinator.
  participants_.clear();
  coordinator_.reset();
}

Cluster::Participant& Cluster::Named(const std::string& name) {
  auto [it, added] = participants_.try_emplace(name);
  if (added) {
    order_.push_back(name);
    it->second.port = FreePort();
  }
  return it->second;
}

void Cluster::SetBackend(const std::string& name, std::vector<std::string> flags) {
  Named(name).backend_flags = std::move(flags);
}

std::string Cluster::coordinator_address() const {
  return "127.0.0.1:" + std::to_string(coordinator_port_);
}

std::string Cluster::client_address() const {
  return client_proxy_ ? client_proxy_->address() : coordinator_address();
}

std::string Cluster::db_path(const std::string& participant) const {
  return options_.dir + "/" + participant + ".db";
}

std::vector<const Process*> Cluster::processes() const {
  std::vector<const Process*> out;
  if (coordinator_) out.push_back(coordinator_.get());
  for (const std::string& name : order_) {
    if (const auto& p = participants_.at(name); p.process) out.push_back(p.process.get());
  }
  return out;
}

void Cluster::ProxyEveryLink() { proxied_ = true; }

Status Cluster::EnsureParticipantProxies(Participant& p) {
  if (!proxied_) return Status::Ok();
  if (!p.to_proxy) {
    ASSIGN_OR_RETURN(p.to_proxy, FaultProxy::Start(p.port));
    ASSIGN_OR_RETURN(p.from_proxy, FaultProxy::Start(coordinator_port_));
  }
  p.to_proxy->set_target_port(p.port);
  p.from_proxy->set_target_port(coordinator_port_);
  return Status::Ok();
}

Result<FaultProxy*> Cluster::ProxyDatabase(const std::string& participant, int database_port) {
  Participant& p = Named(participant);
  ASSIGN_OR_RETURN(p.db_proxy, FaultProxy::Start(database_port, FaultProxy::Framing::kOpaque));
  return p.db_proxy.get();
}

void Cluster::ClearProxyRules() {
  if (client_proxy_) client_proxy_->ClearRules();
  for (auto& [name, p] : participants_) {
    for (auto* proxy : {p.to_proxy.get(), p.from_proxy.get()}) {
      if (proxy) proxy->ClearRules();
    }
  }
}

std::unique_ptr<Process> Cluster::NewProcess(const std::string& name,
                                             std::vector<std::string> argv,
                                             std::map<std::string, std::string> env) const {
  ProcessOptions options;
  options.name = name;
  options.argv = std::move(argv);
  options.env = std::move(env);
  options.log_path = LogOf(name);
  options.own_process_group = options_.own_process_groups;
  return std::make_unique<Process>(std::move(options));
}

void Cluster::OverrideCoordinatorFlags(const std::vector<std::string>& flags) {
  for (const auto& flag : flags) {
    const std::string name = flag.substr(0, flag.find('='));
    auto same_option = [&](const std::string& f) { return f.rfind(name, 0) == 0; };
    coordinator_flags.erase(
        std::remove_if(coordinator_flags.begin(), coordinator_flags.end(), same_option),
        coordinator_flags.end());
    coordinator_flags.push_back(flag);
  }
}

Status Cluster::StartCoordinator(std::map<std::string, std::string> env) {
  Status st;
  for (int attempt = 0; attempt < 5; ++attempt) {
    st = StartCoordinatorOnce(env);
    if (st.ok() || !FailedToBind(LogOf("coordinator"))) return st;
    if (!coordinator_started_) {
      coordinator_port_ = FreePort();
    } else {
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
  }
  return st;
}

Status Cluster::LaunchCoordinator(std::map<std::string, std::string> env) {
  if (proxied_) {
    if (!client_proxy_) {
      ASSIGN_OR_RETURN(client_proxy_, FaultProxy::Start(coordinator_port_));
    }
    client_proxy_->set_target_port(coordinator_port_);
  }
  std::vector<std::string> argv = {options_.coordinator_bin, "--name=" + options_.coordinator_name,
                                   "--port=" + std::to_string(coordinator_port_),
                                   "--journal=" + journal_path()};
  argv.insert(argv.end(), coordinator_flags.begin(), coordinator_flags.end());
  for (const std::string& flag : SecurityFlagsOf(options_.coordinator_name)) argv.push_back(flag);
  coordinator_ = NewProcess("coordinator", argv, std::move(env));
  return coordinator_->Start();
}

Status Cluster::StartCoordinatorOnce(const std::map<std::string, std::string>& env) {
  RETURN_NOT_OK(LaunchCoordinator(env));
  RpcConnection<rpc::CoordinatorClient> conn(Endpoint{"127.0.0.1", coordinator_port_},
                                             kCheckTimeouts, credentials_);
  bool ready = PollUntil(
      [&] {
        if (!coordinator_->running()) return true;  // exited: reported below
        rpc::CoordinatorInfo info;
        return conn.Call([&](rpc::CoordinatorClient& c) { c.info(info); }).ok() && info.ready;
      },
      kStartTimeoutMs);
  if (!ready || !coordinator_->running()) {
    return Status::TimedOut("coordinator did not come up; its log ends:\n" +
                            LogTail(LogOf("coordinator")));
  }
  coordinator_started_ = true;
  return Status::Ok();
}

Status Cluster::StartParticipant(const std::string& name,
                                 std::map<std::string, std::string> env) {
  Status st;
  for (int attempt = 0; attempt < 5; ++attempt) {
    st = StartParticipantOnce(name, env);
    if (st.ok() || !FailedToBind(LogOf(name))) return st;
    Participant& p = Named(name);
    if (!p.started) {
      p.port = FreePort();
    } else {
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
  }
  return st;
}

Status Cluster::LaunchParticipant(const std::string& name,
                                  std::map<std::string, std::string> env) {
  Participant& p = Named(name);
  RETURN_NOT_OK(EnsureParticipantProxies(p));
  std::vector<std::string> argv = {
      options_.participant_bin,
      "--name=" + name,
      "--port=" + std::to_string(p.port),
      "--advertise_port=" + std::to_string(p.advertised_port()),
      "--coordinator=" +
          (!participants_find_coordinators.empty()
               ? participants_find_coordinators
               : (p.from_proxy ? p.from_proxy->address() : coordinator_address()) +
                     (standby_coordinators.empty() ? "" : "," + standby_coordinators)),
      "--state_dir=" + options_.dir};
  if (p.backend_flags.empty()) {
    argv.insert(argv.end(), {"--backend=sqlite", "--sqlite_path=" + db_path(name)});
  } else {
    argv.insert(argv.end(), p.backend_flags.begin(), p.backend_flags.end());
  }
  argv.insert(argv.end(), participant_flags.begin(), participant_flags.end());
  if (security_ == Security::kTls) RETURN_NOT_OK(EnsureCertificate(name, "participant"));
  for (const std::string& flag : SecurityFlagsOf(name)) argv.push_back(flag);
  p.process = NewProcess(name, argv, std::move(env));
  return p.process->Start();
}

Status Cluster::WaitParticipantServing(const std::string& name, int timeout_ms) {
  Participant& p = participants_.at(name);
  RpcConnection<rpc::ParticipantClient> conn(Endpoint{"127.0.0.1", p.port}, kCheckTimeouts,
                                             credentials_);
  return WaitUntil(
      [&] {
        rpc::ParticipantInfo info;
        return conn.Call([&](rpc::ParticipantClient& c) { c.info(info); }).ok();
      },
      [&] {
        return p.process->running()
                   ? Status::Ok()
                   : Status::Unavailable(name + " exited with code " +
                                         std::to_string(p.process->exit_code()) +
                                         "; its log ends:\n" + LogTail(LogOf(name)));
      },
      timeout_ms, 20, name + " did not come up (log: " + LogOf(name) + ")");
}

Status Cluster::StartParticipantOnce(const std::string& name,
                                     const std::map<std::string, std::string>& env) {
  RETURN_NOT_OK(LaunchParticipant(name, env));
  Participant& p = participants_.at(name);
  RpcConnection<rpc::ParticipantClient> participant(Endpoint{"127.0.0.1", p.port}, kCheckTimeouts,
                                                    credentials_);
  RpcConnection<rpc::CoordinatorClient> coordinator(Endpoint{"127.0.0.1", coordinator_port_},
                                                    kCheckTimeouts, credentials_);
  bool ready = PollUntil(
      [&] {
        if (!p.process->running()) return true;  // exited: reported below
        rpc::ParticipantInfo info;
        if (!participant.Call([&](rpc::ParticipantClient& c) { c.info(info); }).ok()) {
          return false;
        }
        std::vector<rpc::ParticipantEndpoint> registered;
        if (!coordinator.Call([&](rpc::CoordinatorClient& c) { c.listParticipants(registered); })
                 .ok()) {
          return false;
        }
        for (const auto& r : registered) {
          if (r.name == name && r.port == p.advertised_port()) return true;
        }
        return false;
      },
      kStartTimeoutMs);
  if (!ready || !p.process->running()) {
    return Status::TimedOut("participant " + name + " did not come up; its log ends:\n" +
                            LogTail(LogOf(name)));
  }
  p.started = true;
  return Status::Ok();
}

Status Cluster::EnsureCertificate(const std::string& name, const std::string& roles) {
  if (access((tls_dir() + "/" + name + ".pem").c_str(), F_OK) == 0) return Status::Ok();
  return MakeTlsCertificates(tls_dir(), {name + ":" + roles});
}

Status Cluster::UseTls() {
  security_ = Security::kTls;
  RETURN_NOT_OK(EnsureCertificate(options_.coordinator_name, "coordinator"));
  RETURN_NOT_OK(EnsureCertificate(options_.own_certificate, "operator+application"));
  ASSIGN_OR_RETURN(credentials_.tls, TlsContext::ForClient(CertificateFiles(
                                         tls_dir(), options_.own_certificate, tls_dir())));
  application_credentials_ = credentials_;
  return Status::Ok();
}

Status Cluster::UseTokens() {
  security_ = Security::kTokens;
  std::ofstream out(tokens_path());
  std::random_device random;
  for (const char* role : {"application", "coordinator", "participant", "operator"}) {
    char token[33];
    snprintf(token, sizeof(token), "%08x%08x%08x%08x", random(), random(), random(), random());
    out << role << " " << token << "\n";
  }
  out.close();
  if (!out) return Status::IoError("cannot write " + tokens_path());
  ASSIGN_OR_RETURN(TokenTable tokens, TokenTable::Load(tokens_path()));
  credentials_.token = tokens.TokenOf(Role::kOperator);
  application_credentials_.token = tokens.TokenOf(Role::kApplication);
  return Status::Ok();
}

std::vector<std::string> Cluster::SecurityFlagsOf(const std::string& name) const {
  switch (security_) {
    case Security::kOpen:
      return {};
    case Security::kTokens:
      return {"--auth_tokens_path=" + tokens_path()};
    case Security::kTls:
      break;
  }
  TlsFiles files = CertificateFiles(tls_dir(), name, tls_dir());
  return {"--tls_cert_path=" + files.cert_path, "--tls_key_path=" + files.key_path,
          "--tls_ca_path=" + files.ca_path};
}

Ran Cluster::RunPactctl(const std::vector<std::string>& args) const {
  std::vector<std::string> argv = {options_.pactctl_bin};
  argv.insert(argv.end(), args.begin(), args.end());
  return RunToEnd(argv);
}

Status Cluster::StopCoordinatorAndCheckJournal() {
  coordinator_->Signal(SIGTERM);
  int code = coordinator_->WaitForExit(20000);
  if (code != 0) {
    return Status::Internal("the coordinator's clean stop exited " + std::to_string(code));
  }
  Ran journal = RunPactctl({"--json", "journal", journal_path()});
  if (journal.code != 0 || journal.out.find("\"unfinished\":[]") == std::string::npos) {
    return Status::Internal("the journal holds unfinished decisions: " + journal.out);
  }
  return Status::Ok();
}

Result<std::vector<std::string>> Cluster::OpenBranches(const std::string& name) {
  RpcConnection<rpc::ParticipantClient> conn(Endpoint{"127.0.0.1", participants_.at(name).port},
                                             kCheckTimeouts, credentials_);
  std::vector<rpc::BranchInfo> branches;
  RETURN_NOT_OK(conn.Call([&](rpc::ParticipantClient& c) { c.listBranches(branches); }));
  std::vector<std::string> out;
  for (const auto& b : branches) {
    out.push_back(b.txn_id + (b.state == rpc::BranchState::PREPARED ? " PREPARED" : " ACTIVE"));
  }
  return out;
}

bool Cluster::EventuallyNoOpenBranches(int timeout_ms) {
  return PollUntil(
      [&] {
        for (auto& [name, p] : participants_) {
          if (!p.process || !p.process->running()) continue;
          auto open = OpenBranches(name);
          if (!open.ok() || !open->empty()) return false;
        }
        return true;
      },
      timeout_ms);
}

void Cluster::Stop() {
  for (auto& [name, p] : participants_) {
    if (p.process) p.process->Terminate();
  }
  for (auto& [name, p] : participants_) {
    if (p.process) p.process->Stop();
  }
  if (coordinator_) coordinator_->Stop();
}

}  // namespace pact
