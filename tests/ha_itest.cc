// Active/standby coordinators of one shard on a real three-node ZooKeeper
// ensemble, with real participants over SQLite: the standby answers
// NOT_LEADER naming the active and clients follow it; when the active is
// killed the standby takes over within 3 s, finishes the decision the old
// active recorded, and rolls back what it had only prepared; SIGTERM hands
// over at once.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <atomic>
#include <iostream>
#include <map>
#include <mutex>
#include <random>
#include <thread>
#include <vector>
#include <memory>
#include <string>

#include "client/pact_client.h"
#include "gen-cpp/Participant.h"
#include "rpc/rpc_convert.h"
#include "tests/process_harness.h"
#include "tests/zookeeper_fixture.h"

namespace pact {
namespace {

using Clock = std::chrono::steady_clock;

int64_t MillisSince(Clock::time_point start) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start).count();
}

class HaTest : public ZooKeeperFixture {
 protected:
  void SetUp() override {
    ZooKeeperFixture::SetUp();
    if (HasFatalFailure()) return;
    if (with_tokens_) {
      Status st = cluster_.UseTokens();
      ASSERT_TRUE(st.ok()) << st.ToString();
    }
    // The first active may reach ZooKeeper through proxies (that the test
    // can freeze); the standby always reaches it directly.
    cluster_.OverrideCoordinatorFlags(
        {"--zookeeper=" + (active_through_proxies_ ? ThroughProxies() : zk_->ConnectString()),
         "--zk_session_timeout_ms=2000"});
    for (const char* bank : {"bank_a", "bank_b"}) {
      Status st = CreateSqliteBank(cluster_.db_path(bank), 3);
      ASSERT_TRUE(st.ok()) << st.ToString();
    }
    // The first coordinator of the shard wins the election; the participants
    // register with it (the registry lives in ZooKeeper, for the next one)
    // and know both.
    standby_port_ = FreePort();
    cluster_.standby_coordinators = standby_address();
    for (Status st : {cluster_.StartCoordinator(active_env_), cluster_.StartParticipant("bank_a"),
                      cluster_.StartParticipant("bank_b")}) {
      ASSERT_TRUE(st.ok()) << st.ToString();
    }
    StartStandby();
    ASSERT_TRUE(PollUntil(
        [&] { return Info(standby_port_).status().code() == StatusCode::kNotLeader; }, 10000, 20))
        << "the standby did not come up";
  }

  // The shard's second coordinator, on its own port (its journal flag unused).
  void StartStandby() {
    ClusterOptions options = TestClusterOptions(dir_);
    std::vector<std::string> argv = {options.coordinator_bin, "--name=c1",
                                     "--port=" + std::to_string(standby_port_),
                                     "--journal=" + dir_.File("unused-journal.db")};
    argv.insert(argv.end(), cluster_.coordinator_flags.begin(), cluster_.coordinator_flags.end());
    for (std::string& flag : argv) {
      if (flag.rfind("--zookeeper=", 0) == 0) flag = "--zookeeper=" + zk_->ConnectString();
    }
    for (const std::string& flag : cluster_.SecurityFlagsOf("c1")) argv.push_back(flag);
    standby_ = std::make_unique<Process>(argv, std::map<std::string, std::string>{},
                                         dir_.File("standby.log"));
    ASSERT_TRUE(standby_->Start().ok());
  }

  std::string active_address() const { return cluster_.coordinator_address(); }
  std::string standby_address() const { return "127.0.0.1:" + std::to_string(standby_port_); }

  Result<rpc::CoordinatorInfo> Info(int port) {
    return CoordinatorInfoAt(port, cluster_.credentials());
  }
  bool Ready(int port) { return CoordinatorReadyAt(port, cluster_.credentials()); }

  // Both coordinators, the standby first: the client must find the active.
  std::unique_ptr<Client> Connect() {
    ClientOptions options;
    options.commit_budget_ms = 8000;  // spans a take-over
    options.credentials = cluster_.application_credentials();
    auto client = Client::Connect(standby_address() + "," + active_address(), options);
    EXPECT_TRUE(client.ok()) << client.status().ToString();
    return client.ok() ? std::move(*client) : nullptr;
  }

