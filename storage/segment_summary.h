#pragma once
// A segment's summary, saved as NNNN.sum beside the segment once it is
// complete, and its codec. Recovery applies a valid summary instead of
// scanning the segment, so a restart reads only the last segment in full.
// The bytes come from disk, so decoding trusts nothing: any bad length,
// count, magic, segment id or checksum makes it fail (the segment is then
// scanned). Byte layout: storage/FORMAT.md, "Segment summaries".

#include <cstdint>
#include <deque>
#include <map>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "proto/limits.h"

namespace runnel {

// One committed relocation (compaction of segment `source`): the index
// entries of the copies in the destination segment, per stream. Applying it
// drops every index entry into `source` and merges these in by seq_num.
struct Relocation {
  struct Entry {
    uint64_t base_seq;
    uint64_t offset;
    uint64_t first_timestamp;
    uint64_t bytes_before;
    bool operator==(const Entry&) const = default;
  };
  struct Stream {
    uint64_t stream_id = 0;
    std::vector<Entry> entries;
    uint64_t end_seq = 0;         // One past the highest seq_num copied.
    uint64_t last_timestamp = 0;  // Of the record before end_seq.
    uint64_t bytes_end = 0;       // The stream's byte count after the highest copy.
    bool operator==(const Stream&) const = default;
  };
  uint64_t source = 0;
  std::vector<Stream> streams;
  bool operator==(const Relocation&) const = default;
};

// A segment's summary, saved as NNNN.sum once the segment is complete: the
// tail of every stream written in it, the index entries that point into it,
// and its control records in order. Recovery applies it instead of scanning
// the segment, so a restart reads only the last segment in full. A missing
// or damaged summary (checksum) just means a scan.
struct SegmentSummary {
  struct Tail {
    uint64_t next_seq;
    uint64_t last_timestamp;
    uint64_t bytes_total;
    bool operator==(const Tail&) const = default;
  };
  struct Entry {
    uint64_t stream_id;
    uint64_t base_seq;
    uint64_t offset;
    uint64_t first_timestamp;
    uint64_t bytes_before;
    bool operator==(const Entry&) const = default;
  };
  uint64_t batches = 0;
  uint64_t durable_end = 0;
  std::unordered_map<uint64_t, Tail> tails;
  std::vector<Entry> entries;
  std::vector<std::string> controls;
  // Bad byte ranges recovery found in the segment (torn remains voided by a
  // skip marker, corruption): reads must keep jumping over them.
  std::vector<std::pair<uint64_t, uint64_t>> holes;
  // Compactions committed in this segment (their copies are in it).
  std::vector<Relocation> relocations;
  // Idempotent producers' appends in this segment: per (stream, producer id)
  // the last kProducerWindow, oldest first — what recovery hands back so a
  // retry after a restart is answered, not written again.
  struct ProducerAppend {
    uint64_t producer_seq;
    uint64_t start_seq;
    uint64_t end_seq;
    uint64_t first_timestamp;
    uint64_t last_timestamp;
    bool operator==(const ProducerAppend&) const = default;
  };
  std::map<std::pair<uint64_t, uint64_t>, std::deque<ProducerAppend>> producers;

  void note_producer(uint64_t stream_id, uint64_t producer_id, const ProducerAppend& append) {
    auto& window = producers[{stream_id, producer_id}];
    window.push_back(append);
    if (window.size() > kProducerWindow) window.pop_front();
  }
  bool operator==(const SegmentSummary&) const = default;
};

// The summary file's bytes (checksum included).
std::string encode_segment_summary(uint64_t segment_id, const SegmentSummary& summary);
// Fills *summary from `bytes`; false if they are not a whole, intact summary
// of segment `segment_id` (then *summary holds partial data: discard it).
[[nodiscard]] bool decode_segment_summary(std::string_view bytes, uint64_t segment_id, SegmentSummary* summary);

}  // namespace runnel
