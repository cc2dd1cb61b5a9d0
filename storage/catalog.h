#pragma once
// StreamCatalog: one shard's streams — names, ids, configs, sealed flags,
// fencing tokens, trim points — and the bucket table. Lives on its shard, in
// memory; it is made durable as a sequence of CatalogMutations written into
// the shard's own log as control batches (storage/FORMAT.md), and rebuilt at
// recovery by replaying them in log order. Only StreamStore changes it, and
// only after a mutation is durable.
//
// Buckets are the node's, not a shard's: shard 0's log holds their
// mutations, and every other shard's catalog holds a replica of that table,
// fed by message (net/node_registry.h). A catalog does not tie its
// streams to its buckets (a replica starts empty at recovery); StreamStore
// checks that a new stream's bucket exists.

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/status.h"
#include "proto/values.h"
#include "storage/batch.h"

namespace runnel {

// A stream as the catalog keeps it: what users see of it (StreamInfo, in
// proto/values.h) comes from this entry, the log's tail and its rates.
struct StreamEntry {
  uint64_t id = 0;       // Internal, unique within the shard, never reused; > 0.
  std::string bucket;    // 3..63 of [a-z0-9-], alphanumeric at both ends.
  std::string name;      // 1..512 bytes of UTF-8 without NUL.
  StreamConfig config;
  uint64_t created_ms = 0;
  bool sealed = false;
  std::string fencing_token;  // Empty: not fenced.
  uint64_t trim_seq = 0;      // Records below this seq_num are gone.

  bool operator==(const StreamEntry&) const = default;
};

enum class CatalogOp : uint8_t {
  kCreate = 1,       // All of `stream`.
  kReconfigure = 2,  // stream.id, stream.config.
  kDelete = 3,       // stream.id.
  kSeal = 4,         // stream.id.
  kFence = 5,        // stream.id, stream.fencing_token (empty clears it).
  kTrim = 6,         // stream.id, stream.trim_seq (never lowers it).
  // A catalog snapshot, so older mutations (and the segments holding them)
  // can go: kSnapshotBegin, then one kCreate with the full state of every
  // live stream in id order, then kSnapshotEnd. stream.id of both markers is
  // the next id to use. StreamStore handles them; StreamCatalog refuses them.
  kSnapshotBegin = 7,
  kSnapshotEnd = 8,
  // Buckets (only in shard 0's log). They carry no stream id; a snapshot
  // holds one kBucketCreate per live bucket, between its markers.
  kBucketCreate = 9,        // All of `bucket`.
  kBucketReconfigure = 10,  // bucket.name, bucket.config.
  kBucketDelete = 11,       // bucket.name.
  // Access tokens (only in shard 0's log, like buckets; a snapshot holds
  // one kTokenIssue per live token).
  kTokenIssue = 12,   // All of `token`.
  kTokenRevoke = 13,  // token.info.id.
};

inline bool is_bucket_op(CatalogOp op) {
  return op == CatalogOp::kBucketCreate || op == CatalogOp::kBucketReconfigure || op == CatalogOp::kBucketDelete;
}
inline bool is_token_op(CatalogOp op) { return op == CatalogOp::kTokenIssue || op == CatalogOp::kTokenRevoke; }
// The node's own tables (buckets, tokens): written at shard 0, replicated
// to every other shard by message.
inline bool is_node_op(CatalogOp op) { return is_bucket_op(op) || is_token_op(op); }

// An access token as the catalog keeps it: what users see of it, and the
// SHA-256 of its secret (never the secret itself).
struct TokenEntry {
  TokenInfo info;
  std::string secret_hash;  // kTokenHashBytes.

  bool operator==(const TokenEntry&) const = default;
};
inline constexpr size_t kTokenHashBytes = 32;

struct CatalogMutation {
  CatalogOp op = CatalogOp::kCreate;
  StreamEntry stream;  // Stream ops: fields used depend on op (see CatalogOp).
  BucketInfo bucket;  // Bucket ops: likewise.
  TokenEntry token;   // Token ops: likewise.

