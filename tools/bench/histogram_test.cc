// The load generator's latency histogram: exact where it says it is, within
// 1/32 elsewhere, never below the true percentile, and mergeable.

#include "tools/bench/histogram.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <vector>

#include "core/test_seed.h"

namespace runnel::bench {
namespace {

TEST(LatencyHistogram, SmallValuesAndTheMaxAreExact) {
  LatencyHistogram h;
  EXPECT_EQ(h.percentile(0.5), 0u);
  for (uint64_t v = 0; v < 64; v++) h.record(v);
  EXPECT_EQ(h.percentile(0.5), 31u);
  EXPECT_EQ(h.percentile(1.0), 63u);
  h.record(123456789);
  EXPECT_EQ(h.max(), 123456789u);
  EXPECT_EQ(h.percentile(1.0), 123456789u);
  EXPECT_EQ(h.count(), 65u);
}

TEST(LatencyHistogram, PercentilesAreWithinAThirtySecondAndNeverLow) {
  const uint64_t seed = test_seed();
  SCOPED_TRACE(seed_trace(seed));
  std::mt19937_64 rng(seed);
  std::lognormal_distribution<double> latency(7.0, 1.5);  // Long-tailed, like real acks.
  LatencyHistogram h;
  std::vector<uint64_t> values;
  for (int i = 0; i < 200000; i++) {
    const auto v = static_cast<uint64_t>(latency(rng));
    values.push_back(v);
    h.record(v);
  }
  std::sort(values.begin(), values.end());
  for (double p : {0.5, 0.9, 0.99, 0.999}) {
    const uint64_t exact = values[static_cast<size_t>(p * static_cast<double>(values.size())) - 1];
    const uint64_t got = h.percentile(p);
    EXPECT_GE(got, exact) << p;
    EXPECT_LE(static_cast<double>(got), static_cast<double>(exact) * (1 + 1.0 / 32) + 1) << p;
  }
}

TEST(LatencyHistogram, MergingEqualsRecordingEverything) {
  LatencyHistogram a, b, all;
  for (uint64_t v = 1; v < 100000; v += 7) {
    (v % 2 ? a : b).record(v);
    all.record(v);
  }
  a.merge(b);
  EXPECT_EQ(a.count(), all.count());
  EXPECT_EQ(a.max(), all.max());
  for (double p : {0.1, 0.5, 0.99}) EXPECT_EQ(a.percentile(p), all.percentile(p));
}

}  // namespace
}  // namespace runnel::bench
