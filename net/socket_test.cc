#include "net/socket.h"

#include <gtest/gtest.h>

#include <chrono>
#include <thread>

namespace runnel {
namespace {

// Shards join one port with SO_REUSEPORT, but a second server must not: the
// kernel would split connections between two processes.
TEST(ListenReuseportGroup, RefusesAPortSomeoneAlreadyListensOn) {
  auto first = listen_reuseport_group(HostPort{"127.0.0.1", 0}, 2, 16);
  ASSERT_TRUE(first.is_ok()) << first.status().to_string();
  auto bound = bound_address(first->front().get());
  ASSERT_TRUE(bound.is_ok());
  auto second = listen_reuseport_group(HostPort{"127.0.0.1", bound->port}, 2, 16);
  ASSERT_FALSE(second.is_ok());
  EXPECT_NE(second.status().message().find("another runneld"), std::string::npos) << second.status().to_string();
  first->clear();
  // Once the first group is closed, the port can be taken again.
  auto third = listen_reuseport_group(HostPort{"127.0.0.1", bound->port}, 2, 16);
  EXPECT_TRUE(third.is_ok()) << third.status().to_string();
}

// A runneld killed a moment ago can hold its port a little longer (its ring
// closes its sockets after the process is gone): the next one waits for it.
TEST(ListenReuseportGroup, WaitsForAPortThatIsLetGoSoon) {
  auto first = listen_reuseport_group(HostPort{"127.0.0.1", 0}, 1, 16);
  ASSERT_TRUE(first.is_ok()) << first.status().to_string();
  auto bound = bound_address(first->front().get());
  ASSERT_TRUE(bound.is_ok());
  std::thread release([&first] {
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    first->clear();
  });
  auto second = listen_reuseport_group(HostPort{"127.0.0.1", bound->port}, 2, 16);
  release.join();
  EXPECT_TRUE(second.is_ok()) << second.status().to_string();
}

}  // namespace
}  // namespace runnel
