// The blocking client: an asynchronous Client on a loop thread of its own;
// each call posts its work there and waits on a future.

#include "runnel/blocking_client.h"

#include <uv.h>

#include <condition_variable>
#include <deque>
#include <future>
#include <mutex>
#include <thread>

namespace runnel::client {

struct BlockingClient::Loop {
  uv_loop_t loop{};
  uv_async_t wake{};
  std::unique_ptr<Client> client;
  std::thread thread;
  std::mutex mu;
  std::vector<std::function<void(Client&)>> work;  // Guarded by mu.
  bool stopping = false;                          // Guarded by mu.

  void run_posted() {
    std::vector<std::function<void(Client&)>> batch;
    bool stop = false;
    {
      std::lock_guard<std::mutex> lock(mu);
      batch.swap(work);
      stop = stopping;
    }
    for (auto& w : batch) w(*client);
    if (stop) {
      stopping = false;  // Only this thread reads it from here on.
      client->close([this] { uv_close(reinterpret_cast<uv_handle_t*>(&wake), nullptr); });
    }
  }
};

BlockingClient::BlockingClient(ClientOptions options) : loop_(std::make_unique<Loop>()) {
  std::promise<void> started;
  Loop* l = loop_.get();
  l->thread = std::thread([l, &started, options = std::move(options)]() mutable {
    uv_loop_init(&l->loop);
    l->wake.data = l;
    uv_async_init(&l->loop, &l->wake, [](uv_async_t* a) { static_cast<Loop*>(a->data)->run_posted(); });
    l->client = std::make_unique<Client>(&l->loop, std::move(options));
    started.set_value();
    uv_run(&l->loop, UV_RUN_DEFAULT);
    l->client.reset();  // Closed already: this frees it.
    uv_run(&l->loop, UV_RUN_DEFAULT);
    uv_loop_close(&l->loop);
  });
  started.get_future().wait();
}

BlockingClient::~BlockingClient() {
  {
    std::lock_guard<std::mutex> lock(loop_->mu);
    loop_->stopping = true;
  }
  uv_async_send(&loop_->wake);
  loop_->thread.join();
}

void BlockingClient::post(std::function<void(Client&)> work) {
  {
    std::lock_guard<std::mutex> lock(loop_->mu);
    loop_->work.push_back(std::move(work));
  }
  uv_async_send(&loop_->wake);
}

namespace {

// Posts `start(client, callback)` and waits for the callback's value.
template <typename T, typename Start>
Result<T> wait_for(BlockingClient* c, Start start) {
  auto promise = std::make_shared<std::promise<Result<T>>>();
  auto future = promise->get_future();
  c->post([promise, start = std::move(start)](Client& client) mutable {
    start(client, [promise](Result<T> r) { promise->set_value(std::move(r)); });
  });
  return future.get();
}

template <typename Start>
Status wait_for_status(BlockingClient* c, Start start) {
  auto promise = std::make_shared<std::promise<Status>>();
  auto future = promise->get_future();
  c->post([promise, start = std::move(start)](Client& client) mutable {
    start(client, [promise](Status s) { promise->set_value(std::move(s)); });
  });
  return future.get();
}

}  // namespace

Result<BucketInfo> BlockingClient::create_bucket(const std::string& bucket, const BucketConfig& config) {
  return wait_for<BucketInfo>(this, [=](Client& c, Callback<BucketInfo> cb) { c.create_bucket(bucket, config, cb); });
}
Result<Page<BucketInfo>> BlockingClient::list_buckets(const ListOptions& options) {
  return wait_for<Page<BucketInfo>>(this, [=](Client& c, Callback<Page<BucketInfo>> cb) { c.list_buckets(options, cb); });
}
Result<BucketInfo> BlockingClient::get_bucket(const std::string& bucket) {
  return wait_for<BucketInfo>(this, [=](Client& c, Callback<BucketInfo> cb) { c.get_bucket(bucket, cb); });
}
Result<BucketInfo> BlockingClient::reconfigure_bucket(const std::string& bucket, const BucketConfig& config) {
  return wait_for<BucketInfo>(this,
                              [=](Client& c, Callback<BucketInfo> cb) { c.reconfigure_bucket(bucket, config, cb); });
}
Status BlockingClient::delete_bucket(const std::string& bucket) {
  return wait_for_status(this, [=](Client& c, StatusCallback cb) { c.delete_bucket(bucket, cb); });
}

Result<IssuedToken> BlockingClient::issue_token(const TokenInfo& spec) {
  return wait_for<IssuedToken>(this, [=](Client& c, Callback<IssuedToken> cb) { c.issue_token(spec, cb); });
}
Result<Page<TokenInfo>> BlockingClient::list_tokens(const ListOptions& options) {
  return wait_for<Page<TokenInfo>>(this, [=](Client& c, Callback<Page<TokenInfo>> cb) { c.list_tokens(options, cb); });
}
Result<TokenInfo> BlockingClient::revoke_token(const std::string& id) {
  return wait_for<TokenInfo>(this, [=](Client& c, Callback<TokenInfo> cb) { c.revoke_token(id, cb); });
}

Result<StreamInfo> BlockingClient::create_stream(const std::string& bucket, const std::string& stream,
                                                 std::optional<StreamConfig> config) {
  return wait_for<StreamInfo>(this,
                              [=](Client& c, Callback<StreamInfo> cb) { c.create_stream(bucket, stream, config, cb); });
}
Result<Page<StreamInfo>> BlockingClient::list_streams(const std::string& bucket, const ListOptions& options) {
  return wait_for<Page<StreamInfo>>(
      this, [=](Client& c, Callback<Page<StreamInfo>> cb) { c.list_streams(bucket, options, cb); });
}
Result<StreamInfo> BlockingClient::get_stream(const std::string& bucket, const std::string& stream) {
  return wait_for<StreamInfo>(this, [=](Client& c, Callback<StreamInfo> cb) { c.get_stream(bucket, stream, cb); });
}
Result<StreamInfo> BlockingClient::reconfigure_stream(const std::string& bucket, const std::string& stream,
                                                      const StreamConfig& config) {
  return wait_for<StreamInfo>(
      this, [=](Client& c, Callback<StreamInfo> cb) { c.reconfigure_stream(bucket, stream, config, cb); });
}
Status BlockingClient::delete_stream(const std::string& bucket, const std::string& stream) {
  return wait_for_status(this, [=](Client& c, StatusCallback cb) { c.delete_stream(bucket, stream, cb); });
}
Result<StreamInfo> BlockingClient::seal_stream(const std::string& bucket, const std::string& stream) {
  return wait_for<StreamInfo>(this, [=](Client& c, Callback<StreamInfo> cb) { c.seal_stream(bucket, stream, cb); });
}
Result<StreamInfo> BlockingClient::trim_stream(const std::string& bucket, const std::string& stream,
                                               uint64_t trim_seq) {
  return wait_for<StreamInfo>(this,
                              [=](Client& c, Callback<StreamInfo> cb) { c.trim_stream(bucket, stream, trim_seq, cb); });
}
Result<StreamInfo> BlockingClient::fence_stream(const std::string& bucket, const std::string& stream,
                                                const std::string& token) {
  return wait_for<StreamInfo>(this,
                              [=](Client& c, Callback<StreamInfo> cb) { c.fence_stream(bucket, stream, token, cb); });
}
Result<Tail> BlockingClient::check_tail(const std::string& bucket, const std::string& stream) {
  return wait_for<Tail>(this, [=](Client& c, Callback<Tail> cb) { c.check_tail(bucket, stream, cb); });
}
Result<AppendAck> BlockingClient::append(const std::string& bucket, const std::string& stream,
                                         const std::vector<AppendRecord>& records, const AppendOptions& options) {
  // The records are encoded on the loop thread; they stay alive here until the answer.
  const std::vector<AppendRecord>* rp = &records;
  return wait_for<AppendAck>(
      this, [=](Client& c, Callback<AppendAck> cb) { c.append(bucket, stream, *rp, options, cb); });
}
Result<ReadResult> BlockingClient::read(const std::string& bucket, const std::string& stream,
                                        const ReadOptions& options) {
  return wait_for<ReadResult>(this, [=](Client& c, Callback<ReadResult> cb) { c.read(bucket, stream, options, cb); });
}

// --- subscriptions ------------------------------------------------------------

struct BlockingSubscription::State {
  BlockingClient* owner = nullptr;
  uint64_t handle = 0;  // Set on the loop thread before any record arrives.
  std::mutex mu;
  std::condition_variable ready;
  // Records not yet taken, and per delivery how many are left and the
  // credit bytes to give back once they are all taken.
  std::deque<Record> records;
  std::deque<std::pair<size_t, uint32_t>> deliveries;
  std::optional<Status> ended;
};

std::unique_ptr<BlockingSubscription> BlockingClient::subscribe(const std::string& bucket, const std::string& stream,
                                                                const SubscribeOptions& options) {
  auto state = std::make_shared<BlockingSubscription::State>();
  state->owner = this;
  std::promise<void> subscribed;
  post([&subscribed, state, bucket, stream, options](Client& c) {
    state->handle = c.subscribe(
        bucket, stream, options,
        [state](std::vector<Record>& records, uint32_t credit_bytes) {
          std::lock_guard<std::mutex> lock(state->mu);
          state->deliveries.emplace_back(records.size(), credit_bytes);
          for (Record& r : records) state->records.push_back(std::move(r));
          state->ready.notify_all();
        },
        [state](Status end) {
          std::lock_guard<std::mutex> lock(state->mu);
          state->ended = std::move(end);
          state->ready.notify_all();
        });
    c.set_manual_credit(state->handle, true);
    subscribed.set_value();
  });
  subscribed.get_future().wait();
  return std::unique_ptr<BlockingSubscription>(new BlockingSubscription(state));
}

Result<Record> BlockingSubscription::next(std::chrono::milliseconds timeout) {
  State& s = *state_;
  std::unique_lock<std::mutex> lock(s.mu);
  if (!s.ready.wait_for(lock, timeout, [&s] { return !s.records.empty() || s.ended.has_value(); })) {
    return Status(ErrorCode::kTimeout, "no record within the timeout");
  }
  if (s.records.empty()) return *s.ended;
  Record r = std::move(s.records.front());
  s.records.pop_front();
  auto& [left, bytes] = s.deliveries.front();
  if (--left == 0) {
    const uint32_t give_back = bytes;
    s.deliveries.pop_front();
    const uint64_t handle = s.handle;
    lock.unlock();
    s.owner->post([handle, give_back](Client& c) { c.grant_credit(handle, give_back); });
  }
  return r;
}

BlockingSubscription::~BlockingSubscription() {
  const uint64_t handle = state_->handle;
  state_->owner->post([handle](Client& c) { c.unsubscribe(handle); });
}

}  // namespace runnel::client
