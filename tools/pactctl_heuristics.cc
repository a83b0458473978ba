// pactctl resolve | heuristics | forget | journal
#include <iostream>
#include <map>

#include "journal/journal_reader.h"
#include "tools/pactctl.h"

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

int Journal(const Context& ctx, const std::string& path) {
  auto contents = ReadJournalFile(path);
  if (!contents.ok()) return Fail(contents.status());
  const JournalContents& j = *contents;
  if (ctx.json) {
    JsonWriter w;
    w.BeginObject()
        .Key("coordinator").String(j.coordinator_name)
        .Key("schema_version").Int(j.schema_version)
        .Key("epoch").Int(j.epoch)
        .Key("participants").BeginArray();
    for (const auto& p : j.participants) {
      w.BeginObject().Key("name").String(p.name).Key("host").String(p.host)
          .Key("port").Int(p.port).Key("backend").String(p.backend).EndObject();
    }
    w.EndArray().Key("unfinished").BeginArray();
    for (const auto& r : j.unfinished) {
      w.BeginObject().Key("txn_id").String(r.txn_id).Key("branches").BeginArray();
      for (const auto& b : r.branches) w.String(b);
      w.EndArray().Key("decided_at_ms").Int(r.decided_at_ms).EndObject();
    }
    w.EndArray().Key("heuristics").BeginArray();
    for (const auto& h : j.heuristics) {
      w.BeginObject().Key("txn_id").String(h.txn_id).Key("participant").String(h.participant)
          .Key("decision").String(h.decision).Key("operator")
          .String(h.committed ? "COMMIT" : "ROLLBACK").EndObject();
    }
    w.EndArray().EndObject();
    std::cout << w.str() << "\n";
    return kExitOk;
  }
  std::cout << "journal      " << path << "\n"
            << "coordinator  " << j.coordinator_name << "\n"
            << "epoch        " << j.epoch << "\n"
            << "schema       " << j.schema_version << "\n\nparticipants\n";
  Table participants({"NAME", "BACKEND", "ENDPOINT"});
  for (const auto& p : j.participants) {
    participants.AddRow({p.name, p.backend, p.host + ":" + std::to_string(p.port)});
  }
  participants.Print(std::cout);
  std::cout << "\nunfinished COMMIT decisions (re-driven at the next start)\n";
  Table unfinished({"TXN", "BRANCHES", "DECIDED AT"});
  for (const auto& r : j.unfinished) {
    std::string branches;
    for (const auto& b : r.branches) branches += (branches.empty() ? "" : ",") + b;
    unfinished.AddRow({r.txn_id, branches, std::to_string(r.decided_at_ms)});
  }
  unfinished.Print(std::cout);
  if (!j.heuristics.empty()) {
    std::cout << "\nheuristic mixes\n";
    Table heuristics({"TXN", "PARTICIPANT", "COORDINATOR DECIDED", "OPERATOR DID"});
    for (const auto& h : j.heuristics) {
      heuristics.AddRow({h.txn_id, h.participant, h.decision, h.committed ? "COMMIT" : "ROLLBACK"});
    }
    heuristics.Print(std::cout);
  }
  return kExitOk;
}

}  // namespace pact::ctl
