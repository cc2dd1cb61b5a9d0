// Compaction: a slow stream's few live batches that pin old segments are
// copied forward, the old segments are deleted, and every record reads back
// the same — from any start, after restarts, and after being compacted again.

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <functional>
#include <random>

#include "core/test_seed.h"
#include "storage/log_test_util.h"
#include "storage/sim_file_io.h"

#include <fmt/format.h>

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
      log.append(log_append_of(stream, payload),
                 [&a, finish](Result<AppendAck> ack) {
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
      log.append(log_append_of(kFast, payload),
                 [&errors, remaining, finish](Result<AppendAck> ack) {
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
      started = log.compact() == ShardLog::CompactStart::kStarted;
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

// A one-record read from every seq_num finds that record: whichever copy,
// original or new append lies where the read starts scanning.
void expect_each_record_readable(LogHarness& h, uint64_t stream, uint64_t tail) {
  struct Walk {
    ShardLog* log;
    uint64_t stream, tail, seq = 0;
    std::string failure;
    std::function<void()> finish;
    void next() {
      if (seq >= tail) return finish();
      log->read(stream, seq, 1, 1, [this](Result<ReadResult> r) {
        if (!r || r->batches.empty()) {
          failure = fmt::format("read of seq {} failed: {}", seq, r ? "no batches" : r.status().to_string());
          return finish();
        }
        const StoredBatch& b = r->batches[0];
        RecordIterator it(b.payload, b.header.record_count, BatchLimits{});
        RecordView rec;
        for (uint32_t i = 0; i <= r->first_record_index; i++) it.next(&rec);
        if (rec.body != record_body(stream, seq)) {
          failure = fmt::format("seq {} read back as something else", seq);
          return finish();
        }
        seq++;
        Reactor::current().post([this] { next(); });  // Cache hits answer at once: do not recurse.
      });
    }
  };
  Walk walk{nullptr, stream, tail, 0, {}, nullptr};
  h.call([&](ShardLog& log, std::function<void()> finish) {
    walk.log = &log;
    walk.finish = std::move(finish);
    walk.next();
  });
  EXPECT_EQ(walk.failure, "") << "stream " << stream;
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

// Power loss at random moments while a compaction runs alongside appends:
// after every restart each acknowledged record is there exactly once, in
// order, whether the compaction had committed or not; and compaction then
// finishes the job. Seeded; RUNNEL_SEED=N replays one (core/test_seed.h).
TEST(Compaction, SurvivesPowerLossAtAnyPoint) {
  const std::vector<uint64_t> seeds = test_seeds(12);
  uint64_t unfinished_seen = 0;
  uint64_t committed_seen = 0;
  for (uint64_t seed : seeds) {
    SCOPED_TRACE(seed_trace(seed));
    std::mt19937_64 rng(seed);
    SimDisk disk;
    LogOptions o = options("/data/shard-0");
    o.dsync = false;  // write + fdatasync: power loss takes what was not synced.
    // Small flushes: a compaction's copies span many, so the plug is often
    // pulled between its begin and its end.
    o.flush_bytes_max = 16u << 10;
    o.limits.payload_bytes_max = 12u << 10;
    auto start = [&](uint64_t io_seed) {
      return std::make_unique<LogHarness>(o, [&disk, io_seed](Reactor& r) {
        auto io = std::make_unique<SimFileIo>(disk, &r, SimFaults{}, io_seed);
        io->set_dead_after_crash(true);
        return io;
      });
    };
    uint64_t next_seq[3] = {};
    uint64_t fast_floor = 0;
    for (int round = 0; round < 3; round++) {
      auto h = start(rng());
      ASSERT_NE(h->log(), nullptr) << h->open_status().to_string();
      unfinished_seen += h->log()->recovery_report().unfinished_compactions;
      // Unacknowledged appends may have survived too.
      ASSERT_GE(h->log()->tail(kSlow).next_seq, next_seq[kSlow]);
      ASSERT_GE(h->log()->tail(kFast).next_seq, next_seq[kFast]);
      next_seq[kSlow] = h->log()->tail(kSlow).next_seq;
      next_seq[kFast] = h->log()->tail(kFast).next_seq;
      expect_stream_intact(*h, kSlow, next_seq[kSlow]);
      expect_fast_from(*h, fast_floor, next_seq[kFast]);
      // Enough slow data per segment (~15%) that its copies span several
      // flushes, so the plug can be pulled between begin and end.
      for (int i = 0; i < 3; i++) {
        append_to(*h, kSlow, 30, 20, next_seq);
        fill(*h, next_seq, 200);
      }
      fast_floor = next_seq[kFast] - 50;
      // Start a compaction (as retention would) and keep appending to the
      // stream whose records it copies, so new appends land among the
      // copies; the plug is pulled at the k-th acknowledgement.
      struct Chain {
        ShardLog* log;
        SimDisk* disk;
        uint64_t crash_seed;
        int acks_left;
        uint64_t seq;
        std::function<void()> finish;
        void next() {
          PayloadBuilder payload;
          payload.add(1000 + seq, {}, record_body(kSlow, seq));
          log->append(LogAppend{.stream_id = kSlow,
                                .payload = payload.bytes(),
                                .record_count = 1,
                                .payload_checksum = payload_checksum(payload.bytes()),
                                .timestamping = Timestamping::kClientPrefer,
                                .arrival_ms = 5000},
                      [this](Result<AppendAck> ack) {
                        if (acks_left <= 0) return;
                        if (ack) seq++;
                        if (--acks_left == 0) {
                          disk->crash(crash_seed);
                          return finish();
                        }
                        next();
                      });
        }
      };
      auto chain = std::make_shared<Chain>(
          Chain{h->log(), &disk, rng(), 1 + static_cast<int>(rng() % 8), next_seq[kSlow], nullptr});
      bool started = false;
      h->call([&](ShardLog& log, std::function<void()> finish) {
        log.set_floor(kFast, fast_floor);
        log.reclaim();
        started = log.compact() == ShardLog::CompactStart::kStarted;
        chain->finish = std::move(finish);
        chain->next();
      });
      next_seq[kSlow] = chain->seq;  // Acknowledged.
      h.reset();  // The shard stops; the dead disk fails what was in flight.
      if (!started) continue;
      auto check = start(rng());
      ASSERT_NE(check->log(), nullptr) << check->open_status().to_string();
      unfinished_seen += check->log()->recovery_report().unfinished_compactions;
      ASSERT_GE(check->log()->tail(kSlow).next_seq, next_seq[kSlow]);
      next_seq[kSlow] = check->log()->tail(kSlow).next_seq;
      expect_stream_intact(*check, kSlow, next_seq[kSlow]);
      expect_each_record_readable(*check, kSlow, next_seq[kSlow]);
      ASSERT_GE(check->log()->tail(kFast).next_seq, next_seq[kFast]);
      next_seq[kFast] = check->log()->tail(kFast).next_seq;
      expect_fast_from(*check, fast_floor, next_seq[kFast]);
      // Finish the job and check again, before and after a clean restart.
      const uint64_t keep = next_seq[kFast] - fast_floor;
      committed_seen += trim_and_compact(*check, next_seq, keep);  // Writes more as it goes.
      fast_floor = next_seq[kFast] - keep;
      expect_stream_intact(*check, kSlow, next_seq[kSlow]);
      expect_each_record_readable(*check, kSlow, next_seq[kSlow]);
    }
    auto h = start(rng());
    ASSERT_NE(h->log(), nullptr) << h->open_status().to_string();
    EXPECT_EQ(h->log()->recovery_report().corrupt_regions, 0u);
    expect_stream_intact(*h, kSlow, next_seq[kSlow]);
    expect_fast_from(*h, fast_floor, h->log()->tail(kFast).next_seq);
  }
  if (seeds.size() > 1) {
    EXPECT_GT(committed_seen, 0u);
    EXPECT_GT(unfinished_seen, 0u) << "no crash landed inside a compaction: the test lost its point";
  }
}

}  // namespace
}  // namespace runnel
