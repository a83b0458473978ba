// pactctl: look at what a Pact coordinator and its participants hold.
#include <iostream>
#include <map>
#include <string>
#include <vector>

#include <boost/program_options.hpp>

#include "gen-cpp/Coordinator.h"
#include "gen-cpp/Participant.h"
#include "thrift/rpc_client.h"
#include "tools/output.h"

namespace po = boost::program_options;

namespace pact {
namespace {

// Exit codes scripts can rely on.
constexpr int kExitOk = 0;
constexpr int kExitError = 1;        // the service answered with an error
constexpr int kExitUsage = 2;
constexpr int kExitUnreachable = 3;  // the coordinator did not answer

const char kUsage[] =
    "Usage: pactctl [--coordinator HOST:PORT] [--json] COMMAND [ARGS]\n"
    "\n"
    "Commands:\n"
    "  txns [--state S]      transactions the coordinator holds: open ones, recently\n"
    "                        finished ones and unfinished commits. S is one of ACTIVE,\n"
    "                        PREPARING, COMMITTING, COMMITTED, ABORTING, ABORTED.\n"
    "  show TXN              one transaction: state, age, deadline, and every branch with\n"
    "                        its vote, state, attempts and last error\n"
    "  participants          registered participants: backend, endpoint, reachable or\n"
    "                        not, open and prepared branches\n"
    "  branches [NAME]       the open branches (ACTIVE or PREPARED) at every participant,\n"
    "                        or at NAME\n"
    "\n"
    "Exit status: 0 ok, 1 the service answered an error (e.g. unknown transaction),\n"
    "2 bad usage, 3 the coordinator could not be reached.";

struct Context {
  Endpoint coordinator;
  bool json = false;
  RpcTimeouts timeouts{2000, 5000};
};

int Fail(const Status& st) {
  std::cerr << "pactctl: " << st.ToString() << "\n";
  return st.code() == StatusCode::kUnavailable ? kExitUnreachable : kExitError;
}

std::string StateName(rpc::TxnState::type state) {
  auto it = rpc::_TxnState_VALUES_TO_NAMES.find(state);
  return it == rpc::_TxnState_VALUES_TO_NAMES.end() ? "?" : it->second;
}

std::string VoteName(const rpc::BranchStatus& b) {
  if (!b.__isset.vote) return "-";
  auto it = rpc::_Vote_VALUES_TO_NAMES.find(b.vote);
  return it == rpc::_Vote_VALUES_TO_NAMES.end() ? "?" : it->second;
}

std::string Seconds(int64_t ms) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.1fs", ms / 1000.0);
  return buf;
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
  RpcConnection<rpc::CoordinatorClient> coordinator(ctx.coordinator, ctx.timeouts);
  std::vector<rpc::TxnStatus> txns;
  Status st = coordinator.Call([&](rpc::CoordinatorClient& c) { c.listTransactions(txns, states); });
  if (!st.ok()) return Fail(st);
  if (ctx.json) {
    JsonWriter w;
    w.BeginArray();
    for (const auto& t : txns) WriteTxnJson(w, t);
    w.EndArray();
    std::cout << w.str() << "\n";
    return kExitOk;
  }
  Table table({"TXN", "STATE", "AGE", "BRANCHES", "REASON"});
  for (const auto& t : txns) {
    std::string branches;
    for (const auto& b : t.branches) {
      branches += (branches.empty() ? "" : ",") + b.participant + ":" + b.state;
    }
    table.AddRow({t.txn_id, StateName(t.state), Seconds(t.age_ms), branches, t.reason});
  }
  table.Print(std::cout);
  return kExitOk;
}

int Show(const Context& ctx, const std::string& txn_id) {
  RpcConnection<rpc::CoordinatorClient> coordinator(ctx.coordinator, ctx.timeouts);
  rpc::TxnStatus t;
  Status st = coordinator.Call([&](rpc::CoordinatorClient& c) { c.status(t, txn_id); });
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

// What one participant says about its branches, or why it did not answer.
struct ParticipantView {
  rpc::ParticipantEndpoint endpoint;
  Status reached;
  std::vector<rpc::BranchInfo> branches;
};

Result<std::vector<ParticipantView>> ViewParticipants(const Context& ctx) {
  RpcConnection<rpc::CoordinatorClient> coordinator(ctx.coordinator, ctx.timeouts);
  std::vector<rpc::ParticipantEndpoint> registered;
  RETURN_NOT_OK(
      coordinator.Call([&](rpc::CoordinatorClient& c) { c.listParticipants(registered); }));
  std::vector<ParticipantView> views;
  for (const auto& p : registered) {
    ParticipantView view;
    view.endpoint = p;
    RpcConnection<rpc::ParticipantClient> participant(Endpoint{p.host, p.port}, ctx.timeouts);
    view.reached =
        participant.Call([&](rpc::ParticipantClient& c) { c.listBranches(view.branches); });
    views.push_back(std::move(view));
  }
  return views;
}

int Participants(const Context& ctx) {
  auto views = ViewParticipants(ctx);
  if (!views.ok()) return Fail(views.status());
  JsonWriter w;
  w.BeginArray();
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
    w.BeginObject()
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
  w.EndArray();
  if (ctx.json) {
    std::cout << w.str() << "\n";
  } else {
    table.Print(std::cout);
  }
  return kExitOk;
}

int Branches(const Context& ctx, const std::string& only) {
  auto views = ViewParticipants(ctx);
  if (!views.ok()) return Fail(views.status());
  bool found = only.empty();
  JsonWriter w;
  w.BeginArray();
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
      std::string state = b.state == rpc::BranchState::PREPARED ? "PREPARED" : "ACTIVE";
      w.BeginObject()
          .Key("participant").String(v.endpoint.name)
          .Key("txn_id").String(b.txn_id)
          .Key("state").String(state)
          .Key("age_ms").Int(b.age_ms)
          .EndObject();
      table.AddRow({v.endpoint.name, b.txn_id, state, Seconds(b.age_ms)});
    }
  }
  w.EndArray();
  if (!found) {
    std::cerr << "pactctl: no participant named '" << only << "' is registered\n";
    return kExitError;
  }
  if (ctx.json) {
    std::cout << w.str() << "\n";
  } else {
    table.Print(std::cout);
  }
  return kExitOk;
}

}  // namespace
}  // namespace pact

