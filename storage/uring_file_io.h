#pragma once
// UringFileIo: the real FileIo. Asynchronous operations are single SQEs on
// the shard's ring (OPENAT, WRITE with RWF_DSYNC, READ, FSYNC with
// DATASYNC, FALLOCATE, CLOSE, UNLINKAT); the _sync ones are plain syscalls
// for startup and tests. One instance per shard, used on that shard only.

#include "storage/file_io.h"

namespace runnel {

class UringFileIo final : public FileIo {
 public:
  // `reactor` may be null when only the _sync operations are used.
  explicit UringFileIo(Reactor* reactor) : reactor_(reactor) {}

  void open(const std::string& path, bool create, bool direct, FileOp* op, FileOp::Callback done) override;
  void write(FileId file, const void* data, size_t len, uint64_t offset, uint32_t flags, FileOp* op,
             FileOp::Callback done) override;
  void read(FileId file, void* data, size_t len, uint64_t offset, FileOp* op, FileOp::Callback done) override;
  void fdatasync(FileId file, FileOp* op, FileOp::Callback done) override;
  void fallocate(FileId file, uint64_t offset, uint64_t len, FileOp* op, FileOp::Callback done) override;
  void close(FileId file, FileOp* op, FileOp::Callback done) override;
  void unlink(const std::string& path, FileOp* op, FileOp::Callback done) override;
  void fsync_dir(const std::string& path, FileOp* op, FileOp::Callback done) override;

  Status create_directories_sync(const std::string& path) override;
  Result<std::vector<std::string>> list_dir_sync(const std::string& path) override;
  Result<FileId> open_sync(const std::string& path, bool create, bool direct) override;
  Result<uint64_t> file_size_sync(FileId file) override;
  Result<size_t> read_sync(FileId file, void* data, size_t len, uint64_t offset) override;
  Status write_sync(FileId file, const void* data, size_t len, uint64_t offset) override;
  Status fdatasync_sync(FileId file) override;
  Status fallocate_sync(FileId file, uint64_t offset, uint64_t len) override;
  Status fsync_dir_sync(const std::string& path) override;
  Status truncate_sync(FileId file, uint64_t size) override;
  Status rename_sync(const std::string& from, const std::string& to) override;
  Status unlink_sync(const std::string& path) override;
  Status close_sync(FileId file) override;

 private:
  io_uring_sqe* prepare(FileOp* op, FileOp::Callback done);

  Reactor* reactor_;
};

}  // namespace runnel
