#include "storage/append_rate.h"

#include <gtest/gtest.h>

namespace runnel {
namespace {

TEST(AppendRate, NothingAppendedIsZero) {
  AppendRate rate;
  EXPECT_EQ(rate.last_minute(123'456).records, 0u);
  EXPECT_EQ(rate.last_minute(123'456).bytes, 0u);
}

TEST(AppendRate, ASteadyRateReadsAsItsPerMinuteFigure) {
  AppendRate rate;
  // 100 records (10 KB) a second for two minutes.
  for (uint64_t s = 0; s < 120; s++) rate.record(1'000'000 + s * 1000, 100, 10'000);
  const auto m = rate.last_minute(1'000'000 + 119'999);
  EXPECT_NEAR(static_cast<double>(m.records), 6000.0, 6000.0 * 0.03);
  EXPECT_NEAR(static_cast<double>(m.bytes), 600'000.0, 600'000.0 * 0.03);
}

TEST(AppendRate, OldAppendsAgeOut) {
  AppendRate rate;
  rate.record(50'000, 500, 5000);
  EXPECT_GT(rate.last_minute(55'000).records, 0u);
  EXPECT_GT(rate.last_minute(105'000).records, 0u) << "still within the last 50-60 s";
  EXPECT_EQ(rate.last_minute(120'000).records, 0u) << "over a minute old";
  // A new append after a long pause does not resurrect stale buckets.
  rate.record(1'000'000, 1, 10);
  const auto m = rate.last_minute(1'009'999);
  EXPECT_LE(m.records, 2u);
  EXPECT_LE(m.bytes, 20u);
}

}  // namespace
}  // namespace runnel
