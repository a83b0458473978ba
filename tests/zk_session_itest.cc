// ZkSession against a real three-node ZooKeeper ensemble on loopback (each
// test starts and removes its own): compare-and-set and multi refuse stale
// versions and change nothing, ephemeral nodes go with their session, the
// session listener reports connection loss, reconnection and expiry caused by
// frozen, killed and partitioned servers, and the ensemble serves on with one
// of three servers (the leader too) killed.
#include "zookeeper/zk_session.h"

#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <iostream>
#include <memory>
#include <mutex>
#include <vector>

#include "cluster/fault_proxy.h"
#include "cluster/wait_until.h"
#include "cluster/zookeeper_ensemble.h"
#include "tests/zookeeper_fixture.h"

namespace pact {
namespace {

using Clock = std::chrono::steady_clock;

int64_t MsSince(Clock::time_point start) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start).count();
}

// Every state a session's listener was told, in order.
class StateLog {
 public:
  ZkSessionListener Listener() {
    return [this](ZkSessionState state) {
      std::lock_guard<std::mutex> lock(mu_);
      states_.push_back(state);
      changed_.notify_all();
    };
  }
  // True once `state` was reported after the first `after` reports.
  bool WaitFor(ZkSessionState state, int timeout_ms, size_t after = 0) {
    std::unique_lock<std::mutex> lock(mu_);
    return changed_.wait_for(lock, std::chrono::milliseconds(timeout_ms), [&] {
      for (size_t i = after; i < states_.size(); ++i) {
        if (states_[i] == state) return true;
      }
      return false;
    });
  }
  size_t size() {
    std::lock_guard<std::mutex> lock(mu_);
    return states_.size();
  }

 private:
  std::mutex mu_;
  std::condition_variable changed_;
  std::vector<ZkSessionState> states_;
};

// Every watch event a session's listener was told.
class WatchLog {
 public:
  ZkWatchListener Listener() {
    return [this](const ZkWatchEvent& event) {
      std::lock_guard<std::mutex> lock(mu_);
      events_.push_back(event);
      changed_.notify_all();
    };
  }
  bool WaitFor(ZkWatchEventType type, const std::string& path, int timeout_ms) {
    std::unique_lock<std::mutex> lock(mu_);
    return changed_.wait_for(lock, std::chrono::milliseconds(timeout_ms), [&] {
      for (const ZkWatchEvent& e : events_) {
        if (e.type == type && e.path == path) return true;
      }
      return false;
    });
  }

 private:
  std::mutex mu_;
  std::condition_variable changed_;
  std::vector<ZkWatchEvent> events_;
};

class ZkSessionTest : public ZooKeeperFixture {};

