#include <cstdio>
#include <iostream>

#include "journal/journal_reader.h"
#include "tools/pactctl/pactctl.h"

namespace pact::ctl {

int Fail(const Status& st) {
  std::cerr << "pactctl: " << st.ToString() << "\n";
  return st.code() == StatusCode::kUnavailable ? kExitUnreachable : kExitError;
}

std::string Seconds(int64_t ms) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.1fs", ms / 1000.0);
  return buf;
}

std::string StateName(rpc::TxnState::type state) {
  auto it = rpc::_TxnState_VALUES_TO_NAMES.find(state);
  return it == rpc::_TxnState_VALUES_TO_NAMES.end() ? "?" : it->second;
}

Result<std::vector<rpc::ParticipantEndpoint>> Registry(const Context& ctx,
                                                       const std::string& journal) {
  std::vector<rpc::ParticipantEndpoint> registered;
  Status st =
      CallCoordinator(ctx, [&](rpc::CoordinatorClient& c) { c.listParticipants(registered); });
  if (st.ok()) return registered;
  if (journal.empty()) {
    return st.WithContext("cannot learn the participants (give the coordinator's --journal "
                          "file while it is down)");
  }
  ASSIGN_OR_RETURN(JournalContents contents, ReadJournalFile(journal));
  for (const auto& p : contents.participants) {
    rpc::ParticipantEndpoint endpoint;
    endpoint.name = p.name;
    endpoint.host = p.host;
    endpoint.port = p.port;
    endpoint.backend = p.backend;
    registered.push_back(std::move(endpoint));
  }
  return registered;
}

void Emit(const Context& ctx, const Table& table, const JsonWriter& json) {
  if (ctx.json) {
    std::cout << json.str() << "\n";
  } else {
    table.Print(std::cout);
  }
}

}  // namespace pact::ctl
