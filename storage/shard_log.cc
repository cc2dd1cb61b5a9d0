#include "storage/shard_log.h"

#include <algorithm>
#include <cinttypes>
#include <cstdlib>
#include <cstring>
#include <future>

#include "core/log.h"
#include "storage/log_internal.h"
#include "storage/shard_log_state.h"

namespace runnel {
using namespace log_internal;
namespace {

// Unacknowledged flushes may have landed up to this far past the first hole;
// recovery zeroes at least this much after the point where writing resumes.
constexpr uint64_t kZeroWindowFloorBytes = 32ull << 20;
constexpr uint64_t kNoSpaceRetryUs = 1'000'000;
// Strings kept for reuse by waiting appends (each holds up to one batch).
constexpr size_t kSparePayloadsMax = 64;

std::string segment_name(uint64_t id) { return fmt::format("{:020}.seg", id); }

bool parse_segment_name(const std::string& name, uint64_t* id) {
  if (name.size() != 24 || name.compare(20, 4, ".seg") != 0) return false;
  uint64_t v = 0;
  for (int i = 0; i < 20; i++) {
    if (name[i] < '0' || name[i] > '9') return false;
    v = v * 10 + static_cast<uint64_t>(name[i] - '0');
  }
  *id = v;
  return true;
}

// A skip marker says that the bytes [void_from, here) are the remains of a
// torn flush and hold nothing.
std::string skip_marker_payload(uint64_t void_from) {
  char bytes[8];
  std::memcpy(bytes, &void_from, 8);
  return control_payload(kControlSkipMarker, std::string_view(bytes, 8));
}

bool parse_skip_marker(const BatchHeader& header, std::string_view payload, const BatchLimits& limits,
                       uint64_t* void_from) {
  uint8_t type = 0;
  std::string_view bytes;
  if (!parse_control(header, payload, limits, &type, &bytes)) return false;
  if (type != kControlSkipMarker || bytes.size() != 8) return false;
  std::memcpy(void_from, bytes.data(), 8);
  return true;
}

}  // namespace

namespace {

constexpr uint32_t kSummaryMagic = 0x34534E52;  // "RNS4"

template <typename T>
void put(std::string* out, T v) {
  out->append(reinterpret_cast<const char*>(&v), sizeof(v));
}
template <typename T>
bool take(std::string_view* in, T* v) {
  if (in->size() < sizeof(T)) return false;
  std::memcpy(v, in->data(), sizeof(T));
  in->remove_prefix(sizeof(T));
  return true;
}

}  // namespace

std::string ShardLog::encode_summary(uint64_t segment_id, const SegmentSummary& summary) {
  std::string out;
  put<uint32_t>(&out, kSummaryMagic);
  put<uint64_t>(&out, segment_id);
  put<uint64_t>(&out, summary.batches);
  put<uint64_t>(&out, summary.durable_end);
  put<uint64_t>(&out, summary.tails.size());
  for (const auto& [stream, tail] : summary.tails) {
    put(&out, stream);
    put(&out, tail.next_seq);
    put(&out, tail.last_timestamp);
    put(&out, tail.bytes_total);
  }
  put<uint64_t>(&out, summary.entries.size());
  for (const auto& e : summary.entries) {
    put(&out, e.stream_id);
    put(&out, e.base_seq);
    put(&out, e.offset);
    put(&out, e.first_timestamp);
    put(&out, e.bytes_before);
  }
  put<uint64_t>(&out, summary.controls.size());
  for (const std::string& c : summary.controls) {
    put<uint32_t>(&out, static_cast<uint32_t>(c.size()));
    out.append(c);
  }
  put<uint64_t>(&out, summary.holes.size());
  for (const auto& [start, end] : summary.holes) {
    put(&out, start);
    put(&out, end);
  }
  put<uint64_t>(&out, summary.relocations.size());
  for (const Relocation& r : summary.relocations) {
    put(&out, r.source);
    put<uint64_t>(&out, r.streams.size());
    for (const Relocation::Stream& st : r.streams) {
      put(&out, st.stream_id);
      put(&out, st.end_seq);
      put(&out, st.last_timestamp);
      put(&out, st.bytes_end);
      put<uint64_t>(&out, st.entries.size());
      for (const Relocation::Entry& e : st.entries) {
        put(&out, e.base_seq);
        put(&out, e.offset);
        put(&out, e.first_timestamp);
        put(&out, e.bytes_before);
      }
    }
  }
  put<uint64_t>(&out, payload_checksum(out));
  return out;
}

bool ShardLog::decode_summary(std::string_view bytes, uint64_t segment_id, SegmentSummary* summary) {
  if (bytes.size() < 8) return false;
  uint64_t checksum;
  std::memcpy(&checksum, bytes.data() + bytes.size() - 8, 8);
  std::string_view in = bytes.substr(0, bytes.size() - 8);
  if (payload_checksum(in) != checksum) return false;
  uint32_t magic;
  uint64_t id, count;
  if (!take(&in, &magic) || magic != kSummaryMagic || !take(&in, &id) || id != segment_id) return false;
  if (!take(&in, &summary->batches) || !take(&in, &summary->durable_end) || !take(&in, &count)) return false;
  for (uint64_t i = 0; i < count; i++) {
    uint64_t stream;
    SegmentSummary::Tail tail;
    if (!take(&in, &stream) || !take(&in, &tail.next_seq) || !take(&in, &tail.last_timestamp) ||
        !take(&in, &tail.bytes_total)) {
      return false;
    }
    summary->tails[stream] = tail;
  }
  if (!take(&in, &count)) return false;
  for (uint64_t i = 0; i < count; i++) {
    SegmentSummary::Entry e;
    if (!take(&in, &e.stream_id) || !take(&in, &e.base_seq) || !take(&in, &e.offset) ||
        !take(&in, &e.first_timestamp) || !take(&in, &e.bytes_before)) {
      return false;
    }
    summary->entries.push_back(e);
  }
  if (!take(&in, &count)) return false;
  for (uint64_t i = 0; i < count; i++) {
    uint32_t len;
    if (!take(&in, &len) || in.size() < len) return false;
    summary->controls.emplace_back(in.substr(0, len));
    in.remove_prefix(len);
  }
  if (!take(&in, &count)) return false;
  for (uint64_t i = 0; i < count; i++) {
    uint64_t start, end;
    if (!take(&in, &start) || !take(&in, &end)) return false;
    summary->holes.emplace_back(start, end);
  }
  if (!take(&in, &count)) return false;
  for (uint64_t i = 0; i < count; i++) {
    Relocation r;
    uint64_t streams;
    if (!take(&in, &r.source) || !take(&in, &streams)) return false;
    for (uint64_t k = 0; k < streams; k++) {
      Relocation::Stream st;
      uint64_t entries;
      if (!take(&in, &st.stream_id) || !take(&in, &st.end_seq) || !take(&in, &st.last_timestamp) ||
          !take(&in, &st.bytes_end) || !take(&in, &entries)) {
        return false;
      }
      if (entries > in.size() / 32) return false;
      for (uint64_t n = 0; n < entries; n++) {
        Relocation::Entry e;
        if (!take(&in, &e.base_seq) || !take(&in, &e.offset) || !take(&in, &e.first_timestamp) ||
            !take(&in, &e.bytes_before)) {
          return false;
        }
        st.entries.push_back(e);
      }
      r.streams.push_back(std::move(st));
    }
    summary->relocations.push_back(std::move(r));
  }
  return in.empty();
}

ShardLog::ShardLog(Reactor* reactor, FileIo& io, const LogOptions& options)
    : reactor_(reactor), io_(io), options_(options), limits_(options.limits), cache_(options.cache_bytes) {
  RUNNEL_ASSERT(options_.segment_bytes % kBlock == 0);
  RUNNEL_ASSERT(options_.flushes_in_flight_max >= 1);
  RUNNEL_ASSERT(options_.write_buffers >= options_.flushes_in_flight_max + 1);
  // A buffer must hold the largest batch plus padding.
  const size_t largest_batch = kBatchHeaderBytes + limits_.payload_bytes_max;
  const size_t capacity = align_up(std::max<size_t>(options_.flush_bytes_max, largest_batch + kBlock));
  RUNNEL_ASSERT(capacity <= options_.segment_bytes);
  zero_window_bytes_ = std::max<uint64_t>(kZeroWindowFloorBytes, uint64_t{options_.write_buffers} * capacity);
  for (uint32_t i = 0; i < options_.write_buffers; i++) {
    auto buffer = std::make_unique<WriteBuffer>();
    // Not zeroed: batches are written from the front and seal_current zeroes
    // the block's tail, so no byte reaches the disk unwritten; the pages are
    // faulted in by the first flushes instead of at startup.
    buffer->data = aligned_alloc_uninitialized(capacity);
    buffer->capacity = capacity;
    free_buffers_.push_back(buffer.get());
    buffers_.push_back(std::move(buffer));
  }
  const size_t read_capacity = align_up(std::max<size_t>(options_.read_chunk_bytes, largest_batch + 2 * kBlock));
  for (uint32_t i = 0; i < options_.reads_in_flight_max; i++) {
    auto op = std::make_unique<ReadOp>();
    op->log = this;
    op->capacity = read_capacity;
    free_read_ops_.push_back(op.get());
    read_ops_.push_back(std::move(op));
  }
  if (reactor_ != nullptr) {
    wait_timer_ = std::make_unique<Timer>(*reactor_, [this] { expire_waiting(); });
    MetricsRegistry& m = reactor_->metrics();
    appends_ = &m.counter("runnel_log_appends_total", "Batches appended and acknowledged.");
    append_errors_ = &m.counter("runnel_log_append_errors_total", "Appends that failed.");
    records_appended_ = &m.counter("runnel_log_records_appended_total", "Records appended and acknowledged.");
    bytes_appended_ = &m.counter("runnel_log_bytes_appended_total", "Batch bytes appended and acknowledged.");
    flushes_ = &m.counter("runnel_log_flushes_total", "Flushes (durable writes) completed.");
    flush_bytes_ = &m.counter("runnel_log_flush_bytes_total", "Bytes written by flushes, padding included.");
    reads_ = &m.counter("runnel_log_reads_total", "Reads served.");
    reclaimed_segments_ = &m.counter("runnel_log_segments_reclaimed_total", "Segment files deleted because nothing in them was needed.");
    cache_hits_ = &m.counter("runnel_log_read_cache_hits_total", "Read steps served from recently written data in memory.");
    cache_misses_ = &m.counter("runnel_log_read_cache_misses_total", "Read steps that went to disk.");
    read_disk_bytes_ = &m.counter("runnel_log_read_disk_bytes_total",
                                  "Bytes reads took from segment files (other streams' data read through included).");
    corrupt_batches_ = &m.counter("runnel_log_corrupt_batches_total",
                                  "Bad batches found by recovery or reads; never returned as data.");
    compactions_ = &m.counter("runnel_log_compactions_total",
                              "Segments whose live batches were copied forward so the segment could be deleted.");
    compactions_abandoned_ = &m.counter("runnel_log_compactions_abandoned_total",
                                        "Compactions cut short (segment roll, I/O error, shutdown); retried later.");
    relocated_bytes_ = &m.counter("runnel_log_compaction_bytes_total", "Batch bytes copied forward by compaction.");
    flush_us_ = &m.histogram("runnel_log_flush_seconds", "Time from flush submission to durability.", 1e-6);
    flush_batch_count_ = &m.histogram("runnel_log_flush_batches", "Batches per flush (group commit).", 1.0);
  }
}

ShardLog::~ShardLog() {
  for (auto& [id, segment] : segments_) {
    if (segment->fd >= 0) (void)io_.close_sync(segment->fd);
  }
  if (next_ && next_->fd >= 0) (void)io_.close_sync(next_->fd);
}

std::string ShardLog::segment_path(uint64_t id) const { return options_.dir + "/" + segment_name(id); }

Result<std::unique_ptr<ShardLog>> ShardLog::open(Reactor* reactor, FileIo& io, const LogOptions& options,
                                                ControlHandler control_handler) {
  std::unique_ptr<ShardLog> log(new ShardLog(reactor, io, options));
  log->control_handler_ = std::move(control_handler);
  if (Status s = log->recover(); !s) return s;
  return log;
}

// --- recovery -------------------------------------------------------------

Status ShardLog::create_segment_sync(uint64_t id) {
  auto segment = std::make_unique<Segment>();
  segment->id = id;
  segment->path = segment_path(id);
  auto fd = io_.open_sync(segment->path, true, true);
  if (!fd) return fd.status();
  segment->fd = *fd;
  // Preallocated like every later segment; its blocks read as zeros, which
  // the scan takes for "no data here". (Pre-zeroing would spare the first
  // writes a metadata update; measured in perf/RESULTS.md.)
  if (Status s = io_.fallocate_sync(segment->fd, 0, options_.segment_bytes); !s) return s;
  if (Status s = io_.fdatasync_sync(segment->fd); !s) return s;
  if (Status s = io_.fsync_dir_sync(options_.dir); !s) return s;
  segment->summary = std::make_unique<SegmentSummary>();
  segments_[id] = std::move(segment);
  return Status::ok();
}

// Reads a segment through a sliding window of aligned chunks. Once a scan
// streams past its first window, the next window is read ahead on a helper
// thread while this one is verified, so recovery runs at disk speed rather
// than disk plus checksum speed. (Recovery only: never on a serving shard.)
class SegmentScanner {
 public:
  SegmentScanner(FileIo& io, FileId fd, uint64_t size, size_t window)
      : io_(io), fd_(fd), size_(size), window_(window), buffer_(aligned_alloc_bytes(window)) {}
  ~SegmentScanner() {
    if (ahead_.valid()) ahead_.wait();
  }

