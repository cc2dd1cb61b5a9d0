#include "core/reactor.h"

#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "core/log.h"

namespace runnel {
namespace {

// user_data values that are not IoCompletion pointers.
constexpr uint64_t kIgnoreUserData = 0;  // CQEs we do not care about (failed MSG_RING to a dead ring).
constexpr uint64_t kWakeUserData = 1;    // MSG_RING wake-ups from other shards.

// Bounds on one loop step, so that no source of work starves the others.
constexpr size_t kMessagesPerSourceMax = 256;
constexpr unsigned kCqeBatch = 256;
constexpr int kCqeBatchesPerStepMax = 4;
constexpr size_t kTimersPerStepMax = 1024;
// How long a shard with parked messages sleeps before retrying its full queues.
constexpr uint64_t kBacklogRetryUs = 50;

thread_local Reactor* t_current_reactor = nullptr;

// Operations the reactor and the services built on it use. Probed at start so
// a kernel without them fails with a message instead of -EINVAL at runtime.
struct RequiredOp {
  int op;
  const char* name;
};
constexpr RequiredOp kRequiredOps[] = {
    {IORING_OP_MSG_RING, "MSG_RING"},   {IORING_OP_ACCEPT, "ACCEPT"},     {IORING_OP_RECV, "RECV"},
    {IORING_OP_SEND, "SEND"},           {IORING_OP_SENDMSG, "SENDMSG"},   {IORING_OP_READ, "READ"},
    {IORING_OP_WRITE, "WRITE"},         {IORING_OP_CLOSE, "CLOSE"},       {IORING_OP_ASYNC_CANCEL, "ASYNC_CANCEL"},
    {IORING_OP_FSYNC, "FSYNC"},         {IORING_OP_FALLOCATE, "FALLOCATE"},
};

}  // namespace

// The reactor's own counters; plain integers, read on scrape by this shard.
struct Reactor::Stats {
  explicit Stats(MetricsRegistry& m)
      : loop_steps(m.counter("runnel_reactor_loop_steps_total", "Iterations of the shard's event loop.")),
        tasks_run(m.counter("runnel_reactor_tasks_total", "Tasks run (posted tasks and timer callbacks).")),
        messages_received(m.counter("runnel_reactor_messages_received_total", "Messages run that other shards sent.")),
        messages_sent(m.counter("runnel_reactor_messages_sent_total", "Messages sent to other shards.")),
        wakeups_sent(m.counter("runnel_reactor_wakeups_sent_total", "MSG_RING wake-ups sent to sleeping shards.")),
        wakeups_received(m.counter("runnel_reactor_wakeups_received_total", "MSG_RING wake-ups received.")),
        timers_fired(m.counter("runnel_reactor_timers_fired_total", "Timers that expired and ran.")),
        sleeps(m.counter("runnel_reactor_sleeps_total", "Times the loop blocked waiting for events.")),
        submit_calls(m.counter("runnel_io_uring_enter_calls_total", "io_uring_enter system calls.")),
        sqes_submitted(m.counter("runnel_io_uring_sqes_submitted_total", "SQEs handed to the kernel.")),
        cqes_reaped(m.counter("runnel_io_uring_cqes_total", "CQEs processed.")),
        sq_full(m.counter("runnel_io_uring_sq_full_total", "Times the SQ was full and was submitted early.")),
        step_us(m.histogram("runnel_reactor_step_seconds", "Busy time of one loop step (excluding sleep).", 1e-6)) {}

