#include "core/metrics.h"

#include <gtest/gtest.h>

#include <cmath>
#include <ctime>
#include <limits>
#include <string>
#include <string_view>
#include <vector>

namespace runnel {
namespace {

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    lines.push_back(text.substr(start, end - start));
    start = end + 1;
  }
  return lines;
}

bool has_line(const std::string& text, std::string_view line) {
  for (const std::string& l : lines_of(text)) {
    if (l == line) return true;
  }
  return false;
}

int count_lines_starting(const std::string& text, std::string_view prefix) {
  int n = 0;
  for (const std::string& l : lines_of(text)) {
    if (std::string_view(l).starts_with(prefix)) n++;
  }
  return n;
}

const MetricFamily* find_family(const MetricsSnapshot& snap, std::string_view name) {
  for (const MetricFamily& f : snap.families) {
    if (f.name == name) return &f;
  }
  return nullptr;
}

double process_value(const MetricsSnapshot& snap, std::string_view name) {
  const MetricFamily* f = find_family(snap, name);
  if (f == nullptr || f->samples.size() != 1) return std::nan("");
  return f->samples[0].value;
}

// Hand-written matchers for the exposition grammar. std::regex would be
// shorter, but GCC 12 reports false -Wmaybe-uninitialized inside <regex> under
// the asan-ubsan preset (-O1, sanitizers, -Werror).
class LineMatcher {
 public:
  explicit LineMatcher(std::string_view line) : rest_(line) {}

  // name{label="value",...} value
  bool sample() {
    if (!metric_name()) return false;
    if (take('{')) {
      do {
        if (!label()) return false;
      } while (take(','));
      if (!take('}')) return false;
    }
    return take(' ') && number() && rest_.empty();
  }

  // # HELP name text  |  # TYPE name counter|gauge|histogram
  bool comment() {
    if (take_word("# HELP ")) {
      if (!metric_name() || !take(' ')) return false;
      // Raw newlines cannot occur (the line split removed them); a backslash
      // must start \\ or \n.
      for (size_t i = 0; i < rest_.size(); i++) {
        if (rest_[i] != '\\') continue;
        if (i + 1 == rest_.size() || (rest_[i + 1] != '\\' && rest_[i + 1] != 'n')) return false;
        i++;
      }
      return true;
    }
    if (!take_word("# TYPE ") || !metric_name() || !take(' ')) return false;
    return rest_ == "counter" || rest_ == "gauge" || rest_ == "histogram";
  }

