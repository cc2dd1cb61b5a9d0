#include "core/config.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <array>
#include <cerrno>
#include <nlohmann/json.hpp>
#include <sstream>
#include <system_error>
#include <toml++/toml.h>
#include <variant>

#include "core/text.h"

namespace runnel {
namespace {

// ---------------------------------------------------------------------------
// The key table. Every source (file, environment, flags) and every printer
// (TOML, JSON, --help, config_keys()) walks this one table, so adding a key
// here is all it takes to make it settable and visible everywhere.
// ---------------------------------------------------------------------------

// Where a key's value lives in Config. The alternative held is the key's type:
// std::string is a path, uint32_t an integer in [min, max] (optionally a power
// of two), HostPort "HOST:PORT", LogLevel a level name, bool true/false (its
// flag takes no value: present means true). There is no plain string type
// because no key needs one yet.
using MemberPtr =
    std::variant<std::string Config::*, uint32_t Config::*, HostPort Config::*, LogLevel Config::*, bool Config::*>;

struct KeyDef {
  std::string_view name;  // Dotted: "admin.listen". At most one dot: "section.key".
  std::string_view flag;  // "--admin-listen", or empty when no flag sets this key.
  MemberPtr member;
  uint32_t min = 0;  // Integers only: the accepted range, inclusive.
  uint32_t max = 0;
  bool power_of_two = false;  // Integers only.
  std::string_view doc;       // One line, no trailing period; printed as a TOML comment.
};

constexpr KeyDef path_key(std::string_view name, std::string_view flag, std::string Config::*member,
                          std::string_view doc) {
  return KeyDef{name, flag, member, 0, 0, false, doc};
}
constexpr KeyDef u32_key(std::string_view name, std::string_view flag, uint32_t Config::*member, uint32_t min,
                         uint32_t max, std::string_view doc) {
  return KeyDef{name, flag, member, min, max, false, doc};
}
constexpr KeyDef pow2_key(std::string_view name, uint32_t Config::*member, uint32_t min, uint32_t max,
                          std::string_view doc) {
  return KeyDef{name, {}, member, min, max, true, doc};
}
constexpr KeyDef host_port_key(std::string_view name, std::string_view flag, HostPort Config::*member,
                               std::string_view doc) {
  return KeyDef{name, flag, member, 0, 0, false, doc};
}
constexpr KeyDef bool_key(std::string_view name, std::string_view flag, bool Config::*member, std::string_view doc) {
  return KeyDef{name, flag, member, 0, 0, false, doc};
}
constexpr KeyDef log_level_key(std::string_view name, std::string_view flag, LogLevel Config::*member,
                               std::string_view doc) {
  return KeyDef{name, flag, member, 0, 0, false, doc};
}

// Documentation order. Top-level keys come first and each section's keys are
// contiguous, because that is the only order in which one TOML document can
// list them (a key after "[admin]" belongs to admin); keys_are_well_formed()
// checks this at compile time.
constexpr std::array kKeys = {
    path_key("data_dir", "--data-dir", &Config::data_dir, "Directory that holds the data of every shard"),
    u32_key("shards", "--shards", &Config::shards, 0, 256,
            "Shards to run, one thread each; 0 means one per available core"),
    log_level_key("log_level", "--log-level", &Config::log_level, "Least severe log level written to stderr"),
    host_port_key("server.listen", "--listen", &Config::listen,
                  "Address of the binary protocol port; port 0 picks a free port"),
    u32_key("server.connections_max", {}, &Config::connections_max, 1, 1000000,
            "Most open binary protocol connections per shard"),
    u32_key("server.frame_bytes_max", {}, &Config::frame_bytes_max, 65536, 67108864,
            "Largest binary protocol frame, in bytes (a full batch must fit)"),
    u32_key("server.requests_in_flight_max", {}, &Config::requests_in_flight_max, 1, 1000000,
            "Requests a connection may have in flight before the server stops reading from it"),
    u32_key("server.subscriptions_max", {}, &Config::subscriptions_max, 1, 1000000,
            "Subscriptions one connection may have open; another is refused (overloaded)"),
    u32_key("server.output_bytes_max", {}, &Config::output_bytes_max, 1048576, 1073741824,
            "Unsent bytes (answers and pushes) one connection may hold, and the most credit of one subscription; "
            "beyond it the server stops reading the connection and ends its subscriptions (overloaded)"),
    u32_key("server.batch_records_max", {}, &Config::batch_records_max, 1, kConfigBatchRecordsMax,
            "Most records in one appended batch; a larger append is refused (too_large)"),
    u32_key("server.batch_bytes_max", {}, &Config::batch_bytes_max, 64, kConfigBatchBytesMax,
            "Most bytes of encoded records (lengths and headers included) in one appended batch"),
    u32_key("server.record_bytes_max", {}, &Config::record_bytes_max, 16, kConfigRecordBytesMax,
            "Most bytes of one encoded record in an append"),
    u32_key("server.heartbeat_ms", {}, &Config::heartbeat_ms, 100, 3600000,
            "A silent connection is pinged after this long and closed after three times it, in milliseconds"),
    host_port_key("admin.listen", "--admin-listen", &Config::admin_listen,
                  "Address of the HTTP admin port; port 0 picks a free port"),
    u32_key("admin.connections_max", {}, &Config::admin_connections_max, 1, 65536,
            "Most open admin connections per shard; when all are taken, a newcomer closes the longest-idle one"),
    u32_key("admin.header_bytes_max", {}, &Config::admin_header_bytes_max, 1024, 1048576,
            "Largest admin request line plus headers, in bytes"),
    u32_key("admin.body_bytes_max", {}, &Config::admin_body_bytes_max, 0, 67108864,
            "Largest admin request body, in bytes"),
    u32_key("admin.request_timeout_ms", {}, &Config::admin_request_timeout_ms, 1, 3600000,
            "Time allowed for a whole admin request (and a new connection's first) to arrive, in milliseconds"),
    u32_key("admin.idle_timeout_ms", {}, &Config::admin_idle_timeout_ms, 1, 86400000,
            "How long an idle keep-alive admin connection stays open, in milliseconds"),
    bool_key("auth.enabled", "--auth", &Config::auth_enabled,
             "Require an access token on both ports; the first start creates a root token in the data directory"),
    bool_key("auth.metrics_open", {}, &Config::auth_metrics_open,
             "Serve /metrics without a token while access control is on"),
    path_key("tls.cert_file", "--tls-cert", &Config::tls_cert_file,
             "PEM certificate chain: both ports speak TLS (1.3, 1.2 at the least); empty: plaintext"),
    path_key("tls.key_file", "--tls-key", &Config::tls_key_file, "PEM private key of tls.cert_file"),
    path_key("tls.client_ca_file", "--tls-client-ca", &Config::tls_client_ca_file,
             "PEM CA that must have signed every client's certificate (with auth, a binary-port client without a "
             "token is signed in as the token its certificate's CN names); empty: none"),
    pow2_key("reactor.ring_entries", &Config::reactor_ring_entries, 8, 32768,
             "io_uring submission queue entries per shard"),
    pow2_key("reactor.message_queue_capacity", &Config::reactor_message_queue_capacity, 16, 1048576,
             "Messages each shard-to-shard queue holds"),
    u32_key("reactor.shutdown_timeout_ms", {}, &Config::reactor_shutdown_timeout_ms, 1, 600000,
            "Longest wait for in-flight work to drain at shutdown, in milliseconds"),
    u32_key("reactor.message_backlog_max", {}, &Config::reactor_message_backlog_max, 1, 16777216,
            "Messages a shard may hold waiting for other shards' full queues before it refuses new requests "
            "(overloaded)"),
    u32_key("storage.segment_mib", {}, &Config::storage_segment_mib, 4, 4095,
            "Size of each preallocated segment file, in MiB"),
    u32_key("storage.flush_bytes_max", {}, &Config::storage_flush_bytes_max, 2097152, 67108864,
            "Largest single durable write (group commit batch), in bytes"),
    u32_key("storage.flushes_in_flight_max", {}, &Config::storage_flushes_in_flight_max, 1, 64,
            "Durable writes in flight at once per shard"),
    u32_key("storage.write_buffers", {}, &Config::storage_write_buffers, 2, 1024,
            "Write buffers per shard (in flight plus filling); bounds memory for appends not yet durable"),
    u32_key("storage.cache_mib", {}, &Config::storage_cache_mib, 0, 65536,
            "Recently written data kept in memory per shard for reads, in MiB (0: none)"),
    u32_key("storage.retention_interval_ms", {}, &Config::storage_retention_interval_ms, 10, 3600000,
            "How often each shard applies per-stream retention (age, size, delete_on_empty), in milliseconds"),
    u32_key("storage.compact_live_percent", {}, &Config::storage_compact_live_percent, 0, 100,
            "Copy the live records of an old segment forward, so it can be deleted, once they are at most this "
            "percentage of it (0: never)"),
};

// Values shown in error messages are cut to this many bytes: a message is one
// log line, and the value may be a whole mistaken file.
constexpr size_t kShownBytesMax = 128;

constexpr std::string_view section_of(std::string_view name) {
  size_t dot = name.find('.');
  return dot == std::string_view::npos ? std::string_view() : name.substr(0, dot);
}

constexpr std::string_view leaf_of(std::string_view name) {
  size_t dot = name.find('.');
  return dot == std::string_view::npos ? name : name.substr(dot + 1);
}

constexpr bool is_power_of_two(uint64_t v) { return v != 0 && (v & (v - 1)) == 0; }

constexpr bool keys_are_well_formed() {
  for (size_t i = 0; i < kKeys.size(); ++i) {
    const KeyDef& def = kKeys[i];
    if (def.name.empty() || def.doc.empty() || def.doc.back() == '.') return false;
    if (std::count(def.name.begin(), def.name.end(), '.') > 1) return false;
    if (def.min > def.max) return false;
    if (def.power_of_two && (!is_power_of_two(def.min) || !is_power_of_two(def.max))) return false;
    for (size_t j = 0; j < i; ++j) {
      if (kKeys[j].name == def.name) return false;
      if (!def.flag.empty() && kKeys[j].flag == def.flag) return false;
    }
    // A new section may not reopen an earlier one or be followed by top-level keys.
    if (i > 0 && section_of(def.name) != section_of(kKeys[i - 1].name)) {
      if (section_of(def.name).empty()) return false;
      for (size_t j = 0; j + 1 < i; ++j) {
        if (section_of(kKeys[j].name) == section_of(def.name)) return false;
      }
    }
  }
  return true;
}
static_assert(keys_are_well_formed(), "kKeys: see keys_are_well_formed() for the rules");

const KeyDef* find_key(std::string_view name) {
  for (const KeyDef& def : kKeys) {
    if (def.name == name) return &def;
  }
  return nullptr;
}

// True if `name` is a section ("admin") that holds keys.
bool is_section(std::string_view name) {
  return std::any_of(kKeys.begin(), kKeys.end(), [&](const KeyDef& def) { return section_of(def.name) == name; });
}

// "admin.connections_max" -> "RUNNEL_ADMIN_CONNECTIONS_MAX".
std::string env_name(const KeyDef& def) {
  std::string out = "RUNNEL_";
  for (char c : def.name) {
    out += c == '.' ? '_' : static_cast<char>(c >= 'a' && c <= 'z' ? c - 'a' + 'A' : c);
  }
  return out;
}

// ---------------------------------------------------------------------------
// Text helpers.
// ---------------------------------------------------------------------------

// Appends `text` as a TOML basic string body. TOML forbids raw control
// characters (DEL included) there, so those are escaped. With
// `escape_high_bytes`, bytes >= 0x80 become \xNN: not TOML, but it keeps an
// error message valid UTF-8 when the value is not.
void append_escaped(std::string* out, std::string_view text, bool escape_high_bytes) {
  for (char ch : text) {
    auto c = static_cast<unsigned char>(ch);
    switch (ch) {
      case '"': *out += "\\\""; break;
      case '\\': *out += "\\\\"; break;
      case '\b': *out += "\\b"; break;
      case '\t': *out += "\\t"; break;
      case '\n': *out += "\\n"; break;
      case '\f': *out += "\\f"; break;
      case '\r': *out += "\\r"; break;
      default:
        if (c < 0x20 || c == 0x7F) {
          *out += fmt::format("\\u{:04X}", c);
        } else if (c >= 0x80 && escape_high_bytes) {
          *out += fmt::format("\\x{:02X}", c);
        } else {
          *out += ch;
        }
    }
  }
}

// A TOML basic string holding `text`, which must be valid UTF-8.
std::string toml_quoted(std::string_view text) {
  std::string out = "\"";
  append_escaped(&out, text, false);
  out += '"';
  return out;
}

// `text` quoted for an error message: escaped, and cut at a character boundary
// to kShownBytesMax bytes.
std::string shown(std::string_view text) {
  const bool valid = valid_utf8(text);
  std::string_view head = text;
  if (head.size() > kShownBytesMax) {
    size_t cut = kShownBytesMax;
    while (valid && cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80) --cut;
    head = text.substr(0, cut);
  }
  std::string out = "\"";
  append_escaped(&out, head, !valid);
  out += '"';
  if (head.size() < text.size()) out += fmt::format("... ({} bytes)", text.size());
  return out;
}

// A key or key part as the user wrote it: bare when TOML allows that, quoted
// otherwise. Known keys are all bare, so a quoted part never matches one (TOML
// "admin.listen" in quotes is one key with a dot in it, not admin.listen).
std::string shown_key_part(std::string_view part) {
  bool bare = !part.empty() && part.size() <= kShownBytesMax &&
              std::all_of(part.begin(), part.end(), [](char c) {
                return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
                       c == '-';
              });
  return bare ? std::string(part) : shown(part);
}

// A key name from a caller (env, flags, apply_setting): may hold dots.
std::string shown_key(std::string_view key) {
  bool plain = !key.empty() && key.size() <= kShownBytesMax &&
               std::all_of(key.begin(), key.end(), [](char c) {
                 return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
                        c == '-' || c == '.';
               });
  return plain ? std::string(key) : shown(key);
}

// Digits only: no sign, no spaces, no 0x. At most 18 digits so the result
// always fits; anything longer is out of every range anyway.
std::optional<int64_t> parse_decimal(std::string_view text) {
  if (text.empty() || text.size() > 18) return std::nullopt;
  int64_t value = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return std::nullopt;
    value = value * 10 + (c - '0');
  }
  return value;
}

Status invalid(std::string message) { return Status(ErrorCode::kInvalidArgument, std::move(message)); }

std::string system_error_text(int err) { return std::generic_category().message(err); }

// ---------------------------------------------------------------------------
// Host and port.
// ---------------------------------------------------------------------------

// Dotted-quad IPv4 with no leading zeros (inet_aton would read "010" as octal).
bool is_ipv4_literal(std::string_view host) {
  int octets = 0;
  size_t i = 0;
  while (true) {
    size_t start = i;
    while (i < host.size() && host[i] >= '0' && host[i] <= '9') ++i;
    size_t digits = i - start;
    if (digits == 0 || digits > 3) return false;
    if (digits > 1 && host[start] == '0') return false;
    if (*parse_decimal(host.substr(start, digits)) > 255) return false;
    ++octets;
    if (i == host.size()) return octets == 4;
    if (host[i] != '.' || octets == 4) return false;
    ++i;
  }
}

// Parses HOST:PORT; on failure returns why, without the text itself, so that
// callers can frame it.
Result<HostPort> parse_host_port_reason(std::string_view text) {
  if (!text.empty() && text.front() == '[') return invalid("IPv6 addresses are not supported");
  size_t colon = text.rfind(':');
  if (colon == std::string_view::npos) return invalid("missing port; expected HOST:PORT");
  std::string_view host = text.substr(0, colon);
  std::string_view port_text = text.substr(colon + 1);
  if (host.find(':') != std::string_view::npos) return invalid("IPv6 addresses are not supported");
  if (host.empty()) return invalid("empty host; expected HOST:PORT");
  if (port_text.empty()) return invalid("missing port; expected HOST:PORT");
  std::optional<int64_t> port = parse_decimal(port_text);
  if (!port || *port > 65535) return invalid("port must be a number 0..65535");
  HostPort out;
  out.port = static_cast<uint16_t>(*port);
  // "localhost" is resolved here, textually, so that the result is what is
  // bound and printed; other names would need DNS at startup.
  if (host == "localhost") {
    out.host = "127.0.0.1";
  } else if (is_ipv4_literal(host)) {
    out.host = std::string(host);
  } else {
    return invalid("host must be an IPv4 address or localhost");
  }
  return out;
}

// ---------------------------------------------------------------------------
// Setting one key.
// ---------------------------------------------------------------------------

// What a key accepts, for errors and comments.
std::string expectation(const KeyDef& def) {
  if (std::holds_alternative<uint32_t Config::*>(def.member)) {
    return fmt::format("{} {}..{}", def.power_of_two ? "a power of two" : "an integer", def.min, def.max);
  }
  if (std::holds_alternative<HostPort Config::*>(def.member)) return "IPV4:PORT or localhost:PORT";
  if (std::holds_alternative<LogLevel Config::*>(def.member)) return "one of debug, info, warn, error";
  if (std::holds_alternative<bool Config::*>(def.member)) return "true or false";
  return "a path";
}

// The --help placeholder for a flag's value.
std::string_view value_name(const KeyDef& def) {
  if (std::holds_alternative<uint32_t Config::*>(def.member)) return "N";
  if (std::holds_alternative<HostPort Config::*>(def.member)) return "HOST:PORT";
  if (std::holds_alternative<LogLevel Config::*>(def.member)) return "LEVEL";
  if (std::holds_alternative<bool Config::*>(def.member)) return "BOOL";
  return "PATH";
}

Status value_error(const KeyDef& def, std::string_view shown_value, std::string_view origin, std::string_view why) {
  return invalid(fmt::format("config key '{}' = {} (from {}): {}", def.name, shown_value, origin, why));
}

Status set_integer(Config* config, const KeyDef& def, int64_t value, std::string_view shown_value,
                   std::string_view origin) {
  auto member = std::get<uint32_t Config::*>(def.member);
  if (value < def.min || value > def.max || (def.power_of_two && !is_power_of_two(static_cast<uint64_t>(value)))) {
    return value_error(def, shown_value, origin, "expected " + expectation(def));
  }
  config->*member = static_cast<uint32_t>(value);
  return Status::ok();
}

// Sets a key whose value is text (every type but integers).
Status set_text(Config* config, const KeyDef& def, std::string_view text, std::string_view origin) {
  if (auto* member = std::get_if<HostPort Config::*>(&def.member)) {
    Result<HostPort> parsed = parse_host_port_reason(text);
    if (!parsed) return value_error(def, shown(text), origin, parsed.status().message());
    config->**member = std::move(*parsed);
  } else if (auto* level_member = std::get_if<LogLevel Config::*>(&def.member)) {
    if (!parse_log_level(text, &(config->**level_member))) {
      return value_error(def, shown(text), origin, "expected " + expectation(def));
    }
  } else if (auto* bool_member = std::get_if<bool Config::*>(&def.member)) {
    if (text != "true" && text != "false") return value_error(def, shown(text), origin, "expected true or false");
    config->** bool_member = text == "true";
  } else {
    auto path_member = std::get<std::string Config::*>(def.member);
    // A NUL would silently cut the path short in every system call.
    if (text.find('\0') != std::string_view::npos) {
      return value_error(def, shown(text), origin, "a path must not contain a NUL byte");
    }
    // Config is printed as TOML and JSON, which carry only Unicode text.
    if (!valid_utf8(text)) return value_error(def, shown(text), origin, "a path must be valid UTF-8");
    config->*path_member = std::string(text);
  }
  return Status::ok();
}

Status set_from_text(Config* config, const KeyDef& def, std::string_view value, std::string_view origin) {
  if (std::holds_alternative<uint32_t Config::*>(def.member)) {
    std::optional<int64_t> number = parse_decimal(value);
    if (!number) return value_error(def, shown(value), origin, "expected " + expectation(def));
    return set_integer(config, def, *number, shown(value), origin);
  }
  return set_text(config, def, value, origin);
}

// The value as text, unquoted: what --help shows as a default.
std::string value_text(const Config& config, const KeyDef& def) {
  if (auto* u32_member = std::get_if<uint32_t Config::*>(&def.member)) return std::to_string(config.**u32_member);
  if (auto* host_port_member = std::get_if<HostPort Config::*>(&def.member)) {
    return (config.**host_port_member).to_string();
  }
  if (auto* level_member = std::get_if<LogLevel Config::*>(&def.member)) {
    return std::string(log_level_name(config.**level_member));
  }
  if (auto* bool_member = std::get_if<bool Config::*>(&def.member)) return config.**bool_member ? "true" : "false";
  return config.*std::get<std::string Config::*>(def.member);
}

// ---------------------------------------------------------------------------
// TOML.
// ---------------------------------------------------------------------------

std::string_view type_phrase(const toml::node& node) {
  switch (node.type()) {
    case toml::node_type::table: return "a table";
    case toml::node_type::array: return "an array";
    case toml::node_type::string: return "a string";
    case toml::node_type::integer: return "an integer";
    case toml::node_type::floating_point: return "a float";
    case toml::node_type::boolean: return "a boolean";
    case toml::node_type::date: return "a date";
    case toml::node_type::time: return "a time";
    case toml::node_type::date_time: return "a date-time";
    case toml::node_type::none: break;
  }
  return "nothing";
}

// A leaf of the document (or an unknown table) with its full dotted name.
struct TomlEntry {
  std::string name;
  const toml::node* node;
};

// Flattens known sections; everything else, known or not, becomes an entry so
// that it is checked in document order.
void collect(const toml::table& table, const std::string& prefix, std::vector<TomlEntry>* out) {
  for (const auto& [key, node] : table) {
    std::string part = shown_key_part(key.str());
    std::string name = prefix.empty() ? part : prefix + "." + part;
    if (node.is_table() && find_key(name) == nullptr && is_section(name)) {
      collect(*node.as_table(), name, out);
    } else {
      out->push_back(TomlEntry{std::move(name), &node});
    }
  }
}

Status apply_toml_entry(Config* config, const TomlEntry& entry, std::string_view origin) {
  const toml::node& node = *entry.node;
  const auto line = node.source().begin.line;
  std::string where = line > 0 ? fmt::format("{}, line {}", origin, line) : std::string(origin);
  const KeyDef* def = find_key(entry.name);
  if (def == nullptr) {
    if (is_section(entry.name)) {
      return invalid(fmt::format("config table '{}' (in {}) is {}; expected a table", entry.name, where,
                                 type_phrase(node)));
    }
    if (node.is_table()) return invalid(fmt::format("unknown config table '{}' (in {})", entry.name, where));
    return invalid(fmt::format("unknown config key '{}' (in {})", entry.name, where));
  }

  const bool wants_integer = std::holds_alternative<uint32_t Config::*>(def->member);
  if (auto* bool_member = std::get_if<bool Config::*>(&def->member)) {
    if (node.is_boolean()) {
      config->** bool_member = node.as_boolean()->get();
      return Status::ok();
    }
    std::string why = fmt::format("expected true or false, got {}", type_phrase(node));
    if (node.is_string()) return value_error(*def, shown(node.as_string()->get()), where, why);
    return invalid(fmt::format("config key '{}' (from {}): {}", def->name, where, why));
  }
  if (wants_integer && node.is_integer()) {
    int64_t value = node.as_integer()->get();
    return set_integer(config, *def, value, std::to_string(value), where);
  }
  if (!wants_integer && node.is_string()) return set_text(config, *def, node.as_string()->get(), where);

  // Wrong type. Show the value when it is short enough to be a scalar.
  std::string wanted = wants_integer ? expectation(*def) : "a string (" + expectation(*def) + ")";
  std::string why = fmt::format("expected {}, got {}", wanted, type_phrase(node));
  if (node.is_string()) return value_error(*def, shown(node.as_string()->get()), where, why);
  if (node.is_table() || node.is_array()) {
    return invalid(fmt::format("config key '{}' (from {}): {}", def->name, where, why));
  }
  std::ostringstream value;
  value << toml::node_view<const toml::node>(node);
  return value_error(*def, value.str(), where, why);
}

// ---------------------------------------------------------------------------
// Environment and files.
// ---------------------------------------------------------------------------

// The first NAME=VALUE entry for `name`, as getenv() would find it.
std::optional<std::string_view> find_env(const std::vector<std::string>& environment, std::string_view name) {
  for (const std::string& entry : environment) {
    std::string_view view = entry;
    if (view.size() > name.size() && view.substr(0, name.size()) == name && view[name.size()] == '=') {
      return view.substr(name.size() + 1);
    }
  }
  return std::nullopt;
}

Result<std::string> read_config_file(const std::string& path, std::string_view named_by) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    return invalid(fmt::format("cannot read config file {} (from {}): {}", shown(path), named_by,
                               system_error_text(errno)));
  }
  // Read one byte past the limit so that "exactly at the limit" and "over it"
  // are told apart without a stat() that could race with the file changing.
  std::string text(kConfigBytesMax + 1, '\0');
  size_t used = 0;
  int err = 0;
  while (used < text.size()) {
    ssize_t n = ::read(fd, text.data() + used, text.size() - used);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      err = errno;
      break;
    }
    if (n == 0) break;
    used += static_cast<size_t>(n);
  }
  ::close(fd);
  if (err != 0) {
    return invalid(
        fmt::format("cannot read config file {} (from {}): {}", shown(path), named_by, system_error_text(err)));
  }
  if (used > kConfigBytesMax) {
    return invalid(fmt::format("config file {} (from {}) is larger than {} bytes", shown(path), named_by,
                               kConfigBytesMax));
  }
  text.resize(used);
  return text;
}

}  // namespace

