#include "proto/wire.h"

#include <fmt/format.h>
#define XXH_STATIC_LINKING_ONLY  // XXH3_state_t on the stack.
#include <xxhash.h>

#include "core/assert.h"

namespace runnel::wire {

const char* opcode_name(uint16_t opcode) {
  switch (static_cast<Opcode>(opcode)) {
    case Opcode::kHello: return "hello";
    case Opcode::kPing: return "ping";
    case Opcode::kCreateBucket: return "create_bucket";
    case Opcode::kListBuckets: return "list_buckets";
    case Opcode::kGetBucket: return "get_bucket";
    case Opcode::kReconfigureBucket: return "reconfigure_bucket";
    case Opcode::kDeleteBucket: return "delete_bucket";
    case Opcode::kCreateStream: return "create_stream";
    case Opcode::kListStreams: return "list_streams";
    case Opcode::kGetStream: return "get_stream";
    case Opcode::kReconfigureStream: return "reconfigure_stream";
    case Opcode::kDeleteStream: return "delete_stream";
    case Opcode::kSealStream: return "seal_stream";
    case Opcode::kTrimStream: return "trim_stream";
    case Opcode::kFenceStream: return "fence_stream";
    case Opcode::kCheckTail: return "check_tail";
    case Opcode::kAppend: return "append";
    case Opcode::kRead: return "read";
    case Opcode::kSubscribe: return "subscribe";
    case Opcode::kSubscriptionData: return "subscription_data";
    case Opcode::kCredit: return "credit";
    case Opcode::kUnsubscribe: return "unsubscribe";
    case Opcode::kIssueToken:
      return "issue_token";
    case Opcode::kListTokens:
      return "list_tokens";
    case Opcode::kRevokeToken:
      return "revoke_token";
  }
  return "?";
}

uint32_t owner_shard(std::string_view bucket, std::string_view stream, uint32_t shard_count) {
  XXH3_state_t state;
  XXH3_64bits_reset(&state);
  XXH3_64bits_update(&state, bucket.data(), bucket.size());
  XXH3_64bits_update(&state, "/", 1);
  XXH3_64bits_update(&state, stream.data(), stream.size());
  return static_cast<uint32_t>(XXH3_64bits_digest(&state) % shard_count);
}

Status check_frame_header(const FrameHeader& h, uint32_t frame_bytes_max) {
  if (h.frame_bytes < kFrameHeaderBytes) {
    return Status(ErrorCode::kInvalidArgument, fmt::format("frame length {} is below the 16-byte header", h.frame_bytes));
  }
  if (h.frame_bytes > frame_bytes_max) {
    return Status(ErrorCode::kTooLarge, fmt::format("frame of {} bytes is over the maximum {}", h.frame_bytes,
                                                    frame_bytes_max));
  }
  if ((h.flags & ~kFlagsKnown) != 0) {
    return Status(ErrorCode::kInvalidArgument, fmt::format("frame has unknown flags {:#06x}", h.flags));
  }
  if (h.reserved != 0) return Status(ErrorCode::kInvalidArgument, "frame header's reserved field is not 0");
  return Status::ok();
}

void Writer::str(std::string_view s) {
  RUNNEL_ASSERT(s.size() <= kStrBytesMax);
  u16(static_cast<uint16_t>(s.size()));
  out_->append(s);
}

void Writer::bytes(std::string_view b) {
  RUNNEL_ASSERT(b.size() <= UINT32_MAX);
  u32(static_cast<uint32_t>(b.size()));
  out_->append(b);
}

bool Reader::boolean(bool* v) {
  uint8_t b = 0;
  if (!u8(&b) || b > 1) return ok_ = false;
  *v = b == 1;
  return true;
}

bool Reader::str(std::string_view* s) {
  uint16_t n = 0;
  if (!u16(&n) || in_.size() < n) return ok_ = false;
  *s = in_.substr(0, n);
  in_.remove_prefix(n);
  return true;
}

bool Reader::bytes(std::string_view* b) {
  uint32_t n = 0;
  if (!u32(&n) || in_.size() < n) return ok_ = false;
  *b = in_.substr(0, n);
  in_.remove_prefix(n);
  return true;
}

bool Reader::count(uint32_t* n, size_t item_min_bytes) {
  if (!u32(n)) return false;
  if (item_min_bytes > 0 && *n > in_.size() / item_min_bytes) return ok_ = false;
  return true;
}

size_t begin_frame(std::string* out, Opcode opcode, uint16_t flags, uint32_t request_id) {
  const size_t start = out->size();
  FrameHeader h;
  h.opcode = static_cast<uint16_t>(opcode);
  h.flags = flags;
  h.request_id = request_id;
  out->append(reinterpret_cast<const char*>(&h), kFrameHeaderBytes);
  return start;
}

void finish_frame(std::string* out, size_t frame_start) {
  const size_t n = out->size() - frame_start;
  RUNNEL_ASSERT(n <= UINT32_MAX);
  const uint32_t frame_bytes = static_cast<uint32_t>(n);
  store_le(out->data() + frame_start, frame_bytes);
}

void append_error_frame(std::string* out, uint16_t opcode, uint32_t request_id, const Status& status,
                        uint16_t extra_flags) {
  ErrorBody e;
  e.code = static_cast<uint16_t>(status.code());
  // Messages longer than a str can hold are cut (they are for humans).
  std::string_view message = status.message();
  if (message.size() > 4096) message = message.substr(0, 4096);
  e.message = message;
  e.detail = status.detail();
  const size_t start = begin_frame(out, static_cast<Opcode>(opcode), kFlagResponse | kFlagError | extra_flags,
                                   request_id);
  Writer w(out);
  encode(w, e);
  finish_frame(out, start);
}

// --- values ---------------------------------------------------------------

void encode(Writer& w, const StreamConfig& m) {
  w.u8(static_cast<uint8_t>(m.timestamping));
  w.u64(m.retention_age_ms);
  w.u64(m.retention_bytes);
  w.u64(m.delete_on_empty_ms);
  w.boolean(m.compress_lz4);
}
bool decode(Reader& r, StreamConfig* m) {
  uint8_t timestamping = 0;
  if (!r.u8(&timestamping) || timestamping > kTimestampingMax) return false;
  m->timestamping = static_cast<Timestamping>(timestamping);
  return r.u64(&m->retention_age_ms) && r.u64(&m->retention_bytes) && r.u64(&m->delete_on_empty_ms) &&
         r.boolean(&m->compress_lz4);
}

void encode(Writer& w, const StreamInfo& m) {
  w.str(m.bucket);
  w.str(m.name);
  encode(w, m.config);
  w.u64(m.created_ms);
  w.boolean(m.sealed);
  w.boolean(m.fenced);
  w.u64(m.trim_seq);
  w.u64(m.tail);
  w.u64(m.appended_records_last_minute);
  w.u64(m.appended_bytes_last_minute);
}
bool decode(Reader& r, StreamInfo* m) {
  std::string_view bucket, name;
  if (!r.str(&bucket) || !r.str(&name) || !decode(r, &m->config) || !r.u64(&m->created_ms) ||
      !r.boolean(&m->sealed) || !r.boolean(&m->fenced) || !r.u64(&m->trim_seq) || !r.u64(&m->tail) ||
      !r.u64(&m->appended_records_last_minute) || !r.u64(&m->appended_bytes_last_minute)) {
    return false;
  }
  m->bucket.assign(bucket);
  m->name.assign(name);
  return true;
}

void encode(Writer& w, const BucketConfig& m) {
  encode(w, m.default_stream_config);
  w.boolean(m.create_stream_on_append);
  w.boolean(m.create_stream_on_read);
}
bool decode(Reader& r, BucketConfig* m) {
  return decode(r, &m->default_stream_config) && r.boolean(&m->create_stream_on_append) &&
         r.boolean(&m->create_stream_on_read);
}

void encode(Writer& w, const BucketInfo& m) {
  w.str(m.name);
  encode(w, m.config);
  w.u64(m.created_ms);
}
bool decode(Reader& r, BucketInfo* m) {
  std::string_view name;
  if (!r.str(&name) || !decode(r, &m->config) || !r.u64(&m->created_ms)) return false;
  m->name.assign(name);
  return true;
}

void encode(Writer& w, const Start& m) {
  w.u8(m.kind);
  w.u64(m.value);
}
bool decode(Reader& r, Start* m) { return r.u8(&m->kind) && m->kind <= Start::kTailOffset && r.u64(&m->value); }

void encode_batch_head(Writer& w, const Batch& m) {
  w.u64(m.base_seq);
  w.u32(m.record_count);
  w.u64(m.first_timestamp);
  w.u64(m.last_timestamp);
  w.u64(m.arrival_timestamp);
  w.u16(m.flags);
  w.u64(m.payload_checksum);
  RUNNEL_ASSERT(m.payload.size() <= UINT32_MAX);
  w.u32(static_cast<uint32_t>(m.payload.size()));
}
void encode(Writer& w, const Batch& m) {
  encode_batch_head(w, m);
  w.out()->append(m.payload);
}
bool decode(Reader& r, Batch* m) {
  return r.u64(&m->base_seq) && r.u32(&m->record_count) && r.u64(&m->first_timestamp) &&
         r.u64(&m->last_timestamp) && r.u64(&m->arrival_timestamp) && r.u16(&m->flags) &&
         r.u64(&m->payload_checksum) && r.bytes(&m->payload);
}

// --- messages -------------------------------------------------------------

void encode(Writer& w, const Hello& m) {
  w.u16(m.min_version);
  w.u16(m.max_version);
  w.str(m.client_name);
  w.str(m.token);
}
bool decode(Reader& r, Hello* m) {
  return r.u16(&m->min_version) && r.u16(&m->max_version) && r.str(&m->client_name) && r.str(&m->token);
}

void encode(Writer& w, const HelloOk& m) {
  w.u16(m.version);
  w.u32(m.frame_bytes_max);
  w.u32(m.heartbeat_ms);
  w.u32(m.shard);
  w.u32(m.shard_count);
  w.str(m.server_version);
}
bool decode(Reader& r, HelloOk* m) {
  return r.u16(&m->version) && r.u32(&m->frame_bytes_max) && r.u32(&m->heartbeat_ms) && r.u32(&m->shard) &&
         r.u32(&m->shard_count) && r.str(&m->server_version);
}

void encode(Writer& w, const ErrorBody& m) {
  w.u16(m.code);
  w.str(m.message);
  w.u64(m.detail);
}
bool decode(Reader& r, ErrorBody* m) { return r.u16(&m->code) && r.str(&m->message) && r.u64(&m->detail); }

void encode(Writer& w, const BucketName& m) { w.str(m.bucket); }
bool decode(Reader& r, BucketName* m) { return r.str(&m->bucket); }

void encode(Writer& w, const BucketWithConfig& m) {
  w.str(m.bucket);
  encode(w, m.config);
}
bool decode(Reader& r, BucketWithConfig* m) { return r.str(&m->bucket) && decode(r, &m->config); }

void encode(Writer& w, const ListRequest& m) {
  w.str(m.bucket);
  w.str(m.prefix);
  w.str(m.start_after);
  w.u32(m.limit);
}
bool decode(Reader& r, ListRequest* m) {
  return r.str(&m->bucket) && r.str(&m->prefix) && r.str(&m->start_after) && r.u32(&m->limit);
}

void encode(Writer& w, const StreamName& m) {
  w.str(m.bucket);
  w.str(m.stream);
}
bool decode(Reader& r, StreamName* m) { return r.str(&m->bucket) && r.str(&m->stream); }

void encode(Writer& w, const CreateStream& m) {
  w.str(m.bucket);
  w.str(m.stream);
  w.boolean(m.use_bucket_default);
  encode(w, m.config);
}
bool decode(Reader& r, CreateStream* m) {
  return r.str(&m->bucket) && r.str(&m->stream) && r.boolean(&m->use_bucket_default) && decode(r, &m->config);
}

void encode(Writer& w, const ReconfigureStream& m) {
  w.str(m.bucket);
  w.str(m.stream);
  encode(w, m.config);
}
bool decode(Reader& r, ReconfigureStream* m) { return r.str(&m->bucket) && r.str(&m->stream) && decode(r, &m->config); }

void encode(Writer& w, const TrimStream& m) {
  w.str(m.bucket);
  w.str(m.stream);
  w.u64(m.trim_seq);
}
bool decode(Reader& r, TrimStream* m) { return r.str(&m->bucket) && r.str(&m->stream) && r.u64(&m->trim_seq); }

void encode(Writer& w, const FenceStream& m) {
  w.str(m.bucket);
  w.str(m.stream);
  w.str(m.token);
}
bool decode(Reader& r, FenceStream* m) { return r.str(&m->bucket) && r.str(&m->stream) && r.str(&m->token); }

void encode(Writer& w, const TailAnswer& m) {
  w.u64(m.tail);
  w.u64(m.last_timestamp);
}
bool decode(Reader& r, TailAnswer* m) { return r.u64(&m->tail) && r.u64(&m->last_timestamp); }

void encode(Writer& w, const Append& m) {
  w.str(m.bucket);
  w.str(m.stream);
  w.u8(m.options);
  w.u64(m.match_seq_num);
  w.str(m.fencing_token);
  w.u64(m.producer_id);
  w.u64(m.producer_seq);
  w.u32(m.record_count);
  w.u64(m.payload_checksum);
  w.bytes(m.payload);
}
bool decode(Reader& r, Append* m) {
  return r.str(&m->bucket) && r.str(&m->stream) && r.u8(&m->options) && (m->options & ~7u) == 0 &&
         r.u64(&m->match_seq_num) && r.str(&m->fencing_token) && r.u64(&m->producer_id) &&
         r.u64(&m->producer_seq) && r.u32(&m->record_count) && r.u64(&m->payload_checksum) && r.bytes(&m->payload);
}

void encode(Writer& w, const AppendAck& m) {
  w.u64(m.start_seq);
  w.u64(m.end_seq);
  w.u64(m.start_timestamp);
  w.u64(m.end_timestamp);
  w.u64(m.tail);
}
bool decode(Reader& r, AppendAck* m) {
  return r.u64(&m->start_seq) && r.u64(&m->end_seq) && r.u64(&m->start_timestamp) && r.u64(&m->end_timestamp) &&
         r.u64(&m->tail);
}

void encode(Writer& w, const Read& m) {
  w.str(m.bucket);
  w.str(m.stream);
  encode(w, m.start);
  w.u32(m.max_records);
  w.u32(m.max_bytes);
  w.u64(m.until_timestamp);
  w.u32(m.wait_ms);
}
bool decode(Reader& r, Read* m) {
  return r.str(&m->bucket) && r.str(&m->stream) && decode(r, &m->start) && r.u32(&m->max_records) &&
         r.u32(&m->max_bytes) && r.u64(&m->until_timestamp) && r.u32(&m->wait_ms);
}

// The smallest encoded Batch: its fixed fields and an empty payload.
constexpr size_t kBatchMinBytes = 8 + 4 + 8 + 8 + 8 + 2 + 8 + 4;

void encode(Writer& w, const ReadAnswer& m) {
  w.u64(m.tail);
  w.u32(m.first_record_index);
  w.u32(static_cast<uint32_t>(m.batches.size()));
  for (const Batch& b : m.batches) encode(w, b);
}
bool decode(Reader& r, ReadAnswer* m) {
  uint32_t n = 0;
  if (!r.u64(&m->tail) || !r.u32(&m->first_record_index) || !r.count(&n, kBatchMinBytes)) return false;
  m->batches.resize(n);
  for (Batch& b : m->batches) {
    if (!decode(r, &b)) return false;
  }
  return true;
}

void encode(Writer& w, const Subscribe& m) {
  w.str(m.bucket);
  w.str(m.stream);
  encode(w, m.start);
  w.u32(m.credit_bytes);
  w.u32(m.heartbeat_ms);
}
bool decode(Reader& r, Subscribe* m) {
  return r.str(&m->bucket) && r.str(&m->stream) && decode(r, &m->start) && r.u32(&m->credit_bytes) &&
         r.u32(&m->heartbeat_ms);
}

void encode(Writer& w, const Credit& m) {
  w.u32(m.subscription_id);
  w.u32(m.bytes);
}
bool decode(Reader& r, Credit* m) { return r.u32(&m->subscription_id) && r.u32(&m->bytes); }

void encode(Writer& w, const Unsubscribe& m) { w.u32(m.subscription_id); }
bool decode(Reader& r, Unsubscribe* m) { return r.u32(&m->subscription_id); }

void encode(Writer& w, const NameScope& m) {
  w.str(m.value);
  w.boolean(m.prefix);
}
bool decode(Reader& r, NameScope* m) {
  std::string_view value;
  if (!r.str(&value) || !r.boolean(&m->prefix)) return false;
  m->value.assign(value);
  return true;
}

void encode(Writer& w, const TokenInfo& m) {
  w.str(m.id);
  encode(w, m.buckets);
  encode(w, m.streams);
  encode(w, m.tokens);
  w.u32(m.ops);
  w.u64(m.expires_ms);
  w.boolean(m.auto_prefix_streams);
  w.u64(m.limits.append_bytes_per_s);
  w.u64(m.limits.append_records_per_s);
  w.u64(m.limits.read_bytes_per_s);
  w.u64(m.limits.read_records_per_s);
  w.u32(m.limits.connections_max);
  w.u64(m.created_ms);
  w.str(m.issued_by);
}
bool decode(Reader& r, TokenInfo* m) {
  std::string_view id, issued_by;
  if (!r.str(&id) || !decode(r, &m->buckets) || !decode(r, &m->streams) || !decode(r, &m->tokens) || !r.u32(&m->ops) ||
      !r.u64(&m->expires_ms) || !r.boolean(&m->auto_prefix_streams) || !r.u64(&m->limits.append_bytes_per_s) ||
      !r.u64(&m->limits.append_records_per_s) || !r.u64(&m->limits.read_bytes_per_s) ||
      !r.u64(&m->limits.read_records_per_s) || !r.u32(&m->limits.connections_max) || !r.u64(&m->created_ms) ||
      !r.str(&issued_by)) {
    return false;
  }
  m->id.assign(id);
  m->issued_by.assign(issued_by);
  return true;
}

void encode(Writer& w, const IssuedToken& m) {
  encode(w, m.info);
  w.str(m.token);
}
bool decode(Reader& r, IssuedToken* m) { return decode(r, &m->info) && r.str(&m->token); }

void encode(Writer& w, const TokenId& m) { w.str(m.id); }
bool decode(Reader& r, TokenId* m) { return r.str(&m->id); }

namespace {

// The smallest encoded TokenInfo (empty strings).
constexpr size_t kTokenInfoMinBytes = 2 + 3 * (2 + 1) + 4 + 8 + 1 + 4 * 8 + 4 + 8 + 2;

// The smallest encoded StreamInfo / BucketInfo (empty names).
constexpr size_t kStreamConfigBytes = 1 + 8 + 8 + 8 + 1;
constexpr size_t kStreamInfoMinBytes = 2 + 2 + kStreamConfigBytes + 8 + 1 + 1 + 8 + 8 + 8 + 8;
constexpr size_t kBucketInfoMinBytes = 2 + kStreamConfigBytes + 1 + 1 + 8;

template <typename T>
void encode_list(Writer& w, const ListAnswer<T>& m) {
  w.u32(static_cast<uint32_t>(m.items.size()));
  for (const T& item : m.items) encode(w, item);
  w.boolean(m.more);
}

template <typename T>
bool decode_list(Reader& r, ListAnswer<T>* m, size_t item_min_bytes) {
  uint32_t n = 0;
  if (!r.count(&n, item_min_bytes)) return false;
  m->items.resize(n);
  for (T& item : m->items) {
    if (!decode(r, &item)) return false;
  }
  return r.boolean(&m->more);
}

}  // namespace

void encode(Writer& w, const ListAnswer<StreamInfo>& m) { encode_list(w, m); }
bool decode(Reader& r, ListAnswer<StreamInfo>* m) { return decode_list(r, m, kStreamInfoMinBytes); }
void encode(Writer& w, const ListAnswer<BucketInfo>& m) { encode_list(w, m); }
bool decode(Reader& r, ListAnswer<BucketInfo>* m) { return decode_list(r, m, kBucketInfoMinBytes); }
void encode(Writer& w, const ListAnswer<TokenInfo>& m) { encode_list(w, m); }
bool decode(Reader& r, ListAnswer<TokenInfo>* m) { return decode_list(r, m, kTokenInfoMinBytes); }

}  // namespace runnel::wire