 private:
  static bool is_start(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
  static bool is_digit(char c) { return c >= '0' && c <= '9'; }

  bool take(char c) {
    if (rest_.empty() || rest_[0] != c) return false;
    rest_.remove_prefix(1);
    return true;
  }
  bool take_word(std::string_view w) {
    if (!rest_.starts_with(w)) return false;
    rest_.remove_prefix(w.size());
    return true;
  }
  size_t digits() {
    size_t n = 0;
    while (n < rest_.size() && is_digit(rest_[n])) n++;
    rest_.remove_prefix(n);
    return n;
  }
  bool metric_name() {
    if (rest_.empty() || !(is_start(rest_[0]) || rest_[0] == ':')) return false;
    size_t n = 1;
    while (n < rest_.size() && (is_start(rest_[n]) || is_digit(rest_[n]) || rest_[n] == ':')) n++;
    rest_.remove_prefix(n);
    return true;
  }
  bool label() {
    if (rest_.empty() || !is_start(rest_[0])) return false;
    size_t n = 1;
    while (n < rest_.size() && (is_start(rest_[n]) || is_digit(rest_[n]))) n++;
    rest_.remove_prefix(n);
    if (!take('=') || !take('"')) return false;
    while (!rest_.empty() && rest_[0] != '"') {
      if (take('\\')) {
        if (!take('\\') && !take('"') && !take('n')) return false;
      } else {
        rest_.remove_prefix(1);
      }
    }
    return take('"');
  }
  // NaN | +Inf | -Inf | -?digits(.digits)?(e[+-]digits)?
  bool number() {
    if (take_word("NaN") || take_word("+Inf") || take_word("-Inf")) return true;
    take('-');
    if (digits() == 0) return false;
    if (take('.') && digits() == 0) return false;
    if (take('e')) {
      if (!take('+') && !take('-')) return false;
      if (digits() == 0) return false;
    }
    return true;
  }

  std::string_view rest_;
};

bool is_sample_line(std::string_view line) { return LineMatcher(line).sample(); }
bool is_comment_line(std::string_view line) { return LineMatcher(line).comment(); }

std::string render_one(const MetricsSnapshot& snap) { return render_prometheus(std::span(&snap, 1)); }

// ---------------------------------------------------------------------------
// Metric objects

TEST(Metrics, CounterIncrementsByOneAndByN) {
  Counter c;
  EXPECT_EQ(c.value(), 0u);
  c.inc();
  c.inc(41);
  EXPECT_EQ(c.value(), 42u);
}

TEST(Metrics, GaugeSetsAndAddsNegative) {
  Gauge g;
  g.set(10);
  g.add(-15);
  EXPECT_EQ(g.value(), -5);
}

TEST(Metrics, HistogramRecordsCountSumAndBuckets) {
  Histogram h(1e-6);
  h.record(1);
  h.record(3);
  h.record(4);
  EXPECT_EQ(h.count(), 3u);
  EXPECT_EQ(h.sum(), 8u);
  EXPECT_EQ(h.bucket_count(0), 1u);
  EXPECT_EQ(h.bucket_count(2), 2u);
  EXPECT_EQ(h.unit_to_base(), 1e-6);
}

TEST(Metrics, BucketOfBoundaries) {
  EXPECT_EQ(Histogram::bucket_of(0), 0);
  EXPECT_EQ(Histogram::bucket_of(1), 0);
  EXPECT_EQ(Histogram::bucket_of(2), 1);
  EXPECT_EQ(Histogram::bucket_of(3), 2);
  EXPECT_EQ(Histogram::bucket_of(4), 2);
  EXPECT_EQ(Histogram::bucket_of(5), 3);
  EXPECT_EQ(Histogram::bucket_of(uint64_t{1} << 32), 32);
  // Above the last finite bound (2^32) everything lands in +Inf.
  EXPECT_EQ(Histogram::bucket_of((uint64_t{1} << 32) + 1), Histogram::kBuckets - 1);
  EXPECT_EQ(Histogram::bucket_of(UINT64_MAX), Histogram::kBuckets - 1);
}

// ---------------------------------------------------------------------------
// Registration

TEST(Metrics, ReRegistrationReturnsSameObject) {
  MetricsRegistry reg(0);
  Counter& c1 = reg.counter("requests_total", "Requests.");
  Counter& c2 = reg.counter("requests_total", "Requests.");
  EXPECT_EQ(&c1, &c2);
  Gauge& g1 = reg.gauge("depth", "Depth.");
  EXPECT_EQ(&g1, &reg.gauge("depth", "Depth."));
  Histogram& h1 = reg.histogram("latency_seconds", "Latency.", 1e-6);
  EXPECT_EQ(&h1, &reg.histogram("latency_seconds", "Latency.", 1e-6));
}

TEST(Metrics, ObjectsKeepAddressesAsSeriesGrow) {
  MetricsRegistry reg(0);
  Counter& first = reg.counter("ops_total", "Ops.", {{"op", "0"}});
  first.inc(7);
  for (int i = 1; i < 1000; i++) reg.counter("ops_total", "Ops.", {{"op", std::to_string(i)}});
  EXPECT_EQ(&first, &reg.counter("ops_total", "Ops.", {{"op", "0"}}));
  EXPECT_EQ(first.value(), 7u);
}

TEST(Metrics, DifferentLabelsAreDifferentSeries) {
  MetricsRegistry reg(0);
  Counter& a = reg.counter("ops_total", "Ops.", {{"op", "append"}});
  Counter& r = reg.counter("ops_total", "Ops.", {{"op", "read"}});
  EXPECT_NE(&a, &r);
  a.inc(2);
  r.inc(3);
  MetricsSnapshot snap = reg.snapshot();
  ASSERT_EQ(snap.families.size(), 1u);
  ASSERT_EQ(snap.families[0].samples.size(), 2u);
  EXPECT_EQ(snap.families[0].samples[0].labels, (MetricLabels{{"op", "append"}}));
  EXPECT_EQ(snap.families[0].samples[0].value, 2);
  EXPECT_EQ(snap.families[0].samples[1].labels, (MetricLabels{{"op", "read"}}));
  EXPECT_EQ(snap.families[0].samples[1].value, 3);
}

TEST(Metrics, LabelOrderDoesNotChangeIdentity) {
  MetricsRegistry reg(0);
  Counter& c1 = reg.counter("ops_total", "Ops.", {{"a", "1"}, {"b", "2"}});
  Counter& c2 = reg.counter("ops_total", "Ops.", {{"b", "2"}, {"a", "1"}});
  EXPECT_EQ(&c1, &c2);
}

TEST(Metrics, AcceptsNamesWithColonsAndUnderscores) {
  MetricsRegistry reg(0);
  reg.counter("_a:b_c:1", "Odd but valid.", {{"_x1", "v"}});
  EXPECT_EQ(reg.snapshot().families.size(), 1u);
}

TEST(MetricsDeathTest, SameNameDifferentTypeAsserts) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  MetricsRegistry reg(0);
  reg.counter("thing", "A thing.");
  EXPECT_DEATH(reg.gauge("thing", "A thing."), "assertion failed");
}

