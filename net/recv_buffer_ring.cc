#include "net/recv_buffer_ring.h"

#include <liburing.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstring>

#include "core/log.h"
#include "core/reactor.h"

namespace runnel {

namespace {

// liburing 2.3 registers through a struct io_uring; the reactor keeps its
// ring to itself, so register by fd (the same call).
int register_buf_ring(int ring_fd, io_uring_buf_reg* reg, bool unregister) {
  return static_cast<int>(::syscall(__NR_io_uring_register, ring_fd,
                                    unregister ? IORING_UNREGISTER_PBUF_RING : IORING_REGISTER_PBUF_RING, reg, 1));
}

}  // namespace

std::unique_ptr<RecvBufferRing> RecvBufferRing::create(Reactor& reactor, uint16_t group, uint32_t count,
                                                       uint32_t buffer_bytes) {
  RUNNEL_ASSERT(count > 0 && count <= 32768 && (count & (count - 1)) == 0);
  std::unique_ptr<RecvBufferRing> r(new RecvBufferRing);
  r->ring_fd_ = reactor.ring_fd();
  r->group_ = group;
  r->count_ = count;
  r->buffer_bytes_ = buffer_bytes;
  r->ring_bytes_ = sizeof(io_uring_buf) * count;
  void* mem = ::mmap(nullptr, r->ring_bytes_, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
  if (mem == MAP_FAILED) {
    log_warn("receive buffer ring: mmap failed ({}); connections use buffers of their own", std::strerror(errno));
    return nullptr;
  }
  r->ring_ = static_cast<io_uring_buf_ring*>(mem);
  io_uring_buf_ring_init(r->ring_);
  io_uring_buf_reg reg{};
  reg.ring_addr = reinterpret_cast<uint64_t>(r->ring_);
  reg.ring_entries = count;
  reg.bgid = group;
  if (register_buf_ring(r->ring_fd_, &reg, false) != 0) {
    log_warn("receive buffer ring: the kernel refused it ({}); connections use buffers of their own",
             std::strerror(errno));
    ::munmap(r->ring_, r->ring_bytes_);
    r->ring_ = nullptr;
    return nullptr;
  }
  r->buffers_ = std::make_unique<char[]>(size_t{count} * buffer_bytes);
  const int mask = io_uring_buf_ring_mask(count);
  for (uint32_t i = 0; i < count; i++) {
    io_uring_buf_ring_add(r->ring_, r->buffer(static_cast<uint16_t>(i)), buffer_bytes, static_cast<uint16_t>(i), mask,
                          static_cast<int>(i));
  }
  io_uring_buf_ring_advance(r->ring_, static_cast<int>(count));
  return r;
}

RecvBufferRing::~RecvBufferRing() {
  if (ring_ == nullptr) return;
  io_uring_buf_reg reg{};
  reg.bgid = group_;
  (void)register_buf_ring(ring_fd_, &reg, true);  // Fails harmlessly once the ring is closed.
  ::munmap(ring_, ring_bytes_);
}

void RecvBufferRing::give_back(uint16_t id) {
  io_uring_buf_ring_add(ring_, buffer(id), buffer_bytes_, id, io_uring_buf_ring_mask(count_), 0);
  io_uring_buf_ring_advance(ring_, 1);
}

}  // namespace runnel
