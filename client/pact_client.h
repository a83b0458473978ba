// The C++ client library: begin a transaction, run statements on named
// participants, commit atomically. Hides all Thrift. Beginning costs no round
// trip (ids come in blocks reserved at the coordinator), and the branches a
// transaction opened travel with its commit.
//
//   auto client = pact::Client::Connect("127.0.0.1:7700");
//   auto txn = (*client)->Begin();
//   (*txn)->Execute("bank_a", "UPDATE accounts SET balance = balance - ?1 WHERE id = ?2",
//                   {int64_t{10}, int64_t{1}});
//   (*txn)->Execute("bank_b", "UPDATE accounts SET balance = balance + ?1 WHERE id = ?2",
//                   {int64_t{10}, int64_t{7}});
//   pact::Status st = (*txn)->Commit();  // OK only once the decision is durable
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <chrono>

#include "common/protocol.h"
#include "common/sql_value.h"
#include "common/status.h"
#include "rpc/coordinator_route.h"
#include "rpc/rpc_client.h"

namespace pact {

namespace rpc {
class CoordinatorClient;
class ParticipantClient;
class EnlistedBranch;
}  // namespace rpc

class Transaction;

struct ClientOptions {
  RpcTimeouts timeouts;
  // How the application proves who it is to the coordinator and the
  // participants: a TLS context (certificate with O=application) or the
  // application token. Empty: for servers that are open (the quick start).
  // MakeClientCredentials (rpc/security_flags.h) builds one from flags.
  RpcCredentials credentials;
  // How long Commit keeps asking when the coordinator's answer is lost (the
  // connection breaks, or the coordinator restarts): commit is idempotent, so
  // it asks again until it hears the outcome or this budget is spent. One ask
  // waits up to max(timeouts.call_ms, this), since the coordinator may take
  // its prepare timeout plus a first commit round to answer.
  int commit_budget_ms = 15000;
  // Commit returns OK as soon as the COMMIT decision is durable, and the
  // coordinator tells the participants in the background, instead of once
  // every branch acknowledged. The outcome is as certain either way; what
  // changes is a read right after Commit: a participant may not have
  // committed its branch yet, so the read waits for its locks or sees the
  // rows as they were before (read your writes then needs the default).
  bool return_at_decision = false;
  // Transaction ids reserved at the coordinator per round trip (Begin takes
  // one each, without asking). 1 asks for every transaction.
  int id_block = 64;
};

// Thread-safe; share one Client across threads. Each Transaction is used by
// one thread at a time.
class Client {
 public:
  // `coordinator`: its host:port, or a shard's coordinators (active and
  // standbys) as host:port,host:port,...; calls follow a standby's
  // NOT_LEADER to the active. Or a deployment of several shards, as
  // zk://host:port,host:port/root: the ZooKeeper ensemble and root that
  // hold its shard map and elections (zookeeper/shard_directory.h).
  // Connections open lazily: this fails only on a malformed address.
  static Result<std::unique_ptr<Client>> Connect(const std::string& coordinator,
                                                 ClientOptions options = {});
  ~Client();

  // timeout_ms <= 0 takes the coordinator's default. A transaction not
  // committed by then is rolled back everywhere. Asks the coordinator only
  // when its block of reserved ids is used up or old. Over several shards,
  // transactions go to each in turn, and to the next when one cannot begin
  // any (it has no active).
  Result<std::unique_ptr<Transaction>> Begin(int64_t timeout_ms = 0);
  // Begins on the shard that owns `key` (e.g. an order id): the same key
  // reaches the same shard while the shard map is unchanged.
  Result<std::unique_ptr<Transaction>> BeginFor(const std::string& key, int64_t timeout_ms = 0);

  // The coordinator's view of a transaction, e.g. after Commit returned
  // kUnavailable because the connection broke.
  Result<TxnState> GetState(const std::string& txn_id);

 private:
  friend class Transaction;
  using ParticipantPool = RpcPool<rpc::ParticipantClient>;

  // Ids reserved at the coordinator, used one per transaction.
  struct IdBlock {
    std::string prefix;  // "<coordinator>.<epoch>."
    int64_t next = 0;
    int64_t end = 0;     // one past the last
    std::chrono::steady_clock::time_point valid_until;
    int64_t default_timeout_ms = 0;
    int64_t max_timeout_ms = 0;
  };

