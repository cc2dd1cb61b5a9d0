#pragma once
// Reactor: the event loop of one shard. One thread, one io_uring ring, one
// ready-task queue, one timer heap, and the inbound ends of the message queues
// from every other shard. Everything a shard owns (streams, segments,
// connections, metrics) is touched only from its reactor's thread.
//
// Task model: callbacks, not coroutines. An in-flight io_uring operation is an
// IoCompletion that its owner embeds in a pool slot or connection object; its
// address is the SQE's user_data and it must outlive the CQE. Tasks, timers
// and messages are InlineFunctions stored inline. We chose callbacks because
// the hot path (recv, append, flush, send) must not allocate, and GCC 12
// gives no reliable way to elide or pool coroutine frames per operation; with
// callbacks every byte an operation needs is visible in the owning object,
// which also makes ownership at shutdown explicit.
//
// Loop, each iteration: run ready tasks; run messages from other shards; fire
// due timers; submit SQEs and reap CQEs. When there is nothing to run it
// sleeps in io_uring_enter until a CQE, the next timer, or a wake-up: another
// shard wakes a sleeping reactor with IORING_OP_MSG_RING from its own ring, so
// a cross-shard message costs no extra syscall on the sender.
//
// The ring is set up with SINGLE_ISSUER and DEFER_TASKRUN: completions are
// processed only when this thread asks, which keeps them in the loop's order.
//
// Shutdown: request_stop() (any thread) makes the loop run its stop hooks
// once; services stop accepting and release their holds as in-flight work
// drains; the loop exits when no holds remain or the shutdown deadline passes.

#include <liburing.h>

#include <atomic>
#include <deque>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "core/inline_function.h"
#include "core/metrics.h"
#include "core/spsc_queue.h"
#include "core/status.h"

namespace runnel {

class Reactor;
struct ShardMesh;

// Implemented by anything that submits SQEs. Lives until its last CQE.
class IoCompletion {
 public:
  // res is the CQE's result (negative errno on failure); flags its flags
  // (IORING_CQE_F_MORE for multishot operations that continue).
  virtual void on_complete(int res, uint32_t flags) = 0;

 protected:
  ~IoCompletion() = default;
};

// A one-shot timer owned by its user; destroying it cancels it.
class Timer {
 public:
  Timer(Reactor& reactor, Task callback) : reactor_(reactor), callback_(std::move(callback)) {}
  Timer(const Timer&) = delete;
  Timer& operator=(const Timer&) = delete;
  ~Timer() { cancel(); }

  void arm_after_us(uint64_t delay_us);
  void arm_at_us(uint64_t deadline_us);  // On the reactor's monotonic clock.
  void cancel();
  bool armed() const { return heap_index_ != kNotArmed; }
  uint64_t deadline_us() const { return deadline_us_; }

 private:
  friend class Reactor;
  static constexpr size_t kNotArmed = ~size_t{0};

  Reactor& reactor_;
  Task callback_;
  uint64_t deadline_us_ = 0;
  size_t heap_index_ = kNotArmed;
};

struct ReactorOptions {
  int shard = 0;
  uint32_t ring_entries = 1024;
  uint32_t shutdown_timeout_ms = 5000;
  // Messages this shard may hold parked (their target's queue full) before
  // admit_cross_shard() turns new requests away.
  uint32_t message_backlog_max = 65536;
};

class Reactor {
 public:
  // Creates the ring on the calling thread, which becomes the shard's thread.
  // Fails with a clear message if the kernel lacks a feature we rely on.
  static Result<std::unique_ptr<Reactor>> create(const ReactorOptions& options, ShardMesh* mesh);
  ~Reactor();
  Reactor(const Reactor&) = delete;
  Reactor& operator=(const Reactor&) = delete;

  // The reactor of the calling shard thread. Asserts on non-shard threads.
  // Messages use it to reach the reactor they run on.
  static Reactor& current();
  // Whether the calling thread is this reactor's shard: what objects owned
  // by a shard assert at their entry points.
  bool is_current() const;
  // Makes this the calling thread's current reactor, or none. ShardSet binds
  // a shard's thread for its whole life (init, run, fini), so objects made
  // at startup know their shard; run() binds for its own span otherwise.
  void bind_to_this_thread();
  static void unbind_this_thread();

  int shard() const { return options_.shard; }
  int shard_count() const;
  int ring_fd() const { return ring_.ring_fd; }

  // Runs the loop until stopped and drained. Call once, on the shard's thread.
  void run();
  // After run(): tears the ring down (cancelling anything in flight). Timers
  // and metrics stay usable so shard objects can still be destroyed.
  void close_ring();

  // --- I/O ---
  // A free SQE; when the submission queue is full it submits first, so this
  // never fails. The caller fills it and sets user_data with prepare().
  io_uring_sqe* get_sqe();
  static void set_completion(io_uring_sqe* sqe, IoCompletion* completion) {
    io_uring_sqe_set_data(sqe, completion);
  }