  // Pointer to [offset, offset + len), or null past the end / on error.
  const char* bytes(uint64_t offset, size_t len) {
    if (offset + len > size_) return nullptr;
    if (offset < start_ || offset + len > start_ + loaded_) {
      if (!reload(offset, len)) return nullptr;
    }
    return buffer_.get() + (offset - start_);
  }
  const Status& status() const { return status_; }
  uint64_t bytes_read() const { return bytes_read_; }

 private:
  // Windows overlap by more than the largest batch, so a batch that does not
  // fit in one window lies wholly in the next.
  static constexpr uint64_t kOverlapBytes = 2u << 20;

  bool reload(uint64_t offset, size_t len) {
    bool have = false;
    if (ahead_.valid()) {
      auto got = ahead_.get();
      if (got && offset >= ahead_start_ && offset + len <= ahead_start_ + *got) {
        std::swap(buffer_, ahead_buffer_);
        start_ = ahead_start_;
        loaded_ = *got;
        bytes_read_ += *got;
        have = true;
      }
    }
    if (!have) {
      start_ = align_down(offset);
      const size_t want = std::min<uint64_t>(window_, size_ - start_);
      auto got = io_.read_sync(fd_, buffer_.get(), want, start_);
      if (!got) {
        status_ = got.status();
        loaded_ = 0;
        return false;
      }
      loaded_ = *got;
      bytes_read_ += *got;
      if (offset + len > start_ + loaded_) return false;
    }
    // Streaming (a second window was needed): read the next one ahead.
    if (++reloads_ >= 2 && start_ + loaded_ < size_ && loaded_ > kOverlapBytes) {
      if (!ahead_buffer_) ahead_buffer_ = aligned_alloc_bytes(window_);
      ahead_start_ = align_down(start_ + loaded_ - kOverlapBytes);
      const size_t want = std::min<uint64_t>(window_, size_ - ahead_start_);
      char* target = ahead_buffer_.get();
      const uint64_t at = ahead_start_;
      ahead_ = std::async(std::launch::async, [this, target, want, at] { return io_.read_sync(fd_, target, want, at); });
    }
    return true;
  }

