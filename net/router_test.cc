// The router in process: requests handed to any shard's router run on the
// stream's owning shard and come back as answer frames on the shard they
// came from; malformed bodies are refused without an answer; reads that
// wait are answered when records land, at their deadline, or at shutdown.

#include "net/router.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>

#include "net/node_test_util.h"

namespace runnel {
namespace {

using testing::Answer;
using testing::NodeHarness;
using wire::append_of;
using wire::Opcode;

constexpr int kShards = 2;

TEST(Router, AStreamOperationRunsOnItsOwnerFromEveryShard) {
  NodeHarness node(kShards);
  for (int owner = 0; owner < kShards; owner++) {
    const std::string name = node.stream_owned_by(owner, "orders");
    node.create_stream("orders", name);
    for (int from = 0; from < kShards; from++) {
      Answer a = node.request(from, Opcode::kGetStream, wire::StreamName{"orders", name});
      const auto info = a.as<StreamInfo>();
      EXPECT_EQ(info.name, name) << "asked on shard " << from;
      EXPECT_EQ(a.header.request_id, 7u);
      EXPECT_NE(a.header.flags & wire::kFlagResponse, 0);
      // The stream lives only in its owner's catalog.
      const bool in_catalog = node.value_on<bool>(
          from, [&](Reactor&) { return node.stores().local().catalog().find("orders", name) != nullptr; });
      EXPECT_EQ(in_catalog, from == owner) << "shard " << from;
    }
  }
}

TEST(Router, AppendsFromAnotherShardAreAcknowledgedInOrderAndReadBack) {
  NodeHarness node(kShards);
  const std::string name = node.stream_owned_by(1, "orders");
  node.create_stream("orders", name);
  for (uint64_t i = 0; i < 5; i++) {
    PayloadBuilder payload;
    payload.add(0, "r" + std::to_string(i));
    payload.add(0, "r" + std::to_string(i) + "b");
    Answer a = node.request(0, Opcode::kAppend, append_of(payload, "orders", name));
    const auto ack = a.as<AppendAck>();
    EXPECT_EQ(ack.start_seq, 2 * i);
    EXPECT_EQ(ack.end_seq, 2 * i + 2);
    EXPECT_EQ(ack.tail, ack.end_seq);
  }
  Answer read = node.request(0, Opcode::kRead, wire::Read{"orders", name, {}, 100, 1 << 20, 0, 0});
  const auto answer = read.as<wire::ReadAnswer>();
  EXPECT_EQ(answer.tail, 10u);
  ASSERT_EQ(answer.batches.size(), 5u);
  EXPECT_EQ(answer.batches[4].base_seq, 8u);
  Answer tail = node.request(1, Opcode::kCheckTail, wire::StreamName{"orders", name});
  EXPECT_EQ(tail.as<wire::TailAnswer>().tail, 10u);
}

TEST(Router, StoreErrorsComeBackAsErrorFrames) {
  NodeHarness node(kShards);
  Answer missing = node.request(1, Opcode::kGetStream, wire::StreamName{"orders", "nope"});
  EXPECT_EQ(missing.code(), ErrorCode::kNotFound);
  node.create_stream("orders", "x");
  PayloadBuilder payload;
  payload.add(0, "x");
  wire::Append expecting_tail_5 = append_of(payload, "orders", "x");
  expecting_tail_5.options = wire::Append::kHasMatchSeqNum;
  expecting_tail_5.match_seq_num = 5;
  for (int from = 0; from < kShards; from++) {
    EXPECT_EQ(node.request(from, Opcode::kAppend, expecting_tail_5).code(), ErrorCode::kSeqNumMismatch);
  }
}

TEST(Router, MalformedBodiesAreRefusedAndUnknownOpcodesAnsweredUnsupported) {
  NodeHarness node(kShards);
  node.create_stream("orders", "x");
  for (int from = 0; from < kShards; from++) {
    // A truncated append: refused (the connection would close), never answered.
    std::string truncated = testing::body_of(wire::StreamName{"orders", "x"});
    bool answered = false;
    Status refused;
    node.run_on(from, [&](Reactor&, std::function<void()> done) {
      refused = node.local_router().handle(nullptr, static_cast<uint16_t>(Opcode::kAppend), 1, truncated,
                                           [&answered](std::string) { answered = true; });
      done();
    });
    EXPECT_EQ(refused.code(), ErrorCode::kInvalidArgument);
    EXPECT_FALSE(answered);
  }
  Answer unknown = node.request(0, static_cast<Opcode>(0x0777), wire::StreamName{"orders", "x"});
  EXPECT_EQ(unknown.code(), ErrorCode::kUnsupported);
}

TEST(Router, ListStreamsMergesEveryShardInNameOrder) {
  NodeHarness node(kShards);
  for (int i = 0; i < 12; i++) node.create_stream("orders", "s" + std::to_string(100 + i));
  Answer all = node.request(1, Opcode::kListStreams, wire::ListRequest{"orders", "", "", 0});
  const auto list = all.as<wire::ListAnswer<StreamInfo>>();
  ASSERT_EQ(list.items.size(), 12u);
  EXPECT_FALSE(list.more);
  for (int i = 0; i < 12; i++) EXPECT_EQ(list.items[static_cast<size_t>(i)].name, "s" + std::to_string(100 + i));
  Answer page = node.request(0, Opcode::kListStreams, wire::ListRequest{"orders", "s1", "s104", 3});
  const auto paged = page.as<wire::ListAnswer<StreamInfo>>();
  ASSERT_EQ(paged.items.size(), 3u);
  EXPECT_EQ(paged.items[0].name, "s105");
  EXPECT_TRUE(paged.more);
}

TEST(Router, AWaitingReadIsAnsweredWhenRecordsLand) {
  NodeHarness node(kShards);
  const std::string name = node.stream_owned_by(1, "orders");
  node.create_stream("orders", name);
  std::promise<std::string> answered;
  auto future = answered.get_future();
  // Waits (up to a minute) at the tail, asked on the other shard.
  node.request_async(0, Opcode::kRead, wire::Read{"orders", name, {}, 100, 1 << 20, 0, 60'000},
                     [&answered](std::string frame) { answered.set_value(std::move(frame)); });
  EXPECT_EQ(future.wait_for(std::chrono::milliseconds(50)), std::future_status::timeout) << "answered before records";
  PayloadBuilder payload;
  payload.add(0, "late");
  node.request(1, Opcode::kAppend, append_of(payload, "orders", name));
  ASSERT_EQ(future.wait_for(std::chrono::seconds(30)), std::future_status::ready);
  Answer a = testing::answer_of(future.get());
  const auto read = a.as<wire::ReadAnswer>();
  ASSERT_EQ(read.batches.size(), 1u);
  EXPECT_EQ(read.tail, 1u);
}

TEST(Router, AWaitingReadEndsEmptyAtItsDeadline) {
  NodeHarness node(kShards);
  node.create_stream("orders", "x");
  Answer a = node.request(0, Opcode::kRead, wire::Read{"orders", "x", {}, 100, 1 << 20, 0, 20});
  const auto read = a.as<wire::ReadAnswer>();
  EXPECT_TRUE(read.batches.empty());
  EXPECT_EQ(read.tail, 0u);
}

TEST(Router, AStoppingShardAnswersItsWaitingReads) {
  NodeHarness node(kShards);
  const std::string name = node.stream_owned_by(0, "orders");
  node.create_stream("orders", name);
  std::promise<std::string> answered;
  auto future = answered.get_future();
  node.request_async(0, Opcode::kRead, wire::Read{"orders", name, {}, 100, 1 << 20, 0, 60'000},
                     [&answered](std::string frame) { answered.set_value(std::move(frame)); });
  EXPECT_EQ(future.wait_for(std::chrono::milliseconds(50)), std::future_status::timeout) << "answered before the stop";
  node.request_stop();
  ASSERT_EQ(future.wait_for(std::chrono::seconds(30)), std::future_status::ready) << "the waiting read was left";
  Answer a = testing::answer_of(future.get());
  EXPECT_TRUE(a.as<wire::ReadAnswer>().batches.empty());
  node.stop();
}

}  // namespace
}  // namespace runnel
