// Durable appends through librunnel (the asynchronous client on one libuv
// loop) against a running runneld: a window of appends in flight per stream,
// a connection per shard, each stream's appends sent to its owner. Prints
// records/s, MB/s of record bodies, ack latency percentiles and the client's
// own CPU use. Compare with wire_bench (the bare protocol, one connection)
// to see what the library costs.
//
//   client_bench --port P [--streams 4] [--record-bytes 1024] [--batch-records 100]
//                [--window 32] [--seconds 5] [--idempotent 1]

#include <fmt/format.h>
#include <sys/resource.h>
#include <unistd.h>
#include <uv.h>

#include <algorithm>
#include <chrono>
#include <string>
#include <vector>

#include "runnel/blocking_client.h"
#include "runnel/client.h"

namespace {

using namespace runnel::client;
using Clock = std::chrono::steady_clock;

struct Args {
  int port = 7420;
  int streams = 4;
  int record_bytes = 1024;
  int batch_records = 100;
  int window = 32;
  double seconds = 5;
  bool idempotent = true;
};

double cpu_seconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

int run(int argc, char** argv) {
  Args a;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i], v = argv[i + 1];
    if (k == "--port") a.port = std::stoi(v);
    else if (k == "--streams") a.streams = std::stoi(v);
    else if (k == "--record-bytes") a.record_bytes = std::stoi(v);
    else if (k == "--batch-records") a.batch_records = std::stoi(v);
    else if (k == "--window") a.window = std::stoi(v);
    else if (k == "--seconds") a.seconds = std::stod(v);
    else if (k == "--idempotent") a.idempotent = v != "0";
    else {
      fmt::print(stderr, "unknown argument {}\n", k);
      return 2;
    }
  }
  ClientOptions options;
  options.port = static_cast<uint16_t>(a.port);
  options.client_name = "client_bench";
  std::vector<std::string> streams;
  {
    BlockingClient setup(options);
    auto bucket = setup.create_bucket("bench");
    if (!bucket && bucket.status().code() != ErrorCode::kAlreadyExists) {
      fmt::print(stderr, "creating bucket 'bench' failed: {}\n", bucket.status().to_string());
      return 1;
    }
    for (int s = 0; s < a.streams; s++) {
      streams.push_back(fmt::format("client-{}-{}", getpid(), s));
      auto created = setup.create_stream("bench", streams.back());
      if (!created) {
        fmt::print(stderr, "creating a stream failed: {}\n", created.status().to_string());
        return 1;
      }
    }
  }

  std::vector<AppendRecord> batch(static_cast<size_t>(a.batch_records));
  for (auto& r : batch) r.body.assign(static_cast<size_t>(a.record_bytes), 'x');
  uv_loop_t loop;
  uv_loop_init(&loop);
  auto client = std::make_unique<Client>(&loop, options);
  std::vector<uint32_t> latencies_us;
  uint64_t acked_batches = 0, errors = 0;
  int in_flight = 0;
  const auto start = Clock::now();
  const auto end = start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(a.seconds));
  const double cpu_start = cpu_seconds();
  AppendOptions append_options;
  append_options.idempotent = a.idempotent;

  std::function<void(size_t)> send_one = [&](size_t s) {
    in_flight++;
    const auto sent = Clock::now();
    client->append("bench", streams[s], batch, append_options, [&, s, sent](Result<AppendAck> ack) {
      in_flight--;
      const auto now = Clock::now();
      if (ack.ok()) {
        acked_batches++;
        latencies_us.push_back(
            static_cast<uint32_t>(std::chrono::duration_cast<std::chrono::microseconds>(now - sent).count()));
      } else if (errors++ == 0) {
        fmt::print(stderr, "append failed: {}\n", ack.status().to_string());
      }
      if (now < end) {
        send_one(s);
      } else if (in_flight == 0) {
        client->close();
      }
    });
  };
  for (size_t s = 0; s < streams.size(); s++) {
    for (int w = 0; w < a.window; w++) send_one(s);
  }
  uv_run(&loop, UV_RUN_DEFAULT);
  const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
  const double cpu = cpu_seconds() - cpu_start;
  client.reset();
  uv_run(&loop, UV_RUN_DEFAULT);
  uv_loop_close(&loop);

  std::sort(latencies_us.begin(), latencies_us.end());
  auto pct = [&](double p) {
    if (latencies_us.empty()) return uint32_t{0};
    return latencies_us[std::min(latencies_us.size() - 1, static_cast<size_t>(p * static_cast<double>(latencies_us.size())))];
  };
  const double records = static_cast<double>(acked_batches) * a.batch_records;
  fmt::print(
      "record_bytes={} batch_records={} streams={} window={} idempotent={}: {:.0f} records/s, {:.1f} MB/s, "
      "ack p50={}us p99={}us p99.9={}us max={}us, client cpu {:.0f}%, errors={}\n",
      a.record_bytes, a.batch_records, a.streams, a.window, a.idempotent ? 1 : 0, records / elapsed,
      records * a.record_bytes / elapsed / 1e6, pct(0.5), pct(0.99), pct(0.999),
      latencies_us.empty() ? 0 : latencies_us.back(), 100 * cpu / elapsed, errors);
  return errors == 0 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) { return run(argc, argv); }
