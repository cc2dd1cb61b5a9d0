// librunnel's asynchronous client: connections, routing, pipelining,
// resends, reconnects and subscriptions on one libuv loop. See
// include/runnel/client.h for what it promises.

#include "runnel/client.h"

#include <netdb.h>
#include <sys/socket.h>
#include <uv.h>

#include <algorithm>
#include <cstring>
#include <deque>
#include <map>
#include <random>
#include <unordered_map>

#include "proto/client/convert.h"
#include "proto/limits.h"
#include "proto/records.h"
#include "proto/tls/tls_session.h"
#include "proto/wire.h"

namespace runnel::client {

namespace {
// A status of the code shared with the server (the TLS session's) as the library's.
Status to_client_status(const runnel::Status& s) {
  return s.is_ok() ? Status() : Status(static_cast<ErrorCode>(s.code()), s.message(), s.detail());
}
}  // namespace

using wire::Opcode;

namespace {

constexpr uint32_t kTickMs = 20;
constexpr size_t kReadChunk = 64 * 1024;
constexpr uint32_t kAnyShard = UINT32_MAX;

}  // namespace

struct Connection;
struct StreamState;

// One call on its way: its encoded body (re-framed with a fresh request id
// on each send, so it can go out again on another connection).
struct Request {
  uint64_t order = 0;  // Call order: resends keep it.
  Opcode opcode = Opcode::kPing;
  std::string body;
  bool resend_safe = false;
  uint32_t shard = kAnyShard;     // The owner of the stream it names.
  StreamState* stream = nullptr;  // Idempotent appends: their stream's window.
  uint64_t deadline_ms = 0;       // 0: none.
  uint32_t wait_ms = 0;           // A long poll's wait, added to its deadline.
  Connection* conn = nullptr;     // Where it is in flight, if it is.
  uint32_t wire_id = 0;
  std::function<void(Status, std::string_view body)> done;
};

// A resent append is answered from the server's memory only while it is in
// the server's window: never have more in flight than the window holds.
static_assert(kIdempotentAppendsInFlight <= kProducerWindow,
              "the client's idempotent appends in flight must fit the server's producer window");

// A stream's idempotent appends: at most kIdempotentAppendsInFlight at once,
// all in flight on one connection so they reach the server in the order
// they were numbered. Forgotten when idle.
struct StreamState {
  std::string key;  // "bucket/stream".
  uint32_t in_flight = 0;
  Connection* conn = nullptr;
  std::deque<Request*> backlog;
};

struct Subscription {
  uint64_t handle = 0;
  std::string bucket, stream;
  SubscribeOptions options;
  std::optional<uint64_t> next_seq;  // Known once positioned: where a resume starts.
  Client::RecordsHandler on_records;
  StatusCallback on_end;
  Connection* conn = nullptr;  // Where it is active, if it is.
  uint32_t wire_id = 0;
  bool manual_credit = false;
  uint64_t ungranted = 0;  // Consumed bytes not yet given back.
  uint64_t retry_at_ms = 0;
  // Until the server first confirms it, a subscription that cannot reach a
  // server ends (unavailable) at this time; once confirmed it resumes
  // however long the server is away.
  uint64_t confirm_deadline_ms = 0;
  bool confirmed = false;
};

struct Connection {
  Client::Impl* owner = nullptr;
  uv_tcp_t tcp{};
  uv_connect_t connect_req{};
  uv_write_t write_req{};
  enum class State { kConnecting, kHello, kReady, kClosed } state = State::kConnecting;
  uint32_t shard = kAnyShard;
  uint32_t heartbeat_ms = 0;
  uint32_t frame_bytes_max = wire::kDefaultFrameBytesMax;
  std::string in;
  size_t in_len = 0;
  std::string out, writing;
  // Over TLS: the session, and the buffer ciphertext is read into (the
  // plaintext goes to `in`; `out` is sealed into `writing`).
  std::unique_ptr<TlsSession> tls;
  std::string tls_in;
  bool write_busy = false;
  uint32_t next_id = 1;
  std::unordered_map<uint32_t, Request*> in_flight;
  std::unordered_map<uint32_t, Subscription*> subs;
  uint64_t last_recv_ms = 0, last_send_ms = 0;
};

class Client::Impl {
 public:
  Impl(uv_loop_t* loop, ClientOptions options);

  void close(std::function<void()> done, bool destroy_when_closed);
  void submit(Request* r);
  uint64_t subscribe(const std::string& bucket, const std::string& stream, const SubscribeOptions& options,
                     RecordsHandler on_records, StatusCallback on_end);
  void unsubscribe(uint64_t handle);
  void set_manual_credit(uint64_t handle, bool manual);
  void grant_credit(uint64_t handle, uint32_t bytes);
  StreamState* stream_state(const std::string& bucket, const std::string& stream) {
    std::string key = bucket + '/' + stream;
    StreamState& state = streams_[key];
    if (state.key.empty()) state.key = std::move(key);
    return &state;
  }
  // Producer numbers rise across all streams: each stream sees its appends'
  // numbers rising, which is all the server asks (gaps are fine).
  uint64_t next_producer_seq() { return ++producer_seq_; }
  uint32_t shard_for(std::string_view bucket, std::string_view stream) const {
    return shard_count_ == 0 ? kAnyShard : wire::owner_shard(bucket, stream, shard_count_);
  }
  Request* new_request(Opcode opcode, bool resend_safe, std::function<void(Status, std::string_view)> done) {
    auto* r = new Request;
    r->order = ++order_;
    r->opcode = opcode;
    r->resend_safe = resend_safe;
    r->done = std::move(done);
    return r;
  }

  uv_loop_t* loop_;
  ClientOptions options_;
  uint64_t producer_id_ = 0;
  uint64_t producer_seq_ = 0;
  uint32_t shard_count_ = 0;

 private:
  friend class Client;
  uint64_t now() const { return uv_now(loop_); }
  void tick();
  // Why a call that never reached a server failed.
  Status not_connected_status() const;
  void maintain_connections();
  void open_connection();
  void on_connected(Connection* c, int status);
  void on_hello(Connection* c, Status st, std::string_view body);
  void on_read(Connection* c, ssize_t n);
  // The server refused this client (its hello, or TLS): waiting calls and
  // subscriptions get the reason instead of retrying into a timeout.
  void refused(Connection* c, Status st);
  void on_frame(Connection* c, const wire::FrameHeader& h, std::string_view body);
  void on_push(Connection* c, const wire::FrameHeader& h, std::string_view body);
  void lost(Connection* c, const std::string& why);
  // Takes the connection out of use and closes it; returns the requests
  // that were in flight on it, in call order.
  std::vector<Request*> close_connection(Connection* c);
  void handle_closed();

