/* The data model's values, defined once: a stream's and a bucket's settings
 * and descriptions and an append's acknowledgement, as the storage engine
 * keeps them, the protocol carries them (proto/PROTOCOL.md) and librunnel
 * returns them (docs/REFERENCE.md). Installed with librunnel as
 * <runnel/values.h>, so it includes only the standard library and uses an
 * include guard (not #pragma once): the source and the installed copy may
 * meet in one translation unit. A new stream setting is a field here, its
 * encodings (proto/wire.cc, storage/catalog.cc, the JSON in net/rest.cc and
 * tools/runnel/output.cc) and its CLI flag — nothing else repeats the shape.
 */
#ifndef RUNNEL_VALUES_H_
#define RUNNEL_VALUES_H_

#include <cstdint>
#include <string>
#include <string_view>

namespace runnel {

// How a stream's records get their timestamps. The numbers are stored (the
// catalog) and sent (the protocol): never renumber.
enum class Timestamping : uint8_t {
  kClientPrefer = 0,   // The client's timestamp where given, else arrival time.
  kClientRequire = 1,  // Every record must carry a timestamp.
  kArrival = 2,        // Arrival time for every record.
};
inline constexpr uint8_t kTimestampingMax = static_cast<uint8_t>(Timestamping::kArrival);

// The names the admin API's JSON and the CLI use.
inline const char* timestamping_name(Timestamping t) {
  switch (t) {
    case Timestamping::kClientPrefer:
      return "client-prefer";
    case Timestamping::kClientRequire:
      return "client-require";
    case Timestamping::kArrival:
      return "arrival";
  }
  return "unknown";
}
inline bool parse_timestamping(std::string_view name, Timestamping* out) {
  for (Timestamping t : {Timestamping::kClientPrefer, Timestamping::kClientRequire, Timestamping::kArrival}) {
    if (name == timestamping_name(t)) {
      *out = t;
      return true;
    }
  }
  return false;
}

// Per-stream settings.
struct StreamConfig {
  Timestamping timestamping = Timestamping::kClientPrefer;
  uint64_t retention_age_ms = 0;    // 0: no age limit.
  uint64_t retention_bytes = 0;     // 0: no size limit.
  uint64_t delete_on_empty_ms = 0;  // 0: never deleted for being empty.
  bool compress_lz4 = false;

  bool operator==(const StreamConfig&) const = default;
};

// A stream as users see it. The catalog keeps more (an internal id, the
// fencing token itself: storage/catalog.h, StreamEntry); the tail and the
// rates come from the log.
struct StreamInfo {
  std::string bucket{};  // 3..63 of [a-z0-9-], alphanumeric at both ends.
  std::string name{};    // 1..512 bytes of UTF-8 without NUL.
  StreamConfig config{};
  uint64_t created_ms = 0;
  bool sealed = false;
  bool fenced = false;
  uint64_t trim_seq = 0;  // Records below it are gone.
  uint64_t tail = 0;      // The next seq_num to be assigned.
  // Appended over the last minute (records, and bytes as stored): divide by
  // 60 for the per-second rates.
  uint64_t appended_records_last_minute = 0;
  uint64_t appended_bytes_last_minute = 0;

  bool operator==(const StreamInfo&) const = default;
};

// Bucket settings.
struct BucketConfig {
  StreamConfig default_stream_config{};  // What a stream created with the bucket default gets.
  bool create_stream_on_append = false;  // An append to a missing stream creates it.
  bool create_stream_on_read = false;    // A read or subscribe of a missing stream creates it.

  bool operator==(const BucketConfig&) const = default;
};

struct BucketInfo {
  std::string name{};  // 3..63 of [a-z0-9-], alphanumeric at both ends.
  BucketConfig config{};
  uint64_t created_ms = 0;

  bool operator==(const BucketInfo&) const = default;
};

// An acknowledged append: its records hold [start_seq, end_seq).
struct AppendAck {
  uint64_t start_seq = 0;
  uint64_t end_seq = 0;
  uint64_t start_timestamp = 0;  // The first record's effective timestamp.
  uint64_t end_timestamp = 0;    // The last record's.
  uint64_t tail = 0;             // The stream's tail just after this append (= end_seq).