  Client(std::unique_ptr<CoordinatorRoutes> coordinators, ClientOptions options);
  // Begins on the first of `shards` that reserves an id.
  Result<std::unique_ptr<Transaction>> BeginOn(const std::vector<std::string>& shards,
                                               int64_t timeout_ms);
  // Looks a participant's endpoint up at a coordinator (cached).
  Result<std::shared_ptr<ParticipantPool>> PoolFor(const std::string& participant,
                                                   CoordinatorRoute* coordinator);
  // The next id reserved at `coordinator` and its timeout (timeout_ms as
  // Begin takes it).
  Status NextId(CoordinatorRoute* coordinator, int64_t timeout_ms, std::string* txn_id,
                int64_t* effective_timeout_ms);
  // After a failure that may mean the coordinator restarted (its ids of the
  // old run can no longer become transactions): reserve afresh next time.
  void DropIdBlock(CoordinatorRoute* coordinator);

  const ClientOptions options_;
  std::unique_ptr<CoordinatorRoutes> coordinators_;
  std::mutex mu_;
  std::map<std::string, std::shared_ptr<ParticipantPool>> participants_;  // guarded by mu_
  std::map<CoordinatorRoute*, IdBlock> ids_;  // guarded by mu_; per shard
};

class Transaction {
 public:
  // Rolls back unless committed or rolled back already.
  ~Transaction();

  // Final once a statement opened a branch. Before that it changes once if
  // the coordinator restarted since the client reserved it (that run's ids
  // can never commit, so the first statement takes a fresh one).
  const std::string& id() const { return id_; }

  // Runs one statement on a participant, opening its branch there on first
  // use. Parameters bind to ?1, ?2, ... (or ?) in order. Never retried: after
  // kUnavailable nobody knows whether the statement ran, so the transaction
  // can then only roll back (Commit does that and answers kAborted). So too
  // when the participant answers from a new opening of the branch (it lost
  // the earlier work: it restarted, or rolled the branch back).
  Result<QueryResult> Execute(const std::string& participant, const std::string& sql,
                              const std::vector<SqlValue>& params = {});

  // OK: committed, durably. kAborted: rolled back everywhere, the message
  // says why. kTimedOut: the deadline passed and it was rolled back.
  // kUnavailable: the outcome is unknown (ask Client::GetState later).
  Status Commit();
  Status Rollback();

 private:
  friend class Client;
  enum class Phase { kOpen, kCommitted, kRolledBack, kUnknown };
  Transaction(Client* client, CoordinatorRoute* coordinator, std::string id,
              std::chrono::steady_clock::time_point deadline)
      : client_(client), coordinator_(coordinator), id_(std::move(id)), deadline_(deadline) {}
  Status RequireOpen() const;
  // The branches as the coordinator is told them: for a commit those that
  // opened (opened_only), for a rollback every participant a statement was
  // sent to (a rollback needs no opening's name).
  std::vector<rpc::EnlistedBranch> WireBranches(bool opened_only) const;
  // Notes the opening `participant` answered from.
  void NoteOpening(const std::string& participant, const std::string& opening);
  // Rolls back at the coordinator, then answers `why`.
  Status RollBackAnd(Status why);
  // Sends one statement; *opening is the branch it ran in, also on failure.
  Status Send(RpcPool<rpc::ParticipantClient>& pool, const std::string& sql,
              const std::vector<rpc::Value>& params, rpc::ExecuteResult* result,
              std::string* opening);
  // Gives up every branch opened at its participant, without the
  // coordinator (unreachable): an active branch rolls back, a prepared one
  // is left to its coordinator. OK once every branch is known gone.
  Status AbandonBranches();

  Client* const client_;
  CoordinatorRoute* const coordinator_;  // the shard's, owned by the client
  std::string id_;
  const std::chrono::steady_clock::time_point deadline_;
  Phase phase_ = Phase::kOpen;
  // Each participant's opening of the branch ("" until one answered).
  std::map<std::string, std::string> openings_;
  std::string doubtful_;  // why the transaction can only roll back, if it can
};

}  // namespace pact
