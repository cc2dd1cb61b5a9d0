// librunnel against the real runneld (two shards, loopback ports of its
// own): every operation through the blocking client, many asynchronous
// clients pipelining across many streams, subscriptions that see every
// record once and in order, resends after lost answers that are not written
// twice, a server restarted under a subscribed client, and a client killed
// in the middle of its appends.

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <uv.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <future>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "runnel/blocking_client.h"
#include "runnel/client.h"
#include "tests/integration/process.h"
#include "tests/integration/tcp_proxy.h"

namespace runnel::testing {
namespace {

using namespace runnel::client;
using namespace std::chrono_literals;

// A port nobody listens on right now (for a server that must come back on it).
int free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  socklen_t len = sizeof(addr);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(fd);
  return ntohs(addr.sin_port);
}

std::unique_ptr<RunneldProcess> start_server(const TempDir& dir, int port = 0) {
  std::string error;
  auto p = RunneldProcess::start({"--data-dir", dir.path() + "/data", "--listen", "127.0.0.1:" + std::to_string(port),
                                  "--admin-listen", "127.0.0.1:0", "--shards", "2"},
                                 {}, &error);
  EXPECT_NE(p, nullptr) << error;
  return p;
}

ClientOptions options_for(int port) {
  ClientOptions o;
  o.port = static_cast<uint16_t>(port);
  o.request_timeout_ms = 20000;
  return o;
}

std::vector<AppendRecord> bodies(const std::vector<std::string>& texts) {
  std::vector<AppendRecord> out;
  for (const std::string& t : texts) out.push_back({.body = t});
  return out;
}

// Every record of a stream, read back through the client (which checks each batch's checksum).
std::vector<Record> read_all(BlockingClient& c, const std::string& bucket, const std::string& stream) {
  std::vector<Record> all;
  while (true) {
    const uint64_t next = all.empty() ? 0 : all.back().seq_num + 1;
    auto r = c.read(bucket, stream, {.start = Start::seq_num(next)});
    if (!r && r.status().code() == ErrorCode::kOutOfRange) break;
    EXPECT_TRUE(r.ok()) << r.status().to_string();
    if (!r || r->records.empty()) break;
    for (Record& rec : r->records) all.push_back(std::move(rec));
  }
  return all;
}

void make_bucket(BlockingClient& c, const std::string& bucket) {
  auto b = c.create_bucket(bucket);
  ASSERT_TRUE(b.ok()) << b.status().to_string();
}

TEST(Client, BlockingClientDrivesEveryOperation) {
  TempDir dir;
  auto server = start_server(dir);
  ASSERT_NE(server, nullptr);
  BlockingClient c(options_for(server->binary().port));

  // Buckets.
  BucketConfig bucket_config;
  bucket_config.default_stream_config.retention_age_ms = 3600000;
  auto bucket = c.create_bucket("shop", bucket_config);
  ASSERT_TRUE(bucket.ok()) << bucket.status().to_string();
  EXPECT_EQ(bucket->name, "shop");
  EXPECT_EQ(c.create_bucket("shop").status().code(), ErrorCode::kAlreadyExists);
  EXPECT_EQ(c.get_bucket("nope").status().code(), ErrorCode::kNotFound);
  EXPECT_EQ(c.get_bucket("shop")->config, bucket_config);
  auto buckets = c.list_buckets();
  ASSERT_TRUE(buckets.ok());
  ASSERT_EQ(buckets->items.size(), 1u);

  // Streams: the bucket default, or a config of its own.
  auto orders = c.create_stream("shop", "orders");
  ASSERT_TRUE(orders.ok()) << orders.status().to_string();
  EXPECT_EQ(orders->config.retention_age_ms, 3600000u);
  StreamConfig own;
  own.timestamping = Timestamping::kClientRequire;
  auto audit = c.create_stream("shop", "audit/2026", own);
  ASSERT_TRUE(audit.ok());
  EXPECT_EQ(audit->config.timestamping, Timestamping::kClientRequire);
  EXPECT_EQ(c.create_stream("shop", "orders").status().code(), ErrorCode::kAlreadyExists);
  EXPECT_EQ(c.create_stream("shop", "").status().code(), ErrorCode::kInvalidArgument);
  auto list = c.list_streams("shop", {.prefix = "", .start_after = "", .limit = 1});
  ASSERT_TRUE(list.ok());
  ASSERT_EQ(list->items.size(), 1u);
  EXPECT_EQ(list->items[0].name, "audit/2026");
  EXPECT_TRUE(list->more);

  // Appends: headers and timestamps survive the round trip.
  auto ack = c.append("shop", "orders",
                      {{.body = "first", .headers = {{"k", "v"}, {"empty", ""}}, .timestamp = 1000},
                       {.body = "second", .headers = {}, .timestamp = 500}});
  ASSERT_TRUE(ack.ok()) << ack.status().to_string();
  EXPECT_EQ(ack->start_seq, 0u);
  EXPECT_EQ(ack->end_seq, 2u);
  EXPECT_EQ(ack->tail, 2u);
  auto back = c.read("shop", "orders", {.start = Start::seq_num(0)});
  ASSERT_TRUE(back.ok());
  ASSERT_EQ(back->records.size(), 2u);
  EXPECT_EQ(back->records[0].body, "first");
  EXPECT_EQ(back->records[0].headers, (std::vector<Header>{{"k", "v"}, {"empty", ""}}));
  EXPECT_EQ(back->records[0].timestamp, 1000u);
  EXPECT_EQ(back->records[1].timestamp, 1000u) << "timestamps never go down";
  EXPECT_EQ(back->records[1].seq_num, 1u);
  EXPECT_EQ(back->tail, 2u);
  auto from_tail = c.read("shop", "orders", {.start = Start::tail_offset(1)});
  ASSERT_TRUE(from_tail.ok());
  ASSERT_EQ(from_tail->records.size(), 1u);
  EXPECT_EQ(from_tail->records[0].body, "second");

  // A start beyond the tail, match_seq_num and client-require timestamps.
  auto beyond = c.read("shop", "orders", {.start = Start::seq_num(10)});
  EXPECT_EQ(beyond.status().code(), ErrorCode::kOutOfRange);
  EXPECT_EQ(beyond.status().detail(), 2u);
  auto mismatch = c.append("shop", "orders", bodies({"x"}), {.match_seq_num = 1});
  EXPECT_EQ(mismatch.status().code(), ErrorCode::kSeqNumMismatch);
  EXPECT_EQ(mismatch.status().detail(), 2u);
  EXPECT_TRUE(c.append("shop", "orders", bodies({"x"}), {.match_seq_num = 2}).ok());
  EXPECT_EQ(c.append("shop", "audit/2026", bodies({"no timestamp"})).status().code(), ErrorCode::kInvalidArgument);
  const std::vector<AppendRecord> too_many(1001, AppendRecord{.body = "x"});
  EXPECT_EQ(c.append("shop", "orders", too_many).status().code(), ErrorCode::kTooLarge) << "over 1000 records";

  // A long poll at the tail is answered when a record lands.
  auto waiting = std::async(std::launch::async, [&c] {
    return c.read("shop", "orders", {.start = Start::seq_num(3), .wait_ms = 10000});
  });
  std::this_thread::sleep_for(50ms);
  ASSERT_TRUE(c.append("shop", "orders", bodies({"late"})).ok());
  auto woken = waiting.get();
  ASSERT_TRUE(woken.ok()) << woken.status().to_string();
  ASSERT_EQ(woken->records.size(), 1u);
  EXPECT_EQ(woken->records[0].body, "late");

  // Fencing, tail, trim, reconfigure, seal, delete.
  ASSERT_TRUE(c.fence_stream("shop", "orders", "epoch-1")->fenced);
  EXPECT_EQ(c.append("shop", "orders", bodies({"y"})).status().code(), ErrorCode::kFencingTokenMismatch);
  EXPECT_TRUE(c.append("shop", "orders", bodies({"y"}), {.fencing_token = "epoch-1"}).ok());
  auto tail = c.check_tail("shop", "orders");
  ASSERT_TRUE(tail.ok());
  EXPECT_EQ(tail->tail, 5u);
  EXPECT_EQ(c.trim_stream("shop", "orders", 2)->trim_seq, 2u);
  EXPECT_EQ(read_all(c, "shop", "orders").front().seq_num, 2u);
  StreamConfig compressed;
  compressed.compress_lz4 = true;
  EXPECT_TRUE(c.reconfigure_stream("shop", "orders", compressed)->config.compress_lz4);
  EXPECT_TRUE(c.seal_stream("shop", "orders")->sealed);
  EXPECT_EQ(c.append("shop", "orders", bodies({"z"}), {.fencing_token = "epoch-1"}).status().code(),
            ErrorCode::kStreamSealed);
  EXPECT_EQ(c.delete_bucket("shop").code(), ErrorCode::kAlreadyExists) << "the bucket still holds streams";
  EXPECT_TRUE(c.delete_stream("shop", "orders").ok());
  EXPECT_TRUE(c.delete_stream("shop", "audit/2026").ok());
  EXPECT_EQ(c.get_stream("shop", "orders").status().code(), ErrorCode::kNotFound);
  EXPECT_TRUE(c.delete_bucket("shop").ok());
  EXPECT_EQ(c.create_stream("shop", "orders").status().code(), ErrorCode::kNotFound);
}

TEST(Client, KeepsAConnectionPerShard) {
  TempDir dir;
  auto server = start_server(dir);
  ASSERT_NE(server, nullptr);
  BlockingClient c(options_for(server->binary().port));
  make_bucket(c, "b01");
  // The kernel picks the shard of each new connection; the client keeps
  // trying (a bounded number of times) until it has one on each.
  for (int i = 0; i < 200; i++) {
    auto counts = std::make_shared<std::promise<std::pair<uint32_t, uint32_t>>>();
    auto f = counts->get_future();
    c.post([counts](Client& async) { counts->set_value({async.connections_ready(), async.shard_count()}); });
    auto [ready, shards] = f.get();
    EXPECT_EQ(shards, 2u);
    if (ready == 2) break;
    std::this_thread::sleep_for(10ms);
  }
  auto counts = std::make_shared<std::promise<uint32_t>>();
  auto f = counts->get_future();
  c.post([counts](Client& async) { counts->set_value(async.connections_ready()); });
  EXPECT_EQ(f.get(), 2u);
}

// Runs a libuv loop on a thread of its own, with N asynchronous clients.
class AsyncClients {
 public:
  AsyncClients(int port, int n) {
    uv_loop_init(&loop_);
    uv_async_init(&loop_, &wake_, [](uv_async_t* a) { static_cast<AsyncClients*>(a->data)->run_posted(); });
    wake_.data = this;
    for (int i = 0; i < n; i++) clients_.push_back(std::make_unique<Client>(&loop_, options_for(port)));
    thread_ = std::thread([this] { uv_run(&loop_, UV_RUN_DEFAULT); });
  }
  ~AsyncClients() {
    post([this] {
      for (auto& c : clients_) c->close();
      uv_close(reinterpret_cast<uv_handle_t*>(&wake_), nullptr);
    });
    thread_.join();
    clients_.clear();
    uv_run(&loop_, UV_RUN_DEFAULT);
    uv_loop_close(&loop_);
  }
  Client& client(size_t i) { return *clients_[i]; }
  void post(std::function<void()> f) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      work_.push_back(std::move(f));
    }
    uv_async_send(&wake_);
  }

 private:
  void run_posted() {
    std::vector<std::function<void()>> batch;
    {
      std::lock_guard<std::mutex> lock(mu_);
      batch.swap(work_);
    }
    for (auto& f : batch) f();
  }
  uv_loop_t loop_{};
  uv_async_t wake_{};
  std::vector<std::unique_ptr<Client>> clients_;
  std::thread thread_;
  std::mutex mu_;
  std::vector<std::function<void()>> work_;
};

