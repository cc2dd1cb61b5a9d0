#pragma once
// SocketOutput: what a connection has to send, sent with one vectored
// sendmsg at a time. Small answers are appended to a shared tail buffer
// (pending()); a large one (a read answer, a subscription's records) is
// queued as a chunk of its own by push(), without being copied again. A
// chunk in flight is not touched until its send completes, and a short send
// resumes where it stopped. Shared by the admin HTTP and the binary protocol
// connections.
//
// Over TLS (set_tls) the connection's output is plaintext gathered in one
// buffer and sealed by the session when flushed: chunks then hold only
// ciphertext, so what is in flight is never touched.

#include <sys/socket.h>
#include <sys/uio.h>

#include <deque>
#include <string>

#include "core/reactor.h"
#include "proto/tls/tls_session.h"

namespace runnel {

class SocketOutput {
 public:
  // Frames at least this big travel as chunks of their own; smaller ones are
  // cheaper to copy than to give an iovec each.
  static constexpr size_t kOwnChunkMin = 4096;
  static constexpr size_t kTailChunkMax = 64 * 1024;
  static constexpr size_t kIovMax = 64;

  // Encrypts everything from now on with `tls` (null: plaintext).
  void set_tls(TlsSession* tls) { tls_ = tls; }

  // A buffer to append small output to (not in flight).
  std::string& pending() {
    if (tls_ != nullptr) return plain_;
    if (!tail_open_ || chunks_.back().size() >= kTailChunkMax) {
      close_tail();
      chunks_.push_back(std::move(spare_));
      spare_ = std::string();
      chunks_.back().clear();
      tail_open_ = true;
    }
    return chunks_.back();
  }
  // Queues a whole frame; a large one is moved, not copied.
  void push(std::string frame) {
    if (tls_ != nullptr) {
      plain_.append(frame);
      return;
    }
    if (frame.size() < kOwnChunkMin) {
      pending().append(frame);
      return;
    }
    close_tail();
    bytes_ += frame.size();
    chunks_.push_back(std::move(frame));
  }

  bool in_flight() const { return in_flight_; }
  bool idle() const { return !in_flight_ && queued_bytes() == 0 && (tls_ == nullptr || !tls_->has_output()); }
  size_t queued_bytes() const { return bytes_ + (tail_open_ ? chunks_.back().size() : 0) - sent_ + plain_.size(); }

  // Sends what is queued unless a send is in flight; `op` completes it.
  // False: the TLS session failed (the connection should close).
  bool flush(Reactor& reactor, int fd, IoCompletion* op) {
    if (in_flight_) return true;
    if (tls_ != nullptr && !seal()) return false;
    if (queued_bytes() == 0) return true;
    close_tail();  // Whatever is queued now goes out as is.
    submit(reactor, fd, op);
    return true;
  }

  enum class Sent { kAll, kMore, kFailed };
  // The completion of the send in flight: kAll when everything it carried
  // went out, kMore after resubmitting the rest of a short send, kFailed on
  // an error.
  Sent on_sent(Reactor& reactor, int fd, IoCompletion* op, int res) {
    in_flight_ = false;
    if (res < 0) return Sent::kFailed;
    size_t left = static_cast<size_t>(res);
    while (left > 0 && sending_ > 0) {
      std::string& first = chunks_.front();
      const size_t rest = first.size() - sent_;
      if (left < rest) {
        sent_ += left;
        break;
      }
      left -= rest;
      pop_front();
    }
    while (sending_ > 0 && chunks_.front().size() == sent_) pop_front();  // Empty chunks.
    if (sending_ > 0) {
      submit(reactor, fd, op);
      return Sent::kMore;
    }
    return Sent::kAll;
  }

  void reset() {
    tls_ = nullptr;
    plain_.clear();
    chunks_.clear();
    spare_ = std::string();
    bytes_ = sent_ = sending_ = 0;
    tail_open_ = in_flight_ = false;
  }

 private:
  // The plaintext gathered so far and the session's own records (handshake,
  // alerts), queued as one chunk of ciphertext.
  bool seal() {
    if (!plain_.empty()) {
      if (!tls_->send(plain_).is_ok()) return false;
      plain_.clear();
    }
    if (!tls_->has_output()) return true;
    close_tail();
    std::string cipher = tls_->take_output();
    bytes_ += cipher.size();
    chunks_.push_back(std::move(cipher));
    return true;
  }
  void close_tail() {
    if (!tail_open_) return;
    bytes_ += chunks_.back().size();
    tail_open_ = false;
  }
  void pop_front() {
    std::string& first = chunks_.front();
    bytes_ -= first.size();
    if (first.capacity() <= kTailChunkMax * 2 && spare_.capacity() < first.capacity()) spare_.swap(first);
    chunks_.pop_front();
    sent_ = 0;
    sending_--;
  }
  void submit(Reactor& reactor, int fd, IoCompletion* op) {
    // Every closed chunk (up to kIovMax) goes out in one sendmsg; the first
    // from where the last short send stopped.
    size_t n = 0;
    size_t closed = chunks_.size() - (tail_open_ ? 1 : 0);
    for (size_t i = 0; i < closed && n < kIovMax; i++) {
      const size_t skip = i == 0 ? sent_ : 0;
      iov_[n].iov_base = chunks_[i].data() + skip;
      iov_[n].iov_len = chunks_[i].size() - skip;
      n++;
    }
    sending_ = n;
    msg_ = msghdr{};
    msg_.msg_iov = iov_;
    msg_.msg_iovlen = n;
    io_uring_sqe* sqe = reactor.get_sqe();
    io_uring_prep_sendmsg(sqe, fd, &msg_, MSG_NOSIGNAL);
    Reactor::set_completion(sqe, op);
    in_flight_ = true;
  }

  std::deque<std::string> chunks_;  // The first `sending_` are in flight.
  std::string spare_;               // A sent tail buffer, kept for the next one.
  TlsSession* tls_ = nullptr;       // Over TLS: the connection's session.
  std::string plain_;               // Over TLS: output not yet sealed.
  size_t bytes_ = 0;                // Of every chunk but an open tail.
  size_t sent_ = 0;                 // Of chunks_.front(), by earlier short sends.
  size_t sending_ = 0;
  bool tail_open_ = false;          // chunks_.back() takes appends.
  bool in_flight_ = false;
  msghdr msg_{};
  iovec iov_[kIovMax]{};
};

}  // namespace runnel
