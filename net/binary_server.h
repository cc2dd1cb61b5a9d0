#pragma once
// The binary protocol port (proto/PROTOCOL.md) on one shard: BinaryServer
// accepts (net/acceptor.h: every shard on its own SO_REUSEPORT socket, so a
// connection lives where it was accepted — the kernel spreads connections
// over shards, and no accept thread hands them off), and each
// BinaryConnection reads frames, hands requests to the Router, and
// writes the answers back in whatever order they complete.
//
// Receiving: one multishot recv per connection takes buffers from the
// shard's provided buffer ring (net/recv_buffer_ring.h) as data arrives, and
// frames are handled straight from them; only the part of a frame that
// spans buffers is copied into the connection's own buffer, which exists
// only while it holds one. A large frame (an append of many records) is
// received directly into a buffer of its size instead: the multishot recv
// is cancelled, and plain recvs sized for the frames go on until a small
// frame comes again. When the kernel has no free ring
// buffer, or the ring could not be registered, plain recvs into the
// connection's buffer carry on.
//
// A connection is bounded: frames up to frame_bytes_max, at most
// requests_in_flight_max requests and output_bytes_max bytes of unsent
// answers — beyond those it stops reading (TCP back-pressure) until answers
// drain. A frame that breaks the protocol gets an error frame and the
// connection closes; other connections never notice. Silent connections are
// pinged every heartbeat_ms and closed after three silent intervals.

#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "core/metrics.h"
#include "core/reactor.h"
#include "net/acceptor.h"
#include "net/auth/access.h"
#include "net/recv_buffer_ring.h"
#include "net/router.h"
#include "net/socket_output.h"
#include "net/subscriptions.h"
#include "proto/tls/tls_session.h"

namespace runnel {

struct BinaryLimits {
  uint32_t frame_bytes_max = 2u << 20;
  uint32_t requests_in_flight_max = 1024;
  uint32_t subscriptions_max = 1024;  // Open at once per connection; one more is refused (kOverloaded).
  // Unsent answers and pushes; beyond it the connection is not read, and
  // a subscription with more to push is ended (kOverloaded). Also the most
  // credit one subscription may hold.
  uint64_t output_bytes_max = 64ull << 20;
  uint32_t heartbeat_ms = 5000;
};

struct BinaryServerOptions {
  BinaryLimits limits;
  // Access control: the hello must carry a valid token, every request is
  // checked against it, and a connection whose token is revoked or expires
  // is ended within kAccessCheckMs.
  bool auth = false;
  // TLS on this port (null: plaintext). Replaced by set_tls_context (reload).
  std::shared_ptr<const TlsContext> tls;
  uint32_t connections_max = 10000;
  std::string server_version;
};

class BinaryServer;

class BinaryConnection final : public AcceptedConnection, private PushSink {
 public:
  BinaryConnection(BinaryServer& server, Reactor& reactor);
  ~BinaryConnection() override;
  BinaryConnection(const BinaryConnection&) = delete;
  BinaryConnection& operator=(const BinaryConnection&) = delete;

  void start(int fd) override;
  void shut_down() override;  // Answers what is in flight, then closes.
  // With access control on: ends the connection (its subscriptions told
  // why) if its token was revoked or has expired.
  void check_access();
  bool open() const override { return fd_ >= 0; }

 private:
  struct RecvOp final : IoCompletion {
    BinaryConnection* c = nullptr;
    void on_complete(int res, uint32_t flags) override { c->on_recv(res, flags); }
  };
  struct CancelOp final : IoCompletion {
    BinaryConnection* c = nullptr;
    void on_complete(int, uint32_t) override { c->on_cancelled(); }
  };
  struct SendOp final : IoCompletion {
    BinaryConnection* c = nullptr;
    void on_complete(int res, uint32_t) override { c->on_sent(res); }
  };

