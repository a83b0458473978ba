#include "cluster/postgres_server.h"

#include <libpq-fe.h>
#include <pwd.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "cluster/ports.h"
#include "cluster/wait_until.h"
#include "participant/backends/postgres/pg_handles.h"

namespace pact {
namespace {

constexpr const char* kBinDir = "/usr/lib/postgresql/15/bin";
constexpr int kStartTimeoutMs = 30000;
constexpr size_t kLogTailLines = 25;

// Who runs initdb and the server: PostgreSQL refuses to run as root.
Result<RunAs> ServerUser() {
  if (geteuid() != 0) return RunAs{geteuid(), getegid()};
  const passwd* pw = getpwnam("postgres");
  if (pw == nullptr) {
    return Status::FailedPrecondition("no `postgres` user to run PostgreSQL as (it refuses root)");
  }
  return RunAs{pw->pw_uid, pw->pw_gid};
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

// argv run as the server's user in `dir`, its output appended to log_path.
ProcessOptions ServerProcess(std::vector<std::string> argv, const std::string& log_path,
                             const RunAs& user, const std::string& dir, int death_signal) {
  ProcessOptions options;
  options.name = argv[0];
  options.argv = std::move(argv);
  options.log_path = log_path;
  options.death_signal = death_signal;
  options.cwd = dir;
  if (user.uid != geteuid()) options.user = user;
  return options;
}

Result<PgConnPtr> Connect(const std::string& conninfo) {
  PgConnPtr conn(PQconnectdb(conninfo.c_str()));
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
  std::unique_ptr<PostgresServer> server(new PostgresServer(dir, settings, FreePort()));
  RETURN_NOT_OK(MakeDir(server->data_dir_, 0700, user));
  RETURN_NOT_OK(MakeDir(server->socket_dir_, 0700, user));

  // --no-sync only skips initdb's own fsyncs; the server keeps fsync on.
  const std::string initdb_log = dir + "/initdb.log";
  Process initdb(ServerProcess({std::string(kBinDir) + "/initdb", "-D", server->data_dir_, "-A",
                                 "trust", "-U", "postgres", "--no-sync", "-E", "UTF8", "--locale=C",
                                 "--no-instructions"},
                                initdb_log, user, dir, SIGKILL));
  RETURN_NOT_OK(initdb.Start());
  const int code = initdb.WaitForExit(120000);  // still running: killed with `initdb`
  if (code != 0) {
    return Status::Internal("initdb failed (exit " + std::to_string(code) +
                            "): " + LogTail(initdb_log, kLogTailLines));
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
  postmaster_ = std::make_unique<Process>(ServerProcess(argv, log_path_, user, dir_, SIGQUIT));
  if (Status st = postmaster_->Start(); !st.ok()) {
    postmaster_.reset();
    return st;
  }

  const std::string ping = ConnInfo("postgres") + " connect_timeout=2";
  bool up = PollUntil(
      [&] { return !postmaster_->running() || PQping(ping.c_str()) == PQPING_OK; },
      kStartTimeoutMs);
  if (!up || !postmaster_->running()) {
    Shutdown(SIGQUIT, 5000).ok();
    return Status::Unavailable("PostgreSQL did not start on port " + std::to_string(port_) +
                               ": " + LogTail(log_path_, kLogTailLines));
  }
  return Status::Ok();
}

Status PostgresServer::Shutdown(int sig, int timeout_ms) {
  if (!running()) return Status::Ok();
  postmaster_->Signal(sig);
  int code = postmaster_->WaitForExit(timeout_ms);
  if (code < 0) {
    postmaster_->Signal(SIGKILL);
    postmaster_->WaitForExit(10000);
  }
  postmaster_.reset();
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
  ASSIGN_OR_RETURN(PgConnPtr conn, Connect(ConnInfo(db)));
  PgResultPtr res(PQexec(conn.get(), sql.c_str()));
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
