#pragma once
// Subscriptions (proto/PROTOCOL.md, "Subscribe"): a subscription lives on
// the shard that owns its stream and pushes SUBSCRIPTION_DATA frames to the
// connection's shard as records land, never more bytes than the client has
// granted in credit, with an empty frame as heartbeat while idle. It reads
// only while it has credit and holds nothing on the write path, so a slow
// subscriber slows nobody else: it simply stops being sent to.
//
// The connection keeps, per subscription id, the owning shard; credits,
// unsubscribes and the connection's end are passed to that shard's
// Subscriptions by message.

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/reactor.h"
#include "core/sharded.h"
#include "core/status.h"
#include "storage/stream_store.h"

namespace runnel {

// Where a subscription's frames go: a connection (in tests, a stand-in) on
// its own shard.
class PushSink {
 public:
  // On the sink's shard. `generation` is the one its PushTarget was made
  // with: a sink that has moved on (another connection in the same slot)
  // drops the frame. A frame comes in one or more pieces sent back to back
  // (the first holds the whole frame header): large records travel without
  // being joined.
  virtual void deliver_push(uint64_t generation, std::vector<std::string> frame_pieces) = 0;

 protected:
  ~PushSink() = default;
};

// Plain data, so it can travel in messages; the sink is used on `shard` only.
struct PushTarget {
  int shard = 0;
  PushSink* sink = nullptr;
  uint64_t generation = 0;
};

// What the admin API shows of a live subscription: how far behind the tail
// its sending is (consumer lag, tail - next_seq).
struct SubscriptionStatus {
  uint32_t id = 0;            // The SUBSCRIBE request id (unique per connection only).
  int connection_shard = 0;   // The shard of the subscriber's connection.
  bool positioned = false;    // False until its first read has resolved its start...
  uint64_t next_seq = 0;      // ...then the next seq_num it will be sent.
  uint64_t credit_bytes = 0;  // Bytes it may be sent before the subscriber grants more.
};

// What a connection's server allows its subscriptions.
struct SubscriptionLimits {
  uint32_t default_heartbeat_ms = 5000;  // When SUBSCRIBE asks for 0.
  // The most credit one subscription may hold (more granted is ignored):
  // what it may have pushed and not yet sent stays within the connection's
  // output bound.
  uint64_t credit_max = 64ull << 20;
};

// One shard's subscriptions: those on its streams, whoever's connection they
// push to. Each shard has one (Sharded<Subscriptions>); requests from a
// connection go to the stream owner's by message.
class Subscriptions {
 public:
  // On its shard, during the shard's startup. `stores` and `all` hold every
  // shard's store and Subscriptions (each used only on its own shard). A
  // stopping shard ends its subscriptions, telling each client why.
  Subscriptions(Reactor& reactor, const Sharded<StreamStore>* stores, const Sharded<Subscriptions>* all);
  ~Subscriptions();
  Subscriptions(const Subscriptions&) = delete;
  Subscriptions& operator=(const Subscriptions&) = delete;

  // On the connection's shard. Starts subscription `id` (the SUBSCRIBE
  // request id) on shard `owner`; its answer and every later frame go to
  // `target`. `body` is a SUBSCRIBE body that decoded.
  void start(uint32_t owner, uint32_t id, std::string_view body, const PushTarget& target,
             const SubscriptionLimits& limits);
  // Adds credit to / ends one subscription (on `owner`, by message).
  void credit(uint32_t owner, const PushTarget& target, uint32_t id, uint32_t bytes);
  void stop(uint32_t owner, const PushTarget& target, uint32_t id);

  // This shard's subscriptions of one stream (a linear scan, fine for an
  // admin request) / how many live here.
  std::vector<SubscriptionStatus> of_stream(std::string_view bucket, std::string_view stream) const;
  size_t count() const;

  // This shard's live and starting subscriptions (subscriptions.cc).
  struct Table;

 private:
  // Runs fn(owner's Subscriptions&) on `owner`: here at once, or by message.
  template <typename Fn>
  void on_owner(uint32_t owner, Fn fn);

  Reactor& reactor_;
  const Sharded<StreamStore>* stores_;
  const Sharded<Subscriptions>* all_;
  std::unique_ptr<Table> table_;
};

}  // namespace runnel
