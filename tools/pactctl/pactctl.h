// pactctl: what operators use to see what a Pact coordinator and its
// participants hold, and to finish what is stuck. One function per command.
#pragma once

#include <string>
#include <vector>

#include "common/status.h"
#include "gen-cpp/Coordinator.h"
#include "gen-cpp/Participant.h"
#include "rpc/rpc_client.h"
#include "tools/output/output.h"

namespace pact::ctl {

// Exit codes scripts can rely on.
constexpr int kExitOk = 0;
constexpr int kExitError = 1;        // the service answered with an error, or refused
constexpr int kExitUsage = 2;
constexpr int kExitUnreachable = 3;  // the coordinator (or the one participant asked) did not answer

struct Context {
  Endpoint coordinator;
  std::string journal;  // --journal: the registry's source while the coordinator is down
  bool json = false;
  RpcTimeouts timeouts{2000, 5000};
  RpcCredentials credentials;  // as an operator
};

// Prints the error; returns the exit code for it.
int Fail(const Status& st);
std::string Seconds(int64_t ms);
std::string StateName(rpc::TxnState::type state);
// Prints `json` with --json, else `table`.
void Emit(const Context& ctx, const Table& table, const JsonWriter& json);

// The registered participants: from the coordinator, or, when it cannot be
// reached and `journal` names its file, from the journal.
Result<std::vector<rpc::ParticipantEndpoint>> Registry(const Context& ctx,
                                                       const std::string& journal);

// Runs fn(client) against the coordinator.
template <typename Fn>
Status CallCoordinator(const Context& ctx, Fn&& fn) {
  RpcConnection<rpc::CoordinatorClient> conn(ctx.coordinator, ctx.timeouts,
                                             ctx.credentials.ToServer(Role::kCoordinator));
  return conn.Call(std::forward<Fn>(fn));
}

// Transactions (pactctl_txns.cc).
int Txns(const Context& ctx, const std::string& state);
int Show(const Context& ctx, const std::string& txn_id);
int Retry(const Context& ctx, const std::string& txn_id);
int Stats(const Context& ctx);

// Participants and their branches (pactctl_participants.cc).
int Participants(const Context& ctx);
int Branches(const Context& ctx, const std::string& only);
int InDoubt(const Context& ctx);
int RemoveParticipant(const Context& ctx, const std::string& name, bool force);

// Heuristic decisions and the journal (pactctl_heuristics.cc).
struct ResolveRequest {
  std::string txn_id;
  bool commit = false;
  bool force = false;
  std::vector<std::string> participants;  // names or host:port; empty = all registered
};
int Resolve(const Context& ctx, const ResolveRequest& request);
int Heuristics(const Context& ctx);
int Forget(const Context& ctx, const std::string& txn_id);
int Journal(const Context& ctx, const std::string& path);

// Highly available shards, from ZooKeeper (pactctl_shards.cc).
int Shards(const Context& ctx, const std::string& zookeeper, const std::string& zk_root);
// Puts a shard into the shard map (in_map) or takes it out.
int MapShard(const Context& ctx, const std::string& zookeeper, const std::string& zk_root,
             const std::string& shard, bool in_map);

}  // namespace pact::ctl
