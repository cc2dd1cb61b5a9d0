#pragma once
// RecentCache: the newest flushes of the log, in one ring of `capacity` bytes
// (rounded up to whole blocks), so tailing readers and subscribers are served
// without a disk read. ShardLog fills it when a flush is durable (whole
// flushes, in log order) and looks chunks up by (segment, file offset). Owned
// by one shard's ShardLog.
//
// It does not keep the last `capacity` bytes. Each flush is stored whole and
// contiguous: one that does not fit before the ring's end starts again at the
// front, leaving the end unused (a gap shorter than that flush), and every
// chunk its bytes overwrite, even in part, is evicted whole. What is
// guaranteed after an insert:
//   - the newest flush is kept, if it is at most `capacity` (a longer one is
//     not cached at all, and evicts nothing);
//   - an older flush is kept while it, every flush after it, and the largest
//     of those later flushes together fit in `capacity`; so every flush lying
//     wholly within the newest capacity/2 bytes flushed is kept.
// That can be as little as the newest flush alone: with a capacity of 10
// blocks, flushes of 1, 5 and 5 blocks leave only the last (and flushes of 9
// and 2 blocks only the 2).

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
