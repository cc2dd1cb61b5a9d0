#include "storage/catalog.h"

#include <fmt/format.h>

#include <algorithm>
#include <limits>

#include "core/assert.h"
#include "core/bytes.h"
#include "core/text.h"

namespace runnel {

namespace {

// Encoding of a mutation (little-endian; every field fixed-width except the
// u16-length-prefixed strings):
//
//   all ops      u8 version (kMutationVersion), u8 op
//   stream ops   u64 id, then:
//   kCreate      u16 len + bucket, u16 len + name, config, u64 created_ms,
//                u8 sealed, u16 len + fencing_token, u64 trim_seq
//   kReconfigure config
//   kDelete      (nothing more)
//   kSeal        (nothing more)
//   kFence       u16 len + fencing_token
//   kTrim        u64 trim_seq
//   kSnapshotBegin, kSnapshotEnd (nothing more)
//   bucket ops (no id):
//   kBucketCreate      u16 len + name, bucket config, u64 created_ms
//   kBucketReconfigure u16 len + name, bucket config
//   kBucketDelete      u16 len + name
//   token ops (no id):
//   kTokenIssue        u16 len + token id, token (below)
//   kTokenRevoke       u16 len + token id
//
//   config       u8 timestamping (0..2), u64 retention_age_ms,
//                u64 retention_bytes, u64 delete_on_empty_ms, u8 compress_lz4
//   bucket config  config (the default stream config),
//                u8 create_stream_on_append, u8 create_stream_on_read
//   token        scope buckets, scope streams, scope tokens, u32 ops,
//                u64 expires_ms, u8 auto_prefix_streams,
//                u64 append_bytes_per_s, u64 append_records_per_s,
//                u64 read_bytes_per_s, u64 read_records_per_s,
//                u32 connections_max, u64 created_ms, u16 len + issued_by,
//                u16 len + secret hash (32 bytes)
//   scope        u16 len + value, u8 prefix
//
// Decoding is strict — bools are 0 or 1, no trailing bytes, names valid — so
// a decoded mutation re-encodes to exactly the bytes it came from.
constexpr uint8_t kMutationVersion = 1;

constexpr size_t kBucketBytesMin = 3;
constexpr size_t kBucketBytesMax = 63;
constexpr size_t kStreamNameBytesMin = 1;
constexpr size_t kStreamNameBytesMax = 512;

static_assert(kBucketBytesMax <= std::numeric_limits<uint16_t>::max());
static_assert(kStreamNameBytesMax <= std::numeric_limits<uint16_t>::max());
static_assert(kFencingTokenBytesMax <= std::numeric_limits<uint16_t>::max());
static_assert(static_cast<uint8_t>(Timestamping::kClientPrefer) == 0);
static_assert(static_cast<uint8_t>(Timestamping::kClientRequire) == 1);
static_assert(static_cast<uint8_t>(Timestamping::kArrival) == 2);

bool is_known_op(uint8_t op) {
  return op >= static_cast<uint8_t>(CatalogOp::kCreate) && op <= static_cast<uint8_t>(CatalogOp::kTokenRevoke);
}

bool is_lower_alnum(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }

Status invalid(std::string message) { return Status(ErrorCode::kInvalidArgument, std::move(message)); }
Status corrupt(std::string message) {
  return Status(ErrorCode::kCorrupt, "catalog mutation: " + std::move(message));
}

Status validate_config(const StreamConfig& config) {
  if (static_cast<uint8_t>(config.timestamping) > kTimestampingMax) {
    return invalid("timestamping must be client-prefer, client-require or arrival");
  }
  return Status::ok();
}

Status validate_fencing_token(std::string_view token) {
  if (token.size() > kFencingTokenBytesMax) {
    return invalid(fmt::format("fencing token must be at most {} bytes", kFencingTokenBytesMax));
  }
  return Status::ok();
}

// Borrowed (bucket, name) for lookups in by_name_ without building a
// std::pair<std::string, std::string>. by_name_ compares with std::less<>,
// which finds these operators by argument-dependent lookup.
struct NameKey {
  std::string_view bucket;
  std::string_view name;

