#pragma once
// Records as they travel and are stored: the payload of a batch, shared by
// the storage engine (storage/batch.h adds the stored header), the binary
// protocol and clients. Little-endian; a payload is record_count records,
// each
//   varint record_bytes (bytes of this record after this varint)
//   varint timestamp (client's, ms; 0 = none given)
//   varint header_count, then per header: varint name_len, name, varint value_len, value
//   varint body_len, body
// (varints are unsigned LEB128, at most 10 bytes). A payload is checked end
// to end by its producer's XXH3-64 (payload_checksum).

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/status.h"
#include "proto/limits.h"

namespace runnel {

// The smallest record is four one-byte varints: record_bytes (3), timestamp 0,
// header_count 0, body_len 0. Used to reject a count the bytes cannot hold
// before reading any of them.
inline constexpr uint64_t kRecordBytesMin = 4;

// Limits checked wherever a batch enters (wire, disk).
// The defaults are the absolute maxima (proto/limits.h).
struct BatchLimits {
  uint32_t records_max = kBatchRecordsMax;
  uint32_t payload_bytes_max = kBatchBytesMax;
  uint32_t record_bytes_max = kRecordBytesMax;
  uint32_t headers_per_record_max = 64;
};

// XXH3-64 (seed 0) of a payload: made by the producer, checked by the server
// on append and by readers on every batch they receive.
uint64_t payload_checksum(std::string_view payload);

struct RecordHeader {
  std::string_view name;
  std::string_view value;
};

// A decoded record; views point into the payload.
struct RecordView {
  uint64_t timestamp = 0;  // The client's (0 = none), not the effective one.
  uint32_t header_count = 0;
  std::string_view headers;  // Encoded headers; walk them with HeaderIterator.
  std::string_view body;
};

// Walks the records of a payload. Stops with an error status on malformed
// input, including bytes left over after record_count records. Never reads
// outside `payload`; every view it yields points into it.
class RecordIterator {
 public:
  RecordIterator(std::string_view payload, uint32_t record_count, const BatchLimits& limits);
  // False at the end or on error (then status() is not OK).
  bool next(RecordView* record);
  const Status& status() const { return status_; }

 private:
  std::string_view rest_;
  uint32_t left_;
  BatchLimits limits_;
  Status status_;
};

class HeaderIterator {
 public:
  HeaderIterator(std::string_view encoded, uint32_t count) : rest_(encoded), left_(count) {}
  bool next(RecordHeader* header);  // Assumes the record was validated by RecordIterator.

 private:
  std::string_view rest_;
  uint32_t left_;
};

// Effective timestamps of a batch's records, as storage/FORMAT.md
// ("Payload") derives them so that the payload is never rewritten: the first
// record gets the batch's first_timestamp; each later one its own timestamp
// (or, when it gave none, the batch's arrival_timestamp), never below the
// one before it; in arrival mode (batch flag bit 0) every record gets
// first_timestamp. Call next() once per record, in order.
class EffectiveTimestamps {
 public:
  EffectiveTimestamps(uint64_t first_timestamp, uint64_t arrival_timestamp, bool arrival_mode)
      : first_(first_timestamp), arrival_(arrival_timestamp), arrival_mode_(arrival_mode) {}
  // The next record's effective timestamp, given its own (0 = none).
  uint64_t next(uint64_t record_timestamp);

 private:
  uint64_t first_;
  uint64_t arrival_;
  bool arrival_mode_;
  bool started_ = false;
  uint64_t last_ = 0;
};

// Builds a payload (client side, tests, benchmarks).
class PayloadBuilder {
 public:
  void add(uint64_t timestamp, const std::vector<std::pair<std::string, std::string>>& headers, std::string_view body);
  void add(uint64_t timestamp, std::string_view body) { add(timestamp, {}, body); }
  const std::string& bytes() const { return bytes_; }
  uint32_t record_count() const { return count_; }
  void clear() {
    bytes_.clear();
    count_ = 0;
  }

 private:
  std::string bytes_;
  std::string scratch_;
  uint32_t count_ = 0;
};

// LEB128 helpers, exposed for the codec tests.
void put_varint(std::string* out, uint64_t value);
// get_varint's loop, for varints of two bytes or more.
bool get_varint_multibyte(std::string_view* in, uint64_t* value);
// Reads a varint from the front of *in; false if truncated, longer than 10
// bytes, or above UINT64_MAX (a 10th byte other than 0 or 1). On false, *in is
// unchanged. Non-minimal encodings (e.g. 0x80 0x00 for 0) are accepted.
// Inline for the one-byte case (most lengths and counts): every record of
// every append is walked field by field, and this saved 16% of the server's
// instructions per append of 100-byte records (perf/RESULTS.md).
inline bool get_varint(std::string_view* in, uint64_t* value) {
  if (!in->empty() && static_cast<uint8_t>(in->front()) < 0x80) {
    *value = static_cast<uint8_t>(in->front());
    in->remove_prefix(1);
    return true;
  }
  return get_varint_multibyte(in, value);
}

}  // namespace runnel