TEST_F(ZkSessionTest, CompareAndSetRefusesAStaleVersionAndChangesNothing) {
  auto zk = Connect();
  ASSERT_NE(zk, nullptr);
  auto created = zk->Create("/epoch", "1");
  ASSERT_TRUE(created.ok()) << created.status().ToString();
  EXPECT_EQ(*created, "/epoch");

  auto node = zk->Get("/epoch");
  ASSERT_TRUE(node.ok()) << node.status().ToString();
  EXPECT_EQ(node->data, "1");
  EXPECT_EQ(node->stat.version, 0);
  EXPECT_EQ(node->stat.ephemeral_owner, 0);

  auto raised = zk->Set("/epoch", "2", 0);
  ASSERT_TRUE(raised.ok()) << raised.status().ToString();
  EXPECT_EQ(raised->version, 1);

  // A second writer that read version 0 loses, and leaves the node alone.
  auto stale = zk->Set("/epoch", "2-again", 0);
  EXPECT_EQ(stale.status().code(), StatusCode::kFailedPrecondition) << stale.status().ToString();
  node = zk->Get("/epoch");
  ASSERT_TRUE(node.ok());
  EXPECT_EQ(node->data, "2");
  EXPECT_EQ(node->stat.version, 1);

  EXPECT_EQ(zk->Delete("/epoch", 0).code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(zk->Create("/epoch", "x").status().code(), StatusCode::kFailedPrecondition);
  ASSERT_TRUE(zk->Delete("/epoch", 1).ok());
  EXPECT_EQ(zk->Get("/epoch").status().code(), StatusCode::kNotFound);
  EXPECT_EQ(zk->Set("/epoch", "3", kZkAnyVersion).status().code(), StatusCode::kNotFound);
  auto missing = zk->Exists("/epoch");
  ASSERT_TRUE(missing.ok());
  EXPECT_FALSE(missing->has_value());

  // Large values come back whole (more than the first read's buffer).
  const std::string big(200 * 1024, 'b');
  ASSERT_TRUE(zk->Create("/big", big).ok());
  node = zk->Get("/big");
  ASSERT_TRUE(node.ok());
  EXPECT_EQ(node->data, big);

  // Sequential nodes get increasing names; children come back sorted.
  ASSERT_TRUE(zk->CreateAll("/shard/a/election").ok());
  ASSERT_TRUE(zk->CreateAll("/shard/a/election").ok());  // exists: still Ok
  auto first = zk->Create("/shard/a/election/n-", "", ZkCreateMode::kPersistentSequential);
  auto second = zk->Create("/shard/a/election/n-", "", ZkCreateMode::kPersistentSequential);
  ASSERT_TRUE(first.ok() && second.ok());
  EXPECT_LT(*first, *second);
  auto children = zk->Children("/shard/a/election");
  ASSERT_TRUE(children.ok());
  ASSERT_EQ(children->size(), 2u);
  EXPECT_EQ("/shard/a/election/" + (*children)[0], *first);
  EXPECT_EQ("/shard/a/election/" + (*children)[1], *second);
}

TEST_F(ZkSessionTest, MultiWhoseVersionCheckFailsAppliesNoneOfItsOps) {
  auto zk = Connect();
  ASSERT_NE(zk, nullptr);
  ASSERT_TRUE(zk->Create("/epoch", "1").ok());
  ASSERT_TRUE(zk->Set("/epoch", "2", 0).ok());  // a new active raised it: version 1
  ASSERT_TRUE(zk->Create("/counter", "0").ok());
  ASSERT_TRUE(zk->Create("/old", "").ok());
  ASSERT_TRUE(zk->Create("/records", "").ok());

  // The old active still thinks the epoch is at version 0.
  auto refused = zk->Multi({ZkOp::Create("/records/t1", "commit"),
                            ZkOp::Set("/counter", "1", 0), ZkOp::Delete("/old", 0),
                            ZkOp::Check("/epoch", 0)});
  ASSERT_EQ(refused.status().code(), StatusCode::kFailedPrecondition)
      << refused.status().ToString();
  EXPECT_NE(refused.status().message().find("op 3 (check /epoch)"), std::string::npos)
      << refused.status().ToString();
  auto record = zk->Exists("/records/t1");
  ASSERT_TRUE(record.ok());
  EXPECT_FALSE(record->has_value());
  auto counter = zk->Get("/counter");
  ASSERT_TRUE(counter.ok());
  EXPECT_EQ(counter->data, "0");
  EXPECT_EQ(counter->stat.version, 0);
  auto old = zk->Exists("/old");
  ASSERT_TRUE(old.ok());
  EXPECT_TRUE(old->has_value());

  // A failing op in the middle undoes the ops before it too.
  auto half = zk->Multi({ZkOp::Check("/epoch", 1), ZkOp::Create("/records/t1", "commit"),
                         ZkOp::Create("/records/missing-parent/t2", "commit")});
  EXPECT_EQ(half.status().code(), StatusCode::kNotFound) << half.status().ToString();
  record = zk->Exists("/records/t1");
  ASSERT_TRUE(record.ok());
  EXPECT_FALSE(record->has_value());

  // With the current version every op applies.
  auto applied = zk->Multi({ZkOp::Check("/epoch", 1),
                            ZkOp::Create("/records/t-", "commit",
                                         ZkCreateMode::kPersistentSequential),
                            ZkOp::Set("/counter", "1", 0), ZkOp::Delete("/old", 0)});
  ASSERT_TRUE(applied.ok()) << applied.status().ToString();
  ASSERT_EQ(applied->size(), 4u);
  EXPECT_EQ((*applied)[1].created_path.rfind("/records/t-", 0), 0u);
  EXPECT_EQ((*applied)[2].stat.version, 1);
  auto made = zk->Get((*applied)[1].created_path);
  ASSERT_TRUE(made.ok()) << made.status().ToString();
  EXPECT_EQ(made->data, "commit");
  old = zk->Exists("/old");
  ASSERT_TRUE(old.ok());
  EXPECT_FALSE(old->has_value());
}

TEST_F(ZkSessionTest, EphemeralNodesVanishWhenTheirSessionCloses) {
  WatchLog watches;
  auto observer = Connect(4000, {}, watches.Listener());
  auto owner = Connect();
  ASSERT_NE(observer, nullptr);
  ASSERT_NE(owner, nullptr);
  ASSERT_TRUE(owner->CreateAll("/election").ok());
  ASSERT_TRUE(owner->Create("/active", "me", ZkCreateMode::kEphemeral).ok());
  auto ticket = owner->Create("/election/n-", "", ZkCreateMode::kEphemeralSequential);
  ASSERT_TRUE(ticket.ok()) << ticket.status().ToString();

  auto seen = observer->Exists("/active", /*watch=*/true);
  ASSERT_TRUE(seen.ok() && seen->has_value());
  EXPECT_EQ((*seen)->ephemeral_owner, owner->session_id());
  EXPECT_NE(owner->session_id(), observer->session_id());
  auto listed = observer->Children("/election", /*watch=*/true);
  ASSERT_TRUE(listed.ok());
  EXPECT_EQ(listed->size(), 1u);

  owner.reset();  // closes the session
  EXPECT_TRUE(watches.WaitFor(ZkWatchEventType::kDeleted, "/active", 5000));
  EXPECT_TRUE(watches.WaitFor(ZkWatchEventType::kChildren, "/election", 5000));
  seen = observer->Exists("/active");
  ASSERT_TRUE(seen.ok());
  EXPECT_FALSE(seen->has_value());
  listed = observer->Children("/election");
  ASSERT_TRUE(listed.ok());
  EXPECT_TRUE(listed->empty());
}

TEST_F(ZkSessionTest, FrozenEnsembleIsReportedAsConnectionLossAndThawReconnectsTheSession) {
  StateLog states;
  auto zk = Connect(4000, states.Listener());
  ASSERT_NE(zk, nullptr);
  const int64_t id = zk->session_id();
  ASSERT_TRUE(zk->Create("/mine", "", ZkCreateMode::kEphemeral).ok());
  const size_t before = states.size();

  const auto frozen_at = Clock::now();
  for (int i = 0; i < zk_->size(); ++i) ASSERT_TRUE(zk_->Freeze(i).ok());
  // The client gives up on a silent server after 2/3 of the session timeout.
  ASSERT_TRUE(states.WaitFor(ZkSessionState::kConnectionLost, 6000, before));
  std::cout << "connection loss reported " << MsSince(frozen_at) << " ms after the freeze\n";
  EXPECT_EQ(zk->state(), ZkSessionState::kConnectionLost);
  Status refused = zk->Set("/mine", "x", kZkAnyVersion).status();
  EXPECT_EQ(refused.code(), StatusCode::kUnavailable) << refused.ToString();

  for (int i = 0; i < zk_->size(); ++i) ASSERT_TRUE(zk_->Thaw(i).ok());
  ASSERT_TRUE(states.WaitFor(ZkSessionState::kConnected, 15000, before));
  auto mine = UntilAvailable([&] { return zk->Exists("/mine"); });
  ASSERT_TRUE(mine.ok()) << mine.status().ToString();
  EXPECT_FALSE(zk->expired());
  EXPECT_EQ(zk->session_id(), id);
  ASSERT_TRUE(mine->has_value());
  EXPECT_EQ((*mine)->ephemeral_owner, id);
}

TEST_F(ZkSessionTest, KilledEnsembleIsReportedAsConnectionLossAndItsReturnReconnects) {
  StateLog states;
  auto zk = Connect(10000, states.Listener());
  ASSERT_NE(zk, nullptr);
  const int64_t id = zk->session_id();
  ASSERT_TRUE(zk->Create("/kept", "durable").ok());
  ASSERT_TRUE(zk->Create("/mine", "", ZkCreateMode::kEphemeral).ok());
  const size_t before = states.size();

  for (int i = 0; i < zk_->size(); ++i) ASSERT_TRUE(zk_->Kill(i).ok());
  ASSERT_TRUE(states.WaitFor(ZkSessionState::kConnectionLost, 8000, before));
  EXPECT_EQ(zk->Get("/kept").status().code(), StatusCode::kUnavailable);

  const auto restarted_at = Clock::now();
  for (int i = 0; i < zk_->size(); ++i) ASSERT_TRUE(zk_->StartAgain(i).ok());
  ASSERT_TRUE(zk_->WaitForQuorum(60000).ok());
  // Sessions are in the servers' log: the restarted ensemble knows this one.
  ASSERT_TRUE(states.WaitFor(ZkSessionState::kConnected, 15000, before));
  std::cout << "session reconnected " << MsSince(restarted_at)
            << " ms after the restart began\n";
  auto kept = UntilAvailable([&] { return zk->Get("/kept"); });
  ASSERT_TRUE(kept.ok()) << kept.status().ToString();
  EXPECT_EQ(kept->data, "durable");
  EXPECT_FALSE(zk->expired());
  EXPECT_EQ(zk->session_id(), id);
  auto mine = UntilAvailable([&] { return zk->Exists("/mine"); });
  ASSERT_TRUE(mine.ok()) << mine.status().ToString();
  EXPECT_TRUE(mine->has_value());
}

// A partition between the client and every server, longer than the session
// timeout: the servers (still running) expire the session and drop its
// ephemeral node; once the partition heals the client is told it expired.
TEST_F(ZkSessionTest, PartitionLongerThanTheSessionTimeoutExpiresTheSession) {
  const std::string through_proxies = ThroughProxies();
  ASSERT_FALSE(through_proxies.empty());
  StateLog states;
  auto zk = Connect(2000, states.Listener(), {}, through_proxies);
  auto observer = Connect();
  ASSERT_NE(zk, nullptr);
  ASSERT_NE(observer, nullptr);
  ASSERT_TRUE(zk->Create("/active", "", ZkCreateMode::kEphemeral).ok());
  const size_t before = states.size();

  FreezeProxies();
  ASSERT_TRUE(states.WaitFor(ZkSessionState::kConnectionLost, 5000, before));
  EXPECT_FALSE(zk->expired());  // the client cannot know yet
  // The servers expire the session on their own clock.
  EXPECT_TRUE(PollUntil(
      [&] {
        auto active = observer->Exists("/active");
        return active.ok() && !active->has_value();
      },
      15000, 50));

  ThawProxies();
  ASSERT_TRUE(states.WaitFor(ZkSessionState::kExpired, 15000, before));
  EXPECT_TRUE(zk->expired());
  Status dead = zk->Create("/again", "").status();
  EXPECT_EQ(dead.code(), StatusCode::kUnavailable);
  EXPECT_NE(dead.message().find("expired"), std::string::npos) << dead.ToString();
  // Expiry is final: the handle never reports connected again.
  EXPECT_FALSE(states.WaitFor(ZkSessionState::kConnected, 1000, before + 1));
}

// Another handle given a session's id and password joins the session;
// closing that handle ends the session, and the first handle learns it expired.
TEST_F(ZkSessionTest, HandleResumingASessionCanCloseItAndTheFirstHandleIsToldItExpired) {
  StateLog states;
  auto first = Connect(4000, states.Listener());
  ASSERT_NE(first, nullptr);
  ASSERT_TRUE(first->Create("/mine", "", ZkCreateMode::kEphemeral).ok());
  const size_t before = states.size();

  ZkSessionOptions options;
  options.connect_string = zk_->ConnectString();
  options.session_timeout_ms = 4000;
  options.resume = first->credentials();
  auto second = ZkSession::Connect(options);
  ASSERT_TRUE(second.ok()) << second.status().ToString();
  EXPECT_EQ((*second)->session_id(), first->session_id());
  // (Two live handles of one session steal it from each other at every
  // reconnect; resuming is for a process that lost its handle.)
  second->reset();  // closes the shared session
  ASSERT_TRUE(states.WaitFor(ZkSessionState::kExpired, 15000, before));
  EXPECT_TRUE(first->expired());
  auto observer = Connect();
  ASSERT_NE(observer, nullptr);
  auto mine = observer->Exists("/mine");
  ASSERT_TRUE(mine.ok()) << mine.status().ToString();
  EXPECT_FALSE(mine->has_value());
  // The session is gone for good: resuming it again is refused.
  options.connect_timeout_ms = 5000;
  auto third = ZkSession::Connect(options);
  EXPECT_EQ(third.status().code(), StatusCode::kUnavailable) << third.status().ToString();
}

TEST_F(ZkSessionTest, EnsembleServesOnWithAFollowerStoppedAndThenTheLeaderKilled) {
  StateLog states;
  auto zk = Connect(6000, states.Listener());
  ASSERT_NE(zk, nullptr);
  const int64_t id = zk->session_id();
  ASSERT_TRUE(zk->Create("/value", "0").ok());
  ASSERT_TRUE(zk->Create("/mine", "", ZkCreateMode::kEphemeral).ok());

  auto leader = zk_->LeaderIndex();
  ASSERT_TRUE(leader.ok()) << leader.status().ToString();
  const int follower = (*leader + 1) % zk_->size();
  EXPECT_EQ(zk_->Mode(follower), ZooKeeperMode::kFollower);

  ASSERT_TRUE(zk_->Stop(follower).ok());  // SIGTERM
  EXPECT_FALSE(zk_->running(follower));
  auto start = Clock::now();
  // An idempotent write, retried until the client has moved to a live server.
  Status written = UntilAvailable([&] { return zk->Set("/value", "1", kZkAnyVersion).status(); });
  ASSERT_TRUE(written.ok()) << written.ToString();
  std::cout << "writes served " << MsSince(start) << " ms after a follower was stopped\n";
  ASSERT_TRUE(zk_->Restart(follower).ok());

  ASSERT_TRUE(zk_->Kill(*leader).ok());
  start = Clock::now();
  written = UntilAvailable([&] { return zk->Set("/value", "2", kZkAnyVersion).status(); });
  ASSERT_TRUE(written.ok()) << written.ToString();
  std::cout << "writes served " << MsSince(start) << " ms after the leader was killed\n";
  // The two left elect a leader between them (they may still be settling).
  Result<int> new_leader = Status::Unavailable("not asked yet");
  EXPECT_TRUE(PollUntil(
      [&] {
        new_leader = zk_->LeaderIndex();
        return new_leader.ok();
      },
      10000, 50))
      << new_leader.status().ToString();
  if (new_leader.ok()) {
    EXPECT_NE(*new_leader, *leader);
  }

  EXPECT_FALSE(zk->expired());
  EXPECT_EQ(zk->session_id(), id);
  auto value = UntilAvailable([&] { return zk->Get("/value"); });
  ASSERT_TRUE(value.ok()) << value.status().ToString();
  EXPECT_EQ(value->data, "2");
  auto mine = UntilAvailable([&] { return zk->Exists("/mine"); });
  ASSERT_TRUE(mine.ok()) << mine.status().ToString();
  EXPECT_TRUE(mine->has_value());
}

}  // namespace
}  // namespace pact
