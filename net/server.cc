#include "net/server.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <future>
#include <memory>

#include "core/log.h"
#include "proto/limits.h"

namespace runnel {

// The config keys' defaults and upper bounds (core/config.h, which cannot
// see proto/) are the wire's absolute maxima.
static_assert(kConfigBatchRecordsMax == kBatchRecordsMax);
static_assert(kConfigBatchBytesMax == kBatchBytesMax);
static_assert(kConfigRecordBytesMax == kRecordBytesMax);

namespace {

constexpr int kListenBacklog = 1024;

// Creates the data directory and takes an exclusive lock on it, so that two
// servers can never write the same log.
Result<UniqueFd> lock_data_dir(const std::string& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return Status(ErrorCode::kIoError, fmt::format("cannot create data dir '{}': {}", dir, ec.message()));
  std::string path = dir + "/LOCK";
  UniqueFd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644));
  if (!fd.valid()) return Status(ErrorCode::kIoError, fmt::format("cannot open '{}': {}", path, std::strerror(errno)));
  if (::flock(fd.get(), LOCK_EX | LOCK_NB) != 0) {
    if (errno == EWOULDBLOCK) {
      return Status(ErrorCode::kUnavailable, fmt::format("data dir '{}' is in use by another runneld", dir));
    }
    return Status(ErrorCode::kIoError, fmt::format("cannot lock '{}': {}", path, std::strerror(errno)));
  }
  return fd;
}

}  // namespace

