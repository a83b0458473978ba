// A throwaway PostgreSQL cluster for tests: initdb into <dir>/pgdata, one
// postmaster on a free loopback port, killed with the test. The postmaster is
// a direct child of the test process (not daemonized by pg_ctl) so that it
// gets SIGQUIT, PostgreSQL's immediate shutdown, when the test process dies
// for any reason. As root, initdb and the server run as the `postgres` user.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "cluster/process.h"
#include "common/status.h"

namespace pact {

class PostgresServer {
 public:
  // Creates and starts a cluster in `dir` (made traversable for the postgres
  // user). `settings` are extra server settings (-c name=value), applied
  // after the defaults: loopback only, max_prepared_transactions=64,
  // max_connections=100, deadlock_timeout=100ms, fsync on.
  static Result<std::unique_ptr<PostgresServer>> Start(
      const std::string& dir, const std::map<std::string, std::string>& settings = {});

  // Stops the server like `pg_ctl stop -m immediate`.
  ~PostgresServer();

  PostgresServer(const PostgresServer&) = delete;
  PostgresServer& operator=(const PostgresServer&) = delete;

  int port() const { return port_; }
  const std::string& log_path() const { return log_path_; }
  bool running() const { return postmaster_ != nullptr; }

  // "host=127.0.0.1 port=... user=postgres dbname=<dbname>".
  std::string ConnInfo(const std::string& dbname) const;

  Status CreateDatabase(const std::string& name);

  // Runs SQL (several statements allowed) on a connection of its own.
  Status Exec(const std::string& db, const std::string& sql);

  // Rows of text values; NULL comes back as "NULL".
  Result<std::vector<std::vector<std::string>>> Query(const std::string& db,
                                                      const std::string& sql);

  // Like a crash: immediate shutdown, then start again on the same port and
  // wait until the server accepts connections (after its crash recovery).
  Status Restart();

  // Fast shutdown (sessions are ended, prepared transactions stay).
  Status Stop();

  // Starts a stopped server again on the same port and data directory.
  Status StartAgain();

 private:
  PostgresServer(std::string dir, std::map<std::string, std::string> settings, int port);

  // Sends `sig` to the postmaster and reaps it; SIGKILL after timeout_ms.
  Status Shutdown(int sig, int timeout_ms);

  const std::string dir_;
  const std::string data_dir_;
  const std::string socket_dir_;
  const std::string log_path_;
  const std::map<std::string, std::string> settings_;
  const int port_;
  std::unique_ptr<Process> postmaster_;  // a child of this process
};

}  // namespace pact