TEST(MetricsDeathTest, InvalidMetricNameAsserts) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  MetricsRegistry reg(0);
  EXPECT_DEATH(reg.counter("", "Empty."), "assertion failed");
  EXPECT_DEATH(reg.counter("1abc", "Leading digit."), "assertion failed");
  EXPECT_DEATH(reg.counter("a-b", "Dash."), "assertion failed");
  EXPECT_DEATH(reg.counter("a b", "Space."), "assertion failed");
}

TEST(MetricsDeathTest, InvalidLabelNameAsserts) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  MetricsRegistry reg(0);
  EXPECT_DEATH(reg.counter("c", "C.", {{"", "v"}}), "assertion failed");
  EXPECT_DEATH(reg.counter("c", "C.", {{"a:b", "v"}}), "assertion failed");
  EXPECT_DEATH(reg.counter("c", "C.", {{"9a", "v"}}), "assertion failed");
  EXPECT_DEATH(reg.counter("c", "C.", {{"__reserved", "v"}}), "assertion failed");
}

TEST(MetricsDeathTest, ReservedAndRepeatedLabelNamesAssert) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  MetricsRegistry reg(0);
  EXPECT_DEATH(reg.counter("c", "C.", {{"shard", "1"}}), "assertion failed");
  EXPECT_DEATH(reg.histogram("h", "H.", 1.0, {{"le", "1"}}), "assertion failed");
  EXPECT_DEATH(reg.counter("c", "C.", {{"a", "1"}, {"a", "2"}}), "assertion failed");
}

TEST(MetricsDeathTest, HistogramWithDifferentUnitAsserts) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  MetricsRegistry reg(0);
  reg.histogram("h", "H.", 1e-6);
  EXPECT_DEATH(reg.histogram("h", "H.", 1e-3), "assertion failed");
}

TEST(MetricsDeathTest, PlainGaugeOverCallbackGaugeAsserts) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  MetricsRegistry reg(0);
  reg.gauge_callback("g", "G.", [] { return 1.0; });
  EXPECT_DEATH(reg.gauge("g", "G."), "assertion failed");
}

// ---------------------------------------------------------------------------
// Snapshots

TEST(Metrics, SnapshotCopiesShardTypesAndValues) {
  MetricsRegistry reg(3);
  reg.counter("c_total", "C help.").inc(5);
  reg.gauge("g", "G help.").set(-2);
  MetricsSnapshot snap = reg.snapshot();
  EXPECT_EQ(snap.shard, 3);
  ASSERT_EQ(snap.families.size(), 2u);
  EXPECT_EQ(snap.families[0].name, "c_total");
  EXPECT_EQ(snap.families[0].help, "C help.");
  EXPECT_EQ(snap.families[0].type, MetricType::kCounter);
  EXPECT_EQ(snap.families[0].samples[0].value, 5);
  EXPECT_EQ(snap.families[1].type, MetricType::kGauge);
  EXPECT_EQ(snap.families[1].samples[0].value, -2);
}

