#include "core/metrics.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <iterator>
#include <map>
#include <optional>

#include <fmt/format.h>

#include "core/assert.h"

namespace runnel {

// One labelled series of a family. Exactly one of the value holders is set,
// matching the family's type (a callback gauge sets only `read`). The holders
// are heap objects so that references handed out stay valid however the
// family's vectors grow.
struct MetricsRegistry::Series {
  MetricLabels labels;  // In the order of the first registration.
  std::unique_ptr<Counter> counter;
  std::unique_ptr<Gauge> gauge;
  std::unique_ptr<Histogram> histogram;
  std::function<double()> read;
};

struct MetricsRegistry::Family {
  std::string name;
  std::string help;
  MetricType type = MetricType::kCounter;
  std::vector<Series> series;  // Registration order, which is output order.
  // Key: labels sorted by name, so {a,b} and {b,a} are one series.
  // Value: index into `series`.
  std::map<MetricLabels, size_t> index_by_labels;

  // Returns the series for `labels`, adding an empty one if there is none yet.
  Series& find_or_add(MetricLabels labels, bool* added);
};

namespace {

bool is_name_start(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
bool is_digit(char c) { return c >= '0' && c <= '9'; }

bool valid_metric_name(std::string_view name) {
  if (name.empty()) return false;
  if (!is_name_start(name[0]) && name[0] != ':') return false;
  return std::all_of(name.begin() + 1, name.end(),
                     [](char c) { return is_name_start(c) || is_digit(c) || c == ':'; });
}

bool valid_label_name(std::string_view name) {
  if (name.empty()) return false;
  if (!is_name_start(name[0])) return false;
  return std::all_of(name.begin() + 1, name.end(), [](char c) { return is_name_start(c) || is_digit(c); });
}

// value * unit_to_base, rounded once. For a unit like 1e-6 the plain product
// carries the error of the double 1e-6: 64 * 1e-6 prints as
// 6.4000000000000004e-05. Dividing by the exact integer 1e6 instead rounds
// from the true quotient, so bounds and sums print as people expect.
double to_base_units(double value, double unit_to_base) {
  double inverse = 1.0 / unit_to_base;
  double inverse_rounded = std::round(inverse);
  if (unit_to_base < 1 && std::fabs(inverse - inverse_rounded) <= 1e-9 * inverse_rounded) {
    return value / inverse_rounded;
  }
  return value * unit_to_base;
}

// Checks the labels of a new series and returns its identity key.
MetricLabels label_key(const MetricLabels& labels, MetricType type) {
  for (const auto& [name, value] : labels) {
    RUNNEL_ASSERT(valid_label_name(name));
    // Prometheus reserves "__" names for its own use.
    RUNNEL_ASSERT(!name.starts_with("__"));
    // The renderer adds shard="N" to every series of a shard snapshot.
    RUNNEL_ASSERT(name != "shard");
    // The renderer adds le="B" to every histogram bucket.
    RUNNEL_ASSERT(type != MetricType::kHistogram || name != "le");
  }
  MetricLabels key = labels;
  std::sort(key.begin(), key.end());
  auto same_name = [](const auto& a, const auto& b) { return a.first == b.first; };
  RUNNEL_ASSERT(std::adjacent_find(key.begin(), key.end(), same_name) == key.end());
  return key;
}

}  // namespace

MetricsRegistry::Series& MetricsRegistry::Family::find_or_add(MetricLabels labels, bool* added) {
  MetricLabels key = label_key(labels, type);
  auto it = index_by_labels.find(key);
  if (it != index_by_labels.end()) {
    *added = false;
    return series[it->second];
  }
  *added = true;
  index_by_labels.emplace(std::move(key), series.size());
  Series& s = series.emplace_back();
  s.labels = std::move(labels);
  return s;
}

MetricsRegistry::MetricsRegistry(int shard) : shard_(shard) {}
MetricsRegistry::~MetricsRegistry() = default;

// Linear scan: families are few (tens) and registration is off the hot path;
// the many-series case is served by the per-family map.
MetricsRegistry::Family& MetricsRegistry::family(std::string_view name, std::string_view help,
                                                 MetricType type) {
  RUNNEL_ASSERT(valid_metric_name(name));
  for (auto& f : families_) {
    if (f->name == name) {
      RUNNEL_ASSERT(f->type == type);
      return *f;
    }
  }
  auto f = std::make_unique<Family>();
  f->name = std::string(name);
  f->help = std::string(help);
  f->type = type;
  families_.push_back(std::move(f));
  return *families_.back();
}

Counter& MetricsRegistry::counter(std::string_view name, std::string_view help, MetricLabels labels) {
  bool added = false;
  Series& s = family(name, help, MetricType::kCounter).find_or_add(std::move(labels), &added);
  if (added) s.counter = std::make_unique<Counter>();
  RUNNEL_ASSERT(s.counter != nullptr);  // The series exists as a callback counter.
  return *s.counter;
}

Gauge& MetricsRegistry::gauge(std::string_view name, std::string_view help, MetricLabels labels) {
  bool added = false;
  Series& s = family(name, help, MetricType::kGauge).find_or_add(std::move(labels), &added);
  if (added) s.gauge = std::make_unique<Gauge>();
  // The series may exist as a callback gauge, which has no Gauge to return.
  RUNNEL_ASSERT(s.gauge != nullptr);
  return *s.gauge;
}

Histogram& MetricsRegistry::histogram(std::string_view name, std::string_view help, double unit_to_base,
                                      MetricLabels labels) {
  RUNNEL_ASSERT(std::isfinite(unit_to_base));
  RUNNEL_ASSERT(unit_to_base > 0);
  bool added = false;
  Series& s = family(name, help, MetricType::kHistogram).find_or_add(std::move(labels), &added);
  if (added) s.histogram = std::make_unique<Histogram>(unit_to_base);
  // The same series in two units would record incomparable values.
  RUNNEL_ASSERT(s.histogram->unit_to_base() == unit_to_base);
  return *s.histogram;
}

void MetricsRegistry::gauge_callback(std::string_view name, std::string_view help,
                                     std::function<double()> read, MetricLabels labels) {
  RUNNEL_ASSERT(read != nullptr);
  bool added = false;
  Series& s = family(name, help, MetricType::kGauge).find_or_add(std::move(labels), &added);
  // A plain gauge with these labels already exists: two sources for one series.
  RUNNEL_ASSERT(s.gauge == nullptr);
  s.read = std::move(read);
}

void MetricsRegistry::counter_callback(std::string_view name, std::string_view help,
                                       std::function<double()> read, MetricLabels labels) {
  RUNNEL_ASSERT(read != nullptr);
  bool added = false;
  Series& s = family(name, help, MetricType::kCounter).find_or_add(std::move(labels), &added);
  RUNNEL_ASSERT(s.counter == nullptr);  // A plain counter already owns this series.
  s.read = std::move(read);
}

MetricsSnapshot MetricsRegistry::snapshot() const {
  MetricsSnapshot snap;
  snap.shard = shard_;
  snap.families.reserve(families_.size());
  for (const auto& f : families_) {
    MetricFamily& out = snap.families.emplace_back();
    out.name = f->name;
    out.help = f->help;
    out.type = f->type;
    out.samples.reserve(f->series.size());
    for (const Series& s : f->series) {
      MetricSample& sample = out.samples.emplace_back();
      sample.labels = s.labels;
      switch (f->type) {
        case MetricType::kCounter:
          // Exact up to 2^53; a counter that large has wrapped any rate anyway.
          sample.value = s.counter ? static_cast<double>(s.counter->value()) : s.read();
          break;
        case MetricType::kGauge:
          sample.value = s.gauge ? static_cast<double>(s.gauge->value()) : s.read();
          break;
        case MetricType::kHistogram: {
          const Histogram& h = *s.histogram;
          sample.bucket_counts.resize(Histogram::kBuckets);
          for (int i = 0; i < Histogram::kBuckets; i++) sample.bucket_counts[i] = h.bucket_count(i);
          sample.histogram_sum = to_base_units(static_cast<double>(h.sum()), h.unit_to_base());
          sample.histogram_count = h.count();
          sample.unit_to_base = h.unit_to_base();
          break;
        }
      }
    }
  }
  return snap;
}

// ---------------------------------------------------------------------------
// Process metrics

namespace {

// Reads a whole /proc file. /proc files report size 0, so read until EOF.
std::optional<std::string> read_proc_file(const char* path) {
  int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return std::nullopt;
  std::string text;
  char buf[4096];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      ::close(fd);
      return std::nullopt;
    }
    if (n == 0) break;
    text.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return text;
}

bool parse_u64(std::string_view text, uint64_t* out) {
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), *out);
  return ec == std::errc() && end == text.data() + text.size();
}

