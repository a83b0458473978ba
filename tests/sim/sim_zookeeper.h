// The ZooKeeper ensemble of one shard, as its coordinators observe it: a tree
// of znodes (data, version, ephemeral owner, zxid) with atomic multis and
// versioned compare-and-set, and sessions that the servers expire once they
// have not heard from them for the session timeout. Losing ZooKeeper servers
// is modelled by what a member sees of it: outages (quorum lost: every call
// fails, for everyone) and partitions of one member from the ensemble. A
// member paused or killed is not heard from either. Each session's expiry is
// computed from these spans of simulated time, so a session lives on across
// short outages and expires, with its ephemeral nodes, once one of them
// lasted the timeout: however the simulation's clock jumps.
//
// Errors follow ZkSession's one mapping: not connected now (nothing sent),
// a lost connection during a call (the outcome is unknown: a write may have
// been applied) and an expired session are kUnavailable; kNotFound for a
// missing node; kFailedPrecondition for a bad version, an existing node or a
// node with children (nothing changed).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"
#include "tests/sim/faults.h"
#include "tests/sim/history.h"
#include "tests/sim/sim_clock.h"
#include "tests/sim/sim_random.h"
#include "zookeeper/zk_session.h"

namespace pact::sim {

class SimZooKeeper {
 public:
  SimZooKeeper(SimClock* clock, SimRandom* random, const Faults* faults, History* history,
               int session_timeout_ms);

  int session_timeout_ms() const { return session_timeout_ms_; }

  // --- what makes it unreachable: spans of simulated time from now
  void Outage(int64_t ms);  // the quorum is lost for everyone
  void Partition(const std::string& member, int64_t ms);
  void Pause(const std::string& member);  // until Resume: the process is frozen
  void Resume(const std::string& member);
  void Died(int64_t session);  // its process was killed: nothing more from it
  // Ends every outage and partition now (pauses are the members' to end).
  void HealAll();
  // Whether `member`'s calls reach a quorum now (its process being up aside).
  bool Reachable(const std::string& member) const;
  bool InOutage() const;

  // --- sessions
  // A new session for `member`; kUnavailable when it cannot reach the servers.
  Result<int64_t> Connect(const std::string& member);
  // As the servers know it now. Expires what is due first.
  bool Expired(int64_t session);

  // --- one session's calls (each expires what is due first)
  Result<std::string> Create(int64_t session, const std::string& path, const std::string& data,
                             ZkCreateMode mode = ZkCreateMode::kPersistent);
  Status CreateAll(int64_t session, const std::string& path);
  Result<ZkNode> Get(int64_t session, const std::string& path);
  Result<ZkStat> Set(int64_t session, const std::string& path, const std::string& data,
                     int32_t expected_version);
  Status Delete(int64_t session, const std::string& path, int32_t expected_version);
  Result<std::optional<ZkStat>> Exists(int64_t session, const std::string& path);
  Result<std::vector<std::string>> Children(int64_t session, const std::string& path);
  Result<std::vector<ZkOpResult>> Multi(int64_t session, const std::vector<ZkOp>& ops);

  // Called after each applied write, with the session that made it.
  std::function<void(int64_t session, const std::vector<ZkOp>& ops)> on_applied;

  // --- for the checks, not through a session
  std::optional<ZkNode> Peek(const std::string& path) const;
  std::vector<std::string> PeekChildren(const std::string& path) const;

 private:
  struct Znode {
    std::string data;
    ZkStat stat;
    int64_t sequence = 0;  // the next sequential child's number
  };
  using Tree = std::map<std::string, Znode>;
  struct Span {
    int64_t from_ms, until_ms;
  };
  struct Session {
    std::string member;
    int64_t created_ms = 0;
    std::optional<int64_t> died_ms;
    bool expired = false;
  };

  // Expires every session whose member went unheard for the timeout.
  void ExpireDue();
  // When `session` expires (it went unheard for the timeout), if by now.
  std::optional<int64_t> ExpiryTime(const Session& session) const;
  // Checks that `session` can call now: kUnavailable if not.
  Status Usable(int64_t session, const std::string& what);
  // Usable, and a read whose connection the seed may lose (kUnavailable).
  Status Read(int64_t session, const std::string& what);
  // A write whose reply the seed may lose: then kUnavailable, applied or not.
  Status LoseReply(const std::string& what, bool* apply);
  // Applies `op` to `tree`; the failing op's status, nothing applied on error.
  Status Apply(Tree* tree, const ZkOp& op, int64_t session, int64_t zxid,
               std::string* created_path) const;
  static std::string Parent(const std::string& path);
  std::vector<std::string> ChildrenOf(const Tree& tree, const std::string& path) const;
  static bool Covers(const std::vector<Span>& spans, int64_t at);

  SimClock* const clock_;
  SimRandom* const random_;
  const Faults* const faults_;
  History* const history_;
  const int session_timeout_ms_;
  Tree tree_;
  int64_t zxid_ = 0;
  int64_t next_session_ = 0x1000;
  std::map<int64_t, Session> sessions_;
  std::vector<Span> outages_;
  std::map<std::string, std::vector<Span>> partitions_;  // by member
  std::map<std::string, std::vector<Span>> pauses_;      // by member
};

}  // namespace pact::sim
