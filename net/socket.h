#pragma once
// Listening sockets, made on the main thread at startup before the shards
// run. Each shard gets its own socket bound to the same address with
// SO_REUSEPORT, so the kernel spreads new connections across shards and no
// shard ever hands a connection to another.

#include <vector>

#include "core/config.h"
#include "core/status.h"

namespace runnel {

// Owns a file descriptor; closes it on destruction.
class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  UniqueFd(UniqueFd&& other) noexcept : fd_(other.release()) {}
  UniqueFd& operator=(UniqueFd&& other) noexcept;
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  ~UniqueFd() { reset(); }

  int get() const { return fd_; }
  int release() {
    int fd = fd_;
    fd_ = -1;
    return fd;
  }
  void reset();
  bool valid() const { return fd_ >= 0; }

 private:
  int fd_ = -1;
};

// `count` listening TCP sockets on `address`, all with SO_REUSEPORT. Port 0
// binds the first to a free port and the rest to the same one.
Result<std::vector<UniqueFd>> listen_reuseport_group(const HostPort& address, int count, int backlog);

// The address a socket is bound to.
Result<HostPort> bound_address(int fd);

}  // namespace runnel
