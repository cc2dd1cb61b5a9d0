// runnel-bench: the load generator. Producers append batches to streams
// through librunnel, consumers subscribe to the same streams, and every
// record carries the time it was meant to be sent, so the report has ack
// latency (append → durable ack) and end-to-end latency (append → delivered
// to a subscriber), both from the intended send time: under --rate a
// request that had to wait for the server is charged for the wait
// (no coordinated omission). At the end every stream is checked: each
// record consumed exactly once, in order, by each of its subscribers.
//
// With --catch-up nothing is subscribed while the producers run; once every
// append is acknowledged the consumers read the whole backlog from seq_num 0
// and the report has the read throughput instead of end-to-end latency.
//
// One thread runs everything on one libuv loop (--connections producer
// clients and, with consumers, one consumer client, each with a connection
// per server shard), so on a small machine the generator takes at most one
// core; it reports its own CPU use.

#include <fmt/format.h>
#include <sys/resource.h>
#include <unistd.h>
#include <uv.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <deque>
#include <memory>
#include <string>
#include <vector>

#include "runnel/client.h"
#include "tools/bench/histogram.h"

namespace runnel::bench {
namespace {

using namespace runnel::client;

constexpr size_t kStampBytes = 20;  // u64 send time it is timed from (ns), u32 producer, u64 record number.
constexpr size_t kBacklogMax = 100000;  // Batches behind schedule before the offered load is called unsustainable.
constexpr int kCreatesInFlight = 512;   // Stream creations pipelined on one connection.
// Payload bytes the server may push ahead of a subscriber: several of its
// 1 MiB pushes, so a reader catching up never waits for credit to come back.
constexpr uint32_t kSubscriptionCredit = 8u << 20;
constexpr uint64_t kStallNs = 30'000'000'000ull;  // No progress this long while connecting or draining: give up.

struct Options {
  std::string server = "127.0.0.1:7420";
  std::string bucket = "bench";
  std::string token;  // Access token (a server with --auth); also RUNNEL_TOKEN.
  std::string tls_ca;  // Speak TLS trusting this CA (PEM).
  std::string tls_cert, tls_key;  // A client certificate to present.
  bool tls = false;
  int producers = 1;
  int connections = 1;  // Producer clients; producer p appends through client p % connections.
  int consumers = 1;
  int streams = 1;
  uint32_t record_size = 1024;
  uint32_t batch_records = 100;
  double duration_s = 10;
  double warmup_s = 0;  // Seconds of the same load before --duration; none of it is counted.
  double rate = 0;   // Records/s over all producers; 0: as fast as acks come back.
  int window = 8;    // Batches in flight per producer.
  bool catch_up = false;
  bool one_connection = false;  // Each client keeps one connection; the server forwards to the owning shard.
  bool json = false;
  bool quiet = false;
};

uint64_t now_ns() {
  return static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch()).count());
}

double cpu_seconds(double* user, double* sys) {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  *user = static_cast<double>(u.ru_utime.tv_sec) + static_cast<double>(u.ru_utime.tv_usec) / 1e6;
  *sys = static_cast<double>(u.ru_stime.tv_sec) + static_cast<double>(u.ru_stime.tv_usec) / 1e6;
  return *user + *sys;
}

double per_second(double count, double secs) { return secs > 0 ? count / secs : 0; }

struct StreamState {
  std::string name;
  uint64_t acked = 0;  // Records acknowledged.
};

class Bench;

struct Producer {
  Bench* bench = nullptr;
  Client* client = nullptr;
  int id = 0;
  std::vector<size_t> streams;
  size_t next_stream = 0;
  uint64_t next_record = 0;
  int in_flight = 0;
  std::deque<uint64_t> due;  // Intended send times (ns) of batches not yet sent (--rate).
  uint64_t next_due_ns = 0;
  uv_timer_t timer{};
};

struct Subscription {
  size_t stream = 0;
  uint64_t next_seq = 0;
  uint64_t handle = 0;
};

// Worker w of `workers` takes the items k (of `items`) with k % workers == w;
// with more workers than items, worker w shares item w % items. Visits only
// its own items, so setting up is linear even with a million streams.
template <typename Visit>
void shares_of(int worker, int workers, int items, Visit visit) {
  if (workers > items) return visit(static_cast<size_t>(worker % items));
  for (int k = worker; k < items; k += workers) visit(static_cast<size_t>(k));
}

