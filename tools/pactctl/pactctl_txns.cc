// pactctl txns | show | retry | stats
#include <iostream>

#include "tools/pactctl/pactctl.h"

namespace pact::ctl {
namespace {

std::string VoteName(const rpc::BranchStatus& b) {
  if (!b.__isset.vote) return "-";
  auto it = rpc::_Vote_VALUES_TO_NAMES.find(b.vote);
  return it == rpc::_Vote_VALUES_TO_NAMES.end() ? "?" : it->second;
}

void WriteTxnJson(JsonWriter& w, const rpc::TxnStatus& t) {
  w.BeginObject()
      .Key("txn_id").String(t.txn_id)
      .Key("state").String(StateName(t.state))
      .Key("age_ms").Int(t.age_ms)
      .Key("deadline_in_ms").Int(t.deadline_in_ms)
      .Key("reason").String(t.reason)
      .Key("branches").BeginArray();
  for (const auto& b : t.branches) {
    w.BeginObject()
        .Key("participant").String(b.participant)
        .Key("vote").String(VoteName(b))
        .Key("state").String(b.state)
        .Key("attempts").Int(b.attempts)
        .Key("last_error").String(b.last_error)
        .EndObject();
  }
  w.EndArray().EndObject();
}

}  // namespace

int Txns(const Context& ctx, const std::string& state_filter) {
  std::vector<rpc::TxnState::type> states;
  if (!state_filter.empty()) {
    for (const auto& [value, name] : rpc::_TxnState_VALUES_TO_NAMES) {
      if (state_filter == name) states.push_back(static_cast<rpc::TxnState::type>(value));
    }
    if (states.empty()) {
      std::cerr << "pactctl: unknown state '" << state_filter << "'\n";
      return kExitUsage;
    }
  }
  std::vector<rpc::TxnStatus> txns;
  Status st =
      CallCoordinator(ctx, [&](rpc::CoordinatorClient& c) { c.listTransactions(txns, states); });
  if (!st.ok()) return Fail(st);
  JsonWriter json;
  json.BeginArray();
  Table table({"TXN", "STATE", "AGE", "BRANCHES", "REASON"});
  for (const auto& t : txns) {
    WriteTxnJson(json, t);
    std::string branches;
    for (const auto& b : t.branches) {
      branches += (branches.empty() ? "" : ",") + b.participant + ":" + b.state;
    }
    table.AddRow({t.txn_id, StateName(t.state), Seconds(t.age_ms), branches, t.reason});
  }
  json.EndArray();
  Emit(ctx, table, json);
  return kExitOk;
}

int Show(const Context& ctx, const std::string& txn_id) {
  rpc::TxnStatus t;
  Status st = CallCoordinator(ctx, [&](rpc::CoordinatorClient& c) { c.status(t, txn_id); });
  if (!st.ok()) return Fail(st);
  if (ctx.json) {
    JsonWriter w;
    WriteTxnJson(w, t);
    std::cout << w.str() << "\n";
    return kExitOk;
  }
  std::cout << "transaction  " << t.txn_id << "\n"
            << "state        " << StateName(t.state) << "\n"
            << "age          " << Seconds(t.age_ms) << "\n"
            << "deadline in  " << Seconds(t.deadline_in_ms) << "\n";
  if (!t.reason.empty()) std::cout << "reason       " << t.reason << "\n";
  std::cout << "\n";
  Table table({"PARTICIPANT", "VOTE", "STATE", "ATTEMPTS", "LAST ERROR"});
  for (const auto& b : t.branches) {
    table.AddRow({b.participant, VoteName(b), b.state, std::to_string(b.attempts), b.last_error});
  }
  table.Print(std::cout);
  return kExitOk;
}

int Retry(const Context& ctx, const std::string& txn_id) {
  Status st = CallCoordinator(ctx, [&](rpc::CoordinatorClient& c) { c.retryCommit(txn_id); });
  if (!st.ok()) return Fail(st);
  if (!ctx.json) std::cout << "retrying the pending commits of " << txn_id << " now\n";
  return kExitOk;
}

int Stats(const Context& ctx) {
  std::map<std::string, int64_t> stats;
  Status st = CallCoordinator(ctx, [&](rpc::CoordinatorClient& c) { c.stats(stats); });
  if (!st.ok()) return Fail(st);
  JsonWriter json;
  json.BeginObject();
  Table table({"NAME", "VALUE"});
  for (const auto& [name, value] : stats) {
    json.Key(name).Int(value);
    table.AddRow({name, std::to_string(value)});
  }
  json.EndObject();
  Emit(ctx, table, json);
  return kExitOk;
}

}  // namespace pact::ctl
