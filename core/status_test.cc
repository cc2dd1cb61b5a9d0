#include "core/status.h"

#include <gtest/gtest.h>

namespace runnel {
namespace {

TEST(Status, DefaultIsOk) {
  Status s;
  EXPECT_TRUE(s.is_ok());
  EXPECT_EQ(s.to_string(), "ok");
}

TEST(Status, ErrorCarriesCodeAndMessage) {
  Status s(ErrorCode::kInvalidArgument, "shards must be 0..256");
  EXPECT_FALSE(s.is_ok());
  EXPECT_EQ(s.code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(s.to_string(), "invalid_argument: shards must be 0..256");
}

TEST(Status, EveryCodeHasAName) {
  for (int c = 0; c <= static_cast<int>(ErrorCode::kThrottled); c++) {
    EXPECT_NE(error_code_name(static_cast<ErrorCode>(c)), "unknown") << c;
  }
}

TEST(Result, HoldsValueOrStatus) {
  Result<int> good(7);
  ASSERT_TRUE(good.is_ok());
  EXPECT_EQ(*good, 7);
  Result<int> bad(Status(ErrorCode::kNotFound, "no such stream"));
  ASSERT_FALSE(bad.is_ok());
  EXPECT_EQ(bad.status().code(), ErrorCode::kNotFound);
}

TEST(ResultDeathTest, ValueOfErrorAborts) {
  Result<int> bad(Status(ErrorCode::kNotFound, "x"));
  EXPECT_DEATH((void)bad.value(), "assertion failed");
}

}  // namespace
}  // namespace runnel
