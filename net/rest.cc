#include "net/rest.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <memory>

#include "core/shard_gather.h"
#include "core/text.h"
#include "net/auth/access.h"
#include "net/json.h"
#include "net/router.h"
#include "net/subscriptions.h"
#include "storage/stream_store.h"

namespace runnel::rest {
namespace {

using wire::Opcode;

Status invalid(std::string message) { return Status(ErrorCode::kInvalidArgument, std::move(message)); }

// --- Routes ----------------------------------------------------------------

std::vector<std::string_view> split_path(std::string_view path) {
  std::vector<std::string_view> segments;
  path.remove_prefix(1);  // The leading '/'.
  while (true) {
    const size_t slash = path.find('/');
    segments.push_back(path.substr(0, slash));
    if (slash == std::string_view::npos) break;
    path.remove_prefix(slash + 1);
  }
  return segments;
}

Status decode_name(std::string_view raw, const char* what, std::string* out) {
  if (!percent_decode(raw, false, out)) return invalid(fmt::format("the {} name in the path is not valid percent-encoding", what));
  if (out->size() > wire::kStrBytesMax) return invalid(fmt::format("the {} name is too long", what));
  return Status::ok();
}

// --- JSON fields -----------------------------------------------------------

Status get_u64(const Json& v, std::string_view field, uint64_t* out) {
  if (!v.is_number_unsigned()) return invalid(fmt::format("\"{}\" must be a non-negative integer", field));
  *out = v.get<uint64_t>();
  return Status::ok();
}

Status get_bool(const Json& v, std::string_view field, bool* out) {
  if (!v.is_boolean()) return invalid(fmt::format("\"{}\" must be true or false", field));
  *out = v.get<bool>();
  return Status::ok();
}

Status get_string(const Json& v, std::string_view field, std::string* out) {
  if (!v.is_string()) return invalid(fmt::format("\"{}\" must be a string", field));
  *out = v.get_ref<const std::string&>();
  return Status::ok();
}

Status unknown_field(std::string_view where, std::string_view key, std::string_view expected) {
  return invalid(fmt::format("unknown field \"{}\" in {} (expected {})", key, where, expected));
}

// --- Query values ----------------------------------------------------------

Status parse_u64(std::string_view text, std::string_view name, uint64_t* out) {
  if (text.empty() || text.size() > 20) return invalid(fmt::format("{} must be a non-negative integer", name));
  uint64_t value = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return invalid(fmt::format("{} must be a non-negative integer", name));
    const uint64_t digit = static_cast<uint64_t>(c - '0');
    if (value > (UINT64_MAX - digit) / 10) return invalid(fmt::format("{} is too large", name));
    value = value * 10 + digit;
  }
  *out = value;
  return Status::ok();
}

// Looks up `name`, refusing it twice; unknown parameters are refused by check_known.
Result<std::optional<std::string_view>> param(const QueryParams& params, std::string_view name) {
  std::optional<std::string_view> found;
  for (const auto& p : params) {
    if (p.first != name) continue;
    if (found) return invalid(fmt::format("query parameter {} is given twice", name));
    found = p.second;
  }
  return found;
}

Status check_known(const QueryParams& params, std::initializer_list<std::string_view> known) {
  for (const auto& p : params) {
    if (std::find(known.begin(), known.end(), p.first) == known.end()) {
      std::string list;
      for (std::string_view k : known) list += (list.empty() ? "" : ", ") + std::string(k);
      return invalid(fmt::format("unknown query parameter {} (expected {})", p.first,
                                 list.empty() ? std::string("none") : list));
    }
  }
  return Status::ok();
}

// The append options any POST .../records may give in its query.
Status apply_append_query(const QueryParams& params, AppendInput* input) {
  if (Status s = check_known(params, {"match_seq_num", "fencing_token", "producer_id", "producer_seq"}); !s) return s;
  auto match = param(params, "match_seq_num");
  if (!match) return match.status();
  if (*match) {
    uint64_t v = 0;
    if (Status s = parse_u64(**match, "match_seq_num", &v); !s) return s;
    input->match_seq_num = v;
  }
  auto token = param(params, "fencing_token");
  if (!token) return token.status();
  if (*token) input->fencing_token = std::string(**token);
  auto id = param(params, "producer_id");
  if (!id) return id.status();
  auto seq = param(params, "producer_seq");
  if (!seq) return seq.status();
  if (id->has_value() != seq->has_value()) return invalid("producer_id and producer_seq go together");
  if (*id) {
    uint64_t pid = 0, pseq = 0;
    if (Status s = parse_u64(**id, "producer_id", &pid); !s) return s;
    if (Status s = parse_u64(**seq, "producer_seq", &pseq); !s) return s;
    input->producer = std::make_pair(pid, pseq);
  }
  return Status::ok();
}

Status parse_headers(const Json& v, bool b64, std::vector<std::pair<std::string, std::string>>* out) {
  const char* field = b64 ? "headers_base64" : "headers";
  if (!v.is_array()) return invalid(fmt::format("\"{}\" must be an array of [name, value] pairs", field));
  for (const Json& pair : v) {
    if (!pair.is_array() || pair.size() != 2 || !pair[0].is_string() || !pair[1].is_string()) {
      return invalid(fmt::format("\"{}\" must be an array of [name, value] string pairs", field));
    }
    std::string name = pair[0].get<std::string>();
    std::string value = pair[1].get<std::string>();
    if (b64) {
      std::string n, val;
      if (!base64_decode(name, &n) || !base64_decode(value, &val)) {
        return invalid("\"headers_base64\" holds something that is not base64");
      }
      name = std::move(n);
      value = std::move(val);
    }
    out->emplace_back(std::move(name), std::move(value));
  }
  return Status::ok();
}

Status parse_record(const Json& record, size_t index, PayloadBuilder* payload) {
  if (!record.is_object()) return invalid(fmt::format("record {} is not an object", index));
  std::string body;
  bool have_body = false, have_headers = false;
  std::vector<std::pair<std::string, std::string>> headers;
  uint64_t timestamp = 0;
  for (auto it = record.begin(); it != record.end(); ++it) {
    const std::string& key = it.key();
    if (key == "body" || key == "body_base64") {
      if (have_body) return invalid(fmt::format("record {}: give \"body\" or \"body_base64\", not both", index));
      have_body = true;
      if (Status s = get_string(it.value(), key, &body); !s) return s;
      if (key == "body_base64") {
        std::string decoded;
        if (!base64_decode(body, &decoded)) return invalid(fmt::format("record {}: \"body_base64\" is not base64", index));
        body = std::move(decoded);
      }
    } else if (key == "headers" || key == "headers_base64") {
      if (have_headers) {
        return invalid(fmt::format("record {}: give \"headers\" or \"headers_base64\", not both", index));
      }
      have_headers = true;
      if (Status s = parse_headers(it.value(), key == "headers_base64", &headers); !s) return s;
    } else if (key == "timestamp") {
      if (Status s = get_u64(it.value(), "timestamp", &timestamp); !s) return s;
    } else {
      return unknown_field(fmt::format("record {}", index), key, "body, body_base64, headers, headers_base64, timestamp");
    }
  }
  payload->add(timestamp, headers, body);
  return Status::ok();
}

// Records of one batch as JSON, appended to `out`.
Status batch_records(const wire::Batch& batch, uint32_t skip, uint32_t count, uint64_t until, Json* out) {
  if (payload_checksum(batch.payload) != batch.payload_checksum) {
    return Status(ErrorCode::kCorrupt,
                  fmt::format("batch at seq_num {} does not match its producer's checksum", batch.base_seq));
  }
  // The server checked the batch when it took it; only well-formedness matters here.
  BatchLimits limits;
  limits.records_max = UINT32_MAX;
  limits.payload_bytes_max = UINT32_MAX;
  limits.record_bytes_max = UINT32_MAX;
  limits.headers_per_record_max = UINT32_MAX;
  RecordIterator it(batch.payload, batch.record_count, limits);
  EffectiveTimestamps timestamps(batch.first_timestamp, batch.arrival_timestamp, (batch.flags & 1) != 0);
  RecordView view;
  uint64_t seq = batch.base_seq;
  for (uint32_t i = 0; it.next(&view); i++, seq++) {
    const uint64_t timestamp = timestamps.next(view.timestamp);
    if (i < skip) continue;
    if (out->size() >= count || (until != 0 && timestamp >= until)) return Status::ok();
    Json record = Json::object();
    record["seq_num"] = seq;
    record["timestamp"] = timestamp;
    std::vector<std::pair<std::string_view, std::string_view>> headers;
    bool headers_utf8 = true;
    HeaderIterator hit(view.headers, view.header_count);
    RecordHeader h;
    while (hit.next(&h)) {
      headers.emplace_back(h.name, h.value);
      headers_utf8 = headers_utf8 && valid_utf8(h.name) && valid_utf8(h.value);
    }
    Json header_list = Json::array();
    for (const auto& nv : headers) {
      if (headers_utf8) {
        header_list.push_back(Json::array({std::string(nv.first), std::string(nv.second)}));
      } else {
        header_list.push_back(Json::array({base64_encode(nv.first), base64_encode(nv.second)}));
      }
    }
    record[headers_utf8 ? "headers" : "headers_base64"] = std::move(header_list);
    if (valid_utf8(view.body)) {
      record["body"] = std::string(view.body);
    } else {
      record["body_base64"] = base64_encode(view.body);
    }
    out->push_back(std::move(record));
  }
  if (!it.status().is_ok()) {
    return Status(ErrorCode::kCorrupt,
                  fmt::format("batch at seq_num {} is malformed: {}", batch.base_seq, it.status().message()));
  }
  return Status::ok();
}

}  // namespace

