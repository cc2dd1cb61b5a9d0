// Fuzz target: arbitrary bytes as a stream of binary-protocol frames, the way
// a server or client connection reads them. Each frame's header is checked;
// its body is decoded as every message its opcode may carry (request,
// answer, error), and whatever decodes is encoded again and must decode to
// the same bytes. Nothing may crash, hang or allocate without bound.

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "proto/wire.h"

namespace {

using namespace runnel::wire;
using runnel::AppendAck;
using runnel::BucketInfo;
using runnel::StreamInfo;

// Decodes `body` as T; if it decodes, encoding it again must give the same bytes.
template <typename T>
void check(std::string_view body) {
  T m;
  if (!decode_body(body, &m)) return;
  std::string again;
  Writer w(&again);
  encode(w, m);
  if (again != body) std::abort();
}

void decode_all(uint16_t opcode, uint16_t flags, std::string_view body) {
  if ((flags & kFlagError) != 0) return check<ErrorBody>(body);
  const bool answer = (flags & kFlagResponse) != 0 || (flags & kFlagPush) != 0;
  switch (static_cast<Opcode>(opcode)) {
    case Opcode::kHello: return answer ? check<HelloOk>(body) : check<Hello>(body);
    case Opcode::kPing: return;
    case Opcode::kCreateBucket:
    case Opcode::kReconfigureBucket:
      return answer ? check<BucketInfo>(body) : check<BucketWithConfig>(body);
    case Opcode::kGetBucket: return answer ? check<BucketInfo>(body) : check<BucketName>(body);
    case Opcode::kDeleteBucket: return check<BucketName>(body);
    case Opcode::kListBuckets: return answer ? check<ListAnswer<BucketInfo>>(body) : check<ListRequest>(body);
    case Opcode::kListStreams: return answer ? check<ListAnswer<StreamInfo>>(body) : check<ListRequest>(body);
    case Opcode::kCreateStream: return answer ? check<StreamInfo>(body) : check<CreateStream>(body);
    case Opcode::kReconfigureStream: return answer ? check<StreamInfo>(body) : check<ReconfigureStream>(body);
    case Opcode::kGetStream:
    case Opcode::kSealStream:
    case Opcode::kDeleteStream:
      return answer ? check<StreamInfo>(body) : check<StreamName>(body);
    case Opcode::kTrimStream: return answer ? check<StreamInfo>(body) : check<TrimStream>(body);
    case Opcode::kFenceStream: return answer ? check<StreamInfo>(body) : check<FenceStream>(body);
    case Opcode::kCheckTail: return answer ? check<TailAnswer>(body) : check<StreamName>(body);
    case Opcode::kAppend: return answer ? check<AppendAck>(body) : check<Append>(body);
    case Opcode::kRead:
    case Opcode::kSubscriptionData:
      return answer ? check<ReadAnswer>(body) : check<Read>(body);
    case Opcode::kSubscribe: return answer ? check<TailAnswer>(body) : check<Subscribe>(body);
    case Opcode::kCredit: return check<Credit>(body);
    case Opcode::kUnsubscribe: return check<Unsubscribe>(body);
    case Opcode::kIssueToken:
      return answer ? check<runnel::wire::IssuedToken>(body) : check<runnel::TokenInfo>(body);
    case Opcode::kListTokens:
      return answer ? check<ListAnswer<runnel::TokenInfo>>(body) : check<ListRequest>(body);
    case Opcode::kRevokeToken:
      return answer ? check<runnel::TokenInfo>(body) : check<runnel::wire::TokenId>(body);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  // Small maximum so that length checks are reached often.
  constexpr uint32_t kMaxFrame = 1u << 16;
  while (in.size() >= kFrameHeaderBytes) {
    const FrameHeader h = read_frame_header(in.data());
    if (!check_frame_header(h, kMaxFrame).is_ok()) break;  // A connection would be closed here.
    if (in.size() < h.frame_bytes) break;                  // Waits for more bytes.
    decode_all(h.opcode, h.flags, in.substr(kFrameHeaderBytes, h.frame_bytes - kFrameHeaderBytes));
    in.remove_prefix(h.frame_bytes);
  }
  return 0;
}