  bool operator==(const CatalogMutation&) const = default;
};

// Name rules, shared with the protocol and admin API. OK or kInvalidArgument
// with a message naming the rule broken.
Status validate_bucket_name(std::string_view bucket);
Status validate_stream_name(std::string_view name);
Status validate_token_id(std::string_view id);  // 1..64 of [a-z0-9_-].
inline constexpr size_t kFencingTokenBytesMax = 256;

// Binary encoding of a mutation (little-endian, versioned by its first byte),
// the body of a catalog control record. decode_mutation rejects anything
// malformed (truncated, trailing bytes, unknown op, invalid names) with
// kCorrupt.
std::string encode_mutation(const CatalogMutation& mutation);
Result<CatalogMutation> decode_mutation(std::string_view bytes);

class StreamCatalog {
 public:
  // Checks that `mutation` can apply (create: id unused and name free;
  // others: the stream exists and is not deleted; seal/fence/trim rules;
  // bucket create: name valid and free; bucket reconfigure: it exists;
  // bucket delete: it exists and this catalog holds no stream in it —
  // kAlreadyExists otherwise, PROTOCOL.md says why), without changing anything.
  Status check(const CatalogMutation& mutation) const;
  // Applies a mutation that check() accepted. Replay at recovery calls it
  // for every durable mutation in log order.
  Status apply(const CatalogMutation& mutation);

  const StreamEntry* find(std::string_view bucket, std::string_view name) const;
  const StreamEntry* find(uint64_t id) const;

  // Streams of `bucket` whose name starts with `prefix` and sorts after
  // `start_after`, in name order, at most `limit`.
  std::vector<const StreamEntry*> list(std::string_view bucket, std::string_view prefix, std::string_view start_after,
                                       size_t limit) const;

  // Every stream, in id order (for background passes such as retention).
  std::vector<const StreamEntry*> all() const;
  // The stream with the least id above `id`, or null.
  const StreamEntry* next_after(uint64_t id) const;

  // The id a new stream gets: one more than any id ever used here.
  uint64_t next_id() const { return max_id_ + 1; }
  // Marks every id below `next_id` as used (a snapshot's ids may run past
  // its live streams, whose deleted ids must never come back).
  void reserve_ids_below(uint64_t next_id) {
    if (next_id > 0 && next_id - 1 > max_id_) max_id_ = next_id - 1;
  }
  size_t size() const { return by_id_.size(); }

  // --- buckets ---
  const BucketInfo* find_bucket(std::string_view name) const;
  // Buckets whose name starts with `prefix` and sorts after `start_after`,
  // in name order, at most `limit`.
  std::vector<const BucketInfo*> list_buckets(std::string_view prefix, std::string_view start_after,
                                              size_t limit) const;
  // Whether any stream of this catalog is in `bucket`.
  bool bucket_has_streams(std::string_view bucket) const;
  // A replica's whole table at once (startup: shard 0's copy).
  void replace_buckets(const std::vector<BucketInfo>& buckets);
  size_t bucket_count() const { return buckets_.size(); }

  // --- access tokens (the node's, like buckets) ---
  const TokenEntry* find_token(std::string_view id) const;
  // Tokens whose id starts with `prefix` and sorts after `start_after`, in
  // id order, at most `limit`.
  std::vector<const TokenEntry*> list_tokens(std::string_view prefix, std::string_view start_after, size_t limit) const;
  void replace_tokens(const std::vector<TokenEntry>& tokens);
  size_t token_count() const { return tokens_.size(); }
  // Changes whenever the token table does: a connection that cached a
  // TokenEntry* keeps it while this stays the same.
  uint64_t token_version() const { return token_version_; }

 private:
  Status check_bucket(const CatalogMutation& mutation) const;
  Status check_token(const CatalogMutation& mutation) const;

  std::map<std::string, BucketInfo, std::less<>> buckets_;  // By name.
  std::map<std::string, TokenEntry, std::less<>> tokens_;   // By id.
  uint64_t token_version_ = 0;
  std::map<uint64_t, StreamEntry> by_id_;
  std::map<std::pair<std::string, std::string>, uint64_t, std::less<>> by_name_;  // (bucket, name) -> id
  uint64_t max_id_ = 0;
};

}  // namespace runnel