// --- Routes ----------------------------------------------------------------

Result<Route> parse_route(std::string_view path) {
  const Status no_route(ErrorCode::kNotFound, fmt::format("no route for {}", path));
  if (path.empty() || path[0] != '/') return no_route;
  const std::vector<std::string_view> seg = split_path(path);
  if (seg.size() < 2 || seg[0] != "v1") return no_route;
  Route route;
  if (seg[1] == "shards") {
    if (seg.size() != 2) return no_route;
    route.resource = Resource::kShards;
    return route;
  }
  if (seg[1] == "tokens") {
    if (seg.size() == 2) {
      route.resource = Resource::kTokens;
      return route;
    }
    if (seg.size() != 3) return no_route;
    if (Status s = decode_name(seg[2], "token", &route.token); !s) return s;
    route.resource = Resource::kToken;
    return route;
  }
  if (seg[1] != "buckets") return no_route;
  if (seg.size() == 2) {
    route.resource = Resource::kBuckets;
    return route;
  }
  if (Status s = decode_name(seg[2], "bucket", &route.bucket); !s) return s;
  if (seg.size() == 3) {
    route.resource = Resource::kBucket;
    return route;
  }
  if (seg[3] != "streams") return no_route;
  if (seg.size() == 4) {
    route.resource = Resource::kStreams;
    return route;
  }
  if (Status s = decode_name(seg[4], "stream", &route.stream); !s) return s;
  if (seg.size() == 5) {
    route.resource = Resource::kStream;
    return route;
  }
  if (seg.size() != 6) return no_route;
  if (seg[5] == "records") {
    route.resource = Resource::kRecords;
  } else if (seg[5] == "tail") {
    route.resource = Resource::kTail;
  } else if (seg[5] == "seal") {
    route.resource = Resource::kSeal;
  } else if (seg[5] == "trim") {
    route.resource = Resource::kTrim;
  } else if (seg[5] == "fence") {
    route.resource = Resource::kFence;
  } else {
    return no_route;
  }
  return route;
}

std::string_view allowed_methods(Resource resource) {
  switch (resource) {
    case Resource::kBuckets:
    case Resource::kStreams:
    case Resource::kTokens:
    case Resource::kRecords: return "GET, HEAD, POST";
    case Resource::kToken:
      return "DELETE";
    case Resource::kBucket:
    case Resource::kStream: return "GET, HEAD, PATCH, DELETE";
    case Resource::kTail:
    case Resource::kShards: return "GET, HEAD";
    case Resource::kSeal:
    case Resource::kTrim:
    case Resource::kFence: return "POST";
  }
  return "";
}

bool method_allowed(Resource resource, std::string_view method) {
  std::string_view list = allowed_methods(resource);
  while (!list.empty()) {
    const size_t comma = list.find(',');
    if (list.substr(0, comma) == method) return true;
    if (comma == std::string_view::npos) break;
    list.remove_prefix(comma + 2);  // ", "
  }
  return false;
}

// --- Text ------------------------------------------------------------------

bool percent_decode(std::string_view in, bool plus_is_space, std::string* out) {
  auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  out->clear();
  out->reserve(in.size());
  for (size_t i = 0; i < in.size(); i++) {
    const char c = in[i];
    if (c == '%') {
      if (i + 2 >= in.size()) return false;  // Needs two hex digits after it.
      const int high = hex(in[i + 1]);
      const int low = hex(in[i + 2]);
      if (high < 0 || low < 0) return false;
      out->push_back(static_cast<char>(high * 16 + low));
      i += 2;
    } else if (c == '+' && plus_is_space) {
      out->push_back(' ');
    } else {
      out->push_back(c);
    }
  }
  return true;
}

std::string percent_encode(std::string_view in) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(in.size());
  for (char c : in) {
    const auto u = static_cast<unsigned char>(c);
    if ((u >= 'A' && u <= 'Z') || (u >= 'a' && u <= 'z') || (u >= '0' && u <= '9') || u == '-' || u == '.' ||
        u == '_' || u == '~') {
      out.push_back(c);
    } else {
      out.push_back('%');
      out.push_back(kHex[u >> 4]);
      out.push_back(kHex[u & 15]);
    }
  }
  return out;
}

Result<QueryParams> parse_query(std::string_view query) {
  QueryParams params;
  while (!query.empty()) {
    const size_t amp = query.find('&');
    const std::string_view piece = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
    if (piece.empty()) continue;
    const size_t eq = piece.find('=');
    std::string key, value;
    if (!percent_decode(piece.substr(0, eq), true, &key) ||
        (eq != std::string_view::npos && !percent_decode(piece.substr(eq + 1), true, &value))) {
      return invalid("the query string is not valid percent-encoding");
    }
    params.emplace_back(std::move(key), std::move(value));
  }
  return params;
}

// --- Errors ----------------------------------------------------------------

