#pragma once
// Test helpers for ShardLog: a one-shard reactor running a log over a real
// or simulated disk, and deterministic record content to append and check.

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <functional>
#include <future>
#include <memory>
#include <string>
#include <vector>

#include "core/shard_set.h"
#include "storage/shard_log.h"
#include "storage/uring_file_io.h"

namespace runnel {

inline std::string temp_dir() {
  static int counter = 0;
  std::string path = "/tmp/runnel-log-test-" + std::to_string(::getpid()) + "-" + std::to_string(counter++);
  std::filesystem::remove_all(path);
  return path;
}

// The append of one encoded batch of `stream`, as the tests make them.
inline LogAppend log_append_of(uint64_t stream, const PayloadBuilder& payload, uint64_t arrival_ms = 5000,
                               Timestamping mode = Timestamping::kClientPrefer) {
  return LogAppend{.stream_id = stream,
                   .payload = payload.bytes(),
                   .record_count = payload.record_count(),
                   .payload_checksum = payload_checksum(payload.bytes()),
                   .timestamping = mode,
                   .arrival_ms = arrival_ms};
}

inline LogOptions small_options(const std::string& dir) {
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

// Runs a ShardLog (or a StreamStore: anything with a static
// open(Reactor*, FileIo&, const LogOptions&)) on a one-shard reactor; call()
// runs work on the shard and waits (bounded) for it to report completion.
template <typename T>
class ShardHarness {
 public:
  using IoFactory = std::function<std::unique_ptr<FileIo>(Reactor&)>;

  // `make_io` builds the shard's FileIo (default: the real one).
  explicit ShardHarness(const LogOptions& options, IoFactory make_io = nullptr) : shards_(shard_options()) {
    Status started = shards_.start(
        [this, options, make_io](Reactor& r) {
          io_ = make_io ? make_io(r) : std::make_unique<UringFileIo>(&r);
          auto log = T::open(r, *io_, options);
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
  ~ShardHarness() {
    shards_.request_stop();
    shards_.join();
  }

  T* log() { return log_.get(); }
  FileIo* io() { return io_.get(); }
  Reactor& reactor() { return shards_.reactor(0); }
  const Status& open_status() const { return open_status_; }

  // `work` gets the log and a `finish` to call (on the shard) when done.
  void call(std::function<void(T&, std::function<void()>)> work) {
    // `finish` may run inside `work` (an append refused up front) or later;
    // the caller is released only once both happened, so `work` never runs
    // on after the caller's frame is gone.
    struct State {
      std::promise<void> finished;
      bool returned = false;
      bool done = false;
    };
    auto state = std::make_shared<State>();
    auto future = state->finished.get_future();
    auto* work_ptr = &work;
    shards_.reactor(0).post_external([this, work_ptr, state] {
      (*work_ptr)(*log_, [state] {
        state->done = true;
        if (state->returned) state->finished.set_value();
      });
      state->returned = true;
      if (state->done) state->finished.set_value();
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
  std::unique_ptr<FileIo> io_;
  std::unique_ptr<T> log_;
  Status open_status_;
};

using LogHarness = ShardHarness<ShardLog>;

inline std::string record_body(uint64_t stream, uint64_t seq) {
  std::string body = "stream " + std::to_string(stream) + " record " + std::to_string(seq) + " ";
  body.append(static_cast<size_t>(seq % 200), static_cast<char>('a' + seq % 26));
  return body;
}

struct Appended {
  std::vector<AppendAck> acks;
  std::vector<Status> errors;
};

// Appends `batches` batches of `per_batch` records round-robin over streams 1..streams.
inline Appended append_many(LogHarness& h, int streams, int batches, int per_batch, uint64_t* next_seq_per_stream) {
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
      log.append(log_append_of(stream, payload),
                 [&out, remaining, finish_ptr](Result<AppendAck> ack) {
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

// The bodies of the records a read returned, from its first_record_index on.
inline std::vector<std::string> bodies_of(const ReadResult& r) {
  std::vector<std::string> bodies;
  for (size_t i = 0; i < r.batches.size(); i++) {
    const StoredBatch& b = r.batches[i];
    BatchLimits limits;
    limits.payload_bytes_max = 1u << 21;
    RecordIterator it(b.payload, b.header.record_count, limits);
    RecordView rec;
    uint32_t index = 0;
    while (it.next(&rec)) {
      if (i > 0 || index >= r.first_record_index) bodies.emplace_back(rec.body);
      index++;
    }
  }
  return bodies;
}

// Reads all of `stream` and returns the bodies in seq order.
inline std::vector<std::string> read_all(LogHarness& h, uint64_t stream, uint64_t from = 0, Status* error = nullptr,
                                         uint32_t max_records = 100, uint32_t max_bytes = 64u << 10) {
  struct ReadState {
    ShardLog* log;
    uint64_t stream;
    uint32_t max_records, max_bytes;
    std::vector<std::string> bodies;
    Status error;
    std::function<void()> finish;

    void next(uint64_t seq) {
      log->read(stream, seq, max_records, max_bytes, [this](Result<ReadResult> r) {
        if (!r) {
          error = r.status();
          return finish();
        }
        if (r->batches.empty()) return finish();
        for (std::string& body : bodies_of(*r)) bodies.push_back(std::move(body));
        const BatchHeader& last = r->batches.back().header;
        next(last.base_seq + last.record_count);
      });
    }
  };
  ReadState state{nullptr, stream, max_records, max_bytes, {}, Status(), nullptr};
  h.call([&](ShardLog& log, std::function<void()> finish) {
    state.log = &log;
    state.finish = std::move(finish);
    state.next(from);
  });
  if (error != nullptr) *error = state.error;
  return state.bodies;
}

inline void expect_stream_intact(LogHarness& h, uint64_t stream, uint64_t count) {
  auto bodies = read_all(h, stream);
  ASSERT_EQ(bodies.size(), count) << "stream " << stream;
  for (uint64_t seq = 0; seq < count; seq++) {
    ASSERT_EQ(bodies[seq], record_body(stream, seq)) << "stream " << stream << " seq " << seq;
  }
}

}  // namespace runnel
