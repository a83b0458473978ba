// The FaultProxy itself, in front of a real coordinator: each fault does what
// its name says to the caller and to the server, and nothing else.
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <thread>

#include "cluster/fault_proxy.h"
#include "gen-cpp/Coordinator.h"
#include "rpc/rpc_client.h"
#include "tests/process_harness.h"

namespace pact {
namespace {

using Clock = std::chrono::steady_clock;

std::string Header(uint32_t first, const std::string& name, int32_t seqid, bool strict = true) {
  auto be32 = [](uint32_t v) {
    return std::string{static_cast<char>(v >> 24), static_cast<char>(v >> 16),
                       static_cast<char>(v >> 8), static_cast<char>(v)};
  };
  if (!strict) return be32(name.size()) + name + static_cast<char>(first) + be32(seqid);
  return be32(first) + be32(name.size()) + name + be32(seqid);
}

TEST(ThriftMessageTest, ParsesStrictAndOldHeaders) {
  auto call = ParseThriftMessage(Header(0x80010001u, "prepare", 7) + "args");
  ASSERT_TRUE(call.has_value());
  EXPECT_EQ(call->method, "prepare");
  EXPECT_TRUE(call->is_request);
  EXPECT_EQ(call->seqid, 7);
  auto reply = ParseThriftMessage(Header(0x80010002u, "prepare", 7));
  ASSERT_TRUE(reply.has_value());
  EXPECT_FALSE(reply->is_request);
  auto exception = ParseThriftMessage(Header(0x80010003u, "commit", 1));
  ASSERT_TRUE(exception.has_value());
  EXPECT_FALSE(exception->is_request);
  auto old = ParseThriftMessage(Header(1, "outcome", 3, /*strict=*/false));
  ASSERT_TRUE(old.has_value());
  EXPECT_EQ(old->method, "outcome");
  EXPECT_TRUE(old->is_request);
}

TEST(ThriftMessageTest, RejectsWhatIsNotAHeader) {
  EXPECT_FALSE(ParseThriftMessage("").has_value());
  EXPECT_FALSE(ParseThriftMessage(Header(0x80020001u, "info", 1)).has_value());  // version
  EXPECT_FALSE(ParseThriftMessage(Header(0x80010009u, "info", 1)).has_value());  // type
  EXPECT_FALSE(ParseThriftMessage(Header(0x80010001u, "info", 1).substr(0, 9)).has_value());
}

class FaultProxyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    cluster_.ProxyEveryLink();
    Status st = cluster_.StartCoordinator();
    ASSERT_TRUE(st.ok()) << st.ToString();
  }

  FaultProxy& proxy() { return cluster_.client_proxy(); }
  int coordinator_port() { return Endpoint::Parse(cluster_.coordinator_address())->port; }

  // One call on a fresh connection through `port`.
  Status Info(int port) {
    RpcConnection<rpc::CoordinatorClient> conn(Endpoint{"127.0.0.1", port}, kTimeouts);
    rpc::CoordinatorInfo info;
    return conn.Call([&](rpc::CoordinatorClient& c) { c.info(info); });
  }
  Status Begin() {
    RpcConnection<rpc::CoordinatorClient> conn(Endpoint{"127.0.0.1", proxy().port()}, kTimeouts);
    rpc::BeginResult begun;
    return conn.Call([&](rpc::CoordinatorClient& c) { c.beginTxn(begun, 0); });
  }
  // Transactions the coordinator has begun, asked around the proxy.
  int64_t Begun() {
    RpcConnection<rpc::CoordinatorClient> conn(Endpoint{"127.0.0.1", coordinator_port()},
                                               kTimeouts);
    std::map<std::string, int64_t> stats;
    EXPECT_TRUE(conn.Call([&](rpc::CoordinatorClient& c) { c.stats(stats); }).ok());
    return stats["txns_begun"];
  }
  static int64_t MillisSince(Clock::time_point start) {
    return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start).count();
  }

  static constexpr RpcTimeouts kTimeouts{500, 700};
  TempDir dir_;
  TestCluster cluster_{dir_};
};

TEST_F(FaultProxyTest, ForwardsCallsWithoutRules) {
  EXPECT_TRUE(Info(proxy().port()).ok());
  EXPECT_TRUE(Begin().ok());
  EXPECT_EQ(Begun(), 1);
}

TEST_F(FaultProxyTest, DroppedRequestTimesOutAndNeverReachesTheServer) {
  RuleId rule = proxy().AddRule({"beginTxn", Fault::kDropRequest});
  EXPECT_TRUE(Info(proxy().port()).ok());  // another method passes
  EXPECT_EQ(proxy().Hits(rule), 0);
  auto start = Clock::now();
  Status st = Begin();
  EXPECT_EQ(st.code(), StatusCode::kUnavailable) << st.ToString();
  EXPECT_GE(MillisSince(start), 600);
  EXPECT_TRUE(proxy().WaitUntilFired(rule, 0));
  EXPECT_EQ(Begun(), 0);
  EXPECT_TRUE(Begin().ok());  // spent
  EXPECT_EQ(Begun(), 1);
}