int http_status(ErrorCode code) {
  switch (code) {
    case ErrorCode::kOk: return 200;
    case ErrorCode::kInvalidArgument: return 400;
    case ErrorCode::kUnauthenticated: return 401;
    case ErrorCode::kPermissionDenied: return 403;
    case ErrorCode::kNotFound: return 404;
    case ErrorCode::kAlreadyExists:
    case ErrorCode::kSeqNumMismatch:
    case ErrorCode::kFencingTokenMismatch:
    case ErrorCode::kStreamSealed: return 409;
    case ErrorCode::kTooLarge: return 413;
    case ErrorCode::kOutOfRange: return 416;
    case ErrorCode::kOverloaded:
    case ErrorCode::kThrottled:
      return 429;
    case ErrorCode::kUnsupported: return 501;
    case ErrorCode::kUnavailable:
    case ErrorCode::kShuttingDown: return 503;
    case ErrorCode::kTimeout: return 504;
    case ErrorCode::kNoSpace: return 507;
    case ErrorCode::kInternal:
    case ErrorCode::kIoError:
    case ErrorCode::kCorrupt: return 500;
  }
  return 500;
}

HttpResponse error_response(const Status& status) {
  const ErrorCode code = status.is_ok() ? ErrorCode::kInternal : status.code();
  Json error = Json::object();
  error["code"] = std::string(error_code_name(code));
  error["message"] = status.message();
  if (code == ErrorCode::kSeqNumMismatch || code == ErrorCode::kOutOfRange) error["tail"] = status.detail();
  if (code == ErrorCode::kThrottled) error["retry_after_ms"] = status.detail();
  Json body = Json::object();
  body["error"] = std::move(error);
  HttpResponse response = HttpResponse::json(http_status(code), body.dump(-1, ' ', false, Json::error_handler_t::replace) + "\n");
  if (code == ErrorCode::kOverloaded || code == ErrorCode::kUnavailable || code == ErrorCode::kShuttingDown) {
    response.headers.emplace_back("Retry-After", "1");
  }
  if (code == ErrorCode::kThrottled) {
    response.headers.emplace_back("Retry-After", std::to_string((status.detail() + 999) / 1000));
  }
  return response;
}

// --- JSON <-> protocol ------------------------------------------------------

Result<Json> parse_json_object(std::string_view text) {
  Json value = Json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (value.is_discarded()) return invalid("the body is not valid JSON");
  if (!value.is_object()) return invalid("the body must be a JSON object");
  return value;
}

Status merge_stream_config(const Json& patch, StreamConfig* config) {
  if (!patch.is_object()) return invalid("a stream config must be a JSON object");
  for (auto it = patch.begin(); it != patch.end(); ++it) {
    const std::string& key = it.key();
    const Json& v = it.value();
    Status s;
    if (key == "timestamping") {
      std::string mode;
      if (s = get_string(v, key, &mode); !s) return s;
      if (!parse_timestamping(mode, &config->timestamping)) {
        return invalid("\"timestamping\" must be \"client-prefer\", \"client-require\" or \"arrival\"");
      }
    } else if (key == "retention_age_ms") {
      s = get_u64(v, key, &config->retention_age_ms);
    } else if (key == "retention_bytes") {
      s = get_u64(v, key, &config->retention_bytes);
    } else if (key == "delete_on_empty_ms") {
      s = get_u64(v, key, &config->delete_on_empty_ms);
    } else if (key == "compress_lz4") {
      s = get_bool(v, key, &config->compress_lz4);
    } else {
      return unknown_field("a stream config", key,
                           "timestamping, retention_age_ms, retention_bytes, delete_on_empty_ms, compress_lz4");
    }
    if (!s) return s;
  }
  return Status::ok();
}

Status merge_bucket_config(const Json& patch, BucketConfig* config) {
  if (!patch.is_object()) return invalid("a bucket config must be a JSON object");
  for (auto it = patch.begin(); it != patch.end(); ++it) {
    const std::string& key = it.key();
    Status s;
    if (key == "default_stream_config") {
      s = merge_stream_config(it.value(), &config->default_stream_config);
    } else if (key == "create_stream_on_append") {
      s = get_bool(it.value(), key, &config->create_stream_on_append);
    } else if (key == "create_stream_on_read") {
      s = get_bool(it.value(), key, &config->create_stream_on_read);
    } else {
      return unknown_field("a bucket config", key, "default_stream_config, create_stream_on_append, create_stream_on_read");
    }
    if (!s) return s;
  }
  return Status::ok();
}

Json to_json(const StreamConfig& config) {
  Json j = Json::object();
  j["timestamping"] = timestamping_name(config.timestamping);
  j["retention_age_ms"] = config.retention_age_ms;
  j["retention_bytes"] = config.retention_bytes;
  j["delete_on_empty_ms"] = config.delete_on_empty_ms;
  j["compress_lz4"] = config.compress_lz4;
  return j;
}

Json to_json(const BucketConfig& config) {
  Json j = Json::object();
  j["default_stream_config"] = to_json(config.default_stream_config);
  j["create_stream_on_append"] = config.create_stream_on_append;
  j["create_stream_on_read"] = config.create_stream_on_read;
  return j;
}

Json to_json(const StreamInfo& info) {
  Json j = Json::object();
  j["bucket"] = info.bucket;
  j["name"] = info.name;
  j["config"] = to_json(info.config);
  j["created_ms"] = info.created_ms;
  j["sealed"] = info.sealed;
  j["fenced"] = info.fenced;
  j["trim_seq"] = info.trim_seq;
  j["tail"] = info.tail;
  // Over the last minute, as stored (lz4 streams count compressed bytes).
  j["append_rate"] = Json{{"records_per_s", static_cast<double>(info.appended_records_last_minute) / 60.0},
                          {"bytes_per_s", static_cast<double>(info.appended_bytes_last_minute) / 60.0}};
  return j;
}

Json to_json(const BucketInfo& info) {
  Json j = Json::object();
  j["name"] = info.name;
  j["config"] = to_json(info.config);
  j["created_ms"] = info.created_ms;
  return j;
}

Json to_json(const TokenInfo& info) {
  Json j = Json::object();
  j["id"] = info.id;
  j["buckets"] = info.buckets.text();
  j["streams"] = info.streams.text();
  j["tokens"] = info.tokens.text();
  Json ops = Json::array();
  for (uint32_t op = 1; op != 0 && op <= kOpListTokens; op <<= 1) {
    if ((info.ops & op) != 0) ops.push_back(token_op_name(op));
  }
  j["ops"] = std::move(ops);
  j["expires_ms"] = info.expires_ms;
  j["auto_prefix_streams"] = info.auto_prefix_streams;
  Json limits = Json::object();
  limits["append_bytes_per_s"] = info.limits.append_bytes_per_s;
  limits["append_records_per_s"] = info.limits.append_records_per_s;
  limits["read_bytes_per_s"] = info.limits.read_bytes_per_s;
  limits["read_records_per_s"] = info.limits.read_records_per_s;
  limits["connections_max"] = info.limits.connections_max;
  j["limits"] = std::move(limits);
  j["created_ms"] = info.created_ms;
  j["issued_by"] = info.issued_by;
  return j;
}

Result<uint32_t> parse_token_ops(std::string_view list) {
  uint32_t ops = 0;
  while (!list.empty()) {
    const size_t comma = list.find(',');
    std::string_view name = list.substr(0, comma);
    list = comma == std::string_view::npos ? std::string_view() : list.substr(comma + 1);
    while (!name.empty() && name.front() == ' ') name.remove_prefix(1);
    while (!name.empty() && name.back() == ' ') name.remove_suffix(1);
    if (name.empty()) continue;
    const uint32_t op = parse_token_op(name);
    if (op == 0) {
      return invalid(
          fmt::format("unknown operation \"{}\" (expected read, append, create-stream, delete-stream, "
                      "reconfigure-stream, trim-stream, seal-stream, fence-stream, create-bucket, "
                      "delete-bucket, reconfigure-bucket, issue-token, revoke-token, list-tokens, or the "
                      "groups manage-streams, manage-buckets, manage-tokens, all)",
                      printable(name)));
    }
    ops |= op;
  }
  return ops;
}

