// The connection pool, retry policy and branch state guard the PostgreSQL and
// MariaDB backends share, over a fake connection and a fake clock.
#include <gtest/gtest.h>

#include <vector>

#include "participant/backends/branch_state_machine.h"
#include "participant/backends/server/connection_pool.h"
#include "participant/backends/server/retry_policy.h"

namespace pact {
namespace {

struct FakeServer;

struct FakeConn {
  FakeServer* server;
  int id;
  bool alive = true;     // false: the server ended it while it was idle
  bool reusable = true;  // false: still inside a transaction
  int resets = 0;
};

struct FakeCloser {
  void operator()(FakeConn* conn) const;
};

using Pool = ConnectionPool<FakeConn, FakeCloser>;
using FakeConnPtr = Pool::ConnPtr;

// Opens numbered connections, or refuses to while down, and records which
// were closed and with which timeout each was opened.
struct FakeServer {
  bool down = false;
  int refuse_next = 0;  // connects refused before the server is back
  bool reset_fails = false;
  int opened = 0;
  std::vector<int> connect_timeouts;
  std::vector<int> closed;

  Pool::Hooks Hooks() {
    Pool::Hooks hooks;
    hooks.connect = [this](int timeout_s) -> Result<FakeConnPtr> {
      connect_timeouts.push_back(timeout_s);
      if (down || refuse_next > 0) {
        --refuse_next;
        return Status::Unavailable("connection refused");
      }
      return FakeConnPtr(new FakeConn{this, ++opened});
    };
    hooks.alive = [](FakeConn* conn) { return conn->alive; };
    hooks.reusable = [](FakeConn* conn) { return conn->reusable; };
    hooks.reset = [this](FakeConn* conn) {
      ++conn->resets;
      return !reset_fails;
    };
    return hooks;
  }
};

void FakeCloser::operator()(FakeConn* conn) const {
  conn->server->closed.push_back(conn->id);
  delete conn;
}

// Time that passes only when someone sleeps (or a test says so).
class FakeClock : public Clock {
 public:
  TimePoint Now() override { return now_; }
  int64_t WallMillis() override { return 0; }
  void SleepFor(Millis d) override {
    sleeps.push_back(static_cast<int>(d.count()));
    now_ += d;
  }
  void Advance(Millis d) { now_ += d; }

  std::vector<int> sleeps;

 private:
  TimePoint now_;
};

constexpr int kMaxIdle = 2;
constexpr int kConnectTimeoutS = 5;

class ConnectionPoolTest : public ::testing::Test {
 protected:
  ConnectionPoolTest() : pool_(server_.Hooks(), kMaxIdle, kConnectTimeoutS) {
    policy_.clock = &clock_;
    policy_.connect_timeout_s = 2;
  }

  FakeConnPtr TakeOrDie() {
    Result<FakeConnPtr> conn = pool_.Take();
    EXPECT_TRUE(conn.ok()) << conn.status().ToString();
    return conn.ok() ? std::move(conn).value() : nullptr;
  }

