#pragma once
// StreamStore: one shard's streams as users see them — by bucket and name —
// on top of its ShardLog and StreamCatalog. Lives on its shard; every call
// is made there. The protocol and admin layers talk to this, never to the
// log directly.
//
// Stream operations (create, reconfigure, delete, seal, fence, trim) are
// catalog mutations written durably into the log; the catalog changes only
// once the mutation is durable, so an acknowledged operation survives a
// crash and an unacknowledged one never half-applies. Appends check the
// stream's state (exists, not sealed, fencing token); match_seq_num is
// decided by the log when it assigns seq_nums, in arrival order, so of
// several appends with the same match_seq_num exactly one wins — even when
// some of them had to wait for a write buffer.
//
// Buckets: a stream is created only in a bucket that exists. One store, the
// bucket home (shard 0's), writes bucket mutations into its log and replays
// them; every other store holds a replica of the table, fed by the caller
// (net/node_registry.h) after the home's write is durable. A bucket being
// deleted is marked on every store first, so no stream is created in it
// meanwhile. A bucket may create missing streams on append or on read, with
// its default stream config.

#include <cstdint>
#include <memory>
#include <optional>
#include <deque>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "core/recycler.h"
#include "proto/limits.h"
#include "storage/catalog.h"
#include "storage/shard_log.h"

namespace runnel {

struct AppendRequest {
  std::string_view payload;  // Records as encoded by PayloadBuilder; copied by append().
  uint32_t record_count = 0;
  uint64_t payload_checksum = 0;
  std::optional<uint64_t> match_seq_num;
  std::optional<std::string_view> fencing_token;
  uint64_t arrival_ms = 0;
  // Idempotent producer: a retry of (id, seq) gets the first attempt's
  // answer instead of being written again.
  struct Producer {
    uint64_t id = 0;
    uint64_t seq = 0;
  };
  std::optional<Producer> producer;
};

class StreamStore {
 public:
  using InfoCallback = InlineFunction<void(Result<StreamEntry>), 40>;
  using BucketCallback = InlineFunction<void(Result<BucketInfo>), 40>;
  using TokenCallback = InlineFunction<void(Result<TokenEntry>), 40>;
  using StatusCallback = InlineFunction<void(Status), 40>;
  using AppendCallback = ShardLog::AppendCallback;
  using ReadCallback = ShardLog::ReadCallback;

  // Opens (and recovers) the shard's log, replaying the catalog. Blocking.
  // `bucket_home`: this store's log holds the node's buckets (shard 0's);
  // any other store starts with an empty replica (replace_buckets()).
  static Result<std::unique_ptr<StreamStore>> open(Reactor& reactor, FileIo& io, const LogOptions& options,
                                                   bool bucket_home = true);

  // Stream operations. Errors: kInvalidArgument (names, config), kAlreadyExists,
  // kNotFound, and the log's (kOverloaded, kNoSpace, kIoError). `done` may
  // run before the call returns when the operation is refused up front.
  // Creating needs the bucket (kNotFound "no bucket"), not being deleted
  // (kUnavailable: retry).
  void create_stream(std::string_view bucket, std::string_view name, const StreamConfig& config, InfoCallback done);
  // The same with the bucket's default stream config.
  void create_stream_default(std::string_view bucket, std::string_view name, InfoCallback done);
  void reconfigure_stream(std::string_view bucket, std::string_view name, const StreamConfig& config,
                          InfoCallback done);
  void delete_stream(std::string_view bucket, std::string_view name, InfoCallback done);
  void seal_stream(std::string_view bucket, std::string_view name, InfoCallback done);
  // Sets the fencing token (empty clears it). Appends then need that token.
  void fence_stream(std::string_view bucket, std::string_view name, std::string_view token, InfoCallback done);
  // Drops records below `trim_seq` (never lowers an earlier trim).
  void trim_stream(std::string_view bucket, std::string_view name, uint64_t trim_seq, InfoCallback done);

