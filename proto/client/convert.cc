#include "proto/client/convert.h"

#include <string>

#include "core/status.h"
#include "proto/records.h"

namespace runnel::client {

// The public codes and the server's come from one table (core/error_codes.h),
// so one name function serves both (it returns views of string literals).
const char* error_code_name(ErrorCode code) {
  return runnel::error_code_name(static_cast<runnel::ErrorCode>(code)).data();
}

std::string Status::to_string() const {
  if (ok()) return "ok";
  return std::string(error_code_name(code_)) + ": " + message_;
}

Status append_records(const wire::Batch& batch, uint64_t from_seq, std::vector<Record>* out) {
  if (payload_checksum(batch.payload) != batch.payload_checksum) {
    return Status(ErrorCode::kCorrupt, "batch at seq_num " + std::to_string(batch.base_seq) +
                                           " does not match its producer's checksum");
  }
  // Generous limits: the server checked the batch when it took it; here only
  // well-formedness matters.
  BatchLimits limits;
  limits.records_max = UINT32_MAX;
  limits.payload_bytes_max = UINT32_MAX;
  limits.record_bytes_max = UINT32_MAX;
  limits.headers_per_record_max = UINT32_MAX;
  const size_t size_before = out->size();
  RecordIterator it(batch.payload, batch.record_count, limits);
  RecordView view;
  uint64_t seq = batch.base_seq;
  EffectiveTimestamps timestamps(batch.first_timestamp, batch.arrival_timestamp, (batch.flags & 1) != 0);
  while (it.next(&view)) {
    const uint64_t timestamp = timestamps.next(view.timestamp);
    if (seq >= from_seq) {
      Record r;
      r.seq_num = seq;
      r.timestamp = timestamp;
      r.body.assign(view.body);
      HeaderIterator headers(view.headers, view.header_count);
      RecordHeader h;
      while (headers.next(&h)) r.headers.push_back(Header{std::string(h.name), std::string(h.value)});
      out->push_back(std::move(r));
    }
    seq++;
  }
  if (!it.status().is_ok()) {
    out->resize(size_before);  // None of a bad batch.
    return Status(ErrorCode::kCorrupt, "batch at seq_num " + std::to_string(batch.base_seq) +
                                           " is malformed: " + it.status().message());
  }
  return Status();
}

}  // namespace runnel::client