// ---------------------------------------------------------------------------
// Public API.
// ---------------------------------------------------------------------------

std::string HostPort::to_string() const { return fmt::format("{}:{}", host, port); }

Result<HostPort> parse_host_port(std::string_view text) {
  Result<HostPort> parsed = parse_host_port_reason(text);
  if (!parsed) return invalid(fmt::format("invalid address {}: {}", shown(text), parsed.status().message()));
  return parsed;
}

Result<CommandLine> parse_command_line(int argc, const char* const* argv) {
  RUNNEL_ASSERT(argc >= 1);
  RUNNEL_ASSERT(argv != nullptr);
  CommandLine out;
  const Config defaults;
  CLI::App app("runneld: the Runnel durable stream store server", "runneld");
  app.footer(
      "Every config key can also be set in the TOML file (--config FILE, else $RUNNEL_CONFIG) or as\n"
      "RUNNEL_<KEY> in the environment (RUNNEL_ADMIN_LISTEN for admin.listen). Flags win over the\n"
      "environment, which wins over the file; conf/runneld.toml lists every key.");
  std::string config_file;
  CLI::Option* config_option = app.add_option("--config", config_file, "TOML config file")->type_name("FILE");
  // Flag values are kept as text: load_config() checks them with apply_setting
  // so that a bad value reads the same whether it came from a flag, the
  // environment or the file.
  std::array<std::string, kKeys.size()> values;
  std::array<CLI::Option*, kKeys.size()> options{};
  for (size_t i = 0; i < kKeys.size(); ++i) {
    const KeyDef& def = kKeys[i];
    if (def.flag.empty()) continue;
    if (std::holds_alternative<bool Config::*>(def.member)) {
      options[i] = app.add_flag(std::string(def.flag))->description(fmt::format("{} ({})", def.doc, def.name));
      values[i] = "true";
      continue;
    }
    options[i] = app.add_option(std::string(def.flag), values[i], fmt::format("{} ({})", def.doc, def.name))
                     ->type_name(std::string(value_name(def)))
                     ->default_str(value_text(defaults, def));
  }
  app.add_flag("--print-config", out.print_config, "Print the effective config as TOML");
  app.add_flag("--allow-unauthenticated", out.allow_unauthenticated,
               "Serve on a non-loopback address without access control (auth.enabled false): anyone who reaches "
               "a port can read, write and delete everything");
  try {
    app.parse(argc, argv);
  } catch (const CLI::Success&) {
    // Only --help is registered as a "success" exit.
    out.help = true;
    out.help_text = app.help();
    return out;
  } catch (const CLI::ParseError& e) {
    return invalid(fmt::format("command line: {}; see runneld --help", e.what()));
  } catch (const CLI::Error& e) {
    return Status(ErrorCode::kInternal, fmt::format("command line parser: {}", e.what()));
  }
  if (config_option->count() > 0) out.config_file = config_file;
  for (size_t i = 0; i < kKeys.size(); ++i) {
    if (options[i] != nullptr && options[i]->count() > 0) out.settings.emplace_back(kKeys[i].name, values[i]);
  }
  return out;
}

