#include "core/inline_function.h"

#include <gtest/gtest.h>

#include <memory>

namespace runnel {
namespace {

TEST(InlineFunction, InvokesCapturedState) {
  int hits = 0;
  Task task = [&hits] { hits++; };
  task();
  task();
  EXPECT_EQ(hits, 2);
}

TEST(InlineFunction, ReturnsValuesAndTakesArguments) {
  InlineFunction<int(int, int)> add = [](int a, int b) { return a + b; };
  EXPECT_EQ(add(2, 3), 5);
}

TEST(InlineFunction, MoveTransfersOwnershipAndEmptiesSource) {
  auto owned = std::make_unique<int>(41);
  InlineFunction<int()> a = [p = std::move(owned)] { return *p + 1; };
  InlineFunction<int()> b = std::move(a);
  EXPECT_FALSE(static_cast<bool>(a));  // NOLINT(bugprone-use-after-move): checking the moved-from state.
  ASSERT_TRUE(static_cast<bool>(b));
  EXPECT_EQ(b(), 42);
}

TEST(InlineFunction, DestroysCaptureExactlyOnce) {
  auto counter = std::make_shared<int>(0);
  {
    std::weak_ptr<int> weak = counter;
    Task a = [c = std::move(counter)] { (*c)++; };
    Task b = std::move(a);
    Task c;
    c = std::move(b);
    EXPECT_FALSE(weak.expired());
    c.reset();
    EXPECT_TRUE(weak.expired());
  }
}

}  // namespace
}  // namespace runnel
