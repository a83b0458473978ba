// Batched protocol messages on real processes: two PostgreSQL participants
// (concurrent branches prepare side by side there, so their prepares and
// commits really do batch), a FaultProxy on every link. A lone call is held
// in flight by the proxy so that the calls of the other transactions queue
// behind it and go as one batch; that batch's reply is then lost or its
// connection reset. Every transaction of the batch must end as its client
// was told, at both databases: money conserved, nothing left prepared, the
// journal clean. And a participant refuses a malformed or oversized batch
// with INVALID_ARGUMENT and keeps serving.
#include <gtest/gtest.h>

#include <future>
#include <thrift/protocol/TProtocol.h>

#include "client/pact_client.h"
#include "cluster/postgres_server.h"
#include "gen-cpp/Participant.h"
#include "gen-cpp/pact_constants.h"
#include "rpc/rpc_client.h"
#include "tests/process_harness.h"

namespace pact {
namespace {

constexpr int kAccounts = 8;   // one per transaction: no transaction waits for another's lock
constexpr int kQueued = 5;     // transactions queued behind the held one
constexpr int kHeldMs = 1000;  // how long the proxy holds the lone call
constexpr int64_t kAmount = 10;

class BatchTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    servers_dir_ = new TempDir();
    auto pg = PostgresServer::Start(servers_dir_->ServerDir("pg"));
    ASSERT_TRUE(pg.ok()) << pg.status().ToString();
    pg_ = pg->release();
  }
  static void TearDownTestSuite() {
    delete pg_;
    delete servers_dir_;
  }

  void SetUp() override {
    ASSERT_NE(pg_, nullptr);
    static int test_number = 0;
    db_ = "b" + std::to_string(++test_number);
    BankSpec bank;
    bank.accounts = kAccounts;
    for (const std::string& db : {db_ + "_a", db_ + "_b"}) {
      ASSERT_TRUE(pg_->CreateDatabase(db).ok());
      ASSERT_TRUE(pg_->Exec(db, BankSchemaSql(SqlDialect::kPostgres, bank)).ok());
    }
    for (const char* p : {"pa", "pb"}) {
      const std::string db = db_ + (p == std::string("pa") ? "_a" : "_b");
      cluster_.SetBackend(p, {"--backend=postgresql", "--pg_conninfo=" + pg_->ConnInfo(db)});
    }
    // A lost reply costs the call timeout: keep it short, but well above
    // the time the held call waits.
    cluster_.OverrideCoordinatorFlags(
        {"--prepare_timeout_ms=4000", "--rpc_timeout_ms=3000", "--max_batch=64"});
    cluster_.ProxyEveryLink();
    ASSERT_TRUE(cluster_.StartCoordinator().ok());
    for (const char* p : {"pa", "pb"}) ASSERT_TRUE(cluster_.StartParticipant(p).ok()) << p;
  }

  std::unique_ptr<Client> Connect() {
    ClientOptions options;
    options.credentials = cluster_.application_credentials();
    auto client = Client::Connect(cluster_.client_address(), options);
    EXPECT_TRUE(client.ok()) << client.status().ToString();
    return client.ok() ? std::move(*client) : nullptr;
  }

  // Moves kAmount from `account` at pa to `account` at pb, up to commit.
  std::unique_ptr<Transaction> Transfer(Client& client, int account) {
    auto txn = client.Begin();
    EXPECT_TRUE(txn.ok()) << txn.status().ToString();
    if (!txn.ok()) return nullptr;
    for (const auto& [participant, delta] :
         {std::pair<const char*, int64_t>{"pa", -kAmount}, {"pb", kAmount}}) {
      auto r = (*txn)->Execute(participant,
                               "UPDATE accounts SET balance = balance + $1 WHERE id = $2",
                               {delta, static_cast<int64_t>(account)});
      EXPECT_TRUE(r.ok()) << participant << ": " << r.status().ToString();
    }
    return std::move(*txn);
  }

  int64_t PgInt(const std::string& db, const std::string& sql) {
    auto rows = pg_->Query(db, sql);
    EXPECT_TRUE(rows.ok()) << rows.status().ToString();
    return rows.ok() && !rows->empty() ? std::stoll((*rows)[0][0]) : -1;
  }
  int64_t Balance(const std::string& suffix, int account) {
    return PgInt(db_ + suffix,
                 "SELECT balance FROM accounts WHERE id = " + std::to_string(account));
  }

