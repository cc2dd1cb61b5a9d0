#pragma once
// RecvBufferRing: one shard's pool of receive buffers, registered with its
// io_uring as a provided buffer ring. A connection's multishot recv takes a
// buffer only when data arrives, so an idle connection holds no receive
// memory (10,000 connections need not mean 10,000 buffers), and one armed
// recv keeps delivering without a new submission each time. Whoever gets a
// buffer in a completion gives it back as soon as its bytes are consumed.
// Lives on its shard; used only there.

#include <cstdint>
#include <memory>

struct io_uring_buf_ring;

namespace runnel {

class Reactor;

class RecvBufferRing {
 public:
  // `count` (a power of two) buffers of `buffer_bytes`, as buffer group
  // `group` of the reactor's ring. Null (and a warning logged) if the kernel
  // refuses: connections then receive into buffers of their own.
  static std::unique_ptr<RecvBufferRing> create(Reactor& reactor, uint16_t group, uint32_t count,
                                                uint32_t buffer_bytes);
  ~RecvBufferRing();
  RecvBufferRing(const RecvBufferRing&) = delete;
  RecvBufferRing& operator=(const RecvBufferRing&) = delete;

  uint16_t group() const { return group_; }
  uint32_t buffer_bytes() const { return buffer_bytes_; }
  char* buffer(uint16_t id) const { return buffers_.get() + size_t{id} * buffer_bytes_; }
  // Back into the ring for the kernel to fill again.
  void give_back(uint16_t id);

 private:
  RecvBufferRing() = default;
  int ring_fd_ = -1;
  uint16_t group_ = 0;
  uint32_t count_ = 0;
  uint32_t buffer_bytes_ = 0;
  io_uring_buf_ring* ring_ = nullptr;  // mmap'd, shared with the kernel.
  size_t ring_bytes_ = 0;
  std::unique_ptr<char[]> buffers_;
};

}  // namespace runnel