  // Moves `amount` from account 1 at bank_a to account 1 at bank_b and commits.
  Status Transfer(Client& client, int64_t amount, std::string* txn_id = nullptr) {
    return TransferBetween(client, "bank_a", "bank_b", amount, txn_id);
  }
  Status TransferBetween(Client& client, const std::string& from, const std::string& to,
                         int64_t amount, std::string* txn_id = nullptr) {
    ASSIGN_OR_RETURN(auto txn, client.Begin());
    if (txn_id) *txn_id = txn->id();
    RETURN_NOT_OK(txn->Execute(from, "UPDATE accounts SET balance = balance - ?1 WHERE id = 1",
                               {amount})
                      .status());
    RETURN_NOT_OK(
        txn->Execute(to, "UPDATE accounts SET balance = balance + ?1 WHERE id = 1", {amount})
            .status());
    if (txn_id) *txn_id = txn->id();
    return txn->Commit();
  }

  // Right after a take-over the first tries may fail: the client's block of
  // ids is of the replaced active (a statement under it is FENCED, or its
  // commit is unknown to the new active, which never heard of it).
  Status TransferUntilCommitted(Client& client, int64_t amount) {
    Status st;
    for (int attempt = 0; attempt < 3 && !(st = Transfer(client, amount)).ok(); ++attempt) {
      std::cout << "transfer after the take-over: " << st.ToString() << "\n";
    }
    return st;
  }

  int64_t Balance(const std::string& bank) {
    auto balance = QueryInt(cluster_.db_path(bank), "SELECT balance FROM accounts WHERE id = 1");
    EXPECT_TRUE(balance.ok()) << balance.status().ToString();
    return balance.ok() ? *balance : -1;
  }

  // Nothing left prepared or active at any participant.
  void ExpectNothingHeld() {
    for (const std::string& bank : cluster_.participant_names()) {
      EXPECT_TRUE(PollUntil(
          [&] {
            auto held = cluster_.OpenBranches(bank);
            return held.ok() && held->empty();
          },
          15000, 50))
          << bank << " still holds a branch";
    }
  }

  // Kills the active and returns how long until the standby served.
  int64_t KillActiveAndTimeTakeOver() {
    const auto killed = Clock::now();
    cluster_.coordinator().Signal(SIGKILL);
    EXPECT_TRUE(PollUntil([&] { return Ready(standby_port_); }, 10000, 5))
        << "the standby did not take over";
    return MillisSince(killed);
  }

  // Clients moving money both ways between the banks until StopWorkload,
  // each outcome noted as the client was told it.
  void StartWorkload(int clients) {
    for (int i = 0; i < clients; ++i) workers_.emplace_back([this, i] { Work(i); });
  }
  void StopWorkload() {
    stop_ = true;
    for (auto& t : workers_) t.join();
    workers_.clear();
    std::cout << ledger_.committed.size() << " committed (" << committed_after_take_over_
              << " after the take-over), " << ledger_.aborted << " aborted, "
              << ledger_.unknown.size() << " unknown\n";
    EXPECT_GT(committed_after_take_over_.load(), 0);
  }

  // Every transfer told committed is in the balances, every one told
  // aborted is not, the unknown ones are all-or-nothing, money is conserved.
  void ExpectBalancesAsTold() {
    ASSERT_LE(ledger_.unknown.size(), 16u) << "too many unknown outcomes to check";
    std::map<std::pair<std::string, int64_t>, int64_t> actual;
    int64_t total = 0;
    for (const char* bank : {"bank_a", "bank_b"}) {
      for (int64_t account = 1; account <= 3; ++account) {
        auto balance = QueryInt(cluster_.db_path(bank), "SELECT balance FROM accounts WHERE id = " +
                                                            std::to_string(account));
        ASSERT_TRUE(balance.ok()) << balance.status().ToString();
        actual[{bank, account}] = *balance;
        total += *balance;
      }
    }
    EXPECT_EQ(total, 600) << "money created or destroyed";
    bool explained = false;
    for (uint32_t subset = 0; subset < (1u << ledger_.unknown.size()) && !explained; ++subset) {
      std::map<std::pair<std::string, int64_t>, int64_t> expected;
      for (const char* bank : {"bank_a", "bank_b"}) {
        for (int64_t account = 1; account <= 3; ++account) expected[{bank, account}] = 100;
      }
      auto apply = [&](const Move& m) {
        expected[{"bank_a", m.a_account}] -= m.amount;
        expected[{"bank_b", m.b_account}] += m.amount;
      };
      for (const Move& m : ledger_.committed) apply(m);
      for (size_t i = 0; i < ledger_.unknown.size(); ++i) {
        if (subset & (1u << i)) apply(ledger_.unknown[i]);
      }
      explained = expected == actual;
    }
    EXPECT_TRUE(explained) << "the balances are not what the clients were told";
  }