Status apply_setting(Config* config, std::string_view key, std::string_view value, std::string_view origin) {
  const KeyDef* def = find_key(key);
  if (def == nullptr) return invalid(fmt::format("unknown config key '{}' (from {})", shown_key(key), origin));
  Config next = *config;
  Status status = set_from_text(&next, *def, value, origin);
  if (status) *config = std::move(next);
  return status;
}

Status apply_toml(Config* config, std::string_view toml_text, std::string_view origin) {
  if (toml_text.size() > kConfigBytesMax) {
    return invalid(fmt::format("config text (in {}) is larger than {} bytes", origin, kConfigBytesMax));
  }
  toml::table root;
  try {
    root = toml::parse(toml_text);
  } catch (const toml::parse_error& e) {
    const toml::source_position& at = e.source().begin;
    return invalid(
        fmt::format("invalid TOML (in {}, line {}, column {}): {}", origin, at.line, at.column, e.description()));
  }
  std::vector<TomlEntry> entries;
  collect(root, std::string(), &entries);
  // The table iterates in key order; report the first problem as the reader
  // sees it, top to bottom.
  std::stable_sort(entries.begin(), entries.end(), [](const TomlEntry& a, const TomlEntry& b) {
    const toml::source_position& pa = a.node->source().begin;
    const toml::source_position& pb = b.node->source().begin;
    return std::pair(pa.line, pa.column) < std::pair(pb.line, pb.column);
  });
  Config next = *config;
  for (const TomlEntry& entry : entries) {
    Status status = apply_toml_entry(&next, entry, origin);
    if (!status) return status;
  }
  *config = std::move(next);
  return Status::ok();
}

