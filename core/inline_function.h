#pragma once
// InlineFunction<R(Args...), Capacity>: a move-only, type-erased callable that
// stores its target inline — never on the heap. Tasks, timers and cross-shard
// messages are InlineFunctions, so posting one allocates nothing. A lambda
// that captures more than Capacity bytes does not compile; capture a pointer
// to a pool slot instead.

#include <cstddef>
#include <new>
#include <type_traits>
#include <utility>

#include "core/assert.h"

namespace runnel {

template <typename Signature, size_t Capacity = 48>
class InlineFunction;

template <typename R, typename... Args, size_t Capacity>
class InlineFunction<R(Args...), Capacity> {
 public:
  InlineFunction() = default;

  template <typename F, typename = std::enable_if_t<!std::is_same_v<std::decay_t<F>, InlineFunction>>>
  InlineFunction(F&& f) {  // NOLINT: implicit, like std::function.
    using T = std::decay_t<F>;
    static_assert(sizeof(T) <= Capacity, "callable too large for InlineFunction: capture less");
    static_assert(alignof(T) <= alignof(std::max_align_t), "over-aligned callable");
    static_assert(std::is_nothrow_move_constructible_v<T>, "callable must be nothrow-movable");
    ::new (static_cast<void*>(storage_)) T(std::forward<F>(f));
    ops_ = &kOpsFor<T>;
  }

  InlineFunction(InlineFunction&& other) noexcept { move_from(other); }
  InlineFunction& operator=(InlineFunction&& other) noexcept {
    if (this != &other) {
      reset();
      move_from(other);
    }
    return *this;
  }
  InlineFunction(const InlineFunction&) = delete;
  InlineFunction& operator=(const InlineFunction&) = delete;
  ~InlineFunction() { reset(); }

  explicit operator bool() const { return ops_ != nullptr; }

  R operator()(Args... args) {
    RUNNEL_DASSERT(ops_ != nullptr);
    return ops_->invoke(storage_, std::forward<Args>(args)...);
  }

  void reset() {
    if (ops_ != nullptr) {
      ops_->destroy(storage_);
      ops_ = nullptr;
    }
  }

 private:
  struct Ops {
    R (*invoke)(void*, Args&&...);
    void (*move)(void* dst, void* src);  // Move-constructs dst from src, destroys src.
    void (*destroy)(void*);
  };

  template <typename T>
  static constexpr Ops kOpsFor = {
      [](void* self, Args&&... args) -> R { return (*static_cast<T*>(self))(std::forward<Args>(args)...); },
      [](void* dst, void* src) {
        ::new (dst) T(std::move(*static_cast<T*>(src)));
        static_cast<T*>(src)->~T();
      },
      [](void* self) { static_cast<T*>(self)->~T(); },
  };

  void move_from(InlineFunction& other) {
    if (other.ops_ != nullptr) {
      other.ops_->move(storage_, other.storage_);
      ops_ = other.ops_;
      other.ops_ = nullptr;
    }
  }

  alignas(std::max_align_t) std::byte storage_[Capacity];
  const Ops* ops_ = nullptr;
};

// The unit of work a reactor runs: a task, a timer callback, a message.
using Task = InlineFunction<void(), 48>;

}  // namespace runnel
