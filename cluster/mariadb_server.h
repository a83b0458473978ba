// A throwaway MariaDB server for tests: its own data directory, a free
// loopback port and root without a password. It runs as a child process that
// dies with the test binary, and never touches a system server.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "cluster/process.h"
#include "common/status.h"

namespace pact {

class MariaDbServer {
 public:
  // Creates <dir>/data (mariadb-install-db) and starts the server; returns
  // once it accepts connections. `dir` must exist and stay until the end.
  static Result<std::unique_ptr<MariaDbServer>> Start(const std::string& dir);

  ~MariaDbServer();  // kills the server

  int port() const { return port_; }
  const std::string& error_log() const { return error_log_; }

  // CREATE DATABASE, dropping an older one of the same name.
  Status CreateDatabase(const std::string& name);
  // Runs SQL as root (several statements separated by ';' allowed). `db` may be empty.
  Status Exec(const std::string& db, const std::string& sql);
  // Rows of one statement as text; NULL as "NULL".
  Result<std::vector<std::vector<std::string>>> Query(const std::string& db,
                                                      const std::string& sql);

  // Like a crash: SIGKILL, then start again on the same port and data
  // directory (InnoDB recovers) and wait until it accepts connections.
  Status Restart();
  // SIGKILL, nothing else: the server is down until StartAgain.
  Status Kill();
  Status StartAgain();
  // Clean shutdown (SIGTERM). StartAgain works after it too.
  Status Stop();

 private:
  MariaDbServer(std::string dir, int port);

  Status Launch();
  Status WaitUntilReady();
  Status Signal(int sig);

  const std::string dir_;
  const int port_;
  const std::string error_log_;
  std::unique_ptr<Process> mariadbd_;  // null while the server is down
};

}  // namespace pact
