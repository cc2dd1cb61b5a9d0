#include "proto/records.h"

#include <fmt/format.h>
#include <xxhash.h>

#include <algorithm>

namespace runnel {
namespace {

constexpr size_t kVarintBytesMax = 10;  // ceil(64 / 7): enough for UINT64_MAX.


// Reads a length-prefixed string from the front of *in. `len` is compared with
// what is left before anything is sliced, so a lying length cannot reach past
// the end.
bool take_string(std::string_view* in, std::string_view* out) {
  std::string_view rest = *in;
  uint64_t len = 0;
  if (!get_varint(&rest, &len)) return false;
  if (len > rest.size()) return false;
  *out = rest.substr(0, len);
  rest.remove_prefix(len);
  *in = rest;
  return true;
}

Status malformed(std::string message) { return Status(ErrorCode::kInvalidArgument, std::move(message)); }

}  // namespace

void put_varint(std::string* out, uint64_t value) {
  RUNNEL_ASSERT(out != nullptr);
  while (value >= 0x80) {
    out->push_back(static_cast<char>((value & 0x7f) | 0x80));
    value >>= 7;
  }
  out->push_back(static_cast<char>(value));
}

bool get_varint_multibyte(std::string_view* in, uint64_t* value) {
  RUNNEL_ASSERT(in != nullptr);
  RUNNEL_ASSERT(value != nullptr);
  const size_t n = std::min(in->size(), kVarintBytesMax);
  uint64_t result = 0;
  for (size_t i = 0; i < n; i++) {
    const auto byte = static_cast<uint8_t>((*in)[i]);
    // The 10th byte holds only bit 63; anything more would overflow, and a
    // continuation bit there would make the varint longer than 10 bytes.
    if (i == kVarintBytesMax - 1 && byte > 1) return false;
    result |= static_cast<uint64_t>(byte & 0x7f) << (7 * i);
    if ((byte & 0x80) == 0) {
      in->remove_prefix(i + 1);
      *value = result;
      return true;
    }
  }
  return false;  // Truncated: input ended inside the varint.
}

uint64_t payload_checksum(std::string_view payload) { return XXH3_64bits(payload.data(), payload.size()); }


RecordIterator::RecordIterator(std::string_view payload, uint32_t record_count, const BatchLimits& limits)
    : rest_(payload), left_(record_count), limits_(limits) {
  // Checked here so callers that size buffers by record_count are bounded too.
  if (record_count > limits_.records_max) {
    status_ =
        Status(ErrorCode::kTooLarge, fmt::format("batch has {} records, max {}", record_count, limits_.records_max));
  }
}

bool RecordIterator::next(RecordView* record) {
  RUNNEL_ASSERT(record != nullptr);
  if (!status_.is_ok()) return false;
  if (left_ == 0) {
    if (!rest_.empty()) {
      status_ = malformed(fmt::format("{} bytes after the last record", rest_.size()));
      rest_ = {};
    }
    return false;
  }

  // Every failure below stops the walk for good: status_ is set and the next
  // call returns false at the first check.
  uint64_t record_bytes = 0;
  if (!get_varint(&rest_, &record_bytes)) {
    status_ = malformed(fmt::format("record length truncated or invalid, {} records missing", left_));
    return false;
  }
  if (record_bytes > limits_.record_bytes_max) {
    status_ =
        Status(ErrorCode::kTooLarge, fmt::format("record is {} bytes, max {}", record_bytes, limits_.record_bytes_max));
    return false;
  }
  if (record_bytes > rest_.size()) {
    status_ = malformed(fmt::format("record claims {} bytes, {} left", record_bytes, rest_.size()));
    return false;
  }
  std::string_view rec = rest_.substr(0, record_bytes);
  rest_.remove_prefix(record_bytes);

  // From here on every field is read from `rec`, so nothing can reach into the
  // next record, and each length is bounded by record_bytes_max through it.
  uint64_t timestamp = 0;
  if (!get_varint(&rec, &timestamp)) {
    status_ = malformed("record timestamp truncated or invalid");
    return false;
  }
  uint64_t header_count = 0;
  if (!get_varint(&rec, &header_count)) {
    status_ = malformed("record header count truncated or invalid");
    return false;
  }
  if (header_count > limits_.headers_per_record_max) {
    status_ = Status(ErrorCode::kTooLarge,
                     fmt::format("record has {} headers, max {}", header_count, limits_.headers_per_record_max));
    return false;
  }
  const std::string_view headers_start = rec;
  for (uint64_t i = 0; i < header_count; i++) {
    std::string_view name;
    std::string_view value;
    if (!take_string(&rec, &name) || !take_string(&rec, &value)) {
      status_ = malformed(fmt::format("record header {} overruns the record", i));
      return false;
    }
  }
  const std::string_view headers = headers_start.substr(0, headers_start.size() - rec.size());
  uint64_t body_len = 0;
  if (!get_varint(&rec, &body_len)) {
    status_ = malformed("record body length truncated or invalid");
    return false;
  }
  // The body must end the record exactly: record_bytes is the sum of the
  // fields, so slack or overrun means the encoder and the length disagree.
  if (body_len != rec.size()) {
    status_ = malformed(fmt::format("record body claims {} bytes, record has {} left", body_len, rec.size()));
    return false;
  }

  record->timestamp = timestamp;
  record->header_count = static_cast<uint32_t>(header_count);  // <= headers_per_record_max, a uint32_t.
  record->headers = headers;
  record->body = rec;
  left_--;
  return true;
}

bool HeaderIterator::next(RecordHeader* header) {
  RUNNEL_ASSERT(header != nullptr);
  if (left_ == 0) return false;
  // RecordIterator validated these bytes; failing here is a caller bug (views
  // from another record, or a count that does not match), so crash rather
  // than read out of bounds.
  const bool name_ok = take_string(&rest_, &header->name);
  RUNNEL_ASSERT(name_ok);
  const bool value_ok = take_string(&rest_, &header->value);
  RUNNEL_ASSERT(value_ok);
  left_--;
  return true;
}

uint64_t EffectiveTimestamps::next(uint64_t record_timestamp) {
  if (!started_ || arrival_mode_) {
    started_ = true;
    last_ = first_;
  } else {
    last_ = std::max(record_timestamp != 0 ? record_timestamp : arrival_, last_);
  }
  return last_;
}

void PayloadBuilder::add(uint64_t timestamp, const std::vector<std::pair<std::string, std::string>>& headers,
                         std::string_view body) {
  RUNNEL_ASSERT(count_ < UINT32_MAX);
  // The record is encoded into scratch_ first because its length prefix comes
  // before it. No limits are enforced here: tests build oversized batches on
  // purpose, and verify_payload is where limits are checked.
  scratch_.clear();
  put_varint(&scratch_, timestamp);
  put_varint(&scratch_, headers.size());
  for (const auto& [name, value] : headers) {
    put_varint(&scratch_, name.size());
    scratch_ += name;
    put_varint(&scratch_, value.size());
    scratch_ += value;
  }
  put_varint(&scratch_, body.size());
  scratch_ += body;
  put_varint(&bytes_, scratch_.size());
  bytes_ += scratch_;
  count_++;
}

}  // namespace runnel
