#pragma once
// Status and Result<T>: errors as values. Fallible calls return one of these
// instead of throwing; the OK path allocates nothing (an OK Status is one enum
// and an empty string_view).

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

#include "core/assert.h"
#include "core/error_codes.h"

namespace runnel {

// Stable error codes, from the one table in core/error_codes.h (which the
// client library's enum comes from too).
enum class ErrorCode : uint16_t {
#define RUNNEL_ERROR_CODE_ENUMERATOR(name, number, text) name = number,
  RUNNEL_ERROR_CODES(RUNNEL_ERROR_CODE_ENUMERATOR)
#undef RUNNEL_ERROR_CODE_ENUMERATOR
};

// The lower-case name used in logs and JSON error bodies ("invalid_argument").
std::string_view error_code_name(ErrorCode code);

// A code plus a short human message. The message is owned so that callers can
// build it from runtime values; OK statuses never allocate.
class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(ErrorCode code, std::string message) : code_(code), message_(std::move(message)) {}
  // With a number the caller needs (the tail for kSeqNumMismatch / kOutOfRange).
  Status(ErrorCode code, std::string message, uint64_t detail)
      : code_(code), message_(std::move(message)), detail_(detail) {}

  static Status ok() { return Status(); }

  bool is_ok() const { return code_ == ErrorCode::kOk; }
  explicit operator bool() const { return is_ok(); }
  ErrorCode code() const { return code_; }
  const std::string& message() const { return message_; }
  uint64_t detail() const { return detail_; }

  // "invalid_argument: shards must be 1..256" — for logs and CLI output.
  std::string to_string() const;

 private:
  ErrorCode code_ = ErrorCode::kOk;
  std::string message_;
  uint64_t detail_ = 0;
};

// A value or a non-OK Status, shaped like C++23 std::expected.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}  // NOLINT: implicit by design.
  Result(Status status) : v_(std::move(status)) {  // NOLINT: implicit by design.
    RUNNEL_ASSERT(!std::get<Status>(v_).is_ok());
  }

  bool is_ok() const { return std::holds_alternative<T>(v_); }
  explicit operator bool() const { return is_ok(); }

  T& value() & {
    RUNNEL_ASSERT(is_ok());
    return std::get<T>(v_);
  }
  const T& value() const& {
    RUNNEL_ASSERT(is_ok());
    return std::get<T>(v_);
  }
  T&& value() && {
    RUNNEL_ASSERT(is_ok());
    return std::get<T>(std::move(v_));
  }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

  const Status& status() const {
    RUNNEL_ASSERT(!is_ok());
    return std::get<Status>(v_);
  }

 private:
  std::variant<T, Status> v_;
};

}  // namespace runnel
