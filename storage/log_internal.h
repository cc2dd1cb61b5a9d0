#pragma once
// Pieces of the log's on-disk format shared by ShardLog's files
// (log_append.cc, log_read.cc, log_recovery.cc, segment_files.cc, log_compaction.cc, ...): block alignment, aligned buffers
// for O_DIRECT, and the log's own control batches. Internal to storage/.

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <initializer_list>
#include <memory>
#include <string>
#include <string_view>

#include "core/assert.h"
#include "storage/batch.h"
#include "storage/file_io.h"

namespace runnel::log_internal {

inline constexpr uint64_t kBlock = kDmaAlignment;
inline constexpr uint64_t kControlStreamId = 0;  // Batches the log writes for itself.

// File names: a 20-digit segment id, so names sort as ids do.
inline std::string segment_file_name(uint64_t id) {
  std::string name = std::to_string(id);
  return std::string(20 - name.size(), '0') + name + ".seg";
}
inline std::string summary_file_name(uint64_t id) {
  std::string name = std::to_string(id);
  return std::string(20 - name.size(), '0') + name + ".sum";
}

inline uint64_t align_up(uint64_t v) { return (v + kBlock - 1) & ~(kBlock - 1); }
inline uint64_t align_down(uint64_t v) { return v & ~(kBlock - 1); }

// O_DIRECT needs block-aligned memory.
struct AlignedFree {
  void operator()(char* p) const { std::free(p); }
};
using AlignedBytes = std::unique_ptr<char, AlignedFree>;
// For memory that is always written before it is read: its pages are only
// faulted in when first used (page faults cost ~20 µs each on this VM, so
// zeroing big buffers up front made a start take a second).
inline AlignedBytes aligned_alloc_uninitialized(size_t bytes) {
  void* p = nullptr;
  RUNNEL_ASSERT(::posix_memalign(&p, kBlock, bytes) == 0);
  return AlignedBytes(static_cast<char*>(p));
}
inline AlignedBytes aligned_alloc_bytes(size_t bytes) {
  AlignedBytes p = aligned_alloc_uninitialized(bytes);
  std::memset(p.get(), 0, bytes);
  return p;
}

inline bool is_zero(const char* p, size_t n) {
  for (size_t i = 0; i < n; i++) {
    if (p[i] != 0) return false;
  }
  return true;
}

// Control batches (stream 0) hold one record whose body starts with a type byte.
inline constexpr uint8_t kControlSkipMarker = 1;        // Then u64 void_from.
inline constexpr uint8_t kControlUser = 2;              // Then the owner's bytes (the stream catalog's mutations).
inline constexpr uint8_t kControlRelocationBegin = 3;   // Then u64 source segment.
inline constexpr uint8_t kControlRelocationRun = 4;     // Then u64 stream id, u64 bytes_before.
inline constexpr uint8_t kControlRelocationEnd = 5;     // Then u64 source segment.

inline std::string control_payload(uint8_t type, std::string_view bytes) {
  std::string body(1, static_cast<char>(type));
  body.append(bytes);
  PayloadBuilder builder;
  builder.add(0, body);
  return builder.bytes();
}

// A control record of `type` whose bytes are little-endian u64 fields.
inline std::string control_payload_u64(uint8_t type, std::initializer_list<uint64_t> fields) {
  std::string bytes;
  for (uint64_t f : fields) bytes.append(reinterpret_cast<const char*>(&f), 8);
  return control_payload(type, bytes);
}

// The control record's type and the bytes after it, or false.
inline bool parse_control(const BatchHeader& header, std::string_view payload, const BatchLimits& limits,
                          uint8_t* type, std::string_view* bytes) {
  if (header.stream_id != kControlStreamId || header.record_count != 1) return false;
  RecordIterator it(payload, 1, limits);
  RecordView record;
  if (!it.next(&record) || record.body.empty()) return false;
  *type = static_cast<uint8_t>(record.body[0]);
  *bytes = record.body.substr(1);
  return true;
}

// The i-th u64 field of a control record's bytes, or false if too short.
inline bool control_field(std::string_view bytes, size_t i, uint64_t* out) {
  if (bytes.size() < (i + 1) * 8) return false;
  std::memcpy(out, bytes.data() + i * 8, 8);
  return true;
}

}  // namespace runnel::log_internal
