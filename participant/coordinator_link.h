// How a participant reaches the coordinator that owns a transaction:
// enlisting branches, asking outcomes of prepared branches, registering.
#pragma once

#include <cstdint>
#include <string>

#include "common/protocol.h"
#include "common/status.h"
#include "gen-cpp/Coordinator.h"
#include "participant/state_store.h"
#include "thrift/rpc_client.h"

namespace pact {

struct ParticipantAddress {
  std::string name;
  std::string host;
  int port = 0;
  std::string backend;
};

class CoordinatorLink {
 public:
  virtual ~CoordinatorLink() = default;
  // Adds this participant's branch to the transaction; returns the
  // milliseconds left before its deadline. `branch` names this opening of
  // the branch (see ParticipantOptions::incarnation): the coordinator aborts
  // a transaction whose branch at one participant is opened twice, because
  // the work of the first opening is gone.
  virtual Result<int64_t> Enlist(const std::string& txn_id, const std::string& participant,
                                 const std::string& branch) = 0;
  virtual Result<Outcome> Inquire(const std::string& txn_id) = 0;
  virtual Status Register(const ParticipantAddress& self) = 0;
  // Tells the coordinator an operator's decision here disagrees with its own.
  virtual Status ReportHeuristic(const std::string& participant,
                                 const HeuristicDecision& heuristic) = 0;
};

class ThriftCoordinatorLink : public CoordinatorLink {
 public:
  ThriftCoordinatorLink(Endpoint coordinator, RpcTimeouts timeouts, RpcCredentials credentials)
      : pool_(std::move(coordinator), timeouts, std::move(credentials)) {}

  Result<int64_t> Enlist(const std::string& txn_id, const std::string& participant,
                         const std::string& branch) override;
  Result<Outcome> Inquire(const std::string& txn_id) override;
  Status Register(const ParticipantAddress& self) override;
  Status ReportHeuristic(const std::string& participant,
                         const HeuristicDecision& heuristic) override;

 private:
  RpcPool<rpc::CoordinatorClient> pool_;
};

}  // namespace pact