  struct Move {
    int64_t a_account, b_account, amount;  // bank_a[a] -= amount, bank_b[b] += amount
  };
  struct Ledger {
    std::mutex mu;
    std::vector<Move> committed, unknown;  // guarded by mu
    int aborted = 0;                       // guarded by mu
  };

  void Work(int worker) {
    auto client = Connect();
    if (!client) return;
    for (int n = 0; !stop_; ++n) {
      // Both directions, so no account runs dry: a negative amount moves
      // money from bank_b to bank_a.
      Move move{1 + (n + worker) % 3, 1 + (n * 7 + worker) % 3,
                (n % 2 == 0 ? 1 : -1) * (1 + (n + worker) % 4)};
      auto txn = client->Begin();
      if (!txn.ok()) continue;
      Status st = (*txn)->Execute("bank_a",
                                  "UPDATE accounts SET balance = balance - ?1 WHERE id = ?2",
                                  {move.amount, move.a_account})
                      .status();
      if (st.ok()) {
        st = (*txn)->Execute("bank_b", "UPDATE accounts SET balance = balance + ?1 WHERE id = ?2",
                             {move.amount, move.b_account})
                 .status();
      }
      if (!st.ok()) {
        (void)(*txn)->Rollback();
        continue;
      }
      st = (*txn)->Commit();
      std::lock_guard<std::mutex> lock(ledger_.mu);
      if (st.ok()) {
        ledger_.committed.push_back(move);
        if (taken_over_) committed_after_take_over_++;
      } else if (st.code() == StatusCode::kUnavailable) {
        ledger_.unknown.push_back(move);
      } else {
        ledger_.aborted++;
      }
    }
  }

  Ledger ledger_;
  std::atomic<bool> stop_{false};
  std::atomic<bool> taken_over_{false};
  std::atomic<int> committed_after_take_over_{0};
  std::vector<std::thread> workers_;

  ~HaTest() override {  // after a failed assertion, the workload may still run
    stop_ = true;
    for (auto& t : workers_) t.join();
  }

  std::map<std::string, std::string> active_env_;  // the first active's environment
  bool active_through_proxies_ = false;             // set before SetUp
  bool with_tokens_ = false;  // set before SetUp: every process needs its role's token
  TestCluster cluster_{dir_};
  int standby_port_ = 0;
  std::unique_ptr<Process> standby_;
};

TEST_F(HaTest, StandbyAnswersNotLeaderNamingTheActiveAndTheClientFollowsIt) {
  RpcConnection<rpc::CoordinatorClient> standby(Endpoint{"127.0.0.1", standby_port_},
                                                RpcTimeouts{});
  rpc::IdBlock block;
  Status refused = standby.Call([&](rpc::CoordinatorClient& c) { c.reserveTxnIds(block, 8); });
  EXPECT_EQ(refused.code(), StatusCode::kNotLeader) << refused.ToString();
  EXPECT_EQ(LeaderNamedBy(refused), active_address());
  // Even info: only the active may tell the shard's epoch.
  EXPECT_EQ(Info(standby_port_).status().code(), StatusCode::kNotLeader);

  auto client = Connect();
  ASSERT_NE(client, nullptr);
  ASSERT_TRUE(Transfer(*client, 7).ok());
  EXPECT_EQ(Balance("bank_a"), 93);
  EXPECT_EQ(Balance("bank_b"), 107);
}

TEST_F(HaTest, KilledActiveIsReplacedWithin3sAndTheShardServesOn) {
  auto client = Connect();
  ASSERT_NE(client, nullptr);
  ASSERT_TRUE(Transfer(*client, 5).ok());
  const int64_t ms = KillActiveAndTimeTakeOver();
  std::cout << "kill -9 of the active to the standby serving: " << ms << " ms\n";
  EXPECT_LT(ms, 3000);
  // The same client finds the new active.
  ASSERT_TRUE(TransferUntilCommitted(*client, 3).ok());
  ExpectNothingHeld();
  EXPECT_EQ(Balance("bank_a"), 92);
  EXPECT_EQ(Balance("bank_b"), 108);
}

