// How a participant reaches the coordinator that owns a transaction: asking
// outcomes of prepared branches, registering, reporting heuristics.
#pragma once

#include <cstdint>
#include <mutex>
#include <set>
#include <string>

#include "common/protocol.h"
#include "common/status.h"
#include "gen-cpp/Coordinator.h"
#include "participant/state_store.h"
#include "rpc/coordinator_route.h"
#include "rpc/rpc_client.h"

namespace pact {

struct ParticipantAddress {
  std::string name;
  std::string host;
  int port = 0;
  std::string backend;
};

// Who answers at the coordinator address this participant was configured
// with. The participant's only trustworthy source for a coordinator's epoch:
// a fence in a message is just the sender's claim.
struct CoordinatorIdentity {
  std::string name;
  // Already the new run's epoch while that run is still recovering (it raises
  // its epoch before it calls participants), so its recovery calls confirm.
  int64_t epoch = 0;
  std::string address;  // where it was asked, "host:port"; for messages
};

class CoordinatorLink {
 public:
  virtual ~CoordinatorLink() = default;
  virtual Result<Outcome> Inquire(const std::string& txn_id) = 0;
  // Makes every coordinator this participant serves (every shard) know it.
  // Asked again and again: cheap once each knows it, and a shard that
  // appears later learns of it too.
  virtual Status Register(const ParticipantAddress& self) = 0;
  // Asks the coordinator at the configured address, which should be
  // `coordinator`, its name and current epoch. kUnavailable when it cannot be
  // asked; with TLS, kUnauthenticated when the certificate there is not
  // `coordinator`'s.
  virtual Result<CoordinatorIdentity> Identify(const std::string& coordinator) = 0;
  // Tells the coordinator an operator's decision here disagrees with its own.
  virtual Status ReportHeuristic(const std::string& participant,
                                 const HeuristicDecision& heuristic) = 0;
};

// A call about a transaction goes to the active of the shard its id names.
// With TLS, it goes only to a server whose certificate names that
// coordinator: a holder of another coordinator's certificate at this address
// cannot answer for it.
class ThriftCoordinatorLink : public CoordinatorLink {
 public:
  // `coordinators`: one shard's given addresses, or a directory of shards.
  explicit ThriftCoordinatorLink(std::unique_ptr<CoordinatorRoutes> coordinators)
      : coordinators_(std::move(coordinators)) {}

  Result<Outcome> Inquire(const std::string& txn_id) override;
  Status Register(const ParticipantAddress& self) override;
  Result<CoordinatorIdentity> Identify(const std::string& coordinator) override;
  Status ReportHeuristic(const std::string& participant,
                         const HeuristicDecision& heuristic) override;

 private:
  std::unique_ptr<CoordinatorRoutes> coordinators_;
  std::mutex mu_;
  std::set<std::string> registered_with_;  // guarded by mu_: shards that know this participant
};

}  // namespace pact
