#include "net/server.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "core/log.h"

namespace runnel {
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
  server->shards_ = std::make_unique<ShardSet>(options);
  server->admin_servers_.resize(static_cast<size_t>(shards));

  HttpServerOptions admin_options;
  admin_options.connections_max = config.admin_connections_max;
  admin_options.limits.parser.header_bytes_max = config.admin_header_bytes_max;
  admin_options.limits.parser.body_bytes_max = config.admin_body_bytes_max;
  admin_options.limits.request_timeout_ms = config.admin_request_timeout_ms;
  admin_options.limits.idle_timeout_ms = config.admin_idle_timeout_ms;

  Server* s = server.get();
  Status started = s->shards_->start(
      [s, admin_options](Reactor& reactor) {
        const auto shard = static_cast<size_t>(reactor.shard());
        s->admin_servers_[shard] = std::make_unique<HttpServer>(
            reactor, std::move(s->admin_listeners_[shard]), admin_options, make_admin_handler(reactor, s->node_));
        s->admin_servers_[shard]->start();
        return Status::ok();
      },
      [s](Reactor& reactor) { s->admin_servers_[static_cast<size_t>(reactor.shard())].reset(); });
  if (!started) return started;

  log_info("runneld {} serving with {} shards: binary={} admin={} data_dir={}", s->node_.version, shards,
           s->binary_address_.to_string(), s->admin_address_.to_string(), config.data_dir);
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
  // Refuse new binary connections at once; the shards drain the rest.
  binary_listeners_.clear();
  shards_->request_stop();
}

void Server::join() { shards_->join(); }

}  // namespace runnel
