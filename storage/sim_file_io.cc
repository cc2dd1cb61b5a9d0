#include "storage/sim_file_io.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <string_view>
#include <thread>
#include <utility>

namespace runnel {
namespace {

// Paths are compared after lexical normalisation, without a trailing slash.
std::string normalize(const std::string& path) {
  std::string p = std::filesystem::path(path).lexically_normal().string();
  while (p.size() > 1 && p.back() == '/') p.pop_back();
  return p;
}

std::string parent_of(const std::string& normalized) {
  return std::filesystem::path(normalized).parent_path().string();
}

std::string name_of(const std::string& normalized) {
  return std::filesystem::path(normalized).filename().string();
}

std::string_view errno_name(int err) {
  switch (err) {
    case EIO: return "EIO";
    case ENOSPC: return "ENOSPC";
    case ENOENT: return "ENOENT";
    case EEXIST: return "EEXIST";
    case EINVAL: return "EINVAL";
    case EISDIR: return "EISDIR";
    case ENOTDIR: return "ENOTDIR";
    case EFBIG: return "EFBIG";
    default: return "errno";
  }
}

// The one place a simulated -errno becomes a Status.
Status errno_status(int res, std::string_view what, const std::string& path) {
  RUNNEL_ASSERT(res < 0);
  const int err = -res;
  ErrorCode code = ErrorCode::kInternal;
  switch (err) {
    case EIO: code = ErrorCode::kIoError; break;
    case ENOSPC: code = ErrorCode::kNoSpace; break;
    case ENOENT: code = ErrorCode::kNotFound; break;
    case EEXIST: code = ErrorCode::kAlreadyExists; break;
    case EINVAL:
    case EISDIR:
    case ENOTDIR: code = ErrorCode::kInvalidArgument; break;
    case EFBIG: code = ErrorCode::kTooLarge; break;
    default: RUNNEL_ASSERT(false && "unexpected simulated errno");
  }
  std::string message(what);
  message += ' ';
  message += path;
  message += ": ";
  message += errno_name(err);
  message += " (simulated)";
  return Status(code, std::move(message));
}

// Sector boundaries strictly inside (offset, offset + len): where a torn
// write may be cut.
uint64_t first_cut(uint64_t offset) { return (offset / kSimSectorBytes + 1) * kSimSectorBytes; }
uint64_t cut_count(uint64_t offset, uint64_t len) {
  const uint64_t first = first_cut(offset);
  const uint64_t end = offset + len;
  return first < end ? (end - 1 - first) / kSimSectorBytes + 1 : 0;
}
// Bytes kept by a write torn at its `index`-th inner sector boundary.
uint64_t kept_at_cut(uint64_t offset, uint64_t index) {
  return first_cut(offset) + index * kSimSectorBytes - offset;
}

void put(std::vector<uint8_t>& bytes, uint64_t offset, const uint8_t* data, uint64_t len) {
  if (len == 0) return;
  if (bytes.size() < offset + len) bytes.resize(offset + len);
  std::memcpy(bytes.data() + offset, data, len);
}

}  // namespace

// ---------------------------------------------------------------- SimDisk

SimDisk::File* SimDisk::find_locked(const std::string& path) {
  auto it = names_.find(path);
  return it == names_.end() ? nullptr : &files_.at(it->second);
}

const SimDisk::File* SimDisk::find_locked(const std::string& path) const {
  auto it = names_.find(path);
  return it == names_.end() ? nullptr : &files_.at(it->second);
}

bool SimDisk::dir_exists_locked(const std::string& dir) const {
  return dir.empty() || dir == "/" || dir == "." || dirs_.count(dir) != 0;
}

// Linear over files: fine for the tens of files a test makes.
uint64_t SimDisk::used_bytes_locked() const {
  uint64_t used = 0;
  for (const auto& [inode, file] : files_) {
    if (file.links > 0 || file.open_count > 0) used += file.size;
  }
  return used;
}

int SimDisk::check_growth_locked(const File& file, uint64_t new_size) const {
  if (new_size > kSimFileBytesMax) return -EFBIG;
  if (new_size <= file.size) return 0;
  const uint64_t used = used_bytes_locked();
  const uint64_t growth = new_size - file.size;
  if (used > space_bytes_ || growth > space_bytes_ - used) return -ENOSPC;
  return 0;
}

int64_t SimDisk::open_locked(const std::string& path, bool create) {
  if (dir_exists_locked(path)) return -EISDIR;
  auto it = names_.find(path);
  if (it != names_.end()) return static_cast<int64_t>(it->second);
  if (!create) return -ENOENT;
  const std::string parent = parent_of(path);
  if (!dir_exists_locked(parent)) return names_.count(parent) != 0 ? -ENOTDIR : -ENOENT;
  const uint64_t inode = next_inode_++;
  files_[inode].links = 1;
  names_[path] = inode;
  return static_cast<int64_t>(inode);
}

int SimDisk::unlink_locked(const std::string& path) {
  if (dir_exists_locked(path)) return -EISDIR;
  auto it = names_.find(path);
  if (it == names_.end()) return -ENOENT;
  const uint64_t inode = it->second;
  names_.erase(it);
  files_.at(inode).links--;
  drop_if_unreachable_locked(inode);
  return 0;
}

void SimDisk::drop_if_unreachable_locked(uint64_t inode) {
  auto it = files_.find(inode);
  RUNNEL_ASSERT(it != files_.end());
  const File& file = it->second;
  RUNNEL_ASSERT(file.links >= 0);
  RUNNEL_ASSERT(file.durable_links >= 0);
  RUNNEL_ASSERT(file.open_count >= 0);
  if (file.links == 0 && file.durable_links == 0 && file.open_count == 0) files_.erase(it);
}

void SimDisk::land(File& file, uint64_t offset, const uint8_t* data, uint64_t len) {
  put(file.durable, offset, data, len);
  if (file.media) {
    put(*file.media, offset, data, len);
    if (file.media->size() < file.durable.size()) file.media->resize(file.durable.size());
  }
}

void SimDisk::make_durable(File& file, const PendingWrite& write) {
  const uint64_t len = write.bytes.size();
  if (write.torn_keep == kNotTorn) {
    land(file, write.offset, write.bytes.data(), len);
    return;
  }
  // The device acknowledges the whole write but only the prefix reaches the
  // media; the rest of the range keeps the media's old bytes (zeros past its end).
  if (!file.media) file.media = file.durable;
  put(file.durable, write.offset, write.bytes.data(), len);
  put(*file.media, write.offset, write.bytes.data(), write.torn_keep);
  file.media->resize(file.durable.size());
}

void SimDisk::carve_pending(File& file, uint64_t begin, uint64_t end) {
  std::vector<PendingWrite> kept;
  kept.reserve(file.pending.size());
  for (PendingWrite& w : file.pending) {
    const uint64_t w_end = w.offset + w.bytes.size();
    if (w_end <= begin || w.offset >= end) {
      kept.push_back(std::move(w));
      continue;
    }
    if (w.offset < begin) {
      PendingWrite left;
      left.offset = w.offset;
      left.bytes.assign(w.bytes.begin(), w.bytes.begin() + static_cast<ptrdiff_t>(begin - w.offset));
      if (w.torn_keep != kNotTorn) left.torn_keep = std::min<uint64_t>(w.torn_keep, left.bytes.size());
      kept.push_back(std::move(left));
    }
    if (w_end > end) {
      const uint64_t skip = end - w.offset;
      PendingWrite right;
      right.offset = end;
      right.bytes.assign(w.bytes.begin() + static_cast<ptrdiff_t>(skip), w.bytes.end());
      if (w.torn_keep != kNotTorn) right.torn_keep = w.torn_keep > skip ? w.torn_keep - skip : 0;
      kept.push_back(std::move(right));
    }
  }
  file.pending = std::move(kept);
}

void SimDisk::resolve_pending(File& file, std::mt19937_64& rng, SimCrashStats* stats) {
  enum Outcome : uint64_t { kLost = 0, kKept = 1, kTorn = 2 };
  for (const PendingWrite& w : file.pending) {
    const uint64_t len = w.bytes.size();
    uint64_t keep = 0;
    if (w.torn_keep != kNotTorn) {
      keep = w.torn_keep;
      if (stats != nullptr) stats->writes_torn++;
    } else {
      const uint64_t cuts = cut_count(w.offset, len);
      // A write with no inner sector boundary cannot tear: lost or kept.
      const uint64_t outcome = rng() % (cuts > 0 ? 3 : 2);
      if (outcome == kLost) {
        keep = 0;
        if (stats != nullptr) stats->writes_lost++;
      } else if (outcome == kKept) {
        keep = len;
        if (stats != nullptr) stats->writes_kept++;
      } else {
        keep = kept_at_cut(w.offset, rng() % cuts);
        if (stats != nullptr) stats->writes_torn++;
      }
    }
    land(file, w.offset, w.bytes.data(), keep);
  }
  file.pending.clear();
  file.size = file.durable.size();
}

void SimDisk::resize(File& file, uint64_t size) {
  file.durable.resize(size);
  if (file.media) file.media->resize(size);
  if (size < file.size) {
    // Pending writes past the new end are cut off with it.
    std::vector<PendingWrite> kept;
    for (PendingWrite& w : file.pending) {
      if (w.offset >= size) continue;
      if (w.offset + w.bytes.size() > size) w.bytes.resize(size - w.offset);
      if (w.torn_keep != kNotTorn) w.torn_keep = std::min<uint64_t>(w.torn_keep, w.bytes.size());
      kept.push_back(std::move(w));
    }
    file.pending = std::move(kept);
  }
  file.size = size;
}

void SimDisk::read_visible(const File& file, uint8_t* out, uint64_t len, uint64_t offset) {
  RUNNEL_ASSERT(offset + len <= file.size);
  if (len == 0) return;
  std::memset(out, 0, len);  // Holes read as zeros.
  const uint64_t end = offset + len;
  if (offset < file.durable.size()) {
    const uint64_t n = std::min<uint64_t>(end, file.durable.size()) - offset;
    std::memcpy(out, file.durable.data() + offset, n);
  }
  for (const PendingWrite& w : file.pending) {
    const uint64_t w_end = w.offset + w.bytes.size();
    const uint64_t from = std::max(offset, w.offset);
    const uint64_t to = std::min(end, w_end);
    if (from < to) std::memcpy(out + (from - offset), w.bytes.data() + (from - w.offset), to - from);
  }
}

SimCrashStats SimDisk::crash(uint64_t seed) {
  std::lock_guard<std::mutex> lock(mutex_);
  std::mt19937_64 rng(seed);
  SimCrashStats stats;

  names_ = durable_names_;
  for (auto& [inode, file] : files_) {
    file.links = 0;
    file.durable_links = 0;
    file.open_count = 0;
  }
  for (const auto& [path, inode] : names_) {
    File& file = files_.at(inode);
    file.links++;
    file.durable_links++;
  }
  for (auto it = files_.begin(); it != files_.end();) {
    if (it->second.links == 0) {
      it = files_.erase(it);
      stats.files_dropped++;
    } else {
      ++it;
    }
  }
  // Map order is inode order, so the RNG draws replay from the seed.
  for (auto& [inode, file] : files_) {
    if (file.media) {
      file.durable = std::move(*file.media);
      file.media.reset();
    }
    resolve_pending(file, rng, &stats);
  }
  generation_++;
  return stats;
}

Status SimDisk::corrupt_at_rest(const std::string& path, uint64_t offset, uint8_t mask) {
  RUNNEL_ASSERT(mask != 0);
  std::lock_guard<std::mutex> lock(mutex_);
  const std::string p = normalize(path);
  File* file = find_locked(p);
  if (file == nullptr) return errno_status(-ENOENT, "corrupt_at_rest", p);
  if (offset >= file->durable.size()) {
    return Status(ErrorCode::kInvalidArgument, "corrupt_at_rest: offset past the durable bytes of " + p);
  }
  file->durable[offset] ^= mask;
  if (file->media) (*file->media)[offset] ^= mask;
  return Status::ok();
}

void SimDisk::set_space_bytes(uint64_t limit) {
  std::lock_guard<std::mutex> lock(mutex_);
  space_bytes_ = limit;
}

uint64_t SimDisk::space_bytes() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return space_bytes_;
}

