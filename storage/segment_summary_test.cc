#include "storage/segment_summary.h"

#include <gtest/gtest.h>

#include <string>

namespace runnel {
namespace {

SegmentSummary full_summary() {
  SegmentSummary s;
  s.batches = 12;
  s.durable_end = 1 << 20;
  s.tails[1] = {10, 1700, 4096};
  s.tails[9] = {3, 1800, 500};
  s.entries.push_back({1, 0, 0, 1600, 0});
  s.entries.push_back({9, 0, 8192, 1700, 0});
  s.controls = {"\x02\x01create", std::string()};
  s.holes = {{4096, 8192}};
  Relocation r;
  r.source = 4;
  r.streams.push_back({1, {{0, 12288, 1500, 0}, {5, 16384, 1550, 2000}}, 10, 1600, 4000});
  s.relocations.push_back(r);
  s.note_producer(1, 77, {1, 0, 4, 1600, 1650});
  s.note_producer(1, 77, {2, 4, 10, 1650, 1700});
  s.note_producer(9, 78, {1, 0, 3, 1700, 1800});
  return s;
}

TEST(SegmentSummary, RoundTripsEveryField) {
  const SegmentSummary s = full_summary();
  const std::string bytes = encode_segment_summary(42, s);
  SegmentSummary back;
  ASSERT_TRUE(decode_segment_summary(bytes, 42, &back));
  EXPECT_EQ(back, s);
}

TEST(SegmentSummary, BelongsToItsSegmentOnly) {
  const std::string bytes = encode_segment_summary(42, full_summary());
  SegmentSummary back;
  EXPECT_FALSE(decode_segment_summary(bytes, 43, &back));
}

TEST(SegmentSummary, EveryTruncationAndEveryFlippedByteIsRefused) {
  const std::string bytes = encode_segment_summary(42, full_summary());
  for (size_t n = 0; n < bytes.size(); n++) {
    SegmentSummary back;
    EXPECT_FALSE(decode_segment_summary(std::string_view(bytes).substr(0, n), 42, &back)) << "cut at " << n;
  }
  for (size_t i = 0; i < bytes.size(); i++) {
    std::string flipped = bytes;
    flipped[i] = static_cast<char>(flipped[i] ^ 0x10);
    SegmentSummary back;
    EXPECT_FALSE(decode_segment_summary(flipped, 42, &back)) << "byte " << i;
  }
}

TEST(SegmentSummary, KeepsTheLastWindowOfEachProducer) {
  SegmentSummary s;
  for (uint64_t seq = 1; seq <= kProducerWindow + 10; seq++) s.note_producer(1, 5, {seq, seq, seq + 1, 0, 0});
  s.note_producer(2, 5, {1, 0, 1, 0, 0});
  const auto& window = s.producers.at({1, 5});
  ASSERT_EQ(window.size(), kProducerWindow);
  EXPECT_EQ(window.front().producer_seq, 11u);
  EXPECT_EQ(window.back().producer_seq, kProducerWindow + 10);
  EXPECT_EQ(s.producers.at({2, 5}).size(), 1u) << "the same producer on another stream is another window";
  SegmentSummary back;
  ASSERT_TRUE(decode_segment_summary(encode_segment_summary(1, s), 1, &back));
  EXPECT_EQ(back, s);
}

}  // namespace
}  // namespace runnel
