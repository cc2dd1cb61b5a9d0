// EffectiveTimestamps: the derivation of storage/FORMAT.md ("Payload") that
// readers (the client library, the admin REST API) share.

#include "proto/records.h"

#include <gtest/gtest.h>

#include <vector>

namespace runnel {
namespace {

std::vector<uint64_t> derive(uint64_t first, uint64_t arrival, bool arrival_mode, const std::vector<uint64_t>& given) {
  EffectiveTimestamps timestamps(first, arrival, arrival_mode);
  std::vector<uint64_t> out;
  for (uint64_t t : given) out.push_back(timestamps.next(t));
  return out;
}

TEST(EffectiveTimestamps, FirstRecordGetsTheBatchFirstTimestamp) {
  EXPECT_EQ(derive(1000, 5000, false, {7}), (std::vector<uint64_t>{1000}));
}

TEST(EffectiveTimestamps, LaterRecordsKeepTheirOwnAndNeverDecrease) {
  EXPECT_EQ(derive(1000, 5000, false, {1000, 1200, 1100, 3000}), (std::vector<uint64_t>{1000, 1200, 1200, 3000}));
}

TEST(EffectiveTimestamps, RecordsWithoutOneGetTheArrivalTime) {
  EXPECT_EQ(derive(1000, 5000, false, {1000, 0, 4000, 0}), (std::vector<uint64_t>{1000, 5000, 5000, 5000}));
}

TEST(EffectiveTimestamps, ArrivalModeGivesEveryRecordTheFirstTimestamp) {
  EXPECT_EQ(derive(1000, 5000, true, {1, 9000, 0}), (std::vector<uint64_t>{1000, 1000, 1000}));
}

}  // namespace
}  // namespace runnel
