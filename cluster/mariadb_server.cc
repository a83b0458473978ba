#include "cluster/mariadb_server.h"

#include <mysql.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <thread>

#include "cluster/ports.h"

namespace pact {
namespace {

constexpr int kReadyTimeoutMs = 30000;
constexpr size_t kLogTailLines = 25;

struct ConnCloser {
  void operator()(MYSQL* conn) const { mysql_close(conn); }
};
using ConnPtr = std::unique_ptr<MYSQL, ConnCloser>;

// argv with stdout and stderr appended to `log_path`; SIGKILL when the
// test binary dies.
ProcessOptions ServerProcess(std::vector<std::string> argv, const std::string& log_path) {
  ProcessOptions options;
  options.name = argv[0];
  options.argv = std::move(argv);
  options.log_path = log_path;
  return options;
}

std::string FirstExisting(const std::vector<std::string>& paths) {
  for (const std::string& path : paths) {
    if (access(path.c_str(), X_OK) == 0) return path;
  }
  return paths.front();
}

Result<ConnPtr> Connect(int port, const std::string& db, bool multi_statements) {
  static const int init = mysql_library_init(0, nullptr, nullptr);
  (void)init;
  ConnPtr conn(mysql_init(nullptr));
  const unsigned int timeout = 2;
  mysql_options(conn.get(), MYSQL_OPT_CONNECT_TIMEOUT, &timeout);
  if (mysql_real_connect(conn.get(), "127.0.0.1", "root", "", db.empty() ? nullptr : db.c_str(),
                         port, nullptr,
                         multi_statements ? CLIENT_MULTI_STATEMENTS : 0) == nullptr) {
    return Status::Unavailable(std::string("cannot connect to the test server: ") +
                               mysql_error(conn.get()));
  }
  return conn;
}

Status Error(MYSQL* conn, const std::string& sql) {
  return Status::InvalidArgument(sql + ": " + mysql_error(conn) + " (" +
                                 std::to_string(mysql_errno(conn)) + ")");
}

}  // namespace

MariaDbServer::MariaDbServer(std::string dir, int port)
    : dir_(std::move(dir)), port_(port), error_log_(dir_ + "/error.log") {}

MariaDbServer::~MariaDbServer() { Status ignored = Signal(SIGKILL); }

Result<std::unique_ptr<MariaDbServer>> MariaDbServer::Start(const std::string& dir) {
  const std::string install_log = dir + "/install.log";
  const std::string install_db =
      FirstExisting({"/usr/bin/mariadb-install-db", "/usr/bin/mysql_install_db"});
  // A private tmpdir: servers started at once by parallel tests would
  // otherwise collide on temporary table files in /tmp.
  mkdir((dir + "/tmp").c_str(), 0700);
  Process install(ServerProcess({install_db, "--no-defaults", "--datadir=" + dir + "/data",
                                 "--tmpdir=" + dir + "/tmp",
                                 "--auth-root-authentication-method=normal", "--skip-test-db",
                                 "--user=root"},
                                install_log));
  RETURN_NOT_OK(install.Start());
  if (install.WaitForExit(-1) != 0) {
    return Status::Internal(install_db + " failed: " + LogTail(install_log, kLogTailLines));
  }
  std::unique_ptr<MariaDbServer> server(new MariaDbServer(dir, FreePort()));
  RETURN_NOT_OK(server->Launch());
  return server;
}

Status MariaDbServer::Launch() {
  const std::string mariadbd = FirstExisting({"/usr/sbin/mariadbd", "/usr/sbin/mysqld"});
  mariadbd_ = std::make_unique<Process>(ServerProcess(
                         {mariadbd, "--no-defaults", "--datadir=" + dir_ + "/data",
                          "--tmpdir=" + dir_ + "/tmp",
                          "--port=" + std::to_string(port_), "--bind-address=127.0.0.1",
                          "--socket=" + dir_ + "/mysqld.sock", "--pid-file=" + dir_ + "/mysqld.pid",
                          "--user=root", "--log-error=" + error_log_, "--skip-log-bin",
                          "--innodb-buffer-pool-size=64M", "--innodb-flush-log-at-trx-commit=1",
                          "--innodb-lock-wait-timeout=5", "--skip-name-resolve"},
                         dir_ + "/stdout.log"));
  if (Status st = mariadbd_->Start(); !st.ok()) {
    mariadbd_.reset();
    return st;
  }
  return WaitUntilReady();
}

Status MariaDbServer::WaitUntilReady() {
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::milliseconds(kReadyTimeoutMs);
  Status last;
  while (std::chrono::steady_clock::now() < deadline) {
    if (!mariadbd_->running()) {
      mariadbd_.reset();
      return Status::Internal("mariadbd exited at start: " + LogTail(error_log_, kLogTailLines));
    }
    Result<ConnPtr> conn = Connect(port_, "", false);
    if (conn.ok()) return Status::Ok();
    last = conn.status();
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return Status::TimedOut("mariadbd did not accept connections: " + last.message() + "\n" +
                          LogTail(error_log_, kLogTailLines));
}

Status MariaDbServer::Signal(int sig) {
  if (mariadbd_ == nullptr) return Status::Ok();
  mariadbd_->Signal(sig);
  mariadbd_->WaitForExit(-1);
  mariadbd_.reset();
  return Status::Ok();
}

Status MariaDbServer::Kill() { return Signal(SIGKILL); }

Status MariaDbServer::Stop() { return Signal(SIGTERM); }

Status MariaDbServer::StartAgain() {
  if (mariadbd_ != nullptr) return Status::FailedPrecondition("the test server is running");
  return Launch();
}

Status MariaDbServer::Restart() {
  RETURN_NOT_OK(Kill());
  return Launch();
}

Status MariaDbServer::CreateDatabase(const std::string& name) {
  return Exec("", "DROP DATABASE IF EXISTS `" + name + "`; CREATE DATABASE `" + name + "`");
}

Status MariaDbServer::Exec(const std::string& db, const std::string& sql) {
  ASSIGN_OR_RETURN(ConnPtr conn, Connect(port_, db, true));
  if (mysql_real_query(conn.get(), sql.data(), sql.size()) != 0) return Error(conn.get(), sql);
  for (;;) {  // every statement's result, or its error
    MYSQL_RES* result = mysql_store_result(conn.get());
    if (result != nullptr) mysql_free_result(result);
    const int next = mysql_next_result(conn.get());
    if (next > 0) return Error(conn.get(), sql);
    if (next < 0) return Status::Ok();
  }
}

Result<std::vector<std::vector<std::string>>> MariaDbServer::Query(const std::string& db,
                                                                   const std::string& sql) {
  ASSIGN_OR_RETURN(ConnPtr conn, Connect(port_, db, false));
  if (mysql_real_query(conn.get(), sql.data(), sql.size()) != 0) return Error(conn.get(), sql);
  MYSQL_RES* result = mysql_store_result(conn.get());
  std::vector<std::vector<std::string>> rows;
  if (result == nullptr) {
    if (mysql_errno(conn.get()) != 0) return Error(conn.get(), sql);
    return rows;
  }
  const unsigned int columns = mysql_num_fields(result);
  while (MYSQL_ROW row = mysql_fetch_row(result)) {
    const unsigned long* lengths = mysql_fetch_lengths(result);
    std::vector<std::string>& out = rows.emplace_back();
    for (unsigned int i = 0; i < columns; ++i) {
      out.push_back(row[i] == nullptr ? "NULL" : std::string(row[i], lengths[i]));
    }
  }
  mysql_free_result(result);
  return rows;
}

}  // namespace pact
