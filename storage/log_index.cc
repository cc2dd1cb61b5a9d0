// The sparse per-stream index (an entry every index_interval_bytes of the
// stream, or after index_log_gap_bytes of log) and what it answers without
// reading the log: retention points.
#include <algorithm>

#include "core/log.h"
#include "storage/log_internal.h"
#include "storage/shard_log_state.h"

namespace runnel {
using namespace log_internal;

void ShardLog::index_batch(uint64_t stream_id, StreamState& stream, uint64_t base_seq, uint64_t previous_end,
                           uint64_t segment_id, uint64_t offset, uint64_t first_timestamp, uint64_t bytes) {
  // Sparse: an entry per index_interval_bytes of the stream's own data, or
  // when index_log_gap_bytes of log passed, so a read scans a bounded amount.
  // A batch that does not follow the last one indexed (the records between
  // are compaction copies recovery has not reached yet, or lost) starts an
  // entry too: the entry before it may point past it.
  bool need = stream.index.empty() || stream.index.back().segment_id != segment_id || base_seq != previous_end ||
              stream.bytes_since_index >= options_.index_interval_bytes ||
              log_position_ - stream.log_position_at_index >= options_.index_log_gap_bytes;
  if (need) {
    stream.index.push_back({base_seq, segment_id, offset, first_timestamp, stream.bytes_total});
    stream.bytes_since_index = 0;
    stream.log_position_at_index = log_position_;
    auto segment = segments_.find(segment_id);
    if (segment != segments_.end() && segment->second->summary) {
      segment->second->summary->entries.push_back({stream_id, base_seq, offset, first_timestamp, stream.bytes_total});
    }
  }
  stream.bytes_since_index += bytes;
  stream.bytes_total += bytes;
}

uint64_t ShardLog::retention_point(uint64_t stream_id, uint64_t age_cutoff_ms, uint64_t bytes_max) const {
  auto it = streams_.find(stream_id);
  if (it == streams_.end()) return 0;
  const StreamState& stream = *it->second;
  uint64_t keep_from = 0;
  if (age_cutoff_ms > 0 && stream.durable_next_seq > 0) {
    if (stream.durable_last_timestamp < age_cutoff_ms) {
      keep_from = stream.durable_next_seq;  // Everything is older.
    } else {
      // Records before an entry whose first timestamp is older than the
      // cutoff are older still (timestamps never decrease): the last such
      // entry is as far as age retention may trim.
      auto entry = std::lower_bound(stream.index.begin(), stream.index.end(), age_cutoff_ms,
                                    [](const StreamState::IndexEntry& e, uint64_t ts) { return e.first_timestamp < ts; });
      if (entry != stream.index.begin()) keep_from = std::max(keep_from, std::prev(entry)->base_seq);
    }
  }
  if (bytes_max > 0 && stream.bytes_total > bytes_max) {
    // The first entry from which at most bytes_max bytes remain.
    auto entry = std::lower_bound(stream.index.begin(), stream.index.end(), stream.bytes_total - bytes_max,
                                  [](const StreamState::IndexEntry& e, uint64_t before) { return e.bytes_before < before; });
    keep_from = std::max(keep_from, entry == stream.index.end() ? stream.durable_next_seq : entry->base_seq);
  }
  return std::min(keep_from, stream.durable_next_seq);
}
}  // namespace runnel
