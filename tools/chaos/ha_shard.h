// The highly available shard of pact-chaos-bank --ha: a real three-node
// ZooKeeper ensemble of its own on loopback, and two coordinators of one shard
// over it (the Cluster's own and a second process on a port of its own). The
// chaos thread kills coordinators and ZooKeeper servers through it; Supervise()
// brings them back as a supervisor would: a coordinator that exited, for
// whatever reason, is started again after a short delay, and a killed
// ZooKeeper server when its time is up.
//
// Start, Supervise and the faults run on the thread that runs the chaos: the
// processes die with the thread that started them.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "cluster/cluster.h"
#include "cluster/zookeeper_ensemble.h"
#include "common/status.h"
#include "tools/chaos/coordinator_probe.h"

namespace pact {

class HaShard {
 public:
  using Clock = std::chrono::steady_clock;
  static constexpr int kMembers = 2;
  // Short, as in ha_itest: a killed active is replaced in about this long.
  static constexpr int kSessionTimeoutMs = 2000;

  // Starts the ensemble under dir/zk and makes the cluster's coordinator a
  // member of the shard (its flags; participants learn the second member
  // too), the second member being coordinator_bin with the same flags. Call
  // before the cluster's first start. `violation` hears what must not happen
  // (a coordinator that crashed, a server that cannot start).
  static Result<std::unique_ptr<HaShard>> Create(const std::string& dir,
                                                 const std::string& coordinator_bin,
                                                 Cluster* cluster, uint64_t seed,
                                                 std::function<void(const std::string&)> violation);
  ~HaShard();  // the second coordinator, then the ensemble

  // Once the cluster's coordinator serves as the active: starts the second
  // member and waits until it stands by.
  Status StartStandby();

  // Both coordinators, for clients: the cluster's through its fault proxy.
  std::string ClientAddresses() const;
  std::string ConnectString() const { return zk_->ConnectString(); }
  std::string member_name(int m) const { return m == 0 ? "coordinator" : "coordinator-b"; }
  int port(int m) const { return m == 0 ? cluster_->coordinator_port() : second_port_; }
  std::string log_path(int m) const;

  // The member elected active (serving or recovering; else one cut off from
  // ZooKeeper), and one standing by.
  std::optional<int> FindActive() const;
  std::optional<int> FindStandby() const;

  // kill -9 of member m (waits for it to be gone). The supervisor restarts it.
  void Kill(int m);
  // SIGTERM: it finishes what is in flight and resigns (exit 0 expected).
  void Terminate(int m);
  // kill -9 of one ZooKeeper server, while all three serve; its restart
  // after 1-5 s. False (nothing done) if one is down or not serving yet.
  bool KillZooKeeperServer();
  // kill -9 of two servers at once (no quorum), both restarted within 0.3-1.5 s.
  // False (nothing done) unless all three serve.
  bool LoseZooKeeperQuorum();

  // Restarts what is due: coordinators that exited (after a delay of
  // 100-1500 ms from when their exit was seen) and ZooKeeper servers whose
  // downtime is over. Checks why each coordinator ended. Cheap: call it often.
  void Supervise();

  // At the end: every ZooKeeper server and both coordinators back at once,
  // then waits until one serves as the active and the other stands by.
  Status BringEverythingBack(int timeout_ms);
  // Both stopped with SIGTERM, the standby first (each must exit 0), then
  // the shard's unfinished decisions as ZooKeeper holds them (pactctl
  // shards): OK when there are none.
  Status StopCleanlyAndCheckDecisions();

  // What happened, for the summary: faults injected, by kind; coordinator
  // ends the supervisor saw, by kind.
  const std::map<std::string, int>& faults() const { return faults_; }
  const std::map<std::string, int>& exits() const { return exits_; }
  // Whether any ZooKeeper server is down or not serving now.
  bool ZooKeeperDegraded() const;

 private:
  enum class Expect { kNothing, kKill, kTerm };
  struct Member {
    Expect expect = Expect::kNothing;
    Clock::time_point signalled_at;
    std::optional<Clock::time_point> restart_at;  // set once its exit was seen
  };

  HaShard(Cluster* cluster, uint64_t seed, std::function<void(const std::string&)> violation);
  Process& process(int m);
  bool running(int m);
  Status Launch(int m);
  // Why member m's process ended: a fault of ours, a restartable exit, or a violation.
  void NoteExit(int m);
  int RandomMs(int min_ms, int max_ms);
  bool AllZooKeeperServersServe() const;
  void KillZooKeeperServerUntil(int i, Clock::time_point restart_at);

  Cluster* const cluster_;
  std::mt19937_64 rng_;
  const std::function<void(const std::string&)> violation_;
  std::string dir_;
  std::string coordinator_bin_;
  std::unique_ptr<ZooKeeperEnsemble> zk_;
  int second_port_ = 0;
  std::unique_ptr<Process> second_;
  Member members_[kMembers];
  std::vector<std::optional<Clock::time_point>> zk_restart_at_;  // per server, while down
  std::map<std::string, int> faults_, exits_;
};

}  // namespace pact
