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

// A question that changes nothing (an outcome, the epoch) gets a short
// timeout and, unanswered, goes at once to the next coordinator of the
// shard: a frozen old active must not hold up the confirmation of the new
// one's epoch for a whole call timeout. Three tries: during a take-over the
// route may still point at the dead active, and then at a standby about to
// lead that names nobody yet.
constexpr int kQuestionTimeoutMs = 1000;
constexpr int kQuestionTries = 3;

template <typename Fn>
Status Ask(CoordinatorRoute& route, Fn&& fn, const std::string& server_name) {
  Status st;
  for (int i = 0; i < kQuestionTries; ++i) {
    st = route.Call(fn, kQuestionTimeoutMs, server_name);
    if (st.code() != StatusCode::kUnavailable) break;
  }
  return st;
}

}  // namespace

Result<Outcome> ThriftCoordinatorLink::Inquire(const std::string& txn_id) {
  const std::string owner = OwnerOf(txn_id);
  ASSIGN_OR_RETURN(CoordinatorRoute * route, coordinators_->To(owner));
  rpc::Outcome::type outcome = rpc::Outcome::ACTIVE;
  RETURN_NOT_OK(
      Ask(*route, [&](rpc::CoordinatorClient& c) { outcome = c.outcome(txn_id); }, owner));
  return OutcomeFromRpc(outcome);
}

Status ThriftCoordinatorLink::Register(const ParticipantAddress& self) {
  rpc::ParticipantEndpoint endpoint;
  endpoint.name = self.name;
  endpoint.host = self.host;
  endpoint.port = self.port;
  endpoint.backend = self.backend;
  ASSIGN_OR_RETURN(std::vector<std::string> shards, coordinators_->Shards());
  Status first_failure;
  for (const std::string& shard : shards) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (registered_with_.count(shard) > 0) continue;
    }
    Result<CoordinatorRoute*> route = coordinators_->To(shard);
    Status st = route.ok() ? (*route)->Call([&](rpc::CoordinatorClient& c) {
                               c.registerParticipant(endpoint);
                             })
                           : route.status();
    if (st.ok()) {
      std::lock_guard<std::mutex> lock(mu_);
      registered_with_.insert(shard);
    } else if (first_failure.ok()) {
      first_failure = shard.empty() ? st : st.WithContext("shard " + shard);
    }
  }
  return first_failure;
}

Result<CoordinatorIdentity> ThriftCoordinatorLink::Identify(const std::string& coordinator) {
  ASSIGN_OR_RETURN(CoordinatorRoute * route, coordinators_->To(coordinator));
  rpc::CoordinatorInfo info;
  RETURN_NOT_OK(Ask(*route, [&](rpc::CoordinatorClient& c) { c.info(info); }, coordinator));
  return CoordinatorIdentity{info.name, info.epoch, route->current_address()};
}

Status ThriftCoordinatorLink::ReportHeuristic(const std::string& participant,
                                             const HeuristicDecision& heuristic) {
  rpc::HeuristicInfo info;
  info.txn_id = heuristic.txn_id;
  info.participant = participant;
  info.committed = heuristic.committed;
  info.at_ms = heuristic.at_ms;
  const std::string owner = OwnerOf(heuristic.txn_id);
  ASSIGN_OR_RETURN(CoordinatorRoute * route, coordinators_->To(owner));
  return route->Call([&](rpc::CoordinatorClient& c) { c.reportHeuristic(info); }, 0, owner);
}

}  // namespace pact
