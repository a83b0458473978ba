// pactctl journal: reads a coordinator's journal file offline (the coordinator
// may be down), for an operator working out what it will do at its next start.
#include <iostream>

#include "journal/journal_reader.h"
#include "tools/pactctl/pactctl.h"

namespace pact::ctl {

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
