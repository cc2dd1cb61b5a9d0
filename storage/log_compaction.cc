// Compaction: copying the live batches that keep an old segment alive to
// the end of the log, so the segment can be deleted and its space comes back
// even when one slow stream still needs a few of its records.
//
// One compaction at a time per shard, in the background:
//   1. pick the oldest complete segment whose live data is a small share of
//      it (compact_live_percent) and that fits in the active segment;
//   2. write a begin marker, then read the source in file order and place
//      each live batch again — same stream, seq_nums, timestamps and payload
//      bytes, flagged "relocated" and sealed for its new segment — each group
//      of copies led by a run marker with the stream's byte count;
//   3. once everything is placed, an end marker; when it is durable (so are
//      the copies before it) the index moves to the copies, the source's
//      entries go, and reclaim() deletes the source.
// Copies count only between a begin and an end marker in one segment: a
// crash, a roll into a new segment, or an error part way leaves inert copies
// and the source in charge. Appends go first: copies are placed only while
// no append waits for a buffer.

#include <algorithm>
#include <cinttypes>
#include <cstring>

#include "core/log.h"
#include "storage/shard_log_state.h"

namespace runnel {
using namespace log_internal;
namespace {

// Seq ranges as start -> end, kept merged.
using Ranges = std::map<uint64_t, uint64_t>;

bool overlaps(const Ranges& ranges, uint64_t start, uint64_t end) {
  auto it = ranges.upper_bound(start);
  if (it != ranges.end() && it->first < end) return true;
  return it != ranges.begin() && std::prev(it)->second > start;
}

void add_range(Ranges& ranges, uint64_t start, uint64_t end) {
  auto it = ranges.lower_bound(start);
  if (it != ranges.begin() && std::prev(it)->second >= start) {
    --it;
    start = it->first;
    end = std::max(end, it->second);
    it = ranges.erase(it);
  }
  while (it != ranges.end() && it->first <= end) {
    end = std::max(end, it->second);
    it = ranges.erase(it);
  }
  ranges[start] = end;
}

bool covers(const Ranges& ranges, uint64_t start, uint64_t end) {
  if (start >= end) return true;
  auto it = ranges.upper_bound(start);
  if (it == ranges.begin()) return false;
  --it;
  return it->first <= start && it->second >= end;
}

}  // namespace

void ShardLog::apply_relocation(const Relocation& relocation, uint64_t dest_segment_id) {
  using Entry = StreamState::IndexEntry;
  for (auto& [id, state] : streams_) {
    auto& index = state->index;
    index.erase(std::remove_if(index.begin(), index.end(),
                               [&](const Entry& e) { return e.segment_id == relocation.source; }),
                index.end());
  }
  for (const Relocation::Stream& moved : relocation.streams) {
    auto& slot = streams_[moved.stream_id];
    if (!slot) slot = std::make_unique<StreamState>();
    StreamState& stream = *slot;
    std::vector<Entry> added;
    added.reserve(moved.entries.size());
    for (const Relocation::Entry& e : moved.entries) {
      added.push_back({e.base_seq, dest_segment_id, e.offset, e.first_timestamp, e.bytes_before});
    }
    auto by_seq = [](const Entry& a, const Entry& b) { return a.base_seq < b.base_seq; };
    std::sort(added.begin(), added.end(), by_seq);
    std::vector<Entry> merged(stream.index.size() + added.size());
    std::merge(stream.index.begin(), stream.index.end(), added.begin(), added.end(), merged.begin(), by_seq);
    stream.index = std::move(merged);
    // Recovery after the source was deleted: the copies may be all that is
    // left of the stream, so they carry its tail.
    if (moved.end_seq > stream.durable_next_seq) {
      stream.next_seq = std::max(stream.next_seq, moved.end_seq);
      stream.durable_next_seq = moved.end_seq;
      stream.last_timestamp = std::max(stream.last_timestamp, moved.last_timestamp);
      stream.durable_last_timestamp = moved.last_timestamp;
      stream.bytes_total = std::max(stream.bytes_total, moved.bytes_end);
      stream.tail_from_copies = true;
    }
  }
}

ShardLog::CompactStart ShardLog::compact() {
  assert_on_owner();
  if (compaction_ || !failure_.is_ok() || options_.compact_live_percent == 0 ||
      reactor_.stopping()) {
    return CompactStart::kNothingToDo;
  }
  // Live bytes of each complete segment that may be compacted.
  std::map<uint64_t, uint64_t> live;
  for (const auto& [id, segment] : segments_) {
    if (segment.get() == active_ || segment->compacting) continue;
    if (std::find(not_compactable_.begin(), not_compactable_.end(), id) != not_compactable_.end()) continue;
    bool writing = filling_ != nullptr && filling_->segment == segment.get();
    for (WriteBuffer* b : sealed_) writing |= b->segment == segment.get();
    if (!writing) live[id] = 0;
  }
  for (const auto& [stream_id, state] : streams_) {
    const StreamState& stream = *state;
    for_each_run(stream, [&](uint64_t segment_id, size_t first, size_t last) {
      auto it = live.find(segment_id);
      if (it == live.end()) return;
      const auto& index = stream.index;
      const uint64_t end_seq = last < index.size() ? index[last].base_seq : stream.durable_next_seq;
      if (stream.floor_seq >= end_seq) return;
      // From the last entry at or below the floor to the run's end.
      size_t from = first;
      while (from + 1 < last && index[from + 1].base_seq <= stream.floor_seq) from++;
      const uint64_t end_bytes = last < index.size() ? index[last].bytes_before : stream.bytes_total;
      it->second += std::max<uint64_t>(1, end_bytes > index[from].bytes_before ? end_bytes - index[from].bytes_before : 0);
    });
  }
  const uint64_t space_left = options_.segment_bytes - std::min(options_.segment_bytes, append_offset_);
  uint64_t source = UINT64_MAX;
  uint64_t live_bytes = 0;
  for (const auto& [id, bytes] : live) {
    if (bytes == 0) continue;  // Nothing live: reclaim() deletes it.
    if (bytes * 100 > options_.segment_bytes * options_.compact_live_percent) continue;
    // Catalog records are replayed in log order and cannot move; once a
    // snapshot supersedes them they no longer matter.
    const Segment& segment = *segments_.at(id);
    if (segment.control_records > 0 && id >= control_horizon_) return CompactStart::kBlockedByControlRecords;
    // The copies must all land in the active segment; wait for a fresh one otherwise.
    if (bytes + options_.flush_bytes_max > space_left) return CompactStart::kWaitingForSpace;
    source = id;
    live_bytes = bytes;
    break;
  }
  if (source == UINT64_MAX) return CompactStart::kNothingToDo;

  auto c = std::make_unique<Compaction>();
  c->source = source;
  c->dest = active_->id;
  c->live_estimate = live_bytes;
  c->started_us = Reactor::clock_us();
  for (const auto& [id, state] : streams_) {
    const uint64_t stream_id = id;  // Named for the lambda (clang 14 cannot capture a structured binding).
    const StreamState& stream = *state;
    for_each_run(stream, [&](uint64_t segment_id, size_t first, size_t last) {
      if (segment_id != source) return;
      const uint64_t end_seq = last < stream.index.size() ? stream.index[last].base_seq : stream.durable_next_seq;
      if (stream.floor_seq < end_seq) c->runs[stream_id].push_back({stream.index[first].base_seq, end_seq});
    });
  }
  c->capacity = align_up(std::max<uint64_t>(4u << 20, uint64_t{options_.limits.payload_bytes_max} + 3 * kBlock));
  c->buffer = aligned_alloc_bytes(c->capacity);
  c->outbox.push_back({Compaction::Item::Kind::kBegin});
  Segment& segment = *segments_.at(source);
  segment.compacting = true;
  log_info("compacting segment {}: about {} KiB of it still live; copying that forward", segment.path,
           live_bytes >> 10);
  compaction_ = std::move(c);
  reactor_.hold();  // Shutdown waits for the compaction to wind down.
  schedule_compaction_step();
  return CompactStart::kStarted;
}

void ShardLog::schedule_compaction_step() {
  if (compaction_step_scheduled_ || !compaction_) return;
  compaction_step_scheduled_ = true;
  // Posted, not called: steps run outside flush completion and read callbacks.
  reactor_.post([this] { compaction_step(); });
}

void ShardLog::compaction_step() {
  compaction_step_scheduled_ = false;
  Compaction* c = compaction_.get();
  if (c == nullptr) return;
  if (!c->abandoned && !c->committed) {
    if (!failure_.is_ok()) {
      c->abandoned = true;
      c->why = "the log failed";
    } else if (reactor_.stopping()) {
      c->abandoned = true;
      c->why = "shutting down";
    }
  }
  if (c->abandoned || c->committed) {
    if (c->unacked > 0 || c->reading) return;  // Their callbacks still point at it.
    auto segment = segments_.find(c->source);
    if (segment != segments_.end()) segment->second->compacting = false;
    const bool committed = c->committed;
    if (committed) {
      compaction_stats_.completed++;
      compaction_stats_.batches_relocated += c->batches;
      compaction_stats_.bytes_relocated += c->bytes;
      if (compactions_ != nullptr) {
        compactions_->inc();
        relocated_bytes_->inc(c->bytes);
      }
      log_info("compacted segment {:020}: {} batches ({} KiB) copied into segment {:020} in {} ms", c->source,
               c->batches, c->bytes >> 10, c->dest, (Reactor::clock_us() - c->started_us) / 1000);
    } else {
      compaction_stats_.abandoned++;
      if (compactions_abandoned_ != nullptr) compactions_abandoned_->inc();
      log_warn("compaction of segment {:020} abandoned: {}", c->source, c->why);
    }
    compaction_.reset();
    reactor_.release();
    if (committed) reclaim();
    return;
  }
  compaction_pump();
  if (c->abandoned) return schedule_compaction_step();
  if (!c->outbox.empty() || c->reading || c->end_queued) return;
  if (!c->read_done) return compaction_read();
  // Everything read and placed: every live record of the source must have
  // been copied, or the source stays in charge.
  for (const auto& [stream_id, runs] : c->runs) {
    auto state = streams_.find(stream_id);
    const uint64_t floor = state == streams_.end() ? 0 : state->second->floor_seq;
    for (const Compaction::Run& run : runs) {
      if (!covers(c->copied[stream_id], std::max(run.start_seq, floor), run.end_seq)) {
        c->abandoned = true;
        c->why = fmt::format("records of stream {} in [{}, {}) were not found in it; it stays", stream_id,
                             std::max(run.start_seq, floor), run.end_seq);
        not_compactable_.push_back(c->source);
        return schedule_compaction_step();
      }
    }
  }
  c->end_queued = true;
  c->outbox.push_back({Compaction::Item::Kind::kEnd});
  compaction_pump();
  if (c->abandoned) schedule_compaction_step();
}

void ShardLog::compaction_read() {
  Compaction* c = compaction_.get();
  Segment& segment = *segments_.at(c->source);
  if (c->next_offset >= segment.durable_end) {
    c->read_done = true;
    return schedule_compaction_step();
  }
  c->read_offset = align_down(c->next_offset);
  const uint64_t len = std::min<uint64_t>(c->capacity, segment.durable_end - c->read_offset);
  c->reading = true;
  segment.reads_in_flight++;
  io_.read(segment.fd, c->buffer.get(), len, c->read_offset, &c->op, [this, c, len](int res) {
    segments_.at(c->source)->reads_in_flight--;
    c->reading = false;
    if (!c->abandoned) {
      if (res < 0) {
        c->abandoned = true;
        c->why = fmt::format("reading it failed: {}", std::strerror(-res));
        not_compactable_.push_back(c->source);
      } else {
        compaction_parse(static_cast<int>(std::min<uint64_t>(static_cast<uint64_t>(res), len)));
      }
    }
    schedule_compaction_step();
  });
}

// Queues the live batches in the buffer, from next_offset on, for copying.
void ShardLog::compaction_parse(int got_bytes) {
  Compaction* c = compaction_.get();
  const Segment& segment = *segments_.at(c->source);
  const char* base = c->buffer.get();
  const uint64_t got = static_cast<uint64_t>(got_bytes);
  const uint64_t start = c->next_offset - c->read_offset;
  uint64_t pos = start;
  auto give_up = [&](std::string why) {
    c->abandoned = true;
    c->why = std::move(why);
    c->outbox.clear();
    not_compactable_.push_back(c->source);
  };
  while (pos + kBatchHeaderBytes <= got) {
    const uint64_t past_hole = segment.skip_hole(c->read_offset + pos);
    if (past_hole != c->read_offset + pos) {
      pos = past_hole - c->read_offset;
      continue;
    }
    const uint64_t block_end = align_up(c->read_offset + pos + 1) - c->read_offset;
    if (is_zero(base + pos, std::min<uint64_t>(got, block_end) - pos)) {
      pos = block_end;
      continue;
    }
    BatchHeader h;
    std::memcpy(&h, base + pos, kBatchHeaderBytes);
    if (Status s = verify_header(h, c->source, limits_); !s) {
      return give_up(fmt::format("bad batch at byte {}: {}", c->read_offset + pos, s.to_string()));
    }
    const uint64_t batch_bytes = kBatchHeaderBytes + h.payload_bytes;
    if (pos + batch_bytes > got) break;  // Continues in the next read.
    const uint64_t at = pos;
    pos += batch_bytes;
    if (h.stream_id == kControlStreamId) continue;
    auto runs = c->runs.find(h.stream_id);
    if (runs == c->runs.end()) continue;
    const uint64_t end_seq = h.base_seq + h.record_count;
    bool in_run = false;
    for (const Compaction::Run& run : runs->second) in_run |= h.base_seq >= run.start_seq && end_seq <= run.end_seq;
    if (!in_run) continue;  // Not where the index looks for these records (an inert copy).
    if (Status s = verify_payload(h, std::string_view(base + at + kBatchHeaderBytes, h.payload_bytes), limits_); !s) {
      return give_up(fmt::format("bad batch at byte {}: {}", c->read_offset + at, s.to_string()));
    }
    const StreamState& stream = *streams_.at(h.stream_id);
    // The stream's bytes before this batch: exact from an index entry at it
    // or from the batch before it; else (never expected) the next entry's,
    // which errs towards keeping more under size retention.
    auto entry = std::lower_bound(stream.index.begin(), stream.index.end(), h.base_seq,
                                  [](const StreamState::IndexEntry& e, uint64_t seq) { return e.base_seq < seq; });
    const bool entry_here = entry != stream.index.end() && entry->base_seq == h.base_seq;
    auto& after = c->bytes_after[h.stream_id];
    uint64_t bytes_before;
    if (entry_here) {
      bytes_before = entry->bytes_before;
    } else if (auto prev = after.find(h.base_seq); prev != after.end()) {
      bytes_before = prev->second;
    } else {
      bytes_before = entry != stream.index.end() ? entry->bytes_before : stream.bytes_total;
    }
    after.erase(h.base_seq);
    after[end_seq] = bytes_before + batch_bytes;
    if (end_seq <= stream.floor_seq) continue;  // Trimmed: not copied.
    Ranges& copied = c->copied[h.stream_id];
    if (overlaps(copied, h.base_seq, end_seq)) continue;  // Already queued from another copy.
    auto last = c->last_copy_end.find(h.stream_id);
    if (entry_here || last == c->last_copy_end.end() || last->second != h.base_seq) {
      c->outbox.push_back({Compaction::Item::Kind::kRun, h.stream_id, bytes_before});
    }
    c->outbox.push_back({Compaction::Item::Kind::kCopy, h.stream_id, 0, at});
    c->last_copy_end[h.stream_id] = end_seq;
    add_range(copied, h.base_seq, end_seq);
  }
  // Padding shorter than a header at the very end: nothing more here.
  if (pos < got && is_zero(base + pos, got - pos)) pos = got;
  if (pos == start && got > 0) return give_up("a batch larger than the compaction buffer");
  c->next_offset = c->read_offset + pos;
  if (c->next_offset >= segment.durable_end || got == 0) c->read_done = true;
}

// Places queued items while write buffers are free and no append waits.
void ShardLog::compaction_pump() {
  Compaction* c = compaction_.get();
  while (!c->outbox.empty() && !c->abandoned && waiting_.empty() && failure_.is_ok()) {
    const Compaction::Item& item = c->outbox.front();
    BatchHeader header;
    std::string control;
    std::string_view stored;
    if (item.kind == Compaction::Item::Kind::kCopy) {
      std::memcpy(&header, c->buffer.get() + item.at, kBatchHeaderBytes);
      header.flags = static_cast<uint16_t>(header.flags | kBatchFlagRelocated);
      stored = std::string_view(c->buffer.get() + item.at + kBatchHeaderBytes, header.payload_bytes);
    } else {
      switch (item.kind) {
        case Compaction::Item::Kind::kBegin:
          control = control_payload_u64(kControlRelocationBegin, {c->source});
          break;
        case Compaction::Item::Kind::kRun:
          control = control_payload_u64(kControlRelocationRun, {item.stream_id, item.bytes_before});
          break;
        default:
          control = control_payload_u64(kControlRelocationEnd, {c->source});
          break;
      }
      const uint64_t now = static_cast<uint64_t>(Reactor::clock_realtime_ms());
      header.stream_id = kControlStreamId;
      header.record_count = 1;
      header.payload_bytes = static_cast<uint32_t>(control.size());
      header.payload_checksum = payload_checksum(control);
      header.first_timestamp = header.last_timestamp = header.arrival_timestamp = now;
      header.flags = kBatchFlagArrivalTimestamps;
      stored = control;
    }
    const bool is_end = item.kind == Compaction::Item::Kind::kEnd;
    AppendCallback done = [this, c, is_end](Result<AppendAck> r) {
      c->unacked--;
      if (!r) {
        if (!c->abandoned) c->why = "a write failed: " + r.status().to_string();
        c->abandoned = true;
      } else if (is_end && !c->abandoned) {
        // Right here, inside the flush's completion: the destination's
        // summary is written after this, and must include the relocation.
        compaction_commit();
      }
      schedule_compaction_step();
    };
    uint64_t segment_id = 0;
    uint64_t offset = 0;
    if (!place_internal(header, stored, done, &segment_id, &offset)) break;  // No buffer: later.
    c->unacked++;
    if (segment_id != c->dest) {
      c->abandoned = true;
      c->why = "the log moved on to a new segment part way";
      break;
    }
    switch (item.kind) {
      case Compaction::Item::Kind::kBegin:
        c->built.begin(c->source);
        break;
      case Compaction::Item::Kind::kRun:
        c->built.run(item.stream_id, item.bytes_before);
        break;
      case Compaction::Item::Kind::kCopy:
        c->built.copy(header, offset);
        c->batches++;
        c->bytes += kBatchHeaderBytes + header.payload_bytes;
        break;
      case Compaction::Item::Kind::kEnd:
        break;
    }
    c->outbox.pop_front();
  }
}

void ShardLog::compaction_commit() {
  Compaction* c = compaction_.get();
  auto dest = segments_.find(c->dest);
  if (dest == segments_.end() || !dest->second->summary) {
    // Never expected: without the summary a restart would not know the copies.
    c->abandoned = true;
    c->why = "its destination segment's summary is already written";
    return;
  }
  apply_relocation(c->built.relocation, c->dest);
  dest->second->summary->relocations.push_back(std::move(c->built.relocation));
  c->committed = true;
}

}  // namespace runnel
