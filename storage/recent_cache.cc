#include "storage/recent_cache.h"

#include <algorithm>
#include <cstring>
#include <utility>

namespace runnel {

using log_internal::align_up;

RecentCache::RecentCache(size_t capacity) : capacity_(align_up(capacity)) {
  if (capacity_ > 0) memory_ = log_internal::aligned_alloc_uninitialized(capacity_);
}

void RecentCache::insert(uint64_t segment_id, uint64_t file_offset, const char* data, size_t length) {
  if (length == 0 || length > capacity_) return;
  if (head_ + length > capacity_) {
    // Wrap. The chunks still placed at or past head_ are left from the round
    // before the one that just ended, and they are first in the FIFO: evict
    // them now, or the overlap check below would stop at them and keep
    // chunks of the last round whose bytes the new ones overwrite.
    while (!chunks_.empty() && chunks_.front().ring_offset >= head_) chunks_.pop_front();
    head_ = 0;
  }
  // From here the oldest chunks sit right after head_ in the ring, in FIFO
  // order, so the ones the new bytes overwrite are at the front.
  while (!chunks_.empty()) {
    const Chunk& oldest = chunks_.front();
    const bool overlaps = oldest.ring_offset < head_ + length && head_ < oldest.ring_offset + oldest.length;
    if (!overlaps) break;
    chunks_.pop_front();
  }
  std::memcpy(memory_.get() + head_, data, length);
  chunks_.push_back({segment_id, file_offset, length, head_});
  head_ += length;
}

const RecentCache::Chunk* RecentCache::find(uint64_t segment_id, uint64_t offset) const {
  // Chunks are in log order: binary search for the last one starting at or before (segment, offset).
  auto it = std::upper_bound(chunks_.begin(), chunks_.end(), std::make_pair(segment_id, offset),
                             [](const std::pair<uint64_t, uint64_t>& key, const Chunk& c) {
                               return key < std::make_pair(c.segment_id, c.file_offset);
                             });
  if (it == chunks_.begin()) return nullptr;
  --it;
  if (it->segment_id != segment_id || offset >= it->file_offset + it->length) return nullptr;
  return &*it;
}

}  // namespace runnel
