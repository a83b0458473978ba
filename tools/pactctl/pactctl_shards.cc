// pactctl shards: the highly available shards as ZooKeeper holds them: each
// shard's active and standbys (in election order), whether it is in the
// shard map, its epoch and its COMMIT records not yet finished. Read-only,
// and needs no coordinator. pactctl map-shard / unmap-shard put a shard into
// the map or take it out.
#include <algorithm>
#include <iostream>

#include "tools/pactctl/pactctl.h"
#include "zookeeper/shard_directory.h"
#include "zookeeper/shard_election.h"

namespace pact::ctl {
namespace {

struct ShardView {
  std::string name;
  std::vector<std::string> candidates;  // addresses; the first is the active
  bool in_map = false;
  std::string epoch;
  int decisions = 0;
};

Result<ShardView> ReadShard(ZkSession& zk, const std::string& zk_root, const std::string& name,
                            const std::vector<std::string>& map) {
  const std::string root = ShardPath(zk_root, name);
  ShardView shard{name, {}, false, "-", 0};
  ASSIGN_OR_RETURN(shard.candidates, ElectionCandidates(&zk, ElectionPath(zk_root, name)));
  shard.in_map = std::find(map.begin(), map.end(), name) != map.end();
  if (auto epoch = zk.Get(root + "/epoch"); epoch.ok()) shard.epoch = epoch->data;
  ASSIGN_OR_RETURN(std::optional<ZkStat> commits, zk.Exists(root + "/commits"));
  if (commits) shard.decisions = commits->num_children;
  return shard;
}

// The children of `path`; none if it does not exist.
Result<std::vector<std::string>> ChildrenIfAny(ZkSession& zk, const std::string& path) {
  auto names = zk.Children(path);
  if (names.status().code() == StatusCode::kNotFound) return std::vector<std::string>{};
  return names;
}

// Opens the session a command works in (*zk); otherwise says why and
// returns the exit code the command ends with.
int ConnectZooKeeper(const Context& ctx, const std::string& zookeeper,
                     std::unique_ptr<ZkSession>* zk) {
  if (zookeeper.empty()) {
    std::cerr << "pactctl: give --zookeeper HOST:PORT,...\n";
    return kExitUsage;
  }
  ZkSessionOptions options;
  options.connect_string = zookeeper;
  options.connect_timeout_ms = ctx.timeouts.call_ms;
  auto session = ZkSession::Connect(options);
  if (!session.ok()) return Fail(session.status().WithContext("ZooKeeper " + zookeeper));
  *zk = std::move(*session);
  return kExitOk;
}

}  // namespace

int MapShard(const Context& ctx, const std::string& zookeeper, const std::string& zk_root,
             const std::string& shard, bool in_map) {
  std::unique_ptr<ZkSession> zk;
  if (int code = ConnectZooKeeper(ctx, zookeeper, &zk); code != kExitOk) return code;
  auto exists = zk->Exists(ShardPath(zk_root, shard));
  if (!exists.ok()) return Fail(exists.status());
  if (!*exists) {
    return Fail(Status::NotFound("no shard " + shard + " under " + zk_root + "/shards"));
  }
  const std::string entry = ShardMapPath(zk_root) + "/" + shard;
  Status st = in_map ? zk->CreateAll(entry) : zk->Delete(entry, kZkAnyVersion);
  if (!in_map && st.code() == StatusCode::kNotFound) st = Status::Ok();
  if (!st.ok()) return Fail(st);
  std::cout << "shard " << shard
            << (in_map ? " is in the shard map: new transactions begin there\n"
                       : " is out of the shard map: no new transaction begins there; its "
                         "coordinators finish what it owns\n");
  return kExitOk;
}

int Shards(const Context& ctx, const std::string& zookeeper, const std::string& zk_root) {
  std::unique_ptr<ZkSession> zk;
  if (int code = ConnectZooKeeper(ctx, zookeeper, &zk); code != kExitOk) return code;
  auto names = ChildrenIfAny(*zk, zk_root + "/shards");
  if (!names.ok()) return Fail(names.status());
  auto map = ChildrenIfAny(*zk, ShardMapPath(zk_root));
  if (!map.ok()) return Fail(map.status());
  std::vector<ShardView> shards;
  for (const auto& name : *names) {
    auto shard = ReadShard(*zk, zk_root, name, *map);
    if (!shard.ok()) return Fail(shard.status());
    shards.push_back(std::move(*shard));
  }
  Table table({"SHARD", "ACTIVE", "STANDBYS", "IN MAP", "EPOCH", "UNFINISHED DECISIONS"});
  JsonWriter json;
  json.BeginArray();
  for (const auto& s : shards) {
    std::string standbys;
    for (size_t i = 1; i < s.candidates.size(); ++i) {
      standbys += (standbys.empty() ? "" : ",") + s.candidates[i];
    }
    const std::string active = s.candidates.empty() ? "-" : s.candidates.front();
    table.AddRow({s.name, active, standbys.empty() ? "-" : standbys, s.in_map ? "yes" : "no",
                  s.epoch, std::to_string(s.decisions)});
    json.BeginObject().Key("shard").String(s.name).Key("active").String(active);
    json.Key("standbys").BeginArray();
    for (size_t i = 1; i < s.candidates.size(); ++i) json.String(s.candidates[i]);
    json.EndArray().Key("in_map").Bool(s.in_map).Key("epoch").String(s.epoch);
    json.Key("unfinished_decisions").Int(s.decisions);
    json.EndObject();
  }
  json.EndArray();
  Emit(ctx, table, json);
  return kExitOk;
}

}  // namespace pact::ctl
