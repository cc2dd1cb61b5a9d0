// Subscriptions in process: a subscription lives on its stream's shard,
// answers SUBSCRIBE, pushes records to its sink on the subscriber's shard
// never beyond the credit granted, shows in its shard's table until it is
// stopped, and a stopping shard ends it with shutting_down.

#include "net/subscriptions.h"

#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <optional>
#include <thread>

#include "net/node_test_util.h"

namespace runnel {
namespace {

using testing::Answer;
using testing::NodeHarness;
using wire::append_of;
using wire::Opcode;

constexpr int kShards = 2;
constexpr uint32_t kHeartbeatMs = 60'000;  // No heartbeats during a test.

// Stands in for a connection: keeps every frame pushed to it, for the test
// thread to take.
class RecordingSink final : public PushSink {
 public:
  void deliver_push(uint64_t generation, std::vector<std::string> frame_pieces) override {
    std::string frame;
    for (const std::string& piece : frame_pieces) frame += piece;
    std::lock_guard<std::mutex> lock(mu_);
    generations_.push_back(generation);
    frames_.push_back(std::move(frame));
    cv_.notify_all();
  }
  // The next frame, waiting up to `timeout`; nullopt if none came.
  std::optional<Answer> next(std::chrono::milliseconds timeout = std::chrono::seconds(30)) {
    std::unique_lock<std::mutex> lock(mu_);
    if (!cv_.wait_for(lock, timeout, [this] { return !frames_.empty(); })) return std::nullopt;
    std::string frame = std::move(frames_.front());
    frames_.pop_front();
    return testing::answer_of(std::move(frame));
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::string> frames_;
  std::vector<uint64_t> generations_;
};

struct Subscriber {
  NodeHarness& node;
  RecordingSink sink;
  int shard = 0;  // The subscriber's (its sink's) shard.
  uint64_t generation = 1;
  uint64_t credit_max = uint64_t{1} << 30;
  // The shards stop first: a stopping shard still pushes (shutting_down) to the sink.
  ~Subscriber() { node.stop(); }

