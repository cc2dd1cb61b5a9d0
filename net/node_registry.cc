#include "net/node_registry.h"

#include <fmt/format.h>

#include <cstdint>

#include "core/log.h"
#include "core/shard_gather.h"

namespace runnel {

NodeRegistry::NodeRegistry(const Sharded<StreamStore>* stores) : stores_(stores) {}

StreamStore& NodeRegistry::home() const {
  RUNNEL_ASSERT(Reactor::current().shard() == kHomeShard);
  StreamStore* store = &stores_->local();
  RUNNEL_ASSERT(store->bucket_home());
  return *store;
}

void NodeRegistry::submit(Op op, std::string_view name, const BucketConfig& config, Done done) {
  RUNNEL_ASSERT(Reactor::current().shard() == kHomeShard);
  if (queue_.size() >= kQueuedMax) {
    return done(Status(ErrorCode::kOverloaded, "too many bucket changes waiting; retry later"));
  }
  queue_.push_back(std::unique_ptr<Request>(new Request{op, std::string(name), config, std::move(done), {}, {}}));
  run_next();
}

void NodeRegistry::submit_token(Op op, const TokenEntry& token, TokenDone done) {
  RUNNEL_ASSERT(Reactor::current().shard() == kHomeShard);
  RUNNEL_ASSERT(op == Op::kIssueToken || op == Op::kRevokeToken);
  if (queue_.size() >= kQueuedMax) {
    return done(Status(ErrorCode::kOverloaded, "too many bucket and token changes waiting; retry later"));
  }
  queue_.push_back(std::unique_ptr<Request>(new Request{op, token.info.id, {}, {}, token, std::move(done)}));
  run_next();
}

void NodeRegistry::run_token(Request* request) {
  auto written = [this, request](Result<TokenEntry> r) {
    if (!r) return finish_token(request, std::move(r));
    CatalogMutation m;
    m.op = request->op == Op::kIssueToken ? CatalogOp::kTokenIssue : CatalogOp::kTokenRevoke;
    m.token = *r;
    broadcast(m, false, [this, request, token = *r] { finish_token(request, token); });
  };
  if (request->op == Op::kIssueToken) return home().issue_token(request->token, std::move(written));
  home().revoke_token(request->token.info.id, std::move(written));
}

void NodeRegistry::run_next() {
  if (running_ || queue_.empty()) return;
  running_ = true;
  Request* request = queue_.front().get();
  StreamStore& store = home();
  switch (request->op) {
    case Op::kCreate:
    case Op::kReconfigure: {
      auto written = [this, request](Result<BucketInfo> r) {
        if (!r) return finish(request, std::move(r));
        CatalogMutation m;
        m.op = request->op == Op::kCreate ? CatalogOp::kBucketCreate : CatalogOp::kBucketReconfigure;
        m.bucket = *r;
        broadcast(m, false, [this, request, info = *r] { finish(request, info); });
      };
      if (request->op == Op::kCreate) return store.create_bucket(request->name, request->config, std::move(written));
      return store.reconfigure_bucket(request->name, request->config, std::move(written));
    }
    case Op::kDelete:
      return delete_bucket(request);
    case Op::kIssueToken:
    case Op::kRevokeToken:
      return run_token(request);
  }
}

void NodeRegistry::pop(Request* request) {
  RUNNEL_ASSERT(!queue_.empty() && queue_.front().get() == request);
  queue_.front().release();  // The caller owns it now.
  queue_.pop_front();
  running_ = false;
  // The next one from the loop, not from inside this one's answer.
  if (!queue_.empty()) Reactor::current().post([this] { run_next(); });
}

void NodeRegistry::finish(Request* request, Result<BucketInfo> result) {
  pop(request);
  std::unique_ptr<Request> owned(request);
  owned->done(std::move(result));
}

void NodeRegistry::finish_token(Request* request, Result<TokenEntry> result) {
  pop(request);
  std::unique_ptr<Request> owned(request);
  owned->token_done(std::move(result));
}

void NodeRegistry::broadcast(const CatalogMutation& mutation, bool unmark, std::function<void()> then) {
  auto shared = std::make_shared<const CatalogMutation>(mutation);
  const Sharded<StreamStore>* stores = stores_;
  gather_from_shards<int>(
      Reactor::current(),
      [shared, unmark, stores](Reactor& there) {
        StreamStore& store = stores->local();
        if (!store.bucket_home()) {
          // Replicas follow the home; one that cannot is a bug, logged loudly.
          if (Status s = store.apply_node_replica(*shared); !s) {
            log_error("bucket/token replica on shard {} diverged applying '{}': {}", there.shard(),
                      is_token_op(shared->op) ? shared->token.info.id : shared->bucket.name, s.to_string());
          }
        }
        if (unmark) store.unmark_bucket_deleting(shared->bucket.name);
        return 0;
      },
      [then = std::move(then)](std::vector<int>) { then(); });
}

void NodeRegistry::unmark_everywhere(const std::string& name, std::function<void()> then) {
  auto shared = std::make_shared<const std::string>(name);
  const Sharded<StreamStore>* stores = stores_;
  gather_from_shards<int>(
      Reactor::current(),
      [shared, stores](Reactor&) {
        stores->local().unmark_bucket_deleting(*shared);
        return 0;
      },
      [then = std::move(then)](std::vector<int>) { then(); });
}

void NodeRegistry::delete_bucket(Request* request) {
  if (Status s = validate_bucket_name(request->name); !s) return finish(request, std::move(s));
  if (home().find_bucket(request->name) == nullptr) {
    return finish(request, Status(ErrorCode::kNotFound, fmt::format("no bucket '{}'", request->name)));
  }
  // Mark first, then count: a stream create that comes after the mark on
  // its shard fails, one before it is counted (created or in flight).
  auto name = std::make_shared<const std::string>(request->name);
  const Sharded<StreamStore>* stores = stores_;
  gather_from_shards<int>(
      Reactor::current(), [name, stores](Reactor&) { return stores->local().mark_bucket_deleting(*name) ? 1 : 0; },
      [this, request](std::vector<int> holding) {
        int shards_holding = 0;
        for (int h : holding) shards_holding += h;
        if (shards_holding > 0) {
          return unmark_everywhere(request->name, [this, request] {
            // kAlreadyExists: streams exist in it (PROTOCOL.md, "Errors").
            finish(request, Status(ErrorCode::kAlreadyExists,
                                   fmt::format("bucket '{}' still holds streams; delete them first", request->name)));
          });
        }
        home().delete_bucket(request->name, [this, request](Result<BucketInfo> r) {
          if (!r) {
            return unmark_everywhere(request->name, [this, request, status = r.status()] { finish(request, status); });
          }
          CatalogMutation m;
          m.op = CatalogOp::kBucketDelete;
          m.bucket = *r;
          broadcast(m, true, [this, request, info = *r] { finish(request, info); });
        });
      });
}

void NodeRegistry::replicate_all(std::function<void()> then) {
  struct Tables {
    std::vector<BucketInfo> buckets;
    std::vector<TokenEntry> tokens;
  };
  auto tables = std::make_shared<Tables>();
  for (const BucketInfo* b : home().catalog().list_buckets("", "", SIZE_MAX)) tables->buckets.push_back(*b);
  for (const TokenEntry* t : home().catalog().list_tokens("", "", SIZE_MAX)) tables->tokens.push_back(*t);
  log_info("{} buckets and {} access tokens recovered; copying them to every shard", tables->buckets.size(),
           tables->tokens.size());
  std::shared_ptr<const Tables> shared = std::move(tables);
  const Sharded<StreamStore>* stores = stores_;
  gather_from_shards<int>(
      Reactor::current(),
      [shared, stores](Reactor&) {
        StreamStore& store = stores->local();
        if (!store.bucket_home()) {
          store.replace_buckets(shared->buckets);
          store.replace_tokens(shared->tokens);
        }
        return 0;
      },
      [then = std::move(then)](std::vector<int>) { then(); });
}

}  // namespace runnel
