#pragma once
// SimDisk and SimFileIo: a simulated disk for storage fault-injection and
// crash tests. The engine talks to SimFileIo through the FileIo interface
// exactly as it talks to UringFileIo; the test owns the SimDisk underneath,
// "pulls the plug" with SimDisk::crash(), and starts a new SimFileIo on the
// same disk as the restarted process.
//
// The model, per file (an inode, reachable through names):
//   - durable bytes: what survives a crash;
//   - pending writes, in issue order, each {offset, bytes}: written but not
//     yet durable. What reads return is durable with pending applied in order.
//   - size: the visible size, max(durable size, end of every pending write).
// Plain writes are pending until an fdatasync of the file; kWriteDsync writes
// are durable on completion; fallocate and truncate_sync are durable on
// completion (modelled as durable metadata, shortcut of the real journal).
//
// Names: every create, rename and unlink changes the visible namespace at
// once and the durable namespace only when the parent directory is synced
// with fsync_dir_sync(). At a crash the durable namespace comes back: a file
// created and never dir-synced disappears, an un-synced rename or unlink is
// undone. Directories themselves are durable on creation (shortcut: the
// engine creates its tree once at startup).
//
// crash(seed) is a power loss: each pending write is independently lost,
// kept whole, or torn (a prefix of whole 512-byte sectors lands, the rest of
// its range keeps the old durable bytes); un-synced directory changes revert;
// open handles die (a SimFileIo from before the crash asserts when used).
//
// Faults (SimFaults) are drawn from SimFileIo's seeded RNG, and crash()
// outcomes from crash()'s seed, so a failing run replays from its two seeds.
// Deterministic switches live on SimDisk: set_space_bytes() (a full disk)
// and corrupt_at_rest() (a bit rotting on the media).
//
// Threads: SimDisk has a mutex, so SimFileIos of several shards may share
// one disk; determinism then holds per shard only. A SimFileIo is used from
// one thread: its reactor's shard for the asynchronous operations, any single
// thread for the _sync ones. Memory: files are plain byte vectors, so tests
// should keep segment sizes small (files are capped at kSimFileBytesMax).

#include <cstddef>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "core/reactor.h"
#include "core/status.h"
#include "storage/file_io.h"

namespace runnel {

// The device's atomic unit: torn writes keep a whole number of these.
inline constexpr uint64_t kSimSectorBytes = 512;
// Largest simulated file; writes, fallocate or truncate past it fail with
// -EFBIG so that an engine bug cannot make the test allocate terabytes.
inline constexpr uint64_t kSimFileBytesMax = uint64_t{1} << 30;

// Probabilities in [0, 1] of each injected fault, per operation. All zero by
// default: a SimFileIo without faults is a well-behaved disk.
struct SimFaults {
  double write_eio = 0;         // write fails with -EIO, writes nothing.
  double read_eio = 0;          // read fails with -EIO.
  double fdatasync_eio = 0;     // fdatasync fails with -EIO; see SimFileIo::fdatasync.
  double write_enospc = 0;      // write fails with -ENOSPC, writes nothing (even inside a
                                // fallocated range, as on copy-on-write file systems).
  double fallocate_enospc = 0;  // fallocate fails with -ENOSPC, reserves nothing.
  double short_write = 0;       // async write returns 0 < n < len; only that prefix is written.
                                // On O_DIRECT files n is a multiple of kSimSectorBytes.
  double torn_write = 0;        // write reports success and reads see it whole, but the device
                                // lies: at crash() only a sector prefix survives, even if the
                                // write was made durable by kWriteDsync or fdatasync.
  double read_bitflip = 0;      // read returns its data with one random bit flipped (stored
                                // data unchanged).
  double fsync_dir_eio = 0;     // fsync_dir fails with -EIO; no entry of the directory
                                // becomes durable.
};

// What one crash() did, for tests that want to see every outcome occur.
struct SimCrashStats {
  uint64_t writes_lost = 0;
  uint64_t writes_kept = 0;
  uint64_t writes_torn = 0;  // Including torn_write faults exposed by the crash.
  uint64_t files_dropped = 0;  // Inodes no durable name reached.
};

// The simulated disk: files, names and directories, shared by every
// "process lifetime" of a test. Owned by the test; outlives every SimFileIo
// made on it.
class SimDisk {
 public:
  SimDisk() = default;
  SimDisk(const SimDisk&) = delete;
  SimDisk& operator=(const SimDisk&) = delete;

  // Power loss (see the file comment). Every SimFileIo made before it is
  // dead; make a new one for the restarted process.
  SimCrashStats crash(uint64_t seed);

  // Flips the bits of `mask` in the durable byte at `offset` of the file
  // named `path`: data that rotted at rest. Reads see it unless a pending
  // write covers that byte.
  Status corrupt_at_rest(const std::string& path, uint64_t offset, uint8_t mask = 0x01);