  PushTarget target() { return PushTarget{shard, &sink, generation}; }
  void subscribe(uint32_t id, std::string_view bucket, std::string_view stream, uint32_t credit) {
    const std::string body = testing::body_of(wire::Subscribe{bucket, stream, wire::Start{}, credit, kHeartbeatMs});
    const auto owner = wire::owner_shard(bucket, stream, static_cast<uint32_t>(node.shard_count()));
    node.run_on(shard, [&](Reactor&, std::function<void()> done) {
      node.subscriptions().local().start(owner, id, body, target(), SubscriptionLimits{kHeartbeatMs, credit_max});
      done();
    });
  }
  void credit(uint32_t owner, uint32_t id, uint32_t bytes) {
    node.run_on(shard, [&](Reactor&, std::function<void()> done) {
      node.subscriptions().local().credit(owner, target(), id, bytes);
      done();
    });
  }
  void stop(uint32_t owner, uint32_t id) {
    node.run_on(shard, [&](Reactor&, std::function<void()> done) {
      node.subscriptions().local().stop(owner, target(), id);
      done();
    });
  }
};

void append_batch(NodeHarness& node, const std::string& stream, const std::string& body) {
  PayloadBuilder payload;
  payload.add(0, body);
  ASSERT_FALSE(node.request(0, Opcode::kAppend, append_of(payload, "orders", stream)).is_error());
}

// Records pushed in `frame` (a SUBSCRIPTION_DATA), appended to `seqs`.
void collect(const Answer& frame, std::vector<uint64_t>* seqs) {
  ASSERT_EQ(frame.header.opcode, static_cast<uint16_t>(Opcode::kSubscriptionData));
  ASSERT_NE(frame.header.flags & wire::kFlagPush, 0);
  const auto data = frame.as<wire::ReadAnswer>();
  for (const wire::Batch& b : data.batches) {
    for (uint32_t i = 0; i < b.record_count; i++) seqs->push_back(b.base_seq + i);
  }
}

TEST(Subscriptions, RecordsArePushedToTheSubscribersShardWithinItsCredit) {
  NodeHarness node(kShards);
  const std::string name = node.stream_owned_by(1, "orders");
  node.create_stream("orders", name);
  Subscriber sub{node, {}, 0};
  sub.subscribe(3, "orders", name, 1);  // One byte: one push at a time.
  auto answer = sub.sink.next();
  ASSERT_TRUE(answer.has_value());
  EXPECT_EQ(answer->header.request_id, 3u);
  EXPECT_EQ(answer->as<wire::TailAnswer>().tail, 0u);

  for (int i = 0; i < 3; i++) append_batch(node, name, std::string(100, 'a' + static_cast<char>(i)));
  std::vector<uint64_t> seqs;
  auto first = sub.sink.next();
  ASSERT_TRUE(first.has_value());
  collect(*first, &seqs);
  ASSERT_FALSE(seqs.empty());
  // Its credit is spent: nothing more until the subscriber grants some.
  EXPECT_FALSE(sub.sink.next(std::chrono::milliseconds(100)).has_value()) << "pushed beyond the credit";
  sub.credit(1, 3, 1 << 20);
  while (seqs.size() < 3) {
    auto more = sub.sink.next();
    ASSERT_TRUE(more.has_value()) << "records missing after credit";
    collect(*more, &seqs);
  }
  EXPECT_EQ(seqs, (std::vector<uint64_t>{0, 1, 2}));
}

TEST(Subscriptions, ALiveSubscriptionIsListedOnItsStreamsShardUntilStopped) {
  NodeHarness node(kShards);
  const std::string name = node.stream_owned_by(1, "orders");
  node.create_stream("orders", name);
  Subscriber sub{node, {}, 0};
  sub.subscribe(5, "orders", name, 1 << 20);
  ASSERT_TRUE(sub.sink.next().has_value());
  append_batch(node, name, "x");
  ASSERT_TRUE(sub.sink.next().has_value());
  const auto listed = node.value_on<std::vector<SubscriptionStatus>>(
      1, [&](Reactor&) { return node.subscriptions().local().of_stream("orders", name); });
  ASSERT_EQ(listed.size(), 1u);
  EXPECT_EQ(listed[0].id, 5u);
  EXPECT_EQ(listed[0].connection_shard, 0);
  EXPECT_TRUE(listed[0].positioned);
  EXPECT_EQ(listed[0].next_seq, 1u);
  EXPECT_EQ(node.value_on<size_t>(0, [&](Reactor&) { return node.subscriptions().local().count(); }), 0u);

  sub.stop(1, 5);
  size_t left = 1;
  for (int attempt = 0; attempt < 3000 && left != 0; attempt++) {  // The stop travels by message.
    left = node.value_on<size_t>(1, [&](Reactor&) { return node.subscriptions().local().count(); });
    if (left != 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  EXPECT_EQ(left, 0u);
  append_batch(node, name, "after the stop");
  EXPECT_FALSE(sub.sink.next(std::chrono::milliseconds(100)).has_value()) << "pushed after the stop";
}

TEST(Subscriptions, CreditNeverExceedsTheConnectionsBound) {
  NodeHarness node(kShards);
  const std::string name = node.stream_owned_by(1, "orders");
  node.create_stream("orders", name);
  Subscriber sub{node, {}, 1};  // On the owner's shard: a credit applies at once.
  sub.credit_max = 1000;
  sub.subscribe(4, "orders", name, UINT32_MAX);
  ASSERT_TRUE(sub.sink.next().has_value());
  auto credit_now = [&] {
    const auto listed = node.value_on<std::vector<SubscriptionStatus>>(
        1, [&](Reactor&) { return node.subscriptions().local().of_stream("orders", name); });
    return listed.empty() ? uint64_t{0} : listed[0].credit_bytes;
  };
  EXPECT_EQ(credit_now(), 1000u);
  sub.credit(1, 4, UINT32_MAX);  // More granted: still capped.
  EXPECT_EQ(credit_now(), 1000u);
}

TEST(Subscriptions, BadStartsAreAnsweredWithErrors) {
  NodeHarness node(kShards);
  Subscriber sub{node, {}, 1};
  sub.subscribe(1, "orders", "missing", 1 << 20);
  auto missing = sub.sink.next();
  ASSERT_TRUE(missing.has_value());
  EXPECT_EQ(missing->code(), ErrorCode::kNotFound);

  node.create_stream("orders", "x");
  sub.subscribe(2, "orders", "x", 1 << 20);
  auto ok = sub.sink.next();
  ASSERT_TRUE(ok.has_value());
  EXPECT_FALSE(ok->is_error());
  sub.subscribe(2, "orders", "x", 1 << 20);  // The same connection and id again.
  auto again = sub.sink.next();
  ASSERT_TRUE(again.has_value());
  EXPECT_EQ(again->code(), ErrorCode::kAlreadyExists);
}

TEST(Subscriptions, AStoppingShardEndsItsSubscriptionsWithShuttingDown) {
  NodeHarness node(kShards);
  const std::string name = node.stream_owned_by(0, "orders");
  node.create_stream("orders", name);
  Subscriber sub{node, {}, 0};
  sub.subscribe(9, "orders", name, 1 << 20);
  ASSERT_TRUE(sub.sink.next().has_value());
  node.request_stop();
  auto ended = sub.sink.next();
  ASSERT_TRUE(ended.has_value()) << "the subscription was left running";
  EXPECT_EQ(ended->header.request_id, 9u);
  EXPECT_EQ(ended->code(), ErrorCode::kShuttingDown);
  node.stop();
}

}  // namespace
}  // namespace runnel
