#include "storage/sim_file_io.h"

#include <gtest/gtest.h>

#include <cerrno>
#include <climits>
#include <cstdlib>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "core/shard_set.h"

namespace runnel {
namespace {

constexpr uint8_t kOld = 0xAA;  // Bytes already durable before the write under test.

// Bytes that are never kOld (always odd), so a prefix of them is easy to find.
std::vector<uint8_t> pattern(size_t n, uint8_t salt) {
  std::vector<uint8_t> bytes(n);
  for (size_t i = 0; i < n; i++) bytes[i] = static_cast<uint8_t>(((i * 7 + salt) & 0xFF) | 1);
  return bytes;
}

std::vector<uint8_t> filled(size_t n, uint8_t value) { return std::vector<uint8_t>(n, value); }

std::vector<uint8_t> contents_of(const SimDisk& disk, const std::string& path) {
  Result<std::vector<uint8_t>> bytes = disk.contents(path);
  EXPECT_TRUE(bytes.is_ok()) << path;
  return bytes.is_ok() ? *bytes : std::vector<uint8_t>{};
}

// How many leading bytes of `actual` come from `written`; the rest must be `old`.
// Returns SIZE_MAX if the bytes are neither.
size_t landed_prefix(const std::vector<uint8_t>& actual, const std::vector<uint8_t>& written, uint8_t old) {
  if (actual.size() != written.size()) return SIZE_MAX;
  size_t k = 0;
  while (k < actual.size() && actual[k] == written[k]) k++;
  for (size_t i = k; i < actual.size(); i++) {
    if (actual[i] != old) return SIZE_MAX;
  }
  return k;
}

// A kDmaAlignment-aligned buffer, as O_DIRECT needs.
class AlignedBuffer {
 public:
  explicit AlignedBuffer(size_t bytes)
      : bytes_(bytes), data_(static_cast<uint8_t*>(std::aligned_alloc(kDmaAlignment, round_up(bytes))), &std::free) {
    RUNNEL_ASSERT(data_ != nullptr);
  }
  uint8_t* data() { return data_.get(); }
  size_t size() const { return bytes_; }
  void fill_from(const std::vector<uint8_t>& bytes) {
    RUNNEL_ASSERT(bytes.size() <= round_up(bytes_));
    std::copy(bytes.begin(), bytes.end(), data_.get());
  }

