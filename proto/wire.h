#pragma once
// The binary protocol's frames and messages (proto/PROTOCOL.md), shared by
// the server (net/) and the client library (proto/client/). Encoding appends
// to a std::string; decoding reads from a string_view and never trusts a
// length: every read is bounds-checked, and a body must be consumed exactly.
// Decoded string_views point into the input buffer.

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "core/bytes.h"
#include "core/status.h"
#include "proto/values.h"

namespace runnel::wire {

inline constexpr uint16_t kVersion = 1;
inline constexpr size_t kFrameHeaderBytes = 16;
inline constexpr uint32_t kDefaultFrameBytesMax = 2u << 20;
inline constexpr size_t kStrBytesMax = 65535;

enum class Opcode : uint16_t {
  kHello = 0x0001,
  kPing = 0x0002,
  kCreateBucket = 0x0010,
  kListBuckets = 0x0011,
  kGetBucket = 0x0012,
  kReconfigureBucket = 0x0013,
  kDeleteBucket = 0x0014,
  kCreateStream = 0x0020,
  kListStreams = 0x0021,
  kGetStream = 0x0022,
  kReconfigureStream = 0x0023,
  kDeleteStream = 0x0024,
  kSealStream = 0x0025,
  kTrimStream = 0x0026,
  kFenceStream = 0x0027,
  kCheckTail = 0x0028,
  kAppend = 0x0030,
  kRead = 0x0031,
  kSubscribe = 0x0040,
  kSubscriptionData = 0x0041,
  kCredit = 0x0042,
  kUnsubscribe = 0x0043,
  kIssueToken = 0x0050,
  kListTokens = 0x0051,
  kRevokeToken = 0x0052,
};
const char* opcode_name(uint16_t opcode);  // "?" when unknown.

enum FrameFlags : uint16_t {
  kFlagResponse = 1,
  kFlagError = 2,
  kFlagPush = 4,
};
inline constexpr uint16_t kFlagsKnown = kFlagResponse | kFlagError | kFlagPush;

struct FrameHeader {
  uint32_t frame_bytes = 0;  // Header included.
  uint16_t opcode = 0;
  uint16_t flags = 0;
  uint32_t request_id = 0;
  uint32_t reserved = 0;
};
static_assert(sizeof(FrameHeader) == kFrameHeaderBytes);
static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "the wire format is little-endian");

// The header at the start of `bytes` (at least kFrameHeaderBytes long).
inline FrameHeader read_frame_header(const char* bytes) {
  FrameHeader h;
  std::memcpy(&h, bytes, kFrameHeaderBytes);
  return h;
}
// kInvalidArgument / kTooLarge for a header no valid frame has.
Status check_frame_header(const FrameHeader& header, uint32_t frame_bytes_max);

// The shard that owns a stream (PROTOCOL.md, "Where streams live"):
// XXH3-64 of "bucket/stream" modulo the shard count.
uint32_t owner_shard(std::string_view bucket, std::string_view stream, uint32_t shard_count);

// --- primitives ---------------------------------------------------------

class Writer {
 public:
  explicit Writer(std::string* out) : out_(out) {}
  void u8(uint8_t v) { put_le(out_, v); }
  void u16(uint16_t v) { put_le(out_, v); }
  void u32(uint32_t v) { put_le(out_, v); }
  void u64(uint64_t v) { put_le(out_, v); }
  void boolean(bool v) { u8(v ? 1 : 0); }
  void str(std::string_view s);    // Asserts s.size() <= kStrBytesMax (names are validated before).
  void bytes(std::string_view b);  // u32 length.
  std::string* out() { return out_; }

 private:
  std::string* out_;
};

class Reader {
 public:
  explicit Reader(std::string_view in) : in_(in) {}
  bool u8(uint8_t* v) { return fixed(v); }
  bool u16(uint16_t* v) { return fixed(v); }
  bool u32(uint32_t* v) { return fixed(v); }
  bool u64(uint64_t* v) { return fixed(v); }
  bool boolean(bool* v);
  bool str(std::string_view* s);
  bool bytes(std::string_view* b);
  // A count of items each at least `item_min_bytes` long: refuses counts the
  // remaining bytes cannot hold, so a hostile count never drives allocation.
  bool count(uint32_t* n, size_t item_min_bytes);
  bool done() const { return ok_ && in_.empty(); }  // Everything read, nothing left.
  bool ok() const { return ok_; }

