#pragma once
// The record content the crash test writes and checks: a pure function of
// (stream, seq_num), so a verifier knows exactly what every record must be.

#include <cstdint>
#include <string>

namespace runnel {

inline std::string crash_body(uint64_t stream, uint64_t seq) {
  std::string body = "s" + std::to_string(stream) + "/" + std::to_string(seq) + ":";
  // Sizes vary from a few bytes to ~3 KiB so batches straddle blocks.
  const size_t extra = static_cast<size_t>((seq * 2654435761u + stream * 40503u) % 3000);
  for (size_t i = 0; i < extra; i++) body.push_back(static_cast<char>('a' + (seq + stream + i) % 26));
  return body;
}

inline uint64_t crash_timestamp(uint64_t stream, uint64_t seq) { return 1'700'000'000'000 + stream * 1000 + seq; }

}  // namespace runnel
