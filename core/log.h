#pragma once
// One log line per event, written to stderr with a single write(2):
//   2026-11-22T00:12:00.123456Z INFO  shard=1 admin listening on 127.0.0.1:7421
// The shard id is the calling thread's (this_shard_id()); "main" outside shards.
// Level checks happen before formatting, so a disabled debug line costs a load
// and a compare.

#include <fmt/format.h>

#include <string_view>

namespace runnel {

enum class LogLevel : int { kDebug = 0, kInfo = 1, kWarn = 2, kError = 3, kFatal = 4 };

// Parses "debug" / "info" / "warn" / "error"; false on anything else.
bool parse_log_level(std::string_view text, LogLevel* out);
std::string_view log_level_name(LogLevel level);

void set_log_level(LogLevel level);
LogLevel log_level();

// Shard id of the calling thread; -1 on threads that are not shards.
int this_shard_id();
void set_this_shard_id(int shard);

// Writes one complete line. Thread-safe: lines never interleave.
void log_line(LogLevel level, std::string_view message);

template <typename... Args>
void log(LogLevel level, fmt::format_string<Args...> format, Args&&... args) {
  if (level < log_level()) return;
  log_line(level, fmt::format(format, std::forward<Args>(args)...));
}

template <typename... Args>
void log_debug(fmt::format_string<Args...> f, Args&&... a) { log(LogLevel::kDebug, f, std::forward<Args>(a)...); }
template <typename... Args>
void log_info(fmt::format_string<Args...> f, Args&&... a) { log(LogLevel::kInfo, f, std::forward<Args>(a)...); }
template <typename... Args>
void log_warn(fmt::format_string<Args...> f, Args&&... a) { log(LogLevel::kWarn, f, std::forward<Args>(a)...); }
template <typename... Args>
void log_error(fmt::format_string<Args...> f, Args&&... a) { log(LogLevel::kError, f, std::forward<Args>(a)...); }

}  // namespace runnel
