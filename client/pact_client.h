// The C++ client library: begin a transaction at the coordinator, run
// statements on named participants, commit atomically. Hides all Thrift.
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

#include "common/protocol.h"
#include "common/sql_value.h"
#include "common/status.h"
#include "rpc/rpc_client.h"

namespace pact {

namespace rpc {
class CoordinatorClient;
class ParticipantClient;
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
};

// Thread-safe; share one Client across threads. Each Transaction is used by
// one thread at a time.
class Client {
 public:
  // Connections open lazily: this fails only on a malformed address.
  static Result<std::unique_ptr<Client>> Connect(const std::string& coordinator,
                                                 ClientOptions options = {});
  ~Client();

  // timeout_ms <= 0 takes the coordinator's default. A transaction not
  // committed by then is rolled back everywhere.
  Result<std::unique_ptr<Transaction>> Begin(int64_t timeout_ms = 0);

  // The coordinator's view of a transaction, e.g. after Commit returned
  // kUnavailable because the connection broke.
  Result<TxnState> GetState(const std::string& txn_id);

 private:
  friend class Transaction;
  using CoordinatorPool = RpcPool<rpc::CoordinatorClient>;
  using ParticipantPool = RpcPool<rpc::ParticipantClient>;

  Client(Endpoint coordinator, ClientOptions options);
  // Looks a participant's endpoint up at the coordinator (cached).
  Result<std::shared_ptr<ParticipantPool>> PoolFor(const std::string& participant);

  const ClientOptions options_;
  std::unique_ptr<CoordinatorPool> coordinator_;
  std::mutex mu_;
  std::map<std::string, std::shared_ptr<ParticipantPool>> participants_;  // guarded by mu_
};

class Transaction {
 public:
  // Rolls back unless committed or rolled back already.
  ~Transaction();

  const std::string& id() const { return id_; }

  // Runs one statement on a participant; its branch is enlisted on first use.
  // Parameters bind to ?1, ?2, ... (or ?) in order. Never retried: after
  // kUnavailable nobody knows whether the statement ran, so the transaction
  // can then only roll back (Commit does that and answers kAborted).
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
  Transaction(Client* client, std::string id) : client_(client), id_(std::move(id)) {}
  Status RequireOpen() const;

  Client* const client_;
  const std::string id_;
  Phase phase_ = Phase::kOpen;
  std::string doubtful_;  // why a statement's outcome is unknown, if one's is
};

}  // namespace pact
