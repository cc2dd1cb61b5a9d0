// The append path: a batch is checked, stamped, given its seq_nums and
// copied into the filling write buffer (or waits, bounded, for one); full
// buffers are sealed and flushed with O_DIRECT, several in flight (group
// commit); when a flush and every one before it are durable, its appends
// are acknowledged in log order, stream tails move and tail waiters wake
// (complete_flushes). A failed write turns the log read-only (fail).
#include <algorithm>
#include <cstring>

#include "core/log.h"
#include "storage/log_internal.h"
#include "storage/shard_log_state.h"

namespace runnel {
using namespace log_internal;
namespace {

// Strings kept for reuse by waiting appends (each holds up to one batch).
constexpr size_t kSparePayloadsMax = 64;

}  // namespace

void ShardLog::append(const LogAppend& append, AppendCallback done) {
  assert_on_owner();
  if (append.stream_id == kControlStreamId) {
    if (append_errors_ != nullptr) append_errors_->inc();
    return done(Status(ErrorCode::kInvalidArgument, "stream id 0 is reserved"));
  }
  append_batch(append, {}, std::move(done));
}

void ShardLog::append_control(std::string_view bytes, AppendCallback done) {
  assert_on_owner();
  std::string payload = control_payload(kControlUser, bytes);
  LogAppend control{.stream_id = kControlStreamId,
                    .payload = payload,
                    .record_count = 1,
                    .payload_checksum = payload_checksum(payload),
                    .timestamping = Timestamping::kArrival,
                    .arrival_ms = Reactor::clock_realtime_ms()};
  append_batch(control, bytes, std::move(done));
}

uint64_t ShardLog::assigned_tail(uint64_t stream_id) const {
  auto it = streams_.find(stream_id);
  return it == streams_.end() ? 0 : it->second->next_seq;
}

void ShardLog::append_batch(const LogAppend& append, std::string_view control, AppendCallback done) {
  // Appends are placed in arrival order: while some wait, newcomers queue behind them.
  if (waiting_.empty() && try_append(append, control, done)) return;
  const std::string_view payload = append.payload;
  if (waiting_.size() >= options_.appends_waiting_max ||
      waiting_bytes_ + payload.size() > options_.append_waiting_bytes_max) {
    if (append_errors_ != nullptr) append_errors_->inc();
    return done(Status(ErrorCode::kOverloaded, "log write buffers are full and too many appends wait; retry later"));
  }
  // Overload path only: the waiting append keeps its own copy of the bytes,
  // in a recycled string so a sustained overload does not churn the allocator.
  if (waiting_.empty()) reactor_.hold();  // Shutdown waits for waiting appends too.
  std::string copy;
  if (!spare_payloads_.empty()) {
    copy = std::move(spare_payloads_.back());
    spare_payloads_.pop_back();
  }
  copy.assign(payload);
  waiting_bytes_ += payload.size();
  waiting_.push_back({append, std::move(copy), std::string(control), std::move(done),
                      Reactor::clock_us() + uint64_t{options_.append_wait_ms_max} * 1000});
  if (!wait_timer_->armed()) wait_timer_->arm_at_us(waiting_.front().deadline_us);
}

void ShardLog::drain_waiting() {
  if (waiting_.empty() || draining_) return;
  draining_ = true;
  while (!waiting_.empty()) {
    WaitingAppend& w = waiting_.front();
    w.append.payload = w.payload;
    if (!try_append(w.append, w.control, w.done)) {
      break;  // Still no room: the rest waits too.
    }
    recycle(std::move(w.payload));
    waiting_.pop_front();
  }
  draining_ = false;
  if (waiting_.empty()) {
    wait_timer_->cancel();
    reactor_.release();
  } else if (!wait_timer_->armed()) {
    wait_timer_->arm_at_us(waiting_.front().deadline_us);
  }
}

void ShardLog::expire_waiting() {
  const uint64_t now = Reactor::clock_us();
  while (!waiting_.empty() && waiting_.front().deadline_us <= now) {
    WaitingAppend w = std::move(waiting_.front());
    waiting_.pop_front();
    recycle(std::move(w.payload));
    // Release before answering: the answer may append again and wait anew.
    if (waiting_.empty()) reactor_.release();
    if (append_errors_ != nullptr) append_errors_->inc();
    w.done(Status(ErrorCode::kOverloaded,
                  fmt::format("waited {} ms for log write buffers; retry later", options_.append_wait_ms_max)));
  }
  if (!waiting_.empty() && !wait_timer_->armed()) wait_timer_->arm_at_us(waiting_.front().deadline_us);
}

void ShardLog::recycle(std::string payload) {
  waiting_bytes_ -= payload.size();
  if (spare_payloads_.size() < kSparePayloadsMax) {
    payload.clear();  // Keeps its capacity.
    spare_payloads_.push_back(std::move(payload));
  }
}

bool ShardLog::try_append(const LogAppend& append, std::string_view control, AppendCallback& done) {
  const uint64_t stream_id = append.stream_id;
  const std::string_view payload = append.payload;
  const uint32_t record_count = append.record_count;
  auto reject = [&](Status status) {
    if (append_errors_ != nullptr) append_errors_->inc();
    AppendCallback callback = std::move(done);
    callback(std::move(status));
    return true;
  };
  if (!failure_.is_ok()) return reject(failure_);
  BatchHeader header;
  header.stream_id = stream_id;
  header.record_count = record_count;
  header.payload_bytes = static_cast<uint32_t>(payload.size());
  header.payload_checksum = append.payload_checksum;
  if (record_count == 0) return reject(Status(ErrorCode::kInvalidArgument, "a batch holds at least one record"));
  // A new append meets the configured limits (server.batch_*); stored
  // batches are only ever checked against the absolute ones (limits_).
  if (payload.size() > append_limits_.payload_bytes_max || record_count > append_limits_.records_max) {
    return reject(Status(ErrorCode::kTooLarge,
                         fmt::format("batch of {} records, {} bytes: over the limits of {} records, {} bytes "
                                     "(server.batch_records_max, server.batch_bytes_max)",
                                     record_count, payload.size(), append_limits_.records_max,
                                     append_limits_.payload_bytes_max)));
  }
  PayloadTimestamps timestamps;  // Gathered by the one pass that verifies the records.
  if (Status s = verify_payload(header, payload, append_limits_, &timestamps); !s) return reject(std::move(s));

  // Control batches have no stream state: they all carry base_seq 0.
  StreamState control_state;
  StreamState* state = &control_state;
  if (stream_id != kControlStreamId) {
    auto& slot = streams_[stream_id];
    if (!slot) slot = std::make_unique<StreamState>();
    state = slot.get();
  }
  StreamState& stream = *state;
  // match_seq_num is decided here, when seq_nums are assigned, so of racing
  // appends (waiting or not) exactly one wins.
  if (append.expected_tail && *append.expected_tail != stream.next_seq) {
    return reject(Status(ErrorCode::kSeqNumMismatch,
                         fmt::format("match_seq_num {} is not the tail {}", *append.expected_tail, stream.next_seq),
                         stream.next_seq));
  }
  if (Status s = stamp_batch(&header, timestamps, append.arrival_ms, stream.last_timestamp, append.timestamping); !s) {
    return reject(std::move(s));
  }
  // Per-stream lz4: the stored payload is compressed when that saves space;
  // the header keeps the client's checksum of the raw payload.
  std::string_view stored = payload;
  if (stream.compress_lz4 && compress_payload(payload, &compress_scratch_)) {
    stored = compress_scratch_;
    header.flags = static_cast<uint16_t>(header.flags | kBatchFlagLz4);
    header.payload_bytes = static_cast<uint32_t>(stored.size());
  }
  // An idempotent producer's tag goes in front of the stored payload.
  const size_t tag_bytes = append.producer ? kProducerTagBytes : 0;
  if (append.producer) {
    header.flags = static_cast<uint16_t>(header.flags | kBatchFlagProducer);
    header.payload_bytes = static_cast<uint32_t>(tag_bytes + stored.size());
  }
  const size_t bytes = kBatchHeaderBytes + tag_bytes + stored.size();
  WriteBuffer* buffer = current_buffer(bytes);
  if (buffer == nullptr) {
    if (!failure_.is_ok()) return reject(failure_);
    if (next_state_ == NextSegment::kFailed) {
      return reject(Status(ErrorCode::kNoSpace, "no space for a new segment"));
    }
    return false;  // Buffers full or the next segment not ready yet: wait.
  }
  header.base_seq = stream.next_seq;
  seal_header(&header, buffer->segment->id);
  char* at = buffer->data.get() + buffer->used;
  std::memcpy(at, &header, kBatchHeaderBytes);
  if (append.producer) put_producer_tag(*append.producer, at + kBatchHeaderBytes);
  std::memcpy(at + kBatchHeaderBytes + tag_bytes, stored.data(), stored.size());
  WriteBuffer::Pending pending;
  pending.done = std::move(done);
  pending.ack = {header.base_seq, header.base_seq + record_count, header.first_timestamp, header.last_timestamp,
                 header.base_seq + record_count};
  pending.stream_id = stream_id;
  pending.offset = buffer->offset + buffer->used;
  pending.bytes = bytes;
  pending.producer = append.producer;
  if (stream_id == kControlStreamId) pending.control = std::string(control);
  if (buffer->pending.empty()) reactor_.hold();  // Until this buffer is durable: shutdown waits.
  buffer->pending.push_back(std::move(pending));
  buffer->used += bytes;
  stream.next_seq += record_count;
  stream.last_timestamp = header.last_timestamp;
  maybe_flush();
  return true;
}

bool ShardLog::place_internal(BatchHeader header, std::string_view stored, AppendCallback& done,
                              uint64_t* segment_id, uint64_t* offset) {
  const size_t bytes = kBatchHeaderBytes + stored.size();
  WriteBuffer* buffer = current_buffer(bytes);
  if (buffer == nullptr) return false;
  seal_header(&header, buffer->segment->id);
  char* at = buffer->data.get() + buffer->used;
  std::memcpy(at, &header, kBatchHeaderBytes);
  std::memcpy(at + kBatchHeaderBytes, stored.data(), stored.size());
  WriteBuffer::Pending pending;
  pending.done = std::move(done);
  pending.ack = {header.base_seq, header.base_seq + header.record_count, header.first_timestamp, header.last_timestamp,
                 header.base_seq + header.record_count};
  pending.stream_id = header.stream_id;
  pending.offset = buffer->offset + buffer->used;
  pending.bytes = bytes;
  pending.internal = true;
  *segment_id = buffer->segment->id;
  *offset = pending.offset;
  if (buffer->pending.empty()) reactor_.hold();
  buffer->pending.push_back(std::move(pending));
  buffer->used += bytes;
  maybe_flush();
  return true;
}

ShardLog::WriteBuffer* ShardLog::current_buffer(size_t needed) {
  if (filling_ != nullptr && filling_->used + needed <= filling_->capacity &&
      filling_->offset + align_up(filling_->used + needed) <= options_.segment_bytes) {
    return filling_;
  }
  if (filling_ != nullptr) seal_current();
  if (free_buffers_.empty()) return nullptr;
  if (append_offset_ + align_up(needed) > options_.segment_bytes) {
    if (next_state_ != NextSegment::kReady) {
      prepare_next_segment();
      if (next_state_ != NextSegment::kReady) return nullptr;
    }
    roll_segment();
  }
  // Prepare the next segment early, so a roll rarely waits.
  if (append_offset_ > options_.segment_bytes / 2) prepare_next_segment();
  WriteBuffer* buffer = free_buffers_.back();
  free_buffers_.pop_back();
  buffer->reset();
  buffer->segment = active_;
  buffer->offset = append_offset_;
  filling_ = buffer;
  return buffer;
}

void ShardLog::seal_current() {
  RUNNEL_ASSERT(filling_ != nullptr);
  WriteBuffer* buffer = std::exchange(filling_, nullptr);
  if (buffer->used == 0) {
    free_buffers_.push_back(buffer);
    return;
  }
  // Zero the padding: the block tail must read as "no batch here".
  std::memset(buffer->data.get() + buffer->used, 0, buffer->padded() - buffer->used);
  append_offset_ = buffer->offset + buffer->padded();
  sealed_.push_back(buffer);
}

void ShardLog::maybe_flush() {
  if (!failure_.is_ok()) return;
  // Group commit: while a flush slot is free, the filling buffer goes now;
  // otherwise it keeps collecting appends until one frees up.
  bool unstarted = false;
  for (WriteBuffer* b : sealed_) unstarted |= !b->started;
  if (filling_ != nullptr && filling_->used > 0 && !unstarted && flushes_in_flight_ < options_.flushes_in_flight_max) {
    seal_current();
  }
  for (WriteBuffer* buffer : sealed_) {
    if (buffer->started) continue;
    if (flushes_in_flight_ >= options_.flushes_in_flight_max) break;
    // A new segment is written only once the previous one is complete, so a
    // torn tail can only ever be in the last segment.
    bool older_in_flight = false;
    for (WriteBuffer* b : sealed_) {
      if (b == buffer) break;
      if (!b->durable && b->segment != buffer->segment) older_in_flight = true;
    }
    if (older_in_flight) break;
    start_flush(buffer);
  }
}

void ShardLog::start_flush(WriteBuffer* buffer) {
  buffer->started = true;
  buffer->started_us = Reactor::clock_us();
  flushes_in_flight_++;
  buffer->segment->flushes_in_flight++;
  io_.write(buffer->segment->fd, buffer->data.get(), buffer->padded(), buffer->offset,
            options_.dsync ? kWriteDsync : kWriteNone, &buffer->op,
            [this, buffer](int res) { on_flush_written(buffer, res); });
}

void ShardLog::on_flush_written(WriteBuffer* buffer, int res) {
  if (!failure_.is_ok()) {
    flushes_in_flight_--;
    buffer->segment->flushes_in_flight--;
    return;
  }
  if (res < 0 || static_cast<size_t>(res) != buffer->padded()) {
    flushes_in_flight_--;
    buffer->segment->flushes_in_flight--;
    // Never retried: what reached the disk is unknown; recovery decides.
    fail(Status(res == -ENOSPC ? ErrorCode::kNoSpace : ErrorCode::kIoError,
                res < 0 ? fmt::format("segment write failed: {}", std::strerror(-res))
                        : fmt::format("short segment write: {} of {} bytes", res, buffer->padded())));
    return;
  }
  if (!options_.dsync) {
    io_.fdatasync(buffer->segment->fd, &buffer->op, [this, buffer](int sync_res) {
      flushes_in_flight_--;
      buffer->segment->flushes_in_flight--;
      if (!failure_.is_ok()) return;
      if (sync_res < 0) {
        fail(Status(ErrorCode::kIoError, fmt::format("fdatasync failed: {}", std::strerror(-sync_res))));
        return;
      }
      buffer->durable = true;
      complete_flushes();
    });
    return;
  }
  flushes_in_flight_--;
  buffer->segment->flushes_in_flight--;
  buffer->durable = true;
  complete_flushes();
}

void ShardLog::complete_flushes() {
  // Acknowledge strictly in log order: a durable flush waits for every
  // flush before it.
  while (!sealed_.empty() && sealed_.front()->durable) {
    WriteBuffer* buffer = sealed_.front();
    sealed_.pop_front();
    const uint64_t now = Reactor::clock_us();
    if (flush_us_ != nullptr) {
      flush_us_->record(now - buffer->started_us);
      flush_batch_count_->record(buffer->pending.size());
      flushes_->inc();
      flush_bytes_->inc(buffer->padded());
    }
    buffer->segment->durable_end = std::max(buffer->segment->durable_end, buffer->offset + buffer->padded());
    cache_.insert(buffer->segment->id, buffer->offset, buffer->data.get(), buffer->padded());
    for (WriteBuffer::Pending& p : buffer->pending) {
      if (p.internal) {
        if (SegmentSummary* summary = buffer->segment->summary.get()) summary->batches++;
        p.done(p.ack);
        continue;
      }
      if (p.stream_id == kControlStreamId) {
        buffer->segment->control_records++;
        if (SegmentSummary* summary = buffer->segment->summary.get()) {
          summary->controls.push_back(std::move(p.control));
          summary->batches++;
        }
        p.done(p.ack);
        continue;
      }
      StreamState& stream = *streams_[p.stream_id];
      const uint64_t previous_end = stream.durable_next_seq;
      stream.durable_next_seq = p.ack.end_seq;
      if (!tail_waiters_.empty() && tail_waiters_.count(p.stream_id) != 0) tails_moved_.push_back(p.stream_id);
      stream.durable_last_timestamp = p.ack.end_timestamp;
      log_position_ += p.bytes;
      index_batch(p.stream_id, stream, p.ack.start_seq, previous_end, buffer->segment->id, p.offset,
                  p.ack.start_timestamp, p.bytes);
      if (SegmentSummary* summary = buffer->segment->summary.get()) {
        summary->tails[p.stream_id] = {p.ack.end_seq, p.ack.end_timestamp, stream.bytes_total};
        summary->batches++;
        if (p.producer) {
          summary->note_producer(
              p.stream_id, p.producer->id,
              {p.producer->seq, p.ack.start_seq, p.ack.end_seq, p.ack.start_timestamp, p.ack.end_timestamp});
        }
      }
      if (!stream.rate) stream.rate = std::make_unique<AppendRate>();
      stream.rate->record(now / 1000, p.ack.end_seq - p.ack.start_seq, p.bytes);
      if (appends_ != nullptr) {
        appends_->inc();
        records_appended_->inc(p.ack.end_seq - p.ack.start_seq);
        bytes_appended_->inc(p.bytes);
      }
      p.done(p.ack);
    }
    bool held = !buffer->pending.empty();
    Segment* segment = buffer->segment;
    buffer->reset();
    free_buffers_.push_back(buffer);
    // A segment we have rolled past, with nothing of it still in flight, is
    // complete: save its summary so the next recovery need not scan it.
    bool still_writing = segment == active_;
    for (WriteBuffer* b : sealed_) still_writing |= b->segment == segment;
    if (filling_ != nullptr) still_writing |= filling_->segment == segment;
    if (!still_writing) write_summary(*segment);
    if (held) reactor_.release();
  }
  // Readers waiting for new records of these streams: they may read now.
  std::sort(tails_moved_.begin(), tails_moved_.end());
  tails_moved_.erase(std::unique(tails_moved_.begin(), tails_moved_.end()), tails_moved_.end());
  while (!tails_moved_.empty()) {
    const uint64_t stream_id = tails_moved_.back();
    tails_moved_.pop_back();
    auto it = tail_waiters_.find(stream_id);
    if (it == tail_waiters_.end()) continue;
    to_wake_.insert(to_wake_.end(), it->second.begin(), it->second.end());
    tail_waiters_.erase(it);
  }
  wake_waiters();
  maybe_flush();
  drain_waiting();  // Buffers came free: waiting appends go in.
  if (compaction_) schedule_compaction_step();  // ...and then compaction's copies.
}

void ShardLog::wake_waiters() {
  for (size_t n = 0; n < kWakeBatch && !to_wake_.empty(); n++) {
    TailWaiter* w = to_wake_.front();
    to_wake_.pop_front();
    w->waiting = false;
    w->wake();  // May wait again, cancel others, or free itself.
  }
  if (to_wake_.empty() || wake_posted_) return;
  wake_posted_ = true;
  reactor_.post([this] {
    wake_posted_ = false;
    wake_waiters();
  });
}

void ShardLog::fail(Status status) {
  log_error("log {} is now read-only: {}", options_.dir, status.to_string());
  failure_ = status;
  auto fail_buffer = [&](WriteBuffer* buffer) {
    for (WriteBuffer::Pending& p : buffer->pending) {
      if (append_errors_ != nullptr) append_errors_->inc();
      p.done(status);
    }
    if (!buffer->pending.empty()) reactor_.release();
    buffer->pending.clear();
  };
  for (WriteBuffer* buffer : sealed_) fail_buffer(buffer);
  if (filling_ != nullptr) fail_buffer(filling_);
  if (!waiting_.empty()) {
    std::deque<WaitingAppend> waiting;
    waiting.swap(waiting_);
    waiting_bytes_ = 0;
    wait_timer_->cancel();
    reactor_.release();
    for (WaitingAppend& w : waiting) {
      if (append_errors_ != nullptr) append_errors_->inc();
      w.done(status);
    }
  }
  // The buffers stay out of the free list: writes may still be in flight into them.
}
}  // namespace runnel
