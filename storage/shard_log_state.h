#pragma once
// ShardLog's internal state types, shared by its implementation files
// (shard_log.cc, log_append.cc, log_read.cc, log_index.cc, log_recovery.cc,
// segment_files.cc, log_compaction.cc). Not
// part of the storage API: include storage/shard_log.h instead.

#include <algorithm>
#include <deque>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "storage/append_rate.h"
#include "storage/log_internal.h"
#include "storage/segment_summary.h"
#include "storage/shard_log.h"

namespace runnel {

struct ShardLog::Segment {
  uint64_t id = 0;
  std::string path;
  FileId fd = -1;
  uint64_t durable_end = 0;  // Reads never go past this (block-aligned).
  uint32_t flushes_in_flight = 0;
  // Byte ranges recovery found bad (torn remains, corruption): reads jump over them.
  std::vector<std::pair<uint64_t, uint64_t>> holes;
  // What recovery needs from this segment, collected while it is written
  // and saved beside it once it is complete (see SegmentSummary).
  std::unique_ptr<SegmentSummary> summary;
  bool summary_written = false;
  uint64_t control_records = 0;  // Catalog records in it (they keep it alive until superseded).
  uint32_t reads_in_flight = 0;  // Disk reads on its fd: never close it under them.
  bool summary_in_flight = false;
  bool compacting = false;       // Its live batches are being copied forward: not reclaimed meanwhile.

  // End of the hole containing `offset`, or `offset` if none does.
  uint64_t skip_hole(uint64_t offset) const {
    for (const auto& [start, end] : holes) {
      if (offset >= start && offset < end) return end;
    }
    return offset;
  }
};

struct ShardLog::WriteBuffer {
  struct Pending {
    AppendCallback done;
    AppendAck ack;
    uint64_t stream_id = 0;
    uint64_t offset = 0;  // Of the batch in the segment.
    uint64_t bytes = 0;
    std::string control;  // Control records only: the bytes, for the segment summary.
    bool internal = false;  // Written by the log for itself (compaction): no stream state to update.
    std::optional<ProducerTag> producer;  // An idempotent producer's append: noted in the segment summary.
  };

  log_internal::AlignedBytes data;
  size_t capacity = 0;
  size_t used = 0;
  Segment* segment = nullptr;
  uint64_t offset = 0;  // Where the buffer goes in the segment (block-aligned).
  std::vector<Pending> pending;
  FileOp op;
  bool started = false;
  bool durable = false;
  uint64_t started_us = 0;

  size_t padded() const { return log_internal::align_up(used); }
  void reset() {
    used = 0;
    segment = nullptr;
    offset = 0;
    pending.clear();
    started = durable = false;
  }
};

struct ShardLog::StreamState {
  struct IndexEntry {
    uint64_t base_seq;
    uint64_t segment_id;
    uint64_t offset;
    uint64_t first_timestamp;
    uint64_t bytes_before;  // The stream's durable bytes before this batch (for retention by size).
  };
  uint64_t next_seq = 0;  // Assigned, durable or not.
  uint64_t bytes_total = 0;  // Durable batch bytes ever appended.
  uint64_t floor_seq = 0;    // Records below are no longer needed (trimmed or deleted).
  bool compress_lz4 = false;  // Store new batches lz4-compressed.
  bool tail_from_copies = false;  // Recovery: the tail so far comes from compaction copies.
  uint64_t last_timestamp = 0;
  uint64_t durable_next_seq = 0;
  uint64_t durable_last_timestamp = 0;
  uint64_t bytes_since_index = 0;
  uint64_t log_position_at_index = 0;
  std::vector<IndexEntry> index;
  std::unique_ptr<AppendRate> rate;  // Once appended to since the shard started.

  // The first index entry that starts after `seq`; the one before it (if
  // any) is where a read of `seq` starts scanning.
  std::vector<IndexEntry>::const_iterator entry_after(uint64_t seq) const {
    return std::upper_bound(index.begin(), index.end(), seq,
                            [](uint64_t s, const IndexEntry& e) { return s < e.base_seq; });
  }
};

struct ShardLog::ReadOp {
  ShardLog* log = nullptr;
  FileOp op;
  log_internal::AlignedBytes buffer;
  size_t capacity = 0;
  ReadCallback done;
  ReadResult result;
  uint64_t stream_id = 0;
  uint64_t next_seq = 0;
  uint32_t max_records = 0;
  uint32_t max_bytes = 0;
  uint64_t records = 0;
  uint64_t bytes = 0;
  bool positioned = false;
  bool by_timestamp = false;     // Still looking for the first record at or after start_timestamp.
  uint64_t start_timestamp = 0;
  std::vector<uint64_t> timestamps;  // Scratch for effective timestamps.
  uint64_t segment_id = 0;
  uint64_t offset = 0;
  uint64_t read_offset = 0;  // File offset of buffer[0].
  // The disk read was cut short where the index says the stream's data
  // ends; if even its first batch did not fit, read whole chunks from then on.
  bool chunk_cut = false;
  bool whole_chunks = false;
  // Where the current stretch of forward scanning began (an index entry's
  // location), and whether the last batch taken was a relocated copy.
  uint64_t scan_segment_id = 0;
  uint64_t scan_offset = 0;
  bool in_relocated = false;
};

// Rebuilds a relocation from its records in log order — begin(source); per
// group of copies a run record (stream, bytes_before) then the copies;
// end(source) — so that placing the copies and recovering them later give
// the same index. Each group starts an index entry.
struct ShardLog::RelocationBuilder {
  struct Group {
    size_t stream_index;    // Into relocation.streams.
    bool entry_due;         // The next copy starts an index entry.
    uint64_t bytes_before;  // Of the next copy.
  };
  bool active = false;
  Relocation relocation;
  std::unordered_map<uint64_t, Group> groups;  // By stream id: its open group.

