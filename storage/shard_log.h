#pragma once
// ShardLog: one shard's log — the active segment with group commit, the
// per-stream tails and sparse indexes, control records (the stream catalog's
// mutations), segment summaries, recovery at open, reads (from the
// recent-data cache or disk), retention points and reclaiming segments
// nothing needs. Lives on its shard; every call is made on that shard.
// Streams are ids here; StreamStore (stream_store.h) adds names.
//
// Append path: a batch is checked, given its seq_nums and timestamps, and
// copied into the current aligned write buffer. Buffers are flushed as whole
// 4 KiB blocks with O_DIRECT (RWF_DSYNC by default); appends that arrive
// while flushes are in flight fill the next buffer and ride the next flush
// (group commit). Up to flushes_in_flight_max flushes run at once; appends are
// acknowledged strictly in log order, each only once its flush — and every
// flush before it — is durable. A flush never rewrites a block that holds
// acknowledged data: each starts on a fresh block and its last block is
// zero-padded.
//
// Failure: a failed write or fdatasync is never retried; the log turns
// read-only (every pending and later append fails with kIoError) until a
// restart lets recovery decide. Running out of space for a new segment fails
// appends with kNoSpace and is retried later; reads keep working.
//
// Format and recovery rules: storage/FORMAT.md.

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/inline_function.h"
#include "core/metrics.h"
#include "core/reactor.h"
#include "core/status.h"
#include "proto/values.h"
#include "storage/append_rate.h"
#include "storage/batch.h"
#include "storage/file_io.h"
#include "storage/recent_cache.h"

namespace runnel {

struct Relocation;      // storage/segment_summary.h
struct SegmentSummary;  // storage/segment_summary.h
struct SegmentScan;     // storage/log_recovery.cc
class SegmentScanner;   // storage/log_recovery.cc

struct LogOptions {
  std::string dir;                         // This shard's directory.
  uint64_t segment_bytes = 256ull << 20;   // Preallocated size of each segment file.
  uint32_t flush_bytes_max = 4u << 20;     // Largest single flush (write buffer size).
  uint32_t flushes_in_flight_max = 4;      // Concurrent flushes (each a separate write).
  uint32_t write_buffers = 8;              // Buffers in all: in flight + filling. Bounds memory.
  bool dsync = true;                       // RWF_DSYNC writes; false: write, then fdatasync.
  uint32_t read_chunk_bytes = 256u << 10;  // Size of one O_DIRECT read.
  uint32_t reads_in_flight_max = 64;       // Concurrent reads; beyond: kOverloaded.
  uint32_t index_interval_bytes = 64u << 10;  // A stream gets an index entry every this many of its bytes...
  uint32_t index_log_gap_bytes = 1u << 20;    // ...or when this much log passed since its last entry.
  uint64_t cache_bytes = 64ull << 20;         // Recently flushed data kept in memory for reads (0: none).
  uint32_t appends_waiting_max = 4096;        // Appends that may wait for a free write buffer...
  uint32_t append_wait_ms_max = 250;          // ...and for how long, before kOverloaded.
  uint64_t append_waiting_bytes_max = 64ull << 20;  // Bytes all waiting appends may hold.
  // Compaction: a complete segment whose live data is at most this share of
  // it gets that data copied forward so the segment can be deleted (0: never).
  uint32_t compact_live_percent = 25;
  // What stored batches are checked against (recovery, reads, compaction)
  // and what buffers are sized for: the absolute maxima, always.
  BatchLimits limits;
  // What a new append may be (configuration); never more than `limits`.
  BatchLimits append_limits;
};

// One append as the log takes it: a batch of one stream's records, with
// what decides its seq_nums and timestamps.
struct LogAppend {
  uint64_t stream_id = 0;            // Non-zero (0 is the log's own control stream).
  std::string_view payload{};        // Records as encoded by PayloadBuilder; copied by append().
  uint32_t record_count = 0;
  uint64_t payload_checksum = 0;     // The client's XXH3-64 of `payload`, verified.
  Timestamping timestamping = Timestamping::kClientPrefer;
  uint64_t arrival_ms = 0;           // Server clock when the append arrived.
  std::optional<uint64_t> expected_tail{};  // match_seq_num: fail unless the tail is exactly this.
  std::optional<ProducerTag> producer{};    // Idempotent producer: kept with the batch on disk.
};

// A batch as read back: its header and payload. Records below the requested
// start are the caller's to skip (first_record_index says how many).
struct StoredBatch {
  BatchHeader header;
  std::string payload;
};

struct ReadResult {
  std::vector<StoredBatch> batches;
  uint32_t first_record_index = 0;  // Records to skip in batches[0].
  uint64_t tail = 0;                // The stream's durable tail when the read finished.
};

// Where a read starts: a seq_num, the first record at or after a timestamp,
// or this many records before the tail.
struct ReadStart {
  enum class Kind { kSeqNum, kTimestamp, kTailOffset };
  Kind kind = Kind::kSeqNum;
  uint64_t value = 0;

