// Several highly available shards on a real three-node ZooKeeper ensemble,
// with real coordinators and participants over SQLite: clients given the
// ensemble (zk://) spread new transactions over the shard map and send a
// keyed one to the shard its key hashes to; participants serve every shard
// and ask each transaction's shard, found from its id, for its outcome; a
// shard that loses its active leaves the others serving; adding a shard
// moves about 1/N of the keys, and an operator can take one out of the map.
#include <signal.h>

#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "client/pact_client.h"
#include "common/txn_id.h"
#include "tests/process_harness.h"
#include "tests/zookeeper_fixture.h"
#include "zookeeper/shard_ring.h"

namespace pact {
namespace {

using Clock = std::chrono::steady_clock;

constexpr int kKeys = 600;

std::string ShardOf(const std::string& txn_id) {
  auto id = TxnId::Parse(txn_id);
  return id.ok() ? id->coordinator : "?";
}

class ShardsTest : public ZooKeeperFixture {
 protected:
  void SetUp() override {
    ZooKeeperFixture::SetUp();
    if (HasFatalFailure()) return;
    zk_flags_ = {"--zookeeper=" + zk_->ConnectString(), "--zk_session_timeout_ms=2000"};
    for (const char* bank : {"bank_a", "bank_b"}) {
      Status st = CreateSqliteBank(cluster_.db_path(bank), 3);
      ASSERT_TRUE(st.ok()) << st.ToString();
    }
    // Shard s1 is the cluster's coordinator; the others are processes of
    // their own. Participants start once the shards serve, and register
    // with every shard of the map.
    cluster_.OverrideCoordinatorFlags(zk_flags_);
    cluster_.ProxyEveryLink();  // coordinators reach participants through proxies
    cluster_.participants_find_coordinators = url();
    ASSERT_TRUE(cluster_.StartCoordinator().ok());
    StartShardCoordinator("s2");
    ASSERT_TRUE(PollUntil([&] { return Ready(port_of_["s2"]); }, 10000, 20));
    ASSERT_TRUE(PollUntil([&] { return MapHolds({"s1", "s2"}); }, 10000, 20));
    for (const char* bank : {"bank_a", "bank_b"}) {
      Status st = cluster_.StartParticipant(bank);
      ASSERT_TRUE(st.ok()) << st.ToString();
    }
    ASSERT_TRUE(PollUntil([&] { return Registered(port_of_["s2"]) == 2; }, 10000, 20))
        << "the participants did not register with the second shard";
  }

  std::string url() const { return "zk://" + zk_->ConnectString() + "/pact"; }

  // A coordinator of `shard` on a port of its own (another one for a
  // standby: `member` names its log).
  void StartShardCoordinator(const std::string& shard, const std::string& member = "") {
    const std::string process = member.empty() ? shard : member;
    int& port = port_of_[process];
    if (port == 0) port = FreePort();
    ClusterOptions options = TestClusterOptions(dir_);
    std::vector<std::string> argv = {options.coordinator_bin, "--name=" + shard,
                                     "--port=" + std::to_string(port),
                                     "--journal=" + dir_.File(process + "-unused.db")};
    argv.insert(argv.end(), cluster_.coordinator_flags.begin(), cluster_.coordinator_flags.end());
    auto& slot = processes_[process];
    slot = std::make_unique<Process>(argv, std::map<std::string, std::string>{},
                                     dir_.File(process + ".log"));
    ASSERT_TRUE(slot->Start().ok());
  }

  Result<rpc::CoordinatorInfo> Info(int port) { return CoordinatorInfoAt(port); }
  bool Ready(int port) { return CoordinatorReadyAt(port); }
  // How many participants the coordinator on `port` knows.
  int Registered(int port) {
    RpcConnection<rpc::CoordinatorClient> conn(Endpoint{"127.0.0.1", port}, RpcTimeouts{500, 500});
    std::vector<rpc::ParticipantEndpoint> known;
    Status st = conn.Call([&](rpc::CoordinatorClient& c) { c.listParticipants(known); });
    return st.ok() ? static_cast<int>(known.size()) : -1;
  }