  void on_recv(int res, uint32_t flags);
  void on_cancelled();
  void on_tls_recv(size_t len);  // Ciphertext in tls_in_: decrypted into the input buffer.
  // Handles the whole frames at the front of [data, data + len); returns
  // the bytes they took. Stops at a partial frame, when saturated, or when
  // the connection is closing.
  size_t handle_frames(const char* data, size_t len);
  void take_ring_buffer(const char* data, size_t len);
  void keep_input(const char* data, size_t len);  // Appends to the connection's own buffer.
  bool large_frame_pending() const;
  void cancel_recv();
  void on_sent(int res);
  void on_timer();
  void process_input();
  bool handle_frame(const char* frame, uint32_t frame_bytes);  // False: the connection is closing.
  void on_answer(std::string frame);
  // SUBSCRIBE, CREDIT, UNSUBSCRIBE (net/subscriptions.h). False: closing.
  bool handle_subscription_frame(const TokenInfo* who, uint16_t opcode, uint32_t request_id, std::string_view body);
  PushTarget push_target();
  void deliver_push(uint64_t generation, std::vector<std::string> frame_pieces) override;
  void end_subscriptions();
  void protocol_error(uint16_t opcode, uint32_t request_id, const Status& status);
  // The token asking now (null while access control is off), or null with
  // the connection ending (its token revoked or expired): *refused set.
  const TokenInfo* who(bool* refused);
  void lose_access(auth::Refusal refusal);
  bool saturated() const;
  void post_recv();
  void resize_input(size_t capacity);
  void flush_output();
  void begin_close();
  void maybe_finish_close();

  BinaryServer& server_;
  Reactor& reactor_;
  const BinaryLimits& limits_;
  RecvOp recv_op_;
  SendOp send_op_;
  CancelOp cancel_op_;
  Timer timer_;
  std::unique_ptr<char[]> in_;
  size_t in_capacity_ = 0;
  size_t in_start_ = 0;  // Unparsed bytes are [in_start_, in_end_).
  size_t in_end_ = 0;
  SocketOutput out_;
  uint64_t generation_ = 0;  // Answers for an earlier connection in this slot are dropped.
  std::map<uint32_t, uint32_t> subscriptions_;  // Subscription id -> the shard it lives on.
  auth::Principal principal_;                   // Signed in by the hello (access control on).
  bool connection_counted_ = false;             // Against its token's connections_max (Router).
  // Over TLS: the session, and the buffer ciphertext is received into (the
  // receive ring and direct large-frame receives are for plaintext only).
  std::unique_ptr<TlsSession> tls_;
  std::unique_ptr<char[]> tls_in_;
  uint32_t in_flight_ = 0;
  uint64_t last_heard_us_ = 0;
  int fd_ = -1;
  // Where the connection is in its life (an open slot: fd_ >= 0):
  //   kAwaitingHello --hello--> kServing --protocol error / shutdown--> kDraining
  //   (stop reading, answer what is in flight, then close) --> kClosing
  //   (socket shut down; the slot frees once no operation is in flight).
  // Silence or a failed send or recv goes straight to kClosing.
  enum class Phase : uint8_t { kAwaitingHello, kServing, kDraining, kClosing };
  Phase phase_ = Phase::kAwaitingHello;
  bool reading() const { return phase_ == Phase::kAwaitingHello || phase_ == Phase::kServing; }
  void drain() {
    if (reading()) phase_ = Phase::kDraining;
  }
  // The receive side. At most one recv is in flight: a multishot one into
  // the server's buffer ring (small frames), or a plain one into this
  // connection's buffer (the ring ran dry, or large frames). A cancel of the
  // multishot recv completes apart from the recv's own last completion.
  enum class Recv : uint8_t { kNone, kPlain, kMultishot };
  Recv recv_ = Recv::kNone;
  bool cancel_in_flight_ = false;
  bool plain_recv_once_ = false;   // The ring ran dry: the next recv uses our buffer.
  bool large_frames_ = false;      // The latest frame was kDirectRecvMin or more: plain recvs.
  bool in_process_input_ = false;  // Inside the input loop: answers given synchronously wait for its flush.
};

class BinaryServer {
 public:
  BinaryServer(Reactor& reactor, UniqueFd listener, const BinaryServerOptions& options, Router& router);
  BinaryServer(const BinaryServer&) = delete;
  BinaryServer& operator=(const BinaryServer&) = delete;

  static constexpr uint64_t kAccessCheckMs = 250;
  void start();
  bool stopping() const { return acceptor_.stopping(); }
  // New connections use `context` (a reload); open ones keep their session.
  void set_tls_context(std::shared_ptr<const TlsContext> context) { options_.tls = std::move(context); }
  size_t open_connections() const { return acceptor_.open_connections(); }

 private:
  friend class BinaryConnection;

  Reactor& reactor_;
  BinaryServerOptions options_;
  Router& router_;
  Acceptor acceptor_;
  Counter& requests_;
  Counter& protocol_errors_;
  Counter& recv_copied_bytes_;
  Counter& tls_handshakes_;
  Counter& tls_failures_;
  Histogram& append_us_;
  std::unique_ptr<RecvBufferRing> recv_ring_;  // Null: plain recvs only.
  Timer access_timer_;                         // Access control on: every connection's token re-checked.
};

}  // namespace runnel
