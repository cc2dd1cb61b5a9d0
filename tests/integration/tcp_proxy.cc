#include "tests/integration/tcp_proxy.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <stdexcept>

namespace runnel::testing {

namespace {

int connect_to(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    ::close(fd);
    return -1;
  }
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  return fd;
}

// Writes all of `n` bytes (blocking); false if the peer is gone.
bool write_all(int fd, const char* p, size_t n) {
  while (n > 0) {
    ssize_t w = ::send(fd, p, n, MSG_NOSIGNAL);
    if (w <= 0) return false;
    p += w;
    n -= static_cast<size_t>(w);
  }
  return true;
}

}  // namespace

TcpProxy::TcpProxy(int upstream_port) : upstream_port_(upstream_port) {
  listen_fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 || ::listen(listen_fd_, 64) != 0) {
    throw std::runtime_error("proxy: cannot listen");
  }
  socklen_t len = sizeof(addr);
  ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len);
  port_ = ntohs(addr.sin_port);
  if (::pipe(wake_) != 0) throw std::runtime_error("proxy: pipe");
  thread_ = std::thread([this] { run(); });
}

TcpProxy::~TcpProxy() {
  stop_ = true;
  char b = 1;
  (void)!::write(wake_[1], &b, 1);
  thread_.join();
  ::close(listen_fd_);
  ::close(wake_[0]);
  ::close(wake_[1]);
}

void TcpProxy::cut_all() {
  cut_ = true;
  char b = 1;
  (void)!::write(wake_[1], &b, 1);
  while (cut_) std::this_thread::sleep_for(std::chrono::milliseconds(1));
}

void TcpProxy::run() {
  struct Pair {
    int client, upstream;
  };
  std::vector<Pair> pairs;
  auto close_pair = [](const Pair& p) {
    ::close(p.client);
    ::close(p.upstream);
  };
  char buf[64 * 1024];
  while (!stop_) {
    if (cut_) {
      for (const Pair& p : pairs) close_pair(p);
      pairs.clear();
      cut_ = false;
    }
    std::vector<pollfd> fds;
    fds.push_back({wake_[0], POLLIN, 0});
    fds.push_back({listen_fd_, POLLIN, 0});
    for (const Pair& p : pairs) {
      fds.push_back({p.client, POLLIN, 0});
      fds.push_back({p.upstream, POLLIN, 0});
    }
    if (::poll(fds.data(), fds.size(), 100) <= 0) continue;
    if (fds[0].revents != 0) {
      char drain[16];
      (void)!::read(wake_[0], drain, sizeof(drain));
    }
    if (fds[1].revents & POLLIN) {
      int client = ::accept(listen_fd_, nullptr, nullptr);
      if (client >= 0) {
        int upstream = connect_to(upstream_port_);
        if (upstream < 0) {
          ::close(client);
        } else {
          int one = 1;
          ::setsockopt(client, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
          pairs.push_back({client, upstream});
          accepted_++;
        }
      }
    }
    std::vector<Pair> alive;
    for (size_t i = 0; i < pairs.size(); i++) {
      const Pair& p = pairs[i];
      bool ok = true;
      const pollfd& from_client = fds[2 + 2 * i];
      const pollfd& from_upstream = fds[3 + 2 * i];
      if (from_client.revents != 0) {
        ssize_t n = ::recv(p.client, buf, sizeof(buf), 0);
        ok = n > 0 && write_all(p.upstream, buf, static_cast<size_t>(n));
      }
      if (ok && from_upstream.revents != 0) {
        ssize_t n = ::recv(p.upstream, buf, sizeof(buf), 0);
        ok = n > 0 && (drop_answers_ || write_all(p.client, buf, static_cast<size_t>(n)));
      }
      if (ok) {
        alive.push_back(p);
      } else {
        close_pair(p);
      }
    }
    pairs.swap(alive);
  }
  for (const Pair& p : pairs) close_pair(p);
}

}  // namespace runnel::testing