class Bench {
 public:
  Bench(uv_loop_t* loop, Options o) : loop_(loop), o_(std::move(o)) {}

  int run();

 private:
  bool set_up();
  bool create_streams();
  void create_more();
  bool connect_clients();
  void subscribe_all();
  void start_producers();
  void pump(Producer& p);
  void send(Producer& p, uint64_t intended_ns);
  void on_records(Subscription& s, std::vector<Record>& records);
  void progress();
  void finish_producing();
  void all_acked();
  void check_consumed();
  void report();

  uv_loop_t* loop_;
  Options o_;
  ClientOptions client_options_;
  std::unique_ptr<Client> consumer_client_;  // Also makes the bucket and the streams; none without consumers.
  std::vector<std::unique_ptr<Client>> producer_clients_;
  std::vector<StreamState> streams_;
  std::vector<std::unique_ptr<Producer>> producers_;
  std::vector<std::unique_ptr<Subscription>> subs_;
  std::string padding_;

  // Stream creation.
  std::string run_id_;
  size_t create_next_ = 0, created_ = 0;
  int create_in_flight_ = 0;
  std::string create_error_;
  double create_s_ = 0, connect_s_ = 0;
  size_t clients_ = 0;  // Connected before the clock started.

  // start: producing begins; measure: the warm-up is over and what is due
  // from here on counts; end: producing stops.
  uint64_t start_ns_ = 0, measure_ns_ = 0, end_ns_ = 0, stop_ns_ = 0, finished_ns_ = 0;
  uv_timer_t warmup_timer_{};
  uint64_t measured_produced_ = 0, measured_consumed_ = 0;  // Records timed from measure_ns_ on.
  bool producing_ = true;
  int appends_in_flight_ = 0;  // Over all producers: the drain is over when it reaches 0.
  uint64_t produced_ = 0, consumed_ = 0, append_errors_ = 0, order_errors_ = 0, subscription_errors_ = 0;
  bool unsustainable_ = false;
  LatencyHistogram append_all_, e2e_all_, append_second_, e2e_second_;
  uint64_t produced_mark_ = 0, consumed_mark_ = 0;
  double cpu_start_ = 0, cpu_mark_ = 0, user_start_ = 0, sys_start_ = 0;
  uint64_t mark_ns_ = 0;
  uint64_t catch_up_start_ns_ = 0, last_delivery_ns_ = 0;
  uv_timer_t progress_timer_{};
  uv_timer_t check_timer_{};
  uint64_t check_deadline_ns_ = 0, check_consumed_mark_ = 0;
  bool consumed_all_ = false;
};

bool Bench::set_up() {
  const auto colon = o_.server.rfind(':');
  if (colon == std::string::npos) {
    fmt::print(stderr, "runnel-bench: --server must be HOST:PORT\n");
    return false;
  }
  client_options_.host = o_.server.substr(0, colon);
  client_options_.port = static_cast<uint16_t>(std::stoi(o_.server.substr(colon + 1)));
  client_options_.client_name = "runnel-bench";
  client_options_.token = o_.token;
  client_options_.tls = o_.tls || !o_.tls_ca.empty();
  client_options_.tls_ca_file = o_.tls_ca;
  client_options_.tls_cert_file = o_.tls_cert;
  client_options_.tls_key_file = o_.tls_key;
  client_options_.tls |= !o_.tls_cert.empty();
  client_options_.request_timeout_ms = 10000;
  client_options_.connection_per_shard = !o_.one_connection;
  consumer_client_ = std::make_unique<Client>(loop_, client_options_);
  // Streams of their own for this run, in the bench bucket.
  // Made only if missing: a token may use a bucket it may not create.
  bool answered = false;
  Status bucket_status;
  consumer_client_->get_bucket(o_.bucket, [&answered, &bucket_status](Result<BucketInfo> r) {
    answered = true;
    bucket_status = r.status();
  });
  while (!answered) uv_run(loop_, UV_RUN_ONCE);
  if (bucket_status.code() == ErrorCode::kNotFound) {
    answered = false;
    consumer_client_->create_bucket(o_.bucket, BucketConfig{}, [&answered, &bucket_status](Result<BucketInfo> r) {
      answered = true;
      bucket_status = r.status();
    });
    while (!answered) uv_run(loop_, UV_RUN_ONCE);
  }
  if (!bucket_status.ok() && bucket_status.code() != ErrorCode::kAlreadyExists) {
    fmt::print(stderr, "runnel-bench: cannot create bucket '{}': {}\n", o_.bucket, bucket_status.to_string());
    return false;
  }
  return create_streams();
}

