#include "core/shard_set.h"

#include <pthread.h>
#include <sched.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <condition_variable>
#include <cstring>
#include <mutex>

#include "core/log.h"

namespace runnel {

// Startup rendezvous between the main thread and the shard threads. Only
// used while starting, so a mutex and condition variable are fine here.
struct ShardSet::Startup {
  std::mutex mutex;
  std::condition_variable changed;
  int created = 0;  // Reactors created (or failed to be).
  int inited = 0;   // Shards that ran init (or gave up).
  bool create_failed = false;  // Decides, for all shards alike, whether any loop runs.
  Status first_error;
};

namespace {

std::vector<int> allowed_cpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  std::vector<int> cpus;
  if (sched_getaffinity(0, sizeof(set), &set) == 0) {
    for (int cpu = 0; cpu < CPU_SETSIZE; cpu++) {
      if (CPU_ISSET(cpu, &set)) cpus.push_back(cpu);
    }
  }
  return cpus;
}

}  // namespace

int ShardSet::available_cores() {
  auto cpus = allowed_cpus();
  return cpus.empty() ? 1 : static_cast<int>(cpus.size());
}

ShardSet::ShardSet(const ShardSetOptions& options)
    : options_(options), startup_(std::make_unique<Startup>()) {
  RUNNEL_ASSERT(options_.shards >= 1);
  mesh_ = std::make_unique<ShardMesh>(options_.shards, options_.message_queue_capacity);
  reactors_.resize(static_cast<size_t>(options_.shards));
  exit_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  RUNNEL_ASSERT(exit_fd_ >= 0);
}

ShardSet::~ShardSet() {
  if (!threads_.empty() && !joined_) {
    request_stop();
    join();
  }
  ::close(exit_fd_);
}

Status ShardSet::start(std::function<Status(Reactor&)> init, std::function<void(Reactor&)> fini) {
  RUNNEL_ASSERT(threads_.empty());
  fini_ = std::move(fini);
  for (int shard = 0; shard < options_.shards; shard++) {
    // `init` lives on this stack frame until every shard has run it (we wait below).
    threads_.emplace_back([this, shard, &init] { shard_main(shard, init, fini_); });
  }
  std::unique_lock<std::mutex> lock(startup_->mutex);
  startup_->changed.wait(lock, [&] { return startup_->inited == options_.shards; });
  Status error = startup_->first_error;
  lock.unlock();
  if (!error) {
    request_stop();
    join();
  }
  return error;
}

void ShardSet::shard_main(int shard, const std::function<Status(Reactor&)>& init,
                          const std::function<void(Reactor&)>& fini) {
  set_this_shard_id(shard);
  if (options_.pin_threads) {
    auto cpus = allowed_cpus();
    if (!cpus.empty()) {
      cpu_set_t set;
      CPU_ZERO(&set);
      CPU_SET(cpus[static_cast<size_t>(shard) % cpus.size()], &set);
      if (int e = pthread_setaffinity_np(pthread_self(), sizeof(set), &set); e != 0) {
        log_warn("could not pin shard to cpu {}: {}", cpus[static_cast<size_t>(shard) % cpus.size()],
                 std::strerror(e));
      }
    }
  }
  char name[16];
  snprintf(name, sizeof(name), "shard-%d", shard);
  pthread_setname_np(pthread_self(), name);

  ReactorOptions reactor_options;
  reactor_options.shard = shard;
  reactor_options.ring_entries = options_.ring_entries;
  reactor_options.shutdown_timeout_ms = options_.shutdown_timeout_ms;
  reactor_options.message_backlog_max = options_.message_backlog_max;
  auto created = Reactor::create(reactor_options, mesh_.get());

  bool go = false;
  {
    std::unique_lock<std::mutex> lock(startup_->mutex);
    if (created) {
      reactors_[static_cast<size_t>(shard)] = std::move(created.value());
    } else {
      startup_->create_failed = true;
      if (startup_->first_error.is_ok()) startup_->first_error = created.status();
    }
    startup_->created++;
    startup_->changed.notify_all();
    startup_->changed.wait(lock, [&] { return startup_->created == options_.shards; });
    go = !startup_->create_failed;
  }

  Reactor* reactor = reactors_[static_cast<size_t>(shard)].get();
  if (reactor != nullptr) reactor->bind_to_this_thread();  // For init, run and fini alike.
  Status init_status = go ? init(*reactor) : Status::ok();
  {
    std::unique_lock<std::mutex> lock(startup_->mutex);
    if (!init_status && startup_->first_error.is_ok()) startup_->first_error = init_status;
    startup_->inited++;
    startup_->changed.notify_all();
  }
  if (go) {
    if (!init_status) reactor->request_stop();
    reactor->run();
    // Close the ring before the shard's objects go: operations still in
    // flight after a forced shutdown are cancelled and can no longer write
    // into memory that fini is about to free.
    reactor->close_ring();
    if (fini) fini(*reactor);
  }
  Reactor::unbind_this_thread();
  uint64_t one = 1;
  [[maybe_unused]] ssize_t n = ::write(exit_fd_, &one, sizeof(one));
}

void ShardSet::request_stop() {
  for (auto& reactor : reactors_) {
    if (reactor) reactor->request_stop();
  }
}

void ShardSet::join() {
  for (auto& thread : threads_) {
    if (thread.joinable()) thread.join();
  }
  joined_ = true;
  // Rings are closed only now: until every shard has left, a late MSG_RING
  // must never reach a closed (or reused) ring fd.
  reactors_.clear();
}

}  // namespace runnel