Result<std::unique_ptr<Server>> Server::start(const Config& config) {
  std::unique_ptr<Server> server(new Server());
  server->node_.config = config;
  server->node_.version = RUNNEL_VERSION;
  const int shards = config.shards == 0 ? ShardSet::available_cores() : static_cast<int>(config.shards);

  auto lock = lock_data_dir(config.data_dir);
  if (!lock) return lock.status();
  server->data_dir_lock_ = std::move(*lock);
  std::shared_ptr<const TlsContext> tls;
  if (!config.tls_cert_file.empty()) {
    auto context = TlsContext::for_server(config.tls_cert_file, config.tls_key_file, config.tls_client_ca_file);
    if (!context) return context.status();
    tls = std::move(*context);
  }

  auto binary = listen_reuseport_group(config.listen, shards, kListenBacklog);
  if (!binary) return Status(binary.status().code(), "server.listen: " + binary.status().message());
  auto admin = listen_reuseport_group(config.admin_listen, shards, kListenBacklog);
  if (!admin) return Status(admin.status().code(), "admin.listen: " + admin.status().message());
  server->binary_listeners_ = std::move(*binary);
  server->admin_listeners_ = std::move(*admin);
  server->binary_address_ = bound_address(server->binary_listeners_[0].get()).value();
  server->admin_address_ = bound_address(server->admin_listeners_[0].get()).value();

  ShardSetOptions options;
  options.shards = shards;
  options.ring_entries = config.reactor_ring_entries;
  options.message_queue_capacity = config.reactor_message_queue_capacity;
  options.shutdown_timeout_ms = config.reactor_shutdown_timeout_ms;
  options.message_backlog_max = config.reactor_message_backlog_max;
  server->shards_ = std::make_unique<ShardSet>(options);
  server->shard_services_.resize(static_cast<size_t>(shards));

  HttpServerOptions admin_options;
  admin_options.connections_max = config.admin_connections_max;
  admin_options.limits.parser.header_bytes_max = config.admin_header_bytes_max;
  admin_options.limits.parser.body_bytes_max = config.admin_body_bytes_max;
  admin_options.limits.request_timeout_ms = config.admin_request_timeout_ms;
  admin_options.limits.idle_timeout_ms = config.admin_idle_timeout_ms;
  admin_options.tls = tls;

  BinaryServerOptions binary_options;
  binary_options.connections_max = config.connections_max;
  binary_options.limits.frame_bytes_max = config.frame_bytes_max;
  binary_options.limits.requests_in_flight_max = config.requests_in_flight_max;
  binary_options.limits.subscriptions_max = config.subscriptions_max;
  binary_options.limits.output_bytes_max = config.output_bytes_max;
  binary_options.limits.heartbeat_ms = config.heartbeat_ms;
  binary_options.server_version = RUNNEL_VERSION;
  binary_options.auth = config.auth_enabled;
  binary_options.tls = tls;
  server->stores_ = std::make_unique<Sharded<StreamStore>>(static_cast<size_t>(shards));
  server->routers_ = std::make_unique<Sharded<Router>>(static_cast<size_t>(shards));
  server->subscriptions_ = std::make_unique<Sharded<Subscriptions>>(static_cast<size_t>(shards));
  server->buckets_ = std::make_unique<NodeRegistry>(server->stores_.get());

  Server* s = server.get();
  Status started = s->shards_->start(
      [s, admin_options, binary_options, &config](Reactor& reactor) {
        const auto shard = static_cast<size_t>(reactor.shard());
        ShardServices& services = s->shard_services_[shard];
        // Recovery runs here, on the shard, before anything is served.
        services.io = std::make_unique<UringFileIo>(&reactor);
        LogOptions log_options;
        log_options.dir = fmt::format("{}/shard-{}", config.data_dir, shard);
        log_options.segment_bytes = uint64_t{config.storage_segment_mib} << 20;
        log_options.flush_bytes_max = config.storage_flush_bytes_max;
        log_options.flushes_in_flight_max = config.storage_flushes_in_flight_max;
        log_options.write_buffers = config.storage_write_buffers;
        log_options.cache_bytes = uint64_t{config.storage_cache_mib} << 20;
        log_options.compact_live_percent = config.storage_compact_live_percent;
        log_options.append_limits.records_max = config.batch_records_max;
        log_options.append_limits.payload_bytes_max = config.batch_bytes_max;
        log_options.append_limits.record_bytes_max = config.record_bytes_max;
        // Shard 0's log holds the buckets; the other shards get a replica (below).
        auto store = StreamStore::open(reactor, *services.io, log_options, shard == NodeRegistry::kHomeShard);
        if (!store) {
          return Status(store.status().code(), fmt::format("shard {} log: {}", shard, store.status().message()));
        }
        services.store = std::move(*store);
        StreamStore* opened = services.store.get();
        reactor.metrics().gauge_callback("runnel_buckets", "Buckets in this shard's copy of the bucket table.",
                                         [opened] { return static_cast<double>(opened->catalog().bucket_count()); });
        services.store->start_retention(config.storage_retention_interval_ms);
        s->stores_->install(services.store.get());
        services.subscriptions = std::make_unique<Subscriptions>(reactor, s->stores_.get(), s->subscriptions_.get());
        s->subscriptions_->install(services.subscriptions.get());
        services.router = std::make_unique<Router>(reactor, s->stores_.get(), s->buckets_.get());
        services.router->set_peers(s->routers_.get(), s->subscriptions_.get());
        s->routers_->install(services.router.get());
        // The admin port serves /health at once; its REST API waits for ready.
        services.admin = std::make_unique<HttpServer>(reactor, std::move(s->admin_listeners_[shard]), admin_options,
                                                      make_admin_handler(reactor, s->node_, *services.router));
        services.admin->start();
        // Accepting starts once every shard has recovered (below): a request
        // may need any shard's store.
        services.binary = std::make_unique<BinaryServer>(reactor, std::move(s->binary_listeners_[shard]),
                                                         binary_options, *services.router);
        return Status::ok();
      },
      [s](Reactor& reactor) {
        ShardServices& services = s->shard_services_[static_cast<size_t>(reactor.shard())];
        services.binary.reset();
        if (services.router) s->routers_->uninstall();
        services.router.reset();
        services.admin.reset();
        if (services.subscriptions) s->subscriptions_->uninstall();
        services.subscriptions.reset();
        if (services.store) s->stores_->uninstall();
        services.store.reset();
        services.io.reset();
      });
  if (!started) return started;
  // Every shard has recovered. Shard 0 copies its buckets to the others'
  // replicas; only then does any shard accept (a request may need any
  // shard's replica). Connections that arrive meanwhile wait in the backlog.
  // Ready (and the admin REST API on) only once every replica has them.
  struct Opening {
    Server* server;
    int shards;
    bool auth;
    std::string root_token_path;
    std::promise<Status> done;
  };
  auto opening = std::make_shared<Opening>(
      Opening{s, shards, config.auth_enabled, config.data_dir + "/" + std::string(auth::kRootTokenFile), {}});
  std::future<Status> replicated_done = opening->done.get_future();
  s->shards_->reactor(NodeRegistry::kHomeShard).post_external([opening] {
    opening->server->buckets_->replicate_all([opening] {
      auto serve = [opening] {
        Server* node = opening->server;
        for (int shard = 0; shard < opening->shards; shard++) {
          Reactor::current().send(shard,
                                  [node, shard] { node->shard_services_[static_cast<size_t>(shard)].binary->start(); });
        }
        opening->done.set_value(Status::ok());
      };
      if (!opening->auth || opening->server->stores_->local().catalog().token_count() > 0) return serve();
      // Access control on and no token yet: the root token, once. Its file
      // is written before the token is durable, so a crash between the two
      // leaves a file whose token never came to be — and the next start
      // makes a new root — never a root nobody holds.
      TokenEntry root;
      root.info.id = "root";
      root.info.ops = kOpsAll;
      root.info.created_ms = static_cast<uint64_t>(Reactor::clock_realtime_ms());
      auth::NewSecret secret = auth::make_secret(root.info.id);
      root.secret_hash = secret.hash;
      if (Status w = auth::write_secret_file(opening->root_token_path, secret.token); !w) {
        return opening->done.set_value(w);
      }
      opening->server->buckets_->submit_token(
          NodeRegistry::Op::kIssueToken, root, [opening, serve](Result<TokenEntry> r) {
            if (!r) {
              return opening->done.set_value(
                  Status(r.status().code(), "issuing the root token: " + r.status().message()));
            }
            log_warn(
                "access control is on and no token existed: created token 'root'; its secret is in {} "
                "(mode 0600)",
                opening->root_token_path);
            serve();
          });
    });
  });
  if (Status ready = replicated_done.get(); !ready) return ready;

  log_info("runneld {} serving with {} shards: binary={} admin={} data_dir={} tls={} auth={}", s->node_.version, shards,
           s->binary_address_.to_string(), s->admin_address_.to_string(), config.data_dir,
           tls ? (config.tls_client_ca_file.empty() ? "on" : "on, client certificates required") : "off",
           config.auth_enabled ? "on" : "off");
  s->node_.ready.store(true, std::memory_order_release);
  return server;
}

