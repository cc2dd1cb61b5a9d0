#pragma once
// RecentCache: the last `capacity` bytes of flushed log data, in one ring of
// memory, so tailing readers and subscribers are served without a disk read.
// ShardLog fills it when a flush is durable (whole flushes, in log order) and
// looks chunks up by (segment, file offset). Owned by one shard's ShardLog.

#include <cstddef>
#include <cstdint>
#include <deque>

#include "storage/log_internal.h"

namespace runnel {

class RecentCache {
 public:
  struct Chunk {
    uint64_t segment_id;
    uint64_t file_offset;  // Block-aligned: a whole flush.
    size_t length;
    size_t ring_offset;
  };

  explicit RecentCache(size_t capacity);

  // Copies a flush in, evicting every chunk whose bytes it overwrites.
  void insert(uint64_t segment_id, uint64_t file_offset, const char* data, size_t length);
  // The chunk holding `offset` of the segment, or null.
  const Chunk* find(uint64_t segment_id, uint64_t offset) const;
  const char* bytes(const Chunk& chunk) const { return memory_.get() + chunk.ring_offset; }
  size_t chunk_count() const { return chunks_.size(); }

 private:
  size_t capacity_;
  log_internal::AlignedBytes memory_;  // Untouched until written: no page is faulted in at startup.
  size_t head_ = 0;                    // Where the next chunk goes.
  std::deque<Chunk> chunks_;           // Log order, oldest first.
};

}  // namespace runnel
