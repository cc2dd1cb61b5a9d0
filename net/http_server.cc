#include "net/http_server.h"

#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "core/log.h"

namespace runnel {
namespace {

// After EMFILE/ENFILE, wait before accepting again instead of spinning.
constexpr uint64_t kAcceptRetryUs = 100'000;

std::string overloaded_response() {
  constexpr std::string_view kBody = "{\"error\":{\"code\":\"overloaded\",\"message\":\"too many admin connections\"}}\n";
  return fmt::format(
      "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nContent-Length: {}\r\n"
      "Connection: close\r\n\r\n{}",
      kBody.size(), kBody);
}

}  // namespace

HttpServer::HttpServer(Reactor& reactor, UniqueFd listener, const HttpServerOptions& options, HttpHandler handler)
    : reactor_(reactor),
      listener_(std::move(listener)),
      options_(options),
      handler_(std::move(handler)),
      accept_retry_(reactor, [this] { arm_accept(); }),
      connections_open_(reactor.metrics().gauge("runnel_admin_connections", "Open admin HTTP connections.")),
      connections_accepted_(
          reactor.metrics().counter("runnel_admin_connections_accepted_total", "Admin connections accepted.")),
      connections_rejected_(reactor.metrics().counter("runnel_admin_connections_rejected_total",
                                                      "Admin connections refused because all slots were busy.")),
      accept_errors_(reactor.metrics().counter("runnel_admin_accept_errors_total", "Failed accepts on the admin port.")),
      requests_2xx_(reactor.metrics().counter("runnel_admin_requests_total", "Admin requests answered, by status class.",
                                              {{"class", "2xx"}})),
      requests_4xx_(reactor.metrics().counter("runnel_admin_requests_total", "Admin requests answered, by status class.",
                                              {{"class", "4xx"}})),
      requests_5xx_(reactor.metrics().counter("runnel_admin_requests_total", "Admin requests answered, by status class.",
                                              {{"class", "5xx"}})),
      request_us_(reactor.metrics().histogram("runnel_admin_request_seconds",
                                              "Time from a request's first byte to its answer.", 1e-6)) {
  accept_op_.server = this;
  RUNNEL_ASSERT(options_.connections_max >= 1);
}

HttpServer::~HttpServer() = default;

void HttpServer::start() {
  RUNNEL_ASSERT(reactor_.shard() == this_shard_id());
  reactor_.hold();
  holding_ = true;
  reactor_.on_stop([this] { stop(); });
  arm_accept();
}

void HttpServer::arm_accept() {
  if (stopping_ || accept_in_flight_) return;
  io_uring_sqe* sqe = reactor_.get_sqe();
  io_uring_prep_multishot_accept(sqe, listener_.get(), nullptr, nullptr, SOCK_CLOEXEC);
  Reactor::set_completion(sqe, &accept_op_);
  accept_in_flight_ = true;
}

void HttpServer::on_accept(int res, uint32_t flags) {
  if (!(flags & IORING_CQE_F_MORE)) accept_in_flight_ = false;
  if (res >= 0) {
    if (stopping_) {
      ::close(res);
    } else if (open_ >= options_.connections_max) {
      reject(res);
    } else {
      HttpConnection* connection;
      if (!free_slots_.empty()) {
        connection = free_slots_.back();
        free_slots_.pop_back();
      } else {
        slots_.push_back(std::make_unique<HttpConnection>(*this, reactor_, options_.limits));
        connection = slots_.back().get();
      }
      open_++;
      connections_open_.set(static_cast<int64_t>(open_));
      connections_accepted_.inc();
      connection->start(res);
    }
  } else if (res != -ECANCELED) {
    accept_errors_.inc();
    log_warn("admin accept failed: {}", std::strerror(-res));
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

void HttpServer::reject(int fd) {
  connections_rejected_.inc();
  // Best effort, never blocking the shard: a fresh socket's send buffer has room.
  static const std::string response = overloaded_response();
  [[maybe_unused]] ssize_t n = ::send(fd, response.data(), response.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
  ::close(fd);
}

void HttpServer::stop() {
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

void HttpServer::connection_closed(HttpConnection* connection) {
  RUNNEL_ASSERT(open_ > 0);
  open_--;
  connections_open_.set(static_cast<int64_t>(open_));
  free_slots_.push_back(connection);
  maybe_release();
}

void HttpServer::maybe_release() {
  if (stopping_ && holding_ && open_ == 0 && !accept_in_flight_) {
    listener_.reset();
    holding_ = false;
    reactor_.release();
  }
}

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