  Counter& loop_steps;
  Counter& tasks_run;
  Counter& messages_received;
  Counter& messages_sent;
  Counter& wakeups_sent;
  Counter& wakeups_received;
  Counter& timers_fired;
  Counter& sleeps;
  Counter& submit_calls;
  Counter& sqes_submitted;
  Counter& cqes_reaped;
  Counter& sq_full;
  Histogram& step_us;
  uint64_t busy_us = 0;
  uint64_t sleep_us = 0;
};

// An eventfd with a READ always posted on the ring: the way non-shard threads
// (signal handling, tests, startup) wake a reactor.
class Reactor::Doorbell final : public IoCompletion {
 public:
  explicit Doorbell(Reactor& reactor) : reactor_(reactor), fd_(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {}
  ~Doorbell() {
    if (fd_ >= 0) ::close(fd_);
  }
  bool valid() const { return fd_ >= 0; }

  void arm() {
    io_uring_sqe* sqe = reactor_.get_sqe();
    io_uring_prep_read(sqe, fd_, &value_, sizeof(value_), 0);
    set_completion(sqe, this);
    armed_ = true;
  }

  void ring() {
    uint64_t one = 1;
    // The eventfd counter cannot overflow in practice; EAGAIN would only mean it is already signalled.
    [[maybe_unused]] ssize_t n = ::write(fd_, &one, sizeof(one));
  }

  void on_complete(int res, uint32_t) override {
    armed_ = false;
    if (res < 0 && res != -EAGAIN && res != -EINTR && res != -ECANCELED) {
      log_error("doorbell read failed: {}", std::strerror(-res));
    }
    reactor_.drain_external();
    if (!reactor_.exiting_) arm();
  }

 private:
  Reactor& reactor_;
  int fd_;
  uint64_t value_ = 0;
  bool armed_ = false;
};

ShardMesh::ShardMesh(int shard_count, size_t queue_capacity) : states(static_cast<size_t>(shard_count)) {
  RUNNEL_ASSERT(shard_count >= 1);
  queues.reserve(static_cast<size_t>(shard_count * shard_count));
  for (int i = 0; i < shard_count * shard_count; i++) {
    queues.push_back(std::make_unique<SpscQueue<Task>>(queue_capacity));
  }
}

Reactor::Reactor(const ReactorOptions& options, ShardMesh* mesh)
    : options_(options), mesh_(mesh), metrics_(options.shard) {
  RUNNEL_ASSERT(mesh_ != nullptr);
  RUNNEL_ASSERT(options_.shard >= 0 && options_.shard < mesh_->shard_count());
  // Sized once here so that steady-state posting and timers do not allocate.
  ready_.reserve(4096);
  running_.reserve(4096);
  timers_.reserve(4096);
  backlog_.resize(static_cast<size_t>(mesh_->shard_count()));
  stats_ = std::make_unique<Stats>(metrics_);
}

Result<std::unique_ptr<Reactor>> Reactor::create(const ReactorOptions& options, ShardMesh* mesh) {
  std::unique_ptr<Reactor> reactor(new Reactor(options, mesh));
  if (Status s = reactor->init_ring(); !s) return s;
  reactor->doorbell_ = std::make_unique<Doorbell>(*reactor);
  if (!reactor->doorbell_->valid()) {
    return Status(ErrorCode::kInternal, fmt::format("eventfd: {}", std::strerror(errno)));
  }
  reactor->doorbell_->arm();
  reactor->register_metrics();
  mesh->states[static_cast<size_t>(options.shard)].reactor = reactor.get();
  mesh->states[static_cast<size_t>(options.shard)].ring_fd.store(reactor->ring_.ring_fd, std::memory_order_release);
  return reactor;
}

Status Reactor::init_ring() {
  io_uring_params params{};
  params.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_TASKRUN_FLAG |
                 IORING_SETUP_SUBMIT_ALL | IORING_SETUP_CQSIZE;
  params.cq_entries = options_.ring_entries * 4;
  int r = io_uring_queue_init_params(options_.ring_entries, &ring_, &params);
  if (r == -EINVAL) {
    return Status(ErrorCode::kUnsupported,
                  "io_uring_setup rejected SINGLE_ISSUER|DEFER_TASKRUN|TASKRUN_FLAG|SUBMIT_ALL: "
                  "runneld needs Linux 6.1 or newer");
  }
  if (r == -ENOSYS || r == -EPERM) {
    return Status(ErrorCode::kUnsupported,
                  fmt::format("io_uring is not available ({}): check kernel.io_uring_disabled and seccomp",
                              std::strerror(-r)));
  }
  if (r < 0) {
    return Status(ErrorCode::kInternal, fmt::format("io_uring_queue_init: {}", std::strerror(-r)));
  }
  ring_ready_ = true;
  const uint32_t needed_features = IORING_FEAT_EXT_ARG | IORING_FEAT_NODROP | IORING_FEAT_SUBMIT_STABLE;
  if ((params.features & needed_features) != needed_features) {
    return Status(ErrorCode::kUnsupported,
                  "io_uring lacks EXT_ARG/NODROP/SUBMIT_STABLE features: runneld needs Linux 6.1 or newer");
  }
  io_uring_probe* probe = io_uring_get_probe_ring(&ring_);
  if (probe == nullptr) return Status(ErrorCode::kUnsupported, "io_uring probe failed");
  std::string missing;
  for (const RequiredOp& op : kRequiredOps) {
    if (!io_uring_opcode_supported(probe, op.op)) {
      if (!missing.empty()) missing += ", ";
      missing += op.name;
    }
  }
  io_uring_free_probe(probe);
  if (!missing.empty()) {
    return Status(ErrorCode::kUnsupported, "io_uring lacks operations runneld needs: " + missing);
  }
  return Status::ok();
}

void Reactor::register_metrics() {
  metrics_.counter_callback("runnel_reactor_busy_seconds_total", "Time the loop spent running work.",
                          [this] { return static_cast<double>(stats_->busy_us) * 1e-6; });
  metrics_.counter_callback("runnel_reactor_sleep_seconds_total", "Time the loop spent blocked waiting.",
                          [this] { return static_cast<double>(stats_->sleep_us) * 1e-6; });
  metrics_.gauge_callback("runnel_reactor_ready_tasks", "Tasks waiting to run.",
                          [this] { return static_cast<double>(ready_.size()); });
  metrics_.gauge_callback("runnel_reactor_timers_armed", "Timers armed.",
                          [this] { return static_cast<double>(timers_.size()); });
  metrics_.gauge_callback("runnel_reactor_message_backlog", "Messages parked because a shard queue was full.",
                          [this] { return static_cast<double>(backlog_count_); });
  metrics_.gauge_callback("runnel_io_uring_sq_entries", "Submission queue size.",
                          [this] { return static_cast<double>(ring_.sq.ring_entries); });
  metrics_.gauge_callback("runnel_io_uring_cq_entries", "Completion queue size.",
                          [this] { return static_cast<double>(ring_.cq.ring_entries); });
  metrics_.counter_callback("runnel_io_uring_cq_overflow_total", "CQEs the kernel had to hold back (CQ full).",
                          [this] { return ring_ready_ ? static_cast<double>(*ring_.cq.koverflow) : 0.0; });
}

Reactor::~Reactor() { close_ring(); }

void Reactor::close_ring() {
  if (!ring_ready_) return;
  mesh_->states[static_cast<size_t>(options_.shard)].ring_fd.store(-1, std::memory_order_release);
  // The doorbell's eventfd stays open until ~Reactor: other threads may still ring it.
  io_uring_queue_exit(&ring_);
  ring_ready_ = false;
}

Reactor& Reactor::current() {
  RUNNEL_ASSERT(t_current_reactor != nullptr);
  return *t_current_reactor;
}

bool Reactor::is_current() const { return t_current_reactor == this; }

void Reactor::bind_to_this_thread() {
  RUNNEL_ASSERT(t_current_reactor == nullptr || t_current_reactor == this);
  t_current_reactor = this;
}

void Reactor::unbind_this_thread() { t_current_reactor = nullptr; }

int Reactor::shard_count() const { return mesh_->shard_count(); }

uint64_t Reactor::clock_us() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1'000'000 + static_cast<uint64_t>(ts.tv_nsec) / 1000;
}

uint64_t Reactor::clock_realtime_ms() {
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000 + static_cast<uint64_t>(ts.tv_nsec) / 1'000'000;
}

io_uring_sqe* Reactor::get_sqe() {
  io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
  while (sqe == nullptr) {
    stats_->sq_full.inc();
    submit();
    sqe = io_uring_get_sqe(&ring_);
  }
  return sqe;
}

int Reactor::submit() {
  stats_->submit_calls.inc();
  int r = io_uring_submit_and_get_events(&ring_);
  if (r > 0) stats_->sqes_submitted.inc(static_cast<uint64_t>(r));
  if (r < 0 && r != -EINTR && r != -EAGAIN && r != -EBUSY) {
    log_error("io_uring_submit: {}", std::strerror(-r));
    RUNNEL_ASSERT(r == -EINTR);  // Unexpected submit failures mean a broken ring.
  }
  return r;
}

void Reactor::post(Task task) { ready_.push_back(std::move(task)); }

void Reactor::post_external(Task task) {
  {
    std::lock_guard<std::mutex> lock(external_mutex_);
    external_.push_back(std::move(task));
  }
  external_pending_.store(true, std::memory_order_release);
  doorbell_->ring();
}

void Reactor::request_stop() {
  mesh_->states[static_cast<size_t>(options_.shard)].stop_requested.store(true, std::memory_order_release);
  doorbell_->ring();
}

void Reactor::drain_external() {
  if (!external_pending_.exchange(false, std::memory_order_acq_rel)) return;
  std::vector<Task> tasks;
  {
    std::lock_guard<std::mutex> lock(external_mutex_);
    tasks.swap(external_);
  }
  for (Task& t : tasks) ready_.push_back(std::move(t));
}

void Reactor::on_stop(Task hook) { stop_hooks_.push_back(std::move(hook)); }

void Reactor::send(int target, Task task) {
  RUNNEL_DASSERT(target >= 0 && target < mesh_->shard_count());
  if (target == options_.shard) {
    post(std::move(task));
    return;
  }
  auto& parked = backlog_[static_cast<size_t>(target)];
  // Keep per-target FIFO order: once anything is parked, later messages park too.
  if (!parked.empty() || !mesh_->queue(options_.shard, target).try_push(task)) {
    parked.push_back(std::move(task));
    backlog_count_++;
    return;
  }
  stats_->messages_sent.inc();
  wake(target);
}

Status Reactor::admit_cross_shard() const {
  if (backlog_count_ < options_.message_backlog_max) return Status::ok();
  return Status(ErrorCode::kOverloaded,
                fmt::format("shard {} has {} messages waiting for other shards (reactor.message_backlog_max); retry later",
                            options_.shard, backlog_count_));
}

void Reactor::wake(int target) {
  auto& state = mesh_->states[static_cast<size_t>(target)];
  // Pairs with the fence in wait_for_events(): either the target sees our
  // message when it re-checks its queues, or we see it asleep and ring it.
  std::atomic_thread_fence(std::memory_order_seq_cst);
  if (!state.sleeping.load(std::memory_order_relaxed)) return;
  if (!state.sleeping.exchange(false, std::memory_order_acq_rel)) return;
  int fd = state.ring_fd.load(std::memory_order_acquire);
  if (fd < 0) return;
  io_uring_sqe* sqe = get_sqe();
  io_uring_prep_msg_ring(sqe, fd, 0, kWakeUserData, 0);
  sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
  io_uring_sqe_set_data64(sqe, kIgnoreUserData);
  stats_->wakeups_sent.inc();
}

void Reactor::flush_backlog() {
  if (backlog_count_ == 0) return;
  for (int target = 0; target < mesh_->shard_count(); target++) {
    auto& parked = backlog_[static_cast<size_t>(target)];
    if (parked.empty()) continue;
    auto& queue = mesh_->queue(options_.shard, target);
    size_t sent = 0;
    while (!parked.empty() && queue.try_push(parked.front())) {
      parked.pop_front();
      sent++;
    }
    if (sent == 0) continue;
    backlog_count_ -= sent;
    stats_->messages_sent.inc(sent);
    wake(target);
  }
}

bool Reactor::poll_messages() {
  bool any = false;
  Task task;
  for (int from = 0; from < mesh_->shard_count(); from++) {
    if (from == options_.shard) continue;
    auto& queue = mesh_->queue(from, options_.shard);
    for (size_t n = 0; n < kMessagesPerSourceMax && queue.try_pop(task); n++) {
      stats_->messages_received.inc();
      task();
      task.reset();
      any = true;
    }
  }
  return any;
}

bool Reactor::inbound_pending() const {
  for (int from = 0; from < mesh_->shard_count(); from++) {
    if (from != options_.shard && !mesh_->queue(from, options_.shard).empty_approx()) return true;
  }
  return false;
}

void Reactor::run_ready_tasks() {
  // Tasks posted while running go to the next step, so a task that re-posts
  // itself cannot starve I/O.
  running_.swap(ready_);
  for (Task& task : running_) {
    stats_->tasks_run.inc();
    task();
  }
  running_.clear();
}

void Reactor::fire_timers() {
  for (size_t n = 0; n < kTimersPerStepMax && !timers_.empty(); n++) {
    Timer* timer = timers_.front();
    if (timer->deadline_us_ > now_us_) break;
    heap_remove(timer);
    stats_->timers_fired.inc();
    stats_->tasks_run.inc();
    // The callback may re-arm or destroy its timer; it must not be touched afterwards.
    timer->callback_();
  }
}

void Reactor::wait_for_events() {
  auto& state = mesh_->states[static_cast<size_t>(options_.shard)];
  // A parked backlog does not prevent sleeping (spinning would steal the CPU
  // the receiving shard needs to drain its queue); it only caps the sleep.
  bool may_sleep = ready_.empty() && io_uring_cq_ready(&ring_) == 0;
  if (may_sleep) {
    state.sleeping.store(true, std::memory_order_relaxed);
    std::atomic_thread_fence(std::memory_order_seq_cst);
    if (inbound_pending() || state.stop_requested.load(std::memory_order_acquire) ||
        mesh_->all_drained(stopping_)) {
      may_sleep = false;
      state.sleeping.store(false, std::memory_order_relaxed);
    }
  }
  if (!may_sleep) {
    if (io_uring_sq_ready(&ring_) > 0 || (IO_URING_READ_ONCE(*ring_.sq.kflags) & IORING_SQ_TASKRUN)) {
      submit();
    }
    return;
  }

  __kernel_timespec timeout{};
  __kernel_timespec* timeout_ptr = nullptr;
  uint64_t deadline = timers_.empty() ? UINT64_MAX : timers_.front()->deadline_us_;
  if (stopping_) deadline = std::min(deadline, stop_deadline_us_);
  if (backlog_count_ > 0) deadline = std::min(deadline, now_us_ + kBacklogRetryUs);
  if (deadline != UINT64_MAX) {
    uint64_t wait_us = deadline > now_us_ ? deadline - now_us_ : 0;
    timeout.tv_sec = static_cast<int64_t>(wait_us / 1'000'000);
    timeout.tv_nsec = static_cast<int64_t>((wait_us % 1'000'000) * 1000);
    timeout_ptr = &timeout;
  }
  stats_->sleeps.inc();
  stats_->submit_calls.inc();
  uint64_t before = clock_us();
  unsigned to_submit = io_uring_sq_ready(&ring_);
  io_uring_cqe* cqe = nullptr;
  int r = io_uring_submit_and_wait_timeout(&ring_, &cqe, 1, timeout_ptr, nullptr);
  if (r > 0) stats_->sqes_submitted.inc(std::min<unsigned>(static_cast<unsigned>(r), to_submit));
  if (r < 0 && r != -ETIME && r != -EINTR && r != -EAGAIN && r != -EBUSY) {
    log_error("io_uring wait: {}", std::strerror(-r));
    RUNNEL_ASSERT(r == -ETIME);
  }
  state.sleeping.store(false, std::memory_order_relaxed);
  stats_->sleep_us += clock_us() - before;
}

void Reactor::reap_completions() {
  struct Completion {
    uint64_t user_data;
    int res;
    uint32_t flags;
  };
  io_uring_cqe* cqes[kCqeBatch];
  Completion batch[kCqeBatch];
  for (int round = 0; round < kCqeBatchesPerStepMax; round++) {
    unsigned n = io_uring_peek_batch_cqe(&ring_, cqes, kCqeBatch);
    if (n == 0) return;
    // Copy out and free the CQ slots before running handlers, which may
    // submit and so produce new CQEs.
    for (unsigned i = 0; i < n; i++) batch[i] = {cqes[i]->user_data, cqes[i]->res, cqes[i]->flags};
    io_uring_cq_advance(&ring_, n);
    stats_->cqes_reaped.inc(n);
    for (unsigned i = 0; i < n; i++) {
      const Completion& c = batch[i];
      if (c.user_data == kIgnoreUserData) continue;
      if (c.user_data == kWakeUserData) {
        stats_->wakeups_received.inc();
        continue;
      }
      reinterpret_cast<IoCompletion*>(c.user_data)->on_complete(c.res, c.flags);
    }
    if (n < kCqeBatch) return;
  }
}

void Reactor::begin_stop() {
  stopping_ = true;
  stop_deadline_us_ = now_us_ + uint64_t{options_.shutdown_timeout_ms} * 1000;
  log_debug("stopping: running {} stop hooks", stop_hooks_.size());
  std::vector<Task> hooks;
  hooks.swap(stop_hooks_);
  for (Task& hook : hooks) hook();
}

void Reactor::run() {
  set_this_shard_id(options_.shard);
  Reactor* const bound_before = t_current_reactor;
  t_current_reactor = this;
  auto& state = mesh_->states[static_cast<size_t>(options_.shard)];
  bool declared_drained = false;
  while (true) {
    now_us_ = clock_us();
    stats_->loop_steps.inc();
    if (!stopping_ && state.stop_requested.load(std::memory_order_acquire)) begin_stop();
    if (stopping_) {
      // A shard may leave only when every shard has drained: until then it
      // keeps serving messages, because another shard's in-flight work may
      // still need an answer from it.
      bool drained = holds_ == 0 && ready_.empty() && backlog_count_ == 0;
      if (drained && !declared_drained) {
        declared_drained = true;
        log_debug("declared drained");
        if (mesh_->declare_drained()) {
          for (int s = 0; s < mesh_->shard_count(); s++) {
            if (s != options_.shard) wake(s);
          }
          submit();
        }
      } else if (!drained && declared_drained) {
        declared_drained = false;
        log_debug("undeclared drained");
        mesh_->undeclare_drained();
      }
      if (mesh_->all_drained(true)) break;
      if (now_us_ >= stop_deadline_us_) {
        log_warn("shutdown timeout after {} ms with {} holds and {} tasks outstanding; leaving anyway",
                 options_.shutdown_timeout_ms, holds_, ready_.size());
        if (!declared_drained) mesh_->declare_drained();
        break;
      }
    }
    run_ready_tasks();
    poll_messages();
    flush_backlog();
    fire_timers();
    uint64_t busy_end = clock_us();
    stats_->busy_us += busy_end - now_us_;
    stats_->step_us.record(busy_end - now_us_);
    wait_for_events();
    reap_completions();
  }
  exiting_ = true;
  // Hand the SQEs we prepared (final sends, wake-ups) to the kernel.
  submit();
  t_current_reactor = bound_before;
  log_debug("reactor loop exited");
}

// --- timers ---

void Timer::arm_after_us(uint64_t delay_us) { arm_at_us(reactor_.now_us() + delay_us); }

void Timer::arm_at_us(uint64_t deadline_us) {
  if (armed()) reactor_.heap_remove(this);
  deadline_us_ = deadline_us;
  reactor_.heap_push(this);
}

void Timer::cancel() {
  if (armed()) reactor_.heap_remove(this);
}

void Reactor::heap_swap(size_t a, size_t b) {
  std::swap(timers_[a], timers_[b]);
  timers_[a]->heap_index_ = a;
  timers_[b]->heap_index_ = b;
}

void Reactor::heap_sift_up(size_t i) {
  while (i > 0) {
    size_t parent = (i - 1) / 2;
    if (timers_[parent]->deadline_us_ <= timers_[i]->deadline_us_) break;
    heap_swap(i, parent);
    i = parent;
  }
}

void Reactor::heap_sift_down(size_t i) {
  const size_t n = timers_.size();
  while (true) {
    size_t smallest = i;
    size_t left = 2 * i + 1;
    size_t right = left + 1;
    if (left < n && timers_[left]->deadline_us_ < timers_[smallest]->deadline_us_) smallest = left;
    if (right < n && timers_[right]->deadline_us_ < timers_[smallest]->deadline_us_) smallest = right;
    if (smallest == i) return;
    heap_swap(i, smallest);
    i = smallest;
  }
}

void Reactor::heap_push(Timer* timer) {
  timer->heap_index_ = timers_.size();
  timers_.push_back(timer);
  heap_sift_up(timer->heap_index_);
}

void Reactor::heap_remove(Timer* timer) {
  size_t i = timer->heap_index_;
  RUNNEL_ASSERT(i < timers_.size() && timers_[i] == timer);
  size_t last = timers_.size() - 1;
  if (i != last) heap_swap(i, last);
  timers_.pop_back();
  timer->heap_index_ = Timer::kNotArmed;
  if (i < timers_.size()) {
    heap_sift_down(i);
    heap_sift_up(i);
  }
}

}  // namespace runnel
