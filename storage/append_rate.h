#pragma once
// A stream's append rate over the last minute, for consumer-lag views (REST
// stream info, `runnel stream get`): records and bytes acknowledged, kept in
// six 10-second buckets, so the window covers the last 50-60 s and is
// scaled to a minute. About 90 bytes, allocated only for streams appended to since
// the shard started. Lives in the log's stream state, on its shard.

#include <cstdint>

namespace runnel {

class AppendRate {
 public:
  static constexpr uint64_t kBucketMs = 10'000;
  static constexpr uint32_t kBuckets = 6;

  // `now_ms` from a monotonic clock, never decreasing between calls.
  void record(uint64_t now_ms, uint64_t records, uint64_t bytes) {
    const uint64_t epoch = now_ms / kBucketMs;
    advance(epoch);
    records_[epoch % kBuckets] += static_cast<uint32_t>(records);
    bytes_[epoch % kBuckets] += bytes;
  }

  struct PerMinute {
    uint64_t records = 0;
    uint64_t bytes = 0;
  };
  // Records and bytes appended over the last minute (the buckets' span,
  // scaled to 60 s).
  PerMinute last_minute(uint64_t now_ms) const {
    const uint64_t epoch = now_ms / kBucketMs;
    PerMinute sum;
    for (uint64_t e = epoch >= kBuckets - 1 ? epoch - (kBuckets - 1) : 0; e <= epoch; e++) {
      if (e > newest_epoch_ || newest_epoch_ - e >= kBuckets) continue;  // Nothing recorded in that bucket.
      sum.records += records_[e % kBuckets];
      sum.bytes += bytes_[e % kBuckets];
    }
    const uint64_t span_ms = (kBuckets - 1) * kBucketMs + now_ms % kBucketMs + 1;
    sum.records = sum.records * 60'000 / span_ms;
    sum.bytes = sum.bytes * 60'000 / span_ms;
    return sum;
  }

 private:
  // Empties the buckets that `epoch` reuses since the newest one written.
  void advance(uint64_t epoch) {
    if (epoch <= newest_epoch_ && started_) return;
    const uint64_t from = started_ ? newest_epoch_ + 1 : epoch;
    for (uint64_t e = from; e <= epoch && e < from + kBuckets; e++) {
      records_[e % kBuckets] = 0;
      bytes_[e % kBuckets] = 0;
    }
    newest_epoch_ = epoch;
    started_ = true;
  }

  uint64_t bytes_[kBuckets] = {};
  uint32_t records_[kBuckets] = {};
  uint64_t newest_epoch_ = 0;
  bool started_ = false;
};

}  // namespace runnel
