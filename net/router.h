#pragma once
// Router: the binary protocol's operations, as served to the
// connections of one shard. A request names its stream; the stream belongs to
// one shard (wire::owner_shard: XXH3 of "bucket/stream"), and the operation runs
// there, against that shard's StreamStore. For a stream of this shard that
// is a direct call on the request's bytes, with no copy; for another shard
// the request body is copied once and sent by message, the owner decodes and
// runs it, and the answer frame comes back by message to be written on the
// connection's shard. Listing streams asks every shard and merges.
//
// Buckets: GET_BUCKET and LIST_BUCKETS are answered from this shard's
// replica of the bucket table; CREATE/RECONFIGURE/DELETE_BUCKET go by message
// to the NodeRegistry on shard 0, which answers once the change is durable
// and on every shard.
//
// Access tokens: every request carries who asks (null while access control
// is off) and is checked here, on the connection's shard, against that
// shard's replica of the token table (net/auth/access.h) before it goes
// anywhere: both ports reach the store only through here, so they enforce
// the same rules. ISSUE/REVOKE_TOKEN go to the NodeRegistry like bucket
// changes; every management operation leaves an audit line.
//
// Answers are whole frames (proto/wire.h), errors included; the caller only
// writes them out.

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/inline_function.h"
#include "core/reactor.h"
#include "core/recycler.h"
#include "core/sharded.h"
#include "net/auth/access.h"
#include "net/auth/limits.h"
#include "net/node_registry.h"
#include "net/subscriptions.h"
#include "storage/stream_store.h"

namespace runnel {

struct RouterCall;  // An operation waiting for its store's answer (router.cc).
struct LongPoll;    // A read waiting for records (router.cc).

class Router {
 public:
  // Receives the answer frame on the connection's shard.
  using Reply = InlineFunction<void(std::string frame), 32>;

  // On its shard, during the shard's startup. `stores` holds every shard's
  // store, used only on its own shard; `buckets` lives on shard 0 and is
  // used only there. Lives until its reactor has stopped (a stopping shard
  // answers its waiting reads at once).
  Router(Reactor& reactor, const Sharded<StreamStore>* stores, NodeRegistry* registry);
  ~Router();
  Router(const Router&) = delete;
  Router& operator=(const Router&) = delete;
  // Every shard's router, so a request for another shard's stream runs on
  // that shard's router (and its pools), and every shard's subscriptions.
  // Set before serving.
  void set_peers(const Sharded<Router>* routers, const Sharded<Subscriptions>* subscriptions) {
    routers_ = routers;
    subscriptions_ = subscriptions;
  }

  // Serves one request frame's body (valid for the duration of the call)
  // for `who` (the asking token, valid for the call; null: access control
  // is off); `reply` gets the answer frame, now or later. A body that does
  // not decode as its opcode says is refused with an error (the caller
  // closes the connection) and `reply` is not called.
  Status handle(const TokenInfo* who, uint16_t opcode, uint32_t request_id, std::string_view body, Reply reply);

  // Access control. SUBSCRIBE (served by the connection, net/subscriptions.h):
  // OK with "" to go on with `body` as it is, with the body to use instead
  // (auto-prefixing), or kPermissionDenied.
  Result<std::string> admit_subscribe(const TokenInfo& who, std::string_view body);
  // Connections per token on this shard (TokenLimits::connections_max):
  // false (kThrottled) if `who` has its most already; else counted until
  // release_connection.
  Status admit_connection(const TokenInfo& who);
  void release_connection(const std::string& token_id);
  // Counts a refused token (runnel_auth_failures_total{reason}).
  void count_refusal(auth::Refusal refusal) { refusals_[static_cast<int>(refusal)]->inc(); }

  // Every shard's store and subscriptions (each used only on its own shard).
  const Sharded<StreamStore>* stores() const { return stores_; }
  const Sharded<Subscriptions>* subscriptions() const { return subscriptions_; }

  // This shard's reads waiting for records (router.cc).
  struct LongPolls;

 private:
  struct Remote;
  // Runs on the owning shard's router, with that shard's store; false (and
  // `reply` dropped unanswered) if the body does not decode.
  bool execute(uint16_t opcode, uint32_t request_id, std::string_view body, Reply reply);
  void list_streams(const TokenInfo* who, uint32_t request_id, std::string_view body, Reply reply);
  // Bucket requests (false: not a bucket opcode). The body decoded already.
  bool handle_bucket(const TokenInfo* who, uint16_t opcode, uint32_t request_id, std::string_view body, Reply& reply);
  void mutate_bucket(uint16_t opcode, uint32_t request_id, std::string_view body, Reply reply);
  // Token requests (false: not a token opcode). The body decoded already.
  bool handle_token(const TokenInfo* who, uint16_t opcode, uint32_t request_id, std::string_view body, Reply& reply);
  void mutate_token(uint16_t opcode, uint32_t request_id, const TokenEntry& token, std::string secret, Reply reply);
  StreamStore& local_store() const { return stores_->local(); }

  Reactor& reactor_;
  const Sharded<StreamStore>* stores_;
  const Sharded<Router>* routers_ = nullptr;
  const Sharded<Subscriptions>* subscriptions_ = nullptr;
  NodeRegistry* registry_;
  // The request path's objects, reused (core/recycler.h): no allocation per
  // request once warm. Operations run here take from calls_ (reads that
  // wait, from long_polls_ as well); requests this shard sent to another
  // take from remotes_.
  Recycler<RouterCall> calls_;
  Recycler<Remote> remotes_;
  std::unique_ptr<LongPolls> long_polls_;
  Counter* refusals_[auth::kRefusalKinds] = {};
  Counter& denied_;     // Requests refused kPermissionDenied.
  Counter& throttled_;  // Requests refused kThrottled (a token's rate limits).
  auth::TokenMeters meters_;
  std::unordered_map<std::string, uint32_t>
      connections_;  // Binary connections per limited token.  // This shard's meters of tokens with rate limits.
  // Rate limits, on the stream's owning shard: admits (and charges) a
  // request of a limited token; a read's reply is wrapped to charge what it
  // moved. False: answered kThrottled.
  bool meter(const TokenInfo& who, uint16_t opcode, uint32_t request_id, std::string_view body, Reply& reply);
};

}  // namespace runnel
