#pragma once
// SocketOutput: what a connection has to send. Answers queue in pending();
// one send is in flight at a time, from a buffer nobody touches until it
// completes, and a short send resumes where it stopped. Shared by the admin
// HTTP and the binary protocol connections.

#include <sys/socket.h>

#include <string>

#include "core/reactor.h"

namespace runnel {

class SocketOutput {
 public:
  std::string& pending() { return pending_; }
  bool in_flight() const { return in_flight_; }
  bool idle() const { return !in_flight_ && pending_.empty(); }
  size_t queued_bytes() const { return pending_.size() + sending_.size(); }

  // Sends what is pending unless a send is in flight; `op` completes it.
  void flush(Reactor& reactor, int fd, IoCompletion* op) {
    if (in_flight_ || pending_.empty()) return;
    sending_.swap(pending_);
    pending_.clear();
    sent_ = 0;
    submit(reactor, fd, op);
  }

  enum class Sent { kAll, kMore, kFailed };
  // The completion of the send in flight: kAll when its buffer went out,
  // kMore after resubmitting the rest of a short send, kFailed on an error.
  Sent on_sent(Reactor& reactor, int fd, IoCompletion* op, int res) {
    in_flight_ = false;
    if (res < 0) return Sent::kFailed;
    sent_ += static_cast<size_t>(res);
    if (sent_ < sending_.size()) {
      submit(reactor, fd, op);
      return Sent::kMore;
    }
    sending_.clear();
    return Sent::kAll;
  }

  void reset() {
    sending_ = std::string();
    pending_ = std::string();
    sent_ = 0;
    in_flight_ = false;
  }

 private:
  void submit(Reactor& reactor, int fd, IoCompletion* op) {
    io_uring_sqe* sqe = reactor.get_sqe();
    io_uring_prep_send(sqe, fd, sending_.data() + sent_, sending_.size() - sent_, MSG_NOSIGNAL);
    Reactor::set_completion(sqe, op);
    in_flight_ = true;
  }

  std::string sending_;  // In flight; untouched until its send completes.
  size_t sent_ = 0;
  std::string pending_;  // Queued behind it.
  bool in_flight_ = false;
};

}  // namespace runnel
