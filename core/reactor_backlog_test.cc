// The cross-shard message backlog is bounded at the edge: once a shard has
// message_backlog_max messages parked (its target's queue full),
// admit_cross_shard() refuses new work with kOverloaded; nothing already
// sent is dropped, and admission resumes once the backlog drains.

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>

#include "core/reactor.h"
#include "core/shard_set.h"

namespace runnel {
namespace {

TEST(ReactorBacklog, AdmissionStopsAtTheBoundAndResumesOnceDrained) {
  ShardSetOptions o;
  o.shards = 2;
  o.ring_entries = 64;
  o.message_queue_capacity = 16;
  o.message_backlog_max = 40;
  o.shutdown_timeout_ms = 10'000;
  ShardSet shards(o);
  std::atomic<bool> release_target{false};
  std::atomic<int> delivered{0};
  std::atomic<int> sent_total{0};
  std::atomic<int> phase{0};  // 1: refused at the bound; 2: admitted again after draining.
  Status refused;
  ASSERT_TRUE(shards
                  .start([&](Reactor& r) {
                    if (r.shard() != 0) return Status::ok();
                    r.post([&] {
                      Reactor& me = Reactor::current();
                      // Shard 1 is kept busy, so its queue fills and messages park here.
                      me.send(1, [&] {
                        while (!release_target.load()) std::this_thread::yield();
                      });
                      int sent = 0;
                      while (me.admit_cross_shard().is_ok()) {
                        me.send(1, [&] { delivered++; });
                        sent++;
                        ASSERT_LT(sent, 1000) << "admission never stopped";
                      }
                      sent_total = sent;
                      refused = me.admit_cross_shard();
                      EXPECT_GE(me.backlog_size(), 40u);
                      phase = 1;
                      release_target = true;
                      // Poll until the backlog drained, then admission is back.
                      struct Poll {
                        static void again(Reactor& r, std::atomic<int>& phase_ref) {
                          if (r.backlog_size() == 0 && r.admit_cross_shard().is_ok()) {
                            phase_ref = 2;
                            return;
                          }
                          r.post([&r, &phase_ref] { again(r, phase_ref); });
                        }
                      };
                      Poll::again(me, phase);
                    });
                    return Status::ok();
                  })
                  .is_ok());
  while (phase.load() != 2) std::this_thread::yield();  // Bounded by the test timeout.
  EXPECT_EQ(refused.code(), ErrorCode::kOverloaded);
  EXPECT_NE(refused.message().find("reactor.message_backlog_max"), std::string::npos) << refused.message();
  // Parked messages all reach shard 1's queue; it runs them in its own time
  // (a stop does not wait for messages that hold nothing), so wait for them.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (delivered.load() != sent_total.load() && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::yield();
  }
  shards.request_stop();
  shards.join();
  EXPECT_GE(sent_total.load(), 40) << "the queue and then the bound's worth of messages went out";
  EXPECT_EQ(delivered.load(), sent_total.load()) << "every message sent was delivered: refusing drops nothing";
}

}  // namespace
}  // namespace runnel
