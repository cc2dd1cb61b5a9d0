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
// to the BucketRegistry on shard 0, which answers once the change is durable
// and on every shard.
//
// Answers are whole frames (proto/wire.h), errors included; the caller only
// writes them out.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/inline_function.h"
#include "core/reactor.h"
#include "core/recycler.h"
#include "core/sharded.h"
#include "net/bucket_registry.h"
#include "storage/stream_store.h"

namespace runnel {

struct RouterCall;  // An operation waiting for its store's answer (router.cc).

class Router {
 public:
  // Receives the answer frame on the connection's shard.
  using Reply = InlineFunction<void(std::string frame), 32>;

  // `stores[s]` is shard s's store, used only on shard s; `buckets` lives on
  // shard 0 and is used only there.
  Router(Reactor& reactor, const Sharded<StreamStore>* stores, BucketRegistry* buckets);
  ~Router();
  // Every shard's router, so a request for another shard's stream runs on
  // that shard's router (and its pools). Set before serving.
  void set_routers(const Sharded<Router>* routers) { routers_ = routers; }

  // Serves one request frame's body (valid for the duration of the call);
  // `reply` gets the answer frame, now or later. A body that does not decode
  // as its opcode says is refused with an error (the caller closes the
  // connection) and `reply` is not called.
  Status handle(uint16_t opcode, uint32_t request_id, std::string_view body, Reply reply);

  // Every shard's store (each used only on its own shard), for subscriptions.
  const Sharded<StreamStore>* stores() const { return stores_; }

 private:
  struct Remote;
  // Runs on the owning shard's router, with that shard's store; false (and
  // `reply` dropped unanswered) if the body does not decode.
  bool execute(uint16_t opcode, uint32_t request_id, std::string_view body, Reply reply);
  void list_streams(uint32_t request_id, std::string_view body, Reply reply);
  // Bucket requests (false: not a bucket opcode). The body decoded already.
  bool handle_bucket(uint16_t opcode, uint32_t request_id, std::string_view body, Reply& reply);
  void mutate_bucket(uint16_t opcode, uint32_t request_id, std::string_view body, Reply reply);
  StreamStore& local_store() const { return stores_->local(); }

  Reactor& reactor_;
  const Sharded<StreamStore>* stores_;
  const Sharded<Router>* routers_ = nullptr;
  BucketRegistry* buckets_;
  // The request path's objects, reused (core/recycler.h): no allocation per
  // request once warm. Operations run here take from calls_; requests this
  // shard sent to another take from remotes_.
  Recycler<RouterCall> calls_;
  Recycler<Remote> remotes_;
};

}  // namespace runnel
