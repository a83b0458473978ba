// The IDL conversions: every value of every enum makes the round trip, and
// values this side does not know are taken the safe way.
#include "rpc/rpc_convert.h"

#include <gtest/gtest.h>

namespace pact {
namespace {

TEST(RpcConvertTest, EveryStatusCodeMakesTheRoundTrip) {
  for (int c = static_cast<int>(StatusCode::kNotFound);
       c <= static_cast<int>(StatusCode::kNotLeader); ++c) {
    auto code = static_cast<StatusCode>(c);
    Status back = StatusFromRpc(ErrorCodeToRpc(code), "why");
    EXPECT_EQ(back.code(), code) << StatusCodeName(code);
    EXPECT_EQ(back.message(), "why");
    // The wire numbers are the IDL's, which other languages' clients see.
    EXPECT_EQ(static_cast<int>(ErrorCodeToRpc(code)), c) << StatusCodeName(code);
  }
  Status unknown = StatusFromRpc(static_cast<rpc::ErrorCode::type>(99), "from the future");
  EXPECT_EQ(unknown.code(), StatusCode::kInternal);
  EXPECT_NE(unknown.message().find("unknown error code 99"), std::string::npos);
}

TEST(RpcConvertTest, NotLeaderNamesTheActiveInTheMessageAndOnTheWire) {
  Status standby = NotLeaderStatus("s1", "10.0.0.7:7700");
  EXPECT_EQ(standby.code(), StatusCode::kNotLeader);
  EXPECT_EQ(LeaderNamedBy(standby), "10.0.0.7:7700");
  rpc::PactError wire = ToPactError(standby);
  EXPECT_EQ(wire.code, rpc::ErrorCode::NOT_LEADER);
  ASSERT_TRUE(wire.__isset.leader);
  EXPECT_EQ(wire.leader, "10.0.0.7:7700");
  EXPECT_EQ(LeaderNamedBy(StatusFromRpc(wire.code, wire.message)), "10.0.0.7:7700");
  Status none_yet = NotLeaderStatus("s1", "");
  EXPECT_EQ(LeaderNamedBy(none_yet), "");
  EXPECT_FALSE(ToPactError(none_yet).__isset.leader);
  EXPECT_EQ(LeaderNamedBy(Status::Unavailable("the active is at 1.2.3.4:5")), "");
}

TEST(RpcConvertTest, EveryProtocolEnumMakesTheRoundTrip) {
  for (TxnState s : {TxnState::kActive, TxnState::kPreparing, TxnState::kCommitting,
                     TxnState::kCommitted, TxnState::kAborting, TxnState::kAborted}) {
    auto back = TxnStateFromRpc(TxnStateToRpc(s));
    ASSERT_TRUE(back.ok());
    EXPECT_EQ(*back, s) << TxnStateName(s);
  }
  EXPECT_EQ(TxnStateToRpc(TxnState::kActive), rpc::TxnState::ACTIVE);
  EXPECT_EQ(TxnStateToRpc(TxnState::kAborted), rpc::TxnState::ABORTED);
  for (Vote v : {Vote::kCommit, Vote::kAbort, Vote::kReadOnly}) {
    EXPECT_EQ(VoteFromRpc(VoteToRpc(v)), v) << VoteName(v);
  }
  for (Outcome o : {Outcome::kCommitted, Outcome::kAborted, Outcome::kActive}) {
    EXPECT_EQ(OutcomeFromRpc(OutcomeToRpc(o)), o) << OutcomeName(o);
  }
}

TEST(RpcConvertTest, UnknownWireValuesAreTakenTheSafeWay) {
  EXPECT_EQ(TxnStateFromRpc(static_cast<rpc::TxnState::type>(0)).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(TxnStateFromRpc(static_cast<rpc::TxnState::type>(7)).status().code(),
            StatusCode::kInvalidArgument);
  // An unknown vote commits nothing; an unknown outcome is asked again.
  EXPECT_EQ(VoteFromRpc(static_cast<rpc::Vote::type>(42)), Vote::kAbort);
  EXPECT_EQ(OutcomeFromRpc(static_cast<rpc::Outcome::type>(42)), Outcome::kActive);
}

}  // namespace
}  // namespace pact
