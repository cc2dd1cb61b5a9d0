#include "tools/runnel/output.h"

#include <fmt/format.h>

#include <array>
#include <cerrno>
#include <cstring>

namespace runnel::cli {

using client::ErrorCode;
using nlohmann::ordered_json;

int exit_code_for(ErrorCode code) {
  switch (code) {
    case ErrorCode::kOk:
      return kExitOk;
    case ErrorCode::kNotFound:
      return kExitNotFound;
    case ErrorCode::kAlreadyExists:
      return kExitAlreadyExists;
    case ErrorCode::kSeqNumMismatch:
    case ErrorCode::kFencingTokenMismatch:
    case ErrorCode::kStreamSealed:
      return kExitConflict;
    case ErrorCode::kUnavailable:
    case ErrorCode::kTimeout:
    case ErrorCode::kOverloaded:
    case ErrorCode::kShuttingDown:
      return kExitUnavailable;
    case ErrorCode::kInvalidArgument:
    case ErrorCode::kTooLarge:
    case ErrorCode::kOutOfRange:
      return kExitInvalid;
    case ErrorCode::kUnauthenticated:
    case ErrorCode::kPermissionDenied:
      return kExitAuth;
    case ErrorCode::kInternal:
    case ErrorCode::kIoError:
    case ErrorCode::kNoSpace:
    case ErrorCode::kUnsupported:
    case ErrorCode::kCorrupt:
      return kExitOther;
  }
  return kExitOther;
}

const char* const kExitCodesHelp =
    "Exit status:\n"
    "  0  success\n"
    "  1  usage: bad command line or BUCKET/STREAM address\n"
    "  2  not_found: no such bucket or stream\n"
    "  3  already_exists (also: deleting a bucket that still holds streams)\n"
    "  4  conflict: seq_num_mismatch, fencing_token_mismatch, stream_sealed\n"
    "  5  unavailable: cannot reach the server in time, timeout, overloaded, shutting_down\n"
    "  6  invalid: invalid_argument (e.g. a bad name, a --server host that does not resolve), too_large,\n"
    "     out_of_range, a bad input line\n"
    "  7  other: internal, io_error, no_space, unsupported, corrupt, cannot write output\n"
    "  8  unauthenticated, permission_denied\n"
    "Errors are one line on stderr: \"runnel: CODE: MESSAGE\".\n";

void print_error(std::string_view message) {
  std::string text(message);
  for (char& c : text) {
    if (c == '\n' || c == '\r') c = ' ';
  }
  std::fflush(stdout);
  std::fprintf(stderr, "runnel: %s\n", text.c_str());
  std::fflush(stderr);
}

namespace {
bool g_broken_pipe = false;
std::optional<std::string> g_write_error;

void write_out(const char* data, size_t n) {
  if (g_broken_pipe || g_write_error) return;
  if (std::fwrite(data, 1, n, stdout) != n) {
    if (errno == EPIPE) {
      g_broken_pipe = true;
    } else {
      g_write_error = std::strerror(errno);
    }
  }
}
}  // namespace

void Out::line(std::string_view text) {
  write_out(text.data(), text.size());
  write_out("\n", 1);
}

void Out::json(const ordered_json& value) {
  // Names and values that are not UTF-8 are base64 before they get here;
  // `replace` only guards against what slipped through.
  line(value.dump(-1, ' ', false, ordered_json::error_handler_t::replace));
}

void Out::flush() {
  if (g_broken_pipe || g_write_error) return;
  if (std::fflush(stdout) != 0) {
    if (errno == EPIPE) {
      g_broken_pipe = true;
    } else {
      g_write_error = std::strerror(errno);
    }
  }
}

bool Out::broken_pipe() { return g_broken_pipe; }
std::optional<std::string> Out::write_error() { return g_write_error; }

bool is_utf8(std::string_view s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const size_t n = s.size();
  size_t i = 0;
  while (i < n) {
    const unsigned char c = p[i];
    if (c < 0x80) {
      i++;
      continue;
    }
    size_t len = 0;
    uint32_t cp = 0;
    if (c >= 0xC2 && c <= 0xDF) {
      len = 2;
      cp = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
      len = 3;
      cp = c & 0x0F;
    } else if (c >= 0xF0 && c <= 0xF4) {
      len = 4;
      cp = c & 0x07;
    } else {
      return false;  // Continuation byte, overlong lead (C0, C1) or beyond U+10FFFF.
    }
    if (i + len > n) return false;
    for (size_t k = 1; k < len; k++) {
      if ((p[i + k] & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (p[i + k] & 0x3F);
    }
    if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10FFFF))) return false;  // Overlong.
    if (cp >= 0xD800 && cp <= 0xDFFF) return false;                                               // Surrogates.
    i += len;
  }
  return true;
}

