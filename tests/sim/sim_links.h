// The links between the real objects, over the simulated network:
// SimParticipants is the coordinator's Participants, SimCoordinatorLink a
// participant's CoordinatorLink. Each delivers to whichever object is live
// for the callee at delivery time (see Directory).
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "coordinator/coordinator.h"
#include "coordinator/participants.h"
#include "participant/coordinator_link.h"
#include "participant/participant_service.h"
#include "tests/sim/invariants.h"
#include "tests/sim/process.h"
#include "tests/sim/sim_network.h"
#include "tests/sim/sim_random.h"

namespace pact::sim {

// Where a call to "the coordinator" goes: the process that receives it, and
// at delivery, the coordinator that answers: `deliver` runs `call` on it and
// returns Ok, or returns why none answers (a standby's NOT_LEADER, an active
// out of touch with ZooKeeper). `from_client`: the call is an application's.
struct CoordinatorRoute {
  Process* process = nullptr;
  std::function<Status(const std::function<void(Coordinator*)>& call, bool from_client)> deliver;
};

// Every process and its live object (null while it is down).
struct Directory {
  Process client{"client"};
  Process coordinator{"coordinator"};
  Coordinator* coordinator_object = nullptr;
  // A frozen old run of the coordinator, alive beside the new one (null when none).
  Process zombie{"zombie"};
  Coordinator* zombie_object = nullptr;
  struct Node {
    explicit Node(const std::string& name) : process(name) {}
    Process process;
    ParticipantService* service = nullptr;
  };
  std::map<std::string, std::unique_ptr<Node>> participants;
  // Anyone else who reaches the participants' ports; never crashes.
  Process stranger{"stranger"};
  // An HA run's routing (ShardMembers::Route); unset: the single coordinator.
  std::function<CoordinatorRoute()> ha_route;

  CoordinatorRoute RouteToCoordinator();

  Node* Find(const std::string& participant) {
    auto it = participants.find(participant);
    return it == participants.end() ? nullptr : it->second.get();
  }
};

// Sends `call` to the coordinator the directory routes to (as the client
// library and the participants' links follow NOT_LEADER to the active).
template <typename R>
R CallCoordinator(SimNetwork* network, Directory* directory, Process& from, const std::string& what,
                  const std::function<R(Coordinator*)>& call, bool idempotent = true) {
  CoordinatorRoute route = directory->RouteToCoordinator();
  const bool from_client = &from == &directory->client;
  auto deliver = route.deliver;
  return network->Send<R>(
      from, *route.process, what,
      [=]() -> R {
        std::optional<R> answer;
        Status refused = deliver([&](Coordinator* c) { answer.emplace(call(c)); }, from_client);
        if (!answer) return R(refused);
        return std::move(*answer);
      },
      idempotent);
}

// The options of every coordinator run of a simulation (one thread, the
// simulated clock, fan-outs in an order the seed chooses).
CoordinatorOptions SimCoordinatorOptions(const std::string& name, SimClock* clock,
                                         SimRandom* random);

// The coordinator's side. One per coordinator run: it carries that run's fence.
class SimParticipants : public Participants {
 public:
  SimParticipants(SimNetwork* network, Directory* directory, Invariants* invariants)
      : network_(network),
        directory_(directory),
        invariants_(invariants),
        sender_(&directory->coordinator) {}

  // The run became the zombie: its messages leave from that process.
  void SetSender(Process* sender) { sender_ = sender; }
  void SetFence(const Fence& fence) override { fence_ = fence; }
  void SetEndpoint(const std::string&, const std::string&, int) override {}
  Result<Vote> Prepare(const std::string& participant, const std::string& txn_id,
                       const std::string& opening, int timeout_ms) override;
  Status Commit(const std::string& participant, const std::string& txn_id,
                bool one_phase) override;
  Status Rollback(const std::string& participant, const std::string& txn_id) override;
  Result<std::vector<PreparedBranch>> Recover(const std::string& participant) override;
  Status ForgetHeuristic(const std::string& participant, const std::string& txn_id) override;
  Result<std::vector<PreparedBranch>> ListBranches(const std::string& participant) override;

 private:
  // Sends a fenced message: effects at the participant meanwhile are checked
  // against the fence.
  template <typename R>
  R Call(const std::string& participant, const std::string& what,
         const std::function<R(ParticipantService*, const Fence&)>& handle);

  SimNetwork* const network_;
  Directory* const directory_;
  Invariants* const invariants_;
  Process* sender_;
  Fence fence_;
};

// A participant's side.
class SimCoordinatorLink : public CoordinatorLink {
 public:
  SimCoordinatorLink(SimNetwork* network, Directory* directory, Process* self)
      : network_(network), directory_(directory), self_(self) {}

  Result<Outcome> Inquire(const std::string& txn_id) override;
  Status Register(const ParticipantAddress& self) override;
  // Asks the live coordinator run (the one at "the address"); never the zombie.
  Result<CoordinatorIdentity> Identify(const std::string& coordinator) override;
  Status ReportHeuristic(const std::string& participant,
                         const HeuristicDecision& heuristic) override;

 private:
  SimNetwork* const network_;
  Directory* const directory_;
  Process* const self_;
};

}  // namespace pact::sim