// Boot time in seconds since the epoch: the "btime" line of /proc/stat.
bool read_boot_time(uint64_t* out) {
  std::optional<std::string> text = read_proc_file("/proc/stat");
  if (!text) return false;
  std::string_view rest = *text;
  while (!rest.empty()) {
    size_t eol = rest.find('\n');
    std::string_view line = rest.substr(0, eol);
    rest = eol == std::string_view::npos ? std::string_view() : rest.substr(eol + 1);
    if (line.starts_with("btime ")) return parse_u64(line.substr(6), out);
  }
  return false;
}

// Entries of /proc/self/fd, not counting the descriptor used to list them.
std::optional<uint64_t> count_open_fds() {
  DIR* dir = ::opendir("/proc/self/fd");
  if (dir == nullptr) return std::nullopt;
  std::string own_fd = fmt::format("{}", ::dirfd(dir));
  uint64_t count = 0;
  while (dirent* entry = ::readdir(dir)) {
    std::string_view name = entry->d_name;
    if (name == "." || name == ".." || name == own_fd) continue;
    count++;
  }
  ::closedir(dir);
  return count;
}

void add_process_metric(MetricsSnapshot& snap, const char* name, const char* help, MetricType type,
                        double value) {
  MetricFamily& f = snap.families.emplace_back();
  f.name = name;
  f.help = help;
  f.type = type;
  f.samples.emplace_back().value = value;
}

}  // namespace