Result<TokenInfo> parse_token_json(std::string_view body, uint64_t now_ms) {
  auto parsed = parse_json_object(body);
  if (!parsed) return parsed.status();
  TokenInfo t;
  bool have_id = false, have_ops = false, have_expiry = false, have_tokens = false;
  for (auto it = parsed->begin(); it != parsed->end(); ++it) {
    const std::string& key = it.key();
    const Json& v = it.value();
    Status s;
    if (key == "id") {
      s = get_string(v, key, &t.id);
      have_id = true;
    } else if (key == "buckets" || key == "streams" || key == "tokens") {
      have_tokens |= key == "tokens";
      std::string text;
      s = get_string(v, key, &text);
      if (s && text.size() > 512) s = invalid(fmt::format("\"{}\" is at most 512 bytes", key));
      NameScope scope = NameScope::parse(text);
      (key == "buckets" ? t.buckets : key == "streams" ? t.streams : t.tokens) = std::move(scope);
    } else if (key == "ops") {
      have_ops = true;
      std::string list;
      if (v.is_array()) {
        for (const Json& item : v) {
          if (!item.is_string()) return invalid("\"ops\" must be an array of operation names");
          list += item.get<std::string>() + ",";
        }
      } else {
        s = get_string(v, key, &list);
      }
      if (s) {
        auto ops = parse_token_ops(list);
        if (!ops) return ops.status();
        t.ops = *ops;
      }
    } else if (key == "expires_in_ms" || key == "expires_ms") {
      if (have_expiry) return invalid("give one of \"expires_in_ms\" and \"expires_ms\"");
      have_expiry = true;
      uint64_t ms = 0;
      s = get_u64(v, key, &ms);
      t.expires_ms = key == "expires_ms" ? ms : (ms > UINT64_MAX - now_ms ? UINT64_MAX : now_ms + ms);
    } else if (key == "auto_prefix_streams") {
      s = get_bool(v, key, &t.auto_prefix_streams);
    } else if (key == "limits") {
      if (!v.is_object()) return invalid("\"limits\" must be an object");
      for (auto l = v.begin(); l != v.end(); ++l) {
        const std::string& name = l.key();
        uint64_t n = 0;
        if (Status ls = get_u64(l.value(), name, &n); !ls) return ls;
        if (name == "append_bytes_per_s") {
          t.limits.append_bytes_per_s = n;
        } else if (name == "append_records_per_s") {
          t.limits.append_records_per_s = n;
        } else if (name == "read_bytes_per_s") {
          t.limits.read_bytes_per_s = n;
        } else if (name == "read_records_per_s") {
          t.limits.read_records_per_s = n;
        } else if (name == "connections_max") {
          if (n > UINT32_MAX) return invalid("\"connections_max\" is too large");
          t.limits.connections_max = static_cast<uint32_t>(n);
        } else {
          return invalid(
              fmt::format("unknown field \"{}\" in \"limits\" (expected append_bytes_per_s, "
                          "append_records_per_s, read_bytes_per_s, read_records_per_s, connections_max)",
                          printable(name)));
        }
      }
    } else {
      return invalid(
          fmt::format("unknown field \"{}\" in the token (expected id, buckets, streams, tokens, ops, "
                      "expires_in_ms, expires_ms, auto_prefix_streams, limits)",
                      printable(key)));
    }
    if (!s) return s;
  }
  if (!have_id) return invalid("the token needs \"id\", a string");
  if (!have_ops) return invalid("the token needs \"ops\", the operations it allows");
  if (t.id.size() > 64) return invalid("token id must be 1 to 64 characters");
  if (!have_tokens) t.tokens = NameScope{t.id, false};  // By default, only itself.
  return t;
}

Result<ListQuery> parse_list_query(const QueryParams& params) {
  if (Status s = check_known(params, {"prefix", "start_after", "limit"}); !s) return s;
  ListQuery q;
  auto prefix = param(params, "prefix");
  if (!prefix) return prefix.status();
  if (*prefix) q.prefix = std::string(**prefix);
  auto start_after = param(params, "start_after");
  if (!start_after) return start_after.status();
  if (*start_after) q.start_after = std::string(**start_after);
  if (q.prefix.size() > wire::kStrBytesMax || q.start_after.size() > wire::kStrBytesMax) {
    return invalid("prefix and start_after are at most 65535 bytes");
  }
  auto limit = param(params, "limit");
  if (!limit) return limit.status();
  if (*limit) {
    uint64_t v = 0;
    if (Status s = parse_u64(**limit, "limit", &v); !s) return s;
    q.limit = static_cast<uint32_t>(std::min<uint64_t>(v, UINT32_MAX));  // Above 1000: the server's default.
  }
  return q;
}

Result<AppendInput> parse_append_json(std::string_view body, const QueryParams& params) {
  auto parsed = parse_json_object(body);
  if (!parsed) return parsed.status();
  const Json& root = *parsed;
  AppendInput input;
  if (Status s = apply_append_query(params, &input); !s) return s;
  const Json* records = nullptr;
  std::optional<uint64_t> producer_id, producer_seq;
  auto once = [](bool given_in_query, std::string_view key) {
    return given_in_query ? invalid(fmt::format("{} is given both in the query and in the body", key)) : Status::ok();
  };
  for (auto it = root.begin(); it != root.end(); ++it) {
    const std::string& key = it.key();
    const Json& v = it.value();
    if (key == "records") {
      records = &v;
    } else if (key == "match_seq_num") {
      if (Status s = once(input.match_seq_num.has_value(), key); !s) return s;
      uint64_t n = 0;
      if (Status s = get_u64(v, key, &n); !s) return s;
      input.match_seq_num = n;
    } else if (key == "fencing_token") {
      if (Status s = once(input.fencing_token.has_value(), key); !s) return s;
      std::string token;
      if (Status s = get_string(v, key, &token); !s) return s;
      input.fencing_token = std::move(token);
    } else if (key == "producer_id" || key == "producer_seq") {
      if (Status s = once(input.producer.has_value(), key); !s) return s;
      uint64_t n = 0;
      if (Status s = get_u64(v, key, &n); !s) return s;
      (key == "producer_id" ? producer_id : producer_seq) = n;
    } else {
      return unknown_field("the append", key, "records, match_seq_num, fencing_token, producer_id, producer_seq");
    }
  }
  if (producer_id.has_value() != producer_seq.has_value()) return invalid("producer_id and producer_seq go together");
  if (producer_id) input.producer = std::make_pair(*producer_id, *producer_seq);
  if (records == nullptr || !records->is_array()) return invalid("\"records\" must be an array of records");
  if (records->empty()) return invalid("\"records\" holds no record");
  size_t index = 0;
  for (const Json& record : *records) {
    if (Status s = parse_record(record, index++, &input.payload); !s) return s;
  }
  if (input.fencing_token && input.fencing_token->size() > wire::kStrBytesMax) {
    return invalid("fencing_token is at most 65535 bytes");
  }
  return input;
}

Result<AppendInput> parse_append_text(std::string_view body, const QueryParams& params) {
  AppendInput input;
  if (Status s = apply_append_query(params, &input); !s) return s;
  if (input.fencing_token && input.fencing_token->size() > wire::kStrBytesMax) {
    return invalid("fencing_token is at most 65535 bytes");
  }
  if (body.empty()) return invalid("the body holds no line (one record per line)");
  while (!body.empty()) {
    const size_t nl = body.find('\n');
    std::string_view line = body.substr(0, nl);
    body = nl == std::string_view::npos ? std::string_view() : body.substr(nl + 1);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    input.payload.add(0, line);
  }
  return input;
}

