#pragma once
// HttpServer: the admin HTTP port on one shard. Every shard runs one, each
// accepting on its own SO_REUSEPORT socket (net/acceptor.h), so an admin
// request never crosses shards to be served (handlers may still ask other
// shards, by message, for what they own). A connection beyond
// connections_max gets a 503 and is closed at once; on shutdown idle
// connections close and busy ones finish their current response.

#include <memory>
#include <string>
#include <vector>

#include "core/metrics.h"
#include "core/reactor.h"
#include "net/acceptor.h"
#include "net/http_connection.h"
#include "net/socket.h"

namespace runnel {

struct HttpServerOptions {
  HttpConnectionLimits limits;
  uint32_t connections_max = 256;
  std::shared_ptr<const TlsContext> tls;  // Null: plaintext.
};

class HttpServer {
 public:
  HttpServer(Reactor& reactor, UniqueFd listener, const HttpServerOptions& options, HttpHandler handler);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Starts accepting and registers the shutdown hook. Call on the shard.
  void start() { acceptor_.start(); }

  bool stopping() const { return acceptor_.stopping(); }
  size_t open_connections() const { return acceptor_.open_connections(); }
  // New connections use `context` (a reload); open ones keep their session.
  void set_tls_context(std::shared_ptr<const TlsContext> context) { tls_ = std::move(context); }

 private:
  friend class HttpConnection;

  // Called by connections.
  const HttpHandler& handler() const { return handler_; }
  void connection_closed(HttpConnection* connection);
  void request_finished(int status, uint64_t duration_us);
  void request_rejected(int status);

  HttpHandler handler_;
  std::shared_ptr<const TlsContext> tls_;
  Acceptor acceptor_;
  Counter& requests_2xx_;
  Counter& requests_4xx_;
  Counter& requests_5xx_;
  Histogram& request_us_;
  Counter& tls_handshakes_;
  Counter& tls_failures_;
};

}  // namespace runnel
