#include "storage/recent_cache.h"

#include <gtest/gtest.h>

#include <map>
#include <random>
#include <string>
#include <utility>

namespace runnel {
namespace {

// Every chunk the cache still finds must hold exactly the bytes inserted
// for it, whatever the flush sizes and however often the ring wraps.
void expect_found_chunks_intact(const RecentCache& cache, const std::map<std::pair<uint64_t, uint64_t>, std::string>& inserted) {
  for (const auto& [key, bytes] : inserted) {
    const RecentCache::Chunk* chunk = cache.find(key.first, key.second);
    if (chunk == nullptr) continue;  // Evicted: fine, reads go to disk.
    ASSERT_EQ(chunk->file_offset, key.second);
    ASSERT_EQ(chunk->length, bytes.size());
    ASSERT_EQ(std::string(cache.bytes(*chunk), chunk->length), bytes) << "stale chunk at offset " << key.second;
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
  RecentCache cache(10 * kBlock);
  std::map<std::pair<uint64_t, uint64_t>, std::string> inserted;
  uint64_t offset = 0;
  char fill = 'A';
  auto flush = [&](size_t blocks) {
    std::string bytes(blocks * kBlock, fill);
    fill = fill == 'Z' ? 'A' : static_cast<char>(fill + 1);
    cache.insert(7, offset, bytes.data(), bytes.size());
    inserted[{7, offset}] = bytes;
    offset += bytes.size();
  };
  // Round 1 ends at block 8; round 2 (3 + 3) wraps and ends at block 6,
  // leaving round 1's last chunk [6, 8) in the FIFO ahead of round 2's
  // chunks; round 3's first flush wraps and overwrites blocks [0, 5).
  for (size_t blocks : {2, 2, 2, 2}) flush(blocks);
  for (size_t blocks : {3, 3}) flush(blocks);
  flush(5);
  expect_found_chunks_intact(cache, inserted);
}

TEST(RecentCache, RandomFlushSizesNeverServeStaleBytes) {
  constexpr size_t kBlock = 4096;
  std::mt19937 rng(42);
  for (int run = 0; run < 20; run++) {
    RecentCache cache(std::uniform_int_distribution<size_t>(8, 64)(rng) * kBlock);
    std::map<std::pair<uint64_t, uint64_t>, std::string> inserted;
    uint64_t segment = 0, offset = 0;
    for (int i = 0; i < 400; i++) {
      const size_t blocks = std::uniform_int_distribution<size_t>(1, 12)(rng);
      std::string bytes(blocks * kBlock, '\0');
      for (size_t k = 0; k < bytes.size(); k += 512) bytes[k] = static_cast<char>(rng());
      if (rng() % 20 == 0) segment++, offset = 0;
      cache.insert(segment, offset, bytes.data(), bytes.size());
      inserted[{segment, offset}] = bytes;
      offset += bytes.size();
      ASSERT_NO_FATAL_FAILURE(expect_found_chunks_intact(cache, inserted)) << "run " << run << " flush " << i;
    }
    EXPECT_GT(cache.chunk_count(), 0u);
  }
}

}  // namespace
}  // namespace runnel
