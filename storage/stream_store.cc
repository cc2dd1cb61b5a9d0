#include "storage/stream_store.h"

#include <algorithm>

#include <fmt/format.h>

#include "core/log.h"

namespace runnel {
namespace {
// At most one catalog snapshot per this long (each rewrites the whole catalog).
constexpr uint64_t kSnapshotIntervalMinMs = 10'000;
constexpr size_t kSnapshotInFlight = 512;  // Snapshot records handed to the log at once.
constexpr uint64_t kRetentionIdleFactor = 20;  // Retention passes take at most 1/20 of the shard's time.
}  // namespace

StreamStore::StreamStore(Reactor& reactor) : reactor_(reactor) {}

Result<std::unique_ptr<StreamStore>> StreamStore::open(Reactor& reactor, FileIo& io, const LogOptions& options,
                                                       bool bucket_home) {
  std::unique_ptr<StreamStore> store(new StreamStore(reactor));
  store->bucket_home_ = bucket_home;
  StreamStore* self = store.get();
  auto log = ShardLog::open(
      reactor, io, options,
      [self](std::string_view bytes, uint64_t segment_id) { return self->replay(bytes, segment_id); },
      [self](uint64_t stream_id, const ProducerTag& tag, const AppendAck& ack) {
        self->replay_producer(stream_id, tag, ack);
      });
  if (!log) return log.status();
  store->log_ = std::move(*log);
  store->replay_shadow_.reset();  // A snapshot without its end was cut short: the records before it rule.
  // Only the home's log holds buckets; a replica gets its table from it.
  if (!bucket_home) {
    store->catalog_.replace_buckets({});
    store->catalog_.replace_tokens({});
  }
  store->ids_reserved_ = store->catalog_.next_id() - 1;
  store->log_->set_control_horizon(store->control_horizon_);
  // Tell the log what is no longer needed, and restore the tails of streams
  // whose batches are all gone from disk (trimmed, their segments reclaimed).
  for (const StreamEntry* info : store->catalog_.all()) {
    store->log_->ensure_tail(info->id, info->trim_seq);
    store->log_->set_floor(info->id, info->trim_seq);
    store->log_->set_compression(info->id, info->config.compress_lz4);
  }
  for (uint64_t id : store->log_->stream_ids()) {
    if (store->catalog_.find(id) == nullptr) store->log_->set_floor(id, UINT64_MAX);  // Deleted.
  }
  std::erase_if(store->producers_, [&](const auto& entry) { return store->catalog_.find(entry.first) == nullptr; });
  return store;
}

void StreamStore::replay_producer(uint64_t stream_id, const ProducerTag& tag, const AppendAck& ack) {
  auto& producers = producers_[stream_id];
  ProducerState& state = producers[tag.id];
  state.last_used = ++producer_clock_;
  auto& recent = state.recent;
  // In log order a producer's seqs rise; keep the window sorted regardless.
  auto at = std::find_if(recent.begin(), recent.end(), [&](const ProducerEntry& e) { return e.seq >= tag.seq; });
  if (at != recent.end() && at->seq == tag.seq) return;
  ProducerEntry entry;
  entry.seq = tag.seq;
  entry.answered = true;
  entry.answer = ack;
  recent.insert(at, std::move(entry));
  while (recent.size() > kProducerWindow) recent.pop_front();
  if (producers.size() > kProducersPerStreamMax) {
    auto oldest = std::min_element(producers.begin(), producers.end(), [](const auto& a, const auto& b) {
      return a.second.last_used < b.second.last_used;
    });
    producers.erase(oldest);
  }
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

Result<const StreamEntry*> StreamStore::existing(std::string_view bucket, std::string_view name) const {
  const StreamEntry* info = catalog_.find(bucket, name);
  if (info == nullptr) {
    return Status(ErrorCode::kNotFound, fmt::format("stream {}/{} does not exist", bucket, name));
  }
  return info;
}

void StreamStore::mutate(CatalogMutation mutation, InfoCallback done) {
  auto pending = std::make_unique<PendingMutation>();
  pending->mutation = std::move(mutation);
  pending->info_done = std::move(done);
  mutate(std::move(pending));
}

void StreamStore::mutate_bucket(CatalogMutation mutation, BucketCallback done) {
  auto pending = std::make_unique<PendingMutation>();
  pending->mutation = std::move(mutation);
  pending->bucket_done = std::move(done);
  mutate(std::move(pending));
}

void StreamStore::fail_mutation(PendingMutation& pending, Status status) {
  const CatalogMutation& m = pending.mutation;
  if (m.op == CatalogOp::kCreate) finish_create(m, status);
  if (is_token_op(m.op)) return pending.token_done(std::move(status));
  if (!is_bucket_op(m.op)) return pending.info_done(std::move(status));
  bucket_writes_.erase(m.bucket.name);
  if (m.op == CatalogOp::kBucketDelete) unmark_bucket_deleting(m.bucket.name);
  pending.bucket_done(std::move(status));
}

void StreamStore::mutate(std::unique_ptr<PendingMutation> pending) {
  if (snapshot_in_progress_) {
    deferred_.push_back(std::move(pending));
    return;
  }
  if (Status s = catalog_.check(pending->mutation); !s) return fail_mutation(*pending, std::move(s));
  // The record is durable before the catalog changes: an acknowledged
  // operation survives a crash, an unacknowledged one never half-applies.
  const std::string bytes = encode_mutation(pending->mutation);
  log_->append_control(bytes, [this, raw = pending.release()](Result<AppendAck> ack) {
    std::unique_ptr<PendingMutation> owned(raw);
    const CatalogMutation& m = owned->mutation;
    if (!ack) return fail_mutation(*owned, ack.status());
    if (Status s = catalog_.apply(m); !s) return fail_mutation(*owned, std::move(s));
    if (is_token_op(m.op)) return owned->token_done(m.token);  // Revoked: what it was.
    if (is_bucket_op(m.op)) {
      bucket_writes_.erase(m.bucket.name);
      if (m.op == CatalogOp::kBucketDelete) unmark_bucket_deleting(m.bucket.name);
      const BucketInfo* bucket = catalog_.find_bucket(m.bucket.name);
      return owned->bucket_done(bucket != nullptr ? *bucket : m.bucket);  // Deleted: what it was.
    }
    if (m.op == CatalogOp::kTrim) log_->set_floor(m.stream.id, catalog_.find(m.stream.id)->trim_seq);
    if (m.op == CatalogOp::kDelete) {
      log_->set_floor(m.stream.id, UINT64_MAX);
      forget_producers(m.stream.id);
    }
    if (m.op == CatalogOp::kCreate || m.op == CatalogOp::kReconfigure) {
      log_->set_compression(m.stream.id, m.stream.config.compress_lz4);
    }
    if (m.op == CatalogOp::kCreate) finish_create(m, Status::ok());  // Its waiters go on now.
    const StreamEntry* info = catalog_.find(m.stream.id);
    if (info == nullptr) return owned->info_done(m.stream);  // Deleted: answer with what it was.
    owned->info_done(*info);
  });
}

Result<CatalogMutation> StreamStore::prepare_create(std::string_view bucket, std::string_view name,
                                                    const StreamConfig& config) {
  if (Status s = validate_bucket_name(bucket); !s) return s;
  if (Status s = validate_stream_name(name); !s) return s;
  if (catalog_.find_bucket(bucket) == nullptr) {
    return Status(ErrorCode::kNotFound, fmt::format("no bucket '{}'", bucket));
  }
  if (buckets_deleting_.count(bucket) != 0) {
    return Status(ErrorCode::kUnavailable, fmt::format("bucket '{}' is being deleted", bucket));
  }
  auto key = std::make_pair(std::string(bucket), std::string(name));
  if (catalog_.find(bucket, name) != nullptr || creating_.count(key) != 0) {
    return Status(ErrorCode::kAlreadyExists, fmt::format("stream {}/{} already exists", bucket, name));
  }
  CatalogMutation m;
  m.op = CatalogOp::kCreate;
  m.stream.id = ++ids_reserved_;
  m.stream.bucket = std::string(bucket);
  m.stream.name = std::string(name);
  m.stream.config = config;
  m.stream.created_ms = Reactor::clock_realtime_ms();
  if (Status s = catalog_.check(m); !s) return s;
  creating_.emplace(std::move(key), std::vector<StatusCallback>());
  return m;
}

void StreamStore::finish_create(const CatalogMutation& mutation, const Status& status) {
  auto it = creating_.find(std::make_pair(mutation.stream.bucket, mutation.stream.name));
  if (it == creating_.end()) return;
  std::vector<StatusCallback> waiters = std::move(it->second);
  creating_.erase(it);
  for (StatusCallback& waiter : waiters) waiter(Status(status));
}

void StreamStore::create_stream(std::string_view bucket, std::string_view name, const StreamConfig& config,
                                InfoCallback done) {
  assert_on_owner();
  auto m = prepare_create(bucket, name, config);
  if (!m) return done(m.status());
  mutate(std::move(*m), std::move(done));
}

void StreamStore::create_stream_default(std::string_view bucket, std::string_view name, InfoCallback done) {
  assert_on_owner();
  const BucketInfo* b = catalog_.find_bucket(bucket);
  // Without the bucket, prepare_create refuses it.
  create_stream(bucket, name, b != nullptr ? b->config.default_stream_config : StreamConfig{}, std::move(done));
}

bool StreamStore::auto_creates(std::string_view bucket, AutoCreate when) const {
  const BucketInfo* b = catalog_.find_bucket(bucket);
  if (b == nullptr) return false;
  return when == AutoCreate::kOnAppend ? b->config.create_stream_on_append : b->config.create_stream_on_read;
}

void StreamStore::ensure_stream(std::string_view bucket, std::string_view name, AutoCreate when,
                                StatusCallback done) {
  if (catalog_.find(bucket, name) != nullptr) return done(Status::ok());
  if (!auto_creates(bucket, when)) return done(existing(bucket, name).status());
  auto key = std::make_pair(std::string(bucket), std::string(name));
  if (auto it = creating_.find(key); it != creating_.end()) {
    it->second.push_back(std::move(done));  // A create is in flight: wait for it.
    return;
  }
  auto m = prepare_create(bucket, name, catalog_.find_bucket(bucket)->config.default_stream_config);
  if (!m) return done(m.status());
  creating_[key].push_back(std::move(done));
  mutate(std::move(*m), [](Result<StreamEntry>) {});  // Its waiters hear how it went.
}

void StreamStore::ensure_stream_for_read(std::string_view bucket, std::string_view name, StatusCallback done) {
  assert_on_owner();
  ensure_stream(bucket, name, AutoCreate::kOnRead, std::move(done));
}

// ---- buckets ----

void StreamStore::create_bucket(std::string_view name, const BucketConfig& config, BucketCallback done) {
  assert_on_owner();
  CatalogMutation m;
  m.op = CatalogOp::kBucketCreate;
  m.bucket.name = std::string(name);
  m.bucket.config = config;
  m.bucket.created_ms = Reactor::clock_realtime_ms();
  write_bucket(std::move(m), std::move(done));
}

void StreamStore::reconfigure_bucket(std::string_view name, const BucketConfig& config, BucketCallback done) {
  assert_on_owner();
  CatalogMutation m;
  m.op = CatalogOp::kBucketReconfigure;
  if (const BucketInfo* b = catalog_.find_bucket(name)) m.bucket = *b;
  m.bucket.name = std::string(name);
  m.bucket.config = config;
  write_bucket(std::move(m), std::move(done));
}

void StreamStore::delete_bucket(std::string_view name, BucketCallback done) {
  assert_on_owner();
  CatalogMutation m;
  m.op = CatalogOp::kBucketDelete;
  if (const BucketInfo* b = catalog_.find_bucket(name)) m.bucket = *b;  // The answer: what it was.
  m.bucket.name = std::string(name);
  write_bucket(std::move(m), std::move(done));
}

void StreamStore::write_bucket(CatalogMutation mutation, BucketCallback done) {
  RUNNEL_ASSERT(bucket_home_);
  const std::string name = mutation.bucket.name;
  if (Status s = catalog_.check(mutation); !s) return done(std::move(s));
  if (bucket_writes_.count(name) != 0) {
    return done(Status(ErrorCode::kUnavailable, fmt::format("another change to bucket '{}' is in flight", name)));
  }
  // A delete holds a mark while its record is in flight, so no stream is
  // created here in a bucket whose delete lands before it.
  if (mutation.op == CatalogOp::kBucketDelete && mark_bucket_deleting(name)) {
    unmark_bucket_deleting(name);
    return done(Status(ErrorCode::kAlreadyExists, fmt::format("bucket '{}' still holds streams", name)));
  }
  bucket_writes_.insert(name);
  mutate_bucket(std::move(mutation), std::move(done));
}

void StreamStore::issue_token(const TokenEntry& token, TokenCallback done) {
  assert_on_owner();
  RUNNEL_ASSERT(bucket_home_);
  auto pending = std::make_unique<PendingMutation>();
  pending->mutation.op = CatalogOp::kTokenIssue;
  pending->mutation.token = token;
  pending->token_done = std::move(done);
  mutate(std::move(pending));
}

void StreamStore::revoke_token(std::string_view id, TokenCallback done) {
  assert_on_owner();
  RUNNEL_ASSERT(bucket_home_);
  auto pending = std::make_unique<PendingMutation>();
  pending->mutation.op = CatalogOp::kTokenRevoke;
  if (const TokenEntry* t = catalog_.find_token(id)) pending->mutation.token = *t;  // The answer: what it was.
  pending->mutation.token.info.id = std::string(id);
  pending->token_done = std::move(done);
  mutate(std::move(pending));
}

Status StreamStore::apply_node_replica(const CatalogMutation& mutation) {
  assert_on_owner();
  RUNNEL_ASSERT(!bucket_home_);
  RUNNEL_ASSERT(is_node_op(mutation.op));
  return catalog_.apply(mutation);
}

void StreamStore::replace_tokens(const std::vector<TokenEntry>& tokens) {
  assert_on_owner();
  RUNNEL_ASSERT(!bucket_home_);
  catalog_.replace_tokens(tokens);
}

void StreamStore::replace_buckets(const std::vector<BucketInfo>& buckets) {
  assert_on_owner();
  RUNNEL_ASSERT(!bucket_home_);
  catalog_.replace_buckets(buckets);
}

bool StreamStore::mark_bucket_deleting(std::string_view name) {
  assert_on_owner();
  auto it = buckets_deleting_.find(name);
  if (it == buckets_deleting_.end()) it = buckets_deleting_.emplace(std::string(name), 0).first;
  it->second++;
  if (catalog_.bucket_has_streams(name)) return true;
  auto creating = creating_.lower_bound(std::make_pair(std::string(name), std::string()));
  return creating != creating_.end() && creating->first.first == name;
}

void StreamStore::unmark_bucket_deleting(std::string_view name) {
  assert_on_owner();
  auto it = buckets_deleting_.find(name);
  RUNNEL_ASSERT(it != buckets_deleting_.end());
  if (--it->second == 0) buckets_deleting_.erase(it);
}

void StreamStore::mutate_existing(std::string_view bucket, std::string_view name, CatalogOp op,
                                  const std::function<void(StreamEntry&)>& edit, InfoCallback done) {
  assert_on_owner();
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
  mutate_existing(
      bucket, name, CatalogOp::kReconfigure, [&](StreamEntry& s) { s.config = config; }, std::move(done));
}

void StreamStore::delete_stream(std::string_view bucket, std::string_view name, InfoCallback done) {
  mutate_existing(
      bucket, name, CatalogOp::kDelete, [](StreamEntry&) {}, std::move(done));
}

void StreamStore::seal_stream(std::string_view bucket, std::string_view name, InfoCallback done) {
  mutate_existing(
      bucket, name, CatalogOp::kSeal, [](StreamEntry& s) { s.sealed = true; }, std::move(done));
}

void StreamStore::fence_stream(std::string_view bucket, std::string_view name, std::string_view token,
                               InfoCallback done) {
  if (token.size() > kFencingTokenBytesMax) {
    return done(Status(ErrorCode::kInvalidArgument,
                       fmt::format("fencing token is {} bytes; at most {}", token.size(), kFencingTokenBytesMax)));
  }
  mutate_existing(
      bucket, name, CatalogOp::kFence, [&](StreamEntry& s) { s.fencing_token = std::string(token); }, std::move(done));
}

void StreamStore::trim_stream(std::string_view bucket, std::string_view name, uint64_t trim_seq, InfoCallback done) {
  // Trimming past the tail would drop records not yet written.
  mutate_existing(
      bucket, name, CatalogOp::kTrim,
      [&](StreamEntry& s) { s.trim_seq = std::min(trim_seq, log_->assigned_tail(s.id)); }, std::move(done));
}

void StreamStore::append(std::string_view bucket, std::string_view name, const AppendRequest& request,
                         AppendCallback done) {
  assert_on_owner();
  const StreamEntry* stream = catalog_.find(bucket, name);
  if (stream != nullptr) return append_to(*stream, request, std::move(done));
  if (auto_creates(bucket, AutoCreate::kOnAppend)) return append_after_create(bucket, name, request, std::move(done));
  done(existing(bucket, name).status());
}

void StreamStore::append_after_create(std::string_view bucket, std::string_view name, const AppendRequest& request,
                                      AppendCallback done) {
  // The request's bytes are the caller's only until we return: keep a copy
  // for after the create (a stream's first append: rare, may allocate).
  struct Held {
    StreamStore* store;
    std::string bucket, name, payload;
    std::optional<std::string> token;
    AppendRequest request;
    AppendCallback done;
  };
  auto* held = new Held{this,
                        std::string(bucket),
                        std::string(name),
                        std::string(request.payload),
                        request.fencing_token ? std::optional<std::string>(*request.fencing_token) : std::nullopt,
                        request,
                        std::move(done)};
  held->request.payload = held->payload;
  if (held->token) held->request.fencing_token = std::string_view(*held->token);
  ensure_stream(held->bucket, held->name, AutoCreate::kOnAppend, [held](Status s) {
    std::unique_ptr<Held> owned(held);
    if (!s) return owned->done(std::move(s));
    auto info = owned->store->existing(owned->bucket, owned->name);
    if (!info) return owned->done(info.status());
    owned->store->append_to(**info, owned->request, std::move(owned->done));
  });
}

void StreamStore::append_to(const StreamEntry& stream, const AppendRequest& request, AppendCallback done) {
  if (stream.sealed) {
    return done(Status(ErrorCode::kStreamSealed, fmt::format("stream {}/{} is sealed", stream.bucket, stream.name)));
  }
  const std::string_view given = request.fencing_token.value_or(std::string_view());
  if (given != stream.fencing_token) {
    return done(Status(ErrorCode::kFencingTokenMismatch,
                       stream.fencing_token.empty()
                           ? fmt::format("stream {}/{} is not fenced, but the append carries a token", stream.bucket,
                                         stream.name)
                           : fmt::format("stream {}/{} is fenced with another token", stream.bucket, stream.name)));
  }
  if (request.producer) return append_as_producer(stream, request, std::move(done));
  // match_seq_num is decided by the log when it assigns seq_nums, in arrival
  // order: an earlier append that is still waiting for a buffer counts.
  log_->append(log_append_of(stream, request), std::move(done));
}

LogAppend StreamStore::log_append_of(const StreamEntry& stream, const AppendRequest& request) {
  LogAppend append{.stream_id = stream.id,
                   .payload = request.payload,
                   .record_count = request.record_count,
                   .payload_checksum = request.payload_checksum,
                   .timestamping = stream.config.timestamping,
                   .arrival_ms = request.arrival_ms,
                   .expected_tail = request.match_seq_num};
  if (request.producer) append.producer = ProducerTag{request.producer->id, request.producer->seq};
  return append;
}

void StreamStore::append_as_producer(const StreamEntry& stream, const AppendRequest& request, AppendCallback done) {
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
  ProducerAppend* pending = producer_appends_.take();
  pending->store = this;
  pending->stream_id = stream_id;
  pending->producer = producer;
  pending->done = std::move(done);
  log_->append(log_append_of(stream, request), [pending](Result<AppendAck> r) {
    StreamStore* store = pending->store;
    AppendCallback to = std::move(pending->done);
    const uint64_t answered_stream = pending->stream_id;
    const AppendRequest::Producer who = pending->producer;
    store->producer_appends_.give_back(pending);
    store->producer_answered(answered_stream, who, r);
    to(std::move(r));
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
  assert_on_owner();
  const StreamEntry* stream = catalog_.find(bucket, name);
  if (stream != nullptr) return read_from(*stream, start, max_records, max_bytes, std::move(done));
  if (auto_creates(bucket, AutoCreate::kOnRead)) {
    return read_after_create(bucket, name, start, max_records, max_bytes, std::move(done));
  }
  done(existing(bucket, name).status());
}

std::optional<ShardLog::ReadPlan> StreamStore::plan_read(std::string_view bucket, std::string_view name,
                                                         uint64_t from, uint32_t max_records,
                                                         uint32_t max_bytes) const {
  const StreamEntry* stream = catalog_.find(bucket, name);
  if (stream == nullptr || from < stream->trim_seq) return std::nullopt;
  return log_->plan_read(stream->id, from, max_records, max_bytes);
}

void StreamStore::read_after_create(std::string_view bucket, std::string_view name, ReadStart start,
                                    uint32_t max_records, uint32_t max_bytes, ReadCallback done) {
  struct Held {
    StreamStore* store;
    std::string bucket, name;
    ReadStart start;
    uint32_t max_records, max_bytes;
    ReadCallback done;
  };
  auto* held = new Held{this, std::string(bucket), std::string(name), start, max_records, max_bytes, std::move(done)};
  ensure_stream(held->bucket, held->name, AutoCreate::kOnRead, [held](Status s) {
    std::unique_ptr<Held> owned(held);
    if (!s) return owned->done(std::move(s));
    auto info = owned->store->existing(owned->bucket, owned->name);
    if (!info) return owned->done(info.status());
    owned->store->read_from(**info, owned->start, owned->max_records, owned->max_bytes, std::move(owned->done));
  });
}

void StreamStore::read_from(const StreamEntry& stream, ReadStart start, uint32_t max_records, uint32_t max_bytes,
                            ReadCallback done) {
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
  assert_on_owner();
  retention_interval_ms_ = interval_ms;
  retention_timer_ = std::make_unique<Timer>(reactor_, [this] {
    const uint64_t started_us = Reactor::clock_us();
    enforce_retention(static_cast<uint64_t>(Reactor::clock_realtime_ms()));
    // A pass walks every stream: with a million of them it takes a good part
    // of a second, all of it on the shard's thread. Wait at least
    // kRetentionIdleFactor times as long as it took before the next one, so
    // passes never take more than a few percent of the shard.
    const uint64_t took_us = Reactor::clock_us() - started_us;
    retention_timer_->arm_after_us(std::max(retention_interval_ms_ * 1000, took_us * kRetentionIdleFactor));
  });
  retention_timer_->arm_after_us(retention_interval_ms_ * 1000);
}

void StreamStore::enforce_retention(uint64_t now_ms) {
  assert_on_owner();
  std::vector<CatalogMutation> mutations;
  for (const StreamEntry* info : catalog_.all()) {
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
    mutate(std::move(m), [this, id](Result<StreamEntry> r) {
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

// Begin, every live stream's full state in id order, End: appended in that
// order and acknowledged in it. The snapshot counts (and older catalog
// records stop mattering) only once End is durable. With a million streams it
// is a million control records: at most kSnapshotInFlight are handed to the
// log at a time, the next as acks come back, so they never overflow the log's
// queue of waiting appends and clients' appends go on between them.
struct StreamStore::SnapshotWrite {
  CatalogMutation begin;             // Begin and End: the same but for the op.
  // The node's buckets and tokens (at the home; a few): copied when the snapshot starts.
  std::vector<CatalogMutation> node_records;
  size_t records = 0;                // Begin, a record per stream, bucket and token, End.
  uint64_t stream_cursor = 0;        // The id of the last stream handed over.
  uint64_t begin_segment = 0;
  size_t next = 0;                   // The number of records handed to the log so far.
  size_t acked = 0;
  bool failed = false;
  bool sending = false;  // send_snapshot_records is on the stack (acks may come back synchronously).
};

StreamStore::~StreamStore() = default;

void StreamStore::write_snapshot() {
  if (snapshot_in_progress_) return;
  snapshot_in_progress_ = true;
  last_snapshot_ms_ = Reactor::clock_realtime_ms();
  auto snap = std::make_unique<SnapshotWrite>();
  snap->begin.op = CatalogOp::kSnapshotBegin;
  snap->begin.stream.id = catalog_.next_id();
  // The bucket table is this log's only at the home; a replica's is not its to keep.
  if (bucket_home_) {
    for (const BucketInfo* info : catalog_.list_buckets("", "", catalog_.bucket_count())) {
      CatalogMutation& m = snap->node_records.emplace_back();
      m.op = CatalogOp::kBucketCreate;
      m.bucket = *info;
    }
    for (const TokenEntry* token : catalog_.list_tokens("", "", catalog_.token_count())) {
      CatalogMutation& m = snap->node_records.emplace_back();
      m.op = CatalogOp::kTokenIssue;
      m.token = *token;
    }
  }
  // The stream records are made one at a time as they are sent, in id order:
  // the catalog holds still meanwhile (every mutation waits for the snapshot).
  snap->records = 2 + catalog_.size() + snap->node_records.size();
  snapshot_ = std::move(snap);
  send_snapshot_records();
}

CatalogMutation StreamStore::next_snapshot_record(SnapshotWrite& snap) {
  const size_t i = snap.next;
  CatalogMutation m;
  if (i == 0) return snap.begin;
  if (i + 1 == snap.records) {
    m = snap.begin;
    m.op = CatalogOp::kSnapshotEnd;
    return m;
  }
  const size_t streams = snap.records - 2 - snap.node_records.size();
  if (i <= streams) {
    const StreamEntry* info = catalog_.next_after(snap.stream_cursor);
    RUNNEL_ASSERT(info != nullptr);
    snap.stream_cursor = info->id;
    m.op = CatalogOp::kCreate;
    m.stream = *info;
    return m;
  }
  return snap.node_records[i - 1 - streams];
}

void StreamStore::send_snapshot_records() {
  SnapshotWrite& snap = *snapshot_;
  if (snap.sending) return;  // The loop below on the stack goes on.
  snap.sending = true;
  while (snap.next < snap.records && snap.next - snap.acked < kSnapshotInFlight) {
    if (snap.next == 0) snap.begin_segment = log_->active_segment_id();  // Where Begin is placed.
    const std::string bytes = encode_mutation(next_snapshot_record(snap));
    snap.next++;
    log_->append_control(bytes, [this](Result<AppendAck> ack) {
      SnapshotWrite& s = *snapshot_;
      s.failed |= !ack;
      if (++s.acked < s.records) return send_snapshot_records();
      finish_snapshot();
    });
    if (snapshot_.get() != &snap) return;  // The last ack came back synchronously and finished it.
  }
  snap.sending = false;
}

void StreamStore::finish_snapshot() {
  std::unique_ptr<SnapshotWrite> snap = std::move(snapshot_);
  if (snap->failed) {
    log_warn("catalog snapshot failed; old segments stay until the next one");
  } else {
    log_->set_control_horizon(snap->begin_segment);
    log_info("catalog snapshot of {} streams and {} buckets and tokens written",
             snap->records - 2 - snap->node_records.size(), snap->node_records.size());
  }
  snapshot_in_progress_ = false;
  run_deferred();
}

void StreamStore::run_deferred() {
  while (!deferred_.empty() && !snapshot_in_progress_) {
    std::unique_ptr<PendingMutation> pending = std::move(deferred_.front());
    deferred_.pop_front();
    mutate(std::move(pending));
  }
}

Result<StreamTail> StreamStore::tail(std::string_view bucket, std::string_view name) const {
  auto info = existing(bucket, name);
  if (!info) return info.status();
  return log_->tail((*info)->id);
}

}  // namespace runnel
