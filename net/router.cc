#include "net/router.h"

#include <openssl/crypto.h>

#include <algorithm>
#include <memory>
#include <optional>

#include "core/log.h"
#include "core/shard_gather.h"
#include "core/text.h"
#include "net/auth/access.h"
#include "net/wire_convert.h"
#include "proto/limits.h"
#include "proto/wire.h"

namespace runnel {

// An operation waiting for its store's answer, on the owning shard; taken
// from and given back to that shard's router.
struct RouterCall {
  Router* router = nullptr;
  Recycler<RouterCall>* pool = nullptr;
  Router::LongPolls* long_polls = nullptr;
  StreamStore* store = nullptr;
  uint16_t opcode = 0;
  uint32_t request_id = 0;
  Router::Reply reply;

  void answer(std::string frame) {
    Router::Reply to = std::move(reply);
    pool->give_back(this);  // Before answering: the answer may start another call.
    to(std::move(frame));
  }
  void fail(const Status& status) { answer(wire_convert::error_frame(opcode, request_id, status)); }
};

namespace {

using wire::Opcode;
using Call = RouterCall;
using namespace wire_convert;

constexpr uint32_t kListLimitDefault = 1000;

// A stream as the protocol shows it, from its owning shard: catalog state,
// tail and the last minute's appends.
StreamInfo describe(const StreamStore& store, const StreamEntry& entry) {
  const auto tail = store.tail(entry.bucket, entry.name);
  return stream_info(entry, tail ? tail->next_seq : 0, store.log().appended_last_minute(entry.id));
}

// The answer to a stream mutation: the stream's new state (DELETE: nothing).
StreamStore::InfoCallback info_answer(Call* call) {
  return [call](Result<StreamEntry> r) {
    if (!r) return call->fail(r.status());
    if (call->opcode == static_cast<uint16_t>(Opcode::kDeleteStream)) {
      return call->answer(empty_answer(call->opcode, call->request_id));
    }
    call->answer(answer_frame(call->opcode, call->request_id, describe(*call->store, *r)));
  };
}

}  // namespace

// A read that found nothing new and may wait (wait_ms): it waits on the
// stream's tail, reads again when records land, and answers empty with the
// tail when the wait ends. Lives on the owning shard, taken from and given
// back to its router's pool; a shard that stops answers its waiting reads at
// once (their in-flight work is done).
struct LongPoll {
  Router::LongPolls* polls = nullptr;
  Call* call = nullptr;
  std::string bucket, stream;  // Keep their capacity from use to use.
  wire::Start start;
  uint32_t max_records = 0, max_bytes = 0;
  uint64_t until = 0;
  uint64_t deadline_us = 0;
  ShardLog::TailWaiter waiter;
  std::unique_ptr<Timer> timer;  // Made on first wait, kept.
  LongPoll* prev = nullptr;      // In polls->waiting while waiting.
  LongPoll* next = nullptr;
};

struct Router::LongPolls {
  Recycler<LongPoll> pool;
  LongPoll* waiting = nullptr;  // The reads waiting now, so that a stopping shard can answer them.
};

namespace {

void read_once(LongPoll* poll, uint32_t wait_ms);
void finish_poll(LongPoll* poll, std::string frame);
void finish_poll_empty(LongPoll* poll);  // No records: just the tail.

void link_poll(LongPoll* poll) {
  Router::LongPolls& polls = *poll->polls;
  poll->next = polls.waiting;
  if (polls.waiting != nullptr) polls.waiting->prev = poll;
  polls.waiting = poll;
}

void unlink_poll(LongPoll* poll) {
  if (poll->prev != nullptr) poll->prev->next = poll->next;
  if (poll->next != nullptr) poll->next->prev = poll->prev;
  if (poll->polls->waiting == poll) poll->polls->waiting = poll->next;
  poll->prev = poll->next = nullptr;
}

void finish_poll(LongPoll* poll, std::string frame) {
  unlink_poll(poll);
  poll->call->store->log().cancel_wait(&poll->waiter);
  if (poll->timer) poll->timer->cancel();
  Call* call = poll->call;
  poll->waiter.wake.reset();
  poll->polls->pool.give_back(poll);
  call->answer(std::move(frame));
}

void finish_poll_empty(LongPoll* poll) {
  auto tail = poll->call->store->tail(poll->bucket, poll->stream);
  wire::ReadAnswer empty;
  empty.tail = tail ? tail->next_seq : 0;
  finish_poll(poll, answer_frame(poll->call->opcode, poll->call->request_id, empty));
}

// Reads; with nothing to return and time left, waits for the stream's next
// records (wait_ms > 0) and tries again.
void read_once(LongPoll* poll, uint32_t wait_ms) {
  StreamStore& store = *poll->call->store;
  store.read(poll->bucket, poll->stream, read_start(poll->start), poll->max_records, poll->max_bytes,
             [poll, wait_ms](Result<ReadResult> r) {
               const uint16_t opcode = poll->call->opcode;
               const uint32_t request_id = poll->call->request_id;
               if (!r) return finish_poll(poll, error_frame(opcode, request_id, r.status()));
               wire::ReadAnswer answer = read_answer(*r, poll->until);
               StreamStore& s = *poll->call->store;
               const StreamEntry* info = s.catalog().find(poll->bucket, poll->stream);
               if (!answer.batches.empty() || wait_ms == 0 || info == nullptr ||
                   Reactor::clock_us() >= poll->deadline_us || Reactor::current().stopping()) {
                 return finish_poll(poll, answer_frame(opcode, request_id, answer));
               }
               // Nothing yet: wait for records or the deadline.
               poll->waiter.stream_id = info->id;
               poll->waiter.wake = [poll, wait_ms] {
                 unlink_poll(poll);
                 poll->timer->cancel();
                 read_once(poll, wait_ms);
               };
               if (!poll->timer) {
                 poll->timer = std::make_unique<Timer>(Reactor::current(), [poll] { finish_poll_empty(poll); });
               }
               poll->timer->arm_at_us(poll->deadline_us);
               s.log().wait_for_records(&poll->waiter);
               link_poll(poll);
             });
}

// The bucket and stream a request names, for routing; false if it names none.
bool stream_of(uint16_t opcode, std::string_view body, std::string_view* bucket, std::string_view* stream) {
  switch (static_cast<Opcode>(opcode)) {
    case Opcode::kCreateStream:
    case Opcode::kGetStream:
    case Opcode::kReconfigureStream:
    case Opcode::kDeleteStream:
    case Opcode::kSealStream:
    case Opcode::kTrimStream:
    case Opcode::kFenceStream:
    case Opcode::kCheckTail:
    case Opcode::kAppend:
    case Opcode::kRead: {
      wire::Reader r(body);  // Every one of these starts with bucket, stream.
      return r.str(bucket) && r.str(stream);
    }
    default:
      return false;
  }
}

// Decodes the whole body as its opcode's request (validation, at the edge).
bool decodes(uint16_t opcode, std::string_view body) {
  switch (static_cast<Opcode>(opcode)) {
    case Opcode::kCreateStream: { wire::CreateStream m; return wire::decode_body(body, &m); }
    case Opcode::kGetStream:
    case Opcode::kDeleteStream:
    case Opcode::kSealStream:
    case Opcode::kCheckTail: { wire::StreamName m; return wire::decode_body(body, &m); }
    case Opcode::kReconfigureStream: { wire::ReconfigureStream m; return wire::decode_body(body, &m); }
    case Opcode::kTrimStream: { wire::TrimStream m; return wire::decode_body(body, &m); }
    case Opcode::kFenceStream: { wire::FenceStream m; return wire::decode_body(body, &m); }
    case Opcode::kAppend: { wire::Append m; return wire::decode_body(body, &m); }
    case Opcode::kRead: { wire::Read m; return wire::decode_body(body, &m); }
    case Opcode::kListStreams: { wire::ListRequest m; return wire::decode_body(body, &m); }
    case Opcode::kCreateBucket:
    case Opcode::kReconfigureBucket: { wire::BucketWithConfig m; return wire::decode_body(body, &m); }
    case Opcode::kGetBucket:
    case Opcode::kDeleteBucket: { wire::BucketName m; return wire::decode_body(body, &m); }
    case Opcode::kListBuckets: { wire::ListRequest m; return wire::decode_body(body, &m); }
    case Opcode::kSubscribe: { wire::Subscribe m; return wire::decode_body(body, &m); }
    case Opcode::kCredit: { wire::Credit m; return wire::decode_body(body, &m); }
    case Opcode::kUnsubscribe: { wire::Unsubscribe m; return wire::decode_body(body, &m); }
    case Opcode::kIssueToken: {
      TokenInfo m;
      return wire::decode_body(body, &m);
    }
    case Opcode::kRevokeToken: {
      wire::TokenId m;
      return wire::decode_body(body, &m);
    }
    case Opcode::kListTokens: {
      wire::ListRequest m;
      return wire::decode_body(body, &m);
    }
    default: return true;  // Unknown opcodes are answered `unsupported`, not closed on.
  }
}

Status malformed(uint16_t opcode) {
  return Status(ErrorCode::kInvalidArgument, fmt::format("malformed {} request", wire::opcode_name(opcode)));
}

// --- access control ---

// The operations that change what exists: each leaves an audit line.
bool is_management(uint16_t opcode) {
  switch (static_cast<Opcode>(opcode)) {
    case Opcode::kCreateBucket:
    case Opcode::kReconfigureBucket:
    case Opcode::kDeleteBucket:
    case Opcode::kCreateStream:
    case Opcode::kReconfigureStream:
    case Opcode::kDeleteStream:
    case Opcode::kSealStream:
    case Opcode::kTrimStream:
    case Opcode::kFenceStream:
    case Opcode::kIssueToken:
    case Opcode::kRevokeToken:
      return true;
    default:
      return false;
  }
}

// What a management request acts on, for the audit line.
std::string resource_of(uint16_t opcode, std::string_view body) {
  wire::Reader r(body);
  std::string_view first, second;
  switch (static_cast<Opcode>(opcode)) {
    case Opcode::kCreateBucket:
    case Opcode::kReconfigureBucket:
    case Opcode::kDeleteBucket:
      r.str(&first);
      return fmt::format("bucket/{}", printable(first));
    case Opcode::kIssueToken:
    case Opcode::kRevokeToken:
      r.str(&first);
      return fmt::format("token/{}", printable(first));
    default:
      r.str(&first);
      r.str(&second);
      return fmt::format("stream/{}/{}", printable(first), printable(second));
  }
}

// The answer's outcome: "ok" or its error code's name.
std::string outcome_of(const std::string& frame) {
  if (frame.size() < wire::kFrameHeaderBytes) return "internal";
  if ((wire::read_frame_header(frame.data()).flags & wire::kFlagError) == 0) return "ok";
  wire::ErrorBody error;
  if (!wire::decode_body(std::string_view(frame).substr(wire::kFrameHeaderBytes), &error)) return "internal";
  return std::string(error_code_name(static_cast<ErrorCode>(error.code)));
}

// A reply that logs the audit line for a management request when answered.
Router::Reply audited(Router::Reply reply, const TokenInfo* who, uint16_t opcode, std::string_view body) {
  struct Audit {
    Router::Reply reply;
    std::string token, resource;
    uint16_t opcode;
  };
  auto* audit = new Audit{std::move(reply), who != nullptr ? who->id : "-", resource_of(opcode, body), opcode};
  return [audit](std::string frame) {
    std::unique_ptr<Audit> owned(audit);
    log_info("audit op={} resource={} token={} outcome={}", wire::opcode_name(owned->opcode), owned->resource,
             owned->token, outcome_of(frame));
    owned->reply(std::move(frame));
  };
}

// Checks `who` may run this request. Listings are filtered later, by what it may see.
Status authorize(const TokenInfo& who, uint16_t opcode, std::string_view body, bool names_a_stream,
                 std::string_view bucket, std::string_view stream) {
  const uint32_t op = auth::op_for_opcode(opcode);
  if (names_a_stream) return auth::authorize_stream(who, op, bucket, stream);
  wire::Reader r(body);
  std::string_view name;
  switch (static_cast<Opcode>(opcode)) {
    case Opcode::kCreateBucket:
    case Opcode::kReconfigureBucket:
    case Opcode::kDeleteBucket:
    case Opcode::kGetBucket:
    case Opcode::kListStreams:  // Seeing the bucket; its streams are filtered.
      r.str(&name);
      return auth::authorize_bucket(who, op, name);
    default:
      return Status::ok();  // LIST_BUCKETS: filtered; tokens: checked in handle_token.
  }
}

// Auto-prefixing: `body` (a stream request) with the token's prefix put
// before its stream name, or an error if the name grows too long.
Result<std::string> with_stream_prefix(std::string_view body, std::string_view prefix) {
  wire::Reader r(body);
  std::string_view bucket, stream;
  (void)(r.str(&bucket) && r.str(&stream));
  if (prefix.size() + stream.size() > 512) {
    return Status(ErrorCode::kInvalidArgument, "stream name too long with this token's prefix");
  }
  std::string out;
  wire::Writer w(&out);
  w.str(bucket);
  w.str(std::string(prefix) + std::string(stream));
  out.append(body.substr(2 + bucket.size() + 2 + stream.size()));
  return out;
}

// An answer frame holding a StreamInfo, with `prefix_bytes` cut from the
// stream's name (error frames and other answers pass as they are).
std::string without_stream_prefix(std::string frame, size_t prefix_bytes) {
  if (frame.size() < wire::kFrameHeaderBytes) return frame;
  const wire::FrameHeader h = wire::read_frame_header(frame.data());
  StreamInfo info;
  if ((h.flags & wire::kFlagError) != 0 ||
      !wire::decode_body(std::string_view(frame).substr(wire::kFrameHeaderBytes), &info) ||
      info.name.size() < prefix_bytes) {
    return frame;
  }
  info.name.erase(0, prefix_bytes);
  std::string out;
  wire::append_frame(&out, static_cast<Opcode>(h.opcode), h.flags, h.request_id, info);
  return out;
}

}  // namespace

// A request for another shard's stream: its body, copied, travels there.
struct Router::Remote {
  Router* origin_router = nullptr;
  int origin = 0;
  uint16_t opcode = 0;
  uint32_t request_id = 0;
  std::string body;  // Keeps its capacity from use to use.
  Reply reply;
  std::string answer;
  std::optional<TokenInfo> metered_for;  // A token with rate limits: metered on the owner.
};

Router::Router(Reactor& reactor, const Sharded<StreamStore>* stores, NodeRegistry* registry)
    : reactor_(reactor),
      stores_(stores),
      registry_(registry),
      long_polls_(std::make_unique<LongPolls>()),
      denied_(
          reactor.metrics().counter("runnel_auth_denied_total",
                                    "Requests refused permission_denied: outside their token's scope or operations.")),
      throttled_(reactor.metrics().counter("runnel_auth_throttled_total",
                                           "Requests refused throttled: over their token's rate limits.")) {
  for (int r = 0; r < auth::kRefusalKinds; r++) {
    refusals_[r] =
        &reactor.metrics().counter("runnel_auth_failures_total", "Access tokens refused (unauthenticated), by reason.",
                                   {{"reason", auth::refusal_name(static_cast<auth::Refusal>(r))}});
  }
  reactor_.on_stop([polls = long_polls_.get()] {
    while (polls->waiting != nullptr) finish_poll_empty(polls->waiting);
  });
}

Router::~Router() = default;

bool Router::meter(const TokenInfo& who, uint16_t opcode, uint32_t request_id, std::string_view body, Reply& reply) {
  const uint64_t now = Reactor::clock_us();  // Fresh: the loop step's cached time may predate an idle wait.
  Status admitted;
  if (opcode == static_cast<uint16_t>(Opcode::kAppend)) {
    wire::Append m;
    if (!wire::decode_body(body, &m)) return true;  // Refused as malformed further on.
    admitted = meters_.admit_append(who, m.record_count, m.payload.size(), now);
  } else if (opcode == static_cast<uint16_t>(Opcode::kRead)) {
    admitted = meters_.admit_read(who, now);
    if (admitted) {
      // Charged once answered, with what the answer holds.
      struct Charge {
        Reply reply;
        Router* router;
        TokenInfo token;
      };
      auto* charge = new Charge{std::move(reply), this, who};
      reply = [charge](std::string frame) {
        std::unique_ptr<Charge> owned(charge);
        wire::ReadAnswer answer;
        if (frame.size() >= wire::kFrameHeaderBytes &&
            (wire::read_frame_header(frame.data()).flags & wire::kFlagError) == 0 &&
            wire::decode_body(std::string_view(frame).substr(wire::kFrameHeaderBytes), &answer)) {
          uint64_t records = 0, bytes = 0;
          for (const wire::Batch& b : answer.batches) {
            records += b.record_count;
            bytes += b.payload.size();
          }
          owned->router->meters_.charge_read(owned->token, records, bytes, Reactor::clock_us());
        }
        owned->reply(std::move(frame));
      };
    }
  }
  if (admitted) return true;
  throttled_.inc();
  reply(error_frame(opcode, request_id, admitted));
  return false;
}

Status Router::admit_connection(const TokenInfo& who) {
  if (who.limits.connections_max == 0) return Status::ok();
  uint32_t& open = connections_[who.id];
  if (open >= who.limits.connections_max) {
    throttled_.inc();
    return Status(ErrorCode::kThrottled,
                  fmt::format("token '{}' has {} connections open on this shard, its most; retry after closing one",
                              who.id, open),
                  1000);
  }
  open++;
  return Status::ok();
}

void Router::release_connection(const std::string& token_id) {
  auto it = connections_.find(token_id);
  if (it == connections_.end()) return;
  if (--it->second == 0) connections_.erase(it);
}

Result<std::string> Router::admit_subscribe(const TokenInfo& who, std::string_view body) {
  std::string prefixed;
  if (who.auto_prefix_streams) {
    auto rewritten = with_stream_prefix(body, who.streams.value);
    if (!rewritten) return rewritten.status();
    prefixed = std::move(*rewritten);
    body = prefixed;
  }
  std::string_view bucket, stream;
  wire::Reader r(body);
  (void)(r.str(&bucket) && r.str(&stream));
  if (Status s = auth::authorize_stream(who, kOpRead, bucket, stream); !s) {
    denied_.inc();
    return s;
  }
  if (auth::has_rate_limits(who.limits)) {
    if (Status s = meters_.admit_read(who, Reactor::clock_us()); !s) {
      throttled_.inc();
      return s;
    }
  }
  return prefixed;
}

Status Router::handle(const TokenInfo* who, uint16_t opcode, uint32_t request_id, std::string_view body, Reply reply) {
  std::string_view bucket, stream;
  const bool names_a_stream = stream_of(opcode, body, &bucket, &stream);
  if (!names_a_stream && !decodes(opcode, body)) return malformed(opcode);
  std::string prefixed;  // The body with the token's stream prefix, when it auto-prefixes.
  if (who != nullptr) {
    if (names_a_stream && who->auto_prefix_streams) {
      if (!decodes(opcode, body)) return malformed(opcode);
      auto rewritten = with_stream_prefix(body, who->streams.value);
      if (!rewritten) {
        reply(error_frame(opcode, request_id, rewritten.status()));
        return Status::ok();
      }
      prefixed = std::move(*rewritten);
      body = prefixed;
      stream_of(opcode, body, &bucket, &stream);
      auto* held = new Reply(std::move(reply));
      reply = [held, strip = who->streams.value.size()](std::string frame) {
        std::unique_ptr<Reply> to(held);
        (*to)(without_stream_prefix(std::move(frame), strip));
      };
    }
  }
  if (is_management(opcode)) reply = audited(std::move(reply), who, opcode, body);
  if (who != nullptr) {
    if (Status s = authorize(*who, opcode, body, names_a_stream, bucket, stream); !s) {
      denied_.inc();
      reply(error_frame(opcode, request_id, s));
      return Status::ok();
    }
  }
  // Rate limits are metered on the stream's owning shard (below).
  const bool metered =
      who != nullptr && auth::has_rate_limits(who->limits) &&
      (opcode == static_cast<uint16_t>(Opcode::kAppend) || opcode == static_cast<uint16_t>(Opcode::kRead));
  if (opcode == static_cast<uint16_t>(Opcode::kListStreams)) {
    list_streams(who, request_id, body, std::move(reply));
    return Status::ok();
  }
  if (!names_a_stream && handle_bucket(who, opcode, request_id, body, reply)) return Status::ok();
  if (!names_a_stream && handle_token(who, opcode, request_id, body, reply)) return Status::ok();
  if (!names_a_stream) {
    reply(error_frame(opcode, request_id, Status(ErrorCode::kUnsupported,
                                                 fmt::format("{} is not supported by this server yet",
                                                             wire::opcode_name(opcode)))));
    return Status::ok();
  }
  const uint32_t owner = wire::owner_shard(bucket, stream, static_cast<uint32_t>(stores_->shard_count()));
  if (static_cast<int>(owner) == reactor_.shard()) {
    // This shard's stream: decoded once, as it runs.
    if (metered && !meter(*who, opcode, request_id, body, reply)) return Status::ok();
    if (execute(opcode, request_id, body, std::move(reply))) return Status::ok();
    return malformed(opcode);
  }
  // Another shard's stream: checked here (a bad frame closes the connection
  // here), then the owner decodes its own copy and answers by message.
  if (!decodes(opcode, body)) return malformed(opcode);
  if (Status busy = reactor_.admit_cross_shard(); !busy) {
    reply(error_frame(opcode, request_id, busy));
    return Status::ok();
  }
  RUNNEL_ASSERT(routers_ != nullptr);
  Remote* remote = remotes_.take();
  remote->origin_router = this;
  remote->origin = reactor_.shard();
  remote->opcode = opcode;
  remote->request_id = request_id;
  remote->body.assign(body);
  remote->reply = std::move(reply);
  if (metered) remote->metered_for = *who;
  reactor_.hold();  // Shutdown waits for the answer.
  const Sharded<Router>* routers = routers_;
  reactor_.send(static_cast<int>(owner), [remote, routers] {
    Reply back = [remote](std::string frame) {
      remote->answer = std::move(frame);
      Reactor::current().send(remote->origin, [remote] {
        Reply to = std::move(remote->reply);
        std::string answer = std::move(remote->answer);
        remote->metered_for.reset();
        remote->origin_router->remotes_.give_back(remote);
        to(std::move(answer));
        Reactor::current().release();
      });
    };
    Router& there = routers->local();
    if (remote->metered_for &&
        !there.meter(*remote->metered_for, remote->opcode, remote->request_id, remote->body, back)) {
      return;
    }
    there.execute(remote->opcode, remote->request_id, remote->body, std::move(back));
  });
  return Status::ok();
}

namespace {

// --- the stream operations, one function each, run on the stream's shard ---

void create_stream(StreamStore& store, Call* call, const wire::CreateStream& m) {
  if (m.use_bucket_default) return store.create_stream_default(m.bucket, m.stream, info_answer(call));
  store.create_stream(m.bucket, m.stream, m.config, info_answer(call));
}

void get_stream(StreamStore& store, Call* call, const wire::StreamName& m) {
  const StreamEntry* info = store.catalog().find(m.bucket, m.stream);
  if (info == nullptr) {
    return call->fail(Status(ErrorCode::kNotFound, fmt::format("no stream '{}' in bucket '{}'", m.stream, m.bucket)));
  }
  call->answer(answer_frame(call->opcode, call->request_id, describe(store, *info)));
}

void reconfigure_stream(StreamStore& store, Call* call, const wire::ReconfigureStream& m) {
  store.reconfigure_stream(m.bucket, m.stream, m.config, info_answer(call));
}

void delete_stream(StreamStore& store, Call* call, const wire::StreamName& m) {
  store.delete_stream(m.bucket, m.stream, info_answer(call));
}

void seal_stream(StreamStore& store, Call* call, const wire::StreamName& m) {
  store.seal_stream(m.bucket, m.stream, info_answer(call));
}

void trim_stream(StreamStore& store, Call* call, const wire::TrimStream& m) {
  store.trim_stream(m.bucket, m.stream, m.trim_seq, info_answer(call));
}

void fence_stream(StreamStore& store, Call* call, const wire::FenceStream& m) {
  store.fence_stream(m.bucket, m.stream, m.token, info_answer(call));
}

void check_tail(StreamStore& store, Call* call, const wire::StreamName& m) {
  auto tail = store.tail(m.bucket, m.stream);
  if (!tail) return call->fail(tail.status());
  call->answer(answer_frame(call->opcode, call->request_id, wire::TailAnswer{tail->next_seq, tail->last_timestamp}));
}

void append(StreamStore& store, Call* call, const wire::Append& m) {
  AppendRequest request;
  request.payload = m.payload;
  request.record_count = m.record_count;
  request.payload_checksum = m.payload_checksum;
  if ((m.options & wire::Append::kHasMatchSeqNum) != 0) request.match_seq_num = m.match_seq_num;
  if ((m.options & wire::Append::kHasFencingToken) != 0) request.fencing_token = m.fencing_token;
  if ((m.options & wire::Append::kHasProducer) != 0) request.producer = {m.producer_id, m.producer_seq};
  request.arrival_ms = static_cast<uint64_t>(Reactor::clock_realtime_ms());
  store.append(m.bucket, m.stream, request, [call](Result<AppendAck> r) {
    if (!r) return call->fail(r.status());
    call->answer(answer_frame(call->opcode, call->request_id, *r));
  });
}

void read(StreamStore&, Call* call, const wire::Read& m) {
  LongPoll* poll = call->long_polls->pool.take();
  poll->polls = call->long_polls;
  poll->call = call;
  poll->bucket.assign(m.bucket);
  poll->stream.assign(m.stream);
  poll->start = m.start;
  poll->max_records = m.max_records;
  poll->max_bytes = m.max_bytes;
  poll->until = m.until_timestamp;
  poll->deadline_us = Reactor::clock_us() + uint64_t{std::min(m.wait_ms, kWaitMsMax)} * 1000;
  read_once(poll, m.wait_ms);
}

// --- the routing table: opcode -> request type and operation ---

// Decodes `body` as a Request and runs Op with it; false if it does not decode.
template <typename Request, void (*Op)(StreamStore&, Call*, const Request&)>
bool decode_and_run(StreamStore& store, Call* call, std::string_view body) {
  Request m;
  if (!wire::decode_body(body, &m)) return false;
  Op(store, call, m);
  return true;
}

using StreamHandler = bool (*)(StreamStore&, Call*, std::string_view body);

struct StreamRoute {
  Opcode opcode;
  StreamHandler run;
};

// Every operation on one stream, run on the stream's owning shard.
constexpr StreamRoute kStreamRoutes[] = {
    {Opcode::kCreateStream, decode_and_run<wire::CreateStream, create_stream>},
    {Opcode::kGetStream, decode_and_run<wire::StreamName, get_stream>},
    {Opcode::kReconfigureStream, decode_and_run<wire::ReconfigureStream, reconfigure_stream>},
    {Opcode::kDeleteStream, decode_and_run<wire::StreamName, delete_stream>},
    {Opcode::kSealStream, decode_and_run<wire::StreamName, seal_stream>},
    {Opcode::kTrimStream, decode_and_run<wire::TrimStream, trim_stream>},
    {Opcode::kFenceStream, decode_and_run<wire::FenceStream, fence_stream>},
    {Opcode::kCheckTail, decode_and_run<wire::StreamName, check_tail>},
    {Opcode::kAppend, decode_and_run<wire::Append, append>},
    {Opcode::kRead, decode_and_run<wire::Read, read>},
};

// Ten entries: a scan beats a hash here.
StreamHandler stream_handler(uint16_t opcode) {
  for (const StreamRoute& route : kStreamRoutes) {
    if (static_cast<uint16_t>(route.opcode) == opcode) return route.run;
  }
  return nullptr;
}

}  // namespace

bool Router::execute(uint16_t opcode, uint32_t request_id, std::string_view body, Reply reply) {
  StreamStore& store = stores_->local();
  const StreamHandler run = stream_handler(opcode);
  Call* call = calls_.take();
  call->router = this;
  call->pool = &calls_;
  call->long_polls = long_polls_.get();
  call->store = &store;
  call->opcode = opcode;
  call->request_id = request_id;
  call->reply = std::move(reply);
  if (run == nullptr) {
    call->fail(Status(ErrorCode::kUnsupported, "operation not supported"));
    return true;
  }
  if (run(store, call, body)) return true;
  call->reply = Reply();
  calls_.give_back(call);  // Never started: the caller refuses the frame.
  return false;
}

bool Router::handle_bucket(const TokenInfo* who, uint16_t opcode, uint32_t request_id, std::string_view body,
                           Reply& reply) {
  switch (static_cast<Opcode>(opcode)) {
    case Opcode::kCreateBucket:
    case Opcode::kReconfigureBucket:
    case Opcode::kDeleteBucket:
      mutate_bucket(opcode, request_id, body, std::move(reply));
      return true;
    case Opcode::kGetBucket: {
      wire::BucketName m;
      (void)wire::decode_body(body, &m);
      if (Status s = validate_bucket_name(m.bucket); !s) {
        reply(error_frame(opcode, request_id, s));
        return true;
      }
      const BucketInfo* info = local_store().find_bucket(m.bucket);
      if (info == nullptr) {
        reply(error_frame(opcode, request_id, Status(ErrorCode::kNotFound, fmt::format("no bucket '{}'", m.bucket))));
      } else {
        reply(answer_frame(opcode, request_id, *info));
      }
      return true;
    }
    case Opcode::kListBuckets: {
      wire::ListRequest m;
      (void)wire::decode_body(body, &m);
      const uint32_t limit = m.limit == 0 ? kListLimitDefault : std::min(m.limit, kListLimitDefault);
      // One more than the limit, to tell whether there are more.
      wire::ListAnswer<BucketInfo> answer;
      const StreamCatalog& catalog = local_store().catalog();
      const size_t wanted = size_t{limit} + 1;
      if (who == nullptr) {
        for (const BucketInfo* info : catalog.list_buckets(m.prefix, m.start_after, wanted)) {
          answer.items.push_back(*info);
        }
      } else {
        // Only what the token may see; buckets are few, so a scan.
        for (const BucketInfo* info : catalog.list_buckets(m.prefix, m.start_after, SIZE_MAX)) {
          if (answer.items.size() == wanted) break;
          if (auth::may_see_bucket(*who, info->name)) answer.items.push_back(*info);
        }
      }
      if (answer.items.size() > limit) {
        answer.items.resize(limit);
        answer.more = true;
      }
      reply(answer_frame(opcode, request_id, answer));
      return true;
    }
    default:
      return false;
  }
}

void Router::mutate_bucket(uint16_t opcode, uint32_t request_id, std::string_view body, Reply reply) {
  if (Status busy = reactor_.admit_cross_shard(); !busy) return reply(error_frame(opcode, request_id, busy));
  NodeRegistry::Op op = NodeRegistry::Op::kDelete;
  std::string_view name;
  BucketConfig config;
  if (opcode == static_cast<uint16_t>(Opcode::kDeleteBucket)) {
    wire::BucketName m;
    (void)wire::decode_body(body, &m);
    name = m.bucket;
  } else {
    wire::BucketWithConfig m;
    (void)wire::decode_body(body, &m);
    name = m.bucket;
    config = m.config;
    op = opcode == static_cast<uint16_t>(Opcode::kCreateBucket) ? NodeRegistry::Op::kCreate
                                                                : NodeRegistry::Op::kReconfigure;
  }
  // A bad name is answered here, without the hop.
  if (Status s = validate_bucket_name(name); !s) return reply(error_frame(opcode, request_id, s));
  struct BucketCall {
    uint16_t opcode;
    uint32_t request_id;
    int origin;
    NodeRegistry::Op op;
    std::string name;
    BucketConfig config;
    Reply reply;
    std::string answer;
  };
  auto* call = new BucketCall{opcode, request_id, reactor_.shard(), op, std::string(name), config, std::move(reply), {}};
  reactor_.hold();  // Shutdown waits for the answer.
  NodeRegistry* registry = registry_;
  reactor_.send(NodeRegistry::kHomeShard, [call, registry] {
    registry->submit(call->op, call->name, call->config, [call](Result<BucketInfo> r) {
      if (!r) {
        call->answer = error_frame(call->opcode, call->request_id, r.status());
      } else if (call->opcode == static_cast<uint16_t>(Opcode::kDeleteBucket)) {
        call->answer = empty_answer(call->opcode, call->request_id);
      } else {
        call->answer = answer_frame(call->opcode, call->request_id, *r);
      }
      Reactor::current().send(call->origin, [call] {
        std::unique_ptr<BucketCall> owned(call);
        owned->reply(std::move(owned->answer));
        Reactor::current().release();
      });
    });
  });
}

bool Router::handle_token(const TokenInfo* who, uint16_t opcode, uint32_t request_id, std::string_view body,
                          Reply& reply) {
  switch (static_cast<Opcode>(opcode)) {
    case Opcode::kIssueToken: {
      TokenInfo wanted;
      (void)wire::decode_body(body, &wanted);
      if (Status s = auth::validate_new_token(wanted, static_cast<uint64_t>(Reactor::clock_realtime_ms())); !s) {
        reply(error_frame(opcode, request_id, s));
        return true;
      }
      if (who != nullptr) {
        Status s = auth::authorize_token(*who, kOpIssueToken, wanted.id);
        if (s) s = auth::check_issue(*who, wanted);
        if (!s) {
          denied_.inc();
          reply(error_frame(opcode, request_id, s));
          return true;
        }
      }
      wanted.created_ms = static_cast<uint64_t>(Reactor::clock_realtime_ms());
      wanted.issued_by = who != nullptr ? who->id : "";
      auth::NewSecret secret = auth::make_secret(wanted.id);
      mutate_token(opcode, request_id, TokenEntry{std::move(wanted), std::move(secret.hash)}, std::move(secret.token),
                   std::move(reply));
      return true;
    }
    case Opcode::kRevokeToken: {
      wire::TokenId m;
      (void)wire::decode_body(body, &m);
      Status s = validate_token_id(m.id);
      if (s && who != nullptr) {
        s = auth::authorize_token(*who, kOpRevokeToken, m.id);
        if (!s) denied_.inc();
      }
      if (!s) {
        reply(error_frame(opcode, request_id, s));
        return true;
      }
      TokenEntry target;
      target.info.id = std::string(m.id);
      mutate_token(opcode, request_id, target, "", std::move(reply));
      return true;
    }
    case Opcode::kListTokens: {
      wire::ListRequest m;
      (void)wire::decode_body(body, &m);
      if (who != nullptr && (who->ops & kOpListTokens) == 0) {
        denied_.inc();
        reply(
            error_frame(opcode, request_id,
                        Status(ErrorCode::kPermissionDenied, fmt::format("token '{}' may not list-tokens", who->id))));
        return true;
      }
      const uint32_t limit = m.limit == 0 ? kListLimitDefault : std::min(m.limit, kListLimitDefault);
      wire::ListAnswer<TokenInfo> answer;
      for (const TokenEntry* t : local_store().catalog().list_tokens(m.prefix, m.start_after, SIZE_MAX)) {
        if (answer.items.size() > limit) break;
        if (who == nullptr || who->tokens.matches(t->info.id)) answer.items.push_back(t->info);
      }
      if (answer.items.size() > limit) {
        answer.items.resize(limit);
        answer.more = true;
      }
      reply(answer_frame(opcode, request_id, answer));
      return true;
    }
    default:
      return false;
  }
}

void Router::mutate_token(uint16_t opcode, uint32_t request_id, const TokenEntry& token, std::string secret,
                          Reply reply) {
  if (Status busy = reactor_.admit_cross_shard(); !busy) return reply(error_frame(opcode, request_id, busy));
  struct TokenCall {
    uint16_t opcode;
    uint32_t request_id;
    int origin;
    TokenEntry token;
    std::string secret;
    Reply reply;
    std::string answer;
  };
  auto* call = new TokenCall{opcode, request_id, reactor_.shard(), token, std::move(secret), std::move(reply), {}};
  reactor_.hold();  // Shutdown waits for the answer.
  NodeRegistry* registry = registry_;
  reactor_.send(NodeRegistry::kHomeShard, [call, registry] {
    const bool issue = call->opcode == static_cast<uint16_t>(Opcode::kIssueToken);
    registry->submit_token(
        issue ? NodeRegistry::Op::kIssueToken : NodeRegistry::Op::kRevokeToken, call->token,
        [call, issue](Result<TokenEntry> r) {
          if (!r) {
            call->answer = error_frame(call->opcode, call->request_id, r.status());
          } else if (issue) {
            call->answer = answer_frame(call->opcode, call->request_id, wire::IssuedToken{r->info, call->secret});
          } else {
            call->answer = answer_frame(call->opcode, call->request_id, r->info);
          }
          Reactor::current().send(call->origin, [call] {
            std::unique_ptr<TokenCall> owned(call);
            OPENSSL_cleanse(owned->secret.data(), owned->secret.size());
            owned->reply(std::move(owned->answer));
            Reactor::current().release();
          });
        });
  });
}

void Router::list_streams(const TokenInfo* who, uint32_t request_id, std::string_view body, Reply reply) {
  wire::ListRequest m;
  (void)wire::decode_body(body, &m);
  const uint16_t opcode = static_cast<uint16_t>(Opcode::kListStreams);
  if (Status s = validate_bucket_name(m.bucket); !s) return reply(error_frame(opcode, request_id, s));
  if (local_store().find_bucket(m.bucket) == nullptr) {
    return reply(error_frame(opcode, request_id, Status(ErrorCode::kNotFound, fmt::format("no bucket '{}'", m.bucket))));
  }
  if (Status busy = reactor_.admit_cross_shard(); !busy) return reply(error_frame(opcode, request_id, busy));
  const uint32_t limit = m.limit == 0 ? kListLimitDefault : std::min(m.limit, kListLimitDefault);
  // Each shard lists its own streams (one more than the limit, to tell
  // whether there are more); the answers are merged by name here.
  struct Query {
    std::string bucket, prefix, start_after;
    uint32_t limit;
    std::optional<NameScope> streams;  // Only these, for a token.
    size_t strip = 0;                  // Auto-prefixing: bytes cut from each name.
  };
  auto query = std::make_shared<Query>(
      Query{std::string(m.bucket), std::string(m.prefix), std::string(m.start_after), limit, {}, 0});
  if (who != nullptr) {
    query->streams = who->streams;
    if (who->auto_prefix_streams) {
      query->strip = who->streams.value.size();
      query->prefix = who->streams.value + query->prefix;
      if (!query->start_after.empty()) query->start_after = who->streams.value + query->start_after;
    }
  }
  const Sharded<StreamStore>* stores = stores_;
  auto* pending = new Reply(std::move(reply));
  gather_from_shards<std::vector<StreamInfo>>(
      reactor_,
      [query, stores](Reactor&) {
        StreamStore& store = stores->local();
        std::vector<StreamInfo> out;
        const size_t wanted = size_t{query->limit} + 1;
        std::string after = query->start_after;
        // A token sees only its streams: list in pages until enough match.
        while (out.size() < wanted) {
          auto page = store.catalog().list(query->bucket, query->prefix, after, wanted);
          for (const StreamEntry* info : page) {
            if (out.size() == wanted) break;
            if (query->streams && !query->streams->matches(info->name)) continue;
            out.push_back(describe(store, *info));
            out.back().name.erase(0, query->strip);
          }
          if (page.size() < wanted || !query->streams) break;
          after = page.back()->name;
        }
        return out;
      },
      [pending, request_id, limit](std::vector<std::vector<StreamInfo>> per_shard) {
        std::unique_ptr<Reply> answer_to(pending);
        wire::ListAnswer<StreamInfo> answer;
        for (auto& items : per_shard) {
          for (auto& item : items) answer.items.push_back(std::move(item));
        }
        std::sort(answer.items.begin(), answer.items.end(),
                  [](const StreamInfo& a, const StreamInfo& b) { return a.name < b.name; });
        if (answer.items.size() > limit) {
          answer.items.resize(limit);
          answer.more = true;
        }
        (*answer_to)(answer_frame(static_cast<uint16_t>(Opcode::kListStreams), request_id, answer));
      });
}

}  // namespace runnel