  // Total bytes of all files (their sizes) may not exceed `limit`: a write,
  // fallocate or truncate that would grow past it fails with -ENOSPC and
  // changes nothing. Files count while named or open. Unlimited by default;
  // raising the limit again makes the same calls succeed.
  void set_space_bytes(uint64_t limit);
  uint64_t space_bytes() const;
  uint64_t used_bytes() const;

  // --- inspection, for tests ---
  bool exists(const std::string& path) const;          // A file with this visible name.
  bool is_directory(const std::string& path) const;
  // What reads return (durable plus pending), or kNotFound.
  Result<std::vector<uint8_t>> contents(const std::string& path) const;
  // The durable bytes only: what a crash with every pending write lost
  // would leave (before directory changes revert).
  Result<std::vector<uint8_t>> durable_contents(const std::string& path) const;
  size_t pending_write_count(const std::string& path) const;  // 0 if no such file.
  uint64_t generation() const;  // Number of crashes so far.

 private:
  friend class SimFileIo;
  static constexpr uint64_t kNotTorn = ~uint64_t{0};

  struct PendingWrite {
    uint64_t offset = 0;
    std::vector<uint8_t> bytes;
    uint64_t torn_keep = kNotTorn;  // torn_write fault: bytes that really land.
  };

  struct File {
    std::vector<uint8_t> durable;
    std::vector<PendingWrite> pending;  // Issue order.
    uint64_t size = 0;                  // Visible size.
    // What the media really holds, once a torn_write fault made the device
    // lie about a flush; same size as durable. Replaces durable at crash().
    std::optional<std::vector<uint8_t>> media;
    int links = 0;          // Visible names.
    int durable_links = 0;  // Durable names.
    int open_count = 0;     // Open handles of live SimFileIos.
  };

  // --- all called with mutex_ held ---
  File* find_locked(const std::string& path);
  const File* find_locked(const std::string& path) const;
  bool dir_exists_locked(const std::string& dir) const;
  uint64_t used_bytes_locked() const;
  // -ENOSPC if growing `file` to `new_size` would pass the space limit.
  int check_growth_locked(const File& file, uint64_t new_size) const;
  // Creates or finds the file at `path`; returns its inode or -errno.
  int64_t open_locked(const std::string& path, bool create);
  int unlink_locked(const std::string& path);
  void drop_if_unreachable_locked(uint64_t inode);

  // Writes to durable (and media), keeping their sizes equal.
  static void land(File& file, uint64_t offset, const uint8_t* data, uint64_t len);
  // Makes one write durable; a torn one lands whole in durable, partly on media.
  static void make_durable(File& file, const PendingWrite& write);
  // Removes [begin, end) from every pending write (a later dsync write won).
  static void carve_pending(File& file, uint64_t begin, uint64_t end);
  // Lands each pending write lost, kept or torn at random; clears pending.
  static void resolve_pending(File& file, std::mt19937_64& rng, SimCrashStats* stats);
  static void resize(File& file, uint64_t size);  // Durable truncate or extend.
  static void read_visible(const File& file, uint8_t* out, uint64_t len, uint64_t offset);

  mutable std::mutex mutex_;
  std::map<uint64_t, File> files_;                 // By inode.
  std::map<std::string, uint64_t> names_;          // Visible path -> inode.
  std::map<std::string, uint64_t> durable_names_;  // What a crash brings back.
  std::set<std::string> dirs_;
  uint64_t next_inode_ = 1;
  uint64_t space_bytes_ = ~uint64_t{0};
  uint64_t generation_ = 0;
};

// FileIo over a SimDisk, with seeded faults. One per simulated process
// lifetime and shard. Asynchronous operations compute their result when
// called and complete through reactor->post() in call order, never inline;
// they need a reactor and must be called on its shard's thread (asserted:
// always the same thread). The _sync operations work without a reactor.
//
// Handles: FileIds are small ints naming an open file of this SimFileIo.
// Using an unknown FileId, or any handle after SimDisk::crash(), asserts:
// both are engine bugs we want loud.
//
// O_DIRECT: on files opened `direct`, reads and writes whose offset, length
// or buffer address is not a multiple of kDmaAlignment fail with -EINVAL,
// like the kernel, so alignment bugs show up in tests.
class SimFileIo final : public FileIo {
 public:
  SimFileIo(SimDisk& disk, Reactor* reactor, SimFaults faults, uint64_t seed);
  ~SimFileIo() override;  // Closes what is still open (unless the disk crashed since).

  // For crash tests that crash the disk under a live engine: from the crash
  // on, this instance behaves like a process that died with the machine —
  // every operation fails with EIO (instead of asserting) and touches nothing.
  void set_dead_after_crash(bool dead) { dead_after_crash_ = dead; }
  SimFileIo(const SimFileIo&) = delete;
  SimFileIo& operator=(const SimFileIo&) = delete;

