#pragma once
// A batch: the unit the log stores, checksums and indexes. One append of one
// stream is one batch: a 72-byte header followed by the records' payload.
// Byte layout (little-endian; storage/FORMAT.md has the prose):
//
//   off size field
//    0   4  magic              "RNB1" (0x31424E52)
//    4   4  payload_bytes      bytes of payload after the header
//    8   8  header_checksum    XXH3-64 of all 72 bytes with this field zeroed, seeded
//                              with the segment id (so a stale batch in a reused file fails)
//   16   8  payload_checksum   XXH3-64 of the payload (made by the client, checked by the server)
//   24   8  stream_id          internal stream id (names are never on disk here)
//   32   8  base_seq           seq_num of the first record
//   40   8  first_timestamp    effective timestamp of the first record (ms)
//   48   8  last_timestamp     effective timestamp of the last record (ms)
//   56   8  arrival_timestamp  server clock when the append arrived (ms)
//   64   4  record_count       >= 1
//   68   2  flags              kBatchFlag*
//   70   2  reserved           0
//
// Payload: record_count records in the encoding of proto/records.h (shared
// with the wire and clients).
//
// Effective timestamps are derived, never rewritten into the payload, so the
// client's payload checksum stays valid end to end:
//   eff[0] = first_timestamp
//   eff[i] = arrival-flagged ? first_timestamp
//                            : max(ts[i] != 0 ? ts[i] : arrival_timestamp, eff[i-1])

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/status.h"
#include "proto/records.h"
#include "proto/values.h"

namespace runnel {

inline constexpr uint32_t kBatchMagic = 0x31424E52;  // "RNB1" in file byte order.
inline constexpr size_t kBatchHeaderBytes = 72;

enum BatchFlags : uint16_t {
  kBatchFlagNone = 0,
  kBatchFlagArrivalTimestamps = 1,  // Every record's timestamp is first_timestamp.
  kBatchFlagLz4 = 2,                // The stored payload is lz4-compressed (see compress_payload).
  kBatchFlagRelocated = 4,          // A copy written by compaction (storage/FORMAT.md); never set by clients.
  kBatchFlagProducer = 8,           // The stored payload starts with a producer tag (see ProducerTag).
};

struct BatchHeader {
  uint32_t magic = kBatchMagic;
  uint32_t payload_bytes = 0;
  uint64_t header_checksum = 0;
  uint64_t payload_checksum = 0;
  uint64_t stream_id = 0;
  uint64_t base_seq = 0;
  uint64_t first_timestamp = 0;
  uint64_t last_timestamp = 0;
  uint64_t arrival_timestamp = 0;
  uint32_t record_count = 0;
  uint16_t flags = 0;
  uint16_t reserved = 0;
};
static_assert(sizeof(BatchHeader) == kBatchHeaderBytes, "on-disk batch header layout changed");
static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "the on-disk format is little-endian");

// An idempotent producer's (id, seq) for one append, kept with its batch on
// disk so that a restart still knows which appends landed (a retry after it
// is answered, not written again). Stored as the first kProducerTagBytes of
// the stored payload of a kBatchFlagProducer batch — u64 id, u64 seq, u64
// XXH3-64 of those 16 bytes — and never shown to readers.
struct ProducerTag {
  uint64_t id = 0;
  uint64_t seq = 0;
  bool operator==(const ProducerTag&) const = default;
};
inline constexpr size_t kProducerTagBytes = 24;
// Writes the tag's kProducerTagBytes at `out`.
void put_producer_tag(const ProducerTag& tag, char* out);
// For a kBatchFlagProducer batch as stored: its tag, and the rest of the
// stored payload with a header that describes it (flag cleared, size less
// the tag). kCorrupt if the tag is cut short or fails its checksum.
Status split_producer_tag(const BatchHeader& header, std::string_view stored, ProducerTag* tag,
                          BatchHeader* rest_header, std::string_view* rest);

// Copies the first kBatchHeaderBytes of `bytes` into *header (memcpy, so the
// bytes need no alignment). Fails with kInvalidArgument if there are fewer.
// Checks nothing else: run verify_header on the result.
Status decode_header(std::string_view bytes, BatchHeader* header);
// Appends the kBatchHeaderBytes on-disk bytes of `header` to *out.
void encode_header(const BatchHeader& header, std::string* out);

