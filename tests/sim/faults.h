// How hostile one run is. Each seed draws its own mix (swarm testing: some
// runs lose many messages, others crash often, others fail the journal), and
// the run ends with every probability at zero so that it can settle.
#pragma once

#include "tests/sim/sim_random.h"

namespace pact::sim {

struct Faults {
  // Per message.
  double lose_request = 0;  // the callee never sees it
  double lose_reply = 0;    // the callee acted; the caller hears nothing
  double duplicate = 0;     // delivered twice (now, or again later)
  double delay = 0;         // held, delivered at a later step; the caller gave up
  // Per journal write of the coordinator.
  double journal_clean_failure = 0;      // nothing written, kIoError
  double journal_ambiguous_failure = 0;  // maybe written, kUnavailable
  double journal_abort_failure = 0;      // LogAbort fails
  // Per backend call.
  double prepare_failure = 0;    // not durable, kUnavailable
  double prepare_ambiguous = 0;  // durable as prepared, yet kUnavailable (connection lost)
  double commit_failure = 0;     // a prepared commit fails and stays prepared
  double one_phase_ambiguous = 0;  // one-phase commit applied, yet kUnavailable
  // Per simulation step.
  double crash = 0;
  double partition = 0;
  double zombie = 0;  // the coordinator freezes as a zombie (Simulation::Freeze)
  double forge = 0;   // a stranger sends a participant a forged fence (Simulation::Forge)
  // HA runs only (ShardMembers), per simulation step unless said otherwise.
  double member_kill = 0;    // kill -9 of a member: the active, mostly
  double active_pause = 0;   // the active is paused (SIGSTOP), often past its session timeout
  double zk_outage = 0;      // ZooKeeper's quorum is lost for a while
  double zk_partition = 0;   // one member cannot reach ZooKeeper for a while
  double zk_reply_lost = 0;  // per ZooKeeper write: the connection drops, applied or not

  static Faults Draw(SimRandom& random) {
    Faults f;
    auto draw = [&](double max) { return random.Chance(0.5) ? random.Unit() * max : 0.0; };
    f.lose_request = draw(0.08);
    f.lose_reply = draw(0.08);
    f.duplicate = draw(0.08);
    f.delay = draw(0.08);
    f.journal_clean_failure = draw(0.1);
    f.journal_ambiguous_failure = draw(0.1);
    f.journal_abort_failure = draw(0.3);
    f.prepare_failure = draw(0.05);
    f.prepare_ambiguous = draw(0.05);
    f.commit_failure = draw(0.1);
    f.one_phase_ambiguous = draw(0.1);
    f.crash = draw(0.08);
    f.partition = draw(0.03);
    f.zombie = draw(0.1);
    f.forge = draw(0.05);
    return f;
  }

  // The mix of an HA run: Draw's, without the single coordinator's journal
  // faults and zombie (ZooKeeper's journal fails as ZooKeeper does), and
  // with the members' and ZooKeeper's own.
  static Faults DrawHa(SimRandom& random) {
    Faults f = Draw(random);
    f.journal_clean_failure = f.journal_ambiguous_failure = f.journal_abort_failure = 0;
    f.zombie = 0;
    f.crash *= 0.5;  // the members' kills come on top
    auto draw = [&](double max) { return random.Chance(0.6) ? random.Unit() * max : 0.0; };
    f.member_kill = draw(0.03);
    f.active_pause = draw(0.03);
    f.zk_outage = draw(0.01);
    f.zk_partition = draw(0.02);
    f.zk_reply_lost = draw(0.1);
    return f;
  }
};

}  // namespace pact::sim
