#pragma once
// HttpServer: the admin HTTP port on one shard. Every shard runs one, each
// accepting on its own SO_REUSEPORT socket with a multishot accept, so an
// admin request never crosses shards to be served (handlers may still ask
// other shards, by message, for what they own).
//
// Connections live in slots created on demand up to connections_max and
// reused after close; a connection beyond the limit gets a 503 and is closed
// at once. On shutdown the server stops accepting, closes idle connections,
// lets busy ones finish their current response, and holds the reactor until
// the last one is gone.

#include <memory>
#include <string>
#include <vector>

#include "core/metrics.h"
#include "core/reactor.h"
#include "net/http_connection.h"
#include "net/socket.h"

namespace runnel {

struct HttpServerOptions {
  HttpConnectionLimits limits;
  uint32_t connections_max = 256;
};

class HttpServer {
 public:
  HttpServer(Reactor& reactor, UniqueFd listener, const HttpServerOptions& options, HttpHandler handler);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Starts accepting and registers the shutdown hook. Call on the shard.
  void start();

  bool stopping() const { return stopping_; }
  size_t open_connections() const { return open_; }

 private:
  friend class HttpConnection;

  struct AcceptOp final : IoCompletion {
    HttpServer* server = nullptr;
    void on_complete(int res, uint32_t flags) override { server->on_accept(res, flags); }
  };

  void arm_accept();
  void on_accept(int res, uint32_t flags);
  void reject(int fd);
  void stop();
  void maybe_release();

  // Called by connections.
  const HttpHandler& handler() const { return handler_; }
  void connection_closed(HttpConnection* connection);
  void request_finished(int status, uint64_t duration_us);
  void request_rejected(int status);

  Reactor& reactor_;
  UniqueFd listener_;
  HttpServerOptions options_;
  HttpHandler handler_;
  AcceptOp accept_op_;
  Timer accept_retry_;
  std::vector<std::unique_ptr<HttpConnection>> slots_;
  std::vector<HttpConnection*> free_slots_;
  size_t open_ = 0;
  bool accept_in_flight_ = false;
  bool stopping_ = false;
  bool holding_ = false;

  Gauge& connections_open_;
  Counter& connections_accepted_;
  Counter& connections_rejected_;
  Counter& accept_errors_;
  Counter& requests_2xx_;
  Counter& requests_4xx_;
  Counter& requests_5xx_;
  Histogram& request_us_;
};

}  // namespace runnel
