#pragma once
// librunnel's values: what the client library's calls take and return.
// Self-contained (the standard library, runnel/error_codes.h — the
// protocol's error-code table — and runnel/values.h, the data model) so an
// application needs nothing of the server's source tree. The shapes follow docs/REFERENCE.md and
// proto/PROTOCOL.md; every string is owned.

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "runnel/error_codes.h"
#include "runnel/values.h"

// What the shared library exports: the public API, nothing else.
#define RUNNEL_API __attribute__((visibility("default")))

namespace runnel::client {

// The protocol's stable error codes (proto/PROTOCOL.md, "Errors"), plus the
// client's own outcomes, which reuse them: a call that could not reach a
// server in time is kTimeout; a request lost with its connection whose
// effect is unknown is kUnavailable; a call on a closed client is
// kShuttingDown.
enum class ErrorCode : uint16_t {
#define RUNNEL_ERROR_CODE_ENUMERATOR(name, number, text) name = number,
  RUNNEL_ERROR_CODES(RUNNEL_ERROR_CODE_ENUMERATOR)
#undef RUNNEL_ERROR_CODE_ENUMERATOR
};
// "seq_num_mismatch", the name PROTOCOL.md and the CLI use.
RUNNEL_API const char* error_code_name(ErrorCode code);

class RUNNEL_API Status {
 public:
  Status() = default;
  Status(ErrorCode code, std::string message, uint64_t detail = 0)
      : code_(code), message_(std::move(message)), detail_(detail) {}
  bool ok() const { return code_ == ErrorCode::kOk; }
  explicit operator bool() const { return ok(); }
  ErrorCode code() const { return code_; }
  const std::string& message() const { return message_; }
  // The stream's tail for kSeqNumMismatch and kOutOfRange, else 0.
  uint64_t detail() const { return detail_; }
  std::string to_string() const;  // "not_found: no stream 'x' in bucket 'b'".

 private:
  ErrorCode code_ = ErrorCode::kOk;
  std::string message_;
  uint64_t detail_ = 0;
};

// A value or an error.
template <typename T>
class Result {
 public:
  Result(T value) : v_(std::move(value)) {}       // NOLINT: implicit by design.
  Result(Status status) : v_(std::move(status)) {}  // NOLINT: implicit by design; must not be OK.
  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }
  const Status& status() const {
    static const Status kOkStatus;
    return ok() ? kOkStatus : std::get<1>(v_);
  }
  T& value() { return std::get<0>(v_); }
  const T& value() const { return std::get<0>(v_); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() { return value(); }
  const T& operator*() const { return value(); }

 private:
  std::variant<T, Status> v_;
};

// The data model's values, shared with the server (runnel/values.h).
using runnel::AppendAck;
using runnel::BucketConfig;
using runnel::BucketInfo;
using runnel::NameScope;
using runnel::StreamConfig;
using runnel::StreamInfo;
using runnel::Timestamping;
using runnel::TokenInfo;
using runnel::TokenLimits;

// An issued access token: its description and its secret, which the server
// shows only this once (it keeps a hash).
struct IssuedToken {
  TokenInfo info{};
  std::string token{};
};

struct Header {
  std::string name{};
  std::string value{};
  bool operator==(const Header&) const = default;
};

// A record to append. timestamp 0: none given (the stream's timestamping decides).
struct AppendRecord {
  std::string body{};
  std::vector<Header> headers{};
  uint64_t timestamp = 0;
};

// A record read back. `timestamp` is the effective one.
struct Record {
  uint64_t seq_num = 0;
  uint64_t timestamp = 0;
  std::vector<Header> headers{};
  std::string body{};
};

struct AppendOptions {
  std::optional<uint64_t> match_seq_num{};     // Append only if the tail is exactly this.
  std::optional<std::string> fencing_token{};  // Needed on a fenced stream.
  // Numbered with this client's producer id, so a retry after a lost
  // connection is never written twice (proto/PROTOCOL.md, "Append").
  bool idempotent = true;
};

struct Start {
  enum class Kind : uint8_t { kSeqNum = 0, kTimestamp = 1, kTailOffset = 2 };
  Kind kind = Kind::kSeqNum;
  uint64_t value = 0;
  static Start seq_num(uint64_t seq) { return {Kind::kSeqNum, seq}; }
  static Start timestamp(uint64_t ms) { return {Kind::kTimestamp, ms}; }
  static Start tail_offset(uint64_t records_before_tail) { return {Kind::kTailOffset, records_before_tail}; }
  static Start tail() { return tail_offset(0); }
};

struct ReadOptions {
  Start start;
  uint32_t max_records = 1000;
  uint32_t max_bytes = 1u << 20;
  uint64_t until_timestamp = 0;  // 0: none; records at or after it are left out.
  uint32_t wait_ms = 0;          // At the tail: wait up to this long for records (long poll).
};

struct ReadResult {
  std::vector<Record> records{};
  uint64_t tail = 0;
};

struct Tail {
  uint64_t tail = 0;
  uint64_t last_timestamp = 0;
};

struct ListOptions {
  std::string prefix{};
  std::string start_after{};
  uint32_t limit = 0;  // 0: the server's default (1000).
};

template <typename T>
struct Page {
  std::vector<T> items{};
  bool more = false;  // Listing on from the last item finds more.
};

}  // namespace runnel::client
