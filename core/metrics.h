#pragma once
// Metrics kept per shard without atomics: each shard owns one MetricsRegistry
// and is the only thread that touches it, so an increment on the hot path is a
// plain add. A scrape asks every shard (by message) for a MetricsSnapshot —
// plain data copied on the owning shard — and merges them into Prometheus
// text, labelling every series with shard="N".
//
// Registration allocates and happens at startup or when a long-lived object is
// created; the returned references stay valid for the registry's lifetime.

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace runnel {

using MetricLabels = std::vector<std::pair<std::string, std::string>>;

class Counter {
 public:
  void inc(uint64_t n = 1) { value_ += n; }
  uint64_t value() const { return value_; }

 private:
  uint64_t value_ = 0;
};

class Gauge {
 public:
  void set(int64_t v) { value_ = v; }
  void add(int64_t d) { value_ += d; }
  int64_t value() const { return value_; }

 private:
  int64_t value_ = 0;
};

// Log2 buckets over integer values: bucket i counts values <= 2^i
// (i = 0..kBuckets-2); the last bucket is +Inf. Values are recorded in an
// integer unit (e.g. microseconds) and rendered in the metric's base unit
// (seconds) by multiplying with unit_to_base.
class Histogram {
 public:
  static constexpr int kBuckets = 34;

  explicit Histogram(double unit_to_base = 1.0) : unit_to_base_(unit_to_base) {}

  void record(uint64_t value) {
    counts_[bucket_of(value)]++;
    sum_ += value;
    count_++;
  }

  static int bucket_of(uint64_t value) {
    if (value <= 1) return 0;
    int b = 64 - __builtin_clzll(value - 1);  // ceil(log2(value))
    return b < kBuckets - 1 ? b : kBuckets - 1;
  }

  uint64_t count() const { return count_; }
  uint64_t sum() const { return sum_; }
  uint64_t bucket_count(int i) const { return counts_[i]; }
  double unit_to_base() const { return unit_to_base_; }

 private:
  double unit_to_base_;
  uint64_t counts_[kBuckets] = {};
  uint64_t sum_ = 0;
  uint64_t count_ = 0;
};

enum class MetricType { kCounter, kGauge, kHistogram };

// A copy of one series' value(s), made on the owning shard.
struct MetricSample {
  MetricLabels labels;
  double value = 0;                       // counter / gauge
  std::vector<uint64_t> bucket_counts;    // histogram: per bucket (not cumulative)
  double histogram_sum = 0;               // histogram: in base units
  uint64_t histogram_count = 0;
  double unit_to_base = 1.0;              // histogram: scale for bucket bounds
};

struct MetricFamily {
  std::string name;
  std::string help;
  MetricType type = MetricType::kCounter;
  std::vector<MetricSample> samples;
};

// Plain data: safe to move to another shard inside a message.
struct MetricsSnapshot {
  int shard = -1;  // -1: process-wide metrics (no shard label)
  std::vector<MetricFamily> families;
};

// One per shard, owned by its reactor. Not thread-safe by design.
class MetricsRegistry {
 public:
  // Constructor and destructor are out of line because Family is defined only
  // in metrics.cc and both need its destructor.
  explicit MetricsRegistry(int shard);
  ~MetricsRegistry();
  MetricsRegistry(const MetricsRegistry&) = delete;
  MetricsRegistry& operator=(const MetricsRegistry&) = delete;

  // Registering the same name and labels twice returns the same object;
  // the same name with a different type is a programmer error (asserts).
  // Label order does not matter for identity; output keeps the order of the
  // first registration. Names must match [a-zA-Z_:][a-zA-Z0-9_:]*, label
  // names [a-zA-Z_][a-zA-Z0-9_]* without a leading "__"; "shard" is reserved
  // for the renderer and "le" for histograms; a label name may not repeat.
  Counter& counter(std::string_view name, std::string_view help, MetricLabels labels = {});
  Gauge& gauge(std::string_view name, std::string_view help, MetricLabels labels = {});
  Histogram& histogram(std::string_view name, std::string_view help, double unit_to_base,
                       MetricLabels labels = {});
  // A gauge whose value is read by calling `read` at snapshot time, on this shard.
  // Registering the same name and labels again replaces `read`, so an object
  // recreated in place can re-point its gauge; a plain gauge() of the same
  // name and labels is a programmer error.
  void gauge_callback(std::string_view name, std::string_view help, std::function<double()> read,
                      MetricLabels labels = {});

  // A counter read by calling `read` at snapshot time, for totals kept in
  // another unit (e.g. microseconds shown as seconds). `read` must not decrease.
  void counter_callback(std::string_view name, std::string_view help, std::function<double()> read,
                        MetricLabels labels = {});

  MetricsSnapshot snapshot() const;
  int shard() const { return shard_; }

 private:
  struct Series;
  struct Family;
  Family& family(std::string_view name, std::string_view help, MetricType type);

  int shard_;
  std::vector<std::unique_ptr<Family>> families_;
};

// Process-wide figures from /proc/self: process_cpu_seconds_total,
// process_resident_memory_bytes, process_virtual_memory_bytes,
// process_open_fds, process_max_fds, process_start_time_seconds,
// process_threads.
MetricsSnapshot collect_process_metrics();

namespace metrics_internal {

// Fields of /proc/<pid>/stat used by collect_process_metrics(), numbered as
// in proc(5). Exposed for tests.
struct ProcStat {
  uint64_t utime_ticks = 0;      // (14)
  uint64_t stime_ticks = 0;      // (15)
  uint64_t num_threads = 0;      // (20)
  uint64_t starttime_ticks = 0;  // (22) since boot
  uint64_t vsize_bytes = 0;      // (23)
  uint64_t rss_pages = 0;        // (24)
};

// Parses the text of /proc/<pid>/stat; false if it is malformed. The comm
// field may contain spaces and ')', so fields are counted after the last ')'.
bool parse_proc_stat(std::string_view text, ProcStat* out);

}  // namespace metrics_internal

// Prometheus text exposition format 0.0.4. Families with the same name from
// several snapshots are merged under one HELP/TYPE; shard snapshots add a
// shard="N" label to every series.
std::string render_prometheus(std::span<const MetricsSnapshot> snapshots);

}  // namespace runnel