TEST(Metrics, SnapshotKeepsRegistrationOrder) {
  MetricsRegistry reg(0);
  reg.gauge("zeta", "Z.");
  reg.counter("alpha_total", "A.");
  reg.gauge("mid", "M.");
  MetricsSnapshot snap = reg.snapshot();
  ASSERT_EQ(snap.families.size(), 3u);
  EXPECT_EQ(snap.families[0].name, "zeta");
  EXPECT_EQ(snap.families[1].name, "alpha_total");
  EXPECT_EQ(snap.families[2].name, "mid");
}

TEST(Metrics, SnapshotIsIndependentOfLaterIncrements) {
  MetricsRegistry reg(0);
  Counter& c = reg.counter("c_total", "C.");
  Histogram& h = reg.histogram("h_seconds", "H.", 1e-3);
  c.inc(1);
  h.record(10);
  MetricsSnapshot snap = reg.snapshot();
  c.inc(100);
  h.record(20);
  EXPECT_EQ(snap.families[0].samples[0].value, 1);
  EXPECT_EQ(snap.families[1].samples[0].histogram_count, 1u);
}

TEST(Metrics, SnapshotCopiesHistogramInBaseUnits) {
  MetricsRegistry reg(0);
  Histogram& h = reg.histogram("h_seconds", "H.", 1e-3);
  h.record(1500);  // 1.5 s in ms
  h.record(500);
  MetricsSnapshot snap = reg.snapshot();
  const MetricSample& s = snap.families[0].samples[0];
  ASSERT_EQ(s.bucket_counts.size(), static_cast<size_t>(Histogram::kBuckets));
  EXPECT_EQ(s.bucket_counts[Histogram::bucket_of(1500)], 1u);
  EXPECT_EQ(s.bucket_counts[Histogram::bucket_of(500)], 1u);
  EXPECT_DOUBLE_EQ(s.histogram_sum, 2.0);
  EXPECT_EQ(s.histogram_count, 2u);
  EXPECT_EQ(s.unit_to_base, 1e-3);
}

TEST(Metrics, GaugeCallbackEvaluatedAtSnapshot) {
  MetricsRegistry reg(0);
  double level = 1.5;
  int calls = 0;
  reg.gauge_callback("level", "Level.", [&] {
    calls++;
    return level;
  });
  EXPECT_EQ(calls, 0);
  level = 2.5;
  MetricsSnapshot snap = reg.snapshot();
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(snap.families[0].type, MetricType::kGauge);
  EXPECT_EQ(snap.families[0].samples[0].value, 2.5);
}

TEST(Metrics, GaugeCallbackReRegistrationReplacesReader) {
  MetricsRegistry reg(0);
  reg.gauge_callback("level", "Level.", [] { return 1.0; }, {{"k", "v"}});
  reg.gauge_callback("level", "Level.", [] { return 2.0; }, {{"k", "v"}});
  MetricsSnapshot snap = reg.snapshot();
  ASSERT_EQ(snap.families[0].samples.size(), 1u);
  EXPECT_EQ(snap.families[0].samples[0].value, 2.0);
}

// ---------------------------------------------------------------------------
// Rendering

TEST(Metrics, RenderMergesHelpAndTypeAcrossShards) {
  MetricsRegistry r0(0);
  MetricsRegistry r1(1);
  r0.counter("appends_total", "Appends.").inc(4);
  r1.counter("appends_total", "Appends.").inc(6);
  std::vector<MetricsSnapshot> snaps = {r0.snapshot(), r1.snapshot()};
  std::string text = render_prometheus(snaps);
  EXPECT_EQ(count_lines_starting(text, "# HELP appends_total "), 1);
  EXPECT_EQ(count_lines_starting(text, "# TYPE appends_total "), 1);
  EXPECT_TRUE(has_line(text, "# TYPE appends_total counter"));
  EXPECT_TRUE(has_line(text, "appends_total{shard=\"0\"} 4"));
  EXPECT_TRUE(has_line(text, "appends_total{shard=\"1\"} 6"));
}

