#include "net/subscriptions.h"

#include <algorithm>
#include <map>
#include <memory>
#include <tuple>

#include "core/log.h"
#include "net/wire_convert.h"
#include "proto/wire.h"

namespace runnel::subscriptions {
namespace {

using namespace wire_convert;
using wire::Opcode;

constexpr uint32_t kPushBytesMax = 1u << 20;    // Records per pushed frame, at most.
constexpr uint32_t kPushRecordsMax = 10'000;
constexpr uint64_t kCreditMax = uint64_t{1} << 40;

// A subscription is known by its connection and id.
struct Key {
  int shard;
  void* connection;
  uint64_t generation;
  uint32_t id;
  bool operator<(const Key& o) const {
    return std::tie(shard, connection, generation, id) < std::tie(o.shard, o.connection, o.generation, o.id);
  }
};

Key key_of(const PushTarget& t, uint32_t id) { return {t.shard, t.connection, t.generation, id}; }

// Runs on the owning shard.
struct Subscription {
  StreamStore* store = nullptr;
  Key key;
  PushTarget target;
  std::string bucket, stream;
  wire::Start start;     // Until the first read resolves it...
  bool positioned = false;
  uint64_t next_seq = 0;  // ...then the next seq_num to send.
  uint64_t credit = 0;
  uint32_t heartbeat_ms = 0;
  ShardLog::TailWaiter waiter;
  std::unique_ptr<Timer> heartbeat;
  bool reading = false;    // A read is in flight: its completion frees an ended subscription.
  bool scheduled = false;  // A pump is posted: it frees an ended subscription.
  bool ended = false;
};

// This shard's subscriptions, so credits, stops and shutdown can find them.
thread_local std::map<Key, Subscription*> live;
// A SUBSCRIBE on its way to the owning shard, and there, until its stream
// exists (create_stream_on_read may have to create it first).
struct PendingStart {
  const std::vector<StreamStore*>* stores;
  uint32_t id;
  std::string body;
  PushTarget target;
  uint32_t heartbeat_ms;
  bool stopped = false;  // Unsubscribed, or its connection went, meanwhile.
};
// Those waiting for a create, so a stop can find them.
thread_local std::multimap<Key, PendingStart*> starting;
thread_local bool stop_hook_registered = false;

void deliver_pieces(const PushTarget& t, std::vector<std::string> pieces) {
  if (t.shard == Reactor::current().shard()) return t.deliver(t.connection, t.generation, std::move(pieces));
  auto* owned = new std::vector<std::string>(std::move(pieces));
  Reactor::current().send(t.shard, [t, owned] {
    std::unique_ptr<std::vector<std::string>> moved(owned);
    t.deliver(t.connection, t.generation, std::move(*moved));
  });
}

void deliver(const PushTarget& t, std::string frame) {
  std::vector<std::string> pieces;
  pieces.push_back(std::move(frame));
  deliver_pieces(t, std::move(pieces));
}

std::string push_frame(uint32_t id, const wire::ReadAnswer& data) {
  std::string out;
  wire::append_frame(&out, Opcode::kSubscriptionData, wire::kFlagPush, id, data);
  return out;
}

void end(Subscription* sub) {
  if (sub->ended) return;
  sub->ended = true;
  live.erase(sub->key);
  sub->store->log().cancel_wait(&sub->waiter);
  if (sub->heartbeat) sub->heartbeat->cancel();
  if (!sub->reading && !sub->scheduled) delete sub;  // Else what is pending frees it.
}

void fail(Subscription* sub, const Status& status) {
  std::string frame;
  wire::append_error_frame(&frame, static_cast<uint16_t>(Opcode::kSubscriptionData), sub->key.id, status,
                           wire::kFlagPush);
  deliver(sub->target, std::move(frame));
  end(sub);
}

void arm_heartbeat(Subscription* sub) { sub->heartbeat->arm_after_us(uint64_t{sub->heartbeat_ms} * 1000); }

// Sends what the credit allows, then waits for records or credit.
void pump(Subscription* sub) {
  if (sub->ended || sub->reading || sub->credit == 0) return;
  sub->store->log().cancel_wait(&sub->waiter);
  sub->reading = true;
  const ReadStart from = sub->positioned ? ReadStart::seq_num(sub->next_seq) : read_start(sub->start);
  const auto max_bytes = static_cast<uint32_t>(std::min<uint64_t>(sub->credit, kPushBytesMax));
  sub->store->read(sub->bucket, sub->stream, from, kPushRecordsMax, max_bytes, [sub](Result<ReadResult> r) {
    sub->reading = false;
    if (sub->ended) {
      if (!sub->scheduled) delete sub;
      return;
    }
    if (!r) return fail(sub, r.status());
    sub->positioned = true;
    if (!r->batches.empty()) {
      uint64_t bytes = 0;
      for (const StoredBatch& b : r->batches) bytes += b.payload.size();
      const BatchHeader& last = r->batches.back().header;
      sub->next_seq = last.base_seq + last.record_count;
      sub->credit -= std::min(sub->credit, bytes);
      deliver_pieces(sub->target, read_answer_pieces(Opcode::kSubscriptionData, wire::kFlagPush, sub->key.id,
                                                     std::move(*r)));
      arm_heartbeat(sub);
      // More may be there: go on from the loop, not from inside this read.
      if (!sub->scheduled) {
        sub->scheduled = true;
        Reactor::current().post([sub] {
          sub->scheduled = false;
          if (sub->ended) {
            if (!sub->reading) delete sub;
            return;
          }
          pump(sub);
        });
      }
      return;
    }
    // Nothing new: from here on the subscription follows the tail.
    sub->next_seq = std::max(sub->next_seq, r->tail);
    const StreamInfo* info = sub->store->catalog().find(sub->bucket, sub->stream);
    if (info == nullptr) return fail(sub, Status(ErrorCode::kNotFound, "the stream was deleted"));
    sub->waiter.stream_id = info->id;
    sub->store->log().wait_for_records(&sub->waiter);
  });
}

void on_heartbeat(Subscription* sub) {
  if (sub->ended) return;
  if (!sub->reading) {
    auto tail = sub->store->tail(sub->bucket, sub->stream);
    if (!tail) return fail(sub, tail.status());
    wire::ReadAnswer empty;
    empty.tail = tail->next_seq;
    deliver(sub->target, push_frame(sub->key.id, empty));
  }
  arm_heartbeat(sub);
}

void register_stop_hook() {
  if (stop_hook_registered) return;
  stop_hook_registered = true;
  // A stopping shard ends its subscriptions, telling each client why.
  Reactor::current().on_stop([] {
    while (!live.empty()) fail(live.begin()->second, Status(ErrorCode::kShuttingDown, "the server is stopping"));
  });
}

void start_here(StreamStore& store, uint32_t id, const std::string& body, const PushTarget& target,
                uint32_t default_heartbeat_ms) {
  wire::Subscribe m;
  (void)wire::decode_body(body, &m);
  const uint16_t opcode = static_cast<uint16_t>(Opcode::kSubscribe);
  auto tail = store.tail(m.bucket, m.stream);
  if (!tail) return deliver(target, error_frame(opcode, id, tail.status()));
  if (m.start.kind == wire::Start::kSeqNum && m.start.value > tail->next_seq) {
    return deliver(target, error_frame(opcode, id,
                                       Status(ErrorCode::kOutOfRange,
                                              fmt::format("start {} is beyond the tail {}", m.start.value,
                                                          tail->next_seq),
                                              tail->next_seq)));
  }
  register_stop_hook();
  const Key key = key_of(target, id);
  if (live.count(key) != 0) {
    return deliver(target, error_frame(opcode, id,
                                       Status(ErrorCode::kAlreadyExists, "a subscription with this id is active")));
  }
  auto* sub = new Subscription();
  sub->store = &store;
  sub->key = key;
  sub->target = target;
  sub->bucket = std::string(m.bucket);
  sub->stream = std::string(m.stream);
  sub->start = m.start;
  sub->credit = m.credit_bytes;
  sub->heartbeat_ms = m.heartbeat_ms != 0 ? m.heartbeat_ms : default_heartbeat_ms;
  sub->waiter.wake = [sub] { pump(sub); };
  sub->heartbeat = std::make_unique<Timer>(Reactor::current(), [sub] { on_heartbeat(sub); });
  live[key] = sub;
  deliver(target, answer_frame(opcode, id, wire::TailAnswer{tail->next_seq, tail->last_timestamp}));
  arm_heartbeat(sub);
  pump(sub);
}

Subscription* find(const PushTarget& target, uint32_t id) {
  auto it = live.find(key_of(target, id));
  return it == live.end() ? nullptr : it->second;
}

// Runs `fn` on `owner` (here, or by message).
template <typename Fn>
void on_owner(Reactor& here, uint32_t owner, Fn fn) {
  if (static_cast<int>(owner) == here.shard()) return fn();
  here.send(static_cast<int>(owner), std::move(fn));
}

}  // namespace

void start(Reactor& here, const std::vector<StreamStore*>* stores, uint32_t owner, uint32_t id,
           std::string_view body, const PushTarget& target, uint32_t default_heartbeat_ms) {
  auto* request = new PendingStart{stores, id, std::string(body), target, default_heartbeat_ms, false};
  on_owner(here, owner, [request] {
    StreamStore& store = *(*request->stores)[static_cast<size_t>(Reactor::current().shard())];
    wire::Subscribe m;
    (void)wire::decode_body(request->body, &m);
    // A missing stream in a bucket with create_stream_on_read is created
    // first; an existing one (the usual case) is answered at once.
    auto entry = starting.emplace(key_of(request->target, request->id), request);
    store.ensure_stream_for_read(m.bucket, m.stream, [request, entry, &store](Status s) {
      std::unique_ptr<PendingStart> r(request);
      starting.erase(entry);
      if (r->stopped) return;
      const uint16_t opcode = static_cast<uint16_t>(Opcode::kSubscribe);
      if (Reactor::current().stopping()) {
        return deliver(r->target, error_frame(opcode, r->id, Status(ErrorCode::kShuttingDown, "the server is stopping")));
      }
      if (!s) return deliver(r->target, error_frame(opcode, r->id, s));
      start_here(store, r->id, r->body, r->target, r->heartbeat_ms);
    });
  });
}

void credit(Reactor& here, uint32_t owner, const PushTarget& target, uint32_t id, uint32_t bytes) {
  on_owner(here, owner, [target, id, bytes] {
    Subscription* sub = find(target, id);
    if (sub == nullptr) return;  // Ended meanwhile.
    sub->credit = std::min(kCreditMax, sub->credit + bytes);
    if (!sub->waiter.waiting) pump(sub);  // Else it waits for records, which it now has credit for.
  });
}

void stop(Reactor& here, uint32_t owner, const PushTarget& target, uint32_t id) {
  on_owner(here, owner, [target, id] {
    if (Subscription* sub = find(target, id)) return end(sub);
    auto [first, last] = starting.equal_range(key_of(target, id));
    for (auto it = first; it != last; ++it) it->second->stopped = true;
  });
}

std::vector<SubscriptionStatus> of_stream(std::string_view bucket, std::string_view stream) {
  std::vector<SubscriptionStatus> out;
  for (const auto& entry : live) {
    const Subscription& sub = *entry.second;
    if (sub.bucket != bucket || sub.stream != stream) continue;
    out.push_back(SubscriptionStatus{sub.key.id, sub.target.shard, sub.positioned, sub.next_seq, sub.credit});
  }
  return out;
}

size_t count_here() { return live.size(); }

}  // namespace runnel::subscriptions