  FakeServer server_;
  FakeClock clock_;
  RetryPolicy policy_;
  Pool pool_;
};

TEST_F(ConnectionPoolTest, TakeOpensANewConnectionWhenNoneIsIdle) {
  FakeConnPtr conn = TakeOrDie();
  ASSERT_NE(conn, nullptr);
  EXPECT_EQ(conn->id, 1);
  EXPECT_EQ(server_.connect_timeouts, std::vector<int>{kConnectTimeoutS});
  server_.down = true;
  EXPECT_EQ(pool_.Take().status().code(), StatusCode::kUnavailable);
}

TEST_F(ConnectionPoolTest, GivenConnectionServesTheNextTakeWithoutReset) {
  pool_.Give(TakeOrDie(), false);
  EXPECT_EQ(pool_.IdleCount(), 1u);
  FakeConnPtr again = TakeOrDie();
  ASSERT_NE(again, nullptr);
  EXPECT_EQ(again->id, 1);
  EXPECT_EQ(again->resets, 0);
  EXPECT_EQ(server_.opened, 1);
}

TEST_F(ConnectionPoolTest, ResetIsAskedForAndAFailedResetClosesTheConnection) {
  pool_.Give(TakeOrDie(), true);
  FakeConnPtr reset = TakeOrDie();
  ASSERT_NE(reset, nullptr);
  EXPECT_EQ(reset->resets, 1);
  server_.reset_fails = true;
  pool_.Give(std::move(reset), true);
  EXPECT_EQ(pool_.IdleCount(), 0u);
  EXPECT_EQ(server_.closed, std::vector<int>{1});
}

TEST_F(ConnectionPoolTest, ConnectionThatCannotServeAgainIsClosed) {
  FakeConnPtr conn = TakeOrDie();
  conn->reusable = false;
  pool_.Give(std::move(conn), true);
  EXPECT_EQ(pool_.IdleCount(), 0u);
  EXPECT_EQ(server_.closed, std::vector<int>{1});
}

TEST_F(ConnectionPoolTest, DeadIdleConnectionsAreClosedWhenTaken) {
  FakeConnPtr first = TakeOrDie();
  FakeConnPtr second = TakeOrDie();
  first->alive = false;
  pool_.Give(std::move(first), false);
  pool_.Give(std::move(second), false);
  FakeConnPtr alive = TakeOrDie();  // the most recently given first
  ASSERT_NE(alive, nullptr);
  EXPECT_EQ(alive->id, 2);
  FakeConnPtr fresh = TakeOrDie();  // 1 is dead: closed, and a new one opened
  ASSERT_NE(fresh, nullptr);
  EXPECT_EQ(fresh->id, 3);
  EXPECT_EQ(server_.closed, std::vector<int>{1});
}

TEST_F(ConnectionPoolTest, IdleConnectionsAreCappedAndDropIdleClosesThemAll) {
  std::vector<FakeConnPtr> taken;
  for (int i = 0; i < kMaxIdle + 1; ++i) taken.push_back(TakeOrDie());
  for (FakeConnPtr& conn : taken) pool_.Give(std::move(conn), false);
  EXPECT_EQ(pool_.IdleCount(), static_cast<size_t>(kMaxIdle));
  EXPECT_EQ(server_.closed, std::vector<int>{3});
  pool_.DropIdle();
  EXPECT_EQ(pool_.IdleCount(), 0u);
  EXPECT_EQ(server_.closed, (std::vector<int>{3, 1, 2}));
}

TEST_F(ConnectionPoolTest, TakeStartedTriesOnceMoreOnANewConnectionAfterATransientFailure) {
  FakeConnPtr first = TakeOrDie();
  FakeConnPtr second = TakeOrDie();
  pool_.Give(std::move(first), false);
  pool_.Give(std::move(second), false);  // both dead without knowing it
  std::vector<int> tried;
  auto start = [&](FakeConn* conn) {
    tried.push_back(conn->id);
    return conn->id < 3 ? Status::Unavailable("server closed the connection") : Status::Ok();
  };
  Result<FakeConnPtr> started = pool_.TakeStarted(start);
  ASSERT_TRUE(started.ok()) << started.status().ToString();
  EXPECT_EQ((*started)->id, 3);
  EXPECT_EQ(tried, (std::vector<int>{2, 3}));  // 1 was dropped with the idle ones
  EXPECT_EQ(server_.closed, (std::vector<int>{1, 2}));

  tried.clear();
  Result<FakeConnPtr> twice = pool_.TakeStarted([&](FakeConn* conn) {
    tried.push_back(conn->id);
    return Status::Unavailable("server gone");
  });
  EXPECT_EQ(twice.status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(tried, (std::vector<int>{4, 5}));
}

TEST_F(ConnectionPoolTest, TakeStartedReturnsAnAnswerAtOnce) {
  int calls = 0;
  Result<FakeConnPtr> refused = pool_.TakeStarted([&](FakeConn*) {
    ++calls;
    return Status::InvalidArgument("no");
  });
  EXPECT_EQ(refused.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(server_.closed, std::vector<int>{1});
}

TEST_F(ConnectionPoolTest, WithRetryReconnectsThroughFailuresAndKeepsTheConnectionOfTheAnswer) {
  pool_.Give(TakeOrDie(), false);  // 1, dead without knowing it
  server_.refuse_next = 2;         // then the server restarts
  std::vector<int> ran_on;
  Status status = pool_.WithRetry(policy_, [&](FakeConn* conn) {
    ran_on.push_back(conn->id);
    if (conn->id == 1) return Status::Unavailable("server closed the connection");
    return Status::NotFound("no such branch");  // an answer, not a failure
  });
  EXPECT_EQ(status.code(), StatusCode::kNotFound);
  EXPECT_EQ(ran_on, (std::vector<int>{1, 2}));
  EXPECT_EQ(server_.closed, std::vector<int>{1});
  EXPECT_EQ(pool_.IdleCount(), 1u);  // 2 went back after the answer
  // The first connection was the pool's own; those opened while retrying
  // used the policy's timeout.
  EXPECT_EQ(server_.connect_timeouts, (std::vector<int>{kConnectTimeoutS, 2, 2, 2}));
  EXPECT_EQ(clock_.sleeps, (std::vector<int>{50, 100, 200}));
}

TEST_F(ConnectionPoolTest, WithRetryGivesUpAtTheDeadlineWithTheLastFailure) {
  server_.down = true;
  int calls = 0;
  Status status = pool_.WithRetry(policy_, [&](FakeConn*) {
    ++calls;
    return Status::Ok();
  });
  EXPECT_EQ(status.code(), StatusCode::kUnavailable);
  EXPECT_NE(status.message().find("connection refused"), std::string::npos);
  EXPECT_EQ(calls, 0);
  EXPECT_EQ(server_.connect_timeouts.size(), 8u);
}

// A default policy (2000 ms, waits from 50 ms doubling to 400 ms) on a fake
// clock, and an attempt that answers from a script.
class RetryPolicyTest : public ::testing::Test {
 protected:
  RetryPolicyTest() { policy_.clock = &clock_; }

  // Runs the policy over attempts that each take `attempt_ms` and answer
  // `answers[i]`, then kUnavailable once the script is out.
  Status RunScript(const std::vector<Status>& answers, int attempt_ms = 0) {
    return policy_.Run(
        [&] {
          clock_.Advance(Millis(attempt_ms));
          const size_t call = calls_++;
          return call < answers.size() ? answers[call] : Status::Unavailable("no server");
        },
        [&] { ++after_transient_; });
  }

  FakeClock clock_;
  RetryPolicy policy_;
  size_t calls_ = 0;
  int after_transient_ = 0;
};

TEST_F(RetryPolicyTest, OnlyUnavailableIsTransient) {
  EXPECT_TRUE(RetryPolicy::IsTransient(Status::Unavailable("lost")));
  for (const Status& answer : {Status::Ok(), Status::NotFound("x"), Status::Aborted("x"),
                               Status::Busy("x"), Status::IoError("x"), Status::TimedOut("x")}) {
    EXPECT_FALSE(RetryPolicy::IsTransient(answer)) << answer.ToString();
  }
}

TEST_F(RetryPolicyTest, AnAnswerIsReturnedWithoutRetrying) {
  Status status = RunScript({Status::InvalidArgument("syntax error")});
  EXPECT_EQ(status.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(calls_, 1u);
  EXPECT_EQ(after_transient_, 0);
  EXPECT_TRUE(clock_.sleeps.empty());
}

TEST_F(RetryPolicyTest, BackoffDoublesUpToTheMaximumUntilTheDeadline) {
  Status status = RunScript({});
  EXPECT_EQ(status.code(), StatusCode::kUnavailable);
  EXPECT_EQ(clock_.sleeps, (std::vector<int>{50, 100, 200, 400, 400, 400, 400}));  // 1950 ms
  EXPECT_EQ(calls_, 8u);
  EXPECT_EQ(after_transient_, 8);
}

TEST_F(RetryPolicyTest, SlowAttemptsCountAgainstTheDeadline) {
  // Each attempt waits out a connect timeout: 1000, wait 50, 2050 is past
  // the deadline, so there is no third call.
  Status status = RunScript({Status::Unavailable("timed out"), Status::Unavailable("timed out"),
                             Status::Ok()},
                            1000);
  EXPECT_EQ(status.code(), StatusCode::kUnavailable);
  EXPECT_EQ(calls_, 2u);
  EXPECT_EQ(clock_.sleeps, std::vector<int>{50});
}

TEST_F(RetryPolicyTest, SuccessAfterTransientFailuresEndsTheRetries) {
  Status status = RunScript({Status::Unavailable("lost"), Status::Unavailable("lost"),
                             Status::Ok()});
  EXPECT_TRUE(status.ok()) << status.ToString();
  EXPECT_EQ(calls_, 3u);
  EXPECT_EQ(clock_.sleeps, (std::vector<int>{50, 100}));
}

enum class Light { kRed, kGreen, kYellow };

const char* LightName(Light light) {
  static const char* const kNames[] = {"red", "green", "yellow"};
  return kNames[static_cast<int>(light)];
}

constexpr StateMove<Light> kLightMoves[] = {
    {Light::kRed, Light::kGreen},
    {Light::kGreen, Light::kYellow},
    {Light::kYellow, Light::kRed},
};

TEST(BranchStateMachineTest, ListedMovesAndStayingPutAreTakenOthersRefused) {
  BranchStateMachine<Light> light(Light::kRed, kLightMoves, &LightName, "coord.1.1");
  EXPECT_TRUE(light.MoveTo(Light::kRed).ok());  // already there
  EXPECT_TRUE(light.MoveTo(Light::kGreen).ok());
  EXPECT_TRUE(light.Is(Light::kGreen));
  Status refused = light.MoveTo(Light::kRed);
  EXPECT_EQ(refused.code(), StatusCode::kInternal);
  EXPECT_NE(refused.message().find("coord.1.1 cannot move from green to red"), std::string::npos)
      << refused.message();
  EXPECT_STREQ(light.Name(), "green");  // unchanged
  EXPECT_TRUE(light.MoveTo(Light::kYellow).ok());
}

}  // namespace
}  // namespace pact
