#include "storage/stream_store.h"

#include <fmt/format.h>

#include "core/log.h"

namespace runnel {
namespace {
// At most one catalog snapshot per this long (each rewrites the whole catalog).
constexpr uint64_t kSnapshotIntervalMinMs = 10'000;
}  // namespace

Result<std::unique_ptr<StreamStore>> StreamStore::open(Reactor* reactor, FileIo& io, const LogOptions& options) {
  std::unique_ptr<StreamStore> store(new StreamStore());
  store->reactor_ = reactor;
  StreamStore* self = store.get();
  auto log = ShardLog::open(reactor, io, options, [self](std::string_view bytes, uint64_t segment_id) {
    return self->replay(bytes, segment_id);
  });
  if (!log) return log.status();
  store->log_ = std::move(*log);
  store->replay_shadow_.reset();  // A snapshot without its end was cut short: the records before it rule.
  store->ids_reserved_ = store->catalog_.next_id() - 1;
  store->log_->set_control_horizon(store->control_horizon_);
  // Tell the log what is no longer needed, and restore the tails of streams
  // whose batches are all gone from disk (trimmed, their segments reclaimed).
  for (const StreamInfo* info : store->catalog_.all()) {
    store->log_->ensure_tail(info->id, info->trim_seq);
    store->log_->set_floor(info->id, info->trim_seq);
    store->log_->set_compression(info->id, info->config.compress_lz4);
  }
  for (uint64_t id : store->log_->stream_ids()) {
    if (store->catalog_.find(id) == nullptr) store->log_->set_floor(id, UINT64_MAX);  // Deleted.
  }
  return store;
}

Status StreamStore::replay(std::string_view bytes, uint64_t segment_id) {
  auto mutation = decode_mutation(bytes);
  if (!mutation) return mutation.status();
  switch (mutation->op) {
    case CatalogOp::kSnapshotBegin:
      replay_shadow_ = std::make_unique<StreamCatalog>();
      replay_shadow_segment_ = segment_id;
      return Status::ok();
    case CatalogOp::kSnapshotEnd:
      if (!replay_shadow_) return Status(ErrorCode::kCorrupt, "snapshot end without its beginning");
      catalog_ = std::move(*replay_shadow_);
      catalog_.reserve_ids_below(mutation->stream.id);
      replay_shadow_.reset();
      control_horizon_ = replay_shadow_segment_;
      return Status::ok();
    default:
      return (replay_shadow_ ? *replay_shadow_ : catalog_).apply(*mutation);
  }
}

Result<const StreamInfo*> StreamStore::existing(std::string_view bucket, std::string_view name) const {
  const StreamInfo* info = catalog_.find(bucket, name);
  if (info == nullptr) {
    return Status(ErrorCode::kNotFound, fmt::format("stream {}/{} does not exist", bucket, name));
  }
  return info;
}

void StreamStore::mutate(CatalogMutation mutation, InfoCallback done) {
  if (snapshot_in_progress_) {
    deferred_.emplace_back(std::move(mutation), std::move(done));
    return;
  }
  if (Status s = catalog_.check(mutation); !s) return done(std::move(s));
  // The record is durable before the catalog changes: an acknowledged
  // operation survives a crash, an unacknowledged one never half-applies.
  struct Pending {
    StreamStore* store;
    CatalogMutation mutation;
    InfoCallback done;
  };
  auto* pending = new Pending{this, std::move(mutation), std::move(done)};
  const std::string bytes = encode_mutation(pending->mutation);
  log_->append_control(bytes, [pending](Result<AppendAck> ack) {
    std::unique_ptr<Pending> owned(pending);
    StreamStore& store = *owned->store;
    const CatalogMutation& m = owned->mutation;
    if (m.op == CatalogOp::kCreate) store.creating_.erase({m.stream.bucket, m.stream.name});
    if (!ack) return owned->done(ack.status());
    if (Status s = store.catalog_.apply(m); !s) return owned->done(std::move(s));
    if (m.op == CatalogOp::kTrim) store.log_->set_floor(m.stream.id, store.catalog_.find(m.stream.id)->trim_seq);
    if (m.op == CatalogOp::kDelete) {
      store.log_->set_floor(m.stream.id, UINT64_MAX);
      store.forget_producers(m.stream.id);
    }
    if (m.op == CatalogOp::kCreate || m.op == CatalogOp::kReconfigure) {
      store.log_->set_compression(m.stream.id, m.stream.config.compress_lz4);
    }
    const StreamInfo* info = store.catalog_.find(m.stream.id);
    if (info == nullptr) return owned->done(m.stream);  // Deleted: answer with what it was.
    owned->done(*info);
  });
}

void StreamStore::create_stream(std::string_view bucket, std::string_view name, const StreamConfig& config,
                                InfoCallback done) {
  if (Status s = validate_bucket_name(bucket); !s) return done(std::move(s));
  if (Status s = validate_stream_name(name); !s) return done(std::move(s));
  if (catalog_.find(bucket, name) != nullptr || creating_.count({std::string(bucket), std::string(name)}) != 0) {
    return done(Status(ErrorCode::kAlreadyExists, fmt::format("stream {}/{} already exists", bucket, name)));
  }
  CatalogMutation m;
  m.op = CatalogOp::kCreate;
  m.stream.id = ++ids_reserved_;
  m.stream.bucket = std::string(bucket);
  m.stream.name = std::string(name);
  m.stream.config = config;
  m.stream.created_ms = Reactor::clock_realtime_ms();
  if (Status s = catalog_.check(m); !s) return done(std::move(s));
  creating_.emplace(m.stream.bucket, m.stream.name);
  mutate(std::move(m), std::move(done));
}

void StreamStore::mutate_existing(std::string_view bucket, std::string_view name, CatalogOp op,
                                  const std::function<void(StreamInfo&)>& edit, InfoCallback done) {
  auto info = existing(bucket, name);
  if (!info) return done(info.status());
  CatalogMutation m;
  m.op = op;
  m.stream = **info;
  edit(m.stream);
  mutate(std::move(m), std::move(done));
}

void StreamStore::reconfigure_stream(std::string_view bucket, std::string_view name, const StreamConfig& config,
                                     InfoCallback done) {
  mutate_existing(bucket, name, CatalogOp::kReconfigure, [&](StreamInfo& s) { s.config = config; }, std::move(done));
}

void StreamStore::delete_stream(std::string_view bucket, std::string_view name, InfoCallback done) {
  mutate_existing(bucket, name, CatalogOp::kDelete, [](StreamInfo&) {}, std::move(done));
}

void StreamStore::seal_stream(std::string_view bucket, std::string_view name, InfoCallback done) {
  mutate_existing(bucket, name, CatalogOp::kSeal, [](StreamInfo& s) { s.sealed = true; }, std::move(done));
}

void StreamStore::fence_stream(std::string_view bucket, std::string_view name, std::string_view token,
                               InfoCallback done) {
  if (token.size() > kFencingTokenBytesMax) {
    return done(Status(ErrorCode::kInvalidArgument,
                       fmt::format("fencing token is {} bytes; at most {}", token.size(), kFencingTokenBytesMax)));
  }
  mutate_existing(bucket, name, CatalogOp::kFence, [&](StreamInfo& s) { s.fencing_token = std::string(token); },
                  std::move(done));
}

void StreamStore::trim_stream(std::string_view bucket, std::string_view name, uint64_t trim_seq, InfoCallback done) {
  // Trimming past the tail would drop records not yet written.
  mutate_existing(
      bucket, name, CatalogOp::kTrim,
      [&](StreamInfo& s) { s.trim_seq = std::min(trim_seq, log_->assigned_tail(s.id)); }, std::move(done));
}

void StreamStore::append(std::string_view bucket, std::string_view name, const AppendRequest& request,
                         AppendCallback done) {
  auto info = existing(bucket, name);
  if (!info) return done(info.status());
  const StreamInfo& stream = **info;
  if (stream.sealed) {
    return done(Status(ErrorCode::kStreamSealed, fmt::format("stream {}/{} is sealed", bucket, name)));
  }
  const std::string_view given = request.fencing_token.value_or(std::string_view());
  if (given != stream.fencing_token) {
    return done(Status(ErrorCode::kFencingTokenMismatch,
                       stream.fencing_token.empty()
                           ? fmt::format("stream {}/{} is not fenced, but the append carries a token", bucket, name)
                           : fmt::format("stream {}/{} is fenced with another token", bucket, name)));
  }
  if (request.producer) return append_as_producer(stream, request, std::move(done));
  // match_seq_num is decided by the log when it assigns seq_nums, in arrival
  // order: an earlier append that is still waiting for a buffer counts.
  log_->append(stream.id, request.payload, request.record_count, request.payload_checksum, stream.config.timestamping,
               request.arrival_ms, request.match_seq_num, std::move(done));
}

void StreamStore::append_as_producer(const StreamInfo& stream, const AppendRequest& request, AppendCallback done) {
  const uint64_t stream_id = stream.id;
  const AppendRequest::Producer producer = *request.producer;
  auto& producers = producers_[stream_id];
  if (producers.size() >= kProducersPerStreamMax && producers.count(producer.id) == 0) {
    // Forget the least recently used producer (one with nothing in flight).
    auto oldest = producers.end();
    for (auto it = producers.begin(); it != producers.end(); ++it) {
      bool busy = false;
      for (const ProducerEntry& e : it->second.recent) busy |= !e.answered;
      if (!busy && (oldest == producers.end() || it->second.last_used < oldest->second.last_used)) oldest = it;
    }
    if (oldest == producers.end()) {
      return done(Status(ErrorCode::kOverloaded, "too many producers with appends in flight on this stream"));
    }
    producers.erase(oldest);
  }
  ProducerState& state = producers[producer.id];
  state.last_used = ++producer_clock_;
  for (ProducerEntry& e : state.recent) {
    if (e.seq != producer.seq) continue;
    // A retry: the first attempt's answer, now or when it comes.
    if (!e.answered) {
      e.retries.push_back(std::move(done));
      return;
    }
    Result<AppendAck> copy = e.answer.is_ok() ? Result<AppendAck>(*e.answer) : Result<AppendAck>(e.answer.status());
    return done(std::move(copy));
  }
  if (!state.recent.empty() && producer.seq < state.recent.back().seq) {
    const uint64_t tail = log_->assigned_tail(stream_id);
    return done(Status(ErrorCode::kSeqNumMismatch,
                       fmt::format("producer {} seq {} is older than its recent appends (last {}); not written",
                                   producer.id, producer.seq, state.recent.back().seq),
                       tail));
  }
  ProducerEntry entry;
  entry.seq = producer.seq;
  state.recent.push_back(std::move(entry));
  while (state.recent.size() > kProducerWindow && state.recent.front().answered) state.recent.pop_front();
  struct Pending {
    StreamStore* store;
    uint64_t stream_id;
    AppendRequest::Producer producer;
    AppendCallback done;
  };
  auto* pending = new Pending{this, stream_id, producer, std::move(done)};
  log_->append(stream_id, request.payload, request.record_count, request.payload_checksum,
               stream.config.timestamping, request.arrival_ms, request.match_seq_num, [pending](Result<AppendAck> r) {
                 std::unique_ptr<Pending> p(pending);
                 p->store->producer_answered(p->stream_id, p->producer, r);
                 p->done(std::move(r));
               });
}

void StreamStore::forget_producers(uint64_t stream_id) {
  auto it = producers_.find(stream_id);
  if (it == producers_.end()) return;
  std::vector<AppendCallback> waiting;
  for (auto& [id, state] : it->second) {
    for (ProducerEntry& e : state.recent) {
      for (AppendCallback& retry : e.retries) waiting.push_back(std::move(retry));
    }
  }
  producers_.erase(it);
  // Retries waiting for a first attempt that is still in flight: the stream
  // is gone, whatever that attempt's fate.
  for (AppendCallback& retry : waiting) retry(Status(ErrorCode::kNotFound, "the stream was deleted"));
}

void StreamStore::producer_answered(uint64_t stream_id, AppendRequest::Producer producer,
                                    const Result<AppendAck>& r) {
  auto copy = [&r] { return r.is_ok() ? Result<AppendAck>(*r) : Result<AppendAck>(r.status()); };
  std::vector<AppendCallback> retries;
  auto s = producers_.find(stream_id);
  if (s == producers_.end()) return;
  auto p = s->second.find(producer.id);
  if (p == s->second.end()) return;
  auto& recent = p->second.recent;
  for (auto e = recent.begin(); e != recent.end(); ++e) {
    if (e->seq != producer.seq) continue;
    retries.swap(e->retries);
    if (r.is_ok()) {
      e->answered = true;
      e->answer = copy();
    } else {
      recent.erase(e);  // Not written: a retry may try again.
    }
    break;
  }
  for (AppendCallback& retry : retries) retry(copy());
}

void StreamStore::read(std::string_view bucket, std::string_view name, ReadStart start, uint32_t max_records,
                       uint32_t max_bytes, ReadCallback done) {
  auto info = existing(bucket, name);
  if (!info) return done(info.status());
  const StreamInfo& stream = **info;
  const uint64_t tail = log_->tail(stream.id).next_seq;
  if (start.kind == ReadStart::Kind::kSeqNum) {
    if (start.value > tail) {
      return done(Status(ErrorCode::kOutOfRange, fmt::format("seq_num {} is beyond the tail {}", start.value, tail),
                         tail));
    }
    start.value = std::max(start.value, stream.trim_seq);
  }
  const uint64_t trim_seq = stream.trim_seq;
  if (trim_seq == 0) {
    log_->read(stream.id, start, max_records, max_bytes, std::move(done));
    return;
  }
  // Starts resolved by the log (timestamp, tail offset) may land below the
  // trim point: drop what is gone before answering. (Trim is rare; the
  // small allocation keeps the common path free of it.)
  auto* held = new ReadCallback(std::move(done));
  log_->read(stream.id, start, max_records, max_bytes, [trim_seq, held](Result<ReadResult> r) {
    std::unique_ptr<ReadCallback> owned(held);
    if (r) {
      auto& batches = r->batches;
      size_t drop = 0;
      while (drop < batches.size() && batches[drop].header.base_seq + batches[drop].header.record_count <= trim_seq) {
        drop++;
      }
      if (drop > 0) {
        batches.erase(batches.begin(), batches.begin() + static_cast<std::ptrdiff_t>(drop));
        r->first_record_index = 0;
      }
      if (!batches.empty() && batches[0].header.base_seq < trim_seq) {
        r->first_record_index =
            std::max<uint32_t>(r->first_record_index, static_cast<uint32_t>(trim_seq - batches[0].header.base_seq));
      }
    }
    (*owned)(std::move(r));
  });
}

void StreamStore::start_retention(uint64_t interval_ms) {
  RUNNEL_ASSERT(reactor_ != nullptr);
  retention_interval_ms_ = interval_ms;
  retention_timer_ = std::make_unique<Timer>(*reactor_, [this] {
    enforce_retention(static_cast<uint64_t>(Reactor::clock_realtime_ms()));
    retention_timer_->arm_after_us(retention_interval_ms_ * 1000);
  });
  retention_timer_->arm_after_us(retention_interval_ms_ * 1000);
}

void StreamStore::enforce_retention(uint64_t now_ms) {
  std::vector<CatalogMutation> mutations;
  for (const StreamInfo* info : catalog_.all()) {
    if (retention_pending_.count(info->id) != 0) continue;
    const StreamConfig& c = info->config;
    const uint64_t tail = log_->tail(info->id).next_seq;
    if (c.retention_age_ms > 0 || c.retention_bytes > 0) {
      const uint64_t cutoff = c.retention_age_ms > 0 && now_ms > c.retention_age_ms ? now_ms - c.retention_age_ms : 0;
      const uint64_t keep_from = log_->retention_point(info->id, cutoff, c.retention_bytes);
      if (keep_from > info->trim_seq) {
        CatalogMutation m;
        m.op = CatalogOp::kTrim;
        m.stream = *info;
        m.stream.trim_seq = keep_from;
        mutations.push_back(std::move(m));
        continue;
      }
    }
    if (c.delete_on_empty_ms > 0) {
      const bool empty = info->trim_seq >= tail;
      if (!empty) {
        empty_since_ms_.erase(info->id);
      } else {
        auto [since, inserted] = empty_since_ms_.emplace(info->id, now_ms);
        if (!inserted && now_ms - since->second >= c.delete_on_empty_ms) {
          CatalogMutation m;
          m.op = CatalogOp::kDelete;
          m.stream = *info;
          mutations.push_back(std::move(m));
        }
      }
    }
  }
  for (CatalogMutation& m : mutations) {
    const uint64_t id = m.stream.id;
    retention_pending_.insert(id);
    if (m.op == CatalogOp::kDelete) {
      log_info("deleting stream {}/{}: empty for {} ms", m.stream.bucket, m.stream.name, m.stream.config.delete_on_empty_ms);
      empty_since_ms_.erase(id);
    }
    mutate(std::move(m), [this, id](Result<StreamInfo> r) {
      retention_pending_.erase(id);
      if (!r) log_warn("retention of stream {} failed: {}", id, r.status().to_string());
    });
  }
  // Space: delete segments nothing needs, and copy forward the few live
  // batches that keep an old one; if old catalog records hold a segment
  // (for either), write a snapshot so a later pass can let it go.
  ShardLog::ReclaimReport reclaimed = log_->reclaim();
  const bool compaction_blocked = log_->compact() == ShardLog::CompactStart::kBlockedByControlRecords;
  if ((reclaimed.blocked_by_control_records || compaction_blocked) && !snapshot_in_progress_ &&
      Reactor::clock_realtime_ms() - last_snapshot_ms_ >= kSnapshotIntervalMinMs) {
    write_snapshot();
  }
}

void StreamStore::write_snapshot() {
  if (snapshot_in_progress_) return;
  snapshot_in_progress_ = true;
  last_snapshot_ms_ = Reactor::clock_realtime_ms();
  // Begin, every live stream's full state in id order, End: appended back to
  // back, acknowledged in that order. The snapshot counts (and older catalog
  // records stop mattering) only once End is durable.
  struct Snapshot {
    StreamStore* store;
    uint64_t begin_segment = 0;
    size_t records = 0;
    size_t acked = 0;
    bool failed = false;
  };
  auto* snap = new Snapshot{this};
  std::vector<CatalogMutation> records;
  CatalogMutation begin;
  begin.op = CatalogOp::kSnapshotBegin;
  begin.stream.id = catalog_.next_id();
  records.push_back(begin);
  for (const StreamInfo* info : catalog_.all()) {
    CatalogMutation create;
    create.op = CatalogOp::kCreate;
    create.stream = *info;
    records.push_back(std::move(create));
  }
  CatalogMutation end = begin;
  end.op = CatalogOp::kSnapshotEnd;
  records.push_back(end);
  snap->records = records.size();
  for (size_t i = 0; i < records.size(); i++) {
    log_->append_control(encode_mutation(records[i]), [snap](Result<AppendAck> ack) {
      snap->failed |= !ack;
      if (++snap->acked < snap->records) return;
      std::unique_ptr<Snapshot> owned(snap);
      StreamStore& store = *owned->store;
      if (owned->failed) {
        log_warn("catalog snapshot failed; old segments stay until the next one");
      } else {
        store.log_->set_control_horizon(owned->begin_segment);
        log_info("catalog snapshot of {} streams written", owned->records - 2);
      }
      store.snapshot_in_progress_ = false;
      store.run_deferred();
    });
    if (i == 0) snap->begin_segment = log_->active_segment_id();  // Where Begin was placed.
  }
}

void StreamStore::run_deferred() {
  while (!deferred_.empty() && !snapshot_in_progress_) {
    auto [mutation, done] = std::move(deferred_.front());
    deferred_.pop_front();
    mutate(std::move(mutation), std::move(done));
  }
}

Result<StreamTail> StreamStore::tail(std::string_view bucket, std::string_view name) const {
  auto info = existing(bucket, name);
  if (!info) return info.status();
  return log_->tail((*info)->id);
}

}  // namespace runnel
