#include <gtest/gtest.h>

#include "common/crash_point.h"
#include "common/status.h"
#include "common/txn_id.h"

namespace pact {
namespace {

TEST(TxnIdTest, RoundTripsThroughText) {
  TxnId id{"coord-a", 7, 42};
  auto parsed = TxnId::Parse(id.ToString());
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  EXPECT_EQ(parsed->coordinator, "coord-a");
  EXPECT_EQ(parsed->epoch, 7);
  EXPECT_EQ(parsed->seq, 42);
}

TEST(TxnIdTest, MalformedIdsAreRejectedWithTheReason) {
  for (const char* bad : {"", "a", "a.1", "a.b.c", ".1.2", "a.0.1", "a.1.-2", "a b.1.2",
                          "a.1.2x"}) {
    auto parsed = TxnId::Parse(bad);
    EXPECT_FALSE(parsed.ok()) << bad;
    EXPECT_EQ(parsed.status().code(), StatusCode::kInvalidArgument) << bad;
  }
}

TEST(StatusTest, ResultCarriesValueOrStatus) {
  Result<int> good = 5;
  ASSERT_TRUE(good.ok());
  EXPECT_EQ(*good, 5);
  Result<int> bad = Status::NotFound("no such thing");
  EXPECT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().ToString(), "NOT_FOUND: no such thing");
}

TEST(CrashPointTest, UnknownNamesAndBadCountsAreRefused) {
  EXPECT_FALSE(ArmCrashPoint("no_such_point").ok());
  EXPECT_FALSE(ArmCrashPoint("after_decision_logged:0").ok());
  EXPECT_FALSE(ArmCrashPoint("after_decision_logged:x").ok());
  EXPECT_TRUE(ArmCrashPoint("").ok());
}

TEST(CrashPointDeathTest, CrashesOnTheCountedPassWithTheCrashExitCode) {
  EXPECT_EXIT(
      {
        if (!ArmCrashPoint("after_decision_logged:3").ok()) _exit(1);
        CrashPoint("after_decision_logged");
        CrashPoint("after_begin");  // another point never fires
        CrashPoint("after_decision_logged");
        CrashPoint("after_decision_logged");
        _exit(0);
      },
      ::testing::ExitedWithCode(kCrashExitCode), "crash point after_decision_logged");
}

}  // namespace
}  // namespace pact
