// Codec tests: every message round-trips (fixed cases and random ones, from
// a printed seed); every truncation and every trailing byte is refused;
// hostile counts are refused before anything is allocated for them.

#include "proto/wire.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <deque>
#include <random>

#include "core/test_seed.h"

namespace runnel::wire {
namespace {

// Encodes m, decodes it back, and checks that the decoded message encodes to
// the same bytes; also that every strict prefix and one extra byte fail.
// Bodies of decoded messages stay alive here: their string_views point into them.
std::deque<std::string> decoded_bodies;

template <typename T>
T roundtrip(const T& m) {
  const std::string& body = decoded_bodies.emplace_back(body_of(m));
  T back;
  EXPECT_TRUE(decode_body(body, &back));
  EXPECT_EQ(body_of(back), body);
  for (size_t n = 0; n < body.size(); n++) {
    T partial;
    EXPECT_FALSE(decode_body(std::string_view(body).substr(0, n), &partial)) << "prefix of " << n << " bytes";
  }
  T longer;
  EXPECT_FALSE(decode_body(body + "x", &longer)) << "a trailing byte must be refused";
  return back;
}

struct Random {
  std::mt19937_64 rng;
  std::deque<std::string> keep;  // Backing for string_views (a deque never moves its strings).
  uint64_t u64() { return rng() >> (rng() % 64); }
  uint32_t u32() { return static_cast<uint32_t>(u64()); }
  bool flip() { return rng() % 2 == 0; }
  std::string_view text(size_t max) {
    std::string s(rng() % (max + 1), '\0');
    for (char& c : s) c = static_cast<char>(rng());
    keep.push_back(std::move(s));
    return keep.back();
  }
  StreamConfig config() { return {static_cast<Timestamping>(rng() % 3), u64(), u64(), u64(), flip()}; }
  Start start() { return {static_cast<uint8_t>(rng() % 3), u64()}; }
  Batch batch() {
    Batch b;
    b.base_seq = u64();
    b.record_count = u32();
    b.first_timestamp = u64();
    b.last_timestamp = u64();
    b.arrival_timestamp = u64();
    b.flags = static_cast<uint16_t>(rng());
    b.payload_checksum = u64();
    b.payload = text(300);
    return b;
  }
};

TEST(Wire, FrameHeaderIsSixteenBytesAndPatchedWithItsLength) {
  std::string out = "prefix";
  Append a;
  a.bucket = "orders";
  a.stream = "eu/1";
  a.payload = "payload bytes";
  append_frame(&out, Opcode::kAppend, 0, 77, a);
  const FrameHeader h = read_frame_header(out.data() + 6);
  EXPECT_EQ(h.frame_bytes, out.size() - 6);
  EXPECT_EQ(h.opcode, static_cast<uint16_t>(Opcode::kAppend));
  EXPECT_EQ(h.request_id, 77u);
  EXPECT_TRUE(check_frame_header(h, kDefaultFrameBytesMax).is_ok());
  Append back;
  ASSERT_TRUE(decode_body(std::string_view(out).substr(6 + kFrameHeaderBytes), &back));
  EXPECT_EQ(back.bucket, "orders");
  EXPECT_EQ(back.stream, "eu/1");
  EXPECT_EQ(back.payload, "payload bytes");
}

TEST(Wire, BadFrameHeadersAreRefusedWithTheRightCode) {
  FrameHeader h;
  h.frame_bytes = 15;
  EXPECT_EQ(check_frame_header(h, 1024).code(), ErrorCode::kInvalidArgument);
  h.frame_bytes = 1025;
  EXPECT_EQ(check_frame_header(h, 1024).code(), ErrorCode::kTooLarge);
  h.frame_bytes = 16;
  h.flags = 8;
  EXPECT_EQ(check_frame_header(h, 1024).code(), ErrorCode::kInvalidArgument);
  h.flags = kFlagResponse | kFlagError;
  h.reserved = 1;
  EXPECT_EQ(check_frame_header(h, 1024).code(), ErrorCode::kInvalidArgument);
  h.reserved = 0;
  EXPECT_TRUE(check_frame_header(h, 1024).is_ok());
}

TEST(Wire, ErrorFramesCarryCodeMessageAndDetail) {
  std::string out;
  append_error_frame(&out, static_cast<uint16_t>(Opcode::kAppend), 9,
                     Status(ErrorCode::kSeqNumMismatch, "match_seq_num 3 is not the tail 5", 5));
  const FrameHeader h = read_frame_header(out.data());
  EXPECT_EQ(h.flags, kFlagResponse | kFlagError);
  EXPECT_EQ(h.request_id, 9u);
  ErrorBody e;
  ASSERT_TRUE(decode_body(std::string_view(out).substr(kFrameHeaderBytes), &e));
  EXPECT_EQ(e.code, 14);
  EXPECT_EQ(e.message, "match_seq_num 3 is not the tail 5");
  EXPECT_EQ(e.detail, 5u);
}

TEST(Wire, OutOfRangeEnumsAndBooleansAreRefused) {
  StreamConfig c;
  std::string body = body_of(c);
  body[0] = 3;  // timestamping 0..2
  StreamConfig back;
  EXPECT_FALSE(decode_body(body, &back));
  body = body_of(c);
  body.back() = 2;  // compress_lz4 is a bool
  EXPECT_FALSE(decode_body(body, &back));
  Start s;
  body = body_of(s);
  body[0] = 3;
  Start s_back;
  EXPECT_FALSE(decode_body(body, &s_back));
  Append a;
  body = body_of(a);
  body[4] = 8;  // options: bits 0..2 only (after two empty strs)
  Append a_back;
  EXPECT_FALSE(decode_body(body, &a_back));
}

TEST(Wire, HostileCountsAreRefusedBeforeAllocating) {
  std::string body;
  Writer w(&body);
  w.u64(1);           // tail
  w.u32(0);           // first_record_index
  w.u32(0xFFFFFFFF);  // batches: far more than the bytes could hold
  ReadAnswer r;
  EXPECT_FALSE(decode_body(body, &r));
  EXPECT_TRUE(r.batches.empty());
  std::string list;
  Writer lw(&list);
  lw.u32(100000000);
  lw.boolean(false);
  ListAnswer<StreamInfo> streams;
  EXPECT_FALSE(decode_body(list, &streams));
  EXPECT_TRUE(streams.items.empty());
}

TEST(Wire, EveryMessageRoundTripsWithRandomFields) {
  const uint64_t s = test_seed();
  SCOPED_TRACE(seed_trace(s));
  Random g{std::mt19937_64(s), {}};
  for (int i = 0; i < 30; i++) {
    roundtrip(g.config());
    roundtrip(g.start());
    roundtrip(g.batch());
    roundtrip(Hello{static_cast<uint16_t>(g.rng()), static_cast<uint16_t>(g.rng()), g.text(40), g.text(40)});
    roundtrip(HelloOk{static_cast<uint16_t>(g.rng()), g.u32(), g.u32(), g.u32(), g.u32(), g.text(20)});
    roundtrip(ErrorBody{static_cast<uint16_t>(g.rng()), g.text(100), g.u64()});
    roundtrip(BucketName{g.text(63)});
    roundtrip(BucketWithConfig{g.text(63), {g.config(), g.flip(), g.flip()}});
    roundtrip(ListRequest{g.text(63), g.text(50), g.text(50), g.u32()});
    roundtrip(StreamName{g.text(63), g.text(512)});
    roundtrip(CreateStream{g.text(63), g.text(512), g.flip(), g.config()});
    roundtrip(ReconfigureStream{g.text(63), g.text(512), g.config()});
    roundtrip(TrimStream{g.text(63), g.text(512), g.u64()});
    roundtrip(FenceStream{g.text(63), g.text(512), g.text(64)});
    roundtrip(TailAnswer{g.u64(), g.u64()});
    Append a{g.text(63), g.text(512), static_cast<uint8_t>(g.rng() % 8), g.u64(), g.text(64), g.u64(), g.u64(),
             g.u32(), g.u64(), g.text(2000)};
    Append a_back = roundtrip(a);
    EXPECT_EQ(a_back.payload, a.payload);
    EXPECT_EQ(a_back.match_seq_num, a.match_seq_num);
    roundtrip(AppendAck{g.u64(), g.u64(), g.u64(), g.u64(), g.u64()});
    roundtrip(Read{g.text(63), g.text(512), g.start(), g.u32(), g.u32(), g.u64(), g.u32()});
    ReadAnswer r{g.u64(), g.u32(), {}};
    for (size_t n = g.rng() % 5; n > 0; n--) r.batches.push_back(g.batch());
    ReadAnswer r_back = roundtrip(r);
    EXPECT_EQ(r_back.batches, r.batches);
    roundtrip(Subscribe{g.text(63), g.text(512), g.start(), g.u32(), g.u32()});
    roundtrip(Credit{g.u32(), g.u32()});
    roundtrip(Unsubscribe{g.u32()});
    ListAnswer<StreamInfo> streams;
    for (size_t n = g.rng() % 4; n > 0; n--) {
      streams.items.push_back({std::string(g.text(63)), std::string(g.text(512)), g.config(), g.u64(), g.flip(),
                               g.flip(), g.u64(), g.u64()});
    }
    streams.more = g.flip();
    EXPECT_EQ(roundtrip(streams).items, streams.items);
    ListAnswer<BucketInfo> buckets;
    for (size_t n = g.rng() % 4; n > 0; n--) {
      buckets.items.push_back({std::string(g.text(63)), {g.config(), g.flip(), g.flip()}, g.u64()});
    }
    EXPECT_EQ(roundtrip(buckets).items, buckets.items);
    auto token = [&] {
      TokenInfo t;
      t.id = std::string(g.text(64));
      t.buckets = {std::string(g.text(63)), g.flip()};
      t.streams = {std::string(g.text(512)), g.flip()};
      t.tokens = {std::string(g.text(64)), g.flip()};
      t.ops = g.u32();
      t.expires_ms = g.u64();
      t.auto_prefix_streams = g.flip();
      t.limits = {g.u64(), g.u64(), g.u64(), g.u64(), g.u32()};
      t.created_ms = g.u64();
      t.issued_by = std::string(g.text(64));
      return t;
    };
    const TokenInfo t = token();
    EXPECT_EQ(roundtrip(t), t);
    IssuedToken issued{t, g.text(80)};
    EXPECT_EQ(roundtrip(issued).info, t);
    roundtrip(TokenId{g.text(64)});
    ListAnswer<TokenInfo> tokens;
    for (size_t n = g.rng() % 4; n > 0; n--) tokens.items.push_back(token());
    tokens.more = g.flip();
    EXPECT_EQ(roundtrip(tokens).items, tokens.items);
  }
}

}  // namespace
}  // namespace runnel::wire