  static ReadStart seq_num(uint64_t seq) { return {Kind::kSeqNum, seq}; }
  static ReadStart timestamp(uint64_t ms) { return {Kind::kTimestamp, ms}; }
  static ReadStart tail_offset(uint64_t n) { return {Kind::kTailOffset, n}; }
};

struct StreamTail {
  uint64_t next_seq = 0;        // Durable tail: seq_num the next acknowledged record gets.
  uint64_t last_timestamp = 0;  // Effective timestamp of the last durable record.
};

class ShardLog {
 public:
  using AppendCallback = InlineFunction<void(Result<AppendAck>), 40>;
  using ReadCallback = InlineFunction<void(Result<ReadResult>), 40>;
  // Receives, during recovery and in log order, the bytes of every durable
  // append_control() record and the segment holding it. An error is
  // logged; replay goes on.
  using ControlHandler = std::function<Status(std::string_view bytes, uint64_t segment_id)>;
  // Receives, during recovery and in log order, every durable append made
  // with a producer tag and its ack (relocated copies excepted), so the
  // owner can rebuild its idempotent-producer memory. Per stream and
  // producer, at least the last kProducerWindow of them are handed back.
  using ProducerHandler = std::function<void(uint64_t stream_id, const ProducerTag& tag, const AppendAck& ack)>;

  // Opens the log in options.dir, creating it if needed, and recovers it.
  // Blocking: call at startup, on `reactor`'s shard, before it serves; the
  // log lives on that shard from then on.
  static Result<std::unique_ptr<ShardLog>> open(Reactor& reactor, FileIo& io, const LogOptions& options,
                                                ControlHandler control_handler = nullptr,
                                                ProducerHandler producer_handler = nullptr);

  // Writes an opaque control record (e.g. a catalog mutation) into the log,
  // durably and in order with appends; recovery hands it back to the
  // ControlHandler. Same callback rules as append().
  void append_control(std::string_view bytes, AppendCallback done);
  ~ShardLog();
  ShardLog(const ShardLog&) = delete;
  ShardLog& operator=(const ShardLog&) = delete;

  // Appends one batch. The payload is verified against its checksum and
  // copied; `done` runs once it is durable, or
  // with an error (kInvalidArgument, kCorrupt, kOverloaded, kNoSpace, kIoError).
  // An append refused up front (bad batch, failed log, too many waiting)
  // calls `done` before append() returns; every other outcome comes later.
  // When every write buffer is full the append waits, in arrival order, up
  // to append_wait_ms_max for one (at most appends_waiting_max wait); then
  // kOverloaded. With `expected_tail` (match_seq_num), the append fails with
  // kSeqNumMismatch (detail() = the tail) unless the stream's tail is exactly
  // that when its seq_nums are assigned. A producer tag is stored with the
  // batch (never shown to readers) and handed back by recovery.
  void append(const LogAppend& append, AppendCallback done);

  // Reads durable batches of `stream_id` from `start_seq`, up to about
  // max_records / max_bytes (whole batches; at least one if any exists).
  // Nothing to read (start at or past the tail) and kOverloaded are answered
  // before read() returns; reads from disk answer later.
  void read(uint64_t stream_id, uint64_t start_seq, uint32_t max_records, uint32_t max_bytes, ReadCallback done) {
    read(stream_id, ReadStart::seq_num(start_seq), max_records, max_bytes, std::move(done));
  }
  // The same from a timestamp (first record whose effective timestamp is at
  // or after it) or from a tail offset (tail - n, at least 0).
  void read(uint64_t stream_id, ReadStart start, uint32_t max_records, uint32_t max_bytes, ReadCallback done);

  // Read-ahead: where to split a sequential read so several can be in flight
  // at once. From the index, a durable batch start `end_seq` with
  // from < end_seq <= from + max_records whose data lies at most `bytes`
  // (<= max_bytes, stored bytes, counted from the indexed batch `from` is in)
  // past `from`: a read of [from, end_seq) with max_records = end_seq - from
  // returns just those records, and a read from end_seq can start meanwhile.
  // nullopt when the index has no such batch (near the tail, or batches
  // larger than max_bytes): read without a plan then.
  struct ReadPlan {
    uint64_t end_seq = 0;
    uint64_t bytes = 0;
  };
  std::optional<ReadPlan> plan_read(uint64_t stream_id, uint64_t from, uint32_t max_records, uint32_t max_bytes) const;
  // Reads that may start now before reads are refused (kOverloaded).
  size_t reads_available() const { return free_read_ops_.size(); }

