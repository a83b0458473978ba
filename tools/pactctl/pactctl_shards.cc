// pactctl shards: the highly available shards as ZooKeeper holds them: each
// shard's active and standbys (in election order), its epoch and its COMMIT
// records not yet finished. Read-only, and needs no coordinator.
#include <iostream>

#include "tools/pactctl/pactctl.h"
#include "zookeeper/shard_election.h"

namespace pact::ctl {
namespace {

struct ShardView {
  std::string name;
  std::vector<std::string> candidates;  // addresses; the first is the active
  std::string epoch;
  int decisions = 0;
};

Result<ShardView> ReadShard(ZkSession& zk, const std::string& root, const std::string& name) {
  ShardView shard{name, {}, "-", 0};
  ASSIGN_OR_RETURN(shard.candidates, ElectionCandidates(&zk, root + "/election"));
  if (auto epoch = zk.Get(root + "/epoch"); epoch.ok()) shard.epoch = epoch->data;
  ASSIGN_OR_RETURN(std::optional<ZkStat> commits, zk.Exists(root + "/commits"));
  if (commits) shard.decisions = commits->num_children;
  return shard;
}

}  // namespace

int Shards(const Context& ctx, const std::string& zookeeper, const std::string& zk_root) {
  if (zookeeper.empty()) {
    std::cerr << "pactctl shards: give --zookeeper HOST:PORT,...\n";
    return kExitUsage;
  }
  ZkSessionOptions options;
  options.connect_string = zookeeper;
  options.connect_timeout_ms = ctx.timeouts.call_ms;
  auto zk = ZkSession::Connect(options);
  if (!zk.ok()) {
    std::cerr << "pactctl: ZooKeeper " << zookeeper << ": " << zk.status().ToString() << "\n";
    return kExitUnreachable;
  }
  auto names = (*zk)->Children(zk_root + "/shards");
  if (!names.ok() && names.status().code() != StatusCode::kNotFound) return Fail(names.status());
  std::vector<ShardView> shards;
  for (const auto& name : names.ok() ? *names : std::vector<std::string>{}) {
    auto shard = ReadShard(**zk, zk_root + "/shards/" + name, name);
    if (!shard.ok()) return Fail(shard.status());
    shards.push_back(std::move(*shard));
  }
  Table table({"SHARD", "ACTIVE", "STANDBYS", "EPOCH", "UNFINISHED DECISIONS"});
  JsonWriter json;
  json.BeginArray();
  for (const auto& s : shards) {
    std::string standbys;
    for (size_t i = 1; i < s.candidates.size(); ++i) {
      standbys += (standbys.empty() ? "" : ",") + s.candidates[i];
    }
    const std::string active = s.candidates.empty() ? "-" : s.candidates.front();
    table.AddRow({s.name, active, standbys.empty() ? "-" : standbys, s.epoch,
                  std::to_string(s.decisions)});
    json.BeginObject().Key("shard").String(s.name).Key("active").String(active);
    json.Key("standbys").BeginArray();
    for (size_t i = 1; i < s.candidates.size(); ++i) json.String(s.candidates[i]);
    json.EndArray().Key("epoch").String(s.epoch).Key("unfinished_decisions").Int(s.decisions);
    json.EndObject();
  }
  json.EndArray();
  Emit(ctx, table, json);
  return kExitOk;
}

}  // namespace pact::ctl
