// The client's side of a read: checksums, effective timestamps, skipping
// records below the start, and conversions of configs both ways.

#include "proto/client/convert.h"

#include <gtest/gtest.h>

#include "proto/records.h"

namespace runnel::client {
namespace {

wire::Batch batch_of(const PayloadBuilder& p, uint64_t base_seq, uint64_t first_ts, uint64_t arrival_ts) {
  wire::Batch b;
  b.base_seq = base_seq;
  b.record_count = p.record_count();
  b.first_timestamp = first_ts;
  b.arrival_timestamp = arrival_ts;
  b.payload = p.bytes();
  b.payload_checksum = payload_checksum(p.bytes());
  return b;
}

TEST(ClientConvert, RecordsGetEffectiveTimestampsAndHeaders) {
  PayloadBuilder p;
  p.add(900, {{"k", "v"}, {"", ""}}, "a");  // The first record's effective time is the batch's.
  p.add(500, "b");                         // Below the one before: raised to it.
  p.add(0, "c");                           // None given: the arrival time.
  p.add(2000, "d");
  std::vector<Record> out;
  ASSERT_TRUE(append_records(batch_of(p, 10, 1000, 1500), 0, &out).ok());
  ASSERT_EQ(out.size(), 4u);
  EXPECT_EQ(out[0].seq_num, 10u);
  EXPECT_EQ(out[0].timestamp, 1000u);
  EXPECT_EQ(out[0].headers, (std::vector<Header>{{"k", "v"}, {"", ""}}));
  EXPECT_EQ(out[1].timestamp, 1000u);
  EXPECT_EQ(out[2].timestamp, 1500u);
  EXPECT_EQ(out[3].timestamp, 2000u);
  EXPECT_EQ(out[3].body, "d");
  EXPECT_EQ(out[3].seq_num, 13u);
}

TEST(ClientConvert, ArrivalModeGivesEveryRecordTheBatchTime) {
  PayloadBuilder p;
  p.add(5, "a");
  p.add(99999, "b");
  wire::Batch b = batch_of(p, 0, 777, 777);
  b.flags = 1;
  std::vector<Record> out;
  ASSERT_TRUE(append_records(b, 0, &out).ok());
  EXPECT_EQ(out[0].timestamp, 777u);
  EXPECT_EQ(out[1].timestamp, 777u);
}

TEST(ClientConvert, RecordsBelowTheStartAreSkipped) {
  PayloadBuilder p;
  for (int i = 0; i < 5; i++) p.add(0, std::to_string(i));
  std::vector<Record> out;
  ASSERT_TRUE(append_records(batch_of(p, 100, 1, 1), 103, &out).ok());
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0].seq_num, 103u);
  EXPECT_EQ(out[0].body, "3");
}

TEST(ClientConvert, BadBytesAreCorruptNeverData) {
  PayloadBuilder p;
  p.add(0, "hello");
  std::string flipped = p.bytes();
  flipped.back() ^= 1;
  wire::Batch b = batch_of(p, 0, 1, 1);
  b.payload = flipped;
  std::vector<Record> out;
  EXPECT_EQ(append_records(b, 0, &out).code(), ErrorCode::kCorrupt);
  // The checksum matches, but the bytes are not three records.
  b = batch_of(p, 0, 1, 1);
  b.record_count = 3;
  EXPECT_EQ(append_records(b, 0, &out).code(), ErrorCode::kCorrupt);
  EXPECT_TRUE(out.empty());
}

TEST(ClientConvert, ErrorNamesComeFromTheOneTable) {
  EXPECT_STREQ(error_code_name(ErrorCode::kSeqNumMismatch), "seq_num_mismatch");
  EXPECT_EQ(Status(ErrorCode::kNotFound, "no stream").to_string(), "not_found: no stream");
}

}  // namespace
}  // namespace runnel::client
