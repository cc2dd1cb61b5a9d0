// The bucket registry in process: a bucket mutation asked on any shard is
// answered only once it is durable at the home shard and visible in every
// shard's replica; a bucket that still holds a stream on any shard is not
// deleted; queued mutations all run, in order.

#include "net/node_registry.h"

#include <gtest/gtest.h>

#include <optional>

#include "net/node_test_util.h"

namespace runnel {
namespace {

using testing::NodeHarness;
using wire::Opcode;

constexpr int kShards = 2;

// Each shard's replica of `bucket` (nullopt: not there).
std::vector<std::optional<BucketInfo>> replicas(NodeHarness& node, const std::string& bucket) {
  std::vector<std::optional<BucketInfo>> out;
  for (int shard = 0; shard < node.shard_count(); shard++) {
    out.push_back(node.value_on<std::optional<BucketInfo>>(shard, [&](Reactor&) -> std::optional<BucketInfo> {
      const BucketInfo* b = node.stores().local().find_bucket(bucket);
      if (b == nullptr) return std::nullopt;
      return *b;
    }));
  }
  return out;
}

TEST(NodeRegistry, AnAnsweredMutationIsInEveryReplica) {
  NodeHarness node(kShards);
  BucketConfig config;
  config.create_stream_on_append = true;
  config.default_stream_config.retention_bytes = 1 << 20;
  const auto created = node.request(1, Opcode::kCreateBucket, wire::BucketWithConfig{"shop", config});
  EXPECT_EQ(created.as<BucketInfo>().config, config);
  for (const auto& replica : replicas(node, "shop")) {
    ASSERT_TRUE(replica.has_value());
    EXPECT_EQ(replica->config, config);
  }
  config.create_stream_on_read = true;
  ASSERT_FALSE(node.request(1, Opcode::kReconfigureBucket, wire::BucketWithConfig{"shop", config}).is_error());
  for (const auto& replica : replicas(node, "shop")) {
    ASSERT_TRUE(replica.has_value());
    EXPECT_TRUE(replica->config.create_stream_on_read);
  }
  EXPECT_EQ(node.request(0, Opcode::kCreateBucket, wire::BucketWithConfig{"shop", {}}).code(),
            ErrorCode::kAlreadyExists);
}

TEST(NodeRegistry, ABucketHoldingAStreamOnAnyShardIsNotDeleted) {
  NodeHarness node(kShards);
  const std::string name = node.stream_owned_by(1, "shop");  // Not on the home shard.
  node.create_stream("shop", name);
  EXPECT_NE(node.request(0, Opcode::kDeleteBucket, wire::BucketName{"shop"}).code(), ErrorCode::kOk);
  for (const auto& replica : replicas(node, "shop")) EXPECT_TRUE(replica.has_value());
  // Still usable after the refusal.
  EXPECT_FALSE(node.request(1, Opcode::kCreateStream, wire::CreateStream{"shop", "other", true, {}}).is_error());

  ASSERT_FALSE(node.request(0, Opcode::kDeleteStream, wire::StreamName{"shop", name}).is_error());
  ASSERT_FALSE(node.request(0, Opcode::kDeleteStream, wire::StreamName{"shop", "other"}).is_error());
  EXPECT_FALSE(node.request(1, Opcode::kDeleteBucket, wire::BucketName{"shop"}).is_error());
  for (const auto& replica : replicas(node, "shop")) EXPECT_FALSE(replica.has_value());
  EXPECT_EQ(node.request(1, Opcode::kCreateStream, wire::CreateStream{"shop", name, true, {}}).code(),
            ErrorCode::kNotFound);
}

TEST(NodeRegistry, QueuedMutationsAllRunInArrivalOrder) {
  NodeHarness node(kShards);
  static constexpr int kBuckets = 20;
  std::vector<std::string> answered;
  node.run_on(NodeRegistry::kHomeShard, [&](Reactor&, std::function<void()> done) {
    auto finish = std::make_shared<std::function<void()>>(std::move(done));
    for (int i = 0; i < kBuckets; i++) {
      node.buckets().submit(NodeRegistry::Op::kCreate, "b-" + std::to_string(100 + i), {},
                            [&answered, finish](Result<BucketInfo> r) {
                              answered.push_back(r.is_ok() ? r->name : r.status().to_string());
                              if (answered.size() == static_cast<size_t>(kBuckets)) (*finish)();
                            });
    }
  });
  ASSERT_EQ(answered.size(), static_cast<size_t>(kBuckets));
  for (int i = 0; i < kBuckets; i++) EXPECT_EQ(answered[static_cast<size_t>(i)], "b-" + std::to_string(100 + i));
  const auto list = node.request(1, Opcode::kListBuckets, wire::ListRequest{"", "b-", "", 0});
  EXPECT_EQ(list.as<wire::ListAnswer<BucketInfo>>().items.size(), static_cast<size_t>(kBuckets));
}

TEST(NodeRegistry, BucketsSurviveARestartAndReachEveryReplica) {
  std::string dir;
  {
    NodeHarness node(kShards);
    dir = node.data_dir();
    node.keep_data();
    ASSERT_FALSE(node.request(1, Opcode::kCreateBucket, wire::BucketWithConfig{"kept", {}}).is_error());
  }
  NodeHarness reopened(kShards, dir);
  for (const auto& replica : replicas(reopened, "kept")) EXPECT_TRUE(replica.has_value());
}

}  // namespace
}  // namespace runnel