TEST(Metrics, RenderPutsFamiliesInFirstSeenOrder) {
  MetricsRegistry r0(0);
  MetricsRegistry r1(1);
  r0.gauge("b", "B.");
  r1.gauge("a", "A.");
  r1.gauge("b", "B.");
  std::vector<MetricsSnapshot> snaps = {r0.snapshot(), r1.snapshot()};
  EXPECT_EQ(render_prometheus(snaps),
            "# HELP b B.\n# TYPE b gauge\nb{shard=\"0\"} 0\nb{shard=\"1\"} 0\n"
            "# HELP a A.\n# TYPE a gauge\na{shard=\"1\"} 0\n");
}

TEST(Metrics, RenderPutsShardLabelFirst) {
  MetricsRegistry reg(2);
  reg.gauge("g", "G.", {{"stream", "s1"}}).set(9);
  EXPECT_TRUE(has_line(render_one(reg.snapshot()), "g{shard=\"2\",stream=\"s1\"} 9"));
}

TEST(Metrics, RenderOmitsShardLabelForProcessWideSnapshot) {
  MetricsRegistry reg(-1);
  reg.gauge("g", "G.").set(1);
  reg.gauge("l", "L.", {{"k", "v"}}).set(2);
  std::string text = render_one(reg.snapshot());
  EXPECT_TRUE(has_line(text, "g 1"));
  EXPECT_TRUE(has_line(text, "l{k=\"v\"} 2"));
}

TEST(Metrics, RenderHistogramBucketsAreCumulativeAndInfEqualsCount) {
  MetricsRegistry reg(0);
  Histogram& h = reg.histogram("size_bytes", "Sizes.", 1.0);
  h.record(1);
  h.record(2);
  h.record(2);
  h.record(100);
  h.record(UINT64_MAX);
  std::string text = render_one(reg.snapshot());
  EXPECT_EQ(count_lines_starting(text, "size_bytes_bucket{"), Histogram::kBuckets);
  EXPECT_TRUE(has_line(text, "size_bytes_bucket{shard=\"0\",le=\"1\"} 1"));
  EXPECT_TRUE(has_line(text, "size_bytes_bucket{shard=\"0\",le=\"2\"} 3"));
  EXPECT_TRUE(has_line(text, "size_bytes_bucket{shard=\"0\",le=\"64\"} 3"));
  EXPECT_TRUE(has_line(text, "size_bytes_bucket{shard=\"0\",le=\"128\"} 4"));
  EXPECT_TRUE(has_line(text, "size_bytes_bucket{shard=\"0\",le=\"4294967296\"} 4"));
  EXPECT_TRUE(has_line(text, "size_bytes_bucket{shard=\"0\",le=\"+Inf\"} 5"));
  EXPECT_TRUE(has_line(text, "size_bytes_count{shard=\"0\"} 5"));
  EXPECT_EQ(count_lines_starting(text, "size_bytes_sum{shard=\"0\"} "), 1);
}

TEST(Metrics, RenderHistogramBoundsInBaseUnits) {
  MetricsRegistry reg(-1);
  Histogram& h = reg.histogram("latency_seconds", "Latency.", 1e-6, {{"op", "append"}});
  h.record(3);       // 3 us
  h.record(250000);  // 250 ms
  std::string text = render_one(reg.snapshot());
  EXPECT_TRUE(has_line(text, "latency_seconds_bucket{op=\"append\",le=\"1e-06\"} 0"));
  EXPECT_TRUE(has_line(text, "latency_seconds_bucket{op=\"append\",le=\"4e-06\"} 1"));
  // 64 * 1e-6 as a plain product would print as 6.4000000000000004e-05.
  EXPECT_TRUE(has_line(text, "latency_seconds_bucket{op=\"append\",le=\"6.4e-05\"} 1"));
  EXPECT_TRUE(has_line(text, "latency_seconds_bucket{op=\"append\",le=\"0.262144\"} 2"));
  EXPECT_TRUE(has_line(text, "latency_seconds_sum{op=\"append\"} 0.250003"));
}

