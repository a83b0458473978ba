// An HA run's coordinators: two or three members of one shard (one name),
// each driven as coordinator/main.cc's ServeShardMember drives a process.
// A member connects a session to the simulated ZooKeeper and enters the
// election (an ephemeral sequential node; the lowest leads); it leads only
// while its session reaches the ensemble and within a lease of half the
// session timeout since its last look. The winner opens the shard's journal
// (SimZkJournal), builds the real Coordinator and Start()s it: the epoch is
// raised, decisions loaded and re-driven, prepared branches without a record
// rolled back. A member out of touch with ZooKeeper serves nothing (its
// background work goes on); one whose session expired exits and comes back,
// later, as a new candidate; so does one killed (kill -9), or one whose
// journal was lost.
//
// Faults: a clean stop of the active (SIGTERM: drain, resign, wind down),
// also with a decision still being made when the grace runs out;
// kill -9 of any member (the active mostly) between steps or at an
// armed event (a message, a ZooKeeper write: before it is sent, or after it
// was applied); a pause of the active (SIGSTOP, often past its session
// timeout) between steps, or at an armed event inside an application's call
// (then the rest of the world runs on while the call waits, and the call
// carries on, with its old epoch, once the member wakes); ZooKeeper outages
// and partitions of one member from it.
//
// Checks: at most one member serves at a time; a COMMIT record is made
// durable only by the member whose epoch is the shard's current one.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "coordinator/coordinator.h"
#include "tests/sim/faults.h"
#include "tests/sim/history.h"
#include "tests/sim/invariants.h"
#include "tests/sim/sim_clock.h"
#include "tests/sim/sim_links.h"
#include "tests/sim/sim_network.h"
#include "tests/sim/sim_random.h"
#include "tests/sim/sim_zk_journal.h"
#include "tests/sim/sim_zookeeper.h"

namespace pact::sim {

struct ShardEnvironment {
  std::string name;  // the shard's coordinator name
  SimClock* clock;
  SimRandom* random;
  const Faults* faults;
  History* history;
  Invariants* invariants;
  SimNetwork* network;
  Directory* directory;
  std::map<std::string, int64_t>* counts;
};

class ShardMembers {
 public:
  ShardMembers(ShardEnvironment env, int members, int session_timeout_ms);
  ~ShardMembers();

  // Starts every member (their processes; they join at their next Drive).
  void StartAll();
  // Every awake member looks once: connects, joins, leads or not, takes
  // over, or learns that its session expired (and exits).
  void Drive();
  // One awake member's coordinator does its background round.
  void TickOne();
  void TickAll();
  // Awake members send their lazy ENDs.
  void Flush();
  void InjectFaults();
  // Paused members whose pause is over wake, and carry on at once.
  void WakeDue();
  // Destroys the objects of members that died (not while a call is inside one).
  void Reap();
  // Restarts members down for a while (all of them: every member down).
  void RestartDue(bool all);
  // For settling: ZooKeeper reachable again, pauses over, nothing armed.
  void HealAll();

  // The one member serving now, or null.
  Coordinator* Active();
  CoordinatorRoute Route();
  std::vector<std::string> Names() const;
  // Why the shard is not quiet yet (empty: it is).
  std::string Unquiet();
  std::vector<HeuristicRecord> Heuristics() const;

  // Runs one step of everything else, while a member is paused inside an
  // application's call (the call waits on the stack).
  std::function<void()> run_world_step;

 private:
  struct Member {
    explicit Member(const std::string& name) : process(name) {}
    Process process;
    int64_t session = 0;  // 0: none yet
    std::string node;     // its election node's name
    bool leading = false;
    int64_t lease_renewed_ms = 0;
    bool was_active = false;  // it took over in this run
    std::unique_ptr<SimZkJournal> journal;
    std::unique_ptr<SimParticipants> links;
    std::unique_ptr<Coordinator> coordinator;
    int in_client_calls = 0;  // an application's call is inside it (on the stack)
    int64_t wake_at_ms = -1;  // paused until then; -1: not paused
    bool pause_after_step = false;  // an armed pause struck outside a client's call
    int stopping_steps = 0;  // >0: stopped cleanly (resigned), its threads wind down
  };

  // Leads now: its last look found it first, and the lease holds.
  bool Serving(const Member& m) const;
  // Up, awake, and no application's call waiting inside it.
  bool Runnable(const Member& m) const;
  void Look(Member& m);
  bool Join(Member& m);
  void TakeOver(Member& m);
  // SIGTERM: drains, resigns (the next candidate leads at once) and winds
  // down for a few steps: its background work still writes, fenced by the
  // epoch its successor raised while its own session is alive.
  void Stop(Member& m);
  void Pause(Member& m, const std::string& when);
  void Wake(Member& m);
  // An armed pause struck at one of the member's events.
  void PauseAtEvent(Member& m);
  // A stop (SIGTERM) whose drain's grace ran out just before the decision
  // write of an application's call: the member resigns, the world runs on,
  // then the call goes on.
  void StopAtDecision(Member& m);
  // Whether the call inside `m` may wait while the world runs on.
  bool CanWaitInCall(const Member& m) const;
  // Steps the rest of the world until `until_ms` or until `m` dies.
  void RunWorldUntil(const Member& m, int64_t until_ms);
  std::string ElectionPath() const { return root_ + "/election"; }
  void Count(const std::string& what) { (*env_.counts)[what]++; }
  // The check after each applied ZooKeeper write.
  void CheckWrite(int64_t session, const std::vector<ZkOp>& ops);

  const ShardEnvironment env_;
  const std::string root_;
  SimZooKeeper zk_;
  std::vector<std::unique_ptr<Member>> members_;
  bool pause_in_progress_ = false;  // a call waits inside a member while the world runs
};

}  // namespace pact::sim
