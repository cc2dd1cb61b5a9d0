#include "net/binary_server.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "core/log.h"
#include "proto/wire.h"

namespace runnel {
namespace {

using wire::Opcode;

// A connection's input buffer starts (and, once drained, returns to) this
// size, and grows only to hold a large frame: idle connections are cheap.
constexpr size_t kInputBytesInitial = 64u << 10;
constexpr size_t kInputFreeMin = 16u << 10;  // Room a recv gets at least.
// The shard's receive buffer ring: 256 × 32 KiB = 8 MiB however many
// connections there are (buffers go back as soon as their bytes are used).
constexpr uint16_t kRecvBufferGroup = 1;
constexpr uint32_t kRecvBuffers = 256;
constexpr uint32_t kRecvBufferBytes = 32u << 10;
// A frame with at least this much still to come is received straight into
// a buffer of its own size rather than copied out of ring buffers.
constexpr size_t kDirectRecvMin = 32u << 10;
constexpr uint32_t kSilentIntervalsMax = 3;
// Ciphertext received per recv over TLS (a little more than a TLS record).
constexpr size_t kTlsRecvBytes = 64u << 10;

std::string overloaded_frame() {
  std::string out;
  wire::append_error_frame(&out, static_cast<uint16_t>(Opcode::kHello), 0,
                           Status(ErrorCode::kOverloaded, "too many connections; retry later"));
  return out;
}

}  // namespace

BinaryServer::BinaryServer(Reactor& reactor, UniqueFd listener, const BinaryServerOptions& options, Router& router)
    : reactor_(reactor),
      options_(options),
      router_(router),
      acceptor_(reactor, std::move(listener),
                AcceptorOptions{"binary", "binary protocol", options.connections_max, overloaded_frame()},
                [this] { return std::make_unique<BinaryConnection>(*this, reactor_); }),
      requests_(reactor.metrics().counter("runnel_binary_requests_total", "Binary protocol requests received.")),
      protocol_errors_(reactor.metrics().counter("runnel_binary_protocol_errors_total",
                                                 "Connections closed for breaking the binary protocol.")),
      recv_copied_bytes_(reactor.metrics().counter(
          "runnel_binary_recv_copied_bytes_total",
          "Received bytes copied out of ring buffers (parts of frames that spanned buffers).")),
      tls_handshakes_(
          reactor.metrics().counter("runnel_tls_handshakes_total", "TLS handshakes completed.", {{"port", "binary"}})),
      tls_failures_(reactor.metrics().counter(
          "runnel_tls_failures_total", "TLS sessions that failed (handshake or record errors).", {{"port", "binary"}})),
      append_us_(reactor.metrics().histogram(
          "runnel_append_seconds",
          "Appends on this shard's connections: from the request read to its answer queued for sending, durable "
          "write included; next to a client's ack latency it tells the server's part from the network's and the "
          "client's.",
          1e-6)),
      recv_ring_(RecvBufferRing::create(reactor, kRecvBufferGroup, kRecvBuffers, kRecvBufferBytes)),
      access_timer_(reactor, [this] {
        acceptor_.for_each_open([](AcceptedConnection* c) { static_cast<BinaryConnection*>(c)->check_access(); });
        if (!acceptor_.stopping()) access_timer_.arm_after_us(kAccessCheckMs * 1000);
      }) {}

void BinaryServer::start() {
  acceptor_.start();
  if (options_.auth) access_timer_.arm_after_us(kAccessCheckMs * 1000);
}

BinaryConnection::BinaryConnection(BinaryServer& server, Reactor& reactor)
    : server_(server), reactor_(reactor), limits_(server.options_.limits), timer_(reactor, [this] { on_timer(); }) {
  recv_op_.c = this;
  send_op_.c = this;
  cancel_op_.c = this;
}

BinaryConnection::~BinaryConnection() {
  if (fd_ >= 0) ::close(fd_);
}

void BinaryConnection::start(int fd) {
  RUNNEL_ASSERT(fd_ < 0);
  fd_ = fd;
  generation_++;
  in_start_ = in_end_ = 0;
  if (server_.recv_ring_ == nullptr) {
    resize_input(kInputBytesInitial);
  } else {
    in_.reset();  // Taken from the ring as data arrives.
    in_capacity_ = 0;
  }
  out_.reset();
  if (server_.options_.tls != nullptr) {
    tls_ = std::make_unique<TlsSession>(server_.options_.tls);
    if (!tls_in_) tls_in_ = std::make_unique<char[]>(kTlsRecvBytes);
    out_.set_tls(tls_.get());
  }
  in_flight_ = 0;
  subscriptions_.clear();
  phase_ = Phase::kAwaitingHello;
  recv_ = Recv::kNone;
  in_process_input_ = cancel_in_flight_ = plain_recv_once_ = large_frames_ = false;
  last_heard_us_ = reactor_.now_us();
  const int one = 1;
  (void)::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  post_recv();
  timer_.arm_after_us(uint64_t{limits_.heartbeat_ms} * 1000);
}

void BinaryConnection::resize_input(size_t capacity) {
  if (in_ && capacity == in_capacity_) return;
  auto bigger = std::make_unique<char[]>(capacity);
  if (in_end_ > in_start_) std::memcpy(bigger.get(), in_.get() + in_start_, in_end_ - in_start_);
  in_end_ -= in_start_;
  in_start_ = 0;
  in_ = std::move(bigger);
  in_capacity_ = capacity;
}

void BinaryConnection::post_recv() {
  if (recv_ != Recv::kNone || cancel_in_flight_ || !reading() || saturated()) return;
  if (tls_ != nullptr) {
    io_uring_sqe* sqe = reactor_.get_sqe();
    io_uring_prep_recv(sqe, fd_, tls_in_.get(), kTlsRecvBytes, 0);
    Reactor::set_completion(sqe, &recv_op_);
    recv_ = Recv::kPlain;
    return;
  }
  RecvBufferRing* ring = server_.recv_ring_.get();
  // A client sending large frames is served by plain recvs sized for them
  // until it sends a small one: switching back and forth would copy the
  // start of every frame out of the ring and cancel a recv each time.
  if (ring != nullptr && !plain_recv_once_ && !large_frames_ && !large_frame_pending()) {
    if (in_end_ == in_start_ && in_ != nullptr) {
      in_.reset();  // Drained: an idle connection holds no receive buffer.
      in_capacity_ = in_start_ = in_end_ = 0;
    }
    io_uring_sqe* sqe = reactor_.get_sqe();
    io_uring_prep_recv_multishot(sqe, fd_, nullptr, 0, 0);
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = ring->group();
    Reactor::set_completion(sqe, &recv_op_);
    recv_ = Recv::kMultishot;
    return;
  }
  // A plain recv into our own buffer, sized for the frame in progress.
  plain_recv_once_ = false;
  const size_t unparsed = in_end_ - in_start_;
  // The frame being received decides the room needed (its header says how big it is).
  size_t needed = wire::kFrameHeaderBytes;
  if (unparsed >= wire::kFrameHeaderBytes) {
    const uint32_t frame_bytes = wire::read_frame_header(in_.get() + in_start_).frame_bytes;
    needed = std::max<size_t>(needed, std::min(frame_bytes, limits_.frame_bytes_max));
  }
  const size_t wanted = std::max(needed, unparsed + kInputFreeMin);
  if (unparsed == 0 && in_capacity_ > kInputBytesInitial && ring == nullptr) {
    resize_input(kInputBytesInitial);  // Drained: give a large buffer back.
  } else if (wanted > in_capacity_) {
    resize_input(std::max(wanted, std::min<size_t>(2 * in_capacity_, limits_.frame_bytes_max + kInputFreeMin)));
  } else if (in_capacity_ - in_end_ < kInputFreeMin || in_capacity_ - in_start_ < needed) {
    std::memmove(in_.get(), in_.get() + in_start_, unparsed);
    in_end_ = unparsed;
    in_start_ = 0;
  }
  io_uring_sqe* sqe = reactor_.get_sqe();
  io_uring_prep_recv(sqe, fd_, in_.get() + in_end_, in_capacity_ - in_end_, 0);
  Reactor::set_completion(sqe, &recv_op_);
  recv_ = Recv::kPlain;
}

bool BinaryConnection::saturated() const {
  return in_flight_ >= limits_.requests_in_flight_max || out_.queued_bytes() >= limits_.output_bytes_max;
}

bool BinaryConnection::large_frame_pending() const {
  const size_t unparsed = in_end_ - in_start_;
  if (unparsed < wire::kFrameHeaderBytes) return false;
  const uint32_t frame_bytes = wire::read_frame_header(in_.get() + in_start_).frame_bytes;
  return frame_bytes <= limits_.frame_bytes_max && frame_bytes > unparsed && frame_bytes - unparsed >= kDirectRecvMin;
}

void BinaryConnection::on_recv(int res, uint32_t flags) {
  RecvBufferRing* ring = server_.recv_ring_.get();
  if (recv_ != Recv::kMultishot || (flags & IORING_CQE_F_MORE) == 0) recv_ = Recv::kNone;  // Its last completion.
  // A ring buffer goes back once its bytes are handled or copied, whatever happens here.
  struct GiveBack {
    RecvBufferRing* ring;
    uint16_t id;
    ~GiveBack() {
      if (ring != nullptr) ring->give_back(id);
    }
  } give_back{(flags & IORING_CQE_F_BUFFER) != 0 ? ring : nullptr,
              static_cast<uint16_t>(flags >> IORING_CQE_BUFFER_SHIFT)};
  if (phase_ == Phase::kClosing) return maybe_finish_close();
  if (res == -ENOBUFS) {
    plain_recv_once_ = true;  // The ring is empty for now: one recv into our own buffer.
    return post_recv();
  }
  if (res == -ECANCELED) return post_recv();  // We stopped it (cancel_recv); post_recv decides what is next.
  if (res <= 0) {
    if (res < 0 && res != -ECONNRESET) log_debug("binary recv: {}", std::strerror(-res));
    begin_close();  // Answers in flight are dropped: nobody is left to read them.
    return;
  }
  last_heard_us_ = reactor_.now_us();
  if (tls_ != nullptr) return on_tls_recv(static_cast<size_t>(res));
  if (give_back.ring != nullptr) {
    take_ring_buffer(ring->buffer(give_back.id), static_cast<size_t>(res));
  } else {
    in_end_ += static_cast<size_t>(res);
  }
  process_input();
  // The multishot recv would go on delivering: stop it while we must not
  // read, or to take a large frame into a buffer of its own.
  if (recv_ == Recv::kMultishot && (saturated() || !reading() || large_frames_)) {
    cancel_recv();
  }
}

void BinaryConnection::on_tls_recv(size_t len) {
  const bool was_done = tls_->handshake_done();
  std::string plain;
  if (Status s = tls_->received(std::string_view(tls_in_.get(), len), &plain); !s) {
    server_.tls_failures_.inc();
    log_debug("binary connection: {}", s.message());
    drain();  // Read no more; the alert goes out, then the connection closes.
    flush_output();
    return;
  }
  if (!was_done && tls_->handshake_done()) server_.tls_handshakes_.inc();
  if (!plain.empty()) keep_input(plain.data(), plain.size());
  if (tls_->peer_closed()) drain();  // As at end of stream: answer what is in flight, then close.
  process_input();  // Flushes the handshake's records too, and receives again.
}

void BinaryConnection::take_ring_buffer(const char* data, size_t len) {
  if (in_end_ > in_start_ || in_process_input_) return keep_input(data, len);  // Behind earlier bytes.
  // Nothing waiting before it: whole frames are handled where they landed.
  in_process_input_ = true;
  const size_t used = handle_frames(data, len);
  in_process_input_ = false;
  if (used < len) keep_input(data + used, len - used);
}

void BinaryConnection::keep_input(const char* data, size_t len) {
  const size_t unparsed = in_end_ - in_start_;
  size_t needed = unparsed + len;
  if (needed >= wire::kFrameHeaderBytes) {
    // Room for the whole frame in progress, so the rest can be received in place.
    char header[wire::kFrameHeaderBytes];
    const size_t from_old = std::min(unparsed, wire::kFrameHeaderBytes);
    if (from_old > 0) std::memcpy(header, in_.get() + in_start_, from_old);
    std::memcpy(header + from_old, data, wire::kFrameHeaderBytes - from_old);
    const uint32_t frame_bytes = wire::read_frame_header(header).frame_bytes;
    needed = std::max<size_t>(needed, std::min(frame_bytes, limits_.frame_bytes_max));
  }
  if (needed > in_capacity_) {
    resize_input(std::max(needed, kInputFreeMin));
  } else if (in_capacity_ - in_end_ < len) {
    std::memmove(in_.get(), in_.get() + in_start_, unparsed);
    in_end_ = unparsed;
    in_start_ = 0;
  }
  std::memcpy(in_.get() + in_end_, data, len);
  in_end_ += len;
  server_.recv_copied_bytes_.inc(len);
}

void BinaryConnection::cancel_recv() {
  if (recv_ != Recv::kMultishot || cancel_in_flight_) return;
  io_uring_sqe* sqe = reactor_.get_sqe();
  io_uring_prep_cancel(sqe, &recv_op_, 0);
  Reactor::set_completion(sqe, &cancel_op_);
  cancel_in_flight_ = true;
}

void BinaryConnection::on_cancelled() {
  cancel_in_flight_ = false;
  if (phase_ == Phase::kClosing) return maybe_finish_close();
  post_recv();
}

size_t BinaryConnection::handle_frames(const char* data, size_t len) {
  size_t pos = 0;
  while (reading() && !saturated() && len - pos >= wire::kFrameHeaderBytes) {
    const wire::FrameHeader h = wire::read_frame_header(data + pos);
    if (Status s = wire::check_frame_header(h, limits_.frame_bytes_max); !s) {
      protocol_error(h.opcode, h.request_id, s);
      break;
    }
    large_frames_ = h.frame_bytes >= kDirectRecvMin;  // The latest frame tells what comes next.
    if (len - pos < h.frame_bytes) break;  // The rest is on its way.
    const char* frame = data + pos;
    pos += h.frame_bytes;
    if (!handle_frame(frame, h.frame_bytes)) break;
  }
  return pos;
}

void BinaryConnection::process_input() {
  if (in_process_input_) return;  // An answer given synchronously re-enters; the outer loop goes on.
  in_process_input_ = true;
  if (in_end_ > in_start_) in_start_ += handle_frames(in_.get() + in_start_, in_end_ - in_start_);
  if (in_start_ == in_end_) in_start_ = in_end_ = 0;
  in_process_input_ = false;
  flush_output();
  post_recv();
}

bool BinaryConnection::handle_frame(const char* frame, uint32_t frame_bytes) {
  const wire::FrameHeader h = wire::read_frame_header(frame);
  const std::string_view body(frame + wire::kFrameHeaderBytes, frame_bytes - wire::kFrameHeaderBytes);
  const bool is_ping = h.opcode == static_cast<uint16_t>(Opcode::kPing);
  if (is_ping && h.flags == wire::kFlagResponse) return true;  // The answer to our heartbeat.
  if (h.flags != 0) {
    protocol_error(h.opcode, h.request_id, Status(ErrorCode::kInvalidArgument, "a client sends requests only"));
    return false;
  }
  if (phase_ == Phase::kAwaitingHello) {
    wire::Hello hello;
    if (h.opcode != static_cast<uint16_t>(Opcode::kHello) || !wire::decode_body(body, &hello)) {
      protocol_error(h.opcode, h.request_id, Status(ErrorCode::kInvalidArgument, "the first frame must be a hello"));
      return false;
    }
    if (hello.min_version > wire::kVersion || hello.max_version < wire::kVersion) {
      protocol_error(h.opcode, h.request_id,
                     Status(ErrorCode::kUnsupported,
                            fmt::format("no protocol version in common: client {}..{}, server {}", hello.min_version,
                                        hello.max_version, wire::kVersion)));
      return false;
    }
    if (server_.options_.auth) {
      auth::Refusal refusal{};
      const uint64_t now_ms = static_cast<uint64_t>(Reactor::clock_realtime_ms());
      const StreamCatalog& catalog = server_.router_.stores()->local().catalog();
      // Without a token, a verified client certificate names the token.
      const std::string certified = tls_ != nullptr && hello.token.empty() ? tls_->peer_common_name() : "";
      if (Status s = certified.empty() ? principal_.sign_in(catalog, hello.token, now_ms, &refusal)
                                       : principal_.sign_in_as(catalog, certified, now_ms, &refusal);
          !s) {
        server_.router_.count_refusal(refusal);
        protocol_error(h.opcode, h.request_id, s);
        return false;
      }
      if (Status s = server_.router_.admit_connection(*principal_.current(catalog, now_ms, &refusal)); !s) {
        principal_ = auth::Principal();
        protocol_error(h.opcode, h.request_id, s);
        return false;
      }
      connection_counted_ = true;
    }
    phase_ = Phase::kServing;
    wire::HelloOk ok;
    ok.version = wire::kVersion;
    ok.frame_bytes_max = limits_.frame_bytes_max;
    ok.heartbeat_ms = limits_.heartbeat_ms;
    ok.shard = static_cast<uint32_t>(reactor_.shard());
    ok.shard_count = static_cast<uint32_t>(reactor_.shard_count());
    ok.server_version = server_.options_.server_version;
    wire::append_frame(&out_.pending(), Opcode::kHello, wire::kFlagResponse, h.request_id, ok);
    return true;
  }
  if (is_ping) {
    if (!body.empty()) {
      protocol_error(h.opcode, h.request_id, Status(ErrorCode::kInvalidArgument, "a PING has no body"));
      return false;
    }
    std::string& pending = out_.pending();
    wire::finish_frame(&pending, wire::begin_frame(&pending, Opcode::kPing, wire::kFlagResponse, h.request_id));
    return true;
  }
  if (h.opcode == static_cast<uint16_t>(Opcode::kHello)) {
    protocol_error(h.opcode, h.request_id, Status(ErrorCode::kInvalidArgument, "hello was already done"));
    return false;
  }
  server_.requests_.inc();
  bool refused = false;
  const TokenInfo* asking = who(&refused);
  if (refused) return false;
  if (h.opcode == static_cast<uint16_t>(Opcode::kSubscribe) || h.opcode == static_cast<uint16_t>(Opcode::kCredit) ||
      h.opcode == static_cast<uint16_t>(Opcode::kUnsubscribe)) {
    return handle_subscription_frame(asking, h.opcode, h.request_id, body);
  }
  in_flight_++;
  const uint64_t generation = generation_;
  // Loop-step times: a step's worth of error either way, no clock read per request.
  const uint64_t append_from_us = h.opcode == static_cast<uint16_t>(Opcode::kAppend) ? reactor_.now_us() : 0;
  Status s = server_.router_.handle(asking, h.opcode, h.request_id, body,
                                    [this, generation, append_from_us](std::string answer) {
                                      if (generation != generation_) return;  // The connection it was for is gone.
                                      if (append_from_us != 0)
                                        server_.append_us_.record(reactor_.now_us() - append_from_us);
                                      on_answer(std::move(answer));
                                    });
  if (!s) {
    in_flight_--;
    protocol_error(h.opcode, h.request_id, s);
    return false;
  }
  return true;
}

const TokenInfo* BinaryConnection::who(bool* refused) {
  if (!server_.options_.auth) return nullptr;
  auth::Refusal refusal{};
  const TokenInfo* token = principal_.current(server_.router_.stores()->local().catalog(),
                                              static_cast<uint64_t>(Reactor::clock_realtime_ms()), &refusal);
  if (token == nullptr) {
    *refused = true;
    lose_access(refusal);
  }
  return token;
}

void BinaryConnection::check_access() {
  if (fd_ < 0 || phase_ != Phase::kServing) return;
  bool refused = false;
  (void)who(&refused);
  if (refused) flush_output();
}

void BinaryConnection::lose_access(auth::Refusal refusal) {
  server_.router_.count_refusal(refusal);
  const Status why = auth::unauthenticated(refusal);
  log_info("binary connection of token '{}' ended: {}", principal_.id(), why.message());
  for (const auto& [id, owner] : subscriptions_) {
    wire::append_error_frame(&out_.pending(), static_cast<uint16_t>(Opcode::kSubscriptionData), id, why,
                             wire::kFlagPush);
  }
  end_subscriptions();
  wire::append_error_frame(&out_.pending(), static_cast<uint16_t>(Opcode::kHello), 0, why);
  drain();  // Stop reading; answer what is in flight, then close.
}

bool BinaryConnection::handle_subscription_frame(const TokenInfo* who, uint16_t opcode, uint32_t request_id,
                                                 std::string_view body) {
  Router& router = server_.router_;
  const auto shards = static_cast<uint32_t>(router.stores()->shard_count());
  switch (static_cast<Opcode>(opcode)) {
    case Opcode::kSubscribe: {
      wire::Subscribe m;
      if (!wire::decode_body(body, &m)) {
        protocol_error(opcode, request_id, Status(ErrorCode::kInvalidArgument, "malformed subscribe request"));
        return false;
      }
      std::string prefixed;  // The body with the token's stream prefix, when it auto-prefixes.
      if (who != nullptr) {
        auto admitted = router.admit_subscribe(*who, body);
        if (!admitted) {
          wire::append_error_frame(&out_.pending(), opcode, request_id, admitted.status());
          return true;
        }
        if (!admitted->empty()) {
          prefixed = std::move(*admitted);
          body = prefixed;
          (void)wire::decode_body(body, &m);
        }
      }
      if (subscriptions_.count(request_id) != 0) {
        wire::append_error_frame(&out_.pending(), opcode, request_id,
                                 Status(ErrorCode::kAlreadyExists, "a subscription with this id is active"));
        return true;
      }
      if (subscriptions_.size() >= limits_.subscriptions_max) {
        wire::append_error_frame(
            &out_.pending(), opcode, request_id,
            Status(ErrorCode::kOverloaded, fmt::format("this connection has {} subscriptions open, the most allowed "
                                                       "(server.subscriptions_max); end one first",
                                                       subscriptions_.size())));
        return true;
      }
      const uint32_t owner = wire::owner_shard(m.bucket, m.stream, shards);
      if (static_cast<int>(owner) != reactor_.shard()) {
        if (Status busy = reactor_.admit_cross_shard(); !busy) {
          wire::append_error_frame(&out_.pending(), opcode, request_id, busy);
          return true;
        }
      }
      subscriptions_[request_id] = owner;
      router.subscriptions()->local().start(owner, request_id, body, push_target(),
                                            SubscriptionLimits{limits_.heartbeat_ms, limits_.output_bytes_max});
      return true;
    }
    case Opcode::kCredit: {
      wire::Credit m;
      if (!wire::decode_body(body, &m)) {
        protocol_error(opcode, request_id, Status(ErrorCode::kInvalidArgument, "malformed credit request"));
        return false;
      }
      auto it = subscriptions_.find(m.subscription_id);
      if (it != subscriptions_.end()) {
        server_.router_.subscriptions()->local().credit(it->second, push_target(), it->first, m.bytes);
      }
      return true;  // Never answered; credit for an ended subscription is moot.
    }
    default: {
      wire::Unsubscribe m;
      if (!wire::decode_body(body, &m)) {
        protocol_error(opcode, request_id, Status(ErrorCode::kInvalidArgument, "malformed unsubscribe request"));
        return false;
      }
      auto it = subscriptions_.find(m.subscription_id);
      if (it == subscriptions_.end()) {
        wire::append_error_frame(&out_.pending(), opcode, request_id,
                                 Status(ErrorCode::kNotFound, "no such subscription"));
        return true;
      }
      server_.router_.subscriptions()->local().stop(it->second, push_target(), it->first);
      subscriptions_.erase(it);
      std::string& pending = out_.pending();
      wire::finish_frame(&pending, wire::begin_frame(&pending, Opcode::kUnsubscribe, wire::kFlagResponse, request_id));
      return true;
    }
  }
}

PushTarget BinaryConnection::push_target() { return PushTarget{reactor_.shard(), this, generation_}; }

void BinaryConnection::deliver_push(uint64_t generation, std::vector<std::string> frame_pieces) {
  if (generation != generation_ || fd_ < 0 || phase_ == Phase::kClosing) return;  // That connection is gone.
  RUNNEL_ASSERT(!frame_pieces.empty() && frame_pieces.front().size() >= wire::kFrameHeaderBytes);
  const wire::FrameHeader h = wire::read_frame_header(frame_pieces.front().data());
  if ((h.flags & wire::kFlagError) != 0) subscriptions_.erase(h.request_id);  // It ended.
  if (h.opcode == static_cast<uint16_t>(Opcode::kSubscriptionData) && (h.flags & wire::kFlagError) == 0 &&
      out_.queued_bytes() >= limits_.output_bytes_max) {
    // The subscriber does not read what it asked for: end the subscription
    // rather than hold more for it (the records are not lost: it can
    // resubscribe from the seq_num after the last one it received).
    auto it = subscriptions_.find(h.request_id);
    if (it == subscriptions_.end()) return;  // Ended already; this push was on its way.
    server_.router_.subscriptions()->local().stop(it->second, push_target(), it->first);
    subscriptions_.erase(it);
    wire::append_error_frame(
        &out_.pending(), static_cast<uint16_t>(Opcode::kSubscriptionData), h.request_id,
        Status(ErrorCode::kOverloaded, fmt::format("the subscriber is not reading: {} bytes wait unsent on its "
                                                   "connection (server.output_bytes_max); resubscribe",
                                                   out_.queued_bytes())),
        wire::kFlagPush);
    if (!in_process_input_) flush_output();
    return;
  }
  for (std::string& piece : frame_pieces) out_.push(std::move(piece));
  if (!in_process_input_) flush_output();
}

void BinaryConnection::end_subscriptions() {
  Subscriptions& hub = server_.router_.subscriptions()->local();
  for (const auto& [id, owner] : subscriptions_) hub.stop(owner, push_target(), id);
  subscriptions_.clear();
}

void BinaryConnection::on_answer(std::string frame) {
  RUNNEL_ASSERT(in_flight_ > 0);
  in_flight_--;
  if (fd_ < 0 || phase_ == Phase::kClosing) return maybe_finish_close();
  out_.push(std::move(frame));
  if (in_process_input_) return;  // Sent when the input loop ends.
  flush_output();
  if (!saturated() && in_end_ > in_start_) process_input();
  post_recv();
}

void BinaryConnection::protocol_error(uint16_t opcode, uint32_t request_id, const Status& status) {
  server_.protocol_errors_.inc();
  log_debug("binary connection closed for a protocol error: {}", status.to_string());
  wire::append_error_frame(&out_.pending(), opcode, request_id, status);
  drain();
}

void BinaryConnection::flush_output() {
  if (phase_ == Phase::kClosing || fd_ < 0) return;
  if (out_.idle() && phase_ == Phase::kDraining && in_flight_ == 0) return begin_close();
  if (!out_.flush(reactor_, fd_, &send_op_)) begin_close();  // The TLS session failed.
}

void BinaryConnection::on_sent(int res) {
  const SocketOutput::Sent sent = out_.on_sent(reactor_, fd_, &send_op_, res);
  if (phase_ == Phase::kClosing) return maybe_finish_close();
  if (sent == SocketOutput::Sent::kFailed) {
    log_debug("binary send: {}", std::strerror(-res));
    begin_close();
    return;
  }
  if (sent == SocketOutput::Sent::kMore) return;
  flush_output();
  // Output drained: resume frames that waited in the buffer, then reading.
  if (phase_ != Phase::kClosing && !saturated() && in_end_ > in_start_) process_input();
  post_recv();
}

void BinaryConnection::on_timer() {
  if (fd_ < 0 || phase_ == Phase::kClosing) return;
  const uint64_t silent_us = reactor_.now_us() - last_heard_us_;
  const uint64_t interval_us = uint64_t{limits_.heartbeat_ms} * 1000;
  if (silent_us >= kSilentIntervalsMax * interval_us) {
    log_debug("binary connection silent for {} ms: closing", silent_us / 1000);
    begin_close();
    return;
  }
  if (silent_us >= interval_us && phase_ == Phase::kServing) {
    std::string& pending = out_.pending();
    wire::finish_frame(&pending, wire::begin_frame(&pending, Opcode::kPing, 0, 0));
    flush_output();
  }
  timer_.arm_after_us(interval_us);
}

void BinaryConnection::shut_down() {
  if (fd_ < 0 || phase_ == Phase::kClosing) return;
  // Subscriptions end here, telling the client why.
  for (const auto& [id, owner] : subscriptions_) {
    wire::append_error_frame(&out_.pending(), static_cast<uint16_t>(Opcode::kSubscriptionData), id,
                             Status(ErrorCode::kShuttingDown, "the server is stopping"), wire::kFlagPush);
  }
  end_subscriptions();
  drain();  // Stop reading; answer what is in flight, then close.
  cancel_recv();
  flush_output();
}

void BinaryConnection::begin_close() {
  if (phase_ == Phase::kClosing || fd_ < 0) return;
  end_subscriptions();
  phase_ = Phase::kClosing;
  timer_.cancel();
  // Wakes an in-flight recv (it completes with 0) so the slot can be freed.
  ::shutdown(fd_, SHUT_RDWR);
  maybe_finish_close();
}

void BinaryConnection::maybe_finish_close() {
  if (phase_ != Phase::kClosing || recv_ != Recv::kNone || cancel_in_flight_ || out_.in_flight() || fd_ < 0) return;
  ::close(fd_);
  fd_ = -1;
  if (connection_counted_) server_.router_.release_connection(principal_.id());
  connection_counted_ = false;
  tls_.reset();
  principal_ = auth::Principal();
  generation_++;  // Answers still on their way are for a connection that is gone.
  out_.reset();
  server_.acceptor_.connection_closed(this);
}

}  // namespace runnel
