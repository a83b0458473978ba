// The cluster pact-bench measures: one pact-coordinator and P participants
// (p1..pP) on free loopback ports, with every file in one directory, and the
// coordinator's view of it (stats, transactions, registry) over Thrift.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "common/protocol.h"
#include "common/status.h"
#include "rpc/rpc_client.h"
#include "tools/bench/bench_process.h"

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
  // Every link on mutual TLS: certificates are made here (by
  // scripts/make-tls-certs) for the coordinator, each participant, and the
  // bench itself (operator and application).
  bool tls = false;
};

class BenchCluster {
 public:
  // Picks the ports; starts nothing.
  static Result<std::unique_ptr<BenchCluster>> Create(BenchClusterOptions options);
  ~BenchCluster();  // Stop()

  // Starts the coordinator, waits until it serves, then the participants,
  // and waits until each has registered.
  Status Start();
  // The pieces of Start, for recovery, which starts participants first.
  Status StartParticipants();
  Status StartCoordinator();
  Status WaitCoordinatorReady(int timeout_ms);
  Status WaitParticipantsRegistered(int timeout_ms);
  // Each participant answers info(); they need no coordinator for that.
  Status WaitParticipantsServing(int timeout_ms);
  // Participants first, so none logs about a vanished coordinator.
  void Stop();

  std::string coordinator_address() const;
  const std::string& coordinator_name() const { return options_.coordinator_name; }
  std::vector<std::string> participant_names() const;
  int participant_port(int index) const { return participant_ports_[index]; }
  std::string journal_path() const { return options_.dir + "/journal.db"; }
  std::string sqlite_path(int index) const;
  // journal.db plus its WAL: what the steady-state check watches.
  int64_t JournalBytes() const;

  // The running Pact processes, coordinator first.
  std::vector<const ChildProcess*> processes() const;
  ChildProcess* coordinator() { return coordinator_.get(); }

  // What the bench presents, as an application and as an operator.
  const RpcCredentials& credentials() const { return credentials_; }

  // The coordinator's counters (see the IDL's stats()).
  Result<std::map<std::string, int64_t>> CoordinatorStats();
  // How many transactions the coordinator holds in the given states.
  Result<int64_t> CountTransactions(const std::vector<TxnState>& states);
  // Branches (active or prepared) the running participants still hold.
  Result<int64_t> CountOpenBranches();
  // Waits until nothing is in flight anywhere: no open, deciding or
  // committing transaction at the coordinator, no branch at a participant.
  Status WaitQuiescent(int timeout_ms);

 private:
  explicit BenchCluster(BenchClusterOptions options);
  // With --tls: the certificates, and the bench's own credentials.
  Status MakeCertificates();
  std::vector<std::string> TlsFlags(const std::string& name) const;
  std::vector<std::string> ParticipantArgv(int index) const;
  Status Died(const ChildProcess& process) const;
  Status AnyParticipantDied() const;

  const BenchClusterOptions options_;
  RpcCredentials credentials_;
  int coordinator_port_ = 0;
  std::vector<int> participant_ports_;
  std::unique_ptr<ChildProcess> coordinator_;
  std::vector<std::unique_ptr<ChildProcess>> participants_;
  // One connection for every question to the coordinator: recovery polls
  // every 10 ms and should not pay a TCP handshake each time.
  std::unique_ptr<RpcConnection<rpc::CoordinatorClient>> admin_;
};

}  // namespace pact