Status apply_environment(Config* config, const std::vector<std::string>& environment) {
  Config next = *config;
  for (const KeyDef& def : kKeys) {
    std::string name = env_name(def);
    std::optional<std::string_view> value = find_env(environment, name);
    if (!value) continue;
    Status status = set_from_text(&next, def, *value, name);
    if (!status) return status;
  }
  *config = std::move(next);
  return Status::ok();
}

Status validate(const Config& config) {
  if (config.data_dir.empty()) return invalid("config key 'data_dir' must not be empty");
  // Two listeners on one port fail at bind(); say why before that. 0.0.0.0
  // overlaps every address, so it clashes with any host on the same port.
  const HostPort& a = config.listen;
  const HostPort& b = config.admin_listen;
  bool same_address = a.host == b.host || a.host == "0.0.0.0" || b.host == "0.0.0.0";
  if (a.port != 0 && a.port == b.port && same_address) {
    return invalid(fmt::format(
        "config keys 'server.listen' = \"{}\" and 'admin.listen' = \"{}\" use the same port; they must differ "
        "unless the port is 0",
        a.to_string(), b.to_string()));
  }
  if (config.storage_write_buffers <= config.storage_flushes_in_flight_max) {
    return invalid(fmt::format(
        "config key 'storage.write_buffers' = {} must exceed 'storage.flushes_in_flight_max' = {} "
        "(one buffer fills while the others are written)",
        config.storage_write_buffers, config.storage_flushes_in_flight_max));
  }
  if (config.tls_cert_file.empty() != config.tls_key_file.empty()) {
    return invalid("config keys 'tls.cert_file' and 'tls.key_file' go together (--tls-cert and --tls-key)");
  }
  if (!config.tls_client_ca_file.empty() && config.tls_cert_file.empty()) {
    return invalid("config key 'tls.client_ca_file' needs 'tls.cert_file' and 'tls.key_file'");
  }
  if (uint64_t{config.storage_flush_bytes_max} > uint64_t{config.storage_segment_mib} << 20) {
    return invalid(fmt::format("config key 'storage.flush_bytes_max' = {} exceeds the segment size ({} MiB)",
                               config.storage_flush_bytes_max, config.storage_segment_mib));
  }
  return Status::ok();
}

