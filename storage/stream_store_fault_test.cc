// StreamStore on the simulated disk: power loss at random moments while
// streams are appended to, trimmed by retention, their segments reclaimed
// or compacted (a slow stream's few records pin old segments) and the
// catalog snapshotted. After every crash the catalog must be
// whole and every acknowledged record that retention did not drop must be
// there, intact. Seeded; RUNNEL_SEED=N replays one (core/test_seed.h).

#include <gtest/gtest.h>

#include <cstdlib>
#include <map>
#include <random>

#include <unistd.h>

#include "core/test_seed.h"
#include "storage/log_test_util.h"
#include "storage/sim_file_io.h"
#include "storage/stream_store.h"

namespace runnel {
namespace {

using StoreHarness = ShardHarness<StreamStore>;

LogOptions options() {
  LogOptions o = small_options("/data/shard-0");
  o.segment_bytes = 1u << 20;
  o.flush_bytes_max = 64u << 10;
  o.limits.payload_bytes_max = 32u << 10;
  o.index_interval_bytes = 1;
  o.dsync = false;  // write + fdatasync: unsynced writes are what power loss takes.
  return o;
}

std::unique_ptr<StoreHarness> start(SimDisk& disk, uint64_t seed) {
  return std::make_unique<StoreHarness>(options(), [&disk, seed](Reactor& r) {
    auto io = std::make_unique<SimFileIo>(disk, &r, SimFaults{}, seed);
    io->set_dead_after_crash(true);
    return io;
  });
}

const char* kNames[] = {"capped", "kept", "slow"};
constexpr int kSlow = 2;  // Unbounded and written rarely: its records pin old segments until compacted.

uint64_t body_stream(const std::string& name) { return name == "capped" ? 1 : name == "kept" ? 2 : 3; }

// On the shard: appends to both streams, runs retention every few acks, and
// pulls the plug after `acks` acknowledgements. Returns acked end_seq per name.
std::map<std::string, uint64_t> run_until_crash(StoreHarness& h, SimDisk& disk, uint64_t seed, int acks) {
  struct Writer {
    StreamStore* store;
    SimDisk* disk;
    uint64_t seed;
    int acks_left;
    std::map<std::string, uint64_t> acked;
    std::map<std::string, uint64_t> next;
    std::function<void()> finish;
    bool crashed = false;
    uint64_t now_ms = 1'000'000;

    void append(int which) {
      if (crashed) return;
      const std::string name = kNames[which];
      PayloadBuilder payload;
      const uint64_t seq = next[name];
      payload.add(now_ms, record_body(body_stream(name), seq));
      AppendRequest req;
      req.payload = payload.bytes();
      req.record_count = 1;
      req.payload_checksum = payload_checksum(payload.bytes());
      req.arrival_ms = now_ms;
      next[name] = seq + 1;
      store->append("orders", name, req, [this, which, seq](Result<AppendAck> ack) {
        if (crashed) return;
        const std::string stream = kNames[which];
        if (!ack) {
          next[stream] = seq;  // Refused (e.g. kOverloaded): try the same seq again.
          Reactor::current().post([this, which] { append(which); });
          return;
        }
        acked[stream] = std::max(acked[stream], ack->end_seq);
        if (--acks_left == 0) {
          crashed = true;
          disk->crash(seed);
          return finish();
        }
        if (acks_left % 50 == 0) store->enforce_retention(now_ms += 10);
        if (which != kSlow) append(which);
        if (which != kSlow && acks_left % 97 == 0) append(kSlow);
      });
    }
  };
  static std::vector<std::unique_ptr<Writer>> keep;  // Callbacks may outlive the call.
  auto* writer = new Writer{h.log(), &disk, seed, acks, {}, {}, nullptr};
  keep.emplace_back(writer);
  h.call([&](StreamStore& store, std::function<void()> finish) {
    writer->finish = std::move(finish);
    for (const char* name : kNames) writer->next[name] = store.tail("orders", name)->next_seq;
    for (int which = 0; which < kSlow; which++) writer->append(which);
  });
  return writer->acked;
}

// Every record of `name` from its trim point to its tail is the one written.
void expect_intact(StoreHarness& h, const std::string& name) {
  const StreamEntry* info = h.log()->catalog().find("orders", name);
  ASSERT_NE(info, nullptr) << name << " lost from the catalog";
  const uint64_t tail = h.log()->tail("orders", name)->next_seq;
  uint64_t seq = info->trim_seq;
  while (seq < tail) {
    Result<ReadResult> r = Status(ErrorCode::kInternal, "");
    h.call([&](StreamStore& store, std::function<void()> finish) {
      store.read("orders", name, ReadStart::seq_num(seq), 500, 1 << 20, [&r, finish](Result<ReadResult> res) {
        r = std::move(res);
        finish();
      });
    });
    ASSERT_TRUE(r.is_ok()) << name << " at " << seq << ": " << r.status().to_string();
    ASSERT_FALSE(r->batches.empty()) << name << " read stopped at " << seq << " below the tail " << tail;
    for (size_t i = 0; i < r->batches.size(); i++) {
      const StoredBatch& b = r->batches[i];
      RecordIterator it(b.payload, b.header.record_count, BatchLimits{});
      RecordView rec;
      uint64_t at = b.header.base_seq;
      while (it.next(&rec)) {
        if (at >= seq) {
          ASSERT_EQ(at, seq);
          ASSERT_EQ(rec.body, record_body(body_stream(name), seq)) << name << " seq " << seq;
          seq++;
        }
        at++;
      }
    }
  }
}

// Retention passes, each of which may start a compaction, with a little
// writing between them so the log rolls on (as a live system would).
void settle(StoreHarness& h, uint64_t now_ms) {
  for (int pass = 0; pass < 120; pass++) {
    h.call([&](StreamStore& store, std::function<void()> finish) {
      store.enforce_retention(now_ms += 10);
      finish();
    });
    for (int wait = 0; wait < 2000; wait++) {
      bool busy = true;
      h.call([&](StreamStore& store, std::function<void()> finish) {
        busy = store.log().compacting();
        finish();
      });
      if (!busy) break;
      ::usleep(1000);
    }
    for (int i = 0; i < 8; i++) {
      Result<AppendAck> ack = Status(ErrorCode::kInternal, "");
      h.call([&](StreamStore& store, std::function<void()> finish) {
        const uint64_t seq = store.tail("orders", "capped")->next_seq;
        PayloadBuilder payload;
        payload.add(now_ms, record_body(1, seq));
        AppendRequest req;
        req.payload = payload.bytes();
        req.record_count = 1;
        req.payload_checksum = payload_checksum(payload.bytes());
        req.arrival_ms = now_ms;
        store.append("orders", "capped", req, [&ack, finish](Result<AppendAck> r) {
          ack = std::move(r);
          finish();
        });
      });
      ASSERT_TRUE(ack.is_ok()) << ack.status().to_string();
    }
  }
}

TEST(StreamStoreFaults, CatalogAndRetainedRecordsSurvivePowerLossAmidReclamation) {
  for (uint64_t seed : test_seeds(6)) {
    SCOPED_TRACE(seed_trace(seed));
    std::mt19937_64 rng(seed);
    SimDisk disk;
    {
      auto h = start(disk, seed);
      ASSERT_NE(h->log(), nullptr);
      // Two streams are bounded, so old segments hold mostly trimmed data;
      // the slow one is not, and compaction moves its records forward.
      StreamConfig capped;
      capped.retention_bytes = 20'000;
      StreamConfig kept;
      kept.retention_bytes = 60'000;
      Result<BucketInfo> bucket = Status(ErrorCode::kInternal, "");
      BucketConfig bucket_config;
      bucket_config.create_stream_on_read = true;
      h->call([&](StreamStore& store, std::function<void()> finish) {
        store.create_bucket("orders", bucket_config, [&bucket, finish](Result<BucketInfo> r) {
          bucket = std::move(r);
          finish();
        });
      });
      ASSERT_TRUE(bucket.is_ok()) << bucket.status().to_string();
      Result<StreamEntry> created = Status(ErrorCode::kInternal, "");
      for (const char* name : kNames) {
        h->call([&](StreamStore& store, std::function<void()> finish) {
          const std::string n = name;
          store.create_stream("orders", name,
                              n == "capped" ? capped
                              : n == "kept" ? kept
                                            : StreamConfig{},
                              [&created, finish](Result<StreamEntry> r) {
                                created = std::move(r);
                                finish();
                              });
        });
        ASSERT_TRUE(created.is_ok()) << created.status().to_string();
      }
    }
    std::map<std::string, uint64_t> acked;
    for (int round = 0; round < 4; round++) {
      auto h = start(disk, seed + static_cast<uint64_t>(round) * 101);
      ASSERT_NE(h->log(), nullptr) << h->open_status().to_string();
      // The bucket's record sits in the oldest segment: snapshots must carry it.
      ASSERT_NE(h->log()->catalog().find_bucket("orders"), nullptr) << "the bucket was lost";
      EXPECT_TRUE(h->log()->catalog().find_bucket("orders")->config.create_stream_on_read);
      for (const char* name : kNames) {
        ASSERT_GE(h->log()->tail("orders", name)->next_seq, acked[name]) << name << " lost acknowledged records";
        expect_intact(*h, name);
      }
      auto more = run_until_crash(*h, disk, rng(), 2000 + static_cast<int>(rng() % 6000));
      for (auto& [name, end] : more) acked[name] = std::max(acked[name], end);
    }
    auto h = start(disk, seed ^ 0x5eed);
    ASSERT_NE(h->log(), nullptr) << h->open_status().to_string();
    ASSERT_NE(h->log()->catalog().find_bucket("orders"), nullptr) << "the bucket was lost";
    for (const char* name : kNames) {
      ASSERT_GE(h->log()->tail("orders", name)->next_seq, acked[name]) << name << " lost acknowledged records";
      expect_intact(*h, name);
    }
    EXPECT_GT(h->log()->catalog().find("orders", "kept")->trim_seq, 0u) << "retention never ran";
    // Space comes back although the slow stream keeps every record.
    EXPECT_EQ(h->log()->catalog().find("orders", "slow")->trim_seq, 0u);
    settle(*h, 10'000'000);
    EXPECT_LE(h->log()->log().segment_count(), 6u) << "the slow stream still pins old segments";
    for (const char* name : kNames) expect_intact(*h, name);
    // Its first segments are gone by now; the bucket lives on in snapshots.
    h.reset();
    h = start(disk, seed ^ 0xb0c);
    ASSERT_NE(h->log(), nullptr) << h->open_status().to_string();
    EXPECT_NE(h->log()->catalog().find_bucket("orders"), nullptr) << "the bucket was lost";
  }
}

}  // namespace
}  // namespace runnel