uint64_t SimDisk::used_bytes() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return used_bytes_locked();
}

bool SimDisk::exists(const std::string& path) const {
  std::lock_guard<std::mutex> lock(mutex_);
  return find_locked(normalize(path)) != nullptr;
}

bool SimDisk::is_directory(const std::string& path) const {
  std::lock_guard<std::mutex> lock(mutex_);
  return dir_exists_locked(normalize(path));
}

Result<std::vector<uint8_t>> SimDisk::contents(const std::string& path) const {
  std::lock_guard<std::mutex> lock(mutex_);
  const std::string p = normalize(path);
  const File* file = find_locked(p);
  if (file == nullptr) return errno_status(-ENOENT, "contents", p);
  std::vector<uint8_t> bytes(file->size);
  read_visible(*file, bytes.data(), bytes.size(), 0);
  return bytes;
}

Result<std::vector<uint8_t>> SimDisk::durable_contents(const std::string& path) const {
  std::lock_guard<std::mutex> lock(mutex_);
  const std::string p = normalize(path);
  const File* file = find_locked(p);
  if (file == nullptr) return errno_status(-ENOENT, "durable_contents", p);
  return file->durable;
}

size_t SimDisk::pending_write_count(const std::string& path) const {
  std::lock_guard<std::mutex> lock(mutex_);
  const File* file = find_locked(normalize(path));
  return file == nullptr ? 0 : file->pending.size();
}

