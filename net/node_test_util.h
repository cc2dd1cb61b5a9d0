#pragma once
// Test helpers for net/: a node in this process — N shards, each with its
// store (real files under a scratch directory, io_uring), subscriptions and
// router, and the bucket registry on shard 0, wired as net/server.cc wires
// them, without sockets. Tests drive the router and subscriptions on any
// shard and wait (bounded) for their answers.

#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <functional>
#include <future>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "core/shard_set.h"
#include "core/sharded.h"
#include "net/node_registry.h"
#include "net/router.h"
#include "net/subscriptions.h"
#include "proto/records.h"
#include "proto/wire.h"
#include "proto/wire_test_util.h"
#include "storage/uring_file_io.h"

namespace runnel::testing {

// An answer frame, split: its header and its body.
struct Answer {
  wire::FrameHeader header{};
  std::string frame;
  bool is_error() const { return (header.flags & wire::kFlagError) != 0; }
  std::string_view body() const { return std::string_view(frame).substr(wire::kFrameHeaderBytes); }
  // The error's code (kOk if the answer is not an error).
  ErrorCode code() const {
    if (!is_error()) return ErrorCode::kOk;
    wire::ErrorBody e;
    EXPECT_TRUE(wire::decode_body(body(), &e));
    return static_cast<ErrorCode>(e.code);
  }
  template <typename T>
  T as() const {
    T out{};
    EXPECT_FALSE(is_error()) << "error " << error_code_name(code());
    EXPECT_TRUE(wire::decode_body(body(), &out)) << "answer does not decode";
    return out;
  }
};

inline Answer answer_of(std::string frame) {
  Answer a;
  EXPECT_GE(frame.size(), wire::kFrameHeaderBytes);
  if (frame.size() >= wire::kFrameHeaderBytes) a.header = wire::read_frame_header(frame.data());
  a.frame = std::move(frame);
  return a;
}

using wire::body_of;

class NodeHarness {
 public:
  // A fresh scratch directory, removed at the end; or `dir`, reopened (a
  // restart), kept if keep_data() is called.
  explicit NodeHarness(int shards, std::string dir = "")
      : dir_(dir.empty() ? "/tmp/runnel-node-test-" + std::to_string(::getpid()) + "-" + std::to_string(next_id()++)
                         : dir),
        shards_(shard_options(shards)),
        stores_(static_cast<size_t>(shards)),
        routers_(static_cast<size_t>(shards)),
        subscriptions_(static_cast<size_t>(shards)),
        buckets_(&stores_),
        services_(static_cast<size_t>(shards)) {
    if (dir.empty()) std::filesystem::remove_all(dir_);
    Status started = shards_.start(
        [this](Reactor& reactor) {
          const auto shard = static_cast<size_t>(reactor.shard());
          Services& s = services_[shard];
          s.io = std::make_unique<UringFileIo>(&reactor);
          LogOptions options;
          options.dir = dir_ + "/shard-" + std::to_string(shard);
          options.segment_bytes = 4u << 20;
          auto store = StreamStore::open(reactor, *s.io, options, shard == NodeRegistry::kHomeShard);
          if (!store) return store.status();
          s.store = std::move(*store);
          stores_.install(s.store.get());
          s.subscriptions = std::make_unique<Subscriptions>(reactor, &stores_, &subscriptions_);
          subscriptions_.install(s.subscriptions.get());
          s.router = std::make_unique<Router>(reactor, &stores_, &buckets_);
          s.router->set_peers(&routers_, &subscriptions_);
          routers_.install(s.router.get());
          return Status::ok();
        },
        [this](Reactor& reactor) {
          Services& s = services_[static_cast<size_t>(reactor.shard())];
          if (s.router) routers_.uninstall();
          s.router.reset();
          if (s.subscriptions) subscriptions_.uninstall();
          s.subscriptions.reset();
          if (s.store) stores_.uninstall();
          s.store.reset();
          s.io.reset();
        });
    EXPECT_TRUE(started.is_ok()) << started.to_string();
    // As runneld does before serving: every replica gets shard 0's buckets.
    run_on(NodeRegistry::kHomeShard,
           [this](Reactor&, std::function<void()> done) { buckets_.replicate_all([done] { done(); }); });
  }
  ~NodeHarness() {
    stop();
    if (!keep_data_) std::filesystem::remove_all(dir_);
  }
  NodeHarness(const NodeHarness&) = delete;
  NodeHarness& operator=(const NodeHarness&) = delete;

  int shard_count() const { return shards_.shard_count(); }
  const std::string& data_dir() const { return dir_; }
  void keep_data() { keep_data_ = true; }
  // Stops every shard (their stop hooks run) and joins them.
  void stop() {
    if (stopped_) return;
    stopped_ = true;
    shards_.request_stop();
    shards_.join();
  }
  // Asks the shards to stop without waiting (stop hooks run on each shard).
  void request_stop() { shards_.request_stop(); }

