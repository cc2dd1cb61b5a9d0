#pragma once
// Subscriptions (proto/PROTOCOL.md, "Subscribe"): a subscription lives on
// the shard that owns its stream and pushes SUBSCRIPTION_DATA frames to the
// connection's shard as records land, never more bytes than the client has
// granted in credit, with an empty frame as heartbeat while idle. It reads
// only while it has credit and holds nothing on the write path, so a slow
// subscriber slows nobody else: it simply stops being sent to.
//
// The connection keeps, per subscription id, the owning shard; credits,
// unsubscribes and the connection's end are passed there by message.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/reactor.h"
#include "core/sharded.h"
#include "core/status.h"
#include "storage/stream_store.h"

namespace runnel {

// Where a subscription's frames go: a connection on its shard. Plain data,
// so it can travel in messages; deliver() runs on `shard` only and must
// drop frames for a connection whose generation has moved on.
struct PushTarget {
  int shard = 0;
  void* connection = nullptr;
  uint64_t generation = 0;
  // A frame in one or more pieces sent back to back (the first holds the
  // whole frame header): large records travel without being joined.
  void (*deliver)(void* connection, uint64_t generation, std::vector<std::string> frame_pieces) = nullptr;
};

namespace subscriptions {

// On the connection's shard. Starts subscription `id` (the SUBSCRIBE request
// id) on `owner`; its answer and every later frame go to `target`.
// `body` is a SUBSCRIBE body that decoded.
void start(Reactor& here, const Sharded<StreamStore>* stores, uint32_t owner, uint32_t id,
           std::string_view body, const PushTarget& target, uint32_t default_heartbeat_ms);
// Adds credit / ends one subscription / ends every subscription of a connection.
void credit(Reactor& here, uint32_t owner, const PushTarget& target, uint32_t id, uint32_t bytes);
void stop(Reactor& here, uint32_t owner, const PushTarget& target, uint32_t id);

// What the admin API shows of a live subscription: how far behind the tail
// its sending is (consumer lag, tail - next_seq).
struct SubscriptionStatus {
  uint32_t id = 0;            // The SUBSCRIBE request id (unique per connection only).
  int connection_shard = 0;   // The shard of the subscriber's connection.
  bool positioned = false;    // False until its first read has resolved its start...
  uint64_t next_seq = 0;      // ...then the next seq_num it will be sent.
  uint64_t credit_bytes = 0;  // Bytes it may be sent before the subscriber grants more.
};
// On the stream's owning shard: its live subscriptions (a linear scan of
// this shard's, fine for an admin request).
std::vector<SubscriptionStatus> of_stream(std::string_view bucket, std::string_view stream);
// On any shard: how many subscriptions live there.
size_t count_here();

}  // namespace subscriptions
}  // namespace runnel