uint64_t SimDisk::generation() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return generation_;
}

// ---------------------------------------------------------------- SimFileIo

SimFileIo::SimFileIo(SimDisk& disk, Reactor* reactor, SimFaults faults, uint64_t seed)
    : disk_(disk), reactor_(reactor), faults_(faults), seed_(seed), rng_(seed), generation_(disk.generation()) {}

SimFileIo::~SimFileIo() {
  std::lock_guard<std::mutex> lock(disk_.mutex_);
  if (disk_.generation_ != generation_) return;  // The crash closed everything.
  for (const auto& [id, handle] : handles_) {
    disk_.files_.at(handle.inode).open_count--;
    disk_.drop_if_unreachable_locked(handle.inode);
  }
}

const SimFileIo::Handle& SimFileIo::handle_locked(FileId file) const {
  RUNNEL_ASSERT(disk_.generation_ == generation_);  // Used after SimDisk::crash().
  auto it = handles_.find(file);
  RUNNEL_ASSERT(it != handles_.end());  // Unknown or closed FileId.
  return it->second;
}

SimDisk::File& SimFileIo::file_locked(FileId file) { return disk_.files_.at(handle_locked(file).inode); }

bool SimFileIo::chance(double probability) {
  if (!(probability > 0)) return false;
  if (probability >= 1) return true;
  return static_cast<double>(rng_() >> 11) * 0x1.0p-53 < probability;
}

