#include "core/log.h"

#include <sys/time.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <ctime>

namespace runnel {
namespace {

std::atomic<int> g_level{static_cast<int>(LogLevel::kInfo)};
thread_local int t_shard_id = -1;

}  // namespace

bool parse_log_level(std::string_view text, LogLevel* out) {
  if (text == "debug") *out = LogLevel::kDebug;
  else if (text == "info") *out = LogLevel::kInfo;
  else if (text == "warn") *out = LogLevel::kWarn;
  else if (text == "error") *out = LogLevel::kError;
  else return false;
  return true;
}

std::string_view log_level_name(LogLevel level) {
  switch (level) {
    case LogLevel::kDebug: return "debug";
    case LogLevel::kInfo: return "info";
    case LogLevel::kWarn: return "warn";
    case LogLevel::kError: return "error";
    case LogLevel::kFatal: return "fatal";
  }
  return "?";
}

void set_log_level(LogLevel level) { g_level.store(static_cast<int>(level), std::memory_order_relaxed); }
LogLevel log_level() { return static_cast<LogLevel>(g_level.load(std::memory_order_relaxed)); }

int this_shard_id() { return t_shard_id; }
void set_this_shard_id(int shard) { t_shard_id = shard; }

void log_line(LogLevel level, std::string_view message) {
  timespec now{};
  clock_gettime(CLOCK_REALTIME, &now);
  tm utc{};
  gmtime_r(&now.tv_sec, &utc);
  static constexpr std::string_view kLevelTags[] = {"DEBUG", "INFO ", "WARN ", "ERROR", "FATAL"};
  fmt::memory_buffer line;
  fmt::format_to(std::back_inserter(line), "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z {} ", utc.tm_year + 1900,
                 utc.tm_mon + 1, utc.tm_mday, utc.tm_hour, utc.tm_min, utc.tm_sec, now.tv_nsec / 1000,
                 kLevelTags[static_cast<int>(level)]);
  if (t_shard_id >= 0) {
    fmt::format_to(std::back_inserter(line), "shard={} ", t_shard_id);
  } else {
    fmt::format_to(std::back_inserter(line), "shard=main ");
  }
  line.append(message);
  line.push_back('\n');
  // One write per line keeps lines whole across threads; retry on EINTR and
  // finish a short write rather than drop the tail of a line.
  const char* p = line.data();
  size_t left = line.size();
  while (left > 0) {
    ssize_t n = ::write(STDERR_FILENO, p, left);
    if (n < 0) {
      if (errno == EINTR) continue;
      return;
    }
    p += n;
    left -= static_cast<size_t>(n);
  }
}

}  // namespace runnel
