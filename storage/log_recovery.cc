// Recovery at open (blocking, before the shard serves): list the segments,
// apply each complete segment's summary or scan it — verifying every batch,
// recording bad regions, cutting the torn tail of the last segment and
// voiding it with a skip marker — and rebuild every stream's tail and index
// and the catalog's control records. Rules: storage/FORMAT.md, "Recovery".
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

// What a scan finds in a segment: the valid batches in order, the regions
// between them that are not (corrupt, or a torn tail), and where the data
// ends (the end of the last valid batch).
struct SegmentScan {
  struct Found {
    uint64_t offset;
    BatchHeader header;
  };
  struct BadRegion {
    uint64_t start;
    uint64_t end;
    bool voided = false;  // A skip marker says it is a torn tail cut earlier, not corruption.
  };
  std::vector<Found> found;
  std::vector<BadRegion> bad;
  uint64_t data_end = 0;
  uint64_t cut = UINT64_MAX;  // Last segment only: where its torn tail starts.
};

namespace {

// A batch at `at` that passes every check, or false.
bool valid_batch_at(SegmentScanner& scanner, uint64_t at, uint64_t segment_id, const BatchLimits& limits,
                    BatchHeader* header) {
  const char* h = scanner.bytes(at, kBatchHeaderBytes);
  if (h == nullptr) return false;
  std::memcpy(header, h, kBatchHeaderBytes);
  if (!verify_header(*header, segment_id, limits).is_ok()) return false;
  const char* p = scanner.bytes(at + kBatchHeaderBytes, header->payload_bytes);
  if (p == nullptr) return false;
  return verify_payload(*header, std::string_view(p, header->payload_bytes), limits).is_ok();
}

// Walks [0, end): each valid batch, zero padding after a batch up to its
// block's end, and bad data up to the next byte where a whole valid batch
// starts. Stops at a zero header on a block boundary (where a flush would
// start: the end of the data).
void find_batches(SegmentScanner& scanner, uint64_t end, uint64_t segment_id, const BatchLimits& limits,
                  SegmentScan* scan) {
  uint64_t pos = 0;
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
      if (h == nullptr || is_zero(h, kBatchHeaderBytes)) break;
    }
    BatchHeader header;
    if (valid_batch_at(scanner, pos, segment_id, limits, &header)) {
      scan->found.push_back({pos, header});
      pos += kBatchHeaderBytes + header.payload_bytes;
      scan->data_end = pos;
      continue;
    }
    // Bad data: resynchronize at the next byte where a whole valid batch
    // starts, stopping at a zero block (the end of the data). Batches need
    // not start on blocks, so probing blocks only would lose the rest of a flush.
    SegmentScan::BadRegion region{pos, 0};
    uint64_t probe = pos + 1;
    while (probe + kBatchHeaderBytes <= end) {
      if (probe % kBlock == 0) {
        const char* b = scanner.bytes(probe, kBatchHeaderBytes);
        if (b == nullptr || is_zero(b, kBatchHeaderBytes)) break;
      }
      const char* m = scanner.bytes(probe, 4);
      BatchHeader next;
      if (m != nullptr && std::memcmp(m, &kBatchMagic, 4) == 0 &&
          valid_batch_at(scanner, probe, segment_id, limits, &next)) {
        break;
      }
      probe++;
    }
    region.end = std::min(probe, end);
    scan->bad.push_back(region);
    pos = region.end;
  }
}

// Skip markers void the bad region that ends where they start.
void void_marked_regions(SegmentScanner& scanner, const BatchLimits& limits, SegmentScan* scan) {
  for (const SegmentScan::Found& f : scan->found) {
    if (f.header.stream_id != kControlStreamId) continue;
    const char* p = scanner.bytes(f.offset + kBatchHeaderBytes, f.header.payload_bytes);
    uint64_t void_from = 0;
    if (p != nullptr && parse_skip_marker(f.header, std::string_view(p, f.header.payload_bytes), limits, &void_from)) {
      for (SegmentScan::BadRegion& r : scan->bad) {
        if (r.start == void_from && r.end == f.offset) r.voided = true;
      }
    }
  }
}

// In the last segment, a bad region followed only by data within the
// in-flight window is a torn tail: unacknowledged, cut off with what follows.
uint64_t torn_tail_start(const SegmentScan& scan, uint64_t zero_window_bytes) {
  for (const SegmentScan::BadRegion& r : scan.bad) {
    if (r.voided) continue;
    if (scan.data_end <= r.start + zero_window_bytes) return r.start;
  }
  return UINT64_MAX;
}

}  // namespace