uint64_t SimFileIo::uniform(uint64_t lo, uint64_t hi) {
  RUNNEL_ASSERT(lo <= hi);
  return lo + rng_() % (hi - lo + 1);
}

bool SimFileIo::misaligned(const Handle& handle, const void* data, size_t len, uint64_t offset) const {
  if (!handle.direct) return false;
  return offset % kDmaAlignment != 0 || len % kDmaAlignment != 0 ||
         reinterpret_cast<uintptr_t>(data) % kDmaAlignment != 0;
}

int SimFileIo::open_locked(const std::string& path, bool create, bool direct) {
  RUNNEL_ASSERT(disk_.generation_ == generation_);
  const std::string p = normalize(path);
  const int64_t inode = disk_.open_locked(p, create);
  if (inode < 0) return static_cast<int>(inode);
  disk_.files_.at(static_cast<uint64_t>(inode)).open_count++;
  const FileId id = next_file_id_++;
  handles_[id] = Handle{static_cast<uint64_t>(inode), p, direct};
  return id;
}

int SimFileIo::write_locked(FileId file, const void* data, size_t len, uint64_t offset, uint32_t flags,
                            bool allow_short) {
  RUNNEL_ASSERT((flags & ~uint32_t{kWriteDsync}) == 0);
  const Handle& handle = handle_locked(file);
  SimDisk::File& f = disk_.files_.at(handle.inode);
  if (misaligned(handle, data, len, offset)) return -EINVAL;
  if (len == 0) return 0;
  if (offset > kSimFileBytesMax || len > kSimFileBytesMax) return -EFBIG;  // Before offset + len can wrap.
  if (chance(faults_.write_eio)) return -EIO;
  if (chance(faults_.write_enospc)) return -ENOSPC;

  uint64_t n = len;
  if (allow_short && chance(faults_.short_write)) {
    if (handle.direct) {
      const uint64_t sectors = len / kSimSectorBytes;  // >= 8: len is a multiple of 4096.
      n = uniform(1, sectors - 1) * kSimSectorBytes;
    } else if (len >= 2) {
      n = uniform(1, len - 1);
    }
  }
  if (int res = disk_.check_growth_locked(f, offset + n); res < 0) return res;

  SimDisk::PendingWrite w;
  w.offset = offset;
  const auto* bytes = static_cast<const uint8_t*>(data);
  w.bytes.assign(bytes, bytes + n);
  if (chance(faults_.torn_write)) {
    const uint64_t cuts = cut_count(offset, n);
    w.torn_keep = cuts > 0 ? kept_at_cut(offset, uniform(0, cuts - 1)) : 0;
  }
  f.size = std::max(f.size, offset + n);
  if ((flags & kWriteDsync) != 0) {
    // Only this write becomes durable; earlier pending writes lose the
    // overlapped range to it, so they can never land over it later.
    SimDisk::carve_pending(f, offset, offset + n);
    SimDisk::make_durable(f, w);
  } else {
    f.pending.push_back(std::move(w));
  }
  write_count_++;
  bytes_written_ += n;
  return static_cast<int>(n);
}