std::string append_request(std::string_view bucket, std::string_view stream, const AppendInput& input) {
  wire::Append m;
  m.bucket = bucket;
  m.stream = stream;
  if (input.match_seq_num) {
    m.options |= wire::Append::kHasMatchSeqNum;
    m.match_seq_num = *input.match_seq_num;
  }
  if (input.fencing_token) {
    m.options |= wire::Append::kHasFencingToken;
    m.fencing_token = *input.fencing_token;
  }
  if (input.producer) {
    m.options |= wire::Append::kHasProducer;
    m.producer_id = input.producer->first;
    m.producer_seq = input.producer->second;
  }
  m.record_count = input.payload.record_count();
  m.payload = input.payload.bytes();
  m.payload_checksum = payload_checksum(m.payload);
  std::string out;
  wire::Writer w(&out);
  wire::encode(w, m);
  return out;
}

Result<ReadQuery> parse_read_query(const QueryParams& params) {
  if (Status s = check_known(params, {"seq_num", "timestamp", "tail_offset", "count", "wait_ms", "until_timestamp"}); !s) {
    return s;
  }
  ReadQuery q;
  int starts = 0;
  struct StartParam {
    const char* name;
    uint8_t kind;
  };
  for (const StartParam& p : {StartParam{"seq_num", wire::Start::kSeqNum}, StartParam{"timestamp", wire::Start::kTimestamp},
                              StartParam{"tail_offset", wire::Start::kTailOffset}}) {
    auto v = param(params, p.name);
    if (!v) return v.status();
    if (!*v) continue;
    starts++;
    q.start.kind = p.kind;
    if (Status s = parse_u64(**v, p.name, &q.start.value); !s) return s;
  }
  if (starts > 1) return invalid("give at most one of seq_num, timestamp and tail_offset");
  uint64_t n = 0;
  auto count = param(params, "count");
  if (!count) return count.status();
  if (*count) {
    if (Status s = parse_u64(**count, "count", &n); !s) return s;
    if (n == 0) return invalid("count must be at least 1");
    q.count = static_cast<uint32_t>(std::min<uint64_t>(n, kReadCountMax));
  }
  auto wait = param(params, "wait_ms");
  if (!wait) return wait.status();
  if (*wait) {
    if (Status s = parse_u64(**wait, "wait_ms", &n); !s) return s;
    if (n > kWaitMsMax) return invalid(fmt::format("wait_ms is at most {}", kWaitMsMax));
    q.wait_ms = static_cast<uint32_t>(n);
  }
  auto until = param(params, "until_timestamp");
  if (!until) return until.status();
  if (*until) {
    if (Status s = parse_u64(**until, "until_timestamp", &q.until_timestamp); !s) return s;
  }
  return q;
}

Result<Json> records_json(const wire::ReadAnswer& answer, uint32_t count, uint64_t until) {
  Json records = Json::array();
  for (size_t i = 0; i < answer.batches.size(); i++) {
    const uint32_t skip = i == 0 ? answer.first_record_index : 0;
    if (Status s = batch_records(answer.batches[i], skip, count, until, &records); !s) return s;
  }
  Json out = Json::object();
  out["records"] = std::move(records);
  out["tail"] = answer.tail;
  return out;
}

// --- Serving ---------------------------------------------------------------
//
// Each request is an Exchange on the heap, owned by the chain of callbacks
// that serve it and freed by finish(). A step that asks the Router
// names the next step; an error answer ends the exchange with its status.