  bool MapHolds(const std::vector<std::string>& shards) {
    auto zk = Connect();
    if (!zk) return false;
    auto names = zk->Children("/pact/map");
    return names.ok() && *names == shards;
  }

  std::unique_ptr<Client> ConnectClient() {
    ClientOptions options;
    options.commit_budget_ms = 8000;
    auto client = Client::Connect(url(), options);
    EXPECT_TRUE(client.ok()) << client.status().ToString();
    return client.ok() ? std::move(*client) : nullptr;
  }

  // Moves `amount` from account 1 at bank_a to account 1 at bank_b.
  Status Transfer(Transaction& txn, int64_t amount) {
    RETURN_NOT_OK(txn.Execute("bank_a", "UPDATE accounts SET balance = balance - ?1 WHERE id = 1",
                              {amount})
                      .status());
    RETURN_NOT_OK(txn.Execute("bank_b", "UPDATE accounts SET balance = balance + ?1 WHERE id = 1",
                              {amount})
                      .status());
    return txn.Commit();
  }

  int64_t Balance(const std::string& bank) {
    auto balance = QueryInt(cluster_.db_path(bank), "SELECT balance FROM accounts WHERE id = 1");
    EXPECT_TRUE(balance.ok()) << balance.status().ToString();
    return balance.ok() ? *balance : -1;
  }

  // The shard each of kKeys keys begins on, as the client chooses it.
  std::map<std::string, std::string> ShardsOfKeys(Client& client) {
    std::map<std::string, std::string> shard_of;
    for (int k = 0; k < kKeys; ++k) {
      const std::string key = "order-" + std::to_string(k);
      auto txn = client.BeginFor(key);
      EXPECT_TRUE(txn.ok()) << txn.status().ToString();
      if (txn.ok()) shard_of[key] = ShardOf((*txn)->id());
    }
    return shard_of;
  }

  // A key the ring of `shards` gives to `shard`.
  static std::string KeyOf(const std::string& shard,
                           const std::vector<std::string>& shards = {"s1", "s2"}) {
    auto ring = ShardRing::Build(shards);
    for (int k = 0;; ++k) {
      if (ring->ShardFor("key-" + std::to_string(k)) == shard) return "key-" + std::to_string(k);
    }
  }

  static ClusterOptions FirstShard(const TempDir& dir) {
    ClusterOptions options = TestClusterOptions(dir);
    options.coordinator_name = "s1";
    return options;
  }

