#include "storage/batch.h"

#include <gtest/gtest.h>

#include <random>

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/test_seed.h"

namespace runnel {
namespace {

constexpr uint64_t kSegmentId = 7;

using Headers = std::vector<std::pair<std::string, std::string>>;

std::string varint(uint64_t value) {
  std::string out;
  put_varint(&out, value);
  return out;
}

// A header that describes `payload` honestly and is sealed for kSegmentId.
// Timestamps stay 0, which is valid for any record count.
BatchHeader header_for(std::string_view payload, uint32_t record_count) {
  BatchHeader header;
  header.payload_bytes = static_cast<uint32_t>(payload.size());
  header.payload_checksum = payload_checksum(payload);
  header.stream_id = 42;
  header.base_seq = 1000;
  header.record_count = record_count;
  seal_header(&header, kSegmentId);
  return header;
}

// One record written field by field, so tests can make the fields lie.
// `record_bytes_delta` is added to the true length of the rest of the record.
std::string raw_record(uint64_t timestamp, const Headers& headers, std::string_view body,
                       int64_t record_bytes_delta = 0) {
  std::string rest = varint(timestamp) + varint(headers.size());
  for (const auto& [name, value] : headers) rest += varint(name.size()) + name + varint(value.size()) + value;
  rest += varint(body.size());
  rest += body;
  return varint(static_cast<uint64_t>(static_cast<int64_t>(rest.size()) + record_bytes_delta)) + rest;
}

struct Decoded {
  uint64_t timestamp = 0;
  Headers headers;
  std::string body;
  bool operator==(const Decoded&) const = default;
};

// Decodes every record; fails the test on a decode error.
std::vector<Decoded> decode_all(std::string_view payload, uint32_t record_count, const BatchLimits& limits = {}) {
  std::vector<Decoded> out;
  RecordIterator it(payload, record_count, limits);
  RecordView view;
  while (it.next(&view)) {
    Decoded record;
    record.timestamp = view.timestamp;
    record.body = std::string(view.body);
    HeaderIterator headers(view.headers, view.header_count);
    RecordHeader header;
    while (headers.next(&header)) record.headers.emplace_back(std::string(header.name), std::string(header.value));
    out.push_back(std::move(record));
  }
  EXPECT_TRUE(it.status().is_ok()) << it.status().to_string();
  return out;
}

// Walks a payload to the end and returns the iterator's final status.
Status iterate_status(std::string_view payload, uint32_t record_count, const BatchLimits& limits = {}) {
  RecordIterator it(payload, record_count, limits);
  RecordView view;
  while (it.next(&view)) {
  }
  return it.status();
}

PayloadBuilder builder_with_timestamps(const std::vector<uint64_t>& timestamps) {
  PayloadBuilder builder;
  for (uint64_t ts : timestamps) builder.add(ts, "body");
  return builder;
}

// Stamps a batch of records with these client timestamps and returns the
// effective timestamps derived from the stamped header.
std::vector<uint64_t> stamp_and_derive(const std::vector<uint64_t>& timestamps, uint64_t arrival_ms,
                                       uint64_t previous_last, Timestamping mode, BatchHeader* header_out = nullptr) {
  PayloadBuilder builder = builder_with_timestamps(timestamps);
  BatchHeader header = header_for(builder.bytes(), builder.record_count());
  Status status = stamp_batch(&header, builder.bytes(), arrival_ms, previous_last, mode, BatchLimits{});
  EXPECT_TRUE(status.is_ok()) << status.to_string();
  std::vector<uint64_t> eff;
  status = effective_timestamps(header, builder.bytes(), BatchLimits{}, &eff);
  EXPECT_TRUE(status.is_ok()) << status.to_string();
  if (header_out != nullptr) *header_out = header;
  return eff;
}

// ---- Varints ----

TEST(Batch, VarintRoundTripsEdgeValues) {
  for (uint64_t value : {uint64_t{0}, uint64_t{1}, uint64_t{127}, uint64_t{128}, uint64_t{16383}, uint64_t{16384},
                         uint64_t{1} << 32, uint64_t{1} << 63, UINT64_MAX}) {
    std::string encoded = varint(value);
    std::string_view in = encoded;
    uint64_t decoded = 0;
    ASSERT_TRUE(get_varint(&in, &decoded)) << value;
    EXPECT_EQ(decoded, value);
    EXPECT_TRUE(in.empty()) << value;
  }
}

TEST(Batch, VarintEncodesLeb128Bytes) {
  EXPECT_EQ(varint(0), std::string("\x00", 1));
  EXPECT_EQ(varint(127), "\x7f");
  EXPECT_EQ(varint(128), "\x80\x01");
  EXPECT_EQ(varint(uint64_t{1} << 63), std::string(9, '\x80') + "\x01");
  EXPECT_EQ(varint(UINT64_MAX), std::string(9, '\xff') + "\x01");
}

TEST(Batch, VarintReadsOnlyItsOwnBytes) {
  std::string bytes = varint(300) + "rest";
  std::string_view in = bytes;
  uint64_t value = 0;
  ASSERT_TRUE(get_varint(&in, &value));
  EXPECT_EQ(value, 300u);
  EXPECT_EQ(in, "rest");
}

TEST(Batch, VarintRejectsEmptyInput) {
  std::string_view in;
  uint64_t value = 0;
  EXPECT_FALSE(get_varint(&in, &value));
}

TEST(Batch, VarintRejectsTruncatedAndLeavesInputUnchanged) {
  for (std::string bytes : {std::string("\x80"), std::string("\xff\xff"), std::string(9, '\xff')}) {
    std::string_view in = bytes;
    uint64_t value = 0;
    EXPECT_FALSE(get_varint(&in, &value)) << bytes.size();
    EXPECT_EQ(in.size(), bytes.size());
  }
}

TEST(Batch, VarintRejectsElevenBytes) {
  // Ten continuation bytes then a terminator: one byte longer than any uint64_t needs.
  std::string bytes = std::string(10, '\x80') + std::string("\x00", 1);
  std::string_view in = bytes;
  uint64_t value = 0;
  EXPECT_FALSE(get_varint(&in, &value));
}

TEST(Batch, VarintRejectsOverflowInTenthByte) {
  std::string bytes = std::string(9, '\xff') + "\x02";  // Would be 2^64 + (2^63 - 1).
  std::string_view in = bytes;
  uint64_t value = 0;
  EXPECT_FALSE(get_varint(&in, &value));
}

TEST(Batch, VarintAcceptsNonMinimalEncoding) {
  std::string bytes("\x80\x00", 2);
  std::string_view in = bytes;
  uint64_t value = 1;
  ASSERT_TRUE(get_varint(&in, &value));
  EXPECT_EQ(value, 0u);
  EXPECT_TRUE(in.empty());
}

// ---- Building and iterating ----

TEST(Batch, BuildThenIterateRoundTripsRecordsWithHeaders) {
  PayloadBuilder builder;
  builder.add(10, {{"content-type", "json"}, {"trace", "abc"}}, R"({"a":1})");
  builder.add(0, {}, "plain");
  builder.add(UINT64_MAX, {{"", ""}}, std::string("\x00\xff", 2));
  std::vector<Decoded> want = {
      {10, {{"content-type", "json"}, {"trace", "abc"}}, R"({"a":1})"},
      {0, {}, "plain"},
      {UINT64_MAX, {{"", ""}}, std::string("\x00\xff", 2)},
  };
  EXPECT_EQ(builder.record_count(), 3u);
  EXPECT_EQ(decode_all(builder.bytes(), builder.record_count()), want);
}

TEST(Batch, BuildThenIterateRoundTripsEmptyBodies) {
  PayloadBuilder builder;
  builder.add(1, "");
  builder.add(2, {{"k", "v"}}, "");
  std::vector<Decoded> want = {{1, {}, ""}, {2, {{"k", "v"}}, ""}};
  EXPECT_EQ(decode_all(builder.bytes(), builder.record_count()), want);
}

TEST(Batch, SmallestRecordIsFourBytes) {
  // verify_header's lower bound on payload_bytes relies on this.
  PayloadBuilder builder;
  builder.add(0, "");
  EXPECT_EQ(builder.bytes().size(), 4u);
}

TEST(Batch, RecordWith64HeadersRoundTrips) {
  Headers headers;
  for (int i = 0; i < 64; i++) headers.emplace_back("h" + std::to_string(i), std::string(i, 'x'));
  PayloadBuilder builder;
  builder.add(5, headers, "body");
  std::vector<Decoded> want = {{5, headers, "body"}};
  EXPECT_EQ(decode_all(builder.bytes(), 1), want);
}

TEST(Batch, RecordWith65HeadersIsTooLarge) {
  Headers headers(65, {"n", "v"});
  PayloadBuilder builder;
  builder.add(5, headers, "body");
  EXPECT_EQ(iterate_status(builder.bytes(), 1).code(), ErrorCode::kTooLarge);
}

TEST(Batch, BuilderClearStartsOver) {
  PayloadBuilder builder;
  builder.add(1, "a");
  builder.clear();
  builder.add(2, "b");
  std::vector<Decoded> want = {{2, {}, "b"}};
  EXPECT_EQ(builder.record_count(), 1u);
  EXPECT_EQ(decode_all(builder.bytes(), 1), want);
}

TEST(Batch, IteratorRejectsRecordCountAboveMax) {
  BatchLimits limits;
  limits.records_max = 2;
  PayloadBuilder builder = builder_with_timestamps({1, 2, 3});
  EXPECT_EQ(iterate_status(builder.bytes(), 3, limits).code(), ErrorCode::kTooLarge);
}

TEST(Batch, IteratorRejectsFewerRecordsThanCount) {
  PayloadBuilder builder = builder_with_timestamps({1, 2});
  EXPECT_EQ(iterate_status(builder.bytes(), 3).code(), ErrorCode::kInvalidArgument);
}

TEST(Batch, IteratorRejectsTrailingBytes) {
  PayloadBuilder builder = builder_with_timestamps({1, 2});
  EXPECT_EQ(iterate_status(builder.bytes() + "x", 2).code(), ErrorCode::kInvalidArgument);
}

TEST(Batch, IteratorRejectsRecordBytesAboveFields) {
  // One byte of slack, covered by a trailing byte so the length stays in bounds.
  std::string payload = raw_record(1, {}, "body", +1) + "x";
  EXPECT_EQ(iterate_status(payload, 1).code(), ErrorCode::kInvalidArgument);
}

TEST(Batch, IteratorRejectsRecordBytesBelowFields) {
  std::string payload = raw_record(1, {}, "body", -1);
  EXPECT_EQ(iterate_status(payload, 1).code(), ErrorCode::kInvalidArgument);
}

TEST(Batch, IteratorRejectsRecordBytesPastPayload) {
  std::string payload = raw_record(1, {}, "body", +100);
  EXPECT_EQ(iterate_status(payload, 1).code(), ErrorCode::kInvalidArgument);
}

TEST(Batch, IteratorRejectsRecordAboveRecordBytesMax) {
  BatchLimits limits;
  limits.record_bytes_max = 8;
  PayloadBuilder builder;
  builder.add(1, "123456789");
  EXPECT_EQ(iterate_status(builder.bytes(), 1, limits).code(), ErrorCode::kTooLarge);
}

TEST(Batch, IteratorRejectsHugeRecordLengthWithoutReading) {
  std::string payload = varint(UINT64_MAX) + "abc";
  EXPECT_EQ(iterate_status(payload, 1).code(), ErrorCode::kTooLarge);
}

TEST(Batch, IteratorRejectsHeaderLengthOverrunningRecord) {
  // name_len 200 inside a record of a few bytes, followed by plenty of payload
  // that belongs to no record: the length must be checked against the record.
  std::string rest = varint(1) + varint(1) + varint(200) + "n";
  std::string payload = varint(rest.size()) + rest + std::string(300, 'z');
  EXPECT_EQ(iterate_status(payload, 1).code(), ErrorCode::kInvalidArgument);
}

TEST(Batch, IteratorRejectsTruncatedTimestamp) {
  std::string payload = varint(1) + "\x80";
  EXPECT_EQ(iterate_status(payload, 1).code(), ErrorCode::kInvalidArgument);
}

TEST(Batch, IteratorStaysStoppedAfterError) {
  PayloadBuilder builder = builder_with_timestamps({1});
  std::string payload = raw_record(1, {}, "x", -1) + builder.bytes();
  RecordIterator it(payload, 2, BatchLimits{});
  RecordView view;
  EXPECT_FALSE(it.next(&view));
  EXPECT_FALSE(it.status().is_ok());
  EXPECT_FALSE(it.next(&view));
}

// ---- Header: seal, verify, layout ----

TEST(Batch, SealedHeaderVerifies) {
  PayloadBuilder builder = builder_with_timestamps({1, 2});
  BatchHeader header = header_for(builder.bytes(), 2);
  Status status = verify_header(header, kSegmentId, BatchLimits{});
  EXPECT_TRUE(status.is_ok()) << status.to_string();
}

TEST(Batch, HeaderEncodesToDocumentedLayout) {
  BatchHeader header;
  header.payload_bytes = 0x11223344;
  header.record_count = 3;
  header.flags = kBatchFlagArrivalTimestamps;
  std::string bytes;
  encode_header(header, &bytes);
  ASSERT_EQ(bytes.size(), kBatchHeaderBytes);
  EXPECT_EQ(bytes.substr(0, 4), "RNB1");
  EXPECT_EQ(bytes.substr(4, 4), "\x44\x33\x22\x11");
  EXPECT_EQ(bytes.substr(64, 4), std::string("\x03\x00\x00\x00", 4));
  EXPECT_EQ(bytes.substr(68, 2), std::string("\x01\x00", 2));
}

TEST(Batch, HeaderEncodeDecodeRoundTrips) {
  PayloadBuilder builder = builder_with_timestamps({1});
  BatchHeader header = header_for(builder.bytes(), 1);
  std::string bytes = "x";  // Unaligned on purpose: decode must not care.
  encode_header(header, &bytes);
  BatchHeader decoded;
  ASSERT_TRUE(decode_header(std::string_view(bytes).substr(1), &decoded).is_ok());
  EXPECT_EQ(std::memcmp(&decoded, &header, sizeof(header)), 0);
}

TEST(Batch, DecodeHeaderRejectsShortInput) {
  std::string bytes(kBatchHeaderBytes - 1, '\0');
  BatchHeader header;
  EXPECT_EQ(decode_header(bytes, &header).code(), ErrorCode::kInvalidArgument);
}

TEST(Batch, EveryBitFlipOfSealedHeaderFailsVerify) {
  PayloadBuilder builder = builder_with_timestamps({1, 2, 3});
  BatchHeader header = header_for(builder.bytes(), 3);
  std::string bytes;
  encode_header(header, &bytes);
  for (size_t bit = 0; bit < kBatchHeaderBytes * 8; bit++) {
    std::string flipped = bytes;
    flipped[bit / 8] = static_cast<char>(flipped[bit / 8] ^ (1 << (bit % 8)));
    BatchHeader decoded;
    ASSERT_TRUE(decode_header(flipped, &decoded).is_ok());
    EXPECT_EQ(verify_header(decoded, kSegmentId, BatchLimits{}).code(), ErrorCode::kCorrupt) << "bit " << bit;
  }
}

TEST(Batch, WrongSegmentIdFailsVerify) {
  PayloadBuilder builder = builder_with_timestamps({1});
  BatchHeader header = header_for(builder.bytes(), 1);
  EXPECT_EQ(verify_header(header, kSegmentId + 1, BatchLimits{}).code(), ErrorCode::kCorrupt);
}

TEST(Batch, VerifyRejectsWrongMagicEvenWhenSealed) {
  PayloadBuilder builder = builder_with_timestamps({1});
  BatchHeader header = header_for(builder.bytes(), 1);
  header.magic = 0x32424E52;  // "RNB2"
  seal_header(&header, kSegmentId);
  EXPECT_EQ(verify_header(header, kSegmentId, BatchLimits{}).code(), ErrorCode::kCorrupt);
}

TEST(Batch, VerifyRejectsBadChecksum) {
  PayloadBuilder builder = builder_with_timestamps({1});
  BatchHeader header = header_for(builder.bytes(), 1);
  header.header_checksum ^= 1;
  EXPECT_EQ(verify_header(header, kSegmentId, BatchLimits{}).code(), ErrorCode::kCorrupt);
}

TEST(Batch, VerifyRejectsUnsealedHeader) {
  BatchHeader header;
  header.record_count = 1;
  header.payload_bytes = 4;
  EXPECT_EQ(verify_header(header, kSegmentId, BatchLimits{}).code(), ErrorCode::kCorrupt);
}

// The field checks below reseal after editing, so only the field is at fault.
Status verify_edited(void (*edit)(BatchHeader*), const BatchLimits& limits = {}) {
  PayloadBuilder builder = builder_with_timestamps({1, 2});
  BatchHeader header = header_for(builder.bytes(), 2);
  edit(&header);
  seal_header(&header, kSegmentId);
  return verify_header(header, kSegmentId, limits);
}

TEST(Batch, VerifyRejectsZeroRecords) {
  EXPECT_EQ(verify_edited([](BatchHeader* h) { h->record_count = 0; }).code(), ErrorCode::kInvalidArgument);
}

TEST(Batch, VerifyRejectsRecordCountAboveMax) {
  BatchLimits limits;
  limits.records_max = 1;
  EXPECT_EQ(verify_edited([](BatchHeader*) {}, limits).code(), ErrorCode::kTooLarge);
}

TEST(Batch, VerifyAcceptsRecordCountAtMax) {
  BatchLimits limits;
  limits.records_max = 2;
  EXPECT_TRUE(verify_edited([](BatchHeader*) {}, limits).is_ok());
}

TEST(Batch, VerifyRejectsPayloadAboveMax) {
  EXPECT_EQ(verify_edited([](BatchHeader* h) { h->payload_bytes = BatchLimits{}.payload_bytes_max + 1; }).code(),
            ErrorCode::kTooLarge);
}

TEST(Batch, VerifyRejectsPayloadTooSmallForRecords) {
  // Two records need at least 8 bytes.
  EXPECT_EQ(verify_edited([](BatchHeader* h) { h->payload_bytes = 7; }).code(), ErrorCode::kInvalidArgument);
}

TEST(Batch, VerifyAcceptsPayloadAtMinimumForRecords) {
  EXPECT_TRUE(verify_edited([](BatchHeader* h) { h->payload_bytes = 8; }).is_ok());
}

TEST(Batch, VerifyRejectsPayloadSmallerThanRecordCount) {
  EXPECT_EQ(verify_edited([](BatchHeader* h) {
              h->record_count = 1000;
              h->payload_bytes = 999;
            }).code(),
            ErrorCode::kInvalidArgument);
}

TEST(Batch, VerifyRejectsLastTimestampBeforeFirst) {
  EXPECT_EQ(verify_edited([](BatchHeader* h) {
              h->first_timestamp = 10;
              h->last_timestamp = 9;
            }).code(),
            ErrorCode::kInvalidArgument);
}

TEST(Batch, VerifyRejectsNonzeroReserved) {
  EXPECT_EQ(verify_edited([](BatchHeader* h) { h->reserved = 1; }).code(), ErrorCode::kInvalidArgument);
}

TEST(Batch, VerifyRejectsUnknownFlags) {
  EXPECT_EQ(verify_edited([](BatchHeader* h) { h->flags = 8; }).code(), ErrorCode::kInvalidArgument);
}

TEST(Batch, VerifyRejectsArrivalFlagWithSpreadTimestamps) {
  EXPECT_EQ(verify_edited([](BatchHeader* h) {
              h->flags = kBatchFlagArrivalTimestamps;
              h->first_timestamp = 10;
              h->last_timestamp = 11;
            }).code(),
            ErrorCode::kInvalidArgument);
}

TEST(Batch, VerifyRejectsOneRecordWithSpreadTimestamps) {
  EXPECT_EQ(verify_edited([](BatchHeader* h) {
              h->record_count = 1;
              h->first_timestamp = 10;
              h->last_timestamp = 11;
            }).code(),
            ErrorCode::kInvalidArgument);
}

// ---- Payload verification ----

TEST(Batch, VerifyPayloadAcceptsBuiltBatch) {
  PayloadBuilder builder;
  builder.add(1, {{"a", "b"}}, "x");
  builder.add(2, "");
  BatchHeader header = header_for(builder.bytes(), 2);
  Status status = verify_payload(header, builder.bytes(), BatchLimits{});
  EXPECT_TRUE(status.is_ok()) << status.to_string();
}

TEST(Batch, VerifyPayloadRejectsChecksumMismatch) {
  PayloadBuilder builder = builder_with_timestamps({1, 2});
  BatchHeader header = header_for(builder.bytes(), 2);
  std::string payload = builder.bytes();
  payload.back() ^= 1;  // Same size, still decodes: only the checksum can tell.
  EXPECT_EQ(verify_payload(header, payload, BatchLimits{}).code(), ErrorCode::kCorrupt);
}

TEST(Batch, VerifyPayloadRejectsSizeOtherThanHeader) {
  PayloadBuilder builder = builder_with_timestamps({1, 2});
  BatchHeader header = header_for(builder.bytes(), 2);
  std::string_view truncated = std::string_view(builder.bytes()).substr(0, builder.bytes().size() - 1);
  EXPECT_EQ(verify_payload(header, truncated, BatchLimits{}).code(), ErrorCode::kInvalidArgument);
}

TEST(Batch, VerifyPayloadRejectsTruncatedPayloadWithMatchingChecksum) {
  // A client that checksummed a truncated payload: the checksum passes, decoding must not.
  PayloadBuilder builder = builder_with_timestamps({1, 2});
  std::string truncated = builder.bytes().substr(0, builder.bytes().size() - 1);
  BatchHeader header = header_for(truncated, 2);
  EXPECT_EQ(verify_payload(header, truncated, BatchLimits{}).code(), ErrorCode::kInvalidArgument);
}

TEST(Batch, VerifyPayloadRejectsTrailingBytes) {
  PayloadBuilder builder = builder_with_timestamps({1, 2});
  std::string payload = builder.bytes() + "extra";
  BatchHeader header = header_for(payload, 2);
  EXPECT_EQ(verify_payload(header, payload, BatchLimits{}).code(), ErrorCode::kInvalidArgument);
}

TEST(Batch, VerifyPayloadRejectsRecordBytesLying) {
  std::string payload = raw_record(1, {{"k", "v"}}, "body", -2) + "xy";
  BatchHeader header = header_for(payload, 1);
  EXPECT_EQ(verify_payload(header, payload, BatchLimits{}).code(), ErrorCode::kInvalidArgument);
}

TEST(Batch, VerifyPayloadRejectsZeroRecords) {
  BatchHeader header = header_for("", 0);
  EXPECT_EQ(verify_payload(header, "", BatchLimits{}).code(), ErrorCode::kInvalidArgument);
}

// ---- Timestamps ----

TEST(Batch, StampKeepsIncreasingClientTimestamps) {
  BatchHeader header;
  std::vector<uint64_t> eff = stamp_and_derive({10, 20, 30}, 100, 0, Timestamping::kClientPrefer, &header);
  EXPECT_EQ(eff, (std::vector<uint64_t>{10, 20, 30}));
  EXPECT_EQ(header.first_timestamp, 10u);
  EXPECT_EQ(header.last_timestamp, 30u);
  EXPECT_EQ(header.arrival_timestamp, 100u);
  EXPECT_EQ(header.flags & kBatchFlagArrivalTimestamps, 0);
}

TEST(Batch, StampRaisesDecreasingTimestampsToPrevious) {
  std::vector<uint64_t> eff = stamp_and_derive({30, 20, 10}, 100, 0, Timestamping::kClientPrefer);
  EXPECT_EQ(eff, (std::vector<uint64_t>{30, 30, 30}));
}

TEST(Batch, StampFillsMissingWithArrivalUnderClientPrefer) {
  std::vector<uint64_t> eff = stamp_and_derive({10, 0, 20}, 15, 0, Timestamping::kClientPrefer);
  EXPECT_EQ(eff, (std::vector<uint64_t>{10, 15, 20}));
}

TEST(Batch, StampFillsMissingFirstWithArrivalUnderClientPrefer) {
  std::vector<uint64_t> eff = stamp_and_derive({0, 5}, 100, 0, Timestamping::kClientPrefer);
  EXPECT_EQ(eff, (std::vector<uint64_t>{100, 100}));
}

TEST(Batch, StampAcceptsAllGivenUnderClientRequire) {
  std::vector<uint64_t> eff = stamp_and_derive({10, 20}, 100, 0, Timestamping::kClientRequire);
  EXPECT_EQ(eff, (std::vector<uint64_t>{10, 20}));
}

TEST(Batch, StampRejectsMissingUnderClientRequireAndLeavesHeader) {
  PayloadBuilder builder = builder_with_timestamps({10, 0});
  BatchHeader header = header_for(builder.bytes(), 2);
  const BatchHeader before = header;
  Status status = stamp_batch(&header, builder.bytes(), 100, 0, Timestamping::kClientRequire, BatchLimits{});
  EXPECT_EQ(status.code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(std::memcmp(&header, &before, sizeof(header)), 0);
}

TEST(Batch, StampKeepsClientTimestampsWithinTheSkewAllowance) {
  const uint64_t arrival = 1'000'000;
  std::vector<uint64_t> eff =
      stamp_and_derive({arrival - 5, arrival + kFutureTimestampSkewMs}, arrival, 0, Timestamping::kClientPrefer);
  EXPECT_EQ(eff, (std::vector<uint64_t>{arrival - 5, arrival + kFutureTimestampSkewMs}));
}

TEST(Batch, StampCapsABatchWithAFutureTimestampAtArrivalUnderClientPrefer) {
  const uint64_t arrival = 1'000'000;
  for (uint64_t future : {arrival + kFutureTimestampSkewMs + 1, UINT64_MAX}) {
    BatchHeader header;
    std::vector<uint64_t> eff =
        stamp_and_derive({arrival - 5, future, 7}, arrival, 900, Timestamping::kClientPrefer, &header);
    EXPECT_EQ(eff, (std::vector<uint64_t>{arrival, arrival, arrival})) << future;
    EXPECT_NE(header.flags & kBatchFlagArrivalTimestamps, 0);
    EXPECT_EQ(header.last_timestamp, arrival);
  }
  // Never below the stream's last timestamp.
  std::vector<uint64_t> eff = stamp_and_derive({UINT64_MAX}, arrival, arrival + 10, Timestamping::kClientPrefer);
  EXPECT_EQ(eff, (std::vector<uint64_t>{arrival + 10}));
}

TEST(Batch, StampRefusesAFutureTimestampUnderClientRequireAndLeavesHeader) {
  PayloadBuilder builder = builder_with_timestamps({10, UINT64_MAX});
  BatchHeader header = header_for(builder.bytes(), 2);
  const BatchHeader before = header;
  Status status = stamp_batch(&header, builder.bytes(), 100, 0, Timestamping::kClientRequire, BatchLimits{});
  EXPECT_EQ(status.code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(status.message().find("ahead of the server's clock"), std::string::npos) << status.message();
  EXPECT_EQ(std::memcmp(&header, &before, sizeof(header)), 0);
}

TEST(Batch, StampArrivalModeSetsFlagAndEqualTimestamps) {
  BatchHeader header;
  std::vector<uint64_t> eff = stamp_and_derive({10, 20, 0}, 500, 0, Timestamping::kArrival, &header);
  EXPECT_EQ(eff, (std::vector<uint64_t>{500, 500, 500}));
  EXPECT_EQ(header.flags & kBatchFlagArrivalTimestamps, kBatchFlagArrivalTimestamps);
  EXPECT_EQ(header.first_timestamp, 500u);
  EXPECT_EQ(header.last_timestamp, 500u);
}

TEST(Batch, StampRaisesClientTimestampsToPreviousLast) {
  std::vector<uint64_t> eff = stamp_and_derive({10, 20, 30}, 100, 1000, Timestamping::kClientPrefer);
  EXPECT_EQ(eff, (std::vector<uint64_t>{1000, 1000, 1000}));
}

TEST(Batch, StampRaisesArrivalToPreviousLast) {
  std::vector<uint64_t> eff = stamp_and_derive({10, 20}, 500, 1000, Timestamping::kArrival);
  EXPECT_EQ(eff, (std::vector<uint64_t>{1000, 1000}));
}

TEST(Batch, StampClearsArrivalFlagInClientMode) {
  PayloadBuilder builder = builder_with_timestamps({10, 20});
  BatchHeader header = header_for(builder.bytes(), 2);
  header.flags = kBatchFlagArrivalTimestamps;
  ASSERT_TRUE(stamp_batch(&header, builder.bytes(), 100, 0, Timestamping::kClientPrefer, BatchLimits{}).is_ok());
  EXPECT_EQ(header.flags & kBatchFlagArrivalTimestamps, 0);
}

TEST(Batch, StampedHeaderSealsAndVerifies) {
  PayloadBuilder builder = builder_with_timestamps({30, 10, 0});
  BatchHeader header = header_for(builder.bytes(), 3);
  ASSERT_TRUE(stamp_batch(&header, builder.bytes(), 20, 5, Timestamping::kClientPrefer, BatchLimits{}).is_ok());
  seal_header(&header, kSegmentId);
  Status status = verify_header(header, kSegmentId, BatchLimits{});
  EXPECT_TRUE(status.is_ok()) << status.to_string();
}

TEST(Batch, StampRejectsMalformedPayload) {
  std::string payload = raw_record(1, {}, "x", -1);
  BatchHeader header = header_for(payload, 1);
  EXPECT_FALSE(stamp_batch(&header, payload, 100, 0, Timestamping::kClientPrefer, BatchLimits{}).is_ok());
}

TEST(Batch, StampRejectsZeroRecords) {
  BatchHeader header = header_for("", 0);
  EXPECT_EQ(stamp_batch(&header, "", 100, 0, Timestamping::kArrival, BatchLimits{}).code(),
            ErrorCode::kInvalidArgument);
}

TEST(Batch, EffectiveTimestampsRejectsLastThatRecordsDisagreeWith) {
  PayloadBuilder builder = builder_with_timestamps({10, 20});
  BatchHeader header = header_for(builder.bytes(), 2);
  ASSERT_TRUE(stamp_batch(&header, builder.bytes(), 100, 0, Timestamping::kClientPrefer, BatchLimits{}).is_ok());
  header.last_timestamp = 25;
  std::vector<uint64_t> eff;
  EXPECT_EQ(effective_timestamps(header, builder.bytes(), BatchLimits{}, &eff).code(), ErrorCode::kInvalidArgument);
  EXPECT_TRUE(eff.empty());
}

TEST(Batch, EffectiveTimestampsRejectsMalformedPayload) {
  PayloadBuilder builder = builder_with_timestamps({10, 20});
  BatchHeader header = header_for(builder.bytes(), 3);  // One record more than the payload holds.
  std::vector<uint64_t> eff;
  EXPECT_EQ(effective_timestamps(header, builder.bytes(), BatchLimits{}, &eff).code(), ErrorCode::kInvalidArgument);
  EXPECT_TRUE(eff.empty());
}

}  // namespace
}  // namespace runnel

namespace runnel {
namespace {

BatchHeader header_for(const std::string& raw, uint32_t count) {
  BatchHeader h;
  h.stream_id = 9;
  h.record_count = count;
  h.payload_bytes = static_cast<uint32_t>(raw.size());
  h.payload_checksum = payload_checksum(raw);
  return h;
}

TEST(BatchLz4, CompressesAndDecompressesToTheSameRecords) {
  PayloadBuilder builder;
  for (int i = 0; i < 200; i++) builder.add(1000 + i, {{"type", "order"}}, "the same words again and again " + std::to_string(i % 7));
  std::string stored;
  ASSERT_TRUE(compress_payload(builder.bytes(), &stored));
  EXPECT_LT(stored.size(), builder.bytes().size() / 2);
  BatchHeader h = header_for(builder.bytes(), builder.record_count());
  h.flags = kBatchFlagLz4;
  h.payload_bytes = static_cast<uint32_t>(stored.size());
  EXPECT_TRUE(verify_payload(h, stored, BatchLimits{}).is_ok());
  auto raw = decompress_payload(h, stored, BatchLimits{});
  ASSERT_TRUE(raw.is_ok()) << raw.status().to_string();
  EXPECT_EQ(*raw, builder.bytes());
}

TEST(BatchLz4, LeavesIncompressibleDataAlone) {
  std::string noise;
  uint64_t x = 88172645463325252ull;
  for (int i = 0; i < 4000; i++) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    noise.push_back(static_cast<char>(x));
  }
  PayloadBuilder builder;
  builder.add(0, noise);
  std::string stored = "untouched";
  EXPECT_FALSE(compress_payload(builder.bytes(), &stored));
  EXPECT_EQ(stored, "untouched");
}

TEST(BatchLz4, DetectsCorruptionInTheCompressedBytesAndInTheRawPayload) {
  PayloadBuilder builder;
  for (int i = 0; i < 50; i++) builder.add(0, "compressible compressible compressible");
  std::string stored;
  ASSERT_TRUE(compress_payload(builder.bytes(), &stored));
  BatchHeader h = header_for(builder.bytes(), builder.record_count());
  h.flags = kBatchFlagLz4;
  h.payload_bytes = static_cast<uint32_t>(stored.size());
  std::string flipped = stored;
  flipped[flipped.size() - 3] ^= 0x04;
  EXPECT_EQ(verify_payload(h, flipped, BatchLimits{}).code(), ErrorCode::kCorrupt);
  EXPECT_FALSE(decompress_payload(h, flipped, BatchLimits{}).is_ok());
  // A header whose client checksum does not match the raw bytes.
  BatchHeader lying = h;
  lying.payload_checksum ^= 1;
  auto raw = decompress_payload(lying, stored, BatchLimits{});
  ASSERT_FALSE(raw.is_ok());
  EXPECT_EQ(raw.status().code(), ErrorCode::kCorrupt);
}

}  // namespace
}  // namespace runnel

namespace runnel {
namespace {

TEST(Batch, StampingFromVerifiedTimestampsMatchesStampingByDecoding) {
  const uint64_t seed = test_seed();
  SCOPED_TRACE(seed_trace(seed));
  std::mt19937_64 rng(seed);
  const BatchLimits limits;
  for (int round = 0; round < 500; round++) {
    PayloadBuilder payload;
    const int records = 1 + static_cast<int>(rng() % 20);
    for (int r = 0; r < records; r++) {
      const uint64_t ts = rng() % 3 == 0    ? 0
                          : rng() % 10 == 0 ? 1000 + kFutureTimestampSkewMs + rng() % 200  // Too far ahead, or not.
                                            : 1000 + rng() % 100;
      payload.add(ts, "r" + std::to_string(r));
    }
    BatchHeader h;
    h.stream_id = 1;
    h.record_count = payload.record_count();
    h.payload_bytes = static_cast<uint32_t>(payload.bytes().size());
    h.payload_checksum = payload_checksum(payload.bytes());
    PayloadTimestamps t;
    ASSERT_TRUE(verify_payload(h, payload.bytes(), limits, &t).is_ok());
    const uint64_t arrival = 1000 + rng() % 100;
    const uint64_t previous = rng() % 2 == 0 ? 0 : 1000 + rng() % 100;
    for (Timestamping mode : {Timestamping::kClientPrefer, Timestamping::kClientRequire, Timestamping::kArrival}) {
      BatchHeader decoded = h, gathered = h;
      Status a = stamp_batch(&decoded, payload.bytes(), arrival, previous, mode, limits);
      Status b = stamp_batch(&gathered, t, arrival, previous, mode);
      ASSERT_EQ(a.code(), b.code()) << a.to_string() << " vs " << b.to_string();
      EXPECT_EQ(decoded.first_timestamp, gathered.first_timestamp);
      EXPECT_EQ(decoded.last_timestamp, gathered.last_timestamp);
      EXPECT_EQ(decoded.arrival_timestamp, gathered.arrival_timestamp);
      EXPECT_EQ(decoded.flags, gathered.flags);
    }
  }
}

}  // namespace
}  // namespace runnel