TEST(Client, ManyClientsPipelineAcrossManyStreamsAndShards) {
  TempDir dir;
  auto server = start_server(dir);
  ASSERT_NE(server, nullptr);
  const int port = server->binary().port;
  constexpr int kClients = 6, kStreams = 24, kBatchesPerStream = 40, kRecordsPerBatch = 5;
  {
    BlockingClient setup(options_for(port));
    make_bucket(setup, "load");
    for (int s = 0; s < kStreams; s++) ASSERT_TRUE(setup.create_stream("load", "s" + std::to_string(s)).ok());
  }
  std::atomic<int> acked{0}, failed{0};
  std::promise<void> all_done;
  AsyncClients clients(port, kClients);  // After what its callbacks touch: close() may call them.
  const int total = kClients * kStreams * kBatchesPerStream;
  // Every client sends every batch at once: hundreds of requests in flight per connection.
  clients.post([&] {
    for (int c = 0; c < kClients; c++) {
      for (int b = 0; b < kBatchesPerStream; b++) {
        for (int s = 0; s < kStreams; s++) {
          std::vector<AppendRecord> records;
          for (int r = 0; r < kRecordsPerBatch; r++) {
            records.push_back({.body = "c" + std::to_string(c) + "-" + std::to_string(b * kRecordsPerBatch + r)});
          }
          clients.client(c).append("load", "s" + std::to_string(s), records, {}, [&](Result<AppendAck> ack) {
            if (!ack.ok()) {
              ADD_FAILURE() << ack.status().to_string();
              failed++;
            } else {
              EXPECT_EQ(ack->end_seq - ack->start_seq, static_cast<uint64_t>(kRecordsPerBatch));
            }
            if (++acked == total) all_done.set_value();
          });
        }
      }
    }
  });
  ASSERT_EQ(all_done.get_future().wait_for(60s), std::future_status::ready);
  EXPECT_EQ(failed.load(), 0);

  // Each stream holds every record once, each client's in the order it sent them.
  BlockingClient check(options_for(port));
  for (int s = 0; s < kStreams; s++) {
    const auto records = read_all(check, "load", "s" + std::to_string(s));
    ASSERT_EQ(records.size(), static_cast<size_t>(kClients * kBatchesPerStream * kRecordsPerBatch));
    std::map<std::string, int> next_of_client;
    for (size_t i = 0; i < records.size(); i++) {
      EXPECT_EQ(records[i].seq_num, i);
      const std::string& body = records[i].body;
      const std::string who = body.substr(0, body.find('-'));
      EXPECT_EQ(std::stoi(body.substr(body.find('-') + 1)), next_of_client[who]++) << body;
    }
  }
}