// Sets header_checksum for a header that will live in segment `segment_id`.
void seal_header(BatchHeader* header, uint64_t segment_id);

// Checks magic, header checksum, and field sanity (count, sizes, timestamps
// ordered). Does not look at the payload. Errors: kCorrupt for a wrong magic
// or checksum (the bytes are not the batch they claim to be), kTooLarge for a
// count or size above `limits`, kInvalidArgument for any other bad field.
Status verify_header(const BatchHeader& header, uint64_t segment_id, const BatchLimits& limits);

// Checks the payload checksum and that the payload decodes into exactly
// header.record_count well-formed records within the limits. Errors:
// kInvalidArgument if the size differs from payload_bytes or a record is
// malformed, kCorrupt on a checksum mismatch, kTooLarge for a record above
// `limits`. Does not check the header's timestamps against the records.
Status verify_payload(const BatchHeader& header, std::string_view payload, const BatchLimits& limits);

// What stamping needs of the records' own timestamps, gathered by the same
// pass that verifies them, so an append decodes its payload once.
struct PayloadTimestamps {
  uint64_t first = 0;          // The first record's timestamp (0 = none given).
  uint64_t max_given = 0;      // The largest timestamp given.
  bool any_missing = false;    // Some record gave none.
  uint32_t first_missing = 0;  // Index of the first such record.
};
// verify_payload that also fills *timestamps (uncompressed payloads only).
Status verify_payload(const BatchHeader& header, std::string_view payload, const BatchLimits& limits,
                      PayloadTimestamps* timestamps);

// Effective timestamps of a batch's records, per the rule above. `out` gets
// record_count entries. Fails if the payload does not decode, or if the
// header's last_timestamp is not the last record's effective timestamp.
Status effective_timestamps(const BatchHeader& header, std::string_view payload, const BatchLimits& limits,
                            std::vector<uint64_t>* out);

// Client timestamps more than this ahead of the server's clock are not
// taken as they are (see stamp_batch).
inline constexpr uint64_t kFutureTimestampSkewMs = 60'000;

// Server side of an append: sets arrival_timestamp, first/last_timestamp and
// the arrival flag so that effective timestamps never go below
// `previous_last_timestamp` (the stream's last effective timestamp) and never
// decrease. Fails with kInvalidArgument under kClientRequire when a record has
// no timestamp. A batch holding a client timestamp more than
// kFutureTimestampSkewMs ahead of arrival_ms is stamped as in arrival mode
// (every record gets the arrival time) under kClientPrefer, and refused
// (kInvalidArgument) under kClientRequire: one absurd timestamp must not hold
// a stream's later records in the future. The payload must already be
// verified. On error *header is unchanged. On success the header must be
// sealed again (seal_header).
Status stamp_batch(BatchHeader* header, std::string_view payload, uint64_t arrival_ms, uint64_t previous_last_timestamp,
                   Timestamping mode, const BatchLimits& limits);
// The same from timestamps gathered by verify_payload (no second decode).
Status stamp_batch(BatchHeader* header, const PayloadTimestamps& timestamps, uint64_t arrival_ms,
                   uint64_t previous_last_timestamp, Timestamping mode);

// Per-stream compression. A compressed stored payload is
//   u32 raw_bytes | u64 XXH3-64 of the compressed bytes | lz4 block
// and the header keeps payload_checksum = the client's checksum of the raw
// payload, so integrity stays end to end: the stored checksum is checked at
// recovery and on every read, the client's after decompressing.
inline constexpr size_t kLz4PrefixBytes = 12;
// Compresses a verified raw payload into *out (prefix included). False, and
// *out untouched, when compression would not make it smaller.
bool compress_payload(std::string_view raw, std::string* out);
// The raw payload of a kBatchFlagLz4 batch, checked against the client's
// checksum and decoded in full (`header` as stored). kCorrupt otherwise.
Result<std::string> decompress_payload(const BatchHeader& header, std::string_view stored, const BatchLimits& limits);

}  // namespace runnel
