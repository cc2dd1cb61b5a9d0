// Engine-level benchmark: durable appends straight into one shard's ShardLog
// (no network), as fast as they are acknowledged, with a bounded number of
// batches in flight. Prints one line per run:
//   records/s, MB/s (payload), flushes/s, batches per flush, ack latency p50/p99
//
//   log_bench --dir D --record-bytes 100 --batch-records 100 --streams 1 --seconds 5
//             [--inflight 64] [--fdatasync] [--flush-bytes N] [--flushes N] [--buffers N]
//             [--rate BATCHES_PER_S] [--read] [--read-hot] [--recover] [--keep] [--compact]
//
// --rate offers batches at a fixed rate (latency is measured from each
// batch's scheduled send time, so a stall is not hidden: no coordinated
// omission). --read then reads every stream back from disk and reports read
// throughput. --recover instead times recovery of whatever log is in D.
// --compact then trims every stream but stream 1 to its tail and times
// compacting the log: stream 1's records are copied forward and the
// segments freed (with --streams 10, stream 1 is a tenth of each segment).

#include <fmt/format.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "core/log.h"
#include "core/shard_set.h"
#include "storage/shard_log.h"
#include "storage/uring_file_io.h"

namespace runnel {
namespace {

struct Args {
  std::string dir = "/tmp/runnel-log-bench";
  uint32_t record_bytes = 100;
  uint32_t batch_records = 100;
  uint32_t streams = 1;
  double seconds = 5;
  uint32_t inflight = 64;
  bool fdatasync = false;
  uint32_t flush_bytes = 4u << 20;
  uint64_t segment_bytes = 256ull << 20;
  bool recover = false;
  bool keep = false;
  bool read = false;
  bool read_hot = false;
  uint32_t flushes = 4;
  uint32_t buffers = 8;
  double rate = 0;  // Batches per second; 0 = as fast as acks allow.
  uint64_t stop_after_bytes = 0;  // Stop once this much payload is acknowledged (0 = by time).
  bool compact = false;
};

// Reads one stream from the start to its tail, one read in flight.
struct Reader {
  ShardLog* log;
  uint64_t stream;
  uint64_t next = 0;
  uint64_t* records;
  uint64_t* bytes;
  int* active;
  void go() {
    log->read(stream, next, 10'000, 4u << 20, [this](Result<ReadResult> r) {
      if (!r || r->batches.empty()) {
        if (--*active == 0) Reactor::current().request_stop();
        return;
      }
      for (const StoredBatch& b : r->batches) {
        *records += b.header.record_count;
        *bytes += b.payload.size();
        next = b.header.base_seq + b.header.record_count;
      }
      go();
    });
  }
};

struct Bench {
  ShardLog* log = nullptr;
  Reactor* reactor = nullptr;
  Args args;
  std::string payload;
  uint64_t checksum = 0;
  uint64_t deadline_us = 0;
  uint64_t started_us = 0;
  uint64_t acked_batches = 0;
  uint64_t in_flight = 0;
  uint64_t next_stream = 0;
  uint64_t errors = 0;
  std::vector<uint32_t> latencies_us;
  // --read-hot: read everything back right after writing, in the same
  // process, while the recent-data cache still holds what it can.
  std::vector<std::unique_ptr<Reader>> readers;
  uint64_t read_records = 0, read_bytes = 0, read_started_us = 0;
  int read_active = 0;
  bool done_writing = false;

  // --compact: everything but stream 1 is trimmed; compact until done.
  std::unique_ptr<Timer> compactor;
  uint64_t compact_started_us = 0, compact_us = 0, segments_before = 0, segments_after = 0;
  bool filler_in_flight = false;

  void compact_step() {
    if (log->compacting() || filler_in_flight) return compactor->arm_after_us(200);
    log->reclaim();
    const ShardLog::CompactStart start = log->compact();
    if (start == ShardLog::CompactStart::kStarted) return compactor->arm_after_us(200);
    if (start == ShardLog::CompactStart::kWaitingForSpace) {
      // The copies need room in the active segment: write (trimmed) filler to roll it.
      filler_in_flight = true;
      const uint64_t filler_stream = args.streams > 1 ? 2 : 1'000'000;
      log->append(LogAppend{.stream_id = filler_stream,
                            .payload = payload,
                            .record_count = args.batch_records,
                            .payload_checksum = checksum,
                            .timestamping = Timestamping::kArrival,
                            .arrival_ms = Reactor::clock_realtime_ms()},
                  [this, filler_stream](Result<AppendAck> ack) {
                    filler_in_flight = false;
                    if (ack) log->set_floor(filler_stream, ack->end_seq);
                  });
      return compactor->arm_after_us(200);
    }
    compact_us = Reactor::clock_us() - compact_started_us;
    segments_after = log->segment_count();
    reactor->request_stop();
  }