// The active dies right after its COMMIT record is durable in ZooKeeper,
// before any participant heard the decision: the new active finds the
// record and commits both prepared branches.
class HaActiveDiesAfterDecisionTest : public HaTest {
 protected:
  HaActiveDiesAfterDecisionTest() { active_env_ = {{"PACT_CRASH_POINT", "after_decision_logged"}}; }
};

TEST_F(HaActiveDiesAfterDecisionTest, DecisionRecordedByTheKilledActiveIsFinishedByTheNewOne) {
  auto client = Connect();
  ASSERT_NE(client, nullptr);
  std::string id;
  // The active dies before it answers; the client asks again (commit is
  // idempotent), reaches the new active once it serves, and hears COMMITTED.
  Status st = Transfer(*client, 10, &id);
  EXPECT_TRUE(st.ok()) << st.ToString();
  ASSERT_TRUE(Ready(standby_port_));
  EXPECT_TRUE(PollUntil([&] { return Balance("bank_b") == 110; }, 10000, 20));
  EXPECT_EQ(Balance("bank_a"), 90);
  ExpectNothingHeld();
  auto state = client->GetState(id);
  ASSERT_TRUE(state.ok()) << state.status().ToString();
  EXPECT_EQ(*state, TxnState::kCommitted);
}

// The active dies with both branches prepared and no decision: the new
// active rolls them back (presumed abort), and the money stays put.
class HaActiveDiesBeforeDecisionTest : public HaTest {
 protected:
  HaActiveDiesBeforeDecisionTest() {
    active_env_ = {{"PACT_CRASH_POINT", "after_votes_collected"}};
  }
};

TEST_F(HaActiveDiesBeforeDecisionTest, PreparedButUndecidedTransactionIsRolledBack) {
  auto client = Connect();
  ASSERT_NE(client, nullptr);
  Status st = Transfer(*client, 10);
  EXPECT_FALSE(st.ok()) << "told COMMITTED for a transaction nobody decided";
  ASSERT_TRUE(PollUntil([&] { return Ready(standby_port_); }, 10000, 5));
  ExpectNothingHeld();
  EXPECT_EQ(Balance("bank_a"), 100);
  EXPECT_EQ(Balance("bank_b"), 100);
}

TEST_F(HaTest, SigtermOfTheActiveHandsOverAtOnce) {
  auto client = Connect();
  ASSERT_NE(client, nullptr);
  ASSERT_TRUE(Transfer(*client, 1).ok());
  const auto stopped = Clock::now();
  cluster_.coordinator().Signal(SIGTERM);
  ASSERT_TRUE(PollUntil([&] { return Ready(standby_port_); }, 10000, 1));
  const int64_t ms = MillisSince(stopped);
  std::cout << "SIGTERM of the active to the standby serving: " << ms << " ms\n";
  EXPECT_LT(ms, 1000);  // no session timeout to wait for
  ASSERT_TRUE(TransferUntilCommitted(*client, 1).ok());
  ExpectNothingHeld();
  // Exactly two transfers of 1 committed: whatever a failed attempt was told
  // (an id of the old active may be "unknown" to the new one), it did not.
  EXPECT_EQ(Balance("bank_a"), 98);
  EXPECT_EQ(Balance("bank_b"), 102);
}

