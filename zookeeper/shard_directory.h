// Where a deployment's shards are, as ZooKeeper holds them, for the
// processes that call coordinators (applications and participants) and for
// the coordinators that publish themselves. Under the deployment's root
// (--zk_root, /pact by default):
//
//   <root>/shards/<shard>/election/...  the shard's candidates, active first
//   <root>/shards/<shard>/epoch, ...    its epoch and decisions (the journal's)
//   <root>/map/<shard>                  the shard map: the shards that take
//                                       new transactions
//
// A shard enters the map when its first active serves (ShardMapJoin), and
// leaves it only when an operator takes it out (pactctl unmap-shard): its
// coordinators go on finishing what it owns, and it does not come back by
// itself (pactctl map-shard puts it back). New transactions are spread over
// the map by consistent hashing (ShardRing), so adding a shard moves only
// about 1/N of the keys.
//
// A directory is named by a URL, zk://host:port,host:port/root (the root
// defaults to /pact).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "common/status.h"
#include "rpc/coordinator_route.h"
#include "zookeeper/shard_ring.h"
#include "zookeeper/zk_session.h"

namespace pact {

struct ZooKeeperUrl {
  std::string connect_string;  // host:port,host:port
  std::string root = "/pact";
};

bool IsZooKeeperUrl(const std::string& text);  // starts with zk://
Result<ZooKeeperUrl> ParseZooKeeperUrl(const std::string& text);

std::string ShardPath(const std::string& root, const std::string& shard);
std::string ElectionPath(const std::string& root, const std::string& shard);
std::string ShardMapPath(const std::string& root);

// Puts `shard` into the map under `root`, unless it was put there before
// (whether or not it is still there).
Status ShardMapJoin(ZkSession* session, const std::string& root, const std::string& shard);

// A reader's view: it keeps no ephemeral node, so it opens its session when
// first asked and opens a new one when that expires. Thread-safe.
class ShardDirectory {
 public:
  explicit ShardDirectory(ZooKeeperUrl url, int session_timeout_ms = 10000);

  // The shard map as a ring, read again at most once a second (a client
  // asks it at every Begin). kNotFound while the map is empty.
  Result<std::shared_ptr<const ShardRing>> Map();
  // The shard's coordinators' addresses, its active (or the one about to be)
  // first; empty while it has none.
  Result<std::vector<std::string>> Coordinators(const std::string& shard);

  const ZooKeeperUrl& url() const { return url_; }

 private:
  static constexpr int kMapRefreshMs = 1000;

  Result<std::shared_ptr<ZkSession>> Session();

  const ZooKeeperUrl url_;
  const int session_timeout_ms_;
  std::mutex mu_;
  std::shared_ptr<ZkSession> session_;       // guarded by mu_; replaced once expired
  std::shared_ptr<const ShardRing> map_;     // guarded by mu_
  int64_t map_read_at_ms_ = 0;               // guarded by mu_; steady clock
};

// CoordinatorRoutes over a directory: a route per shard, learning the
// shard's coordinators from its election, again each time they stop
// answering; new transactions go to the shard of their key on the map's
// ring, or, without a key, to each shard in turn. Shards() is the map: a
// shard taken out of it knows its participants already.
class DirectoryRoutes : public CoordinatorRoutes {
 public:
  DirectoryRoutes(ZooKeeperUrl url, RpcTimeouts timeouts, RpcCredentials credentials);

  Result<CoordinatorRoute*> To(const std::string& shard) override;
  Result<std::vector<std::string>> ShardsFor(const std::string& key) override;
  Result<std::vector<std::string>> Shards() override;

 private:
  ShardDirectory directory_;
  const RpcTimeouts timeouts_;
  const RpcCredentials credentials_;
  std::mutex mu_;
  std::map<std::string, std::unique_ptr<CoordinatorRoute>> routes_;  // guarded by mu_
  uint64_t turn_ = 0;                                                // guarded by mu_
};

// "zk://..." names a directory; anything else is a fixed list of a single
// shard's coordinators (CoordinatorRoute::Make).
Result<std::unique_ptr<CoordinatorRoutes>> MakeCoordinatorRoutes(const std::string& spec,
                                                                 RpcTimeouts timeouts,
                                                                 RpcCredentials credentials);

}  // namespace pact
