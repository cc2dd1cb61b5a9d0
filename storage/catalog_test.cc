#include "storage/catalog.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <string>
#include <string_view>
#include <vector>

namespace runnel {
namespace {

using ::testing::HasSubstr;

constexpr uint64_t kU64Max = std::numeric_limits<uint64_t>::max();

// Offsets in an encoding: u8 version, u8 op, u64 id, then the op's fields.
constexpr size_t kVersionOffset = 0;
constexpr size_t kOpOffset = 1;
constexpr size_t kFieldsOffset = 10;

// Config layout, relative to its start.
constexpr size_t kConfigTimestampingOffset = 0;
constexpr size_t kConfigLz4Offset = 25;
constexpr size_t kConfigBytes = 26;

// Where the config of a kCreate with these names starts.
size_t create_config_offset(std::string_view bucket, std::string_view name) {
  return kFieldsOffset + 2 + bucket.size() + 2 + name.size();
}
// Where the sealed byte of a kCreate with these names is.
size_t create_sealed_offset(std::string_view bucket, std::string_view name) {
  return create_config_offset(bucket, name) + kConfigBytes + 8;
}

CatalogMutation create(uint64_t id, std::string bucket, std::string name) {
  CatalogMutation m;
  m.op = CatalogOp::kCreate;
  m.stream.id = id;
  m.stream.bucket = std::move(bucket);
  m.stream.name = std::move(name);
  return m;
}

CatalogMutation op(CatalogOp catalog_op, uint64_t id) {
  CatalogMutation m;
  m.op = catalog_op;
  m.stream.id = id;
  return m;
}

CatalogMutation trim(uint64_t id, uint64_t trim_seq) {
  CatalogMutation m = op(CatalogOp::kTrim, id);
  m.stream.trim_seq = trim_seq;
  return m;
}

CatalogMutation fence(uint64_t id, std::string token) {
  CatalogMutation m = op(CatalogOp::kFence, id);
  m.stream.fencing_token = std::move(token);
  return m;
}

CatalogMutation reconfigure(uint64_t id, const StreamConfig& config) {
  CatalogMutation m = op(CatalogOp::kReconfigure, id);
  m.stream.config = config;
  return m;
}

StreamConfig max_config() {
  StreamConfig config;
  config.timestamping = Timestamping::kArrival;
  config.retention_age_ms = kU64Max;
  config.retention_bytes = kU64Max;
  config.delete_on_empty_ms = kU64Max;
  config.compress_lz4 = true;
  return config;
}

// A kCreate with every field at its largest valid value.
CatalogMutation max_create() {
  CatalogMutation m = create(kU64Max, std::string(63, 'z'), std::string(512, 'n'));
  m.stream.config = max_config();
  m.stream.created_ms = kU64Max;
  m.stream.sealed = true;
  m.stream.fencing_token = std::string(kFencingTokenBytesMax, '\xff');
  m.stream.trim_seq = kU64Max;
  return m;
}

// One valid mutation of each op, as a replayed log might hold them.
std::vector<CatalogMutation> one_of_each_op() {
  return {max_create(),          reconfigure(7, max_config()), op(CatalogOp::kDelete, 7),
          op(CatalogOp::kSeal, 7), fence(7, "epoch-3"),          trim(7, 1000)};
}

CatalogMutation bucket_op(CatalogOp catalog_op, std::string name, BucketConfig config = {}, uint64_t created_ms = 0) {
  CatalogMutation m;
  m.op = catalog_op;
  m.bucket.name = std::move(name);
  if (catalog_op != CatalogOp::kBucketDelete) m.bucket.config = config;
  if (catalog_op == CatalogOp::kBucketCreate) m.bucket.created_ms = created_ms;
  return m;
}

BucketConfig max_bucket_config() {
  BucketConfig config;
  config.default_stream_config = max_config();
  config.create_stream_on_append = true;
  config.create_stream_on_read = true;
  return config;
}

// One valid mutation of each bucket op.
std::vector<CatalogMutation> one_of_each_bucket_op() {
  return {bucket_op(CatalogOp::kBucketCreate, std::string(63, 'z'), max_bucket_config(), kU64Max),
          bucket_op(CatalogOp::kBucketReconfigure, "a-1", max_bucket_config()),
          bucket_op(CatalogOp::kBucketDelete, "abc")};
}

std::vector<std::string> bucket_names(const std::vector<const BucketInfo*>& buckets) {
  std::vector<std::string> out;
  for (const BucketInfo* b : buckets) out.push_back(b->name);
  return out;
}

void expect_invalid(const Status& status, std::string_view rule) {
  EXPECT_EQ(status.code(), ErrorCode::kInvalidArgument) << status.to_string();
  EXPECT_THAT(status.message(), HasSubstr(std::string(rule)));
}

void expect_corrupt(std::string_view bytes) {
  Result<CatalogMutation> decoded = decode_mutation(bytes);
  ASSERT_FALSE(decoded.is_ok());
  EXPECT_EQ(decoded.status().code(), ErrorCode::kCorrupt) << decoded.status().to_string();
}

void expect_round_trip(const CatalogMutation& m) {
  const std::string bytes = encode_mutation(m);
  Result<CatalogMutation> decoded = decode_mutation(bytes);
  ASSERT_TRUE(decoded.is_ok()) << decoded.status().to_string();
  EXPECT_EQ(*decoded, m);
  EXPECT_EQ(encode_mutation(*decoded), bytes);
}

std::vector<std::string> names(const std::vector<const StreamEntry*>& streams) {
  std::vector<std::string> out;
  for (const StreamEntry* s : streams) out.push_back(s->name);
  return out;
}

// A catalog holding `stream_names` in bucket "logs", ids from 1 in order.
StreamCatalog catalog_with(const std::vector<std::string>& stream_names) {
  StreamCatalog catalog;
  for (const std::string& name : stream_names) {
    Status status = catalog.apply(create(catalog.next_id(), "logs", name));
    EXPECT_TRUE(status.is_ok()) << status.to_string();
  }
  return catalog;
}

// ---- Bucket names ----

TEST(Catalog, BucketNameAcceptsThreeAndSixtyThreeCharacters) {
  EXPECT_TRUE(validate_bucket_name("abc").is_ok());
  EXPECT_TRUE(validate_bucket_name(std::string(63, 'a')).is_ok());
}

TEST(Catalog, BucketNameAcceptsDigitsAndInnerHyphens) {
  EXPECT_TRUE(validate_bucket_name("123").is_ok());
  EXPECT_TRUE(validate_bucket_name("a-1").is_ok());
  EXPECT_TRUE(validate_bucket_name("my--bucket-9").is_ok());
}

TEST(Catalog, BucketNameRejectsFewerThanThreeCharacters) {
  for (std::string_view bucket : {"", "a", "ab"}) {
    expect_invalid(validate_bucket_name(bucket), "bucket name must be 3 to 63 characters");
  }
}

TEST(Catalog, BucketNameRejectsMoreThanSixtyThreeCharacters) {
  expect_invalid(validate_bucket_name(std::string(64, 'a')), "bucket name must be 3 to 63 characters");
}

TEST(Catalog, BucketNameRejectsUppercase) {
  expect_invalid(validate_bucket_name("Abc"), "only a-z, 0-9 and '-'");
  expect_invalid(validate_bucket_name("abC"), "only a-z, 0-9 and '-'");
}

TEST(Catalog, BucketNameRejectsOtherCharacters) {
  using namespace std::string_literals;
  for (const std::string& bucket : {"a_b"s, "a.b"s, "a b"s, "a/b"s, "ab\0c"s, "ab\xc3\xa9"s}) {
    expect_invalid(validate_bucket_name(bucket), "only a-z, 0-9 and '-'");
  }
}

TEST(Catalog, BucketNameRejectsLeadingHyphen) {
  expect_invalid(validate_bucket_name("-abc"), "start and end with a letter or digit");
}

TEST(Catalog, BucketNameRejectsTrailingHyphen) {
  expect_invalid(validate_bucket_name("abc-"), "start and end with a letter or digit");
  expect_invalid(validate_bucket_name("---"), "start and end with a letter or digit");
}

// ---- Stream names ----

TEST(Catalog, StreamNameAcceptsOneAndFiveHundredTwelveBytes) {
  EXPECT_TRUE(validate_stream_name("a").is_ok());
  EXPECT_TRUE(validate_stream_name(std::string(512, 'a')).is_ok());
}

TEST(Catalog, StreamNameAcceptsSlashesSpacesAndUppercase) {
  EXPECT_TRUE(validate_stream_name("/").is_ok());
  EXPECT_TRUE(validate_stream_name("orders/eu-west/2024 Q1").is_ok());
  EXPECT_TRUE(validate_stream_name("../../etc/passwd").is_ok());  // Names are data, never paths.
}

TEST(Catalog, StreamNameAcceptsUtf8BoundaryCodePoints) {
  for (std::string_view name : {
           "\x7f",              // U+007F, last one-byte.
           "\xc2\x80",          // U+0080, first two-byte.
           "\xdf\xbf",          // U+07FF, last two-byte.
           "\xe0\xa0\x80",      // U+0800, first three-byte.
           "\xed\x9f\xbf",      // U+D7FF, just below the surrogates.
           "\xee\x80\x80",      // U+E000, just above them.
           "\xef\xbf\xbf",      // U+FFFF.
           "\xf0\x90\x80\x80",  // U+10000, first four-byte.
           "\xf4\x8f\xbf\xbf",  // U+10FFFF, the last code point.
       }) {
    EXPECT_TRUE(validate_stream_name(name).is_ok()) << testing::PrintToString(name);
  }
}

TEST(Catalog, StreamNameAcceptsFiveHundredTwelveBytesOfFourByteCharacters) {
  std::string name;
  for (int i = 0; i < 128; i++) name += "\xf0\x9f\x98\x80";  // U+1F600.
  ASSERT_EQ(name.size(), 512u);
  EXPECT_TRUE(validate_stream_name(name).is_ok());
}

TEST(Catalog, StreamNameRejectsEmpty) {
  expect_invalid(validate_stream_name(""), "stream name must be 1 to 512 bytes");
}

TEST(Catalog, StreamNameRejectsFiveHundredThirteenBytes) {
  expect_invalid(validate_stream_name(std::string(513, 'a')), "stream name must be 1 to 512 bytes");
}

TEST(Catalog, StreamNameRejectsNul) {
  using namespace std::string_literals;
  for (const std::string& name : {"\0"s, "\0a"s, "a\0b"s, "ab\0"s}) {
    expect_invalid(validate_stream_name(name), "stream name must not contain NUL");
  }
}

TEST(Catalog, StreamNameRejectsOverlongForms) {
  for (std::string_view name : {
           "\xc0\x80",              // U+0000 in two bytes.
           "\xc1\xbf",              // U+007F in two bytes.
           "\xe0\x80\x80",          // U+0000 in three bytes.
           "\xe0\x9f\xbf",          // U+07FF in three bytes.
           "\xf0\x80\x80\x80",      // U+0000 in four bytes.
           "\xf0\x8f\xbf\xbf",      // U+FFFF in four bytes.
           "\xf8\x88\x80\x80\x80",  // Five-byte form.
       }) {
    expect_invalid(validate_stream_name(name), "stream name must be valid UTF-8");
  }
}

TEST(Catalog, StreamNameRejectsSurrogates) {
  for (std::string_view name : {"\xed\xa0\x80", "\xed\xbf\xbf", "a\xed\xb0\x80z"}) {
    expect_invalid(validate_stream_name(name), "stream name must be valid UTF-8");
  }
}

TEST(Catalog, StreamNameRejectsCodePointsAboveMax) {
  for (std::string_view name : {"\xf4\x90\x80\x80", "\xf5\x80\x80\x80", "\xf7\xbf\xbf\xbf", "\xfe", "\xff"}) {
    expect_invalid(validate_stream_name(name), "stream name must be valid UTF-8");
  }
}

TEST(Catalog, StreamNameRejectsTruncatedSequences) {
  for (std::string_view name : {"\xc3", "a\xe2\x82", "\xf0\x9f\x98", "\xe2\x82z", "\xf0\x9f\x98z"}) {
    expect_invalid(validate_stream_name(name), "stream name must be valid UTF-8");
  }
}

TEST(Catalog, StreamNameRejectsStrayContinuationBytes) {
  for (std::string_view name : {"\x80", "a\xbf", "\xc3\xa9\xa9"}) {
    expect_invalid(validate_stream_name(name), "stream name must be valid UTF-8");
  }
}

// ---- Encoding ----

TEST(Catalog, EncodingIsVersionOpIdLittleEndian) {
  const std::string bytes = encode_mutation(trim(0x0102030405060708, 0x1112131415161718));
  const std::string expected(
      "\x01\x06"
      "\x08\x07\x06\x05\x04\x03\x02\x01"
      "\x18\x17\x16\x15\x14\x13\x12\x11",
      18);
  EXPECT_EQ(bytes, expected);
}

TEST(Catalog, EncodingOfDeleteAndSealIsJustTheId) {
  EXPECT_EQ(encode_mutation(op(CatalogOp::kDelete, 1)).size(), kFieldsOffset);
  EXPECT_EQ(encode_mutation(op(CatalogOp::kSeal, 1)).size(), kFieldsOffset);
}

TEST(Catalog, EncodingOfCreateHasEveryField) {
  const CatalogMutation m = max_create();
  const size_t expected = create_config_offset(m.stream.bucket, m.stream.name) + kConfigBytes + 8 + 1 + 2 +
                          m.stream.fencing_token.size() + 8;
  EXPECT_EQ(encode_mutation(m).size(), expected);
}

TEST(Catalog, RoundTripsCreateWithMaximalValues) { expect_round_trip(max_create()); }

TEST(Catalog, RoundTripsCreateWithMinimalValues) {
  CatalogMutation m = create(1, "abc", "x");
  expect_round_trip(m);
}

TEST(Catalog, RoundTripsCreateWithMultibyteName) {
  expect_round_trip(create(2, "a-0", "caf\xc3\xa9/\xf0\x9f\x98\x80"));
}

TEST(Catalog, RoundTripsReconfigure) {
  expect_round_trip(reconfigure(kU64Max, max_config()));
  expect_round_trip(reconfigure(1, StreamConfig{}));
  StreamConfig require;
  require.timestamping = Timestamping::kClientRequire;
  expect_round_trip(reconfigure(3, require));
}

TEST(Catalog, RoundTripsDelete) { expect_round_trip(op(CatalogOp::kDelete, kU64Max)); }

TEST(Catalog, RoundTripsSeal) { expect_round_trip(op(CatalogOp::kSeal, 1)); }

TEST(Catalog, RoundTripsFenceWithEmptyToken) { expect_round_trip(fence(5, "")); }

TEST(Catalog, RoundTripsFenceWithLongestToken) {
  expect_round_trip(fence(5, std::string(kFencingTokenBytesMax, '\0')));
}

TEST(Catalog, RoundTripsTrim) {
  expect_round_trip(trim(9, kU64Max));
  expect_round_trip(trim(9, 0));
}

// ---- Decoding malformed bytes ----

TEST(Catalog, DecodeRejectsEveryTruncation) {
  for (const CatalogMutation& m : one_of_each_op()) {
    const std::string bytes = encode_mutation(m);
    for (size_t len = 0; len < bytes.size(); len++) {
      SCOPED_TRACE(testing::Message() << "op " << static_cast<int>(m.op) << " len " << len);
      expect_corrupt(std::string_view(bytes).substr(0, len));
    }
  }
}

TEST(Catalog, DecodeRejectsOneTrailingByte) {
  for (const CatalogMutation& m : one_of_each_op()) {
    SCOPED_TRACE(testing::Message() << "op " << static_cast<int>(m.op));
    expect_corrupt(encode_mutation(m) + '\0');
  }
}

TEST(Catalog, DecodeRejectsUnknownVersion) {
  for (uint8_t version : {0, 2, 255}) {
    std::string bytes = encode_mutation(op(CatalogOp::kSeal, 1));
    bytes[kVersionOffset] = static_cast<char>(version);
    expect_corrupt(bytes);
  }
}

TEST(Catalog, DecodeRejectsUnknownOp) {
  for (uint8_t bad_op : {0, 12, 255}) {
    std::string bytes = encode_mutation(op(CatalogOp::kSeal, 1));
    bytes[kOpOffset] = static_cast<char>(bad_op);
    expect_corrupt(bytes);
  }
}

TEST(Catalog, SnapshotMarkersRoundTripButTheCatalogRefusesThem) {
  for (CatalogOp marker : {CatalogOp::kSnapshotBegin, CatalogOp::kSnapshotEnd}) {
    CatalogMutation m = op(marker, 42);
    expect_round_trip(m);
    StreamCatalog catalog;
    EXPECT_EQ(catalog.check(m).code(), ErrorCode::kInvalidArgument);
    EXPECT_EQ(catalog.apply(m).code(), ErrorCode::kInvalidArgument);
  }
}

TEST(Catalog, DecodeRejectsIdZero) {
  for (CatalogMutation m : one_of_each_op()) {
    m.stream.id = 0;
    SCOPED_TRACE(testing::Message() << "op " << static_cast<int>(m.op));
    expect_corrupt(encode_mutation(m));
  }
}

TEST(Catalog, DecodeRejectsSealedTwo) {
  const CatalogMutation m = create(1, "abc", "s");
  std::string bytes = encode_mutation(m);
  bytes[create_sealed_offset(m.stream.bucket, m.stream.name)] = 2;
  expect_corrupt(bytes);
}

TEST(Catalog, DecodeRejectsCompressLz4Two) {
  const CatalogMutation m = create(1, "abc", "s");
  std::string bytes = encode_mutation(m);
  bytes[create_config_offset(m.stream.bucket, m.stream.name) + kConfigLz4Offset] = 2;
  expect_corrupt(bytes);

  bytes = encode_mutation(reconfigure(1, StreamConfig{}));
  bytes[kFieldsOffset + kConfigLz4Offset] = 2;
  expect_corrupt(bytes);
}

TEST(Catalog, DecodeRejectsTimestampingThree) {
  const CatalogMutation m = create(1, "abc", "s");
  std::string bytes = encode_mutation(m);
  bytes[create_config_offset(m.stream.bucket, m.stream.name) + kConfigTimestampingOffset] = 3;
  expect_corrupt(bytes);

  bytes = encode_mutation(reconfigure(1, StreamConfig{}));
  bytes[kFieldsOffset + kConfigTimestampingOffset] = 3;
  expect_corrupt(bytes);
}

TEST(Catalog, DecodeRejectsInvalidBucketName) {
  // Encoding does not validate, so it can produce what a corrupt log holds.
  expect_corrupt(encode_mutation(create(1, "ABC", "s")));
  expect_corrupt(encode_mutation(create(1, "ab", "s")));
  expect_corrupt(encode_mutation(create(1, "", "s")));
}

TEST(Catalog, DecodeRejectsInvalidStreamName) {
  using namespace std::string_literals;
  expect_corrupt(encode_mutation(create(1, "abc", "")));
  expect_corrupt(encode_mutation(create(1, "abc", "a\0b"s)));
  expect_corrupt(encode_mutation(create(1, "abc", "\xed\xa0\x80")));
  expect_corrupt(encode_mutation(create(1, "abc", std::string(513, 'a'))));
}

TEST(Catalog, DecodeRejectsTokenLongerThanMax) {
  expect_corrupt(encode_mutation(fence(1, std::string(kFencingTokenBytesMax + 1, 't'))));
  CatalogMutation m = create(1, "abc", "s");
  m.stream.fencing_token = std::string(kFencingTokenBytesMax + 1, 't');
  expect_corrupt(encode_mutation(m));
}

TEST(Catalog, DecodeRejectsLengthPastTheEnd) {
  std::string bytes = encode_mutation(fence(1, "abc"));
  bytes[kFieldsOffset] = '\xff';
  bytes[kFieldsOffset + 1] = '\xff';
  expect_corrupt(bytes);
}

// ---- Catalog: create and find ----

TEST(Catalog, CreateThenFindByNameAndId) {
  StreamCatalog catalog;
  CatalogMutation m = max_create();
  m.stream.id = 1;
  ASSERT_TRUE(catalog.apply(m).is_ok());
  const StreamEntry* by_name = catalog.find(m.stream.bucket, m.stream.name);
  ASSERT_NE(by_name, nullptr);
  EXPECT_EQ(*by_name, m.stream);
  EXPECT_EQ(catalog.find(1), by_name);
  EXPECT_EQ(catalog.size(), 1u);
}

TEST(Catalog, FindMissingReturnsNull) {
  StreamCatalog catalog = catalog_with({"a"});
  EXPECT_EQ(catalog.find("logs", "b"), nullptr);
  EXPECT_EQ(catalog.find("other", "a"), nullptr);
  EXPECT_EQ(catalog.find(2), nullptr);
  EXPECT_EQ(catalog.find(0), nullptr);
}

TEST(Catalog, CreateRejectsDuplicateNameInSameBucket) {
  StreamCatalog catalog = catalog_with({"a"});
  Status status = catalog.apply(create(2, "logs", "a"));
  EXPECT_EQ(status.code(), ErrorCode::kAlreadyExists);
  EXPECT_EQ(catalog.size(), 1u);
  EXPECT_EQ(catalog.find("logs", "a")->id, 1u);
  EXPECT_EQ(catalog.next_id(), 2u);
}

TEST(Catalog, CreateAcceptsSameNameInAnotherBucket) {
  StreamCatalog catalog = catalog_with({"a"});
  ASSERT_TRUE(catalog.apply(create(2, "metrics", "a")).is_ok());
  EXPECT_EQ(catalog.find("logs", "a")->id, 1u);
  EXPECT_EQ(catalog.find("metrics", "a")->id, 2u);
}

TEST(Catalog, CreateRejectsIdZero) {
  StreamCatalog catalog;
  EXPECT_EQ(catalog.apply(create(0, "logs", "a")).code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(catalog.size(), 0u);
}

TEST(Catalog, CreateRejectsIdOfLiveStream) {
  StreamCatalog catalog = catalog_with({"a"});
  EXPECT_EQ(catalog.apply(create(1, "logs", "b")).code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(catalog.find("logs", "b"), nullptr);
}

TEST(Catalog, CreateRejectsIdBelowMaxEverUsed) {
  StreamCatalog catalog;
  ASSERT_TRUE(catalog.apply(create(5, "logs", "a")).is_ok());
  EXPECT_EQ(catalog.apply(create(3, "logs", "b")).code(), ErrorCode::kInvalidArgument);
  EXPECT_TRUE(catalog.apply(create(6, "logs", "b")).is_ok());
}

TEST(Catalog, CreateRejectsInvalidNames) {
  StreamCatalog catalog;
  expect_invalid(catalog.apply(create(1, "Logs", "a")), "bucket name");
  expect_invalid(catalog.apply(create(1, "logs", "")), "stream name");
  expect_invalid(catalog.apply(create(1, "logs", "\xff")), "UTF-8");
  EXPECT_EQ(catalog.size(), 0u);
  EXPECT_EQ(catalog.next_id(), 1u);
}

TEST(Catalog, CreateRejectsTokenLongerThanMax) {
  StreamCatalog catalog;
  CatalogMutation m = create(1, "logs", "a");
  m.stream.fencing_token = std::string(kFencingTokenBytesMax + 1, 't');
  expect_invalid(catalog.apply(m), "fencing token");
  m.stream.fencing_token.pop_back();
  EXPECT_TRUE(catalog.apply(m).is_ok());
}

TEST(Catalog, CreateRejectsUnknownTimestamping) {
  StreamCatalog catalog;
  CatalogMutation m = create(1, "logs", "a");
  m.stream.config.timestamping = static_cast<Timestamping>(3);
  expect_invalid(catalog.apply(m), "timestamping");
}

TEST(Catalog, CreateMayCarryFullState) {
  // A create restates a stream in full (sealed, fenced, trimmed), which a
  // compacted catalog needs.
  StreamCatalog catalog;
  CatalogMutation m = create(4, "logs", "a");
  m.stream.sealed = true;
  m.stream.fencing_token = "t";
  m.stream.trim_seq = 99;
  ASSERT_TRUE(catalog.apply(m).is_ok());
  EXPECT_EQ(*catalog.find(4), m.stream);
}

TEST(Catalog, CheckChangesNothing) {
  StreamCatalog catalog = catalog_with({"a"});
  EXPECT_TRUE(catalog.check(create(2, "logs", "b")).is_ok());
  EXPECT_TRUE(catalog.check(op(CatalogOp::kDelete, 1)).is_ok());
  EXPECT_TRUE(catalog.check(op(CatalogOp::kSeal, 1)).is_ok());
  EXPECT_EQ(catalog.size(), 1u);
  EXPECT_EQ(catalog.next_id(), 2u);
  EXPECT_FALSE(catalog.find(1)->sealed);
}

// ---- Catalog: delete and ids ----

TEST(Catalog, DeleteFreesTheName) {
  StreamCatalog catalog = catalog_with({"a"});
  ASSERT_TRUE(catalog.apply(op(CatalogOp::kDelete, 1)).is_ok());
  EXPECT_EQ(catalog.find("logs", "a"), nullptr);
  EXPECT_EQ(catalog.find(1), nullptr);
  EXPECT_EQ(catalog.size(), 0u);
  ASSERT_TRUE(catalog.apply(create(2, "logs", "a")).is_ok());
  EXPECT_EQ(catalog.find("logs", "a")->id, 2u);
}

TEST(Catalog, DeleteKeepsTheIdUsed) {
  StreamCatalog catalog = catalog_with({"a"});
  ASSERT_TRUE(catalog.apply(op(CatalogOp::kDelete, 1)).is_ok());
  EXPECT_EQ(catalog.next_id(), 2u);
  EXPECT_EQ(catalog.apply(create(1, "logs", "a")).code(), ErrorCode::kInvalidArgument);
}

TEST(Catalog, OpsOnMissingIdReturnNotFound) {
  StreamCatalog catalog = catalog_with({"a"});
  for (CatalogMutation m : one_of_each_op()) {
    if (m.op == CatalogOp::kCreate) continue;
    for (uint64_t id : {uint64_t{0}, uint64_t{2}, kU64Max}) {
      m.stream.id = id;
      SCOPED_TRACE(testing::Message() << "op " << static_cast<int>(m.op) << " id " << id);
      EXPECT_EQ(catalog.check(m).code(), ErrorCode::kNotFound);
      EXPECT_EQ(catalog.apply(m).code(), ErrorCode::kNotFound);
    }
  }
}

TEST(Catalog, OpsOnDeletedStreamReturnNotFound) {
  StreamCatalog catalog = catalog_with({"a"});
  ASSERT_TRUE(catalog.apply(op(CatalogOp::kDelete, 1)).is_ok());
  EXPECT_EQ(catalog.apply(op(CatalogOp::kDelete, 1)).code(), ErrorCode::kNotFound);
  EXPECT_EQ(catalog.apply(op(CatalogOp::kSeal, 1)).code(), ErrorCode::kNotFound);
  EXPECT_EQ(catalog.apply(trim(1, 5)).code(), ErrorCode::kNotFound);
}

TEST(Catalog, UnknownOpRejected) {
  StreamCatalog catalog = catalog_with({"a"});
  EXPECT_EQ(catalog.apply(op(static_cast<CatalogOp>(12), 1)).code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(catalog.size(), 1u);
}

TEST(Catalog, NextIdStartsAtOne) {
  StreamCatalog catalog;
  EXPECT_EQ(catalog.next_id(), 1u);
}

TEST(Catalog, NextIdFollowsMaxIdEverUsed) {
  StreamCatalog catalog;
  ASSERT_TRUE(catalog.apply(create(10, "logs", "a")).is_ok());
  EXPECT_EQ(catalog.next_id(), 11u);
  ASSERT_TRUE(catalog.apply(create(11, "logs", "b")).is_ok());
  ASSERT_TRUE(catalog.apply(op(CatalogOp::kDelete, 11)).is_ok());
  EXPECT_EQ(catalog.next_id(), 12u);
}

TEST(Catalog, LastIdLeavesNoIdForAnotherCreate) {
  // next_id() wraps to 0, which no create accepts.
  StreamCatalog catalog;
  ASSERT_TRUE(catalog.apply(create(kU64Max, "logs", "a")).is_ok());
  EXPECT_EQ(catalog.next_id(), 0u);
  EXPECT_EQ(catalog.apply(create(catalog.next_id(), "logs", "b")).code(), ErrorCode::kInvalidArgument);
}

// ---- Catalog: seal, trim, fence, reconfigure ----

TEST(Catalog, SealSetsSealed) {
  StreamCatalog catalog = catalog_with({"a"});
  ASSERT_TRUE(catalog.apply(op(CatalogOp::kSeal, 1)).is_ok());
  EXPECT_TRUE(catalog.find(1)->sealed);
}

TEST(Catalog, SealIsIdempotent) {
  StreamCatalog catalog = catalog_with({"a"});
  ASSERT_TRUE(catalog.apply(op(CatalogOp::kSeal, 1)).is_ok());
  EXPECT_TRUE(catalog.apply(op(CatalogOp::kSeal, 1)).is_ok());
  EXPECT_TRUE(catalog.find(1)->sealed);
}

TEST(Catalog, TrimRaisesTrimSeq) {
  StreamCatalog catalog = catalog_with({"a"});
  ASSERT_TRUE(catalog.apply(trim(1, 10)).is_ok());
  EXPECT_EQ(catalog.find(1)->trim_seq, 10u);
  ASSERT_TRUE(catalog.apply(trim(1, kU64Max)).is_ok());
  EXPECT_EQ(catalog.find(1)->trim_seq, kU64Max);
}

TEST(Catalog, TrimNeverLowersTrimSeq) {
  StreamCatalog catalog = catalog_with({"a"});
  ASSERT_TRUE(catalog.apply(trim(1, 10)).is_ok());
  EXPECT_TRUE(catalog.apply(trim(1, 3)).is_ok());
  EXPECT_TRUE(catalog.apply(trim(1, 0)).is_ok());
  EXPECT_EQ(catalog.find(1)->trim_seq, 10u);
}

TEST(Catalog, TrimAllowedOnSealedStream) {
  StreamCatalog catalog = catalog_with({"a"});
  ASSERT_TRUE(catalog.apply(op(CatalogOp::kSeal, 1)).is_ok());
  ASSERT_TRUE(catalog.apply(trim(1, 4)).is_ok());
  EXPECT_EQ(catalog.find(1)->trim_seq, 4u);
}

TEST(Catalog, FenceSetsAndClearsToken) {
  StreamCatalog catalog = catalog_with({"a"});
  ASSERT_TRUE(catalog.apply(fence(1, "epoch-1")).is_ok());
  EXPECT_EQ(catalog.find(1)->fencing_token, "epoch-1");
  ASSERT_TRUE(catalog.apply(fence(1, "")).is_ok());
  EXPECT_EQ(catalog.find(1)->fencing_token, "");
}

TEST(Catalog, FenceRejectsTokenLongerThanMax) {
  StreamCatalog catalog = catalog_with({"a"});
  ASSERT_TRUE(catalog.apply(fence(1, "old")).is_ok());
  expect_invalid(catalog.apply(fence(1, std::string(kFencingTokenBytesMax + 1, 't'))), "fencing token");
  EXPECT_EQ(catalog.find(1)->fencing_token, "old");
  EXPECT_TRUE(catalog.apply(fence(1, std::string(kFencingTokenBytesMax, 't'))).is_ok());
}

TEST(Catalog, FenceAllowedOnSealedStream) {
  StreamCatalog catalog = catalog_with({"a"});
  ASSERT_TRUE(catalog.apply(op(CatalogOp::kSeal, 1)).is_ok());
  ASSERT_TRUE(catalog.apply(fence(1, "t")).is_ok());
  EXPECT_EQ(catalog.find(1)->fencing_token, "t");
}

TEST(Catalog, ReconfigureReplacesConfigOnly) {
  StreamCatalog catalog = catalog_with({"a"});
  ASSERT_TRUE(catalog.apply(trim(1, 7)).is_ok());
  CatalogMutation m = reconfigure(1, max_config());
  m.stream.trim_seq = 0;  // Ignored by a reconfigure.
  ASSERT_TRUE(catalog.apply(m).is_ok());
  EXPECT_EQ(catalog.find(1)->config, max_config());
  EXPECT_EQ(catalog.find(1)->trim_seq, 7u);
  EXPECT_EQ(catalog.find(1)->name, "a");
}

TEST(Catalog, ReconfigureAllowedOnSealedStream) {
  StreamCatalog catalog = catalog_with({"a"});
  ASSERT_TRUE(catalog.apply(op(CatalogOp::kSeal, 1)).is_ok());
  ASSERT_TRUE(catalog.apply(reconfigure(1, max_config())).is_ok());
  EXPECT_EQ(catalog.find(1)->config, max_config());
}

TEST(Catalog, ReconfigureRejectsUnknownTimestamping) {
  StreamCatalog catalog = catalog_with({"a"});
  StreamConfig config;
  config.timestamping = static_cast<Timestamping>(3);
  expect_invalid(catalog.apply(reconfigure(1, config)), "timestamping");
  EXPECT_EQ(catalog.find(1)->config, StreamConfig{});
}

TEST(Catalog, ReplayOfEncodedMutationsRebuildsTheCatalog) {
  StreamCatalog live;
  std::vector<std::string> log;
  auto run = [&](const CatalogMutation& m) {
    ASSERT_TRUE(live.apply(m).is_ok());
    log.push_back(encode_mutation(m));
  };
  run(create(1, "logs", "a"));
  run(create(2, "logs", "b"));
  run(reconfigure(1, max_config()));
  run(fence(1, "tok"));
  run(trim(1, 50));
  run(op(CatalogOp::kSeal, 1));
  run(op(CatalogOp::kDelete, 2));
  run(create(3, "logs", "b"));

  StreamCatalog replayed;
  for (const std::string& bytes : log) {
    Result<CatalogMutation> m = decode_mutation(bytes);
    ASSERT_TRUE(m.is_ok()) << m.status().to_string();
    ASSERT_TRUE(replayed.apply(*m).is_ok());
  }
  EXPECT_EQ(replayed.size(), live.size());
  EXPECT_EQ(replayed.next_id(), live.next_id());
  for (uint64_t id : {1, 2, 3}) {
    if (live.find(id) == nullptr) {
      EXPECT_EQ(replayed.find(id), nullptr);
    } else {
      ASSERT_NE(replayed.find(id), nullptr);
      EXPECT_EQ(*replayed.find(id), *live.find(id));
    }
  }
}

// ---- Catalog: list ----

TEST(Catalog, ListReturnsNamesInByteOrder) {
  StreamCatalog catalog = catalog_with({"b", "a/c", "\xc3\xa9", "a0", "A", "a/b", "a"});
  EXPECT_EQ(names(catalog.list("logs", "", "", 100)),
            (std::vector<std::string>{"A", "a", "a/b", "a/c", "a0", "b", "\xc3\xa9"}));
}

TEST(Catalog, ListReturnsOnlyTheBucket) {
  StreamCatalog catalog;
  ASSERT_TRUE(catalog.apply(create(1, "abb", "x")).is_ok());
  ASSERT_TRUE(catalog.apply(create(2, "abc", "y")).is_ok());
  ASSERT_TRUE(catalog.apply(create(3, "abcd", "a")).is_ok());
  ASSERT_TRUE(catalog.apply(create(4, "abc", "z")).is_ok());
  EXPECT_EQ(names(catalog.list("abc", "", "", 100)), (std::vector<std::string>{"y", "z"}));
}

TEST(Catalog, ListOfUnknownBucketIsEmpty) {
  StreamCatalog catalog = catalog_with({"a"});
  EXPECT_TRUE(catalog.list("nope", "", "", 100).empty());
  EXPECT_TRUE(catalog.list("", "", "", 100).empty());
}

TEST(Catalog, ListFiltersByPrefixWithSlashes) {
  StreamCatalog catalog = catalog_with({"log", "logs", "logs/a", "logs/b/c", "logs0", "m"});
  EXPECT_EQ(names(catalog.list("logs", "logs/", "", 100)), (std::vector<std::string>{"logs/a", "logs/b/c"}));
  EXPECT_EQ(names(catalog.list("logs", "logs", "", 100)),
            (std::vector<std::string>{"logs", "logs/a", "logs/b/c", "logs0"}));
}

TEST(Catalog, ListWithUnmatchedPrefixIsEmpty) {
  StreamCatalog catalog = catalog_with({"a", "c"});
  EXPECT_TRUE(catalog.list("logs", "b", "", 100).empty());
  EXPECT_TRUE(catalog.list("logs", "z", "", 100).empty());
}

TEST(Catalog, ListStartAfterIsExclusive) {
  StreamCatalog catalog = catalog_with({"a", "b", "c"});
  EXPECT_EQ(names(catalog.list("logs", "", "b", 100)), (std::vector<std::string>{"c"}));
}

TEST(Catalog, ListStartAfterBetweenNames) {
  StreamCatalog catalog = catalog_with({"a", "b/1", "b/2", "c"});
  EXPECT_EQ(names(catalog.list("logs", "", "b/", 100)), (std::vector<std::string>{"b/1", "b/2", "c"}));
  EXPECT_EQ(names(catalog.list("logs", "", "b/1\x01", 100)), (std::vector<std::string>{"b/2", "c"}));
}

TEST(Catalog, ListStartAfterBeyondAllNamesIsEmpty) {
  StreamCatalog catalog = catalog_with({"a", "b"});
  EXPECT_TRUE(catalog.list("logs", "", "c", 100).empty());
  EXPECT_TRUE(catalog.list("logs", "", "\xff", 100).empty());
}

TEST(Catalog, ListStartAfterBeforePrefixStartsAtPrefix) {
  StreamCatalog catalog = catalog_with({"a", "b/1", "b/2", "c"});
  EXPECT_EQ(names(catalog.list("logs", "b/", "a", 100)), (std::vector<std::string>{"b/1", "b/2"}));
  EXPECT_EQ(names(catalog.list("logs", "b/", "b", 100)), (std::vector<std::string>{"b/1", "b/2"}));
}

TEST(Catalog, ListStartAfterInsidePrefixRange) {
  StreamCatalog catalog = catalog_with({"b/1", "b/2", "b/3", "c"});
  EXPECT_EQ(names(catalog.list("logs", "b/", "b/1", 100)), (std::vector<std::string>{"b/2", "b/3"}));
}

TEST(Catalog, ListStartAfterPastPrefixRangeIsEmpty) {
  StreamCatalog catalog = catalog_with({"a", "b/1", "b/2", "c"});
  EXPECT_TRUE(catalog.list("logs", "b/", "b/2", 100).empty());
  EXPECT_TRUE(catalog.list("logs", "b/", "bz", 100).empty());
}

TEST(Catalog, ListStopsAtLimit) {
  StreamCatalog catalog = catalog_with({"a", "b", "c", "d"});
  EXPECT_EQ(names(catalog.list("logs", "", "", 2)), (std::vector<std::string>{"a", "b"}));
}

TEST(Catalog, ListLimitZeroIsEmpty) {
  StreamCatalog catalog = catalog_with({"a", "b"});
  EXPECT_TRUE(catalog.list("logs", "", "", 0).empty());
}

TEST(Catalog, ListPagesThroughEveryNameOnce) {
  StreamCatalog catalog = catalog_with({"p/a", "p/b", "p/c", "p/d", "p/e", "q"});
  std::vector<std::string> seen;
  std::string start_after;
  for (int page = 0; page < 10; page++) {
    std::vector<std::string> got = names(catalog.list("logs", "p/", start_after, 2));
    if (got.empty()) break;
    EXPECT_LE(got.size(), 2u);
    seen.insert(seen.end(), got.begin(), got.end());
    start_after = got.back();
  }
  EXPECT_EQ(seen, (std::vector<std::string>{"p/a", "p/b", "p/c", "p/d", "p/e"}));
}

TEST(Catalog, ListSkipsDeletedStreams) {
  StreamCatalog catalog = catalog_with({"a", "b", "c"});
  ASSERT_TRUE(catalog.apply(op(CatalogOp::kDelete, 2)).is_ok());
  EXPECT_EQ(names(catalog.list("logs", "", "", 100)), (std::vector<std::string>{"a", "c"}));
}

TEST(Catalog, ListReturnsFullStreamInfo) {
  StreamCatalog catalog = catalog_with({"a"});
  ASSERT_TRUE(catalog.apply(trim(1, 3)).is_ok());
  std::vector<const StreamEntry*> got = catalog.list("logs", "", "", 1);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0], catalog.find(1));
}


// ---- Buckets: encoding ----

TEST(Catalog, EncodingOfBucketOpsIsVersionOpNameThenFields) {
  BucketConfig config;
  config.create_stream_on_read = true;
  const std::string create = encode_mutation(bucket_op(CatalogOp::kBucketCreate, "abc", config, 0x0102030405060708));
  ASSERT_EQ(create.size(), 2 + 2 + 3 + kConfigBytes + 2 + 8);
  EXPECT_EQ(create.substr(0, 7), std::string("\x01\x09\x03\x00" "abc", 7)) << "no stream id";
  EXPECT_EQ(create[7 + kConfigBytes], 0) << "create_stream_on_append";
  EXPECT_EQ(create[7 + kConfigBytes + 1], 1) << "create_stream_on_read";
  EXPECT_EQ(create.substr(7 + kConfigBytes + 2), std::string("\x08\x07\x06\x05\x04\x03\x02\x01", 8));
  EXPECT_EQ(encode_mutation(bucket_op(CatalogOp::kBucketReconfigure, "abc", config)).size(),
            2 + 2 + 3 + kConfigBytes + 2);
  EXPECT_EQ(encode_mutation(bucket_op(CatalogOp::kBucketDelete, "abc")), std::string("\x01\x0b\x03\x00" "abc", 7));
}

TEST(Catalog, RoundTripsBucketOps) {
  for (const CatalogMutation& m : one_of_each_bucket_op()) {
    SCOPED_TRACE(testing::Message() << "op " << static_cast<int>(m.op));
    expect_round_trip(m);
  }
  expect_round_trip(bucket_op(CatalogOp::kBucketCreate, "a0a"));
  expect_round_trip(bucket_op(CatalogOp::kBucketReconfigure, "a0a"));
}

TEST(Catalog, DecodeRejectsEveryTruncationOfBucketOps) {
  for (const CatalogMutation& m : one_of_each_bucket_op()) {
    const std::string bytes = encode_mutation(m);
    for (size_t len = 0; len < bytes.size(); len++) {
      SCOPED_TRACE(testing::Message() << "op " << static_cast<int>(m.op) << " len " << len);
      expect_corrupt(std::string_view(bytes).substr(0, len));
    }
  }
}

TEST(Catalog, DecodeRejectsOneTrailingByteAfterBucketOps) {
  for (const CatalogMutation& m : one_of_each_bucket_op()) {
    SCOPED_TRACE(testing::Message() << "op " << static_cast<int>(m.op));
    expect_corrupt(encode_mutation(m) + '\0');
  }
}

TEST(Catalog, DecodeRejectsInvalidBucketNameInBucketOps) {
  for (CatalogOp bucket : {CatalogOp::kBucketCreate, CatalogOp::kBucketReconfigure, CatalogOp::kBucketDelete}) {
    SCOPED_TRACE(testing::Message() << "op " << static_cast<int>(bucket));
    expect_corrupt(encode_mutation(bucket_op(bucket, "ab")));
    expect_corrupt(encode_mutation(bucket_op(bucket, "-ab")));
    expect_corrupt(encode_mutation(bucket_op(bucket, "Abc")));
  }
}

TEST(Catalog, DecodeRejectsBucketFlagsTwo) {
  for (size_t flag = 0; flag < 2; flag++) {
    std::string bytes = encode_mutation(bucket_op(CatalogOp::kBucketCreate, "abc"));
    bytes[7 + kConfigBytes + flag] = 2;
    expect_corrupt(bytes);
  }
  std::string bytes = encode_mutation(bucket_op(CatalogOp::kBucketReconfigure, "abc"));
  bytes[7 + kConfigTimestampingOffset] = 3;
  expect_corrupt(bytes);
}

// ---- Buckets: the table ----

TEST(Catalog, BucketCreateThenFind) {
  StreamCatalog catalog;
  const CatalogMutation m = bucket_op(CatalogOp::kBucketCreate, "orders", max_bucket_config(), 77);
  ASSERT_TRUE(catalog.apply(m).is_ok());
  ASSERT_NE(catalog.find_bucket("orders"), nullptr);
  EXPECT_EQ(*catalog.find_bucket("orders"), m.bucket);
  EXPECT_EQ(catalog.find_bucket("order"), nullptr);
  EXPECT_EQ(catalog.bucket_count(), 1u);
  EXPECT_EQ(catalog.size(), 0u) << "a bucket is no stream";
  EXPECT_EQ(catalog.next_id(), 1u) << "and uses no stream id";
}

TEST(Catalog, BucketCreateRejectsAnExistingName) {
  StreamCatalog catalog;
  ASSERT_TRUE(catalog.apply(bucket_op(CatalogOp::kBucketCreate, "orders", {}, 1)).is_ok());
  EXPECT_EQ(catalog.apply(bucket_op(CatalogOp::kBucketCreate, "orders", max_bucket_config(), 2)).code(),
            ErrorCode::kAlreadyExists);
  EXPECT_EQ(catalog.find_bucket("orders")->created_ms, 1u);
}

TEST(Catalog, BucketOpsRejectInvalidNamesAndConfigs) {
  StreamCatalog catalog;
  expect_invalid(catalog.check(bucket_op(CatalogOp::kBucketCreate, "Orders")), "bucket name");
  expect_invalid(catalog.check(bucket_op(CatalogOp::kBucketDelete, "o")), "bucket name");
  BucketConfig bad;
  bad.default_stream_config.timestamping = static_cast<Timestamping>(3);
  expect_invalid(catalog.apply(bucket_op(CatalogOp::kBucketCreate, "orders", bad)), "timestamping");
  EXPECT_EQ(catalog.bucket_count(), 0u);
}

TEST(Catalog, BucketReconfigureReplacesTheConfigOnly) {
  StreamCatalog catalog;
  ASSERT_TRUE(catalog.apply(bucket_op(CatalogOp::kBucketCreate, "orders", {}, 5)).is_ok());
  ASSERT_TRUE(catalog.apply(bucket_op(CatalogOp::kBucketReconfigure, "orders", max_bucket_config())).is_ok());
  EXPECT_EQ(catalog.find_bucket("orders")->config, max_bucket_config());
  EXPECT_EQ(catalog.find_bucket("orders")->created_ms, 5u);
}

TEST(Catalog, BucketReconfigureAndDeleteOfAMissingBucketAreNotFound) {
  StreamCatalog catalog;
  EXPECT_EQ(catalog.apply(bucket_op(CatalogOp::kBucketReconfigure, "orders")).code(), ErrorCode::kNotFound);
  EXPECT_EQ(catalog.apply(bucket_op(CatalogOp::kBucketDelete, "orders")).code(), ErrorCode::kNotFound);
}

TEST(Catalog, BucketDeleteIsRefusedWhileItHoldsStreams) {
  StreamCatalog catalog = catalog_with({"a"});
  ASSERT_TRUE(catalog.apply(bucket_op(CatalogOp::kBucketCreate, "logs")).is_ok());
  ASSERT_TRUE(catalog.apply(bucket_op(CatalogOp::kBucketCreate, "log")).is_ok());
  EXPECT_TRUE(catalog.bucket_has_streams("logs"));
  EXPECT_FALSE(catalog.bucket_has_streams("log")) << "a bucket whose name prefixes another's";
  EXPECT_EQ(catalog.apply(bucket_op(CatalogOp::kBucketDelete, "logs")).code(), ErrorCode::kAlreadyExists);
  EXPECT_TRUE(catalog.apply(bucket_op(CatalogOp::kBucketDelete, "log")).is_ok());
  ASSERT_TRUE(catalog.apply(op(CatalogOp::kDelete, 1)).is_ok());
  EXPECT_FALSE(catalog.bucket_has_streams("logs"));
  ASSERT_TRUE(catalog.apply(bucket_op(CatalogOp::kBucketDelete, "logs")).is_ok());
  EXPECT_EQ(catalog.find_bucket("logs"), nullptr);
  EXPECT_EQ(catalog.bucket_count(), 0u);
}

TEST(Catalog, ListBucketsByNameWithPrefixStartAfterAndLimit) {
  StreamCatalog catalog;
  for (const char* name : {"b-2", "a-1", "b-1", "b-10", "c-1"}) {
    ASSERT_TRUE(catalog.apply(bucket_op(CatalogOp::kBucketCreate, name)).is_ok());
  }
  EXPECT_EQ(bucket_names(catalog.list_buckets("", "", 100)),
            (std::vector<std::string>{"a-1", "b-1", "b-10", "b-2", "c-1"}));
  EXPECT_EQ(bucket_names(catalog.list_buckets("b-", "", 100)), (std::vector<std::string>{"b-1", "b-10", "b-2"}));
  EXPECT_EQ(bucket_names(catalog.list_buckets("b-", "b-1", 100)), (std::vector<std::string>{"b-10", "b-2"}));
  EXPECT_EQ(bucket_names(catalog.list_buckets("b-", "a", 2)), (std::vector<std::string>{"b-1", "b-10"}));
  EXPECT_TRUE(catalog.list_buckets("b-", "b-2", 100).empty());
  EXPECT_TRUE(catalog.list_buckets("", "", 0).empty());
  EXPECT_TRUE(catalog.list_buckets("d", "", 100).empty());
}

TEST(Catalog, ReplaceBucketsSwapsTheWholeTable) {
  StreamCatalog catalog = catalog_with({"a"});
  ASSERT_TRUE(catalog.apply(bucket_op(CatalogOp::kBucketCreate, "old")).is_ok());
  BucketInfo fresh;
  fresh.name = "new";
  fresh.created_ms = 9;
  catalog.replace_buckets({fresh});
  EXPECT_EQ(catalog.find_bucket("old"), nullptr);
  ASSERT_NE(catalog.find_bucket("new"), nullptr);
  EXPECT_EQ(*catalog.find_bucket("new"), fresh);
  EXPECT_EQ(catalog.size(), 1u) << "streams stay";
}

TEST(Catalog, ReplayOfEncodedBucketOpsRebuildsTheTable) {
  StreamCatalog live;
  std::vector<std::string> log;
  auto run = [&](const CatalogMutation& m) {
    ASSERT_TRUE(live.apply(m).is_ok());
    log.push_back(encode_mutation(m));
  };
  run(bucket_op(CatalogOp::kBucketCreate, "keep", {}, 1));
  run(bucket_op(CatalogOp::kBucketCreate, "gone", {}, 2));
  run(create(1, "keep", "s"));
  run(bucket_op(CatalogOp::kBucketReconfigure, "keep", max_bucket_config()));
  run(bucket_op(CatalogOp::kBucketDelete, "gone"));
  StreamCatalog replayed;
  for (const std::string& bytes : log) {
    Result<CatalogMutation> m = decode_mutation(bytes);
    ASSERT_TRUE(m.is_ok()) << m.status().to_string();
    ASSERT_TRUE(replayed.apply(*m).is_ok());
  }
  EXPECT_EQ(bucket_names(replayed.list_buckets("", "", 10)), (std::vector<std::string>{"keep"}));
  EXPECT_EQ(*replayed.find_bucket("keep"), *live.find_bucket("keep"));
  EXPECT_EQ(*replayed.find(1), *live.find(1));
}

}  // namespace
}  // namespace runnel