// Creates the streams pipelined, kCreatesInFlight at a time: one by one,
// each waits a round trip and a million take minutes.
bool Bench::create_streams() {
  run_id_ = fmt::format("{}-{}", getpid(), now_ns() / 1000000 % 100000000);
  streams_.resize(static_cast<size_t>(o_.streams));
  const uint64_t t0 = now_ns();
  uint64_t next_progress_ns = t0 + 1'000'000'000;
  create_more();
  while (create_in_flight_ > 0) {
    uv_run(loop_, UV_RUN_ONCE);  // The client's own timer wakes it at least every 20 ms.
    const uint64_t t = now_ns();
    if (!o_.quiet && t >= next_progress_ns) {
      fmt::print(stderr, "[create] {} of {} streams, {:.0f}/s\n", created_, streams_.size(),
                 per_second(static_cast<double>(created_), static_cast<double>(t - t0) / 1e9));
      next_progress_ns += 1'000'000'000;
    }
  }
  create_s_ = static_cast<double>(now_ns() - t0) / 1e9;
  if (!create_error_.empty()) {
    fmt::print(stderr, "runnel-bench: {}\n", create_error_);
    return false;
  }
  return true;
}

void Bench::create_more() {
  while (create_in_flight_ < kCreatesInFlight && create_next_ < streams_.size() && create_error_.empty()) {
    const size_t k = create_next_++;
    streams_[k].name = fmt::format("run-{}/{}", run_id_, k);
    create_in_flight_++;
    consumer_client_->create_stream(o_.bucket, streams_[k].name, std::nullopt, [this, k](Result<StreamInfo> r) {
      create_in_flight_--;
      if (r.ok()) {
        created_++;
      } else if (create_error_.empty()) {  // The first error stops it; those in flight are waited for.
        create_error_ = fmt::format("cannot create stream '{}': {}", streams_[k].name, r.status().to_string());
      }
      create_more();
    });
  }
}

