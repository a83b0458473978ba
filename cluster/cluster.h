// A Pact cluster of real processes: one pact-coordinator and named
// participants on loopback ports, each with fixed ports and files in one
// directory so a killed process can be restarted on the same state;
// optionally a FaultProxy on every link, mutual TLS or tokens. The tests,
// pact-bench and pact-chaos-bank all run their clusters through it.
//
// Start processes from a thread that outlives them (e.g. the main thread):
// the "die with the parent" signal follows the thread that forked, so a
// process started from a std::thread is killed when that thread ends.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "cluster/fault_proxy.h"
#include "cluster/process.h"
#include "common/status.h"
#include "rpc/rpc_auth.h"
#include "rpc/tls.h"

namespace pact {

struct ClusterOptions {
  std::string dir;  // journal, databases, fence stores, certificates and logs
  std::string coordinator_bin;  // pact-coordinator
  std::string participant_bin;  // pact-participant
  std::string pactctl_bin;      // pactctl, for the journal check
  std::string coordinator_name = "c1";
  // The certificate the cluster's own checks (and its users) present with
  // TLS: operator and application.
  std::string own_certificate = "harness";
  // Every process out of the terminal's process group (Ctrl-C reaches only
  // the program that runs the cluster, which then stops it in order).
  bool own_process_groups = false;

  // The three programs from one directory (build/bin, or an installed one).
  void UseBinariesIn(const std::string& bin_dir);
};

// The directory of the running executable (where build/bin's programs find
// their siblings).
Result<std::string> ExecutableDir();

class Cluster {
 public:
  explicit Cluster(ClusterOptions options);
  ~Cluster();  // SIGKILL, participants first

  Cluster(const Cluster&) = delete;
  Cluster& operator=(const Cluster&) = delete;

  // Options every start of the coordinator gets (besides name/port/journal).
  std::vector<std::string> coordinator_flags = {
      "--prepare_timeout_ms=2000", "--commit_retry_initial_ms=50",
      "--commit_retry_max_ms=200"};
  std::vector<std::string> participant_flags = {"--inquiry_interval_ms=200"};
  // A highly available shard's other coordinators ("host:port,..."), which
  // participants also know, after the cluster's own.
  std::string standby_coordinators;
  // Instead, where participants find every shard: zk://.../root (then
  // they bypass the proxy from the participant, if any).
  std::string participants_find_coordinators;
  // Sets each "--name=value" of `flags` in coordinator_flags, replacing an
  // earlier value of the same option.
  void OverrideCoordinatorFlags(const std::vector<std::string>& flags);

  // Starts (or restarts) the coordinator and waits until it serves.
  // `env` e.g. {{"PACT_CRASH_POINT", "after_decision_logged"}}.
  Status StartCoordinator(std::map<std::string, std::string> env = {});
  // Starts (or restarts) a participant and waits until it is registered.
  // Its backend is SQLite on db_path(name) unless SetBackend said otherwise.
  Status StartParticipant(const std::string& name, std::map<std::string, std::string> env = {});
  // Only starts the process: for measuring how long coming up takes, or
  // participants started before their coordinator.
  Status LaunchCoordinator(std::map<std::string, std::string> env = {});
  Status LaunchParticipant(const std::string& name, std::map<std::string, std::string> env = {});
  // Waits until a launched participant answers info() (it needs no
  // coordinator for that).
  Status WaitParticipantServing(const std::string& name, int timeout_ms);

  // The backend options a participant starts with from now on, e.g.
  // {"--backend=postgresql", "--pg_conninfo=..."}. Also fixes its port.
  void SetBackend(const std::string& name, std::vector<std::string> flags);

  // Puts a FaultProxy (Thrift framing) on every link from now on; call it
  // before the first start. Links: application -> coordinator
  // (client_address()), and per participant coordinator -> participant (the
  // participant advertises its proxy, so applications' execute passes there
  // too) and participant -> coordinator. The cluster's own checks
  // (readiness, OpenBranches) and pactctl go around them, straight to the
  // processes.
  void ProxyEveryLink();
  // Every process of the cluster speaks mutual TLS from now on; call it
  // before the first start. Certificates come from scripts/make-tls-certs in
  // tls_dir(): the coordinator's (CN = its name), each participant's (CN =
  // its name, made at its first start) and the cluster's own
  // (own_certificate, operator and application), which its checks and
  // credentials() use.
  Status UseTls();
  // Instead: plaintext, and every process needs its role's token from a
  // tokens file (tokens_path()); the cluster presents the operator's.
  Status UseTokens();
  std::string tls_dir() const { return options_.dir + "/tls"; }
  std::string tokens_path() const { return options_.dir + "/tokens"; }
  // What the cluster presents for its checks (operator), and what its
  // applications present (application): empty for an open cluster.
  const RpcCredentials& credentials() const { return credentials_; }
  const RpcCredentials& application_credentials() const { return application_credentials_; }
  // The security flags of the process named `name` (its certificate with
  // TLS; the tokens file with tokens), e.g. own_certificate for pactctl.
  // Empty for an open cluster.
  std::vector<std::string> SecurityFlagsOf(const std::string& name) const;

