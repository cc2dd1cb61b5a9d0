#pragma once
// The effective configuration of runneld and how it is assembled.
//
// Sources, lowest precedence first: built-in defaults, the TOML file
// (--config FILE), RUNNEL_* environment variables, command-line flags.
// Every key has one dotted name ("admin.listen"); its environment variable is
// RUNNEL_ followed by the name upper-cased with '.' turned into '_'
// (RUNNEL_ADMIN_LISTEN). conf/runneld.toml documents every key and default.
//
// Errors name the key, the bad value and where it came from. Unknown keys in
// the file are errors. Config is built once at startup on the main thread and
// then copied read-only to every shard.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/log.h"
#include "core/status.h"

namespace runnel {

// "HOST:PORT" with an IPv4 literal or "localhost"; port 0 asks for a free port.
struct HostPort {
  std::string host;
  uint16_t port = 0;

  std::string to_string() const;
  bool operator==(const HostPort&) const = default;
};
Result<HostPort> parse_host_port(std::string_view text);

// Batch limits' defaults and upper bounds: the wire's absolute maxima
// (proto/limits.h, which core cannot include; net/server.cc asserts they agree).
inline constexpr uint32_t kConfigBatchRecordsMax = 1000;
inline constexpr uint32_t kConfigBatchBytesMax = 1114112;
inline constexpr uint32_t kConfigRecordBytesMax = 1048576;

struct Config {
  // --- top level ---
  std::string data_dir = "./data";          // data_dir
  uint32_t shards = 0;                      // shards: 0 means one per available core
  LogLevel log_level = LogLevel::kInfo;     // log_level

  // --- [server]: the binary protocol port ---
  HostPort listen{"127.0.0.1", 7420};       // server.listen
  uint32_t connections_max = 10000;          // server.connections_max (per shard)
  uint32_t frame_bytes_max = 2u << 20;       // server.frame_bytes_max
  uint32_t requests_in_flight_max = 1024;    // server.requests_in_flight_max (per connection)
  uint32_t subscriptions_max = 1024;         // server.subscriptions_max (per connection)
  uint32_t output_bytes_max = 64u << 20;     // server.output_bytes_max (per connection)
  uint32_t batch_records_max = kConfigBatchRecordsMax;  // server.batch_records_max
  uint32_t batch_bytes_max = kConfigBatchBytesMax;      // server.batch_bytes_max (encoded records)
  uint32_t record_bytes_max = kConfigRecordBytesMax;    // server.record_bytes_max
  uint32_t heartbeat_ms = 5000;              // server.heartbeat_ms

  // --- [admin]: the HTTP admin port ---
  HostPort admin_listen{"127.0.0.1", 7421};       // admin.listen
  uint32_t admin_connections_max = 256;           // admin.connections_max (per shard)
  uint32_t admin_header_bytes_max = 16 * 1024;    // admin.header_bytes_max (request line + headers)
  uint32_t admin_body_bytes_max = 1024 * 1024;    // admin.body_bytes_max
  uint32_t admin_request_timeout_ms = 10'000;     // admin.request_timeout_ms (whole request must arrive)
  uint32_t admin_idle_timeout_ms = 60'000;        // admin.idle_timeout_ms (keep-alive idle)

  // --- [auth]: access tokens (docs/SECURITY.md) ---
  bool auth_enabled = false;       // auth.enabled (--auth)
  bool auth_metrics_open = false;  // auth.metrics_open (/metrics without a token)

  // --- [tls]: both ports (docs/SECURITY.md); reloaded on SIGHUP ---
  std::string tls_cert_file;       // tls.cert_file (--tls-cert); empty: plaintext
  std::string tls_key_file;        // tls.key_file (--tls-key)
  std::string tls_client_ca_file;  // tls.client_ca_file (--tls-client-ca)

  // --- [reactor] ---
  uint32_t reactor_ring_entries = 1024;           // reactor.ring_entries (SQ size, power of two)
  uint32_t reactor_message_queue_capacity = 4096; // reactor.message_queue_capacity (per shard pair)
  uint32_t reactor_shutdown_timeout_ms = 5'000;   // reactor.shutdown_timeout_ms (drain bound)
  uint32_t reactor_message_backlog_max = 65'536;  // reactor.message_backlog_max (per shard)

  // --- [storage] ---
  uint32_t storage_segment_mib = 256;             // storage.segment_mib
  uint32_t storage_flush_bytes_max = 4u << 20;    // storage.flush_bytes_max
  uint32_t storage_flushes_in_flight_max = 4;     // storage.flushes_in_flight_max
  uint32_t storage_write_buffers = 8;             // storage.write_buffers (> flushes_in_flight_max)
  uint32_t storage_cache_mib = 64;                // storage.cache_mib
  uint32_t storage_retention_interval_ms = 1000;  // storage.retention_interval_ms
  uint32_t storage_compact_live_percent = 25;     // storage.compact_live_percent

  bool operator==(const Config&) const = default;
};

// The largest config file (and TOML text) accepted: a config is a few hundred
// bytes, so anything near this is a mistake such as --config pointing at data.
inline constexpr size_t kConfigBytesMax = 1024 * 1024;

// What the command line asked for, before it is merged with other sources.
struct CommandLine {
  std::optional<std::string> config_file;  // --config FILE
  bool print_config = false;               // --print-config
  bool allow_unauthenticated = false;      // --allow-unauthenticated (see check_exposure)
  bool help = false;                       // --help / -h: help_text holds the usage
  std::string help_text;
  // (dotted key, value) pairs from flags, in order: --data-dir, --listen,
  // --admin-listen, --shards, --log-level.
  std::vector<std::pair<std::string, std::string>> settings;
};

// Refuses a config whose ports listen beyond loopback (any address but
// 127.0.0.0/8 and localhost) unless access control is on (auth.enabled) or
// `allow_unauthenticated`: such a server would let anyone who can reach it
// read, write and delete everything. The message names the flag that
// overrides it.
Status check_exposure(const Config& config, bool allow_unauthenticated);
bool is_loopback_host(std::string_view host);

// Parses runneld's flags. Unknown flags and missing values are errors.
Result<CommandLine> parse_command_line(int argc, const char* const* argv);

// Applies one setting by dotted key; `origin` names its source for errors
// ("flag --shards", "RUNNEL_SHARDS", "file runneld.toml").
// The apply_* functions leave *config unchanged when they return an error.
Status apply_setting(Config* config, std::string_view key, std::string_view value, std::string_view origin);

// Applies a TOML document. Unknown keys, wrong types and bad values are errors.
Status apply_toml(Config* config, std::string_view toml_text, std::string_view origin);

// Applies RUNNEL_* entries of an environment ("KEY=VALUE" strings). Variables
// that are not config keys (RUNNEL_SERVER and RUNNEL_TOKEN belong to the CLI)
// are ignored.
Status apply_environment(Config* config, const std::vector<std::string>& environment);

// Cross-key checks that no single setting can make (e.g. both ports equal and non-zero).
Status validate(const Config& config);

// Defaults, then file (if any), environment, flags; then validate().
Result<Config> load_config(const CommandLine& command_line, const std::vector<std::string>& environment);

// The effective config as a TOML document (for --print-config) and as a JSON
// object (for GET /v1/config). Both round-trip through apply_toml / keys.
std::string config_to_toml(const Config& config);
std::string config_to_json(const Config& config);

// All dotted keys, in documentation order.
std::vector<std::string_view> config_keys();

}  // namespace runnel
