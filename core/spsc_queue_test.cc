#include "core/spsc_queue.h"

#include <gtest/gtest.h>

#include <memory>
#include <thread>

namespace runnel {
namespace {

TEST(SpscQueue, PopsInPushOrder) {
  SpscQueue<int> q(8);
  for (int i = 0; i < 5; i++) {
    int v = i;
    ASSERT_TRUE(q.try_push(v));
  }
  for (int i = 0; i < 5; i++) {
    int v = -1;
    ASSERT_TRUE(q.try_pop(v));
    EXPECT_EQ(v, i);
  }
  int v;
  EXPECT_FALSE(q.try_pop(v));
}

TEST(SpscQueue, RefusesPushWhenFullAndKeepsItem) {
  SpscQueue<std::unique_ptr<int>> q(4);
  for (int i = 0; i < 4; i++) {
    auto p = std::make_unique<int>(i);
    ASSERT_TRUE(q.try_push(p));
    EXPECT_EQ(p, nullptr);
  }
  auto extra = std::make_unique<int>(99);
  EXPECT_FALSE(q.try_push(extra));
  ASSERT_NE(extra, nullptr);
  EXPECT_EQ(*extra, 99);
  std::unique_ptr<int> out;
  ASSERT_TRUE(q.try_pop(out));
  EXPECT_EQ(*out, 0);
  EXPECT_TRUE(q.try_push(extra));
}

TEST(SpscQueue, DestroysRemainingItems) {
  auto counter = std::make_shared<int>(0);
  std::weak_ptr<int> weak = counter;
  {
    SpscQueue<std::shared_ptr<int>> q(4);
    ASSERT_TRUE(q.try_push(counter));
    counter.reset();
    EXPECT_FALSE(weak.expired());
  }
  EXPECT_TRUE(weak.expired());
}

TEST(SpscQueue, TransfersEveryItemAcrossThreadsInOrder) {
  constexpr uint64_t kItems = 1'000'000;
  SpscQueue<uint64_t> q(64);
  std::thread producer([&] {
    for (uint64_t i = 0; i < kItems; i++) {
      uint64_t v = i;
      while (!q.try_push(v)) std::this_thread::yield();
    }
  });
  uint64_t expected = 0;
  while (expected < kItems) {
    uint64_t v;
    if (q.try_pop(v)) {
      ASSERT_EQ(v, expected);
      expected++;
    } else {
      std::this_thread::yield();
    }
  }
  producer.join();
  EXPECT_TRUE(q.empty_approx());
}

}  // namespace
}  // namespace runnel
