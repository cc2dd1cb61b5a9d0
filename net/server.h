#pragma once
// Server: runneld as one object. Prepares the data directory, binds every
// port (one SO_REUSEPORT socket per shard and port), starts the shards with
// their services, and reports when the node is ready. Built and driven by the
// main thread; everything it starts runs on the shards.
//
// Startup order: lock the data directory, bind (so a busy port fails before
// any thread starts), start shards, each recovers its log, mark ready; then
// shard 0 copies its buckets to every shard and only then do shards accept
// (connections made meanwhile wait in the listen backlog).

#include <memory>
#include <vector>

#include "core/config.h"
#include "core/shard_set.h"
#include "net/admin.h"
#include "net/binary_server.h"
#include "net/http_server.h"
#include "net/node_registry.h"
#include "net/socket.h"
#include "proto/tls/tls_session.h"
#include "storage/stream_store.h"
#include "storage/uring_file_io.h"

namespace runnel {

class Server {
 public:
  // Starts everything; returns once the node is ready, or the first error.
  static Result<std::unique_ptr<Server>> start(const Config& config);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  const HostPort& binary_address() const { return binary_address_; }
  const HostPort& admin_address() const { return admin_address_; }
  int shard_count() const { return shards_->shard_count(); }

  // The line scripts wait for: "runneld ready binary=HOST:PORT admin=HOST:PORT".
  std::string ready_line() const;

  // Main thread: reads the TLS certificate, key and client CA again and
  // hands them to every shard for its new connections (open ones keep
  // theirs). An error leaves the old ones in use. OK if TLS is off.
  Status reload_tls();

  // Any thread: stop accepting, finish in-flight work, flush, leave.
  void request_stop();
  // Blocks until every shard has left.
  void join();
  // Readable when a shard has left (requested or not).
  int exit_fd() const { return shards_->exit_fd(); }

 private:
  Server() = default;

  NodeInfo node_;
  UniqueFd data_dir_lock_;
  std::vector<UniqueFd> binary_listeners_;
  std::vector<UniqueFd> admin_listeners_;
  HostPort binary_address_;
  HostPort admin_address_;
  std::unique_ptr<ShardSet> shards_;
  // Per shard, created and destroyed on that shard.
  struct ShardServices {
    std::unique_ptr<UringFileIo> io;
    std::unique_ptr<StreamStore> store;
    std::unique_ptr<HttpServer> admin;
    std::unique_ptr<Subscriptions> subscriptions;
    std::unique_ptr<Router> router;
    std::unique_ptr<BinaryServer> binary;
  };
  std::vector<ShardServices> shard_services_;
  std::unique_ptr<Sharded<StreamStore>> stores_;  // Each shard's store, reached only from its shard.
  std::unique_ptr<Sharded<Router>> routers_;      // Each shard's router, likewise.
  std::unique_ptr<Sharded<Subscriptions>> subscriptions_;  // Each shard's subscriptions, likewise.
  std::unique_ptr<NodeRegistry> buckets_;                  // Used only on shard 0; outlives the shards.
};

}  // namespace runnel
