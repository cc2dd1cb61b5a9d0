#include "storage/stream_store.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "storage/log_test_util.h"

namespace runnel {
namespace {

using StoreHarness = ShardHarness<StreamStore>;

Result<StreamEntry> run_op(StoreHarness& h, std::function<void(StreamStore&, StreamStore::InfoCallback)> op) {
  Result<StreamEntry> out = Status(ErrorCode::kInternal, "not run");
  h.call([&](StreamStore& store, std::function<void()> finish) {
    op(store, [&out, finish](Result<StreamEntry> r) {
      out = std::move(r);
      finish();
    });
  });
  return out;
}

Result<BucketInfo> run_bucket_op(StoreHarness& h,
                                 std::function<void(StreamStore&, StreamStore::BucketCallback)> op) {
  Result<BucketInfo> out = Status(ErrorCode::kInternal, "not run");
  h.call([&](StreamStore& store, std::function<void()> finish) {
    op(store, [&out, finish](Result<BucketInfo> r) {
      out = std::move(r);
      finish();
    });
  });
  return out;
}

Result<BucketInfo> create_bucket(StoreHarness& h, const std::string& name, const BucketConfig& config = {}) {
  return run_bucket_op(h, [&](StreamStore& s, StreamStore::BucketCallback cb) { s.create_bucket(name, config, std::move(cb)); });
}

Result<StreamEntry> create(StoreHarness& h, const std::string& bucket, const std::string& name,
                           StreamConfig config = {}) {
  return run_op(h, [&](StreamStore& s, StreamStore::InfoCallback cb) { s.create_stream(bucket, name, config, std::move(cb)); });
}

// Appends `count` one-record batches to bucket/name with bodies record_body(id, seq).
Result<AppendAck> append(StoreHarness& h, const std::string& bucket, const std::string& name, uint64_t seq,
                         std::optional<uint64_t> match = std::nullopt,
                         std::optional<std::string> token = std::nullopt) {
  Result<AppendAck> out = Status(ErrorCode::kInternal, "not run");
  h.call([&](StreamStore& store, std::function<void()> finish) {
    PayloadBuilder payload;
    payload.add(0, record_body(7, seq));
    AppendRequest req;
    req.payload = payload.bytes();
    req.record_count = 1;
    req.payload_checksum = payload_checksum(payload.bytes());
    req.match_seq_num = match;
    if (token) req.fencing_token = std::string_view(*token);
    req.arrival_ms = 1000 + seq;
    store.append(bucket, name, req, [&out, finish](Result<AppendAck> ack) {
      out = std::move(ack);
      finish();
    });
  });
  return out;
}

Result<ReadResult> read(StoreHarness& h, const std::string& bucket, const std::string& name, ReadStart start) {
  Result<ReadResult> out = Status(ErrorCode::kInternal, "not run");
  h.call([&](StreamStore& store, std::function<void()> finish) {
    store.read(bucket, name, start, 1000, 1 << 20, [&out, finish](Result<ReadResult> r) {
      out = std::move(r);
      finish();
    });
  });
  return out;
}

uint64_t first_seq(const ReadResult& r) {
  return r.batches.empty() ? r.tail : r.batches[0].header.base_seq + r.first_record_index;
}

TEST(StreamStore, CreatesAppendsAndReadsByName) {
  std::string dir = temp_dir();
  StoreHarness h(small_options(dir));
  ASSERT_NE(h.log(), nullptr) << h.open_status().to_string();
  ASSERT_TRUE(create_bucket(h, "orders").is_ok());
  auto info = create(h, "orders", "eu/2026");
  ASSERT_TRUE(info.is_ok()) << info.status().to_string();
  EXPECT_GT(info->id, 0u);
  for (uint64_t i = 0; i < 5; i++) ASSERT_TRUE(append(h, "orders", "eu/2026", i).is_ok());
  auto r = read(h, "orders", "eu/2026", ReadStart::seq_num(0));
  ASSERT_TRUE(r.is_ok());
  EXPECT_EQ(r->tail, 5u);
  EXPECT_EQ(r->batches.size(), 5u);
  EXPECT_EQ(append(h, "orders", "missing", 0).status().code(), ErrorCode::kNotFound);
  std::filesystem::remove_all(dir);
}

TEST(StreamStore, RejectsInvalidNamesAndDuplicates) {
  std::string dir = temp_dir();
  StoreHarness h(small_options(dir));
  ASSERT_NE(h.log(), nullptr);
  ASSERT_TRUE(create_bucket(h, "orders").is_ok());
  EXPECT_EQ(create(h, "Orders", "x").status().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(create(h, "ab", "x").status().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(create(h, "orders", "").status().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(create(h, "orders", std::string("a\0b", 3)).status().code(), ErrorCode::kInvalidArgument);
  ASSERT_TRUE(create(h, "orders", "x").is_ok());
  EXPECT_EQ(create(h, "orders", "x").status().code(), ErrorCode::kAlreadyExists);
  ASSERT_TRUE(create_bucket(h, "payments").is_ok());
  EXPECT_TRUE(create(h, "payments", "x").is_ok()) << "same name, other bucket";
  std::filesystem::remove_all(dir);
}

TEST(StreamStore, ConcurrentCreatesOfOneNameLetExactlyOneWin) {
  std::string dir = temp_dir();
  StoreHarness h(small_options(dir));
  ASSERT_NE(h.log(), nullptr);
  ASSERT_TRUE(create_bucket(h, "orders").is_ok());
  struct Tally {
    int ok = 0, exists = 0, left = 10;
    std::function<void()> finish;
  } tally;
  h.call([&](StreamStore& store, std::function<void()> finish) {
    tally.finish = std::move(finish);
    for (int i = 0; i < 10; i++) {
      store.create_stream("orders", "x", {}, [t = &tally](Result<StreamEntry> r) {
        if (r)
          t->ok++;
        else if (r.status().code() == ErrorCode::kAlreadyExists)
          t->exists++;
        if (--t->left == 0) t->finish();
      });
    }
  });
  const int ok = tally.ok, exists = tally.exists;
  EXPECT_EQ(ok, 1);
  EXPECT_EQ(exists, 9);
  std::filesystem::remove_all(dir);
}

TEST(StreamStore, OnlyOneOfConcurrentAppendsWithTheSameMatchSeqNumWins) {
  std::string dir = temp_dir();
  StoreHarness h(small_options(dir));
  ASSERT_NE(h.log(), nullptr);
  ASSERT_TRUE(create_bucket(h, "orders").is_ok());
  ASSERT_TRUE(create(h, "orders", "x").is_ok());
  ASSERT_TRUE(append(h, "orders", "x", 0).is_ok());
  struct Tally {
    int ok = 0, mismatch = 0, left = 8;
    uint64_t reported_tail = 0;
    std::function<void()> finish;
  } tally;
  h.call([&](StreamStore& store, std::function<void()> finish) {
    tally.finish = std::move(finish);
    PayloadBuilder payload;
    payload.add(0, "racer");
    for (int i = 0; i < 8; i++) {
      AppendRequest req;
      req.payload = payload.bytes();
      req.record_count = 1;
      req.payload_checksum = payload_checksum(payload.bytes());
      req.match_seq_num = 1;
      store.append("orders", "x", req, [t = &tally](Result<AppendAck> r) {
        if (r) t->ok++;
        if (!r && r.status().code() == ErrorCode::kSeqNumMismatch) {
          t->mismatch++;
          t->reported_tail = r.status().detail();
        }
        if (--t->left == 0) t->finish();
      });
    }
  });
  const int ok = tally.ok, mismatch = tally.mismatch;
  const uint64_t reported_tail = tally.reported_tail;
  EXPECT_EQ(ok, 1);
  EXPECT_EQ(mismatch, 7);
  EXPECT_EQ(reported_tail, 2u);
  std::filesystem::remove_all(dir);
}

TEST(StreamStore, FencedStreamsNeedTheirToken) {
  std::string dir = temp_dir();
  StoreHarness h(small_options(dir));
  ASSERT_NE(h.log(), nullptr);
  ASSERT_TRUE(create_bucket(h, "orders").is_ok());
  ASSERT_TRUE(create(h, "orders", "x").is_ok());
  ASSERT_TRUE(run_op(h, [](StreamStore& s, StreamStore::InfoCallback cb) { s.fence_stream("orders", "x", "epoch-7", std::move(cb)); }).is_ok());
  EXPECT_EQ(append(h, "orders", "x", 0).status().code(), ErrorCode::kFencingTokenMismatch);
  EXPECT_EQ(append(h, "orders", "x", 0, std::nullopt, "epoch-6").status().code(), ErrorCode::kFencingTokenMismatch);
  EXPECT_TRUE(append(h, "orders", "x", 0, std::nullopt, "epoch-7").is_ok());
  std::filesystem::remove_all(dir);
}

TEST(StreamStore, SealedStreamsRefuseAppendsButServeReads) {
  std::string dir = temp_dir();
  StoreHarness h(small_options(dir));
  ASSERT_NE(h.log(), nullptr);
  ASSERT_TRUE(create_bucket(h, "orders").is_ok());
  ASSERT_TRUE(create(h, "orders", "x").is_ok());
  ASSERT_TRUE(append(h, "orders", "x", 0).is_ok());
  auto sealed = run_op(h, [](StreamStore& s, StreamStore::InfoCallback cb) { s.seal_stream("orders", "x", std::move(cb)); });
  ASSERT_TRUE(sealed.is_ok());
  EXPECT_TRUE(sealed->sealed);
  EXPECT_EQ(append(h, "orders", "x", 1).status().code(), ErrorCode::kStreamSealed);
  auto r = read(h, "orders", "x", ReadStart::seq_num(0));
  ASSERT_TRUE(r.is_ok());
  EXPECT_EQ(r->batches.size(), 1u);
  std::filesystem::remove_all(dir);
}

TEST(StreamStore, ReadingBeyondTheTailIsOutOfRange) {
  std::string dir = temp_dir();
  StoreHarness h(small_options(dir));
  ASSERT_NE(h.log(), nullptr);
  ASSERT_TRUE(create_bucket(h, "orders").is_ok());
  ASSERT_TRUE(create(h, "orders", "x").is_ok());
  ASSERT_TRUE(append(h, "orders", "x", 0).is_ok());
  auto at_tail = read(h, "orders", "x", ReadStart::seq_num(1));
  ASSERT_TRUE(at_tail.is_ok());
  EXPECT_TRUE(at_tail->batches.empty());
  auto beyond = read(h, "orders", "x", ReadStart::seq_num(2));
  ASSERT_FALSE(beyond.is_ok());
  EXPECT_EQ(beyond.status().code(), ErrorCode::kOutOfRange);
  EXPECT_EQ(beyond.status().detail(), 1u);
  std::filesystem::remove_all(dir);
}

TEST(StreamStore, TrimmedRecordsAreNeverReturned) {
  std::string dir = temp_dir();
  StoreHarness h(small_options(dir));
  ASSERT_NE(h.log(), nullptr);
  ASSERT_TRUE(create_bucket(h, "orders").is_ok());
  ASSERT_TRUE(create(h, "orders", "x").is_ok());
  for (uint64_t i = 0; i < 10; i++) ASSERT_TRUE(append(h, "orders", "x", i).is_ok());
  auto trimmed = run_op(h, [](StreamStore& s, StreamStore::InfoCallback cb) { s.trim_stream("orders", "x", 4, std::move(cb)); });
  ASSERT_TRUE(trimmed.is_ok());
  EXPECT_EQ(trimmed->trim_seq, 4u);
  auto from_zero = read(h, "orders", "x", ReadStart::seq_num(0));
  ASSERT_TRUE(from_zero.is_ok());
  EXPECT_EQ(first_seq(*from_zero), 4u);
  auto from_old_time = read(h, "orders", "x", ReadStart::timestamp(0));
  ASSERT_TRUE(from_old_time.is_ok());
  EXPECT_EQ(first_seq(*from_old_time), 4u);
  // A lower trim never brings records back.
  auto lower = run_op(h, [](StreamStore& s, StreamStore::InfoCallback cb) { s.trim_stream("orders", "x", 2, std::move(cb)); });
  ASSERT_TRUE(lower.is_ok());
  EXPECT_EQ(lower->trim_seq, 4u);
  std::filesystem::remove_all(dir);
}

TEST(StreamStore, DeletedNamesCanBeCreatedAgainAsNewStreams) {
  std::string dir = temp_dir();
  StoreHarness h(small_options(dir));
  ASSERT_NE(h.log(), nullptr);
  ASSERT_TRUE(create_bucket(h, "orders").is_ok());
  auto first = create(h, "orders", "x");
  ASSERT_TRUE(first.is_ok());
  ASSERT_TRUE(append(h, "orders", "x", 0).is_ok());
  ASSERT_TRUE(run_op(h, [](StreamStore& s, StreamStore::InfoCallback cb) { s.delete_stream("orders", "x", std::move(cb)); }).is_ok());
  EXPECT_EQ(append(h, "orders", "x", 1).status().code(), ErrorCode::kNotFound);
  auto second = create(h, "orders", "x");
  ASSERT_TRUE(second.is_ok());
  EXPECT_NE(second->id, first->id);
  auto r = read(h, "orders", "x", ReadStart::seq_num(0));
  ASSERT_TRUE(r.is_ok());
  EXPECT_EQ(r->tail, 0u) << "the old stream's records belong to the old stream";
  std::filesystem::remove_all(dir);
}

TEST(StreamStore, TheCatalogSurvivesARestart) {
  std::string dir = temp_dir();
  StreamConfig arrival;
  arrival.timestamping = Timestamping::kArrival;
  arrival.retention_age_ms = 3'600'000;
  StreamEntry before_sealed, before_fenced, before_trimmed, before_reconfigured;
  {
    StoreHarness h(small_options(dir));
    ASSERT_NE(h.log(), nullptr);
    ASSERT_TRUE(create_bucket(h, "orders").is_ok());
    for (const char* name : {"sealed", "fenced", "trimmed", "reconfigured", "deleted"}) {
      ASSERT_TRUE(create(h, "orders", name).is_ok());
      for (uint64_t i = 0; i < 3; i++) ASSERT_TRUE(append(h, "orders", name, i).is_ok());
    }
    before_sealed = *run_op(h, [](StreamStore& s, StreamStore::InfoCallback cb) { s.seal_stream("orders", "sealed", std::move(cb)); });
    before_fenced = *run_op(h, [](StreamStore& s, StreamStore::InfoCallback cb) { s.fence_stream("orders", "fenced", "t1", std::move(cb)); });
    before_trimmed = *run_op(h, [](StreamStore& s, StreamStore::InfoCallback cb) { s.trim_stream("orders", "trimmed", 2, std::move(cb)); });
    before_reconfigured = *run_op(h, [&](StreamStore& s, StreamStore::InfoCallback cb) {
      s.reconfigure_stream("orders", "reconfigured", arrival, std::move(cb));
    });
    ASSERT_TRUE(run_op(h, [](StreamStore& s, StreamStore::InfoCallback cb) { s.delete_stream("orders", "deleted", std::move(cb)); }).is_ok());
  }
  StoreHarness h(small_options(dir));
  ASSERT_NE(h.log(), nullptr) << h.open_status().to_string();
  const StreamCatalog& catalog = h.log()->catalog();
  ASSERT_NE(catalog.find("orders", "sealed"), nullptr);
  EXPECT_EQ(*catalog.find("orders", "sealed"), before_sealed);
  EXPECT_EQ(*catalog.find("orders", "fenced"), before_fenced);
  EXPECT_EQ(*catalog.find("orders", "trimmed"), before_trimmed);
  EXPECT_EQ(*catalog.find("orders", "reconfigured"), before_reconfigured);
  EXPECT_EQ(catalog.find("orders", "deleted"), nullptr);
  EXPECT_EQ(h.log()->tail("orders", "sealed")->next_seq, 3u);
  EXPECT_EQ(append(h, "orders", "sealed", 3).status().code(), ErrorCode::kStreamSealed);
  EXPECT_EQ(append(h, "orders", "fenced", 3).status().code(), ErrorCode::kFencingTokenMismatch);
  // A new stream never reuses an id from before the restart.
  auto fresh = create(h, "orders", "fresh");
  ASSERT_TRUE(fresh.is_ok());
  EXPECT_GT(fresh->id, before_reconfigured.id);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace runnel

namespace runnel {
namespace {

// Appends one-record batches with client timestamps `ts` (client-prefer mode).
void append_at(StoreHarness& h, const std::string& name, uint64_t count, uint64_t ts, size_t body_bytes = 100) {
  for (uint64_t i = 0; i < count; i++) {
    Result<AppendAck> out = Status(ErrorCode::kInternal, "not run");
    h.call([&](StreamStore& store, std::function<void()> finish) {
      PayloadBuilder payload;
      payload.add(ts, std::string(body_bytes, 'r'));
      AppendRequest req;
      req.payload = payload.bytes();
      req.record_count = 1;
      req.payload_checksum = payload_checksum(payload.bytes());
      req.arrival_ms = ts;
      store.append("orders", name, req, [&out, finish](Result<AppendAck> ack) {
        out = std::move(ack);
        finish();
      });
    });
    ASSERT_TRUE(out.is_ok()) << out.status().to_string();
  }
}

void retention_pass(StoreHarness& h, uint64_t now_ms) {
  h.call([&](StreamStore& store, std::function<void()> finish) {
    store.enforce_retention(now_ms);
    // Let the trim mutations become durable before looking.
    struct Wait {
      std::unique_ptr<Timer> timer;
    };
    auto* wait = new Wait;
    wait->timer = std::make_unique<Timer>(Reactor::current(), [wait, finish] {
      finish();
      Reactor::current().post([wait] { delete wait; });  // Not from inside its own callback.
    });
    wait->timer->arm_after_us(50'000);
  });
}

LogOptions dense_index(const std::string& dir) {
  LogOptions o = small_options(dir);
  o.index_interval_bytes = 1;  // An index entry per batch: retention is exact here.
  return o;
}

TEST(StreamStore, AgeRetentionTrimsRecordsOlderThanTheLimit) {
  std::string dir = temp_dir();
  StoreHarness h(dense_index(dir));
  ASSERT_NE(h.log(), nullptr);
  ASSERT_TRUE(create_bucket(h, "orders").is_ok());
  StreamConfig config;
  config.retention_age_ms = 60'000;
  ASSERT_TRUE(create(h, "orders", "x", config).is_ok());
  const uint64_t now = 10'000'000;
  append_at(h, "x", 20, now - 120'000);  // Older than the limit.
  append_at(h, "x", 10, now - 1'000);    // Within it.
  retention_pass(h, now);
  const StreamEntry* info = h.log()->catalog().find("orders", "x");
  ASSERT_NE(info, nullptr);
  EXPECT_GE(info->trim_seq, 19u) << "old records stay";
  EXPECT_LE(info->trim_seq, 20u) << "a record within the age limit was dropped";
  auto r = read(h, "orders", "x", ReadStart::seq_num(0));
  ASSERT_TRUE(r.is_ok());
  EXPECT_EQ(first_seq(*r), info->trim_seq);
  std::filesystem::remove_all(dir);
}

TEST(StreamStore, SizeRetentionKeepsAtMostTheLimit) {
  std::string dir = temp_dir();
  StoreHarness h(dense_index(dir));
  ASSERT_NE(h.log(), nullptr);
  ASSERT_TRUE(create_bucket(h, "orders").is_ok());
  StreamConfig config;
  config.retention_bytes = 10'000;
  ASSERT_TRUE(create(h, "orders", "x", config).is_ok());
  append_at(h, "x", 100, 1000, 1000);  // ~100 KB.
  retention_pass(h, 2000);
  const StreamEntry* info = h.log()->catalog().find("orders", "x");
  ASSERT_NE(info, nullptr);
  // Each batch is ~1080 bytes on disk: at most ~10 KB means at most 9 of them left.
  EXPECT_GE(info->trim_seq, 91u);
  EXPECT_LE(info->trim_seq, 95u);
  std::filesystem::remove_all(dir);
}

TEST(StreamStore, DeletesAStreamThatStayedEmptyLongEnough) {
  std::string dir = temp_dir();
  StoreHarness h(small_options(dir));
  ASSERT_NE(h.log(), nullptr);
  ASSERT_TRUE(create_bucket(h, "orders").is_ok());
  StreamConfig config;
  config.delete_on_empty_ms = 1000;
  ASSERT_TRUE(create(h, "orders", "empty", config).is_ok());
  ASSERT_TRUE(create(h, "orders", "busy", config).is_ok());
  append_at(h, "busy", 1, 5);
  retention_pass(h, 10'000);  // First seen empty.
  EXPECT_NE(h.log()->catalog().find("orders", "empty"), nullptr);
  retention_pass(h, 10'500);  // Not long enough yet.
  EXPECT_NE(h.log()->catalog().find("orders", "empty"), nullptr);
  retention_pass(h, 11'001);
  EXPECT_EQ(h.log()->catalog().find("orders", "empty"), nullptr);
  EXPECT_NE(h.log()->catalog().find("orders", "busy"), nullptr);
  std::filesystem::remove_all(dir);
}

TEST(StreamStore, RetentionTrimsSurviveARestart) {
  std::string dir = temp_dir();
  StreamConfig config;
  config.retention_bytes = 5'000;
  uint64_t trimmed = 0;
  {
    StoreHarness h(dense_index(dir));
    ASSERT_NE(h.log(), nullptr);
    ASSERT_TRUE(create_bucket(h, "orders").is_ok());
    ASSERT_TRUE(create(h, "orders", "x", config).is_ok());
    append_at(h, "x", 50, 1000, 1000);
    retention_pass(h, 2000);
    trimmed = h.log()->catalog().find("orders", "x")->trim_seq;
    EXPECT_GT(trimmed, 0u);
  }
  StoreHarness h(dense_index(dir));
  ASSERT_NE(h.log(), nullptr);
  EXPECT_EQ(h.log()->catalog().find("orders", "x")->trim_seq, trimmed);
  auto r = read(h, "orders", "x", ReadStart::seq_num(0));
  ASSERT_TRUE(r.is_ok());
  EXPECT_EQ(first_seq(*r), trimmed);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace runnel

namespace runnel {
namespace {

size_t segment_files(const std::string& dir) {
  size_t n = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir)) n += e.path().extension() == ".seg";
  return n;
}

LogOptions small_segments(const std::string& dir) {
  LogOptions o = dense_index(dir);
  o.segment_bytes = 1u << 20;
  return o;
}

// Several retention passes, letting each one's mutations and unlinks finish.
void settle(StoreHarness& h, uint64_t now_ms) {
  for (int pass = 0; pass < 4; pass++) retention_pass(h, now_ms);
}

TEST(StreamStore, ReclaimsSegmentFilesOnceNothingInThemIsNeeded) {
  std::string dir = temp_dir();
  StreamConfig capped;
  capped.retention_bytes = 100'000;
  uint64_t tail = 0;
  {
    StoreHarness h(small_segments(dir));
    ASSERT_NE(h.log(), nullptr);
    ASSERT_TRUE(create_bucket(h, "orders").is_ok());
    ASSERT_TRUE(create(h, "orders", "capped", capped).is_ok());
    ASSERT_TRUE(create(h, "orders", "doomed").is_ok());
    append_at(h, "doomed", 200, 1000, 1000);
    append_at(h, "capped", 4000, 1000, 1000);  // ~4 MiB through 1 MiB segments.
    const size_t before = segment_files(dir);
    ASSERT_GE(before, 4u);
    ASSERT_TRUE(run_op(h, [](StreamStore& s, StreamStore::InfoCallback cb) { s.delete_stream("orders", "doomed", std::move(cb)); }).is_ok());
    settle(h, 2000);
    const size_t after = segment_files(dir);
    EXPECT_LE(after, 2u) << "segments holding only trimmed or deleted data must go (had " << before << ")";
    tail = h.log()->tail("orders", "capped")->next_seq;
    EXPECT_EQ(tail, 4000u);
    // What retention kept is still readable.
    const uint64_t trim = h.log()->catalog().find("orders", "capped")->trim_seq;
    auto r = read(h, "orders", "capped", ReadStart::seq_num(0));
    ASSERT_TRUE(r.is_ok()) << r.status().to_string();
    EXPECT_EQ(first_seq(*r), trim);
  }
  // After a restart the catalog (from its snapshot) and the tails are intact.
  StoreHarness h(small_segments(dir));
  ASSERT_NE(h.log(), nullptr) << h.open_status().to_string();
  EXPECT_EQ(h.log()->catalog().find("orders", "doomed"), nullptr);
  ASSERT_NE(h.log()->catalog().find("orders", "capped"), nullptr);
  EXPECT_EQ(h.log()->tail("orders", "capped")->next_seq, tail);
  auto ack = append(h, "orders", "capped", 0);
  ASSERT_TRUE(ack.is_ok());
  EXPECT_EQ(ack->start_seq, tail) << "seq_nums continue after reclaimed segments";
  auto fresh = create(h, "orders", "fresh");
  ASSERT_TRUE(fresh.is_ok());
  EXPECT_GT(fresh->id, 2u) << "ids of deleted streams are never reused";
  std::filesystem::remove_all(dir);
}

TEST(StreamStore, AFullyTrimmedStreamKeepsItsTailWhenItsSegmentsAreGone) {
  std::string dir = temp_dir();
  {
    StoreHarness h(small_segments(dir));
    ASSERT_NE(h.log(), nullptr);
    ASSERT_TRUE(create_bucket(h, "orders").is_ok());
    ASSERT_TRUE(create(h, "orders", "x").is_ok());
    ASSERT_TRUE(create(h, "orders", "filler").is_ok());
    append_at(h, "x", 1500, 1000, 1000);
    ASSERT_TRUE(run_op(h, [](StreamStore& s, StreamStore::InfoCallback cb) { s.trim_stream("orders", "x", 1500, std::move(cb)); }).is_ok());
    StreamConfig small;
    small.retention_bytes = 1;
    ASSERT_TRUE(run_op(h, [&](StreamStore& s, StreamStore::InfoCallback cb) { s.reconfigure_stream("orders", "filler", small, std::move(cb)); }).is_ok());
    append_at(h, "filler", 2500, 1000, 1000);  // Rolls past x's segments.
    settle(h, 2000);
  }
  StoreHarness h(small_segments(dir));
  ASSERT_NE(h.log(), nullptr);
  EXPECT_EQ(h.log()->tail("orders", "x")->next_seq, 1500u);
  auto ack = append(h, "orders", "x", 0);
  ASSERT_TRUE(ack.is_ok());
  EXPECT_EQ(ack->start_seq, 1500u);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace runnel

namespace runnel {
namespace {

TEST(StreamStore, Lz4StreamsReadBackTheSameRecordsBeforeAndAfterRestart) {
  std::string dir = temp_dir();
  StreamConfig lz4;
  lz4.compress_lz4 = true;
  std::vector<uint64_t> seqs;
  {
    StoreHarness h(small_options(dir));
    ASSERT_NE(h.log(), nullptr);
    ASSERT_TRUE(create_bucket(h, "orders").is_ok());
    ASSERT_TRUE(create(h, "orders", "packed", lz4).is_ok());
    ASSERT_TRUE(create(h, "orders", "plain").is_ok());
    // record_body(7, s) repeats a letter (s % 200) times: compressible for these.
    for (uint64_t i = 0; i < 50; i++) ASSERT_TRUE(append(h, "orders", "packed", 150 + i).is_ok());
    for (uint64_t i = 0; i < 50; i++) ASSERT_TRUE(append(h, "orders", "plain", 150 + i).is_ok());
    const uint64_t packed_id = h.log()->catalog().find("orders", "packed")->id;
    const uint64_t plain_id = h.log()->catalog().find("orders", "plain")->id;
    EXPECT_LT(h.log()->log().stored_bytes(packed_id), h.log()->log().stored_bytes(plain_id) * 8 / 10)
        << "the same records should take noticeably less space compressed";
    auto r = read(h, "orders", "packed", ReadStart::seq_num(0));
    ASSERT_TRUE(r.is_ok()) << r.status().to_string();
    ASSERT_EQ(r->batches.size(), 50u);
    for (const StoredBatch& b : r->batches) {
      EXPECT_EQ(b.header.flags & kBatchFlagLz4, 0) << "readers get raw payloads";
      EXPECT_EQ(payload_checksum(b.payload), b.header.payload_checksum) << "the client's checksum still holds";
    }
  }
  StoreHarness h(small_options(dir));
  ASSERT_NE(h.log(), nullptr);
  auto r = read(h, "orders", "packed", ReadStart::seq_num(0));
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  ASSERT_EQ(r->batches.size(), 50u);
  for (uint64_t i = 0; i < 50; i++) {
    RecordIterator it(r->batches[i].payload, 1, BatchLimits{});
    RecordView rec;
    ASSERT_TRUE(it.next(&rec));
    EXPECT_EQ(rec.body, record_body(7, 150 + i));
  }
  // The setting survived the restart: new batches are compressed too.
  ASSERT_TRUE(append(h, "orders", "packed", 50).is_ok());
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace runnel

namespace runnel {
namespace {

// Racers with the same match_seq_num, most of them waiting for a write
// buffer: still exactly one wins.
TEST(StreamStore, MatchSeqNumRacesStayExactWhileAppendsWait) {
  std::string dir = temp_dir();
  LogOptions o = small_options(dir);
  o.write_buffers = 2;
  o.flushes_in_flight_max = 1;
  StoreHarness h(o);
  ASSERT_NE(h.log(), nullptr);
  ASSERT_TRUE(create_bucket(h, "orders").is_ok());
  ASSERT_TRUE(create(h, "orders", "x").is_ok());
  struct Tally {
    int ok = 0, mismatch = 0, left = 0;
    std::function<void()> finish;
  } tally;
  h.call([&](StreamStore& store, std::function<void()> finish) {
    tally.finish = std::move(finish);
    PayloadBuilder big;
    big.add(0, std::string(100'000, 'b'));  // Fills buffers, so later racers wait.
    PayloadBuilder small;
    small.add(0, "racer");
    for (int i = 0; i < 12; i++) {
      AppendRequest filler;
      filler.payload = big.bytes();
      filler.record_count = 1;
      filler.payload_checksum = payload_checksum(big.bytes());
      tally.left++;
      store.append("orders", "x", filler, [t = &tally](Result<AppendAck>) {
        if (--t->left == 0) t->finish();
      });
    }
    for (int i = 0; i < 8; i++) {
      AppendRequest req;
      req.payload = small.bytes();
      req.record_count = 1;
      req.payload_checksum = payload_checksum(small.bytes());
      req.match_seq_num = 12;  // The tail once the fillers are in.
      tally.left++;
      store.append("orders", "x", req, [t = &tally](Result<AppendAck> r) {
        if (r) t->ok++;
        if (!r && r.status().code() == ErrorCode::kSeqNumMismatch) t->mismatch++;
        if (--t->left == 0) t->finish();
      });
    }
  });
  EXPECT_EQ(tally.ok, 1);
  EXPECT_EQ(tally.mismatch, 7);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace runnel

namespace runnel {
namespace {

// Appends one record as producer `producer_id` with `producer_seq`; `copies`
// identical appends are issued at once (a retry racing its first attempt).
std::vector<Result<AppendAck>> produce(StoreHarness& h, const std::string& name, uint64_t producer_id,
                                       uint64_t producer_seq, int copies = 1) {
  std::vector<Result<AppendAck>> out;
  h.call([&](StreamStore& store, std::function<void()> finish) {
    auto remaining = std::make_shared<int>(copies);
    auto finish_ptr = std::make_shared<std::function<void()>>(std::move(finish));
    PayloadBuilder payload;
    payload.add(0, "from producer " + std::to_string(producer_id) + " seq " + std::to_string(producer_seq));
    for (int c = 0; c < copies; c++) {
      AppendRequest req;
      req.payload = payload.bytes();
      req.record_count = 1;
      req.payload_checksum = payload_checksum(payload.bytes());
      req.producer = AppendRequest::Producer{producer_id, producer_seq};
      store.append("orders", name, req, [&out, remaining, finish_ptr](Result<AppendAck> ack) {
        out.push_back(std::move(ack));
        if (--*remaining == 0) (*finish_ptr)();
      });
    }
  });
  return out;
}

TEST(StreamStore, IdempotentProducersAreNeverWrittenTwice) {
  std::string dir = temp_dir();
  StoreHarness h(small_options(dir));
  ASSERT_NE(h.log(), nullptr);
  ASSERT_TRUE(create_bucket(h, "orders").is_ok());
  ASSERT_TRUE(create(h, "orders", "once").is_ok());
  auto first = produce(h, "once", 7, 1);
  ASSERT_TRUE(first[0].is_ok());
  EXPECT_EQ(first[0]->start_seq, 0u);
  // A retry after a lost answer gets the same answer; nothing is written.
  auto retry = produce(h, "once", 7, 1);
  ASSERT_TRUE(retry[0].is_ok());
  EXPECT_EQ(retry[0]->start_seq, 0u);
  EXPECT_EQ(h.log()->tail("orders", "once")->next_seq, 1u);
  // A retry racing its first attempt: one write, both answered alike.
  auto racing = produce(h, "once", 7, 2, 3);
  ASSERT_EQ(racing.size(), 3u);
  for (const auto& r : racing) {
    ASSERT_TRUE(r.is_ok()) << r.status().to_string();
    EXPECT_EQ(r->start_seq, 1u);
  }
  EXPECT_EQ(h.log()->tail("orders", "once")->next_seq, 2u);
  // Other producers are independent; an older seq than the recent ones is refused.
  EXPECT_EQ(produce(h, "once", 8, 1)[0]->start_seq, 2u);
  EXPECT_EQ(produce(h, "once", 7, 1)[0]->start_seq, 0u) << "still in the window: the remembered answer";
  auto stale = produce(h, "once", 7, 0);
  ASSERT_FALSE(stale[0].is_ok());
  EXPECT_EQ(stale[0].status().code(), ErrorCode::kSeqNumMismatch);
  EXPECT_EQ(stale[0].status().detail(), 3u);
  EXPECT_EQ(h.log()->tail("orders", "once")->next_seq, 3u);
  // A stream created again under the same name is a new stream: its
  // producers start afresh.
  ASSERT_TRUE(run_op(h, [](StreamStore& s, StreamStore::InfoCallback cb) { s.delete_stream("orders", "once", std::move(cb)); }).is_ok());
  ASSERT_TRUE(create(h, "orders", "once").is_ok());
  auto fresh = produce(h, "once", 7, 1);
  ASSERT_TRUE(fresh[0].is_ok());
  EXPECT_EQ(fresh[0]->start_seq, 0u);
  EXPECT_EQ(h.log()->tail("orders", "once")->next_seq, 1u);
  std::filesystem::remove_all(dir);
}


// Fills `segments` segments of small_options' 4 MiB with another stream's
// records, so what was appended before sits in complete, summarized segments.
void roll_segments(StoreHarness& h, const std::string& name, int segments) {
  PayloadBuilder big;
  big.add(0, std::string(150'000, 'f'));
  for (int i = 0; i < segments * 28; i++) {
    h.call([&](StreamStore& store, std::function<void()> finish) {
      AppendRequest req;
      req.payload = big.bytes();
      req.record_count = 1;
      req.payload_checksum = payload_checksum(big.bytes());
      store.append("orders", name, req, [finish](Result<AppendAck> ack) {
        ASSERT_TRUE(ack.is_ok()) << ack.status().to_string();
        finish();
      });
    });
  }
}

// The producer's tag is kept with its batch, so a retry after a restart —
// of an append in a summarized segment or in the scanned last one — gets
// the first answer and writes nothing.
TEST(StreamStore, IdempotentProducersAreRememberedAcrossRestarts) {
  std::string dir = temp_dir();
  std::vector<AppendAck> first;
  {
    StoreHarness h(small_options(dir));
    ASSERT_NE(h.log(), nullptr);
    ASSERT_TRUE(create_bucket(h, "orders").is_ok());
    ASSERT_TRUE(create(h, "orders", "once").is_ok());
    ASSERT_TRUE(create(h, "orders", "filler").is_ok());
    ASSERT_TRUE(create(h, "orders", "doomed").is_ok());
    for (uint64_t seq = 1; seq <= 3; seq++) first.push_back(*produce(h, "once", 7, seq)[0]);
    ASSERT_TRUE(produce(h, "doomed", 7, 1)[0].is_ok());
    roll_segments(h, "filler", 2);  // Seqs 1-3 are now in a summarized segment...
    first.push_back(*produce(h, "once", 7, 4)[0]);  // ...and seq 4 in the last, scanned one.
    ASSERT_TRUE(run_op(h, [](StreamStore& s, StreamStore::InfoCallback cb) {
                  s.delete_stream("orders", "doomed", std::move(cb));
                }).is_ok());
    ASSERT_GE(h.log()->log().segment_count(), 3u);
  }
  StoreHarness h(small_options(dir));
  ASSERT_NE(h.log(), nullptr);
  EXPECT_GE(h.log()->log().recovery_report().segments_from_summary, 1u);
  for (uint64_t seq = 1; seq <= 4; seq++) {
    auto retry = produce(h, "once", 7, seq);
    ASSERT_TRUE(retry[0].is_ok()) << "seq " << seq << ": " << retry[0].status().to_string();
    EXPECT_EQ(retry[0]->start_seq, first[seq - 1].start_seq) << "seq " << seq;
    EXPECT_EQ(retry[0]->end_seq, first[seq - 1].end_seq) << "seq " << seq;
    EXPECT_EQ(retry[0]->end_timestamp, first[seq - 1].end_timestamp) << "seq " << seq;
  }
  EXPECT_EQ(h.log()->tail("orders", "once")->next_seq, 4u) << "no retry was written again";
  // Readers never see the tag: the records and the client's checksums are as sent.
  auto r = read(h, "orders", "once", ReadStart::seq_num(0));
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  ASSERT_EQ(r->batches.size(), 4u);
  for (uint64_t i = 0; i < 4; i++) {
    const StoredBatch& b = r->batches[i];
    EXPECT_EQ(b.header.flags & kBatchFlagProducer, 0);
    EXPECT_EQ(payload_checksum(b.payload), b.header.payload_checksum);
    RecordIterator it(b.payload, 1, BatchLimits{});
    RecordView rec;
    ASSERT_TRUE(it.next(&rec));
    EXPECT_EQ(rec.body, "from producer 7 seq " + std::to_string(i + 1));
  }
  // The window goes on where it was: a new seq is written, an older one refused.
  auto next = produce(h, "once", 7, 5);
  ASSERT_TRUE(next[0].is_ok());
  EXPECT_EQ(next[0]->start_seq, 4u);
  auto stale = produce(h, "once", 7, 0);
  ASSERT_FALSE(stale[0].is_ok());
  EXPECT_EQ(stale[0].status().code(), ErrorCode::kSeqNumMismatch);
  // A stream deleted before the restart and created again starts afresh.
  ASSERT_TRUE(create(h, "orders", "doomed").is_ok());
  auto fresh = produce(h, "doomed", 7, 1);
  ASSERT_TRUE(fresh[0].is_ok());
  EXPECT_EQ(fresh[0]->start_seq, 0u);
  EXPECT_EQ(h.log()->tail("orders", "doomed")->next_seq, 1u);
  std::filesystem::remove_all(dir);
}


// ---- Buckets ----

Result<BucketInfo> reconfigure_bucket(StoreHarness& h, const std::string& name, const BucketConfig& config) {
  return run_bucket_op(h, [&](StreamStore& s, StreamStore::BucketCallback cb) {
    s.reconfigure_bucket(name, config, std::move(cb));
  });
}

Result<BucketInfo> delete_bucket(StoreHarness& h, const std::string& name) {
  return run_bucket_op(h, [&](StreamStore& s, StreamStore::BucketCallback cb) { s.delete_bucket(name, std::move(cb)); });
}

Result<StreamEntry> delete_stream(StoreHarness& h, const std::string& bucket, const std::string& name) {
  return run_op(h, [&](StreamStore& s, StreamStore::InfoCallback cb) { s.delete_stream(bucket, name, std::move(cb)); });
}

std::vector<BucketInfo> buckets_of(StoreHarness& h) {
  std::vector<BucketInfo> out;
  for (const BucketInfo* b : h.log()->catalog().list_buckets("", "", 1000)) out.push_back(*b);
  return out;
}

BucketConfig arrival_on_append() {
  BucketConfig config;
  config.default_stream_config.timestamping = Timestamping::kArrival;
  config.default_stream_config.retention_age_ms = 3'600'000;
  config.create_stream_on_append = true;
  return config;
}

TEST(StreamStore, AStreamNeedsItsBucket) {
  std::string dir = temp_dir();
  StoreHarness h(small_options(dir));
  ASSERT_NE(h.log(), nullptr);
  auto missing = create(h, "orders", "x");
  EXPECT_EQ(missing.status().code(), ErrorCode::kNotFound);
  EXPECT_THAT(missing.status().message(), ::testing::HasSubstr("no bucket 'orders'"));
  EXPECT_EQ(create(h, "Orders", "x").status().code(), ErrorCode::kInvalidArgument) << "names are checked first";
  ASSERT_TRUE(create_bucket(h, "orders").is_ok());
  EXPECT_TRUE(create(h, "orders", "x").is_ok());
  std::filesystem::remove_all(dir);
}

TEST(StreamStore, BucketCreateGetReconfigureDelete) {
  std::string dir = temp_dir();
  StoreHarness h(small_options(dir));
  ASSERT_NE(h.log(), nullptr);
  auto created = create_bucket(h, "orders", arrival_on_append());
  ASSERT_TRUE(created.is_ok()) << created.status().to_string();
  EXPECT_EQ(created->name, "orders");
  EXPECT_EQ(created->config, arrival_on_append());
  EXPECT_GT(created->created_ms, 0u);
  EXPECT_EQ(create_bucket(h, "orders").status().code(), ErrorCode::kAlreadyExists);
  EXPECT_EQ(create_bucket(h, "-orders").status().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(h.log()->find_bucket("orders")->config, arrival_on_append()) << "the second create changed nothing";

  auto reconfigured = reconfigure_bucket(h, "orders", BucketConfig{});
  ASSERT_TRUE(reconfigured.is_ok());
  EXPECT_EQ(reconfigured->config, BucketConfig{});
  EXPECT_EQ(reconfigured->created_ms, created->created_ms);
  EXPECT_EQ(reconfigure_bucket(h, "nope", BucketConfig{}).status().code(), ErrorCode::kNotFound);

  auto deleted = delete_bucket(h, "orders");
  ASSERT_TRUE(deleted.is_ok());
  EXPECT_EQ(deleted->created_ms, created->created_ms) << "answered with what it was";
  EXPECT_EQ(h.log()->find_bucket("orders"), nullptr);
  EXPECT_EQ(delete_bucket(h, "orders").status().code(), ErrorCode::kNotFound);
  EXPECT_EQ(create(h, "orders", "x").status().code(), ErrorCode::kNotFound);
  std::filesystem::remove_all(dir);
}

TEST(StreamStore, ABucketHoldingStreamsIsNotDeleted) {
  std::string dir = temp_dir();
  StoreHarness h(small_options(dir));
  ASSERT_NE(h.log(), nullptr);
  ASSERT_TRUE(create_bucket(h, "orders").is_ok());
  ASSERT_TRUE(create(h, "orders", "x").is_ok());
  EXPECT_EQ(delete_bucket(h, "orders").status().code(), ErrorCode::kAlreadyExists);
  ASSERT_NE(h.log()->find_bucket("orders"), nullptr);
  EXPECT_TRUE(append(h, "orders", "x", 0).is_ok()) << "the refused delete left nothing behind";
  ASSERT_TRUE(delete_stream(h, "orders", "x").is_ok());
  EXPECT_TRUE(delete_bucket(h, "orders").is_ok());
  std::filesystem::remove_all(dir);
}

TEST(StreamStore, NoStreamIsCreatedInABucketMarkedForDeletion) {
  std::string dir = temp_dir();
  StoreHarness h(small_options(dir));
  ASSERT_NE(h.log(), nullptr);
  ASSERT_TRUE(create_bucket(h, "orders").is_ok());
  // A create in flight counts as a stream in the bucket.
  bool marked_with_stream = false;
  Result<StreamEntry> in_flight = Status(ErrorCode::kInternal, "not run");
  h.call([&](StreamStore& store, std::function<void()> finish) {
    store.create_stream("orders", "x", {}, [&in_flight, finish](Result<StreamEntry> r) {
      in_flight = std::move(r);
      finish();
    });
    marked_with_stream = store.mark_bucket_deleting("orders");
    store.unmark_bucket_deleting("orders");
  });
  EXPECT_TRUE(marked_with_stream);
  ASSERT_TRUE(in_flight.is_ok());
  ASSERT_TRUE(delete_stream(h, "orders", "x").is_ok());

  bool had_streams = true;
  h.call([&](StreamStore& store, std::function<void()> finish) {
    had_streams = store.mark_bucket_deleting("orders");
    finish();
  });
  EXPECT_FALSE(had_streams);
  EXPECT_EQ(create(h, "orders", "y").status().code(), ErrorCode::kUnavailable);
  h.call([&](StreamStore& store, std::function<void()> finish) {
    store.unmark_bucket_deleting("orders");
    finish();
  });
  EXPECT_TRUE(create(h, "orders", "y").is_ok()) << "unmarked: streams may come again";
  std::filesystem::remove_all(dir);
}

TEST(StreamStore, ACreateWithTheBucketDefaultTakesItsConfig) {
  std::string dir = temp_dir();
  StoreHarness h(small_options(dir));
  ASSERT_NE(h.log(), nullptr);
  ASSERT_TRUE(create_bucket(h, "orders", arrival_on_append()).is_ok());
  auto info = run_op(h, [](StreamStore& s, StreamStore::InfoCallback cb) {
    s.create_stream_default("orders", "x", std::move(cb));
  });
  ASSERT_TRUE(info.is_ok()) << info.status().to_string();
  EXPECT_EQ(info->config, arrival_on_append().default_stream_config);
  std::filesystem::remove_all(dir);
}

TEST(StreamStore, AnAppendCreatesAMissingStreamWhenItsBucketSaysSo) {
  std::string dir = temp_dir();
  StoreHarness h(small_options(dir));
  ASSERT_NE(h.log(), nullptr);
  ASSERT_TRUE(create_bucket(h, "plain").is_ok());
  ASSERT_TRUE(create_bucket(h, "auto", arrival_on_append()).is_ok());
  EXPECT_EQ(append(h, "plain", "x", 0).status().code(), ErrorCode::kNotFound);
  EXPECT_EQ(h.log()->catalog().find("plain", "x"), nullptr);
  // Several appends to one missing stream: one create, every append lands once, in order.
  struct Tally {
    std::vector<Result<AppendAck>> acks;
    int left = 5;
    std::function<void()> finish;
  } tally;
  h.call([&](StreamStore& store, std::function<void()> finish) {
    tally.finish = std::move(finish);
    for (uint64_t i = 0; i < 5; i++) {
      // The request's bytes die with this frame: the store must have copied them.
      auto payload = std::make_unique<PayloadBuilder>();
      payload->add(0, record_body(7, i));
      AppendRequest req;
      req.payload = payload->bytes();
      req.record_count = 1;
      req.payload_checksum = payload_checksum(payload->bytes());
      req.arrival_ms = 1000 + i;
      store.append("auto", "x", req, [t = &tally](Result<AppendAck> r) {
        t->acks.push_back(std::move(r));
        if (--t->left == 0) t->finish();
      });
    }
  });
  ASSERT_EQ(tally.acks.size(), 5u);
  for (uint64_t i = 0; i < 5; i++) {
    ASSERT_TRUE(tally.acks[i].is_ok()) << tally.acks[i].status().to_string();
    EXPECT_EQ(tally.acks[i]->start_seq, i);
  }
  const StreamEntry* created = h.log()->catalog().find("auto", "x");
  ASSERT_NE(created, nullptr);
  EXPECT_EQ(created->config, arrival_on_append().default_stream_config);
  auto r = read(h, "auto", "x", ReadStart::seq_num(0));
  ASSERT_TRUE(r.is_ok());
  EXPECT_EQ(r->tail, 5u);
  EXPECT_EQ(read(h, "auto", "y", ReadStart::seq_num(0)).status().code(), ErrorCode::kNotFound)
      << "create_stream_on_append does not create on read";
  std::filesystem::remove_all(dir);
}

TEST(StreamStore, AReadCreatesAMissingStreamWhenItsBucketSaysSo) {
  std::string dir = temp_dir();
  StoreHarness h(small_options(dir));
  ASSERT_NE(h.log(), nullptr);
  BucketConfig on_read;
  on_read.create_stream_on_read = true;
  ASSERT_TRUE(create_bucket(h, "auto", on_read).is_ok());
  auto r = read(h, "auto", "x", ReadStart::seq_num(0));
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_TRUE(r->batches.empty());
  EXPECT_EQ(r->tail, 0u);
  EXPECT_NE(h.log()->catalog().find("auto", "x"), nullptr);
  EXPECT_EQ(read(h, "auto", "y", ReadStart::seq_num(3)).status().code(), ErrorCode::kOutOfRange)
      << "created, then read like any empty stream";
  EXPECT_NE(h.log()->catalog().find("auto", "y"), nullptr);
  EXPECT_EQ(append(h, "auto", "z", 0).status().code(), ErrorCode::kNotFound)
      << "create_stream_on_read does not create on append";
  std::filesystem::remove_all(dir);
}

TEST(StreamStore, BucketsSurviveARestart) {
  std::string dir = temp_dir();
  std::vector<BucketInfo> before;
  {
    StoreHarness h(small_options(dir));
    ASSERT_NE(h.log(), nullptr);
    ASSERT_TRUE(create_bucket(h, "kept").is_ok());
    ASSERT_TRUE(create_bucket(h, "changed").is_ok());
    ASSERT_TRUE(create_bucket(h, "gone").is_ok());
    ASSERT_TRUE(reconfigure_bucket(h, "changed", arrival_on_append()).is_ok());
    ASSERT_TRUE(delete_bucket(h, "gone").is_ok());
    before = buckets_of(h);
    ASSERT_EQ(before.size(), 2u);
  }
  StoreHarness h(small_options(dir));
  ASSERT_NE(h.log(), nullptr) << h.open_status().to_string();
  EXPECT_EQ(buckets_of(h), before);
  EXPECT_TRUE(h.log()->bucket_home());
  EXPECT_TRUE(append(h, "changed", "x", 0).is_ok()) << "its config came back too";
  std::filesystem::remove_all(dir);
}

TEST(StreamStore, CatalogSnapshotsKeepTheBuckets) {
  std::string dir = temp_dir();
  StreamConfig capped;
  capped.retention_bytes = 100'000;
  std::vector<BucketInfo> before;
  {
    StoreHarness h(small_segments(dir));
    ASSERT_NE(h.log(), nullptr);
    ASSERT_TRUE(create_bucket(h, "orders").is_ok());
    ASSERT_TRUE(create_bucket(h, "spare", arrival_on_append()).is_ok());
    ASSERT_TRUE(create_bucket(h, "gone").is_ok());
    ASSERT_TRUE(delete_bucket(h, "gone").is_ok());
    ASSERT_TRUE(create(h, "orders", "capped", capped).is_ok());
    append_at(h, "capped", 4000, 1000, 1000);  // ~4 MiB through 1 MiB segments.
    settle(h, 2000);
    // The bucket records' segment went: only the snapshot holds them now.
    ASSERT_FALSE(std::filesystem::exists(dir + "/00000000000000000000.seg"));
    before = buckets_of(h);
  }
  StoreHarness h(small_segments(dir));
  ASSERT_NE(h.log(), nullptr) << h.open_status().to_string();
  EXPECT_EQ(buckets_of(h), before);
  ASSERT_EQ(before.size(), 2u);
  EXPECT_EQ(before[1].config, arrival_on_append());
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace runnel

namespace runnel {
namespace {

// A catalog snapshot is a record per stream; with more streams than the log
// lets appends wait, it used to be handed over all at once, overflow the
// queue and fail every time (and old segments were never freed). Now it is
// paced by acks.
TEST(StreamStore, SnapshotsMoreStreamsThanAppendsMayWait) {
  std::string dir = temp_dir();
  LogOptions o = small_segments(dir);
  // Room for ~600 snapshot records in the write buffers and 600 more waiting.
  o.limits.payload_bytes_max = 60u << 10;
  o.flush_bytes_max = 64u << 10;
  o.write_buffers = 2;
  o.flushes_in_flight_max = 1;
  o.appends_waiting_max = 600;
  constexpr int kStreams = 1500;
  StreamConfig capped;
  capped.retention_bytes = 100'000;
  {
    StoreHarness h(o);
    ASSERT_NE(h.log(), nullptr);
    ASSERT_TRUE(create_bucket(h, "orders").is_ok());
    for (int i = 0; i < kStreams; i++) ASSERT_TRUE(create(h, "orders", "s" + std::to_string(i)).is_ok());
    ASSERT_TRUE(create(h, "orders", "capped", capped).is_ok());
    append_at(h, "capped", 4000, 1000, 1000);
    const size_t before = segment_files(dir);
    ASSERT_GE(before, 8u);  // ~6 MiB of creates (a block each) and 4 MiB of data.
    settle(h, 2000);
    EXPECT_LE(segment_files(dir), 3u) << "the snapshot must let the creates' segments go (had " << before << ")";
  }
  StoreHarness h(o);
  ASSERT_NE(h.log(), nullptr) << h.open_status().to_string();
  EXPECT_EQ(h.log()->catalog().size(), size_t{kStreams} + 1);
  ASSERT_NE(h.log()->catalog().find("orders", "s1499"), nullptr);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace runnel