  Connection* route(const Request* r);
  void dispatch(Request* r);
  void send(Connection* c, Request* r);
  void write_frame(Connection* c, Opcode opcode, uint16_t flags, uint32_t id, std::string_view body);
  void flush(Connection* c);
  uint32_t take_id(Connection* c);
  void finish(Request* r, Status st, std::string_view body);
  void send_waiting();

  void start_subscription(Subscription* s);
  void end_subscription(Subscription* s, Status st);
  void pause_subscription(Subscription* s, uint64_t retry_after_ms);

  uv_timer_t timer_{};
  std::vector<Connection*> conns_;
  std::vector<Connection*> by_shard_;
  std::deque<Request*> waiting_;
  std::unordered_map<std::string, StreamState> streams_;
  std::map<uint64_t, Subscription*> subs_;
  uint64_t next_sub_handle_ = 1;
  uint64_t order_ = 0;

  sockaddr_storage addr_{};
  Status resolve_error_;  // Also: a TLS setup that cannot work (a bad CA file).
  std::shared_ptr<const TlsContext> tls_;
  Status hello_error_;          // Why the last hello was refused (unauthenticated...).
  std::string connect_error_;   // Why the last connection attempt failed ("connection refused").
  uint32_t failures_ = 0;
  uint32_t surplus_ = 0;  // Connections that landed on a shard already covered.
  uint64_t next_connect_ms_ = 0;
  std::mt19937_64 rng_;

