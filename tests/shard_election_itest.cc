// ShardElection on a real three-node ZooKeeper ensemble: exactly one
// candidate leads and every candidate names it; a leader's exit promotes
// only the next in line, a standby's exit changes nothing; resigning hands
// over at once; a leader cut off from ZooKeeper stops leading before the
// servers could promote anyone else, and never leads again once its session
// expired.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <iostream>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "cluster/fault_proxy.h"
#include "cluster/wait_until.h"
#include "tests/zookeeper_fixture.h"
#include "zookeeper/shard_election.h"

namespace pact {
namespace {

constexpr char kElection[] = "/pact/shards/s1/election";

// A coordinator process's part in the election: its own session, and the
// election following it.
struct Candidate {
  std::string address;
  ElectionRelay relay;
  std::unique_ptr<ZkSession> session;
  std::unique_ptr<ShardElection> election;
  std::atomic<int> changes{0};  // on_change calls
  // Whether some other candidate led when this one's on_change(true) ran.
  std::atomic<bool> overlapped{false};

  ~Candidate() {
    relay.Attach(nullptr);
    election.reset();
  }
  bool leading() const { return election && election->leading(); }
};

class ShardElectionTest : public ZooKeeperFixture {
 protected:
  // A candidate with a session of `session_timeout_ms` to `connect_string`
  // (the ensemble when empty).
  std::unique_ptr<Candidate> Enter(const std::string& address, int session_timeout_ms = 4000,
                                   const std::string& connect_string = "") {
    auto c = std::make_unique<Candidate>();
    c->address = address;
    c->session = Connect(session_timeout_ms, c->relay.StateListener(), c->relay.WatchListener(),
                         connect_string);
    if (!c->session) return nullptr;
    Candidate* raw = c.get();
    ShardElectionOptions options;
    options.path = kElection;
    options.address = address;
    options.on_change = [this, raw](bool leading) {
      raw->changes++;
      if (!leading) return;
      std::lock_guard<std::mutex> lock(mu_);
      for (Candidate* other : all_) {
        if (other != raw && other->leading()) raw->overlapped = true;
      }
    };
    auto joined = ShardElection::Join(c->session.get(), options);
    EXPECT_TRUE(joined.ok()) << joined.status().ToString();
    if (!joined.ok()) return nullptr;
    c->election = std::move(*joined);
    c->relay.Attach(c->election.get());
    std::lock_guard<std::mutex> lock(mu_);
    all_.push_back(raw);
    return c;
  }

  void Forget(Candidate* c) {
    std::lock_guard<std::mutex> lock(mu_);
    all_.erase(std::remove(all_.begin(), all_.end(), c), all_.end());
  }

  int Leaders() {
    std::lock_guard<std::mutex> lock(mu_);
    int n = 0;
    for (Candidate* c : all_) n += c->leading() ? 1 : 0;
    return n;
  }

