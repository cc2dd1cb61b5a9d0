#include "storage/shard_log.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <functional>
#include <future>
#include <random>
#include <set>

#include "core/shard_set.h"
#include "storage/uring_file_io.h"

namespace runnel {
namespace {

std::string temp_dir() {
  static int counter = 0;
  std::string path = "/tmp/runnel-log-test-" + std::to_string(::getpid()) + "-" + std::to_string(counter++);
  std::filesystem::remove_all(path);
  return path;
}

LogOptions small_options(const std::string& dir) {
  LogOptions o;
  o.dir = dir;
  o.segment_bytes = 4u << 20;
  o.flush_bytes_max = 256u << 10;
  o.flushes_in_flight_max = 4;
  o.write_buffers = 12;
  o.read_chunk_bytes = 64u << 10;
  o.index_interval_bytes = 8u << 10;
  o.index_log_gap_bytes = 64u << 10;
  o.limits.payload_bytes_max = 200u << 10;
  return o;
}

// Runs a ShardLog on a one-shard reactor; call() runs work on the shard and
// waits (bounded) for it to report completion.
class LogHarness {
 public:
  explicit LogHarness(const LogOptions& options) : shards_(shard_options()) {
    Status started = shards_.start(
        [this, options](Reactor& r) {
          io_ = std::make_unique<UringFileIo>(&r);
          auto log = ShardLog::open(&r, *io_, options);
          if (!log) {
            open_status_ = log.status();
            return Status::ok();
          }
          log_ = std::move(*log);
          return Status::ok();
        },
        [this](Reactor&) {
          log_.reset();
          io_.reset();
        });
    EXPECT_TRUE(started.is_ok()) << started.to_string();
  }
  ~LogHarness() {
    shards_.request_stop();
    shards_.join();
  }

  ShardLog* log() { return log_.get(); }
  const Status& open_status() const { return open_status_; }

  // `work` gets the log and a `finish` to call (on the shard) when done.
  void call(std::function<void(ShardLog&, std::function<void()>)> work) {
    std::promise<void> finished;
    auto future = finished.get_future();
    auto* work_ptr = &work;
    auto* finished_ptr = &finished;
    shards_.reactor(0).post_external([this, work_ptr, finished_ptr] {
      (*work_ptr)(*log_, [finished_ptr] { finished_ptr->set_value(); });
    });
    ASSERT_EQ(future.wait_for(std::chrono::seconds(60)), std::future_status::ready) << "shard work timed out";
  }