// What subscriptions hand over, by stream index, and how they ended.
struct Delivered {
  std::mutex mu;
  std::map<int, std::vector<Record>> seen;
  std::vector<std::string> ended;  // Only close() ends them, with shutting_down.

  // Subscribes to bucket/"s<i>" for i < streams, from seq_num 0, through
  // client i % clients with credit_of(i).
  void subscribe(AsyncClients& readers, size_t clients, const std::string& bucket, int streams,
                 const std::function<uint32_t(int)>& credit_of) {
    readers.post([this, &readers, clients, bucket, streams, credit_of] {
      for (int s = 0; s < streams; s++) {
        readers.client(static_cast<size_t>(s) % clients)
            .subscribe(
                bucket, "s" + std::to_string(s), {.start = Start::seq_num(0), .credit_bytes = credit_of(s)},
                [this, s](std::vector<Record>& records, uint32_t) {
                  std::lock_guard<std::mutex> lock(mu);
                  for (Record& r : records) seen[s].push_back(std::move(r));
                },
                [this](Status end) {
                  std::lock_guard<std::mutex> lock(mu);
                  ended.push_back(end.to_string());
                });
      }
    });
  }
  // Waits (bounded) for `total` records, then a little longer: a duplicate would show up by then.
  void wait_for(size_t total, std::chrono::seconds limit) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < deadline) {
      size_t now = 0;
      {
        std::lock_guard<std::mutex> lock(mu);
        for (auto& entry : seen) now += entry.second.size();
      }
      if (now >= total) break;
      std::this_thread::sleep_for(10ms);
    }
    std::this_thread::sleep_for(100ms);
  }
};

