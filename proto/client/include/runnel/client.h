#pragma once
// librunnel, asynchronous form: a Client lives on one libuv loop and every
// callback runs on that loop's thread. Calls may be made before the
// connection is up; they wait (up to request_timeout_ms) and go out once it
// is.
//
//   uv_loop_t* loop = uv_default_loop();
//   runnel::client::Client client(loop, {.port = 7420});
//   client.append("orders", "eu", {{.body = "hello"}}, {}, [](auto ack) { ... });
//   uv_run(loop, UV_RUN_DEFAULT);
//
// What it does for you:
// - Connections: one per server shard when it can get them (the hello
//   answer says which shard a connection landed on), and each stream's
//   requests go to the connection of the shard that owns the stream, so the
//   server never has to pass them between shards. Many requests travel at
//   once on each connection (pipelining).
// - Reconnects with exponential backoff when a connection drops. Reads,
//   gets, lists and idempotent appends in flight are sent again; any other
//   request lost with its connection fails with kUnavailable (it may or may
//   not have happened).
// - Safe retries: appends carry this client's producer id and a per-stream
//   number, so the server answers a resent append with the first attempt's
//   ack instead of writing it twice. At most kIdempotentAppendsInFlight
//   such appends per stream are in flight (the server's memory of them);
//   more wait in the client, in order.
// - Subscriptions resume after a reconnect from the seq_num after the last
//   record delivered: no loss, no duplicates.
// - Every batch read is checked against its producer's checksum.

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "runnel/types.h"

typedef struct uv_loop_s uv_loop_t;

namespace runnel::client {

struct ClientOptions {
  std::string host = "127.0.0.1";
  uint16_t port = 7420;
  std::string token{};  // Sent in the hello; empty: none.
  std::string client_name = "librunnel";
  // Keep a connection to every shard and route each stream's requests to its
  // owner. false: one connection, the server forwards.
  bool connection_per_shard = true;
  uint32_t reconnect_backoff_min_ms = 20;
  uint32_t reconnect_backoff_max_ms = 2000;
  // From the call to its answer, waiting for a connection and resends
  // included (a read's wait_ms is added). 0: no limit.
  uint32_t request_timeout_ms = 30000;
  // TLS (a server started with a certificate): the server's certificate is
  // checked against tls_ca_file (PEM; empty: the system's trusted CAs) and
  // tls_server_name (empty: host). A client certificate (PEM) is presented
  // when given.
  bool tls = false;
  std::string tls_ca_file{};
  std::string tls_server_name{};
  std::string tls_cert_file{};
  std::string tls_key_file{};
};

inline constexpr uint32_t kIdempotentAppendsInFlight = 32;

struct SubscribeOptions {
  Start start{};
  // How many payload bytes the server may push ahead of the application;
  // credit is returned as the records are handed over. The server keeps at
  // most its server.output_bytes_max of credit per subscription (64 MiB by
  // default, never below 1 MiB) and the library grants more once a quarter
  // of credit_bytes is consumed: keep credit_bytes within four times the
  // server's bound (the default, 4 MiB, always is).
  uint32_t credit_bytes = 4u << 20;
  uint32_t heartbeat_ms = 0;  // 0: the connection's.
};

template <typename T>
using Callback = std::function<void(Result<T>)>;
using StatusCallback = std::function<void(Status)>;

class RUNNEL_API Client {
 public:
  Client(uv_loop_t* loop, ClientOptions options);
  // Closes (as close() does); the loop must run on for the sockets to close.
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // Fails every pending call with kShuttingDown, ends subscriptions, closes
  // the connections; `done` runs once they are closed.
  void close(std::function<void()> done = {});

  // Buckets.
  void create_bucket(const std::string& bucket, const BucketConfig& config, Callback<BucketInfo> done);
  void list_buckets(const ListOptions& options, Callback<Page<BucketInfo>> done);
  void get_bucket(const std::string& bucket, Callback<BucketInfo> done);
  void reconfigure_bucket(const std::string& bucket, const BucketConfig& config, Callback<BucketInfo> done);
  void delete_bucket(const std::string& bucket, StatusCallback done);

  // Access tokens. `spec`'s created_ms and issued_by are the server's to set;
  // a token may issue only tokens within its own scope, operations, expiry
  // and limits. revoke_token answers once every shard refuses the token.
  void issue_token(const TokenInfo& spec, Callback<IssuedToken> done);
  void list_tokens(const ListOptions& options, Callback<Page<TokenInfo>> done);
  void revoke_token(const std::string& id, Callback<TokenInfo> done);

  // Streams. create_stream without a config takes the bucket's default.
  void create_stream(const std::string& bucket, const std::string& stream, std::optional<StreamConfig> config,
                     Callback<StreamInfo> done);
  void list_streams(const std::string& bucket, const ListOptions& options, Callback<Page<StreamInfo>> done);
  void get_stream(const std::string& bucket, const std::string& stream, Callback<StreamInfo> done);
  void reconfigure_stream(const std::string& bucket, const std::string& stream, const StreamConfig& config,
                          Callback<StreamInfo> done);
  void delete_stream(const std::string& bucket, const std::string& stream, StatusCallback done);
  void seal_stream(const std::string& bucket, const std::string& stream, Callback<StreamInfo> done);
  void trim_stream(const std::string& bucket, const std::string& stream, uint64_t trim_seq,
                   Callback<StreamInfo> done);
  // An empty token unfences.
  void fence_stream(const std::string& bucket, const std::string& stream, const std::string& token,
                    Callback<StreamInfo> done);
  void check_tail(const std::string& bucket, const std::string& stream, Callback<Tail> done);

  // Records. An append is atomic and answered once durable.
  void append(const std::string& bucket, const std::string& stream, const std::vector<AppendRecord>& records,
              const AppendOptions& options, Callback<AppendAck> done);
  void read(const std::string& bucket, const std::string& stream, const ReadOptions& options,
            Callback<ReadResult> done);

  // Subscriptions: `on_records` gets every record from the start on, in
  // order, each once, with the payload bytes they took of the credit;
  // `on_end` is called once when the subscription ends with an error it
  // cannot resume from (or kShuttingDown at close()). Neither is called
  // after unsubscribe(). Returns the subscription's handle.
  using RecordsHandler = std::function<void(std::vector<Record>& records, uint32_t credit_bytes)>;
  uint64_t subscribe(const std::string& bucket, const std::string& stream, const SubscribeOptions& options,
                     RecordsHandler on_records, StatusCallback on_end);
  void unsubscribe(uint64_t subscription);
  // With manual credit (the blocking form uses it), the application gives
  // the credit bytes back itself once it has consumed the records; by
  // default they go back as soon as on_records returns.
  void set_manual_credit(uint64_t subscription, bool manual);
  void grant_credit(uint64_t subscription, uint32_t bytes);

  // What the client knows of the server (0 until the first hello answer).
  uint32_t shard_count() const;
  uint32_t connections_ready() const;
  uint64_t producer_id() const;

  class Impl;

 private:
  Impl* impl_;  // Owns itself once closing: it lives until its handles are closed.
};

}  // namespace runnel::client