  // --- tasks and time ---
  void post(Task task);  // Runs on this shard in a later loop step.
  uint64_t now_us() const { return now_us_; }  // Monotonic, cached per loop step.
  static uint64_t clock_us();                   // Monotonic, read now.
  static uint64_t clock_realtime_ms();          // Wall clock (for record timestamps), read now.

  // --- messages to other shards (call on this reactor's thread) ---
  // Runs `task` on shard `target` (which may be this shard). A full queue
  // parks the message in a local backlog that is retried every loop step;
  // callers that must push back on producers check backlog_size() first.
  void send(int target, Task task);
  size_t backlog_size() const { return backlog_count_; }
  // Admission control at the edge: a request that would send messages to
  // other shards asks first. kOverloaded once message_backlog_max messages
  // are parked here (the shards it talks to are behind); the request is
  // refused, nothing is dropped. Answers and pushes already under way still
  // park, so the backlog stays bounded by the requests admitted.
  Status admit_cross_shard() const;

  // --- lifecycle ---
  // Stop hooks run once, on this thread, when a stop is requested.
  void on_stop(Task hook);
  // Outstanding work that must finish before the loop may exit.
  void hold() { holds_++; }
  void release() {
    RUNNEL_ASSERT(holds_ > 0);
    holds_--;
  }
  bool stopping() const { return stopping_; }
  // Any thread. Wakes the reactor.
  void request_stop();

  // Runs `task` on this reactor, from any thread that is not a shard (tests,
  // startup). Takes a mutex: never for the data path.
  void post_external(Task task);

  MetricsRegistry& metrics() { return metrics_; }

 private:
  friend class Timer;
  struct PendingMessage {
    int target;
    Task task;
  };

  Reactor(const ReactorOptions& options, ShardMesh* mesh);
  Status init_ring();
  void register_metrics();
  void run_ready_tasks();
  bool poll_messages();  // True if any message ran.
  bool inbound_pending() const;
  void flush_backlog();
  void fire_timers();
  void wait_for_events();
  void reap_completions();
  void begin_stop();
  void wake(int target);
  void arm_doorbell();
  void drain_external();
  int submit();

  // Timer heap (min-heap on deadline).
  void heap_push(Timer* timer);
  void heap_remove(Timer* timer);
  void heap_sift_up(size_t i);
  void heap_sift_down(size_t i);
  void heap_swap(size_t a, size_t b);

  ReactorOptions options_;
  ShardMesh* mesh_;
  io_uring ring_{};
  bool ring_ready_ = false;
  uint64_t now_us_ = 0;

  std::vector<Task> ready_;
  std::vector<Task> running_;
  std::vector<Timer*> timers_;
  std::vector<std::deque<Task>> backlog_;  // Per target shard; only grows when a queue is full.
  size_t backlog_count_ = 0;

  std::vector<Task> stop_hooks_;
  bool stopping_ = false;
  bool exiting_ = false;  // Loop has left; no more re-arming.
  uint64_t stop_deadline_us_ = 0;
  int holds_ = 0;

  // Doorbell: an eventfd other threads write to wake this ring (external tasks, stop).
  class Doorbell;
  std::unique_ptr<Doorbell> doorbell_;
  std::mutex external_mutex_;
  std::vector<Task> external_;
  std::atomic<bool> external_pending_{false};

  MetricsRegistry metrics_;
  struct Stats;
  std::unique_ptr<Stats> stats_;
};

// The message fabric between shards, built before any shard starts: for every
// ordered pair (from, to) an SPSC queue, and per shard its ring fd and whether
// it is asleep. Owned by ShardSet; outlives every reactor.
struct ShardMesh {
  struct alignas(kCacheLineBytes) ShardState {
    std::atomic<int> ring_fd{-1};
    std::atomic<bool> sleeping{false};
    std::atomic<bool> stop_requested{false};
    Reactor* reactor = nullptr;
  };

  ShardMesh(int shard_count, size_t queue_capacity);
  int shard_count() const { return static_cast<int>(states.size()); }
  SpscQueue<Task>& queue(int from, int to) { return *queues[static_cast<size_t>(from * shard_count() + to)]; }

  // Shutdown agreement: a stopping shard declares itself drained when it has
  // no holds and no queued work; all shards leave their loops once every
  // shard has declared. Cross-shard requests must hold on the sender until
  // the reply arrives, so a shard owed an answer is never counted drained.
  bool declare_drained() { return drained.fetch_add(1, std::memory_order_acq_rel) + 1 == shard_count(); }
  void undeclare_drained() { drained.fetch_sub(1, std::memory_order_acq_rel); }
  bool all_drained(bool stopping) const {
    return stopping && drained.load(std::memory_order_acquire) >= shard_count();
  }

  std::vector<ShardState> states;
  std::vector<std::unique_ptr<SpscQueue<Task>>> queues;
  std::atomic<int> drained{0};
};

}  // namespace runnel
