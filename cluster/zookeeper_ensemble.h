// A throwaway ZooKeeper ensemble for tests: N servers (Debian's `zookeeper`
// package, run as `java ... QuorumPeerMain <cfg>`) on free loopback ports,
// each with its own data directory and myid under `dir`. Every server is a
// direct child of the test process, so it dies with it. Servers are numbered
// 0..N-1 here (myid i+1).
//
//   ASSIGN_OR_RETURN(auto zk, ZooKeeperEnsemble::Start(temp_dir.File("zk")));
//   ... ZkSession::Connect({zk->ConnectString()}) ...
//   ASSIGN_OR_RETURN(int leader, zk->LeaderIndex());
//   RETURN_NOT_OK(zk->Kill(leader));
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "cluster/process.h"
#include "common/status.h"

namespace pact {

struct ZooKeeperEnsembleOptions {
  int servers = 3;
  // ZooKeeper's clock: sessions may last from 2 to maxSessionTimeout/tick
  // ticks, a follower that lags syncLimit ticks is dropped. Short, so that
  // tests see timeouts and elections in well under a second.
  int tick_ms = 200;
  int max_session_timeout_ms = 30000;
};

// What one server says about itself (the `srvr` four-letter word).
enum class ZooKeeperMode {
  kNotServing,  // down, frozen, or up but not (yet) part of a quorum
  kFollower,
  kLeader,
  kStandalone,  // a one-server ensemble
};

const char* ZooKeeperModeName(ZooKeeperMode mode);

class ZooKeeperEnsemble {
 public:
  // Writes each server's config into `dir` (created if missing), starts them
  // all and returns once every one serves (a leader and its followers).
  static Result<std::unique_ptr<ZooKeeperEnsemble>> Start(const std::string& dir,
                                                          ZooKeeperEnsembleOptions options = {});
  ~ZooKeeperEnsemble();  // SIGKILLs every server still running

  ZooKeeperEnsemble(const ZooKeeperEnsemble&) = delete;
  ZooKeeperEnsemble& operator=(const ZooKeeperEnsemble&) = delete;

  int size() const { return static_cast<int>(servers_.size()); }
  // "127.0.0.1:p0,127.0.0.1:p1,..." for every server, up or not.
  std::string ConnectString() const;
  int client_port(int i) const;
  const std::string& log_path(int i) const;
  bool running(int i) const;
  // Server i's process id, -1 if it is not running (for sampling its CPU).
  pid_t pid(int i) const;

  // SIGKILL: a crash. The server stays down until StartAgain.
  Status Kill(int i);
  // SIGTERM (after a Thaw, if frozen), SIGKILL if it lingers.
  Status Stop(int i);
  // Starts a killed or stopped server on its old ports and data; returns at
  // once, so that several can come back together (then WaitForQuorum).
  Status StartAgain(int i);
  // Kill, StartAgain, and wait until it serves again (it rejoins the quorum).
  Status Restart(int i);
  // SIGSTOP / SIGCONT: the server keeps its sockets but answers nothing, like
  // a long GC pause or a partitioned machine.
  Status Freeze(int i);
  Status Thaw(int i);

  // What server i says it is; kNotServing if it does not answer within
  // timeout_ms.
  ZooKeeperMode Mode(int i, int timeout_ms = 1000) const;
  // The server that says it leads (0 for a one-server ensemble); kUnavailable
  // if none does.
  Result<int> LeaderIndex() const;
  // Returns once a majority of the servers serve, one of them leading
  // (standalone for one server); kTimedOut otherwise.
  Status WaitForQuorum(int timeout_ms) const;
  // The same for `servers` servers.
  Status WaitForServing(int servers, int timeout_ms) const;

 private:
  struct Server {
    int client_port = 0;
    int quorum_port = 0;
    int election_port = 0;
    std::string data_dir;
    std::string config_path;
    std::string log_path;
    std::unique_ptr<Process> process;
    bool frozen = false;
  };

  ZooKeeperEnsemble(std::string dir, ZooKeeperEnsembleOptions options);
  Status CheckIndex(int i) const;
  Status WriteConfigs();
  Status Launch(int i);
  // Why server i is not serving, if it has exited (its log tail).
  Status ExitedWhy(int i) const;

  const std::string dir_;
  const ZooKeeperEnsembleOptions options_;
  std::vector<Server> servers_;
};

}  // namespace pact