// Waits until every client has a connection, so the clock starts with all
// of them up (10,000 connects take a while and would count as latency).
bool Bench::connect_clients() {
  std::vector<Client*> clients;
  if (consumer_client_) clients.push_back(consumer_client_.get());
  for (auto& c : producer_clients_) clients.push_back(c.get());
  const uint64_t t0 = now_ns();
  uint64_t next_check_ns = t0, next_progress_ns = t0 + 1'000'000'000, deadline_ns = t0 + kStallNs;
  size_t ready = 0;  // clients[0, ready) are up; they are checked in order, each once it is.
  while (ready < clients.size()) {
    uv_run(loop_, UV_RUN_ONCE);
    const uint64_t t = now_ns();
    if (t < next_check_ns) continue;
    next_check_ns = t + 10'000'000;
    const size_t before = ready;
    while (ready < clients.size() && clients[ready]->connections_ready() > 0) ready++;
    if (ready > before) deadline_ns = t + kStallNs;
    if (t >= deadline_ns) {
      // A refused connection is retried quietly: say where the usual limit is.
      fmt::print(stderr,
                 "runnel-bench: only {} of {} clients connected; none more in {} s (runneld takes at most "
                 "server.connections_max connections per shard, 10000 by default)\n",
                 ready, clients.size(), kStallNs / 1'000'000'000);
      return false;
    }
    if (!o_.quiet && t >= next_progress_ns) {
      fmt::print(stderr, "[connect] {} of {} clients connected\n", ready, clients.size());
      next_progress_ns += 1'000'000'000;
    }
  }
  connect_s_ = static_cast<double>(now_ns() - t0) / 1e9;
  clients_ = clients.size();
  return true;
}

int Bench::run() {
  if (!set_up()) return 1;
  padding_.assign(o_.record_size - kStampBytes, 'r');
  // Without consumers it has done its part: its connection would count
  // against the server's limit (10,000 per shard) like a producer's.
  if (o_.consumers == 0) consumer_client_.reset();
  producer_clients_.reserve(static_cast<size_t>(o_.connections));
  for (int c = 0; c < o_.connections; c++) producer_clients_.push_back(std::make_unique<Client>(loop_, client_options_));
  if (!connect_clients()) return 1;

  // Subscriptions first, from seq_num 0 of the new streams, so they see
  // everything; under --catch-up only once every append is acknowledged.
  if (!o_.catch_up) subscribe_all();

  // From here on: making streams and connecting clients is not the load's cost.
  cpu_start_ = cpu_mark_ = cpu_seconds(&user_start_, &sys_start_);
  start_ns_ = mark_ns_ = now_ns();
  measure_ns_ = start_ns_ + static_cast<uint64_t>(o_.warmup_s * 1e9);
  end_ns_ = measure_ns_ + static_cast<uint64_t>(o_.duration_s * 1e9);
  // The warm-up runs the same load so the first touch of fresh memory (both
  // processes' buffers; on a VM each new page costs ~10 us), new connections'
  // slow start and the like are over before anything is timed.
  uv_timer_init(loop_, &warmup_timer_);
  warmup_timer_.data = this;
  uv_timer_start(&warmup_timer_, [](uv_timer_t* t) {
    auto* b = static_cast<Bench*>(t->data);
    b->cpu_start_ = cpu_seconds(&b->user_start_, &b->sys_start_);
  }, static_cast<uint64_t>(o_.warmup_s * 1000), 0);
  start_producers();
  uv_timer_init(loop_, &progress_timer_);
  progress_timer_.data = this;
  uv_timer_start(&progress_timer_, [](uv_timer_t* t) { static_cast<Bench*>(t->data)->progress(); }, 1000, 1000);
  uv_run(loop_, UV_RUN_DEFAULT);
  report();
  const bool ok = append_errors_ == 0 && order_errors_ == 0 && subscription_errors_ == 0 && consumed_all_ &&
                  !unsustainable_;
  return ok ? 0 : 1;
}

// Consumer c takes the streams k with k % consumers == c; with more consumers
// than streams, each stream gets several (fan-out).
void Bench::subscribe_all() {
  for (int c = 0; c < o_.consumers; c++) {
    shares_of(c, o_.consumers, o_.streams, [this](size_t k) {
      auto s = std::make_unique<Subscription>();
      s->stream = k;
      Subscription* sp = s.get();
      SubscribeOptions so;
      so.start = Start::seq_num(0);
      so.credit_bytes = kSubscriptionCredit;
      s->handle = consumer_client_->subscribe(
          o_.bucket, streams_[k].name, so,
          [this, sp](std::vector<Record>& records, uint32_t) { on_records(*sp, records); },
          [this](Status end) {
            if (end.code() != ErrorCode::kShuttingDown) {
              subscription_errors_++;
              fmt::print(stderr, "runnel-bench: a subscription ended: {}\n", end.to_string());
            }
          });
      subs_.push_back(std::move(s));
    });
  }
}

void Bench::start_producers() {
  for (int p = 0; p < o_.producers; p++) {
    auto prod = std::make_unique<Producer>();
    prod->id = p;
    prod->client = producer_clients_[static_cast<size_t>(p % o_.connections)].get();
    // Producer p writes the streams k with k % producers == p; with more
    // producers than streams, several share one.
    Producer* pp = prod.get();
    shares_of(p, o_.producers, o_.streams, [pp](size_t k) { pp->streams.push_back(k); });
    prod->bench = this;
    // Under --rate, producers are spread over one interval rather than all
    // sending at the same instants: in step they would offer bursts of
    // `producers` batches and measure the bursts, not the rate.
    prod->next_due_ns = start_ns_;
    if (o_.rate > 0) {
      const double interval_ns = 1e9 * o_.batch_records / (o_.rate / o_.producers);
      prod->next_due_ns += static_cast<uint64_t>(interval_ns * p / o_.producers);
    }
    uv_timer_init(loop_, &prod->timer);
    prod->timer.data = prod.get();
    producers_.push_back(std::move(prod));
  }
  for (auto& p : producers_) pump(*p);
}

// Sends what the schedule (or, without --rate, the window) allows.
void Bench::pump(Producer& p) {
  if (!producing_) return;
  const uint64_t t = now_ns();
  if (t >= end_ns_) return finish_producing();
  if (o_.rate <= 0) {
    while (p.in_flight < o_.window) send(p, now_ns());
    return;
  }
  // Every batch has its intended time; late ones queue and are sent as the
  // window frees, their wait counted in their latency. Timers tick in
  // milliseconds, so batches due within the next one go now: a batch sent
  // early is timed from when it was sent, a late one from when it was due.
  const double per_producer = o_.rate / o_.producers;
  const auto interval_ns = static_cast<uint64_t>(1e9 * o_.batch_records / per_producer);
  constexpr uint64_t kTimerSlackNs = 1000000;
  while (p.next_due_ns <= t + kTimerSlackNs) {
    p.due.push_back(p.next_due_ns);
    p.next_due_ns += interval_ns;
  }
  if (p.due.size() > kBacklogMax) {
    unsustainable_ = true;
    fmt::print(stderr, "runnel-bench: the server cannot keep up with --rate {}; stopping\n", o_.rate);
    return finish_producing();
  }
  while (p.in_flight < o_.window && !p.due.empty()) {
    const uint64_t intended = p.due.front();
    p.due.pop_front();
    send(p, intended);
  }
  const uint64_t wait_ms = std::max<uint64_t>(1, (p.next_due_ns - t - kTimerSlackNs) / 1000000);
  uv_timer_start(&p.timer, [](uv_timer_t* timer) {
    auto* prod = static_cast<Producer*>(timer->data);
    prod->bench->pump(*prod);
  }, wait_ms, 0);
}

void Bench::send(Producer& p, uint64_t intended_ns) {
  const size_t stream = p.streams[p.next_stream++ % p.streams.size()];
  // Timed from when it was due, or from now if sent early (see pump()).
  const uint64_t from_ns = std::min(intended_ns, now_ns());
  std::vector<AppendRecord> batch(o_.batch_records);
  for (AppendRecord& r : batch) {
    char stamp[kStampBytes];
    const auto producer = static_cast<uint32_t>(p.id);
    const uint64_t number = p.next_record++;
    std::memcpy(stamp, &from_ns, 8);
    std::memcpy(stamp + 8, &producer, 4);
    std::memcpy(stamp + 12, &number, 8);
    r.body.reserve(o_.record_size);
    r.body.assign(stamp, kStampBytes);
    r.body.append(padding_);
  }
  p.in_flight++;
  appends_in_flight_++;
  p.client->append(o_.bucket, streams_[stream].name, batch, {}, [this, &p, stream, from_ns](Result<AppendAck> ack) {
    p.in_flight--;
    appends_in_flight_--;
    if (ack.ok()) {
      const uint64_t us = (now_ns() - from_ns) / 1000;
      const uint64_t n = ack->end_seq - ack->start_seq;
      if (from_ns >= measure_ns_) {
        append_all_.record(us);
        measured_produced_ += n;
      }
      append_second_.record(us);
      produced_ += n;
      streams_[stream].acked += n;
    } else if (append_errors_++ < 5) {
      fmt::print(stderr, "runnel-bench: append failed: {}\n", ack.status().to_string());
    }
    if (producing_) {
      pump(p);
    } else if (appends_in_flight_ == 0) {
      all_acked();
    }
  });
}

void Bench::on_records(Subscription& s, std::vector<Record>& records) {
  const uint64_t t = now_ns();
  last_delivery_ns_ = t;
  // Under --catch-up the stamps are old by design: only the order is checked.
  const bool timed = !o_.catch_up;
  for (const Record& r : records) {
    if (r.seq_num != s.next_seq) {
      if (order_errors_++ < 5) {
        fmt::print(stderr, "runnel-bench: stream {} delivered seq_num {} where {} was due (a duplicate or a gap)\n",
                   streams_[s.stream].name, r.seq_num, s.next_seq);
      }
    }
    s.next_seq = r.seq_num + 1;
    if (timed && r.body.size() >= kStampBytes) {
      uint64_t intended = 0;
      std::memcpy(&intended, r.body.data(), 8);
      const uint64_t us = t > intended ? (t - intended) / 1000 : 0;
      if (intended >= measure_ns_) {
        e2e_all_.record(us);
        measured_consumed_++;
      }
      e2e_second_.record(us);
    }
  }
  consumed_ += records.size();
}

void Bench::progress() {
  const uint64_t t = now_ns();
  double user = 0, sys = 0;
  const double cpu = cpu_seconds(&user, &sys);
  const double secs = static_cast<double>(t - mark_ns_) / 1e9;
  const double produced_rate = static_cast<double>(produced_ - produced_mark_) / secs;
  const double consumed_rate = static_cast<double>(consumed_ - consumed_mark_) / secs;
  if (!o_.quiet) {
    const std::string e2e = o_.catch_up ? fmt::format("{:8.1f} MB/s", consumed_rate * o_.record_size / 1e6)
                                        : fmt::format("e2e p50 {:6.2f} ms p99 {:6.2f} ms",
                                                      static_cast<double>(e2e_second_.percentile(0.5)) / 1000,
                                                      static_cast<double>(e2e_second_.percentile(0.99)) / 1000);
    fmt::print(stderr,
               "[{:4.0f}s] append {:7.3f} M rec/s {:8.1f} MB/s p50 {:6.2f} ms p99 {:6.2f} ms | consume {:7.3f} M rec/s "
               "{} | bench cpu {:3.0f}%\n",
               static_cast<double>(t - start_ns_) / 1e9, produced_rate / 1e6, produced_rate * o_.record_size / 1e6,
               static_cast<double>(append_second_.percentile(0.5)) / 1000,
               static_cast<double>(append_second_.percentile(0.99)) / 1000, consumed_rate / 1e6, e2e,
               100 * (cpu - cpu_mark_) / secs);
  }
  append_second_.clear();
  e2e_second_.clear();
  produced_mark_ = produced_;
  consumed_mark_ = consumed_;
  cpu_mark_ = cpu;
  mark_ns_ = t;
}

void Bench::finish_producing() {
  if (!producing_) return;
  producing_ = false;
  stop_ns_ = now_ns();
  for (auto& p : producers_) uv_timer_stop(&p->timer);
  if (appends_in_flight_ == 0) all_acked();
}

// Every producer has stopped and every append is answered: under --catch-up
// the consumers start on the backlog now.
void Bench::all_acked() {
  if (o_.catch_up) {
    catch_up_start_ns_ = now_ns();
    subscribe_all();
  }
  check_consumed();
}

// Waits for the subscribers to reach every stream's end (giving up after
// 30 s without progress), then closes everything so the loop ends.
void Bench::check_consumed() {
  check_deadline_ns_ = now_ns() + kStallNs;
  check_consumed_mark_ = consumed_;
  uv_timer_init(loop_, &check_timer_);
  check_timer_.data = this;
  auto check = [](uv_timer_t* t) {
    auto* b = static_cast<Bench*>(t->data);
    bool all = true;
    for (const auto& s : b->subs_) all &= s->next_seq >= b->streams_[s->stream].acked;
    if (b->consumed_ != b->check_consumed_mark_) {
      b->check_consumed_mark_ = b->consumed_;
      b->check_deadline_ns_ = now_ns() + kStallNs;
    }
    if (!all && now_ns() < b->check_deadline_ns_ && b->subscription_errors_ == 0) return;
    b->consumed_all_ = all;
    b->finished_ns_ = now_ns();
    uv_timer_stop(t);
    uv_close(reinterpret_cast<uv_handle_t*>(t), nullptr);
    uv_timer_stop(&b->progress_timer_);
    uv_close(reinterpret_cast<uv_handle_t*>(&b->progress_timer_), nullptr);
    for (auto& p : b->producers_) uv_close(reinterpret_cast<uv_handle_t*>(&p->timer), nullptr);
    uv_timer_stop(&b->warmup_timer_);
    uv_close(reinterpret_cast<uv_handle_t*>(&b->warmup_timer_), nullptr);
    for (auto& c : b->producer_clients_) c->close();
    if (b->consumer_client_) b->consumer_client_->close();
  };
  uv_timer_start(&check_timer_, check, 0, 10);
}

void Bench::report() {
  double user = 0, sys = 0;
  const double cpu = cpu_seconds(&user, &sys) - cpu_start_;
  user -= user_start_;
  sys -= sys_start_;
  const double cpu_percent = 100 * per_second(cpu, static_cast<double>(finished_ns_ - measure_ns_) / 1e9);
  // Rates and latencies are of what was due after the warm-up; the
  // exactly-once check is of everything.
  const double secs = static_cast<double>(stop_ns_ - measure_ns_) / 1e9;
  const double mb = static_cast<double>(produced_) * o_.record_size / 1e6;
  const auto measured_produced = static_cast<double>(measured_produced_);
  const auto measured_consumed = static_cast<double>(measured_consumed_);
  uint64_t expected = 0;
  for (const auto& s : subs_) expected += streams_[s->stream].acked;
  if (!consumed_all_) {
    fmt::print(stderr, "runnel-bench: consumed {} of the {} records the subscriptions should have seen\n", consumed_,
               expected);
  }
  const bool exactly_once = consumed_all_ && order_errors_ == 0;
  // Catch-up: from the first subscribe to the last record delivered. Every
  // body is --record-size bytes, so bytes are counted per record, not summed.
  const double catch_up_s =
      static_cast<double>(std::max(last_delivery_ns_, catch_up_start_ns_) - catch_up_start_ns_) / 1e9;
  const double catch_up_bytes = static_cast<double>(consumed_) * o_.record_size;
  const double create_rate = per_second(static_cast<double>(o_.streams), create_s_);
  auto stats = [&](const LatencyHistogram& h, double records) {
    return fmt::format(
        R"({{"records_per_s":{:.0f},"mb_per_s":{:.1f},"p50_us":{},"p90_us":{},"p99_us":{},"p999_us":{},"max_us":{}}})",
        records / secs, records * o_.record_size / 1e6 / secs, h.percentile(0.5), h.percentile(0.9),
        h.percentile(0.99), h.percentile(0.999), h.max());
  };
  if (o_.json) {
    // Under --catch-up there is no "e2e" (its stamps are old by design) but a "catch_up".
    const std::string reading =
        o_.catch_up
            ? fmt::format(R"("catch_up":{{"records":{},"bytes":{:.0f},"seconds":{:.3f},"records_per_s":{:.0f},)"
                          R"("mb_per_s":{:.1f}}})",
                          consumed_, catch_up_bytes, catch_up_s, per_second(static_cast<double>(consumed_), catch_up_s),
                          per_second(catch_up_bytes / 1e6, catch_up_s))
            : fmt::format(R"("e2e":{})", stats(e2e_all_, measured_consumed));
    fmt::print(
        R"({{"connections":{},"streams":{},"create_s":{:.3f},"create_per_s":{:.0f},"connect_s":{:.3f},)"
        R"("produced":{},"consumed":{},"exactly_once":{},"errors":{},"warmup_s":{:.3f},"duration_s":{:.3f},)"
        R"("append":{},{},)"
        R"("bench_cpu":{{"user_s":{:.2f},"sys_s":{:.2f},"percent_of_a_core":{:.0f}}}}})"
        "\n",
        o_.connections, o_.streams, create_s_, create_rate, connect_s_, produced_, consumed_,
        exactly_once ? "true" : "false", append_errors_ + order_errors_ + subscription_errors_, o_.warmup_s, secs,
        stats(append_all_, measured_produced), reading, user, sys, cpu_percent);
    return;
  }
  auto line = [&](const char* what, const LatencyHistogram& h, double records) {
    fmt::print("{:7} {:>12.0f} rec/s {:>9.1f} MB/s   p50 {:>8.3f}  p90 {:>8.3f}  p99 {:>8.3f}  p99.9 {:>8.3f}  max {:>8.3f} ms\n",
               what, records / secs, records * o_.record_size / 1e6 / secs, h.percentile(0.5) / 1e3,
               h.percentile(0.9) / 1e3, h.percentile(0.99) / 1e3, h.percentile(0.999) / 1e3,
               static_cast<double>(h.max()) / 1e3);
  };
  fmt::print("runnel-bench: {} producers on {} connections, {} consumers, {} streams, {} B records × {} per batch, "
             "{:.1f} s{}{}{}\n",
             o_.producers, o_.connections, o_.consumers, o_.streams, o_.record_size, o_.batch_records, secs,
             o_.warmup_s > 0 ? fmt::format(" after {:.1f} s of warm-up", o_.warmup_s) : std::string(),
             o_.rate > 0 ? fmt::format(", offered {:.0f} rec/s", o_.rate) : std::string(", as fast as acks come"),
             o_.catch_up ? ", catch-up" : "");
  fmt::print("created {} streams in {:.3f} s ({:.0f}/s); {} clients connected in {:.3f} s\n", o_.streams, create_s_,
             create_rate, clients_, connect_s_);
  fmt::print("produced {} records ({:.1f} MB), consumed {}{}\n", produced_, mb, consumed_,
             exactly_once ? " — every record exactly once, in order" : " — NOT all exactly once");
  line("append", append_all_, measured_produced);
  if (o_.catch_up) {
    fmt::print("catch-up {} records ({:.1f} MB) in {:.3f} s: {:.0f} rec/s {:.1f} MB/s\n", consumed_,
               catch_up_bytes / 1e6, catch_up_s, per_second(static_cast<double>(consumed_), catch_up_s),
               per_second(catch_up_bytes / 1e6, catch_up_s));
  } else {
    line("e2e", e2e_all_, measured_consumed);
  }
  fmt::print("bench cpu: {:.2f} s user + {:.2f} s sys = {:.0f}% of a core\n", user, sys, cpu_percent);
}

// Each client holds a connection per server shard: 10,000 of them need more
// descriptors than the usual soft limit (1024), so take the hard one.
void raise_descriptor_limit() {
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0 || limit.rlim_cur >= limit.rlim_max) return;
  limit.rlim_cur = limit.rlim_max;
  if (setrlimit(RLIMIT_NOFILE, &limit) != 0) {
    fmt::print(stderr, "runnel-bench: cannot raise the open-file limit to {}: {}\n", limit.rlim_max,
               std::strerror(errno));
  }
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  CLI::App app{"runnel-bench: producers and consumers against runneld, with ack and end-to-end latency"};
  app.add_option("--server", o.server, "HOST:PORT of runneld's binary protocol")->capture_default_str();
  app.add_option("--bucket", o.bucket, "bucket the run's streams are made in")->capture_default_str();
  app.add_option("--token", o.token, "access token, for a server run with --auth")->envname("RUNNEL_TOKEN");
  app.add_flag("--tls", o.tls, "speak TLS, trusting the system's CAs");
  app.add_option("--tls-ca", o.tls_ca, "speak TLS, trusting this CA certificate (PEM)");
  app.add_option("--tls-cert", o.tls_cert, "with TLS: present this client certificate (PEM)");
  app.add_option("--tls-key", o.tls_key, "the client certificate's private key (PEM)");
  app.add_option("--producers", o.producers, "producers (each with --window batches in flight)")
      ->capture_default_str()->check(CLI::Range(1, 100000));
  app.add_option("--connections", o.connections,
                 "producer clients, each with a connection per server shard; producer p uses client p % N")
      ->capture_default_str()->check(CLI::Range(1, 100000));
  app.add_option("--consumers", o.consumers, "consumers (subscriptions spread over the streams; 0: none)")
      ->capture_default_str()->check(CLI::Range(0, 100000));
  app.add_option("--streams", o.streams, "streams, made fresh for this run")->capture_default_str()->check(CLI::Range(1, 1000000));
  app.add_option("--record-size", o.record_size, "bytes per record body (at least 20)")
      ->capture_default_str()->check(CLI::Range(static_cast<uint32_t>(kStampBytes), 1u << 20));
  app.add_option("--batch-records", o.batch_records, "records per append")->capture_default_str()->check(CLI::Range(1, 1000));
  app.add_option("--duration", o.duration_s, "seconds of producing")->capture_default_str()->check(CLI::Range(0.1, 86400.0));
  app.add_option("--warmup", o.warmup_s,
                 "seconds of the same load before --duration, not counted in any figure but the exactly-once check")
      ->capture_default_str()->check(CLI::Range(0.0, 3600.0));
  app.add_option("--rate", o.rate, "records/s offered over all producers (0: as fast as acks come back)")->capture_default_str();
  app.add_option("--window", o.window, "batches in flight per producer")->capture_default_str()->check(CLI::Range(1, 32));
  app.add_flag("--catch-up", o.catch_up,
               "subscribe only once producing is over and every append acknowledged, then read the backlog from "
               "seq_num 0 and report its read throughput (no end-to-end latency)");
  app.add_flag("--one-connection", o.one_connection,
               "each client keeps one connection instead of one per shard; requests for streams of another shard "
               "are forwarded by the server (the cost of cross-shard hops)");
  app.add_flag("--json", o.json, "print the final report as one JSON object");
  app.add_flag("--quiet", o.quiet, "no progress lines");
  CLI11_PARSE(app, argc, argv);
  if (static_cast<uint64_t>(o.record_size) * o.batch_records > (1u << 20)) {
    fmt::print(stderr, "runnel-bench: a batch (--record-size × --batch-records) must fit in 1 MiB\n");
    return 2;
  }
  if (o.catch_up && o.consumers == 0) {
    fmt::print(stderr, "runnel-bench: --catch-up needs consumers to read the backlog\n");
    return 2;
  }
  raise_descriptor_limit();
  uv_loop_t loop;
  uv_loop_init(&loop);
  int rc = 0;
  {
    Bench bench(&loop, o);
    rc = bench.run();
  }
  uv_run(&loop, UV_RUN_DEFAULT);
  uv_loop_close(&loop);
  return rc;
}

}  // namespace runnel::bench

int main(int argc, char** argv) { return runnel::bench::main(argc, argv); }