TEST(Client, SubscribersSeeEveryRecordOnceInOrder) {
  TempDir dir;
  auto server = start_server(dir);
  ASSERT_NE(server, nullptr);
  const int port = server->binary().port;
  constexpr int kStreams = 6, kAppends = 60;
  BlockingClient writer(options_for(port));
  make_bucket(writer, "feed");
  for (int s = 0; s < kStreams; s++) ASSERT_TRUE(writer.create_stream("feed", "s" + std::to_string(s)).ok());
  // Some records before the subscriptions start, the rest while they run.
  for (int s = 0; s < kStreams; s++) ASSERT_TRUE(writer.append("feed", "s" + std::to_string(s), bodies({"0"})).ok());

  Delivered got;  // (Declared before the clients, whose close() calls back into it.)
  AsyncClients readers(port, 2);
  got.subscribe(readers, 2, "feed", kStreams, [](int) { return 64; });  // A small credit: flow control.
  for (int i = 1; i < kAppends; i++) {
    for (int s = 0; s < kStreams; s++) {
      ASSERT_TRUE(writer.append("feed", "s" + std::to_string(s), bodies({std::to_string(i)})).ok());
    }
  }
  got.wait_for(kStreams * kAppends, 30s);
  std::lock_guard<std::mutex> lock(got.mu);
  auto& seen = got.seen;
  EXPECT_TRUE(got.ended.empty()) << got.ended.front();
  for (int s = 0; s < kStreams; s++) {
    ASSERT_EQ(seen[s].size(), static_cast<size_t>(kAppends)) << "stream " << s;
    for (int i = 0; i < kAppends; i++) {
      EXPECT_EQ(seen[s][i].seq_num, static_cast<uint64_t>(i));
      EXPECT_EQ(seen[s][i].body, std::to_string(i));
    }
  }
}