int SimFileIo::read_locked(FileId file, void* data, size_t len, uint64_t offset) {
  const Handle& handle = handle_locked(file);
  const SimDisk::File& f = disk_.files_.at(handle.inode);
  if (misaligned(handle, data, len, offset)) return -EINVAL;
  if (chance(faults_.read_eio)) return -EIO;
  if (offset >= f.size || len == 0) return 0;
  const uint64_t n = std::min<uint64_t>(len, f.size - offset);
  auto* out = static_cast<uint8_t*>(data);
  SimDisk::read_visible(f, out, n, offset);
  if (chance(faults_.read_bitflip)) {
    const uint64_t bit = uniform(0, n * 8 - 1);
    out[bit / 8] ^= static_cast<uint8_t>(1u << (bit % 8));
  }
  return static_cast<int>(n);
}

int SimFileIo::fdatasync_locked(FileId file) {
  SimDisk::File& f = file_locked(file);
  fdatasync_calls_++;
  if (chance(faults_.fdatasync_eio)) {
    SimDisk::resolve_pending(f, rng_, nullptr);
    return -EIO;
  }
  for (const SimDisk::PendingWrite& w : f.pending) SimDisk::make_durable(f, w);
  f.pending.clear();
  RUNNEL_ASSERT(f.durable.size() == f.size);
  fdatasync_count_++;
  return 0;
}

int SimFileIo::fallocate_locked(FileId file, uint64_t offset, uint64_t len) {
  SimDisk::File& f = file_locked(file);
  if (len == 0) return -EINVAL;
  if (offset > kSimFileBytesMax || len > kSimFileBytesMax) return -EFBIG;  // Before offset + len can wrap.
  if (chance(faults_.fallocate_enospc)) return -ENOSPC;
  const uint64_t end = offset + len;
  if (int res = disk_.check_growth_locked(f, end); res < 0) return res;
  // Zero-filled and durable at once; never shrinks, never touches data.
  if (f.durable.size() < end) {
    f.durable.resize(end);
    if (f.media) f.media->resize(end);
  }
  f.size = std::max(f.size, end);
  return 0;
}

int SimFileIo::close_locked(FileId file) {
  const uint64_t inode = handle_locked(file).inode;
  handles_.erase(file);
  disk_.files_.at(inode).open_count--;
  disk_.drop_if_unreachable_locked(inode);
  return 0;
}