  // --- buckets ---
  // On the bucket home only: bucket mutations, written durably, applied here
  // once durable (the caller then updates the replicas). Errors:
  // kInvalidArgument, kAlreadyExists (create of an existing bucket; delete
  // of one that holds streams here or is creating one), kNotFound,
  // kUnavailable (another change to the same bucket is in flight), and the
  // log's. delete_bucket answers with the bucket as it was.
  void create_bucket(std::string_view name, const BucketConfig& config, BucketCallback done);
  void reconfigure_bucket(std::string_view name, const BucketConfig& config, BucketCallback done);
  void delete_bucket(std::string_view name, BucketCallback done);
  // On the bucket home only: access tokens, written durably, applied here
  // (to the replicas: net/node_registry.h). Errors: the catalog's checks
  // (kAlreadyExists, kNotFound) and the log's. revoke_token answers with the
  // token as it was.
  void issue_token(const TokenEntry& token, TokenCallback done);
  void revoke_token(std::string_view id, TokenCallback done);
  const TokenEntry* find_token(std::string_view id) const { return catalog_.find_token(id); }
  // On a replica: a bucket or token mutation the home made durable; the whole table
  // (at startup, from the home).
  Status apply_node_replica(const CatalogMutation& mutation);
  void replace_buckets(const std::vector<BucketInfo>& buckets);
  void replace_tokens(const std::vector<TokenEntry>& tokens);
  // Deleting a bucket across shards: while marked (marks nest), creating a
  // stream in it fails with kUnavailable. Returns whether this store holds,
  // or is creating, a stream in it.
  bool mark_bucket_deleting(std::string_view name);
  void unmark_bucket_deleting(std::string_view name);
  bool bucket_home() const { return bucket_home_; }
  const BucketInfo* find_bucket(std::string_view name) const { return catalog_.find_bucket(name); }

  // A subscriber's view of create_stream_on_read: OK once `name` exists —
  // now, after a create already in flight, or after creating it with the
  // bucket's default config if the bucket says so; else kNotFound.
  void ensure_stream_for_read(std::string_view bucket, std::string_view name, StatusCallback done);

  // Appends a batch. Errors besides the log's: kNotFound, kStreamSealed,
  // kFencingTokenMismatch, kSeqNumMismatch (detail() = the tail),
  // kInvalidArgument / kCorrupt for a bad batch. With a producer, the store
  // remembers per stream the last kProducerWindow sequence numbers of each of
  // its kProducersPerStreamMax most recent producers: a retry of one of them
  // is answered as the first attempt was (once it is answered), a seq_num
  // older than that window is kSeqNumMismatch. The producer's tag is kept
  // with the batch in the log, so the memory survives a restart (crash or
  // not): a retry after it is answered, not written again. A missing
  // stream in a bucket with create_stream_on_append is created first.
  void append(std::string_view bucket, std::string_view name, const AppendRequest& request, AppendCallback done);

  // Reads durable records. A seq_num start beyond the tail is kOutOfRange
  // (detail() = the tail); records below the trim point are never returned.
  // A missing stream in a bucket with create_stream_on_read is created
  // first (and read empty, at its tail).
  void read(std::string_view bucket, std::string_view name, ReadStart start, uint32_t max_records,
            uint32_t max_bytes, ReadCallback done);

  Result<StreamTail> tail(std::string_view bucket, std::string_view name) const;
  // Read-ahead for a sequential reader (see ShardLog::plan_read): nullopt
  // for a missing stream or a start below its trim point.
  std::optional<ShardLog::ReadPlan> plan_read(std::string_view bucket, std::string_view name, uint64_t from,
                                              uint32_t max_records, uint32_t max_bytes) const;

  // Retention in the background: every `interval_ms`, streams with an age or
  // size limit are trimmed (durably) to what they may keep, and streams with
  // delete_on_empty that stayed empty that long are deleted. Trimmed records
  // are never returned again, a segment file is deleted once no stream needs
  // anything in it, and one whose few live batches pin it is compacted.
  void start_retention(uint64_t interval_ms);
  // One retention pass now (the timer calls this; tests too): trims,
  // deletes empty streams, deletes segment files nothing needs any more,
  // starts a compaction, and writes a catalog snapshot when old catalog
  // records keep a segment alive.
  void enforce_retention(uint64_t now_ms);
  const StreamCatalog& catalog() const { return catalog_; }
  ShardLog& log() { return *log_; }
  const ShardLog& log() const { return *log_; }
  ~StreamStore();

