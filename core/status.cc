#include "core/status.h"

namespace runnel {

std::string_view error_code_name(ErrorCode code) {
  switch (code) {
#define RUNNEL_ERROR_CODE_CASE(name, number, text) \
  case ErrorCode::name:                            \
    return text;
    RUNNEL_ERROR_CODES(RUNNEL_ERROR_CODE_CASE)
#undef RUNNEL_ERROR_CODE_CASE
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