  std::mutex mu_;
  std::vector<Candidate*> all_;  // guarded by mu_
};

TEST_F(ShardElectionTest, ExactlyOneCandidateLeadsAndEveryCandidateNamesIt) {
  auto a = Enter("127.0.0.1:7001");
  auto b = Enter("127.0.0.1:7002");
  auto c = Enter("127.0.0.1:7003");
  ASSERT_TRUE(a && b && c);
  ASSERT_TRUE(PollUntil([&] { return a->leading(); }, 5000, 10));
  // The first to enter leads; the others stay standbys, and say so for good.
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  EXPECT_EQ(Leaders(), 1);
  EXPECT_FALSE(b->leading());
  EXPECT_FALSE(c->leading());
  for (Candidate* x : {a.get(), b.get(), c.get()}) {
    auto leader = x->election->LeaderAddress();
    ASSERT_TRUE(leader.ok()) << leader.status().ToString();
    EXPECT_EQ(*leader, "127.0.0.1:7001");
  }
}

TEST_F(ShardElectionTest, LeaderExitPromotesTheNextOnlyAndAStandbyExitChangesNothing) {
  auto a = Enter("a:1");
  auto b = Enter("b:1");
  auto c = Enter("c:1");
  ASSERT_TRUE(a && b && c);
  ASSERT_TRUE(PollUntil([&] { return a->leading(); }, 5000, 10));

  // The middle standby leaves: the leader keeps leading, the last one waits.
  const int a_changes = a->changes, c_changes = c->changes;
  Forget(b.get());
  b.reset();  // closes its session: its node goes at once
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  EXPECT_TRUE(a->leading());
  EXPECT_FALSE(c->leading());
  EXPECT_EQ(a->changes, a_changes);
  EXPECT_EQ(c->changes, c_changes);

  // The leader's process dies (its session closes): the next one leads.
  const auto start = std::chrono::steady_clock::now();
  Forget(a.get());
  a.reset();
  ASSERT_TRUE(PollUntil([&] { return c->leading(); }, 5000, 1));
  std::cout << "closed leader session to the next leading: "
            << std::chrono::duration_cast<std::chrono::milliseconds>(
                   std::chrono::steady_clock::now() - start)
                   .count()
            << " ms\n";
  EXPECT_FALSE(c->overlapped);
  auto leader = c->election->LeaderAddress();
  ASSERT_TRUE(leader.ok());
  EXPECT_EQ(*leader, "c:1");
}

TEST_F(ShardElectionTest, ResigningHandsOverAtOnce) {
  auto a = Enter("a:1");
  auto b = Enter("b:1");
  ASSERT_TRUE(a && b);
  ASSERT_TRUE(PollUntil([&] { return a->leading(); }, 5000, 10));
  const auto start = std::chrono::steady_clock::now();
  ASSERT_TRUE(a->election->Resign().ok());
  EXPECT_FALSE(a->leading());  // before Resign returns
  ASSERT_TRUE(PollUntil([&] { return b->leading(); }, 5000, 1));
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                      std::chrono::steady_clock::now() - start)
                      .count();
  std::cout << "resign to the next leading: " << ms << " ms\n";
  EXPECT_LT(ms, 1000);
  EXPECT_FALSE(b->overlapped);
  // A resigned candidate never leads again, even with nobody before it.
  Forget(b.get());
  b.reset();
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  EXPECT_FALSE(a->leading());
}

// The leader reaches ZooKeeper through proxies that stop passing anything:
// it must stop leading as soon as its client declares the connection lost
// (2/3 of the session timeout), before the servers expire its session and
// promote the standby; after the heal it learns its session expired and
// never leads again.
TEST_F(ShardElectionTest, LeaderCutOffFromZooKeeperStopsLeadingBeforeAnotherIsPromoted) {
  const std::string through_proxies = ThroughProxies();
  ASSERT_FALSE(through_proxies.empty());
  auto old_leader = Enter("old:1", /*session_timeout_ms=*/2000, through_proxies);
  auto standby = Enter("standby:1");
  ASSERT_TRUE(old_leader && standby);
  ASSERT_TRUE(PollUntil([&] { return old_leader->leading(); }, 5000, 10));

  const auto cut = std::chrono::steady_clock::now();
  FreezeProxies();
  ASSERT_TRUE(PollUntil([&] { return !old_leader->leading(); }, 5000, 1));
  const auto stepped_down = std::chrono::steady_clock::now();
  ASSERT_TRUE(PollUntil([&] { return standby->leading(); }, 15000, 1));
  const auto promoted = std::chrono::steady_clock::now();
  auto ms = [&](auto t) {
    return std::chrono::duration_cast<std::chrono::milliseconds>(t - cut).count();
  };
  std::cout << "cut off at 0 ms: old leader stopped at " << ms(stepped_down)
            << " ms, standby promoted at " << ms(promoted) << " ms\n";
  EXPECT_LT(stepped_down, promoted);
  EXPECT_FALSE(standby->overlapped);

  ThawProxies();
  ASSERT_TRUE(old_leader->session->WaitForState(ZkSessionState::kExpired, 15000));
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  EXPECT_FALSE(old_leader->leading());
  EXPECT_TRUE(standby->leading());
  auto leader = standby->election->LeaderAddress();
  ASSERT_TRUE(leader.ok());
  EXPECT_EQ(*leader, "standby:1");
}

// A leader whose connection drops for less than its session timeout (a
// ZooKeeper server restart, say) stops leading while cut off and leads again
// once reconnected, since nobody could have been promoted meanwhile.
TEST_F(ShardElectionTest, ShortDisconnectSuspendsLeadershipAndReconnectRestoresIt) {
  const std::string through_proxies = ThroughProxies();
  ASSERT_FALSE(through_proxies.empty());
  auto leader = Enter("a:1", /*session_timeout_ms=*/12000, through_proxies);
  auto standby = Enter("b:1");
  ASSERT_TRUE(leader && standby);
  ASSERT_TRUE(PollUntil([&] { return leader->leading(); }, 5000, 10));
  FreezeProxies();
  ASSERT_TRUE(PollUntil([&] { return !leader->leading(); }, 10000, 5));
  ThawProxies();
  ASSERT_TRUE(PollUntil([&] { return leader->leading(); }, 10000, 5));
  EXPECT_FALSE(standby->leading());
  EXPECT_FALSE(leader->session->expired());
}

}  // namespace
}  // namespace pact