namespace {
constexpr char kB64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
}

std::string base64_encode(std::string_view bytes) {
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  const auto* p = reinterpret_cast<const unsigned char*>(bytes.data());
  size_t i = 0;
  for (; i + 3 <= bytes.size(); i += 3) {
    const uint32_t v = (uint32_t{p[i]} << 16) | (uint32_t{p[i + 1]} << 8) | p[i + 2];
    out += kB64[v >> 18];
    out += kB64[(v >> 12) & 63];
    out += kB64[(v >> 6) & 63];
    out += kB64[v & 63];
  }
  const size_t rest = bytes.size() - i;
  if (rest == 1) {
    const uint32_t v = uint32_t{p[i]} << 16;
    out += kB64[v >> 18];
    out += kB64[(v >> 12) & 63];
    out += "==";
  } else if (rest == 2) {
    const uint32_t v = (uint32_t{p[i]} << 16) | (uint32_t{p[i + 1]} << 8);
    out += kB64[v >> 18];
    out += kB64[(v >> 12) & 63];
    out += kB64[(v >> 6) & 63];
    out += '=';
  }
  return out;
}

std::optional<std::string> base64_decode(std::string_view text) {
  static const std::array<int8_t, 256> table = [] {
    std::array<int8_t, 256> t{};
    t.fill(-1);
    for (int i = 0; i < 64; i++) t[static_cast<unsigned char>(kB64[i])] = static_cast<int8_t>(i);
    return t;
  }();
  if (text.size() % 4 != 0) return std::nullopt;
  std::string out;
  out.reserve(text.size() / 4 * 3);
  for (size_t i = 0; i < text.size(); i += 4) {
    const bool last = i + 4 == text.size();
    int v[4];
    int pad = 0;
    for (int k = 0; k < 4; k++) {
      const char c = text[i + static_cast<size_t>(k)];
      if (c == '=' && last && k >= 2) {
        v[k] = 0;
        pad++;
        continue;
      }
      if (pad > 0) return std::nullopt;  // Data after padding.
      v[k] = table[static_cast<unsigned char>(c)];
      if (v[k] < 0) return std::nullopt;
    }
    const uint32_t bits = (static_cast<uint32_t>(v[0]) << 18) | (static_cast<uint32_t>(v[1]) << 12) |
                          (static_cast<uint32_t>(v[2]) << 6) | static_cast<uint32_t>(v[3]);
    out += static_cast<char>(bits >> 16);
    if (pad < 2) out += static_cast<char>((bits >> 8) & 0xFF);
    if (pad < 1) out += static_cast<char>(bits & 0xFF);
  }
  return out;
}

const char* timestamping_name(client::Timestamping t) {
  switch (t) {
    case client::Timestamping::kClientPrefer:
      return "client-prefer";
    case client::Timestamping::kClientRequire:
      return "client-require";
    case client::Timestamping::kArrival:
      return "arrival";
  }
  return "unknown";
}

std::optional<client::Timestamping> parse_timestamping(std::string_view name) {
  if (name == "client-prefer") return client::Timestamping::kClientPrefer;
  if (name == "client-require") return client::Timestamping::kClientRequire;
  if (name == "arrival") return client::Timestamping::kArrival;
  return std::nullopt;
}

