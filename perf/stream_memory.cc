// What an idle stream costs: creates N streams on one shard's StreamStore,
// appends one small batch to each, and reports resident memory per stream
// (catalog entry, tail, index entry) and file descriptors in use.
//
//   build/release/perf/stream_memory [--streams 100000] [--dir D]

#include <dirent.h>
#include <fmt/format.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "core/log.h"
#include "core/shard_set.h"
#include "storage/stream_store.h"
#include "storage/uring_file_io.h"

namespace runnel {
namespace {

uint64_t resident_bytes() {
  std::ifstream statm("/proc/self/statm");
  uint64_t size = 0, resident = 0;
  statm >> size >> resident;
  return resident * static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
}

int open_fds() {
  int n = 0;
  for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator("/proc/self/fd")) n++;
  return n;
}

int run(int argc, char** argv) {
  uint64_t streams = 100'000;
  std::string dir = "/tmp/runnel-stream-memory";
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string k = argv[i];
    if (k == "--streams") streams = std::stoull(argv[i + 1]);
    if (k == "--dir") dir = argv[i + 1];
  }
  set_log_level(LogLevel::kWarn);
  std::filesystem::remove_all(dir);
  LogOptions o;
  o.dir = dir;
  o.segment_bytes = 64ull << 20;
  o.cache_bytes = 0;  // Count streams, not the cache.
  ShardSetOptions so;
  so.shards = 1;
  ShardSet shards(so);
  std::unique_ptr<UringFileIo> io;
  std::unique_ptr<StreamStore> store;
  uint64_t before = 0, after = 0;
  int fds_before = 0, fds_after = 0;
  struct Driver {
    StreamStore* store;
    uint64_t total;
    uint64_t created = 0;
    uint64_t appended = 0;
    std::function<void()> done;
    std::string payload;
    uint64_t checksum;
    void create_next() {
      // A window of creates in flight: each is a durable catalog record.
      while (created < total && created - appended < 256) create(created++);
    }
    void create(uint64_t i) {
      store->create_stream("bucket", fmt::format("stream-{:08}", i), {}, [this, i](Result<StreamEntry> r) {
        if (!r && r.status().code() == ErrorCode::kOverloaded) {
          return Reactor::current().post([this, i] { create(i); });  // Buffers full or a segment roll: retry.
        }
        RUNNEL_ASSERT(r.is_ok());
        append(i);
      });
    }
    void append(uint64_t i) {
      AppendRequest req;
      req.payload = payload;
      req.record_count = 1;
      req.payload_checksum = checksum;
      store->append("bucket", fmt::format("stream-{:08}", i), req, [this, i](Result<AppendAck> ack) {
        if (!ack && ack.status().code() == ErrorCode::kOverloaded) {
          return Reactor::current().post([this, i] { append(i); });
        }
        RUNNEL_ASSERT(ack.is_ok());
        if (++appended == total) return done();
        create_next();
      });
    }
  };
  Driver driver{nullptr, streams, 0, 0, nullptr, {}, 0};
  PayloadBuilder payload;
  payload.add(0, "x");
  driver.payload = payload.bytes();
  driver.checksum = payload_checksum(driver.payload);
  Status started = shards.start(
      [&](Reactor& r) {
        io = std::make_unique<UringFileIo>(&r);
        auto opened = StreamStore::open(r, *io, o);
        if (!opened) return opened.status();
        store = std::move(*opened);
        before = resident_bytes();
        fds_before = open_fds();
        driver.store = store.get();
        driver.done = [&] {
          after = resident_bytes();
          fds_after = open_fds();
          r.request_stop();
        };
        // Streams live in a bucket: create it, then the streams.
        driver.store->create_bucket("bucket", {}, [&driver](Result<BucketInfo> b) {
          RUNNEL_ASSERT(b.is_ok());
          driver.create_next();
        });
        return Status::ok();
      },
      [&](Reactor&) {
        store.reset();
        io.reset();
      });
  if (!started) return 1;
  shards.join();
  fmt::print("{} streams, each with one record: {:.0f} bytes of resident memory per stream; "
             "file descriptors {} -> {}\n",
             streams, static_cast<double>(after - before) / static_cast<double>(streams), fds_before, fds_after);
  std::filesystem::remove_all(dir);
  return 0;
}

}  // namespace
}  // namespace runnel

int main(int argc, char** argv) { return runnel::run(argc, argv); }