  void written() {
    if (done_writing) return;
    done_writing = true;
    if (args.compact) {
      for (uint32_t s = 2; s <= args.streams; s++) log->set_floor(s, log->tail(s).next_seq);
      segments_before = log->segment_count();
      compact_started_us = Reactor::clock_us();
      compactor = std::make_unique<Timer>(*reactor, [this] { compact_step(); });
      return compact_step();
    }
    if (!args.read_hot) return reactor->request_stop();
    read_active = static_cast<int>(args.streams);
    read_started_us = Reactor::clock_us();
    for (uint32_t s = 1; s <= args.streams; s++) {
      readers.push_back(std::make_unique<Reader>(Reader{log, s, 0, &read_records, &read_bytes, &read_active}));
    }
    for (auto& r : readers) r->go();
  }

  uint64_t scheduled = 0;  // Batches sent under --rate.
  std::unique_ptr<Timer> pacer;

  // Fixed offered load: send every batch whose scheduled time has come.
  void pace() {
    const uint64_t now = Reactor::clock_us();
    if (now >= deadline_us) return;
    const double interval_us = 1e6 / args.rate;
    while (true) {
      const uint64_t due = started_us + static_cast<uint64_t>(static_cast<double>(scheduled) * interval_us);
      if (due > now) {
        pacer->arm_at_us(due);
        return;
      }
      send(due);
      scheduled++;
    }
  }

  // One benchmark batch for `stream`, sent at `sent` (µs).
  LogAppend batch_for(uint64_t stream, uint64_t sent) const {
    return LogAppend{.stream_id = stream,
                     .payload = payload,
                     .record_count = args.batch_records,
                     .payload_checksum = checksum,
                     .timestamping = Timestamping::kArrival,
                     .arrival_ms = sent / 1000};
  }

  void send(uint64_t sent) {
    uint64_t stream = 1 + (next_stream++ % args.streams);
    in_flight++;
    log->append(batch_for(stream, sent),
                [this, sent](Result<AppendAck> ack) {
                  in_flight--;
                  if (!ack) {
                    errors++;
                  } else {
                    acked_batches++;
                    latencies_us.push_back(static_cast<uint32_t>(Reactor::clock_us() - sent));
                  }
                  if (Reactor::clock_us() >= deadline_us && in_flight == 0) written();
                });
  }

