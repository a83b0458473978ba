// The way to the coordinator of a shard, for applications and participants: one address, or the
// addresses of a shard's active and standbys. Calls go to the one that last
// answered as the active. A standby's NOT_LEADER names the active and the
// call goes there at once; an address that does not answer is left for the
// next in the list, for the next call (the caller decides whether a call
// whose answer was lost is asked again: only idempotent ones are).
#pragma once

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
  // Where calls go now, "host:port".
  std::string current_address();

  // fn(rpc::CoordinatorClient&) at the active. kNotLeader is followed to the
  // active it names (a few hops at most); if no active is known yet the
  // answer is kUnavailable (ask again soon). server_name: as RpcPool::Call.
  template <typename Fn>
  Status Call(Fn&& fn, int call_timeout_ms = 0, const std::string& server_name = "") {
    Status st;
    for (int hop = 0; hop < kMaxHops; ++hop) {
      std::shared_ptr<Pool> pool = Current();
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

  CoordinatorRoute(std::vector<Endpoint> endpoints, RpcTimeouts timeouts,
                  RpcCredentials credentials);
  std::shared_ptr<Pool> Current();
  // `failed` did not answer: the next address takes over (unless someone
  // moved on already).
  void MoveOn(const Pool* failed);
  // `standby` named `leader` (empty: none known): use it from now on. False
  // when there is nowhere new to go.
  bool Follow(const Pool* standby, const std::string& leader);
  std::shared_ptr<Pool> PoolFor(const Endpoint& endpoint);  // REQUIRES: mu_ held

  const RpcTimeouts timeouts_;
  const RpcCredentials credentials_;
  std::mutex mu_;
  std::vector<std::shared_ptr<Pool>> pools_;  // guarded by mu_; the given ones, then learned
  size_t current_ = 0;                        // guarded by mu_
};

}  // namespace pact