  // Every transaction as told: one that committed moved its money at both
  // databases, one that aborted at neither; an unknown outcome (kUnavailable)
  // is settled by the coordinator's status and then held to the same rule.
  // Returns how many committed.
  int ExpectOutcomesAsTold(Client& client, const std::vector<std::string>& ids,
                           const std::vector<Status>& told) {
    int committed = 0;
    for (size_t i = 0; i < ids.size(); ++i) {
      const int account = static_cast<int>(i) + 1;
      bool did_commit = told[i].ok();
      if (told[i].code() == StatusCode::kUnavailable) {
        Result<TxnState> state = Status::Unavailable("not asked");
        EXPECT_TRUE(PollUntil(
            [&] {
              state = client.GetState(ids[i]);
              return state.ok() &&
                     (*state == TxnState::kCommitted || *state == TxnState::kAborted);
            },
            10000));
        did_commit = state.ok() && *state == TxnState::kCommitted;
      } else {
        EXPECT_TRUE(told[i].ok() || told[i].code() == StatusCode::kAborted)
            << ids[i] << ": " << told[i].ToString();
      }
      const int64_t moved = did_commit ? kAmount : 0;
      EXPECT_EQ(Balance("_a", account), 100 - moved) << ids[i] << " " << told[i].ToString();
      EXPECT_EQ(Balance("_b", account), 100 + moved) << ids[i] << " " << told[i].ToString();
      if (did_commit) committed++;
    }
    return committed;
  }

  void ExpectNothingLeftOver() {
    EXPECT_TRUE(cluster_.EventuallyNoOpenBranches());
    EXPECT_EQ(PgInt("postgres", "SELECT count(*) FROM pg_prepared_xacts"), 0);
    int64_t total_a = PgInt(db_ + "_a", "SELECT SUM(balance) FROM accounts");
    int64_t total_b = PgInt(db_ + "_b", "SELECT SUM(balance) FROM accounts");
    EXPECT_EQ(total_a + total_b, 2 * 100 * kAccounts);  // money conserved
    cluster_.ClearProxyRules();
    // The cluster still commits.
    auto client = Connect();
    ASSERT_TRUE(client);
    auto txn = Transfer(*client, kAccounts);
    ASSERT_TRUE(txn);
    EXPECT_TRUE(txn->Commit().ok());
    Status journal = cluster_.StopCoordinatorAndCheckJournal();
    EXPECT_TRUE(journal.ok()) << journal.ToString();
  }

  // Transaction 0's `held_method` call to pa is held kHeldMs by the proxy;
  // transactions 1..kQueued commit meanwhile, so their `held_method` calls
  // to pa queue behind it and go as one `batch_method` call, which meets
  // `fault`. Returns each transaction's id and what its client was told.
  void RunBatchMeetingFault(const char* held_method, const char* batch_method, Fault fault,
                            std::vector<std::string>* ids, std::vector<Status>* told) {
    FaultProxy& to_pa = cluster_.to_participant("pa");
    std::vector<std::unique_ptr<Client>> clients;
    std::vector<std::unique_ptr<Transaction>> txns;
    for (int i = 0; i <= kQueued; ++i) {
      clients.push_back(Connect());
      ASSERT_TRUE(clients.back());
      txns.push_back(Transfer(*clients.back(), i + 1));
      ASSERT_TRUE(txns.back());
      ids->push_back(txns.back()->id());
    }
    RuleId held = to_pa.AddRule({held_method, Fault::kDelayRequest, 1, kHeldMs});
    RuleId hit = to_pa.AddRule({batch_method, fault});
    std::vector<std::future<Status>> commits;
    commits.push_back(std::async(std::launch::async, [&] { return txns[0]->Commit(); }));
    ASSERT_TRUE(to_pa.WaitUntilFired(held, 5000));
    for (int i = 1; i <= kQueued; ++i) {
      commits.push_back(std::async(std::launch::async, [&, i] { return txns[i]->Commit(); }));
    }
    for (auto& commit : commits) told->push_back(commit.get());
    EXPECT_TRUE(to_pa.WaitUntilFired(hit, 5000)) << batch_method << " was never sent";
  }

  static TempDir* servers_dir_;
  static PostgresServer* pg_;
  std::string db_;
  TempDir dir_;
  TestCluster cluster_{dir_};
};

TempDir* BatchTest::servers_dir_ = nullptr;
PostgresServer* BatchTest::pg_ = nullptr;

class LostBatchTest : public BatchTest, public ::testing::WithParamInterface<Fault> {};

// A reply that never comes leaves no vote for any item of the batch within
// the prepare timeout: each of those transactions aborts, and the branches
// that did prepare at pa are rolled back, not left prepared. A reset comes
// at once, and prepare is idempotent: the batch goes again on a new
// connection and every transaction commits.
TEST_P(LostBatchTest, LostPrepareBatchEndsEveryTransactionInItAsTold) {
  std::vector<std::string> ids;
  std::vector<Status> told;
  RunBatchMeetingFault("prepare", "prepareBatch", GetParam(), &ids, &told);
  if (HasFatalFailure()) return;
  EXPECT_TRUE(told[0].ok()) << told[0].ToString();  // the held one was answered
  auto client = Connect();
  ASSERT_TRUE(client);
  int committed = ExpectOutcomesAsTold(*client, ids, told);
  if (GetParam() == Fault::kDropReply) {
    // The batch held at least two of them (a batch of one goes as a single
    // call), and none of those could commit.
    EXPECT_LE(committed, static_cast<int>(ids.size()) - 2);
  } else {
    EXPECT_EQ(committed, static_cast<int>(ids.size()));
  }
  ExpectNothingLeftOver();
}