  // --- waiting for new records ---
  // A caller-owned waiter: wait_for_records() wakes it once, when the
  // stream's durable tail next moves (from inside the flush completion that
  // moved it), unless cancel_wait() came first. Long-poll reads and
  // subscriptions use it.
  struct TailWaiter {
    uint64_t stream_id = 0;
    InlineFunction<void(), 32> wake;
    bool waiting = false;
  };
  void wait_for_records(TailWaiter* waiter);
  void cancel_wait(TailWaiter* waiter);
  static constexpr size_t kWakeBatch = 256;  // Waiters woken per loop step.

  StreamTail tail(uint64_t stream_id) const;
  // The seq_num the next append to the stream will get (durable or not):
  // what match_seq_num is compared with.
  uint64_t assigned_tail(uint64_t stream_id) const;

  // Retention: the lowest seq_num that must be kept so that no record newer
  // than `age_cutoff_ms` (0: no age limit) is dropped and at most about
  // `bytes_max` bytes (0: no size limit) remain. Conservative: it rounds to
  // index entries, keeping a little more rather than dropping a live record.
  uint64_t retention_point(uint64_t stream_id, uint64_t age_cutoff_ms, uint64_t bytes_max) const;

  // --- reclaiming disk space ---
  // Records of the stream below `floor_seq` are no longer needed (trimmed;
  // UINT64_MAX: the stream is deleted). Floors only rise.
  void set_floor(uint64_t stream_id, uint64_t floor_seq);
  // After segments were reclaimed a stream may have no batch left on disk:
  // the owner restores its tail so seq_nums continue where they were.
  void ensure_tail(uint64_t stream_id, uint64_t next_seq);
  std::vector<uint64_t> stream_ids() const;
  // Control records in segments below this one are superseded (a complete
  // catalog snapshot starts in it) and no longer keep their segment alive.
  void set_control_horizon(uint64_t segment_id) { control_horizon_ = std::max(control_horizon_, segment_id); }
  uint64_t active_segment_id() const;
  // Store the stream's new batches lz4-compressed (when that saves space).
  void set_compression(uint64_t stream_id, bool lz4);
  // Bytes the stream's durable batches take in the log (headers included, compressed size).
  uint64_t stored_bytes(uint64_t stream_id) const;
  // Records and bytes (as stored) acknowledged over the last minute.
  AppendRate::PerMinute appended_last_minute(uint64_t stream_id) const;
  struct ReclaimReport {
    uint64_t segments_deleted = 0;
    uint64_t bytes_freed = 0;
    bool blocked_by_control_records = false;  // A dead segment kept only for catalog history.
  };
  // Deletes every complete segment that holds no needed data and no
  // unsuperseded control records, with nothing in flight on it.
  ReclaimReport reclaim();
  size_t segment_count() const { return segments_.size(); }

  // --- compaction ---
  // Starts compacting the oldest complete segment whose live data (records
  // above their stream's floor) is at most compact_live_percent of it: its
  // live batches are copied, unchanged, to the end of the log, and once the
  // copies are durable the index points at them and reclaim() deletes the
  // segment. One at a time, in the background, yielding to appends. Returns
  // kStarted if one started. Format and crash rules: storage/FORMAT.md.
  enum class CompactStart {
    kStarted,
    kNothingToDo,              // No segment qualifies (or one is being compacted).
    kWaitingForSpace,          // The copies would not fit in the active segment: after the next roll.
    kBlockedByControlRecords,  // The candidate holds catalog records: a catalog snapshot frees it.
  };
  CompactStart compact();
  bool compacting() const { return compaction_ != nullptr; }
  struct CompactionStats {
    uint64_t completed = 0;
    uint64_t abandoned = 0;         // Cut short (segment roll, I/O error, shutdown): retried later.
    uint64_t batches_relocated = 0;
    uint64_t bytes_relocated = 0;
  };
  const CompactionStats& compaction_stats() const { return compaction_stats_; }
  size_t stream_count() const { return streams_.size(); }

