#include "net/http_parser.h"

#include <strings.h>

#include <algorithm>

namespace runnel {

std::string_view HttpRequest::header(std::string_view name) const {
  for (const auto& [key, value] : headers) {
    if (key.size() == name.size() && ::strncasecmp(key.data(), name.data(), name.size()) == 0) return value;
  }
  return {};
}

HttpRequestParser::HttpRequestParser(const HttpLimits& limits) : limits_(limits) {
  llhttp_settings_init(&settings_);
  settings_.on_message_begin = on_message_begin;
  settings_.on_url = on_url;
  settings_.on_header_field = on_header_field;
  settings_.on_header_value = on_header_value;
  settings_.on_headers_complete = on_headers_complete;
  settings_.on_body = on_body;
  settings_.on_message_complete = on_message_complete;
  llhttp_init(&parser_, HTTP_REQUEST, &settings_);
  parser_.data = this;
}

int HttpRequestParser::fail(int status, std::string message) {
  error_status_ = status;
  error_message_ = std::move(message);
  return HPE_USER;
}

bool HttpRequestParser::charge_header_bytes(size_t len) {
  header_bytes_ += len;
  return header_bytes_ <= limits_.header_bytes_max;
}

int HttpRequestParser::on_message_begin(llhttp_t* p) {
  self(p).in_progress_ = true;
  return 0;
}

int HttpRequestParser::on_url(llhttp_t* p, const char* at, size_t len) {
  auto& s = self(p);
  if (!s.charge_header_bytes(len)) return s.fail(431, "request line and headers exceed the limit");
  s.request_.target.append(at, len);
  return 0;
}

int HttpRequestParser::on_header_field(llhttp_t* p, const char* at, size_t len) {
  auto& s = self(p);
  if (!s.charge_header_bytes(len)) return s.fail(431, "request line and headers exceed the limit");
  if (s.request_.headers.empty() || s.in_value_) {
    if (s.request_.headers.size() >= s.limits_.header_count_max) return s.fail(431, "too many headers");
    s.request_.headers.emplace_back();
    s.in_value_ = false;
  }
  s.request_.headers.back().first.append(at, len);
  return 0;
}

int HttpRequestParser::on_header_value(llhttp_t* p, const char* at, size_t len) {
  auto& s = self(p);
  if (!s.charge_header_bytes(len)) return s.fail(431, "request line and headers exceed the limit");
  s.in_value_ = true;
  s.request_.headers.back().second.append(at, len);
  return 0;
}

int HttpRequestParser::on_headers_complete(llhttp_t* p) {
  auto& s = self(p);
  HttpRequest& r = s.request_;
  r.method = llhttp_method_name(static_cast<llhttp_method_t>(llhttp_get_method(p)));
  size_t q = r.target.find('?');
  r.path = r.target.substr(0, q);
  r.query = q == std::string::npos ? std::string() : r.target.substr(q + 1);
  if (r.path.empty() || r.path[0] != '/') return s.fail(400, "request target must be an absolute path");
  // We ignore Upgrade, as a server may (RFC 9110 7.8): the request is answered
  // as plain HTTP/1.1. Left set, llhttp would take every later byte on the
  // connection for another protocol and fail the next keep-alive request.
  p->upgrade = 0;
  // Content-Length is known here; refuse an oversized body before reading it.
  if ((p->flags & F_CONTENT_LENGTH) && p->content_length > s.limits_.body_bytes_max) {
    return s.fail(413, "request body exceeds the limit of " + std::to_string(s.limits_.body_bytes_max) + " bytes");
  }
  std::string_view expect = r.header("Expect");
  if (!expect.empty()) {
    if (expect.size() == 12 && ::strncasecmp(expect.data(), "100-continue", 12) == 0) {
      s.continue_pending_ = true;
      return HPE_PAUSED;
    }
    return s.fail(417, "unsupported Expect header");
  }
  return 0;
}

int HttpRequestParser::on_body(llhttp_t* p, const char* at, size_t len) {
  auto& s = self(p);
  if (s.request_.body.size() + len > s.limits_.body_bytes_max) {
    return s.fail(413, "request body exceeds the limit of " + std::to_string(s.limits_.body_bytes_max) + " bytes");
  }
  s.request_.body.append(at, len);
  return 0;
}

int HttpRequestParser::on_message_complete(llhttp_t* p) {
  auto& s = self(p);
  s.request_.keep_alive = llhttp_should_keep_alive(p) != 0;
  s.complete_ = true;
  return HPE_PAUSED;
}

HttpRequestParser::Result HttpRequestParser::feed(const char* data, size_t len, size_t* consumed) {
  *consumed = 0;
  if (error_status_ != 0) return Result::kError;
  if (complete_) return Result::kRequestReady;
  llhttp_errno_t err = llhttp_execute(&parser_, data, len);
  if (err == HPE_OK) {
    *consumed = len;
    return Result::kNeedMore;
  }
  if (err == HPE_PAUSED) {
    *consumed = static_cast<size_t>(llhttp_get_error_pos(&parser_) - data);
    llhttp_resume(&parser_);
    if (complete_) return Result::kRequestReady;
    if (continue_pending_) {
      continue_pending_ = false;
      return Result::kExpectsContinue;
    }
    return Result::kNeedMore;  // Not reached: we pause only in the two cases above.
  }
  if (err == HPE_PAUSED_UPGRADE) {
    fail(400, "protocol upgrades are not supported");
    return Result::kError;
  }
  if (error_status_ == 0) {
    const char* reason = llhttp_get_error_reason(&parser_);
    fail(400, std::string("malformed HTTP request: ") + (reason != nullptr ? reason : llhttp_errno_name(err)));
  }
  return Result::kError;
}

HttpRequestParser::Result HttpRequestParser::finish() {
  if (error_status_ != 0) return Result::kError;
  if (complete_) return Result::kRequestReady;
  llhttp_errno_t err = llhttp_finish(&parser_);
  if (err == HPE_PAUSED && complete_) {
    llhttp_resume(&parser_);
    return Result::kRequestReady;
  }
  if (err != HPE_OK) {
    fail(400, "connection closed in the middle of a request");
    return Result::kError;
  }
  return Result::kNeedMore;
}

void HttpRequestParser::next() {
  request_ = HttpRequest();
  header_bytes_ = 0;
  in_value_ = false;
  in_progress_ = false;
  complete_ = false;
}

}  // namespace runnel
