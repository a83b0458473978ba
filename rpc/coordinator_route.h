// The way to the coordinator of a shard, for applications and participants: one address, or the
// addresses of a shard's active and standbys, given or learned from
// ZooKeeper. Calls go to the one that last answered as the active. A
// standby's NOT_LEADER names the active and the call goes there at once; an
// address that does not answer is left for the next in the list, for the next
// call (the caller decides whether a call whose answer was lost is asked
// again: only idempotent ones are). A learned list is learned again then.
#pragma once

#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "common/status.h"
#include "gen-cpp/Coordinator.h"
#include "rpc/rpc_auth.h"
#include "rpc/rpc_client.h"
#include "rpc/rpc_convert.h"

namespace pact {

class CoordinatorRoute {
 public:
  using Pool = RpcPool<rpc::CoordinatorClient>;

  // `addresses`: "host:port[,host:port...]".
  static Result<std::unique_ptr<CoordinatorRoute>> Make(const std::string& addresses,
                                                       RpcTimeouts timeouts,
                                                       RpcCredentials credentials);
  // The shard's addresses, the active's first, as its election has them now.
  using Resolver = std::function<Result<std::vector<std::string>>()>;
  // Learns the addresses from `resolve` before the first call, and again
  // after an address did not answer or no active was named.
  static std::unique_ptr<CoordinatorRoute> Learning(Resolver resolve, RpcTimeouts timeouts,
                                                   RpcCredentials credentials);
  // Where calls go now, "host:port" ("" before a learning route learned any).
  std::string current_address();

  // fn(rpc::CoordinatorClient&) at the active. kNotLeader is followed to the
  // active it names (a few hops at most); if no active is known yet the
  // answer is kUnavailable (ask again soon). server_name: as RpcPool::Call.
  template <typename Fn>
  Status Call(Fn&& fn, int call_timeout_ms = 0, const std::string& server_name = "") {
    Status st;
    for (int hop = 0; hop < kMaxHops; ++hop) {
      ASSIGN_OR_RETURN(std::shared_ptr<Pool> pool, Current());
      st = pool->Call(fn, call_timeout_ms, server_name);
      if (st.code() == StatusCode::kUnavailable) {
        MoveOn(pool.get());
        return st;
      }
      if (st.code() != StatusCode::kNotLeader) return st;
      if (!Follow(pool.get(), LeaderNamedBy(st))) break;
    }
    return Status::Unavailable("no active coordinator answered: " + st.message());
  }

 private:
  static constexpr int kMaxHops = 3;

  CoordinatorRoute(std::vector<Endpoint> endpoints, Resolver resolve, RpcTimeouts timeouts,
                   RpcCredentials credentials);
  // The pool calls go to; a learning route learns first if it must.
  Result<std::shared_ptr<Pool>> Current();
  // Asks the resolver and makes its first address the current one.
  Status Learn();
  // `failed` did not answer: the next address takes over (unless someone
  // moved on already).
  void MoveOn(const Pool* failed);
  // `standby` named `leader` (empty: none known): use it from now on. False
  // when there is nowhere new to go.
  bool Follow(const Pool* standby, const std::string& leader);
  // The next address takes over, and a learning route learns again first.
  void TryTheNext();  // REQUIRES: mu_ held
  // Where `endpoint` is in pools_, added if new.
  size_t IndexOf(const Endpoint& endpoint);  // REQUIRES: mu_ held

  const Resolver resolve_;  // empty: the given addresses are all there is
  const RpcTimeouts timeouts_;
  const RpcCredentials credentials_;
  std::mutex mu_;
  std::vector<std::shared_ptr<Pool>> pools_;  // guarded by mu_; the given ones, then learned
  size_t current_ = 0;                        // guarded by mu_
  bool stale_ = false;                        // guarded by mu_: learn before the next call
};

// A process's ways to the coordinators it calls, by shard: the shard a
// transaction id names (TxnId::coordinator), or where a new one begins.
class CoordinatorRoutes {
 public:
  virtual ~CoordinatorRoutes() = default;
  // The route to `shard`'s active.
  virtual Result<CoordinatorRoute*> To(const std::string& shard) = 0;
  // The shards a new transaction may begin on, to be tried in order: the
  // one its key hashes to, or, for an empty key, all in a turning order.
  virtual Result<std::vector<std::string>> ShardsFor(const std::string& key) = 0;
  // Every shard (a participant registers with each).
  virtual Result<std::vector<std::string>> Shards() = 0;
};

// One shard's coordinators given as a list: every shard name leads to them
// ("" stands for the one shard, whatever its name).
class FixedCoordinatorRoutes : public CoordinatorRoutes {
 public:
  explicit FixedCoordinatorRoutes(std::unique_ptr<CoordinatorRoute> route)
      : route_(std::move(route)) {}
  Result<CoordinatorRoute*> To(const std::string&) override { return route_.get(); }
  Result<std::vector<std::string>> ShardsFor(const std::string&) override {
    return std::vector<std::string>{""};
  }
  Result<std::vector<std::string>> Shards() override { return std::vector<std::string>{""}; }

 private:
  std::unique_ptr<CoordinatorRoute> route_;
};

}  // namespace pact