TEST_F(FaultProxyTest, DroppedReplyTimesOutAfterTheServerActed) {
  RuleId rule = proxy().AddRule({"beginTxn", Fault::kDropReply, /*count=*/2});
  EXPECT_EQ(Begin().code(), StatusCode::kUnavailable);
  EXPECT_EQ(Begin().code(), StatusCode::kUnavailable);
  EXPECT_TRUE(Begin().ok());
  EXPECT_EQ(proxy().Hits(rule), 2);
  EXPECT_EQ(Begun(), 3);
}

TEST_F(FaultProxyTest, ResetBeforeTheRequestFailsFastAndTheServerNeverSeesIt) {
  proxy().AddRule({"beginTxn", Fault::kResetBeforeRequest});
  auto start = Clock::now();
  EXPECT_EQ(Begin().code(), StatusCode::kUnavailable);
  EXPECT_LT(MillisSince(start), 500);
  EXPECT_EQ(Begun(), 0);
}

TEST_F(FaultProxyTest, ResetAfterTheRequestFailsFastAndTheServerActed) {
  proxy().AddRule({"beginTxn", Fault::kResetAfterRequest});
  auto start = Clock::now();
  EXPECT_EQ(Begin().code(), StatusCode::kUnavailable);
  EXPECT_LT(MillisSince(start), 500);
  EXPECT_TRUE(PollUntil([&] { return Begun() == 1; }, 2000));
}

TEST_F(FaultProxyTest, DelaysARequestOrAReply) {
  proxy().AddRule({"info", Fault::kDelayRequest, 1, /*delay_ms=*/300});
  proxy().AddRule({"info", Fault::kDelayReply, 1, /*delay_ms=*/200});
  auto start = Clock::now();
  EXPECT_TRUE(Info(proxy().port()).ok());
  EXPECT_GE(MillisSince(start), 500);
}

TEST_F(FaultProxyTest, ClearedRulesHitNothing) {
  RuleId rule = proxy().AddRule({"", Fault::kDropRequest, /*count=*/100});
  proxy().ClearRules();
  EXPECT_TRUE(Info(proxy().port()).ok());
  EXPECT_EQ(proxy().Hits(rule), 0);
}

TEST_F(FaultProxyTest, FrozenForwardsNothingUntilThawed) {
  proxy().Freeze();
  EXPECT_EQ(Info(proxy().port()).code(), StatusCode::kUnavailable);
  proxy().Thaw();
  EXPECT_TRUE(Info(proxy().port()).ok());
}

TEST_F(FaultProxyTest, RefusesNewConnectionsForAWhile) {
  proxy().RefuseConnections(400);
  EXPECT_EQ(Info(proxy().port()).code(), StatusCode::kUnavailable);
  std::this_thread::sleep_for(std::chrono::milliseconds(450));
  EXPECT_TRUE(Info(proxy().port()).ok());
}

TEST_F(FaultProxyTest, ResetConnectionsClosesTheOpenOnes) {
  int fd = ConnectToLoopback(proxy().port());
  ASSERT_GE(fd, 0);
  timeval timeout{2, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
  // Once the proxy holds the connection, a reset ends it: EOF or ECONNRESET,
  // not the receive timeout.
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  proxy().ResetConnections();
  char byte;
  auto start = Clock::now();
  EXPECT_LE(recv(fd, &byte, 1, 0), 0);
  EXPECT_LT(MillisSince(start), 1500);
  close(fd);
  EXPECT_TRUE(Info(proxy().port()).ok());  // new connections are welcome
}

TEST_F(FaultProxyTest, OpaqueFramingForwardsBytesAndIgnoresRules) {
  auto opaque = FaultProxy::Start(coordinator_port(), FaultProxy::Framing::kOpaque);
  ASSERT_TRUE(opaque.ok()) << opaque.status().ToString();
  RuleId rule = (*opaque)->AddRule({"", Fault::kDropRequest, /*count=*/100});
  EXPECT_TRUE(Info((*opaque)->port()).ok());
  EXPECT_EQ((*opaque)->Hits(rule), 0);
  (*opaque)->Freeze();
  EXPECT_EQ(Info((*opaque)->port()).code(), StatusCode::kUnavailable);
  (*opaque)->Thaw();
  EXPECT_TRUE(Info((*opaque)->port()).ok());
}

}  // namespace
}  // namespace pact