TEST(Metrics, HistogramSumInBaseUnitsPrintsCleanly) {
  MetricsRegistry reg(-1);
  Histogram& h = reg.histogram("flush_seconds", "Flush.", 1e-6);
  h.record(700);
  h.record(3000);
  // 3700 * 1e-6 as a plain product would print as 0.0036999999999999997.
  EXPECT_TRUE(has_line(render_one(reg.snapshot()), "flush_seconds_sum 0.0037"));
}

TEST(Metrics, RenderEscapesLabelValues) {
  MetricsRegistry reg(-1);
  reg.gauge("g", "G.", {{"path", "a\\b\"c\nd"}}).set(1);
  EXPECT_TRUE(has_line(render_one(reg.snapshot()), R"(g{path="a\\b\"c\nd"} 1)"));
}

TEST(Metrics, RenderEscapesHelp) {
  MetricsRegistry reg(-1);
  reg.gauge("g", "Back\\slash \"quoted\"\nsecond line.");
  // Quotes stay as they are in HELP; only backslash and newline are escaped.
  EXPECT_TRUE(has_line(render_one(reg.snapshot()), R"(# HELP g Back\\slash "quoted"\nsecond line.)"));
}

TEST(Metrics, RenderFormatsNumbers) {
  MetricsSnapshot snap;
  MetricFamily& f = snap.families.emplace_back();
  f.name = "v";
  f.type = MetricType::kGauge;
  const double values[] = {0.0,
                           -3.0,
                           1e15,
                           0.1,
                           1.5e300,
                           std::numeric_limits<double>::quiet_NaN(),
                           std::numeric_limits<double>::infinity(),
                           -std::numeric_limits<double>::infinity()};
  for (double v : values) {
    MetricSample& s = f.samples.emplace_back();
    s.value = v;
  }
  std::vector<std::string> lines = lines_of(render_one(snap));
  ASSERT_EQ(lines.size(), 2u + std::size(values));
  EXPECT_EQ(lines[2], "v 0");
  EXPECT_EQ(lines[3], "v -3");
  EXPECT_EQ(lines[4], "v 1000000000000000");
  EXPECT_EQ(lines[5], "v 0.1");
  EXPECT_EQ(lines[6], "v 1.5e+300");
  EXPECT_EQ(lines[7], "v NaN");
  EXPECT_EQ(lines[8], "v +Inf");
  EXPECT_EQ(lines[9], "v -Inf");
}

TEST(Metrics, RenderEmptyInputIsEmpty) { EXPECT_EQ(render_prometheus({}), ""); }

// The matcher must reject what it exists to catch, or the test below proves nothing.
TEST(Metrics, LineMatcherRejectsMalformedLines) {
  EXPECT_TRUE(is_sample_line(R"(a_b:c{x="1",y="q\"\\\n"} -1.5e-06)"));
  EXPECT_FALSE(is_sample_line("a b"));
  EXPECT_FALSE(is_sample_line("1a 1"));
  EXPECT_FALSE(is_sample_line("a{} 1"));
  EXPECT_FALSE(is_sample_line("a{x=1} 1"));
  EXPECT_FALSE(is_sample_line(R"(a{x="1"y="2"} 1)"));
  EXPECT_FALSE(is_sample_line(R"(a{x="\t"} 1)"));
  EXPECT_FALSE(is_sample_line("a inf"));
  EXPECT_FALSE(is_sample_line("a 1 "));
  EXPECT_FALSE(is_comment_line("# TYPE a summary"));
  EXPECT_FALSE(is_comment_line(R"(# HELP a bad \x escape)"));
}

