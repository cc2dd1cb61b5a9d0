#include "tools/runnel/output.h"

#include <fmt/format.h>

#include <cerrno>
#include <cstring>

#include "core/text.h"

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
    case ErrorCode::kThrottled:
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
    "  5  unavailable: cannot reach the server in time, timeout, overloaded, shutting_down, throttled\n"
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
  text = printable(text);  // The server's message may quote names someone else chose.
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
  j["append_rate"] = ordered_json{{"records_per_s", static_cast<double>(s.appended_records_last_minute) / 60.0},
                                  {"bytes_per_s", static_cast<double>(s.appended_bytes_last_minute) / 60.0}};
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

ordered_json to_json(const client::TokenInfo& t) {
  ordered_json ops = ordered_json::array();
  for (uint32_t op = 1; op != 0 && op <= kOpListTokens; op <<= 1) {
    if ((t.ops & op) != 0) ops.push_back(token_op_name(op));
  }
  return ordered_json{
      {"id", t.id},
      {"buckets", t.buckets.text()},
      {"streams", t.streams.text()},
      {"tokens", t.tokens.text()},
      {"ops", std::move(ops)},
      {"expires_ms", t.expires_ms},
      {"auto_prefix_streams", t.auto_prefix_streams},
      {"limits", ordered_json{{"append_bytes_per_s", t.limits.append_bytes_per_s},
                              {"append_records_per_s", t.limits.append_records_per_s},
                              {"read_bytes_per_s", t.limits.read_bytes_per_s},
                              {"read_records_per_s", t.limits.read_records_per_s},
                              {"connections_max", t.limits.connections_max}}},
      {"created_ms", t.created_ms},
      {"issued_by", t.issued_by},
  };
}

ordered_json to_json(const client::Record& r) {
  ordered_json j;
  j["seq_num"] = r.seq_num;
  j["timestamp"] = r.timestamp;
  bool headers_utf8 = true;
  for (const client::Header& h : r.headers) {
    if (!valid_utf8(h.name) || !valid_utf8(h.value)) {
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
  if (valid_utf8(r.body)) {
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
  out += fmt::format("name: {}\n", printable(s.name));
  describe_config(&out, s.config, "");
  out += fmt::format("created_ms: {}\n", s.created_ms);
  out += fmt::format("sealed: {}\n", s.sealed);
  out += fmt::format("fenced: {}\n", s.fenced);
  out += fmt::format("trim_seq: {}\n", s.trim_seq);
  out += fmt::format("tail: {}\n", s.tail);
  out += fmt::format("append_rate: {:.1f} records/s, {:.1f} bytes/s (last minute)",
                     static_cast<double>(s.appended_records_last_minute) / 60.0,
                     static_cast<double>(s.appended_bytes_last_minute) / 60.0);
  return out;
}

std::string describe(const client::BucketInfo& b) {
  std::string out;
  out += fmt::format("name: {}\n", printable(b.name));
  describe_config(&out, b.config.default_stream_config, "default_stream_config.");
  out += fmt::format("create_stream_on_append: {}\n", b.config.create_stream_on_append);
  out += fmt::format("create_stream_on_read: {}\n", b.config.create_stream_on_read);
  out += fmt::format("created_ms: {}", b.created_ms);
  return out;
}

}  // namespace runnel::cli
