#include "storage/shard_log.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <functional>
#include <future>
#include <random>
#include <set>

#include "storage/log_test_util.h"

namespace runnel {
namespace {

TEST(ShardLog, AcknowledgesAppendsInOrderAndReadsThemBack) {
  std::string dir = temp_dir();
  LogHarness h(small_options(dir));
  ASSERT_NE(h.log(), nullptr) << h.open_status().to_string();
  uint64_t next_seq[4] = {};
  Appended a = append_many(h, 3, 600, 5, next_seq);
  ASSERT_TRUE(a.errors.empty()) << a.errors[0].to_string();
  ASSERT_EQ(a.acks.size(), 600u);
  for (uint64_t s = 1; s <= 3; s++) {
    expect_stream_intact(h, s, next_seq[s]);
    EXPECT_EQ(h.log()->tail(s).next_seq, next_seq[s]);
  }
  std::filesystem::remove_all(dir);
}

TEST(ShardLog, ReadsFromTheMiddleOfABatch) {
  std::string dir = temp_dir();
  LogHarness h(small_options(dir));
  ASSERT_NE(h.log(), nullptr);
  uint64_t next_seq[2] = {};
  ASSERT_TRUE(append_many(h, 1, 10, 10, next_seq).errors.empty());
  auto bodies = read_all(h, 1, 37);
  ASSERT_EQ(bodies.size(), 63u);
  EXPECT_EQ(bodies.front(), record_body(1, 37));
  std::filesystem::remove_all(dir);
}

TEST(ShardLog, RecoversEveryAcknowledgedRecordAfterRestart) {
  std::string dir = temp_dir();
  uint64_t next_seq[5] = {};
  {
    LogHarness h(small_options(dir));
    ASSERT_NE(h.log(), nullptr);
    ASSERT_TRUE(append_many(h, 4, 2000, 3, next_seq).errors.empty());
  }
  LogHarness h(small_options(dir));
  ASSERT_NE(h.log(), nullptr) << h.open_status().to_string();
  EXPECT_EQ(h.log()->recovery_report().corrupt_regions, 0u);
  for (uint64_t s = 1; s <= 4; s++) {
    EXPECT_EQ(h.log()->tail(s).next_seq, next_seq[s]);
    expect_stream_intact(h, s, next_seq[s]);
  }
  // And keeps appending after the recovered tail.
  ASSERT_TRUE(append_many(h, 4, 40, 2, next_seq).errors.empty());
  for (uint64_t s = 1; s <= 4; s++) expect_stream_intact(h, s, next_seq[s]);
  std::filesystem::remove_all(dir);
}

TEST(ShardLog, RollsAcrossSegmentsAndReadsAcrossThem) {
  std::string dir = temp_dir();
  uint64_t next_seq[3] = {};
  {
    LogHarness h(small_options(dir));
    ASSERT_NE(h.log(), nullptr);
    // ~12 MiB of data through 4 MiB segments.
    for (int round = 0; round < 6; round++) {
      Appended a = append_many(h, 2, 500, 20, next_seq);
      ASSERT_TRUE(a.errors.empty()) << a.errors[0].to_string();
    }
    expect_stream_intact(h, 1, next_seq[1]);
  }
  size_t segments = 0;
  size_t summaries = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    segments += e.path().extension() == ".seg";
    summaries += e.path().extension() == ".sum";
  }
  EXPECT_GE(summaries, 1u);
  EXPECT_GE(segments, 3u);
  LogHarness h(small_options(dir));
  ASSERT_NE(h.log(), nullptr);
  // Complete segments come back from their summaries; only the last is scanned.
  EXPECT_EQ(h.log()->recovery_report().segments_from_summary, summaries);
  EXPECT_LE(h.log()->recovery_report().bytes_scanned, small_options(dir).segment_bytes);
  expect_stream_intact(h, 1, next_seq[1]);
  expect_stream_intact(h, 2, next_seq[2]);
  std::filesystem::remove_all(dir);
}

// End of the data in segment 0 (last non-zero byte + 1).
uint64_t data_end_of(const std::string& segment) {
  int fd = ::open(segment.c_str(), O_RDONLY);
  std::vector<char> content(4u << 20);
  ssize_t n = ::pread(fd, content.data(), content.size(), 0);
  ::close(fd);
  size_t end = n > 0 ? static_cast<size_t>(n) : 0;
  while (end > 0 && content[end - 1] == 0) end--;
  return end;
}

void write_at(const std::string& path, uint64_t offset, const std::string& bytes) {
  int fd = ::open(path.c_str(), O_RDWR);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::pwrite(fd, bytes.data(), bytes.size(), static_cast<off_t>(offset)), static_cast<ssize_t>(bytes.size()));
  ::close(fd);
}