// The active is frozen (SIGSTOP) past its session timeout: the standby takes
// over and commits; once thawed, the old active finds its session expired,
// serves nothing, and starts again in place as the standby.
TEST_F(HaTest, ActiveFrozenPastItsSessionIsReplacedAndRejoinsAsAStandbyWhenThawed) {
  auto client = Connect();
  ASSERT_NE(client, nullptr);
  ASSERT_TRUE(Transfer(*client, 2).ok());
  cluster_.coordinator().Signal(SIGSTOP);
  ASSERT_TRUE(PollUntil([&] { return Ready(standby_port_); }, 10000, 5));
  ASSERT_TRUE(TransferUntilCommitted(*client, 3).ok());
  cluster_.coordinator().Signal(SIGCONT);
  // Thawed, it must not serve as the active again, even for a moment, and
  // comes back as the standby, naming the new active.
  const auto thawed = Clock::now();
  Status answer;
  while (MillisSince(thawed) < 10000) {
    answer = Info(cluster_.coordinator_port()).status();
    EXPECT_NE(answer.code(), StatusCode::kOk) << "the replaced active served again";
    if (answer.code() == StatusCode::kNotLeader) break;
  }
  EXPECT_EQ(answer.code(), StatusCode::kNotLeader) << answer.ToString();
  EXPECT_EQ(LeaderNamedBy(answer), standby_address());
  EXPECT_TRUE(cluster_.coordinator().running());
  ASSERT_TRUE(Transfer(*client, 1).ok());
  ExpectNothingHeld();
  EXPECT_EQ(Balance("bank_a"), 94);
  EXPECT_EQ(Balance("bank_b"), 106);
}

// ZooKeeper loses a follower, then (that one back) its leader: the ensemble
// keeps a quorum, the active keeps its session, and no failover happens.
TEST_F(HaTest, LossOfAZooKeeperFollowerThenOfItsLeaderCausesNoFailover) {
  auto client = Connect();
  ASSERT_NE(client, nullptr);
  ASSERT_TRUE(Transfer(*client, 1).ok());
  auto leader = zk_->LeaderIndex();
  ASSERT_TRUE(leader.ok()) << leader.status().ToString();
  const int follower = (*leader + 1) % zk_->size();
  ASSERT_TRUE(zk_->Kill(follower).ok());
  ASSERT_TRUE(TransferUntilCommitted(*client, 1).ok());
  ASSERT_TRUE(zk_->Restart(follower).ok());
  ASSERT_TRUE(zk_->Kill(*leader).ok());
  ASSERT_TRUE(TransferUntilCommitted(*client, 1).ok());
  EXPECT_TRUE(cluster_.coordinator().running());
  EXPECT_TRUE(PollUntil([&] { return Ready(cluster_.coordinator_port()); }, 10000, 20));
  EXPECT_EQ(Info(standby_port_).status().code(), StatusCode::kNotLeader);
  EXPECT_EQ(Balance("bank_a"), 97);
  EXPECT_EQ(Balance("bank_b"), 103);
}