namespace metrics_internal {

bool parse_proc_stat(std::string_view text, ProcStat* out) {
  size_t comm_end = text.rfind(')');
  if (comm_end == std::string_view::npos) return false;
  std::string_view rest = text.substr(comm_end + 1);
  // Field numbers of proc(5) for the tokens after comm start at 3 (state).
  constexpr int kFirstField = 3;
  constexpr int kLastField = 24;
  std::string_view fields[kLastField + 1];
  int field = kFirstField;
  size_t pos = 0;
  while (field <= kLastField) {
    pos = rest.find_first_not_of(" \n", pos);
    if (pos == std::string_view::npos) return false;
    size_t end = rest.find_first_of(" \n", pos);
    if (end == std::string_view::npos) end = rest.size();
    fields[field++] = rest.substr(pos, end - pos);
    pos = end;
  }
  return parse_u64(fields[14], &out->utime_ticks) && parse_u64(fields[15], &out->stime_ticks) &&
         parse_u64(fields[20], &out->num_threads) && parse_u64(fields[22], &out->starttime_ticks) &&
         parse_u64(fields[23], &out->vsize_bytes) && parse_u64(fields[24], &out->rss_pages);
}

}  // namespace metrics_internal

// A file that cannot be read or parsed leaves its metrics out: the scrape
// still succeeds with the rest.
MetricsSnapshot collect_process_metrics() {
  MetricsSnapshot snap;
  snap.shard = -1;
  long ticks_per_second = ::sysconf(_SC_CLK_TCK);
  long page_bytes = ::sysconf(_SC_PAGESIZE);

  metrics_internal::ProcStat stat;
  std::optional<std::string> stat_text = read_proc_file("/proc/self/stat");
  bool stat_ok = stat_text && metrics_internal::parse_proc_stat(*stat_text, &stat) && ticks_per_second > 0;
  if (stat_ok) {
    double ticks = static_cast<double>(ticks_per_second);
    add_process_metric(snap, "process_cpu_seconds_total", "Total user and system CPU time spent in seconds.",
                       MetricType::kCounter, static_cast<double>(stat.utime_ticks + stat.stime_ticks) / ticks);
    uint64_t boot_time = 0;
    if (read_boot_time(&boot_time)) {
      add_process_metric(snap, "process_start_time_seconds",
                         "Start time of the process since unix epoch in seconds.", MetricType::kGauge,
                         static_cast<double>(boot_time) + static_cast<double>(stat.starttime_ticks) / ticks);
    }
    add_process_metric(snap, "process_threads", "Number of OS threads in the process.", MetricType::kGauge,
                       static_cast<double>(stat.num_threads));
    add_process_metric(snap, "process_virtual_memory_bytes", "Virtual memory size in bytes.",
                       MetricType::kGauge, static_cast<double>(stat.vsize_bytes));
    if (page_bytes > 0) {
      add_process_metric(snap, "process_resident_memory_bytes", "Resident memory size in bytes.",
                         MetricType::kGauge,
                         static_cast<double>(stat.rss_pages) * static_cast<double>(page_bytes));
    }
  }
  if (std::optional<uint64_t> fds = count_open_fds()) {
    add_process_metric(snap, "process_open_fds", "Number of open file descriptors.", MetricType::kGauge,
                       static_cast<double>(*fds));
  }
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) == 0) {
    // RLIM_INFINITY becomes ~1.8e19, as other Prometheus clients report it.
    add_process_metric(snap, "process_max_fds", "Maximum number of open file descriptors.",
                       MetricType::kGauge, static_cast<double>(limit.rlim_cur));
  }
  return snap;
}