  void begin(uint64_t source) {
    active = true;
    relocation = Relocation();
    relocation.source = source;
    groups.clear();
  }
  void run(uint64_t stream_id, uint64_t bytes_before) {
    if (!active) return;
    auto it = groups.find(stream_id);
    if (it == groups.end()) {
      relocation.streams.push_back({});
      relocation.streams.back().stream_id = stream_id;
      it = groups.emplace(stream_id, Group{relocation.streams.size() - 1, true, bytes_before}).first;
    }
    it->second.entry_due = true;
    it->second.bytes_before = bytes_before;
  }
  // A relocated copy at `offset`; false (ignored) if no run record opened a group for its stream.
  bool copy(const BatchHeader& h, uint64_t offset) {
    if (!active) return false;
    auto it = groups.find(h.stream_id);
    if (it == groups.end()) return false;
    Group& g = it->second;
    Relocation::Stream& s = relocation.streams[g.stream_index];
    if (g.entry_due) {
      s.entries.push_back({h.base_seq, offset, h.first_timestamp, g.bytes_before});
      g.entry_due = false;
    }
    g.bytes_before += kBatchHeaderBytes + h.payload_bytes;
    const uint64_t end = h.base_seq + h.record_count;
    if (end > s.end_seq) {
      s.end_seq = end;
      s.last_timestamp = h.last_timestamp;
    }
    s.bytes_end = std::max(s.bytes_end, g.bytes_before);
    return true;
  }
};

// A compaction in progress (log_compaction.cc): the live batches of
// `source` are read in file order and placed, as relocated copies, after a
// begin marker in `dest`; an end marker commits them. Everything must land
// in `dest`, or the attempt is abandoned (its copies stay inert).
struct ShardLog::Compaction {
  struct Run {  // Seq_nums [start_seq, end_seq) of a stream are in `source`.
    uint64_t start_seq;
    uint64_t end_seq;
  };
  struct Item {  // To be placed, in order.
    enum class Kind { kBegin, kRun, kCopy, kEnd } kind;
    uint64_t stream_id = 0;
    uint64_t bytes_before = 0;  // kRun.
    size_t at = 0;              // kCopy: the batch's position in `buffer`.
  };
  uint64_t source = 0;
  uint64_t dest = 0;
  std::unordered_map<uint64_t, std::vector<Run>> runs;  // Live runs per stream, by seq_num.
  // Per stream: seq ranges already queued (start -> end), so a batch that is
  // in the source twice (an earlier attempt's copy) is copied once.
  std::unordered_map<uint64_t, std::map<uint64_t, uint64_t>> copied;
  std::unordered_map<uint64_t, uint64_t> last_copy_end;  // Per stream: a group continues at this seq_num.
  // Per stream: end seq_num of a batch seen -> the stream's bytes after it,
  // so the batch that follows gets its exact bytes_before.
  std::unordered_map<uint64_t, std::map<uint64_t, uint64_t>> bytes_after;
  RelocationBuilder built;
  log_internal::AlignedBytes buffer;
  size_t capacity = 0;
  uint64_t read_offset = 0;  // File offset of buffer[0].
  uint64_t next_offset = 0;  // Where parsing resumes in the source.
  std::deque<Item> outbox;
  FileOp op;
  uint32_t unacked = 0;
  bool reading = false;
  bool read_done = false;
  bool end_queued = false;
  bool committed = false;
  bool abandoned = false;
  std::string why;  // Why it was abandoned.
  uint64_t live_estimate = 0;
  uint64_t started_us = 0;
  uint64_t batches = 0;
  uint64_t bytes = 0;
};

template <typename Fn>
void ShardLog::for_each_run(const StreamState& stream, Fn&& fn) {
  const auto& index = stream.index;
  size_t i = 0;
  while (i < index.size()) {
    size_t j = i + 1;
    while (j < index.size() && index[j].segment_id == index[i].segment_id) j++;
    fn(index[i].segment_id, i, j);
    i = j;
  }
}

}  // namespace runnel
