#include "storage/batch.h"

#include <lz4.h>

#include <fmt/format.h>
#include <xxhash.h>

#include <algorithm>
#include <cstring>

#include "core/assert.h"

namespace runnel {

namespace {

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

constexpr uint16_t kBatchFlagsKnown =
    kBatchFlagArrivalTimestamps | kBatchFlagLz4 | kBatchFlagRelocated | kBatchFlagProducer;

uint64_t compute_header_checksum(const BatchHeader& header, uint64_t segment_id) {
  BatchHeader zeroed = header;
  zeroed.header_checksum = 0;
  unsigned char bytes[kBatchHeaderBytes];
  std::memcpy(bytes, &zeroed, sizeof(bytes));
  return XXH3_64bits_withSeed(bytes, sizeof(bytes), segment_id);
}

Status malformed(std::string message) { return Status(ErrorCode::kInvalidArgument, std::move(message)); }

}  // namespace

void put_producer_tag(const ProducerTag& tag, char* out) {
  std::memcpy(out, &tag.id, 8);
  std::memcpy(out + 8, &tag.seq, 8);
  const uint64_t check = XXH3_64bits(out, 16);
  std::memcpy(out + 16, &check, 8);
}

Status split_producer_tag(const BatchHeader& header, std::string_view stored, ProducerTag* tag,
                          BatchHeader* rest_header, std::string_view* rest) {
  RUNNEL_ASSERT((header.flags & kBatchFlagProducer) != 0);
  if (stored.size() <= kProducerTagBytes || header.payload_bytes <= kProducerTagBytes) {
    return Status(ErrorCode::kCorrupt, "producer-tagged batch payload is too short for its tag");
  }
  uint64_t check;
  std::memcpy(&check, stored.data() + 16, 8);
  if (XXH3_64bits(stored.data(), 16) != check) return Status(ErrorCode::kCorrupt, "producer tag checksum mismatch");
  std::memcpy(&tag->id, stored.data(), 8);
  std::memcpy(&tag->seq, stored.data() + 8, 8);
  *rest_header = header;
  rest_header->flags = static_cast<uint16_t>(header.flags & ~kBatchFlagProducer);
  rest_header->payload_bytes = static_cast<uint32_t>(header.payload_bytes - kProducerTagBytes);
  *rest = stored.substr(kProducerTagBytes);
  return Status::ok();
}

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
  // The records' bytes: the stored payload less a producer tag.
  uint64_t data_bytes = header.payload_bytes;
  if ((header.flags & kBatchFlagProducer) != 0) {
    if (data_bytes <= kProducerTagBytes) return malformed("producer-tagged batch payload is too short for its tag");
    data_bytes -= kProducerTagBytes;
  }
  if (data_bytes > limits.payload_bytes_max) {
    return Status(ErrorCode::kTooLarge,
                  fmt::format("batch payload is {} bytes, max {}", data_bytes, limits.payload_bytes_max));
  }
  const bool compressed = (header.flags & kBatchFlagLz4) != 0;
  if (compressed && data_bytes <= kLz4PrefixBytes) {
    return malformed(fmt::format("compressed batch payload of {} bytes is too short", data_bytes));
  }
  if (!compressed && data_bytes < uint64_t{header.record_count} * kRecordBytesMin) {
    return malformed(fmt::format("batch payload of {} bytes cannot hold {} records", data_bytes, header.record_count));
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
  if ((header.flags & kBatchFlagProducer) != 0) {
    // The tag has a checksum of its own; the rest is checked as any payload.
    ProducerTag tag;
    BatchHeader rest_header;
    std::string_view rest;
    if (payload.size() != header.payload_bytes) {
      return malformed(fmt::format("batch payload is {} bytes, header says {}", payload.size(), header.payload_bytes));
    }
    if (Status s = split_producer_tag(header, payload, &tag, &rest_header, &rest); !s) return s;
    return verify_payload(rest_header, rest, limits, timestamps);
  }
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

Status effective_timestamps(const BatchHeader& header, std::string_view payload, const BatchLimits& limits,
                            std::vector<uint64_t>* out) {
  RUNNEL_ASSERT(out != nullptr);
  out->clear();
  if (header.record_count == 0) return malformed("batch has no records");
  RecordIterator it(payload, header.record_count, limits);
  if (!it.status().is_ok()) return it.status();
  out->reserve(header.record_count);  // Bounded by records_max, checked above.

  EffectiveTimestamps derive(header.first_timestamp, header.arrival_timestamp,
                             (header.flags & kBatchFlagArrivalTimestamps) != 0);
  RecordView record;
  while (it.next(&record)) out->push_back(derive.next(record.timestamp));
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

namespace {

// A client timestamp this far ahead of the server's clock is not taken as
// is: since timestamps never decrease, one record stamped far in the future
// would hold every later record of its stream there (and stop age
// retention). Within it, ordinary clock skew keeps the client's times.
bool in_the_future(uint64_t client_timestamp, uint64_t arrival_ms) {
  return client_timestamp > arrival_ms && client_timestamp - arrival_ms > kFutureTimestampSkewMs;
}

Status future_timestamp(uint64_t client_timestamp, uint64_t arrival_ms) {
  return malformed(fmt::format(
      "a record's timestamp {} is more than {} ms ahead of the server's clock ({}); the stream requires client "
      "timestamps, so it is refused rather than replaced",
      client_timestamp, kFutureTimestampSkewMs, arrival_ms));
}

// The batch stamped as if in arrival mode: what a batch holding a client
// timestamp in the future gets on a client-prefer stream.
void stamp_with_arrival(uint64_t arrival_ms, uint64_t previous_last_timestamp, uint64_t* first, uint64_t* last,
                        uint16_t* flags) {
  *first = *last = std::max(arrival_ms, previous_last_timestamp);
  *flags |= kBatchFlagArrivalTimestamps;
}

}  // namespace

Status stamp_batch(BatchHeader* header, std::string_view payload, uint64_t arrival_ms, uint64_t previous_last_timestamp,
                   Timestamping mode, const BatchLimits& limits) {
  RUNNEL_ASSERT(header != nullptr);
  if (header->record_count == 0) return malformed("batch has no records");

  // Computed into locals and written at the end, so an error leaves *header as it was.
  uint64_t first = 0;
  uint64_t last = 0;
  uint16_t flags = header->flags & ~kBatchFlagArrivalTimestamps;
  switch (mode) {
    case Timestamping::kArrival:
      first = std::max(arrival_ms, previous_last_timestamp);
      last = first;
      flags |= kBatchFlagArrivalTimestamps;
      break;
    case Timestamping::kClientPrefer:
    case Timestamping::kClientRequire: {
      // Starting from previous_last_timestamp makes eff[0] no lower than the
      // stream's tail; the running max then keeps later records from going back.
      uint64_t eff = previous_last_timestamp;
      uint32_t index = 0;
      uint64_t future = 0;  // A client timestamp too far ahead (0: none).
      RecordIterator it(payload, header->record_count, limits);
      RecordView record;
      while (it.next(&record)) {
        uint64_t given = record.timestamp;
        if (future == 0 && in_the_future(given, arrival_ms)) future = given;
        if (given == 0) {
          if (mode == Timestamping::kClientRequire) {
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
      if (future != 0) {
        if (mode == Timestamping::kClientRequire) return future_timestamp(future, arrival_ms);
        stamp_with_arrival(arrival_ms, previous_last_timestamp, &first, &last, &flags);
      }
      break;
    }
    default:
      RUNNEL_ASSERT(false && "unknown Timestamping");
  }

  header->arrival_timestamp = arrival_ms;
  header->first_timestamp = first;
  header->last_timestamp = last;
  header->flags = flags;
  return Status::ok();
}

Status stamp_batch(BatchHeader* header, const PayloadTimestamps& t, uint64_t arrival_ms,
                   uint64_t previous_last_timestamp, Timestamping mode) {
  RUNNEL_ASSERT(header != nullptr);
  if (header->record_count == 0) return malformed("batch has no records");
  uint64_t first = 0;
  uint64_t last = 0;
  uint16_t flags = header->flags & ~kBatchFlagArrivalTimestamps;
  if (mode == Timestamping::kArrival) {
    first = last = std::max(arrival_ms, previous_last_timestamp);
    flags |= kBatchFlagArrivalTimestamps;
  } else {
    if (mode == Timestamping::kClientRequire && t.any_missing) {
      return malformed(fmt::format("record {} has no timestamp and the stream requires one", t.first_missing));
    }
    // The same running maximum as the decoding stamp_batch: eff[0] is the
    // first record's (or arrival) time raised to the stream's last, and the
    // last is the maximum of all of them.
    first = std::max(t.first != 0 ? t.first : arrival_ms, previous_last_timestamp);
    last = std::max({first, t.max_given, t.any_missing ? arrival_ms : 0});
    if (in_the_future(t.max_given, arrival_ms)) {
      if (mode == Timestamping::kClientRequire) return future_timestamp(t.max_given, arrival_ms);
      stamp_with_arrival(arrival_ms, previous_last_timestamp, &first, &last, &flags);
    }
  }
  header->arrival_timestamp = arrival_ms;
  header->first_timestamp = first;
  header->last_timestamp = last;
  header->flags = flags;
  return Status::ok();
}

}  // namespace runnel
