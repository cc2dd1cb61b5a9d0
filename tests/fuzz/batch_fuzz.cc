// libFuzzer target for the batch codec: batches arrive from clients and from
// disk, so verify_header, verify_payload and RecordIterator see untrusted
// bytes. Any input must give an error or a clean decode, never a read outside
// the input.
//
// The input is a 72-byte header followed by the payload. Besides the verify
// path (which rejects nearly everything on the checksums), RecordIterator is
// run directly on the bytes after the header with the header's record_count,
// so the record decoder is explored without the fuzzer having to forge
// checksums. What decodes must survive a re-encode with PayloadBuilder and,
// under an honest header, must stamp, seal and verify.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/assert.h"
#include "storage/batch.h"

namespace {

constexpr uint64_t kSegmentId = 7;

// Compares addresses as integers: relational operators on pointers into
// different objects are unspecified, and this must hold for any view.
bool within(std::string_view inner, std::string_view outer) {
  const auto inner_begin = reinterpret_cast<uintptr_t>(inner.data());
  const auto outer_begin = reinterpret_cast<uintptr_t>(outer.data());
  return inner_begin >= outer_begin && inner.size() <= outer.size() &&
         inner_begin - outer_begin <= outer.size() - inner.size();
}

struct DecodedRecord {
  uint64_t timestamp = 0;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  bool operator==(const DecodedRecord&) const = default;
};

// Walks `payload` with RecordIterator, checking every view lies in `input`.
// Returns true and fills *records if the walk ended without error.
bool walk(std::string_view payload, uint32_t record_count, std::string_view input,
          std::vector<DecodedRecord>* records) {
  runnel::BatchLimits limits;
  runnel::RecordIterator it(payload, record_count, limits);
  runnel::RecordView view;
  while (it.next(&view)) {
    RUNNEL_ASSERT(within(view.headers, input));
    RUNNEL_ASSERT(within(view.body, input));
    RUNNEL_ASSERT(view.header_count <= limits.headers_per_record_max);
    RUNNEL_ASSERT(view.body.size() <= limits.record_bytes_max);
    DecodedRecord record;
    record.timestamp = view.timestamp;
    record.body = std::string(view.body);
    runnel::HeaderIterator headers(view.headers, view.header_count);
    runnel::RecordHeader header;
    while (headers.next(&header)) {
      RUNNEL_ASSERT(within(header.name, view.headers));
      RUNNEL_ASSERT(within(header.value, view.headers));
      record.headers.emplace_back(std::string(header.name), std::string(header.value));
    }
    RUNNEL_ASSERT(record.headers.size() == view.header_count);
    records->push_back(std::move(record));
    RUNNEL_ASSERT(records->size() <= record_count);
  }
  if (!it.status().is_ok()) {
    RUNNEL_ASSERT(!it.status().message().empty());
    return false;
  }
  RUNNEL_ASSERT(records->size() == record_count);
  return true;
}

// A decoded payload re-encodes (minimally) into one that decodes the same.
void check_reencode(const std::vector<DecodedRecord>& records) {
  runnel::PayloadBuilder builder;
  for (const auto& record : records) builder.add(record.timestamp, record.headers, record.body);
  std::vector<DecodedRecord> again;
  RUNNEL_ASSERT(walk(builder.bytes(), builder.record_count(), builder.bytes(), &again));
  RUNNEL_ASSERT(again == records);
}

// A batch that verified must stamp in any mode, then reseal and verify, and
// its effective timestamps must follow the header.
void check_stamp(runnel::BatchHeader header, std::string_view payload) {
  runnel::BatchLimits limits;
  const auto mode = static_cast<runnel::Timestamping>(header.stream_id % 3);
  const bool missing_ok = mode != runnel::Timestamping::kClientRequire;
  runnel::Status status =
      runnel::stamp_batch(&header, payload, header.base_seq, header.arrival_timestamp, mode, limits);
  if (!status.is_ok()) {
    RUNNEL_ASSERT(!missing_ok);
    return;
  }
  runnel::seal_header(&header, kSegmentId);
  RUNNEL_ASSERT(runnel::verify_header(header, kSegmentId, limits).is_ok());
  RUNNEL_ASSERT(runnel::verify_payload(header, payload, limits).is_ok());
  std::vector<uint64_t> eff;
  RUNNEL_ASSERT(runnel::effective_timestamps(header, payload, limits, &eff).is_ok());
  RUNNEL_ASSERT(eff.size() == header.record_count);
  RUNNEL_ASSERT(eff.front() == header.first_timestamp);
  RUNNEL_ASSERT(eff.back() == header.last_timestamp);
  for (size_t i = 1; i < eff.size(); i++) RUNNEL_ASSERT(eff[i - 1] <= eff[i]);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  runnel::BatchHeader header;
  if (!runnel::decode_header(input, &header).is_ok()) {
    RUNNEL_ASSERT(size < runnel::kBatchHeaderBytes);
    return 0;
  }
  const std::string_view payload = input.substr(runnel::kBatchHeaderBytes);
  runnel::BatchLimits limits;

  if (runnel::verify_header(header, kSegmentId, limits).is_ok()) {
    // A header sealed for segment 7 must not pass for another segment.
    RUNNEL_ASSERT(!runnel::verify_header(header, kSegmentId + 1, limits).is_ok());
    if (runnel::verify_payload(header, payload, limits).is_ok()) {
      std::vector<uint64_t> eff;
      runnel::Status status = runnel::effective_timestamps(header, payload, limits, &eff);
      if (status.is_ok()) RUNNEL_ASSERT(eff.size() == header.record_count);
      check_stamp(header, payload);
    }
  }

  std::vector<DecodedRecord> records;
  if (!walk(payload, header.record_count, input, &records)) return 0;
  check_reencode(records);

  // The checksums keep mutated inputs off the verify path above, so give a
  // payload that decodes an honest header and run the server side on it.
  if (header.record_count == 0 || payload.size() > limits.payload_bytes_max) return 0;
  runnel::BatchHeader honest = header;
  honest.magic = runnel::kBatchMagic;
  honest.payload_bytes = static_cast<uint32_t>(payload.size());
  honest.payload_checksum = runnel::payload_checksum(payload);
  honest.flags &= runnel::kBatchFlagArrivalTimestamps;
  honest.reserved = 0;
  RUNNEL_ASSERT(runnel::verify_payload(honest, payload, limits).is_ok());
  check_stamp(honest, payload);
  return 0;
}
