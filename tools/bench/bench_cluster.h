// The cluster pact-bench measures: one pact-coordinator and P participants
// (p1..pP) of the cluster library (cluster/), with every file in one
// directory, and the coordinator's view of it (stats, transactions) over
// Thrift. With a ZooKeeper connect string it is one highly available shard
// instead: two coordinators of the same name (member 0 first elected, member
// 1 its standby) whose decisions live in ZooKeeper, and the view is the
// active's.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "cluster/cluster.h"
#include "common/protocol.h"
#include "common/status.h"
#include "rpc/rpc_client.h"

namespace pact {

namespace rpc {
class CoordinatorClient;
}  // namespace rpc

struct BenchClusterOptions {
  std::string coordinator_bin;  // pact-coordinator
  std::string participant_bin;  // pact-participant
  std::string dir;              // journal, databases, fence stores and logs
  std::string backend;          // null | sqlite | postgresql
  int participants = 2;
  std::vector<std::string> pg_conninfo;  // postgresql: one per participant
  std::vector<std::string> coordinator_flags;
  std::vector<std::string> participant_flags;
  std::string coordinator_name = "bench";
  // Every link on mutual TLS: certificates are made (by
  // scripts/make-tls-certs) for the coordinator, each participant, and the
  // bench itself (operator and application).
  bool tls = false;
  // Non-empty: a highly available shard named coordinator_name, elected in
  // the ZooKeeper ensemble at this connect string.
  std::string zookeeper;
  int zk_session_timeout_ms = 0;  // 0: the coordinator's default
  // Non-empty (zk://.../root): the participants find every shard of the
  // shard map there, instead of this cluster's coordinators only.
  std::string participants_find_coordinators;
};

class BenchCluster {
 public:
  // Picks the ports; starts nothing.
  static Result<std::unique_ptr<BenchCluster>> Create(BenchClusterOptions options);
  ~BenchCluster();  // Stop()

  // Starts the coordinator, waits until it serves, then each participant,
  // waiting until it has registered; for a shard, then the standby, waiting
  // until it stands by.
  Status Start();
  // The pieces of Start, for recovery, which starts participants first and
  // measures the coordinator's start itself: the processes only.
  Status LaunchParticipants();
  Status LaunchCoordinator();
  // Each participant answers info(); they need no coordinator for that.
  Status WaitParticipantsServing(int timeout_ms);
  // Participants first, so none logs about a vanished coordinator (the
  // standby before them).
  void Stop();

  // What clients connect to: for a shard, both members ("host:port,host:port").
  std::string coordinator_address() const;
  const std::string& coordinator_name() const { return cluster_.coordinator_name(); }
  std::vector<std::string> participant_names() const { return cluster_.participant_names(); }
  int participant_port(int index) const;
  std::string journal_path() const { return cluster_.journal_path(); }
  std::string sqlite_path(int index) const;
  // journal.db plus its WAL: what the steady-state check watches.
  int64_t JournalBytes() const;

  // The running Pact processes, coordinator first (for a shard: member 0,
  // the participants, then member 1, the standby).
  std::vector<const Process*> processes() const;
  Process* coordinator() { return &cluster_.coordinator(); }

  // --- a highly available shard's two members (0 and 1) ---
  bool highly_available() const { return !options_.zookeeper.empty(); }
  // The member that answers info() as ready, asked every 5 ms until
  // timeout_ms; the view (stats, transactions) follows it from then on.
  Result<int> FindActive(int timeout_ms);
  // Ready: answers info() as the active. Standing by: answers NOT_LEADER.
  bool MemberReady(int member);
  bool MemberStandingBy(int member);
  // SIGKILL, then (the next call) a new process on the member's port and
  // files, which joins the election behind the active.
  void KillMember(int member);
  Status RelaunchMember(int member);

  // What the bench presents, as an application and as an operator.
  const RpcCredentials& credentials() const { return cluster_.credentials(); }

  // The coordinator's counters (see the IDL's stats()).
  Result<std::map<std::string, int64_t>> CoordinatorStats();
  // How many participants have registered with the coordinator.
  Result<int64_t> CountRegisteredParticipants();
  // How many transactions the coordinator holds in the given states.
  Result<int64_t> CountTransactions(const std::vector<TxnState>& states);
  // Branches (active or prepared) the running participants still hold.
  Result<int64_t> CountOpenBranches();
  // Waits until nothing is in flight anywhere: no open, deciding or
  // committing transaction at the coordinator, no branch at a participant.
  Status WaitQuiescent(int timeout_ms);

 private:
  BenchCluster(const BenchClusterOptions& options, ClusterOptions cluster_options);
  // One connection for every question to the coordinator: recovery polls
  // every 10 ms and should not pay a TCP handshake each time. Made at the
  // first question, once the coordinator's port is final.
  RpcConnection<rpc::CoordinatorClient>& Admin();
  int MemberPort(int member) const;
  Status LaunchStandby();

  const BenchClusterOptions options_;
  Cluster cluster_;
  int standby_port_ = 0;
  std::unique_ptr<Process> standby_;
  int active_member_ = 0;  // whom Admin() asks
  std::unique_ptr<RpcConnection<rpc::CoordinatorClient>> admin_;
};

}  // namespace pact