int main(int argc, char** argv) {
  std::string coordinator, state, command;
  std::vector<std::string> args;
  po::options_description desc("Options");
  desc.add_options()
      ("help,h", "print this help")
      ("coordinator", po::value(&coordinator)->default_value("127.0.0.1:7700"),
       "coordinator HOST:PORT")
      ("json", "print JSON instead of tables")
      ("state", po::value(&state)->default_value(""), "txns: only transactions in this state");
  po::options_description hidden;
  hidden.add_options()("command", po::value(&command))("args", po::value(&args));
  po::options_description all;
  all.add(desc).add(hidden);
  po::positional_options_description positional;
  positional.add("command", 1).add("args", -1);
  po::variables_map vm;
  try {
    po::store(po::command_line_parser(argc, argv).options(all).positional(positional).run(), vm);
    po::notify(vm);
  } catch (const po::error& e) {
    std::cerr << "pactctl: " << e.what() << "\n\n" << pact::kUsage << "\n";
    return pact::kExitUsage;
  }
  if (vm.count("help") || command.empty()) {
    std::cout << pact::kUsage << "\n\n" << desc << "\n";
    return command.empty() && !vm.count("help") ? pact::kExitUsage : pact::kExitOk;
  }
  auto endpoint = pact::Endpoint::Parse(coordinator);
  if (!endpoint.ok()) {
    std::cerr << "pactctl: --coordinator: " << endpoint.status().ToString() << "\n";
    return pact::kExitUsage;
  }
  pact::Context ctx;
  ctx.coordinator = *endpoint;
  ctx.json = vm.count("json") > 0;

  if (command == "txns" && args.empty()) return pact::Txns(ctx, state);
  if (command == "show" && args.size() == 1) return pact::Show(ctx, args[0]);
  if (command == "participants" && args.empty()) return pact::Participants(ctx);
  if (command == "branches" && args.size() <= 1) {
    return pact::Branches(ctx, args.empty() ? "" : args[0]);
  }
  std::cerr << "pactctl: bad command line\n\n" << pact::kUsage << "\n";
  return pact::kExitUsage;
}