TEST(Metrics, EveryRenderedLineParses) {
  MetricsRegistry r0(0);
  MetricsRegistry r1(1);
  for (MetricsRegistry* r : {&r0, &r1}) {
    r->counter("runnel_appends_total", "Appends.", {{"stream", "a\"b\\c\nd"}}).inc(3);
    r->gauge("runnel_depth", "Depth.").set(-4);
    r->gauge_callback("runnel_ratio", "Ratio.", [] { return 0.125; });
    Histogram& h = r->histogram("runnel_latency_seconds", "Latency\nwith \\ newline.", 1e-6);
    h.record(0);
    h.record(12345);
  }
  std::vector<MetricsSnapshot> snaps = {collect_process_metrics(), r0.snapshot(), r1.snapshot()};
  std::string text = render_prometheus(snaps);
  ASSERT_FALSE(text.empty());
  EXPECT_EQ(text.back(), '\n');

  int samples = 0;
  for (const std::string& line : lines_of(text)) {
    if (line.starts_with("#")) {
      EXPECT_TRUE(is_comment_line(line)) << line;
    } else {
      EXPECT_TRUE(is_sample_line(line)) << line;
      samples++;
    }
  }
  // 2 shards x (counter + gauge + callback + 34 buckets + sum + count) + 7 process metrics.
  EXPECT_EQ(samples, 2 * (3 + Histogram::kBuckets + 2) + 7);
}

// ---------------------------------------------------------------------------
// Process metrics

// A real line with a hostile comm: spaces and ") (" inside the parentheses.
constexpr std::string_view kProcStatLine =
    "4242 (run ) (d x) S 1 4242 4242 0 -1 4194560 1000 0 0 0 "
    "250 130 0 0 20 0 7 0 123456 987654321 2048 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 "
    "1 0 0 0 0 0\n";

TEST(Metrics, ParseProcStatSplitsAfterLastParen) {
  metrics_internal::ProcStat stat;
  ASSERT_TRUE(metrics_internal::parse_proc_stat(kProcStatLine, &stat));
  EXPECT_EQ(stat.utime_ticks, 250u);
  EXPECT_EQ(stat.stime_ticks, 130u);
  EXPECT_EQ(stat.num_threads, 7u);
  EXPECT_EQ(stat.starttime_ticks, 123456u);
  EXPECT_EQ(stat.vsize_bytes, 987654321u);
  EXPECT_EQ(stat.rss_pages, 2048u);
}

TEST(Metrics, ParseProcStatRejectsMalformedText) {
  metrics_internal::ProcStat stat;
  EXPECT_FALSE(metrics_internal::parse_proc_stat("", &stat));
  EXPECT_FALSE(metrics_internal::parse_proc_stat("4242 runneld S 1 2 3", &stat));
  // Truncated before rss.
  std::string_view line = kProcStatLine;
  EXPECT_FALSE(metrics_internal::parse_proc_stat(line.substr(0, line.find(" 2048")), &stat));
  // A non-number where utime should be.
  std::string bad(kProcStatLine);
  bad.replace(bad.find(" 250 "), 5, " x50 ");
  EXPECT_FALSE(metrics_internal::parse_proc_stat(bad, &stat));
}

TEST(Metrics, ProcessMetricsArePlausible) {
  MetricsSnapshot snap = collect_process_metrics();
  EXPECT_EQ(snap.shard, -1);
  EXPECT_GT(process_value(snap, "process_open_fds"), 0);
  EXPECT_GE(process_value(snap, "process_max_fds"), process_value(snap, "process_open_fds"));
  EXPECT_GT(process_value(snap, "process_resident_memory_bytes"), 0);
  EXPECT_GE(process_value(snap, "process_virtual_memory_bytes"),
            process_value(snap, "process_resident_memory_bytes"));
  EXPECT_GE(process_value(snap, "process_threads"), 1);
  EXPECT_GE(process_value(snap, "process_cpu_seconds_total"), 0);
  double now = static_cast<double>(std::time(nullptr));
  double start = process_value(snap, "process_start_time_seconds");
  // btime is whole seconds, so allow a little slack past now.
  EXPECT_LE(start, now + 2);
  EXPECT_GT(start, now - 86400);
  const MetricFamily* cpu = find_family(snap, "process_cpu_seconds_total");
  ASSERT_NE(cpu, nullptr);
  EXPECT_EQ(cpu->type, MetricType::kCounter);
}

TEST(Metrics, ProcessOpenFdsCountsNewDescriptor) {
  double before = process_value(collect_process_metrics(), "process_open_fds");
  FILE* f = std::fopen("/proc/self/stat", "r");
  ASSERT_NE(f, nullptr);
  double during = process_value(collect_process_metrics(), "process_open_fds");
  std::fclose(f);
  EXPECT_EQ(during, before + 1);
}

}  // namespace
}  // namespace runnel
