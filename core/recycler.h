#pragma once
// Recycler<T>: a shard's free list of Ts for the request path. take()
// hands out a T kept from an earlier use (its strings keep their capacity)
// or, while the list is empty, a new one; give_back() returns it. After
// warm-up the hot path allocates nothing, and memory is bounded by the most
// Ts ever in use at once. The caller sets every field it uses after take().
// One shard's: never shared between threads.

#include <cstddef>
#include <memory>
#include <vector>

#include "core/assert.h"

namespace runnel {

template <typename T>
class Recycler {
 public:
  Recycler() = default;
  Recycler(const Recycler&) = delete;
  Recycler& operator=(const Recycler&) = delete;

  T* take() {
    in_use_++;
    if (free_.empty()) return new T();
    T* t = free_.back().release();
    free_.pop_back();
    return t;
  }
  void give_back(T* t) {
    RUNNEL_ASSERT(in_use_ > 0);
    in_use_--;
    free_.emplace_back(t);
  }
  size_t in_use() const { return in_use_; }
  size_t kept() const { return free_.size(); }

 private:
  std::vector<std::unique_ptr<T>> free_;
  size_t in_use_ = 0;  // Taken and not given back (a T lost to a forced shutdown stays counted).
};

}  // namespace runnel