namespace {

constexpr uint32_t kRequestId = 1;  // The Router only echoes it.
constexpr uint32_t kShardStreamsListedMax = 1000;

struct Exchange {
  Reactor& reactor;
  Router& streams;
  std::optional<TokenInfo> who;  // Null while access control is off.
  const HttpRequest& request;  // Valid until the responder is used.
  HttpResponder responder;
  Route route;
  Json input;         // The request's JSON body, for the steps that need it.
  ReadQuery read;     // GET .../records.
  std::string name;   // POST: the bucket or stream to create.
};

void finish(Exchange* ex, HttpResponse response) {
  std::unique_ptr<Exchange> owned(ex);
  HttpResponder responder = std::move(owned->responder);
  owned.reset();  // Before the answer: answering may start the connection's next request.
  responder.respond(std::move(response));
}

void fail(Exchange* ex, const Status& status) { finish(ex, error_response(status)); }

std::string dump(const Json& j) { return j.dump(-1, ' ', false, Json::error_handler_t::replace) + "\n"; }

void answer_json(Exchange* ex, int status, const Json& j) { finish(ex, HttpResponse::json(status, dump(j))); }

using Next = void (*)(Exchange*, std::string_view body);

void on_answer(Exchange* ex, Next next, const std::string& frame) {
  if (frame.size() < wire::kFrameHeaderBytes) return fail(ex, Status(ErrorCode::kInternal, "short answer frame"));
  const wire::FrameHeader header = wire::read_frame_header(frame.data());
  const std::string_view body = std::string_view(frame).substr(wire::kFrameHeaderBytes);
  if ((header.flags & wire::kFlagError) != 0) {
    wire::ErrorBody error;
    if (!wire::decode_body(body, &error)) return fail(ex, Status(ErrorCode::kInternal, "malformed error answer"));
    const bool known = error.code >= static_cast<uint16_t>(ErrorCode::kInternal) &&
                       error.code <= static_cast<uint16_t>(ErrorCode::kThrottled);
    return fail(ex, Status(known ? static_cast<ErrorCode>(error.code) : ErrorCode::kInternal, std::string(error.message),
                           error.detail));
  }
  next(ex, body);
}

// Runs one protocol request on this shard's Router; `next` gets the
// answer body of a success.
void call(Exchange* ex, Opcode opcode, const std::string& body, Next next) {
  Status s = ex->streams.handle(ex->who ? &*ex->who : nullptr, static_cast<uint16_t>(opcode), kRequestId, body,
                                [ex, next](std::string frame) { on_answer(ex, next, frame); });
  if (!s) fail(ex, Status(ErrorCode::kInternal, "the REST adapter built a malformed request: " + s.message()));
}

using wire::body_of;

// Decodes an answer body as T, or ends the exchange with an internal error.
template <typename T>
bool decode_answer(Exchange* ex, std::string_view body, T* m) {
  if (wire::decode_body(body, m)) return true;
  fail(ex, Status(ErrorCode::kInternal, "the server's answer did not decode"));
  return false;
}

// The JSON body of a request that needs one.
bool parse_input(Exchange* ex) {
  auto parsed = parse_json_object(ex->request.body);
  if (!parsed) {
    fail(ex, parsed.status());
    return false;
  }
  ex->input = std::move(*parsed);
  return true;
}

// Only `allowed` fields in the request's JSON body.
bool check_fields(Exchange* ex, std::initializer_list<std::string_view> allowed) {
  for (auto it = ex->input.begin(); it != ex->input.end(); ++it) {
    if (std::find(allowed.begin(), allowed.end(), it.key()) != allowed.end()) continue;
    std::string list;
    for (std::string_view a : allowed) list += (list.empty() ? "" : ", ") + std::string(a);
    fail(ex, invalid(fmt::format("unknown field \"{}\" in the body (expected {})", it.key(), list)));
    return false;
  }
  return true;
}

std::string stream_path(std::string_view bucket, std::string_view stream) {
  return fmt::format("/v1/buckets/{}/streams/{}", percent_encode(bucket), percent_encode(stream));
}

// --- Buckets -----------------------------------------------------------------

void answer_bucket(Exchange* ex, std::string_view body) {
  BucketInfo info;
  if (decode_answer(ex, body, &info)) answer_json(ex, 200, to_json(info));
}

void answer_bucket_created(Exchange* ex, std::string_view body) {
  BucketInfo info;
  if (!decode_answer(ex, body, &info)) return;
  HttpResponse response = HttpResponse::json(201, dump(to_json(info)));
  response.headers.emplace_back("Location", "/v1/buckets/" + percent_encode(info.name));
  finish(ex, std::move(response));
}

void answer_deleted(Exchange* ex, std::string_view) {
  HttpResponse response;
  response.status = 204;
  finish(ex, std::move(response));
}

void list_buckets(Exchange* ex, const ListQuery& q) {
  call(ex, Opcode::kListBuckets, body_of(wire::ListRequest{"", q.prefix, q.start_after, q.limit}),
       [](Exchange* e, std::string_view body) {
         wire::ListAnswer<BucketInfo> answer;
         if (!decode_answer(e, body, &answer)) return;
         Json j = Json::object();
         j["buckets"] = Json::array();
         for (const BucketInfo& b : answer.items) j["buckets"].push_back(to_json(b));
         j["more"] = answer.more;
         answer_json(e, 200, j);
       });
}

// Reads {"name":…, "config":{…}?}: the name into ex->name; false if answered.
bool parse_create(Exchange* ex) {
  if (!parse_input(ex) || !check_fields(ex, {"name", "config"})) return false;
  auto name = ex->input.find("name");
  if (name == ex->input.end() || !name->is_string()) {
    fail(ex, invalid("the body needs \"name\", a string"));
    return false;
  }
  ex->name = name->get<std::string>();
  if (ex->name.size() > wire::kStrBytesMax) {
    fail(ex, invalid("the name is too long"));
    return false;
  }
  return true;
}

void create_bucket(Exchange* ex) {
  if (!parse_create(ex)) return;
  BucketConfig config;
  if (auto c = ex->input.find("config"); c != ex->input.end()) {
    if (Status s = merge_bucket_config(*c, &config); !s) return fail(ex, s);
  }
  call(ex, Opcode::kCreateBucket, body_of(wire::BucketWithConfig{ex->name, config}), answer_bucket_created);
}

void patch_bucket(Exchange* ex) {
  if (!parse_input(ex) || !check_fields(ex, {"config"})) return;
  if (ex->input.find("config") == ex->input.end()) return fail(ex, invalid("the body needs \"config\", an object"));
  // Read, merge the given fields, write back. Not atomic with another
  // reconfigure: the last one wins.
  call(ex, Opcode::kGetBucket, body_of(wire::BucketName{ex->route.bucket}), [](Exchange* e, std::string_view body) {
    BucketInfo info;
    if (!decode_answer(e, body, &info)) return;
    if (Status s = merge_bucket_config(e->input["config"], &info.config); !s) return fail(e, s);
    call(e, Opcode::kReconfigureBucket, body_of(wire::BucketWithConfig{e->route.bucket, info.config}), answer_bucket);
  });
}

// --- Tokens ------------------------------------------------------------------

void issue_token(Exchange* ex) {
  auto token = parse_token_json(ex->request.body, static_cast<uint64_t>(Reactor::clock_realtime_ms()));
  if (!token) return fail(ex, token.status());
  call(ex, Opcode::kIssueToken, body_of(*token), [](Exchange* e, std::string_view body) {
    wire::IssuedToken issued;
    if (!decode_answer(e, body, &issued)) return;
    Json j = Json::object();
    j["id"] = issued.info.id;
    j["token"] = std::string(issued.token);  // Shown this once.
    j["info"] = to_json(issued.info);
    HttpResponse response = HttpResponse::json(201, dump(j));
    response.headers.emplace_back("Location", "/v1/tokens/" + percent_encode(issued.info.id));
    response.headers.emplace_back("Cache-Control", "no-store");
    finish(e, std::move(response));
  });
}

void list_tokens(Exchange* ex, const ListQuery& q) {
  call(ex, Opcode::kListTokens, body_of(wire::ListRequest{"", q.prefix, q.start_after, q.limit}),
       [](Exchange* e, std::string_view body) {
         wire::ListAnswer<TokenInfo> answer;
         if (!decode_answer(e, body, &answer)) return;
         Json j = Json::object();
         j["tokens"] = Json::array();
         for (const TokenInfo& t : answer.items) j["tokens"].push_back(to_json(t));
         j["more"] = answer.more;
         answer_json(e, 200, j);
       });
}

// --- Streams -----------------------------------------------------------------

void answer_stream(Exchange* ex, std::string_view body) {
  StreamInfo info;
  if (decode_answer(ex, body, &info)) answer_json(ex, 200, to_json(info));
}

void answer_stream_created(Exchange* ex, std::string_view body) {
  StreamInfo info;
  if (!decode_answer(ex, body, &info)) return;
  HttpResponse response = HttpResponse::json(201, dump(to_json(info)));
  response.headers.emplace_back("Location", stream_path(info.bucket, info.name));
  finish(ex, std::move(response));
}

void list_streams(Exchange* ex, const ListQuery& q) {
  call(ex, Opcode::kListStreams, body_of(wire::ListRequest{ex->route.bucket, q.prefix, q.start_after, q.limit}),
       [](Exchange* e, std::string_view body) {
         wire::ListAnswer<StreamInfo> answer;
         if (!decode_answer(e, body, &answer)) return;
         Json j = Json::object();
         j["streams"] = Json::array();
         for (const StreamInfo& s : answer.items) j["streams"].push_back(to_json(s));
         j["more"] = answer.more;
         answer_json(e, 200, j);
       });
}

void create_stream(Exchange* ex) {
  if (!parse_create(ex)) return;
  if (ex->input.find("config") == ex->input.end()) {
    return call(ex, Opcode::kCreateStream, body_of(wire::CreateStream{ex->route.bucket, ex->name, true, {}}),
                answer_stream_created);
  }
  // The given fields over the bucket's default stream config.
  call(ex, Opcode::kGetBucket, body_of(wire::BucketName{ex->route.bucket}), [](Exchange* e, std::string_view body) {
    BucketInfo bucket;
    if (!decode_answer(e, body, &bucket)) return;
    StreamConfig config = bucket.config.default_stream_config;
    if (Status s = merge_stream_config(e->input["config"], &config); !s) return fail(e, s);
    call(e, Opcode::kCreateStream, body_of(wire::CreateStream{e->route.bucket, e->name, false, config}),
         answer_stream_created);
  });
}

void patch_stream(Exchange* ex) {
  if (!parse_input(ex) || !check_fields(ex, {"config"})) return;
  if (ex->input.find("config") == ex->input.end()) return fail(ex, invalid("the body needs \"config\", an object"));
  call(ex, Opcode::kGetStream, body_of(wire::StreamName{ex->route.bucket, ex->route.stream}),
       [](Exchange* e, std::string_view body) {
         StreamInfo info;
         if (!decode_answer(e, body, &info)) return;
         if (Status s = merge_stream_config(e->input["config"], &info.config); !s) return fail(e, s);
         call(e, Opcode::kReconfigureStream, body_of(wire::ReconfigureStream{e->route.bucket, e->route.stream, info.config}),
              answer_stream);
       });
}

// What GET .../{s} adds to the stream's info, gathered on its owning shard.
struct StreamDetails {
  bool found = false;
  uint64_t tail = 0;
  uint64_t last_timestamp = 0;
  uint64_t stored_bytes = 0;
  std::vector<SubscriptionStatus> subscriptions;
};

struct DetailsHop {
  Exchange* ex;
  const Sharded<StreamStore>* stores;
  const Sharded<Subscriptions>* subscriptions;
  int origin;
  uint32_t owner;
  StreamInfo info;
  StreamDetails details;
  std::string stored_name;  // The stream's name as stored (with an auto-prefixing token's prefix).
};

void answer_stream_details(DetailsHop* hop) {
  std::unique_ptr<DetailsHop> owned(hop);
  Json j = to_json(hop->info);
  j["shard"] = hop->owner;
  const StreamDetails& d = hop->details;
  if (d.found) {
    j["tail"] = d.tail;
    j["last_timestamp"] = d.last_timestamp;
    j["stored_bytes"] = d.stored_bytes;
  }
  Json subs = Json::array();
  for (const SubscriptionStatus& s : d.subscriptions) {
    Json sub = Json::object();
    sub["id"] = s.id;
    sub["connection_shard"] = s.connection_shard;
    if (s.positioned) {
      sub["next_seq_num"] = s.next_seq;
      sub["lag"] = d.tail > s.next_seq ? d.tail - s.next_seq : 0;
    } else {
      sub["next_seq_num"] = nullptr;
      sub["lag"] = nullptr;
    }
    sub["credit_bytes"] = s.credit_bytes;
    subs.push_back(std::move(sub));
  }
  j["subscriptions"] = std::move(subs);
  answer_json(hop->ex, 200, j);
}

void get_stream(Exchange* ex) {
  call(ex, Opcode::kGetStream, body_of(wire::StreamName{ex->route.bucket, ex->route.stream}),
       [](Exchange* e, std::string_view body) {
         StreamInfo info;
         if (!decode_answer(e, body, &info)) return;
         const auto shards = static_cast<uint32_t>(e->reactor.shard_count());
         // The answer names the stream as the token sees it; the details are the stored stream's.
         std::string stored = e->who && e->who->auto_prefix_streams ? e->who->streams.value + info.name : info.name;
         const uint32_t owner = wire::owner_shard(info.bucket, stored, shards);
         auto* hop = new DetailsHop{e,
                                    e->streams.stores(),
                                    e->streams.subscriptions(),
                                    e->reactor.shard(),
                                    owner,
                                    std::move(info),
                                    {},
                                    std::move(stored)};
         e->reactor.hold();  // Shutdown waits for the answer.
         e->reactor.send(static_cast<int>(hop->owner), [hop] {
           Reactor& there = Reactor::current();
           StreamStore& store = hop->stores->local();
           StreamDetails& d = hop->details;
           if (const StreamEntry* stream = store.catalog().find(hop->info.bucket, hop->stored_name)) {
             auto tail = store.tail(hop->info.bucket, hop->stored_name);
             d.found = tail.is_ok();
             if (d.found) {
               d.tail = tail->next_seq;
               d.last_timestamp = tail->last_timestamp;
             }
             d.stored_bytes = store.log().stored_bytes(stream->id);
             d.subscriptions = hop->subscriptions->local().of_stream(hop->info.bucket, hop->stored_name);
           }
           there.send(hop->origin, [hop] {
             answer_stream_details(hop);
             Reactor::current().release();
           });
         });
       });
}

void trim_stream(Exchange* ex) {
  if (!parse_input(ex) || !check_fields(ex, {"trim_seq"})) return;
  auto v = ex->input.find("trim_seq");
  if (v == ex->input.end()) return fail(ex, invalid("the body needs \"trim_seq\", a non-negative integer"));
  uint64_t trim_seq = 0;
  if (Status s = get_u64(*v, "trim_seq", &trim_seq); !s) return fail(ex, s);
  call(ex, Opcode::kTrimStream, body_of(wire::TrimStream{ex->route.bucket, ex->route.stream, trim_seq}), answer_stream);
}

void fence_stream(Exchange* ex) {
  if (!parse_input(ex) || !check_fields(ex, {"token"})) return;
  auto v = ex->input.find("token");
  if (v == ex->input.end()) return fail(ex, invalid("the body needs \"token\", a string (empty: unfence)"));
  std::string token;
  if (Status s = get_string(*v, "token", &token); !s) return fail(ex, s);
  if (token.size() > wire::kStrBytesMax) return fail(ex, invalid("the token is at most 65535 bytes"));
  call(ex, Opcode::kFenceStream, body_of(wire::FenceStream{ex->route.bucket, ex->route.stream, token}), answer_stream);
}

// --- Records -----------------------------------------------------------------

bool is_text_plain(std::string_view content_type) {
  const std::string_view kText = "text/plain";
  if (content_type.size() < kText.size()) return false;
  for (size_t i = 0; i < kText.size(); i++) {
    if (std::tolower(static_cast<unsigned char>(content_type[i])) != kText[i]) return false;
  }
  return content_type.size() == kText.size() || content_type[kText.size()] == ';' ||
         content_type[kText.size()] == ' ';
}

void append_records(Exchange* ex, const QueryParams& params) {
  const bool text = is_text_plain(ex->request.header("Content-Type"));
  auto input = text ? parse_append_text(ex->request.body, params) : parse_append_json(ex->request.body, params);
  if (!input) return fail(ex, input.status());
  call(ex, Opcode::kAppend, append_request(ex->route.bucket, ex->route.stream, *input),
       [](Exchange* e, std::string_view body) {
         AppendAck ack;
         if (!decode_answer(e, body, &ack)) return;
         Json j = Json::object();
         j["start_seq"] = ack.start_seq;
         j["end_seq"] = ack.end_seq;
         j["start_timestamp"] = ack.start_timestamp;
         j["end_timestamp"] = ack.end_timestamp;
         j["tail"] = ack.tail;
         answer_json(e, 200, j);
       });
}

void read_records(Exchange* ex, const QueryParams& params) {
  auto q = parse_read_query(params);
  if (!q) return fail(ex, q.status());
  ex->read = *q;
  wire::Read m;
  m.bucket = ex->route.bucket;
  m.stream = ex->route.stream;
  m.start = q->start;
  m.max_records = q->count;
  m.max_bytes = kReadBytesMax;
  m.until_timestamp = q->until_timestamp;
  m.wait_ms = q->wait_ms;
  call(ex, Opcode::kRead, body_of(m), [](Exchange* e, std::string_view body) {
    wire::ReadAnswer answer;
    if (!decode_answer(e, body, &answer)) return;
    auto j = records_json(answer, e->read.count, e->read.until_timestamp);
    if (!j) return fail(e, j.status());
    answer_json(e, 200, *j);
  });
}

void check_tail(Exchange* ex) {
  call(ex, Opcode::kCheckTail, body_of(wire::StreamName{ex->route.bucket, ex->route.stream}),
       [](Exchange* e, std::string_view body) {
         wire::TailAnswer tail;
         if (!decode_answer(e, body, &tail)) return;
         Json j = Json::object();
         j["tail"] = tail.tail;
         j["last_timestamp"] = tail.last_timestamp;
         answer_json(e, 200, j);
       });
}

// --- Shards ------------------------------------------------------------------

struct StreamTailRow {
  std::string bucket, name;
  uint64_t tail = 0;
  uint64_t stored_bytes = 0;
};

struct ShardStats {
  int shard = 0;
  uint64_t streams = 0;
  uint64_t stored_bytes = 0;
  uint64_t subscriptions = 0;
  std::vector<std::pair<std::string, uint64_t>> counters;  // From the shard's metrics.
  std::vector<StreamTailRow> listed;                        // The first streams, by internal id.
};

// The metrics /v1/shards shows, as "name in JSON" <- "Prometheus counter".
constexpr std::pair<const char*, const char*> kShardCounters[] = {
    {"appends", "runnel_log_appends_total"},
    {"records_appended", "runnel_log_records_appended_total"},
    {"bytes_appended", "runnel_log_bytes_appended_total"},
    {"reads", "runnel_log_reads_total"},
};

ShardStats shard_stats(Reactor& there, const Sharded<StreamStore>* stores, const Sharded<Subscriptions>* subscriptions,
                       uint32_t streams_listed) {
  ShardStats stats;
  stats.shard = there.shard();
  StreamStore& store = stores->local();
  // Linear in the shard's streams: an admin request, not the data path.
  for (const StreamEntry* info : store.catalog().all()) {
    const uint64_t bytes = store.log().stored_bytes(info->id);
    stats.streams++;
    stats.stored_bytes += bytes;
    if (stats.listed.size() < streams_listed) {
      auto tail = store.tail(info->bucket, info->name);
      stats.listed.push_back(StreamTailRow{info->bucket, info->name, tail ? tail->next_seq : 0, bytes});
    }
  }
  stats.subscriptions = subscriptions->local().count();
  const MetricsSnapshot snapshot = there.metrics().snapshot();
  for (const auto& counter : kShardCounters) {
    uint64_t value = 0;
    for (const MetricFamily& family : snapshot.families) {
      if (family.name != counter.second) continue;
      for (const MetricSample& sample : family.samples) value += static_cast<uint64_t>(sample.value);
    }
    stats.counters.emplace_back(counter.first, value);
  }
  return stats;
}

void shards(Exchange* ex, const QueryParams& params) {
  if (Status s = check_known(params, {"streams"}); !s) return fail(ex, s);
  uint32_t listed = 100;
  auto streams = param(params, "streams");
  if (!streams) return fail(ex, streams.status());
  if (*streams) {
    uint64_t n = 0;
    if (Status s = parse_u64(**streams, "streams", &n); !s) return fail(ex, s);
    listed = static_cast<uint32_t>(std::min<uint64_t>(n, kShardStreamsListedMax));
  }
  const Sharded<StreamStore>* stores = ex->streams.stores();
  const Sharded<Subscriptions>* subscriptions = ex->streams.subscriptions();
  gather_from_shards<ShardStats>(
      ex->reactor,
      [stores, subscriptions, listed](Reactor& there) { return shard_stats(there, stores, subscriptions, listed); },
      [ex](std::vector<ShardStats> all) {
        Json list = Json::array();
        for (const ShardStats& s : all) {
          Json shard = Json::object();
          shard["shard"] = s.shard;
          shard["streams"] = s.streams;
          shard["stored_bytes"] = s.stored_bytes;
          shard["subscriptions"] = s.subscriptions;
          for (const auto& counter : s.counters) shard[counter.first] = counter.second;
          Json tails = Json::array();
          for (const StreamTailRow& row : s.listed) {
            // A token sees the rows of its own streams only (the totals are the node's).
            if (ex->who && !auth::may_see_stream(*ex->who, row.bucket, row.name)) continue;
            Json t = Json::object();
            t["bucket"] = row.bucket;
            t["name"] = ex->who && ex->who->auto_prefix_streams ? row.name.substr(ex->who->streams.value.size())
                                                                 : row.name;
            t["tail"] = row.tail;
            t["stored_bytes"] = row.stored_bytes;
            tails.push_back(std::move(t));
          }
          shard["stream_tails"] = std::move(tails);
          shard["stream_tails_more"] = s.listed.size() < s.streams;
          list.push_back(std::move(shard));
        }
        Json j = Json::object();
        j["time_ms"] = static_cast<uint64_t>(Reactor::clock_realtime_ms());
        j["shards"] = std::move(list);
        answer_json(ex, 200, j);
      });
}

}  // namespace

