// The shard's segment files at run time: the next segment prepared ahead
// (open + fallocate, through the ring) so a roll never waits, the roll
// itself, the summary written beside a segment once it is complete, and
// reclaiming (deleting) complete segments nothing needs any more.
#include <algorithm>

#include "core/log.h"
#include "storage/log_internal.h"
#include "storage/shard_log_state.h"

namespace runnel {
using namespace log_internal;
namespace {

constexpr uint64_t kNoSpaceRetryUs = 1'000'000;

}  // namespace

std::string ShardLog::segment_path(uint64_t id) const { return options_.dir + "/" + segment_file_name(id); }

std::string ShardLog::summary_path(uint64_t segment_id) const {
  return options_.dir + "/" + summary_file_name(segment_id);
}

void ShardLog::write_summary(Segment& segment) {
  if (!segment.summary || segment.summary_written || !failure_.is_ok()) return;
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
  auto* job = new Job{this, segment.id, encode_segment_summary(segment.id, *segment.summary), {}, -1, summary_path(segment.id)};
  segment.summary.reset();
  segment.summary_in_flight = true;  // Not reclaimed under the write.
  reactor_.hold();
  auto finish = [](Job* j, int res, const char* step) {
    if (res < 0) {
      log_warn("summary {}: cannot save it ({}: {}); the next recovery scans its segment", j->path, step,
               std::strerror(-res));
    }
    ShardLog* log = j->log;
    auto it = log->segments_.find(j->segment_id);
    if (it != log->segments_.end()) it->second->summary_in_flight = false;
    delete j;
    log->reactor_.release();
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

ShardLog::ReclaimReport ShardLog::reclaim() {
  assert_on_owner();
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
    reactor_.hold();
    io_.unlink(job->segment_path, &job->op, [job](int res) {
      if (res < 0 && res != -ENOENT) log_warn("unlink of a reclaimed segment failed: {}", std::strerror(-res));
      job->log->io_.unlink(job->summary_path, &job->op, [job](int) {
        ShardLog* log = job->log;
        delete job;
        log->reactor_.release();
      });
    });
  }
  if (reclaimed_segments_ != nullptr) reclaimed_segments_->inc(report.segments_deleted);
  return report;
}
}  // namespace runnel
