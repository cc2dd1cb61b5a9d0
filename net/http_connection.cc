#include "net/http_connection.h"

#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "core/log.h"
#include "net/http_server.h"
#include "net/json.h"

namespace runnel {
namespace {

std::string_view reason_phrase(int status) {
  switch (status) {
    case 100: return "Continue";
    case 200: return "OK";
    case 201: return "Created";
    case 204: return "No Content";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 413: return "Content Too Large";
    case 416: return "Range Not Satisfiable";
    case 417: return "Expectation Failed";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 507: return "Insufficient Storage";
    default: return status < 400 ? "OK" : status < 500 ? "Client Error" : "Server Error";
  }
}

std::string_view error_code_for_status(int status) {
  switch (status) {
    case 400: return "bad_request";
    case 408: return "request_timeout";
    case 413: return "body_too_large";
    case 417: return "expectation_failed";
    case 431: return "headers_too_large";
    default: return status < 500 ? "bad_request" : "internal";
  }
}

}  // namespace

HttpResponse HttpResponse::error(int status, std::string_view code, std::string_view message) {
  HttpResponse r;
  r.status = status;
  r.body = fmt::format("{{\"error\":{{\"code\":{},\"message\":{}}}}}\n", json_quote(code), json_quote(message));
  return r;
}

HttpResponse HttpResponse::json(int status, std::string body) {
  HttpResponse r;
  r.status = status;
  r.body = std::move(body);
  return r;
}

HttpResponder& HttpResponder::operator=(HttpResponder&& other) noexcept {
  if (this != &other) {
    if (connection_ != nullptr) respond(HttpResponse::error(500, "internal", "request was not answered"));
    connection_ = std::exchange(other.connection_, nullptr);
  }
  return *this;
}

HttpResponder::~HttpResponder() {
  if (connection_ != nullptr) {
    log_error("admin handler dropped a request without answering it");
    respond(HttpResponse::error(500, "internal", "request was not answered"));
  }
}

void HttpResponder::respond(HttpResponse response) {
  RUNNEL_ASSERT(connection_ != nullptr);
  std::exchange(connection_, nullptr)->answer(std::move(response));
}

HttpConnection::HttpConnection(HttpServer& server, Reactor& reactor, const HttpConnectionLimits& limits)
    : server_(server), reactor_(reactor), limits_(limits), timer_(reactor, [this] { on_timer(); }) {
  recv_op_.c = this;
  send_op_.c = this;
  read_buffer_ = std::make_unique<char[]>(kReadBufferBytes);
}

HttpConnection::~HttpConnection() {
  if (fd_ >= 0) ::close(fd_);
}

void HttpConnection::start(int fd) {
  RUNNEL_ASSERT(fd_ < 0);
  fd_ = fd;
  parser_ = std::make_unique<HttpRequestParser>(limits_.parser);
  read_len_ = read_pos_ = 0;
  out_.reset();
  if (server_.tls_ != nullptr) {
    tls_ = std::make_unique<TlsSession>(server_.tls_);
    out_.set_tls(tls_.get());
  }
  recv_in_flight_ = handler_pending_ = in_process_input_ = false;
  peer_closed_ = close_after_send_ = closing_ = false;
  request_started_us_ = 0;
  idle_since_us_ = reactor_.now_us();
  answered_any_ = false;
  post_recv();
  arm_timer();
}

bool HttpConnection::idle() const {
  return fd_ >= 0 && !closing_ && !handler_pending_ && !parser_->in_progress() && read_pos_ >= read_len_ && out_.idle();
}

void HttpConnection::post_recv() {
  if (recv_in_flight_ || closing_ || peer_closed_) return;
  io_uring_sqe* sqe = reactor_.get_sqe();
  io_uring_prep_recv(sqe, fd_, read_buffer_.get(), kReadBufferBytes, 0);
  Reactor::set_completion(sqe, &recv_op_);
  recv_in_flight_ = true;
}

void HttpConnection::arm_timer() {
  if (closing_) return;
  if (handler_pending_) {
    timer_.cancel();  // Our own work is not the client's delay.
  } else if (parser_->in_progress() || read_pos_ < read_len_) {
    if (request_started_us_ == 0) request_started_us_ = reactor_.now_us();
    timer_.arm_at_us(request_started_us_ + uint64_t{limits_.request_timeout_ms} * 1000);
  } else if (!answered_any_) {
    // Connected and silent: a request is due, not a keep-alive's patience.
    timer_.arm_at_us(idle_since_us_ + uint64_t{limits_.request_timeout_ms} * 1000);
  } else {
    timer_.arm_after_us(uint64_t{limits_.idle_timeout_ms} * 1000);
  }
}

void HttpConnection::on_timer() {
  if (closing_ || handler_pending_) return;
  if (parser_->in_progress()) {
    server_.request_rejected(408);
    queue_response(HttpResponse::error(408, "request_timeout", "request did not arrive in time"), true);
    flush_output();
  } else {
    begin_close();  // Idle keep-alive connection: close quietly.
  }
}

void HttpConnection::on_recv(int res, uint32_t) {
  recv_in_flight_ = false;
  if (closing_) {
    maybe_finish_close();
    return;
  }
  if (res <= 0) {
    if (res < 0 && res != -ECONNRESET) log_debug("admin recv: {}", std::strerror(-res));
    peer_closed_ = true;
    // A request whose body runs to EOF completes now; a truncated one does not.
    if (res == 0 && !handler_pending_ && parser_->in_progress() &&
        parser_->finish() == HttpRequestParser::Result::kRequestReady) {
      dispatch();
    }
    if (!handler_pending_ && out_.idle()) begin_close();
    return;
  }
  if (tls_ != nullptr) {
    // Everything before was parsed (a recv is posted only then): decrypt afresh.
    const bool was_done = tls_->handshake_done();
    tls_plain_.clear();
    if (Status s = tls_->received(std::string_view(read_buffer_.get(), static_cast<size_t>(res)), &tls_plain_); !s) {
      server_.tls_failures_.inc();
      log_debug("admin connection: {}", s.message());
      close_after_send_ = true;  // The alert goes out, then the connection closes.
      flush_output();
      return;
    }
    if (!was_done && tls_->handshake_done()) server_.tls_handshakes_.inc();
    if (tls_->peer_closed()) peer_closed_ = true;
    read_len_ = tls_plain_.size();
  } else {
    read_len_ = static_cast<size_t>(res);
  }
  read_pos_ = 0;
  process_input();
}

void HttpConnection::process_input() {
  if (in_process_input_) return;  // A synchronous answer re-enters; the outer loop continues.
  in_process_input_ = true;
  while (!closing_ && !close_after_send_ && !handler_pending_ && read_pos_ < read_len_ &&
         out_.queued_bytes() < kOutputBytesHighWater) {
    size_t consumed = 0;
    auto result = parser_->feed(read_data() + read_pos_, read_len_ - read_pos_, &consumed);
    read_pos_ += consumed;
    if (parser_->in_progress() && request_started_us_ == 0) request_started_us_ = reactor_.now_us();
    switch (result) {
      case HttpRequestParser::Result::kNeedMore:
        break;
      case HttpRequestParser::Result::kExpectsContinue:
        queue_raw("HTTP/1.1 100 Continue\r\n\r\n");
        break;
      case HttpRequestParser::Result::kRequestReady:
        dispatch();
        break;
      case HttpRequestParser::Result::kError:
        server_.request_rejected(parser_->error_status());
        queue_response(HttpResponse::error(parser_->error_status(), error_code_for_status(parser_->error_status()),
                                           parser_->error_message()),
                       true);
        break;
    }
  }
  in_process_input_ = false;
  flush_output();
  if (closing_) return;
  if (!handler_pending_ && !close_after_send_ && read_pos_ == read_len_) post_recv();
  arm_timer();
}

void HttpConnection::dispatch() {
  handler_pending_ = true;
  timer_.cancel();
  server_.handler()(parser_->request(), HttpResponder(this));
}

void HttpConnection::answer(HttpResponse response) {
  RUNNEL_ASSERT(handler_pending_);
  handler_pending_ = false;
  const HttpRequest& request = parser_->request();
  uint64_t started = request_started_us_ != 0 ? request_started_us_ : reactor_.now_us();
  server_.request_finished(response.status, Reactor::clock_us() - started);
  bool close_after = !request.keep_alive || server_.stopping() || peer_closed_;
  if (request.method == "HEAD") {
    // Same headers as GET, no body.
    size_t length = response.body.size();
    response.body.clear();
    response.headers.emplace_back("Content-Length", std::to_string(length));
  }
  if (fd_ >= 0 && !closing_) queue_response(response, close_after);
  parser_->next();
  request_started_us_ = 0;
  answered_any_ = true;
  idle_since_us_ = reactor_.now_us();
  if (closing_) {
    maybe_finish_close();
    return;
  }
  if (!in_process_input_) process_input();
}

void HttpConnection::queue_raw(std::string_view bytes) { out_.pending().append(bytes); }

void HttpConnection::queue_response(const HttpResponse& response, bool close_after) {
  bool has_length = false;
  for (const auto& [name, value] : response.headers) {
    if (name == "Content-Length") has_length = true;
  }
  std::string& pending = out_.pending();
  fmt::format_to(std::back_inserter(pending), "HTTP/1.1 {} {}\r\nContent-Type: {}\r\n", response.status,
                 reason_phrase(response.status), response.content_type);
  // A 204 has no body and no Content-Length (RFC 9110, 8.6).
  if (!has_length && response.status != 204) {
    fmt::format_to(std::back_inserter(pending), "Content-Length: {}\r\n", response.body.size());
  }
  for (const auto& [name, value] : response.headers) {
    fmt::format_to(std::back_inserter(pending), "{}: {}\r\n", name, value);
  }
  pending.append(close_after ? "Connection: close\r\n\r\n" : "Connection: keep-alive\r\n\r\n");
  pending.append(response.body);
  if (close_after) close_after_send_ = true;
}

void HttpConnection::flush_output() {
  if (closing_ || fd_ < 0) return;
  if (out_.idle()) {
    if (close_after_send_ || (peer_closed_ && !handler_pending_)) begin_close();
    return;
  }
  if (!out_.flush(reactor_, fd_, &send_op_)) begin_close();  // The TLS session failed.
}

void HttpConnection::on_sent(int res, uint32_t) {
  const SocketOutput::Sent sent = out_.on_sent(reactor_, fd_, &send_op_, res);
  if (closing_) {
    maybe_finish_close();
    return;
  }
  if (sent == SocketOutput::Sent::kFailed) {
    log_debug("admin send: {}", std::strerror(-res));
    begin_close();
    return;
  }
  if (sent == SocketOutput::Sent::kMore) return;
  flush_output();
  // Output drained below the high-water mark: resume parsing buffered input.
  if (!closing_ && !out_.in_flight() && read_pos_ < read_len_) process_input();
}

void HttpConnection::shut_down() {
  if (fd_ < 0 || closing_) return;
  // A request still arriving is not in-flight work yet: drop it with the
  // connection. One being answered finishes and goes out with Connection: close.
  if (!handler_pending_ && out_.idle()) {
    begin_close();
  } else {
    close_after_send_ = true;  // The answer in progress goes out with "Connection: close".
  }
}

void HttpConnection::begin_close() {
  if (closing_ || fd_ < 0) return;
  closing_ = true;
  timer_.cancel();
  // Wakes an in-flight recv (it completes with 0) so the slot can be freed.
  ::shutdown(fd_, SHUT_RDWR);
  maybe_finish_close();
}

void HttpConnection::maybe_finish_close() {
  if (!closing_ || recv_in_flight_ || out_.in_flight() || handler_pending_ || fd_ < 0) return;
  ::close(fd_);
  fd_ = -1;
  parser_.reset();
  out_.reset();
  tls_.reset();
  server_.connection_closed(this);
}

}  // namespace runnel
