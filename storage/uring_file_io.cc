#include "storage/uring_file_io.h"

#include <dirent.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>

namespace runnel {
namespace {

Status errno_status(const char* what, const std::string& path, int err) {
  ErrorCode code = err == ENOSPC ? ErrorCode::kNoSpace : err == ENOENT ? ErrorCode::kNotFound : ErrorCode::kIoError;
  return Status(code, fmt::format("{} {}: {}", what, path, std::strerror(err)));
}

int open_flags(bool create, bool direct) {
  return O_RDWR | O_CLOEXEC | (create ? O_CREAT : 0) | (direct ? O_DIRECT : 0);
}

}  // namespace

io_uring_sqe* UringFileIo::prepare(FileOp* op, FileOp::Callback done) {
  RUNNEL_ASSERT(reactor_ != nullptr);
  op->arm(std::move(done));
  io_uring_sqe* sqe = reactor_->get_sqe();
  return sqe;
}

void UringFileIo::open(const std::string& path, bool create, bool direct, FileOp* op, FileOp::Callback done) {
  io_uring_sqe* sqe = prepare(op, std::move(done));
  io_uring_prep_openat(sqe, AT_FDCWD, path.c_str(), open_flags(create, direct), 0644);
  Reactor::set_completion(sqe, op);
}

void UringFileIo::write(FileId file, const void* data, size_t len, uint64_t offset, uint32_t flags, FileOp* op,
                        FileOp::Callback done) {
  io_uring_sqe* sqe = prepare(op, std::move(done));
  io_uring_prep_write(sqe, file, data, static_cast<unsigned>(len), offset);
  if (flags & kWriteDsync) sqe->rw_flags = RWF_DSYNC;
  Reactor::set_completion(sqe, op);
}

void UringFileIo::read(FileId file, void* data, size_t len, uint64_t offset, FileOp* op, FileOp::Callback done) {
  io_uring_sqe* sqe = prepare(op, std::move(done));
  io_uring_prep_read(sqe, file, data, static_cast<unsigned>(len), offset);
  Reactor::set_completion(sqe, op);
}

void UringFileIo::fdatasync(FileId file, FileOp* op, FileOp::Callback done) {
  io_uring_sqe* sqe = prepare(op, std::move(done));
  io_uring_prep_fsync(sqe, file, IORING_FSYNC_DATASYNC);
  Reactor::set_completion(sqe, op);
}

void UringFileIo::fallocate(FileId file, uint64_t offset, uint64_t len, FileOp* op, FileOp::Callback done) {
  io_uring_sqe* sqe = prepare(op, std::move(done));
  io_uring_prep_fallocate(sqe, file, 0, offset, len);
  Reactor::set_completion(sqe, op);
}

void UringFileIo::close(FileId file, FileOp* op, FileOp::Callback done) {
  io_uring_sqe* sqe = prepare(op, std::move(done));
  io_uring_prep_close(sqe, file);
  Reactor::set_completion(sqe, op);
}

void UringFileIo::unlink(const std::string& path, FileOp* op, FileOp::Callback done) {
  io_uring_sqe* sqe = prepare(op, std::move(done));
  io_uring_prep_unlinkat(sqe, AT_FDCWD, path.c_str(), 0);
  Reactor::set_completion(sqe, op);
}

void UringFileIo::fsync_dir(const std::string& path, FileOp* op, FileOp::Callback done) {
  // Three steps on the ring: open the directory, fsync it, close it. The
  // caller's callback waits in the op; the first error ends the chain.
  op->final_callback() = std::move(done);
  io_uring_sqe* sqe = prepare(op, [this, op](int fd) {
    if (fd < 0) {
      FileOp::Callback finish = std::move(op->final_callback());
      finish(fd);
      return;
    }
    io_uring_sqe* fsync_sqe = prepare(op, [this, op, fd](int res) {
      io_uring_sqe* close_sqe = prepare(op, [op, res](int) {
        FileOp::Callback finish = std::move(op->final_callback());
        finish(res);
      });
      io_uring_prep_close(close_sqe, fd);
      Reactor::set_completion(close_sqe, op);
    });
    io_uring_prep_fsync(fsync_sqe, fd, 0);
    Reactor::set_completion(fsync_sqe, op);
  });
  io_uring_prep_openat(sqe, AT_FDCWD, path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
  Reactor::set_completion(sqe, op);
}

Status UringFileIo::create_directories_sync(const std::string& path) {
  std::error_code ec;
  std::filesystem::create_directories(path, ec);
  if (ec) return Status(ErrorCode::kIoError, fmt::format("create {}: {}", path, ec.message()));
  return Status::ok();
}

Result<std::vector<std::string>> UringFileIo::list_dir_sync(const std::string& path) {
  DIR* dir = ::opendir(path.c_str());
  if (dir == nullptr) return errno_status("list", path, errno);
  std::vector<std::string> names;
  while (dirent* e = ::readdir(dir)) {
    std::string name = e->d_name;
    if (name != "." && name != "..") names.push_back(std::move(name));
  }
  ::closedir(dir);
  std::sort(names.begin(), names.end());
  return names;
}

Result<FileId> UringFileIo::open_sync(const std::string& path, bool create, bool direct) {
  int fd = ::open(path.c_str(), open_flags(create, direct), 0644);
  if (fd < 0) return errno_status("open", path, errno);
  return fd;
}

Result<uint64_t> UringFileIo::file_size_sync(FileId file) {
  struct stat st {};
  if (::fstat(file, &st) != 0) return errno_status("stat", std::to_string(file), errno);
  return static_cast<uint64_t>(st.st_size);
}

Result<size_t> UringFileIo::read_sync(FileId file, void* data, size_t len, uint64_t offset) {
  size_t done = 0;
  while (done < len) {
    ssize_t n = ::pread(file, static_cast<char*>(data) + done, len - done, static_cast<off_t>(offset + done));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return errno_status("read", std::to_string(file), errno);
    if (n == 0) break;
    done += static_cast<size_t>(n);
  }
  return done;
}

Status UringFileIo::write_sync(FileId file, const void* data, size_t len, uint64_t offset) {
  size_t done = 0;
  while (done < len) {
    ssize_t n = ::pwrite(file, static_cast<const char*>(data) + done, len - done, static_cast<off_t>(offset + done));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return errno_status("write", std::to_string(file), errno);
    done += static_cast<size_t>(n);
  }
  return Status::ok();
}

Status UringFileIo::fdatasync_sync(FileId file) {
  if (::fdatasync(file) != 0) return errno_status("fdatasync", std::to_string(file), errno);
  return Status::ok();
}

Status UringFileIo::fallocate_sync(FileId file, uint64_t offset, uint64_t len) {
  if (::fallocate(file, 0, static_cast<off_t>(offset), static_cast<off_t>(len)) != 0) {
    return errno_status("fallocate", std::to_string(file), errno);
  }
  return Status::ok();
}

Status UringFileIo::fsync_dir_sync(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return errno_status("open dir", path, errno);
  int r = ::fsync(fd);
  int err = errno;
  ::close(fd);
  if (r != 0) return errno_status("fsync dir", path, err);
  return Status::ok();
}

Status UringFileIo::truncate_sync(FileId file, uint64_t size) {
  if (::ftruncate(file, static_cast<off_t>(size)) != 0) return errno_status("truncate", std::to_string(file), errno);
  return Status::ok();
}

Status UringFileIo::rename_sync(const std::string& from, const std::string& to) {
  if (::rename(from.c_str(), to.c_str()) != 0) return errno_status("rename", from, errno);
  return Status::ok();
}

Status UringFileIo::unlink_sync(const std::string& path) {
  if (::unlink(path.c_str()) != 0) return errno_status("unlink", path, errno);
  return Status::ok();
}

Status UringFileIo::close_sync(FileId file) {
  if (::close(file) != 0) return errno_status("close", std::to_string(file), errno);
  return Status::ok();
}

}  // namespace runnel
