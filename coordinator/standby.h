// How a coordinator process of a highly available shard serves while it is
// not the shard's active: every call is refused with one Status (NOT_LEADER
// naming the active, or UNAVAILABLE while the active has lost ZooKeeper),
// without touching anything, and a processor switches the whole service
// between that and the active coordinator's handler as the election goes.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <string>

#include <thrift/TProcessor.h>

#include "common/status.h"
#include "gen-cpp/Coordinator.h"

namespace pact {

// Answers every call with the error `why()` gives at that moment, except
// authenticate (connections still prove who they are); a caller that has not
// proved who it is hears only that.
class NotServingHandler : public rpc::CoordinatorIf {
 public:
  NotServingHandler(std::string shard, std::function<Status()> why)
      : shard_(std::move(shard)), why_(std::move(why)) {}

  void authenticate(const std::string& token) override;
  void info(rpc::CoordinatorInfo& out) override;
  void beginTxn(rpc::BeginResult&, int64_t) override { Refuse(); }
  void reserveTxnIds(rpc::IdBlock&, int32_t) override { Refuse(); }
  void commitTxn(rpc::CommitResult&, const std::string&, bool,
                 const std::vector<rpc::EnlistedBranch>&) override {
    Refuse();
  }
  void rollbackTxn(const std::string&, const std::vector<rpc::EnlistedBranch>&) override {
    Refuse();
  }
  void status(rpc::TxnStatus&, const std::string&) override { Refuse(); }
  rpc::Outcome::type outcome(const std::string&) override;
  void registerParticipant(const rpc::ParticipantEndpoint&) override { Refuse(); }
  void listParticipants(std::vector<rpc::ParticipantEndpoint>&) override { Refuse(); }
  void listTransactions(std::vector<rpc::TxnStatus>&,
                        const std::vector<rpc::TxnState::type>&) override {
    Refuse();
  }
  void stats(std::map<std::string, int64_t>&) override { Refuse(); }
  void retryCommit(const std::string&) override { Refuse(); }
  void removeParticipant(const std::string&, bool) override { Refuse(); }
  void reportHeuristic(const rpc::HeuristicInfo&) override { Refuse(); }
  void listHeuristics(std::vector<rpc::HeuristicInfo>&) override { Refuse(); }
  void forgetHeuristic(const std::string&) override { Refuse(); }

 private:
  [[noreturn]] void Refuse();

  const std::string shard_;
  const std::function<Status()> why_;
};

// Hands each request to the active processor once there is one and while
// `may_serve()` (the election is still won), to `standby` otherwise. A
// request already being handled finishes where it started.
class SwitchingProcessor : public apache::thrift::TProcessor {
 public:
  SwitchingProcessor(std::shared_ptr<apache::thrift::TProcessor> standby,
                     std::function<bool()> may_serve)
      : standby_(std::move(standby)), may_serve_(std::move(may_serve)) {}

  // Serves through `active` from now on (nullptr: standby again). Keeps it alive.
  void Serve(std::shared_ptr<apache::thrift::TProcessor> active) {
    std::atomic_store(&active_, std::move(active));
  }

  bool process(std::shared_ptr<apache::thrift::protocol::TProtocol> in,
               std::shared_ptr<apache::thrift::protocol::TProtocol> out,
               void* connection_context) override {
    std::shared_ptr<apache::thrift::TProcessor> active = std::atomic_load(&active_);
    return (active && may_serve_() ? active : standby_)->process(in, out, connection_context);
  }

 private:
  const std::shared_ptr<apache::thrift::TProcessor> standby_;
  const std::function<bool()> may_serve_;
  std::shared_ptr<apache::thrift::TProcessor> active_;  // atomic_load/store only
};

}  // namespace pact