// ---------------------------------------------------------------------------
// Prometheus text format

namespace {

using Buffer = fmt::memory_buffer;

std::string_view type_name(MetricType type) {
  switch (type) {
    case MetricType::kCounter: return "counter";
    case MetricType::kGauge: return "gauge";
    case MetricType::kHistogram: return "histogram";
  }
  return "untyped";
}

void append(Buffer& out, std::string_view s) { out.append(s.data(), s.data() + s.size()); }

void append_escaped_help(Buffer& out, std::string_view s) {
  for (char c : s) {
    if (c == '\\') append(out, "\\\\");
    else if (c == '\n') append(out, "\\n");
    else out.push_back(c);
  }
}

void append_escaped_label_value(Buffer& out, std::string_view s) {
  for (char c : s) {
    if (c == '\\') append(out, "\\\\");
    else if (c == '"') append(out, "\\\"");
    else if (c == '\n') append(out, "\\n");
    else out.push_back(c);
  }
}

// Integral values print as integers ("42", not "42.0" or "4.2e+01"), others
// as the shortest string that parses back to the same double.
void append_number(Buffer& out, double v) {
  if (std::isnan(v)) {
    append(out, "NaN");
  } else if (std::isinf(v)) {
    append(out, v > 0 ? "+Inf" : "-Inf");
  } else if (v == std::trunc(v) && std::fabs(v) < 0x1p63) {
    fmt::format_to(std::back_inserter(out), "{}", static_cast<int64_t>(v));
  } else {
    fmt::format_to(std::back_inserter(out), "{}", v);
  }
}

// Upper bound of histogram bucket i in base units: 2^i * unit_to_base.
double bucket_bound(int i, double unit_to_base) { return to_base_units(std::ldexp(1.0, i), unit_to_base); }

// Writes `name{shard="N",labels...,le="B"} ` up to and including the space
// before the value. `le` is empty for non-bucket lines.
void append_series(Buffer& out, std::string_view name, std::string_view suffix, int shard,
                   const MetricLabels& labels, std::string_view le) {
  append(out, name);
  append(out, suffix);
  if (shard < 0 && labels.empty() && le.empty()) {
    out.push_back(' ');
    return;
  }
  out.push_back('{');
  bool first = true;
  auto separate = [&] {
    if (!first) out.push_back(',');
    first = false;
  };
  if (shard >= 0) {
    separate();
    fmt::format_to(std::back_inserter(out), "shard=\"{}\"", shard);
  }
  for (const auto& [label, value] : labels) {
    separate();
    append(out, label);
    append(out, "=\"");
    append_escaped_label_value(out, value);
    out.push_back('"');
  }
  if (!le.empty()) {
    separate();
    append(out, "le=\"");
    append(out, le);
    out.push_back('"');
  }
  append(out, "} ");
}

void append_histogram(Buffer& out, std::string_view name, int shard, const MetricSample& sample) {
  // The last stored bucket is +Inf, whose cumulative count is the total.
  uint64_t cumulative = 0;
  Buffer le;
  size_t finite_buckets = sample.bucket_counts.empty() ? 0 : sample.bucket_counts.size() - 1;
  for (size_t i = 0; i < finite_buckets; i++) {
    cumulative += sample.bucket_counts[i];
    le.clear();
    append_number(le, bucket_bound(static_cast<int>(i), sample.unit_to_base));
    append_series(out, name, "_bucket", shard, sample.labels, std::string_view(le.data(), le.size()));
    fmt::format_to(std::back_inserter(out), "{}\n", cumulative);
  }
  append_series(out, name, "_bucket", shard, sample.labels, "+Inf");
  fmt::format_to(std::back_inserter(out), "{}\n", sample.histogram_count);
  append_series(out, name, "_sum", shard, sample.labels, {});
  append_number(out, sample.histogram_sum);
  out.push_back('\n');
  append_series(out, name, "_count", shard, sample.labels, {});
  fmt::format_to(std::back_inserter(out), "{}\n", sample.histogram_count);
}

}  // namespace