Status ShardLog::scan_segment(Segment& segment, bool last) {
  segment.summary = std::make_unique<SegmentSummary>();
  auto size = io_.file_size_sync(segment.fd);
  if (!size) return size.status();
  const size_t window = 32u << 20;  // Large sequential reads: recovery runs at disk speed.
  const uint64_t end = align_down(*size);
  SegmentScanner scanner(io_, segment.fd, end, window);

  SegmentScan scan;
  find_batches(scanner, end, segment.id, limits_, &scan);
  if (!scanner.status().is_ok()) return scanner.status();
  recovery_.bytes_scanned += scanner.bytes_read();
  void_marked_regions(scanner, limits_, &scan);
  if (last) scan.cut = torn_tail_start(scan, zero_window_bytes_);
  note_bad_regions(segment, scan);
  const uint64_t valid_end = replay_batches(segment, scan, scanner);
  segment.durable_end = align_up(scan.cut == UINT64_MAX ? scan.data_end : valid_end);
  if (!last) return Status::ok();
  if (scan.cut != UINT64_MAX) {
    if (Status s = cut_torn_tail(segment, scan); !s) return s;
    if (scan.cut % kBlock != 0) return Status::ok();  // Zeroed past the marker already.
  }
  return zero_past_the_data(segment, scanner);
}

void ShardLog::note_bad_regions(Segment& segment, const SegmentScan& scan) {
  for (const SegmentScan::BadRegion& r : scan.bad) {
    if (r.start >= scan.cut) {
      // The torn tail is cut off, zeroed and written over by later appends
      // from align_up(cut) on: only the torn bytes left in the block holding
      // `cut` stay a hole. (Keeping the whole region made reads skip records
      // appended there after the restart, for good once the segment's
      // summary carried the stale hole.)
      const uint64_t torn_end = std::min(r.end, align_up(scan.cut));
      if (r.start < torn_end) segment.holes.emplace_back(r.start, torn_end);
      continue;
    }
    segment.holes.emplace_back(r.start, r.end);
    if (r.voided) continue;
    recovery_.corrupt_regions++;
    if (corrupt_batches_ != nullptr) corrupt_batches_->inc();
    log_error("corrupt data in segment {} at bytes [{}, {}): skipped, never returned", segment.path, r.start, r.end);
  }
}

uint64_t ShardLog::replay_batches(Segment& segment, const SegmentScan& scan, SegmentScanner& scanner) {
  uint64_t valid_end = 0;
  // Compaction copies count only between a begin and an end marker of the
  // same source in this segment (storage/FORMAT.md, "Compaction").
  RelocationBuilder relocating;
  for (const SegmentScan::Found& f : scan.found) {
    if (f.offset >= scan.cut) break;
    const BatchHeader& h = f.header;
    valid_end = f.offset + kBatchHeaderBytes + h.payload_bytes;
    recovery_.batches++;
    if ((h.flags & kBatchFlagRelocated) != 0) {
      segment.summary->batches++;
      relocating.copy(h, f.offset);
      continue;
    }
    const char* p = scanner.bytes(f.offset + kBatchHeaderBytes, h.payload_bytes);
    const std::string_view payload = p == nullptr ? std::string_view() : std::string_view(p, h.payload_bytes);
    if (h.stream_id == kControlStreamId) {
      segment.summary->batches++;
      if (p != nullptr) replay_control(segment, f.offset, h, payload, &relocating);
      continue;
    }
    replay_stream_batch(segment, f.offset, h, payload);
  }
  if (relocating.active) log_unfinished_relocation(segment, relocating.relocation.source);
  return valid_end;
}

void ShardLog::replay_control(Segment& segment, uint64_t offset, const BatchHeader& h, std::string_view payload,
                              RelocationBuilder* relocating) {
  uint8_t type = 0;
  std::string_view bytes;
  if (!parse_control(h, payload, limits_, &type, &bytes)) return;
  uint64_t a = 0, b = 0;
  if (type == kControlRelocationBegin && control_field(bytes, 0, &a)) {
    if (relocating->active) log_unfinished_relocation(segment, relocating->relocation.source);
    relocating->begin(a);
  } else if (type == kControlRelocationRun && control_field(bytes, 1, &b) && control_field(bytes, 0, &a)) {
    relocating->run(a, b);
  } else if (type == kControlRelocationEnd && control_field(bytes, 0, &a)) {
    if (relocating->active && relocating->relocation.source == a) {
      apply_relocation(relocating->relocation, segment.id);
      segment.summary->relocations.push_back(std::move(relocating->relocation));
    }
    *relocating = RelocationBuilder();
  }
  if (type == kControlUser && control_handler_) {
    segment.summary->controls.emplace_back(bytes);
    segment.control_records++;
    if (Status s = control_handler_(bytes, segment.id); !s) {
      // kNotFound is expected after a catalog snapshot: records about
      // streams the snapshot already dropped.
      log(s.code() == ErrorCode::kNotFound ? LogLevel::kDebug : LogLevel::kError,
          "segment {} offset {}: control record rejected at replay: {}", segment.path, offset, s.to_string());
    }
  }
}

