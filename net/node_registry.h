#pragma once
// NodeRegistry: the node's bucket and access-token mutations. Buckets and
// tokens are not a shard's: shard 0 is their home — its StreamStore writes
// every such mutation into its log as a catalog record, durably — and every
// shard's store keeps a replica of both tables, so that creating a stream,
// answering GET_BUCKET / LIST_BUCKETS or checking a token needs no hop. The
// registry lives on shard 0 and runs one mutation at a time, in arrival
// order:
//
//   bucket create, reconfigure; token issue, revoke: write at the home;
//     once durable, apply on every other shard by message; answer once
//     every replica has it (so a revoked token fails on every shard from
//     the moment the revoke is answered).
//   delete: mark the bucket "deleting" on every shard (a stream create in
//     it then fails there) and learn whether any shard holds, or is
//     creating, a stream in it; if none, write the delete at the home, then
//     drop it from every replica and unmark; otherwise unmark and refuse.
//
// So an acknowledged mutation is durable and visible on every shard, and no
// stream can appear in a bucket whose delete was acknowledged. Shards share
// nothing: replicas change only by message on their own shard. Built by
// Server before the shards start; used only on shard 0.

#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/inline_function.h"
#include "core/reactor.h"
#include "core/sharded.h"
#include "storage/stream_store.h"

namespace runnel {

class NodeRegistry {
 public:
  enum class Op { kCreate, kReconfigure, kDelete, kIssueToken, kRevokeToken };
  // Runs on shard 0 with the bucket's new state (delete: as it was).
  using Done = InlineFunction<void(Result<BucketInfo>), 40>;
  // Runs on shard 0 with the token (revoke: as it was).
  using TokenDone = InlineFunction<void(Result<TokenEntry>), 40>;
  // Mutations waiting beyond this are refused (kOverloaded).
  static constexpr size_t kQueuedMax = 1024;
  static constexpr int kHomeShard = 0;

  // `stores[s]` is shard s's store, used only on shard s.
  explicit NodeRegistry(const Sharded<StreamStore>* stores);
  NodeRegistry(const NodeRegistry&) = delete;
  NodeRegistry& operator=(const NodeRegistry&) = delete;

  // On shard 0: queues one mutation (config unused by kDelete).
  void submit(Op op, std::string_view name, const BucketConfig& config, Done done);
  // On shard 0: issues `token` (its id free, its hash set) or revokes the
  // token `token.info.id`.
  void submit_token(Op op, const TokenEntry& token, TokenDone done);

  // On shard 0, at startup once every shard has recovered: copies the
  // home's table to every other shard's replica, then runs `then` here.
  void replicate_all(std::function<void()> then);

 private:
  struct Request {
    Op op;
    std::string name;
    BucketConfig config;
    Done done;
    TokenEntry token;  // Token ops.
    TokenDone token_done;
  };
  void run_next();
  void finish(Request* request, Result<BucketInfo> result);
  void finish_token(Request* request, Result<TokenEntry> result);
  void pop(Request* request);  // Ends the request at the front; starts the next.
  void run_token(Request* request);
  // Applies `mutation` (durable at the home) to every replica; unmarks the
  // bucket's deletion too when `unmark`. Then `then`, on shard 0.
  void broadcast(const CatalogMutation& mutation, bool unmark, std::function<void()> then);
  void unmark_everywhere(const std::string& name, std::function<void()> then);
  void delete_bucket(Request* request);
  StreamStore& home() const;

  const Sharded<StreamStore>* stores_;
  std::deque<std::unique_ptr<Request>> queue_;
  bool running_ = false;
};

}  // namespace runnel
