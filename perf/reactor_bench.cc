// Reactor component benchmarks: how fast a shard runs posted tasks, how many
// messages per second cross between shards, and the round-trip time of a
// message to a shard that is asleep (the MSG_RING wake-up path).
//
//   build/release/perf/reactor_bench --benchmark_repetitions=5 --benchmark_report_aggregates_only=true

#include <benchmark/benchmark.h>

#include <atomic>

#include "core/shard_set.h"

namespace runnel {
namespace {

ShardSetOptions bench_options(int shards) {
  ShardSetOptions o;
  o.shards = shards;
  o.ring_entries = 256;
  o.message_queue_capacity = 4096;
  return o;
}

// Tasks posted and run on one shard, in chains of `batch`.
void BM_Reactor_PostedTasks(benchmark::State& state) {
  const int64_t kTasks = 2'000'000;
  for (auto _ : state) {
    ShardSet shards(bench_options(1));
    int64_t ran = 0;
    (void)shards.start([&](Reactor& r) {
      struct Poster {
        static void step(Reactor& r, int64_t* ran, int64_t total) {
          for (int i = 0; i < 64 && *ran < total; i++) {
            r.post([ran] { (*ran)++; });
          }
          if (*ran + 64 < total) {
            r.post([&r, ran, total] { step(r, ran, total); });
          } else {
            r.post([&r] { r.request_stop(); });
          }
        }
      };
      Poster::step(r, &ran, kTasks);
      return Status::ok();
    });
    shards.join();
    benchmark::DoNotOptimize(ran);
  }
  state.SetItemsProcessed(state.iterations() * kTasks);
}
BENCHMARK(BM_Reactor_PostedTasks)->Unit(benchmark::kMillisecond)->UseRealTime();

// Messages from shard 0 to shard 1, sent as fast as the queue takes them.
void BM_Reactor_CrossShardMessages(benchmark::State& state) {
  const int64_t kMessages = 2'000'000;
  for (auto _ : state) {
    ShardSet shards(bench_options(2));
    std::atomic<int64_t> received{0};
    int64_t sent = 0;
    (void)shards.start([&](Reactor& r) {
      if (r.shard() != 0) return Status::ok();
      struct Sender {
        static void step(Reactor& r, int64_t* sent, std::atomic<int64_t>* received, int64_t total) {
          // Keep the backlog short so we measure the queue, not the parking lot.
          for (int i = 0; i < 1024 && *sent < total && r.backlog_size() < 4096; i++) {
            (*sent)++;
            r.send(1, [received, total] {
              if (received->fetch_add(1, std::memory_order_relaxed) + 1 == total) {
                Reactor::current().send(0, [] { Reactor::current().request_stop(); });
                Reactor::current().request_stop();
              }
            });
          }
          if (*sent < total) r.post([&r, sent, received, total] { step(r, sent, received, total); });
        }
      };
      Sender::step(r, &sent, &received, kMessages);
      return Status::ok();
    });
    shards.join();
    benchmark::DoNotOptimize(received.load());
  }
  state.SetItemsProcessed(state.iterations() * kMessages);
}
BENCHMARK(BM_Reactor_CrossShardMessages)->Unit(benchmark::kMillisecond)->UseRealTime();

// Ping-pong between two shards: each message finds the other shard asleep,
// so every hop is a MSG_RING wake-up. Reported time is per round trip.
void BM_Reactor_PingPongRoundTrip(benchmark::State& state) {
  const int64_t kRoundTrips = 20'000;
  for (auto _ : state) {
    ShardSet shards(bench_options(2));
    (void)shards.start([&](Reactor& r) {
      if (r.shard() != 0) return Status::ok();
      struct Ping {
        static void send(Reactor& r, int64_t left) {
          if (left == 0) {
            r.send(1, [] { Reactor::current().request_stop(); });
            r.request_stop();
            return;
          }
          r.send(1, [left] { Reactor::current().send(0, [left] { Ping::send(Reactor::current(), left - 1); }); });
        }
      };
      Ping::send(r, kRoundTrips);
      return Status::ok();
    });
    shards.join();
  }
  state.SetItemsProcessed(state.iterations() * kRoundTrips);
}
BENCHMARK(BM_Reactor_PingPongRoundTrip)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace
}  // namespace runnel

BENCHMARK_MAIN();
