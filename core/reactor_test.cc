#include "core/reactor.h"

#include <gtest/gtest.h>

#include <atomic>
#include <vector>

#include "core/log.h"
#include "core/shard_set.h"

namespace runnel {
namespace {

ShardSetOptions options_for(int shards, uint32_t queue_capacity = 1024) {
  ShardSetOptions o;
  o.shards = shards;
  o.ring_entries = 64;
  o.message_queue_capacity = queue_capacity;
  o.shutdown_timeout_ms = 10'000;
  o.pin_threads = true;
  return o;
}

// Stops every shard from inside a shard (what a signal handler's message does).
void stop_all(Reactor& r) {
  for (int s = 0; s < r.shard_count(); s++) {
    r.send(s, [] { Reactor::current().request_stop(); });
  }
}

TEST(Reactor, PostedTasksRunInPostOrder) {
  ShardSet shards(options_for(1));
  std::vector<int> order;
  ASSERT_TRUE(shards
                  .start([&](Reactor& r) {
                    for (int i = 0; i < 100; i++) r.post([&order, i] { order.push_back(i); });
                    r.post([&r] { r.request_stop(); });
                    return Status::ok();
                  })
                  .is_ok());
  shards.join();
  ASSERT_EQ(order.size(), 100u);
  for (int i = 0; i < 100; i++) EXPECT_EQ(order[static_cast<size_t>(i)], i);
}

TEST(Reactor, TaskPostedByTaskRunsInALaterStep) {
  ShardSet shards(options_for(1));
  std::vector<std::string> events;
  ASSERT_TRUE(shards
                  .start([&](Reactor& r) {
                    r.post([&] {
                      events.push_back("a");
                      r.post([&] {
                        events.push_back("c");
                        r.request_stop();
                      });
                    });
                    r.post([&] { events.push_back("b"); });
                    return Status::ok();
                  })
                  .is_ok());
  shards.join();
  EXPECT_EQ(events, (std::vector<std::string>{"a", "b", "c"}));
}

TEST(Reactor, TimersFireInDeadlineOrderAndCancelledOnesNever) {
  ShardSet shards(options_for(1));
  std::vector<int> fired;
  std::vector<std::unique_ptr<Timer>> timers;
  ASSERT_TRUE(shards
                  .start([&](Reactor& r) {
                    const uint64_t delays_ms[] = {30, 10, 50, 20, 40};
                    for (int i = 0; i < 5; i++) {
                      timers.push_back(std::make_unique<Timer>(r, [&fired, i] { fired.push_back(i); }));
                      timers.back()->arm_after_us(delays_ms[i] * 1000);
                    }
                    timers[3]->cancel();  // The 20 ms one.
                    timers.push_back(std::make_unique<Timer>(r, [&r] { r.request_stop(); }));
                    timers.back()->arm_after_us(80'000);
                    return Status::ok();
                  })
                  .is_ok());
  shards.join();
  EXPECT_EQ(fired, (std::vector<int>{1, 0, 4, 2}));
}

TEST(Reactor, TimerCanRearmItselfAndDestroyedTimerNeverFires) {
  ShardSet shards(options_for(1));
  int ticks = 0;
  bool doomed_fired = false;
  std::unique_ptr<Timer> ticker;
  ASSERT_TRUE(shards
                  .start([&](Reactor& r) {
                    ticker = std::make_unique<Timer>(r, [&] {
                      if (++ticks < 5) {
                        ticker->arm_after_us(1000);
                      } else {
                        r.request_stop();
                      }
                    });
                    ticker->arm_after_us(1000);
                    auto doomed = std::make_unique<Timer>(r, [&] { doomed_fired = true; });
                    doomed->arm_after_us(500);
                    doomed.reset();
                    return Status::ok();
                  })
                  .is_ok());
  shards.join();
  EXPECT_EQ(ticks, 5);
  EXPECT_FALSE(doomed_fired);
}

TEST(Reactor, IoCompletionReceivesItsResult) {
  struct Nop final : IoCompletion {
    int result = 1;
    Reactor* reactor = nullptr;
    void on_complete(int res, uint32_t) override {
      result = res;
      reactor->request_stop();
    }
  } nop;
  ShardSet shards(options_for(1));
  ASSERT_TRUE(shards
                  .start([&](Reactor& r) {
                    nop.reactor = &r;
                    io_uring_sqe* sqe = r.get_sqe();
                    io_uring_prep_nop(sqe);
                    Reactor::set_completion(sqe, &nop);
                    return Status::ok();
                  })
                  .is_ok());
  shards.join();
  EXPECT_EQ(nop.result, 0);
}

// Every shard sends kMessages numbered messages to every other shard at once,
// all shards busy together. Each receiver checks per-sender FIFO order; a
// poller on each shard notes when it has seen everything, and the last one
// stops all shards. With tiny queues most messages take the backlog path.
constexpr int kShards = 4;
struct PerShard {
  std::vector<uint64_t> next_from = std::vector<uint64_t>(kShards, 0);
  uint64_t out_of_order = 0;
  uint64_t max_backlog = 0;
};

template <uint64_t kMessages>
void run_contention(uint32_t queue_capacity, bool expect_backlog) {
  std::vector<PerShard> state(kShards);
  std::atomic<int> done_shards{0};
  ShardSet shards(options_for(kShards, queue_capacity));
  ASSERT_TRUE(shards
                  .start([&](Reactor& r) {
                    const int me = r.shard();
                    r.post([&, me] {
                      for (uint64_t i = 0; i < kMessages; i++) {
                        for (int to = 0; to < kShards; to++) {
                          if (to == me) continue;
                          r.send(to, [&, me, to, i] {  // Runs on shard `to`.
                            PerShard& s = state[static_cast<size_t>(to)];
                            if (s.next_from[static_cast<size_t>(me)] != i) s.out_of_order++;
                            s.next_from[static_cast<size_t>(me)] = i + 1;
                          });
                        }
                        state[static_cast<size_t>(me)].max_backlog =
                            std::max<uint64_t>(state[static_cast<size_t>(me)].max_backlog, r.backlog_size());
                      }
                    });
                    return Status::ok();
                  })
                  .is_ok());
  // Wait (bounded by the test timeout) until every shard has seen everything,
  // checking from each shard itself so no state is read across threads.
  for (int s = 0; s < kShards; s++) {
    Reactor& r = shards.reactor(s);
    struct Poller {
      Reactor& r;
      std::vector<PerShard>& state;
      std::atomic<int>& done;
      std::unique_ptr<Timer> timer;
    };
    auto* poller = new Poller{r, state, done_shards, nullptr};
    r.post_external([poller, s] {
      poller->timer = std::make_unique<Timer>(poller->r, [poller, s] {
        const PerShard& mine = poller->state[static_cast<size_t>(s)];
        bool complete = true;
        for (int from = 0; from < kShards; from++) {
          if (from != s && mine.next_from[static_cast<size_t>(from)] != kMessages) complete = false;
        }
        if (complete) {
          if (poller->done.fetch_add(1) + 1 == kShards) stop_all(poller->r);
          delete poller;
          return;
        }
        poller->timer->arm_after_us(1000);
      });
      poller->timer->arm_after_us(1000);
    });
  }
  shards.join();
  uint64_t total_backlog = 0;
  for (int s = 0; s < kShards; s++) {
    EXPECT_EQ(state[static_cast<size_t>(s)].out_of_order, 0u) << "shard " << s;
    for (int from = 0; from < kShards; from++) {
      if (from != s) {
        EXPECT_EQ(state[static_cast<size_t>(s)].next_from[static_cast<size_t>(from)], kMessages);
      }
    }
    total_backlog += state[static_cast<size_t>(s)].max_backlog;
  }
  if (expect_backlog) {
    EXPECT_GT(total_backlog, 0u) << "tiny queues should have overflowed into the backlog";
  }
}

TEST(Reactor, CrossShardMessagesArriveOnceInOrderUnderContention) { run_contention<100'000>(4096, false); }

TEST(Reactor, CrossShardMessagesSurviveFullQueuesThroughTheBacklog) { run_contention<20'000>(16, true); }

TEST(Reactor, SleepingShardIsWokenByAMessage) {
  ShardSet shards(options_for(2));
  std::atomic<bool> received{false};
  std::unique_ptr<Timer> later;
  ASSERT_TRUE(shards
                  .start([&](Reactor& r) {
                    if (r.shard() != 0) return Status::ok();
                    // Give shard 1 time to fall asleep, then message it.
                    later = std::make_unique<Timer>(r, [&] {
                      r.send(1, [&] { received = true; });
                      r.send(1, [] { stop_all(Reactor::current()); });
                    });
                    later->arm_after_us(50'000);
                    return Status::ok();
                  })
                  .is_ok());
  shards.join();
  EXPECT_TRUE(received.load());
}

TEST(Reactor, StopRunsHooksAndWaitsForHoldsToBeReleased) {
  ShardSet shards(options_for(2));
  std::atomic<int> hooks_run{0};
  std::atomic<int> released{0};
  std::vector<std::unique_ptr<Timer>> timers(2);
  ASSERT_TRUE(shards
                  .start([&](Reactor& r) {
                    r.hold();  // Work in flight that finishes 30 ms after the stop begins.
                    timers[static_cast<size_t>(r.shard())] = std::make_unique<Timer>(r, [&] {
                      released++;
                      r.release();
                    });
                    r.on_stop([&] {
                      hooks_run++;
                      timers[static_cast<size_t>(r.shard())]->arm_after_us(30'000);
                    });
                    return Status::ok();
                  })
                  .is_ok());
  shards.request_stop();
  shards.join();
  EXPECT_EQ(hooks_run.load(), 2);
  EXPECT_EQ(released.load(), 2);
}

// A hold that is never released: the stop hooks run, the loop gives up when
// the shutdown timeout passes (saying so, with what it left behind), the
// shard is joined, and the work that was to release the hold is abandoned.
TEST(Reactor, StopGivesUpAfterTheShutdownTimeout) {
  ShardSetOptions o = options_for(1);
  o.shutdown_timeout_ms = 50;
  ShardSet shards(o);
  std::atomic<int> hooks_run{0};
  std::atomic<bool> released{false};
  std::atomic<bool> fini_ran{false};
  std::unique_ptr<Timer> release_later;
  ::testing::internal::CaptureStderr();
  const Status started = shards.start(
      [&](Reactor& r) {
        r.hold();  // Released only by a timer far past the shutdown timeout.
        release_later = std::make_unique<Timer>(r, [&] {
          released = true;
          r.release();
        });
        r.on_stop([&] {
          hooks_run++;
          release_later->arm_after_us(3'600'000'000);  // An hour.
        });
        return Status::ok();
      },
      [&](Reactor&) {
        fini_ran = true;
        EXPECT_TRUE(release_later->armed()) << "the loop left before the hold's work was due";
        release_later.reset();  // Armed: cancel it on the shard thread, before the reactor goes.
      });
  if (!started.is_ok()) (void)::testing::internal::GetCapturedStderr();
  ASSERT_TRUE(started.is_ok()) << started.to_string();
  shards.request_stop();
  shards.join();
  const std::string log = ::testing::internal::GetCapturedStderr();
  EXPECT_EQ(hooks_run.load(), 1);
  EXPECT_TRUE(fini_ran.load()) << "the shard thread did not finish";
  EXPECT_FALSE(released.load()) << "the hold was released: the test did not exercise the timeout";
  EXPECT_NE(log.find("shutdown timeout after 50 ms with 1 holds"), std::string::npos) << log;
  EXPECT_NE(log.find("leaving anyway"), std::string::npos) << log;
}

TEST(Reactor, ExternalTasksRunOnTheShardThread) {
  ShardSet shards(options_for(2));
  ASSERT_TRUE(shards.start([](Reactor&) { return Status::ok(); }).is_ok());
  std::atomic<int> seen_shard{-1};
  shards.reactor(1).post_external([&] {
    seen_shard = this_shard_id();
    stop_all(shards.reactor(1));
  });
  shards.join();
  EXPECT_EQ(seen_shard.load(), 1);
}

TEST(Reactor, FailedInitStopsAndJoinsEveryShard) {
  ShardSet shards(options_for(2));
  Status s = shards.start([](Reactor& r) {
    if (r.shard() == 1) return Status(ErrorCode::kInvalidArgument, "bad listener");
    return Status::ok();
  });
  EXPECT_EQ(s.code(), ErrorCode::kInvalidArgument);
}

TEST(Reactor, MetricsCountLoopWork) {
  ShardSet shards(options_for(1));
  MetricsSnapshot snapshot;
  ASSERT_TRUE(shards
                  .start([&](Reactor& r) {
                    for (int i = 0; i < 10; i++) r.post([] {});
                    r.post([&] {
                      snapshot = r.metrics().snapshot();
                      r.request_stop();
                    });
                    return Status::ok();
                  })
                  .is_ok());
  shards.join();
  double tasks = -1;
  for (const auto& family : snapshot.families) {
    if (family.name == "runnel_reactor_tasks_total") tasks = family.samples.at(0).value;
  }
  EXPECT_GE(tasks, 10);
}

}  // namespace
}  // namespace runnel