// Every ZooKeeper server down: nothing can be decided (no client hears
// COMMITTED); when they return the shard serves on, with the money where it
// was. A coordinator that could not tell whether its decision was written,
// or whose session expired, starts again by itself: none exits.
TEST_F(HaTest, WholeEnsembleDownStopsCommitsAndTheShardResumesWhenItReturns) {
  auto client = Connect();
  ASSERT_NE(client, nullptr);
  ASSERT_TRUE(Transfer(*client, 4).ok());
  for (int i = 0; i < zk_->size(); ++i) ASSERT_TRUE(zk_->Kill(i).ok());
  ClientOptions quick;
  quick.commit_budget_ms = 1000;
  auto impatient = Client::Connect(standby_address() + "," + active_address(), quick);
  ASSERT_TRUE(impatient.ok());
  Status st = Transfer(**impatient, 50);
  EXPECT_FALSE(st.ok()) << "committed with ZooKeeper down";
  for (int i = 0; i < zk_->size(); ++i) ASSERT_TRUE(zk_->StartAgain(i).ok());
  ASSERT_TRUE(zk_->WaitForQuorum(30000).ok());
  const auto back = Clock::now();
  Status resumed;
  while (MillisSince(back) < 30000) {
    if ((resumed = Transfer(*client, 1)).ok()) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  ASSERT_TRUE(resumed.ok()) << resumed.ToString();
  EXPECT_TRUE(cluster_.coordinator().running());
  EXPECT_TRUE(standby_->running());
  ExpectNothingHeld();
  EXPECT_EQ(Balance("bank_a"), 95);
  EXPECT_EQ(Balance("bank_b"), 105);
}

// kill -9 of the active while four clients move money both ways between the
// banks: the standby serves within 3 s, every transfer a client was told
// committed is in the balances, every one told aborted is not, the ones left
// unknown are all-or-nothing, money is conserved, and nothing stays held.
TEST_F(HaTest, KillOfTheActiveUnderABankWorkloadLosesNothingAndTellsTheTruth) {
  StartWorkload(4);
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  const int64_t ms = KillActiveAndTimeTakeOver();
  taken_over_ = true;
  std::cout << "kill -9 of the active under load to the standby serving: " << ms << " ms\n";
  EXPECT_LT(ms, 3000);
  std::this_thread::sleep_for(std::chrono::milliseconds(2500));
  StopWorkload();
  ExpectNothingHeld();
  ExpectBalancesAsTold();
}

// SIGSTOP of the active under the same workload, past its session timeout,
// then SIGCONT: the standby takes over; the thawed old active's pending
// decisions cannot become durable (its session is gone and the epoch moved
// on), the participants refuse its epoch, no client is told COMMITTED for a
// transaction the new active rolled back, and it rejoins as the standby.
TEST_F(HaTest, ActiveFrozenUnderABankWorkloadIsFencedAndTellsNoClientAnythingFalse) {
  StartWorkload(4);
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  cluster_.coordinator().Signal(SIGSTOP);
  ASSERT_TRUE(PollUntil([&] { return Ready(standby_port_); }, 10000, 5))
      << "the standby did not take over";
  taken_over_ = true;
  std::this_thread::sleep_for(std::chrono::milliseconds(1000));
  cluster_.coordinator().Signal(SIGCONT);
  std::this_thread::sleep_for(std::chrono::milliseconds(2500));
  StopWorkload();
  ExpectNothingHeld();
  ExpectBalancesAsTold();
  // The old run's epoch is refused at every participant.
  for (const char* bank : {"bank_a", "bank_b"}) {
    RpcConnection<rpc::ParticipantClient> participant(
        Endpoint{"127.0.0.1", cluster_.participant_port(bank)}, RpcTimeouts{});
    rpc::Fence fence;
    fence.coordinator = "c1";
    fence.epoch = 1;
    std::vector<rpc::BranchInfo> branches;
    Status st = participant.Call([&](rpc::ParticipantClient& c) { c.recover(branches, fence); });
    EXPECT_EQ(st.code(), StatusCode::kFenced) << bank << ": " << st.ToString();
  }
  EXPECT_EQ(Info(cluster_.coordinator_port()).status().code(), StatusCode::kNotLeader);
}

// The standby is promoted while three commits are in flight at the active,
// whose ZooKeeper connection then fails: either its decision write reached
// ZooKeeper and only the reply was lost (ReplyLost), or the write itself was
// lost (RequestLost). The new active finishes exactly the recorded ones and
// rolls back the rest; a client is told COMMITTED only for a recorded one,
// never ABORTED for one, and the old active rejoins as the standby.
class HaDecisionWriteLostTest : public HaTest, public ::testing::WithParamInterface<bool> {
 protected:
  HaDecisionWriteLostTest() { active_through_proxies_ = true; }
  // A pair of banks per commit in flight: a SQLite database lets one
  // transaction write at a time, so commits sharing one would queue.
  void SetUp() override {
    HaTest::SetUp();
    if (HasFatalFailure()) return;
    for (const char* bank : {"bank_c", "bank_d", "bank_e", "bank_f"}) {
      Status st = CreateSqliteBank(cluster_.db_path(bank), 3);
      if (st.ok()) st = cluster_.StartParticipant(bank);
      ASSERT_TRUE(st.ok()) << st.ToString();
    }
  }
  bool reply_lost() const { return GetParam(); }
};

TEST_P(HaDecisionWriteLostTest, PromotionFinishesExactlyTheRecordedDecisions) {
  auto client = Connect();
  ASSERT_NE(client, nullptr);
  ASSERT_TRUE(Transfer(*client, 1).ok());  // the client knows the active
  if (reply_lost()) {
    FreezeProxiedReplies();  // writes reach ZooKeeper; their answers do not come back
  } else {
    FreezeProxies();
  }
  const std::vector<std::pair<std::string, std::string>> pairs = {
      {"bank_a", "bank_b"}, {"bank_c", "bank_d"}, {"bank_e", "bank_f"}};
  const int kInFlight = static_cast<int>(pairs.size());
  std::vector<std::string> ids(kInFlight);
  std::vector<Status> told(kInFlight);
  std::vector<std::thread> commits;
  for (int i = 0; i < kInFlight; ++i) {
    commits.emplace_back([&, i] {
      told[i] = TransferBetween(*client, pairs[i].first, pairs[i].second, 1, &ids[i]);
    });
  }
  // Long enough for the three decisions to be written, well inside the lease.
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  FreezeProxies();  // cut off for good: the session expires, the standby takes over
  for (auto& t : commits) t.join();
  ASSERT_TRUE(PollUntil([&] { return Ready(standby_port_); }, 10000, 5));
  int committed = 0;
  ExpectNothingHeld();
  for (int i = 0; i < kInFlight; ++i) {
    auto state = UntilAvailable([&] { return client->GetState(ids[i]); });
    const bool recorded = state.ok() && *state == TxnState::kCommitted;
    committed += recorded ? 1 : 0;
    const int64_t moved = i == 0 ? 1 : 0;  // bank_a/bank_b also hold the first transfer
    EXPECT_EQ(Balance(pairs[i].first), 100 - moved - (recorded ? 1 : 0)) << ids[i];
    EXPECT_EQ(Balance(pairs[i].second), 100 + moved + (recorded ? 1 : 0)) << ids[i];
    std::cout << ids[i] << ": told " << told[i].ToString() << "; the new active says "
              << (state.ok() ? TxnStateName(*state) : state.status().ToString()) << "\n";
    if (told[i].ok()) {
      EXPECT_TRUE(recorded) << ids[i] << " was told COMMITTED";
    } else {
      EXPECT_EQ(told[i].code(), recorded ? StatusCode::kUnavailable : told[i].code())
          << ids[i] << " was told " << told[i].ToString() << " but committed";
    }
  }
  // With replies lost, the first batch of decisions was written (the next
  // waits for its answer, so it was never sent); with requests lost, none.
  if (reply_lost()) {
    EXPECT_GE(committed, 1);
  } else {
    EXPECT_EQ(committed, 0);
  }
  ThawProxies();
  EXPECT_TRUE(PollUntil(
      [&] {
        Status answer = Info(cluster_.coordinator_port()).status();
        return answer.code() == StatusCode::kNotLeader && LeaderNamedBy(answer) ==
                                                               standby_address();
      },
      15000, 50))
      << "the old active did not rejoin as the standby";
}

INSTANTIATE_TEST_SUITE_P(Lost, HaDecisionWriteLostTest, ::testing::Values(true, false),
                         [](const auto& info) {
                           return std::string(info.param ? "ReplyLost" : "RequestLost");
                         });

// Every process needs its role's token: strangers learn nothing from a
// standby (not even where the active is), and junk frames sent to it leave
// it standing and able to take over.
class HaStrangersTest : public HaTest {
 protected:
  HaStrangersTest() { with_tokens_ = true; }

  Status StandbyAnswer(const RpcCredentials& credentials) {
    RpcConnection<rpc::CoordinatorClient> standby(Endpoint{"127.0.0.1", standby_port_},
                                                  RpcTimeouts{500, 500}, credentials);
    rpc::IdBlock block;
    return standby.Call([&](rpc::CoordinatorClient& c) { c.reserveTxnIds(block, 8); });
  }

  // Writes `bytes` on a new connection to the standby, waits briefly for
  // whatever it answers, and leaves.
  void SendToStandby(const std::string& bytes) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    ASSERT_GE(fd, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(standby_port_));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0) {
      (void)send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
      pollfd pfd{fd, POLLIN, 0};
      (void)poll(&pfd, 1, 200);
    }
    close(fd);
  }
};

