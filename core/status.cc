#include "core/status.h"

namespace runnel {

std::string_view error_code_name(ErrorCode code) {
  switch (code) {
    case ErrorCode::kOk: return "ok";
    case ErrorCode::kInternal: return "internal";
    case ErrorCode::kInvalidArgument: return "invalid_argument";
    case ErrorCode::kNotFound: return "not_found";
    case ErrorCode::kAlreadyExists: return "already_exists";
    case ErrorCode::kOverloaded: return "overloaded";
    case ErrorCode::kUnavailable: return "unavailable";
    case ErrorCode::kShuttingDown: return "shutting_down";
    case ErrorCode::kIoError: return "io_error";
    case ErrorCode::kNoSpace: return "no_space";
    case ErrorCode::kUnsupported: return "unsupported";
    case ErrorCode::kTooLarge: return "too_large";
    case ErrorCode::kTimeout: return "timeout";
    case ErrorCode::kCorrupt: return "corrupt";
    case ErrorCode::kSeqNumMismatch: return "seq_num_mismatch";
    case ErrorCode::kFencingTokenMismatch: return "fencing_token_mismatch";
    case ErrorCode::kOutOfRange: return "out_of_range";
    case ErrorCode::kStreamSealed: return "stream_sealed";
    case ErrorCode::kUnauthenticated: return "unauthenticated";
    case ErrorCode::kPermissionDenied: return "permission_denied";
  }
  return "unknown";
}

std::string Status::to_string() const {
  std::string out(error_code_name(code_));
  if (!message_.empty()) {
    out += ": ";
    out += message_;
  }
  return out;
}

}  // namespace runnel
