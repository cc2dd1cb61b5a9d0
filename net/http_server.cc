#include "net/http_server.h"

#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "core/log.h"

namespace runnel {
namespace {

std::string overloaded_response() {
  constexpr std::string_view kBody = "{\"error\":{\"code\":\"overloaded\",\"message\":\"too many admin connections\"}}\n";
  return fmt::format(
      "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nContent-Length: {}\r\n"
      "Connection: close\r\n\r\n{}",
      kBody.size(), kBody);
}

}  // namespace

HttpServer::HttpServer(Reactor& reactor, UniqueFd listener, const HttpServerOptions& options, HttpHandler handler)
    : handler_(std::move(handler)),
      tls_(options.tls),
      acceptor_(reactor, std::move(listener),
                AcceptorOptions{"admin", "admin HTTP", options.connections_max, overloaded_response(), true},
                [this, &reactor, limits = options.limits] {
                  return std::make_unique<HttpConnection>(*this, reactor, limits);
                }),
      requests_2xx_(reactor.metrics().counter("runnel_admin_requests_total",
                                              "Admin requests answered, by status class.", {{"class", "2xx"}})),
      requests_4xx_(reactor.metrics().counter("runnel_admin_requests_total",
                                              "Admin requests answered, by status class.", {{"class", "4xx"}})),
      requests_5xx_(reactor.metrics().counter("runnel_admin_requests_total",
                                              "Admin requests answered, by status class.", {{"class", "5xx"}})),
      request_us_(reactor.metrics().histogram("runnel_admin_request_seconds",
                                              "Time from a request's first byte to its answer.", 1e-6)),
      tls_handshakes_(
          reactor.metrics().counter("runnel_tls_handshakes_total", "TLS handshakes completed.", {{"port", "admin"}})),
      tls_failures_(reactor.metrics().counter(
          "runnel_tls_failures_total", "TLS sessions that failed (handshake or record errors).", {{"port", "admin"}})) {
}

HttpServer::~HttpServer() = default;

void HttpServer::connection_closed(HttpConnection* connection) { acceptor_.connection_closed(connection); }

void HttpServer::request_finished(int status, uint64_t duration_us) {
  if (status < 400) {
    requests_2xx_.inc();
  } else if (status < 500) {
    requests_4xx_.inc();
  } else {
    requests_5xx_.inc();
  }
  request_us_.record(duration_us);
}

void HttpServer::request_rejected(int status) { request_finished(status, 0); }

}  // namespace runnel
