#pragma once
// Sharded<T>: one T per shard, each reachable only from its own shard.
// Shard ownership is the design (docs/ARCHITECTURE.md), and this is where it
// is enforced rather than assumed: local() asserts the calling thread is a
// shard with a T installed and hands out that shard's T; work for another
// shard's T goes through the mailbox with invoke_on(), which runs it there.
// There is no accessor for another shard's T.
//
// Lifecycle: each shard installs its T during its own startup (install()),
// before the shards start serving, and uninstalls it while stopping; the
// Ts are owned elsewhere (the shard's services) and outlive every use.

#include <cstddef>
#include <utility>
#include <vector>

#include "core/assert.h"
#include "core/reactor.h"

namespace runnel {

template <typename T>
class Sharded {
 public:
  explicit Sharded(size_t shards) : items_(shards, nullptr) {}
  Sharded(const Sharded&) = delete;
  Sharded& operator=(const Sharded&) = delete;

  // On shard `Reactor::current().shard()`, during its startup / shutdown.
  void install(T* item) {
    T*& slot = items_.at(static_cast<size_t>(Reactor::current().shard()));
    RUNNEL_ASSERT(slot == nullptr);
    RUNNEL_ASSERT(item != nullptr);
    slot = item;
  }
  void uninstall() { items_.at(static_cast<size_t>(Reactor::current().shard())) = nullptr; }

  // The calling shard's T. Asserts: called on a shard thread that installed one.
  T& local() const {
    T* item = items_.at(static_cast<size_t>(Reactor::current().shard()));
    RUNNEL_ASSERT(item != nullptr);
    return *item;
  }

  // Runs fn(T&) on `shard`'s thread, with that shard's T: by message from
  // another shard, posted to run later on this one. `fn` must fit a Task
  // with this pointer beside it (a few pointers of captures).
  template <typename Fn>
  void invoke_on(int shard, Fn fn) const {
    Reactor::current().send(shard, [this, fn = std::move(fn)]() mutable { fn(local()); });
  }

  size_t shard_count() const { return items_.size(); }

 private:
  std::vector<T*> items_;  // items_[s] is touched only on shard s (after startup).
};

}  // namespace runnel
