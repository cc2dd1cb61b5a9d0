#include "net/wire_convert.h"

#include <gtest/gtest.h>

#include <string>

namespace runnel {
namespace {

ReadResult sample_result(size_t batches, size_t payload_bytes) {
  ReadResult r;
  r.tail = 12345;
  r.first_record_index = 3;
  for (size_t i = 0; i < batches; i++) {
    StoredBatch b;
    b.header.base_seq = 100 * i;
    b.header.record_count = 100;
    b.header.first_timestamp = 1000 + i;
    b.header.last_timestamp = 2000 + i;
    b.header.arrival_timestamp = 3000 + i;
    b.header.flags = static_cast<uint16_t>(i & 1);
    b.header.payload_checksum = 0xabcdef00 + i;
    b.payload.assign(payload_bytes + i, static_cast<char>('a' + i % 26));
    r.batches.push_back(std::move(b));
  }
  return r;
}

// The pieces joined are byte for byte the frame the one-string encoder makes,
// for no batches, small payloads and large ones.
TEST(ReadAnswerPieces, JoinToTheSameFrameAsAppendFrame) {
  for (size_t batches : {0, 1, 7}) {
    for (size_t payload : {0, 10, 70000}) {
      SCOPED_TRACE(std::to_string(batches) + " batches of " + std::to_string(payload) + " B");
      ReadResult r = sample_result(batches, payload);
      std::string expected;
      wire::append_frame(&expected, wire::Opcode::kSubscriptionData, wire::kFlagPush, 42,
                         wire_convert::read_answer(r, 0));
      auto pieces = wire_convert::read_answer_pieces(wire::Opcode::kSubscriptionData, wire::kFlagPush, 42, std::move(r));
      ASSERT_FALSE(pieces.empty());
      EXPECT_GE(pieces.front().size(), wire::kFrameHeaderBytes);
      std::string joined;
      for (const std::string& p : pieces) joined += p;
      EXPECT_EQ(joined, expected);
      wire::ReadAnswer decoded;
      ASSERT_TRUE(wire::decode_body(std::string_view(joined).substr(wire::kFrameHeaderBytes), &decoded));
      EXPECT_EQ(decoded.batches.size(), batches);
    }
  }
}

}  // namespace
}  // namespace runnel
