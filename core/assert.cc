#include "core/assert.h"

#include <execinfo.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>

#include "core/log.h"

namespace runnel {

void assert_fail(const char* expr, const char* file, int line, const char* func) {
  log_line(LogLevel::kFatal, fmt::format("assertion failed: {} at {}:{} in {}", expr, file, line, func));
  void* frames[64];
  int n = backtrace(frames, 64);
  backtrace_symbols_fd(frames, n, STDERR_FILENO);
  std::abort();
}

}  // namespace runnel