  // --- FileIo, asynchronous ---
  void open(const std::string& path, bool create, bool direct, FileOp* op, FileOp::Callback done) override;
  void write(FileId file, const void* data, size_t len, uint64_t offset, uint32_t flags, FileOp* op,
             FileOp::Callback done) override;
  void read(FileId file, void* data, size_t len, uint64_t offset, FileOp* op, FileOp::Callback done) override;
  // On an injected -EIO the file's pending writes are settled at random (each
  // lost, kept or torn, as in a crash) and forgotten: a later fdatasync will
  // not save them. Like Linux after a writeback error; never retry.
  void fdatasync(FileId file, FileOp* op, FileOp::Callback done) override;
  void fallocate(FileId file, uint64_t offset, uint64_t len, FileOp* op, FileOp::Callback done) override;
  void close(FileId file, FileOp* op, FileOp::Callback done) override;
  void unlink(const std::string& path, FileOp* op, FileOp::Callback done) override;
  void fsync_dir(const std::string& path, FileOp* op, FileOp::Callback done) override;

  // --- FileIo, synchronous ---
  Status create_directories_sync(const std::string& path) override;
  Result<std::vector<std::string>> list_dir_sync(const std::string& path) override;
  Result<FileId> open_sync(const std::string& path, bool create, bool direct) override;
  Result<uint64_t> file_size_sync(FileId file) override;
  Result<size_t> read_sync(FileId file, void* data, size_t len, uint64_t offset) override;
  // All or nothing: like a pwrite loop, so short_write faults do not apply;
  // the other write faults do.
  Status write_sync(FileId file, const void* data, size_t len, uint64_t offset) override;
  Status fdatasync_sync(FileId file) override;
  Status fallocate_sync(FileId file, uint64_t offset, uint64_t len) override;
  Status fsync_dir_sync(const std::string& path) override;
  Status truncate_sync(FileId file, uint64_t size) override;  // Durable on return.
  Status rename_sync(const std::string& from, const std::string& to) override;
  Status unlink_sync(const std::string& path) override;
  Status close_sync(FileId file) override;

  // --- for tests ---
  uint64_t seed() const { return seed_; }
  const SimFaults& faults() const { return faults_; }
  void set_faults(const SimFaults& faults) { faults_ = faults; }  // E.g. after setup.
  uint64_t write_count() const { return write_count_; }        // Successful writes (incl. short).
  uint64_t bytes_written() const { return bytes_written_; }    // Bytes those writes wrote.
  uint64_t fdatasync_count() const { return fdatasync_count_; }  // Successful fdatasyncs.
  uint64_t fdatasync_calls() const { return fdatasync_calls_; }  // Attempts, failed ones included.

 private:
  struct Handle {
    uint64_t inode = 0;
    std::string path;  // As opened; for messages only.
    bool direct = false;
  };

  bool process_dead();  // set_dead_after_crash and the disk crashed since we were made.
  bool dead_after_crash_ = false;

  // --- called with disk_.mutex_ held; return io_uring-style results ---
  SimDisk::File& file_locked(FileId file);
  const Handle& handle_locked(FileId file) const;
  int open_locked(const std::string& path, bool create, bool direct);
  int write_locked(FileId file, const void* data, size_t len, uint64_t offset, uint32_t flags, bool allow_short);
  int read_locked(FileId file, void* data, size_t len, uint64_t offset);
  int fdatasync_locked(FileId file);
  int fallocate_locked(FileId file, uint64_t offset, uint64_t len);
  int close_locked(FileId file);
  int fsync_dir_locked(const std::string& path);

  void start(FileOp* op, FileOp::Callback done);  // Checks the thread and arms.
  void finish(FileOp* op, int result);            // Completes in a later loop step.
  bool chance(double probability);
  uint64_t uniform(uint64_t lo, uint64_t hi);  // Inclusive.
  bool misaligned(const Handle& handle, const void* data, size_t len, uint64_t offset) const;

  SimDisk& disk_;     // Outlives this.
  Reactor* reactor_;  // Null: synchronous operations only.
  SimFaults faults_;
  uint64_t seed_;
  std::mt19937_64 rng_;
  uint64_t generation_;  // The disk's generation when made; a crash kills this.
  std::thread::id async_thread_;  // The shard thread, from the first async operation.
  std::map<FileId, Handle> handles_;
  FileId next_file_id_ = 1;
  uint64_t write_count_ = 0;
  uint64_t bytes_written_ = 0;
  uint64_t fdatasync_count_ = 0;
  uint64_t fdatasync_calls_ = 0;
};

}  // namespace runnel