  // Recovery figures, for logs and tests.
  struct RecoveryReport {
    uint64_t segments = 0;
    uint64_t batches = 0;
    uint64_t bytes_scanned = 0;
    uint64_t segments_from_summary = 0;  // Complete segments recovered from their summary, unscanned.
    uint64_t corrupt_regions = 0;     // Bad data outside the torn tail: reported, never returned.
    uint64_t torn_tail_bytes = 0;     // Discarded at the end of the last segment.
    uint64_t unfinished_compactions = 0;  // Copies without their end marker: ignored.
    uint64_t duration_us = 0;
  };
  const RecoveryReport& recovery_report() const { return recovery_; }
  bool failed() const { return !failure_.is_ok(); }

 private:
  struct Segment;
  struct WriteBuffer;
  struct StreamState;
  struct ReadOp;
  struct RelocationBuilder;
  struct Compaction;
  friend struct ShardLogTestPeer;

  // Every entry point that changes the log or starts I/O asserts it runs on
  // the owning shard (cheap: a thread-local compare).
  void assert_on_owner() const { RUNNEL_ASSERT(reactor_.is_current()); }

  ShardLog(Reactor& reactor, FileIo& io, const LogOptions& options);
  // `control`: a control record's own bytes (stream 0), for the segment summary.
  void append_batch(const LogAppend& append, std::string_view control, AppendCallback done);
  // Places the append, or answers it with an error (both consume `done`:
  // true); false when no write buffer is free yet (`done` untouched).
  bool try_append(const LogAppend& append, std::string_view control, AppendCallback& done);
  void drain_waiting();
  void expire_waiting();
  void recycle(std::string payload);  // A waiting append's bytes, back for reuse.

  // An append waiting for a write buffer (overload only; bounded).
  struct WaitingAppend {
    LogAppend append;     // Its payload view is re-pointed at `payload` before each try.
    std::string payload;  // The append's own copy of the bytes.
    std::string control;
    AppendCallback done;
    uint64_t deadline_us;
  };
  Status recover();
  // Recovery of one segment without a usable summary, in steps
  // (log_recovery.cc): find the batches and bad regions, record the holes,
  // replay the batches (control records, stream tails and indexes,
  // producers), then in the last segment cut a torn tail or zero past the data.
  Status scan_segment(Segment& segment, bool last);
  void note_bad_regions(Segment& segment, const SegmentScan& scan);
  uint64_t replay_batches(Segment& segment, const SegmentScan& scan, SegmentScanner& scanner);  // The valid end.
  void replay_control(Segment& segment, uint64_t offset, const BatchHeader& h, std::string_view payload,
                      RelocationBuilder* relocating);
  void replay_stream_batch(Segment& segment, uint64_t offset, const BatchHeader& h, std::string_view payload);
  Status cut_torn_tail(Segment& segment, const SegmentScan& scan);
  Status zero_past_the_data(Segment& segment, SegmentScanner& scanner);
  Status zero_sync(Segment& segment, uint64_t from);  // Zeroes the in-flight window from `from`, durably.
  void log_unfinished_relocation(const Segment& segment, uint64_t source);
  Status create_segment_sync(uint64_t id);
  std::string segment_path(uint64_t id) const;

  WriteBuffer* current_buffer(size_t needed);
  void seal_current();
  void maybe_flush();
  void start_flush(WriteBuffer* buffer);
  void on_flush_written(WriteBuffer* buffer, int res);
  void complete_flushes();
  void fail(Status status);
  void wake_waiters();  // Up to kWakeBatch of to_wake_; posts itself for the rest.
  void prepare_next_segment();
  void roll_segment();

  // `previous_end`: the stream's durable tail before this batch.
  void index_batch(uint64_t stream_id, StreamState& stream, uint64_t base_seq, uint64_t previous_end,
                   uint64_t segment_id, uint64_t offset, uint64_t first_timestamp, uint64_t bytes);
  // Calls fn(segment_id, first, last) for each run of consecutive index
  // entries in one segment; [first, last) are entry positions.
  template <typename Fn>
  static void for_each_run(const StreamState& stream, Fn&& fn);
  // True if a read at (segment_id, offset) must continue elsewhere rather
  // than scan on: the index entry for its next_seq lies ahead of it, or
  // behind where its current stretch of scanning began (relocated copies sit
  // out of log order). Sets op's position and scan start to that entry.
  bool reposition(ReadOp* op, uint64_t segment_id, uint64_t offset) const;
  // Where the stream's data that a disk read from op->offset (an index
  // entry's location) needs ends, from the index; 0 if it cannot tell.
  uint64_t indexed_data_end(const ReadOp& op, const StreamState& stream, uint64_t segment_id) const;