  // Runs `work` on `shard`, then waits (bounded) until it calls `done`.
  void run_on(int shard, std::function<void(Reactor&, std::function<void()> done)> work) {
    auto finished = std::make_shared<std::promise<void>>();
    auto future = finished->get_future();
    auto* work_ptr = &work;
    shards_.reactor(shard).post_external(
        [work_ptr, finished] { (*work_ptr)(Reactor::current(), [finished] { finished->set_value(); }); });
    ASSERT_EQ(future.wait_for(std::chrono::seconds(30)), std::future_status::ready) << "shard work timed out";
  }
  // Runs `fn` on `shard` and returns what it returns.
  template <typename T>
  T value_on(int shard, std::function<T(Reactor&)> fn) {
    T out{};
    run_on(shard, [&](Reactor& r, std::function<void()> done) {
      out = fn(r);
      done();
    });
    return out;
  }

  // Hands a request to `shard`'s router, as a connection there would, and
  // waits for its answer frame. A body the router refuses gives the
  // refusal's status as an error answer (no frame was sent).
  template <typename M>
  Answer request(int shard, wire::Opcode opcode, const M& m, uint32_t request_id = 7) {
    const std::string body = body_of(m);
    std::string frame;
    run_on(shard, [&](Reactor&, std::function<void()> done) {
      auto finish = std::make_shared<std::function<void()>>(std::move(done));  // Answers may come later.
      Status s = routers_.local().handle(nullptr, static_cast<uint16_t>(opcode), request_id, body,
                                         [&frame, finish](std::string answer) {
                                           frame = std::move(answer);
                                           (*finish)();
                                         });
      if (!s) {
        wire::append_error_frame(&frame, static_cast<uint16_t>(opcode), request_id, s);
        (*finish)();
      }
    });
    return answer_of(std::move(frame));
  }
  // Starts a request on `shard` without waiting; its answer goes to `answered`
  // (on that shard).
  template <typename M>
  void request_async(int shard, wire::Opcode opcode, const M& m, std::function<void(std::string frame)> answered) {
    auto body = std::make_shared<std::string>(body_of(m));
    run_on(shard, [&](Reactor&, std::function<void()> done) {
      Status s = routers_.local().handle(nullptr, static_cast<uint16_t>(opcode), 9, *body,
                                         [answered](std::string frame) { answered(std::move(frame)); });
      EXPECT_TRUE(s.is_ok()) << s.to_string();
      done();
    });
  }

  // Creates a bucket and a stream in it (default configs), through shard 0.
  void create_stream(std::string_view bucket, std::string_view stream) {
    if (!has_bucket_.count(std::string(bucket))) {
      ASSERT_FALSE(request(0, wire::Opcode::kCreateBucket, wire::BucketWithConfig{bucket, {}}).is_error());
      has_bucket_.insert(std::string(bucket));
    }
    ASSERT_FALSE(request(0, wire::Opcode::kCreateStream, wire::CreateStream{bucket, stream, true, {}}).is_error());
  }
  // A stream name, in `bucket`, that shard `shard` owns.
  std::string stream_owned_by(int shard, std::string_view bucket, std::string_view prefix = "s") const {
    for (int i = 0;; i++) {
      std::string name = std::string(prefix) + std::to_string(i);
      if (wire::owner_shard(bucket, name, static_cast<uint32_t>(shard_count())) == static_cast<uint32_t>(shard)) {
        return name;
      }
    }
  }

  // On a shard: that shard's router.
  Router& local_router() { return routers_.local(); }
  const Sharded<StreamStore>& stores() const { return stores_; }
  const Sharded<Subscriptions>& subscriptions() const { return subscriptions_; }
  NodeRegistry& buckets() { return buckets_; }

 private:
  struct Services {
    std::unique_ptr<UringFileIo> io;
    std::unique_ptr<StreamStore> store;
    std::unique_ptr<Subscriptions> subscriptions;
    std::unique_ptr<Router> router;
  };
  static int& next_id() {
    static int id = 0;
    return id;
  }
  static ShardSetOptions shard_options(int shards) {
    ShardSetOptions o;
    o.shards = shards;
    o.ring_entries = 256;
    o.pin_threads = false;
    return o;
  }

  std::string dir_;
  ShardSet shards_;
  Sharded<StreamStore> stores_;
  Sharded<Router> routers_;
  Sharded<Subscriptions> subscriptions_;
  NodeRegistry buckets_;
  std::vector<Services> services_;
  std::set<std::string> has_bucket_;
  bool stopped_ = false;
  bool keep_data_ = false;
};

}  // namespace runnel::testing
