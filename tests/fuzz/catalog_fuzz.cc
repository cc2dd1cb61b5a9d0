// libFuzzer target for the catalog mutation codec: mutations are read back
// from the shard log at recovery, so decode_mutation sees whatever the disk
// holds. Any input must give kCorrupt or a clean decode. Decoding is strict,
// so a decoded mutation re-encodes to exactly the input bytes. The decoded
// mutation is then checked and applied to a small catalog, which must keep
// its invariants whether the mutation is accepted or refused. Bucket ops
// (no stream id) go to the same catalog's bucket table, token ops (access
// tokens: scopes, operations, limits, the secret's hash) to its token table.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/assert.h"
#include "storage/catalog.h"

namespace {

// Ids 1..3 used in bucket "abc": 1 live ("a"), 2 deleted (was "b"), 3 live
// and sealed ("x/y"). Another bucket holds "a" too, id 4. Buckets "abc",
// "abd" (holding streams) and "emp" (empty) exist.
runnel::StreamCatalog small_catalog() {
  runnel::StreamCatalog catalog;
  for (const char* bucket : {"abc", "abd", "emp"}) {
    runnel::CatalogMutation m;
    m.op = runnel::CatalogOp::kBucketCreate;
    m.bucket.name = bucket;
    RUNNEL_ASSERT(catalog.apply(m).is_ok());
  }
  auto create = [&](uint64_t id, const char* bucket, const char* name) {
    runnel::CatalogMutation m;
    m.op = runnel::CatalogOp::kCreate;
    m.stream.id = id;
    m.stream.bucket = bucket;
    m.stream.name = name;
    RUNNEL_ASSERT(catalog.apply(m).is_ok());
  };
  auto change = [&](runnel::CatalogOp op, uint64_t id) {
    runnel::CatalogMutation m;
    m.op = op;
    m.stream.id = id;
    RUNNEL_ASSERT(catalog.apply(m).is_ok());
  };
  create(1, "abc", "a");
  create(2, "abc", "b");
  create(3, "abc", "x/y");
  create(4, "abd", "a");
  change(runnel::CatalogOp::kDelete, 2);
  change(runnel::CatalogOp::kSeal, 3);
  runnel::CatalogMutation token;
  token.op = runnel::CatalogOp::kTokenIssue;
  token.token.info.id = "tok";
  token.token.info.ops = runnel::kOpRead;
  token.token.secret_hash = std::string(runnel::kTokenHashBytes, 'h');
  RUNNEL_ASSERT(catalog.apply(token).is_ok());
  return catalog;
}

// Every listed stream is findable by name and id, in strictly increasing name order.
void check_bucket(const runnel::StreamCatalog& catalog, const std::string& bucket) {
  const std::vector<const runnel::StreamEntry*> streams = catalog.list(bucket, "", "", 1000);
  RUNNEL_ASSERT(streams.size() <= catalog.size());
  for (size_t i = 0; i < streams.size(); i++) {
    RUNNEL_ASSERT(streams[i]->bucket == bucket);
    RUNNEL_ASSERT(catalog.find(bucket, streams[i]->name) == streams[i]);
    RUNNEL_ASSERT(catalog.find(streams[i]->id) == streams[i]);
    RUNNEL_ASSERT(streams[i]->id < catalog.next_id() || catalog.next_id() == 0);
    if (i > 0) RUNNEL_ASSERT(streams[i - 1]->name < streams[i]->name);
  }
}

// Every listed bucket is findable, in strictly increasing name order.
void check_buckets(const runnel::StreamCatalog& catalog) {
  const std::vector<const runnel::BucketInfo*> buckets = catalog.list_buckets("", "", 1000);
  RUNNEL_ASSERT(buckets.size() == catalog.bucket_count());
  for (size_t i = 0; i < buckets.size(); i++) {
    RUNNEL_ASSERT(catalog.find_bucket(buckets[i]->name) == buckets[i]);
    RUNNEL_ASSERT(runnel::validate_bucket_name(buckets[i]->name).is_ok());
    if (i > 0) RUNNEL_ASSERT(buckets[i - 1]->name < buckets[i]->name);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  runnel::Result<runnel::CatalogMutation> decoded = runnel::decode_mutation(input);
  if (!decoded.is_ok()) {
    RUNNEL_ASSERT(decoded.status().code() == runnel::ErrorCode::kCorrupt);
    return 0;
  }
  const runnel::CatalogMutation& m = *decoded;
  RUNNEL_ASSERT(runnel::encode_mutation(m) == input);
  const bool bucket_op = runnel::is_bucket_op(m.op);
  const bool token_op = runnel::is_token_op(m.op);
  RUNNEL_ASSERT(bucket_op || token_op ? m.stream.id == 0 : m.stream.id > 0);

  runnel::StreamCatalog catalog = small_catalog();
  const size_t size_before = catalog.size();
  const size_t buckets_before = catalog.bucket_count();
  const uint64_t next_id_before = catalog.next_id();
  const runnel::StreamEntry* before = catalog.find(m.stream.id);
  const runnel::StreamEntry copy_before = before != nullptr ? *before : runnel::StreamEntry{};
  const runnel::BucketInfo* bucket_before = catalog.find_bucket(m.bucket.name);
  const runnel::BucketInfo bucket_copy = bucket_before != nullptr ? *bucket_before : runnel::BucketInfo{};
  const bool had_streams = catalog.bucket_has_streams(m.bucket.name);
  const size_t tokens_before = catalog.token_count();
  const runnel::TokenEntry* token_before = catalog.find_token(m.token.info.id);
  const runnel::TokenEntry token_copy = token_before != nullptr ? *token_before : runnel::TokenEntry{};
  const runnel::Status checked = catalog.check(m);
  const runnel::Status applied = catalog.apply(m);
  RUNNEL_ASSERT(checked.code() == applied.code());

  if (!applied.is_ok()) {
    RUNNEL_ASSERT(catalog.size() == size_before);
    RUNNEL_ASSERT(catalog.bucket_count() == buckets_before);
    RUNNEL_ASSERT(catalog.next_id() == next_id_before);
    if (before != nullptr) RUNNEL_ASSERT(*catalog.find(m.stream.id) == copy_before);
    if (bucket_before != nullptr) RUNNEL_ASSERT(*catalog.find_bucket(m.bucket.name) == bucket_copy);
    RUNNEL_ASSERT(catalog.token_count() == tokens_before);
    if (token_before != nullptr) RUNNEL_ASSERT(*catalog.find_token(m.token.info.id) == token_copy);
  } else if (token_op) {
    // A token op touches the token table only.
    RUNNEL_ASSERT(catalog.size() == size_before && catalog.bucket_count() == buckets_before);
    const runnel::TokenEntry* after = catalog.find_token(m.token.info.id);
    if (m.op == runnel::CatalogOp::kTokenIssue) {
      RUNNEL_ASSERT(token_before == nullptr && after != nullptr && *after == m.token);
      RUNNEL_ASSERT(after->secret_hash.size() == runnel::kTokenHashBytes);
      RUNNEL_ASSERT(catalog.token_count() == tokens_before + 1);
    } else {
      RUNNEL_ASSERT(token_before != nullptr && after == nullptr);
      RUNNEL_ASSERT(catalog.token_count() == tokens_before - 1);
    }
  } else if (bucket_op) {
    // A bucket op touches the bucket table only.
    RUNNEL_ASSERT(catalog.size() == size_before);
    RUNNEL_ASSERT(catalog.next_id() == next_id_before);
    const runnel::BucketInfo* after = catalog.find_bucket(m.bucket.name);
    if (m.op == runnel::CatalogOp::kBucketCreate) {
      RUNNEL_ASSERT(bucket_before == nullptr);
      RUNNEL_ASSERT(after != nullptr && *after == m.bucket);
      RUNNEL_ASSERT(catalog.bucket_count() == buckets_before + 1);
    } else if (m.op == runnel::CatalogOp::kBucketReconfigure) {
      RUNNEL_ASSERT(after != nullptr && after->config == m.bucket.config);
      RUNNEL_ASSERT(after->created_ms == bucket_copy.created_ms);
      RUNNEL_ASSERT(catalog.bucket_count() == buckets_before);
    } else {
      RUNNEL_ASSERT(m.op == runnel::CatalogOp::kBucketDelete);
      RUNNEL_ASSERT(after == nullptr && !had_streams);
      RUNNEL_ASSERT(catalog.bucket_count() == buckets_before - 1);
    }
  } else {
    const runnel::StreamEntry* after = catalog.find(m.stream.id);
    switch (m.op) {
      case runnel::CatalogOp::kCreate:
        RUNNEL_ASSERT(after != nullptr && *after == m.stream);
        RUNNEL_ASSERT(catalog.find(m.stream.bucket, m.stream.name) == after);
        RUNNEL_ASSERT(catalog.size() == size_before + 1);
        break;
      case runnel::CatalogOp::kDelete:
        RUNNEL_ASSERT(after == nullptr);
        RUNNEL_ASSERT(catalog.find(copy_before.bucket, copy_before.name) == nullptr);
        RUNNEL_ASSERT(catalog.size() == size_before - 1);
        RUNNEL_ASSERT(catalog.next_id() == next_id_before);
        break;
      case runnel::CatalogOp::kReconfigure:
        RUNNEL_ASSERT(after != nullptr && after->config == m.stream.config);
        break;
      case runnel::CatalogOp::kSeal:
        RUNNEL_ASSERT(after != nullptr && after->sealed);
        break;
      case runnel::CatalogOp::kFence:
        RUNNEL_ASSERT(after != nullptr && after->fencing_token == m.stream.fencing_token);
        break;
      case runnel::CatalogOp::kTrim:
        RUNNEL_ASSERT(after != nullptr && after->trim_seq >= copy_before.trim_seq);
        RUNNEL_ASSERT(after->trim_seq >= m.stream.trim_seq);
        break;
      case runnel::CatalogOp::kSnapshotBegin:
      case runnel::CatalogOp::kSnapshotEnd:
        RUNNEL_ASSERT(false);  // The catalog refuses snapshot markers.
        break;
      case runnel::CatalogOp::kBucketCreate:
      case runnel::CatalogOp::kBucketReconfigure:
      case runnel::CatalogOp::kBucketDelete:
      case runnel::CatalogOp::kTokenIssue:
      case runnel::CatalogOp::kTokenRevoke:
        RUNNEL_ASSERT(false);  // Handled above.
        break;
    }
  }
  check_buckets(catalog);
  check_bucket(catalog, "abc");
  check_bucket(catalog, "abd");
  if (m.op == runnel::CatalogOp::kCreate) check_bucket(catalog, m.stream.bucket);
  return 0;
}
