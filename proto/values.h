/* The data model's values, defined once: a stream's and a bucket's settings
 * and descriptions and an append's acknowledgement, as the storage engine
 * keeps them, the protocol carries them (proto/PROTOCOL.md) and librunnel
 * returns them (docs/REFERENCE.md). Installed with librunnel as
 * <runnel/values.h>, so it includes only the standard library and uses an
 * include guard (not #pragma once): the source and the installed copy may
 * meet in one translation unit. A new stream setting is a field here, its
 * encodings (proto/wire.cc, storage/catalog.cc, the JSON in net/rest.cc and
 * tools/runnel/output.cc) and its CLI flag — nothing else repeats the shape.
 */
#ifndef RUNNEL_VALUES_H_
#define RUNNEL_VALUES_H_

#include <cstdint>
#include <string>
#include <string_view>

namespace runnel {

// How a stream's records get their timestamps. The numbers are stored (the
// catalog) and sent (the protocol): never renumber.
enum class Timestamping : uint8_t {
  kClientPrefer = 0,   // The client's timestamp where given, else arrival time.
  kClientRequire = 1,  // Every record must carry a timestamp.
  kArrival = 2,        // Arrival time for every record.
};
inline constexpr uint8_t kTimestampingMax = static_cast<uint8_t>(Timestamping::kArrival);

// The names the admin API's JSON and the CLI use.
inline const char* timestamping_name(Timestamping t) {
  switch (t) {
    case Timestamping::kClientPrefer:
      return "client-prefer";
    case Timestamping::kClientRequire:
      return "client-require";
    case Timestamping::kArrival:
      return "arrival";
  }
  return "unknown";
}
inline bool parse_timestamping(std::string_view name, Timestamping* out) {
  for (Timestamping t : {Timestamping::kClientPrefer, Timestamping::kClientRequire, Timestamping::kArrival}) {
    if (name == timestamping_name(t)) {
      *out = t;
      return true;
    }
  }
  return false;
}

// Per-stream settings.
struct StreamConfig {
  Timestamping timestamping = Timestamping::kClientPrefer;
  uint64_t retention_age_ms = 0;    // 0: no age limit.
  uint64_t retention_bytes = 0;     // 0: no size limit.
  uint64_t delete_on_empty_ms = 0;  // 0: never deleted for being empty.
  bool compress_lz4 = false;

  bool operator==(const StreamConfig&) const = default;
};

// A stream as users see it. The catalog keeps more (an internal id, the
// fencing token itself: storage/catalog.h, StreamEntry); the tail and the
// rates come from the log.
struct StreamInfo {
  std::string bucket{};  // 3..63 of [a-z0-9-], alphanumeric at both ends.
  std::string name{};    // 1..512 bytes of UTF-8 without NUL.
  StreamConfig config{};
  uint64_t created_ms = 0;
  bool sealed = false;
  bool fenced = false;
  uint64_t trim_seq = 0;  // Records below it are gone.
  uint64_t tail = 0;      // The next seq_num to be assigned.
  // Appended over the last minute (records, and bytes as stored): divide by
  // 60 for the per-second rates.
  uint64_t appended_records_last_minute = 0;
  uint64_t appended_bytes_last_minute = 0;

  bool operator==(const StreamInfo&) const = default;
};

// Bucket settings.
struct BucketConfig {
  StreamConfig default_stream_config{};  // What a stream created with the bucket default gets.
  bool create_stream_on_append = false;  // An append to a missing stream creates it.
  bool create_stream_on_read = false;    // A read or subscribe of a missing stream creates it.

  bool operator==(const BucketConfig&) const = default;
};

struct BucketInfo {
  std::string name{};  // 3..63 of [a-z0-9-], alphanumeric at both ends.
  BucketConfig config{};
  uint64_t created_ms = 0;

  bool operator==(const BucketInfo&) const = default;
};

// An acknowledged append: its records hold [start_seq, end_seq).
struct AppendAck {
  uint64_t start_seq = 0;
  uint64_t end_seq = 0;
  uint64_t start_timestamp = 0;  // The first record's effective timestamp.
  uint64_t end_timestamp = 0;    // The last record's.
  uint64_t tail = 0;             // The stream's tail just after this append (= end_seq).

  bool operator==(const AppendAck&) const = default;
};

}  // namespace runnel

#endif /* RUNNEL_VALUES_H_ */
