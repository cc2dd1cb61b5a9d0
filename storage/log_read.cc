// The read path: a read finds where to start from the stream's index,
// then parses batches from the recent-data cache or from O_DIRECT disk
// reads (several in flight per shard), verifying each one and skipping other
// streams' batches, bad regions and relocated copies' old places; plus the
// tail waiters that long polls and subscriptions park on.
#include <algorithm>
#include <cstring>

#include "core/log.h"
#include "storage/log_internal.h"
#include "storage/shard_log_state.h"

namespace runnel {
using namespace log_internal;

void ShardLog::wait_for_records(TailWaiter* waiter) {
  assert_on_owner();
  RUNNEL_ASSERT(!waiter->waiting);
  waiter->waiting = true;
  tail_waiters_[waiter->stream_id].push_back(waiter);
}

void ShardLog::cancel_wait(TailWaiter* waiter) {
  assert_on_owner();
  if (!waiter->waiting) return;
  waiter->waiting = false;
  auto it = tail_waiters_.find(waiter->stream_id);
  if (it != tail_waiters_.end()) {
    auto& list = it->second;
    list.erase(std::remove(list.begin(), list.end(), waiter), list.end());
    if (list.empty()) tail_waiters_.erase(it);
  }
  // Or its stream moved and it waits its turn to be woken.
  to_wake_.erase(std::remove(to_wake_.begin(), to_wake_.end(), waiter), to_wake_.end());
}

StreamTail ShardLog::tail(uint64_t stream_id) const {
  auto it = streams_.find(stream_id);
  if (it == streams_.end()) return {};
  return {it->second->durable_next_seq, it->second->durable_last_timestamp};
}

void ShardLog::read(uint64_t stream_id, ReadStart start, uint32_t max_records, uint32_t max_bytes,
                    ReadCallback done) {
  assert_on_owner();
  auto it = streams_.find(stream_id);
  const StreamState* stream = it == streams_.end() ? nullptr : it->second.get();
  const uint64_t tail = stream == nullptr ? 0 : stream->durable_next_seq;
  uint64_t start_seq = 0;
  bool by_timestamp = false;
  switch (start.kind) {
    case ReadStart::Kind::kSeqNum:
      start_seq = start.value;
      break;
    case ReadStart::Kind::kTailOffset:
      start_seq = tail > start.value ? tail - start.value : 0;
      break;
    case ReadStart::Kind::kTimestamp:
      if (stream == nullptr || tail == 0 || stream->durable_last_timestamp < start.value) {
        start_seq = tail;  // Nothing that late yet.
      } else {
        // From the last index entry that starts before the timestamp (records
        // at or after it may begin inside that stretch); the scan finds the record.
        auto entry = std::lower_bound(
            stream->index.begin(), stream->index.end(), start.value,
            [](const StreamState::IndexEntry& e, uint64_t ts) { return e.first_timestamp < ts; });
        if (entry != stream->index.begin()) --entry;
        start_seq = entry == stream->index.end() ? tail : entry->base_seq;
        by_timestamp = true;
      }
      break;
  }
  if (start_seq >= tail || max_records == 0) {
    ReadResult empty;
    empty.tail = tail;
    done(std::move(empty));
    return;
  }
  if (free_read_ops_.empty()) {
    done(Status(ErrorCode::kOverloaded, "too many reads in flight; retry later"));
    return;
  }
  ReadOp* op = free_read_ops_.back();
  free_read_ops_.pop_back();
  if (!op->buffer) op->buffer = aligned_alloc_bytes(op->capacity);
  op->done = std::move(done);
  op->result = ReadResult();
  op->stream_id = stream_id;
  op->next_seq = start_seq;
  op->max_records = max_records;
  op->max_bytes = max_bytes;
  op->records = op->bytes = 0;
  op->positioned = false;
  op->whole_chunks = false;
  op->by_timestamp = by_timestamp;
  op->start_timestamp = start.value;
  reactor_.hold();
  continue_read(op);
}

std::optional<ShardLog::ReadPlan> ShardLog::plan_read(uint64_t stream_id, uint64_t from, uint32_t max_records,
                                                      uint32_t max_bytes) const {
  auto it = streams_.find(stream_id);
  if (it == streams_.end()) return std::nullopt;
  const StreamState& stream = *it->second;
  const auto& index = stream.index;
  using Entry = StreamState::IndexEntry;
  // Entries are in seq_num order and so in stream-bytes order; the entry
  // `from` is in counts its bytes from the batch start (an upper bound).
  auto after = stream.entry_after(from);
  if (after == index.begin() || after == index.end() || stream.durable_next_seq == 0) return std::nullopt;
  const uint64_t bytes_at_start = std::prev(after)->bytes_before;
  const uint64_t seq_limit = std::min(from + max_records, stream.durable_next_seq - 1);
  // The last entry within every limit: the split is its batch start.
  auto end = std::upper_bound(after, index.cend(), seq_limit,
                              [](uint64_t seq, const Entry& e) { return seq < e.base_seq; });
  end = std::upper_bound(after, end, bytes_at_start + max_bytes,
                         [](uint64_t bytes, const Entry& e) { return bytes < e.bytes_before; });
  if (end == after) return std::nullopt;
  const Entry& split = *std::prev(end);
  return ReadPlan{split.base_seq, split.bytes_before - bytes_at_start};
}

// Parses the batches in [base_offset, base_offset + got) of the current
// segment (from the disk or the cache), from op->offset on. Returns false if
// the read finished (the answer is sent), true to read on from op->offset.
bool ShardLog::parse_chunk(ReadOp* op, const char* base, uint64_t base_offset, uint64_t got) {
  uint64_t pos = op->offset - base_offset;
  const Segment* segment_now = segments_.at(op->segment_id).get();
  while (pos + kBatchHeaderBytes <= got) {
    const uint64_t past_hole = segment_now->skip_hole(base_offset + pos);
    if (past_hole != base_offset + pos) {
      pos = past_hole - base_offset;
      continue;
    }
    // Zero padding runs to the end of the block (a flush's tail), or a zero
    // block follows the data: skip it. Check before reading a header,
    // since fewer than 72 bytes of padding may precede the next batch.
    const uint64_t block_end = align_up(base_offset + pos + 1) - base_offset;
    if (is_zero(base + pos, std::min<uint64_t>(got, block_end) - pos)) {
      pos = block_end;
      continue;
    }
    BatchHeader h;
    std::memcpy(&h, base + pos, kBatchHeaderBytes);
    if (!verify_header(h, op->segment_id, limits_).is_ok()) {
      // Reported, skipped to the next block, never returned.
      if (corrupt_batches_ != nullptr) corrupt_batches_->inc();
      log_error("read: bad batch header in segment {} at {}", op->segment_id, base_offset + pos);
      pos = align_up(base_offset + pos + 1) - base_offset;
      continue;
    }
    if (pos + kBatchHeaderBytes + h.payload_bytes > got) break;  // Continues in the next read.
    std::string_view payload(base + pos + kBatchHeaderBytes, h.payload_bytes);
    const uint64_t batch_end_seq = h.base_seq + h.record_count;
    // Copies of the stream's records and new appends may be interleaved in
    // a run of relocated copies: note which kind this stretch is, from every
    // batch of the stream passed, taken or not.
    const bool relocated = (h.flags & kBatchFlagRelocated) != 0;
    if (h.stream_id == op->stream_id && batch_end_seq <= op->next_seq) op->in_relocated = relocated;
    if (h.stream_id == op->stream_id && batch_end_seq > op->next_seq) {
      if (h.base_seq > op->next_seq) {
        // The records wanted next may be elsewhere: relocated by compaction,
        // or back in log order after a run of relocated copies.
        const uint64_t here = base_offset + pos;
        if (reposition(op, op->segment_id, here)) return true;
        if (op->in_relocated && !relocated) {
          // A new append that landed among the copies: not next.
          pos += kBatchHeaderBytes + h.payload_bytes;
          continue;
        }
        // Records between were lost (corruption found by recovery or by
        // this read): never skip them silently.
        if (!op->result.batches.empty()) return finish_read_false(op, Status::ok());
        return finish_read_false(op, Status(ErrorCode::kCorrupt,
                                            fmt::format("records [{}, {}) of this stream are lost (corrupt on disk)",
                                                        op->next_seq, h.base_seq)));
      }
      // What the reader gets: the raw payload and a header that describes
      // it. The producer tag is the server's own: readers never see it (it
      // is split off once, its own checksum checked, then the rest verified).
      BatchHeader out = h;
      out.flags = static_cast<uint16_t>(out.flags & ~kBatchFlagRelocated);
      std::string_view stored = payload;
      Status verified = Status::ok();
      if ((h.flags & kBatchFlagProducer) != 0) {
        ProducerTag tag;
        BatchHeader untagged;
        verified = split_producer_tag(out, payload, &tag, &untagged, &stored);
        if (verified) out = untagged;
      }
      if (verified) verified = verify_payload(out, stored, limits_);
      if (!verified) {
        if (corrupt_batches_ != nullptr) corrupt_batches_->inc();
        log_error("read: bad batch payload in segment {} at {}: {}", op->segment_id, base_offset + pos,
                  verified.to_string());
        return finish_read_false(
            op, Status(ErrorCode::kCorrupt, fmt::format("stream records from seq {} are corrupt on disk", h.base_seq)));
      }
      op->in_relocated = relocated;
      std::string body;
      if ((out.flags & kBatchFlagLz4) != 0) {
        auto raw = decompress_payload(out, stored, limits_);
        if (!raw) {
          if (corrupt_batches_ != nullptr) corrupt_batches_->inc();
          return finish_read_false(op, Status(ErrorCode::kCorrupt, "compressed batch: " + raw.status().message()));
        }
        body = std::move(*raw);
        out.flags = static_cast<uint16_t>(out.flags & ~kBatchFlagLz4);
        out.payload_bytes = static_cast<uint32_t>(body.size());
      } else {
        body.assign(stored);
      }
      if (op->by_timestamp) {
        if (out.last_timestamp < op->start_timestamp) {
          // Wholly before the timestamp: skip it.
          op->next_seq = batch_end_seq;
          pos += kBatchHeaderBytes + h.payload_bytes;
          continue;
        }
        if (!effective_timestamps(out, body, limits_, &op->timestamps).is_ok()) {
          return finish_read_false(op, Status(ErrorCode::kCorrupt, "batch timestamps do not decode"));
        }
        uint64_t first = 0;
        while (first < out.record_count && op->timestamps[first] < op->start_timestamp) first++;
        op->next_seq = out.base_seq + first;
        op->by_timestamp = false;
      }
      if (op->result.batches.empty()) {
        op->result.first_record_index = static_cast<uint32_t>(op->next_seq > h.base_seq ? op->next_seq - h.base_seq : 0);
      }
      op->records += batch_end_seq - std::max(h.base_seq, op->next_seq);
      op->bytes += out.payload_bytes;
      op->next_seq = batch_end_seq;
      op->result.batches.push_back({out, std::move(body)});
      if (op->records >= op->max_records || op->bytes >= op->max_bytes) {
        pos += kBatchHeaderBytes + h.payload_bytes;
        op->offset = base_offset + pos;
        return finish_read_false(op, Status::ok());
      }
    }
    pos += kBatchHeaderBytes + h.payload_bytes;
  }
  // Padding shorter than a header at the very end: nothing more here.
  if (pos < got && is_zero(base + pos, got - pos)) pos = got;
  op->offset = base_offset + pos;
  if (pos == 0 && got > 0) {
    if (op->chunk_cut && !op->whole_chunks) {
      op->whole_chunks = true;  // The index was wrong about this batch's size: read it whole.
      return true;
    }
    finish_read(op, Status(ErrorCode::kCorrupt, "batch larger than the read buffer"));
    return false;
  }
  return true;
}

bool ShardLog::reposition(ReadOp* op, uint64_t segment_id, uint64_t offset) const {
  const StreamState& stream = *streams_.at(op->stream_id);
  auto entry = stream.entry_after(op->next_seq);
  if (entry == stream.index.begin()) return false;
  --entry;
  using Location = std::pair<uint64_t, uint64_t>;
  const Location at{entry->segment_id, entry->offset};
  // Ahead: jump over other streams' data. Behind the scan's start: the
  // records are elsewhere (copies and originals are out of log order).
  if (at > Location{segment_id, offset} || at < Location{op->scan_segment_id, op->scan_offset}) {
    op->segment_id = op->scan_segment_id = entry->segment_id;
    op->offset = op->scan_offset = entry->offset;
    op->in_relocated = false;
    return true;
  }
  return false;
}

uint64_t ShardLog::indexed_data_end(const ReadOp& op, const StreamState& stream, uint64_t segment_id) const {
  const auto& index = stream.index;
  auto at = stream.entry_after(op.next_seq);
  if (at == index.begin()) return 0;
  --at;
  if (at->segment_id != segment_id || at->offset > op.offset) return 0;
  // An entry's batches hold the stream's bytes up to the next entry's, and
  // lie in one segment before the next entry's batch. When batches are large
  // an entry has one, so from the entry's start its bytes end where that
  // batch does; further on (an entry of several small batches among other
  // streams') they end before the next entry's offset.
  auto data_end = [&](decltype(at) e) -> uint64_t {
    const uint64_t next_bytes = std::next(e) == index.end() ? stream.bytes_total : std::next(e)->bytes_before;
    return next_bytes > e->bytes_before ? e->offset + (next_bytes - e->bytes_before) : 0;
  };
  uint64_t end = 0;
  if (at->offset == op.offset) {
    end = data_end(at);
  } else if (auto next = std::next(at); next != index.end() && next->segment_id == segment_id) {
    end = next->offset;
  }
  if (end <= op.offset) return 0;
  // Later entries close by come in the same read rather than one read each
  // (other streams' data between them is read through).
  constexpr uint64_t kReadThroughGapMax = 16u << 10;
  const uint64_t read_start = align_down(op.offset);
  for (auto e = std::next(at); e != index.end() && e->segment_id == segment_id; ++e) {
    const uint64_t e_end = data_end(e);
    if (e->offset < end || e->offset > end + kReadThroughGapMax || e_end == 0 || e_end - read_start > op.capacity) break;
    end = e_end;
  }
  return end;
}

void ShardLog::continue_read(ReadOp* op) {
  // Steps served from the cache loop here; a disk read ends the call and
  // resumes from its completion.
  while (true) {
    auto it = streams_.find(op->stream_id);
    RUNNEL_ASSERT(it != streams_.end());
    StreamState& stream = *it->second;
    op->chunk_cut = false;
    const bool have_some = !op->result.batches.empty();
    if (op->next_seq >= stream.durable_next_seq ||
        (have_some && (op->records >= op->max_records || op->bytes >= op->max_bytes))) {
      return finish_read(op, Status::ok());
    }
    // The last index entry at or before next_seq. On the first step it says
    // where to start; later it lets the read jump over other streams' data
    // instead of scanning through it.
    auto entry = stream.entry_after(op->next_seq);
    if (entry == stream.index.begin()) {
      return finish_read(op, Status(ErrorCode::kNotFound, "records below the first indexed seq_num are gone"));
    }
    if (!op->positioned) {
      --entry;
      op->segment_id = op->scan_segment_id = entry->segment_id;
      op->offset = op->scan_offset = entry->offset;
      op->in_relocated = false;
      op->positioned = true;
    } else {
      reposition(op, op->segment_id, op->offset);
    }
    auto segment_it = segments_.find(op->segment_id);
    while (segment_it != segments_.end() && op->offset >= segment_it->second->durable_end) {
      ++segment_it;  // Past this segment's data: on to the next segment.
      op->offset = 0;
    }
    if (segment_it == segments_.end()) return finish_read(op, Status::ok());
    Segment& segment = *segment_it->second;
    op->segment_id = segment.id;
    // Recent data comes from memory: a flush's bytes stay cached after it is durable.
    if (const RecentCache::Chunk* chunk = cache_.find(segment.id, op->offset)) {
      if (cache_hits_ != nullptr) cache_hits_->inc();
      const uint64_t from = op->offset;
      if (!parse_chunk(op, cache_.bytes(*chunk), chunk->file_offset, chunk->length)) return;
      // No progress means a batch runs past the chunk's end (flushes are whole
      // batches, so it should not happen): read it from disk, never spin here.
      if (op->segment_id != segment.id || op->offset != from) continue;
    }
    if (cache_misses_ != nullptr) cache_misses_->inc();
    op->read_offset = align_down(op->offset);
    uint64_t len = std::min<uint64_t>(op->capacity, segment.durable_end - op->read_offset);
    // Only as far as the stream's own data goes, when the index knows: a
    // stream among many others then reads its batches, not theirs.
    const uint64_t data_end = op->whole_chunks ? 0 : indexed_data_end(*op, stream, segment.id);
    op->chunk_cut = data_end != 0 && align_up(data_end) - op->read_offset < len;
    if (op->chunk_cut) len = align_up(data_end) - op->read_offset;
    segment.reads_in_flight++;
    io_.read(segment.fd, op->buffer.get(), len, op->read_offset, &op->op, [this, op, len](int res) {
      segments_.at(op->segment_id)->reads_in_flight--;
      if (res < 0) {
        return finish_read(op, Status(ErrorCode::kIoError, fmt::format("segment read failed: {}", std::strerror(-res))));
      }
      const uint64_t got = std::min<uint64_t>(static_cast<uint64_t>(res), len);
      if (read_disk_bytes_ != nullptr) read_disk_bytes_->inc(got);
      if (parse_chunk(op, op->buffer.get(), op->read_offset, got)) continue_read(op);
    });
    return;
  }
}

bool ShardLog::finish_read_false(ReadOp* op, Status status) {
  finish_read(op, std::move(status));
  return false;
}

void ShardLog::finish_read(ReadOp* op, Status status) {
  auto it = streams_.find(op->stream_id);
  op->result.tail = it == streams_.end() ? 0 : it->second->durable_next_seq;
  ReadCallback done = std::move(op->done);
  if (reads_ != nullptr) reads_->inc();
  Result<ReadResult> result = status.is_ok() ? Result<ReadResult>(std::move(op->result)) : Result<ReadResult>(status);
  op->result = ReadResult();
  free_read_ops_.push_back(op);
  reactor_.release();
  done(std::move(result));
}
}  // namespace runnel