  // Compaction (log_compaction.cc).
  void apply_relocation(const Relocation& relocation, uint64_t dest_segment_id);
  // Places a batch the log writes for itself (a relocated copy, a compaction
  // marker) into the current write buffer, sealed for its segment; false if
  // no buffer is free. Not counted as an append; does not touch stream state.
  bool place_internal(BatchHeader header, std::string_view stored, AppendCallback& done, uint64_t* segment_id,
                      uint64_t* offset);
  void schedule_compaction_step();
  void compaction_step();
  void compaction_read();
  void compaction_parse(int res);
  void compaction_pump();
  void compaction_commit();

  std::string summary_path(uint64_t segment_id) const;
  bool apply_summary(Segment& segment);        // Recovery: true if a valid summary was applied.
  void write_summary_sync(Segment& segment);   // Recovery.
  void write_summary(Segment& segment);        // Runtime, through the ring, once a segment is complete.
  void continue_read(ReadOp* op);
  bool parse_chunk(ReadOp* op, const char* base, uint64_t base_offset, uint64_t got);

  void finish_read(ReadOp* op, Status status);
  bool finish_read_false(ReadOp* op, Status status);  // finish_read, then "stop parsing".

  Reactor& reactor_;  // The owning shard's: every call is made on its thread.
  FileIo& io_;
  LogOptions options_;
  ControlHandler control_handler_;
  ProducerHandler producer_handler_;
  BatchLimits limits_;
  BatchLimits append_limits_;
  uint64_t zero_window_bytes_;

  std::map<uint64_t, std::unique_ptr<Segment>> segments_;
  Segment* active_ = nullptr;
  uint64_t append_offset_ = 0;  // Where the next buffer starts in the active segment (block-aligned).
  uint64_t log_position_ = 0;   // Bytes appended over the log's life in this process (for index gaps).

  std::unordered_map<uint64_t, std::unique_ptr<StreamState>> streams_;

  std::vector<std::unique_ptr<WriteBuffer>> buffers_;
  std::vector<WriteBuffer*> free_buffers_;
  WriteBuffer* filling_ = nullptr;
  std::deque<WriteBuffer*> sealed_;     // In log order: waiting to be written or in flight.
  uint32_t flushes_in_flight_ = 0;

  // Next segment, prepared ahead (open + fallocate) so a roll does not wait.
  enum class NextSegment { kNone, kPreparing, kReady, kFailed };
  NextSegment next_state_ = NextSegment::kNone;
  std::unique_ptr<Segment> next_;
  FileOp next_op_;
  uint64_t next_retry_us_ = 0;

  RecentCache cache_;  // The last cache_bytes of flushed data: tailing readers read from memory.
  std::vector<std::unique_ptr<ReadOp>> read_ops_;
  std::vector<ReadOp*> free_read_ops_;

  Status failure_;
  RecoveryReport recovery_;
  std::deque<WaitingAppend> waiting_;
  uint64_t waiting_bytes_ = 0;
  std::vector<std::string> spare_payloads_;
  std::unique_ptr<Timer> wait_timer_;
  bool draining_ = false;
  std::string compress_scratch_;  // Reused: no allocation per compressed append.
  uint64_t control_horizon_ = 0;
  std::unordered_map<uint64_t, std::vector<TailWaiter*>> tail_waiters_;
  std::vector<uint64_t> tails_moved_;  // Streams with waiters whose tail moved in this completion.
  // Waiters whose stream moved, woken kWakeBatch per loop step (still
  // `waiting` until then, so a cancel takes them out): a hundred thousand
  // long polls on one stream never hold back the ack of the append that
  // woke them, nor anything else of the shard.
  std::deque<TailWaiter*> to_wake_;
  bool wake_posted_ = false;
  std::unique_ptr<Compaction> compaction_;
  bool compaction_step_scheduled_ = false;
  CompactionStats compaction_stats_;
  std::vector<uint64_t> not_compactable_;  // Segments whose data did not check out: left in place.

  Counter* appends_ = nullptr;
  Counter* append_errors_ = nullptr;
  Counter* records_appended_ = nullptr;
  Counter* bytes_appended_ = nullptr;
  Counter* flushes_ = nullptr;
  Counter* flush_bytes_ = nullptr;
  Counter* reads_ = nullptr;
  Counter* cache_hits_ = nullptr;
  Counter* read_disk_bytes_ = nullptr;
  Counter* reclaimed_segments_ = nullptr;
  Counter* cache_misses_ = nullptr;
  Counter* corrupt_batches_ = nullptr;
  Counter* compactions_ = nullptr;
  Counter* compactions_abandoned_ = nullptr;
  Counter* relocated_bytes_ = nullptr;
  Histogram* flush_us_ = nullptr;
  Histogram* flush_batch_count_ = nullptr;
};

}  // namespace runnel