// A sealed batch of one record for stream 1 at `seq`, as a flush would write it.
std::string valid_batch(uint64_t seq) {
  PayloadBuilder payload;
  payload.add(1000 + seq, {{"k", "v"}}, record_body(1, seq));
  BatchHeader h;
  h.stream_id = 1;
  h.base_seq = seq;
  h.record_count = 1;
  h.payload_bytes = static_cast<uint32_t>(payload.bytes().size());
  h.payload_checksum = payload_checksum(payload.bytes());
  h.first_timestamp = h.last_timestamp = h.arrival_timestamp = 1000 + seq;
  seal_header(&h, 0);
  std::string out(reinterpret_cast<const char*>(&h), sizeof(h));
  return out + payload.bytes();
}

// A flush that landed only partly: its first batch complete, the next one
// cut off inside the same block. Recovery keeps the complete batch, cuts the
// rest, and the next recovery does not mistake the remains for corruption.
TEST(ShardLog, CutsATornTailMidBlockAndLaterRecoveriesStayClean) {
  std::string dir = temp_dir();
  uint64_t next_seq[2] = {};
  {
    LogHarness h(small_options(dir));
    ASSERT_NE(h.log(), nullptr);
    ASSERT_TRUE(append_many(h, 1, 50, 3, next_seq).errors.empty());
  }
  const std::string segment = dir + "/00000000000000000000.seg";
  const uint64_t flush_start = (data_end_of(segment) + 4095) / 4096 * 4096;
  std::string complete = valid_batch(next_seq[1]);
  std::string torn = valid_batch(next_seq[1] + 1).substr(0, 100);
  write_at(segment, flush_start, complete + torn);
  next_seq[1]++;  // The complete batch is valid data now, acknowledged or not.
  {
    LogHarness h(small_options(dir));
    ASSERT_NE(h.log(), nullptr) << h.open_status().to_string();
    EXPECT_GT(h.log()->recovery_report().torn_tail_bytes, 0u);
    EXPECT_EQ(h.log()->recovery_report().corrupt_regions, 0u);
    EXPECT_EQ(h.log()->tail(1).next_seq, next_seq[1]);
    ASSERT_TRUE(append_many(h, 1, 20, 3, next_seq).errors.empty());
  }
  LogHarness h(small_options(dir));
  ASSERT_NE(h.log(), nullptr);
  EXPECT_EQ(h.log()->recovery_report().corrupt_regions, 0u);
  EXPECT_EQ(h.log()->recovery_report().torn_tail_bytes, 0u);
  expect_stream_intact(h, 1, next_seq[1]);
  std::filesystem::remove_all(dir);
}

// A flush whose first block did not land, but a later one did: everything
// from the hole on is unacknowledged and must never come back.
TEST(ShardLog, DiscardsFlushesThatLandedAfterAHole) {
  std::string dir = temp_dir();
  uint64_t next_seq[2] = {};
  {
    LogHarness h(small_options(dir));
    ASSERT_NE(h.log(), nullptr);
    ASSERT_TRUE(append_many(h, 1, 30, 2, next_seq).errors.empty());
  }
  const std::string segment = dir + "/00000000000000000000.seg";
  const uint64_t hole = (data_end_of(segment) + 4095) / 4096 * 4096;
  // Block `hole` stays zero; a later flush's batch landed two blocks on.
  write_at(segment, hole + 2 * 4096, valid_batch(next_seq[1] + 5));
  {
    LogHarness h(small_options(dir));
    ASSERT_NE(h.log(), nullptr);
    EXPECT_EQ(h.log()->tail(1).next_seq, next_seq[1]);
    ASSERT_TRUE(append_many(h, 1, 1, 1, next_seq).errors.empty());  // Lands in block `hole`.
  }
  LogHarness h(small_options(dir));
  ASSERT_NE(h.log(), nullptr);
  EXPECT_EQ(h.log()->tail(1).next_seq, next_seq[1]);
  EXPECT_EQ(h.log()->recovery_report().corrupt_regions, 0u);
  expect_stream_intact(h, 1, next_seq[1]);
  std::filesystem::remove_all(dir);
}

