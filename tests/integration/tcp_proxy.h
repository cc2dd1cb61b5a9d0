#pragma once
// A loopback TCP proxy for tests that need a network that misbehaves: it
// forwards every connection to an upstream port and can swallow the
// answers (the server did the work, the client never hears of it) or cut
// every connection at once. One thread, poll(2); stopped and joined in the
// destructor.

#include <atomic>
#include <cstdint>
#include <mutex>
#include <thread>
#include <vector>

namespace runnel::testing {

class TcpProxy {
 public:
  explicit TcpProxy(int upstream_port);
  ~TcpProxy();
  int port() const { return port_; }

  // While set, bytes from the upstream are read and dropped.
  void drop_answers(bool drop) { drop_answers_ = drop; }
  // Closes every connection (both sides); new ones are accepted as before.
  void cut_all();
  int connections_accepted() const { return accepted_; }

 private:
  void run();
  int upstream_port_;
  int listen_fd_ = -1;
  int port_ = 0;
  int wake_[2] = {-1, -1};
  std::atomic<bool> drop_answers_{false};
  std::atomic<bool> cut_{false};
  std::atomic<bool> stop_{false};
  std::atomic<int> accepted_{0};
  std::thread thread_;
};

}  // namespace runnel::testing
