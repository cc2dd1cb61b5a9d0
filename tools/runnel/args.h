#pragma once
// The runnel CLI's command line: what the user asked for, parsed and checked
// (CLI11), before anything talks to a server.

#include <cstdint>
#include <optional>
#include <string>
#include <variant>

#include "runnel/client.h"
#include "runnel/types.h"

namespace runnel::cli {

enum class Command {
  kBucketCreate,
  kBucketList,
  kBucketGet,
  kBucketDelete,
  kBucketReconfigure,
  kStreamCreate,
  kStreamList,
  kStreamGet,
  kStreamReconfigure,
  kStreamDelete,
  kStreamSeal,
  kStreamTrim,
  kStreamFence,
  kAppend,
  kRead,
  kTail,
  kTokenIssue,
  kTokenList,
  kTokenRevoke,
};

// Config flags given on the command line; unset ones keep what is there.
struct ConfigFlags {
  std::optional<client::Timestamping> timestamping{};
  std::optional<uint64_t> retention_age_ms{};
  std::optional<uint64_t> retention_bytes{};
  std::optional<uint64_t> delete_on_empty_ms{};
  std::optional<bool> compress_lz4{};
  // Buckets only.
  std::optional<bool> create_stream_on_append{};
  std::optional<bool> create_stream_on_read{};

  bool any_stream_config() const {
    return timestamping || retention_age_ms || retention_bytes || delete_on_empty_ms || compress_lz4;
  }
  void apply(client::StreamConfig* c) const;
  void apply(client::BucketConfig* c) const;
};

struct Invocation {
  // Global options.
  std::string host = "127.0.0.1";
  uint16_t port = 7420;
  std::string token{};
  bool tls = false;      // --tls, or implied by --tls-ca.
  std::string tls_ca{};  // --tls-ca FILE: trust this CA (default: the system's).
  std::string tls_cert{};  // --tls-cert FILE / --tls-key FILE: a client certificate to present.
  std::string tls_key{};
  bool json = false;
  uint32_t timeout_ms = 10000;

  Command command = Command::kTail;
  std::string bucket{};
  std::string stream{};
  ConfigFlags config{};

  // Lists.
  std::string prefix{};
  std::string start_after{};
  uint64_t limit = 0;  // 0: everything.
  uint32_t page_size = 1000;
  bool long_format = false;

  // trim, fence.
  uint64_t trim_seq = 0;
  std::string fence_token{};

  // append.
  bool json_input = false;
  std::optional<uint64_t> match_seq_num{};
  std::optional<std::string> fencing_token{};
  uint32_t batch_records = 1000;
  uint32_t linger_ms = 5;
  uint32_t in_flight = 16;

  // read.
  client::Start start{};
  std::optional<uint64_t> count{};
  bool follow = false;
  bool show_meta = false;

  // token issue (the spec), token revoke (its id).
  client::TokenInfo token_spec{};
  std::string token_id{};
};

// "90s", "15m", "24h", "7d", "500ms" or plain milliseconds, in milliseconds;
// nullopt if it is none of those.
std::optional<uint64_t> parse_duration_ms(std::string_view text);

// The invocation, or the exit status when there is nothing to run: 0 after
// printing help, kExitUsage after printing a usage error.
std::variant<Invocation, int> parse_args(int argc, char** argv);

}  // namespace runnel::cli
