#include "tests/process_harness.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <deque>
#include <fstream>
#include <random>
#include <thread>

#include "gen-cpp/Coordinator.h"
#include "gen-cpp/Participant.h"
#include "rpc/rpc_client.h"

namespace pact {

int FreePort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  socklen_t len = sizeof(addr);
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  close(fd);
  return ntohs(addr.sin_port);
}

int ConnectToLoopback(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

Status MakeTlsCertificates(const std::string& dir, const std::vector<std::string>& args) {
  std::string cmd = std::string(PACT_SOURCE_DIR) + "/scripts/make-tls-certs '" + dir + "'";
  for (const std::string& a : args) cmd += " '" + a + "'";
  if (std::system((cmd + " >/dev/null").c_str()) != 0) return Status::Internal("failed: " + cmd);
  return Status::Ok();
}

TlsFiles CertificateFiles(const std::string& dir, const std::string& name,
                          const std::string& ca_dir) {
  return {dir + "/" + name + ".pem", dir + "/" + name + "-key.pem", ca_dir + "/ca.pem"};
}

Process::Process(std::vector<std::string> argv, std::map<std::string, std::string> env,
                 std::string log_path)
    : argv_(std::move(argv)), env_(std::move(env)), log_path_(std::move(log_path)) {}

Process::~Process() {
  if (running()) {
    Signal(SIGKILL);
    WaitForExit(5000);
  }
}

Status Process::Start() {
  pid_t parent = getpid();
  pid_t pid = fork();
  if (pid < 0) return Status::Internal("fork failed");
  if (pid == 0) {
    // Die with the test binary, so no server outlives a crashed test.
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(127);
    int log = open(log_path_.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    dup2(log, STDOUT_FILENO);
    dup2(log, STDERR_FILENO);
    for (const auto& [k, v] : env_) setenv(k.c_str(), v.c_str(), 1);
    std::vector<char*> args;
    for (auto& a : argv_) args.push_back(a.data());
    args.push_back(nullptr);
    execv(args[0], args.data());
    _exit(127);
  }
  pid_ = pid;
  exit_code_ = -1;
  return Status::Ok();
}

void Process::Signal(int sig) {
  if (pid_ > 0) kill(pid_, sig);
}

int Process::WaitForExit(int timeout_ms) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (pid_ > 0) {
    int status = 0;
    pid_t r = waitpid(pid_, &status, WNOHANG);
    if (r == pid_) {
      exit_code_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      pid_ = -1;
      break;
    }
    if (std::chrono::steady_clock::now() > deadline) return -1;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return exit_code_;
}

bool Process::running() { return pid_ > 0 && WaitForExit(0) == -1; }

Cluster::Cluster(const TempDir& dir) : dir_(dir), coordinator_port_(FreePort()) {}

Cluster::~Cluster() {
  // Participants first, so none logs about a vanished coordinator.
  participants_.clear();
  coordinator_.reset();
}

std::string Cluster::coordinator_address() const {
  return "127.0.0.1:" + std::to_string(coordinator_port_);
}

std::string Cluster::client_address() const {
  return client_proxy_ ? client_proxy_->address() : coordinator_address();
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
  Participant& p = participants_[participant];
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

std::string Cluster::db_path(const std::string& participant) const {
  return dir_.File(participant + ".db");
}

std::string LogTail(const std::string& path, size_t lines) {
  std::ifstream in(path);
  std::string line, out;
  std::deque<std::string> last;
  while (std::getline(in, line)) {
    last.push_back(line);
    if (last.size() > lines) last.pop_front();
  }
  for (const auto& l : last) out += l + "\n";
  return out;
}

// Ports come from FreePort(), which another process may take before the
// server binds it (tests run in parallel): a start that failed to bind is
// tried again, on a new port if nobody knows the old one yet.
bool FailedToBind(const std::string& log) {
  return LogTail(log).find("cannot serve on") != std::string::npos;
}

Status Cluster::StartCoordinator(std::map<std::string, std::string> env) {
  Status st;
  for (int attempt = 0; attempt < 5; ++attempt) {
    st = StartCoordinatorOnce(env);
    if (st.ok() || !FailedToBind(dir_.File("coordinator.log"))) return st;
    if (!coordinator_started_) {
      coordinator_port_ = FreePort();
    } else {
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
  }
  return st;
}

Status Cluster::StartCoordinatorOnce(const std::map<std::string, std::string>& env) {
  if (proxied_) {
    if (!client_proxy_) {
      ASSIGN_OR_RETURN(client_proxy_, FaultProxy::Start(coordinator_port_));
    }
    client_proxy_->set_target_port(coordinator_port_);
  }
  std::vector<std::string> argv = {PACT_COORDINATOR_BIN, "--name=c1",
                                   "--port=" + std::to_string(coordinator_port_),
                                   "--journal=" + dir_.File("journal.db")};
  argv.insert(argv.end(), coordinator_flags.begin(), coordinator_flags.end());
  for (const std::string& flag : SecurityFlagsOf("c1")) argv.push_back(flag);
  coordinator_ = std::make_unique<Process>(argv, env, dir_.File("coordinator.log"));
  RETURN_NOT_OK(coordinator_->Start());
  RpcConnection<rpc::CoordinatorClient> conn(Endpoint{"127.0.0.1", coordinator_port_},
                                             RpcTimeouts{500, 2000}, credentials_);
  bool ready = PollUntil(
      [&] {
        if (!coordinator_->running()) return true;  // exited: reported below
        rpc::CoordinatorInfo info;
        return conn.Call([&](rpc::CoordinatorClient& c) { c.info(info); }).ok() && info.ready;
      },
      15000);
  if (!ready || !coordinator_->running()) {
    return Status::TimedOut("coordinator did not come up; its log ends:\n" +
                            LogTail(dir_.File("coordinator.log")));
  }
  coordinator_started_ = true;
  return Status::Ok();
}

Status Cluster::StartParticipant(const std::string& name,
                                 std::map<std::string, std::string> env) {
  Status st;
  for (int attempt = 0; attempt < 5; ++attempt) {
    st = StartParticipantOnce(name, env);
    if (st.ok() || !FailedToBind(dir_.File(name + ".log"))) return st;
    Participant& p = participants_[name];
    if (!p.started) {
      p.port = FreePort();
    } else {
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
  }
  return st;
}

Status Cluster::StartParticipantOnce(const std::string& name,
                                     const std::map<std::string, std::string>& env) {
  Participant& p = participants_[name];
  if (p.port == 0) p.port = FreePort();
  RETURN_NOT_OK(EnsureParticipantProxies(p));
  std::vector<std::string> argv = {
      PACT_PARTICIPANT_BIN,
      "--name=" + name,
      "--port=" + std::to_string(p.port),
      "--advertise_port=" + std::to_string(p.advertised_port()),
      "--coordinator=" + (p.from_proxy ? p.from_proxy->address() : coordinator_address()),
      "--state_dir=" + dir_.path()};
  if (p.backend_flags.empty()) {
    argv.insert(argv.end(), {"--backend=sqlite", "--sqlite_path=" + db_path(name)});
  } else {
    argv.insert(argv.end(), p.backend_flags.begin(), p.backend_flags.end());
  }
  argv.insert(argv.end(), participant_flags.begin(), participant_flags.end());
  if (security_ == Security::kTls) RETURN_NOT_OK(EnsureCertificate(name, "participant"));
  for (const std::string& flag : SecurityFlagsOf(name)) argv.push_back(flag);
  p.process = std::make_unique<Process>(argv, env, dir_.File(name + ".log"));
  RETURN_NOT_OK(p.process->Start());
  RpcConnection<rpc::ParticipantClient> participant(Endpoint{"127.0.0.1", p.port},
                                                    RpcTimeouts{500, 2000}, credentials_);
  RpcConnection<rpc::CoordinatorClient> coordinator(Endpoint{"127.0.0.1", coordinator_port_},
                                                    RpcTimeouts{500, 2000}, credentials_);
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
      15000);
  if (!ready || !p.process->running()) {
    return Status::TimedOut("participant " + name + " did not come up; its log ends:\n" +
                            LogTail(dir_.File(name + ".log")));
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
  RETURN_NOT_OK(EnsureCertificate("c1", "coordinator"));
  RETURN_NOT_OK(EnsureCertificate("harness", "operator+application"));
  ASSIGN_OR_RETURN(credentials_.tls,
                   TlsContext::ForClient(CertificateFiles(tls_dir(), "harness", tls_dir())));
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

Status Cluster::StopCoordinatorAndCheckJournal() {
  coordinator_->Signal(SIGTERM);
  int code = coordinator_->WaitForExit(20000);
  if (code != 0) return Status::Internal("the coordinator's clean stop exited " + std::to_string(code));
  Ran journal = RunPactctl({"--json", "journal", dir_.File("journal.db")});
  if (journal.code != 0 || journal.out.find("\"unfinished\":[]") == std::string::npos) {
    return Status::Internal("the journal holds unfinished decisions: " + journal.out);
  }
  return Status::Ok();
}

Result<std::vector<std::string>> Cluster::OpenBranches(const std::string& name) {
  RpcConnection<rpc::ParticipantClient> conn(Endpoint{"127.0.0.1", participants_.at(name).port},
                                             RpcTimeouts{500, 2000}, credentials_);
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

Ran RunPactctl(const std::vector<std::string>& args) {
  std::string cmd = PACTCTL_BIN;
  for (const auto& a : args) cmd += " '" + a + "'";
  cmd += " 2>&1";
  Ran ran;
  FILE* pipe = popen(cmd.c_str(), "r");
  if (pipe == nullptr) return ran;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), pipe)) > 0) ran.out.append(buf, n);
  int status = pclose(pipe);
  ran.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return ran;
}

Result<std::vector<std::vector<SqlValue>>> QueryFile(const std::string& db_path,
                                                     const std::string& sql) {
  sqlite3* db = nullptr;
  if (sqlite3_open_v2(db_path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) != SQLITE_OK) {
    std::string msg = sqlite3_errmsg(db);
    sqlite3_close(db);
    return Status::IoError("open " + db_path + ": " + msg);
  }
  sqlite3_busy_timeout(db, 2000);
  sqlite3_stmt* stmt = nullptr;
  if (sqlite3_prepare_v2(db, sql.c_str(), -1, &stmt, nullptr) != SQLITE_OK) {
    std::string msg = sqlite3_errmsg(db);
    sqlite3_close(db);
    return Status::InvalidArgument(sql + ": " + msg);
  }
  std::vector<std::vector<SqlValue>> rows;
  int rc;
  while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
    std::vector<SqlValue> row;
    for (int i = 0; i < sqlite3_column_count(stmt); ++i) {
      switch (sqlite3_column_type(stmt, i)) {
        case SQLITE_INTEGER: row.emplace_back(int64_t{sqlite3_column_int64(stmt, i)}); break;
        case SQLITE_FLOAT: row.emplace_back(sqlite3_column_double(stmt, i)); break;
        case SQLITE_NULL: row.emplace_back(std::monostate{}); break;
        default:
          row.emplace_back(std::string(reinterpret_cast<const char*>(sqlite3_column_text(stmt, i))));
      }
    }
    rows.push_back(std::move(row));
  }
  std::string msg = sqlite3_errmsg(db);
  sqlite3_finalize(stmt);
  sqlite3_close(db);
  if (rc != SQLITE_DONE) return Status::Internal(sql + ": " + msg);
  return rows;
}

Status CreateSqliteBank(const std::string& db_path, int accounts) {
  sqlite3* db = nullptr;
  int rc = sqlite3_open(db_path.c_str(), &db);
  std::string sql =
      "PRAGMA journal_mode=WAL;"
      "CREATE TABLE accounts(id INTEGER PRIMARY KEY,"
      "                      balance INTEGER NOT NULL CHECK (balance >= 0));"
      "CREATE TABLE ledger(id INTEGER PRIMARY KEY,"
      "                    account INTEGER NOT NULL REFERENCES accounts(id)"
      "                        DEFERRABLE INITIALLY DEFERRED,"
      "                    amount INTEGER);";
  for (int id = 1; id <= accounts; ++id) {
    sql += "INSERT INTO accounts VALUES (" + std::to_string(id) + ", 100);";
  }
  char* error = nullptr;
  if (rc == SQLITE_OK) rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &error);
  Status st = rc == SQLITE_OK ? Status::Ok()
                              : Status::IoError(db_path + ": " + (error ? error : sqlite3_errmsg(db)));
  sqlite3_free(error);
  sqlite3_close(db);
  return st;
}

Result<int64_t> QueryInt(const std::string& db_path, const std::string& sql) {
  ASSIGN_OR_RETURN(auto rows, QueryFile(db_path, sql));
  if (rows.size() != 1 || rows[0].size() != 1 || !std::holds_alternative<int64_t>(rows[0][0])) {
    return Status::NotFound(sql + ": expected one integer");
  }
  return std::get<int64_t>(rows[0][0]);
}

}  // namespace pact
