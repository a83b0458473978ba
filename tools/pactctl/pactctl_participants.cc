// pactctl participants | branches | in-doubt | remove-participant
#include <algorithm>
#include <iostream>

#include "common/txn_id.h"
#include "tools/pactctl/pactctl.h"

namespace pact::ctl {
namespace {

// What one participant says about its branches, or why it did not answer.
struct ParticipantView {
  rpc::ParticipantEndpoint endpoint;
  Status reached;
  std::vector<rpc::BranchInfo> branches;
};

Result<std::vector<ParticipantView>> ViewParticipants(const Context& ctx) {
  ASSIGN_OR_RETURN(auto registered, Registry(ctx, ctx.journal));
  std::vector<ParticipantView> views;
  for (const auto& p : registered) {
    ParticipantView view;
    view.endpoint = p;
    RpcConnection<rpc::ParticipantClient> participant(
        Endpoint{p.host, p.port}, ctx.timeouts,
        ctx.credentials.ToServer(Role::kParticipant, p.name));
    view.reached =
        participant.Call([&](rpc::ParticipantClient& c) { c.listBranches(view.branches); });
    views.push_back(std::move(view));
  }
  return views;
}

std::string BranchStateName(const rpc::BranchInfo& b) {
  return b.state == rpc::BranchState::PREPARED ? "PREPARED" : "ACTIVE";
}

}  // namespace

int Participants(const Context& ctx) {
  auto views = ViewParticipants(ctx);
  if (!views.ok()) return Fail(views.status());
  JsonWriter json;
  json.BeginArray();
  Table table({"NAME", "BACKEND", "ENDPOINT", "REACHABLE", "ACTIVE", "PREPARED", "OLDEST PREPARED"});
  for (const auto& v : *views) {
    int active = 0, prepared = 0;
    int64_t oldest_ms = 0;
    for (const auto& b : v.branches) {
      if (b.state == rpc::BranchState::PREPARED) {
        prepared++;
        oldest_ms = std::max(oldest_ms, b.age_ms);
      } else {
        active++;
      }
    }
    std::string endpoint = v.endpoint.host + ":" + std::to_string(v.endpoint.port);
    json.BeginObject()
        .Key("name").String(v.endpoint.name)
        .Key("backend").String(v.endpoint.backend)
        .Key("endpoint").String(endpoint)
        .Key("reachable").Bool(v.reached.ok())
        .Key("error").String(v.reached.ok() ? "" : v.reached.ToString())
        .Key("active_branches").Int(active)
        .Key("prepared_branches").Int(prepared)
        .Key("oldest_prepared_ms").Int(oldest_ms)
        .EndObject();
    table.AddRow({v.endpoint.name, v.endpoint.backend, endpoint, v.reached.ok() ? "yes" : "NO",
                  v.reached.ok() ? std::to_string(active) : "?",
                  v.reached.ok() ? std::to_string(prepared) : "?",
                  prepared > 0 ? Seconds(oldest_ms) : "-"});
  }
  json.EndArray();
  Emit(ctx, table, json);
  return kExitOk;
}

int Branches(const Context& ctx, const std::string& only) {
  auto views = ViewParticipants(ctx);
  if (!views.ok()) return Fail(views.status());
  bool found = only.empty();
  JsonWriter json;
  json.BeginArray();
  Table table({"PARTICIPANT", "TXN", "STATE", "AGE"});
  for (const auto& v : *views) {
    if (!only.empty() && v.endpoint.name != only) continue;
    found = true;
    if (!v.reached.ok()) {
      std::cerr << "pactctl: participant " << v.endpoint.name
                << " unreachable: " << v.reached.ToString() << "\n";
      continue;
    }
    for (const auto& b : v.branches) {
      json.BeginObject()
          .Key("participant").String(v.endpoint.name)
          .Key("txn_id").String(b.txn_id)
          .Key("state").String(BranchStateName(b))
          .Key("age_ms").Int(b.age_ms)
          .EndObject();
      table.AddRow({v.endpoint.name, b.txn_id, BranchStateName(b), Seconds(b.age_ms)});
    }
  }
  json.EndArray();
  if (!found) {
    std::cerr << "pactctl: no participant named '" << only << "' is registered\n";
    return kExitError;
  }
  Emit(ctx, table, json);
  return kExitOk;
}

int InDoubt(const Context& ctx) {
  auto views = ViewParticipants(ctx);
  if (!views.ok()) return Fail(views.status());
  rpc::CoordinatorInfo coordinator;
  Status known = CallCoordinator(ctx, [&](rpc::CoordinatorClient& c) { c.info(coordinator); });
  JsonWriter json;
  json.BeginArray();
  Table table({"PARTICIPANT", "TXN", "PREPARED FOR", "COORDINATOR SAYS"});
  int unreachable = 0;
  for (const auto& v : *views) {
    if (!v.reached.ok()) {
      std::cerr << "pactctl: participant " << v.endpoint.name
                << " unreachable, its branches are unknown: " << v.reached.ToString() << "\n";
      unreachable++;
      continue;
    }
    for (const auto& b : v.branches) {
      if (b.state != rpc::BranchState::PREPARED) continue;
      // The owner is in the id; this pactctl asks only the coordinator it knows.
      std::string says = "unreachable";
      auto owner = TxnId::Parse(b.txn_id);
      if (owner.ok() && known.ok() && owner->coordinator != coordinator.name) {
        says = "owned by coordinator " + owner->coordinator;
      } else {
        rpc::Outcome::type outcome = rpc::Outcome::ACTIVE;
        Status asked =
            CallCoordinator(ctx, [&](rpc::CoordinatorClient& c) { outcome = c.outcome(b.txn_id); });
        if (asked.ok()) says = rpc::_Outcome_VALUES_TO_NAMES.at(outcome);
      }
      json.BeginObject()
          .Key("participant").String(v.endpoint.name)
          .Key("txn_id").String(b.txn_id)
          .Key("prepared_ms").Int(b.age_ms)
          .Key("coordinator_says").String(says)
          .EndObject();
      table.AddRow({v.endpoint.name, b.txn_id, Seconds(b.age_ms), says});
    }
  }
  json.EndArray();
  Emit(ctx, table, json);
  return unreachable > 0 ? kExitError : kExitOk;
}

int RemoveParticipant(const Context& ctx, const std::string& name, bool force) {
  Status st =
      CallCoordinator(ctx, [&](rpc::CoordinatorClient& c) { c.removeParticipant(name, force); });
  if (!st.ok()) return Fail(st);
  if (!ctx.json) std::cout << "participant " << name << " removed\n";
  return kExitOk;
}

}  // namespace pact::ctl
