#include "net/socket.h"

#include <arpa/inet.h>
#include <fmt/format.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace runnel {

UniqueFd& UniqueFd::operator=(UniqueFd&& other) noexcept {
  if (this != &other) {
    reset();
    fd_ = other.release();
  }
  return *this;
}

void UniqueFd::reset() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

namespace {

Result<UniqueFd> listen_one(const sockaddr_in& addr, int backlog, const HostPort& shown) {
  UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd.valid()) return Status(ErrorCode::kIoError, fmt::format("socket: {}", std::strerror(errno)));
  int one = 1;
  if (::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
      ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0) {
    return Status(ErrorCode::kIoError, fmt::format("setsockopt: {}", std::strerror(errno)));
  }
  if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) != 0) {
    return Status(ErrorCode::kUnavailable, fmt::format("cannot bind {}: {}", shown.to_string(), std::strerror(errno)));
  }
  if (::listen(fd.get(), backlog) != 0) {
    return Status(ErrorCode::kIoError, fmt::format("listen on {}: {}", shown.to_string(), std::strerror(errno)));
  }
  return fd;
}

}  // namespace

Result<std::vector<UniqueFd>> listen_reuseport_group(const HostPort& address, int count, int backlog) {
  RUNNEL_ASSERT(count >= 1);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(address.port);
  if (::inet_pton(AF_INET, address.host.c_str(), &addr.sin_addr) != 1) {
    return Status(ErrorCode::kInvalidArgument, fmt::format("not an IPv4 address: '{}'", address.host));
  }
  if (address.port != 0) {
    // SO_REUSEPORT would let this group join a port another runneld (or any
    // process of this user) already listens on, and the kernel would split
    // new connections between the two. A plain bind first refuses that.
    UniqueFd probe(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    int one = 1;
    if (!probe.valid() || ::setsockopt(probe.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0) {
      return Status(ErrorCode::kIoError, fmt::format("socket: {}", std::strerror(errno)));
    }
    // A runneld killed a moment ago may still hold the port: its io_uring is
    // torn down (and its listening sockets closed) after the process is
    // gone. So a port in use is tried again for a while before giving up.
    constexpr int kBusyPortTries = 40, kBusyPortPauseMs = 50;
    for (int attempt = 1;; attempt++) {
      if (::bind(probe.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) == 0) break;
      if (errno != EADDRINUSE || attempt == kBusyPortTries) {
        return Status(ErrorCode::kUnavailable,
                      fmt::format("cannot bind {}: {}{}", address.to_string(), std::strerror(errno),
                                  errno == EADDRINUSE ? " (is another runneld listening there?)" : ""));
      }
      ::usleep(kBusyPortPauseMs * 1000);
    }
  }
  std::vector<UniqueFd> fds;
  for (int i = 0; i < count; i++) {
    auto fd = listen_one(addr, backlog, address);
    if (!fd) return fd.status();
    if (i == 0 && address.port == 0) {
      // Port 0: the kernel chose; the other shards join that port.
      auto bound = bound_address(fd->get());
      if (!bound) return bound.status();
      addr.sin_port = htons(bound->port);
    }
    fds.push_back(std::move(*fd));
  }
  return fds;
}

Result<HostPort> bound_address(int fd) {
  sockaddr_in addr{};
  socklen_t len = sizeof(addr);
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    return Status(ErrorCode::kIoError, fmt::format("getsockname: {}", std::strerror(errno)));
  }
  char text[INET_ADDRSTRLEN] = {};
  ::inet_ntop(AF_INET, &addr.sin_addr, text, sizeof(text));
  return HostPort{text, ntohs(addr.sin_port)};
}

}  // namespace runnel
