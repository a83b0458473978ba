#include "tests/sim/sim_links.h"

namespace pact::sim {
namespace {
const Status& StatusOf(const Status& status) { return status; }
template <typename T>
const Status& StatusOf(const Result<T>& result) {
  return result.status();
}
}  // namespace

CoordinatorRoute Directory::RouteToCoordinator() {
  if (ha_route) return ha_route();
  return {&coordinator, [this](const std::function<void(Coordinator*)>& call, bool) {
            if (coordinator_object == nullptr) return Status::Unavailable("sim: no coordinator");
            call(coordinator_object);
            return Status::Ok();
          }};
}

CoordinatorOptions SimCoordinatorOptions(const std::string& name, SimClock* clock,
                                         SimRandom* random) {
  CoordinatorOptions options;
  options.name = name;
  options.default_txn_timeout_ms = 5000;
  options.protocol.prepare_timeout_ms = 1000;
  options.protocol.commit_retry_initial_ms = 100;
  options.protocol.commit_retry_max_ms = 2000;
  options.runtime.clock = clock;
  options.runtime.fan_out = SequentialFanOut(random);
  options.runtime.background_threads = false;
  return options;
}

template <typename R>
R SimParticipants::Call(const std::string& participant, const std::string& what,
                        const std::function<R(ParticipantService*, const Fence&)>& handle) {
  Directory::Node* node = directory_->Find(participant);
  if (node == nullptr) return R(Status::NotFound("sim: no participant " + participant));
  const Fence fence = fence_;  // as sent: a held copy keeps its epoch
  Directory* directory = directory_;
  Invariants* invariants = invariants_;
  std::function<R()> deliver = [=]() -> R {
    invariants->BeginDelivery(participant, fence);
    R result = handle(directory->Find(participant)->service, fence);
    invariants->EndDelivery(StatusOf(result));
    return result;
  };
  return network_->Send<R>(*sender_, node->process,
                           what + " [epoch " + std::to_string(fence.epoch) + "]", deliver);
}

Result<Vote> SimParticipants::Prepare(const std::string& participant, const std::string& txn_id,
                                      const std::string& opening, int) {
  return Call<Result<Vote>>(participant, "prepare " + txn_id + " as " + opening,
                            [txn_id, opening](ParticipantService* p, const Fence& fence) {
                              return p->Prepare(fence, txn_id, opening);
                            });
}

Status SimParticipants::Commit(const std::string& participant, const std::string& txn_id,
                               bool one_phase) {
  return Call<Status>(participant, (one_phase ? "commit-1pc " : "commit ") + txn_id,
                      [txn_id, one_phase](ParticipantService* p, const Fence& fence) {
                        return p->Commit(fence, txn_id, one_phase);
                      });
}

Status SimParticipants::Rollback(const std::string& participant, const std::string& txn_id) {
  return Call<Status>(participant, "rollback " + txn_id,
                      [txn_id](ParticipantService* p, const Fence& fence) {
                        return p->Rollback(fence, txn_id);
                      });
}

Result<std::vector<PreparedBranch>> SimParticipants::Recover(const std::string& participant) {
  auto prepared = Call<Result<std::vector<BranchSnapshot>>>(
      participant, "recover",
      [](ParticipantService* p, const Fence& fence) { return p->Recover(fence); });
  if (!prepared.ok()) return prepared.status();
  std::vector<PreparedBranch> out;
  for (const auto& b : *prepared) out.push_back({b.txn_id, b.age_ms});
  return out;
}

Status SimParticipants::ForgetHeuristic(const std::string& participant,
                                        const std::string& txn_id) {
  return Call<Status>(participant, "forget-heuristic " + txn_id,
                      [txn_id](ParticipantService* p, const Fence&) {
                        return p->ForgetHeuristic(txn_id);
                      });
}

Result<std::vector<PreparedBranch>> SimParticipants::ListBranches(
    const std::string& participant) {
  auto branches = Call<Result<std::vector<BranchSnapshot>>>(
      participant, "list-branches",
      [](ParticipantService* p, const Fence&) -> Result<std::vector<BranchSnapshot>> {
        return p->ListBranches();
      });
  if (!branches.ok()) return branches.status();
  std::vector<PreparedBranch> out;
  for (const auto& b : *branches) out.push_back({b.txn_id, b.age_ms});
  return out;
}

Result<Outcome> SimCoordinatorLink::Inquire(const std::string& txn_id) {
  return CallCoordinator<Result<Outcome>>(network_, directory_, *self_, "inquire " + txn_id,
                                          [=](Coordinator* c) { return c->Inquire(txn_id); });
}

Status SimCoordinatorLink::Register(const ParticipantAddress& self) {
  ParticipantRecord record{self.name, self.host, self.port, self.backend};
  return CallCoordinator<Status>(network_, directory_, *self_, "register " + self.name,
                                 [=](Coordinator* c) { return c->RegisterParticipant(record); });
}

Result<CoordinatorIdentity> SimCoordinatorLink::Identify(const std::string&) {
  return CallCoordinator<Result<CoordinatorIdentity>>(
      network_, directory_, *self_, "info", [](Coordinator* c) -> Result<CoordinatorIdentity> {
        return CoordinatorIdentity{c->name(), c->epoch(), "sim:coordinator"};
      });
}

Status SimCoordinatorLink::ReportHeuristic(const std::string& participant,
                                           const HeuristicDecision& heuristic) {
  HeuristicRecord record{heuristic.txn_id, participant, heuristic.committed, "", heuristic.at_ms};
  return CallCoordinator<Status>(network_, directory_, *self_,
                                 "report-heuristic " + heuristic.txn_id,
                                 [=](Coordinator* c) { return c->ReportHeuristic(record); });
}

}  // namespace pact::sim