  using Owned = std::pair<std::string, std::string>;
  friend bool operator<(const Owned& a, const NameKey& b) {
    const int c = std::string_view(a.first).compare(b.bucket);
    return c < 0 || (c == 0 && std::string_view(a.second) < b.name);
  }
  friend bool operator<(const NameKey& a, const Owned& b) {
    const int c = a.bucket.compare(b.first);
    return c < 0 || (c == 0 && a.name < std::string_view(b.second));
  }
};

// Appends little-endian fixed-width integers (core/bytes.h) and
// u16-length-prefixed strings.
class Writer {
 public:
  explicit Writer(std::string* out) : out_(out) {}
  void u8(uint8_t v) { put_le(out_, v); }
  void u16(uint16_t v) { put_le(out_, v); }
  void u32(uint32_t v) { put_le(out_, v); }
  void u64(uint64_t v) { put_le(out_, v); }
  void str(std::string_view s) {
    // Callers pass a mutation that check() accepted; a longer string would
    // be written with a wrapped length and decode as something else.
    RUNNEL_ASSERT(s.size() <= std::numeric_limits<uint16_t>::max());
    u16(static_cast<uint16_t>(s.size()));
    out_->append(s);
  }

 private:
  std::string* out_;
};

// Reads what Writer writes from the front of the input. Each read fails
// (returns false, consumes nothing) if too few bytes are left.
class Reader {
 public:
  explicit Reader(std::string_view in) : in_(in) {}
  bool u8(uint8_t* v) { return take_le(&in_, v); }
  bool u16(uint16_t* v) { return take_le(&in_, v); }
  bool u32(uint32_t* v) { return take_le(&in_, v); }
  bool u64(uint64_t* v) { return take_le(&in_, v); }
  bool boolean(bool* v, bool* valid) {
    uint8_t b = 0;
    if (!u8(&b)) return false;
    *valid = b <= 1;
    *v = b == 1;
    return true;
  }
  bool str(std::string* s) {
    std::string_view rest = in_;
    uint16_t len = 0;
    if (!u16(&len)) return false;
    if (len > in_.size()) {
      in_ = rest;
      return false;
    }
    s->assign(in_.substr(0, len));
    in_.remove_prefix(len);
    return true;
  }
  size_t left() const { return in_.size(); }