void ShardLog::replay_stream_batch(Segment& segment, uint64_t offset, const BatchHeader& h, std::string_view payload) {
  auto& slot = streams_[h.stream_id];
  if (!slot) slot = std::make_unique<StreamState>();
  StreamState& stream = *slot;
  if (h.base_seq < stream.next_seq) {
    recovery_.corrupt_regions++;
    log_error("segment {} offset {}: batch of stream {} repeats seq {} (tail {}); skipped", segment.path, offset,
              h.stream_id, h.base_seq, stream.next_seq);
    return;
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
  index_batch(h.stream_id, stream, h.base_seq, previous_end, segment.id, offset, h.first_timestamp,
              kBatchHeaderBytes + h.payload_bytes);
  segment.summary->tails[h.stream_id] = {stream.next_seq, stream.last_timestamp, stream.bytes_total};
  segment.summary->batches++;
  if ((h.flags & kBatchFlagProducer) == 0) return;
  // Verified with the batch: the tag's own checksum passed.
  ProducerTag tag;
  BatchHeader rest_header;
  std::string_view rest;
  if (payload.empty() || !split_producer_tag(h, payload, &tag, &rest_header, &rest).is_ok()) return;
  const AppendAck ack{h.base_seq, h.base_seq + h.record_count, h.first_timestamp, h.last_timestamp,
                      h.base_seq + h.record_count};
  segment.summary->note_producer(h.stream_id, tag.id,
                                 {tag.seq, ack.start_seq, ack.end_seq, ack.start_timestamp, ack.end_timestamp});
  if (producer_handler_) producer_handler_(h.stream_id, tag, ack);
}

Status ShardLog::cut_torn_tail(Segment& segment, const SegmentScan& scan) {
  const uint64_t cut = scan.cut;
  uint64_t cut_end = cut;
  for (const SegmentScan::BadRegion& r : scan.bad) {
    if (r.start >= cut) cut_end = std::max(cut_end, r.end);
  }
  cut_end = std::max(cut_end, scan.data_end);
  recovery_.torn_tail_bytes += cut_end - cut;
  log_warn("segment {}: torn tail at byte {} ({} bytes from there discarded: never acknowledged)", segment.path, cut,
           cut_end - cut);
  // The block holding `cut` keeps the torn batch's first bytes; a skip
  // marker right after it tells future scans that this is not corruption.
  const uint64_t resume = align_up(cut);
  segment.durable_end = resume;
  if (cut % kBlock == 0) return Status::ok();
  BatchHeader marker;
  std::string payload = skip_marker_payload(cut);
  marker.stream_id = kControlStreamId;
  marker.record_count = 1;
  marker.payload_bytes = static_cast<uint32_t>(payload.size());
  marker.payload_checksum = payload_checksum(payload);
  seal_header(&marker, segment.id);
  // Zero what may follow first, then write the marker, each durably.
  if (Status s = zero_sync(segment, resume); !s) return s;
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

Status ShardLog::zero_past_the_data(Segment& segment, SegmentScanner& scanner) {
  // Unacknowledged flushes may have landed beyond a hole that reads as the
  // end of the data; zero them so later appends can never be followed by
  // stale batches.
  const uint64_t resume = segment.durable_end;
  const uint64_t zero_end = std::min(options_.segment_bytes, resume + zero_window_bytes_);
  for (uint64_t off = resume; off < zero_end; off += kBlock) {
    const char* probe = scanner.bytes(off, kBlock);
    if (probe != nullptr && !is_zero(probe, kBlock)) return zero_sync(segment, resume);
  }
  return Status::ok();
}

Status ShardLog::zero_sync(Segment& segment, uint64_t from) {
  const uint64_t zero_end = std::min(options_.segment_bytes, from + zero_window_bytes_);
  AlignedBytes zeros = aligned_alloc_bytes(1 << 20);
  for (uint64_t off = from; off < zero_end; off += 1 << 20) {
    if (Status s = io_.write_sync(segment.fd, zeros.get(), std::min<uint64_t>(1 << 20, zero_end - off), off); !s) {
      return s;
    }
  }
  return io_.fdatasync_sync(segment.fd);
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
  if (bytes.empty() || !decode_segment_summary(bytes, segment.id, &summary)) {
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
  if (producer_handler_) {
    for (const auto& [key, window] : summary.producers) {
      for (const SegmentSummary::ProducerAppend& p : window) {
        producer_handler_(key.first, ProducerTag{key.second, p.producer_seq},
                          AppendAck{p.start_seq, p.end_seq, p.first_timestamp, p.last_timestamp, p.end_seq});
      }
    }
  }
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
  const std::string bytes = encode_segment_summary(segment.id, *segment.summary);
  auto fd = io_.open_sync(summary_path(segment.id), true, false);
  Status s = fd ? io_.truncate_sync(*fd, 0) : fd.status();
  if (s) s = io_.write_sync(*fd, bytes.data(), bytes.size(), 0);
  if (s) s = io_.fdatasync_sync(*fd);
  if (fd) (void)io_.close_sync(*fd);
  if (!s) log_warn("segment {}: cannot save its summary ({}); the next recovery scans it", segment.path, s.to_string());
  segment.summary.reset();
  segment.summary_written = true;
}
}  // namespace runnel