  // The proxies, once created (the participant's at its first start).
  FaultProxy& client_proxy() { return *client_proxy_; }
  FaultProxy& to_participant(const std::string& name) { return *participants_.at(name).to_proxy; }
  FaultProxy& from_participant(const std::string& name) {
    return *participants_.at(name).from_proxy;
  }
  // Participant -> database: an opaque proxy to a database server on
  // 127.0.0.1:database_port (connection-level faults only). Point the
  // participant's backend flags (SetBackend) at its port.
  Result<FaultProxy*> ProxyDatabase(const std::string& participant, int database_port);
  // Every proxy of the cluster forgets its rules (e.g. before checking that
  // the cluster still works).
  void ClearProxyRules();

  Process& coordinator() { return *coordinator_; }
  Process& participant(const std::string& name) { return *participants_.at(name).process; }
  // The processes started so far, the coordinator first, then the
  // participants in the order they were first named.
  std::vector<const Process*> processes() const;
  // The coordinator's own address (what pactctl uses), and the one
  // applications use: its proxy's once ProxyEveryLink was called.
  std::string coordinator_address() const;
  int coordinator_port() const { return coordinator_port_; }
  std::string client_address() const;
  const std::string& coordinator_name() const { return options_.coordinator_name; }
  std::vector<std::string> participant_names() const { return order_; }
  std::string db_path(const std::string& participant) const;
  std::string journal_path() const { return options_.dir + "/journal.db"; }
  int participant_port(const std::string& name) const { return participants_.at(name).port; }

  // Branches (ACTIVE or PREPARED) the participant holds, from its listBranches.
  Result<std::vector<std::string>> OpenBranches(const std::string& participant);
  // Runs pactctl with `args` (add --coordinator yourself).
  Ran RunPactctl(const std::vector<std::string>& args) const;
  // Stops the coordinator with SIGTERM (it must exit 0) and reads its journal
  // offline: OK when it holds no unfinished decision, else what it holds.
  Status StopCoordinatorAndCheckJournal();
  // Waits until every running participant holds no branch; false on timeout.
  bool EventuallyNoOpenBranches(int timeout_ms = 10000);
  // SIGTERM to every participant at once, waiting for each (SIGKILL after a
  // grace period), then the same for the coordinator: a clean stop.
  void Stop();

 private:
  struct Participant {
    int port = 0;
    bool started = false;  // once up, its port is known to the coordinator
    std::vector<std::string> backend_flags;  // empty: SQLite
    // Declared before the process, so destroyed after it.
    std::unique_ptr<FaultProxy> to_proxy, from_proxy, db_proxy;
    std::unique_ptr<Process> process;
    int advertised_port() const { return to_proxy ? to_proxy->port() : port; }
  };

  Participant& Named(const std::string& name);
  Status StartCoordinatorOnce(const std::map<std::string, std::string>& env);
  Status StartParticipantOnce(const std::string& name,
                              const std::map<std::string, std::string>& env);
  // Creates the participant's proxies if every link is proxied.
  Status EnsureParticipantProxies(Participant& p);
  // Makes name's certificate in tls_dir() unless it exists.
  Status EnsureCertificate(const std::string& name, const std::string& roles);
  std::unique_ptr<Process> NewProcess(const std::string& name, std::vector<std::string> argv,
                                      std::map<std::string, std::string> env) const;
  std::string LogOf(const std::string& name) const { return options_.dir + "/" + name + ".log"; }

  const ClusterOptions options_;
  enum class Security { kOpen, kTls, kTokens } security_ = Security::kOpen;
  RpcCredentials credentials_, application_credentials_;
  int coordinator_port_;
  bool proxied_ = false;
  std::unique_ptr<FaultProxy> client_proxy_;
  std::unique_ptr<Process> coordinator_;
  bool coordinator_started_ = false;  // once up, participants know its port
  std::map<std::string, Participant> participants_;
  std::vector<std::string> order_;  // participants_' names, first named first
};

}  // namespace pact