int SimFileIo::fsync_dir_locked(const std::string& path) {
  RUNNEL_ASSERT(disk_.generation_ == generation_);
  const std::string p = normalize(path);
  if (!disk_.dir_exists_locked(p)) return disk_.names_.count(p) != 0 ? -ENOTDIR : -ENOENT;
  if (chance(faults_.fsync_dir_eio)) return -EIO;
  // The durable entries of this directory become exactly the visible ones.
  // Linear scans: fine for the tens of entries a test makes.
  std::vector<uint64_t> touched;
  for (auto it = disk_.durable_names_.begin(); it != disk_.durable_names_.end();) {
    if (parent_of(it->first) == p) {
      disk_.files_.at(it->second).durable_links--;
      touched.push_back(it->second);
      it = disk_.durable_names_.erase(it);
    } else {
      ++it;
    }
  }
  for (const auto& [name, inode] : disk_.names_) {
    if (parent_of(name) == p) {
      disk_.durable_names_[name] = inode;
      disk_.files_.at(inode).durable_links++;
    }
  }
  for (uint64_t inode : touched) {
    if (disk_.files_.count(inode) != 0) disk_.drop_if_unreachable_locked(inode);
  }
  return 0;
}

// --- asynchronous ---

void SimFileIo::start(FileOp* op, FileOp::Callback done) {
  RUNNEL_ASSERT(reactor_ != nullptr);  // Asynchronous operations need a reactor.
  // Reactor::current() is not set yet while a shard runs its init, where
  // async work may start, so the check is "always the same thread".
  if (async_thread_ == std::thread::id()) async_thread_ = std::this_thread::get_id();
  RUNNEL_ASSERT(async_thread_ == std::this_thread::get_id());
  RUNNEL_ASSERT(op != nullptr);
  op->arm(std::move(done));
}

void SimFileIo::finish(FileOp* op, int result) {
  reactor_->post([this, op, result] { op->on_complete(process_dead() ? -EIO : result, 0); });
}

bool SimFileIo::process_dead() {
  if (!dead_after_crash_) return false;
  std::lock_guard<std::mutex> lock(disk_.mutex_);
  return disk_.generation_ != generation_;
}

void SimFileIo::open(const std::string& path, bool create, bool direct, FileOp* op, FileOp::Callback done) {
  start(op, std::move(done));
  if (process_dead()) return finish(op, -EIO);
  int res;
  {
    std::lock_guard<std::mutex> lock(disk_.mutex_);
    res = open_locked(path, create, direct);
  }
  finish(op, res);
}

void SimFileIo::write(FileId file, const void* data, size_t len, uint64_t offset, uint32_t flags, FileOp* op,
                      FileOp::Callback done) {
  start(op, std::move(done));
  if (process_dead()) return finish(op, -EIO);
  int res;
  {
    std::lock_guard<std::mutex> lock(disk_.mutex_);
    res = write_locked(file, data, len, offset, flags, /*allow_short=*/true);
  }
  finish(op, res);
}

void SimFileIo::read(FileId file, void* data, size_t len, uint64_t offset, FileOp* op, FileOp::Callback done) {
  start(op, std::move(done));
  if (process_dead()) return finish(op, -EIO);
  int res;
  {
    std::lock_guard<std::mutex> lock(disk_.mutex_);
    res = read_locked(file, data, len, offset);
  }
  finish(op, res);
}

void SimFileIo::fdatasync(FileId file, FileOp* op, FileOp::Callback done) {
  start(op, std::move(done));
  if (process_dead()) return finish(op, -EIO);
  int res;
  {
    std::lock_guard<std::mutex> lock(disk_.mutex_);
    res = fdatasync_locked(file);
  }
  finish(op, res);
}

void SimFileIo::fallocate(FileId file, uint64_t offset, uint64_t len, FileOp* op, FileOp::Callback done) {
  start(op, std::move(done));
  if (process_dead()) return finish(op, -EIO);
  int res;
  {
    std::lock_guard<std::mutex> lock(disk_.mutex_);
    res = fallocate_locked(file, offset, len);
  }
  finish(op, res);
}