  bool operator==(const AppendAck&) const = default;
};

// --- access tokens ---------------------------------------------------------

// What a token may do: a set of these bits. The numbers are stored (the
// catalog) and sent (the protocol): never renumber. Describing a resource
// (get and list) needs any one operation on it.
enum TokenOp : uint32_t {
  kOpRead = 1u << 0,  // Read, subscribe, check the tail.
  kOpAppend = 1u << 1,
  kOpCreateStream = 1u << 2,
  kOpDeleteStream = 1u << 3,
  kOpReconfigureStream = 1u << 4,
  kOpTrimStream = 1u << 5,
  kOpSealStream = 1u << 6,
  kOpFenceStream = 1u << 7,
  kOpCreateBucket = 1u << 8,
  kOpDeleteBucket = 1u << 9,
  kOpReconfigureBucket = 1u << 10,
  kOpIssueToken = 1u << 11,
  kOpRevokeToken = 1u << 12,
  kOpListTokens = 1u << 13,
};
inline constexpr uint32_t kOpsManageStreams =
    kOpCreateStream | kOpDeleteStream | kOpReconfigureStream | kOpTrimStream | kOpSealStream | kOpFenceStream;
inline constexpr uint32_t kOpsManageBuckets = kOpCreateBucket | kOpDeleteBucket | kOpReconfigureBucket;
inline constexpr uint32_t kOpsManageTokens = kOpIssueToken | kOpRevokeToken | kOpListTokens;
inline constexpr uint32_t kOpsAll = kOpRead | kOpAppend | kOpsManageStreams | kOpsManageBuckets | kOpsManageTokens;

// One operation's name, as the CLI, the JSON and error messages spell it
// ("read", "append", "create-stream", ...); "?" for anything else.
inline const char* token_op_name(uint32_t op) {
  switch (op) {
    case kOpRead:
      return "read";
    case kOpAppend:
      return "append";
    case kOpCreateStream:
      return "create-stream";
    case kOpDeleteStream:
      return "delete-stream";
    case kOpReconfigureStream:
      return "reconfigure-stream";
    case kOpTrimStream:
      return "trim-stream";
    case kOpSealStream:
      return "seal-stream";
    case kOpFenceStream:
      return "fence-stream";
    case kOpCreateBucket:
      return "create-bucket";
    case kOpDeleteBucket:
      return "delete-bucket";
    case kOpReconfigureBucket:
      return "reconfigure-bucket";
    case kOpIssueToken:
      return "issue-token";
    case kOpRevokeToken:
      return "revoke-token";
    case kOpListTokens:
      return "list-tokens";
    default:
      return "?";
  }
}

// The operations in `ops`, by name, comma-separated ("read,append").
inline std::string token_ops_text(uint32_t ops) {
  std::string out;
  for (uint32_t op = 1; op != 0 && op <= kOpListTokens; op <<= 1) {
    if ((ops & op) == 0) continue;
    if (!out.empty()) out += ",";
    out += token_op_name(op);
  }
  return out;
}

// A name or a group name ("manage-streams", "manage-buckets",
// "manage-tokens", "all") to its bits; 0 if unknown.
inline uint32_t parse_token_op(std::string_view name) {
  if (name == "manage-streams") return kOpsManageStreams;
  if (name == "manage-buckets") return kOpsManageBuckets;
  if (name == "manage-tokens") return kOpsManageTokens;
  if (name == "all") return kOpsAll;
  for (uint32_t op = 1; op != 0 && op <= kOpListTokens; op <<= 1) {
    if (name == token_op_name(op)) return op;
  }
  return 0;
}

// Which names a token reaches: one exact name, or every name that starts
// with a prefix (the empty prefix: all). Written "orders" (exact),
// "logs-*" (prefix) and "*" (everything).
struct NameScope {
  std::string value{};
  bool prefix = true;  // The default scope is everything.

  bool matches(std::string_view name) const { return prefix ? name.substr(0, value.size()) == value : name == value; }
  // Whether every name this scope reaches is also reached by `outer`.
  bool within(const NameScope& outer) const {
    if (!outer.prefix) return !prefix && value == outer.value;
    return std::string_view(value).substr(0, outer.value.size()) == outer.value;
  }
  std::string text() const { return prefix ? value + "*" : value; }
  static NameScope parse(std::string_view text) {
    if (!text.empty() && text.back() == '*') return NameScope{std::string(text.substr(0, text.size() - 1)), true};
    return NameScope{std::string(text), false};
  }
  bool operator==(const NameScope&) const = default;
};

// Optional per-token limits, each 0 for none (docs/SECURITY.md).
struct TokenLimits {
  uint64_t append_bytes_per_s = 0;
  uint64_t append_records_per_s = 0;
  uint64_t read_bytes_per_s = 0;
  uint64_t read_records_per_s = 0;
  uint32_t connections_max = 0;

  bool operator==(const TokenLimits&) const = default;
};

// An access token as users see it; its secret is shown once, when issued,
// and the server keeps only a hash of it.
struct TokenInfo {
  std::string id{};  // 1..64 of [a-z0-9_-].
  NameScope buckets{};
  NameScope streams{};
  NameScope tokens{};       // The ids of the tokens it may issue, list, revoke.
  uint32_t ops = 0;         // TokenOp bits.
  uint64_t expires_ms = 0;  // Unix ms; 0: never.
  // Stream names this token sends get its stream prefix prepended, and lose
  // it in what it is answered (the streams scope must be a prefix).
  bool auto_prefix_streams = false;
  TokenLimits limits{};
  uint64_t created_ms = 0;
  std::string issued_by{};  // The issuing token's id ("" for the bootstrap root).

  bool operator==(const TokenInfo&) const = default;
};

}  // namespace runnel

#endif /* RUNNEL_VALUES_H_ */
