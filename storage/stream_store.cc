#include "storage/stream_store.h"

#include <fmt/format.h>

#include "core/log.h"

namespace runnel {

Result<std::unique_ptr<StreamStore>> StreamStore::open(Reactor* reactor, FileIo& io, const LogOptions& options) {
  std::unique_ptr<StreamStore> store(new StreamStore());
  store->reactor_ = reactor;
  StreamCatalog* catalog = &store->catalog_;
  auto log = ShardLog::open(reactor, io, options, [catalog](std::string_view bytes) -> Status {
    auto mutation = decode_mutation(bytes);
    if (!mutation) return mutation.status();
    return catalog->apply(*mutation);
  });
  if (!log) return log.status();
  store->log_ = std::move(*log);
  store->ids_reserved_ = store->catalog_.next_id() - 1;
  return store;
}

Result<const StreamInfo*> StreamStore::existing(std::string_view bucket, std::string_view name) const {
  const StreamInfo* info = catalog_.find(bucket, name);
  if (info == nullptr) {
    return Status(ErrorCode::kNotFound, fmt::format("stream {}/{} does not exist", bucket, name));
  }
  return info;
}

void StreamStore::mutate(CatalogMutation mutation, InfoCallback done) {
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

void StreamStore::reconfigure_stream(std::string_view bucket, std::string_view name, const StreamConfig& config,
                                     InfoCallback done) {
  auto info = existing(bucket, name);
  if (!info) return done(info.status());
  CatalogMutation m;
  m.op = CatalogOp::kReconfigure;
  m.stream = **info;
  m.stream.config = config;
  mutate(std::move(m), std::move(done));
}

void StreamStore::delete_stream(std::string_view bucket, std::string_view name, InfoCallback done) {
  auto info = existing(bucket, name);
  if (!info) return done(info.status());
  CatalogMutation m;
  m.op = CatalogOp::kDelete;
  m.stream = **info;
  mutate(std::move(m), std::move(done));
}

void StreamStore::seal_stream(std::string_view bucket, std::string_view name, InfoCallback done) {
  auto info = existing(bucket, name);
  if (!info) return done(info.status());
  CatalogMutation m;
  m.op = CatalogOp::kSeal;
  m.stream = **info;
  m.stream.sealed = true;
  mutate(std::move(m), std::move(done));
}

void StreamStore::fence_stream(std::string_view bucket, std::string_view name, std::string_view token,
                               InfoCallback done) {
  auto info = existing(bucket, name);
  if (!info) return done(info.status());
  if (token.size() > kFencingTokenBytesMax) {
    return done(Status(ErrorCode::kInvalidArgument,
                       fmt::format("fencing token is {} bytes; at most {}", token.size(), kFencingTokenBytesMax)));
  }
  CatalogMutation m;
  m.op = CatalogOp::kFence;
  m.stream = **info;
  m.stream.fencing_token = std::string(token);
  mutate(std::move(m), std::move(done));
}

void StreamStore::trim_stream(std::string_view bucket, std::string_view name, uint64_t trim_seq, InfoCallback done) {
  auto info = existing(bucket, name);
  if (!info) return done(info.status());
  CatalogMutation m;
  m.op = CatalogOp::kTrim;
  m.stream = **info;
  // Trimming past the tail would drop records not yet written.
  m.stream.trim_seq = std::min(trim_seq, log_->assigned_tail((*info)->id));
  mutate(std::move(m), std::move(done));
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
  const uint64_t tail = log_->assigned_tail(stream.id);
  if (request.match_seq_num && *request.match_seq_num != tail) {
    return done(Status(ErrorCode::kSeqNumMismatch,
                       fmt::format("match_seq_num {} is not the tail {}", *request.match_seq_num, tail), tail));
  }
  log_->append(stream.id, request.payload, request.record_count, request.payload_checksum, stream.config.timestamping,
               request.arrival_ms, std::move(done));
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
}

Result<StreamTail> StreamStore::tail(std::string_view bucket, std::string_view name) const {
  auto info = existing(bucket, name);
  if (!info) return info.status();
  return log_->tail((*info)->id);
}

}  // namespace runnel
