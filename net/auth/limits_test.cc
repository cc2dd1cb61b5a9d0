#include "net/auth/limits.h"

#include <gtest/gtest.h>

namespace runnel::auth {
namespace {

TokenInfo limited(TokenLimits limits) {
  TokenInfo t;
  t.id = "app";
  t.ops = kOpRead | kOpAppend;
  t.limits = limits;
  return t;
}

constexpr uint64_t kSecond = 1'000'000;

TEST(TokenMeters, AppendsPassUntilASecondsWorthThenWaitForTheDebt) {
  TokenMeters meters;
  const TokenInfo t = limited({.append_records_per_s = 100});
  uint64_t now = 10 * kSecond;
  EXPECT_TRUE(meters.admit_append(t, 60, 0, now).is_ok());
  EXPECT_TRUE(meters.admit_append(t, 60, 0, now).is_ok());  // Level 40 > 0: admitted, now owes 20.
  Status s = meters.admit_append(t, 1, 0, now);
  EXPECT_EQ(s.code(), ErrorCode::kThrottled);
  EXPECT_EQ(s.detail(), 200u);  // 20 records at 100/s.
  EXPECT_NE(s.message().find("retry in 200 ms"), std::string::npos) << s.message();
  now += 200'000;
  EXPECT_TRUE(meters.admit_append(t, 1, 0, now).is_ok());
}

TEST(TokenMeters, OneRequestLargerThanASecondStillGoesThrough) {
  TokenMeters meters;
  const TokenInfo t = limited({.append_bytes_per_s = 1000});
  EXPECT_TRUE(meters.admit_append(t, 1, 5000, kSecond).is_ok());
  EXPECT_EQ(meters.admit_append(t, 1, 1, kSecond).detail(), 4000u);
  EXPECT_TRUE(meters.admit_append(t, 1, 1, 5 * kSecond + 1).is_ok());
}

TEST(TokenMeters, ReadsAreChargedAfterwardsAndRefusedWhileInDebt) {
  TokenMeters meters;
  const TokenInfo t = limited({.read_bytes_per_s = 1000, .read_records_per_s = 10});
  EXPECT_TRUE(meters.admit_read(t, kSecond).is_ok());
  meters.charge_read(t, 5, 3000, kSecond);
  Status s = meters.admit_read(t, kSecond);
  EXPECT_EQ(s.code(), ErrorCode::kThrottled);
  EXPECT_EQ(s.detail(), 2000u);
  EXPECT_TRUE(meters.admit_read(t, 3 * kSecond).is_ok());
  // Appends are metered apart: this token has no append limit.
  EXPECT_TRUE(meters.admit_append(t, 1000, 1 << 20, 3 * kSecond).is_ok());
}

TEST(TokenMeters, TheBucketNeverHoldsMoreThanASecond) {
  TokenMeters meters;
  const TokenInfo t = limited({.append_records_per_s = 10});
  EXPECT_TRUE(meters.admit_append(t, 10, 0, kSecond).is_ok());
  // An hour idle refills one second's worth, not an hour's.
  EXPECT_TRUE(meters.admit_append(t, 11, 0, 3600 * kSecond).is_ok());
  EXPECT_EQ(meters.admit_append(t, 1, 0, 3600 * kSecond).code(), ErrorCode::kThrottled);
  EXPECT_EQ(meters.size(), 1u);
}

}  // namespace
}  // namespace runnel::auth