TEST_F(HaStrangersTest, StandbyTellsStrangersNothingAndTheApplicationWhereTheActiveIs) {
  Status st = StandbyAnswer(RpcCredentials{});
  EXPECT_EQ(st.code(), StatusCode::kUnauthenticated) << st.ToString();
  EXPECT_EQ(st.message().find(active_address()), std::string::npos) << st.ToString();
  st = StandbyAnswer(RpcCredentials{nullptr, "0123456789abcdef0123456789abcdef"});
  EXPECT_EQ(st.code(), StatusCode::kUnauthenticated) << st.ToString();
  st = StandbyAnswer(cluster_.application_credentials());
  EXPECT_EQ(st.code(), StatusCode::kNotLeader) << st.ToString();
  EXPECT_EQ(LeaderNamedBy(st), active_address());
  auto client = Connect();
  ASSERT_NE(client, nullptr);
  ASSERT_TRUE(Transfer(*client, 2).ok());
  KillActiveAndTimeTakeOver();
  // The new active is as strict as the old one.
  EXPECT_EQ(StandbyAnswer(RpcCredentials{}).code(), StatusCode::kUnauthenticated);
  ASSERT_TRUE(TransferUntilCommitted(*client, 3).ok());
  ExpectNothingHeld();
  EXPECT_EQ(Balance("bank_a"), 95);
  EXPECT_EQ(Balance("bank_b"), 105);
}