// The decision is durable before phase two: an unknown commit is retried
// until acknowledged, so every transaction commits at both databases.
TEST_P(LostBatchTest, LostCommitBatchIsRetriedAndEveryTransactionCommits) {
  std::vector<std::string> ids;
  std::vector<Status> told;
  RunBatchMeetingFault("commit", "commitBatch", GetParam(), &ids, &told);
  if (HasFatalFailure()) return;
  auto client = Connect();
  ASSERT_TRUE(client);
  for (size_t i = 0; i < ids.size(); ++i) {
    EXPECT_TRUE(PollUntil(
        [&] {
          Result<TxnState> state = client->GetState(ids[i]);
          return state.ok() && *state == TxnState::kCommitted;
        },
        10000))
        << ids[i] << " told " << told[i].ToString();
    EXPECT_FALSE(told[i].code() == StatusCode::kAborted) << ids[i] << ": " << told[i].ToString();
  }
  EXPECT_EQ(ExpectOutcomesAsTold(*client, ids, std::vector<Status>(ids.size())),
            static_cast<int>(ids.size()));
  ExpectNothingLeftOver();
}

INSTANTIATE_TEST_SUITE_P(Faults, LostBatchTest,
                         ::testing::Values(Fault::kDropReply, Fault::kResetAfterRequest),
                         [](const ::testing::TestParamInfo<Fault>& info) {
                           return info.param == Fault::kDropReply ? "ReplyLost"
                                                                  : "ConnectionReset";
                         });

// Straight to pa (around the proxy), as the coordinator would call it.
TEST_F(BatchTest, MalformedOrOversizedBatchIsRefusedAndTheParticipantKeepsServing) {
  RpcConnection<rpc::ParticipantClient> pa(
      Endpoint{"127.0.0.1", cluster_.participant_port("pa")}, RpcTimeouts{});
  rpc::Fence fence;
  fence.coordinator = cluster_.coordinator_name();
  fence.epoch = 1 << 20;  // refused whole before any fence is looked at
  auto refused = [&](auto&& call) {
    Status st = pa.Call(call);
    EXPECT_EQ(st.code(), StatusCode::kInvalidArgument) << st.ToString();
  };
  const int max = rpc::g_pact_constants.MAX_BATCH_ITEMS;
  std::vector<rpc::PrepareItem> items(max + 1);
  for (int i = 0; i <= max; ++i) items[i].txn_id = "c1:unknown-" + std::to_string(i);
  std::vector<rpc::PrepareAnswer> votes;
  refused([&](rpc::ParticipantClient& c) { c.prepareBatch(votes, fence, items); });
  std::vector<std::string> txn_ids(max + 1, "c1:unknown");
  std::vector<rpc::BatchAnswer> answers;
  refused([&](rpc::ParticipantClient& c) { c.commitBatch(answers, fence, txn_ids); });
  refused([&](rpc::ParticipantClient& c) { c.rollbackBatch(answers, fence, {}); });
  // The items field with the wrong wire type: skipped as Thrift skips an
  // unknown field, which leaves an empty batch.
  refused([&](rpc::ParticipantClient& c) {
    auto out = c.getOutputProtocol();
    out->writeMessageBegin("prepareBatch", apache::thrift::protocol::T_CALL, 0);
    out->writeStructBegin("args");
    out->writeFieldBegin("fence", apache::thrift::protocol::T_STRUCT, 1);
    fence.write(out.get());
    out->writeFieldEnd();
    out->writeFieldBegin("items", apache::thrift::protocol::T_STRING, 2);
    out->writeString("not a list");
    out->writeFieldEnd();
    out->writeFieldStop();
    out->writeStructEnd();
    out->writeMessageEnd();
    out->getTransport()->writeEnd();
    out->getTransport()->flush();
    c.recv_prepareBatch(votes);
  });
  EXPECT_TRUE(cluster_.participant("pa").running());
  // The same connection and the cluster still work.
  Status info = pa.Call([](rpc::ParticipantClient& c) {
    rpc::ParticipantInfo out;
    c.info(out);
  });
  EXPECT_TRUE(info.ok()) << info.ToString();
  ExpectNothingLeftOver();
}

}  // namespace
}  // namespace pact