void serve(Reactor& reactor, Router& streams, bool ready, const TokenInfo* who, const HttpRequest& request,
           HttpResponder responder) {
  auto route = parse_route(request.path);
  if (!route) return responder.respond(error_response(route.status()));
  if (!ready) return responder.respond(error_response(Status(ErrorCode::kUnavailable, "the server is starting")));
  const std::string_view method = request.method == "HEAD" ? std::string_view("GET") : request.method;
  if (!method_allowed(route->resource, method)) {
    HttpResponse response = HttpResponse::error(
        405, "method_not_allowed", fmt::format("{} supports {}", request.path, allowed_methods(route->resource)));
    response.headers.emplace_back("Allow", std::string(allowed_methods(route->resource)));
    return responder.respond(std::move(response));
  }
  auto params = parse_query(request.query);
  if (!params) return responder.respond(error_response(params.status()));
  // Only the listings, records and shards take query parameters.
  const Resource r = route->resource;
  const bool takes_query = (r == Resource::kBuckets || r == Resource::kStreams || r == Resource::kTokens)
                               ? method == "GET"
                               : r == Resource::kRecords || r == Resource::kShards;
  if (!takes_query) {
    if (Status s = check_known(*params, {}); !s) return responder.respond(error_response(s));
  }
  auto* ex = new Exchange{reactor, streams, {}, request, std::move(responder), std::move(*route), {}, {}, {}};
  if (who != nullptr) ex->who = *who;
  switch (r) {
    case Resource::kBuckets: {
      if (method == "POST") return create_bucket(ex);
      auto q = parse_list_query(*params);
      if (!q) return fail(ex, q.status());
      return list_buckets(ex, *q);
    }
    case Resource::kBucket:
      if (method == "GET") return call(ex, Opcode::kGetBucket, body_of(wire::BucketName{ex->route.bucket}), answer_bucket);
      if (method == "PATCH") return patch_bucket(ex);
      return call(ex, Opcode::kDeleteBucket, body_of(wire::BucketName{ex->route.bucket}), answer_deleted);
    case Resource::kStreams: {
      if (method == "POST") return create_stream(ex);
      auto q = parse_list_query(*params);
      if (!q) return fail(ex, q.status());
      return list_streams(ex, *q);
    }
    case Resource::kStream:
      if (method == "GET") return get_stream(ex);
      if (method == "PATCH") return patch_stream(ex);
      return call(ex, Opcode::kDeleteStream, body_of(wire::StreamName{ex->route.bucket, ex->route.stream}),
                  answer_deleted);
    case Resource::kRecords:
      if (method == "POST") return append_records(ex, *params);
      return read_records(ex, *params);
    case Resource::kTail: return check_tail(ex);
    case Resource::kSeal:
      return call(ex, Opcode::kSealStream, body_of(wire::StreamName{ex->route.bucket, ex->route.stream}), answer_stream);
    case Resource::kTrim: return trim_stream(ex);
    case Resource::kFence: return fence_stream(ex);
    case Resource::kShards: return shards(ex, *params);
    case Resource::kTokens: {
      if (method == "POST") return issue_token(ex);
      auto q = parse_list_query(*params);
      if (!q) return fail(ex, q.status());
      return list_tokens(ex, *q);
    }
    case Resource::kToken:
      return call(ex, Opcode::kRevokeToken, body_of(wire::TokenId{ex->route.token}), answer_deleted);
  }
}

}  // namespace runnel::rest