TEST_F(HaStrangersTest, JunkFramesLeaveTheStandbyStandingAndAbleToTakeOver) {
  auto frame = [](uint32_t length, const std::string& body) {
    std::string out;
    for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<char>(length >> shift));
    return out + body;
  };
  const std::string call_header("\x80\x01\x00\x01\x00\x00\x00\x08reserveT", 16);
  std::mt19937 rng(7);
  for (int i = 0; i < 60; ++i) {
    std::string junk(1 + rng() % 300, '\0');
    for (char& c : junk) c = static_cast<char>(rng());
    switch (i % 6) {
      case 0: SendToStandby(frame(static_cast<uint32_t>(junk.size()), junk)); break;
      case 1: SendToStandby(frame(0x7fffffff, junk)); break;       // a frame of 2 GiB
      case 2: SendToStandby(frame((64u << 20) + 1, junk)); break;  // just over any limit
      case 3: SendToStandby(frame(0x80000000u, junk)); break;      // a negative length
      case 4:  // a call header declaring a 1 GiB method name
        SendToStandby(frame(64, std::string("\x80\x01\x00\x01\x40\x00\x00\x00", 8) + junk));
        break;
      default: SendToStandby(frame(100, call_header)); break;  // cut short
    }
  }
  EXPECT_TRUE(standby_->running());
  Status st = StandbyAnswer(cluster_.application_credentials());
  EXPECT_EQ(st.code(), StatusCode::kNotLeader) << st.ToString();
  auto client = Connect();
  ASSERT_NE(client, nullptr);
  const int64_t ms = KillActiveAndTimeTakeOver();
  EXPECT_LT(ms, 3000);
  ASSERT_TRUE(TransferUntilCommitted(*client, 4).ok());
  ExpectNothingHeld();
  EXPECT_EQ(Balance("bank_a"), 96);
}

// pactctl shows the shard as ZooKeeper has it: before and after a take-over.
TEST_F(HaTest, PactctlShowsTheShardsActiveStandbysEpochAndDecisions) {
  auto shards = [&] {
    Ran ran = RunPactctl({"shards", "--zookeeper=" + zk_->ConnectString(), "--json"});
    EXPECT_EQ(ran.code, 0) << ran.out;
    return ran.out;
  };
  const std::string before = shards();
  EXPECT_NE(before.find("\"shard\":\"c1\""), std::string::npos) << before;
  EXPECT_NE(before.find("\"active\":\"" + active_address() + "\""), std::string::npos) << before;
  EXPECT_NE(before.find("\"standbys\":[\"" + standby_address() + "\"]"), std::string::npos)
      << before;
  EXPECT_NE(before.find("\"epoch\":\"1\""), std::string::npos) << before;
  KillActiveAndTimeTakeOver();
  // The killed active's node goes with its session, which the take-over waited out.
  const std::string after = shards();
  EXPECT_NE(after.find("\"active\":\"" + standby_address() + "\""), std::string::npos) << after;
  EXPECT_NE(after.find("\"standbys\":[]"), std::string::npos) << after;
  EXPECT_NE(after.find("\"epoch\":\"2\""), std::string::npos) << after;
  Ran table = RunPactctl({"shards", "--zookeeper=" + zk_->ConnectString()});
  EXPECT_EQ(table.code, 0);
  EXPECT_NE(table.out.find("UNFINISHED DECISIONS"), std::string::npos) << table.out;
  EXPECT_EQ(RunPactctl({"shards"}).code, 2);  // no --zookeeper
}

}  // namespace
}  // namespace pact