 private:
  static ShardSetOptions shard_options() {
    ShardSetOptions o;
    o.shards = 1;
    o.ring_entries = 256;
    return o;
  }
  ShardSet shards_;
  std::unique_ptr<UringFileIo> io_;
  std::unique_ptr<ShardLog> log_;
  Status open_status_;
};

std::string record_body(uint64_t stream, uint64_t seq) {
  std::string body = "stream " + std::to_string(stream) + " record " + std::to_string(seq) + " ";
  body.append(static_cast<size_t>(seq % 200), static_cast<char>('a' + seq % 26));
  return body;
}

struct Appended {
  std::vector<AppendAck> acks;
  std::vector<Status> errors;
};

// Appends `batches` batches of `per_batch` records round-robin over streams 1..streams.
Appended append_many(LogHarness& h, int streams, int batches, int per_batch, uint64_t* next_seq_per_stream) {
  Appended out;
  h.call([&](ShardLog& log, std::function<void()> finish) {
    auto remaining = std::make_shared<int>(batches);
    auto finish_ptr = std::make_shared<std::function<void()>>(std::move(finish));
    for (int b = 0; b < batches; b++) {
      uint64_t stream = 1 + static_cast<uint64_t>(b % streams);
      PayloadBuilder payload;
      for (int r = 0; r < per_batch; r++) {
        payload.add(1000 + next_seq_per_stream[stream], {{"k", "v"}}, record_body(stream, next_seq_per_stream[stream]));
        next_seq_per_stream[stream]++;
      }
      log.append(stream, payload.bytes(), payload.record_count(), payload_checksum(payload.bytes()),
                 TimestampMode::kClientPrefer, 5000, [&out, remaining, finish_ptr](Result<AppendAck> ack) {
                   if (ack) {
                     out.acks.push_back(*ack);
                   } else {
                     out.errors.push_back(ack.status());
                   }
                   if (--*remaining == 0) (*finish_ptr)();
                 });
    }
  });
  return out;
}

// Reads all of `stream` and returns the bodies in seq order.
std::vector<std::string> read_all(LogHarness& h, uint64_t stream, uint64_t from = 0, Status* error = nullptr) {
  struct ReadState {
    ShardLog* log;
    uint64_t stream;
    std::vector<std::string> bodies;
    Status error;
    std::function<void()> finish;

    void next(uint64_t seq) {
      log->read(stream, seq, 100, 64 << 10, [this](Result<ReadResult> r) {
        if (!r) {
          error = r.status();
          return finish();
        }
        if (r->batches.empty()) return finish();
        uint64_t next_seq = 0;
        for (size_t i = 0; i < r->batches.size(); i++) {
          const StoredBatch& b = r->batches[i];
          BatchLimits limits;
          limits.payload_bytes_max = 1u << 21;
          RecordIterator it(b.payload, b.header.record_count, limits);
          RecordView rec;
          uint32_t index = 0;
          while (it.next(&rec)) {
            if (i > 0 || index >= r->first_record_index) bodies.emplace_back(rec.body);
            index++;
          }
          next_seq = b.header.base_seq + b.header.record_count;
        }
        next(next_seq);
      });
    }
  };
  ReadState state{nullptr, stream, {}, Status(), nullptr};
  h.call([&](ShardLog& log, std::function<void()> finish) {
    state.log = &log;
    state.finish = std::move(finish);
    state.next(from);
  });
  if (error != nullptr) *error = state.error;
  return state.bodies;
}

void expect_stream_intact(LogHarness& h, uint64_t stream, uint64_t count) {
  auto bodies = read_all(h, stream);
  ASSERT_EQ(bodies.size(), count) << "stream " << stream;
  for (uint64_t seq = 0; seq < count; seq++) {
    ASSERT_EQ(bodies[seq], record_body(stream, seq)) << "stream " << stream << " seq " << seq;
  }
}

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
  for (const auto& e : std::filesystem::directory_iterator(dir)) segments += e.path().extension() == ".seg";
  EXPECT_GE(segments, 3u);
  LogHarness h(small_options(dir));
  ASSERT_NE(h.log(), nullptr);
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
  std::string segment = dir + "/00000000000000000000.seg";
  int fd = ::open(segment.c_str(), O_RDWR);
  ASSERT_GE(fd, 0);
  char byte;
  const off_t victim = 200'000;  // Inside some payload of the first (sealed) segment.
  ASSERT_EQ(::pread(fd, &byte, 1, victim), 1);
  byte ^= 0x10;
  ASSERT_EQ(::pwrite(fd, &byte, 1, victim), 1);
  ::close(fd);
  LogHarness h(small_options(dir));
  ASSERT_NE(h.log(), nullptr) << h.open_status().to_string();
  EXPECT_EQ(h.log()->recovery_report().corrupt_regions, 1u);
  // One bit flip costs one batch, not the rest of its flush.
  EXPECT_GE(h.log()->recovery_report().batches, 1999u);
  // Every record returned is exactly what was written; some are missing.
  uint64_t total_returned = 0;
  for (uint64_t s = 1; s <= 2; s++) {
    Status error;
    auto bodies = read_all(h, s, 0, &error);
    std::set<std::string> written;
    for (uint64_t q = 0; q < next_seq[s]; q++) written.insert(record_body(s, q));
    for (const auto& b : bodies) EXPECT_TRUE(written.count(b)) << "returned a record never written";
    total_returned += bodies.size();
  }
  EXPECT_LT(total_returned, next_seq[1] + next_seq[2]);
  EXPECT_GE(total_returned + 20, next_seq[1] + next_seq[2]);
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
    log.append(1, payload.bytes(), 1, payload_checksum(payload.bytes()) ^ 1, TimestampMode::kClientPrefer, 1,
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