  std::vector<std::string> zk_flags_;
  Cluster cluster_{FirstShard(dir_)};
  std::map<std::string, int> port_of_{{"s1", cluster_.coordinator_port()}};
  std::map<std::string, std::unique_ptr<Process>> processes_;
};

TEST_F(ShardsTest, KeyedTransactionsReachTheirShardAndOthersAreSpreadOverAll) {
  auto client = ConnectClient();
  ASSERT_NE(client, nullptr);
  auto ring = ShardRing::Build({"s1", "s2"});
  ASSERT_TRUE(ring.ok());
  // The same key, the same shard: the one the ring of the map names.
  for (const char* key : {"order-17", "order-18", "customer-4"}) {
    for (int i = 0; i < 3; ++i) {
      auto txn = client->BeginFor(key);
      ASSERT_TRUE(txn.ok()) << txn.status().ToString();
      EXPECT_EQ(ShardOf((*txn)->id()), ring->ShardFor(key)) << key;
      ASSERT_TRUE(Transfer(**txn, 1).ok());
    }
  }
  // Without a key, in turn; each commits where it began.
  std::map<std::string, int> began_on;
  for (int i = 0; i < 10; ++i) {
    auto txn = client->Begin();
    ASSERT_TRUE(txn.ok()) << txn.status().ToString();
    ++began_on[ShardOf((*txn)->id())];
    Status st = Transfer(**txn, 1);
    ASSERT_TRUE(st.ok()) << st.ToString();
    auto state = client->GetState((*txn)->id());
    ASSERT_TRUE(state.ok()) << state.status().ToString();
    EXPECT_EQ(*state, TxnState::kCommitted);
  }
  EXPECT_EQ(began_on["s1"], 5);
  EXPECT_EQ(began_on["s2"], 5);
  EXPECT_EQ(Balance("bank_a"), 100 - 19);
  EXPECT_EQ(Balance("bank_b"), 100 + 19);
  EXPECT_EQ(client->BeginFor("").status().code(), StatusCode::kInvalidArgument);
}

// The second shard cannot tell the participants its decision (every commit
// call to them is lost on the wire): their prepared branches ask the shard
// their id names, found in ZooKeeper, hear COMMITTED and commit.
TEST_F(ShardsTest, ParticipantsAskTheShardTheirBranchBelongsTo) {
  ClientOptions options;
  options.return_at_decision = true;  // the client hears the decision, not the acks
  auto client = Client::Connect(url(), options);
  ASSERT_TRUE(client.ok());
  std::map<std::string, std::vector<RuleId>> lost_commits;
  for (const char* bank : {"bank_a", "bank_b"}) {
    for (const char* method : {"commit", "commitBatch"}) {
      lost_commits[bank].push_back(
          cluster_.to_participant(bank).AddRule({method, Fault::kDropRequest, 1000}));
    }
  }
  auto txn = (*client)->BeginFor(KeyOf("s2"));
  ASSERT_TRUE(txn.ok()) << txn.status().ToString();
  ASSERT_EQ(ShardOf((*txn)->id()), "s2");
  Status st = Transfer(**txn, 9);
  ASSERT_TRUE(st.ok()) << st.ToString();
  EXPECT_TRUE(PollUntil([&] { return Balance("bank_a") == 91 && Balance("bank_b") == 109; },
                        10000, 50))
      << "the participants did not learn the outcome from the transaction's shard";
  for (const auto& [bank, rules] : lost_commits) {
    FaultProxy& proxy = cluster_.to_participant(bank);
    EXPECT_TRUE(proxy.Hits(rules[0]) + proxy.Hits(rules[1]) > 0)
        << "no commit to " << bank << " was lost: the test proves nothing";
  }
  EXPECT_TRUE(cluster_.EventuallyNoOpenBranches());
}

// Shard s2 loses its active: transactions on s1 go on committing while s2's
// standby takes over, and s2's keys commit again within 3 s of the kill.
TEST_F(ShardsTest, KilledActiveOfOneShardLeavesTheOtherServing) {
  StartShardCoordinator("s2", "s2-standby");
  ASSERT_TRUE(PollUntil(
      [&] { return Info(port_of_["s2-standby"]).status().code() == StatusCode::kNotLeader; },
      10000, 20));
  auto client = ConnectClient();
  ASSERT_NE(client, nullptr);
  const std::string s1_key = KeyOf("s1"), s2_key = KeyOf("s2");
  for (const std::string& key : {s1_key, s2_key}) {  // both shards known to the client
    auto txn = client->BeginFor(key);
    ASSERT_TRUE(txn.ok() && Transfer(**txn, 1).ok());
  }
  const auto killed = Clock::now();
  processes_["s2"]->Signal(SIGKILL);
  int64_t moved = 2;
  for (int i = 0; i < 10; ++i) {
    auto txn = client->BeginFor(s1_key);
    ASSERT_TRUE(txn.ok()) << txn.status().ToString();
    Status st = Transfer(**txn, 1);
    ASSERT_TRUE(st.ok()) << "s1 stopped while s2 took over: " << st.ToString();
    ++moved;
  }
  const int64_t s1_ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - killed).count();
  // The first tries on s2 may fail (its old active's ids, an unknown
  // outcome while the commit found nobody); the money says what happened.
  int64_t unknown = 0;
  Status st;
  while (Clock::now() - killed < std::chrono::seconds(10)) {
    auto txn = client->BeginFor(s2_key);
    if (!txn.ok()) continue;
    st = Transfer(**txn, 1);
    if (st.ok()) break;
    if (st.code() == StatusCode::kUnavailable) ++unknown;
  }
  const int64_t s2_ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - killed).count();
  ASSERT_TRUE(st.ok()) << st.ToString();
  ++moved;
  std::cout << "10 transfers on s1 in " << s1_ms << " ms after s2's active was killed; s2 "
            << "committed again " << s2_ms << " ms after the kill (" << unknown
            << " unknown outcomes before)\n";
  EXPECT_LT(s2_ms, 3000 + 2000);  // the take-over, and a client's retry after it
  EXPECT_TRUE(cluster_.EventuallyNoOpenBranches());
  // Unknown outcomes are all-or-nothing: money moved by whole transfers only.
  const int64_t a = Balance("bank_a"), b = Balance("bank_b");
  EXPECT_EQ(a + b, 200);
  EXPECT_GE(100 - a, moved);
  EXPECT_LE(100 - a, moved + unknown);
}

