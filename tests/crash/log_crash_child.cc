// The process the crash test kills. Two modes:
//
//   log_crash_child append DIR STREAMS
//     Recovers the log in DIR, then appends forever to streams 1..STREAMS,
//     each record's body a function of (stream, seq_num). After each
//     acknowledgement it writes "ack STREAM END_SEQ\n" to stdout with one
//     write(2): a line on stdout means the append was durable. It first
//     writes "ready" once recovered. Meanwhile a
//     bulk stream, trimmed close behind its tail, fills segments fast, and
//     every few ms old segments are reclaimed and compacted: the checked
//     streams' records keep being copied forward while the kills land.
//
//   log_crash_child verify DIR STREAMS
//     Recovers and reads every stream back in full, checking every record
//     is exactly the one written at its seq_num, in order. Prints
//     "tail STREAM N" per stream, then "ok" — or "bad ..." and exits 1.

#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "core/log.h"
#include "core/shard_set.h"
#include "storage/shard_log.h"
#include "storage/uring_file_io.h"
#include "tests/crash/crash_records.h"

namespace runnel {
namespace {

LogOptions crash_options(const std::string& dir) {
  LogOptions o;
  o.dir = dir;
  o.segment_bytes = 2u << 20;  // Small: a crash run rolls segments often.
  o.flush_bytes_max = 128u << 10;
  o.flushes_in_flight_max = 4;
  o.write_buffers = 8;
  o.read_chunk_bytes = 64u << 10;
  o.limits.payload_bytes_max = 100u << 10;
  o.compact_live_percent = 50;  // The checked streams keep everything: compact segments up to half live.
  return o;
}

void write_line(const std::string& line) {
  std::string with_newline = line + "\n";
  [[maybe_unused]] ssize_t n = ::write(STDOUT_FILENO, with_newline.data(), with_newline.size());
}

constexpr uint64_t kBulkStream = 1'000'000;  // Never verified: only there to make old segments mostly dead.
constexpr uint64_t kBulkKeep = 64;            // Records of it kept above its floor.

struct Appender {
  ShardLog* log;
  int streams;
  std::vector<uint64_t> next_seq;  // Per stream: seq the next record will get.
  uint64_t round = 0;
  std::unique_ptr<Timer> maintenance;

  void append_bulk() {
    PayloadBuilder payload;
    const std::string body(4096, 'b');
    for (int i = 0; i < 11; i++) payload.add(0, body);  // ~45 KiB: the checked streams are ~1/3 of the log.
    log->append(LogAppend{.stream_id = kBulkStream,
                          .payload = payload.bytes(),
                          .record_count = 11,
                          .payload_checksum = payload_checksum(payload.bytes()),
                          .timestamping = Timestamping::kArrival,
                          .arrival_ms = crash_timestamp(1, 0)},
                [this](Result<AppendAck> ack) {
                  if (ack) log->set_floor(kBulkStream, ack->end_seq > kBulkKeep ? ack->end_seq - kBulkKeep : 0);
                  Reactor::current().post([this] { append_bulk(); });
                });
  }