 private:
  // Every fixed-width integer goes through core/bytes.h; a failed read
  // consumes nothing and fails every read after it.
  template <typename T>
  bool fixed(T* v) {
    if (!ok_ || !take_le(&in_, v)) return ok_ = false;
    return true;
  }
  std::string_view in_;
  bool ok_ = true;
};

// Starts a frame at the end of `out`; finish_frame patches its length.
size_t begin_frame(std::string* out, Opcode opcode, uint16_t flags, uint32_t request_id);
void finish_frame(std::string* out, size_t frame_start);

// --- values ---------------------------------------------------------------
// StreamConfig, StreamInfo, BucketConfig, BucketInfo and AppendAck are the
// data model's own (proto/values.h); the rest are the wire's.

struct Start {
  enum Kind : uint8_t { kSeqNum = 0, kTimestamp = 1, kTailOffset = 2 };
  uint8_t kind = kSeqNum;
  uint64_t value = 0;
  bool operator==(const Start&) const = default;
};

struct Batch {
  uint64_t base_seq = 0;
  uint32_t record_count = 0;
  uint64_t first_timestamp = 0;
  uint64_t last_timestamp = 0;
  uint64_t arrival_timestamp = 0;
  uint16_t flags = 0;
  uint64_t payload_checksum = 0;
  std::string_view payload;  // Into the frame (decode) or the caller's bytes (encode).
  bool operator==(const Batch& o) const {
    return base_seq == o.base_seq && record_count == o.record_count && first_timestamp == o.first_timestamp &&
           last_timestamp == o.last_timestamp && arrival_timestamp == o.arrival_timestamp && flags == o.flags &&
           payload_checksum == o.payload_checksum && payload == o.payload;
  }
};

// --- messages -------------------------------------------------------------

struct Hello {
  uint16_t min_version = kVersion;
  uint16_t max_version = kVersion;
  std::string_view client_name;
  std::string_view token;
};
struct HelloOk {
  uint16_t version = kVersion;
  uint32_t frame_bytes_max = kDefaultFrameBytesMax;
  uint32_t heartbeat_ms = 0;
  uint32_t shard = 0;
  uint32_t shard_count = 0;
  std::string_view server_version;
};
struct ErrorBody {
  uint16_t code = 0;
  std::string_view message;
  uint64_t detail = 0;
};

struct BucketName {  // GET_BUCKET, DELETE_BUCKET.
  std::string_view bucket;
};
struct BucketWithConfig {  // CREATE_BUCKET, RECONFIGURE_BUCKET.
  std::string_view bucket;
  BucketConfig config;
};
struct ListRequest {  // LIST_BUCKETS (bucket unused), LIST_STREAMS.
  std::string_view bucket;
  std::string_view prefix;
  std::string_view start_after;
  uint32_t limit = 0;
};
struct StreamName {  // GET/DELETE/SEAL_STREAM, CHECK_TAIL.
  std::string_view bucket;
  std::string_view stream;
};
struct CreateStream {
  std::string_view bucket;
  std::string_view stream;
  bool use_bucket_default = true;
  StreamConfig config;
};
struct ReconfigureStream {
  std::string_view bucket;
  std::string_view stream;
  StreamConfig config;
};
struct TrimStream {
  std::string_view bucket;
  std::string_view stream;
  uint64_t trim_seq = 0;
};
struct FenceStream {
  std::string_view bucket;
  std::string_view stream;
  std::string_view token;
};
struct TailAnswer {
  uint64_t tail = 0;
  uint64_t last_timestamp = 0;
};

struct Append {
  enum Options : uint8_t { kHasMatchSeqNum = 1, kHasFencingToken = 2, kHasProducer = 4 };
  std::string_view bucket;
  std::string_view stream;
  uint8_t options = 0;
  uint64_t match_seq_num = 0;
  std::string_view fencing_token;
  uint64_t producer_id = 0;
  uint64_t producer_seq = 0;
  uint32_t record_count = 0;
  uint64_t payload_checksum = 0;
  std::string_view payload;
};

struct Read {
  std::string_view bucket;
  std::string_view stream;
  Start start;
  uint32_t max_records = 0;
  uint32_t max_bytes = 0;
  uint64_t until_timestamp = 0;
  uint32_t wait_ms = 0;
};
struct ReadAnswer {  // READ answer and SUBSCRIPTION_DATA.
  uint64_t tail = 0;
  uint32_t first_record_index = 0;
  std::vector<Batch> batches;
};