  FileIo& io_;
  FileId fd_;
  uint64_t size_;
  size_t window_;
  AlignedBytes buffer_;
  uint64_t start_ = 0;
  size_t loaded_ = 0;
  uint64_t bytes_read_ = 0;
  uint64_t reloads_ = 0;
  Status status_;
  AlignedBytes ahead_buffer_;
  uint64_t ahead_start_ = 0;
  std::future<Result<size_t>> ahead_;
};

void ShardLog::log_unfinished_relocation(const Segment& segment, uint64_t source) {
  recovery_.unfinished_compactions++;
  log_info("segment {}: a compaction of segment {} did not finish (crash or abandoned); its copies are ignored",
           segment.path, source);
}

Status ShardLog::scan_segment(Segment& segment, bool last) {
  segment.summary = std::make_unique<SegmentSummary>();
  auto size = io_.file_size_sync(segment.fd);
  if (!size) return size.status();
  const size_t window = 32u << 20;  // Large sequential reads: recovery runs at disk speed.
  SegmentScanner scanner(io_, segment.fd, align_down(*size), window);

  struct Found {
    uint64_t offset;
    BatchHeader header;
  };
  struct BadRegion {
    uint64_t start;
    uint64_t end;
    bool voided = false;
  };
  std::vector<Found> found;
  std::vector<BadRegion> bad;
  uint64_t pos = 0;
  uint64_t data_end = 0;
  const uint64_t end = align_down(*size);

  // A batch at `at` that passes every check, or false.
  auto valid_at = [&](uint64_t at, BatchHeader* header) {
    const char* h = scanner.bytes(at, kBatchHeaderBytes);
    if (h == nullptr) return false;
    std::memcpy(header, h, kBatchHeaderBytes);
    if (!verify_header(*header, segment.id, limits_).is_ok()) return false;
    const char* p = scanner.bytes(at + kBatchHeaderBytes, header->payload_bytes);
    if (p == nullptr) return false;
    return verify_payload(*header, std::string_view(p, header->payload_bytes), limits_).is_ok();
  };

  while (pos + kBatchHeaderBytes <= end) {
    if (pos % kBlock != 0) {
      // After a batch: either another batch or zero padding to the block end.
      const uint64_t block_end = align_up(pos);
      const char* rest = scanner.bytes(pos, block_end - pos);
      if (rest != nullptr && is_zero(rest, block_end - pos)) {
        pos = block_end;
        continue;
      }
    } else {
      const char* h = scanner.bytes(pos, kBatchHeaderBytes);
      if (h == nullptr || is_zero(h, kBatchHeaderBytes)) break;  // Where a flush would start: the end of the data.
    }
    BatchHeader header;
    if (valid_at(pos, &header)) {
      found.push_back({pos, header});
      pos += kBatchHeaderBytes + header.payload_bytes;
      data_end = pos;
      continue;
    }
    // Bad data: resynchronize at the next byte where a whole valid batch
    // starts, stopping at a zero block (the end of the data). Batches need
    // not start on blocks, so probing blocks only would lose the rest of a flush.
    BadRegion region{pos, 0};
    uint64_t probe = pos + 1;
    while (probe + kBatchHeaderBytes <= end) {
      if (probe % kBlock == 0) {
        const char* b = scanner.bytes(probe, kBatchHeaderBytes);
        if (b == nullptr || is_zero(b, kBatchHeaderBytes)) break;
      }
      const char* m = scanner.bytes(probe, 4);
      BatchHeader next;
      if (m != nullptr && std::memcmp(m, &kBatchMagic, 4) == 0 && valid_at(probe, &next)) break;
      probe++;
    }
    region.end = std::min(probe, end);
    bad.push_back(region);
    pos = region.end;
  }
  if (!scanner.status().is_ok()) return scanner.status();
  recovery_.bytes_scanned += scanner.bytes_read();

  // Skip markers void the bad region that ends where they start.
  for (const Found& f : found) {
    if (f.header.stream_id != kControlStreamId) continue;
    const char* p = scanner.bytes(f.offset + kBatchHeaderBytes, f.header.payload_bytes);
    uint64_t void_from = 0;
    if (p != nullptr && parse_skip_marker(f.header, std::string_view(p, f.header.payload_bytes), limits_, &void_from)) {
      for (BadRegion& r : bad) {
        if (r.start == void_from && r.end == f.offset) r.voided = true;
      }
    }
  }

  // In the last segment, a bad region followed only by data within the
  // in-flight window is a torn tail: unacknowledged, cut off with what follows.
  uint64_t cut = UINT64_MAX;
  if (last) {
    for (const BadRegion& r : bad) {
      if (r.voided) continue;
      if (data_end <= r.start + zero_window_bytes_) {
        cut = r.start;
        break;
      }
    }
  }
  for (const BadRegion& r : bad) {
    if (r.start >= cut) {
      // The torn tail is cut off, zeroed and written over by later appends
      // from align_up(cut) on: only the torn bytes left in the block holding
      // `cut` stay a hole. (Keeping the whole region made reads skip records
      // appended there after the restart, for good once the segment's
      // summary carried the stale hole.)
      const uint64_t torn_end = std::min(r.end, align_up(cut));
      if (r.start < torn_end) segment.holes.emplace_back(r.start, torn_end);
      continue;
    }
    segment.holes.emplace_back(r.start, r.end);
    if (r.voided) continue;
    recovery_.corrupt_regions++;
    if (corrupt_batches_ != nullptr) corrupt_batches_->inc();
    log_error("corrupt data in segment {} at bytes [{}, {}): skipped, never returned", segment.path, r.start, r.end);
  }

  uint64_t valid_end = 0;
  // Compaction copies count only between a begin and an end marker of the
  // same source in this segment (storage/FORMAT.md, "Compaction").
  RelocationBuilder relocating;
  for (const Found& f : found) {
    if (f.offset >= cut) break;
    const BatchHeader& h = f.header;
    valid_end = f.offset + kBatchHeaderBytes + h.payload_bytes;
    recovery_.batches++;
    if ((h.flags & kBatchFlagRelocated) != 0) {
      segment.summary->batches++;
      relocating.copy(h, f.offset);
      continue;
    }
    if (h.stream_id == kControlStreamId) {
      segment.summary->batches++;
      const char* p = scanner.bytes(f.offset + kBatchHeaderBytes, h.payload_bytes);
      uint8_t type = 0;
      std::string_view bytes;
      const bool parsed = p != nullptr && parse_control(h, std::string_view(p, h.payload_bytes), limits_, &type, &bytes);
      uint64_t a = 0, b = 0;
      if (parsed && type == kControlRelocationBegin && control_field(bytes, 0, &a)) {
        if (relocating.active) log_unfinished_relocation(segment, relocating.relocation.source);
        relocating.begin(a);
      } else if (parsed && type == kControlRelocationRun && control_field(bytes, 1, &b) && control_field(bytes, 0, &a)) {
        relocating.run(a, b);
      } else if (parsed && type == kControlRelocationEnd && control_field(bytes, 0, &a)) {
        if (relocating.active && relocating.relocation.source == a) {
          apply_relocation(relocating.relocation, segment.id);
          segment.summary->relocations.push_back(std::move(relocating.relocation));
        }
        relocating = RelocationBuilder();
      }
      if (parsed && type == kControlUser && control_handler_) {
        segment.summary->controls.emplace_back(bytes);
        segment.control_records++;
        if (Status s = control_handler_(bytes, segment.id); !s) {
          // kNotFound is expected after a catalog snapshot: records about
          // streams the snapshot already dropped.
          log(s.code() == ErrorCode::kNotFound ? LogLevel::kDebug : LogLevel::kError,
              "segment {} offset {}: control record rejected at replay: {}", segment.path, f.offset,
                    s.to_string());
        }
      }
      continue;
    }
    auto& slot = streams_[h.stream_id];
    if (!slot) slot = std::make_unique<StreamState>();
    StreamState& stream = *slot;
    if (h.base_seq < stream.next_seq) {
      recovery_.corrupt_regions++;
      log_error("segment {} offset {}: batch of stream {} repeats seq {} (tail {}); skipped", segment.path, f.offset,
                h.stream_id, h.base_seq, stream.next_seq);
      continue;
    }
    // A stream's first batch on disk may start above 0 once older segments
    // were reclaimed: only a gap after batches of it is lost data.
    // So may one whose tail so far comes from compaction copies (later
    // copies, further on, fill the gap).
    // Otherwise the records between were trimmed and their segment deleted,
    // or were in a corrupt region (reported above); reads never skip them.
    if (h.base_seq > stream.next_seq && stream.next_seq > 0 && !stream.tail_from_copies) {
      log_debug("stream {}: records [{}, {}) are not in the log (trimmed, or in a corrupt region)", h.stream_id,
                stream.next_seq, h.base_seq);
    }
    const uint64_t previous_end = stream.durable_next_seq;
    stream.next_seq = stream.durable_next_seq = h.base_seq + h.record_count;
    stream.last_timestamp = stream.durable_last_timestamp = h.last_timestamp;
    stream.tail_from_copies = false;
    log_position_ += kBatchHeaderBytes + h.payload_bytes;
    index_batch(h.stream_id, stream, h.base_seq, previous_end, segment.id, f.offset, h.first_timestamp,
                kBatchHeaderBytes + h.payload_bytes);
    segment.summary->tails[h.stream_id] = {stream.next_seq, stream.last_timestamp, stream.bytes_total};
    segment.summary->batches++;
  }
  if (relocating.active) log_unfinished_relocation(segment, relocating.relocation.source);
  segment.durable_end = align_up(cut == UINT64_MAX ? data_end : valid_end);

  if (last && cut != UINT64_MAX) {
    uint64_t cut_end = cut;
    for (const BadRegion& r : bad) {
      if (r.start >= cut) cut_end = std::max(cut_end, r.end);
    }
    cut_end = std::max(cut_end, data_end);
    recovery_.torn_tail_bytes += cut_end - cut;
    log_warn("segment {}: torn tail at byte {} ({} bytes from there discarded: never acknowledged)", segment.path,
             cut, cut_end - cut);
    // The block holding `cut` keeps the torn batch's first bytes; a skip
    // marker right after it tells future scans that this is not corruption.
    uint64_t resume = align_up(cut);
    segment.durable_end = resume;
    if (cut % kBlock != 0) {
      BatchHeader marker;
      std::string payload = skip_marker_payload(cut);
      marker.stream_id = kControlStreamId;
      marker.record_count = 1;
      marker.payload_bytes = static_cast<uint32_t>(payload.size());
      marker.payload_checksum = payload_checksum(payload);
      seal_header(&marker, segment.id);
      // Zero what may follow first, then write the marker, each durably.
      uint64_t zero_end = std::min(options_.segment_bytes, resume + zero_window_bytes_);
      AlignedBytes zeros = aligned_alloc_bytes(1 << 20);
      for (uint64_t off = resume; off < zero_end; off += 1 << 20) {
        if (Status s = io_.write_sync(segment.fd, zeros.get(), std::min<uint64_t>(1 << 20, zero_end - off), off); !s) {
          return s;
        }
      }
      if (Status s = io_.fdatasync_sync(segment.fd); !s) return s;
      if (resume + kBlock <= options_.segment_bytes) {
        AlignedBytes block = aligned_alloc_bytes(kBlock);
        std::memcpy(block.get(), &marker, kBatchHeaderBytes);
        std::memcpy(block.get() + kBatchHeaderBytes, payload.data(), payload.size());
        if (Status s = io_.write_sync(segment.fd, block.get(), kBlock, resume); !s) return s;
        if (Status s = io_.fdatasync_sync(segment.fd); !s) return s;
        segment.durable_end = resume + kBlock;
      }
      return Status::ok();
    }
  }
  if (last) {
    // Unacknowledged flushes may have landed beyond a hole that reads as the
    // end of the data; zero them so later appends can never be followed by
    // stale batches.
    uint64_t resume = segment.durable_end;
    uint64_t zero_end = std::min(options_.segment_bytes, resume + zero_window_bytes_);
    const char* probe = nullptr;
    bool dirty = false;
    for (uint64_t off = resume; off < zero_end && !dirty; off += kBlock) {
      probe = scanner.bytes(off, kBlock);
      if (probe != nullptr && !is_zero(probe, kBlock)) dirty = true;
    }
    if (dirty) {
      AlignedBytes zeros = aligned_alloc_bytes(1 << 20);
      for (uint64_t off = resume; off < zero_end; off += 1 << 20) {
        if (Status s = io_.write_sync(segment.fd, zeros.get(), std::min<uint64_t>(1 << 20, zero_end - off), off); !s) {
          return s;
        }
      }
      if (Status s = io_.fdatasync_sync(segment.fd); !s) return s;
    }
  }
  return Status::ok();
}

Status ShardLog::recover() {
  const uint64_t started = Reactor::clock_us();
  if (Status s = io_.create_directories_sync(options_.dir); !s) return s;
  auto names = io_.list_dir_sync(options_.dir);
  if (!names) return names.status();
  std::vector<uint64_t> ids;
  for (const std::string& name : *names) {
    uint64_t id;
    if (parse_segment_name(name, &id)) ids.push_back(id);
  }
  std::sort(ids.begin(), ids.end());
  for (uint64_t id : ids) {
    auto segment = std::make_unique<Segment>();
    segment->id = id;
    segment->path = segment_path(id);
    auto fd = io_.open_sync(segment->path, false, true);
    if (!fd) return fd.status();
    segment->fd = *fd;
    segments_[id] = std::move(segment);
  }
  // A trailing segment with no data was prepared ahead and never written:
  // drop it (it is made again when needed) so the last segment holds data.
  while (segments_.size() > 1) {
    Segment& last = *segments_.rbegin()->second;
    char head[kBatchHeaderBytes];
    AlignedBytes block = aligned_alloc_bytes(kBlock);
    auto got = io_.read_sync(last.fd, block.get(), kBlock, 0);
    if (!got) return got.status();
    std::memcpy(head, block.get(), sizeof(head));
    if (*got == kBlock && !is_zero(head, 4)) break;
    (void)io_.close_sync(last.fd);
    if (Status s = io_.unlink_sync(last.path); !s) return s;
    segments_.erase(std::prev(segments_.end()));
  }
  for (auto it = segments_.begin(); it != segments_.end(); ++it) {
    Segment& segment = *it->second;
    const bool last = std::next(it) == segments_.end();
    // A complete segment with a valid summary is not scanned; the last one
    // always is (it may end in a torn flush).
    if (!last && apply_summary(segment)) continue;
    if (Status s = scan_segment(segment, last); !s) return s;
    if (!last) {
      segment.summary->durable_end = segment.durable_end;
      write_summary_sync(segment);
    }
  }
  recovery_.segments = segments_.size();
  if (segments_.empty()) {
    if (Status s = create_segment_sync(0); !s) return s;
  }
  active_ = segments_.rbegin()->second.get();
  append_offset_ = active_->durable_end;
  if (append_offset_ >= options_.segment_bytes) {
    if (Status s = create_segment_sync(active_->id + 1); !s) return s;
    active_ = segments_.rbegin()->second.get();
    append_offset_ = 0;
  }
  recovery_.duration_us = Reactor::clock_us() - started;
  double seconds = static_cast<double>(recovery_.duration_us) / 1e6;
  log_info("recovered {}: {} segments, {} batches, {} streams, {} MiB scanned in {:.3f} s ({:.0f} MiB/s), "
           "{} corrupt regions, {} torn-tail bytes",
           options_.dir, recovery_.segments, recovery_.batches, streams_.size(),
           recovery_.bytes_scanned >> 20, seconds,
           seconds > 0 ? static_cast<double>(recovery_.bytes_scanned) / (1 << 20) / seconds : 0.0,
           recovery_.corrupt_regions, recovery_.torn_tail_bytes);
  return Status::ok();
}

std::string ShardLog::summary_path(uint64_t segment_id) const {
  return options_.dir + "/" + fmt::format("{:020}.sum", segment_id);
}

bool ShardLog::apply_summary(Segment& segment) {
  auto fd = io_.open_sync(summary_path(segment.id), false, false);
  if (!fd) return false;
  std::string bytes;
  auto size = io_.file_size_sync(*fd);
  if (size && *size <= (uint64_t{1} << 32)) {
    bytes.resize(*size);
    auto got = io_.read_sync(*fd, bytes.data(), bytes.size(), 0);
    if (!got || *got != bytes.size()) bytes.clear();
  }
  (void)io_.close_sync(*fd);
  SegmentSummary summary;
  if (bytes.empty() || !decode_summary(bytes, segment.id, &summary)) {
    log_warn("segment {}: summary missing or damaged; scanning the segment instead", segment.path);
    return false;
  }
  for (const std::string& control : summary.controls) {
    if (!control_handler_) break;
    if (Status s = control_handler_(control, segment.id); !s) {
      log(s.code() == ErrorCode::kNotFound ? LogLevel::kDebug : LogLevel::kError,
          "segment {}: control record rejected at replay: {}", segment.path, s.to_string());
    }
  }
  for (const auto& e : summary.entries) {
    auto& slot = streams_[e.stream_id];
    if (!slot) slot = std::make_unique<StreamState>();
    slot->index.push_back({e.base_seq, segment.id, e.offset, e.first_timestamp, e.bytes_before});
    slot->bytes_since_index = 0;
  }
  for (const auto& [stream_id, tail] : summary.tails) {
    auto& slot = streams_[stream_id];
    if (!slot) slot = std::make_unique<StreamState>();
    slot->next_seq = slot->durable_next_seq = tail.next_seq;
    slot->last_timestamp = slot->durable_last_timestamp = tail.last_timestamp;
    slot->bytes_total = tail.bytes_total;
  }
  for (const Relocation& r : summary.relocations) apply_relocation(r, segment.id);
  segment.durable_end = summary.durable_end;
  segment.control_records = summary.controls.size();
  segment.holes = summary.holes;
  log_position_ += summary.durable_end;
  recovery_.batches += summary.batches;
  recovery_.segments_from_summary++;
  segment.summary_written = true;
  return true;
}

void ShardLog::write_summary_sync(Segment& segment) {
  if (!segment.summary) return;
  segment.summary->holes = segment.holes;
  const std::string bytes = encode_summary(segment.id, *segment.summary);
  auto fd = io_.open_sync(summary_path(segment.id), true, false);
  Status s = fd ? io_.truncate_sync(*fd, 0) : fd.status();
  if (s) s = io_.write_sync(*fd, bytes.data(), bytes.size(), 0);
  if (s) s = io_.fdatasync_sync(*fd);
  if (fd) (void)io_.close_sync(*fd);
  if (!s) log_warn("segment {}: cannot save its summary ({}); the next recovery scans it", segment.path, s.to_string());
  segment.summary.reset();
  segment.summary_written = true;
}

void ShardLog::write_summary(Segment& segment) {
  if (!segment.summary || segment.summary_written || reactor_ == nullptr || !failure_.is_ok()) return;
  segment.summary_written = true;
  segment.summary->durable_end = segment.durable_end;
  segment.summary->holes = segment.holes;
  // open → write → fdatasync → close, through the ring. A crash part way
  // leaves a file whose checksum fails: recovery then scans the segment.
  struct Job {
    ShardLog* log;
    uint64_t segment_id;
    std::string bytes;
    FileOp op;
    FileId fd = -1;
    std::string path;  // Lives until the open completes.
  };
  auto* job = new Job{this, segment.id, encode_summary(segment.id, *segment.summary), {}, -1, summary_path(segment.id)};
  segment.summary.reset();
  segment.summary_in_flight = true;  // Not reclaimed under the write.
  reactor_->hold();
  auto finish = [](Job* j, int res, const char* step) {
    if (res < 0) {
      log_warn("summary {}: cannot save it ({}: {}); the next recovery scans its segment", j->path, step,
               std::strerror(-res));
    }
    ShardLog* log = j->log;
    auto it = log->segments_.find(j->segment_id);
    if (it != log->segments_.end()) it->second->summary_in_flight = false;
    delete j;
    log->reactor_->release();
  };
  io_.open(job->path, true, false, &job->op, [this, job, finish](int fd) {
    if (fd < 0) return finish(job, fd, "open");
    job->fd = fd;
    io_.write(fd, job->bytes.data(), job->bytes.size(), 0, kWriteNone, &job->op, [this, job, finish](int res) {
      if (res < 0 || static_cast<size_t>(res) != job->bytes.size()) {
        (void)io_.close_sync(job->fd);
        return finish(job, res < 0 ? res : -EIO, "write");
      }
      io_.fdatasync(job->fd, &job->op, [this, job, finish](int sync_res) {
        io_.close(job->fd, &job->op, [job, finish, sync_res](int) { finish(job, sync_res, "fdatasync"); });
      });
    });
  });
}

// --- index ----------------------------------------------------------------

void ShardLog::index_batch(uint64_t stream_id, StreamState& stream, uint64_t base_seq, uint64_t previous_end,
                           uint64_t segment_id, uint64_t offset, uint64_t first_timestamp, uint64_t bytes) {
  // Sparse: an entry per index_interval_bytes of the stream's own data, or
  // when index_log_gap_bytes of log passed, so a read scans a bounded amount.
  // A batch that does not follow the last one indexed (the records between
  // are compaction copies recovery has not reached yet, or lost) starts an
  // entry too: the entry before it may point past it.
  bool need = stream.index.empty() || stream.index.back().segment_id != segment_id || base_seq != previous_end ||
              stream.bytes_since_index >= options_.index_interval_bytes ||
              log_position_ - stream.log_position_at_index >= options_.index_log_gap_bytes;
  if (need) {
    stream.index.push_back({base_seq, segment_id, offset, first_timestamp, stream.bytes_total});
    stream.bytes_since_index = 0;
    stream.log_position_at_index = log_position_;
    auto segment = segments_.find(segment_id);
    if (segment != segments_.end() && segment->second->summary) {
      segment->second->summary->entries.push_back({stream_id, base_seq, offset, first_timestamp, stream.bytes_total});
    }
  }
  stream.bytes_since_index += bytes;
  stream.bytes_total += bytes;
}

uint64_t ShardLog::retention_point(uint64_t stream_id, uint64_t age_cutoff_ms, uint64_t bytes_max) const {
  auto it = streams_.find(stream_id);
  if (it == streams_.end()) return 0;
  const StreamState& stream = *it->second;
  uint64_t keep_from = 0;
  if (age_cutoff_ms > 0 && stream.durable_next_seq > 0) {
    if (stream.durable_last_timestamp < age_cutoff_ms) {
      keep_from = stream.durable_next_seq;  // Everything is older.
    } else {
      // Records before an entry whose first timestamp is older than the
      // cutoff are older still (timestamps never decrease): the last such
      // entry is as far as age retention may trim.
      auto entry = std::lower_bound(stream.index.begin(), stream.index.end(), age_cutoff_ms,
                                    [](const StreamState::IndexEntry& e, uint64_t ts) { return e.first_timestamp < ts; });
      if (entry != stream.index.begin()) keep_from = std::max(keep_from, std::prev(entry)->base_seq);
    }
  }
  if (bytes_max > 0 && stream.bytes_total > bytes_max) {
    // The first entry from which at most bytes_max bytes remain.
    auto entry = std::lower_bound(stream.index.begin(), stream.index.end(), stream.bytes_total - bytes_max,
                                  [](const StreamState::IndexEntry& e, uint64_t before) { return e.bytes_before < before; });
    keep_from = std::max(keep_from, entry == stream.index.end() ? stream.durable_next_seq : entry->base_seq);
  }
  return std::min(keep_from, stream.durable_next_seq);
}

void ShardLog::wait_for_records(TailWaiter* waiter) {
  RUNNEL_ASSERT(!waiter->waiting);
  waiter->waiting = true;
  tail_waiters_[waiter->stream_id].push_back(waiter);
}

void ShardLog::cancel_wait(TailWaiter* waiter) {
  if (!waiter->waiting) return;
  waiter->waiting = false;
  auto it = tail_waiters_.find(waiter->stream_id);
  if (it == tail_waiters_.end()) return;
  auto& list = it->second;
  list.erase(std::remove(list.begin(), list.end(), waiter), list.end());
  if (list.empty()) tail_waiters_.erase(it);
}

StreamTail ShardLog::tail(uint64_t stream_id) const {
  auto it = streams_.find(stream_id);
  if (it == streams_.end()) return {};
  return {it->second->durable_next_seq, it->second->durable_last_timestamp};
}

// --- append ---------------------------------------------------------------

void ShardLog::append(uint64_t stream_id, std::string_view payload, uint32_t record_count, uint64_t checksum,
                      TimestampMode mode, uint64_t arrival_ms, std::optional<uint64_t> expected_tail,
                      AppendCallback done) {
  if (stream_id == kControlStreamId) {
    if (append_errors_ != nullptr) append_errors_->inc();
    return done(Status(ErrorCode::kInvalidArgument, "stream id 0 is reserved"));
  }
  append_batch(stream_id, payload, record_count, checksum, mode, arrival_ms, expected_tail, {}, std::move(done));
}

void ShardLog::append_control(std::string_view bytes, AppendCallback done) {
  std::string payload = control_payload(kControlUser, bytes);
  append_batch(kControlStreamId, payload, 1, payload_checksum(payload), TimestampMode::kArrival,
               Reactor::clock_realtime_ms(), std::nullopt, bytes, std::move(done));
}

uint64_t ShardLog::assigned_tail(uint64_t stream_id) const {
  auto it = streams_.find(stream_id);
  return it == streams_.end() ? 0 : it->second->next_seq;
}

void ShardLog::append_batch(uint64_t stream_id, std::string_view payload, uint32_t record_count, uint64_t checksum,
                            TimestampMode mode, uint64_t arrival_ms, std::optional<uint64_t> expected_tail,
                            std::string_view control, AppendCallback done) {
  RUNNEL_ASSERT(reactor_ != nullptr);
  // Appends are placed in arrival order: while some wait, newcomers queue behind them.
  if (waiting_.empty() &&
      try_append(stream_id, payload, record_count, checksum, mode, arrival_ms, expected_tail, control, done)) {
    return;
  }
  if (waiting_.size() >= options_.appends_waiting_max ||
      waiting_bytes_ + payload.size() > options_.append_waiting_bytes_max) {
    if (append_errors_ != nullptr) append_errors_->inc();
    return done(Status(ErrorCode::kOverloaded, "log write buffers are full and too many appends wait; retry later"));
  }
  // Overload path only: the waiting append keeps its own copy of the bytes,
  // in a recycled string so a sustained overload does not churn the allocator.
  if (waiting_.empty()) reactor_->hold();  // Shutdown waits for waiting appends too.
  std::string copy;
  if (!spare_payloads_.empty()) {
    copy = std::move(spare_payloads_.back());
    spare_payloads_.pop_back();
  }
  copy.assign(payload);
  waiting_bytes_ += payload.size();
  waiting_.push_back({stream_id, std::move(copy), record_count, checksum, mode, arrival_ms, expected_tail,
                      std::string(control), std::move(done),
                      Reactor::clock_us() + uint64_t{options_.append_wait_ms_max} * 1000});
  if (!wait_timer_->armed()) wait_timer_->arm_at_us(waiting_.front().deadline_us);
}

void ShardLog::drain_waiting() {
  if (waiting_.empty() || draining_) return;
  draining_ = true;
  while (!waiting_.empty()) {
    WaitingAppend& w = waiting_.front();
    if (!try_append(w.stream_id, w.payload, w.record_count, w.checksum, w.mode, w.arrival_ms, w.expected_tail,
                    w.control, w.done)) {
      break;  // Still no room: the rest waits too.
    }
    recycle(std::move(w.payload));
    waiting_.pop_front();
  }
  draining_ = false;
  if (waiting_.empty()) {
    wait_timer_->cancel();
    reactor_->release();
  } else if (!wait_timer_->armed()) {
    wait_timer_->arm_at_us(waiting_.front().deadline_us);
  }
}

void ShardLog::expire_waiting() {
  const uint64_t now = Reactor::clock_us();
  while (!waiting_.empty() && waiting_.front().deadline_us <= now) {
    WaitingAppend w = std::move(waiting_.front());
    waiting_.pop_front();
    recycle(std::move(w.payload));
    // Release before answering: the answer may append again and wait anew.
    if (waiting_.empty()) reactor_->release();
    if (append_errors_ != nullptr) append_errors_->inc();
    w.done(Status(ErrorCode::kOverloaded,
                  fmt::format("waited {} ms for log write buffers; retry later", options_.append_wait_ms_max)));
  }
  if (!waiting_.empty() && !wait_timer_->armed()) wait_timer_->arm_at_us(waiting_.front().deadline_us);
}

void ShardLog::recycle(std::string payload) {
  waiting_bytes_ -= payload.size();
  if (spare_payloads_.size() < kSparePayloadsMax) {
    payload.clear();  // Keeps its capacity.
    spare_payloads_.push_back(std::move(payload));
  }
}

bool ShardLog::try_append(uint64_t stream_id, std::string_view payload, uint32_t record_count, uint64_t checksum,
                          TimestampMode mode, uint64_t arrival_ms, std::optional<uint64_t> expected_tail,
                          std::string_view control, AppendCallback& done) {
  auto reject = [&](Status status) {
    if (append_errors_ != nullptr) append_errors_->inc();
    AppendCallback callback = std::move(done);
    callback(std::move(status));
    return true;
  };
  if (!failure_.is_ok()) return reject(failure_);
  BatchHeader header;
  header.stream_id = stream_id;
  header.record_count = record_count;
  header.payload_bytes = static_cast<uint32_t>(payload.size());
  header.payload_checksum = checksum;
  if (record_count == 0) return reject(Status(ErrorCode::kInvalidArgument, "a batch holds at least one record"));
  if (payload.size() > limits_.payload_bytes_max || record_count > limits_.records_max) {
    return reject(Status(ErrorCode::kTooLarge,
                         fmt::format("batch of {} records, {} bytes: over the limits of {} records, {} bytes",
                                     record_count, payload.size(), limits_.records_max, limits_.payload_bytes_max)));
  }
  PayloadTimestamps timestamps;  // Gathered by the one pass that verifies the records.
  if (Status s = verify_payload(header, payload, limits_, &timestamps); !s) return reject(std::move(s));

  // Control batches have no stream state: they all carry base_seq 0.
  StreamState control_state;
  StreamState* state = &control_state;
  if (stream_id != kControlStreamId) {
    auto& slot = streams_[stream_id];
    if (!slot) slot = std::make_unique<StreamState>();
    state = slot.get();
  }
  StreamState& stream = *state;
  // match_seq_num is decided here, when seq_nums are assigned, so of racing
  // appends (waiting or not) exactly one wins.
  if (expected_tail && *expected_tail != stream.next_seq) {
    return reject(Status(ErrorCode::kSeqNumMismatch,
                         fmt::format("match_seq_num {} is not the tail {}", *expected_tail, stream.next_seq),
                         stream.next_seq));
  }
  if (Status s = stamp_batch(&header, timestamps, arrival_ms, stream.last_timestamp, mode); !s) {
    return reject(std::move(s));
  }
  // Per-stream lz4: the stored payload is compressed when that saves space;
  // the header keeps the client's checksum of the raw payload.
  std::string_view stored = payload;
  if (stream.compress_lz4 && compress_payload(payload, &compress_scratch_)) {
    stored = compress_scratch_;
    header.flags = static_cast<uint16_t>(header.flags | kBatchFlagLz4);
    header.payload_bytes = static_cast<uint32_t>(stored.size());
  }
  const size_t bytes = kBatchHeaderBytes + stored.size();
  WriteBuffer* buffer = current_buffer(bytes);
  if (buffer == nullptr) {
    if (!failure_.is_ok()) return reject(failure_);
    if (next_state_ == NextSegment::kFailed) {
      return reject(Status(ErrorCode::kNoSpace, "no space for a new segment"));
    }
    return false;  // Buffers full or the next segment not ready yet: wait.
  }
  header.base_seq = stream.next_seq;
  seal_header(&header, buffer->segment->id);
  char* at = buffer->data.get() + buffer->used;
  std::memcpy(at, &header, kBatchHeaderBytes);
  std::memcpy(at + kBatchHeaderBytes, stored.data(), stored.size());
  WriteBuffer::Pending pending;
  pending.done = std::move(done);
  pending.ack = {header.base_seq, header.base_seq + record_count, header.first_timestamp, header.last_timestamp};
  pending.stream_id = stream_id;
  pending.offset = buffer->offset + buffer->used;
  pending.bytes = bytes;
  if (stream_id == kControlStreamId) pending.control = std::string(control);
  if (buffer->pending.empty()) reactor_->hold();  // Until this buffer is durable: shutdown waits.
  buffer->pending.push_back(std::move(pending));
  buffer->used += bytes;
  stream.next_seq += record_count;
  stream.last_timestamp = header.last_timestamp;
  maybe_flush();
  return true;
}

bool ShardLog::place_internal(BatchHeader header, std::string_view stored, AppendCallback& done,
                              uint64_t* segment_id, uint64_t* offset) {
  const size_t bytes = kBatchHeaderBytes + stored.size();
  WriteBuffer* buffer = current_buffer(bytes);
  if (buffer == nullptr) return false;
  seal_header(&header, buffer->segment->id);
  char* at = buffer->data.get() + buffer->used;
  std::memcpy(at, &header, kBatchHeaderBytes);
  std::memcpy(at + kBatchHeaderBytes, stored.data(), stored.size());
  WriteBuffer::Pending pending;
  pending.done = std::move(done);
  pending.ack = {header.base_seq, header.base_seq + header.record_count, header.first_timestamp,
                 header.last_timestamp};
  pending.stream_id = header.stream_id;
  pending.offset = buffer->offset + buffer->used;
  pending.bytes = bytes;
  pending.internal = true;
  *segment_id = buffer->segment->id;
  *offset = pending.offset;
  if (buffer->pending.empty()) reactor_->hold();
  buffer->pending.push_back(std::move(pending));
  buffer->used += bytes;
  maybe_flush();
  return true;
}

ShardLog::WriteBuffer* ShardLog::current_buffer(size_t needed) {
  if (filling_ != nullptr && filling_->used + needed <= filling_->capacity &&
      filling_->offset + align_up(filling_->used + needed) <= options_.segment_bytes) {
    return filling_;
  }
  if (filling_ != nullptr) seal_current();
  if (free_buffers_.empty()) return nullptr;
  if (append_offset_ + align_up(needed) > options_.segment_bytes) {
    if (next_state_ != NextSegment::kReady) {
      prepare_next_segment();
      if (next_state_ != NextSegment::kReady) return nullptr;
    }
    roll_segment();
  }
  // Prepare the next segment early, so a roll rarely waits.
  if (append_offset_ > options_.segment_bytes / 2) prepare_next_segment();
  WriteBuffer* buffer = free_buffers_.back();
  free_buffers_.pop_back();
  buffer->reset();
  buffer->segment = active_;
  buffer->offset = append_offset_;
  filling_ = buffer;
  return buffer;
}

void ShardLog::seal_current() {
  RUNNEL_ASSERT(filling_ != nullptr);
  WriteBuffer* buffer = std::exchange(filling_, nullptr);
  if (buffer->used == 0) {
    free_buffers_.push_back(buffer);
    return;
  }
  // Zero the padding: the block tail must read as "no batch here".
  std::memset(buffer->data.get() + buffer->used, 0, buffer->padded() - buffer->used);
  append_offset_ = buffer->offset + buffer->padded();
  sealed_.push_back(buffer);
}

void ShardLog::maybe_flush() {
  if (!failure_.is_ok()) return;
  // Group commit: while a flush slot is free, the filling buffer goes now;
  // otherwise it keeps collecting appends until one frees up.
  bool unstarted = false;
  for (WriteBuffer* b : sealed_) unstarted |= !b->started;
  if (filling_ != nullptr && filling_->used > 0 && !unstarted && flushes_in_flight_ < options_.flushes_in_flight_max) {
    seal_current();
  }
  for (WriteBuffer* buffer : sealed_) {
    if (buffer->started) continue;
    if (flushes_in_flight_ >= options_.flushes_in_flight_max) break;
    // A new segment is written only once the previous one is complete, so a
    // torn tail can only ever be in the last segment.
    bool older_in_flight = false;
    for (WriteBuffer* b : sealed_) {
      if (b == buffer) break;
      if (!b->durable && b->segment != buffer->segment) older_in_flight = true;
    }
    if (older_in_flight) break;
    start_flush(buffer);
  }
}

void ShardLog::start_flush(WriteBuffer* buffer) {
  buffer->started = true;
  buffer->started_us = Reactor::clock_us();
  flushes_in_flight_++;
  buffer->segment->flushes_in_flight++;
  io_.write(buffer->segment->fd, buffer->data.get(), buffer->padded(), buffer->offset,
            options_.dsync ? kWriteDsync : kWriteNone, &buffer->op,
            [this, buffer](int res) { on_flush_written(buffer, res); });
}

void ShardLog::on_flush_written(WriteBuffer* buffer, int res) {
  if (!failure_.is_ok()) {
    flushes_in_flight_--;
    buffer->segment->flushes_in_flight--;
    return;
  }
  if (res < 0 || static_cast<size_t>(res) != buffer->padded()) {
    flushes_in_flight_--;
    buffer->segment->flushes_in_flight--;
    // Never retried: what reached the disk is unknown; recovery decides.
    fail(Status(res == -ENOSPC ? ErrorCode::kNoSpace : ErrorCode::kIoError,
                res < 0 ? fmt::format("segment write failed: {}", std::strerror(-res))
                        : fmt::format("short segment write: {} of {} bytes", res, buffer->padded())));
    return;
  }
  if (!options_.dsync) {
    io_.fdatasync(buffer->segment->fd, &buffer->op, [this, buffer](int sync_res) {
      flushes_in_flight_--;
      buffer->segment->flushes_in_flight--;
      if (!failure_.is_ok()) return;
      if (sync_res < 0) {
        fail(Status(ErrorCode::kIoError, fmt::format("fdatasync failed: {}", std::strerror(-sync_res))));
        return;
      }
      buffer->durable = true;
      complete_flushes();
    });
    return;
  }
  flushes_in_flight_--;
  buffer->segment->flushes_in_flight--;
  buffer->durable = true;
  complete_flushes();
}

void ShardLog::complete_flushes() {
  // Acknowledge strictly in log order: a durable flush waits for every
  // flush before it.
  while (!sealed_.empty() && sealed_.front()->durable) {
    WriteBuffer* buffer = sealed_.front();
    sealed_.pop_front();
    const uint64_t now = Reactor::clock_us();
    if (flush_us_ != nullptr) {
      flush_us_->record(now - buffer->started_us);
      flush_batch_count_->record(buffer->pending.size());
      flushes_->inc();
      flush_bytes_->inc(buffer->padded());
    }
    buffer->segment->durable_end = std::max(buffer->segment->durable_end, buffer->offset + buffer->padded());
    cache_.insert(buffer->segment->id, buffer->offset, buffer->data.get(), buffer->padded());
    for (WriteBuffer::Pending& p : buffer->pending) {
      if (p.internal) {
        if (SegmentSummary* summary = buffer->segment->summary.get()) summary->batches++;
        p.done(p.ack);
        continue;
      }
      if (p.stream_id == kControlStreamId) {
        buffer->segment->control_records++;
        if (SegmentSummary* summary = buffer->segment->summary.get()) {
          summary->controls.push_back(std::move(p.control));
          summary->batches++;
        }
        p.done(p.ack);
        continue;
      }
      StreamState& stream = *streams_[p.stream_id];
      const uint64_t previous_end = stream.durable_next_seq;
      stream.durable_next_seq = p.ack.end_seq;
      if (!tail_waiters_.empty() && tail_waiters_.count(p.stream_id) != 0) tails_moved_.push_back(p.stream_id);
      stream.durable_last_timestamp = p.ack.last_timestamp;
      log_position_ += p.bytes;
      index_batch(p.stream_id, stream, p.ack.start_seq, previous_end, buffer->segment->id, p.offset,
                  p.ack.first_timestamp, p.bytes);
      if (SegmentSummary* summary = buffer->segment->summary.get()) {
        summary->tails[p.stream_id] = {p.ack.end_seq, p.ack.last_timestamp, stream.bytes_total};
        summary->batches++;
      }
      if (appends_ != nullptr) {
        appends_->inc();
        records_appended_->inc(p.ack.end_seq - p.ack.start_seq);
        bytes_appended_->inc(p.bytes);
      }
      p.done(p.ack);
    }
    bool held = !buffer->pending.empty();
    Segment* segment = buffer->segment;
    buffer->reset();
    free_buffers_.push_back(buffer);
    // A segment we have rolled past, with nothing of it still in flight, is
    // complete: save its summary so the next recovery need not scan it.
    bool still_writing = segment == active_;
    for (WriteBuffer* b : sealed_) still_writing |= b->segment == segment;
    if (filling_ != nullptr) still_writing |= filling_->segment == segment;
    if (!still_writing) write_summary(*segment);
    if (held) reactor_->release();
  }
  // Readers waiting for new records of these streams: they may read now.
  std::sort(tails_moved_.begin(), tails_moved_.end());
  tails_moved_.erase(std::unique(tails_moved_.begin(), tails_moved_.end()), tails_moved_.end());
  while (!tails_moved_.empty()) {
    const uint64_t stream_id = tails_moved_.back();
    tails_moved_.pop_back();
    auto it = tail_waiters_.find(stream_id);
    if (it == tail_waiters_.end()) continue;
    std::vector<TailWaiter*> woken = std::move(it->second);
    tail_waiters_.erase(it);
    for (TailWaiter* w : woken) w->waiting = false;
    for (TailWaiter* w : woken) w->wake();  // May wait again, or free itself.
  }
  maybe_flush();
  drain_waiting();  // Buffers came free: waiting appends go in.
  if (compaction_) schedule_compaction_step();  // ...and then compaction's copies.
}

void ShardLog::fail(Status status) {
  log_error("log {} is now read-only: {}", options_.dir, status.to_string());
  failure_ = status;
  auto fail_buffer = [&](WriteBuffer* buffer) {
    for (WriteBuffer::Pending& p : buffer->pending) {
      if (append_errors_ != nullptr) append_errors_->inc();
      p.done(status);
    }
    if (!buffer->pending.empty()) reactor_->release();
    buffer->pending.clear();
  };
  for (WriteBuffer* buffer : sealed_) fail_buffer(buffer);
  if (filling_ != nullptr) fail_buffer(filling_);
  if (!waiting_.empty()) {
    std::deque<WaitingAppend> waiting;
    waiting.swap(waiting_);
    waiting_bytes_ = 0;
    wait_timer_->cancel();
    reactor_->release();
    for (WaitingAppend& w : waiting) {
      if (append_errors_ != nullptr) append_errors_->inc();
      w.done(status);
    }
  }
  // The buffers stay out of the free list: writes may still be in flight into them.
}

// --- segments -------------------------------------------------------------

void ShardLog::prepare_next_segment() {
  if (next_state_ == NextSegment::kPreparing || next_state_ == NextSegment::kReady) return;
  if (next_state_ == NextSegment::kFailed && Reactor::clock_us() < next_retry_us_) return;
  next_state_ = NextSegment::kPreparing;
  next_ = std::make_unique<Segment>();
  next_->id = active_->id + 1;
  next_->path = segment_path(next_->id);
  auto failed = [this](int res, const char* step) {
    log_warn("cannot prepare segment {} ({}): {}", next_->path, step, std::strerror(-res));
    if (next_->fd >= 0) (void)io_.close_sync(next_->fd);
    (void)io_.unlink_sync(next_->path);
    next_.reset();
    next_state_ = NextSegment::kFailed;
    next_retry_us_ = Reactor::clock_us() + kNoSpaceRetryUs;
  };
  // open → fallocate → fdatasync (the size) → fsync the directory (the name).
  io_.open(next_->path, true, true, &next_op_, [this, failed](int fd) {
    if (fd < 0) return failed(fd, "open");
    next_->fd = fd;
    io_.fallocate(fd, 0, options_.segment_bytes, &next_op_, [this, failed](int res) {
      if (res < 0) return failed(res, "fallocate");
      io_.fdatasync(next_->fd, &next_op_, [this, failed](int sync_res) {
        if (sync_res < 0) return failed(sync_res, "fdatasync");
        io_.fsync_dir(options_.dir, &next_op_, [this, failed](int dir_res) {
          if (dir_res < 0) return failed(dir_res, "fsync dir");
          next_state_ = NextSegment::kReady;
          maybe_flush();
          drain_waiting();
        });
      });
    });
  });
}

void ShardLog::roll_segment() {
  RUNNEL_ASSERT(next_state_ == NextSegment::kReady);
  Segment* segment = next_.get();
  segments_[segment->id] = std::move(next_);
  next_state_ = NextSegment::kNone;
  Segment* previous = active_;
  active_ = segment;
  active_->summary = std::make_unique<SegmentSummary>();
  append_offset_ = 0;
  // The previous segment may already be complete (its last flush acked before
  // this roll): then save its summary now.
  bool still_writing = false;
  for (WriteBuffer* b : sealed_) still_writing |= b->segment == previous;
  if (filling_ != nullptr) still_writing |= filling_->segment == previous;
  if (!still_writing) write_summary(*previous);
}

// --- reclaiming space -------------------------------------------------------

uint64_t ShardLog::active_segment_id() const { return active_->id; }

uint64_t ShardLog::stored_bytes(uint64_t stream_id) const {
  auto it = streams_.find(stream_id);
  return it == streams_.end() ? 0 : it->second->bytes_total;
}

void ShardLog::set_compression(uint64_t stream_id, bool lz4) {
  auto& slot = streams_[stream_id];
  if (!slot) slot = std::make_unique<StreamState>();
  slot->compress_lz4 = lz4;
}

void ShardLog::set_floor(uint64_t stream_id, uint64_t floor_seq) {
  auto it = streams_.find(stream_id);
  if (it == streams_.end()) return;
  it->second->floor_seq = std::max(it->second->floor_seq, floor_seq);
}

void ShardLog::ensure_tail(uint64_t stream_id, uint64_t next_seq) {
  auto& slot = streams_[stream_id];
  if (!slot) slot = std::make_unique<StreamState>();
  StreamState& s = *slot;
  if (s.next_seq < next_seq) s.next_seq = next_seq;
  if (s.durable_next_seq < next_seq) s.durable_next_seq = next_seq;
}

std::vector<uint64_t> ShardLog::stream_ids() const {
  std::vector<uint64_t> ids;
  ids.reserve(streams_.size());
  for (const auto& [id, state] : streams_) ids.push_back(id);
  return ids;
}

ShardLog::ReclaimReport ShardLog::reclaim() {
  ReclaimReport report;
  if (!failure_.is_ok()) return report;
  // Which complete segments still hold something needed.
  std::map<uint64_t, bool> live;
  for (const auto& [id, segment] : segments_) {
    if (segment.get() == active_) continue;
    bool in_use = segment->reads_in_flight > 0 || segment->summary_in_flight || segment->compacting;
    for (WriteBuffer* b : sealed_) in_use |= b->segment == segment.get();
    live[id] = in_use;
  }
  for (const auto& [stream_id, state] : streams_) {
    // Each run of a stream's data in one segment starts with an entry; it
    // ends where the next run's first entry begins (or at the tail).
    const StreamState& stream = *state;
    for_each_run(stream, [&](uint64_t segment_id, size_t, size_t last) {
      const uint64_t end_seq = last < stream.index.size() ? stream.index[last].base_seq : stream.durable_next_seq;
      auto it = live.find(segment_id);
      if (it != live.end() && stream.floor_seq < end_seq) it->second = true;
    });
  }
  std::vector<uint64_t> dead;
  for (const auto& [id, is_live] : live) {
    if (is_live) continue;
    const Segment& segment = *segments_.at(id);
    if (segment.control_records > 0 && id >= control_horizon_) {
      report.blocked_by_control_records = true;
      continue;
    }
    dead.push_back(id);
  }
  for (uint64_t id : dead) {
    std::unique_ptr<Segment> segment = std::move(segments_.at(id));
    segments_.erase(id);
    for (auto& [stream_id, state] : streams_) {
      auto& index = state->index;
      index.erase(std::remove_if(index.begin(), index.end(),
                                 [id](const StreamState::IndexEntry& e) { return e.segment_id == id; }),
                  index.end());
    }
    report.segments_deleted++;
    report.bytes_freed += options_.segment_bytes;
    log_info("reclaiming segment {}: nothing in it is needed any more", segment->path);
    (void)io_.close_sync(segment->fd);  // Closing a file is quick; unlinking one can take a while.
    struct Job {
      ShardLog* log;
      FileOp op;
      std::string segment_path;  // Paths live until their unlink completes.
      std::string summary_path;
    };
    auto* job = new Job{this, {}, segment->path, summary_path(id)};
    reactor_->hold();
    io_.unlink(job->segment_path, &job->op, [job](int res) {
      if (res < 0 && res != -ENOENT) log_warn("unlink of a reclaimed segment failed: {}", std::strerror(-res));
      job->log->io_.unlink(job->summary_path, &job->op, [job](int) {
        ShardLog* log = job->log;
        delete job;
        log->reactor_->release();
      });
    });
  }
  if (reclaimed_segments_ != nullptr) reclaimed_segments_->inc(report.segments_deleted);
  return report;
}

// --- reads ----------------------------------------------------------------

void ShardLog::read(uint64_t stream_id, ReadStart start, uint32_t max_records, uint32_t max_bytes,
                    ReadCallback done) {
  RUNNEL_ASSERT(reactor_ != nullptr);
  auto it = streams_.find(stream_id);
  const StreamState* stream = it == streams_.end() ? nullptr : it->second.get();
  const uint64_t tail = stream == nullptr ? 0 : stream->durable_next_seq;
  uint64_t start_seq = 0;
  bool by_timestamp = false;
  switch (start.kind) {
    case ReadStart::Kind::kSeqNum:
      start_seq = start.value;
      break;
    case ReadStart::Kind::kTailOffset:
      start_seq = tail > start.value ? tail - start.value : 0;
      break;
    case ReadStart::Kind::kTimestamp:
      if (stream == nullptr || tail == 0 || stream->durable_last_timestamp < start.value) {
        start_seq = tail;  // Nothing that late yet.
      } else {
        // From the last index entry that starts before the timestamp (records
        // at or after it may begin inside that stretch); the scan finds the record.
        auto entry = std::lower_bound(
            stream->index.begin(), stream->index.end(), start.value,
            [](const StreamState::IndexEntry& e, uint64_t ts) { return e.first_timestamp < ts; });
        if (entry != stream->index.begin()) --entry;
        start_seq = entry == stream->index.end() ? tail : entry->base_seq;
        by_timestamp = true;
      }
      break;
  }
  if (start_seq >= tail || max_records == 0) {
    ReadResult empty;
    empty.tail = tail;
    done(std::move(empty));
    return;
  }
  if (free_read_ops_.empty()) {
    done(Status(ErrorCode::kOverloaded, "too many reads in flight; retry later"));
    return;
  }
  ReadOp* op = free_read_ops_.back();
  free_read_ops_.pop_back();
  if (!op->buffer) op->buffer = aligned_alloc_bytes(op->capacity);
  op->done = std::move(done);
  op->result = ReadResult();
  op->stream_id = stream_id;
  op->next_seq = start_seq;
  op->max_records = max_records;
  op->max_bytes = max_bytes;
  op->records = op->bytes = 0;
  op->positioned = false;
  op->whole_chunks = false;
  op->by_timestamp = by_timestamp;
  op->start_timestamp = start.value;
  reactor_->hold();
  continue_read(op);
}

std::optional<ShardLog::ReadPlan> ShardLog::plan_read(uint64_t stream_id, uint64_t from, uint32_t max_records,
                                                      uint32_t max_bytes) const {
  auto it = streams_.find(stream_id);
  if (it == streams_.end()) return std::nullopt;
  const StreamState& stream = *it->second;
  const auto& index = stream.index;
  using Entry = StreamState::IndexEntry;
  // Entries are in seq_num order and so in stream-bytes order; the entry
  // `from` is in counts its bytes from the batch start (an upper bound).
  auto after = stream.entry_after(from);
  if (after == index.begin() || after == index.end() || stream.durable_next_seq == 0) return std::nullopt;
  const uint64_t bytes_at_start = std::prev(after)->bytes_before;
  const uint64_t seq_limit = std::min(from + max_records, stream.durable_next_seq - 1);
  // The last entry within every limit: the split is its batch start.
  auto end = std::upper_bound(after, index.cend(), seq_limit,
                              [](uint64_t seq, const Entry& e) { return seq < e.base_seq; });
  end = std::upper_bound(after, end, bytes_at_start + max_bytes,
                         [](uint64_t bytes, const Entry& e) { return bytes < e.bytes_before; });
  if (end == after) return std::nullopt;
  const Entry& split = *std::prev(end);
  return ReadPlan{split.base_seq, split.bytes_before - bytes_at_start};
}

// Parses the batches in [base_offset, base_offset + got) of the current
// segment (from the disk or the cache), from op->offset on. Returns false if
// the read finished (the answer is sent), true to read on from op->offset.
bool ShardLog::parse_chunk(ReadOp* op, const char* base, uint64_t base_offset, uint64_t got) {
  uint64_t pos = op->offset - base_offset;
  const Segment* segment_now = segments_.at(op->segment_id).get();
  while (pos + kBatchHeaderBytes <= got) {
    const uint64_t past_hole = segment_now->skip_hole(base_offset + pos);
    if (past_hole != base_offset + pos) {
      pos = past_hole - base_offset;
      continue;
    }
    // Zero padding runs to the end of the block (a flush's tail), or a zero
    // block follows the data: skip it. Check before reading a header,
    // since fewer than 72 bytes of padding may precede the next batch.
    const uint64_t block_end = align_up(base_offset + pos + 1) - base_offset;
    if (is_zero(base + pos, std::min<uint64_t>(got, block_end) - pos)) {
      pos = block_end;
      continue;
    }
    BatchHeader h;
    std::memcpy(&h, base + pos, kBatchHeaderBytes);
    if (!verify_header(h, op->segment_id, limits_).is_ok()) {
      // Reported, skipped to the next block, never returned.
      if (corrupt_batches_ != nullptr) corrupt_batches_->inc();
      log_error("read: bad batch header in segment {} at {}", op->segment_id, base_offset + pos);
      pos = align_up(base_offset + pos + 1) - base_offset;
      continue;
    }
    if (pos + kBatchHeaderBytes + h.payload_bytes > got) break;  // Continues in the next read.
    std::string_view payload(base + pos + kBatchHeaderBytes, h.payload_bytes);
    const uint64_t batch_end_seq = h.base_seq + h.record_count;
    // Copies of the stream's records and new appends may be interleaved in
    // a run of relocated copies: note which kind this stretch is, from every
    // batch of the stream passed, taken or not.
    const bool relocated = (h.flags & kBatchFlagRelocated) != 0;
    if (h.stream_id == op->stream_id && batch_end_seq <= op->next_seq) op->in_relocated = relocated;
    if (h.stream_id == op->stream_id && batch_end_seq > op->next_seq) {
      if (h.base_seq > op->next_seq) {
        // The records wanted next may be elsewhere: relocated by compaction,
        // or back in log order after a run of relocated copies.
        const uint64_t here = base_offset + pos;
        if (reposition(op, op->segment_id, here)) return true;
        if (op->in_relocated && !relocated) {
          // A new append that landed among the copies: not next.
          pos += kBatchHeaderBytes + h.payload_bytes;
          continue;
        }
        // Records between were lost (corruption found by recovery or by
        // this read): never skip them silently.
        if (!op->result.batches.empty()) return finish_read_false(op, Status::ok());
        return finish_read_false(op, Status(ErrorCode::kCorrupt,
                                            fmt::format("records [{}, {}) of this stream are lost (corrupt on disk)",
                                                        op->next_seq, h.base_seq)));
      }
      if (!verify_payload(h, payload, limits_).is_ok()) {
        if (corrupt_batches_ != nullptr) corrupt_batches_->inc();
        log_error("read: bad batch payload in segment {} at {}", op->segment_id, base_offset + pos);
        return finish_read_false(
            op, Status(ErrorCode::kCorrupt, fmt::format("stream records from seq {} are corrupt on disk", h.base_seq)));
      }
      // What the reader gets: the raw payload and a header that describes it.
      op->in_relocated = relocated;
      BatchHeader out = h;
      out.flags = static_cast<uint16_t>(out.flags & ~kBatchFlagRelocated);
      std::string body;
      if ((h.flags & kBatchFlagLz4) != 0) {
        auto raw = decompress_payload(h, payload, limits_);
        if (!raw) {
          if (corrupt_batches_ != nullptr) corrupt_batches_->inc();
          return finish_read_false(op, Status(ErrorCode::kCorrupt, "compressed batch: " + raw.status().message()));
        }
        body = std::move(*raw);
        out.flags = static_cast<uint16_t>(out.flags & ~kBatchFlagLz4);
        out.payload_bytes = static_cast<uint32_t>(body.size());
      } else {
        body.assign(payload);
      }
      if (op->by_timestamp) {
        if (out.last_timestamp < op->start_timestamp) {
          // Wholly before the timestamp: skip it.
          op->next_seq = batch_end_seq;
          pos += kBatchHeaderBytes + h.payload_bytes;
          continue;
        }
        if (!effective_timestamps(out, body, limits_, &op->timestamps).is_ok()) {
          return finish_read_false(op, Status(ErrorCode::kCorrupt, "batch timestamps do not decode"));
        }
        uint64_t first = 0;
        while (first < out.record_count && op->timestamps[first] < op->start_timestamp) first++;
        op->next_seq = out.base_seq + first;
        op->by_timestamp = false;
      }
      if (op->result.batches.empty()) {
        op->result.first_record_index = static_cast<uint32_t>(op->next_seq > h.base_seq ? op->next_seq - h.base_seq : 0);
      }
      op->records += batch_end_seq - std::max(h.base_seq, op->next_seq);
      op->bytes += out.payload_bytes;
      op->next_seq = batch_end_seq;
      op->result.batches.push_back({out, std::move(body)});
      if (op->records >= op->max_records || op->bytes >= op->max_bytes) {
        pos += kBatchHeaderBytes + h.payload_bytes;
        op->offset = base_offset + pos;
        return finish_read_false(op, Status::ok());
      }
    }
    pos += kBatchHeaderBytes + h.payload_bytes;
  }
  // Padding shorter than a header at the very end: nothing more here.
  if (pos < got && is_zero(base + pos, got - pos)) pos = got;
  op->offset = base_offset + pos;
  if (pos == 0 && got > 0) {
    if (op->chunk_cut && !op->whole_chunks) {
      op->whole_chunks = true;  // The index was wrong about this batch's size: read it whole.
      return true;
    }
    finish_read(op, Status(ErrorCode::kCorrupt, "batch larger than the read buffer"));
    return false;
  }
  return true;
}

bool ShardLog::reposition(ReadOp* op, uint64_t segment_id, uint64_t offset) const {
  const StreamState& stream = *streams_.at(op->stream_id);
  auto entry = stream.entry_after(op->next_seq);
  if (entry == stream.index.begin()) return false;
  --entry;
  using Location = std::pair<uint64_t, uint64_t>;
  const Location at{entry->segment_id, entry->offset};
  // Ahead: jump over other streams' data. Behind the scan's start: the
  // records are elsewhere (copies and originals are out of log order).
  if (at > Location{segment_id, offset} || at < Location{op->scan_segment_id, op->scan_offset}) {
    op->segment_id = op->scan_segment_id = entry->segment_id;
    op->offset = op->scan_offset = entry->offset;
    op->in_relocated = false;
    return true;
  }
  return false;
}

uint64_t ShardLog::indexed_data_end(const ReadOp& op, const StreamState& stream, uint64_t segment_id) const {
  const auto& index = stream.index;
  auto at = stream.entry_after(op.next_seq);
  if (at == index.begin()) return 0;
  --at;
  if (at->segment_id != segment_id || at->offset > op.offset) return 0;
  // An entry's batches hold the stream's bytes up to the next entry's, and
  // lie in one segment before the next entry's batch. When batches are large
  // an entry has one, so from the entry's start its bytes end where that
  // batch does; further on (an entry of several small batches among other
  // streams') they end before the next entry's offset.
  auto data_end = [&](decltype(at) e) -> uint64_t {
    const uint64_t next_bytes = std::next(e) == index.end() ? stream.bytes_total : std::next(e)->bytes_before;
    return next_bytes > e->bytes_before ? e->offset + (next_bytes - e->bytes_before) : 0;
  };
  uint64_t end = 0;
  if (at->offset == op.offset) {
    end = data_end(at);
  } else if (auto next = std::next(at); next != index.end() && next->segment_id == segment_id) {
    end = next->offset;
  }
  if (end <= op.offset) return 0;
  // Later entries close by come in the same read rather than one read each
  // (other streams' data between them is read through).
  constexpr uint64_t kReadThroughGapMax = 16u << 10;
  const uint64_t read_start = align_down(op.offset);
  for (auto e = std::next(at); e != index.end() && e->segment_id == segment_id; ++e) {
    const uint64_t e_end = data_end(e);
    if (e->offset < end || e->offset > end + kReadThroughGapMax || e_end == 0 || e_end - read_start > op.capacity) break;
    end = e_end;
  }
  return end;
}

void ShardLog::continue_read(ReadOp* op) {
  // Steps served from the cache loop here; a disk read ends the call and
  // resumes from its completion.
  while (true) {
    auto it = streams_.find(op->stream_id);
    RUNNEL_ASSERT(it != streams_.end());
    StreamState& stream = *it->second;
    op->chunk_cut = false;
    const bool have_some = !op->result.batches.empty();
    if (op->next_seq >= stream.durable_next_seq ||
        (have_some && (op->records >= op->max_records || op->bytes >= op->max_bytes))) {
      return finish_read(op, Status::ok());
    }
    // The last index entry at or before next_seq. On the first step it says
    // where to start; later it lets the read jump over other streams' data
    // instead of scanning through it.
    auto entry = stream.entry_after(op->next_seq);
    if (entry == stream.index.begin()) {
      return finish_read(op, Status(ErrorCode::kNotFound, "records below the first indexed seq_num are gone"));
    }
    if (!op->positioned) {
      --entry;
      op->segment_id = op->scan_segment_id = entry->segment_id;
      op->offset = op->scan_offset = entry->offset;
      op->in_relocated = false;
      op->positioned = true;
    } else {
      reposition(op, op->segment_id, op->offset);
    }
    auto segment_it = segments_.find(op->segment_id);
    while (segment_it != segments_.end() && op->offset >= segment_it->second->durable_end) {
      ++segment_it;  // Past this segment's data: on to the next segment.
      op->offset = 0;
    }
    if (segment_it == segments_.end()) return finish_read(op, Status::ok());
    Segment& segment = *segment_it->second;
    op->segment_id = segment.id;
    // Recent data comes from memory: a flush's bytes stay cached after it is durable.
    if (const RecentCache::Chunk* chunk = cache_.find(segment.id, op->offset)) {
      if (cache_hits_ != nullptr) cache_hits_->inc();
      const uint64_t from = op->offset;
      if (!parse_chunk(op, cache_.bytes(*chunk), chunk->file_offset, chunk->length)) return;
      // No progress means a batch runs past the chunk's end (flushes are whole
      // batches, so it should not happen): read it from disk, never spin here.
      if (op->segment_id != segment.id || op->offset != from) continue;
    }
    if (cache_misses_ != nullptr) cache_misses_->inc();
    op->read_offset = align_down(op->offset);
    uint64_t len = std::min<uint64_t>(op->capacity, segment.durable_end - op->read_offset);
    // Only as far as the stream's own data goes, when the index knows: a
    // stream among many others then reads its batches, not theirs.
    const uint64_t data_end = op->whole_chunks ? 0 : indexed_data_end(*op, stream, segment.id);
    op->chunk_cut = data_end != 0 && align_up(data_end) - op->read_offset < len;
    if (op->chunk_cut) len = align_up(data_end) - op->read_offset;
    segment.reads_in_flight++;
    io_.read(segment.fd, op->buffer.get(), len, op->read_offset, &op->op, [this, op, len](int res) {
      segments_.at(op->segment_id)->reads_in_flight--;
      if (res < 0) {
        return finish_read(op, Status(ErrorCode::kIoError, fmt::format("segment read failed: {}", std::strerror(-res))));
      }
      const uint64_t got = std::min<uint64_t>(static_cast<uint64_t>(res), len);
      if (read_disk_bytes_ != nullptr) read_disk_bytes_->inc(got);
      if (parse_chunk(op, op->buffer.get(), op->read_offset, got)) continue_read(op);
    });
    return;
  }
}

bool ShardLog::finish_read_false(ReadOp* op, Status status) {
  finish_read(op, std::move(status));
  return false;
}

void ShardLog::finish_read(ReadOp* op, Status status) {
  auto it = streams_.find(op->stream_id);
  op->result.tail = it == streams_.end() ? 0 : it->second->durable_next_seq;
  ReadCallback done = std::move(op->done);
  if (reads_ != nullptr) reads_->inc();
  Result<ReadResult> result = status.is_ok() ? Result<ReadResult>(std::move(op->result)) : Result<ReadResult>(status);
  op->result = ReadResult();
  free_read_ops_.push_back(op);
  reactor_->release();
  done(std::move(result));
}

}  // namespace runnel
