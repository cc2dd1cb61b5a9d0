// ShardLog's construction, opening (recovery itself: log_recovery.cc) and
// the per-stream settings its owner (StreamStore) keeps current: floors,
// tails restored after reclaiming, compression. The rest of the log, by
// concern: log_append.cc (appends, group commit, acks), segment_files.cc
// (segment rolls, summaries, reclaiming), log_index.cc (the sparse
// per-stream index, retention points), log_read.cc (reads, tail waiters),
// log_recovery.cc, log_compaction.cc.
#include "storage/shard_log.h"

#include <algorithm>

#include "core/log.h"
#include "storage/log_internal.h"
#include "storage/shard_log_state.h"

namespace runnel {
using namespace log_internal;
namespace {

// Unacknowledged flushes may have landed up to this far past the first hole;
// recovery zeroes at least this much after the point where writing resumes.
constexpr uint64_t kZeroWindowFloorBytes = 32ull << 20;

}  // namespace

ShardLog::ShardLog(Reactor& reactor, FileIo& io, const LogOptions& options)
    : reactor_(reactor), io_(io), options_(options), limits_(options.limits), append_limits_(options.append_limits),
      cache_(options.cache_bytes) {
  // New appends are held to both: never more than what stored batches may be.
  append_limits_.records_max = std::min(append_limits_.records_max, limits_.records_max);
  append_limits_.payload_bytes_max = std::min(append_limits_.payload_bytes_max, limits_.payload_bytes_max);
  append_limits_.record_bytes_max = std::min(append_limits_.record_bytes_max, limits_.record_bytes_max);
  append_limits_.headers_per_record_max =
      std::min(append_limits_.headers_per_record_max, limits_.headers_per_record_max);
  RUNNEL_ASSERT(options_.segment_bytes % kBlock == 0);
  RUNNEL_ASSERT(options_.flushes_in_flight_max >= 1);
  RUNNEL_ASSERT(options_.write_buffers >= options_.flushes_in_flight_max + 1);
  // A buffer must hold the largest batch plus padding.
  const size_t largest_batch = kBatchHeaderBytes + kProducerTagBytes + limits_.payload_bytes_max;
  const size_t capacity = align_up(std::max<size_t>(options_.flush_bytes_max, largest_batch + kBlock));
  RUNNEL_ASSERT(capacity <= options_.segment_bytes);
  zero_window_bytes_ = std::max<uint64_t>(kZeroWindowFloorBytes, uint64_t{options_.write_buffers} * capacity);
  for (uint32_t i = 0; i < options_.write_buffers; i++) {
    auto buffer = std::make_unique<WriteBuffer>();
    // Not zeroed: batches are written from the front and seal_current zeroes
    // the block's tail, so no byte reaches the disk unwritten; the pages are
    // faulted in by the first flushes instead of at startup.
    buffer->data = aligned_alloc_uninitialized(capacity);
    buffer->capacity = capacity;
    free_buffers_.push_back(buffer.get());
    buffers_.push_back(std::move(buffer));
  }
  const size_t read_capacity = align_up(std::max<size_t>(options_.read_chunk_bytes, largest_batch + 2 * kBlock));
  for (uint32_t i = 0; i < options_.reads_in_flight_max; i++) {
    auto op = std::make_unique<ReadOp>();
    op->log = this;
    op->capacity = read_capacity;
    free_read_ops_.push_back(op.get());
    read_ops_.push_back(std::move(op));
  }
  {
    wait_timer_ = std::make_unique<Timer>(reactor_, [this] { expire_waiting(); });
    MetricsRegistry& m = reactor_.metrics();
    appends_ = &m.counter("runnel_log_appends_total", "Batches appended and acknowledged.");
    append_errors_ = &m.counter("runnel_log_append_errors_total", "Appends that failed.");
    records_appended_ = &m.counter("runnel_log_records_appended_total", "Records appended and acknowledged.");
    bytes_appended_ = &m.counter("runnel_log_bytes_appended_total", "Batch bytes appended and acknowledged.");
    flushes_ = &m.counter("runnel_log_flushes_total", "Flushes (durable writes) completed.");
    flush_bytes_ = &m.counter("runnel_log_flush_bytes_total", "Bytes written by flushes, padding included.");
    reads_ = &m.counter("runnel_log_reads_total", "Reads served.");
    reclaimed_segments_ = &m.counter("runnel_log_segments_reclaimed_total", "Segment files deleted because nothing in them was needed.");
    cache_hits_ = &m.counter("runnel_log_read_cache_hits_total", "Read steps served from recently written data in memory.");
    cache_misses_ = &m.counter("runnel_log_read_cache_misses_total", "Read steps that went to disk.");
    read_disk_bytes_ = &m.counter("runnel_log_read_disk_bytes_total",
                                  "Bytes reads took from segment files (other streams' data read through included).");
    corrupt_batches_ = &m.counter("runnel_log_corrupt_batches_total",
                                  "Bad batches found by recovery or reads; never returned as data.");
    compactions_ = &m.counter("runnel_log_compactions_total",
                              "Segments whose live batches were copied forward so the segment could be deleted.");
    compactions_abandoned_ = &m.counter("runnel_log_compactions_abandoned_total",
                                        "Compactions cut short (segment roll, I/O error, shutdown); retried later.");
    relocated_bytes_ = &m.counter("runnel_log_compaction_bytes_total", "Batch bytes copied forward by compaction.");
    flush_us_ = &m.histogram("runnel_log_flush_seconds", "Time from flush submission to durability.", 1e-6);
    flush_batch_count_ = &m.histogram("runnel_log_flush_batches", "Batches per flush (group commit).", 1.0);
  }
}

ShardLog::~ShardLog() {
  for (auto& [id, segment] : segments_) {
    if (segment->fd >= 0) (void)io_.close_sync(segment->fd);
  }
  if (next_ && next_->fd >= 0) (void)io_.close_sync(next_->fd);
}

Result<std::unique_ptr<ShardLog>> ShardLog::open(Reactor& reactor, FileIo& io, const LogOptions& options,
                                                ControlHandler control_handler, ProducerHandler producer_handler) {
  std::unique_ptr<ShardLog> log(new ShardLog(reactor, io, options));
  log->control_handler_ = std::move(control_handler);
  log->producer_handler_ = std::move(producer_handler);
  if (Status s = log->recover(); !s) return s;
  return log;
}

uint64_t ShardLog::active_segment_id() const { return active_->id; }

AppendRate::PerMinute ShardLog::appended_last_minute(uint64_t stream_id) const {
  auto it = streams_.find(stream_id);
  if (it == streams_.end() || !it->second->rate) return {};
  return it->second->rate->last_minute(Reactor::clock_us() / 1000);
}

uint64_t ShardLog::stored_bytes(uint64_t stream_id) const {
  auto it = streams_.find(stream_id);
  return it == streams_.end() ? 0 : it->second->bytes_total;
}

void ShardLog::set_compression(uint64_t stream_id, bool lz4) {
  assert_on_owner();
  auto& slot = streams_[stream_id];
  if (!slot) slot = std::make_unique<StreamState>();
  slot->compress_lz4 = lz4;
}

void ShardLog::set_floor(uint64_t stream_id, uint64_t floor_seq) {
  assert_on_owner();
  auto it = streams_.find(stream_id);
  if (it == streams_.end()) return;
  it->second->floor_seq = std::max(it->second->floor_seq, floor_seq);
}

void ShardLog::ensure_tail(uint64_t stream_id, uint64_t next_seq) {
  auto& slot = streams_[stream_id];
  if (!slot) slot = std::make_unique<StreamState>();
  StreamState& s = *slot;
  if (s.next_seq < next_seq) s.next_seq = next_seq;
  if (s.durable_next_seq < next_seq) s.durable_next_seq = next_seq;
}

std::vector<uint64_t> ShardLog::stream_ids() const {
  std::vector<uint64_t> ids;
  ids.reserve(streams_.size());
  for (const auto& [id, state] : streams_) ids.push_back(id);
  return ids;
}
}  // namespace runnel
