#include "net/acceptor.h"

#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "core/log.h"

namespace runnel {
namespace {

// After EMFILE/ENFILE, wait before accepting again instead of spinning.
constexpr uint64_t kAcceptRetryUs = 100'000;

}  // namespace

Acceptor::Acceptor(Reactor& reactor, UniqueFd listener, AcceptorOptions options, Factory make_connection)
    : reactor_(reactor),
      listener_(std::move(listener)),
      options_(std::move(options)),
      make_connection_(std::move(make_connection)),
      accept_retry_(reactor, [this] { arm_accept(); }),
      connections_open_(reactor.metrics().gauge(fmt::format("runnel_{}_connections", options_.name),
                                                fmt::format("Open {} connections.", options_.description))),
      connections_accepted_(
          reactor.metrics().counter(fmt::format("runnel_{}_connections_accepted_total", options_.name),
                                    fmt::format("{} connections accepted.", options_.description))),
      connections_rejected_(reactor.metrics().counter(
          fmt::format("runnel_{}_connections_rejected_total", options_.name),
          fmt::format("{} connections refused because all slots were busy.", options_.description))),
      connections_evicted_(reactor.metrics().counter(
          fmt::format("runnel_{}_connections_evicted_total", options_.name),
          fmt::format("Idle {} connections closed to make room for a new one.", options_.description))),
      accept_errors_(reactor.metrics().counter(fmt::format("runnel_{}_accept_errors_total", options_.name),
                                               fmt::format("Failed accepts on the {} port.", options_.description))) {
  accept_op_.acceptor = this;
  RUNNEL_ASSERT(options_.connections_max >= 1);
}

void Acceptor::start() {
  RUNNEL_ASSERT(reactor_.shard() == this_shard_id());
  reactor_.hold();
  holding_ = true;
  reactor_.on_stop([this] { stop(); });
  arm_accept();
}

void Acceptor::arm_accept() {
  if (stopping_ || accept_in_flight_) return;
  io_uring_sqe* sqe = reactor_.get_sqe();
  io_uring_prep_multishot_accept(sqe, listener_.get(), nullptr, nullptr, SOCK_CLOEXEC);
  Reactor::set_completion(sqe, &accept_op_);
  accept_in_flight_ = true;
}

void Acceptor::on_accept(int res, uint32_t flags) {
  if (!(flags & IORING_CQE_F_MORE)) accept_in_flight_ = false;
  if (res >= 0) {
    if (stopping_) {
      ::close(res);
    } else if (open_ >= options_.connections_max &&
               // Evicted connections keep their slot until closed: never more than twice the maximum open.
               !(options_.evict_idle && open_ < 2 * size_t{options_.connections_max} && evict_one())) {
      reject(res);
    } else {
      AcceptedConnection* connection;
      if (!free_slots_.empty()) {
        connection = free_slots_.back();
        free_slots_.pop_back();
      } else {
        slots_.push_back(make_connection_());
        connection = slots_.back().get();
      }
      open_++;
      connections_open_.set(static_cast<int64_t>(open_));
      connections_accepted_.inc();
      connection->start(res);
    }
  } else if (res != -ECANCELED) {
    accept_errors_.inc();
    log_warn("{} accept failed: {}", options_.name, std::strerror(-res));
    if (!accept_in_flight_ && !stopping_) {
      // Out of descriptors or memory: back off rather than spin on errors.
      accept_retry_.arm_after_us(kAcceptRetryUs);
      return;
    }
  }
  if (!accept_in_flight_) {
    if (stopping_) {
      maybe_release();
    } else {
      arm_accept();  // The kernel ended the multishot accept; start another.
    }
  }
}

bool Acceptor::evict_one() {
  // Linear in the slots, and only when they are all taken.
  AcceptedConnection* oldest = nullptr;
  for (const auto& slot : slots_) {
    if (slot->open() && slot->idle() && (oldest == nullptr || slot->idle_since_us() < oldest->idle_since_us())) {
      oldest = slot.get();
    }
  }
  if (oldest == nullptr) return false;
  connections_evicted_.inc();
  oldest->shut_down();  // Idle: it closes now, and gives its slot back once gone.
  return true;
}

void Acceptor::reject(int fd) {
  connections_rejected_.inc();
  // Best effort, never blocking the shard: a fresh socket's send buffer has room.
  [[maybe_unused]] ssize_t n =
      ::send(fd, options_.reject_bytes.data(), options_.reject_bytes.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
  ::close(fd);
}

void Acceptor::stop() {
  if (stopping_) return;
  stopping_ = true;
  accept_retry_.cancel();
  if (accept_in_flight_) {
    io_uring_sqe* sqe = reactor_.get_sqe();
    io_uring_prep_cancel(sqe, &accept_op_, 0);
    sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
    io_uring_sqe_set_data64(sqe, 0);  // The reactor ignores user_data 0.
  }
  for (auto& slot : slots_) {
    if (slot->open()) slot->shut_down();
  }
  maybe_release();
}

void Acceptor::connection_closed(AcceptedConnection* connection) {
  RUNNEL_ASSERT(open_ > 0);
  open_--;
  connections_open_.set(static_cast<int64_t>(open_));
  free_slots_.push_back(connection);
  maybe_release();
}

void Acceptor::maybe_release() {
  if (stopping_ && holding_ && open_ == 0 && !accept_in_flight_) {
    listener_.reset();
    holding_ = false;
    reactor_.release();
  }
}

}  // namespace runnel