Server::~Server() {
  if (shards_) {
    shards_->request_stop();
    shards_->join();
  }
}

std::string Server::ready_line() const {
  return fmt::format("runneld ready binary={} admin={}", binary_address_.to_string(), admin_address_.to_string());
}

void Server::request_stop() {
  // Each shard stops accepting, ends subscriptions, answers what is in
  // flight and closes its connections (net/acceptor.h); then the shards leave.
  binary_listeners_.clear();  // Any listener not yet handed to its shard.
  shards_->request_stop();
}

void Server::join() { shards_->join(); }

Status Server::reload_tls() {
  const Config& config = node_.config;
  if (config.tls_cert_file.empty()) return Status::ok();
  auto context = TlsContext::for_server(config.tls_cert_file, config.tls_key_file, config.tls_client_ca_file);
  if (!context) return context.status();
  std::shared_ptr<const TlsContext> shared = std::move(*context);
  for (int shard = 0; shard < shards_->shard_count(); shard++) {
    shards_->reactor(shard).post_external([this, shard, shared] {
      ShardServices& services = shard_services_[static_cast<size_t>(shard)];
      if (services.binary) services.binary->set_tls_context(shared);
      if (services.admin) services.admin->set_tls_context(shared);
    });
  }
  log_info("TLS certificate reloaded from {}", config.tls_cert_file);
  return Status::ok();
}

}  // namespace runnel