  void fill() {
    while (in_flight < args.inflight && Reactor::clock_us() < deadline_us) {
      uint64_t stream = 1 + (next_stream++ % args.streams);
      uint64_t sent = Reactor::clock_us();
      const uint64_t errors_before = errors;
      in_flight++;
      log->append(batch_for(stream, sent),
                  [this, sent](Result<AppendAck> ack) {
                    in_flight--;
                    if (!ack) {
                      if (errors++ == 0 && ack.status().code() != ErrorCode::kOverloaded) {
                        fmt::print(stderr, "first error: {}\n", ack.status().to_string());
                      }
                    } else {
                      acked_batches++;
                      latencies_us.push_back(static_cast<uint32_t>(Reactor::clock_us() - sent));
                      if (args.stop_after_bytes != 0 && acked_batches * payload.size() >= args.stop_after_bytes) {
                        deadline_us = 0;  // Enough written: wind down.
                      }
                    }
                    if (Reactor::clock_us() < deadline_us) {
                      if (ack) reactor->post([this] { fill(); });
                    } else if (in_flight == 0) {
                      written();
                    }
                  });
      // Refused up front (kOverloaded): back off until an ack frees room.
      if (errors != errors_before) break;
    }
  }
};

// Reads every stream of the log in a.dir back from disk, as fast as possible,
// with one read in flight per stream; reports records/s and MB/s.
int read_back(const Args& a, const LogOptions& o) {
  ShardSetOptions so;
  so.shards = 1;
  so.ring_entries = 1024;
  ShardSet shards(so);
  std::unique_ptr<UringFileIo> io;
  std::unique_ptr<ShardLog> log;
  std::vector<std::unique_ptr<Reader>> readers;
  uint64_t records = 0, bytes = 0;
  int active = static_cast<int>(a.streams);
  uint64_t t0 = 0;
  Status started = shards.start(
      [&](Reactor& r) {
        io = std::make_unique<UringFileIo>(&r);
        auto opened = ShardLog::open(r, *io, o);
        if (!opened) return opened.status();
        log = std::move(*opened);
        t0 = Reactor::clock_us();
        for (uint32_t s = 1; s <= a.streams; s++) {
          readers.push_back(std::make_unique<Reader>(Reader{log.get(), s, 0, &records, &bytes, &active}));
        }
        for (auto& reader : readers) reader->go();
        return Status::ok();
      },
      [&](Reactor&) {
        log.reset();
        io.reset();
      });
  if (!started) return 1;
  shards.join();
  double s = static_cast<double>(Reactor::clock_us() - t0) / 1e6;
  fmt::print("read back from disk: {:.0f} records/s, {:.1f} MB/s payload ({} records in {:.2f} s)\n",
             static_cast<double>(records) / s, static_cast<double>(bytes) / 1e6 / s, records, s);
  return 0;
}

int run(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; i++) {
    std::string k = argv[i];
    auto next = [&] { return std::string(i + 1 < argc ? argv[++i] : ""); };
    if (k == "--dir") a.dir = next();
    else if (k == "--record-bytes") a.record_bytes = static_cast<uint32_t>(std::stoul(next()));
    else if (k == "--batch-records") a.batch_records = static_cast<uint32_t>(std::stoul(next()));
    else if (k == "--streams") a.streams = static_cast<uint32_t>(std::stoul(next()));
    else if (k == "--seconds") a.seconds = std::stod(next());
    else if (k == "--inflight") a.inflight = static_cast<uint32_t>(std::stoul(next()));
    else if (k == "--flush-bytes") a.flush_bytes = static_cast<uint32_t>(std::stoul(next()));
    else if (k == "--segment-bytes") a.segment_bytes = std::stoull(next());
    else if (k == "--fdatasync") a.fdatasync = true;
    else if (k == "--recover") a.recover = true;
    else if (k == "--keep") a.keep = true;
    else if (k == "--read") a.read = true;
    else if (k == "--read-hot") a.read_hot = true;
    else if (k == "--flushes") a.flushes = static_cast<uint32_t>(std::stoul(next()));
    else if (k == "--buffers") a.buffers = static_cast<uint32_t>(std::stoul(next()));
    else if (k == "--rate") a.rate = std::stod(next());
    else if (k == "--stop-after-bytes") a.stop_after_bytes = std::stoull(next());
    else if (k == "--compact") a.compact = true;
    else {
      fmt::print(stderr, "unknown argument {}\n", k);
      return 2;
    }
  }
  set_log_level(LogLevel::kWarn);
  if (!a.recover && !a.keep) std::filesystem::remove_all(a.dir);

  LogOptions o;
  o.dir = a.dir;
  o.segment_bytes = a.segment_bytes;
  o.flush_bytes_max = a.flush_bytes;
  o.dsync = !a.fdatasync;
  o.flushes_in_flight_max = a.flushes;
  o.write_buffers = a.buffers;

