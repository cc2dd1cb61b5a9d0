#pragma once
// HttpRequestParser: incremental HTTP/1.1 request parsing with hard limits,
// on top of llhttp. Pure logic, no I/O, so it is unit-tested and fuzzed on
// its own; HttpConnection feeds it bytes as they arrive.
//
// It stops after each complete request (so responses go out in order and a
// pipelined burst is handled one request at a time) and after the headers of
// a request that asks for "Expect: 100-continue".

#include <llhttp.h>

#include <cstddef>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace runnel {

struct HttpRequest {
  std::string method;  // "GET", "POST", ...
  std::string target;  // As sent: "/v1/streams?limit=10"
  std::string path;    // Target up to '?', not percent-decoded.
  std::string query;   // After '?', without it.
  std::vector<std::pair<std::string, std::string>> headers;  // In order; names as sent.
  std::string body;    // De-chunked.
  bool keep_alive = true;

  // Case-insensitive header lookup; the first match, or empty.
  std::string_view header(std::string_view name) const;
};

struct HttpLimits {
  size_t header_bytes_max = 16 * 1024;   // Request line plus all header lines.
  size_t body_bytes_max = 1024 * 1024;
  size_t header_count_max = 100;
};

class HttpRequestParser {
 public:
  enum class Result {
    kNeedMore,          // Everything given was consumed; feed more.
    kRequestReady,      // request() is complete; call next() after answering it.
    kExpectsContinue,   // Headers done and the client waits for "100 Continue".
    kError,             // error_status() / error_message() say why; stop reading.
  };

  explicit HttpRequestParser(const HttpLimits& limits);
  HttpRequestParser(const HttpRequestParser&) = delete;
  HttpRequestParser& operator=(const HttpRequestParser&) = delete;

  // Parses up to `len` bytes; *consumed says how many were used. Call again
  // with the rest after kRequestReady (and next()) or kExpectsContinue.
  Result feed(const char* data, size_t len, size_t* consumed);

  // Call at end of input: completes a request whose body ends at EOF, or
  // reports a truncated one. Returns kNeedMore when nothing was pending.
  Result finish();

  HttpRequest& request() { return request_; }
  // Forget the answered request and parse the next one.
  void next();

  // True once any byte of the current request has arrived.
  bool in_progress() const { return in_progress_; }

  int error_status() const { return error_status_; }  // 400, 413, 431
  const std::string& error_message() const { return error_message_; }

 private:
  static int on_message_begin(llhttp_t* p);
  static int on_url(llhttp_t* p, const char* at, size_t len);
  static int on_header_field(llhttp_t* p, const char* at, size_t len);
  static int on_header_value(llhttp_t* p, const char* at, size_t len);
  static int on_headers_complete(llhttp_t* p);
  static int on_body(llhttp_t* p, const char* at, size_t len);
  static int on_message_complete(llhttp_t* p);
  static HttpRequestParser& self(llhttp_t* p) { return *static_cast<HttpRequestParser*>(p->data); }
  int fail(int status, std::string message);
  bool charge_header_bytes(size_t len);

  HttpLimits limits_;
  llhttp_settings_t settings_{};
  llhttp_t parser_{};
  HttpRequest request_;
  size_t header_bytes_ = 0;
  bool in_value_ = false;  // Last header callback was a value (a new field starts a new header).
  bool in_progress_ = false;
  bool complete_ = false;
  bool continue_pending_ = false;
  int error_status_ = 0;
  std::string error_message_;
};

}  // namespace runnel
