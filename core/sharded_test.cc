#include "core/sharded.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "core/shard_set.h"

namespace runnel {
namespace {

struct Counter {
  int shard = -1;
  int calls = 0;
};

TEST(Sharded, EachShardReachesOnlyItsOwnAndInvokeOnRunsOnTheTarget) {
  constexpr int kShards = 3;
  ShardSetOptions o;
  o.shards = kShards;
  o.ring_entries = 64;
  o.message_queue_capacity = 64;
  ShardSet shards(o);
  Sharded<Counter> counters(kShards);
  Counter owned[kShards];
  std::atomic<int> installed{0};
  std::atomic<int> ran_on_owner{0};
  std::atomic<int> done{0};
  ASSERT_TRUE(shards
                  .start([&](Reactor& r) {
                    owned[r.shard()].shard = r.shard();
                    counters.install(&owned[r.shard()]);
                    installed++;
                    return Status::ok();
                  },
                         [&](Reactor&) { counters.uninstall(); })
                  .is_ok());
  while (installed.load() != kShards) std::this_thread::yield();
  // From shard 0, ask every shard to count on its own Counter.
  shards.reactor(0).post_external([&] {
    EXPECT_EQ(counters.local().shard, 0);
    for (int s = 0; s < kShards; s++) {
      counters.invoke_on(s, [&, s](Counter& c) {
        if (c.shard == s && Reactor::current().shard() == s) ran_on_owner++;
        c.calls++;
        done++;
      });
    }
  });
  while (done.load() != kShards) std::this_thread::yield();  // Bounded by the test timeout.
  shards.request_stop();
  shards.join();
  EXPECT_EQ(ran_on_owner.load(), kShards);
  for (const Counter& c : owned) EXPECT_EQ(c.calls, 1);
  EXPECT_EQ(counters.shard_count(), static_cast<size_t>(kShards));
}

}  // namespace
}  // namespace runnel
