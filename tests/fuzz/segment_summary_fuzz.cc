// libFuzzer target for the segment summary decoder: a .sum file is read
// from disk at every start, so its bytes are untrusted (a crash while it was
// written, a bad disk, a stray file). Any input must be refused or decode
// cleanly, never read outside the input or allocate without bound.
//
// The file ends with an XXH3-64 of the rest, which random bytes never
// match. So the input is decoded twice: as it is (the checksum path), and
// with the right checksum appended (the field decoder, for the segment id
// the input itself names at bytes 4..12). What decodes must encode to bytes
// that decode to the same summary.

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#include "core/assert.h"
#include "core/bytes.h"
#include "proto/records.h"
#include "storage/segment_summary.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace runnel;
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  uint64_t segment_id = 0;
  if (size >= 12) segment_id = load_le<uint64_t>(data + 4);

  SegmentSummary as_is;
  (void)decode_segment_summary(input, segment_id, &as_is);

  std::string sealed(input);
  put_le<uint64_t>(&sealed, payload_checksum(input));
  SegmentSummary summary;
  if (!decode_segment_summary(sealed, segment_id, &summary)) return 0;
  for (const auto& [key, window] : summary.producers) {
    RUNNEL_ASSERT(!window.empty());
    RUNNEL_ASSERT(window.size() <= kProducerWindow);
  }
  const std::string again = encode_segment_summary(segment_id, summary);
  SegmentSummary round_trip;
  RUNNEL_ASSERT(decode_segment_summary(again, segment_id, &round_trip));
  RUNNEL_ASSERT(round_trip == summary);
  // The summary belongs to its segment only.
  SegmentSummary other;
  RUNNEL_ASSERT(!decode_segment_summary(again, segment_id + 1, &other));
  return 0;
}