 private:
  explicit StreamStore(Reactor& reactor);  // Out of line: some members are incomplete here.
  // Every entry point asserts it runs on the owning shard (a thread-local compare).
  void assert_on_owner() const { RUNNEL_ASSERT(reactor_.is_current()); }
  // A catalog mutation on its way to the log, with whom to answer: the
  // stream's new state (stream ops) or the bucket's (bucket ops).
  struct PendingMutation {
    CatalogMutation mutation;
    InfoCallback info_done;
    BucketCallback bucket_done;
    TokenCallback token_done;
  };
  // Writes the mutation durably, then applies it and answers.
  void mutate(std::unique_ptr<PendingMutation> pending);
  void mutate(CatalogMutation mutation, InfoCallback done);
  void mutate_bucket(CatalogMutation mutation, BucketCallback done);
  // A bucket mutation at the home: checked, one at a time per bucket.
  void write_bucket(CatalogMutation mutation, BucketCallback done);
  // Answers a mutation that was refused or failed (and releases what it held).
  void fail_mutation(PendingMutation& pending, Status status);
  // A stream create that passed the up-front checks (its name is then
  // reserved in creating_), or why not.
  Result<CatalogMutation> prepare_create(std::string_view bucket, std::string_view name, const StreamConfig& config);
  // Ends a create: the name is no longer in flight; its waiters learn how it went.
  void finish_create(const CatalogMutation& mutation, const Status& status);
  // Auto-creation: OK once the stream exists (creating it if `bucket` says
  // so for this kind of access, or waiting for a create in flight).
  enum class AutoCreate { kOnAppend, kOnRead };
  bool auto_creates(std::string_view bucket, AutoCreate when) const;
  void ensure_stream(std::string_view bucket, std::string_view name, AutoCreate when, StatusCallback done);
  void append_after_create(std::string_view bucket, std::string_view name, const AppendRequest& request,
                           AppendCallback done);
  void append_to(const StreamEntry& stream, const AppendRequest& request, AppendCallback done);
  void read_after_create(std::string_view bucket, std::string_view name, ReadStart start, uint32_t max_records,
                         uint32_t max_bytes, ReadCallback done);
  void read_from(const StreamEntry& stream, ReadStart start, uint32_t max_records, uint32_t max_bytes,
                 ReadCallback done);
  Result<const StreamEntry*> existing(std::string_view bucket, std::string_view name) const;
  // Looks the stream up, lets `edit` change a copy of its state, writes that as an `op` mutation.
  void mutate_existing(std::string_view bucket, std::string_view name, CatalogOp op,
                       const std::function<void(StreamEntry&)>& edit, InfoCallback done);

  Reactor& reactor_;  // The owning shard's: every call is made on its thread.
  std::unique_ptr<ShardLog> log_;
  StreamCatalog catalog_;
  // Creates written but not yet durable, so a second create of the same name
  // (or a reused id) is refused before it reaches the log; each with what
  // waits for it to exist (auto-created streams).
  std::map<std::pair<std::string, std::string>, std::vector<StatusCallback>> creating_;
  uint64_t ids_reserved_ = 0;

  bool bucket_home_ = true;
  std::map<std::string, int, std::less<>> buckets_deleting_;  // Name -> marks held.
  std::set<std::string, std::less<>> bucket_writes_;         // Buckets with a mutation in flight (home).

  // Catalog snapshots: written when old segments are kept alive only by
  // their catalog records. Other mutations wait meanwhile, so none lands
  // between the snapshot's records.
  void write_snapshot();
  struct SnapshotWrite;
  CatalogMutation next_snapshot_record(SnapshotWrite& snap);
  void send_snapshot_records();
  void finish_snapshot();
  void run_deferred();
  bool snapshot_in_progress_ = false;
  std::unique_ptr<SnapshotWrite> snapshot_;  // The snapshot being written, if any.
  uint64_t last_snapshot_ms_ = 0;
  std::deque<std::unique_ptr<PendingMutation>> deferred_;
  // Replay of a snapshot found in the log: built aside, swapped in at its end.
  std::unique_ptr<StreamCatalog> replay_shadow_;
  uint64_t replay_shadow_segment_ = 0;
  uint64_t control_horizon_ = 0;
  Status replay(std::string_view bytes, uint64_t segment_id);

  // Idempotent producers, per stream id (only streams that have had one).
  struct ProducerEntry {
    uint64_t seq = 0;
    bool answered = false;
    Result<AppendAck> answer = Status(ErrorCode::kInternal, "not answered yet");
    std::vector<AppendCallback> retries;  // Waiting for the first attempt's answer.
  };
  struct ProducerState {
    std::deque<ProducerEntry> recent;  // By seq, oldest first.
    uint64_t last_used = 0;
  };
  std::unordered_map<uint64_t, std::unordered_map<uint64_t, ProducerState>> producers_;
  uint64_t producer_clock_ = 0;
  // An idempotent append on its way to the log, with whom to answer (reused: core/recycler.h).
  struct ProducerAppend {
    StreamStore* store = nullptr;
    uint64_t stream_id = 0;
    AppendRequest::Producer producer;
    AppendCallback done;
  };
  Recycler<ProducerAppend> producer_appends_;
  void append_as_producer(const StreamEntry& stream, const AppendRequest& request, AppendCallback done);
  void producer_answered(uint64_t stream_id, AppendRequest::Producer producer, const Result<AppendAck>& r);
  void forget_producers(uint64_t stream_id);  // The stream was deleted.
  // Recovery: an append the log holds with its producer tag (ShardLog::ProducerHandler).
  void replay_producer(uint64_t stream_id, const ProducerTag& tag, const AppendAck& ack);
  static LogAppend log_append_of(const StreamEntry& stream, const AppendRequest& request);

  std::unique_ptr<Timer> retention_timer_;
  uint64_t retention_interval_ms_ = 0;
  std::set<uint64_t> retention_pending_;            // Streams with a retention mutation in flight.
  std::map<uint64_t, uint64_t> empty_since_ms_;     // delete_on_empty: when each stream was first seen empty.
};

}  // namespace runnel
