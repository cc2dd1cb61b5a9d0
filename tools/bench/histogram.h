#pragma once
// LatencyHistogram: log-linear buckets over microseconds, like HDR
// histograms — exact below 64, then each power of two split into 32 linear
// sub-buckets, so a recorded value is known to within 1/32 (3%) and the max
// exactly, in fixed memory (16 KiB) whatever the count. Percentiles report the
// upper edge of their bucket, never an optimistic figure. Not thread-safe:
// one per thread, merged at the end.

#include <algorithm>
#include <array>
#include <bit>
#include <cstdint>

namespace runnel::bench {

class LatencyHistogram {
 public:
  static constexpr int kSubBits = 6;  // Values below 64 exact; 32 sub-buckets per power of two above.
  static constexpr int kSub = 1 << kSubBits;
  static constexpr int kPowers = 64 - kSubBits + 1;

  void record(uint64_t us) {
    counts_[index_of(us)]++;
    count_++;
    max_ = std::max(max_, us);
  }
  void merge(const LatencyHistogram& o) {
    for (size_t i = 0; i < counts_.size(); i++) counts_[i] += o.counts_[i];
    count_ += o.count_;
    max_ = std::max(max_, o.max_);
  }
  void clear() { *this = LatencyHistogram(); }
  uint64_t count() const { return count_; }
  uint64_t max() const { return max_; }

  // The smallest value v such that at least `fraction` of the recorded
  // values are <= v (to bucket precision; never above max()).
  uint64_t percentile(double fraction) const {
    if (count_ == 0) return 0;
    const auto rank = static_cast<uint64_t>(std::max(1.0, fraction * static_cast<double>(count_) + 0.5 - 1e-9));
    uint64_t seen = 0;
    for (size_t i = 0; i < counts_.size(); i++) {
      seen += counts_[i];
      if (seen >= rank) return std::min(upper_edge(i), max_);
    }
    return max_;
  }

 private:
  // Values below kSub have buckets of width 1; above, power p (the value's
  // top bit at p + kSubBits - 1) splits into kSub buckets of width 2^p.
  static size_t index_of(uint64_t v) {
    if (v < kSub) return static_cast<size_t>(v);
    const int top = 63 - std::countl_zero(v);  // >= kSubBits
    const int shift = top - kSubBits + 1;
    const uint64_t sub = (v >> shift) - kSub / 2;  // In [0, kSub/2).
    return static_cast<size_t>(kSub + (shift - 1) * (kSub / 2) + static_cast<int>(sub));
  }
  static uint64_t upper_edge(size_t i) {
    if (i < kSub) return i;
    const size_t k = i - kSub;
    const int shift = static_cast<int>(k / (kSub / 2)) + 1;
    const uint64_t sub = k % (kSub / 2) + kSub / 2;
    return ((sub + 1) << shift) - 1;
  }

  std::array<uint64_t, kSub + (kPowers) * (kSub / 2)> counts_{};
  uint64_t count_ = 0;
  uint64_t max_ = 0;
};

}  // namespace runnel::bench
