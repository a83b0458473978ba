// The election of a shard's active coordinator in ZooKeeper, by the usual
// recipe: each candidate holds an ephemeral sequential node under the
// election's path, with its address as the data; the lowest node leads.
// Every other candidate watches only the node just before its own, so a
// leader's exit wakes one process, not all of them. Before it leads, a
// candidate checks that the lowest node is owned by its own session.
//
// Leadership ends at once when the session loses its connection (the servers
// may expire the session, and promote another candidate, while this process
// cannot hear of it), and for good when the session expires: a new session
// and a new ShardElection are needed then, joining as a standby. What a
// paused old leader may still try to write is refused by the journal's epoch
// check, not by this class.
#pragma once

#include <atomic>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/status.h"
#include "zookeeper/zk_session.h"

namespace pact {

struct ShardElectionOptions {
  std::string path;     // the election's znode, e.g. /pact/shards/<shard>/election
  std::string address;  // this candidate's host:port, which standbys name to callers
  // Runs on the election's own thread each time leading() changes.
  std::function<void(bool leading)> on_change;
};

class ShardElection {
 public:
  // Enters the election (creates this candidate's node; a create whose reply
  // was lost is found again by the session's id in its name) and starts
  // following it. The session's listeners must reach OnSessionState and
  // OnWatch.
  static Result<std::unique_ptr<ShardElection>> Join(ZkSession* session,
                                                     ShardElectionOptions options);
  // Stops following. The node stays until Resign or the session closes.
  ~ShardElection();

  // For the session's listeners: they only note the event (no ZooKeeper
  // call); a lost connection ends leadership before they return.
  void OnSessionState(ZkSessionState state);
  void OnWatch(const ZkWatchEvent& event);

  // True while this candidate leads: its node is the lowest, its own
  // session's, the session is connected, and ZooKeeper answered it within
  // the lease (half the session timeout). The lease covers what no event
  // can: a process frozen past its session (SIGSTOP, a long pause) wakes
  // up still "connected" until its client notices, while another candidate
  // already leads; its lease has run out by then.
  bool leading() const;
  // The leader's address as ZooKeeper has it now; kNotFound: no candidate.
  Result<std::string> LeaderAddress();
  // Leaves the election (deletes this candidate's node), so that the next
  // one leads at once: a clean hand-over.
  Status Resign();

  const std::string& node() const { return node_; }

  ShardElection(const ShardElection&) = delete;
  ShardElection& operator=(const ShardElection&) = delete;

 private:
  ShardElection(ZkSession* session, ShardElectionOptions options);
  // The name prefix of this session's nodes.
  std::string Prefix() const;
  Status CreateNode();
  // One look at the election: lead, or watch the predecessor. Ok with
  // `again` set when the predecessor vanished meanwhile.
  Status Evaluate(bool* again);
  void SetLeading(bool leading);
  void Loop();

  ZkSession* const session_;
  const ShardElectionOptions options_;
  std::string node_;  // this candidate's node's name (not path); set by Join

  // Half the session timeout: leading() holds this long after the last
  // answer to the election's own look (every third of it while leading).
  int LeaseMs() const;

  std::atomic<bool> leading_{false};
  std::atomic<int64_t> lease_renewed_ns_{0};  // steady clock
  std::mutex mu_;
  std::condition_variable wake_;  // with mu_: look_ or stop_
  bool look_ = true;              // guarded by mu_: something changed, look again
  bool stop_ = false;             // guarded by mu_
  bool resigned_ = false;         // guarded by mu_
  bool reported_ = false;         // the on_change state last reported (election thread)
  std::thread thread_;
};

// The addresses of the candidates in the election at `path`, in election
// order: the active (or the one about to be) first. Empty if nobody entered.
Result<std::vector<std::string>> ElectionCandidates(ZkSession* session, const std::string& path);

// A session is made before the election that follows it: its listeners go
// through a relay, attached to the election once there is one and detached
// (waiting for a listener in progress) before the election is destroyed.
class ElectionRelay {
 public:
  ElectionRelay();
  ~ElectionRelay();  // detaches
  void Attach(ShardElection* election);  // nullptr: detach
  ZkSessionListener StateListener() const;
  ZkWatchListener WatchListener() const;

 private:
  struct Target;
  std::shared_ptr<Target> target_;  // shared with the listeners, which may outlive this
};

}  // namespace pact
