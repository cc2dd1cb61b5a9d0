#pragma once
// Conversions between the storage engine's types and the binary protocol's
// messages, and answer frames, for the request handlers in net/ (internal).

#include <string>
#include <vector>

#include "core/bytes.h"
#include "proto/wire.h"
#include "storage/stream_store.h"

namespace runnel::wire_convert {

// What users see of a stream: its catalog entry with the log's tail and rates.
inline StreamInfo stream_info(const StreamEntry& entry, uint64_t tail, AppendRate::PerMinute appended = {}) {
  StreamInfo out;
  out.bucket = entry.bucket;
  out.name = entry.name;
  out.config = entry.config;
  out.created_ms = entry.created_ms;
  out.sealed = entry.sealed;
  out.fenced = !entry.fencing_token.empty();
  out.trim_seq = entry.trim_seq;
  out.tail = tail;
  out.appended_records_last_minute = appended.records;
  out.appended_bytes_last_minute = appended.bytes;
  return out;
}

inline std::string error_frame(uint16_t opcode, uint32_t request_id, const Status& status) {
  std::string out;
  wire::append_error_frame(&out, opcode, request_id, status);
  return out;
}

template <typename T>
std::string answer_frame(uint16_t opcode, uint32_t request_id, const T& m) {
  std::string out;
  wire::append_frame(&out, static_cast<wire::Opcode>(opcode), wire::kFlagResponse, request_id, m);
  return out;
}

inline std::string empty_answer(uint16_t opcode, uint32_t request_id) {
  std::string out;
  wire::finish_frame(&out, wire::begin_frame(&out, static_cast<wire::Opcode>(opcode), wire::kFlagResponse, request_id));
  return out;
}

inline ReadStart read_start(const wire::Start& start) {
  switch (start.kind) {
    case wire::Start::kTimestamp: return ReadStart::timestamp(start.value);
    case wire::Start::kTailOffset: return ReadStart::tail_offset(start.value);
    default: return ReadStart::seq_num(start.value);
  }
}

// A stored batch as the protocol sends it; the payload is a view into `b`.
inline wire::Batch wire_batch(const StoredBatch& b) {
  wire::Batch out;
  out.base_seq = b.header.base_seq;
  out.record_count = b.header.record_count;
  out.first_timestamp = b.header.first_timestamp;
  out.last_timestamp = b.header.last_timestamp;
  out.arrival_timestamp = b.header.arrival_timestamp;
  out.flags = b.header.flags;
  out.payload_checksum = b.header.payload_checksum;
  out.payload = b.payload;
  return out;
}

inline wire::ReadAnswer read_answer(const ReadResult& r, uint64_t until) {
  wire::ReadAnswer answer;
  answer.tail = r.tail;
  answer.first_record_index = r.first_record_index;
  for (const StoredBatch& b : r.batches) {
    // until_timestamp: stop at the first batch that starts at or after it.
    if (until != 0 && b.header.first_timestamp >= until) break;
    answer.batches.push_back(wire_batch(b));
  }
  return answer;
}

// A frame carrying `r` as a READ answer or SUBSCRIPTION_DATA, in pieces for
// a vectored send: the frame's fixed fields in small strings, and each
// batch's payload moved out of `r` as a piece of its own, so a megabyte of
// records read from disk is not copied once more into one frame string. The
// pieces joined are exactly append_frame(opcode, flags, request_id,
// read_answer(r, 0)); the first holds the whole frame header.
inline std::vector<std::string> read_answer_pieces(wire::Opcode opcode, uint16_t flags, uint32_t request_id,
                                                   ReadResult&& r) {
  std::vector<std::string> pieces;
  pieces.emplace_back();
  size_t frame_bytes = 0;
  wire::begin_frame(&pieces.back(), opcode, flags, request_id);
  {
    wire::Writer w(&pieces.back());
    w.u64(r.tail);
    w.u32(r.first_record_index);
    w.u32(static_cast<uint32_t>(r.batches.size()));
  }
  for (StoredBatch& b : r.batches) {
    wire::Writer w(&pieces.back());
    wire::encode_batch_head(w, wire_batch(b));
    frame_bytes += pieces.back().size() + b.payload.size();
    pieces.push_back(std::move(b.payload));
    pieces.emplace_back();
  }
  frame_bytes += pieces.back().size();
  if (pieces.back().empty()) pieces.pop_back();
  RUNNEL_ASSERT(frame_bytes <= UINT32_MAX);
  const auto length = static_cast<uint32_t>(frame_bytes);
  store_le(pieces.front().data(), length);  // The frame header starts with the frame's length.
  return pieces;
}

}  // namespace runnel::wire_convert
