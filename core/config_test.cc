#include "core/config.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cctype>
#include <fstream>
#include <initializer_list>
#include <iterator>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#ifndef RUNNEL_SOURCE_DIR
#error "core_test needs RUNNEL_SOURCE_DIR to find conf/runneld.toml"
#endif

namespace runnel {
namespace {

using ::testing::HasSubstr;

// Every key set to a valid value that differs from its default.
constexpr std::string_view kEveryKeyChanged = R"(
data_dir = "/var/lib/runnel"
shards = 4
log_level = "debug"

[server]
listen = "0.0.0.0:9000"
connections_max = 3
frame_bytes_max = 65536
requests_in_flight_max = 2
subscriptions_max = 5
output_bytes_max = 2097152
batch_records_max = 10
batch_bytes_max = 4096
record_bytes_max = 512
heartbeat_ms = 100

[admin]
listen = "127.0.0.1:9001"
connections_max = 10
header_bytes_max = 2048
body_bytes_max = 0
request_timeout_ms = 1
idle_timeout_ms = 86400000

[auth]
enabled = true
metrics_open = true

[tls]
cert_file = "/etc/runnel/cert.pem"
key_file = "/etc/runnel/key.pem"
client_ca_file = "/etc/runnel/clients.pem"

[reactor]
ring_entries = 8
message_queue_capacity = 1048576
shutdown_timeout_ms = 600000
message_backlog_max = 7

[storage]
segment_mib = 64
flush_bytes_max = 8388608
flushes_in_flight_max = 8
write_buffers = 16
cache_mib = 0
retention_interval_ms = 10
compact_live_percent = 7
)";

Config every_key_changed() {
  Config config;
  Status status = apply_toml(&config, kEveryKeyChanged, "test");
  EXPECT_TRUE(status.is_ok()) << status.to_string();
  return config;
}

std::string message_of(const Status& status) {
  EXPECT_FALSE(status.is_ok());
  EXPECT_EQ(status.code(), ErrorCode::kInvalidArgument);
  return status.message();
}

template <typename T>
std::string message_of(const Result<T>& result) {
  EXPECT_FALSE(result.is_ok());
  if (result.is_ok()) return {};
  return message_of(result.status());
}

// The error apply_toml gives for `text`, starting from defaults.
std::string toml_error(std::string_view text) {
  Config config;
  return message_of(apply_toml(&config, text, "file /x/runneld.toml"));
}

std::string setting_error(std::string_view key, std::string_view value) {
  Config config;
  return message_of(apply_setting(&config, key, value, "test"));
}

Result<CommandLine> parse_args(std::initializer_list<const char*> args) {
  std::vector<const char*> argv = {"runneld"};
  argv.insert(argv.end(), args.begin(), args.end());
  return parse_command_line(static_cast<int>(argv.size()), argv.data());
}

std::string env_name_for(std::string_view key) {
  std::string name = "RUNNEL_";
  for (char c : key) name += c == '.' ? '_' : static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return name;
}

// A file under the test's temp dir; removed when the object goes away.
class TempFile {
 public:
  TempFile(std::string_view name, std::string_view content)
      : path_(testing::TempDir() + "config_test_" + std::to_string(::getpid()) + "_" + std::string(name)) {
    std::ofstream out(path_, std::ios::binary | std::ios::trunc);
    out.write(content.data(), static_cast<std::streamsize>(content.size()));
  }
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;
  ~TempFile() { ::unlink(path_.c_str()); }

  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

std::string shipped_config_path() { return std::string(RUNNEL_SOURCE_DIR) + "/conf/runneld.toml"; }

std::string read_whole_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  EXPECT_TRUE(in.good()) << path;
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// --- defaults ---------------------------------------------------------------

TEST(Config, DefaultsAreTheDocumentedValues) {
  Config config;
  EXPECT_EQ(config.data_dir, "./data");
  EXPECT_EQ(config.shards, 0u);
  EXPECT_EQ(config.log_level, LogLevel::kInfo);
  EXPECT_EQ(config.listen.to_string(), "127.0.0.1:7420");
  EXPECT_EQ(config.admin_listen.to_string(), "127.0.0.1:7421");
  EXPECT_EQ(config.admin_connections_max, 256u);
  EXPECT_EQ(config.admin_header_bytes_max, 16u * 1024);
  EXPECT_EQ(config.admin_body_bytes_max, 1024u * 1024);
  EXPECT_EQ(config.admin_request_timeout_ms, 10'000u);
  EXPECT_EQ(config.admin_idle_timeout_ms, 60'000u);
  EXPECT_FALSE(config.auth_enabled);
  EXPECT_FALSE(config.auth_metrics_open);
  EXPECT_EQ(config.tls_cert_file, "");
  EXPECT_EQ(config.tls_client_ca_file, "");
  EXPECT_EQ(config.reactor_ring_entries, 1024u);
  EXPECT_EQ(config.reactor_message_queue_capacity, 4096u);
  EXPECT_EQ(config.reactor_shutdown_timeout_ms, 5'000u);
}

TEST(Config, DefaultsPassValidate) { EXPECT_TRUE(validate(Config{}).is_ok()); }

TEST(Config, LoadWithNoSourcesGivesDefaults) {
  Result<Config> config = load_config(CommandLine{}, {});
  ASSERT_TRUE(config.is_ok()) << config.status().to_string();
  EXPECT_EQ(*config, Config{});
}

// --- parse_host_port --------------------------------------------------------

TEST(Config, ParseHostPortAcceptsIpv4AndPort) {
  Result<HostPort> hp = parse_host_port("127.0.0.1:7420");
  ASSERT_TRUE(hp.is_ok()) << hp.status().to_string();
  EXPECT_EQ(hp->host, "127.0.0.1");
  EXPECT_EQ(hp->port, 7420);
}

TEST(Config, ParseHostPortAcceptsPortZeroAndAnyAddress) {
  Result<HostPort> hp = parse_host_port("0.0.0.0:0");
  ASSERT_TRUE(hp.is_ok()) << hp.status().to_string();
  EXPECT_EQ(hp->host, "0.0.0.0");
  EXPECT_EQ(hp->port, 0);
}

TEST(Config, ParseHostPortAcceptsHighestPort) {
  Result<HostPort> hp = parse_host_port("10.1.2.3:65535");
  ASSERT_TRUE(hp.is_ok()) << hp.status().to_string();
  EXPECT_EQ(hp->port, 65535);
}

TEST(Config, ParseHostPortResolvesLocalhostTextually) {
  Result<HostPort> hp = parse_host_port("localhost:80");
  ASSERT_TRUE(hp.is_ok()) << hp.status().to_string();
  EXPECT_EQ(hp->host, "127.0.0.1");
  EXPECT_EQ(hp->port, 80);
}

TEST(Config, ParseHostPortRejectsMissingPort) {
  EXPECT_THAT(message_of(parse_host_port("127.0.0.1")), HasSubstr("missing port"));
  EXPECT_THAT(message_of(parse_host_port("127.0.0.1:")), HasSubstr("missing port"));
}

TEST(Config, ParseHostPortRejectsPortAbove65535) {
  EXPECT_THAT(message_of(parse_host_port("127.0.0.1:65536")), HasSubstr("port must be a number 0..65535"));
  EXPECT_THAT(message_of(parse_host_port("127.0.0.1:99999999999999999999")),
              HasSubstr("port must be a number 0..65535"));
}

TEST(Config, ParseHostPortRejectsNonNumericPort) {
  for (const char* text : {"127.0.0.1:http", "127.0.0.1:-1", "127.0.0.1:+80", "127.0.0.1:0x50"}) {
    EXPECT_THAT(message_of(parse_host_port(text)), HasSubstr("port must be a number")) << text;
  }
}

TEST(Config, ParseHostPortRejectsEmptyHost) {
  EXPECT_THAT(message_of(parse_host_port(":7420")), HasSubstr("empty host"));
}

TEST(Config, ParseHostPortRejectsIpv6AsUnsupported) {
  for (const char* text : {"[::1]:7420", "::1:7420", "fe80::1:80"}) {
    EXPECT_THAT(message_of(parse_host_port(text)), HasSubstr("IPv6 addresses are not supported")) << text;
  }
}

TEST(Config, ParseHostPortRejectsTrailingJunk) {
  for (const char* text : {"127.0.0.1:80x", "127.0.0.1:80 ", "127.0.0.1:80/", "127.0.0.1:80\n"}) {
    EXPECT_FALSE(parse_host_port(text).is_ok()) << text;
  }
}

TEST(Config, ParseHostPortRejectsHostsThatAreNotIpv4OrLocalhost) {
  for (const char* text : {"example.com:80", "1.2.3:80", "1.2.3.4.5:80", "256.0.0.1:80", "01.2.3.4:80",
                           "1..2.3:80", " 1.2.3.4:80", "LOCALHOST:80"}) {
    EXPECT_THAT(message_of(parse_host_port(text)), HasSubstr("IPv4 address or localhost")) << text;
  }
}

TEST(Config, ParseHostPortErrorQuotesTheText) {
  EXPECT_EQ(message_of(parse_host_port("1.2.3.4")), "invalid address \"1.2.3.4\": missing port; expected HOST:PORT");
}

TEST(Config, HostPortToStringJoinsHostAndPort) {
  EXPECT_EQ((HostPort{"10.0.0.1", 8080}).to_string(), "10.0.0.1:8080");
  EXPECT_EQ((HostPort{"0.0.0.0", 0}).to_string(), "0.0.0.0:0");
}

// --- apply_setting ----------------------------------------------------------

TEST(Config, ApplySettingSetsEachKind) {
  Config config;
  ASSERT_TRUE(apply_setting(&config, "data_dir", "/srv/runnel", "test").is_ok());
  ASSERT_TRUE(apply_setting(&config, "shards", "8", "test").is_ok());
  ASSERT_TRUE(apply_setting(&config, "log_level", "warn", "test").is_ok());
  ASSERT_TRUE(apply_setting(&config, "server.listen", "localhost:9000", "test").is_ok());
  ASSERT_TRUE(apply_setting(&config, "reactor.ring_entries", "64", "test").is_ok());
  EXPECT_EQ(config.data_dir, "/srv/runnel");
  EXPECT_EQ(config.shards, 8u);
  EXPECT_EQ(config.log_level, LogLevel::kWarn);
  EXPECT_EQ(config.listen, (HostPort{"127.0.0.1", 9000}));
  EXPECT_EQ(config.reactor_ring_entries, 64u);
}

TEST(Config, ApplySettingAcceptsBothEndsOfRange) {
  Config config;
  EXPECT_TRUE(apply_setting(&config, "shards", "0", "test").is_ok());
  EXPECT_TRUE(apply_setting(&config, "shards", "256", "test").is_ok());
  EXPECT_TRUE(apply_setting(&config, "admin.header_bytes_max", "1024", "test").is_ok());
  EXPECT_TRUE(apply_setting(&config, "admin.header_bytes_max", "1048576", "test").is_ok());
  EXPECT_TRUE(apply_setting(&config, "reactor.message_queue_capacity", "16", "test").is_ok());
  EXPECT_TRUE(apply_setting(&config, "reactor.message_queue_capacity", "1048576", "test").is_ok());
}

TEST(Config, ApplySettingRejectsUnknownKey) {
  EXPECT_EQ(setting_error("admin.lisen", "x"), "unknown config key 'admin.lisen' (from test)");
}

TEST(Config, ApplySettingRejectsNonNumericInteger) {
  Config config;
  EXPECT_EQ(message_of(apply_setting(&config, "shards", "abc", "flag --shards")),
            "config key 'shards' = \"abc\" (from flag --shards): expected an integer 0..256");
}

TEST(Config, ApplySettingRejectsSignsSpacesAndHex) {
  for (const char* value : {"-1", "+1", " 1", "1 ", "0x10", "1e3", ""}) {
    EXPECT_THAT(setting_error("shards", value), HasSubstr("expected an integer 0..256")) << value;
  }
}

TEST(Config, ApplySettingRejectsIntegerAboveRange) {
  EXPECT_EQ(setting_error("shards", "257"), "config key 'shards' = \"257\" (from test): expected an integer 0..256");
  EXPECT_THAT(setting_error("admin.body_bytes_max", "67108865"), HasSubstr("expected an integer 0..67108864"));
  EXPECT_THAT(setting_error("shards", "99999999999999999999999"), HasSubstr("expected an integer 0..256"));
}

TEST(Config, ApplySettingRejectsIntegerBelowRange) {
  EXPECT_THAT(setting_error("admin.connections_max", "0"), HasSubstr("expected an integer 1..65536"));
  EXPECT_THAT(setting_error("admin.header_bytes_max", "1023"), HasSubstr("expected an integer 1024..1048576"));
}

TEST(Config, ApplySettingRejectsNotPowerOfTwo) {
  EXPECT_EQ(setting_error("reactor.ring_entries", "1000"),
            "config key 'reactor.ring_entries' = \"1000\" (from test): expected a power of two 8..32768");
  EXPECT_THAT(setting_error("reactor.message_queue_capacity", "4095"),
              HasSubstr("expected a power of two 16..1048576"));
}

TEST(Config, ApplySettingRejectsPowerOfTwoOutsideRange) {
  EXPECT_THAT(setting_error("reactor.ring_entries", "4"), HasSubstr("expected a power of two 8..32768"));
  EXPECT_THAT(setting_error("reactor.ring_entries", "65536"), HasSubstr("expected a power of two 8..32768"));
}

TEST(Config, ApplySettingRejectsBadLogLevel) {
  for (const char* value : {"verbose", "INFO", "fatal", ""}) {
    EXPECT_THAT(setting_error("log_level", value),
                HasSubstr("(from test): expected one of debug, info, warn, error"))
        << value;
  }
}

TEST(Config, ApplySettingRejectsBadHostPortWithReason) {
  EXPECT_EQ(setting_error("admin.listen", "127.0.0.1:99999"),
            "config key 'admin.listen' = \"127.0.0.1:99999\" (from test): port must be a number 0..65535");
  EXPECT_THAT(setting_error("server.listen", "[::1]:80"), HasSubstr("IPv6 addresses are not supported"));
}

TEST(Config, ApplySettingRejectsPathWithNul) {
  EXPECT_THAT(setting_error("data_dir", std::string_view("a\0b", 3)),
              HasSubstr("= \"a\\u0000b\" (from test): a path must not contain a NUL byte"));
}

TEST(Config, ApplySettingRejectsPathThatIsNotUtf8) {
  EXPECT_THAT(setting_error("data_dir", "/data/\xff"),
              HasSubstr("= \"/data/\\xFF\" (from test): a path must be valid UTF-8"));
}

TEST(Config, ApplySettingAcceptsUnicodePath) {
  Config config;
  ASSERT_TRUE(apply_setting(&config, "data_dir", "/données/流", "test").is_ok());
  EXPECT_EQ(config.data_dir, "/données/流");
}

TEST(Config, ApplySettingLeavesConfigUnchangedOnError) {
  Config config;
  EXPECT_FALSE(apply_setting(&config, "server.listen", "1.2.3.4", "test").is_ok());
  EXPECT_FALSE(apply_setting(&config, "log_level", "loud", "test").is_ok());
  EXPECT_EQ(config, Config{});
}

TEST(Config, ErrorShowsValueEscapedAndCut) {
  std::string long_value(1000, 'x');
  std::string message = setting_error("shards", long_value);
  EXPECT_THAT(message, HasSubstr("... (1000 bytes)"));
  EXPECT_LT(message.size(), 300u);
  EXPECT_THAT(setting_error("shards", "1\n2\"3"), HasSubstr("= \"1\\n2\\\"3\""));
}

// --- apply_toml -------------------------------------------------------------

TEST(Config, ApplyTomlSetsKeysInSections) {
  Config config = every_key_changed();
  EXPECT_EQ(config.data_dir, "/var/lib/runnel");
  EXPECT_EQ(config.shards, 4u);
  EXPECT_EQ(config.log_level, LogLevel::kDebug);
  EXPECT_EQ(config.listen, (HostPort{"0.0.0.0", 9000}));
  EXPECT_EQ(config.admin_listen, (HostPort{"127.0.0.1", 9001}));
  EXPECT_EQ(config.admin_connections_max, 10u);
  EXPECT_EQ(config.connections_max, 3u);
  EXPECT_EQ(config.frame_bytes_max, 65536u);
  EXPECT_EQ(config.requests_in_flight_max, 2u);
  EXPECT_EQ(config.subscriptions_max, 5u);
  EXPECT_EQ(config.output_bytes_max, 2u << 20);
  EXPECT_EQ(config.batch_records_max, 10u);
  EXPECT_EQ(config.batch_bytes_max, 4096u);
  EXPECT_EQ(config.record_bytes_max, 512u);
  EXPECT_EQ(config.heartbeat_ms, 100u);
  EXPECT_EQ(config.admin_header_bytes_max, 2048u);
  EXPECT_EQ(config.admin_body_bytes_max, 0u);
  EXPECT_EQ(config.admin_request_timeout_ms, 1u);
  EXPECT_EQ(config.admin_idle_timeout_ms, 86400000u);
  EXPECT_TRUE(config.auth_enabled);
  EXPECT_TRUE(config.auth_metrics_open);
  EXPECT_EQ(config.tls_cert_file, "/etc/runnel/cert.pem");
  EXPECT_EQ(config.tls_key_file, "/etc/runnel/key.pem");
  EXPECT_EQ(config.tls_client_ca_file, "/etc/runnel/clients.pem");
  EXPECT_EQ(config.reactor_ring_entries, 8u);
  EXPECT_EQ(config.reactor_message_queue_capacity, 1048576u);
  EXPECT_EQ(config.reactor_shutdown_timeout_ms, 600000u);
  EXPECT_EQ(config.reactor_message_backlog_max, 7u);
  EXPECT_EQ(config.storage_segment_mib, 64u);
  EXPECT_EQ(config.storage_flush_bytes_max, 8388608u);
  EXPECT_EQ(config.storage_flushes_in_flight_max, 8u);
  EXPECT_EQ(config.storage_write_buffers, 16u);
  EXPECT_EQ(config.storage_cache_mib, 0u);
  EXPECT_EQ(config.storage_retention_interval_ms, 10u);
  EXPECT_EQ(config.storage_compact_live_percent, 7u);
}

TEST(Config, EveryKeyChangedTouchesEveryKey) {
  // Guards the tests that rely on every_key_changed() to prove a source sets
  // all keys: each value there must differ from its default.
  nlohmann::json changed = nlohmann::json::parse(config_to_json(every_key_changed()));
  nlohmann::json defaults = nlohmann::json::parse(config_to_json(Config{}));
  for (std::string_view key : config_keys()) {
    EXPECT_NE(changed.at(std::string(key)), defaults.at(std::string(key))) << key;
  }
}

TEST(Config, ApplyTomlAcceptsDottedKeysAndInlineTables) {
  Config config;
  ASSERT_TRUE(apply_toml(&config, "admin.connections_max = 7\nreactor = { ring_entries = 16 }\n", "test").is_ok());
  EXPECT_EQ(config.admin_connections_max, 7u);
  EXPECT_EQ(config.reactor_ring_entries, 16u);
}

TEST(Config, ApplyTomlAcceptsEmptyDocumentAndEmptySections) {
  Config config;
  ASSERT_TRUE(apply_toml(&config, "", "test").is_ok());
  ASSERT_TRUE(apply_toml(&config, "# nothing\n[server]\n[admin]\n", "test").is_ok());
  EXPECT_EQ(config, Config{});
}

TEST(Config, ApplyTomlRejectsUnknownKeyInSection) {
  EXPECT_EQ(toml_error("[admin]\nlisen = \"127.0.0.1:1\"\n"),
            "unknown config key 'admin.lisen' (in file /x/runneld.toml, line 2)");
}

TEST(Config, ApplyTomlRejectsUnknownTopLevelKey) {
  EXPECT_EQ(toml_error("shard = 4\n"), "unknown config key 'shard' (in file /x/runneld.toml, line 1)");
}

TEST(Config, ApplyTomlRejectsSectionKeyAtTopLevel) {
  // listen lives in [server]; at the top level it is unknown.
  EXPECT_THAT(toml_error("listen = \"127.0.0.1:1\"\n"), HasSubstr("unknown config key 'listen'"));
}

TEST(Config, ApplyTomlRejectsUnknownTable) {
  EXPECT_EQ(toml_error("[storrage]\nsegment_mib = 1\n"),
            "unknown config table 'storrage' (in file /x/runneld.toml, line 1)");
}

TEST(Config, ApplyTomlRejectsUnknownTableInsideSection) {
  EXPECT_THAT(toml_error("[admin.tls]\ncert = \"x\"\n"), HasSubstr("unknown config table 'admin.tls'"));
}

TEST(Config, ApplyTomlRejectsQuotedKeyWithDot) {
  // A quoted key is one key, dot included; it is not admin.listen.
  EXPECT_THAT(toml_error("\"admin.listen\" = \"127.0.0.1:1\"\n"),
              HasSubstr("unknown config key '\"admin.listen\"'"));
}

TEST(Config, ApplyTomlRejectsSectionThatIsNotATable) {
  EXPECT_THAT(toml_error("server = \"127.0.0.1:1\"\n"),
              HasSubstr("config table 'server' (in file /x/runneld.toml, line 1) is a string; expected a table"));
  EXPECT_THAT(toml_error("[[reactor]]\nring_entries = 8\n"), HasSubstr("is an array; expected a table"));
}

TEST(Config, ApplyTomlRejectsStringForInteger) {
  EXPECT_EQ(toml_error("shards = \"8\"\n"),
            "config key 'shards' = \"8\" (from file /x/runneld.toml, line 1): expected an integer 0..256, got a "
            "string");
}

TEST(Config, ApplyTomlRejectsOtherTypesForInteger) {
  EXPECT_THAT(toml_error("shards = 8.0\n"), HasSubstr("expected an integer 0..256, got a float"));
  EXPECT_THAT(toml_error("shards = true\n"), HasSubstr("= true (from file /x/runneld.toml, line 1): expected an "
                                                       "integer 0..256, got a boolean"));
  EXPECT_THAT(toml_error("shards = [8]\n"), HasSubstr("got an array"));
  EXPECT_THAT(toml_error("shards = { n = 8 }\n"), HasSubstr("got a table"));
  EXPECT_THAT(toml_error("shards = 1979-05-27\n"), HasSubstr("got a date"));
}

TEST(Config, ApplyTomlRejectsIntegerForString) {
  EXPECT_EQ(toml_error("[server]\nlisten = 7420\n"),
            "config key 'server.listen' = 7420 (from file /x/runneld.toml, line 2): expected a string "
            "(IPV4:PORT or localhost:PORT), got an integer");
  EXPECT_THAT(toml_error("data_dir = 5\n"), HasSubstr("expected a string (a path), got an integer"));
  EXPECT_THAT(toml_error("log_level = 1\n"), HasSubstr("got an integer"));
}

TEST(Config, ApplyTomlRejectsIntegerOutOfRange) {
  EXPECT_EQ(toml_error("shards = 300\n"),
            "config key 'shards' = 300 (from file /x/runneld.toml, line 1): expected an integer 0..256");
  EXPECT_THAT(toml_error("shards = -1\n"), HasSubstr("= -1 (from"));
  EXPECT_THAT(toml_error("[admin]\nidle_timeout_ms = 9223372036854775807\n"),
              HasSubstr("expected an integer 1..86400000"));
}

TEST(Config, ApplyTomlRejectsNotPowerOfTwo) {
  EXPECT_THAT(toml_error("[reactor]\nring_entries = 100\n"),
              HasSubstr("config key 'reactor.ring_entries' = 100 (from file /x/runneld.toml, line 2): expected a "
                        "power of two 8..32768"));
}

TEST(Config, ApplyTomlRejectsBadLogLevel) {
  EXPECT_EQ(toml_error("log_level = \"trace\"\n"),
            "config key 'log_level' = \"trace\" (from file /x/runneld.toml, line 1): expected one of debug, info, "
            "warn, error");
}

TEST(Config, ApplyTomlRejectsBadHostPort) {
  EXPECT_THAT(toml_error("[admin]\nlisten = \"localhost\"\n"),
              HasSubstr("config key 'admin.listen' = \"localhost\" (from file /x/runneld.toml, line 2): missing "
                        "port"));
}

TEST(Config, ApplyTomlReportsSyntaxErrorWithLine) {
  std::string message = toml_error("shards = 1\n[admin]\nlisten = \n");
  EXPECT_THAT(message, HasSubstr("invalid TOML (in file /x/runneld.toml, line 3, column"));
}

TEST(Config, ApplyTomlReportsDuplicateKeyAsSyntaxError) {
  EXPECT_THAT(toml_error("shards = 1\nshards = 2\n"), HasSubstr("invalid TOML (in file /x/runneld.toml, line 2"));
}

TEST(Config, ApplyTomlReportsFirstProblemInDocumentOrder) {
  // "zzz" sorts after "shards" but comes first in the text.
  EXPECT_THAT(toml_error("zzz = 1\nshards = 999\n"), HasSubstr("unknown config key 'zzz'"));
  EXPECT_THAT(toml_error("shards = 999\nzzz = 1\n"), HasSubstr("config key 'shards' = 999"));
}

TEST(Config, ApplyTomlLeavesConfigUnchangedOnError) {
  Config config;
  EXPECT_FALSE(apply_toml(&config, "shards = 4\ndata_dir = \"/x\"\n[reactor]\nring_entries = 3\n", "test").is_ok());
  EXPECT_EQ(config, Config{});
}

TEST(Config, ApplyTomlKeepsKeysItDoesNotMention) {
  Config config;
  config.shards = 3;
  ASSERT_TRUE(apply_toml(&config, "log_level = \"error\"\n", "test").is_ok());
  EXPECT_EQ(config.shards, 3u);
  EXPECT_EQ(config.log_level, LogLevel::kError);
}

TEST(Config, ApplyTomlRejectsTextOverLimit) {
  std::string text(kConfigBytesMax + 1, '#');
  Config config;
  EXPECT_THAT(message_of(apply_toml(&config, text, "test")), HasSubstr("larger than 1048576 bytes"));
}

// --- environment ------------------------------------------------------------

TEST(Config, EnvironmentSetsKeys) {
  Config config;
  ASSERT_TRUE(apply_environment(&config, {"RUNNEL_SHARDS=2", "RUNNEL_ADMIN_LISTEN=0.0.0.0:0",
                                          "RUNNEL_REACTOR_RING_ENTRIES=256", "RUNNEL_DATA_DIR=/tmp/r"})
                  .is_ok());
  EXPECT_EQ(config.shards, 2u);
  EXPECT_EQ(config.admin_listen, (HostPort{"0.0.0.0", 0}));
  EXPECT_EQ(config.reactor_ring_entries, 256u);
  EXPECT_EQ(config.data_dir, "/tmp/r");
}

TEST(Config, EnvironmentErrorNamesTheVariable) {
  Config config;
  EXPECT_EQ(message_of(apply_environment(&config, {"RUNNEL_SHARDS=many"})),
            "config key 'shards' = \"many\" (from RUNNEL_SHARDS): expected an integer 0..256");
}

TEST(Config, EnvironmentIgnoresVariablesThatAreNotKeys) {
  Config config;
  ASSERT_TRUE(apply_environment(&config, {"RUNNEL_SERVER=10.0.0.1:1", "RUNNEL_TOKEN=secret", "RUNNEL_BOGUS=1",
                                          "RUNNEL_SHARDS_EXTRA=9", "RUNNEL_SHARDS", "PATH=/bin", "SHARDS=9",
                                          "runnel_shards=9", "RUNNEL_CONFIG=/nonexistent"})
                  .is_ok());
  EXPECT_EQ(config, Config{});
}

TEST(Config, EnvironmentUsesFirstEntryLikeGetenv) {
  Config config;
  ASSERT_TRUE(apply_environment(&config, {"RUNNEL_SHARDS=5", "RUNNEL_SHARDS=6"}).is_ok());
  EXPECT_EQ(config.shards, 5u);
}

TEST(Config, EnvironmentLeavesConfigUnchangedOnError) {
  Config config;
  EXPECT_FALSE(apply_environment(&config, {"RUNNEL_DATA_DIR=/ok", "RUNNEL_SHARDS=-3"}).is_ok());
  EXPECT_EQ(config, Config{});
}

TEST(Config, EveryKeyHasItsEnvironmentVariable) {
  // A value no key accepts makes each variable's error name its key, which
  // proves the mapping RUNNEL_ + upper(key, '.' -> '_') for every key.
  const std::string bad_value("bad\0value", 9);
  for (std::string_view key : config_keys()) {
    std::string variable = env_name_for(key);
    Config config;
    std::string message = message_of(apply_environment(&config, {variable + "=" + bad_value}));
    EXPECT_THAT(message, HasSubstr("config key '" + std::string(key) + "'")) << variable;
    EXPECT_THAT(message, HasSubstr("(from " + variable + ")")) << variable;
  }
}

// --- command line -----------------------------------------------------------

TEST(Config, CommandLineWithoutFlagsIsEmpty) {
  Result<CommandLine> cl = parse_args({});
  ASSERT_TRUE(cl.is_ok()) << cl.status().to_string();
  EXPECT_FALSE(cl->config_file.has_value());
  EXPECT_FALSE(cl->print_config);
  EXPECT_FALSE(cl->help);
  EXPECT_TRUE(cl->settings.empty());
}

TEST(Config, CommandLineCollectsSettingsByDottedKey) {
  Result<CommandLine> cl = parse_args({"--log-level", "debug", "--data-dir", "/d", "--listen", "127.0.0.1:1",
                                       "--admin-listen", "127.0.0.1:2", "--shards", "3"});
  ASSERT_TRUE(cl.is_ok()) << cl.status().to_string();
  std::vector<std::pair<std::string, std::string>> expected = {{"data_dir", "/d"},
                                                               {"shards", "3"},
                                                               {"log_level", "debug"},
                                                               {"server.listen", "127.0.0.1:1"},
                                                               {"admin.listen", "127.0.0.1:2"}};
  EXPECT_EQ(cl->settings, expected);
}

TEST(Config, CommandLineAcceptsEqualsForm) {
  Result<CommandLine> cl = parse_args({"--shards=4", "--config=/etc/runneld.toml"});
  ASSERT_TRUE(cl.is_ok()) << cl.status().to_string();
  ASSERT_EQ(cl->settings.size(), 1u);
  EXPECT_EQ(cl->settings[0], (std::pair<std::string, std::string>("shards", "4")));
  EXPECT_EQ(cl->config_file, "/etc/runneld.toml");
}

TEST(Config, CommandLineReadsConfigFileAndPrintConfig) {
  Result<CommandLine> cl = parse_args({"--config", "/etc/runneld.toml", "--print-config"});
  ASSERT_TRUE(cl.is_ok()) << cl.status().to_string();
  EXPECT_EQ(cl->config_file, "/etc/runneld.toml");
  EXPECT_TRUE(cl->print_config);
  EXPECT_TRUE(cl->settings.empty());
}

TEST(Config, CommandLineHelpIsNotAnError) {
  for (const char* flag : {"--help", "-h"}) {
    Result<CommandLine> cl = parse_args({flag});
    ASSERT_TRUE(cl.is_ok()) << cl.status().to_string();
    EXPECT_TRUE(cl->help);
    for (const char* expected : {"--config", "--data-dir", "--listen", "--admin-listen", "--shards", "--log-level",
                                 "--print-config", "RUNNEL_"}) {
      EXPECT_THAT(cl->help_text, HasSubstr(expected)) << flag;
    }
  }
}

TEST(Config, CommandLineHelpShowsDefaults) {
  Result<CommandLine> cl = parse_args({"--help"});
  ASSERT_TRUE(cl.is_ok());
  EXPECT_THAT(cl->help_text, HasSubstr("127.0.0.1:7420"));
  EXPECT_THAT(cl->help_text, HasSubstr("./data"));
}

TEST(Config, CommandLineRejectsUnknownFlag) {
  Result<CommandLine> cl = parse_args({"--shards", "2", "--bogus"});
  EXPECT_THAT(message_of(cl), HasSubstr("--bogus"));
  EXPECT_THAT(message_of(cl), HasSubstr("runneld --help"));
}

TEST(Config, CommandLineRejectsMissingFlagValue) {
  for (const char* flag : {"--shards", "--config", "--listen"}) {
    Result<CommandLine> cl = parse_args({flag});
    EXPECT_THAT(message_of(cl), HasSubstr(flag));
  }
}

TEST(Config, CommandLineRejectsPositionalArgument) {
  EXPECT_THAT(message_of(parse_args({"serve"})), HasSubstr("serve"));
}

TEST(Config, CommandLineRejectsRepeatedFlag) {
  EXPECT_THAT(message_of(parse_args({"--shards", "1", "--shards", "2"})), HasSubstr("--shards"));
}

TEST(Config, CommandLineLeavesValuesUncheckedUntilLoad) {
  Result<CommandLine> cl = parse_args({"--shards", "abc"});
  ASSERT_TRUE(cl.is_ok()) << cl.status().to_string();
  EXPECT_EQ(message_of(load_config(*cl, {})),
            "config key 'shards' = \"abc\" (from flag --shards): expected an integer 0..256");
}

// --- load_config ------------------------------------------------------------

TEST(Config, FileSetsValuesOverDefaults) {
  TempFile file("file_over_defaults.toml", "shards = 2\n[server]\nlisten = \"127.0.0.1:1000\"\n");
  CommandLine cl;
  cl.config_file = file.path();
  Result<Config> config = load_config(cl, {});
  ASSERT_TRUE(config.is_ok()) << config.status().to_string();
  EXPECT_EQ(config->shards, 2u);
  EXPECT_EQ(config->listen, (HostPort{"127.0.0.1", 1000}));
  EXPECT_EQ(config->log_level, LogLevel::kInfo);
}

TEST(Config, EnvironmentOverridesFile) {
  TempFile file("env_over_file.toml", "shards = 2\nlog_level = \"warn\"\n[admin]\nlisten = \"127.0.0.1:2000\"\n");
  CommandLine cl;
  cl.config_file = file.path();
  Result<Config> config = load_config(cl, {"RUNNEL_SHARDS=3", "RUNNEL_ADMIN_LISTEN=127.0.0.1:3000"});
  ASSERT_TRUE(config.is_ok()) << config.status().to_string();
  EXPECT_EQ(config->shards, 3u);
  EXPECT_EQ(config->admin_listen, (HostPort{"127.0.0.1", 3000}));
  EXPECT_EQ(config->log_level, LogLevel::kWarn);  // Only in the file.
}

TEST(Config, FlagsOverrideEnvironmentAndFile) {
  TempFile file("flag_over_env.toml",
                "shards = 2\ndata_dir = \"/from/file\"\nlog_level = \"warn\"\n[server]\nlisten = \"127.0.0.1:1\"\n");
  Result<CommandLine> cl =
      parse_args({"--config", file.path().c_str(), "--shards", "4", "--listen", "127.0.0.1:4", "--log-level", "debug"});
  ASSERT_TRUE(cl.is_ok()) << cl.status().to_string();
  Result<Config> config = load_config(
      *cl, {"RUNNEL_SHARDS=3", "RUNNEL_SERVER_LISTEN=127.0.0.1:3", "RUNNEL_DATA_DIR=/from/env", "RUNNEL_LOG_LEVEL=error"});
  ASSERT_TRUE(config.is_ok()) << config.status().to_string();
  EXPECT_EQ(config->shards, 4u);
  EXPECT_EQ(config->listen, (HostPort{"127.0.0.1", 4}));
  EXPECT_EQ(config->log_level, LogLevel::kDebug);
  EXPECT_EQ(config->data_dir, "/from/env");  // No flag: the environment wins over the file.
}

TEST(Config, RunnelConfigNamesTheFileWhenNoFlag) {
  TempFile file("runnel_config_env.toml", "shards = 7\n");
  Result<Config> config = load_config(CommandLine{}, {"RUNNEL_CONFIG=" + file.path()});
  ASSERT_TRUE(config.is_ok()) << config.status().to_string();
  EXPECT_EQ(config->shards, 7u);
}

TEST(Config, ConfigFlagWinsOverRunnelConfig) {
  TempFile from_flag("config_flag.toml", "shards = 8\n");
  TempFile from_env("config_env.toml", "shards = 9\n");
  CommandLine cl;
  cl.config_file = from_flag.path();
  Result<Config> config = load_config(cl, {"RUNNEL_CONFIG=" + from_env.path()});
  ASSERT_TRUE(config.is_ok()) << config.status().to_string();
  EXPECT_EQ(config->shards, 8u);
}

TEST(Config, MissingConfigFileIsAnErrorNamingPathAndCause) {
  CommandLine cl;
  cl.config_file = "/nonexistent/runneld.toml";
  EXPECT_EQ(message_of(load_config(cl, {})),
            "cannot read config file \"/nonexistent/runneld.toml\" (from flag --config): No such file or directory");
}

TEST(Config, MissingFileFromRunnelConfigNamesTheVariable) {
  EXPECT_THAT(message_of(load_config(CommandLine{}, {"RUNNEL_CONFIG=/nonexistent/r.toml"})),
              HasSubstr("(from RUNNEL_CONFIG): No such file or directory"));
}

TEST(Config, UnreadableConfigFileIsAnError) {
  // A directory opens but cannot be read, and (unlike chmod 000) that holds
  // even when the tests run as root.
  CommandLine cl;
  cl.config_file = testing::TempDir();
  EXPECT_THAT(message_of(load_config(cl, {})), HasSubstr("Is a directory"));
}

TEST(Config, ConfigFileOverLimitIsAnError) {
  TempFile file("too_big.toml", std::string(kConfigBytesMax + 1, '\n'));
  CommandLine cl;
  cl.config_file = file.path();
  EXPECT_THAT(message_of(load_config(cl, {})), HasSubstr("is larger than 1048576 bytes"));
}

TEST(Config, ConfigFileAtLimitIsRead) {
  std::string text = "shards = 5\n";
  text.resize(kConfigBytesMax, '\n');
  TempFile file("at_limit.toml", text);
  CommandLine cl;
  cl.config_file = file.path();
  Result<Config> config = load_config(cl, {});
  ASSERT_TRUE(config.is_ok()) << config.status().to_string();
  EXPECT_EQ(config->shards, 5u);
}

TEST(Config, FileErrorsNameTheFileAndLine) {
  TempFile file("unknown_key.toml", "shards = 1\n[admin]\nlisen = \"127.0.0.1:1\"\n");
  CommandLine cl;
  cl.config_file = file.path();
  EXPECT_EQ(message_of(load_config(cl, {})),
            "unknown config key 'admin.lisen' (in file " + file.path() + ", line 3)");
}

TEST(Config, FileSyntaxErrorNamesTheFileAndLine) {
  TempFile file("syntax.toml", "shards = 1\n\nlog_level = 'info\n");
  CommandLine cl;
  cl.config_file = file.path();
  EXPECT_THAT(message_of(load_config(cl, {})), HasSubstr("invalid TOML (in file " + file.path() + ", line 3"));
}

TEST(Config, LoadConfigRunsValidate) {
  Result<CommandLine> cl = parse_args({"--listen", "127.0.0.1:5000", "--admin-listen", "localhost:5000"});
  ASSERT_TRUE(cl.is_ok());
  EXPECT_THAT(message_of(load_config(*cl, {})), HasSubstr("use the same port"));
}

// --- validate ---------------------------------------------------------------

TEST(Config, ValidateRejectsEmptyDataDir) {
  Config config;
  config.data_dir = "";
  EXPECT_EQ(message_of(validate(config)), "config key 'data_dir' must not be empty");
}

TEST(Config, ValidateRejectsEqualListenAddresses) {
  Config config;
  config.admin_listen = config.listen;
  EXPECT_EQ(message_of(validate(config)),
            "config keys 'server.listen' = \"127.0.0.1:7420\" and 'admin.listen' = \"127.0.0.1:7420\" use the "
            "same port; they must differ unless the port is 0");
}

TEST(Config, ValidateRejectsAnyAddressOverlappingOnePort) {
  Config config;
  config.listen = {"0.0.0.0", 7000};
  config.admin_listen = {"127.0.0.1", 7000};
  EXPECT_THAT(message_of(validate(config)), HasSubstr("use the same port"));
}

TEST(Config, ListeningBeyondLoopbackNeedsTheOverride) {
  Config config;  // The defaults: loopback on both ports.
  EXPECT_TRUE(check_exposure(config, false).is_ok());
  config.listen = {"localhost", 0};
  config.admin_listen = {"127.0.0.2", 0};
  EXPECT_TRUE(check_exposure(config, false).is_ok());
  config.listen = {"0.0.0.0", 7420};
  Status refused = check_exposure(config, false);
  EXPECT_EQ(refused.code(), ErrorCode::kInvalidArgument);
  EXPECT_THAT(refused.message(), HasSubstr("--allow-unauthenticated"));
  EXPECT_THAT(refused.message(), HasSubstr("server.listen"));
  EXPECT_TRUE(check_exposure(config, true).is_ok());
  config.listen = {"127.0.0.1", 0};
  config.admin_listen = {"10.1.2.3", 7421};
  EXPECT_THAT(check_exposure(config, false).message(), HasSubstr("admin.listen"));
  EXPECT_THAT(check_exposure(config, false).message(), HasSubstr("--auth"));
  config.auth_enabled = true;  // With access control, any address.
  EXPECT_TRUE(check_exposure(config, false).is_ok());
  EXPECT_FALSE(is_loopback_host("128.0.0.1"));
  EXPECT_FALSE(is_loopback_host("localhost.example.com"));
}

TEST(Config, AllowUnauthenticatedIsAFlag) {
  auto cl = parse_args({"--allow-unauthenticated"});
  ASSERT_TRUE(cl.is_ok()) << cl.status().to_string();
  EXPECT_TRUE(cl->allow_unauthenticated);
  EXPECT_FALSE(parse_args({})->allow_unauthenticated);
}

TEST(Config, AuthIsAFlagWithoutAValue) {
  auto cl = parse_args({"--auth", "--shards", "2"});
  ASSERT_TRUE(cl.is_ok()) << cl.status().to_string();
  auto config = load_config(*cl, {});
  ASSERT_TRUE(config.is_ok()) << config.status().to_string();
  EXPECT_TRUE(config->auth_enabled);
  EXPECT_EQ(config->shards, 2u);
  EXPECT_FALSE(load_config(*parse_args({}), {})->auth_enabled);
}

TEST(Config, BooleanKeysTakeTrueOrFalseOnly) {
  Config config;
  EXPECT_TRUE(apply_toml(&config, "[auth]\nenabled = true\n", "test").is_ok());
  EXPECT_TRUE(config.auth_enabled);
  Status s = apply_toml(&config, "[auth]\nenabled = \"yes\"\n", "test");
  EXPECT_THAT(s.message(), HasSubstr("expected true or false"));
  EXPECT_THAT(apply_toml(&config, "[auth]\nenabled = 1\n", "test").message(), HasSubstr("got an integer"));
  EXPECT_TRUE(apply_setting(&config, "auth.enabled", "false", "env").is_ok());
  EXPECT_FALSE(config.auth_enabled);
  EXPECT_THAT(apply_setting(&config, "auth.enabled", "1", "env").message(), HasSubstr("expected true or false"));
}

TEST(Config, TlsFilesGoTogether) {
  Config config;
  config.tls_cert_file = "c.pem";
  EXPECT_THAT(validate(config).message(), HasSubstr("go together"));
  config.tls_key_file = "k.pem";
  EXPECT_TRUE(validate(config).is_ok());
  config.tls_client_ca_file = "ca.pem";
  EXPECT_TRUE(validate(config).is_ok());
  config.tls_cert_file = config.tls_key_file = "";
  EXPECT_THAT(validate(config).message(), HasSubstr("needs"));
}

TEST(Config, ValidateAllowsBothPortsZero) {
  Config config;
  config.listen = {"127.0.0.1", 0};
  config.admin_listen = {"127.0.0.1", 0};
  EXPECT_TRUE(validate(config).is_ok());
}

TEST(Config, ValidateAllowsSamePortOnDifferentHosts) {
  Config config;
  config.listen = {"127.0.0.1", 7000};
  config.admin_listen = {"127.0.0.2", 7000};
  EXPECT_TRUE(validate(config).is_ok());
}

// --- printing ---------------------------------------------------------------

TEST(Config, ToTomlRoundTripsDefaults) {
  Config config = every_key_changed();
  ASSERT_TRUE(apply_toml(&config, config_to_toml(Config{}), "printed").is_ok());
  EXPECT_EQ(config, Config{});
}

TEST(Config, ToTomlRoundTripsEveryKey) {
  Config changed = every_key_changed();
  Config config;
  ASSERT_TRUE(apply_toml(&config, config_to_toml(changed), "printed").is_ok());
  EXPECT_EQ(config, changed);
}

TEST(Config, ToTomlEscapesStrings) {
  Config original;
  original.data_dir = "/a \"quoted\" \\ dir\n\t\x7f\x01/流";
  std::string text = config_to_toml(original);
  EXPECT_THAT(text, HasSubstr(R"(data_dir = "/a \"quoted\" \\ dir\n\t\u007F\u0001/流")"));
  Config config;
  Status status = apply_toml(&config, text, "printed");
  ASSERT_TRUE(status.is_ok()) << status.to_string();
  EXPECT_EQ(config, original);
}

TEST(Config, ToTomlPrintsSectionsAsTables) {
  std::string text = config_to_toml(Config{});
  EXPECT_THAT(text, HasSubstr("shards = 0\n"));
  EXPECT_THAT(text, HasSubstr("log_level = \"info\"\n"));
  EXPECT_THAT(text, HasSubstr("[server]\n# Address of the binary protocol port; port 0 picks a free port (IPV4:PORT or "
                              "localhost:PORT)\nlisten = \"127.0.0.1:7420\"\n"));
  EXPECT_THAT(text, HasSubstr("[admin]\n"));
  EXPECT_THAT(text, HasSubstr("[reactor]\n"));
  EXPECT_THAT(text, HasSubstr("\nring_entries = 1024\n"));
}

TEST(Config, ToTomlCommentsEveryKey) {
  std::string text = config_to_toml(Config{});
  size_t comments = 0;
  size_t assignments = 0;
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    std::string_view line(text.data() + start, end - start);
    if (line.starts_with("# ")) ++comments;
    if (line.find(" = ") != std::string_view::npos && !line.starts_with("#")) ++assignments;
    start = end + 1;
  }
  EXPECT_EQ(assignments, config_keys().size());
  EXPECT_EQ(comments, config_keys().size());
}

TEST(Config, ToJsonIsKeyedByDottedNames) {
  nlohmann::json json = nlohmann::json::parse(config_to_json(Config{}));
  ASSERT_TRUE(json.is_object());
  EXPECT_EQ(json.size(), config_keys().size());
  EXPECT_EQ(json.at("shards"), 0);
  EXPECT_EQ(json.at("data_dir"), "./data");
  EXPECT_EQ(json.at("log_level"), "info");
  EXPECT_EQ(json.at("server.listen"), "127.0.0.1:7420");
  EXPECT_EQ(json.at("admin.listen"), "127.0.0.1:7421");
  EXPECT_EQ(json.at("admin.body_bytes_max"), 1048576);
  EXPECT_EQ(json.at("reactor.ring_entries"), 1024);
}

TEST(Config, ToJsonRoundTripsThroughApplySetting) {
  Config changed = every_key_changed();
  nlohmann::json json = nlohmann::json::parse(config_to_json(changed));
  Config config;
  for (const auto& [key, value] : json.items()) {
    std::string text = value.is_string() ? value.get<std::string>() : value.dump();
    Status status = apply_setting(&config, key, text, "json");
    ASSERT_TRUE(status.is_ok()) << status.to_string();
  }
  EXPECT_EQ(config, changed);
}

TEST(Config, ConfigKeysAreUniqueAndInDocumentationOrder) {
  std::vector<std::string_view> keys = config_keys();
  std::vector<std::string_view> expected = {"data_dir",
                                            "shards",
                                            "log_level",
                                            "server.listen",
                                            "server.connections_max",
                                            "server.frame_bytes_max",
                                            "server.requests_in_flight_max",
                                            "server.subscriptions_max",
                                            "server.output_bytes_max",
                                            "server.batch_records_max",
                                            "server.batch_bytes_max",
                                            "server.record_bytes_max",
                                            "server.heartbeat_ms",
                                            "admin.listen",
                                            "admin.connections_max",
                                            "admin.header_bytes_max",
                                            "admin.body_bytes_max",
                                            "admin.request_timeout_ms",
                                            "admin.idle_timeout_ms",
                                            "auth.enabled",
                                            "auth.metrics_open",
                                            "tls.cert_file",
                                            "tls.key_file",
                                            "tls.client_ca_file",
                                            "reactor.ring_entries",
                                            "reactor.message_queue_capacity",
                                            "reactor.shutdown_timeout_ms",
                                            "reactor.message_backlog_max",
                                            "storage.segment_mib",
                                            "storage.flush_bytes_max",
                                            "storage.flushes_in_flight_max",
                                            "storage.write_buffers",
                                            "storage.cache_mib",
                                            "storage.retention_interval_ms",
                                            "storage.compact_live_percent"};
  EXPECT_EQ(keys, expected);
}

TEST(Config, ValidateRejectsTooFewWriteBuffers) {
  Config config;
  config.storage_flushes_in_flight_max = 8;
  config.storage_write_buffers = 8;
  EXPECT_NE(message_of(validate(config)).find("storage.write_buffers"), std::string::npos);
}

TEST(Config, ValidateRejectsAFlushLargerThanASegment) {
  Config config;
  config.storage_segment_mib = 4;
  config.storage_flush_bytes_max = 8u << 20;
  EXPECT_NE(message_of(validate(config)).find("storage.flush_bytes_max"), std::string::npos);
}

TEST(Config, ConfigKeysMatchJsonKeysInOrder) {
  nlohmann::ordered_json json = nlohmann::ordered_json::parse(config_to_json(Config{}));
  std::vector<std::string_view> keys = config_keys();
  ASSERT_EQ(json.size(), keys.size());
  size_t i = 0;
  for (const auto& item : json.items()) EXPECT_EQ(item.key(), keys[i++]);
}

// --- conf/runneld.toml ------------------------------------------------------

TEST(Config, ShippedConfigYieldsExactlyTheDefaults) {
  // Start from every key changed: only a file that sets every key, to its
  // default, brings this back to Config{}.
  Config config = every_key_changed();
  Status status = apply_toml(&config, read_whole_file(shipped_config_path()), "file conf/runneld.toml");
  ASSERT_TRUE(status.is_ok()) << status.to_string();
  EXPECT_EQ(config, Config{});
}

TEST(Config, ShippedConfigLoadsThroughConfigFlag) {
  Result<CommandLine> cl = parse_args({"--config", shipped_config_path().c_str()});
  ASSERT_TRUE(cl.is_ok());
  Result<Config> config = load_config(*cl, {});
  ASSERT_TRUE(config.is_ok()) << config.status().to_string();
  EXPECT_EQ(*config, Config{});
}

TEST(Config, ShippedConfigDocumentsEveryKeyAsPrinted) {
  // The file is a header comment followed by config_to_toml(Config{}), so each
  // key appears with its default and its one-line comment. If this fails
  // after changing a key, paste the output of `runneld --print-config` with
  // no config into conf/runneld.toml below its header.
  std::string text = read_whole_file(shipped_config_path());
  std::string printed = config_to_toml(Config{});
  ASSERT_GE(text.size(), printed.size());
  EXPECT_EQ(text.substr(text.size() - printed.size()), printed);
}

}  // namespace
}  // namespace runnel