 private:
  std::string_view in_;
};

void write_config(Writer& w, const StreamConfig& config) {
  w.u8(static_cast<uint8_t>(config.timestamping));
  w.u64(config.retention_age_ms);
  w.u64(config.retention_bytes);
  w.u64(config.delete_on_empty_ms);
  w.u8(config.compress_lz4 ? 1 : 0);
}

Status read_config(Reader& r, StreamConfig* config) {
  uint8_t timestamping = 0;
  bool lz4_valid = false;
  if (!r.u8(&timestamping) || !r.u64(&config->retention_age_ms) || !r.u64(&config->retention_bytes) ||
      !r.u64(&config->delete_on_empty_ms) || !r.boolean(&config->compress_lz4, &lz4_valid)) {
    return corrupt("truncated config");
  }
  if (timestamping > kTimestampingMax) return corrupt(fmt::format("unknown timestamping {}", timestamping));
  if (!lz4_valid) return corrupt("compress_lz4 must be 0 or 1");
  config->timestamping = static_cast<Timestamping>(timestamping);
  return Status::ok();
}

void write_bucket_config(Writer& w, const BucketConfig& config) {
  write_config(w, config.default_stream_config);
  w.u8(config.create_stream_on_append ? 1 : 0);
  w.u8(config.create_stream_on_read ? 1 : 0);
}

Status read_bucket_config(Reader& r, BucketConfig* config) {
  if (Status s = read_config(r, &config->default_stream_config); !s.is_ok()) return s;
  bool on_append_valid = false;
  bool on_read_valid = false;
  if (!r.boolean(&config->create_stream_on_append, &on_append_valid) ||
      !r.boolean(&config->create_stream_on_read, &on_read_valid)) {
    return corrupt("truncated bucket config");
  }
  if (!on_append_valid || !on_read_valid) return corrupt("create_stream_on_append/read must be 0 or 1");
  return Status::ok();
}

Status read_bucket_name(Reader& r, std::string* name) {
  if (!r.str(name)) return corrupt("truncated bucket name");
  if (Status s = validate_bucket_name(*name); !s.is_ok()) return corrupt(s.message());
  return Status::ok();
}

// The fields of a bucket op after its op byte.
Status read_bucket_op(Reader& r, CatalogOp op, BucketInfo* bucket) {
  if (Status s = read_bucket_name(r, &bucket->name); !s.is_ok()) return s;
  if (op == CatalogOp::kBucketDelete) return Status::ok();
  if (Status s = read_bucket_config(r, &bucket->config); !s.is_ok()) return s;
  if (op == CatalogOp::kBucketCreate && !r.u64(&bucket->created_ms)) return corrupt("truncated created_ms");
  return Status::ok();
}

void write_scope(Writer& w, const NameScope& scope) {
  w.str(scope.value);
  w.u8(scope.prefix ? 1 : 0);
}

Status read_scope(Reader& r, NameScope* scope) {
  bool valid = false;
  if (!r.str(&scope->value) || !r.boolean(&scope->prefix, &valid)) return corrupt("truncated token scope");
  if (!valid) return corrupt("scope prefix must be 0 or 1");
  return Status::ok();
}

void write_access_token(Writer& w, const TokenEntry& token) {
  const TokenInfo& t = token.info;
  write_scope(w, t.buckets);
  write_scope(w, t.streams);
  write_scope(w, t.tokens);
  w.u32(t.ops);
  w.u64(t.expires_ms);
  w.u8(t.auto_prefix_streams ? 1 : 0);
  w.u64(t.limits.append_bytes_per_s);
  w.u64(t.limits.append_records_per_s);
  w.u64(t.limits.read_bytes_per_s);
  w.u64(t.limits.read_records_per_s);
  w.u32(t.limits.connections_max);
  w.u64(t.created_ms);
  w.str(t.issued_by);
  w.str(token.secret_hash);
}

// The fields of a token op after its op byte.
Status read_token_op(Reader& r, CatalogOp op, TokenEntry* token) {
  TokenInfo& t = token->info;
  if (!r.str(&t.id)) return corrupt("truncated token id");
  if (Status s = validate_token_id(t.id); !s.is_ok()) return corrupt(s.message());
  if (op == CatalogOp::kTokenRevoke) return Status::ok();
  for (NameScope* scope : {&t.buckets, &t.streams, &t.tokens}) {
    if (Status s = read_scope(r, scope); !s.is_ok()) return s;
  }
  bool auto_prefix_valid = false;
  if (!r.u32(&t.ops) || !r.u64(&t.expires_ms) || !r.boolean(&t.auto_prefix_streams, &auto_prefix_valid) ||
      !r.u64(&t.limits.append_bytes_per_s) || !r.u64(&t.limits.append_records_per_s) ||
      !r.u64(&t.limits.read_bytes_per_s) || !r.u64(&t.limits.read_records_per_s) || !r.u32(&t.limits.connections_max) ||
      !r.u64(&t.created_ms) || !r.str(&t.issued_by) || !r.str(&token->secret_hash)) {
    return corrupt("truncated token");
  }
  if (!auto_prefix_valid) return corrupt("auto_prefix_streams must be 0 or 1");
  if ((t.ops & ~kOpsAll) != 0) return corrupt(fmt::format("unknown token operations {:#x}", t.ops & ~kOpsAll));
  if (token->secret_hash.size() != kTokenHashBytes) return corrupt("token hash must be 32 bytes");
  return Status::ok();
}

Status read_token(Reader& r, std::string* token) {
  if (!r.str(token)) return corrupt("truncated fencing token");
  if (token->size() > kFencingTokenBytesMax) return corrupt("fencing token too long");
  return Status::ok();
}

Status read_create(Reader& r, StreamEntry* stream) {
  if (!r.str(&stream->bucket)) return corrupt("truncated bucket name");
  if (Status s = validate_bucket_name(stream->bucket); !s.is_ok()) return corrupt(s.message());
  if (!r.str(&stream->name)) return corrupt("truncated stream name");
  if (Status s = validate_stream_name(stream->name); !s.is_ok()) return corrupt(s.message());
  if (Status s = read_config(r, &stream->config); !s.is_ok()) return s;
  bool sealed_valid = false;
  if (!r.u64(&stream->created_ms) || !r.boolean(&stream->sealed, &sealed_valid)) {
    return corrupt("truncated create");
  }
  if (!sealed_valid) return corrupt("sealed must be 0 or 1");
  if (Status s = read_token(r, &stream->fencing_token); !s.is_ok()) return s;
  if (!r.u64(&stream->trim_seq)) return corrupt("truncated trim_seq");
  return Status::ok();
}

}  // namespace

Status validate_bucket_name(std::string_view bucket) {
  if (bucket.size() < kBucketBytesMin || bucket.size() > kBucketBytesMax) {
    return invalid(fmt::format("bucket name must be {} to {} characters", kBucketBytesMin, kBucketBytesMax));
  }
  for (char c : bucket) {
    if (!is_lower_alnum(c) && c != '-') return invalid("bucket name may contain only a-z, 0-9 and '-'");
  }
  if (!is_lower_alnum(bucket.front()) || !is_lower_alnum(bucket.back())) {
    return invalid("bucket name must start and end with a letter or digit");
  }
  return Status::ok();
}

Status validate_token_id(std::string_view id) {
  if (id.empty() || id.size() > 64) return invalid("token id must be 1 to 64 characters");
  for (char c : id) {
    if (!is_lower_alnum(c) && c != '-' && c != '_') return invalid("token id may contain only a-z, 0-9, '-' and '_'");
  }
  return Status::ok();
}

Status validate_stream_name(std::string_view name) {
  if (name.size() < kStreamNameBytesMin || name.size() > kStreamNameBytesMax) {
    return invalid(fmt::format("stream name must be {} to {} bytes", kStreamNameBytesMin, kStreamNameBytesMax));
  }
  if (name.find('\0') != std::string_view::npos) return invalid("stream name must not contain NUL");
  if (const size_t good = utf8_valid_prefix_bytes(name); good != name.size()) {
    return invalid(fmt::format("stream name must be valid UTF-8 (bad byte at offset {})", good));
  }
  return Status::ok();
}

std::string encode_mutation(const CatalogMutation& mutation) {
  const StreamEntry& s = mutation.stream;
  std::string out;
  Writer w(&out);
  w.u8(kMutationVersion);
  w.u8(static_cast<uint8_t>(mutation.op));
  if (is_bucket_op(mutation.op)) {
    const BucketInfo& b = mutation.bucket;
    w.str(b.name);
    if (mutation.op != CatalogOp::kBucketDelete) write_bucket_config(w, b.config);
    if (mutation.op == CatalogOp::kBucketCreate) w.u64(b.created_ms);
    return out;
  }
  if (is_token_op(mutation.op)) {
    w.str(mutation.token.info.id);
    if (mutation.op == CatalogOp::kTokenIssue) write_access_token(w, mutation.token);
    return out;
  }
  w.u64(s.id);
  switch (mutation.op) {
    case CatalogOp::kCreate:
      w.str(s.bucket);
      w.str(s.name);
      write_config(w, s.config);
      w.u64(s.created_ms);
      w.u8(s.sealed ? 1 : 0);
      w.str(s.fencing_token);
      w.u64(s.trim_seq);
      break;
    case CatalogOp::kReconfigure:
      write_config(w, s.config);
      break;
    case CatalogOp::kDelete:
    case CatalogOp::kSeal:
      break;
    case CatalogOp::kFence:
      w.str(s.fencing_token);
      break;
    case CatalogOp::kTrim:
      w.u64(s.trim_seq);
      break;
    case CatalogOp::kSnapshotBegin:
    case CatalogOp::kSnapshotEnd:
    case CatalogOp::kBucketCreate:
    case CatalogOp::kBucketReconfigure:
    case CatalogOp::kBucketDelete:
    case CatalogOp::kTokenIssue:
    case CatalogOp::kTokenRevoke:
      break;
  }
  return out;
}

Result<CatalogMutation> decode_mutation(std::string_view bytes) {
  Reader r(bytes);
  uint8_t version = 0;
  uint8_t op = 0;
  CatalogMutation m;
  if (!r.u8(&version)) return corrupt("empty");
  if (version != kMutationVersion) return corrupt(fmt::format("unknown version {}", version));
  if (!r.u8(&op)) return corrupt("truncated op");
  if (!is_known_op(op)) return corrupt(fmt::format("unknown op {}", op));
  m.op = static_cast<CatalogOp>(op);
  if (is_bucket_op(m.op)) {
    if (Status s = read_bucket_op(r, m.op, &m.bucket); !s.is_ok()) return s;
    if (r.left() != 0) return corrupt(fmt::format("{} trailing bytes", r.left()));
    return m;
  }
  if (is_token_op(m.op)) {
    if (Status s = read_token_op(r, m.op, &m.token); !s.is_ok()) return s;
    if (r.left() != 0) return corrupt(fmt::format("{} trailing bytes", r.left()));
    return m;
  }
  if (!r.u64(&m.stream.id)) return corrupt("truncated id");
  if (m.stream.id == 0) return corrupt("stream id 0");
  Status status;
  switch (m.op) {
    case CatalogOp::kCreate:
      status = read_create(r, &m.stream);
      break;
    case CatalogOp::kReconfigure:
      status = read_config(r, &m.stream.config);
      break;
    case CatalogOp::kDelete:
    case CatalogOp::kSeal:
      break;
    case CatalogOp::kFence:
      status = read_token(r, &m.stream.fencing_token);
      break;
    case CatalogOp::kTrim:
      if (!r.u64(&m.stream.trim_seq)) status = corrupt("truncated trim_seq");
      break;
    case CatalogOp::kSnapshotBegin:
    case CatalogOp::kSnapshotEnd:
    case CatalogOp::kBucketCreate:  // Decoded above.
    case CatalogOp::kBucketReconfigure:
    case CatalogOp::kBucketDelete:
    case CatalogOp::kTokenIssue:
    case CatalogOp::kTokenRevoke:
      break;
  }
  if (!status.is_ok()) return status;
  if (r.left() != 0) return corrupt(fmt::format("{} trailing bytes", r.left()));
  return m;
}

Status StreamCatalog::check_bucket(const CatalogMutation& mutation) const {
  const BucketInfo& b = mutation.bucket;
  if (Status st = validate_bucket_name(b.name); !st.is_ok()) return st;
  const BucketInfo* existing = find_bucket(b.name);
  if (mutation.op == CatalogOp::kBucketCreate) {
    if (existing != nullptr) return Status(ErrorCode::kAlreadyExists, fmt::format("bucket '{}' already exists", b.name));
    return validate_config(b.config.default_stream_config);
  }
  if (existing == nullptr) return Status(ErrorCode::kNotFound, fmt::format("no bucket '{}'", b.name));
  if (mutation.op == CatalogOp::kBucketReconfigure) return validate_config(b.config.default_stream_config);
  // A bucket with streams cannot go; kAlreadyExists: streams exist in it
  // (PROTOCOL.md, "Errors", says why this code).
  if (bucket_has_streams(b.name)) {
    return Status(ErrorCode::kAlreadyExists, fmt::format("bucket '{}' still holds streams", b.name));
  }
  return Status::ok();
}

Status StreamCatalog::check_token(const CatalogMutation& mutation) const {
  const TokenEntry& t = mutation.token;
  if (Status st = validate_token_id(t.info.id); !st.is_ok()) return st;
  const bool exists = find_token(t.info.id) != nullptr;
  if (mutation.op == CatalogOp::kTokenRevoke) {
    if (!exists) return Status(ErrorCode::kNotFound, fmt::format("no token '{}'", t.info.id));
    return Status::ok();
  }
  if (exists) return Status(ErrorCode::kAlreadyExists, fmt::format("token '{}' already exists", t.info.id));
  if (t.secret_hash.size() != kTokenHashBytes) return invalid("token hash must be 32 bytes");
  if ((t.info.ops & ~kOpsAll) != 0) return invalid("unknown token operations");
  for (const NameScope* scope : {&t.info.buckets, &t.info.streams, &t.info.tokens}) {
    if (scope->value.size() > kFencingTokenBytesMax * 2) return invalid("token scope too long");
  }
  if (t.info.issued_by.size() > 64) return invalid("issued_by too long");
  return Status::ok();
}

Status StreamCatalog::check(const CatalogMutation& mutation) const {
  const StreamEntry& s = mutation.stream;
  if (is_bucket_op(mutation.op)) return check_bucket(mutation);
  if (is_token_op(mutation.op)) return check_token(mutation);
  if (mutation.op == CatalogOp::kCreate) {
    if (Status st = validate_bucket_name(s.bucket); !st.is_ok()) return st;
    if (Status st = validate_stream_name(s.name); !st.is_ok()) return st;
    if (Status st = validate_config(s.config); !st.is_ok()) return st;
    if (Status st = validate_fencing_token(s.fencing_token); !st.is_ok()) return st;
    if (s.id == 0) return invalid("stream id must be > 0");
    // Ids are never reused, so a deleted stream's id is refused too: batches
    // of the old stream may still sit in the log under it.
    if (s.id <= max_id_) return invalid(fmt::format("stream id {} already used (next is {})", s.id, next_id()));
    if (find(s.bucket, s.name) != nullptr) return Status(ErrorCode::kAlreadyExists, "stream already exists");
    return Status::ok();
  }
  if (!is_known_op(static_cast<uint8_t>(mutation.op))) {
    return invalid(fmt::format("unknown catalog op {}", static_cast<uint8_t>(mutation.op)));
  }
  if (mutation.op == CatalogOp::kSnapshotBegin || mutation.op == CatalogOp::kSnapshotEnd) {
    return invalid("snapshot markers are replayed by the stream store, not applied to a catalog");
  }
  if (find(s.id) == nullptr) return Status(ErrorCode::kNotFound, fmt::format("no stream with id {}", s.id));
  switch (mutation.op) {
    case CatalogOp::kReconfigure:
      // Allowed on a sealed stream: retention and the like still apply.
      return validate_config(s.config);
    case CatalogOp::kFence:
      return validate_fencing_token(s.fencing_token);
    case CatalogOp::kCreate:
    case CatalogOp::kDelete:
    case CatalogOp::kSeal:  // Sealing a sealed stream is a no-op.
    case CatalogOp::kTrim:  // A lower trim point is a no-op.
    case CatalogOp::kSnapshotBegin:
    case CatalogOp::kSnapshotEnd:
    case CatalogOp::kBucketCreate:  // Checked above.
    case CatalogOp::kBucketReconfigure:
    case CatalogOp::kBucketDelete:
    case CatalogOp::kTokenIssue:
    case CatalogOp::kTokenRevoke:
      return Status::ok();
  }
  return Status::ok();
}

Status StreamCatalog::apply(const CatalogMutation& mutation) {
  if (Status st = check(mutation); !st.is_ok()) return st;
  if (is_bucket_op(mutation.op)) {
    const BucketInfo& b = mutation.bucket;
    switch (mutation.op) {
      case CatalogOp::kBucketCreate: {
        const bool inserted = buckets_.emplace(b.name, b).second;
        RUNNEL_ASSERT(inserted);
        break;
      }
      case CatalogOp::kBucketReconfigure: {
        auto it = buckets_.find(b.name);
        RUNNEL_ASSERT(it != buckets_.end());
        it->second.config = b.config;
        break;
      }
      default: {
        RUNNEL_ASSERT(mutation.op == CatalogOp::kBucketDelete);
        const size_t erased = buckets_.erase(b.name);
        RUNNEL_ASSERT(erased == 1);
        break;
      }
    }
    return Status::ok();
  }
  if (is_token_op(mutation.op)) {
    const TokenEntry& t = mutation.token;
    token_version_++;
    if (mutation.op == CatalogOp::kTokenIssue) {
      const bool inserted = tokens_.emplace(t.info.id, t).second;
      RUNNEL_ASSERT(inserted);
    } else {
      const size_t erased = tokens_.erase(t.info.id);
      RUNNEL_ASSERT(erased == 1);
    }
    return Status::ok();
  }
  const StreamEntry& s = mutation.stream;
  if (mutation.op == CatalogOp::kCreate) {
    const bool id_inserted = by_id_.emplace(s.id, s).second;
    RUNNEL_ASSERT(id_inserted);
    const bool name_inserted = by_name_.emplace(std::make_pair(s.bucket, s.name), s.id).second;
    RUNNEL_ASSERT(name_inserted);
    RUNNEL_ASSERT(s.id > max_id_);
    max_id_ = s.id;
    return Status::ok();
  }
  auto it = by_id_.find(s.id);
  RUNNEL_ASSERT(it != by_id_.end());
  StreamEntry& stream = it->second;
  switch (mutation.op) {
    case CatalogOp::kCreate:
      RUNNEL_ASSERT(false);
      break;
    case CatalogOp::kReconfigure:
      stream.config = s.config;
      break;
    case CatalogOp::kDelete: {
      const size_t erased = by_name_.erase(std::make_pair(stream.bucket, stream.name));
      RUNNEL_ASSERT(erased == 1);
      by_id_.erase(it);  // max_id_ keeps the id used.
      break;
    }
    case CatalogOp::kSeal:
      stream.sealed = true;
      break;
    case CatalogOp::kFence:
      stream.fencing_token = s.fencing_token;
      break;
    case CatalogOp::kTrim:
      stream.trim_seq = std::max(stream.trim_seq, s.trim_seq);
      break;
    case CatalogOp::kSnapshotBegin:
    case CatalogOp::kSnapshotEnd:
    case CatalogOp::kBucketCreate:  // Handled above.
    case CatalogOp::kBucketReconfigure:
    case CatalogOp::kBucketDelete:
    case CatalogOp::kTokenIssue:
    case CatalogOp::kTokenRevoke:
      RUNNEL_ASSERT(false);  // check() refuses them.
      break;
  }
  return Status::ok();
}

const StreamEntry* StreamCatalog::find(std::string_view bucket, std::string_view name) const {
  auto it = by_name_.find(NameKey{bucket, name});
  if (it == by_name_.end()) return nullptr;
  const StreamEntry* stream = find(it->second);
  RUNNEL_ASSERT(stream != nullptr);
  return stream;
}

const StreamEntry* StreamCatalog::find(uint64_t id) const {
  auto it = by_id_.find(id);
  return it == by_id_.end() ? nullptr : &it->second;
}

std::vector<const StreamEntry*> StreamCatalog::list(std::string_view bucket, std::string_view prefix,
                                                    std::string_view start_after, size_t limit) const {
  std::vector<const StreamEntry*> out;
  if (limit == 0) return out;
  // Names with `prefix` form one contiguous run in name order. Start at the
  // first name >= prefix, or the first name > start_after if that is later
  // (upper_bound, since start_after itself is excluded).
  auto it = start_after < prefix ? by_name_.lower_bound(NameKey{bucket, prefix})
                                 : by_name_.upper_bound(NameKey{bucket, start_after});
  for (; it != by_name_.end() && out.size() < limit; ++it) {
    const auto& [key, id] = *it;
    if (key.first != bucket || !std::string_view(key.second).starts_with(prefix)) break;
    const StreamEntry* stream = find(id);
    RUNNEL_ASSERT(stream != nullptr);
    out.push_back(stream);
  }
  return out;
}

const BucketInfo* StreamCatalog::find_bucket(std::string_view name) const {
  auto it = buckets_.find(name);
  return it == buckets_.end() ? nullptr : &it->second;
}

std::vector<const BucketInfo*> StreamCatalog::list_buckets(std::string_view prefix, std::string_view start_after,
                                                           size_t limit) const {
  std::vector<const BucketInfo*> out;
  if (limit == 0) return out;
  // As list(): the names with `prefix` are one run in name order.
  auto it = start_after < prefix ? buckets_.lower_bound(prefix) : buckets_.upper_bound(start_after);
  for (; it != buckets_.end() && out.size() < limit; ++it) {
    if (!std::string_view(it->first).starts_with(prefix)) break;
    out.push_back(&it->second);
  }
  return out;
}

bool StreamCatalog::bucket_has_streams(std::string_view bucket) const {
  auto it = by_name_.lower_bound(NameKey{bucket, ""});
  return it != by_name_.end() && it->first.first == bucket;
}

void StreamCatalog::replace_buckets(const std::vector<BucketInfo>& buckets) {
  buckets_.clear();
  for (const BucketInfo& b : buckets) buckets_.emplace(b.name, b);
}

const TokenEntry* StreamCatalog::find_token(std::string_view id) const {
  auto it = tokens_.find(id);
  return it == tokens_.end() ? nullptr : &it->second;
}

std::vector<const TokenEntry*> StreamCatalog::list_tokens(std::string_view prefix, std::string_view start_after,
                                                          size_t limit) const {
  std::vector<const TokenEntry*> out;
  if (limit == 0) return out;
  auto it = start_after < prefix ? tokens_.lower_bound(prefix) : tokens_.upper_bound(start_after);
  for (; it != tokens_.end() && out.size() < limit; ++it) {
    if (!std::string_view(it->first).starts_with(prefix)) break;
    out.push_back(&it->second);
  }
  return out;
}

void StreamCatalog::replace_tokens(const std::vector<TokenEntry>& tokens) {
  tokens_.clear();
  token_version_++;
  for (const TokenEntry& t : tokens) tokens_.emplace(t.info.id, t);
}

const StreamEntry* StreamCatalog::next_after(uint64_t id) const {
  auto it = by_id_.upper_bound(id);
  return it == by_id_.end() ? nullptr : &it->second;
}

std::vector<const StreamEntry*> StreamCatalog::all() const {
  std::vector<const StreamEntry*> out;
  out.reserve(by_id_.size());
  for (const auto& [id, info] : by_id_) out.push_back(&info);
  return out;
}

}  // namespace runnel
