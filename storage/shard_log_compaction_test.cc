// Compaction: a slow stream's few live batches that pin old segments are
// copied forward, the old segments are deleted, and every record reads back
// the same — from any start, after restarts, and after being compacted again.

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <functional>

#include "storage/log_test_util.h"

namespace runnel {
namespace {

constexpr uint64_t kSlow = 1;  // A few records, never trimmed: pins every segment it is in.
constexpr uint64_t kFast = 2;  // Lots of records, trimmed behind.

LogOptions options(const std::string& dir) {
  LogOptions o = small_options(dir);
  o.segment_bytes = 1u << 20;
  o.flush_bytes_max = 64u << 10;
  o.limits.payload_bytes_max = 32u << 10;
  o.compact_live_percent = 25;
  return o;
}

// Appends `batches` batches of `per_batch` records to one stream.
void append_to(LogHarness& h, uint64_t stream, int batches, int per_batch, uint64_t* next_seq) {
  uint64_t& seq = next_seq[stream];
  for (int b = 0; b < batches; b++) {
    Appended a;
    h.call([&](ShardLog& log, std::function<void()> finish) {
      PayloadBuilder payload;
      for (int r = 0; r < per_batch; r++) {
        payload.add(1000 + seq, {{"k", "v"}}, record_body(stream, seq));
        seq++;
      }
      log.append(stream, payload.bytes(), payload.record_count(), payload_checksum(payload.bytes()),
                 TimestampMode::kClientPrefer, 5000, [&a, finish](Result<AppendAck> ack) {
                   if (!ack) a.errors.push_back(ack.status());
                   finish();
                 });
    });
    ASSERT_TRUE(a.errors.empty()) << a.errors[0].to_string();
  }
}

// Fast-stream data, in big batches, so the log rolls through segments quickly.
void fill(LogHarness& h, uint64_t* next_seq, int batches) {
  uint64_t seqs[3] = {0, 0, next_seq[kFast]};
  std::vector<Status> errors;
  h.call([&](ShardLog& log, std::function<void()> finish_call) {
    auto finish = std::make_shared<std::function<void()>>(std::move(finish_call));
    auto remaining = std::make_shared<int>(batches);
    for (int b = 0; b < batches; b++) {
      PayloadBuilder payload;
      for (int r = 0; r < 20; r++) {
        payload.add(1000 + seqs[kFast], {}, record_body(kFast, seqs[kFast]));
        seqs[kFast]++;
      }
      log.append(kFast, payload.bytes(), payload.record_count(), payload_checksum(payload.bytes()),
                 TimestampMode::kClientPrefer, 5000, [&errors, remaining, finish](Result<AppendAck> ack) {
                   if (!ack) errors.push_back(ack.status());
                   if (--*remaining == 0) (*finish)();
                 });
    }
  });
  ASSERT_TRUE(errors.empty()) << errors[0].to_string();
  next_seq[kFast] = seqs[kFast];
}

size_t segment_files(const std::string& dir) {
  size_t n = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) n += entry.path().extension() == ".seg";
  return n;
}

// Keeps the fast stream trimmed to its last `keep` records while reclaiming
// and compacting; a compaction only starts when its copies fit in the active
// segment, so between attempts the fast stream writes a little more (as a
// live system would). `after_each` runs after every compaction. Returns
// the compactions completed.
uint64_t trim_and_compact(LogHarness& h, uint64_t* next_seq, uint64_t keep,
                          const std::function<void()>& after_each = nullptr) {
  for (int round = 0; round < 40; round++) {
    bool started = false;
    size_t segments = 0;
    h.call([&](ShardLog& log, std::function<void()> finish) {
      log.set_floor(kFast, next_seq[kFast] - keep);
      log.reclaim();
      started = log.compact();
      segments = log.segment_count();
      finish();
    });
    if (!started) {
      if (segments <= 2) break;
      fill(h, next_seq, 10);
      continue;
    }
    for (int wait = 0; wait < 2000; wait++) {
      bool busy = true;
      h.call([&](ShardLog& log, std::function<void()> finish) {
        busy = log.compacting();
        finish();
      });
      if (!busy) break;
      ::usleep(1000);
    }
    if (after_each) after_each();
  }
  uint64_t completed = 0;
  h.call([&](ShardLog& log, std::function<void()> finish) {
    log.set_floor(kFast, next_seq[kFast] - keep);
    log.reclaim();
    completed = log.compaction_stats().completed;
    finish();
  });
  return completed;
}

void expect_fast_from(LogHarness& h, uint64_t from, uint64_t tail) {
  Status error;
  auto bodies = read_all(h, kFast, from, &error);
  ASSERT_TRUE(error.is_ok()) << error.to_string();
  ASSERT_EQ(bodies.size(), tail - from);
  for (uint64_t i = 0; i < bodies.size(); i++) ASSERT_EQ(bodies[i], record_body(kFast, from + i)) << from + i;
}

// Every start position of the slow stream reads the same records, and one
// read with room for all of them returns them all (it follows the records
// between copies and originals instead of stopping early).
void expect_slow_from_everywhere(LogHarness& h, uint64_t tail) {
  for (uint64_t from = 0; from < tail; from += 7) {
    auto bodies = read_all(h, kSlow, from);
    ASSERT_EQ(bodies.size(), tail - from) << "from " << from;
    for (uint64_t i = 0; i < bodies.size(); i++) ASSERT_EQ(bodies[i], record_body(kSlow, from + i));
    Result<ReadResult> r = Status(ErrorCode::kInternal, "");
    h.call([&](ShardLog& log, std::function<void()> finish) {
      log.read(kSlow, from, 100000, 64u << 20, [&r, finish](Result<ReadResult> res) {
        r = std::move(res);
        finish();
      });
    });
    ASSERT_TRUE(r.is_ok()) << r.status().to_string();
    uint64_t records = 0;
    for (const StoredBatch& b : r->batches) records += b.header.record_count;
    EXPECT_EQ(records - r->first_record_index, tail - from) << "one read from " << from;
  }
}

TEST(Compaction, CopiesPinnedLiveBatchesForwardAndDeletesOldSegments) {
  std::string dir = temp_dir();
  uint64_t next_seq[3] = {};
  {
    LogHarness h(options(dir));
    ASSERT_NE(h.log(), nullptr) << h.open_status().to_string();
    // The slow stream writes a little into each of the first segments.
    for (int i = 0; i < 4; i++) {
      append_to(h, kSlow, 5, 3, next_seq);
      fill(h, next_seq, 250);  // ~1 MiB per round.
    }
    fill(h, next_seq, 500);
    const size_t before = segment_files(dir);
    ASSERT_GE(before, 5u);
    // Without compaction, the slow stream keeps the first segments.
    h.call([&](ShardLog& log, std::function<void()> finish) {
      log.set_floor(kFast, next_seq[kFast] - 100);
      log.reclaim();
      finish();
    });
    EXPECT_GE(segment_files(dir), 5u);
    // Part way, copies sit after the originals of later records: reads
    // jump back and forth between them.
    const uint64_t completed =
        trim_and_compact(h, next_seq, 100, [&] {
          append_to(h, kSlow, 1, 2, next_seq);  // New records after the copies.
          expect_slow_from_everywhere(h, next_seq[kSlow]);
        });
    EXPECT_GE(completed, 3u);
    EXPECT_LE(segment_files(dir), 3u) << "compaction should let the pinned segments go (had " << before << ")";
    expect_stream_intact(h, kSlow, next_seq[kSlow]);
    expect_slow_from_everywhere(h, next_seq[kSlow]);
    expect_fast_from(h, next_seq[kFast] - 100, next_seq[kFast]);
    // Appends after compaction continue the stream and read back with the copies.
    append_to(h, kSlow, 3, 4, next_seq);
    expect_stream_intact(h, kSlow, next_seq[kSlow]);
  }
  // A restart finds the copies (from the summary or by scanning).
  LogHarness h(options(dir));
  ASSERT_NE(h.log(), nullptr) << h.open_status().to_string();
  EXPECT_EQ(h.log()->recovery_report().corrupt_regions, 0u);
  EXPECT_EQ(h.log()->tail(kSlow).next_seq, next_seq[kSlow]);
  expect_stream_intact(h, kSlow, next_seq[kSlow]);
  expect_slow_from_everywhere(h, next_seq[kSlow]);
  std::filesystem::remove_all(dir);
}

TEST(Compaction, CopiesOfCopiesStayReadableThroughManyRoundsAndRestarts) {
  std::string dir = temp_dir();
  uint64_t next_seq[3] = {};
  uint64_t compactions = 0;
  for (int restart = 0; restart < 3; restart++) {
    LogHarness h(options(dir));
    ASSERT_NE(h.log(), nullptr) << h.open_status().to_string();
    ASSERT_EQ(h.log()->tail(kSlow).next_seq, next_seq[kSlow]);
    expect_stream_intact(h, kSlow, next_seq[kSlow]);
    for (int round = 0; round < 4; round++) {
      append_to(h, kSlow, 3, 2, next_seq);
      fill(h, next_seq, 150);
      append_to(h, kSlow, 2, 5, next_seq);
      fill(h, next_seq, 150);
      compactions += trim_and_compact(h, next_seq, 50);
      expect_stream_intact(h, kSlow, next_seq[kSlow]);
      expect_fast_from(h, next_seq[kFast] - 50, next_seq[kFast]);
    }
    EXPECT_LE(segment_files(dir), 4u);
  }
  EXPECT_GE(compactions, 3u);
  LogHarness h(options(dir));
  ASSERT_NE(h.log(), nullptr);
  expect_slow_from_everywhere(h, next_seq[kSlow]);
  // Timestamp and tail-offset reads land in the copies too.
  Result<ReadResult> r = Status(ErrorCode::kInternal, "");
  h.call([&](ShardLog& log, std::function<void()> finish) {
    log.read(kSlow, ReadStart::timestamp(1000 + 3), 1, 1 << 20, [&r, finish](Result<ReadResult> res) {
      r = std::move(res);
      finish();
    });
  });
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  ASSERT_FALSE(r->batches.empty());
  EXPECT_LE(r->batches[0].header.base_seq + r->first_record_index, 3u);
  EXPECT_EQ(r->batches[0].header.flags & kBatchFlagRelocated, 0) << "the relocated flag is internal";
  std::filesystem::remove_all(dir);
}

TEST(Compaction, LeavesSegmentsWithMuchLiveDataAlone) {
  std::string dir = temp_dir();
  uint64_t next_seq[3] = {};
  LogHarness h(options(dir));
  ASSERT_NE(h.log(), nullptr);
  // The slow stream is not slow here: half of every segment is its.
  for (int i = 0; i < 6; i++) {
    append_to(h, kSlow, 30, 20, next_seq);
    fill(h, next_seq, 60);
  }
  const uint64_t completed = trim_and_compact(h, next_seq, 10);
  EXPECT_EQ(completed, 0u);
  expect_stream_intact(h, kSlow, next_seq[kSlow]);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace runnel
