#pragma once
// SpscQueue<T>: a bounded, lock-free, single-producer single-consumer ring.
// Shards talk only through these: the queue from shard A to shard B is pushed
// only on A's thread and popped only on B's. Capacity is a power of two fixed
// at construction (the only allocation); a full queue refuses the push and the
// producer decides what backpressure means.
//
// Each side caches the other side's index so the common case touches only its
// own cache line; indices are free-running 64-bit counters (no wrap in
// practice).

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <new>
#include <utility>

#include "core/assert.h"

namespace runnel {

inline constexpr size_t kCacheLineBytes = 64;

template <typename T>
class SpscQueue {
 public:
  explicit SpscQueue(size_t capacity)
      : capacity_(capacity), mask_(capacity - 1), slots_(std::make_unique<Slot[]>(capacity)) {
    RUNNEL_ASSERT(capacity >= 2);
    RUNNEL_ASSERT((capacity & (capacity - 1)) == 0);
  }
  SpscQueue(const SpscQueue&) = delete;
  SpscQueue& operator=(const SpscQueue&) = delete;

  ~SpscQueue() {
    T item;
    while (try_pop(item)) {
    }
  }

  // Producer side. Returns false (and leaves `item` untouched) when full.
  bool try_push(T& item) {
    const uint64_t tail = producer_.tail.load(std::memory_order_relaxed);
    if (tail - producer_.head_cache >= capacity_) {
      producer_.head_cache = consumer_.head.load(std::memory_order_acquire);
      if (tail - producer_.head_cache >= capacity_) return false;
    }
    ::new (slots_[tail & mask_].bytes) T(std::move(item));
    producer_.tail.store(tail + 1, std::memory_order_release);
    return true;
  }

  // Consumer side. Returns false when empty.
  bool try_pop(T& out) {
    const uint64_t head = consumer_.head.load(std::memory_order_relaxed);
    if (head == consumer_.tail_cache) {
      consumer_.tail_cache = producer_.tail.load(std::memory_order_acquire);
      if (head == consumer_.tail_cache) return false;
    }
    T* slot = std::launder(reinterpret_cast<T*>(slots_[head & mask_].bytes));
    out = std::move(*slot);
    slot->~T();
    consumer_.head.store(head + 1, std::memory_order_release);
    return true;
  }

  // Either side; a snapshot that may be stale by the time it is used.
  bool empty_approx() const {
    return producer_.tail.load(std::memory_order_acquire) == consumer_.head.load(std::memory_order_acquire);
  }
  size_t size_approx() const {
    return producer_.tail.load(std::memory_order_acquire) - consumer_.head.load(std::memory_order_acquire);
  }
  size_t capacity() const { return capacity_; }

 private:
  struct Slot {
    alignas(T) std::byte bytes[sizeof(T)];
  };
  struct alignas(kCacheLineBytes) ProducerSide {
    std::atomic<uint64_t> tail{0};
    uint64_t head_cache = 0;
  };
  struct alignas(kCacheLineBytes) ConsumerSide {
    std::atomic<uint64_t> head{0};
    uint64_t tail_cache = 0;
  };

  const size_t capacity_;
  const size_t mask_;
  std::unique_ptr<Slot[]> slots_;
  ProducerSide producer_;
  ConsumerSide consumer_;
};

}  // namespace runnel
