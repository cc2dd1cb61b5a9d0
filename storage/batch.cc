#include "storage/batch.h"

#include <lz4.h>

#include <fmt/format.h>
#include <xxhash.h>

#include <algorithm>
#include <cstring>

#include "core/assert.h"

namespace runnel {

namespace {

constexpr size_t kVarintBytesMax = 10;  // ceil(64 / 7): enough for UINT64_MAX.

// The smallest record is four one-byte varints: record_bytes (3), timestamp 0,
// header_count 0, body_len 0. verify_header uses this to reject a header whose
// payload is too small to hold record_count records before reading any of it.
constexpr uint64_t kRecordBytesMin = 4;

// Layout checks: the header is copied with memcpy, so the struct must be the
// byte table in batch.h exactly, with no padding.
static_assert(offsetof(BatchHeader, payload_bytes) == 4);
static_assert(offsetof(BatchHeader, header_checksum) == 8);
static_assert(offsetof(BatchHeader, payload_checksum) == 16);
static_assert(offsetof(BatchHeader, stream_id) == 24);
static_assert(offsetof(BatchHeader, base_seq) == 32);
static_assert(offsetof(BatchHeader, first_timestamp) == 40);
static_assert(offsetof(BatchHeader, last_timestamp) == 48);
static_assert(offsetof(BatchHeader, arrival_timestamp) == 56);
static_assert(offsetof(BatchHeader, record_count) == 64);
static_assert(offsetof(BatchHeader, flags) == 68);
static_assert(offsetof(BatchHeader, reserved) == 70);

constexpr uint16_t kBatchFlagsKnown = kBatchFlagArrivalTimestamps | kBatchFlagLz4 | kBatchFlagRelocated;

uint64_t compute_header_checksum(const BatchHeader& header, uint64_t segment_id) {
  BatchHeader zeroed = header;
  zeroed.header_checksum = 0;
  unsigned char bytes[kBatchHeaderBytes];
  std::memcpy(bytes, &zeroed, sizeof(bytes));
  return XXH3_64bits_withSeed(bytes, sizeof(bytes), segment_id);
}

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

bool get_varint(std::string_view* in, uint64_t* value) {
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

Status decode_header(std::string_view bytes, BatchHeader* header) {
  RUNNEL_ASSERT(header != nullptr);
  if (bytes.size() < kBatchHeaderBytes) {
    return malformed(fmt::format("batch header needs {} bytes, got {}", kBatchHeaderBytes, bytes.size()));
  }
  std::memcpy(header, bytes.data(), kBatchHeaderBytes);
  return Status::ok();
}

void encode_header(const BatchHeader& header, std::string* out) {
  RUNNEL_ASSERT(out != nullptr);
  char bytes[kBatchHeaderBytes];
  std::memcpy(bytes, &header, sizeof(bytes));
  out->append(bytes, sizeof(bytes));
}

void seal_header(BatchHeader* header, uint64_t segment_id) {
  RUNNEL_ASSERT(header != nullptr);
  header->header_checksum = compute_header_checksum(*header, segment_id);
}

Status verify_header(const BatchHeader& header, uint64_t segment_id, const BatchLimits& limits) {
  // Magic and checksum first: until they pass, no other field can be trusted,
  // and a field error on random bytes would misreport corruption as bad input.
  if (header.magic != kBatchMagic) {
    return Status(ErrorCode::kCorrupt,
                  fmt::format("batch magic is {:#010x}, want {:#010x}", header.magic, kBatchMagic));
  }
  const uint64_t checksum = compute_header_checksum(header, segment_id);
  if (header.header_checksum != checksum) {
    return Status(ErrorCode::kCorrupt,
                  fmt::format("batch header checksum mismatch (segment {}): stored {:#018x}, computed {:#018x}",
                              segment_id, header.header_checksum, checksum));
  }
  if (header.reserved != 0) return malformed(fmt::format("batch header reserved field is {}", header.reserved));
  if ((header.flags & ~kBatchFlagsKnown) != 0) {
    return malformed(fmt::format("batch header has unknown flags {:#06x}", header.flags));
  }
  if (header.record_count == 0) return malformed("batch has no records");
  if (header.record_count > limits.records_max) {
    return Status(ErrorCode::kTooLarge,
                  fmt::format("batch has {} records, max {}", header.record_count, limits.records_max));
  }
  if (header.payload_bytes > limits.payload_bytes_max) {
    return Status(ErrorCode::kTooLarge,
                  fmt::format("batch payload is {} bytes, max {}", header.payload_bytes, limits.payload_bytes_max));
  }
  const bool compressed = (header.flags & kBatchFlagLz4) != 0;
  if (compressed && header.payload_bytes <= kLz4PrefixBytes) {
    return malformed(fmt::format("compressed batch payload of {} bytes is too short", header.payload_bytes));
  }
  if (!compressed && header.payload_bytes < uint64_t{header.record_count} * kRecordBytesMin) {
    return malformed(
        fmt::format("batch payload of {} bytes cannot hold {} records", header.payload_bytes, header.record_count));
  }
  if (header.last_timestamp < header.first_timestamp) {
    return malformed(fmt::format("batch last_timestamp {} is before first_timestamp {}", header.last_timestamp,
                                 header.first_timestamp));
  }
  // Both follow from the effective-timestamp rule: every record of an
  // arrival-flagged batch, and the only record of a one-record batch, has
  // first_timestamp as its effective timestamp.
  if ((header.flags & kBatchFlagArrivalTimestamps) != 0 && header.last_timestamp != header.first_timestamp) {
    return malformed("arrival-timestamped batch has last_timestamp != first_timestamp");
  }
  if (header.record_count == 1 && header.last_timestamp != header.first_timestamp) {
    return malformed("one-record batch has last_timestamp != first_timestamp");
  }
  return Status::ok();
}

Status verify_payload(const BatchHeader& header, std::string_view payload, const BatchLimits& limits,
                      PayloadTimestamps* timestamps) {
  if (timestamps != nullptr && (header.flags & kBatchFlagLz4) != 0) return malformed("compressed batch");
  if (payload.size() != header.payload_bytes) {
    return malformed(fmt::format("batch payload is {} bytes, header says {}", payload.size(), header.payload_bytes));
  }
  if ((header.flags & kBatchFlagLz4) != 0) {
    // Stored compressed: check the stored bytes' own checksum here; the raw
    // payload is checked against the client's when it is decompressed.
    if (payload.size() <= kLz4PrefixBytes) return malformed("compressed payload too short");
    uint32_t raw_bytes;
    uint64_t stored_checksum;
    std::memcpy(&raw_bytes, payload.data(), 4);
    std::memcpy(&stored_checksum, payload.data() + 4, 8);
    if (raw_bytes > limits.payload_bytes_max || raw_bytes < uint64_t{header.record_count} * kRecordBytesMin) {
      return malformed(fmt::format("compressed batch claims {} raw bytes", raw_bytes));
    }
    const uint64_t computed = payload_checksum(payload.substr(kLz4PrefixBytes));
    if (computed != stored_checksum) {
      return Status(ErrorCode::kCorrupt, fmt::format("compressed payload checksum mismatch: stored {:#018x}, computed {:#018x}",
                                                     stored_checksum, computed));
    }
    return Status::ok();
  }
  const uint64_t checksum = payload_checksum(payload);
  if (header.payload_checksum != checksum) {
    return Status(ErrorCode::kCorrupt,
                  fmt::format("batch payload checksum mismatch: stored {:#018x}, computed {:#018x}",
                              header.payload_checksum, checksum));
  }
  if (header.record_count == 0) return malformed("batch has no records");
  RecordIterator it(payload, header.record_count, limits);
  RecordView record;
  if (timestamps == nullptr) {
    while (it.next(&record)) {
    }
    return it.status();
  }
  PayloadTimestamps t;
  uint32_t index = 0;
  while (it.next(&record)) {
    if (index == 0) t.first = record.timestamp;
    if (record.timestamp == 0 && !t.any_missing) {
      t.any_missing = true;
      t.first_missing = index;
    }
    t.max_given = std::max(t.max_given, record.timestamp);
    index++;
  }
  if (it.status().is_ok()) *timestamps = t;
  return it.status();
}

Status verify_payload(const BatchHeader& header, std::string_view payload, const BatchLimits& limits) {
  return verify_payload(header, payload, limits, nullptr);
}

bool compress_payload(std::string_view raw, std::string* out) {
  const int bound = LZ4_compressBound(static_cast<int>(raw.size()));
  std::string buffer(kLz4PrefixBytes + static_cast<size_t>(bound), '\0');
  const int n = LZ4_compress_default(raw.data(), buffer.data() + kLz4PrefixBytes, static_cast<int>(raw.size()), bound);
  if (n <= 0 || kLz4PrefixBytes + static_cast<size_t>(n) >= raw.size()) return false;
  buffer.resize(kLz4PrefixBytes + static_cast<size_t>(n));
  const uint32_t raw_bytes = static_cast<uint32_t>(raw.size());
  const uint64_t checksum = payload_checksum(std::string_view(buffer).substr(kLz4PrefixBytes));
  std::memcpy(buffer.data(), &raw_bytes, 4);
  std::memcpy(buffer.data() + 4, &checksum, 8);
  *out = std::move(buffer);
  return true;
}

Result<std::string> decompress_payload(const BatchHeader& header, std::string_view stored, const BatchLimits& limits) {
  if (Status s = verify_payload(header, stored, limits); !s) return s;
  uint32_t raw_bytes;
  std::memcpy(&raw_bytes, stored.data(), 4);
  std::string raw(raw_bytes, '\0');
  const std::string_view block = stored.substr(kLz4PrefixBytes);
  const int n = LZ4_decompress_safe(block.data(), raw.data(), static_cast<int>(block.size()), static_cast<int>(raw_bytes));
  if (n < 0 || static_cast<uint32_t>(n) != raw_bytes) {
    return Status(ErrorCode::kCorrupt, "compressed payload does not decompress to its stated size");
  }
  BatchHeader plain = header;
  plain.flags = static_cast<uint16_t>(plain.flags & ~kBatchFlagLz4);
  plain.payload_bytes = raw_bytes;
  if (Status s = verify_payload(plain, raw, limits); !s) return s;  // The client's checksum, and every record.
  return raw;
}

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

Status effective_timestamps(const BatchHeader& header, std::string_view payload, const BatchLimits& limits,
                            std::vector<uint64_t>* out) {
  RUNNEL_ASSERT(out != nullptr);
  out->clear();
  if (header.record_count == 0) return malformed("batch has no records");
  RecordIterator it(payload, header.record_count, limits);
  if (!it.status().is_ok()) return it.status();
  out->reserve(header.record_count);  // Bounded by records_max, checked above.

  const bool arrival = (header.flags & kBatchFlagArrivalTimestamps) != 0;
  RecordView record;
  while (it.next(&record)) {
    uint64_t eff = header.first_timestamp;
    if (!out->empty() && !arrival) {
      const uint64_t given = record.timestamp != 0 ? record.timestamp : header.arrival_timestamp;
      eff = std::max(given, out->back());
    }
    out->push_back(eff);
  }
  if (!it.status().is_ok()) {
    out->clear();
    return it.status();
  }
  // The header's last_timestamp is what indexes use; it must agree with the
  // records, or a time lookup would land on the wrong batch.
  if (out->back() != header.last_timestamp) {
    const uint64_t derived = out->back();
    out->clear();
    return malformed(fmt::format("batch last_timestamp {} but records give {}", header.last_timestamp, derived));
  }
  return Status::ok();
}

Status stamp_batch(BatchHeader* header, std::string_view payload, uint64_t arrival_ms, uint64_t previous_last_timestamp,
                   TimestampMode mode, const BatchLimits& limits) {
  RUNNEL_ASSERT(header != nullptr);
  if (header->record_count == 0) return malformed("batch has no records");

  // Computed into locals and written at the end, so an error leaves *header as it was.
  uint64_t first = 0;
  uint64_t last = 0;
  uint16_t flags = header->flags & ~kBatchFlagArrivalTimestamps;
  switch (mode) {
    case TimestampMode::kArrival:
      first = std::max(arrival_ms, previous_last_timestamp);
      last = first;
      flags |= kBatchFlagArrivalTimestamps;
      break;
    case TimestampMode::kClientPrefer:
    case TimestampMode::kClientRequire: {
      // Starting from previous_last_timestamp makes eff[0] no lower than the
      // stream's tail; the running max then keeps later records from going back.
      uint64_t eff = previous_last_timestamp;
      uint32_t index = 0;
      RecordIterator it(payload, header->record_count, limits);
      RecordView record;
      while (it.next(&record)) {
        uint64_t given = record.timestamp;
        if (given == 0) {
          if (mode == TimestampMode::kClientRequire) {
            return malformed(fmt::format("record {} has no timestamp and the stream requires one", index));
          }
          given = arrival_ms;
        }
        eff = std::max(given, eff);
        if (index == 0) first = eff;
        index++;
      }
      if (!it.status().is_ok()) return it.status();
      last = eff;
      break;
    }
    default:
      RUNNEL_ASSERT(false && "unknown TimestampMode");
  }

  header->arrival_timestamp = arrival_ms;
  header->first_timestamp = first;
  header->last_timestamp = last;
  header->flags = flags;
  return Status::ok();
}

Status stamp_batch(BatchHeader* header, const PayloadTimestamps& t, uint64_t arrival_ms,
                   uint64_t previous_last_timestamp, TimestampMode mode) {
  RUNNEL_ASSERT(header != nullptr);
  if (header->record_count == 0) return malformed("batch has no records");
  uint64_t first = 0;
  uint64_t last = 0;
  uint16_t flags = header->flags & ~kBatchFlagArrivalTimestamps;
  if (mode == TimestampMode::kArrival) {
    first = last = std::max(arrival_ms, previous_last_timestamp);
    flags |= kBatchFlagArrivalTimestamps;
  } else {
    if (mode == TimestampMode::kClientRequire && t.any_missing) {
      return malformed(fmt::format("record {} has no timestamp and the stream requires one", t.first_missing));
    }
    // The same running maximum as the decoding stamp_batch: eff[0] is the
    // first record's (or arrival) time raised to the stream's last, and the
    // last is the maximum of all of them.
    first = std::max(t.first != 0 ? t.first : arrival_ms, previous_last_timestamp);
    last = std::max({first, t.max_given, t.any_missing ? arrival_ms : 0});
  }
  header->arrival_timestamp = arrival_ms;
  header->first_timestamp = first;
  header->last_timestamp = last;
  header->flags = flags;
  return Status::ok();
}

}  // namespace runnel
