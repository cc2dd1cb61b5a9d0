#pragma once
// gather_from_shards: ask every shard for something it owns and collect the
// answers on the asking shard — the way a request that spans shards (a
// metrics scrape, a listing) is served without sharing memory.
//
// `produce` runs on each shard, on that shard's thread, and returns a value
// that is moved back by message; `done` runs on the asking shard with all
// values in shard order. The asking reactor is held meanwhile, so shutdown
// waits for the answer. Allocates per call: for control-plane requests, not
// the data path.

#include <functional>
#include <memory>
#include <optional>
#include <utility>
#include <vector>

#include "core/reactor.h"

namespace runnel {

template <typename T>
void gather_from_shards(Reactor& here, std::function<T(Reactor&)> produce, std::function<void(std::vector<T>)> done) {
  struct Gather {
    std::function<T(Reactor&)> produce;
    std::function<void(std::vector<T>)> done;
    std::vector<std::optional<T>> results;
    int remaining;
    int origin;
  };
  const int shards = here.shard_count();
  auto* gather = new Gather{std::move(produce), std::move(done), std::vector<std::optional<T>>(static_cast<size_t>(shards)),
                            shards, here.shard()};
  here.hold();
  for (int s = 0; s < shards; s++) {
    here.send(s, [gather, s] {
      Reactor& there = Reactor::current();
      auto* value = new T(gather->produce(there));
      there.send(gather->origin, [gather, value, s] {
        gather->results[static_cast<size_t>(s)].emplace(std::move(*value));
        delete value;
        if (--gather->remaining > 0) return;
        std::vector<T> values;
        values.reserve(gather->results.size());
        for (auto& r : gather->results) values.push_back(std::move(*r));
        std::unique_ptr<Gather> owned(gather);
        owned->done(std::move(values));
        Reactor::current().release();
      });
    });
  }
}

}  // namespace runnel