// A backlog read from disk (no cache), in several reads in flight per
// subscription, reaches each subscriber whole and in order, whatever its credit.
TEST(Client, SubscribersCatchUpOnABacklogFromDiskInOrder) {
  TempDir dir;
  std::string error;
  auto server = RunneldProcess::start({"--data-dir", dir.path() + "/data", "--listen", "127.0.0.1:0", "--admin-listen",
                                       "127.0.0.1:0", "--shards", "2"},
                                      {"RUNNEL_STORAGE_CACHE_MIB=0"}, &error);
  ASSERT_NE(server, nullptr) << error;
  const int port = server->binary().port;
  constexpr int kStreams = 3, kBatches = 40, kPerBatch = 100;
  auto body_of = [](int s, int seq) {
    std::string b = "s" + std::to_string(s) + " #" + std::to_string(seq) + " ";
    b.resize(1000, static_cast<char>('a' + (s + seq) % 26));
    return b;
  };
  BlockingClient writer(options_for(port));
  make_bucket(writer, "backlog");
  for (int s = 0; s < kStreams; s++) ASSERT_TRUE(writer.create_stream("backlog", "s" + std::to_string(s)).ok());
  // Interleaved in the log: a batch of each stream in turn.
  for (int b = 0; b < kBatches; b++) {
    for (int s = 0; s < kStreams; s++) {
      std::vector<std::string> texts;
      for (int i = 0; i < kPerBatch; i++) texts.push_back(body_of(s, b * kPerBatch + i));
      ASSERT_TRUE(writer.append("backlog", "s" + std::to_string(s), bodies(texts)).ok());
    }
  }

  Delivered got;
  AsyncClients readers(port, 1);
  const uint32_t credits[kStreams] = {4u << 20, 1u << 20, 150'000};
  got.subscribe(readers, 1, "backlog", kStreams, [&credits](int s) { return credits[s]; });
  const size_t per_stream = kBatches * kPerBatch;
  got.wait_for(kStreams * per_stream, 60s);
  std::lock_guard<std::mutex> lock(got.mu);
  auto& seen = got.seen;
  EXPECT_TRUE(got.ended.empty()) << got.ended.front();
  for (int s = 0; s < kStreams; s++) {
    ASSERT_EQ(seen[s].size(), per_stream) << "stream " << s;
    for (size_t i = 0; i < per_stream; i++) {
      ASSERT_EQ(seen[s][i].seq_num, i) << "stream " << s;
      ASSERT_EQ(seen[s][i].body, body_of(s, static_cast<int>(i))) << "stream " << s;
    }
  }
}

// Read-ahead is planned in stored bytes; an lz4 stream's pushes carry its
// records decompressed and must stay as small as any stream's (1 MiB and a
// batch), not many times that.
TEST(Client, CompressedStreamsCatchUpInPushesOfBoundedSize) {
  TempDir dir;
  auto server = start_server(dir);
  ASSERT_NE(server, nullptr);
  const int port = server->binary().port;
  BlockingClient writer(options_for(port));
  make_bucket(writer, "packed");
  StreamConfig config;
  config.compress_lz4 = true;
  ASSERT_TRUE(writer.create_stream("packed", "s0", config).ok());
  constexpr int kBatches = 40, kPerBatch = 100;  // ~1 MB a batch, ~4 KB stored.
  for (int b = 0; b < kBatches; b++) {
    std::vector<std::string> texts;
    for (int i = 0; i < kPerBatch; i++) texts.push_back(std::to_string(b * kPerBatch + i) + std::string(10'000, 'z'));
    ASSERT_TRUE(writer.append("packed", "s0", bodies(texts)).ok());
  }
  Delivered got;
  std::vector<uint32_t> push_bytes;  // Under got.mu.
  AsyncClients readers(port, 1);
  readers.post([&] {
    readers.client(0).subscribe(
        "packed", "s0", {.start = Start::seq_num(0), .credit_bytes = 64u << 20},
        [&](std::vector<Record>& records, uint32_t bytes) {
          std::lock_guard<std::mutex> lock(got.mu);
          push_bytes.push_back(bytes);
          for (Record& r : records) got.seen[0].push_back(std::move(r));
        },
        [&](Status end) {
          std::lock_guard<std::mutex> lock(got.mu);
          got.ended.push_back(end.to_string());
        });
  });
  got.wait_for(kBatches * kPerBatch, 60s);
  std::lock_guard<std::mutex> lock(got.mu);
  EXPECT_TRUE(got.ended.empty()) << got.ended.front();
  ASSERT_EQ(got.seen[0].size(), static_cast<size_t>(kBatches * kPerBatch));
  for (size_t i = 0; i < got.seen[0].size(); i++) ASSERT_EQ(got.seen[0][i].seq_num, i);
  EXPECT_EQ(got.seen[0].back().body, std::to_string(kBatches * kPerBatch - 1) + std::string(10'000, 'z'));
  for (uint32_t bytes : push_bytes) EXPECT_LE(bytes, (2u << 20) + (64u << 10));
}

TEST(Client, OfRacingWritersExactlyOneWins) {
  TempDir dir;
  auto server = start_server(dir);
  ASSERT_NE(server, nullptr);
  const int port = server->binary().port;
  constexpr int kWriters = 8;
  BlockingClient setup(options_for(port));
  make_bucket(setup, "race");
  ASSERT_TRUE(setup.create_stream("race", "leader").ok());
  ASSERT_TRUE(setup.append("race", "leader", bodies({"genesis"})).ok());

  // Every writer, on its own client, claims the stream at the tail it saw:
  // exactly one conditional append lands.
  std::vector<std::unique_ptr<BlockingClient>> writers;
  for (int w = 0; w < kWriters; w++) writers.push_back(std::make_unique<BlockingClient>(options_for(port)));
  std::vector<std::future<Result<AppendAck>>> claims;
  for (int w = 0; w < kWriters; w++) {
    claims.push_back(std::async(std::launch::async, [&writers, w] {
      return writers[w]->append("race", "leader", bodies({"claim " + std::to_string(w)}), {.match_seq_num = 1});
    }));
  }
  int won = 0;
  for (auto& claim : claims) {
    auto r = claim.get();
    if (r.ok()) {
      won++;
      EXPECT_EQ(r->start_seq, 1u);
    } else {
      EXPECT_EQ(r.status().code(), ErrorCode::kSeqNumMismatch) << r.status().to_string();
      EXPECT_EQ(r.status().detail(), 2u);
    }
  }
  EXPECT_EQ(won, 1);

  // Every writer fences the stream with a token of its own, all at once;
  // then each appends with its token: only the last fence's holder can.
  std::vector<std::future<Result<StreamInfo>>> fences;
  for (int w = 0; w < kWriters; w++) {
    fences.push_back(std::async(std::launch::async, [&writers, w] {
      return writers[w]->fence_stream("race", "leader", "token-" + std::to_string(w));
    }));
  }
  for (auto& f : fences) ASSERT_TRUE(f.get().ok());
  std::vector<std::future<Result<AppendAck>>> appends;
  for (int w = 0; w < kWriters; w++) {
    appends.push_back(std::async(std::launch::async, [&writers, w] {
      return writers[w]->append("race", "leader", bodies({"fenced " + std::to_string(w)}),
                                {.fencing_token = "token-" + std::to_string(w)});
    }));
  }
  won = 0;
  for (auto& a : appends) {
    auto r = a.get();
    if (r.ok()) {
      won++;
    } else {
      EXPECT_EQ(r.status().code(), ErrorCode::kFencingTokenMismatch) << r.status().to_string();
    }
  }
  EXPECT_EQ(won, 1);
  EXPECT_EQ(setup.check_tail("race", "leader")->tail, 3u);
}

TEST(Client, ResentAppendsAfterLostAnswersAreWrittenOnce) {
  TempDir dir;
  auto server = start_server(dir);
  ASSERT_NE(server, nullptr);
  TcpProxy proxy(server->binary().port);
  BlockingClient direct(options_for(server->binary().port));
  make_bucket(direct, "pay");
  { auto cs = direct.create_stream("pay", "ledger"); ASSERT_TRUE(cs.ok()) << cs.status().to_string(); }

  ClientOptions through_proxy = options_for(proxy.port());
  through_proxy.connection_per_shard = false;
  BlockingClient c(through_proxy);
  ASSERT_TRUE(c.append("pay", "ledger", bodies({"before"})).ok());

  // The server takes the next appends, but their answers never arrive...
  proxy.drop_answers(true);
  constexpr int kLost = 5;
  std::vector<std::future<Result<AppendAck>>> idempotent;
  for (int i = 0; i < kLost; i++) {
    idempotent.push_back(std::async(std::launch::async, [&c, i] {
      return c.append("pay", "ledger", bodies({"lost-" + std::to_string(i)}));
    }));
    // (One at a time, so they are numbered in this order.)
    std::this_thread::sleep_for(20ms);
  }
  auto plain = std::async(std::launch::async, [&c] {
    return c.append("pay", "ledger", bodies({"not idempotent"}), {.idempotent = false});
  });
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (direct.check_tail("pay", "ledger")->tail < 1 + kLost + 1 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(5ms);
  }
  ASSERT_EQ(direct.check_tail("pay", "ledger")->tail, 1u + kLost + 1);
  // ...and the connection dies. The client reconnects and sends them again.
  proxy.cut_all();
  proxy.drop_answers(false);
  for (int i = 0; i < kLost; i++) {
    auto ack = idempotent[i].get();
    ASSERT_TRUE(ack.ok()) << ack.status().to_string();
    EXPECT_EQ(ack->start_seq, 1u + i) << "the first attempt's ack";
  }
  // Without a producer number the outcome is unknown, and the client says so.
  EXPECT_EQ(plain.get().status().code(), ErrorCode::kUnavailable);
  EXPECT_GE(proxy.connections_accepted(), 2);

  const auto records = read_all(direct, "pay", "ledger");
  ASSERT_EQ(records.size(), 1u + kLost + 1);
  std::multiset<std::string> written;
  for (const Record& r : records) written.insert(r.body);
  for (int i = 0; i < kLost; i++) EXPECT_EQ(written.count("lost-" + std::to_string(i)), 1u);
}

TEST(Client, SubscriptionResumesAcrossAServerRestart) {
  TempDir dir;
  const int port = free_port();
  auto server = start_server(dir, port);
  ASSERT_NE(server, nullptr);
  ClientOptions options = options_for(port);
  options.reconnect_backoff_max_ms = 200;
  BlockingClient c(options);
  make_bucket(c, "live");
  ASSERT_TRUE(c.create_stream("live", "events").ok());
  auto sub = c.subscribe("live", "events", {.start = Start::seq_num(0)});
  int appended = 0;
  auto append_some = [&](int n) {
    for (int i = 0; i < n; i++, appended++) {
      auto ack = c.append("live", "events", bodies({"e" + std::to_string(appended)}));
      ASSERT_TRUE(ack.ok()) << ack.status().to_string();
    }
  };
  auto expect_next = [&](int from, int to) {
    for (int i = from; i < to; i++) {
      auto r = sub->next(20s);
      ASSERT_TRUE(r.ok()) << r.status().to_string();
      EXPECT_EQ(r->seq_num, static_cast<uint64_t>(i));
      EXPECT_EQ(r->body, "e" + std::to_string(i));
    }
  };
  append_some(50);
  expect_next(0, 30);  // 20 delivered or in flight, not yet taken.

  // SIGKILL: no goodbye. A new server on the same port and data recovers the records.
  ASSERT_TRUE(server->stop(SIGKILL).has_value());
  server = start_server(dir, port);
  ASSERT_NE(server, nullptr);
  append_some(50);  // Through the reconnected client.
  expect_next(30, 100);
  auto extra = sub->next(300ms);
  EXPECT_EQ(extra.status().code(), ErrorCode::kTimeout) << "nothing twice, nothing more";
}

TEST(Client, ServerOutlivesAClientKilledMidRequest) {
  TempDir dir;
  auto server = start_server(dir);
  ASSERT_NE(server, nullptr);
  const int port = server->binary().port;
  constexpr int kRecordsPerBatch = 100;
  {
    BlockingClient setup(options_for(port));
    make_bucket(setup, "kill");
    ASSERT_TRUE(setup.create_stream("kill", "batches").ok());
  }
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    // Appends 100-record batches of 4 KiB records, many in flight, until killed.
    BlockingClient c(options_for(port));
    std::vector<AppendRecord> batch;
    for (int r = 0; r < kRecordsPerBatch; r++) batch.push_back({.body = std::string(4096, static_cast<char>('a' + r % 26))});
    std::atomic<int> in_flight{0};
    while (true) {
      while (in_flight.load() >= 16) std::this_thread::sleep_for(1ms);
      in_flight++;
      c.post([&](Client& async) {
        async.append("kill", "batches", batch, {}, [&](Result<AppendAck>) { in_flight--; });
      });
    }
  }
  BlockingClient c(options_for(port));
  const auto deadline = std::chrono::steady_clock::now() + 20s;
  while (std::chrono::steady_clock::now() < deadline) {
    auto tail = c.check_tail("kill", "batches");
    if (tail.ok() && tail->tail >= 30 * kRecordsPerBatch) break;
    std::this_thread::sleep_for(5ms);
  }
  ::kill(child, SIGKILL);
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);

  // Every batch is there whole or not at all, each record intact, and the
  // server goes on serving.
  const auto records = read_all(c, "kill", "batches");
  EXPECT_GE(records.size(), 30u * kRecordsPerBatch);
  EXPECT_EQ(records.size() % kRecordsPerBatch, 0u);
  for (size_t i = 0; i < records.size(); i++) {
    ASSERT_EQ(records[i].body, std::string(4096, static_cast<char>('a' + (i % kRecordsPerBatch) % 26)));
  }
  ASSERT_TRUE(c.append("kill", "batches", bodies({"still serving"})).ok());
}

TEST(Client, CallsWithoutAServerFailInTimeAndSayWhy) {
  ClientOptions options = options_for(free_port());
  options.request_timeout_ms = 300;
  BlockingClient c(options);
  auto r = c.get_stream("b01", "s");
  EXPECT_EQ(r.status().code(), ErrorCode::kUnavailable) << r.status().to_string();
  EXPECT_NE(r.status().message().find("connection refused"), std::string::npos) << r.status().message();
  // A subscription that never reached a server ends too.
  auto sub = c.subscribe("b01", "s");
  auto next = sub->next(5s);
  EXPECT_EQ(next.status().code(), ErrorCode::kUnavailable) << next.status().to_string();

  // A host that does not resolve fails at once, not after the timeout.
  options.host = "no-such-host.invalid";
  options.request_timeout_ms = 60000;
  BlockingClient nowhere(options);
  const auto started = std::chrono::steady_clock::now();
  EXPECT_EQ(nowhere.get_stream("b01", "s").status().code(), ErrorCode::kInvalidArgument);
  EXPECT_LT(std::chrono::steady_clock::now() - started, 10s);
}

}  // namespace
}  // namespace runnel::testing