bool is_loopback_host(std::string_view host) { return host == "localhost" || host.substr(0, 4) == "127."; }

Status check_exposure(const Config& config, bool allow_unauthenticated) {
  if (allow_unauthenticated || config.auth_enabled) return Status::ok();
  for (const auto& [key, address] :
       {std::pair{"server.listen", config.listen}, {"admin.listen", config.admin_listen}}) {
    if (is_loopback_host(address.host)) continue;
    return invalid(fmt::format(
        "refusing to listen on {} ('{}') without access control: anyone who can reach it could read, write and "
        "delete everything; turn it on with --auth (auth.enabled), listen on loopback, or pass "
        "--allow-unauthenticated on a network you trust",
        address.to_string(), key));
  }
  return Status::ok();
}

Result<Config> load_config(const CommandLine& command_line, const std::vector<std::string>& environment) {
  Config config;

  std::optional<std::string> path;
  std::string_view named_by;
  if (command_line.config_file) {
    path = *command_line.config_file;
    named_by = "flag --config";
  } else if (std::optional<std::string_view> from_env = find_env(environment, "RUNNEL_CONFIG")) {
    path = std::string(*from_env);
    named_by = "RUNNEL_CONFIG";
  }
  if (path) {
    Result<std::string> text = read_config_file(*path, named_by);
    if (!text) return text.status();
    Status status = apply_toml(&config, *text, "file " + *path);
    if (!status) return status;
  }

  Status status = apply_environment(&config, environment);
  if (!status) return status;

  for (const auto& [key, value] : command_line.settings) {
    const KeyDef* def = find_key(key);
    std::string origin = def != nullptr && !def->flag.empty() ? fmt::format("flag {}", def->flag) : "command line";
    status = apply_setting(&config, key, value, origin);
    if (!status) return status;
  }

  status = validate(config);
  if (!status) return status;
  return config;
}