ordered_json to_json(const client::StreamConfig& c) {
  ordered_json j;
  j["timestamping"] = timestamping_name(c.timestamping);
  j["retention_age_ms"] = c.retention_age_ms;
  j["retention_bytes"] = c.retention_bytes;
  j["delete_on_empty_ms"] = c.delete_on_empty_ms;
  j["compress_lz4"] = c.compress_lz4;
  return j;
}

ordered_json to_json(const client::StreamInfo& s) {
  ordered_json j;
  j["bucket"] = s.bucket;
  j["name"] = s.name;
  j["config"] = to_json(s.config);
  j["created_ms"] = s.created_ms;
  j["sealed"] = s.sealed;
  j["fenced"] = s.fenced;
  j["trim_seq"] = s.trim_seq;
  j["tail"] = s.tail;
  return j;
}

ordered_json to_json(const client::BucketInfo& b) {
  ordered_json j;
  j["name"] = b.name;
  ordered_json config;
  config["default_stream_config"] = to_json(b.config.default_stream_config);
  config["create_stream_on_append"] = b.config.create_stream_on_append;
  config["create_stream_on_read"] = b.config.create_stream_on_read;
  j["config"] = std::move(config);
  j["created_ms"] = b.created_ms;
  return j;
}

ordered_json to_json(const client::Record& r) {
  ordered_json j;
  j["seq_num"] = r.seq_num;
  j["timestamp"] = r.timestamp;
  bool headers_utf8 = true;
  for (const client::Header& h : r.headers) {
    if (!is_utf8(h.name) || !is_utf8(h.value)) {
      headers_utf8 = false;
      break;
    }
  }
  ordered_json headers = ordered_json::array();
  for (const client::Header& h : r.headers) {
    if (headers_utf8) {
      headers.push_back(ordered_json::array({h.name, h.value}));
    } else {
      headers.push_back(ordered_json::array({base64_encode(h.name), base64_encode(h.value)}));
    }
  }
  j[headers_utf8 ? "headers" : "headers_base64"] = std::move(headers);
  if (is_utf8(r.body)) {
    j["body"] = r.body;
  } else {
    j["body_base64"] = base64_encode(r.body);
  }
  return j;
}

namespace {
void describe_config(std::string* out, const client::StreamConfig& c, std::string_view prefix) {
  *out += fmt::format("{}timestamping: {}\n", prefix, timestamping_name(c.timestamping));
  *out += fmt::format("{}retention_age_ms: {}\n", prefix, c.retention_age_ms);
  *out += fmt::format("{}retention_bytes: {}\n", prefix, c.retention_bytes);
  *out += fmt::format("{}delete_on_empty_ms: {}\n", prefix, c.delete_on_empty_ms);
  *out += fmt::format("{}compress_lz4: {}\n", prefix, c.compress_lz4);
}
}  // namespace

std::string describe(const client::StreamInfo& s) {
  std::string out;
  out += fmt::format("bucket: {}\n", s.bucket);
  out += fmt::format("name: {}\n", s.name);
  describe_config(&out, s.config, "");
  out += fmt::format("created_ms: {}\n", s.created_ms);
  out += fmt::format("sealed: {}\n", s.sealed);
  out += fmt::format("fenced: {}\n", s.fenced);
  out += fmt::format("trim_seq: {}\n", s.trim_seq);
  out += fmt::format("tail: {}", s.tail);
  return out;
}

std::string describe(const client::BucketInfo& b) {
  std::string out;
  out += fmt::format("name: {}\n", b.name);
  describe_config(&out, b.config.default_stream_config, "default_stream_config.");
  out += fmt::format("create_stream_on_append: {}\n", b.config.create_stream_on_append);
  out += fmt::format("create_stream_on_read: {}\n", b.config.create_stream_on_read);
  out += fmt::format("created_ms: {}", b.created_ms);
  return out;
}

}  // namespace runnel::cli