void flip_byte(const std::string& path, off_t offset) {
  int fd = ::open(path.c_str(), O_RDWR);
  ASSERT_GE(fd, 0);
  char byte;
  ASSERT_EQ(::pread(fd, &byte, 1, offset), 1);
  byte ^= 0x10;
  ASSERT_EQ(::pwrite(fd, &byte, 1, offset), 1);
  ::close(fd);
}

// Damage in a complete segment recovered from its summary (so not scanned at
// startup) is caught when read: never returned, reported as corrupt.
TEST(ShardLog, CatchesCorruptionInASummarizedSegmentWhenReading) {
  std::string dir = temp_dir();
  uint64_t next_seq[3] = {};
  {
    LogHarness h(small_options(dir));
    ASSERT_NE(h.log(), nullptr);
    for (int round = 0; round < 4; round++) ASSERT_TRUE(append_many(h, 2, 500, 20, next_seq).errors.empty());
  }
  ASSERT_TRUE(std::filesystem::exists(dir + "/00000000000000000000.sum"));
  flip_byte(dir + "/00000000000000000000.seg", 200'000);
  LogHarness h(small_options(dir));
  ASSERT_NE(h.log(), nullptr);
  EXPECT_GE(h.log()->recovery_report().segments_from_summary, 1u);
  int corrupt_reads = 0;
  for (uint64_t s = 1; s <= 2; s++) {
    Status error;
    auto bodies = read_all(h, s, 0, &error);
    for (size_t q = 0; q < bodies.size(); q++) ASSERT_EQ(bodies[q], record_body(s, q));
    if (!error.is_ok()) {
      EXPECT_EQ(error.code(), ErrorCode::kCorrupt) << error.to_string();
      corrupt_reads++;
    }
  }
  EXPECT_EQ(corrupt_reads, 1);
  std::filesystem::remove_all(dir);
}

// A bit flip inside acknowledged data of a sealed segment is reported and
// its batch is never returned; other data stays readable.
TEST(ShardLog, ReportsCorruptionInASealedSegmentAndNeverReturnsIt) {
  std::string dir = temp_dir();
  uint64_t next_seq[3] = {};
  {
    LogHarness h(small_options(dir));
    ASSERT_NE(h.log(), nullptr);
    for (int round = 0; round < 4; round++) ASSERT_TRUE(append_many(h, 2, 500, 20, next_seq).errors.empty());
  }
  flip_byte(dir + "/00000000000000000000.seg", 200'000);  // Inside some payload of the first, complete segment.
  // Without its summary the segment is scanned, and the scan finds the damage.
  std::filesystem::remove(dir + "/00000000000000000000.sum");
  LogHarness h(small_options(dir));
  ASSERT_NE(h.log(), nullptr) << h.open_status().to_string();
  EXPECT_EQ(h.log()->recovery_report().corrupt_regions, 1u);
  // One bit flip costs one batch, not the rest of its flush.
  EXPECT_GE(h.log()->recovery_report().batches, 1999u);
  // The other stream is whole; the hit one reads up to the lost batch, then
  // says so, and reads on after it.
  uint64_t intact_stream = 0;
  for (uint64_t s = 1; s <= 2; s++) {
    Status error;
    auto bodies = read_all(h, s, 0, &error);
    for (size_t q = 0; q < bodies.size(); q++) ASSERT_EQ(bodies[q], record_body(s, q));
    if (error.is_ok()) {
      EXPECT_EQ(bodies.size(), next_seq[s]);
      intact_stream = s;
      continue;
    }
    EXPECT_EQ(error.code(), ErrorCode::kCorrupt) << error.to_string();
    const uint64_t gap_start = bodies.size();
    // Past the gap (at most one batch of 20 records), every record is there.
    Status after_error;
    auto rest = read_all(h, s, gap_start + 20, &after_error);
    EXPECT_TRUE(after_error.is_ok()) << after_error.to_string();
    EXPECT_EQ(gap_start + 20 + rest.size(), next_seq[s]);
  }
  EXPECT_NE(intact_stream, 0u);
  std::filesystem::remove_all(dir);
}

TEST(ShardLog, WorksWithFdatasyncInsteadOfDsync) {
  std::string dir = temp_dir();
  LogOptions o = small_options(dir);
  o.dsync = false;
  uint64_t next_seq[3] = {};
  {
    LogHarness h(o);
    ASSERT_NE(h.log(), nullptr);
    ASSERT_TRUE(append_many(h, 2, 300, 4, next_seq).errors.empty());
  }
  LogHarness h(o);
  ASSERT_NE(h.log(), nullptr);
  expect_stream_intact(h, 1, next_seq[1]);
  expect_stream_intact(h, 2, next_seq[2]);
  std::filesystem::remove_all(dir);
}

TEST(ShardLog, RejectsABatchWhoseChecksumDoesNotMatch) {
  std::string dir = temp_dir();
  LogHarness h(small_options(dir));
  ASSERT_NE(h.log(), nullptr);
  Status result;
  h.call([&](ShardLog& log, std::function<void()> finish) {
    PayloadBuilder payload;
    payload.add(1, "hello");
    log.append(LogAppend{.stream_id = 1,
                         .payload = payload.bytes(),
                         .record_count = 1,
                         .payload_checksum = payload_checksum(payload.bytes()) ^ 1,
                         .timestamping = Timestamping::kClientPrefer,
                         .arrival_ms = 1},
               [&result, finish](Result<AppendAck> ack) {
                 result = ack ? Status() : ack.status();
                 finish();
               });
  });
  EXPECT_EQ(result.code(), ErrorCode::kCorrupt);
  EXPECT_EQ(h.log()->tail(1).next_seq, 0u);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace runnel

namespace runnel {
namespace {

// The seq_num of the first record a read from `start` returns (or the tail if none).
uint64_t first_seq_from(LogHarness& h, uint64_t stream, ReadStart start) {
  uint64_t first = UINT64_MAX;
  h.call([&](ShardLog& log, std::function<void()> finish) {
    log.read(stream, start, 10, 1 << 20, [&first, finish](Result<ReadResult> r) {
      ASSERT_TRUE(r.is_ok()) << r.status().to_string();
      first = r->batches.empty() ? r->tail : r->batches[0].header.base_seq + r->first_record_index;
      finish();
    });
  });
  return first;
}

TEST(ShardLog, ReadsFromATimestampStartAtTheFirstRecordAtOrAfterIt) {
  std::string dir = temp_dir();
  LogOptions o = small_options(dir);
  o.index_interval_bytes = 4096;  // Several index entries, so the search matters.
  LogHarness h(o);
  ASSERT_NE(h.log(), nullptr);
  uint64_t next_seq[2] = {};
  // Record seq s carries client timestamp 1000 + s (see append_many).
  ASSERT_TRUE(append_many(h, 1, 200, 5, next_seq).errors.empty());
  EXPECT_EQ(first_seq_from(h, 1, ReadStart::timestamp(1000 + 537)), 537u);
  EXPECT_EQ(first_seq_from(h, 1, ReadStart::timestamp(1000 + 2)), 2u);
  EXPECT_EQ(first_seq_from(h, 1, ReadStart::timestamp(0)), 0u);
  EXPECT_EQ(first_seq_from(h, 1, ReadStart::timestamp(1000 + 999)), 999u);
  EXPECT_EQ(first_seq_from(h, 1, ReadStart::timestamp(1000 + 1000)), 1000u) << "past the last: the tail";
  std::filesystem::remove_all(dir);
}

TEST(ShardLog, ReadsFromATailOffset) {
  std::string dir = temp_dir();
  LogHarness h(small_options(dir));
  ASSERT_NE(h.log(), nullptr);
  uint64_t next_seq[2] = {};
  ASSERT_TRUE(append_many(h, 1, 30, 7, next_seq).errors.empty());
  EXPECT_EQ(first_seq_from(h, 1, ReadStart::tail_offset(10)), 200u);
  EXPECT_EQ(first_seq_from(h, 1, ReadStart::tail_offset(0)), 210u);
  EXPECT_EQ(first_seq_from(h, 1, ReadStart::tail_offset(5000)), 0u);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace runnel

namespace runnel {
namespace {

// Reads are the same whether they come from the recent-data cache, from disk,
// or from both in one read (a cache smaller than the data).
TEST(ShardLog, ReadsTheSameRecordsFromCacheDiskAndBoth) {
  for (uint64_t cache_bytes : {uint64_t{0}, uint64_t{256} << 10, uint64_t{64} << 20}) {
    SCOPED_TRACE("cache_bytes=" + std::to_string(cache_bytes));
    std::string dir = temp_dir();
    LogOptions o = small_options(dir);
    o.cache_bytes = cache_bytes;
    LogHarness h(o);
    ASSERT_NE(h.log(), nullptr);
    uint64_t next_seq[4] = {};
    ASSERT_TRUE(append_many(h, 3, 900, 4, next_seq).errors.empty());
    for (uint64_t s = 1; s <= 3; s++) expect_stream_intact(h, s, next_seq[s]);
    EXPECT_EQ(first_seq_from(h, 2, ReadStart::timestamp(1000 + 500)), 500u);
    std::filesystem::remove_all(dir);
  }
}

// Read-ahead: the reads plan_read() splits a stream into, all in flight at
// once, return each record exactly once and in order, from disk or cache.
TEST(ShardLog, PlannedReadsInFlightTogetherCoverTheStreamExactlyOnce) {
  for (uint64_t cache_bytes : {uint64_t{0}, uint64_t{64} << 20}) {
    SCOPED_TRACE("cache_bytes=" + std::to_string(cache_bytes));
    std::string dir = temp_dir();
    LogOptions o = small_options(dir);
    o.cache_bytes = cache_bytes;
    LogHarness h(o);
    ASSERT_NE(h.log(), nullptr);
    uint64_t next_seq[4] = {};
    ASSERT_TRUE(append_many(h, 3, 900, 4, next_seq).errors.empty());
    const uint64_t tail = next_seq[2];
    for (uint64_t start : {uint64_t{0}, uint64_t{7}, tail / 2 + 1}) {
      SCOPED_TRACE("start=" + std::to_string(start));
      constexpr uint32_t kMaxRecords = 200, kMaxBytes = 24u << 10;  // Index: an entry per 8 KiB.
      std::vector<std::pair<uint64_t, uint64_t>> spans;  // [from, end) of each planned read.
      struct Reads {
        std::vector<std::vector<std::string>> got;
        std::vector<Status> errors;
        size_t remaining = 0;
        std::function<void()> finish;
      } reads;
      h.call([&](ShardLog& log, std::function<void()> finish) {
        for (uint64_t from = start;;) {
          auto plan = log.plan_read(2, from, kMaxRecords, kMaxBytes);
          if (!plan) break;
          EXPECT_GT(plan->end_seq, from);
          EXPECT_LE(plan->end_seq, from + kMaxRecords);
          EXPECT_LT(plan->end_seq, tail);
          EXPECT_LE(plan->bytes, kMaxBytes);
          spans.emplace_back(from, plan->end_seq);
          from = plan->end_seq;
        }
        ASSERT_LE(spans.size(), log.reads_available());
        reads.got.resize(spans.size());
        reads.remaining = spans.size();
        reads.finish = std::move(finish);
        if (spans.empty()) return reads.finish();
        for (size_t i = 0; i < spans.size(); i++) {
          const auto [from, end] = spans[i];
          log.read(2, from, static_cast<uint32_t>(end - from), UINT32_MAX, [&reads, i](Result<ReadResult> r) {
            if (!r) {
              reads.errors.push_back(r.status());
            } else {
              reads.got[i] = bodies_of(*r);
            }
            if (--reads.remaining == 0) reads.finish();
          });
        }
      });
      ASSERT_TRUE(reads.errors.empty()) << reads.errors[0].to_string();
      const auto& got = reads.got;
      ASSERT_GE(spans.size(), 5u);  // The stream is split into many reads...
      EXPECT_GT(spans.back().second, tail - 200);  // ...up to near its tail.
      for (size_t i = 0; i < spans.size(); i++) {
        const auto [from, end] = spans[i];
        ASSERT_EQ(got[i].size(), end - from) << "read " << i;
        for (uint64_t seq = from; seq < end; seq++) ASSERT_EQ(got[i][seq - from], record_body(2, seq));
      }
    }
    // Nothing to plan at the tail, nor for a stream that does not exist.
    EXPECT_FALSE(h.log()->plan_read(2, tail, 1000, 1u << 20));
    EXPECT_FALSE(h.log()->plan_read(9, 0, 1000, 1u << 20));
    std::filesystem::remove_all(dir);
  }
}

// A stream whose batches lie among other streams' reads its own batches
// from disk, not the whole chunks around them (the index says where each
// batch's data ends), and still gets every record.
TEST(ShardLog, ReadsOfAStreamAmongOthersTakeLittleMoreThanItsBatchesFromDisk) {
  std::string dir = temp_dir();
  LogOptions o = small_options(dir);
  o.cache_bytes = 0;
  LogHarness h(o);
  ASSERT_NE(h.log(), nullptr);
  uint64_t next_seq[5] = {};
  // 120 records a batch (12-30 KB): every batch starts an index entry (8 KiB).
  ASSERT_TRUE(append_many(h, 4, 200, 120, next_seq).errors.empty());
  auto counter = [&h](const char* name) {
    uint64_t value = 0;
    h.call([&](ShardLog&, std::function<void()> finish) {
      value = h.reactor().metrics().counter(name, "").value();
      finish();
    });
    return value;
  };
  const uint64_t one_stream_bytes = counter("runnel_log_bytes_appended_total") / 4;
  const uint64_t before = counter("runnel_log_read_disk_bytes_total");
  // In reads as large as a subscription's (a smaller read re-reads the end of the last one's disk read).
  Status error;
  auto bodies = read_all(h, 2, 0, &error, 10'000, 1u << 20);
  const uint64_t read = counter("runnel_log_read_disk_bytes_total") - before;
  ASSERT_TRUE(error.is_ok()) << error.to_string();
  ASSERT_EQ(bodies.size(), next_seq[2]);
  for (uint64_t seq = 0; seq < next_seq[2]; seq++) ASSERT_EQ(bodies[seq], record_body(2, seq));
  // Whole chunks (208 KiB from each batch's start) would be ~17x its bytes.
  EXPECT_GT(read, one_stream_bytes);
  EXPECT_LT(read, one_stream_bytes * 3 / 2) << "stream bytes " << one_stream_bytes;
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace runnel

namespace runnel {
namespace {

// Regression: a torn tail cut mid-block leaves remains that reads skip; once
// that segment is complete and recovered from its summary, reads must still
// skip them (the summary carries the segment's bad ranges).
TEST(ShardLog, TornRemainsStaySkippedAfterTheSegmentIsSummarized) {
  std::string dir = temp_dir();
  uint64_t next_seq[2] = {};
  {
    LogHarness h(small_options(dir));
    ASSERT_NE(h.log(), nullptr);
    ASSERT_TRUE(append_many(h, 1, 50, 3, next_seq).errors.empty());
  }
  const std::string segment = dir + "/00000000000000000000.seg";
  const uint64_t flush_start = (data_end_of(segment) + 4095) / 4096 * 4096;
  write_at(segment, flush_start, valid_batch(next_seq[1]) + valid_batch(next_seq[1] + 1).substr(0, 100));
  next_seq[1]++;
  {
    LogHarness h(small_options(dir));
    ASSERT_NE(h.log(), nullptr);
    // Enough to roll past segment 0 (~2.5 KB a batch, 4 MiB segments), so it
    // is complete and gets a summary.
    for (int round = 0; round < 6; round++) ASSERT_TRUE(append_many(h, 1, 500, 20, next_seq).errors.empty());
  }
  ASSERT_TRUE(std::filesystem::exists(dir + "/00000000000000000000.sum"));
  LogHarness h(small_options(dir));
  ASSERT_NE(h.log(), nullptr);
  EXPECT_GE(h.log()->recovery_report().segments_from_summary, 1u);
  expect_stream_intact(h, 1, next_seq[1]);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace runnel

namespace runnel {
namespace {

LogOptions tight_buffers(const std::string& dir) {
  LogOptions o = small_options(dir);
  o.write_buffers = 2;
  o.flushes_in_flight_max = 1;
  return o;
}

// Appends that find every write buffer full wait for one, in order, instead
// of failing at once.
TEST(ShardLog, AppendsWaitForAFreeWriteBuffer) {
  std::string dir = temp_dir();
  LogHarness h(tight_buffers(dir));
  ASSERT_NE(h.log(), nullptr);
  uint64_t next_seq[3] = {};
  // All issued in one loop step: far more than two buffers hold.
  Appended a = append_many(h, 2, 400, 40, next_seq);
  EXPECT_TRUE(a.errors.empty()) << a.errors.size() << " failed, first: " << a.errors[0].to_string();
  ASSERT_EQ(a.acks.size(), 400u);
  expect_stream_intact(h, 1, next_seq[1]);
  expect_stream_intact(h, 2, next_seq[2]);
  std::filesystem::remove_all(dir);
}

TEST(ShardLog, OnlySoManyAppendsMayWait) {
  std::string dir = temp_dir();
  LogOptions o = tight_buffers(dir);
  o.appends_waiting_max = 3;
  LogHarness h(o);
  ASSERT_NE(h.log(), nullptr);
  uint64_t next_seq[2] = {};
  Appended a = append_many(h, 1, 400, 40, next_seq);
  ASSERT_FALSE(a.errors.empty()) << "more appends than buffers and waiting slots must be refused";
  for (const Status& e : a.errors) EXPECT_EQ(e.code(), ErrorCode::kOverloaded) << e.to_string();
  EXPECT_GE(a.acks.size(), 3u);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace runnel

namespace runnel {
namespace {

TEST(ShardLog, TailWaitersWakeOnceWhenTheirStreamMovesAndNotAfterCancel) {
  std::string dir = temp_dir();
  LogHarness h(small_options(dir));
  ASSERT_NE(h.log(), nullptr);
  uint64_t next_seq[3] = {};
  ASSERT_TRUE(append_many(h, 2, 2, 1, next_seq).errors.empty());  // Streams 1 and 2 exist.
  int woken_1 = 0, woken_2 = 0, woken_cancelled = 0;
  ShardLog::TailWaiter on_1, on_2, cancelled;
  h.call([&](ShardLog& log, std::function<void()> finish) {
    on_1.stream_id = 1;
    on_1.wake = [&woken_1] { woken_1++; };
    on_2.stream_id = 2;
    on_2.wake = [&woken_2] { woken_2++; };
    cancelled.stream_id = 1;
    cancelled.wake = [&woken_cancelled] { woken_cancelled++; };
    log.wait_for_records(&on_1);
    log.wait_for_records(&on_2);
    log.wait_for_records(&cancelled);
    log.cancel_wait(&cancelled);
    finish();
  });
  // Two appends to stream 1 only (one flush or two): stream 1's waiter wakes once.
  uint64_t only_1[3] = {0, next_seq[1], 0};
  ASSERT_TRUE(append_many(h, 1, 2, 1, only_1).errors.empty());
  h.call([&](ShardLog&, std::function<void()> finish) { finish(); });
  EXPECT_EQ(woken_1, 1);
  EXPECT_EQ(woken_2, 0);
  EXPECT_EQ(woken_cancelled, 0);
  EXPECT_FALSE(on_1.waiting);
  EXPECT_TRUE(on_2.waiting);
  h.call([&](ShardLog& log, std::function<void()> finish) {
    log.cancel_wait(&on_2);
    finish();
  });
  std::filesystem::remove_all(dir);
}

// A hundred thousand long polls on one stream once held back the ack of the
// append that woke them (~290 ms): waiters are now woken in turns of
// kWakeBatch per loop step, after the acks, each exactly once.
TEST(ShardLog, ManyTailWaitersAreWokenInTurnsAfterTheAck) {
  std::string dir = temp_dir();
  LogHarness h(small_options(dir));
  ASSERT_NE(h.log(), nullptr);
  uint64_t next_seq[2] = {};
  ASSERT_TRUE(append_many(h, 1, 1, 1, next_seq).errors.empty());  // Stream 1 exists.
  constexpr size_t kWaiters = 5 * ShardLog::kWakeBatch + 7;
  std::vector<ShardLog::TailWaiter> waiters(kWaiters);
  std::vector<int> woken(kWaiters, 0);
  size_t woken_total = 0;
  size_t woken_at_ack = SIZE_MAX, woken_one_step_later = SIZE_MAX;
  PayloadBuilder payload;
  payload.add(0, "wake up");
  h.call([&](ShardLog& log, std::function<void()> finish) {
    for (size_t i = 0; i < kWaiters; i++) {
      waiters[i].stream_id = 1;
      waiters[i].wake = [&, i] {
        woken[i]++;
        woken_total++;
      };
      log.wait_for_records(&waiters[i]);
    }
    log.append(log_append_of(1, payload), [&](Result<AppendAck> ack) {
      ASSERT_TRUE(ack.is_ok());
      woken_at_ack = woken_total;
      Reactor::current().post([&] { woken_one_step_later = woken_total; });
    });
    // Done once every waiter has been woken (bounded by the harness's wait).
    struct Poll {
      static void again(size_t* total, std::function<void()> done) {
        if (*total == kWaiters) return done();
        Reactor::current().post([total, done] { again(total, done); });
      }
    };
    Poll::again(&woken_total, finish);
  });
  EXPECT_EQ(woken_at_ack, 0u) << "waiters ran before the ack";
  EXPECT_LE(woken_one_step_later, ShardLog::kWakeBatch) << "every waiter woke in the ack's loop step";
  for (size_t i = 0; i < kWaiters; i++) EXPECT_EQ(woken[i], 1) << "waiter " << i;
  std::filesystem::remove_all(dir);
}

// A waiter cancelled while it waits its turn to be woken is not woken.
TEST(ShardLog, AWaiterCancelledBeforeItsTurnIsNotWoken) {
  std::string dir = temp_dir();
  LogHarness h(small_options(dir));
  ASSERT_NE(h.log(), nullptr);
  uint64_t next_seq[2] = {};
  ASSERT_TRUE(append_many(h, 1, 1, 1, next_seq).errors.empty());
  constexpr size_t kWaiters = 2 * ShardLog::kWakeBatch;
  std::vector<ShardLog::TailWaiter> waiters(kWaiters);
  size_t woken_total = 0;
  bool last_woken = false;
  PayloadBuilder payload;
  payload.add(0, "x");
  h.call([&](ShardLog& log, std::function<void()> finish) {
    for (size_t i = 0; i < kWaiters; i++) {
      waiters[i].stream_id = 1;
      if (i == 0) {
        // The first one woken cancels the last, still waiting its turn.
        waiters[i].wake = [&] {
          woken_total++;
          log.cancel_wait(&waiters[kWaiters - 1]);
        };
      } else if (i == kWaiters - 1) {
        waiters[i].wake = [&] { last_woken = true; };
      } else {
        waiters[i].wake = [&] { woken_total++; };
      }
      log.wait_for_records(&waiters[i]);
    }
    log.append(log_append_of(1, payload), [](Result<AppendAck>) {});
    struct Poll {
      static void again(size_t* total, std::function<void()> done) {
        if (*total == kWaiters - 1) return done();
        Reactor::current().post([total, done] { again(total, done); });
      }
    };
    Poll::again(&woken_total, finish);
  });
  h.call([](ShardLog&, std::function<void()> finish) { finish(); });  // One more loop step.
  EXPECT_FALSE(last_woken);
  EXPECT_FALSE(waiters[kWaiters - 1].waiting);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace runnel
