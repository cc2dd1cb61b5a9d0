#include "net/subscriptions.h"

#include <algorithm>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <tuple>

#include "core/log.h"
#include "net/wire_convert.h"
#include "proto/wire.h"

namespace runnel {
namespace {

using namespace wire_convert;
using wire::Opcode;

constexpr uint32_t kPushBytesMax = 1u << 20;    // Records per pushed frame, at most.
constexpr uint32_t kPushRecordsMax = 10'000;
constexpr uint64_t kCreditMax = uint64_t{1} << 40;
// Catching up, a subscription keeps this many reads (each one push) in
// flight, split where the stream's index says, so the disk works on several
// at once; only while the shard has reads to spare for everyone else.
constexpr size_t kReadsAhead = 4;
constexpr size_t kSpareReadsMin = 16;

// A subscription is known by its connection and id.
struct Key {
  int shard;
  PushSink* sink;
  uint64_t generation;
  uint32_t id;
  bool operator<(const Key& o) const {
    return std::tie(shard, sink, generation, id) < std::tie(o.shard, o.sink, o.generation, o.id);
  }
};

Key key_of(const PushTarget& t, uint32_t id) { return {t.shard, t.sink, t.generation, id}; }

struct Subscription;
struct PendingStart;

}  // namespace

struct Subscriptions::Table {
  // This shard's subscriptions, so credits, stops and shutdown can find them.
  std::map<Key, Subscription*> live;
  // Those waiting for their stream to be created, so a stop can find them.
  std::multimap<Key, PendingStart*> starting;
};

namespace {

// Runs on the owning shard.
struct Subscription {
  Subscriptions::Table* table = nullptr;
  StreamStore* store = nullptr;
  Key key;
  PushTarget target;
  std::string bucket, stream;
  wire::Start start;     // Until the first read resolves it...
  bool positioned = false;
  uint64_t next_seq = 0;  // ...then the next seq_num to send.
  uint64_t credit = 0;
  uint64_t credit_max = 0;
  uint32_t heartbeat_ms = 0;
  ShardLog::TailWaiter waiter;
  std::unique_ptr<Timer> heartbeat;
  // Reads in flight, oldest first; their answers are sent in this order.
  struct PendingRead {
    uint64_t id = 0;
    uint64_t end_seq = 0;  // Planned: returns exactly [from, end_seq). 0: open-ended (the only one then).
    uint64_t credit = 0;   // Credit set aside for it while in flight.
    bool ahead = false;    // Started while an earlier one was in flight: its answer is checked to follow on.
    std::optional<Result<ReadResult>> answer;
  };
  std::deque<PendingRead> reads;
  uint64_t next_read_id = 0;
  int reads_outstanding = 0;  // Reads whose callback has not run (dropped ones too): they hold the subscription.
  bool pumping = false;       // Inside pump(), which a read answered at once may re-enter.
  bool scheduled = false;     // A pump is posted: it holds the subscription.
  bool ended = false;
};

// A SUBSCRIBE on its way to the owning shard, and there, until its stream
// exists (create_stream_on_read may have to create it first).
struct PendingStart {
  uint32_t id;
  std::string body;
  PushTarget target;
  SubscriptionLimits limits;
  bool stopped = false;  // Unsubscribed, or its connection went, meanwhile.
};
void deliver_pieces(const PushTarget& t, std::vector<std::string> pieces) {
  if (t.shard == Reactor::current().shard()) return t.sink->deliver_push(t.generation, std::move(pieces));
  // Carried in the message itself: one dropped at shutdown frees it.
  Reactor::current().send(
      t.shard, [t, pieces = std::move(pieces)]() mutable { t.sink->deliver_push(t.generation, std::move(pieces)); });
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

// An ended subscription is freed by the last thing that still holds it.
void free_if_done(Subscription* sub) {
  if (sub->ended && sub->reads_outstanding == 0 && !sub->scheduled && !sub->pumping) delete sub;
}

void end(Subscription* sub) {
  if (sub->ended) return;
  sub->ended = true;
  sub->table->live.erase(sub->key);
  sub->store->log().cancel_wait(&sub->waiter);
  if (sub->heartbeat) sub->heartbeat->cancel();
  sub->reads.clear();
  free_if_done(sub);
}

void fail(Subscription* sub, const Status& status) {
  std::string frame;
  wire::append_error_frame(&frame, static_cast<uint16_t>(Opcode::kSubscriptionData), sub->key.id, status,
                           wire::kFlagPush);
  deliver(sub->target, std::move(frame));
  end(sub);
}

void arm_heartbeat(Subscription* sub) { sub->heartbeat->arm_after_us(uint64_t{sub->heartbeat_ms} * 1000); }

void pump(Subscription* sub);

void schedule_pump(Subscription* sub) {
  // From the loop, not from inside a read's answer.
  if (sub->scheduled) return;
  sub->scheduled = true;
  Reactor::current().post([sub] {
    sub->scheduled = false;
    if (sub->ended) return free_if_done(sub);
    pump(sub);
  });
}

// Reads in flight whose answers can no longer be sent as they are (they do
// not follow on, or one failed): forgotten; pump() reads again from next_seq.
void drop_reads(Subscription* sub) {
  sub->reads.clear();
  schedule_pump(sub);
}

// Sends the answers at the front, in order, as they arrive.
void send_answers(Subscription* sub) {
  while (!sub->ended && !sub->reads.empty() && sub->reads.front().answer) {
    Subscription::PendingRead read = std::move(sub->reads.front());
    sub->reads.pop_front();
    Result<ReadResult>& r = *read.answer;
    if (!r) {
      if (read.ahead) return drop_reads(sub);  // Read it again as the first in line: its error counts then.
      return fail(sub, r.status());
    }
    if (r->batches.empty()) {
      if (read.ahead || !sub->reads.empty()) return drop_reads(sub);
      // Nothing new: from here on the subscription follows the tail.
      sub->positioned = true;
      sub->next_seq = std::max(sub->next_seq, r->tail);
      const StreamEntry* info = sub->store->catalog().find(sub->bucket, sub->stream);
      if (info == nullptr) return fail(sub, Status(ErrorCode::kNotFound, "the stream was deleted"));
      sub->waiter.stream_id = info->id;
      sub->store->log().wait_for_records(&sub->waiter);
      return;
    }
    uint64_t bytes = 0;
    for (const StoredBatch& b : r->batches) bytes += b.payload.size();
    const BatchHeader& first = r->batches.front().header;
    if (read.ahead && (first.base_seq + r->first_record_index != sub->next_seq || bytes > sub->credit)) {
      return drop_reads(sub);
    }
    sub->positioned = true;
    const BatchHeader& last = r->batches.back().header;
    sub->next_seq = last.base_seq + last.record_count;
    sub->credit -= std::min(sub->credit, bytes);
    deliver_pieces(sub->target,
                   read_answer_pieces(Opcode::kSubscriptionData, wire::kFlagPush, sub->key.id, std::move(*r)));
    arm_heartbeat(sub);
    schedule_pump(sub);  // More may be there.
  }
}

void on_read(Subscription* sub, uint64_t id, Result<ReadResult> r) {
  sub->reads_outstanding--;
  if (sub->ended) return free_if_done(sub);
  if (sub->reads.empty() || id < sub->reads.front().id) return;  // Dropped meanwhile.
  sub->reads[id - sub->reads.front().id].answer = std::move(r);
  send_answers(sub);
}

// Starts the next read, if one should start now.
bool start_read(Subscription* sub) {
  uint64_t set_aside = 0;
  for (const auto& read : sub->reads) set_aside += read.credit;
  if (set_aside >= sub->credit) return false;
  const uint64_t credit_left = sub->credit - set_aside;
  const bool first = sub->reads.empty();
  if (!first && (sub->reads.back().end_seq == 0 || sub->store->log().reads_available() < kSpareReadsMin)) {
    return false;
  }
  const uint64_t from = first ? sub->next_seq : sub->reads.back().end_seq;
  std::optional<ShardLog::ReadPlan> plan;
  if (sub->positioned) plan = sub->store->plan_read(sub->bucket, sub->stream, from, kPushRecordsMax, kPushBytesMax);
  if (plan && plan->bytes > credit_left) plan.reset();
  if (!first && !plan) return false;
  Subscription::PendingRead& read = sub->reads.emplace_back();
  read.id = sub->next_read_id++;
  read.ahead = !first;
  ReadStart start = ReadStart::seq_num(from);
  uint32_t max_records = kPushRecordsMax, max_bytes = 0;
  if (plan) {
    read.end_seq = plan->end_seq;
    read.credit = plan->bytes;
    max_records = static_cast<uint32_t>(plan->end_seq - from);
    // The plan counts stored bytes; lz4 batches are sent decompressed, so a
    // push stays bounded as an unplanned one is (one that stops short of
    // end_seq is followed by one that does not follow on: read again).
    max_bytes = kPushBytesMax;
  } else {
    if (!sub->positioned) start = read_start(sub->start);
    max_bytes = static_cast<uint32_t>(std::min<uint64_t>(credit_left, kPushBytesMax));
    read.credit = max_bytes;
  }
  const uint64_t id = read.id;  // (An answer at once may pop `read`.)
  sub->reads_outstanding++;
  sub->store->read(sub->bucket, sub->stream, start, max_records, max_bytes,
                   [sub, id](Result<ReadResult> r) { on_read(sub, id, std::move(r)); });
  return true;
}

// Reads what the credit allows (several reads ahead while catching up),
// then waits for records or credit.
void pump(Subscription* sub) {
  if (sub->ended || sub->credit == 0) return;
  sub->store->log().cancel_wait(&sub->waiter);
  sub->pumping = true;
  // (A read answered at once may have found nothing new: then it waits.)
  while (!sub->ended && !sub->waiter.waiting && sub->reads.size() < kReadsAhead && start_read(sub)) {
  }
  sub->pumping = false;
  free_if_done(sub);
}

void on_heartbeat(Subscription* sub) {
  if (sub->ended) return;
  if (sub->reads.empty()) {
    auto tail = sub->store->tail(sub->bucket, sub->stream);
    if (!tail) return fail(sub, tail.status());
    wire::ReadAnswer empty;
    empty.tail = tail->next_seq;
    deliver(sub->target, push_frame(sub->key.id, empty));
  }
  arm_heartbeat(sub);
}

void start_here(Subscriptions::Table& table, StreamStore& store, uint32_t id, const std::string& body,
                const PushTarget& target, const SubscriptionLimits& limits) {
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
  const Key key = key_of(target, id);
  if (table.live.count(key) != 0) {
    return deliver(target, error_frame(opcode, id,
                                       Status(ErrorCode::kAlreadyExists, "a subscription with this id is active")));
  }
  auto* sub = new Subscription();
  sub->table = &table;
  sub->store = &store;
  sub->key = key;
  sub->target = target;
  sub->bucket = std::string(m.bucket);
  sub->stream = std::string(m.stream);
  sub->start = m.start;
  sub->credit_max = std::min(kCreditMax, limits.credit_max);
  sub->credit = std::min<uint64_t>(m.credit_bytes, sub->credit_max);
  sub->heartbeat_ms = m.heartbeat_ms != 0 ? m.heartbeat_ms : limits.default_heartbeat_ms;
  sub->waiter.wake = [sub] { pump(sub); };
  sub->heartbeat = std::make_unique<Timer>(Reactor::current(), [sub] { on_heartbeat(sub); });
  table.live[key] = sub;
  deliver(target, answer_frame(opcode, id, wire::TailAnswer{tail->next_seq, tail->last_timestamp}));
  arm_heartbeat(sub);
  pump(sub);
}

Subscription* find(const Subscriptions::Table& table, const PushTarget& target, uint32_t id) {
  auto it = table.live.find(key_of(target, id));
  return it == table.live.end() ? nullptr : it->second;
}

}  // namespace

Subscriptions::Subscriptions(Reactor& reactor, const Sharded<StreamStore>* stores, const Sharded<Subscriptions>* all)
    : reactor_(reactor), stores_(stores), all_(all), table_(std::make_unique<Table>()) {
  // Lives until its reactor has stopped, so the hook may hold it.
  reactor_.on_stop([table = table_.get()] {
    while (!table->live.empty()) {
      fail(table->live.begin()->second, Status(ErrorCode::kShuttingDown, "the server is stopping"));
    }
  });
}

Subscriptions::~Subscriptions() {
  // Left only by a forced shutdown: their reads never came back.
  while (!table_->live.empty()) end(table_->live.begin()->second);
}

template <typename Fn>
void Subscriptions::on_owner(uint32_t owner, Fn fn) {
  if (static_cast<int>(owner) == reactor_.shard()) return fn(*this);
  all_->invoke_on(static_cast<int>(owner), std::move(fn));
}

void Subscriptions::start(uint32_t owner, uint32_t id, std::string_view body, const PushTarget& target,
                          const SubscriptionLimits& limits) {
  auto* request = new PendingStart{id, std::string(body), target, limits, false};
  on_owner(owner, [request](Subscriptions& hub) {
    StreamStore& store = hub.stores_->local();
    Table& table = *hub.table_;
    wire::Subscribe m;
    (void)wire::decode_body(request->body, &m);
    // A missing stream in a bucket with create_stream_on_read is created
    // first; an existing one (the usual case) is answered at once.
    auto entry = table.starting.emplace(key_of(request->target, request->id), request);
    store.ensure_stream_for_read(m.bucket, m.stream, [request, entry, &store, &table](Status s) {
      std::unique_ptr<PendingStart> r(request);
      table.starting.erase(entry);
      if (r->stopped) return;
      const uint16_t opcode = static_cast<uint16_t>(Opcode::kSubscribe);
      if (Reactor::current().stopping()) {
        return deliver(r->target, error_frame(opcode, r->id, Status(ErrorCode::kShuttingDown, "the server is stopping")));
      }
      if (!s) return deliver(r->target, error_frame(opcode, r->id, s));
      start_here(table, store, r->id, r->body, r->target, r->limits);
    });
  });
}

void Subscriptions::credit(uint32_t owner, const PushTarget& target, uint32_t id, uint32_t bytes) {
  on_owner(owner, [target, id, bytes](Subscriptions& hub) {
    Subscription* sub = find(*hub.table_, target, id);
    if (sub == nullptr) return;  // Ended meanwhile.
    sub->credit = std::min(sub->credit_max, sub->credit + bytes);
    if (!sub->waiter.waiting) pump(sub);  // Else it waits for records, which it now has credit for.
  });
}

void Subscriptions::stop(uint32_t owner, const PushTarget& target, uint32_t id) {
  on_owner(owner, [target, id](Subscriptions& hub) {
    if (Subscription* sub = find(*hub.table_, target, id)) return end(sub);
    auto [first, last] = hub.table_->starting.equal_range(key_of(target, id));
    for (auto it = first; it != last; ++it) it->second->stopped = true;
  });
}

std::vector<SubscriptionStatus> Subscriptions::of_stream(std::string_view bucket, std::string_view stream) const {
  std::vector<SubscriptionStatus> out;
  for (const auto& entry : table_->live) {
    const Subscription& sub = *entry.second;
    if (sub.bucket != bucket || sub.stream != stream) continue;
    out.push_back(SubscriptionStatus{sub.key.id, sub.target.shard, sub.positioned, sub.next_seq, sub.credit});
  }
  return out;
}

size_t Subscriptions::count() const { return table_->live.size(); }

}  // namespace runnel