void SimFileIo::close(FileId file, FileOp* op, FileOp::Callback done) {
  start(op, std::move(done));
  if (process_dead()) return finish(op, -EIO);
  int res;
  {
    std::lock_guard<std::mutex> lock(disk_.mutex_);
    res = close_locked(file);
  }
  finish(op, res);
}

void SimFileIo::unlink(const std::string& path, FileOp* op, FileOp::Callback done) {
  start(op, std::move(done));
  if (process_dead()) return finish(op, -EIO);
  int res;
  {
    std::lock_guard<std::mutex> lock(disk_.mutex_);
    RUNNEL_ASSERT(disk_.generation_ == generation_);
    res = disk_.unlink_locked(normalize(path));
  }
  finish(op, res);
}

void SimFileIo::fsync_dir(const std::string& path, FileOp* op, FileOp::Callback done) {
  start(op, std::move(done));
  if (process_dead()) return finish(op, -EIO);
  int res;
  {
    std::lock_guard<std::mutex> lock(disk_.mutex_);
    res = fsync_dir_locked(path);
  }
  finish(op, res);
}

// --- synchronous ---

Status SimFileIo::create_directories_sync(const std::string& path) {
  if (process_dead()) return Status(ErrorCode::kIoError, "simulated process died with the disk");
  std::lock_guard<std::mutex> lock(disk_.mutex_);
  RUNNEL_ASSERT(disk_.generation_ == generation_);
  const std::string p = normalize(path);
  std::filesystem::path prefix;
  for (const auto& part : std::filesystem::path(p)) {
    prefix /= part;
    const std::string dir = prefix.string();
    if (disk_.dir_exists_locked(dir)) continue;
    if (disk_.names_.count(dir) != 0) return errno_status(-EEXIST, "create_directories", dir);
    disk_.dirs_.insert(dir);
  }
  return Status::ok();
}

Result<std::vector<std::string>> SimFileIo::list_dir_sync(const std::string& path) {
  if (process_dead()) return Status(ErrorCode::kIoError, "simulated process died with the disk");
  std::lock_guard<std::mutex> lock(disk_.mutex_);
  RUNNEL_ASSERT(disk_.generation_ == generation_);
  const std::string p = normalize(path);
  if (!disk_.dir_exists_locked(p)) {
    return errno_status(disk_.names_.count(p) != 0 ? -ENOTDIR : -ENOENT, "list_dir", p);
  }
  // Linear scans: fine for the tens of entries a test makes.
  std::set<std::string> names;
  for (const auto& [name, inode] : disk_.names_) {
    if (parent_of(name) == p) names.insert(name_of(name));
  }
  for (const std::string& dir : disk_.dirs_) {
    if (dir != p && parent_of(dir) == p) names.insert(name_of(dir));
  }
  return std::vector<std::string>(names.begin(), names.end());
}

Result<FileId> SimFileIo::open_sync(const std::string& path, bool create, bool direct) {
  if (process_dead()) return Status(ErrorCode::kIoError, "simulated process died with the disk");
  std::lock_guard<std::mutex> lock(disk_.mutex_);
  const int res = open_locked(path, create, direct);
  if (res < 0) return errno_status(res, "open", normalize(path));
  return FileId{res};
}

Result<uint64_t> SimFileIo::file_size_sync(FileId file) {
  if (process_dead()) return Status(ErrorCode::kIoError, "simulated process died with the disk");
  std::lock_guard<std::mutex> lock(disk_.mutex_);
  return file_locked(file).size;
}

Result<size_t> SimFileIo::read_sync(FileId file, void* data, size_t len, uint64_t offset) {
  if (process_dead()) return Status(ErrorCode::kIoError, "simulated process died with the disk");
  std::lock_guard<std::mutex> lock(disk_.mutex_);
  const int res = read_locked(file, data, len, offset);
  if (res < 0) return errno_status(res, "read", handle_locked(file).path);
  return static_cast<size_t>(res);
}

Status SimFileIo::write_sync(FileId file, const void* data, size_t len, uint64_t offset) {
  if (process_dead()) return Status(ErrorCode::kIoError, "simulated process died with the disk");
  std::lock_guard<std::mutex> lock(disk_.mutex_);
  const int res = write_locked(file, data, len, offset, kWriteNone, /*allow_short=*/false);
  if (res < 0) return errno_status(res, "write", handle_locked(file).path);
  RUNNEL_ASSERT(static_cast<size_t>(res) == len);
  return Status::ok();
}