 private:
  static size_t round_up(size_t n) { return (n + kDmaAlignment - 1) / kDmaAlignment * kDmaAlignment; }
  size_t bytes_;
  std::unique_ptr<uint8_t, decltype(&std::free)> data_;
};

// A SimFileIo without a reactor: the _sync operations only.
SimFileIo sync_io(SimDisk& disk, SimFaults faults = {}, uint64_t seed = 1) {
  return SimFileIo(disk, nullptr, faults, seed);
}

// Creates `path` (and its directory), made durable by name, and opens it.
void create_file(SimFileIo& io, const std::string& path, FileId* file, bool direct = false) {
  const std::string dir = path.substr(0, path.rfind('/'));
  ASSERT_TRUE(io.create_directories_sync(dir).is_ok());
  Result<FileId> opened = io.open_sync(path, /*create=*/true, direct);
  ASSERT_TRUE(opened.is_ok()) << opened.status().to_string();
  ASSERT_TRUE(io.fsync_dir_sync(dir).is_ok());
  *file = *opened;
}

// A file whose durable content is `old_bytes` bytes of kOld.
void create_durable_file(SimFileIo& io, const std::string& path, size_t old_bytes, FileId* file) {
  ASSERT_NO_FATAL_FAILURE(create_file(io, path, file));
  const std::vector<uint8_t> old = filled(old_bytes, kOld);
  ASSERT_TRUE(io.write_sync(*file, old.data(), old.size(), 0).is_ok());
  ASSERT_TRUE(io.fdatasync_sync(*file).is_ok());
}

ShardSetOptions one_shard() {
  ShardSetOptions o;
  o.shards = 1;
  o.ring_entries = 64;
  o.message_queue_capacity = 1024;
  o.shutdown_timeout_ms = 10'000;
  o.pin_threads = false;
  return o;
}

constexpr int kNoResult = INT_MIN;
using AsyncStart = std::function<void(SimFileIo& io, FileOp* op, FileOp::Callback done)>;

// Runs one asynchronous operation, started by `start` on a fresh one-shard
// reactor with its own SimFileIo on `disk`, and returns its result.
int run_async(SimDisk& disk, const SimFaults& faults, uint64_t seed, const AsyncStart& start) {
  int result = kNoResult;
  FileOp op;
  std::unique_ptr<SimFileIo> io;  // Destroyed after the shard has stopped.
  ShardSet shards(one_shard());
  Status started = shards.start([&](Reactor& r) {
    io = std::make_unique<SimFileIo>(disk, &r, faults, seed);
    start(*io, &op, [&result, &r](int res) {
      result = res;
      r.request_stop();
    });
    return Status::ok();
  });
  EXPECT_TRUE(started.is_ok()) << started.to_string();
  shards.join();
  return result;
}

// --- basics ---

TEST(SimFileIo, SyncWriteThenReadBack) {
  SimDisk disk;
  SimFileIo io = sync_io(disk);
  FileId f = -1;
  ASSERT_NO_FATAL_FAILURE(create_file(io, "/data/seg", &f));
  const std::vector<uint8_t> data = pattern(10'000, 3);
  ASSERT_TRUE(io.write_sync(f, data.data(), data.size(), 0).is_ok());
  std::vector<uint8_t> back(data.size());
  Result<size_t> n = io.read_sync(f, back.data(), back.size(), 0);
  ASSERT_TRUE(n.is_ok()) << n.status().to_string();
  EXPECT_EQ(*n, data.size());
  EXPECT_EQ(back, data);
  EXPECT_EQ(io.write_count(), 1u);
  EXPECT_EQ(io.bytes_written(), data.size());
}

TEST(SimFileIo, ReadPastEndIsShortAndHolesReadAsZeros) {
  SimDisk disk;
  SimFileIo io = sync_io(disk);
  FileId f = -1;
  ASSERT_NO_FATAL_FAILURE(create_file(io, "/data/seg", &f));
  const std::vector<uint8_t> data = pattern(100, 1);
  ASSERT_TRUE(io.write_sync(f, data.data(), data.size(), 1000).is_ok());
  std::vector<uint8_t> back(2000, 0xFF);
  Result<size_t> n = io.read_sync(f, back.data(), back.size(), 0);
  ASSERT_TRUE(n.is_ok());
  ASSERT_EQ(*n, 1100u);
  EXPECT_EQ(std::vector<uint8_t>(back.begin(), back.begin() + 1000), filled(1000, 0));
  EXPECT_EQ(std::vector<uint8_t>(back.begin() + 1000, back.begin() + 1100), data);
  EXPECT_EQ(*io.read_sync(f, back.data(), back.size(), 5000), 0u);
}

// --- durability and crashes ---

TEST(SimFileIo, PendingWriteIsVisibleAndCrashLosesKeepsOrTearsIt) {
  bool seen_lost = false;
  bool seen_kept = false;
  bool seen_torn = false;
  for (uint64_t seed = 1; seed <= 64; seed++) {
    SCOPED_TRACE(testing::Message() << "crash seed " << seed);
    SimDisk disk;
    const std::vector<uint8_t> data = pattern(4096, static_cast<uint8_t>(seed));
    {
      SimFileIo io = sync_io(disk);
      FileId f = -1;
      ASSERT_NO_FATAL_FAILURE(create_durable_file(io, "/d/f", 4096, &f));
      ASSERT_TRUE(io.write_sync(f, data.data(), data.size(), 0).is_ok());
      ASSERT_EQ(contents_of(disk, "/d/f"), data);
      ASSERT_EQ(disk.pending_write_count("/d/f"), 1u);
    }
    const SimCrashStats stats = disk.crash(seed);
    const size_t k = landed_prefix(contents_of(disk, "/d/f"), data, kOld);
    ASSERT_NE(k, SIZE_MAX) << "bytes are neither the write nor the old data";
    ASSERT_EQ(stats.writes_lost + stats.writes_kept + stats.writes_torn, 1u);
    if (k == 0) {
      EXPECT_EQ(stats.writes_lost, 1u);
      seen_lost = true;
    } else if (k == data.size()) {
      EXPECT_EQ(stats.writes_kept, 1u);
      seen_kept = true;
    } else {
      EXPECT_EQ(stats.writes_torn, 1u);
      EXPECT_EQ(k % kSimSectorBytes, 0u);
      seen_torn = true;
    }
    EXPECT_EQ(disk.pending_write_count("/d/f"), 0u);
  }
  EXPECT_TRUE(seen_lost);
  EXPECT_TRUE(seen_kept);
  EXPECT_TRUE(seen_torn);
}

TEST(SimFileIo, LostAppendLeavesTheFileShorter) {
  for (uint64_t seed = 1; seed <= 32; seed++) {
    SCOPED_TRACE(testing::Message() << "crash seed " << seed);
    SimDisk disk;
    const std::vector<uint8_t> data = pattern(4096, 9);
    {
      SimFileIo io = sync_io(disk);
      FileId f = -1;
      ASSERT_NO_FATAL_FAILURE(create_durable_file(io, "/d/f", 512, &f));
      ASSERT_TRUE(io.write_sync(f, data.data(), data.size(), 512).is_ok());
    }
    const SimCrashStats stats = disk.crash(seed);
    const std::vector<uint8_t> after = contents_of(disk, "/d/f");
    if (stats.writes_lost == 1) {
      EXPECT_EQ(after.size(), 512u);
    }
    if (stats.writes_kept == 1) {
      EXPECT_EQ(after.size(), 512u + 4096u);
    }
    if (stats.writes_torn == 1) {
      EXPECT_GT(after.size(), 512u);
      EXPECT_LT(after.size(), 512u + 4096u);
      EXPECT_EQ(after.size() % kSimSectorBytes, 0u);
    }
  }
}

TEST(SimFileIo, DsyncWriteSurvivesCrash) {
  for (uint64_t seed = 1; seed <= 8; seed++) {
    SCOPED_TRACE(testing::Message() << "io seed and crash seed " << seed);
    SimDisk disk;
    {
      SimFileIo io = sync_io(disk);
      FileId f = -1;
      ASSERT_NO_FATAL_FAILURE(create_file(io, "/d/f", &f));
    }
    const std::vector<uint8_t> data = pattern(3000, 5);
    const int res = run_async(disk, {}, seed, [&](SimFileIo& io, FileOp* op, FileOp::Callback done) {
      const FileId f = io.open_sync("/d/f", false, false).value();
      io.write(f, data.data(), data.size(), 0, kWriteDsync, op, std::move(done));
    });
    ASSERT_EQ(res, 3000);
    EXPECT_EQ(disk.pending_write_count("/d/f"), 0u);
    disk.crash(seed);
    EXPECT_EQ(contents_of(disk, "/d/f"), data);
  }
}

TEST(SimFileIo, DsyncWriteWinsOverEarlierPendingWriteAtCrash) {
  for (uint64_t seed = 1; seed <= 16; seed++) {
    SCOPED_TRACE(testing::Message() << "crash seed " << seed);
    SimDisk disk;
    const std::vector<uint8_t> early = pattern(4096, 1);
    const std::vector<uint8_t> late = filled(1024, 0x42);
    {
      SimFileIo io = sync_io(disk);
      FileId f = -1;
      ASSERT_NO_FATAL_FAILURE(create_durable_file(io, "/d/f", 4096, &f));
      ASSERT_TRUE(io.write_sync(f, early.data(), early.size(), 0).is_ok());
    }
    ASSERT_EQ(run_async(disk, {}, seed,
                        [&](SimFileIo& io, FileOp* op, FileOp::Callback done) {
                          const FileId f = io.open_sync("/d/f", false, false).value();
                          io.write(f, late.data(), late.size(), 1024, kWriteDsync, op, std::move(done));
                        }),
              1024);
    std::vector<uint8_t> visible = early;
    std::copy(late.begin(), late.end(), visible.begin() + 1024);
    EXPECT_EQ(contents_of(disk, "/d/f"), visible);
    disk.crash(seed);
    const std::vector<uint8_t> after = contents_of(disk, "/d/f");
    ASSERT_EQ(after.size(), 4096u);
    EXPECT_EQ(std::vector<uint8_t>(after.begin() + 1024, after.begin() + 2048), late);
  }
}

TEST(SimFileIo, FdatasyncMakesEarlierWritesSurviveCrash) {
  for (uint64_t seed = 1; seed <= 32; seed++) {
    SCOPED_TRACE(testing::Message() << "crash seed " << seed);
    SimDisk disk;
    const std::vector<uint8_t> a = pattern(1000, 1);
    const std::vector<uint8_t> b = pattern(1000, 2);
    {
      SimFileIo io = sync_io(disk);
      FileId f = -1;
      ASSERT_NO_FATAL_FAILURE(create_file(io, "/d/f", &f));
      ASSERT_TRUE(io.write_sync(f, a.data(), a.size(), 0).is_ok());
      ASSERT_TRUE(io.write_sync(f, b.data(), b.size(), 1000).is_ok());
      ASSERT_TRUE(io.fdatasync_sync(f).is_ok());
      EXPECT_EQ(disk.pending_write_count("/d/f"), 0u);
      EXPECT_EQ(io.fdatasync_count(), 1u);
      const std::vector<uint8_t> later = pattern(5000, 3);  // Not synced: may go any way.
      ASSERT_TRUE(io.write_sync(f, later.data(), later.size(), 2000).is_ok());
    }
    disk.crash(seed);
    const std::vector<uint8_t> after = contents_of(disk, "/d/f");
    ASSERT_GE(after.size(), 2000u);
    EXPECT_EQ(std::vector<uint8_t>(after.begin(), after.begin() + 1000), a);
    EXPECT_EQ(std::vector<uint8_t>(after.begin() + 1000, after.begin() + 2000), b);
  }
}

TEST(SimFileIo, TornWriteFaultKeepsOnlyASectorPrefixAtCrash) {
  for (uint64_t seed = 1; seed <= 32; seed++) {
    SCOPED_TRACE(testing::Message() << "io seed and crash seed " << seed);
    SimDisk disk;
    const std::vector<uint8_t> data = pattern(8192, 4);
    {
      SimFileIo io = sync_io(disk, {}, seed);
      FileId f = -1;
      ASSERT_NO_FATAL_FAILURE(create_durable_file(io, "/d/f", 8192, &f));
      SimFaults faults;
      faults.torn_write = 1;
      io.set_faults(faults);
      ASSERT_TRUE(io.write_sync(f, data.data(), data.size(), 0).is_ok());
      ASSERT_TRUE(io.fdatasync_sync(f).is_ok());  // The device lies about this flush.
      EXPECT_EQ(contents_of(disk, "/d/f"), data);
    }
    const SimCrashStats stats = disk.crash(seed);
    EXPECT_EQ(stats.writes_lost + stats.writes_kept + stats.writes_torn, 0u);  // Nothing was pending.
    const size_t k = landed_prefix(contents_of(disk, "/d/f"), data, kOld);
    ASSERT_NE(k, SIZE_MAX);
    EXPECT_LT(k, data.size());
    EXPECT_EQ(k % kSimSectorBytes, 0u);
  }
}

TEST(SimFileIo, UnsyncedTornWriteFaultIsTornAtCrash) {
  for (uint64_t seed = 1; seed <= 16; seed++) {
    SCOPED_TRACE(testing::Message() << "io seed and crash seed " << seed);
    SimDisk disk;
    const std::vector<uint8_t> data = pattern(8192, 4);
    {
      SimFaults faults;
      SimFileIo io = sync_io(disk, faults, seed);
      FileId f = -1;
      ASSERT_NO_FATAL_FAILURE(create_durable_file(io, "/d/f", 8192, &f));
      faults.torn_write = 1;
      io.set_faults(faults);
      ASSERT_TRUE(io.write_sync(f, data.data(), data.size(), 0).is_ok());
    }
    const SimCrashStats stats = disk.crash(seed);
    EXPECT_EQ(stats.writes_torn, 1u);
    const size_t k = landed_prefix(contents_of(disk, "/d/f"), data, kOld);
    ASSERT_NE(k, SIZE_MAX);
    EXPECT_LT(k, data.size());
    EXPECT_EQ(k % kSimSectorBytes, 0u);
  }
}

TEST(SimFileIo, CrashReplaysFromItsSeed) {
  auto run = [](uint64_t seed) {
    SimDisk disk;
    SimFileIo io = sync_io(disk);
    FileId f = -1;
    create_file(io, "/d/f", &f);
    for (uint8_t i = 0; i < 16; i++) {
      const std::vector<uint8_t> data = pattern(3000, i);
      EXPECT_TRUE(io.write_sync(f, data.data(), data.size(), i * 2000u).is_ok());
    }
    disk.crash(seed);
    return *disk.contents("/d/f");
  };
  for (uint64_t seed = 1; seed <= 8; seed++) {
    SCOPED_TRACE(testing::Message() << "crash seed " << seed);
    EXPECT_EQ(run(seed), run(seed));
  }
}

// --- directory entries ---

TEST(SimFileIo, NewFileWithoutDirSyncDisappearsAtCrash) {
  SimDisk disk;
  {
    SimFileIo io = sync_io(disk);
    ASSERT_TRUE(io.create_directories_sync("/d").is_ok());
    Result<FileId> f = io.open_sync("/d/new", true, false);
    ASSERT_TRUE(f.is_ok());
    const std::vector<uint8_t> data = pattern(100, 1);
    ASSERT_TRUE(io.write_sync(*f, data.data(), data.size(), 0).is_ok());
    ASSERT_TRUE(io.fdatasync_sync(*f).is_ok());  // Data durable, name not.
    EXPECT_TRUE(disk.exists("/d/new"));
  }
  const SimCrashStats stats = disk.crash(1);
  EXPECT_FALSE(disk.exists("/d/new"));
  EXPECT_EQ(stats.files_dropped, 1u);
  SimFileIo restarted = sync_io(disk);
  EXPECT_EQ(restarted.list_dir_sync("/d")->size(), 0u);
}

TEST(SimFileIo, NewFileSurvivesCrashAfterDirSync) {
  SimDisk disk;
  const std::vector<uint8_t> data = pattern(100, 1);
  {
    SimFileIo io = sync_io(disk);
    ASSERT_TRUE(io.create_directories_sync("/d").is_ok());
    Result<FileId> f = io.open_sync("/d/new", true, false);
    ASSERT_TRUE(f.is_ok());
    ASSERT_TRUE(io.write_sync(*f, data.data(), data.size(), 0).is_ok());
    ASSERT_TRUE(io.fdatasync_sync(*f).is_ok());
    ASSERT_TRUE(io.fsync_dir_sync("/d").is_ok());
  }
  disk.crash(1);
  EXPECT_TRUE(disk.exists("/d/new"));
  EXPECT_EQ(contents_of(disk, "/d/new"), data);
}

TEST(SimFileIo, UnsyncedRenameRevertsAtCrash) {
  SimDisk disk;
  {
    SimFileIo io = sync_io(disk);
    FileId f = -1;
    ASSERT_NO_FATAL_FAILURE(create_durable_file(io, "/d/tmp", 10, &f));
    ASSERT_TRUE(io.rename_sync("/d/tmp", "/d/final").is_ok());
    EXPECT_FALSE(disk.exists("/d/tmp"));
    EXPECT_TRUE(disk.exists("/d/final"));
  }
  disk.crash(1);
  EXPECT_TRUE(disk.exists("/d/tmp"));
  EXPECT_FALSE(disk.exists("/d/final"));
  EXPECT_EQ(contents_of(disk, "/d/tmp"), filled(10, kOld));
}

TEST(SimFileIo, DirSyncedRenameSurvivesCrash) {
  SimDisk disk;
  {
    SimFileIo io = sync_io(disk);
    FileId f = -1;
    ASSERT_NO_FATAL_FAILURE(create_durable_file(io, "/d/tmp", 10, &f));
    ASSERT_TRUE(io.rename_sync("/d/tmp", "/d/final").is_ok());
    ASSERT_TRUE(io.fsync_dir_sync("/d").is_ok());
  }
  disk.crash(1);
  EXPECT_FALSE(disk.exists("/d/tmp"));
  EXPECT_EQ(contents_of(disk, "/d/final"), filled(10, kOld));
}

TEST(SimFileIo, UnsyncedUnlinkRevertsAtCrash) {
  SimDisk disk;
  {
    SimFileIo io = sync_io(disk);
    FileId f = -1;
    ASSERT_NO_FATAL_FAILURE(create_durable_file(io, "/d/old", 10, &f));
    ASSERT_TRUE(io.close_sync(f).is_ok());
    ASSERT_TRUE(io.unlink_sync("/d/old").is_ok());
    EXPECT_FALSE(disk.exists("/d/old"));
  }
  disk.crash(1);
  EXPECT_EQ(contents_of(disk, "/d/old"), filled(10, kOld));
}

TEST(SimFileIo, UnlinkedOpenFileStaysReadableUntilClosed) {
  SimDisk disk;
  SimFileIo io = sync_io(disk);
  FileId f = -1;
  ASSERT_NO_FATAL_FAILURE(create_durable_file(io, "/d/f", 10, &f));
  ASSERT_TRUE(io.unlink_sync("/d/f").is_ok());
  std::vector<uint8_t> back(10);
  EXPECT_EQ(*io.read_sync(f, back.data(), back.size(), 0), 10u);
  EXPECT_EQ(back, filled(10, kOld));
  EXPECT_EQ(disk.used_bytes(), 10u);
  ASSERT_TRUE(io.close_sync(f).is_ok());
  EXPECT_EQ(disk.used_bytes(), 0u);
}

// --- POSIX-like namespace operations ---

TEST(SimFileIo, ListDirReturnsDirectChildrenSorted) {
  SimDisk disk;
  SimFileIo io = sync_io(disk);
  ASSERT_TRUE(io.create_directories_sync("/root/a/deep").is_ok());
  for (const char* name : {"/root/c", "/root/b", "/root/a/x"}) ASSERT_TRUE(io.open_sync(name, true, false).is_ok());
  Result<std::vector<std::string>> names = io.list_dir_sync("/root/");
  ASSERT_TRUE(names.is_ok());
  EXPECT_EQ(*names, (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_EQ(io.list_dir_sync("/missing").status().code(), ErrorCode::kNotFound);
}

TEST(SimFileIo, OpenWithoutCreateOrParentIsNotFound) {
  SimDisk disk;
  SimFileIo io = sync_io(disk);
  EXPECT_EQ(io.open_sync("/nodir/f", true, false).status().code(), ErrorCode::kNotFound);
  ASSERT_TRUE(io.create_directories_sync("/d").is_ok());
  EXPECT_EQ(io.open_sync("/d/f", false, false).status().code(), ErrorCode::kNotFound);
  EXPECT_EQ(io.unlink_sync("/d/f").code(), ErrorCode::kNotFound);
  EXPECT_EQ(io.rename_sync("/d/f", "/d/g").code(), ErrorCode::kNotFound);
}

TEST(SimFileIo, RenameReplacesExistingTarget) {
  SimDisk disk;
  SimFileIo io = sync_io(disk);
  FileId a = -1;
  FileId b = -1;
  ASSERT_NO_FATAL_FAILURE(create_file(io, "/d/a", &a));
  ASSERT_NO_FATAL_FAILURE(create_file(io, "/d/b", &b));
  const std::vector<uint8_t> data = pattern(10, 1);
  ASSERT_TRUE(io.write_sync(a, data.data(), data.size(), 0).is_ok());
  ASSERT_TRUE(io.rename_sync("/d/a", "/d/b").is_ok());
  EXPECT_EQ(*io.list_dir_sync("/d"), (std::vector<std::string>{"b"}));
  EXPECT_EQ(contents_of(disk, "/d/b"), data);
}

TEST(SimFileIo, TruncateShrinksAndExtendsWithZeros) {
  SimDisk disk;
  SimFileIo io = sync_io(disk);
  FileId f = -1;
  ASSERT_NO_FATAL_FAILURE(create_file(io, "/d/f", &f));
  const std::vector<uint8_t> data = pattern(1000, 1);
  ASSERT_TRUE(io.write_sync(f, data.data(), data.size(), 0).is_ok());
  ASSERT_TRUE(io.truncate_sync(f, 300).is_ok());
  EXPECT_EQ(*io.file_size_sync(f), 300u);
  ASSERT_TRUE(io.truncate_sync(f, 600).is_ok());
  std::vector<uint8_t> expected(data.begin(), data.begin() + 300);
  expected.resize(600, 0);
  EXPECT_EQ(contents_of(disk, "/d/f"), expected);
}

TEST(SimFileIo, FallocateExtendsWithZerosDurably) {
  SimDisk disk;
  {
    SimFileIo io = sync_io(disk);
    FileId f = -1;
    ASSERT_NO_FATAL_FAILURE(create_file(io, "/d/f", &f));
  }
  const uint64_t seed = 1;
  SCOPED_TRACE(testing::Message() << "io seed " << seed);
  const int res = run_async(disk, {}, seed, [&](SimFileIo& io, FileOp* op, FileOp::Callback done) {
    const FileId f = io.open_sync("/d/f", false, false).value();
    io.fallocate(f, 0, 65536, op, std::move(done));
  });
  EXPECT_EQ(res, 0);
  disk.crash(seed);
  EXPECT_EQ(contents_of(disk, "/d/f"), filled(65536, 0));
}

// --- injected faults ---

TEST(SimFileIo, WriteEioFaultFailsAndWritesNothing) {
  SimDisk disk;
  SimFaults faults;
  faults.write_eio = 1;
  SimFileIo io = sync_io(disk, faults);
  FileId f = -1;
  ASSERT_NO_FATAL_FAILURE(create_file(io, "/d/f", &f));
  const std::vector<uint8_t> data = pattern(100, 1);
  EXPECT_EQ(io.write_sync(f, data.data(), data.size(), 0).code(), ErrorCode::kIoError);
  EXPECT_EQ(contents_of(disk, "/d/f").size(), 0u);
  EXPECT_EQ(io.write_count(), 0u);
}

TEST(SimFileIo, WriteEnospcFaultFailsAndWritesNothing) {
  SimDisk disk;
  SimFaults faults;
  faults.write_enospc = 1;
  SimFileIo io = sync_io(disk, faults);
  FileId f = -1;
  ASSERT_NO_FATAL_FAILURE(create_file(io, "/d/f", &f));
  const std::vector<uint8_t> data = pattern(100, 1);
  EXPECT_EQ(io.write_sync(f, data.data(), data.size(), 0).code(), ErrorCode::kNoSpace);
  EXPECT_EQ(contents_of(disk, "/d/f").size(), 0u);
}

TEST(SimFileIo, AsyncWriteEioFaultCompletesWithMinusEio) {
  SimDisk disk;
  {
    SimFileIo io = sync_io(disk);
    FileId f = -1;
    ASSERT_NO_FATAL_FAILURE(create_file(io, "/d/f", &f));
  }
  SimFaults faults;
  faults.write_eio = 1;
  const std::vector<uint8_t> data = pattern(100, 1);
  const int res = run_async(disk, faults, 1, [&](SimFileIo& io, FileOp* op, FileOp::Callback done) {
    const FileId f = io.open_sync("/d/f", false, false).value();
    io.write(f, data.data(), data.size(), 0, kWriteDsync, op, std::move(done));
  });
  EXPECT_EQ(res, -EIO);
  EXPECT_EQ(contents_of(disk, "/d/f").size(), 0u);
}

TEST(SimFileIo, FallocateEnospcFaultFailsAndReservesNothing) {
  SimDisk disk;
  {
    SimFileIo io = sync_io(disk);
    FileId f = -1;
    ASSERT_NO_FATAL_FAILURE(create_file(io, "/d/f", &f));
  }
  SimFaults faults;
  faults.fallocate_enospc = 1;
  const int res = run_async(disk, faults, 1, [&](SimFileIo& io, FileOp* op, FileOp::Callback done) {
    const FileId f = io.open_sync("/d/f", false, false).value();
    io.fallocate(f, 0, 65536, op, std::move(done));
  });
  EXPECT_EQ(res, -ENOSPC);
  EXPECT_EQ(contents_of(disk, "/d/f").size(), 0u);
}

TEST(SimFileIo, FsyncDirEioFaultFailsAndLeavesEntriesUndurable) {
  SimDisk disk;
  {
    SimFaults faults;
    faults.fsync_dir_eio = 1;
    SimFileIo io = sync_io(disk, faults);
    ASSERT_TRUE(io.create_directories_sync("/d").is_ok());
    ASSERT_TRUE(io.open_sync("/d/new", true, false).is_ok());
    EXPECT_EQ(io.fsync_dir_sync("/d").code(), ErrorCode::kIoError);
  }
  disk.crash(1);
  EXPECT_FALSE(disk.exists("/d/new"));
}

TEST(SimFileIo, ReadEioFaultFails) {
  SimDisk disk;
  SimFileIo io = sync_io(disk);
  FileId f = -1;
  ASSERT_NO_FATAL_FAILURE(create_durable_file(io, "/d/f", 100, &f));
  SimFaults faults;
  faults.read_eio = 1;
  io.set_faults(faults);
  std::vector<uint8_t> back(100);
  EXPECT_EQ(io.read_sync(f, back.data(), back.size(), 0).status().code(), ErrorCode::kIoError);
}

TEST(SimFileIo, FdatasyncEioFaultFailsAndForgetsPendingWrites) {
  for (uint64_t seed = 1; seed <= 16; seed++) {
    SCOPED_TRACE(testing::Message() << "io seed and crash seed " << seed);
    SimDisk disk;
    SimFileIo io = sync_io(disk, {}, seed);
    FileId f = -1;
    ASSERT_NO_FATAL_FAILURE(create_durable_file(io, "/d/f", 4096, &f));
    const std::vector<uint8_t> data = pattern(4096, 2);
    ASSERT_TRUE(io.write_sync(f, data.data(), data.size(), 0).is_ok());
    SimFaults faults;
    faults.fdatasync_eio = 1;
    io.set_faults(faults);
    EXPECT_EQ(io.fdatasync_sync(f).code(), ErrorCode::kIoError);
    EXPECT_EQ(io.fdatasync_count(), 1u);  // Only create_durable_file's.
    // What is left is what a crash keeps: the failed writes are settled, not retried.
    EXPECT_EQ(disk.pending_write_count("/d/f"), 0u);
    const std::vector<uint8_t> settled = contents_of(disk, "/d/f");
    EXPECT_NE(landed_prefix(settled, data, kOld), SIZE_MAX);
    disk.crash(seed);
    EXPECT_EQ(contents_of(disk, "/d/f"), settled);
  }
}

TEST(SimFileIo, ShortWriteFaultWritesOnlyThePrefixItReports) {
  for (uint64_t seed = 1; seed <= 8; seed++) {
    SCOPED_TRACE(testing::Message() << "io seed " << seed);
    SimDisk disk;
    {
      SimFileIo io = sync_io(disk);
      FileId f = -1;
      ASSERT_NO_FATAL_FAILURE(create_file(io, "/d/f", &f));
    }
    SimFaults faults;
    faults.short_write = 1;
    const std::vector<uint8_t> data = pattern(10'000, 1);
    const int res = run_async(disk, faults, seed, [&](SimFileIo& io, FileOp* op, FileOp::Callback done) {
      const FileId f = io.open_sync("/d/f", false, false).value();
      io.write(f, data.data(), data.size(), 0, kWriteNone, op, std::move(done));
    });
    ASSERT_GT(res, 0);
    ASSERT_LT(res, 10'000);
    EXPECT_EQ(contents_of(disk, "/d/f"), std::vector<uint8_t>(data.begin(), data.begin() + res));
  }
}

TEST(SimFileIo, ShortWriteFaultOnDirectFileIsWholeSectors) {
  for (uint64_t seed = 1; seed <= 8; seed++) {
    SCOPED_TRACE(testing::Message() << "io seed " << seed);
    SimDisk disk;
    {
      SimFileIo io = sync_io(disk);
      FileId f = -1;
      ASSERT_NO_FATAL_FAILURE(create_file(io, "/d/f", &f, /*direct=*/true));
    }
    SimFaults faults;
    faults.short_write = 1;
    AlignedBuffer buffer(16384);
    buffer.fill_from(pattern(16384, 1));
    const int res = run_async(disk, faults, seed, [&](SimFileIo& io, FileOp* op, FileOp::Callback done) {
      const FileId f = io.open_sync("/d/f", false, true).value();
      io.write(f, buffer.data(), buffer.size(), 0, kWriteNone, op, std::move(done));
    });
    ASSERT_GT(res, 0);
    ASSERT_LT(res, 16384);
    EXPECT_EQ(res % static_cast<int>(kSimSectorBytes), 0);
    EXPECT_EQ(contents_of(disk, "/d/f"), std::vector<uint8_t>(buffer.data(), buffer.data() + res));
  }
}

TEST(SimFileIo, ReadBitflipFaultDiffersInExactlyOneBit) {
  for (uint64_t seed = 1; seed <= 16; seed++) {
    SCOPED_TRACE(testing::Message() << "io seed " << seed);
    SimDisk disk;
    SimFileIo io = sync_io(disk, {}, seed);
    FileId f = -1;
    ASSERT_NO_FATAL_FAILURE(create_file(io, "/d/f", &f));
    const std::vector<uint8_t> data = pattern(4096, 1);
    ASSERT_TRUE(io.write_sync(f, data.data(), data.size(), 0).is_ok());
    SimFaults faults;
    faults.read_bitflip = 1;
    io.set_faults(faults);
    std::vector<uint8_t> back(data.size());
    ASSERT_EQ(*io.read_sync(f, back.data(), back.size(), 0), data.size());
    int bits_differing = 0;
    for (size_t i = 0; i < data.size(); i++) bits_differing += __builtin_popcount(data[i] ^ back[i]);
    EXPECT_EQ(bits_differing, 1);
    EXPECT_EQ(contents_of(disk, "/d/f"), data);  // Stored data unchanged.
  }
}

TEST(SimFileIo, CorruptAtRestFlipsADurableBit) {
  SimDisk disk;
  SimFileIo io = sync_io(disk);
  FileId f = -1;
  ASSERT_NO_FATAL_FAILURE(create_durable_file(io, "/d/f", 100, &f));
  ASSERT_TRUE(disk.corrupt_at_rest("/d/f", 42, 0x10).is_ok());
  std::vector<uint8_t> expected = filled(100, kOld);
  expected[42] ^= 0x10;
  EXPECT_EQ(contents_of(disk, "/d/f"), expected);
  EXPECT_EQ(disk.corrupt_at_rest("/d/f", 100).code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(disk.corrupt_at_rest("/d/none", 0).code(), ErrorCode::kNotFound);
}

TEST(SimFileIo, SpaceLimitFailsGrowthUntilRaised) {
  SimDisk disk;
  SimFileIo io = sync_io(disk);
  FileId f = -1;
  ASSERT_NO_FATAL_FAILURE(create_file(io, "/d/f", &f));
  disk.set_space_bytes(8192);
  const std::vector<uint8_t> data = pattern(4096, 1);
  ASSERT_TRUE(io.write_sync(f, data.data(), data.size(), 0).is_ok());
  ASSERT_TRUE(io.write_sync(f, data.data(), data.size(), 4096).is_ok());
  EXPECT_EQ(disk.used_bytes(), 8192u);
  EXPECT_EQ(io.write_sync(f, data.data(), data.size(), 8192).code(), ErrorCode::kNoSpace);
  EXPECT_EQ(io.truncate_sync(f, 8193).code(), ErrorCode::kNoSpace);
  EXPECT_EQ(*io.file_size_sync(f), 8192u);  // Nothing written.
  EXPECT_TRUE(io.write_sync(f, data.data(), data.size(), 0).is_ok());  // Overwrites still fit.
  std::vector<uint8_t> back(8192);
  EXPECT_EQ(*io.read_sync(f, back.data(), back.size(), 0), 8192u);  // Still readable.
  disk.set_space_bytes(1 << 20);
  EXPECT_TRUE(io.write_sync(f, data.data(), data.size(), 8192).is_ok());
  EXPECT_EQ(*io.file_size_sync(f), 12288u);
}

TEST(SimFileIo, UnlinkingAFileReturnsItsSpace) {
  SimDisk disk;
  SimFileIo io = sync_io(disk);
  FileId old_file = -1;
  FileId new_file = -1;
  ASSERT_NO_FATAL_FAILURE(create_file(io, "/d/old", &old_file));
  ASSERT_NO_FATAL_FAILURE(create_file(io, "/d/new", &new_file));
  disk.set_space_bytes(4096);
  const std::vector<uint8_t> data = pattern(4096, 1);
  ASSERT_TRUE(io.write_sync(old_file, data.data(), data.size(), 0).is_ok());
  EXPECT_EQ(io.write_sync(new_file, data.data(), data.size(), 0).code(), ErrorCode::kNoSpace);
  ASSERT_TRUE(io.close_sync(old_file).is_ok());
  ASSERT_TRUE(io.unlink_sync("/d/old").is_ok());
  EXPECT_TRUE(io.write_sync(new_file, data.data(), data.size(), 0).is_ok());
}

TEST(SimFileIo, DirectIoRejectsMisalignedOffsetLengthOrBuffer) {
  SimDisk disk;
  SimFileIo io = sync_io(disk);
  FileId f = -1;
  ASSERT_NO_FATAL_FAILURE(create_file(io, "/d/f", &f, /*direct=*/true));
  AlignedBuffer buffer(8192);
  EXPECT_EQ(io.write_sync(f, buffer.data(), 4096, 512).code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(io.write_sync(f, buffer.data(), 1000, 0).code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(io.write_sync(f, buffer.data() + 512, 4096, 0).code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(io.read_sync(f, buffer.data() + 512, 4096, 0).status().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(io.write_count(), 0u);
  EXPECT_TRUE(io.write_sync(f, buffer.data(), 8192, 4096).is_ok());
}

TEST(SimFileIo, WritePastTheFileSizeCapIsTooLarge) {
  SimDisk disk;
  SimFileIo io = sync_io(disk);
  FileId f = -1;
  ASSERT_NO_FATAL_FAILURE(create_file(io, "/d/f", &f));
  const std::vector<uint8_t> data = pattern(10, 1);
  EXPECT_EQ(io.write_sync(f, data.data(), data.size(), kSimFileBytesMax).code(), ErrorCode::kTooLarge);
  EXPECT_EQ(io.write_sync(f, data.data(), data.size(), ~uint64_t{0} - 4).code(), ErrorCode::kTooLarge);
  EXPECT_EQ(disk.used_bytes(), 0u);
}

TEST(SimFileIo, BufferedFileAcceptsUnalignedIo) {
  SimDisk disk;
  SimFileIo io = sync_io(disk);
  FileId f = -1;
  ASSERT_NO_FATAL_FAILURE(create_file(io, "/d/f", &f, /*direct=*/false));
  AlignedBuffer buffer(8192);
  EXPECT_TRUE(io.write_sync(f, buffer.data() + 1, 999, 7).is_ok());
}

// --- asynchronous completion ---

// Chains open, write, fdatasync, read, fallocate, close, unlink and
// fsync_dir; each
// callback checks it did not run inside the call that started it.
struct AsyncChain {
  SimDisk* disk = nullptr;
  Reactor* reactor = nullptr;
  std::thread::id shard_thread;
  std::unique_ptr<SimFileIo> io;
  FileOp op;
  FileId file = -1;
  int step = 0;
  bool call_returned = false;
  int inline_completions = 0;
  int off_shard_completions = 0;
  std::vector<int> results;
  std::vector<uint8_t> data = pattern(5000, 7);
  std::vector<uint8_t> back = std::vector<uint8_t>(5000);

  void next(int res);
};

void AsyncChain::next(int res) {
  if (!call_returned) inline_completions++;
  if (std::this_thread::get_id() != shard_thread) off_shard_completions++;
  results.push_back(res);
  call_returned = false;
  auto done = [this](int r) { next(r); };
  switch (step++) {
    case 0: io->open("/d/f", true, false, &op, done); break;
    case 1:
      file = res;
      io->write(file, data.data(), data.size(), 0, kWriteNone, &op, done);
      break;
    case 2: io->fdatasync(file, &op, done); break;
    case 3: io->read(file, back.data(), back.size(), 0, &op, done); break;
    case 4: io->fallocate(file, 0, 65536, &op, done); break;
    case 5: io->close(file, &op, done); break;
    case 6: io->unlink("/d/f", &op, done); break;
    case 7: io->fsync_dir("/d", &op, done); break;
    default: reactor->request_stop(); return;
  }
  call_returned = true;
}

TEST(SimFileIo, AsyncOpsCompleteOnTheShardNeverInline) {
  SimDisk disk;  // Outlives the chain's SimFileIo.
  AsyncChain chain;
  {
    SimFileIo io = sync_io(disk);
    ASSERT_TRUE(io.create_directories_sync("/d").is_ok());
  }
  ShardSet shards(one_shard());
  ASSERT_TRUE(shards
                  .start([&](Reactor& r) {
                    chain.reactor = &r;
                    chain.shard_thread = std::this_thread::get_id();
                    chain.io = std::make_unique<SimFileIo>(disk, &r, SimFaults{}, 1);
                    chain.call_returned = true;  // The kick-off is not a completion.
                    chain.next(0);
                    return Status::ok();
                  })
                  .is_ok());
  shards.join();
  EXPECT_EQ(chain.inline_completions, 0);
  EXPECT_EQ(chain.off_shard_completions, 0);
  ASSERT_EQ(chain.results.size(), 9u);
  EXPECT_GE(chain.results[1], 0);                       // open: a FileId.
  EXPECT_EQ(chain.results[2], 5000);                    // write
  EXPECT_EQ(chain.results[3], 0);                       // fdatasync
  EXPECT_EQ(chain.results[4], 5000);                    // read
  EXPECT_EQ(chain.results[5], 0);                       // fallocate
  EXPECT_EQ(chain.results[6], 0);                       // close
  EXPECT_EQ(chain.results[7], 0);                       // unlink
  EXPECT_EQ(chain.results[8], 0);                       // fsync_dir
  EXPECT_EQ(chain.back, chain.data);
  EXPECT_FALSE(disk.exists("/d/f"));
  EXPECT_EQ(chain.io->fdatasync_count(), 1u);
}

TEST(SimFileIo, AsyncOpenOfMissingFileCompletesWithMinusEnoent) {
  SimDisk disk;
  const int res = run_async(disk, {}, 1, [](SimFileIo& io, FileOp* op, FileOp::Callback done) {
    io.open("/d/none", false, false, op, std::move(done));
  });
  EXPECT_EQ(res, -ENOENT);
}

// --- misuse is loud ---

TEST(SimFileIoDeathTest, HandleFromBeforeCrashAsserts) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  SimDisk disk;
  SimFileIo io = sync_io(disk);
  FileId f = -1;
  ASSERT_NO_FATAL_FAILURE(create_file(io, "/d/f", &f));
  disk.crash(1);
  EXPECT_DEATH((void)io.file_size_sync(f), "generation");
}

TEST(SimFileIoDeathTest, AsyncOpWithoutReactorAsserts) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  SimDisk disk;
  SimFileIo io = sync_io(disk);
  FileOp op;
  EXPECT_DEATH(io.open("/f", true, false, &op, [](int) {}), "reactor_ != nullptr");
}

}  // namespace
}  // namespace runnel
