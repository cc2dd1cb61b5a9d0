#include "storage/recent_cache.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "core/test_seed.h"

namespace runnel {
namespace {

// One flush handed to the cache, in insertion order.
struct Flush {
  uint64_t segment;
  uint64_t offset;
  std::string bytes;
};

// What the cache must still hold after `flushes` went in: every flush that
// fits the ring while everything flushed after it is there too. The ring
// keeps whole flushes contiguously, so when one does not fit at the end it
// starts again at the front and the end is left unused: that gap is smaller
// than the flush that wrapped, i.e. at most the largest later flush. So a
// flush is certainly kept while it, every later flush, and the largest later
// flush together fit the capacity — in particular the newest flush always,
// and the newest capacity/2 bytes of flushes always. (The header's "the last
// `capacity` bytes" is what it holds only without wrap gaps.) Flushes longer
// than the capacity are never cached and take no room.
std::vector<const Flush*> must_be_cached(const std::vector<Flush>& flushes, size_t capacity) {
  std::vector<const Flush*> out;
  size_t later_bytes = 0;  // This flush and every later one that was cached.
  size_t largest_later = 0;
  for (auto it = flushes.rbegin(); it != flushes.rend(); ++it) {
    const size_t length = it->bytes.size();
    if (length == 0 || length > capacity) continue;
    later_bytes += length;
    if (later_bytes + largest_later > capacity) break;
    out.push_back(&*it);
    largest_later = std::max(largest_later, length);
  }
  return out;
}

// Every chunk the cache finds holds exactly the bytes inserted for it,
// whatever the flush sizes and however often the ring wraps (an evicted one
// is fine: reads go to disk); and every flush must_be_cached() names is found.
void expect_cache_matches(const RecentCache& cache, size_t capacity, const std::vector<Flush>& flushes) {
  std::map<std::pair<uint64_t, uint64_t>, const Flush*> latest;  // A key inserted twice: its last bytes count.
  for (const Flush& f : flushes) latest[{f.segment, f.offset}] = &f;
  for (const auto& [key, flush] : latest) {
    const RecentCache::Chunk* chunk = cache.find(key.first, key.second);
    if (chunk == nullptr) continue;
    ASSERT_EQ(chunk->segment_id, key.first);
    ASSERT_EQ(chunk->file_offset, key.second);
    ASSERT_EQ(chunk->length, flush->bytes.size());
    ASSERT_EQ(std::string(cache.bytes(*chunk), chunk->length), flush->bytes)
        << "stale chunk at segment " << key.first << " offset " << key.second;
  }
  for (const Flush* f : must_be_cached(flushes, capacity)) {
    for (uint64_t at : {f->offset, f->offset + f->bytes.size() - 1}) {  // Its first and its last byte.
      const RecentCache::Chunk* chunk = cache.find(f->segment, at);
      ASSERT_NE(chunk, nullptr) << "recent flush at segment " << f->segment << " offset " << f->offset << " ("
                                << f->bytes.size() << " bytes) was evicted; looked up offset " << at;
      ASSERT_EQ(chunk->file_offset, f->offset);
      ASSERT_EQ(std::string(cache.bytes(*chunk), chunk->length), f->bytes);
    }
  }
}

TEST(RecentCache, FindsTheChunkHoldingAnOffset) {
  RecentCache cache(64 * 4096);
  const std::string a(8192, 'a'), b(4096, 'b');
  cache.insert(1, 0, a.data(), a.size());
  cache.insert(1, 8192, b.data(), b.size());
  EXPECT_EQ(cache.find(1, 0)->file_offset, 0u);
  EXPECT_EQ(cache.find(1, 8191)->file_offset, 0u);
  EXPECT_EQ(cache.find(1, 8192)->file_offset, 8192u);
  EXPECT_EQ(cache.find(1, 12288), nullptr);
  EXPECT_EQ(cache.find(2, 0), nullptr);
  EXPECT_EQ(cache.find(0, 0), nullptr);
}

// Regression: after a wrap that left the ring's end unused, the chunks still
// there from two rounds back were first in the FIFO; eviction stopped at them
// and kept chunks of the last round whose bytes had just been overwritten, so
// reads parsed foreign bytes ("bad batch header", records reported lost).
TEST(RecentCache, NeverKeepsAChunkWhoseBytesWereOverwritten) {
  constexpr size_t kBlock = 4096;
  constexpr size_t kCapacity = 10 * kBlock;
  RecentCache cache(kCapacity);
  std::vector<Flush> flushes;
  uint64_t offset = 0;
  char fill = 'A';
  auto flush = [&](size_t blocks) {
    std::string bytes(blocks * kBlock, fill);
    fill = fill == 'Z' ? 'A' : static_cast<char>(fill + 1);
    cache.insert(7, offset, bytes.data(), bytes.size());
    flushes.push_back({7, offset, bytes});
    offset += bytes.size();
  };
  // Round 1 ends at block 8; round 2 (3 + 3) wraps and ends at block 6,
  // leaving round 1's last chunk [6, 8) in the FIFO ahead of round 2's
  // chunks; round 3's first flush wraps and overwrites blocks [0, 5).
  for (size_t blocks : {2, 2, 2, 2}) flush(blocks);
  for (size_t blocks : {3, 3}) flush(blocks);
  ASSERT_NO_FATAL_FAILURE(expect_cache_matches(cache, kCapacity, flushes));
  flush(5);
  ASSERT_NO_FATAL_FAILURE(expect_cache_matches(cache, kCapacity, flushes));
  // Round 2's second flush [3, 6) and the new one [0, 5) overlap; what is
  // left is exactly the newest flush.
  EXPECT_EQ(cache.chunk_count(), 1u);
}

// The newest flushes are what tailing readers ask for: they stay cached as
// long as they fit, across wraps, with the right bytes.
TEST(RecentCache, KeepsTheNewestFlushesThatFit) {
  constexpr size_t kBlock = 4096;
  constexpr size_t kCapacity = 16 * kBlock;
  RecentCache cache(kCapacity);
  std::vector<Flush> flushes;
  uint64_t offset = 0;
  for (int i = 0; i < 40; i++) {
    std::string bytes(4 * kBlock, static_cast<char>('a' + i % 26));
    cache.insert(3, offset, bytes.data(), bytes.size());
    flushes.push_back({3, offset, bytes});
    offset += bytes.size();
    ASSERT_NO_FATAL_FAILURE(expect_cache_matches(cache, kCapacity, flushes)) << "flush " << i;
    // Four flushes of a quarter each fill the ring exactly: no gap, so all
    // of the last (up to) four are there.
    EXPECT_EQ(cache.chunk_count(), std::min<size_t>(flushes.size(), 4)) << "flush " << i;
  }
  // Too big to cache: ignored, and the cache keeps what it had.
  const std::string huge(kCapacity + kBlock, 'h');
  cache.insert(3, offset, huge.data(), huge.size());
  EXPECT_EQ(cache.find(3, offset), nullptr);
  EXPECT_EQ(cache.chunk_count(), 4u);
}

TEST(RecentCache, RandomFlushSizesNeverServeStaleBytesAndKeepTheNewest) {
  constexpr size_t kBlock = 4096;
  const uint64_t seed = test_seed();
  SCOPED_TRACE(seed_trace(seed));
  std::mt19937_64 rng(seed);
  for (int run = 0; run < 20; run++) {
    const size_t capacity = std::uniform_int_distribution<size_t>(8, 64)(rng) * kBlock;
    RecentCache cache(capacity);
    std::vector<Flush> flushes;
    uint64_t segment = 0, offset = 0;
    size_t must_total = 0;
    for (int i = 0; i < 400; i++) {
      const size_t blocks = std::uniform_int_distribution<size_t>(1, 12)(rng);
      std::string bytes(blocks * kBlock, '\0');
      for (size_t k = 0; k < bytes.size(); k += 512) bytes[k] = static_cast<char>(rng());
      if (rng() % 20 == 0) segment++, offset = 0;
      cache.insert(segment, offset, bytes.data(), bytes.size());
      flushes.push_back({segment, offset, std::move(bytes)});
      offset += flushes.back().bytes.size();
      ASSERT_NO_FATAL_FAILURE(expect_cache_matches(cache, capacity, flushes))
          << "run " << run << " flush " << i << " capacity " << capacity;
      must_total += must_be_cached(flushes, capacity).size();
    }
    EXPECT_GT(cache.chunk_count(), 0u);
    EXPECT_GT(must_total, 0u) << "the run never required anything to be cached: it checks nothing";
  }
}

}  // namespace
}  // namespace runnel
