#include "participant/coordinator_link.h"

#include "common/txn_id.h"

namespace pact {

namespace {

// The coordinator a transaction belongs to; "" if the id does not parse
// (then only the certificate's role is checked).
std::string OwnerOf(const std::string& txn_id) {
  auto id = TxnId::Parse(txn_id);
  return id.ok() ? id->coordinator : "";
}

}  // namespace

Result<Outcome> ThriftCoordinatorLink::Inquire(const std::string& txn_id) {
  rpc::Outcome::type outcome = rpc::Outcome::ACTIVE;
  RETURN_NOT_OK(pool_.Call([&](rpc::CoordinatorClient& c) { outcome = c.outcome(txn_id); }, 0,
                           OwnerOf(txn_id)));
  return OutcomeFromRpc(outcome);
}

Status ThriftCoordinatorLink::Register(const ParticipantAddress& self) {
  rpc::ParticipantEndpoint endpoint;
  endpoint.name = self.name;
  endpoint.host = self.host;
  endpoint.port = self.port;
  endpoint.backend = self.backend;
  return pool_.Call([&](rpc::CoordinatorClient& c) { c.registerParticipant(endpoint); });
}

Result<CoordinatorIdentity> ThriftCoordinatorLink::Identify(const std::string& coordinator) {
  rpc::CoordinatorInfo info;
  RETURN_NOT_OK(pool_.Call([&](rpc::CoordinatorClient& c) { c.info(info); }, 0, coordinator));
  return CoordinatorIdentity{info.name, info.epoch, pool_.endpoint().ToString()};
}

Status ThriftCoordinatorLink::ReportHeuristic(const std::string& participant,
                                             const HeuristicDecision& heuristic) {
  rpc::HeuristicInfo info;
  info.txn_id = heuristic.txn_id;
  info.participant = participant;
  info.committed = heuristic.committed;
  info.at_ms = heuristic.at_ms;
  return pool_.Call([&](rpc::CoordinatorClient& c) { c.reportHeuristic(info); }, 0,
                    OwnerOf(heuristic.txn_id));
}

}  // namespace pact