// A third shard joins the map when it first serves: only keys that move to
// it move (about a third); taken out by an operator, the keys go back, and
// it stays out when it serves again until it is put back.
TEST_F(ShardsTest, AddingAShardMovesAThirdOfTheKeysAndAnOperatorCanTakeItOut) {
  auto client = ConnectClient();
  ASSERT_NE(client, nullptr);
  const std::map<std::string, std::string> before = ShardsOfKeys(*client);
  StartShardCoordinator("s3");
  ASSERT_TRUE(PollUntil([&] { return MapHolds({"s1", "s2", "s3"}); }, 10000, 20));
  ASSERT_TRUE(PollUntil([&] { return Registered(port_of_["s3"]) == 2; }, 10000, 20));
  std::map<std::string, std::string> after;
  ASSERT_TRUE(PollUntil(  // the client reads the map again within a second
      [&] {
        after = ShardsOfKeys(*client);
        return after != before;
      },
      5000, 100));
  int moved = 0;
  for (const auto& [key, shard] : after) {
    if (shard == before.at(key)) continue;
    ++moved;
    EXPECT_EQ(shard, "s3") << key << " moved from " << before.at(key) << " to another old shard";
  }
  std::cout << moved << " of " << kKeys << " keys moved to the new shard\n";
  EXPECT_LE(moved, 1.2 * kKeys / 3);
  EXPECT_GE(moved, 0.8 * kKeys / 3);
  {
    auto txn = client->BeginFor(KeyOf("s3", {"s1", "s2", "s3"}));
    ASSERT_TRUE(txn.ok());
    EXPECT_EQ(ShardOf((*txn)->id()), "s3");
    Status st = Transfer(**txn, 4);
    EXPECT_TRUE(st.ok()) << st.ToString();
  }

  Ran out = RunPactctl({"unmap-shard", "s3", "--zookeeper=" + zk_->ConnectString()});
  ASSERT_EQ(out.code, 0) << out.out;
  ASSERT_TRUE(MapHolds({"s1", "s2"}));
  ASSERT_TRUE(PollUntil([&] { return ShardsOfKeys(*client) == before; }, 5000, 100));
  Ran shards = RunPactctl({"shards", "--zookeeper=" + zk_->ConnectString(), "--json"});
  EXPECT_NE(shards.out.find("\"shard\":\"s3\",\"active\":\"127.0.0.1:" +
                            std::to_string(port_of_["s3"]) + "\",\"standbys\":[],\"in_map\":false"),
            std::string::npos)
      << shards.out;
  // Its coordinator serving again (a restart, a take-over) leaves it out.
  ASSERT_EQ(processes_["s3"]->Stop(), 0);
  StartShardCoordinator("s3");
  ASSERT_TRUE(PollUntil([&] { return Ready(port_of_["s3"]); }, 10000, 20));
  EXPECT_TRUE(MapHolds({"s1", "s2"}));
  out = RunPactctl({"map-shard", "s3", "--zookeeper=" + zk_->ConnectString()});
  ASSERT_EQ(out.code, 0) << out.out;
  EXPECT_TRUE(MapHolds({"s1", "s2", "s3"}));
  EXPECT_EQ(RunPactctl({"map-shard", "nope", "--zookeeper=" + zk_->ConnectString()}).code, 1);
}

}  // namespace
}  // namespace pact
