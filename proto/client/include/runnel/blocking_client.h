#pragma once
// librunnel, blocking form: every call waits for its answer. Built on the
// asynchronous Client, which runs on a libuv loop in a thread of its own, so
// calls may come from any number of threads at once (each waits only for
// its own answer; they are pipelined on the same connections).
//
//   runnel::client::BlockingClient client({.port = 7420});
//   auto ack = client.append("orders", "eu", {{.body = "hello"}});
//   if (!ack) std::cerr << ack.status().to_string() << "\n";

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "runnel/client.h"
#include "runnel/types.h"

namespace runnel::client {

// A subscription read as an iterator. Credit goes back to the server as
// records are taken, so memory stays bounded however slow the reader.
class RUNNEL_API BlockingSubscription {
 public:
  ~BlockingSubscription();  // Unsubscribes.
  BlockingSubscription(const BlockingSubscription&) = delete;
  BlockingSubscription& operator=(const BlockingSubscription&) = delete;

  // The next record; kTimeout if none came within `timeout`; once the
  // subscription has ended, the reason, every time.
  Result<Record> next(std::chrono::milliseconds timeout);

  struct State;

 private:
  friend class BlockingClient;
  explicit BlockingSubscription(std::shared_ptr<State> state) : state_(std::move(state)) {}
  std::shared_ptr<State> state_;
};

class RUNNEL_API BlockingClient {
 public:
  explicit BlockingClient(ClientOptions options);
  ~BlockingClient();  // Closes the client and joins its thread.
  BlockingClient(const BlockingClient&) = delete;
  BlockingClient& operator=(const BlockingClient&) = delete;

  Result<BucketInfo> create_bucket(const std::string& bucket, const BucketConfig& config = {});
  Result<Page<BucketInfo>> list_buckets(const ListOptions& options = {});
  Result<BucketInfo> get_bucket(const std::string& bucket);
  Result<BucketInfo> reconfigure_bucket(const std::string& bucket, const BucketConfig& config);
  Status delete_bucket(const std::string& bucket);

  Result<IssuedToken> issue_token(const TokenInfo& spec);
  Result<Page<TokenInfo>> list_tokens(const ListOptions& options = {});
  Result<TokenInfo> revoke_token(const std::string& id);

  Result<StreamInfo> create_stream(const std::string& bucket, const std::string& stream,
                                   std::optional<StreamConfig> config = std::nullopt);
  Result<Page<StreamInfo>> list_streams(const std::string& bucket, const ListOptions& options = {});
  Result<StreamInfo> get_stream(const std::string& bucket, const std::string& stream);
  Result<StreamInfo> reconfigure_stream(const std::string& bucket, const std::string& stream,
                                        const StreamConfig& config);
  Status delete_stream(const std::string& bucket, const std::string& stream);
  Result<StreamInfo> seal_stream(const std::string& bucket, const std::string& stream);
  Result<StreamInfo> trim_stream(const std::string& bucket, const std::string& stream, uint64_t trim_seq);
  Result<StreamInfo> fence_stream(const std::string& bucket, const std::string& stream, const std::string& token);
  Result<Tail> check_tail(const std::string& bucket, const std::string& stream);

  Result<AppendAck> append(const std::string& bucket, const std::string& stream,
                           const std::vector<AppendRecord>& records, const AppendOptions& options = {});
  Result<ReadResult> read(const std::string& bucket, const std::string& stream, const ReadOptions& options = {});
  std::unique_ptr<BlockingSubscription> subscribe(const std::string& bucket, const std::string& stream,
                                                  const SubscribeOptions& options = {});

  // Runs `work` on the client's loop thread, with the asynchronous client
  // (for callers that want to pipeline without a thread per request).
  void post(std::function<void(Client&)> work);

  struct Loop;

 private:
  std::unique_ptr<Loop> loop_;
};

}  // namespace runnel::client
