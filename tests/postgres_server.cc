#include "tests/postgres_server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <grp.h>
#include <libpq-fe.h>
#include <netinet/in.h>
#include <pwd.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <sstream>
#include <thread>

namespace pact {
namespace {

constexpr const char* kBinDir = "/usr/lib/postgresql/15/bin";
constexpr int kStartTimeoutMs = 30000;

struct ConnCloser {
  void operator()(PGconn* conn) const { PQfinish(conn); }
};
struct ResultClearer {
  void operator()(PGresult* res) const { PQclear(res); }
};
using ConnPtr = std::unique_ptr<PGconn, ConnCloser>;
using ResultPtr = std::unique_ptr<PGresult, ResultClearer>;

// Who runs initdb and the server: PostgreSQL refuses to run as root.
struct RunAs {
  bool switch_user = false;
  uid_t uid = 0;
  gid_t gid = 0;
};

Result<RunAs> ServerUser() {
  if (geteuid() != 0) return RunAs{false, geteuid(), getegid()};
  const passwd* pw = getpwnam("postgres");
  if (pw == nullptr) {
    return Status::FailedPrecondition("no `postgres` user to run PostgreSQL as (it refuses root)");
  }
  return RunAs{true, pw->pw_uid, pw->pw_gid};
}

int FreeLoopbackPort() {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  socklen_t len = sizeof(addr);
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  close(fd);
  return ntohs(addr.sin_port);
}

std::string LogTail(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  std::string s = text.str();
  return s.size() > 2000 ? s.substr(s.size() - 2000) : s;
}

Status MakeDir(const std::string& path, mode_t mode, const RunAs& user) {
  if (mkdir(path.c_str(), mode) != 0 && errno != EEXIST) {
    return Status::IoError("mkdir " + path + ": " + std::strerror(errno));
  }
  if (chmod(path.c_str(), mode) != 0 || chown(path.c_str(), user.uid, user.gid) != 0) {
    return Status::IoError("chmod/chown " + path + ": " + std::strerror(errno));
  }
  return Status::Ok();
}

// Forks and runs argv as `user` with its output appended to log_path. The
// child gets `death_signal` when this thread's process dies.
Result<pid_t> Spawn(const std::vector<std::string>& argv, const std::string& log_path,
                    const RunAs& user, const std::string& cwd, int death_signal) {
  // Everything the child needs is prepared before fork: after it, only
  // async-signal-safe calls.
  std::vector<char*> args;
  for (const std::string& arg : argv) args.push_back(const_cast<char*>(arg.c_str()));
  args.push_back(nullptr);
  int log = open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (log < 0) return Status::IoError("cannot open " + log_path + ": " + std::strerror(errno));
  if (fchown(log, user.uid, user.gid) != 0) {
    close(log);
    return Status::IoError("cannot chown " + log_path + ": " + std::strerror(errno));
  }
  const pid_t parent = getpid();
  const pid_t pid = fork();
  if (pid < 0) {
    close(log);
    return Status::Internal(std::string("fork: ") + std::strerror(errno));
  }
  if (pid == 0) {
    if (user.switch_user &&
        (setgroups(0, nullptr) != 0 || setgid(user.gid) != 0 || setuid(user.uid) != 0)) {
      _exit(126);
    }
    // After setuid, which clears the parent-death signal.
    prctl(PR_SET_PDEATHSIG, death_signal);
    if (getppid() != parent) _exit(127);  // the parent died before prctl
    dup2(log, STDOUT_FILENO);
    dup2(log, STDERR_FILENO);
    // No descriptor of the test (database connections, listening sockets) may
    // live on in the server.
#ifdef SYS_close_range
    syscall(SYS_close_range, 3, ~0U, 0);
#else
    for (int fd = 3; fd < 1024; ++fd) close(fd);
#endif
    if (chdir(cwd.c_str()) != 0) _exit(126);
    execv(args[0], args.data());
    _exit(127);
  }
  close(log);
  return pid;
}

// Waits up to timeout_ms for `pid` to exit. Returns its exit code, 128+signal,
// or -1 while it still runs.
int WaitForExit(pid_t pid, int timeout_ms) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (true) {
    int status = 0;
    pid_t r = waitpid(pid, &status, WNOHANG);
    if (r == pid || (r < 0 && errno == ECHILD)) {
      if (r < 0) return 0;
      return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    }
    if (std::chrono::steady_clock::now() >= deadline) return -1;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

Result<ConnPtr> Connect(const std::string& conninfo) {
  ConnPtr conn(PQconnectdb(conninfo.c_str()));
  if (conn == nullptr || PQstatus(conn.get()) != CONNECTION_OK) {
    return Status::Unavailable("cannot connect (" + conninfo + "): " +
                               (conn != nullptr ? PQerrorMessage(conn.get()) : "no memory"));
  }
  PQsetNoticeProcessor(
      conn.get(), [](void*, const char*) {}, nullptr);  // NOTICEs are noise here
  return conn;
}

}  // namespace

PostgresServer::PostgresServer(std::string dir, std::map<std::string, std::string> settings,
                               int port)
    : dir_(std::move(dir)),
      data_dir_(dir_ + "/pgdata"),
      socket_dir_(dir_ + "/pgsocket"),
      log_path_(dir_ + "/postgres.log"),
      settings_(std::move(settings)),
      port_(port) {}

PostgresServer::~PostgresServer() {
  if (running()) Shutdown(SIGQUIT, 10000).ok();
}

Result<std::unique_ptr<PostgresServer>> PostgresServer::Start(
    const std::string& dir, const std::map<std::string, std::string>& settings) {
  ASSIGN_OR_RETURN(RunAs user, ServerUser());
  // mkdtemp makes 0700 directories; the server's user must get through.
  if (chmod(dir.c_str(), 0755) != 0) {
    return Status::IoError("chmod " + dir + ": " + std::strerror(errno));
  }
  std::unique_ptr<PostgresServer> server(new PostgresServer(dir, settings, FreeLoopbackPort()));
  RETURN_NOT_OK(MakeDir(server->data_dir_, 0700, user));
  RETURN_NOT_OK(MakeDir(server->socket_dir_, 0700, user));

  // --no-sync only skips initdb's own fsyncs; the server keeps fsync on.
  const std::string initdb_log = dir + "/initdb.log";
  ASSIGN_OR_RETURN(pid_t initdb, Spawn({std::string(kBinDir) + "/initdb", "-D", server->data_dir_,
                                        "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8",
                                        "--locale=C", "--no-instructions"},
                                       initdb_log, user, dir, SIGKILL));
  const int code = WaitForExit(initdb, 120000);
  if (code != 0) {
    if (code < 0) {
      kill(initdb, SIGKILL);
      WaitForExit(initdb, 5000);
    }
    return Status::Internal("initdb failed (exit " + std::to_string(code) +
                            "): " + LogTail(initdb_log));
  }
  RETURN_NOT_OK(server->StartAgain());
  return server;
}

std::string PostgresServer::ConnInfo(const std::string& dbname) const {
  return "host=127.0.0.1 port=" + std::to_string(port_) + " user=postgres dbname=" + dbname;
}

Status PostgresServer::StartAgain() {
  if (running()) return Status::FailedPrecondition("the server is running");
  ASSIGN_OR_RETURN(RunAs user, ServerUser());
  std::map<std::string, std::string> settings = {
      {"listen_addresses", "127.0.0.1"},   {"unix_socket_directories", socket_dir_},
      {"max_prepared_transactions", "64"}, {"max_connections", "100"},
      {"deadlock_timeout", "100ms"},       {"fsync", "on"},
      {"shared_buffers", "32MB"},          {"logging_collector", "off"},
  };
  for (const auto& [name, value] : settings_) settings[name] = value;
  std::vector<std::string> argv = {std::string(kBinDir) + "/postgres", "-D", data_dir_, "-p",
                                   std::to_string(port_)};
  for (const auto& [name, value] : settings) {
    argv.push_back("-c");
    argv.push_back(name + "=" + value);
  }
  // SIGQUIT is PostgreSQL's immediate shutdown: it also ends the backends.
  ASSIGN_OR_RETURN(pid_, Spawn(argv, log_path_, user, dir_, SIGQUIT));

  const std::string ping = ConnInfo("postgres") + " connect_timeout=2";
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::milliseconds(kStartTimeoutMs);
  while (PQping(ping.c_str()) != PQPING_OK) {
    const int code = WaitForExit(pid_, 0);
    if (code >= 0 || std::chrono::steady_clock::now() >= deadline) {
      if (code < 0) Shutdown(SIGQUIT, 5000).ok();
      pid_ = -1;
      return Status::Unavailable("PostgreSQL did not start on port " + std::to_string(port_) +
                                 ": " + LogTail(log_path_));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return Status::Ok();
}

Status PostgresServer::Shutdown(int sig, int timeout_ms) {
  if (!running()) return Status::Ok();
  kill(pid_, sig);
  int code = WaitForExit(pid_, timeout_ms);
  if (code < 0) {
    kill(pid_, SIGKILL);
    WaitForExit(pid_, 10000);
  }
  pid_ = -1;
  return code < 0 ? Status::TimedOut("PostgreSQL did not stop in time; killed it") : Status::Ok();
}

Status PostgresServer::Stop() { return Shutdown(SIGINT, 30000); }

Status PostgresServer::Restart() {
  RETURN_NOT_OK(Shutdown(SIGQUIT, 10000));
  return StartAgain();
}

Status PostgresServer::CreateDatabase(const std::string& name) {
  return Exec("postgres", "CREATE DATABASE \"" + name + "\"");
}

Status PostgresServer::Exec(const std::string& db, const std::string& sql) {
  return Query(db, sql).status();
}

Result<std::vector<std::vector<std::string>>> PostgresServer::Query(const std::string& db,
                                                                    const std::string& sql) {
  ASSIGN_OR_RETURN(ConnPtr conn, Connect(ConnInfo(db)));
  ResultPtr res(PQexec(conn.get(), sql.c_str()));
  const ExecStatusType status = res != nullptr ? PQresultStatus(res.get()) : PGRES_FATAL_ERROR;
  if (status != PGRES_TUPLES_OK && status != PGRES_COMMAND_OK) {
    return Status::InvalidArgument(sql + ": " + PQerrorMessage(conn.get()));
  }
  std::vector<std::vector<std::string>> rows;
  for (int r = 0; r < PQntuples(res.get()); ++r) {
    std::vector<std::string>& row = rows.emplace_back();
    for (int c = 0; c < PQnfields(res.get()); ++c) {
      row.push_back(PQgetisnull(res.get(), r, c) ? "NULL" : PQgetvalue(res.get(), r, c));
    }
  }
  return rows;
}

}  // namespace pact
