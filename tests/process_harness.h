// Real processes for multi-process tests: the shipped pact-coordinator and
// pact-participant binaries on loopback ports, with their files in a temp
// directory, killed with the test (also when the test binary dies).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "common/sql_value.h"
#include "common/status.h"
#include "rpc/rpc_auth.h"
#include "rpc/tls.h"
#include "tests/fault_proxy.h"
#include "tests/temp_dir.h"

namespace pact {

// Asks the kernel for a loopback port that is free right now.
int FreePort();
// A plain TCP connection to 127.0.0.1:port; -1 if it cannot connect.
int ConnectToLoopback(int port);

// Runs scripts/make-tls-certs DIR ARGS...: a throwaway CA in DIR (made once)
// and certificates, e.g. {"--days", "-1", "expired:application"}.
Status MakeTlsCertificates(const std::string& dir, const std::vector<std::string>& args);
// The files of certificate `name` made in `dir`, trusting the CA of `ca_dir`.
TlsFiles CertificateFiles(const std::string& dir, const std::string& name,
                          const std::string& ca_dir);

// Polls `ready` every 20 ms until it holds or timeout_ms passed; its last
// answer.
template <typename Fn>
bool PollUntil(Fn ready, int timeout_ms) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (std::chrono::steady_clock::now() < deadline) {
    if (ready()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return ready();
}

// The last `lines` lines of a log file, for failure messages.
std::string LogTail(const std::string& path, size_t lines = 15);

class Process {
 public:
  Process(std::vector<std::string> argv, std::map<std::string, std::string> env,
          std::string log_path);
  ~Process();  // SIGKILL if still running

  Status Start();
  void Signal(int sig);
  // Waits for the process to end; returns its exit code, or 128+signal.
  // -1 if it is still running after timeout_ms.
  int WaitForExit(int timeout_ms);
  bool running();
  pid_t pid() const { return pid_; }  // -1 once it ended
  const std::string& log_path() const { return log_path_; }

 private:
  std::vector<std::string> argv_;
  std::map<std::string, std::string> env_;
  std::string log_path_;
  pid_t pid_ = -1;
  int exit_code_ = -1;
};

// One coordinator and named SQLite participants, each with fixed ports and
// files so a killed process can be restarted on the same state.
// Start processes from the test's main thread: the "die with the parent"
// signal follows the thread that forked, so a process started from a
// std::thread is killed when that thread ends.
class Cluster {
 public:
  explicit Cluster(const TempDir& dir);
  ~Cluster();

  // Options every start of the coordinator gets (besides name/port/journal).
  std::vector<std::string> coordinator_flags = {
      "--prepare_timeout_ms=2000", "--commit_retry_initial_ms=50",
      "--commit_retry_max_ms=200"};
  std::vector<std::string> participant_flags = {"--inquiry_interval_ms=200"};

  // Starts (or restarts) the coordinator and waits until it serves.
  // `env` e.g. {{"PACT_CRASH_POINT", "after_decision_logged"}}.
  Status StartCoordinator(std::map<std::string, std::string> env = {});
  // Starts (or restarts) a participant and waits until it is registered.
  // Its backend is SQLite on db_path(name) unless SetBackend said otherwise.
  Status StartParticipant(const std::string& name, std::map<std::string, std::string> env = {});
  // The backend options a participant starts with from now on, e.g.
  // {"--backend=postgresql", "--pg_conninfo=..."}.
  void SetBackend(const std::string& name, std::vector<std::string> flags) {
    participants_[name].backend_flags = std::move(flags);
  }

  // Puts a FaultProxy (Thrift framing) on every link from now on; call it
  // before the first start. Links: application -> coordinator
  // (client_address()), and per participant coordinator -> participant (the
  // participant advertises its proxy, so applications' execute passes there
  // too) and participant -> coordinator. The harness's own checks (readiness,
  // OpenBranches) and pactctl go around them, straight to the processes.
  void ProxyEveryLink();
  // Every process of the cluster speaks mutual TLS from now on; call it
  // before the first start. Certificates come from scripts/make-tls-certs in
  // tls_dir(): the coordinator's (CN c1), each participant's (CN = its name,
  // made at its first start) and the harness's own (CN harness, operator and
  // application), which its checks and credentials() use.
  Status UseTls();
  // Instead: plaintext, and every process needs its role's token from a
  // tokens file (tokens_path()); the harness presents the operator's.
  Status UseTokens();
  std::string tls_dir() const { return dir_.File("tls"); }
  std::string tokens_path() const { return dir_.File("tokens"); }
  // What the harness presents for its checks (operator), and what
  // BankTest's clients present (application): empty for an open cluster.
  const RpcCredentials& credentials() const { return credentials_; }
  const RpcCredentials& application_credentials() const { return application_credentials_; }
  // The security flags of the process named `name` (its certificate with
  // TLS; the tokens file with tokens), e.g. "harness" for pactctl. Empty for
  // an open cluster.
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
  // The coordinator's own address (what pactctl uses), and the one
  // applications use: its proxy's once ProxyEveryLink was called.
  std::string coordinator_address() const;
  std::string client_address() const;
  std::string db_path(const std::string& participant) const;
  int participant_port(const std::string& name) const { return participants_.at(name).port; }

  // Branches (ACTIVE or PREPARED) the participant holds, from its listBranches.
  Result<std::vector<std::string>> OpenBranches(const std::string& participant);
  // Stops the coordinator with SIGTERM (it must exit 0) and reads its journal
  // offline: OK when it holds no unfinished decision, else what it holds.
  Status StopCoordinatorAndCheckJournal();
  // Waits until every running participant holds no branch; false on timeout.
  bool EventuallyNoOpenBranches(int timeout_ms = 10000);

 private:
  Status StartCoordinatorOnce(const std::map<std::string, std::string>& env);
  Status StartParticipantOnce(const std::string& name,
                              const std::map<std::string, std::string>& env);

  struct Participant {
    int port = 0;
    bool started = false;  // once up, its port is known to the coordinator
    std::vector<std::string> backend_flags;  // empty: SQLite
    // Declared before the process, so destroyed after it.
    std::unique_ptr<FaultProxy> to_proxy, from_proxy, db_proxy;
    std::unique_ptr<Process> process;
    int advertised_port() const { return to_proxy ? to_proxy->port() : port; }
  };
  // Creates the participant's proxies if every link is proxied.
  Status EnsureParticipantProxies(Participant& p);

  // Makes name's certificate in tls_dir() unless it exists.
  Status EnsureCertificate(const std::string& name, const std::string& roles);

  const TempDir& dir_;
  enum class Security { kOpen, kTls, kTokens } security_ = Security::kOpen;
  RpcCredentials credentials_, application_credentials_;
  int coordinator_port_;
  bool proxied_ = false;
  std::unique_ptr<FaultProxy> client_proxy_;
  std::unique_ptr<Process> coordinator_;
  bool coordinator_started_ = false;  // once up, participants know its port
  std::map<std::string, Participant> participants_;
  int starts_ = 0;
};

// What pactctl printed (stdout and stderr) and its exit status.
struct Ran {
  int code = -1;
  std::string out;
};
// Runs the real pactctl binary with `args` (add --coordinator yourself).
Ran RunPactctl(const std::vector<std::string>& args);

// Runs a query on a participant's SQLite file directly (a second, read-only
// connection, like any other reader of the database).
Result<std::vector<std::vector<SqlValue>>> QueryFile(const std::string& db_path,
                                                     const std::string& sql);
// Creates the test bank in a SQLite file, as an operator would before the
// adapter starts: accounts 1..`accounts` holding 100 each (CHECK balance >= 0)
// and a ledger whose foreign key is checked at commit time, so a dangling
// account makes the participant vote ABORT at prepare.
Status CreateSqliteBank(const std::string& db_path, int accounts);

// One integer from a query on the file, e.g. a balance.
Result<int64_t> QueryInt(const std::string& db_path, const std::string& sql);

}  // namespace pact
