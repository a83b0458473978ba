// pactctl resolve | heuristics | forget
#include <iostream>
#include <map>

#include "tools/pactctl/pactctl.h"

namespace pact::ctl {
namespace {

// Explains why deciding by hand is refused while the coordinator knows better.
int RefuseWhileCoordinatorDecides(const std::string& txn_id, rpc::Outcome::type outcome) {
  if (outcome == rpc::Outcome::ACTIVE) {
    std::cerr << "pactctl: refused: the coordinator is still deciding " << txn_id
              << "; wait for it (or --force to decide by hand anyway)\n";
  } else {
    std::cerr << "pactctl: refused: the coordinator says " << txn_id << " is "
              << rpc::_Outcome_VALUES_TO_NAMES.at(outcome)
              << " and finishes its branches itself (`pactctl retry " << txn_id
              << "` hurries a pending commit). Deciding by hand now can only create a "
                 "heuristic mix; --force does it anyway.\n";
  }
  return kExitError;
}

}  // namespace

int Resolve(const Context& ctx, const ResolveRequest& request) {
  rpc::Outcome::type outcome = rpc::Outcome::ACTIVE;
  Status asked = CallCoordinator(
      ctx, [&](rpc::CoordinatorClient& c) { outcome = c.outcome(request.txn_id); });
  if (asked.ok() && !request.force) return RefuseWhileCoordinatorDecides(request.txn_id, outcome);
  if (!asked.ok() && asked.code() != StatusCode::kUnavailable && !request.force) {
    return Fail(asked);  // e.g. a malformed id, or another coordinator's transaction
  }

  std::vector<std::pair<std::string, Endpoint>> targets;
  bool need_registry = request.participants.empty();
  for (const auto& p : request.participants) need_registry |= p.find(':') == std::string::npos;
  std::map<std::string, Endpoint> registry;
  if (need_registry) {
    auto known = Registry(ctx, ctx.journal);
    if (!known.ok()) return Fail(known.status());
    for (const auto& p : *known) registry[p.name] = Endpoint{p.host, p.port};
  }
  if (request.participants.empty()) {
    targets.assign(registry.begin(), registry.end());
  }
  for (const auto& p : request.participants) {
    if (p.find(':') != std::string::npos) {
      auto endpoint = Endpoint::Parse(p);
      if (!endpoint.ok()) return Fail(endpoint.status());
      targets.emplace_back(p, *endpoint);
    } else if (registry.count(p) > 0) {
      targets.emplace_back(p, registry[p]);
    } else {
      std::cerr << "pactctl: no participant named '" << p << "' is registered\n";
      return kExitUsage;
    }
  }

  int applied = 0;
  JsonWriter json;
  json.BeginArray();
  Table table({"PARTICIPANT", "RESULT"});
  for (const auto& [name, endpoint] : targets) {
    RpcConnection<rpc::ParticipantClient> participant(
        endpoint, ctx.timeouts, ctx.credentials.ToServer(Role::kParticipant, name));
    Status st = participant.Call(
        [&](rpc::ParticipantClient& c) { c.resolve(request.txn_id, request.commit); });
    std::string result = st.ok() ? (request.commit ? "committed (heuristic)"
                                                   : "rolled back (heuristic)")
                         : st.code() == StatusCode::kNotFound ? "holds no prepared branch of it"
                                                               : st.ToString();
    applied += st.ok();
    json.BeginObject().Key("participant").String(name).Key("applied").Bool(st.ok())
        .Key("result").String(result).EndObject();
    table.AddRow({name, result});
  }
  json.EndArray();
  Emit(ctx, table, json);
  if (applied == 0) {
    std::cerr << "pactctl: no participant held a prepared branch of " << request.txn_id << "\n";
    return kExitError;
  }
  return kExitOk;
}

int Heuristics(const Context& ctx) {
  std::vector<rpc::HeuristicInfo> mixes;
  Status st = CallCoordinator(ctx, [&](rpc::CoordinatorClient& c) { c.listHeuristics(mixes); });
  if (!st.ok()) return Fail(st);
  JsonWriter json;
  json.BeginArray();
  Table table({"TXN", "PARTICIPANT", "COORDINATOR DECIDED", "OPERATOR DID", "AT"});
  for (const auto& h : mixes) {
    std::string did = h.committed ? "COMMIT" : "ROLLBACK";
    json.BeginObject()
        .Key("txn_id").String(h.txn_id)
        .Key("participant").String(h.participant)
        .Key("decision").String(h.decision)
        .Key("operator").String(did)
        .Key("at_ms").Int(h.at_ms)
        .EndObject();
    table.AddRow({h.txn_id, h.participant, h.decision, did, std::to_string(h.at_ms)});
  }
  json.EndArray();
  Emit(ctx, table, json);
  return kExitOk;
}

int Forget(const Context& ctx, const std::string& txn_id) {
  Status st = CallCoordinator(ctx, [&](rpc::CoordinatorClient& c) { c.forgetHeuristic(txn_id); });
  if (!st.ok()) return Fail(st);
  if (!ctx.json) std::cout << "forgot the heuristic records of " << txn_id << "\n";
  return kExitOk;
}

}  // namespace pact::ctl
