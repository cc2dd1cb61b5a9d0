#pragma once
// One HTTP/1.1 connection on the admin port. Lives on the shard that
// accepted it, inside a slot of its HttpServer, from accept to close.
//
// Reads with one recv at a time into a fixed buffer and feeds the parser; a
// complete request goes to the handler, and parsing pauses until the handler
// answers (now or later, e.g. after gathering metrics from every shard), so
// pipelined requests are answered in order. Responses are written with one
// send in flight; while it flies, new responses collect in a second buffer.
//
// Bounded: header and body sizes (parser limits), one request handled at a
// time, output buffered up to kOutputBytesHighWater before reading pauses,
// and deadlines for a request to arrive (request_timeout) and for an idle
// keep-alive connection (idle_timeout), so slow or silent clients cannot hold
// a slot forever.

#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/reactor.h"
#include "net/acceptor.h"
#include "net/http_parser.h"
#include "net/socket_output.h"
#include "proto/tls/tls_session.h"

namespace runnel {

class HttpConnection;
class HttpServer;

struct HttpResponse {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;  // Extra headers.

  // {"error":{"code":"...","message":"..."}} with the given status.
  static HttpResponse error(int status, std::string_view code, std::string_view message);
  static HttpResponse json(int status, std::string body);
};

// The right to answer one request, exactly once. Move-only; it may be kept
// and used later on the same shard. Dropping it unanswered answers 500.
class HttpResponder {
 public:
  HttpResponder() = default;
  explicit HttpResponder(HttpConnection* connection) : connection_(connection) {}
  HttpResponder(HttpResponder&& other) noexcept : connection_(std::exchange(other.connection_, nullptr)) {}
  HttpResponder& operator=(HttpResponder&& other) noexcept;
  HttpResponder(const HttpResponder&) = delete;
  HttpResponder& operator=(const HttpResponder&) = delete;
  ~HttpResponder();

  void respond(HttpResponse response);

 private:
  HttpConnection* connection_ = nullptr;
};

// The request stays valid until the responder is used.
using HttpHandler = std::function<void(const HttpRequest&, HttpResponder)>;

struct HttpConnectionLimits {
  HttpLimits parser;
  uint32_t request_timeout_ms = 10'000;
  uint32_t idle_timeout_ms = 60'000;
};

class HttpConnection final : public AcceptedConnection {
 public:
  static constexpr size_t kReadBufferBytes = 16 * 1024;
  static constexpr size_t kOutputBytesHighWater = 4 * 1024 * 1024;

  HttpConnection(HttpServer& server, Reactor& reactor, const HttpConnectionLimits& limits);
  HttpConnection(const HttpConnection&) = delete;
  HttpConnection& operator=(const HttpConnection&) = delete;
  ~HttpConnection() override;

  // Takes ownership of an accepted socket and starts reading.
  void start(int fd) override;
  // Server shutdown: close now if idle, else after the current response.
  void shut_down() override;
  bool open() const override { return fd_ >= 0; }
  // Open with no request in progress or being answered and nothing left
  // to send: silent since it connected, or an idle keep-alive.
  bool idle() const override;
  uint64_t idle_since_us() const override { return idle_since_us_; }

 private:
  friend class HttpResponder;

  // Each in-flight operation is its own IoCompletion so the CQE knows which.
  struct RecvOp final : IoCompletion {
    HttpConnection* c = nullptr;
    void on_complete(int res, uint32_t flags) override { c->on_recv(res, flags); }
  };
  struct SendOp final : IoCompletion {
    HttpConnection* c = nullptr;
    void on_complete(int res, uint32_t flags) override { c->on_sent(res, flags); }
  };

  void on_recv(int res, uint32_t flags);
  void on_sent(int res, uint32_t flags);
  void on_timer();
  void process_input();
  void dispatch();
  void answer(HttpResponse response);  // Via HttpResponder.
  void queue_response(const HttpResponse& response, bool close_after);
  void queue_raw(std::string_view bytes);
  void flush_output();
  void post_recv();
  void arm_timer();
  void begin_close();
  void maybe_finish_close();

  HttpServer& server_;
  Reactor& reactor_;
  HttpConnectionLimits limits_;
  RecvOp recv_op_;
  SendOp send_op_;
  Timer timer_;
  std::unique_ptr<HttpRequestParser> parser_;
  std::unique_ptr<char[]> read_buffer_;  // Over TLS: ciphertext; the parser reads tls_plain_.
  std::unique_ptr<TlsSession> tls_;
  std::string tls_plain_;
  const char* read_data() const { return tls_ ? tls_plain_.data() : read_buffer_.get(); }
  size_t read_len_ = 0;
  size_t read_pos_ = 0;
  SocketOutput out_;

  int fd_ = -1;
  bool recv_in_flight_ = false;
  bool handler_pending_ = false;
  bool in_process_input_ = false;
  bool peer_closed_ = false;
  bool close_after_send_ = false;  // Answer is final (error, Connection: close, shutdown).
  bool closing_ = false;           // Tearing down; no new work.
  uint64_t request_started_us_ = 0;
  uint64_t idle_since_us_ = 0;  // Connected, or its last answer queued.
  bool answered_any_ = false;   // A connection that never sent a request is on the request timeout.
};

}  // namespace runnel
