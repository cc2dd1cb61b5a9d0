#pragma once
// ShardSet: starts and stops the shards. One thread per shard, pinned to a
// core, each running its own Reactor. Built on the main thread at startup;
// after start() the main thread only waits (for a signal or a shard's exit),
// asks for a stop, and joins.

#include <functional>
#include <memory>
#include <thread>
#include <vector>

#include "core/reactor.h"
#include "core/status.h"

namespace runnel {

struct ShardSetOptions {
  int shards = 1;
  uint32_t ring_entries = 1024;
  uint32_t message_queue_capacity = 4096;
  uint32_t shutdown_timeout_ms = 5000;
  uint32_t message_backlog_max = 65536;  // Per shard: see ReactorOptions.
  bool pin_threads = true;
};

class ShardSet {
 public:
  explicit ShardSet(const ShardSetOptions& options);
  ~ShardSet();  // Stops and joins if still running.
  ShardSet(const ShardSet&) = delete;
  ShardSet& operator=(const ShardSet&) = delete;

  // Number of CPUs this process may run on: the default shard count.
  static int available_cores();

  // Starts every shard. Each thread creates its reactor, waits until all
  // reactors exist (so every ring is known before a message flows), runs
  // init(reactor) on its own thread, then loops. Returns after every shard
  // ran init, or with the first error if a reactor could not be created or
  // an init failed — in which case every shard has already been stopped and
  // joined.
  // `fini`, if given, runs on each shard thread after its loop has left and
  // its ring is closed: the place to destroy what init created there.
  Status start(std::function<Status(Reactor&)> init, std::function<void(Reactor&)> fini = {});

  // Any thread: every shard runs its stop hooks, drains, and leaves its loop.
  void request_stop();

  // Blocks until every shard thread has exited, then destroys the reactors.
  void join();

  // An eventfd that becomes readable when any shard thread exits, so the
  // main thread can wait on signals and shard exits together.
  int exit_fd() const { return exit_fd_; }

  int shard_count() const { return options_.shards; }
  // Valid between start() and join(). From non-shard threads only
  // post_external() and request_stop() may be called on it.
  Reactor& reactor(int shard) { return *reactors_[static_cast<size_t>(shard)]; }

 private:
  void shard_main(int shard, const std::function<Status(Reactor&)>& init,
                  const std::function<void(Reactor&)>& fini);

  ShardSetOptions options_;
  std::unique_ptr<ShardMesh> mesh_;
  std::vector<std::unique_ptr<Reactor>> reactors_;
  std::vector<std::thread> threads_;
  int exit_fd_ = -1;
  bool joined_ = false;

  struct Startup;
  std::unique_ptr<Startup> startup_;
  std::function<void(Reactor&)> fini_;  // Outlives the threads that call it.
};

}  // namespace runnel