  bool closing_ = false;
  bool destroy_when_closed_ = false;
  int open_handles_ = 0;
  std::function<void()> closed_;
};

// --- set-up and tear-down ---------------------------------------------------

Client::Impl::Impl(uv_loop_t* loop, ClientOptions options) : loop_(loop), options_(std::move(options)) {
  std::random_device seed;
  rng_.seed((static_cast<uint64_t>(seed()) << 32) ^ seed() ^ static_cast<uint64_t>(uv_hrtime()));
  producer_id_ = rng_() | 1;  // Never 0.

  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  const std::string port = std::to_string(options_.port);
  const int rc = getaddrinfo(options_.host.c_str(), port.c_str(), &hints, &found);
  if (rc != 0 || found == nullptr) {
    resolve_error_ = Status(ErrorCode::kInvalidArgument,
                            "cannot resolve host '" + options_.host + "': " + gai_strerror(rc));
  } else {
    std::memcpy(&addr_, found->ai_addr, found->ai_addrlen);
    freeaddrinfo(found);
  }

  if (options_.tls && resolve_error_.ok()) {
    auto context = TlsContext::for_client(options_.tls_ca_file, options_.tls_cert_file, options_.tls_key_file);
    if (!context.is_ok()) {
      resolve_error_ = Status(ErrorCode::kInvalidArgument, context.status().message());
    } else {
      tls_ = std::move(*context);
    }
  }

  uv_timer_init(loop_, &timer_);
  timer_.data = this;
  open_handles_++;
  uv_timer_start(&timer_, [](uv_timer_t* t) { static_cast<Impl*>(t->data)->tick(); }, kTickMs, kTickMs);
  maintain_connections();
}

void Client::Impl::close(std::function<void()> done, bool destroy_when_closed) {
  destroy_when_closed_ |= destroy_when_closed;
  if (done) {
    closed_ = closed_ ? [first = std::move(closed_), then = std::move(done)] {
      first();
      then();
    } : std::move(done);
  }
  if (closing_) {
    if (open_handles_ == 0) {  // Closed already: nothing will call back.
      auto callback = std::move(closed_);
      if (destroy_when_closed_) delete this;
      if (callback) callback();
    }
    return;
  }
  closing_ = true;
  const Status stopping(ErrorCode::kShuttingDown, "the client is closing");
  std::vector<Request*> all;
  for (Request* r : waiting_) all.push_back(r);
  waiting_.clear();
  for (auto& entry : streams_) {
    for (Request* r : entry.second.backlog) all.push_back(r);
    entry.second.backlog.clear();
  }
  for (Connection* c : conns_) {
    for (auto& entry : c->in_flight) all.push_back(entry.second);
    c->in_flight.clear();
  }
  std::sort(all.begin(), all.end(), [](const Request* a, const Request* b) { return a->order < b->order; });
  for (Request* r : all) {
    r->stream = nullptr;  // No window to advance any more.
    finish(r, stopping, {});
  }
  auto subs = std::move(subs_);
  subs_.clear();
  for (auto& entry : subs) {
    Subscription* s = entry.second;
    if (s->on_end) s->on_end(stopping);
    delete s;
  }
  for (Connection* c : std::vector<Connection*>(conns_)) (void)close_connection(c);  // In flight: finished above.
  uv_timer_stop(&timer_);
  uv_close(reinterpret_cast<uv_handle_t*>(&timer_), [](uv_handle_t* h) { static_cast<Impl*>(h->data)->handle_closed(); });
}

void Client::Impl::handle_closed() {
  if (--open_handles_ > 0) return;
  auto done = std::move(closed_);
  const bool destroy = destroy_when_closed_;
  if (destroy) delete this;
  if (done) done();
}

// --- connections --------------------------------------------------------------

void Client::Impl::maintain_connections() {
  if (closing_ || !resolve_error_.ok()) return;
  bool connecting = false, any_ready = false;
  for (Connection* c : conns_) {
    connecting |= c->state == Connection::State::kConnecting || c->state == Connection::State::kHello;
    any_ready |= c->state == Connection::State::kReady;
  }
  if (connecting || now() < next_connect_ms_) return;
  bool want = !any_ready;
  if (any_ready && options_.connection_per_shard && surplus_ < 8 * shard_count_) {
    for (Connection* c : by_shard_) want |= c == nullptr;
  }
  if (want) open_connection();
}

void Client::Impl::open_connection() {
  auto* c = new Connection;
  c->owner = this;
  uv_tcp_init(loop_, &c->tcp);
  c->tcp.data = c;
  if (tls_ != nullptr) {
    c->tls =
        std::make_unique<TlsSession>(tls_, options_.tls_server_name.empty() ? options_.host : options_.tls_server_name);
  }
  open_handles_++;
  conns_.push_back(c);
  uv_tcp_nodelay(&c->tcp, 1);
  c->connect_req.data = c;
  const int rc = uv_tcp_connect(&c->connect_req, &c->tcp, reinterpret_cast<const sockaddr*>(&addr_),
                                [](uv_connect_t* req, int status) {
                                  auto* conn = static_cast<Connection*>(req->data);
                                  if (conn->state == Connection::State::kClosed) return;
                                  conn->owner->on_connected(conn, status);
                                });
  if (rc != 0) lost(c, std::string("connect: ") + uv_strerror(rc));
}

void Client::Impl::on_connected(Connection* c, int status) {
  if (status != 0) return lost(c, std::string("connect: ") + uv_strerror(status));
  c->state = Connection::State::kHello;
  c->last_recv_ms = c->last_send_ms = now();
  uv_read_start(
      reinterpret_cast<uv_stream_t*>(&c->tcp),
      [](uv_handle_t* h, size_t, uv_buf_t* buf) {
        auto* conn = static_cast<Connection*>(h->data);
        if (conn->tls != nullptr) {
          if (conn->tls_in.size() < kReadChunk) conn->tls_in.resize(kReadChunk);
          *buf = uv_buf_init(conn->tls_in.data(), static_cast<unsigned>(conn->tls_in.size()));
          return;
        }
        if (conn->in.size() - conn->in_len < kReadChunk) conn->in.resize(conn->in_len + kReadChunk);
        buf->base = conn->in.data() + conn->in_len;
        buf->len = conn->in.size() - conn->in_len;
      },
      [](uv_stream_t* s, ssize_t n, const uv_buf_t*) {
        auto* conn = static_cast<Connection*>(s->data);
        conn->owner->on_read(conn, n);
      });
  wire::Hello hello;
  hello.client_name = options_.client_name;
  hello.token = options_.token;
  std::string body;
  wire::Writer w(&body);
  wire::encode(w, hello);
  Request* r = new_request(Opcode::kHello, false, [this, c](Status st, std::string_view answer) {
    if (st.code() == ErrorCode::kShuttingDown && closing_) return;
    on_hello(c, std::move(st), answer);
  });
  r->body = std::move(body);
  send(c, r);
}

void Client::Impl::refused(Connection* c, Status st) {
  // The server refuses this client (a bad token, no common version, a TLS
  // certificate that does not verify): the calls waiting for a connection
  // get the reason instead of a timeout.
  hello_error_ = st;
  std::deque<Request*> waiting;
  waiting.swap(waiting_);
  for (Request* r : waiting) finish(r, st, {});
  // Retrying will not change the answer: subscriptions waiting for a
  // connection end with it too.
  if (st.code() == ErrorCode::kUnauthenticated || st.code() == ErrorCode::kPermissionDenied) {
    std::vector<Subscription*> ended;
    for (const auto& [handle, sub] : subs_) {
      if (sub->conn == nullptr) ended.push_back(sub);
    }
    for (Subscription* sub : ended) end_subscription(sub, st);
  }
  lost(c, "refused: " + st.to_string());
}

void Client::Impl::on_hello(Connection* c, Status st, std::string_view body) {
  if (c->state != Connection::State::kHello) return;  // Lost meanwhile.
  wire::HelloOk ok;
  if (st.ok() && !wire::decode_body(body, &ok)) st = Status(ErrorCode::kCorrupt, "malformed hello answer");
  if (!st.ok()) return refused(c, std::move(st));
  hello_error_ = Status();
  connect_error_.clear();
  failures_ = 0;
  c->heartbeat_ms = ok.heartbeat_ms;
  c->frame_bytes_max = ok.frame_bytes_max;
  c->shard = ok.shard;
  if (ok.shard_count == 0 || ok.shard >= ok.shard_count) return lost(c, "hello answer names no valid shard");
  if (shard_count_ != ok.shard_count) {
    // First contact (or the server restarted with another shard count):
    // routes are recomputed from here on.
    shard_count_ = ok.shard_count;
    by_shard_.assign(shard_count_, nullptr);
    for (Connection* other : conns_) {
      if (other != c && other->state == Connection::State::kReady && other->shard < shard_count_ &&
          by_shard_[other->shard] == nullptr) {
        by_shard_[other->shard] = other;
      }
    }
  }
  bool needed = by_shard_[c->shard] == nullptr;
  bool any_other_ready = false;
  for (Connection* other : conns_) any_other_ready |= other != c && other->state == Connection::State::kReady;
  if (!needed && any_other_ready) {
    // A spare for a shard already covered: the kernel chose the shard, so
    // try again (a bounded number of times).
    surplus_++;
    (void)close_connection(c);  // Nothing was sent on it but the hello.
    maintain_connections();
    return;
  }
  c->state = Connection::State::kReady;
  if (needed) by_shard_[c->shard] = c;
  send_waiting();
  for (auto& entry : subs_) {
    if (entry.second->conn == nullptr) start_subscription(entry.second);
  }
  maintain_connections();
}

static bool internal_request(const Request* r) {
  return r->opcode == Opcode::kHello || r->opcode == Opcode::kPing || r->opcode == Opcode::kSubscribe ||
         r->opcode == Opcode::kUnsubscribe || r->opcode == Opcode::kCredit;
}

void Client::Impl::lost(Connection* c, const std::string& why) {
  if (c->state == Connection::State::kClosed) return;
  if (c->state == Connection::State::kConnecting) connect_error_ = why;
  if (c->shard < by_shard_.size() && by_shard_[c->shard] == c) surplus_ = 0;  // Worth trying for that shard again.
  std::vector<Request*> pending = close_connection(c);
  // Requests in flight: resend what is safe to, in call order; fail the rest.
  std::vector<Request*> again;
  for (Request* r : pending) {
    if (r->resend_safe && !closing_) {
      again.push_back(r);
    } else {
      finish(r, Status(ErrorCode::kUnavailable,
                       "connection lost before the answer (" + why + "); the request may or may not have taken effect"),
             {});
    }
  }
  waiting_.insert(waiting_.begin(), again.begin(), again.end());
  std::stable_sort(waiting_.begin(), waiting_.end(),
                   [](const Request* a, const Request* b) { return a->order < b->order; });
  if (closing_) return;
  failures_++;
  const uint64_t backoff = std::min<uint64_t>(
      options_.reconnect_backoff_max_ms, uint64_t{options_.reconnect_backoff_min_ms} << std::min<uint32_t>(failures_ - 1, 16));
  next_connect_ms_ = now() + backoff / 2 + rng_() % (backoff / 2 + 1);  // Jittered, so clients spread out.
  maintain_connections();
  send_waiting();  // Another connection may take them now.
}

std::vector<Request*> Client::Impl::close_connection(Connection* c) {
  std::vector<Request*> pending;
  if (c->state == Connection::State::kClosed) return pending;
  // Out of every route first, so nothing below sends on it.
  c->state = Connection::State::kClosed;
  if (c->shard < by_shard_.size() && by_shard_[c->shard] == c) by_shard_[c->shard] = nullptr;
  conns_.erase(std::remove(conns_.begin(), conns_.end(), c), conns_.end());
  for (auto& entry : streams_) {
    if (entry.second.conn == c) entry.second.conn = nullptr;
  }
  for (auto& entry : c->subs) {
    if (entry.second->conn == c) entry.second->conn = nullptr;  // Resubscribed from next_seq once a connection is ready.
  }
  c->subs.clear();
  for (auto& entry : c->in_flight) {
    Request* r = entry.second;
    r->conn = nullptr;
    if (internal_request(r)) {
      delete r;  // The connection's own; subscriptions restart on their own.
    } else {
      pending.push_back(r);
    }
  }
  c->in_flight.clear();
  std::sort(pending.begin(), pending.end(), [](const Request* a, const Request* b) { return a->order < b->order; });
  uv_close(reinterpret_cast<uv_handle_t*>(&c->tcp), [](uv_handle_t* h) {
    auto* conn = static_cast<Connection*>(h->data);
    Impl* owner = conn->owner;
    delete conn;
    owner->handle_closed();
  });
  return pending;
}

void Client::Impl::tick() {
  if (closing_) return;
  const uint64_t t = now();
  // Deadlines: calls waiting for a connection or a window, and in flight.
  auto expired = [t](const Request* r) { return r->deadline_ms != 0 && r->deadline_ms <= t; };
  std::vector<Request*> late;
  for (auto it = waiting_.begin(); it != waiting_.end();) {
    if (expired(*it)) {
      late.push_back(*it);
      it = waiting_.erase(it);
    } else {
      ++it;
    }
  }
  for (auto& entry : streams_) {
    auto& backlog = entry.second.backlog;
    for (auto it = backlog.begin(); it != backlog.end();) {
      if (expired(*it)) {
        (*it)->stream = nullptr;  // Never counted in the window.
        late.push_back(*it);
        it = backlog.erase(it);
      } else {
        ++it;
      }
    }
  }
  for (Connection* c : conns_) {
    for (auto it = c->in_flight.begin(); it != c->in_flight.end();) {
      if (expired(it->second)) {
        late.push_back(it->second);
        it = c->in_flight.erase(it);
      } else {
        ++it;
      }
    }
  }
  for (Request* r : late) {
    const bool sent = r->conn != nullptr;
    r->conn = nullptr;
    finish(r, sent ? Status(ErrorCode::kTimeout, "no answer in time") : not_connected_status(), {});
  }
  // Heartbeats: ping when we have been quiet; give up on a silent server.
  for (Connection* c : std::vector<Connection*>(conns_)) {
    if (c->state != Connection::State::kReady || c->heartbeat_ms == 0) continue;
    if (t - c->last_recv_ms > 3ull * c->heartbeat_ms) {
      lost(c, "the server went silent");
      continue;
    }
    if (t - c->last_send_ms >= c->heartbeat_ms) {
      Request* ping = new_request(Opcode::kPing, false, [](Status, std::string_view) {});
      send(c, ping);
    }
  }
  maintain_connections();
  std::vector<Subscription*> unreachable;
  for (auto& entry : subs_) {
    Subscription* s = entry.second;
    if (s->conn != nullptr) continue;
    if (!s->confirmed && s->confirm_deadline_ms != 0 && s->confirm_deadline_ms <= t) {
      unreachable.push_back(s);
    } else if (s->retry_at_ms <= t) {
      start_subscription(s);
    }
  }
  for (Subscription* s : unreachable) end_subscription(s, not_connected_status());
}

// --- requests -------------------------------------------------------------------

Status Client::Impl::not_connected_status() const {
  if (!hello_error_.ok()) return hello_error_;
  for (const Connection* c : conns_) {
    if (c->state == Connection::State::kReady) {
      return Status(ErrorCode::kTimeout, "not sent in time: earlier appends to the stream were still in flight");
    }
  }
  if (!connect_error_.empty()) {
    return Status(ErrorCode::kUnavailable,
                  "cannot reach " + options_.host + ":" + std::to_string(options_.port) + " (" + connect_error_ + ")");
  }
  return Status(ErrorCode::kTimeout, "no connection to the server in time");
}

void Client::Impl::submit(Request* r) {
  if (closing_) return finish(r, Status(ErrorCode::kShuttingDown, "the client is closing"), {});
  if (!resolve_error_.ok()) return finish(r, resolve_error_, {});  // Nothing to wait for.
  if (options_.request_timeout_ms != 0) r->deadline_ms = now() + options_.request_timeout_ms + r->wait_ms;
  if (r->stream != nullptr) {
    if (r->stream->in_flight >= kIdempotentAppendsInFlight || !r->stream->backlog.empty()) {
      r->stream->backlog.push_back(r);
      return;
    }
    r->stream->in_flight++;
  }
  dispatch(r);
}

Connection* Client::Impl::route(const Request* r) {
  if (r->stream != nullptr && r->stream->conn != nullptr && r->stream->in_flight > 1) return r->stream->conn;
  if (r->shard != kAnyShard && r->shard < by_shard_.size() && by_shard_[r->shard] != nullptr) {
    return by_shard_[r->shard];
  }
  for (Connection* c : conns_) {
    if (c->state == Connection::State::kReady) return c;
  }
  return nullptr;
}

void Client::Impl::dispatch(Request* r) {
  // Requests already waiting go first, so calls leave in order.
  if (!waiting_.empty()) {
    waiting_.push_back(r);
    return send_waiting();
  }
  Connection* c = route(r);
  if (c == nullptr) {
    waiting_.push_back(r);
    return;
  }
  send(c, r);
}

void Client::Impl::send_waiting() {
  while (!waiting_.empty()) {
    Request* r = waiting_.front();
    Connection* c = route(r);
    if (c == nullptr) return;
    waiting_.pop_front();
    send(c, r);
  }
}

uint32_t Client::Impl::take_id(Connection* c) {
  while (true) {
    const uint32_t id = c->next_id++;
    if (id != 0 && c->in_flight.count(id) == 0 && c->subs.count(id) == 0) return id;
  }
}

void Client::Impl::send(Connection* c, Request* r) {
  r->conn = c;
  r->wire_id = take_id(c);
  c->in_flight[r->wire_id] = r;
  if (r->stream != nullptr) r->stream->conn = c;
  write_frame(c, r->opcode, 0, r->wire_id, r->body);
}

void Client::Impl::write_frame(Connection* c, Opcode opcode, uint16_t flags, uint32_t id, std::string_view body) {
  const size_t start = wire::begin_frame(&c->out, opcode, flags, id);
  c->out.append(body);
  wire::finish_frame(&c->out, start);
  c->last_send_ms = now();
  flush(c);
}

void Client::Impl::flush(Connection* c) {
  if (c->write_busy || c->state == Connection::State::kClosed) return;
  if (c->tls != nullptr) {
    if (!c->out.empty()) {
      if (Status st = to_client_status(c->tls->send(c->out)); !st.ok()) return refused(c, std::move(st));
      c->out.clear();
    }
    if (!c->tls->has_output()) return;
    c->writing = c->tls->take_output();
  } else {
    if (c->out.empty()) return;
    c->writing.swap(c->out);
    c->out.clear();
  }
  c->write_busy = true;
  uv_buf_t buf = uv_buf_init(c->writing.data(), static_cast<unsigned>(c->writing.size()));
  c->write_req.data = c;
  const int rc = uv_write(&c->write_req, reinterpret_cast<uv_stream_t*>(&c->tcp), &buf, 1, [](uv_write_t* req, int status) {
    auto* conn = static_cast<Connection*>(req->data);
    conn->write_busy = false;
    conn->writing.clear();
    if (conn->state == Connection::State::kClosed) return;
    if (status != 0) return conn->owner->lost(conn, std::string("write: ") + uv_strerror(status));
    conn->owner->flush(conn);
  });
  if (rc != 0) {
    c->write_busy = false;
    lost(c, std::string("write: ") + uv_strerror(rc));
  }
}

void Client::Impl::finish(Request* r, Status st, std::string_view body) {
  StreamState* stream = r->stream;
  auto done = std::move(r->done);
  delete r;
  if (stream != nullptr) {
    stream->in_flight--;
    while (stream->in_flight < kIdempotentAppendsInFlight && !stream->backlog.empty()) {
      Request* next = stream->backlog.front();
      stream->backlog.pop_front();
      stream->in_flight++;
      dispatch(next);
    }
    if (stream->in_flight == 0 && stream->backlog.empty()) streams_.erase(stream->key);
  }
  if (done) done(std::move(st), body);
}

void Client::Impl::on_read(Connection* c, ssize_t n) {
  if (n == 0) return;
  if (n < 0) return lost(c, n == UV_EOF ? "the server closed the connection" : std::string("read: ") + uv_strerror(static_cast<int>(n)));
  if (c->tls != nullptr) {
    std::string plain;
    if (Status st =
            to_client_status(c->tls->received(std::string_view(c->tls_in.data(), static_cast<size_t>(n)), &plain));
        !st.ok()) {
      return refused(c, std::move(st));
    }
    flush(c);  // The handshake's own records.
    if (c->state == Connection::State::kClosed || plain.empty()) return;
    if (c->in.size() < c->in_len + plain.size()) c->in.resize(c->in_len + plain.size());
    std::memcpy(c->in.data() + c->in_len, plain.data(), plain.size());
    n = static_cast<ssize_t>(plain.size());
  }
  c->in_len += static_cast<size_t>(n);
  c->last_recv_ms = now();
  size_t pos = 0;
  while (c->in_len - pos >= wire::kFrameHeaderBytes && c->state != Connection::State::kClosed) {
    const wire::FrameHeader h = wire::read_frame_header(c->in.data() + pos);
    // Answers may be a little over the announced maximum (a read of a full
    // batch plus its envelope), so only nonsense sizes are refused.
    if (const runnel::Status bad = wire::check_frame_header(h, std::max<uint32_t>(c->frame_bytes_max, 64u << 20));
        !bad.is_ok()) {
      return lost(c, "the server sent a malformed frame: " + bad.to_string());
    }
    if (c->in_len - pos < h.frame_bytes) {
      if (c->in.size() < pos + h.frame_bytes) c->in.resize(pos + h.frame_bytes);
      break;
    }
    on_frame(c, h, std::string_view(c->in.data() + pos + wire::kFrameHeaderBytes, h.frame_bytes - wire::kFrameHeaderBytes));
    pos += h.frame_bytes;
  }
  if (c->state == Connection::State::kClosed) return;
  if (pos > 0) {
    std::memmove(c->in.data(), c->in.data() + pos, c->in_len - pos);
    c->in_len -= pos;
  }
  if (c->in.size() > 4 * kReadChunk && c->in_len < kReadChunk) c->in.resize(kReadChunk * 2);  // Give back a big frame's room.
}

static Status error_status(std::string_view body) {
  wire::ErrorBody e;
  if (!wire::decode_body(body, &e)) return Status(ErrorCode::kCorrupt, "malformed error answer");
  return Status(static_cast<ErrorCode>(e.code), std::string(e.message), e.detail);
}

void Client::Impl::on_frame(Connection* c, const wire::FrameHeader& h, std::string_view body) {
  if ((h.flags & wire::kFlagPush) != 0) return on_push(c, h, body);
  if ((h.flags & wire::kFlagResponse) == 0) {
    // The server asks: a ping is answered, anything else is not ours to serve.
    if (h.opcode == static_cast<uint16_t>(Opcode::kPing)) {
      write_frame(c, Opcode::kPing, wire::kFlagResponse, h.request_id, {});
    }
    return;
  }
  auto it = c->in_flight.find(h.request_id);
  if (it == c->in_flight.end()) return;  // Timed out or abandoned.
  Request* r = it->second;
  c->in_flight.erase(it);
  r->conn = nullptr;
  if ((h.flags & wire::kFlagError) != 0) return finish(r, error_status(body), {});
  finish(r, Status(), body);
}

// --- subscriptions ----------------------------------------------------------------

uint64_t Client::Impl::subscribe(const std::string& bucket, const std::string& stream, const SubscribeOptions& options,
                                 RecordsHandler on_records, StatusCallback on_end) {
  const uint64_t handle = next_sub_handle_++;
  if (closing_) {
    if (on_end) on_end(Status(ErrorCode::kShuttingDown, "the client is closing"));
    return handle;
  }
  auto* s = new Subscription;
  s->handle = handle;
  s->bucket = bucket;
  s->stream = stream;
  s->options = options;
  if (s->options.credit_bytes == 0) s->options.credit_bytes = 4u << 20;
  if (options.start.kind == Start::Kind::kSeqNum) s->next_seq = options.start.value;
  s->on_records = std::move(on_records);
  s->on_end = std::move(on_end);
  if (options_.request_timeout_ms != 0) s->confirm_deadline_ms = now() + options_.request_timeout_ms;
  subs_[handle] = s;
  if (!resolve_error_.ok()) {
    end_subscription(s, resolve_error_);
    return handle;
  }
  start_subscription(s);
  return handle;
}

void Client::Impl::start_subscription(Subscription* s) {
  Request probe;
  probe.shard = shard_for(s->bucket, s->stream);
  Connection* c = route(&probe);
  if (c == nullptr) return;  // Started once a connection is ready.
  wire::Subscribe m;
  m.bucket = s->bucket;
  m.stream = s->stream;
  const Start start = s->next_seq ? Start::seq_num(*s->next_seq) : s->options.start;
  m.start = wire::Start{static_cast<uint8_t>(start.kind), start.value};
  m.credit_bytes = s->options.credit_bytes;
  m.heartbeat_ms = s->options.heartbeat_ms;
  s->ungranted = 0;
  const uint64_t handle = s->handle;
  Request* r = new_request(Opcode::kSubscribe, false, [this, handle, start](Status st, std::string_view body) {
    auto it = subs_.find(handle);
    if (it == subs_.end()) return;
    Subscription* sub = it->second;
    if (!st.ok()) {
      if (st.code() == ErrorCode::kShuttingDown || st.code() == ErrorCode::kUnavailable ||
          st.code() == ErrorCode::kOverloaded || st.code() == ErrorCode::kTimeout) {
        return pause_subscription(sub, options_.reconnect_backoff_max_ms / 4);
      }
      return end_subscription(sub, st);
    }
    sub->confirmed = true;
    wire::TailAnswer tail;
    if (wire::decode_body(body, &tail) && !sub->next_seq && start.kind == Start::Kind::kTailOffset) {
      // Position a tail-relative start now, so a resume does not move it.
      sub->next_seq = tail.tail - std::min(tail.tail, start.value);
    }
  });
  wire::Writer w(&r->body);
  wire::encode(w, m);
  send(c, r);
  s->conn = c;
  s->wire_id = r->wire_id;
  c->subs[r->wire_id] = s;
}

void Client::Impl::pause_subscription(Subscription* s, uint64_t retry_after_ms) {
  if (s->conn != nullptr) {
    s->conn->subs.erase(s->wire_id);
    s->conn = nullptr;
  }
  s->retry_at_ms = now() + retry_after_ms;
}

void Client::Impl::end_subscription(Subscription* s, Status st) {
  if (s->conn != nullptr) s->conn->subs.erase(s->wire_id);
  subs_.erase(s->handle);
  auto on_end = std::move(s->on_end);
  delete s;
  if (on_end) on_end(std::move(st));
}

void Client::Impl::on_push(Connection* c, const wire::FrameHeader& h, std::string_view body) {
  auto it = c->subs.find(h.request_id);
  if (it == c->subs.end()) return;  // Unsubscribed meanwhile.
  Subscription* s = it->second;
  if ((h.flags & wire::kFlagError) != 0) {
    Status st = error_status(body);
    if (st.code() == ErrorCode::kShuttingDown || st.code() == ErrorCode::kUnavailable ||
        st.code() == ErrorCode::kOverloaded) {
      return pause_subscription(s, options_.reconnect_backoff_max_ms / 4);
    }
    return end_subscription(s, std::move(st));
  }
  wire::ReadAnswer data;
  if (h.opcode != static_cast<uint16_t>(Opcode::kSubscriptionData) || !wire::decode_body(body, &data)) {
    return lost(c, "malformed subscription data");
  }
  std::vector<Record> records;
  uint64_t next = s->next_seq.value_or(0);
  const bool positioned = s->next_seq.has_value();
  uint64_t bytes = 0;
  for (const wire::Batch& b : data.batches) {
    bytes += b.payload.size();
    Status st = append_records(b, positioned ? next : 0, &records);
    if (!st.ok()) return end_subscription(s, std::move(st));
    next = std::max(next, b.base_seq + b.record_count);
  }
  if (!positioned && s->options.start.kind == Start::Kind::kTimestamp) {
    // The first batch may begin before the start time: whole batches travel.
    const uint64_t from = s->options.start.value;
    records.erase(records.begin(), std::find_if(records.begin(), records.end(),
                                                [from](const Record& r) { return r.timestamp >= from; }));
  }
  if (!data.batches.empty()) s->next_seq = next;
  const uint64_t handle = s->handle;
  const bool handed_over = !records.empty() && s->on_records;
  if (handed_over) s->on_records(records, static_cast<uint32_t>(bytes));
  // The handler may have unsubscribed or closed the client.
  auto again = subs_.find(handle);
  if (again == subs_.end() || again->second->conn != c) return;
  if (handed_over && again->second->manual_credit) return;  // The application gives it back.
  again->second->ungranted += bytes;
  if (again->second->ungranted * 4 >= again->second->options.credit_bytes) grant_credit(handle, 0);
}

void Client::Impl::grant_credit(uint64_t handle, uint32_t bytes) {
  auto it = subs_.find(handle);
  if (it == subs_.end()) return;
  Subscription* s = it->second;
  s->ungranted += bytes;
  if (s->conn == nullptr || s->ungranted == 0) return;  // A resume starts with full credit anyway.
  wire::Credit m{s->wire_id, static_cast<uint32_t>(std::min<uint64_t>(s->ungranted, UINT32_MAX))};
  s->ungranted = 0;
  std::string body;
  wire::Writer w(&body);
  wire::encode(w, m);
  write_frame(s->conn, Opcode::kCredit, 0, take_id(s->conn), body);
}

void Client::Impl::set_manual_credit(uint64_t handle, bool manual) {
  auto it = subs_.find(handle);
  if (it != subs_.end()) it->second->manual_credit = manual;
}

void Client::Impl::unsubscribe(uint64_t handle) {
  auto it = subs_.find(handle);
  if (it == subs_.end()) return;
  Subscription* s = it->second;
  subs_.erase(it);
  if (s->conn != nullptr && s->conn->state == Connection::State::kReady) {
    s->conn->subs.erase(s->wire_id);
    wire::Unsubscribe m{s->wire_id};
    Request* r = new_request(Opcode::kUnsubscribe, false, [](Status, std::string_view) {});
    wire::Writer w(&r->body);
    wire::encode(w, m);
    send(s->conn, r);
  }
  delete s;
}

// --- the public face ------------------------------------------------------------------

namespace {

using wire::body_of;

// Decodes an answer body as W and converts it with `convert`.
template <typename T, typename W, typename F>
std::function<void(Status, std::string_view)> answer_as(Callback<T> done, F convert) {
  return [done = std::move(done), convert](Status st, std::string_view body) {
    if (!done) return;
    if (!st.ok()) return done(std::move(st));
    W w;
    if (!wire::decode_body(body, &w)) return done(Status(ErrorCode::kCorrupt, "malformed answer from the server"));
    done(convert(w));
  };
}

// A listing answer as a page (the items are the public values already).
template <typename T>
std::function<void(Status, std::string_view)> page_answer(Callback<Page<T>> done) {
  return answer_as<Page<T>, wire::ListAnswer<T>>(std::move(done), [](auto& w) {
    Page<T> page;
    page.items = std::move(w.items);
    page.more = w.more;
    return page;
  });
}

// Decodes an answer body that is already the public value (proto/values.h).
template <typename T>
std::function<void(Status, std::string_view)> answer_as(Callback<T> done) {
  return answer_as<T, T>(std::move(done), [](T& w) { return std::move(w); });
}

std::function<void(Status, std::string_view)> status_answer(StatusCallback done) {
  return [done = std::move(done)](Status st, std::string_view) {
    if (done) done(std::move(st));
  };
}

}  // namespace

Client::Client(uv_loop_t* loop, ClientOptions options) : impl_(new Impl(loop, std::move(options))) {}

Client::~Client() { impl_->close({}, true); }

void Client::close(std::function<void()> done) { impl_->close(std::move(done), false); }

uint32_t Client::shard_count() const { return impl_->shard_count_; }
uint64_t Client::producer_id() const { return impl_->producer_id_; }
uint32_t Client::connections_ready() const {
  uint32_t n = 0;
  for (Connection* c : impl_->conns_) n += c->state == Connection::State::kReady ? 1 : 0;
  return n;
}

void Client::create_bucket(const std::string& bucket, const BucketConfig& config, Callback<BucketInfo> done) {
  Request* r = impl_->new_request(Opcode::kCreateBucket, false, answer_as<BucketInfo>(std::move(done)));
  r->body = body_of(wire::BucketWithConfig{bucket, config});
  impl_->submit(r);
}

void Client::list_buckets(const ListOptions& options, Callback<Page<BucketInfo>> done) {
  Request* r = impl_->new_request(Opcode::kListBuckets, true, page_answer<BucketInfo>(std::move(done)));
  r->body = body_of(wire::ListRequest{"", options.prefix, options.start_after, options.limit});
  impl_->submit(r);
}

void Client::get_bucket(const std::string& bucket, Callback<BucketInfo> done) {
  Request* r = impl_->new_request(Opcode::kGetBucket, true, answer_as<BucketInfo>(std::move(done)));
  r->body = body_of(wire::BucketName{bucket});
  impl_->submit(r);
}

void Client::reconfigure_bucket(const std::string& bucket, const BucketConfig& config, Callback<BucketInfo> done) {
  // Setting a configuration twice is harmless: safe to resend.
  Request* r = impl_->new_request(Opcode::kReconfigureBucket, true, answer_as<BucketInfo>(std::move(done)));
  r->body = body_of(wire::BucketWithConfig{bucket, config});
  impl_->submit(r);
}

void Client::delete_bucket(const std::string& bucket, StatusCallback done) {
  Request* r = impl_->new_request(Opcode::kDeleteBucket, false, status_answer(std::move(done)));
  r->body = body_of(wire::BucketName{bucket});
  impl_->submit(r);
}

void Client::issue_token(const TokenInfo& spec, Callback<IssuedToken> done) {
  // Not resent: a second issue of the same id would fail already_exists.
  Request* r = impl_->new_request(Opcode::kIssueToken, false,
                                  answer_as<IssuedToken, wire::IssuedToken>(std::move(done), [](wire::IssuedToken& w) {
                                    return IssuedToken{std::move(w.info), std::string(w.token)};
                                  }));
  r->body = body_of(spec);
  impl_->submit(r);
}

void Client::list_tokens(const ListOptions& options, Callback<Page<TokenInfo>> done) {
  Request* r = impl_->new_request(Opcode::kListTokens, true, page_answer<TokenInfo>(std::move(done)));
  r->body = body_of(wire::ListRequest{"", options.prefix, options.start_after, options.limit});
  impl_->submit(r);
}

void Client::revoke_token(const std::string& id, Callback<TokenInfo> done) {
  Request* r = impl_->new_request(Opcode::kRevokeToken, false, answer_as<TokenInfo>(std::move(done)));
  r->body = body_of(wire::TokenId{id});
  impl_->submit(r);
}

void Client::create_stream(const std::string& bucket, const std::string& stream, std::optional<StreamConfig> config,
                           Callback<StreamInfo> done) {
  Request* r = impl_->new_request(Opcode::kCreateStream, false, answer_as<StreamInfo>(std::move(done)));
  r->body = body_of(wire::CreateStream{bucket, stream, !config.has_value(), config.value_or(StreamConfig{})});
  r->shard = impl_->shard_for(bucket, stream);
  impl_->submit(r);
}

void Client::list_streams(const std::string& bucket, const ListOptions& options, Callback<Page<StreamInfo>> done) {
  Request* r = impl_->new_request(Opcode::kListStreams, true, page_answer<StreamInfo>(std::move(done)));
  r->body = body_of(wire::ListRequest{bucket, options.prefix, options.start_after, options.limit});
  impl_->submit(r);
}

namespace {
template <typename M>
void submit_stream_request(Client::Impl* impl, Opcode opcode, bool resend_safe, const M& m,
                           std::function<void(Status, std::string_view)> done) {
  Request* r = impl->new_request(opcode, resend_safe, std::move(done));
  r->body = body_of(m);
  r->shard = impl->shard_for(m.bucket, m.stream);
  impl->submit(r);
}
}  // namespace

void Client::get_stream(const std::string& bucket, const std::string& stream, Callback<StreamInfo> done) {
  submit_stream_request(impl_, Opcode::kGetStream, true, wire::StreamName{bucket, stream},
                        answer_as<StreamInfo>(std::move(done)));
}

void Client::reconfigure_stream(const std::string& bucket, const std::string& stream, const StreamConfig& config,
                                Callback<StreamInfo> done) {
  submit_stream_request(impl_, Opcode::kReconfigureStream, true, wire::ReconfigureStream{bucket, stream, config},
                        answer_as<StreamInfo>(std::move(done)));
}

void Client::delete_stream(const std::string& bucket, const std::string& stream, StatusCallback done) {
  submit_stream_request(impl_, Opcode::kDeleteStream, false, wire::StreamName{bucket, stream},
                        status_answer(std::move(done)));
}

void Client::seal_stream(const std::string& bucket, const std::string& stream, Callback<StreamInfo> done) {
  // Sealing a sealed stream is no error: safe to resend.
  submit_stream_request(impl_, Opcode::kSealStream, true, wire::StreamName{bucket, stream},
                        answer_as<StreamInfo>(std::move(done)));
}

void Client::trim_stream(const std::string& bucket, const std::string& stream, uint64_t trim_seq,
                         Callback<StreamInfo> done) {
  submit_stream_request(impl_, Opcode::kTrimStream, true, wire::TrimStream{bucket, stream, trim_seq},
                        answer_as<StreamInfo>(std::move(done)));
}

void Client::fence_stream(const std::string& bucket, const std::string& stream, const std::string& token,
                          Callback<StreamInfo> done) {
  submit_stream_request(impl_, Opcode::kFenceStream, true, wire::FenceStream{bucket, stream, token},
                        answer_as<StreamInfo>(std::move(done)));
}

void Client::check_tail(const std::string& bucket, const std::string& stream, Callback<Tail> done) {
  submit_stream_request(impl_, Opcode::kCheckTail, true, wire::StreamName{bucket, stream},
                        answer_as<Tail, wire::TailAnswer>(std::move(done), [](const wire::TailAnswer& w) {
                          return Tail{w.tail, w.last_timestamp};
                        }));
}

void Client::append(const std::string& bucket, const std::string& stream, const std::vector<AppendRecord>& records,
                    const AppendOptions& options, Callback<AppendAck> done) {
  PayloadBuilder payload;
  for (const AppendRecord& rec : records) {
    std::vector<std::pair<std::string, std::string>> headers;
    headers.reserve(rec.headers.size());
    for (const Header& h : rec.headers) headers.emplace_back(h.name, h.value);
    payload.add(rec.timestamp, headers, rec.body);
  }
  wire::Append m;
  m.bucket = bucket;
  m.stream = stream;
  m.record_count = payload.record_count();
  m.payload = payload.bytes();
  m.payload_checksum = payload_checksum(payload.bytes());
  if (options.match_seq_num) {
    m.options |= wire::Append::kHasMatchSeqNum;
    m.match_seq_num = *options.match_seq_num;
  }
  if (options.fencing_token) {
    m.options |= wire::Append::kHasFencingToken;
    m.fencing_token = *options.fencing_token;
  }
  StreamState* state = nullptr;
  if (options.idempotent) {
    state = impl_->stream_state(bucket, stream);
    m.options |= wire::Append::kHasProducer;
    m.producer_id = impl_->producer_id_;
    m.producer_seq = impl_->next_producer_seq();
  }
  Request* r = impl_->new_request(Opcode::kAppend, options.idempotent, answer_as<AppendAck>(std::move(done)));
  r->body = body_of(m);
  r->shard = impl_->shard_for(bucket, stream);
  r->stream = state;
  impl_->submit(r);
}

void Client::read(const std::string& bucket, const std::string& stream, const ReadOptions& options,
                  Callback<ReadResult> done) {
  wire::Read m{bucket,           stream,
               wire::Start{static_cast<uint8_t>(options.start.kind), options.start.value},
               options.max_records, options.max_bytes,
               options.until_timestamp, options.wait_ms};
  const uint64_t until = options.until_timestamp;
  Request* r = impl_->new_request(Opcode::kRead, true, [done = std::move(done), until](Status st, std::string_view body) {
    if (!done) return;
    if (!st.ok()) return done(std::move(st));
    wire::ReadAnswer w;
    if (!wire::decode_body(body, &w)) return done(Status(ErrorCode::kCorrupt, "malformed answer from the server"));
    ReadResult result;
    result.tail = w.tail;
    for (size_t i = 0; i < w.batches.size(); i++) {
      const wire::Batch& b = w.batches[i];
      const uint64_t from = i == 0 ? b.base_seq + w.first_record_index : 0;
      if (Status bad = append_records(b, from, &result.records); !bad.ok()) return done(std::move(bad));
    }
    if (until != 0) {
      while (!result.records.empty() && result.records.back().timestamp >= until) result.records.pop_back();
    }
    done(std::move(result));
  });
  r->body = body_of(m);
  r->shard = impl_->shard_for(bucket, stream);
  r->wait_ms = options.wait_ms;
  impl_->submit(r);
}

uint64_t Client::subscribe(const std::string& bucket, const std::string& stream, const SubscribeOptions& options,
                           RecordsHandler on_records, StatusCallback on_end) {
  return impl_->subscribe(bucket, stream, options, std::move(on_records), std::move(on_end));
}

void Client::unsubscribe(uint64_t subscription) { impl_->unsubscribe(subscription); }
void Client::set_manual_credit(uint64_t subscription, bool manual) { impl_->set_manual_credit(subscription, manual); }
void Client::grant_credit(uint64_t subscription, uint32_t bytes) { impl_->grant_credit(subscription, bytes); }

}  // namespace runnel::client