  ShardSetOptions so;
  so.shards = 1;
  so.ring_entries = 1024;
  ShardSet shards(so);
  std::unique_ptr<UringFileIo> io;
  std::unique_ptr<ShardLog> log;
  ShardLog::CompactionStats log_stats;
  Bench bench;
  bench.args = a;
  Status started = shards.start(
      [&](Reactor& r) {
        io = std::make_unique<UringFileIo>(&r);
        uint64_t t0 = Reactor::clock_us();
        auto opened = ShardLog::open(r, *io, o);
        if (!opened) return opened.status();
        log = std::move(*opened);
        if (a.recover) {
          const auto& rep = log->recovery_report();
          double s = static_cast<double>(Reactor::clock_us() - t0) / 1e6;
          fmt::print("recovery: {} batches, {:.1f} MiB scanned in {:.3f} s = {:.0f} MiB/s\n", rep.batches,
                     static_cast<double>(rep.bytes_scanned) / (1 << 20), s,
                     static_cast<double>(rep.bytes_scanned) / (1 << 20) / s);
          r.request_stop();
          return Status::ok();
        }
        PayloadBuilder builder;
        std::string body(a.record_bytes, 'x');
        for (uint32_t i = 0; i < a.batch_records; i++) builder.add(0, body);
        bench.payload = builder.bytes();
        bench.checksum = payload_checksum(bench.payload);
        bench.log = log.get();
        bench.reactor = &r;
        bench.latencies_us.reserve(4'000'000);
        bench.started_us = Reactor::clock_us();
        bench.deadline_us = bench.started_us + static_cast<uint64_t>(a.seconds * 1e6);
        if (a.rate > 0) {
          bench.pacer = std::make_unique<Timer>(r, [&bench] { bench.pace(); });
          bench.pace();
          // The loop ends when the deadline passes and the last ack is in.
          auto* stopper = new Timer(r, [&bench] {
            if (bench.in_flight == 0) bench.written();
          });
          stopper->arm_at_us(bench.deadline_us + 1);
        } else {
          bench.fill();
        }
        return Status::ok();
      },
      [&](Reactor&) {
        bench.pacer.reset();
        bench.compactor.reset();
        if (log) log_stats = log->compaction_stats();
        log.reset();
        io.reset();
      });
  if (!started) {
    fmt::print(stderr, "log_bench: {}\n", started.to_string());
    return 1;
  }
  shards.join();
  if (a.recover) return 0;
  double elapsed = static_cast<double>(Reactor::clock_us() - bench.started_us) / 1e6;
  uint64_t records = bench.acked_batches * a.batch_records;
  double mb = static_cast<double>(records) * a.record_bytes / 1e6;
  auto& lat = bench.latencies_us;
  std::sort(lat.begin(), lat.end());
  auto pct = [&](double p) { return lat.empty() ? 0u : lat[std::min(lat.size() - 1, static_cast<size_t>(p * lat.size()))]; };
  fmt::print("record_bytes={} batch_records={} streams={} {} sync={}: {:.0f} records/s, {:.1f} MB/s payload, "
             "{:.0f} batches/s, ack p50={}us p90={}us p99={}us p99.9={}us max={}us, errors={}\n",
             a.record_bytes, a.batch_records, a.streams,
             a.rate > 0 ? fmt::format("rate={:.0f}/s", a.rate) : fmt::format("inflight={}", a.inflight),
             a.fdatasync ? "fdatasync" : "dsync", static_cast<double>(records) / elapsed, mb / elapsed,
             static_cast<double>(bench.acked_batches) / elapsed, pct(0.5), pct(0.9), pct(0.99), pct(0.999),
             lat.empty() ? 0 : lat.back(), bench.errors);
  if (a.read_hot) {
    double rs = static_cast<double>(Reactor::clock_us() - bench.read_started_us) / 1e6;
    fmt::print("read back right after writing (cache {} MiB): {:.0f} records/s, {:.1f} MB/s payload\n",
               o.cache_bytes >> 20, static_cast<double>(bench.read_records) / rs,
               static_cast<double>(bench.read_bytes) / 1e6 / rs);
  }
  if (a.compact) {
    const auto& c = log_stats;
    const double cs = static_cast<double>(bench.compact_us) / 1e6;
    fmt::print("compaction: {} segments -> {} in {:.3f} s; {} compactions copied {:.1f} MiB ({:.0f} MiB/s), "
               "freeing {:.0f} MiB of segments per second\n",
               bench.segments_before, bench.segments_after, cs, c.completed,
               static_cast<double>(c.bytes_relocated) / (1 << 20),
               static_cast<double>(c.bytes_relocated) / (1 << 20) / cs,
               static_cast<double>((bench.segments_before - std::min(bench.segments_before, bench.segments_after)) *
                                   (a.segment_bytes >> 20)) / cs);
  }
  if (a.read) return read_back(a, o);
  return 0;
}

}  // namespace
}  // namespace runnel

int main(int argc, char** argv) { return runnel::run(argc, argv); }