std::string render_prometheus(std::span<const MetricsSnapshot> snapshots) {
  // Group families by name in first-seen order, remembering which snapshot
  // each came from so its shard label can be added.
  struct Group {
    const MetricFamily* first = nullptr;  // Supplies HELP and TYPE.
    std::vector<std::pair<int, const MetricFamily*>> members;  // (shard, family)
  };
  std::vector<Group> groups;
  std::map<std::string_view, size_t> group_by_name;
  for (const MetricsSnapshot& snap : snapshots) {
    for (const MetricFamily& f : snap.families) {
      auto [it, inserted] = group_by_name.emplace(f.name, groups.size());
      if (inserted) groups.push_back(Group{.first = &f, .members = {}});
      Group& g = groups[it->second];
      // Shards register the same metrics the same way; a mismatch is a bug.
      RUNNEL_ASSERT(g.first->type == f.type);
      g.members.emplace_back(snap.shard, &f);
    }
  }

  Buffer out;
  for (const Group& g : groups) {
    std::string_view name = g.first->name;
    append(out, "# HELP ");
    append(out, name);
    out.push_back(' ');
    append_escaped_help(out, g.first->help);
    append(out, "\n# TYPE ");
    append(out, name);
    out.push_back(' ');
    append(out, type_name(g.first->type));
    out.push_back('\n');
    for (const auto& [shard, family] : g.members) {
      for (const MetricSample& sample : family->samples) {
        if (family->type == MetricType::kHistogram) {
          append_histogram(out, name, shard, sample);
        } else {
          append_series(out, name, {}, shard, sample.labels, {});
          append_number(out, sample.value);
          out.push_back('\n');
        }
      }
    }
  }
  return fmt::to_string(out);
}

}  // namespace runnel