struct Subscribe {
  std::string_view bucket;
  std::string_view stream;
  Start start;
  uint32_t credit_bytes = 0;
  uint32_t heartbeat_ms = 0;
};
struct Credit {
  uint32_t subscription_id = 0;
  uint32_t bytes = 0;
};
struct Unsubscribe {
  uint32_t subscription_id = 0;
};

// ISSUE_TOKEN's request is a TokenInfo (created_ms and issued_by are the
// server's to set); its answer carries the secret, shown this once.
struct IssuedToken {
  TokenInfo info;
  std::string_view token;
};
struct TokenId {  // REVOKE_TOKEN.
  std::string_view id;
};

template <typename T>
struct ListAnswer {  // LIST_BUCKETS, LIST_STREAMS, LIST_TOKENS.
  std::vector<T> items;
  bool more = false;
};

// encode(w, m) appends m's body; decode(r, &m) reads it (false: malformed).
// decode_body() decodes a whole body and insists it was consumed exactly.
#define RUNNEL_WIRE_MESSAGE(T)         \
  void encode(Writer& w, const T& m); \
  bool decode(Reader& r, T* m);
RUNNEL_WIRE_MESSAGE(StreamConfig)
RUNNEL_WIRE_MESSAGE(StreamInfo)
RUNNEL_WIRE_MESSAGE(BucketConfig)
RUNNEL_WIRE_MESSAGE(BucketInfo)
RUNNEL_WIRE_MESSAGE(Start)
RUNNEL_WIRE_MESSAGE(Batch)
RUNNEL_WIRE_MESSAGE(Hello)
RUNNEL_WIRE_MESSAGE(HelloOk)
RUNNEL_WIRE_MESSAGE(ErrorBody)
RUNNEL_WIRE_MESSAGE(BucketName)
RUNNEL_WIRE_MESSAGE(BucketWithConfig)
RUNNEL_WIRE_MESSAGE(ListRequest)
RUNNEL_WIRE_MESSAGE(StreamName)
RUNNEL_WIRE_MESSAGE(CreateStream)
RUNNEL_WIRE_MESSAGE(ReconfigureStream)
RUNNEL_WIRE_MESSAGE(TrimStream)
RUNNEL_WIRE_MESSAGE(FenceStream)
RUNNEL_WIRE_MESSAGE(TailAnswer)
RUNNEL_WIRE_MESSAGE(Append)
RUNNEL_WIRE_MESSAGE(AppendAck)
RUNNEL_WIRE_MESSAGE(Read)
RUNNEL_WIRE_MESSAGE(ReadAnswer)
RUNNEL_WIRE_MESSAGE(Subscribe)
RUNNEL_WIRE_MESSAGE(Credit)
RUNNEL_WIRE_MESSAGE(Unsubscribe)
RUNNEL_WIRE_MESSAGE(ListAnswer<StreamInfo>)
RUNNEL_WIRE_MESSAGE(ListAnswer<BucketInfo>)
RUNNEL_WIRE_MESSAGE(NameScope)
RUNNEL_WIRE_MESSAGE(TokenInfo)
RUNNEL_WIRE_MESSAGE(IssuedToken)
RUNNEL_WIRE_MESSAGE(TokenId)
RUNNEL_WIRE_MESSAGE(ListAnswer<TokenInfo>)
#undef RUNNEL_WIRE_MESSAGE

template <typename T>
bool decode_body(std::string_view body, T* m) {
  Reader r(body);
  return decode(r, m) && r.done();
}

// `m` encoded as a frame body (a request's, for librunnel and the REST adapter).
template <typename T>
std::string body_of(const T& m) {
  std::string out;
  Writer w(&out);
  encode(w, m);
  return out;
}

// A Batch's fields and its payload's length: all encode(Writer, Batch) writes
// before the payload bytes (for senders that queue the payload separately).
void encode_batch_head(Writer& w, const Batch& m);

// A whole frame holding `m` as its body.
template <typename T>
void append_frame(std::string* out, Opcode opcode, uint16_t flags, uint32_t request_id, const T& m) {
  const size_t start = begin_frame(out, opcode, flags, request_id);
  Writer w(out);
  encode(w, m);
  finish_frame(out, start);
}
// An error answer to a request.
void append_error_frame(std::string* out, uint16_t opcode, uint32_t request_id, const Status& status,
                        uint16_t extra_flags = 0);

}  // namespace runnel::wire
