#pragma once
// FileIo: every file operation of the storage engine goes through this
// interface, so that tests can swap the disk for a simulated one that injects
// faults (storage/sim_file_io.h). UringFileIo (storage/uring_file_io.h) is the
// real one: each operation is one SQE on the shard's ring, never a blocking
// syscall on the shard thread.
//
// Asynchronous operations take a caller-owned FileOp. The op — and any path
// or buffer passed with it — must stay alive until its callback has run (the
// kernel reads them when the SQE is submitted, later in the loop step); the
// callback runs on the shard, never inline from the call that started it. Results follow io_uring: >= 0 is success
// (bytes transferred, or a file id for open), < 0 is -errno.
//
// Synchronous operations (names ending in _sync) block and exist for startup
// (recovery runs before the shard serves) and tests only.
//
// Durability contract: data written with kWriteDsync is durable when the
// write completes; other writes are durable once a later fdatasync of the
// same file completes. A failed write or fdatasync leaves the file's state
// unknown: callers must not retry it.

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "core/inline_function.h"
#include "core/reactor.h"
#include "core/status.h"

namespace runnel {

using FileId = int;

// One in-flight file operation. Owned by the caller (e.g. a flush slot).
class FileOp final : public IoCompletion {
 public:
  using Callback = InlineFunction<void(int result), 40>;

  FileOp() = default;
  FileOp(const FileOp&) = delete;
  FileOp& operator=(const FileOp&) = delete;

  bool in_flight() const { return in_flight_; }

  // For FileIo implementations: arm before submitting, complete exactly once.
  void arm(Callback callback) {
    RUNNEL_ASSERT(!in_flight_);
    callback_ = std::move(callback);
    in_flight_ = true;
  }
  // For FileIo implementations that run several steps for one operation
  // (fsync_dir): the caller's callback waits here while the steps run.
  Callback& final_callback() { return final_; }

  void on_complete(int res, uint32_t) override {
    RUNNEL_ASSERT(in_flight_);
    in_flight_ = false;
    Callback callback = std::move(callback_);
    callback(res);
  }

 private:
  Callback callback_;
  Callback final_;
  bool in_flight_ = false;
};

enum FileWriteFlags : uint32_t {
  kWriteNone = 0,
  kWriteDsync = 1,  // RWF_DSYNC: durable on completion.
};

class FileIo {
 public:
  virtual ~FileIo() = default;

  // --- asynchronous: the data path and segment roll ---
  // Opens (O_DIRECT where `direct`) and returns a FileId in the result.
  virtual void open(const std::string& path, bool create, bool direct, FileOp* op, FileOp::Callback done) = 0;
  virtual void write(FileId file, const void* data, size_t len, uint64_t offset, uint32_t flags, FileOp* op,
                     FileOp::Callback done) = 0;
  virtual void read(FileId file, void* data, size_t len, uint64_t offset, FileOp* op, FileOp::Callback done) = 0;
  virtual void fdatasync(FileId file, FileOp* op, FileOp::Callback done) = 0;
  // Reserves [offset, offset + len) so later writes there cannot fail for space.
  virtual void fallocate(FileId file, uint64_t offset, uint64_t len, FileOp* op, FileOp::Callback done) = 0;
  virtual void close(FileId file, FileOp* op, FileOp::Callback done) = 0;
  virtual void unlink(const std::string& path, FileOp* op, FileOp::Callback done) = 0;
  // Makes the directory's entries (files created, renamed, removed) durable.
  virtual void fsync_dir(const std::string& path, FileOp* op, FileOp::Callback done) = 0;

  // --- synchronous: startup and tests only ---
  virtual Status create_directories_sync(const std::string& path) = 0;
  virtual Result<std::vector<std::string>> list_dir_sync(const std::string& path) = 0;  // Names, sorted.
  virtual Result<FileId> open_sync(const std::string& path, bool create, bool direct) = 0;
  virtual Result<uint64_t> file_size_sync(FileId file) = 0;
  virtual Result<size_t> read_sync(FileId file, void* data, size_t len, uint64_t offset) = 0;
  virtual Status write_sync(FileId file, const void* data, size_t len, uint64_t offset) = 0;
  virtual Status fdatasync_sync(FileId file) = 0;
  virtual Status fallocate_sync(FileId file, uint64_t offset, uint64_t len) = 0;
  virtual Status fsync_dir_sync(const std::string& path) = 0;
  virtual Status truncate_sync(FileId file, uint64_t size) = 0;
  virtual Status rename_sync(const std::string& from, const std::string& to) = 0;
  virtual Status unlink_sync(const std::string& path) = 0;
  virtual Status close_sync(FileId file) = 0;
};

// Alignment of O_DIRECT buffers, offsets and lengths.
inline constexpr size_t kDmaAlignment = 4096;

}  // namespace runnel