  void start_maintenance(Reactor& r) {
    maintenance = std::make_unique<Timer>(r, [this] {
      log->reclaim();
      log->compact();
      maintenance->arm_after_us(5'000);
    });
    maintenance->arm_after_us(5'000);
  }

  void append_one(uint64_t stream) {
    PayloadBuilder payload;
    const uint32_t count = 1 + static_cast<uint32_t>((round * 7 + stream) % 5);
    for (uint32_t i = 0; i < count; i++) {
      uint64_t seq = next_seq[stream] + i;
      payload.add(crash_timestamp(stream, seq), crash_body(stream, seq));
    }
    next_seq[stream] += count;
    log->append(LogAppend{.stream_id = stream,
                          .payload = payload.bytes(),
                          .record_count = count,
                          .payload_checksum = payload_checksum(payload.bytes()),
                          .timestamping = Timestamping::kClientPrefer,
                          .arrival_ms = crash_timestamp(stream, 0)},
                [this, stream, count](Result<AppendAck> ack) {
                  if (!ack && ack.status().code() == ErrorCode::kOverloaded) {
                    // Refused up front (e.g. the next segment is still being
                    // prepared): nothing was assigned; try the same seq_nums again.
                    next_seq[stream] -= count;
                    Reactor::current().post([this, stream] { append_one(stream); });
                    return;
                  }
                  if (!ack) {
                    write_line("error " + ack.status().to_string());
                    _exit(3);
                  }
                  write_line("ack " + std::to_string(stream) + " " + std::to_string(ack->end_seq));
                  append_one(stream);  // One batch in flight per stream, forever.
                });
    round++;
  }
};

struct Verifier {
  ShardLog* log;
  uint64_t stream;
  uint64_t expect = 0;
  bool* ok;
  std::function<void()> done;

  void next() {
    log->read(stream, expect, 500, 256 << 10, [this](Result<ReadResult> r) {
      if (!r) {
        write_line("bad read of stream " + std::to_string(stream) + ": " + r.status().to_string());
        *ok = false;
        return done();
      }
      if (r->batches.empty()) {
        if (expect != r->tail) {
          write_line("bad: stream " + std::to_string(stream) + " read ended at " + std::to_string(expect) +
                     " below its tail " + std::to_string(r->tail));
          *ok = false;
        }
        write_line("tail " + std::to_string(stream) + " " + std::to_string(r->tail));
        return done();
      }
      for (size_t i = 0; i < r->batches.size(); i++) {
        const StoredBatch& b = r->batches[i];
        RecordIterator it(b.payload, b.header.record_count, BatchLimits{});
        RecordView rec;
        uint64_t seq = b.header.base_seq;
        while (it.next(&rec)) {
          if (seq >= expect) {
            if (seq != expect || rec.body != crash_body(stream, seq)) {
              write_line("bad: stream " + std::to_string(stream) + " seq " + std::to_string(seq) + " expected " +
                         std::to_string(expect) + " body mismatch=" + std::to_string(rec.body != crash_body(stream, seq)));
              *ok = false;
              return done();
            }
            expect++;
          }
          seq++;
        }
      }
      next();
    });
  }
};

int run(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: %s append|verify DIR STREAMS\n", argv[0]);
    return 2;
  }
  const std::string mode = argv[1];
  const std::string dir = argv[2];
  const int streams = std::atoi(argv[3]);
  set_log_level(LogLevel::kWarn);

  ShardSetOptions options;
  options.shards = 1;
  options.ring_entries = 256;
  ShardSet shards(options);
  std::unique_ptr<UringFileIo> io;
  std::unique_ptr<ShardLog> log;
  std::unique_ptr<Appender> appender;
  std::vector<std::unique_ptr<Verifier>> verifiers;
  bool ok = true;
  int remaining = streams;
  Status started = shards.start(
      [&](Reactor& r) {
        io = std::make_unique<UringFileIo>(&r);
        auto opened = ShardLog::open(r, *io, crash_options(dir));
        if (!opened) return opened.status();
        log = std::move(*opened);
        if (mode == "append") {
          write_line("ready");
          appender = std::make_unique<Appender>(Appender{log.get(), streams, std::vector<uint64_t>(streams + 1), 0, nullptr});
          for (int s = 1; s <= streams; s++) appender->next_seq[s] = log->tail(s).next_seq;
          for (int s = 1; s <= streams; s++) appender->append_one(static_cast<uint64_t>(s));
          appender->append_bulk();
          appender->start_maintenance(r);
        } else {
          for (int s = 1; s <= streams; s++) {
            verifiers.push_back(std::make_unique<Verifier>(Verifier{log.get(), static_cast<uint64_t>(s), 0, &ok, [&] {
                                                                      if (--remaining == 0) r.request_stop();
                                                                    }}));
          }
          for (auto& v : verifiers) v->next();
        }
        return Status::ok();
      },
      [&](Reactor&) {
        log.reset();
        io.reset();
      });
  if (!started) {
    write_line("bad open: " + started.to_string());
    return 1;
  }
  shards.join();
  write_line(ok ? "ok" : "bad");
  return ok ? 0 : 1;
}

}  // namespace
}  // namespace runnel

int main(int argc, char** argv) { return runnel::run(argc, argv); }