std::string config_to_toml(const Config& config) {
  std::string out;
  std::string_view section;
  for (const KeyDef& def : kKeys) {
    std::string_view key_section = section_of(def.name);
    if (!out.empty()) out += '\n';
    if (key_section != section) {
      out += fmt::format("[{}]\n", key_section);
      section = key_section;
    }
    out += fmt::format("# {} ({})\n", def.doc, expectation(def));
    std::string value =
        std::holds_alternative<uint32_t Config::*>(def.member) || std::holds_alternative<bool Config::*>(def.member)
            ? value_text(config, def)
            : toml_quoted(value_text(config, def));
    out += fmt::format("{} = {}\n", leaf_of(def.name), value);
  }
  return out;
}

std::string config_to_json(const Config& config) {
  // ordered_json keeps documentation order, so the output reads like the TOML.
  nlohmann::ordered_json object = nlohmann::ordered_json::object();
  for (const KeyDef& def : kKeys) {
    if (auto* u32_member = std::get_if<uint32_t Config::*>(&def.member)) {
      object[std::string(def.name)] = config.**u32_member;
    } else if (auto* bool_member = std::get_if<bool Config::*>(&def.member)) {
      object[std::string(def.name)] = config.**bool_member;
    } else {
      object[std::string(def.name)] = value_text(config, def);
    }
  }
  // A Config built in code (not through apply_*) could hold a non-UTF-8 path;
  // replace such bytes rather than throw.
  return object.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
}

std::vector<std::string_view> config_keys() {
  std::vector<std::string_view> out;
  out.reserve(kKeys.size());
  for (const KeyDef& def : kKeys) out.push_back(def.name);
  return out;
}

}  // namespace runnel