Status SimFileIo::fdatasync_sync(FileId file) {
  if (process_dead()) return Status(ErrorCode::kIoError, "simulated process died with the disk");
  std::lock_guard<std::mutex> lock(disk_.mutex_);
  const int res = fdatasync_locked(file);
  if (res < 0) return errno_status(res, "fdatasync", handle_locked(file).path);
  return Status::ok();
}

Status SimFileIo::fallocate_sync(FileId file, uint64_t offset, uint64_t len) {
  if (process_dead()) return Status(ErrorCode::kIoError, "simulated process died with the disk");
  std::lock_guard<std::mutex> lock(disk_.mutex_);
  const int res = fallocate_locked(file, offset, len);
  if (res < 0) return errno_status(res, "fallocate", handle_locked(file).path);
  return Status::ok();
}

Status SimFileIo::fsync_dir_sync(const std::string& path) {
  if (process_dead()) return Status(ErrorCode::kIoError, "simulated process died with the disk");
  std::lock_guard<std::mutex> lock(disk_.mutex_);
  const int res = fsync_dir_locked(path);
  if (res < 0) return errno_status(res, "fsync_dir", normalize(path));
  return Status::ok();
}

Status SimFileIo::truncate_sync(FileId file, uint64_t size) {
  if (process_dead()) return Status(ErrorCode::kIoError, "simulated process died with the disk");
  std::lock_guard<std::mutex> lock(disk_.mutex_);
  SimDisk::File& f = file_locked(file);
  if (int res = disk_.check_growth_locked(f, size); res < 0) {
    return errno_status(res, "truncate", handle_locked(file).path);
  }
  SimDisk::resize(f, size);
  return Status::ok();
}

Status SimFileIo::rename_sync(const std::string& from, const std::string& to) {
  if (process_dead()) return Status(ErrorCode::kIoError, "simulated process died with the disk");
  std::lock_guard<std::mutex> lock(disk_.mutex_);
  RUNNEL_ASSERT(disk_.generation_ == generation_);
  const std::string src = normalize(from);
  const std::string dst = normalize(to);
  // Renaming directories is not simulated: the engine renames files only.
  if (disk_.dir_exists_locked(src)) return errno_status(-EISDIR, "rename", src);
  auto it = disk_.names_.find(src);
  if (it == disk_.names_.end()) return errno_status(-ENOENT, "rename", src);
  if (disk_.dir_exists_locked(dst)) return errno_status(-EISDIR, "rename", dst);
  const std::string dst_parent = parent_of(dst);
  if (!disk_.dir_exists_locked(dst_parent)) {
    return errno_status(disk_.names_.count(dst_parent) != 0 ? -ENOTDIR : -ENOENT, "rename", dst);
  }
  if (src == dst) return Status::ok();
  const uint64_t inode = it->second;
  disk_.names_.erase(it);
  auto old = disk_.names_.find(dst);
  if (old != disk_.names_.end()) {
    const uint64_t replaced = old->second;
    old->second = inode;
    disk_.files_.at(replaced).links--;
    disk_.drop_if_unreachable_locked(replaced);
  } else {
    disk_.names_[dst] = inode;
  }
  return Status::ok();
}

Status SimFileIo::unlink_sync(const std::string& path) {
  if (process_dead()) return Status(ErrorCode::kIoError, "simulated process died with the disk");
  std::lock_guard<std::mutex> lock(disk_.mutex_);
  RUNNEL_ASSERT(disk_.generation_ == generation_);
  const std::string p = normalize(path);
  const int res = disk_.unlink_locked(p);
  if (res < 0) return errno_status(res, "unlink", p);
  return Status::ok();
}

Status SimFileIo::close_sync(FileId file) {
  if (process_dead()) return Status(ErrorCode::kIoError, "simulated process died with the disk");
  std::lock_guard<std::mutex> lock(disk_.mutex_);
  const int res = close_locked(file);
  RUNNEL_ASSERT(res == 0);
  return Status::ok();
}

}  // namespace runnel
