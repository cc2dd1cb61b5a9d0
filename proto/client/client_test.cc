// librunnel's asynchronous Client against a scripted fake server: a loopback
// listener on a thread of its own that speaks the binary protocol
// (proto/wire.h), answers each hello with the shard it chooses, and answers,
// refuses or drops every other request as the test's script says. What is
// checked is what client.h promises: routing to the owner shard, resending
// idempotent appends with the same producer numbers, reconnecting once the
// server is back, and failing a lost non-idempotent request as unavailable.
// (tests/integration/client_test.cc drives the client against the real
// runneld.) Every wait has a deadline; nothing is timed.

#include "runnel/client.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "proto/wire.h"

namespace runnel::client {
namespace {

namespace wire = ::runnel::wire;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

// A request the fake server received (hellos and pings excluded).
struct Received {
  int conn = 0;        // Which connection, in accept order from 0.
  uint32_t shard = 0;  // The shard its hello answer named.
  uint16_t opcode = 0;
  std::string body;
};

// What the fake does with a request.
struct Reply {
  enum class Kind { kAnswer, kError, kDrop } kind = Kind::kAnswer;
  std::string body;
  ::runnel::Status error;

  template <typename M>
  static Reply answer(const M& m) {
    Reply r;
    wire::Writer w(&r.body);
    wire::encode(w, m);
    return r;
  }
  static Reply fail(::runnel::ErrorCode code, std::string message) {
    Reply r;
    r.kind = Kind::kError;
    r.error = ::runnel::Status(code, std::move(message));
    return r;
  }
  // Closes the connection without answering.
  static Reply drop() {
    Reply r;
    r.kind = Kind::kDrop;
    return r;
  }
};

class FakeServer {
 public:
  // Runs on the server's thread, once per request, in arrival order.
  using Script = std::function<Reply(const Received&)>;
  // The shard the hello answer of the i-th accepted connection names.
  using ShardOf = std::function<uint32_t(int connection)>;

  // Bound to 127.0.0.1 on a free port; with `listening` false the port is
  // held but closed (connections are refused) until start_listening().
  FakeServer(uint32_t shard_count, Script script, bool listening = true, ShardOf shard_of = {})
      : shard_count_(shard_count), script_(std::move(script)), shard_of_(std::move(shard_of)) {
    if (!shard_of_) shard_of_ = [this](int i) { return static_cast<uint32_t>(i) % shard_count_; };
    listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    EXPECT_GE(listen_fd_, 0);
    const int one = 1;
    ::setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    EXPECT_EQ(::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
    socklen_t len = sizeof(addr);
    EXPECT_EQ(::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len), 0);
    port_ = ntohs(addr.sin_port);
    EXPECT_EQ(::pipe2(wake_, O_CLOEXEC | O_NONBLOCK), 0);
    if (listening) start_listening();
    thread_ = std::thread([this] { run(); });
  }

  ~FakeServer() {
    stop_ = true;
    wake();
    thread_.join();
    for (Conn& c : conns_) ::close(c.fd);
    ::close(listen_fd_);
    ::close(wake_[0]);
    ::close(wake_[1]);
  }

  uint16_t port() const { return port_; }

  void start_listening() {
    EXPECT_EQ(::listen(listen_fd_, 16), 0);
    listening_ = true;
    wake();
  }

  int accepted() const { return accepted_; }

  std::vector<Received> received() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return received_;
  }

 private:
  struct Conn {
    int fd = -1;
    int index = 0;
    uint32_t shard = 0;
    std::string in;
    bool dead = false;
  };

  void wake() {
    const char x = 1;
    [[maybe_unused]] ssize_t n = ::write(wake_[1], &x, 1);
  }

  void run() {
    while (!stop_) {
      std::vector<pollfd> fds;
      fds.push_back({wake_[0], POLLIN, 0});
      const bool listening = listening_;
      if (listening) fds.push_back({listen_fd_, POLLIN, 0});
      const size_t first_conn = fds.size();
      for (const Conn& c : conns_) fds.push_back({c.fd, POLLIN, 0});
      if (::poll(fds.data(), fds.size(), 1000) <= 0) continue;
      if (fds[0].revents != 0) {
        char drain[64];
        while (::read(wake_[0], drain, sizeof(drain)) > 0) {
        }
      }
      for (size_t i = first_conn; i < fds.size(); i++) {
        if (fds[i].revents != 0) serve(conns_[i - first_conn]);
      }
      for (auto it = conns_.begin(); it != conns_.end();) {
        if (it->dead) {
          ::close(it->fd);
          it = conns_.erase(it);
        } else {
          ++it;
        }
      }
      if (listening && fds[1].revents != 0) {
        const int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
        if (fd >= 0) {
          const int index = accepted_++;
          conns_.push_back(Conn{fd, index, shard_of_(index), {}, false});
        }
      }
    }
  }

  void serve(Conn& c) {
    char buf[64 * 1024];
    const ssize_t n = ::recv(c.fd, buf, sizeof(buf), 0);
    if (n <= 0) {
      c.dead = true;
      return;
    }
    c.in.append(buf, static_cast<size_t>(n));
    size_t pos = 0;
    while (!c.dead && c.in.size() - pos >= wire::kFrameHeaderBytes) {
      const wire::FrameHeader h = wire::read_frame_header(c.in.data() + pos);
      if (!wire::check_frame_header(h, wire::kDefaultFrameBytesMax).is_ok()) {
        ADD_FAILURE() << "the client sent a malformed frame header";
        c.dead = true;
        break;
      }
      if (c.in.size() - pos < h.frame_bytes) break;
      const std::string body = c.in.substr(pos + wire::kFrameHeaderBytes, h.frame_bytes - wire::kFrameHeaderBytes);
      pos += h.frame_bytes;
      on_frame(c, h, body);
    }
    c.in.erase(0, pos);
  }

  void on_frame(Conn& c, const wire::FrameHeader& h, const std::string& body) {
    if ((h.flags & wire::kFlagResponse) != 0) return;  // An answer to a ping; we send none.
    std::string out;
    if (h.opcode == static_cast<uint16_t>(wire::Opcode::kHello)) {
      wire::Hello hello;
      EXPECT_TRUE(wire::decode_body(body, &hello)) << "malformed hello";
      wire::HelloOk ok;
      ok.shard = c.shard;
      ok.shard_count = shard_count_;
      ok.server_version = "fake";
      wire::append_frame(&out, wire::Opcode::kHello, wire::kFlagResponse, h.request_id, ok);
      return send_all(c, out);
    }
    if (h.opcode == static_cast<uint16_t>(wire::Opcode::kPing)) {
      const size_t start = wire::begin_frame(&out, wire::Opcode::kPing, wire::kFlagResponse, h.request_id);
      wire::finish_frame(&out, start);
      return send_all(c, out);
    }
    Received r{c.index, c.shard, h.opcode, body};
    {
      std::lock_guard<std::mutex> lock(mutex_);
      received_.push_back(r);
    }
    const Reply reply = script_(r);
    switch (reply.kind) {
      case Reply::Kind::kAnswer: {
        const size_t start =
            wire::begin_frame(&out, static_cast<wire::Opcode>(h.opcode), wire::kFlagResponse, h.request_id);
        out += reply.body;
        wire::finish_frame(&out, start);
        return send_all(c, out);
      }
      case Reply::Kind::kError:
        wire::append_error_frame(&out, h.opcode, h.request_id, reply.error);
        return send_all(c, out);
      case Reply::Kind::kDrop:
        c.dead = true;  // Closed by run() before anything else is read.
        return;
    }
  }

  void send_all(Conn& c, const std::string& bytes) {
    size_t done = 0;
    while (done < bytes.size()) {
      const ssize_t n = ::send(c.fd, bytes.data() + done, bytes.size() - done, MSG_NOSIGNAL);
      if (n <= 0) {
        c.dead = true;
        return;
      }
      done += static_cast<size_t>(n);
    }
  }

  const uint32_t shard_count_;
  Script script_;
  ShardOf shard_of_;
  int listen_fd_ = -1;
  uint16_t port_ = 0;
  int wake_[2] = {-1, -1};
  std::atomic<bool> listening_{false};
  std::atomic<bool> stop_{false};
  std::atomic<int> accepted_{0};
  std::vector<Conn> conns_;  // The server thread's.
  mutable std::mutex mutex_;
  std::vector<Received> received_;
  std::thread thread_;
};

// A libuv loop on the test's thread, and the client on it. The client is
// closed (and its handles with it) before the loop is.
class ClientOnLoop {
 public:
  explicit ClientOnLoop(uint16_t port, uint32_t request_timeout_ms = 20'000) {
    uv_loop_init(&loop_);
    ClientOptions o;
    o.port = port;
    o.reconnect_backoff_min_ms = 10;
    o.reconnect_backoff_max_ms = 100;
    o.request_timeout_ms = request_timeout_ms;
    client_ = std::make_unique<Client>(&loop_, o);
  }
  ~ClientOnLoop() {
    bool closed = false;
    client_->close([&closed] { closed = true; });
    EXPECT_TRUE(run_until([&] { return closed; })) << "the client did not close";
    client_.reset();
    uv_run(&loop_, UV_RUN_NOWAIT);
    EXPECT_EQ(uv_loop_close(&loop_), 0) << "handles left open on the loop";
  }

  Client& client() { return *client_; }

  // Runs the loop until `done` or `limit` has passed (a bound, not a
  // measurement); false if it gave up. The client's 20 ms tick keeps
  // UV_RUN_ONCE from blocking for long.
  bool run_until(const std::function<bool()>& done, std::chrono::milliseconds limit = 10s) {
    const auto deadline = Clock::now() + limit;
    while (!done()) {
      if (Clock::now() >= deadline) return false;
      uv_run(&loop_, UV_RUN_ONCE);
    }
    return true;
  }

 private:
  uv_loop_t loop_{};
  std::unique_ptr<Client> client_;
};

wire::StreamName stream_of(const Received& r) {
  wire::StreamName name;
  if (r.opcode == static_cast<uint16_t>(wire::Opcode::kAppend)) {
    wire::Append append;
    EXPECT_TRUE(wire::decode_body(r.body, &append));
    name.bucket = append.bucket;
    name.stream = append.stream;
  } else {
    EXPECT_TRUE(wire::decode_body(r.body, &name)) << "opcode " << r.opcode;
  }
  return name;
}

wire::Append append_of(const Received& r) {
  wire::Append append;
  EXPECT_EQ(r.opcode, static_cast<uint16_t>(wire::Opcode::kAppend));
  EXPECT_TRUE(wire::decode_body(r.body, &append));
  return append;
}

// Answers GET_STREAM with the stream's name and APPEND with an ack at
// seq_num 100; refuses everything else.
Reply answer_streams(const Received& r) {
  if (r.opcode == static_cast<uint16_t>(wire::Opcode::kGetStream)) {
    const wire::StreamName name = stream_of(r);
    StreamInfo info;
    info.bucket = name.bucket;
    info.name = name.stream;
    return Reply::answer(info);
  }
  if (r.opcode == static_cast<uint16_t>(wire::Opcode::kAppend)) {
    return Reply::answer(AppendAck{100, 100 + append_of(r).record_count, 1, 1, 100 + append_of(r).record_count});
  }
  return Reply::fail(::runnel::ErrorCode::kUnsupported, "not in the script");
}

// Gets and appends to 16 streams once the client has a connection per
// shard; every request must have reached its owner shard's connection.
void expect_requests_reach_owner_shards(FakeServer& server, ClientOnLoop& c, uint32_t shards) {
  ASSERT_TRUE(c.run_until([&] { return c.client().connections_ready() == shards; }))
      << "the client never had a connection per shard; it has " << c.client().connections_ready();
  EXPECT_EQ(c.client().shard_count(), shards);
  std::set<uint32_t> owners;
  int answered = 0;
  for (int i = 0; i < 16; i++) {
    const std::string stream = "s" + std::to_string(i);
    owners.insert(wire::owner_shard("b", stream, shards));
    c.client().get_stream("b", stream, [&answered, stream](Result<StreamInfo> info) {
      EXPECT_TRUE(info.ok()) << info.status().to_string();
      if (info.ok()) {
        EXPECT_EQ(info->name, stream);
      }
      answered++;
    });
    c.client().append("b", stream, {{.body = stream}}, {}, [&answered](Result<AppendAck> ack) {
      EXPECT_TRUE(ack.ok()) << ack.status().to_string();
      if (ack.ok()) {
        EXPECT_EQ(ack->start_seq, 100u);
      }
      answered++;
    });
  }
  ASSERT_EQ(owners.size(), shards) << "pick stream names that cover every shard";
  ASSERT_TRUE(c.run_until([&] { return answered == 32; })) << answered << " of 32 calls answered";
  const std::vector<Received> got = server.received();
  ASSERT_EQ(got.size(), 32u);
  std::set<uint32_t> shards_used;
  for (const Received& r : got) {
    const wire::StreamName name = stream_of(r);
    EXPECT_EQ(r.shard, wire::owner_shard(name.bucket, name.stream, shards))
        << wire::opcode_name(r.opcode) << " of " << name.bucket << "/" << name.stream << " went to shard " << r.shard;
    shards_used.insert(r.shard);
  }
  EXPECT_EQ(shards_used.size(), shards);
}

TEST(ClientWithFakeServer, SendsEachStreamsRequestsToItsOwnerShard) {
  FakeServer server(2, answer_streams);
  ClientOnLoop c(server.port());
  expect_requests_reach_owner_shards(server, c, 2);
  EXPECT_EQ(server.accepted(), 2);
}

// The server, not the client, picks the shard a connection lands on: a
// second connection to a shard already covered is given up, and the client
// tries again until every shard has one.
TEST(ClientWithFakeServer, ReplacesAConnectionThatLandedOnACoveredShard) {
  FakeServer server(2, answer_streams, true, [](int i) { return i == 2 ? 1u : 0u; });
  ClientOnLoop c(server.port());
  expect_requests_reach_owner_shards(server, c, 2);
  EXPECT_EQ(server.accepted(), 3);
  for (const Received& r : server.received()) EXPECT_NE(r.conn, 1) << "a request went out on the spare connection";
}

// An idempotent append lost with its connection is sent again on the next
// one with the same producer id and number, and the call gets the answer to
// the resend.
TEST(ClientWithFakeServer, ResendsALostIdempotentAppendWithTheSameProducerNumbers) {
  FakeServer server(1, [appends = 0](const Received& r) mutable {
    if (r.opcode != static_cast<uint16_t>(wire::Opcode::kAppend)) {
      return Reply::fail(::runnel::ErrorCode::kUnsupported, "not in the script");
    }
    if (appends++ == 0) return Reply::drop();
    return Reply::answer(AppendAck{41, 43, 7, 8, 43});
  });
  ClientOnLoop c(server.port());
  std::optional<Result<AppendAck>> ack;
  c.client().append("b", "s", {{.body = "one"}, {.body = "two"}}, {},
                    [&ack](Result<AppendAck> a) { ack = std::move(a); });
  ASSERT_TRUE(c.run_until([&] { return ack.has_value(); })) << "the append was never answered";
  ASSERT_TRUE(ack->ok()) << ack->status().to_string();
  EXPECT_EQ((*ack)->start_seq, 41u);
  EXPECT_EQ((*ack)->end_seq, 43u);
  EXPECT_EQ((*ack)->tail, 43u);

  const std::vector<Received> got = server.received();
  ASSERT_EQ(got.size(), 2u) << "expected the append and one resend";
  EXPECT_NE(got[0].conn, got[1].conn) << "the resend must go out on a new connection";
  const wire::Append first = append_of(got[0]);
  const wire::Append again = append_of(got[1]);
  EXPECT_NE(first.options & wire::Append::kHasProducer, 0);
  EXPECT_NE(again.options & wire::Append::kHasProducer, 0);
  EXPECT_EQ(first.producer_id, c.client().producer_id());
  EXPECT_EQ(again.producer_id, first.producer_id);
  EXPECT_EQ(again.producer_seq, first.producer_seq);
  EXPECT_EQ(again.record_count, 2u);
  EXPECT_EQ(again.payload, first.payload);
  EXPECT_EQ(again.payload_checksum, first.payload_checksum);
}

// A call made while the server is down waits (within request_timeout_ms)
// while connection attempts are refused, and goes out once it is up.
TEST(ClientWithFakeServer, ACallMadeWhileTheServerIsDownSucceedsOnceItIsUp) {
  FakeServer server(1, answer_streams, /*listening=*/false);
  ClientOnLoop c(server.port());
  std::optional<Result<StreamInfo>> info;
  c.client().get_stream("b", "s", [&info](Result<StreamInfo> i) { info = std::move(i); });
  // Some refused attempts (backoff 10..100 ms); the call is still waiting.
  EXPECT_FALSE(c.run_until([&] { return info.has_value(); }, 300ms))
      << "answered while the port was closed: " << info->status().to_string();
  EXPECT_EQ(c.client().connections_ready(), 0u);
  EXPECT_EQ(server.accepted(), 0);

  server.start_listening();
  ASSERT_TRUE(c.run_until([&] { return info.has_value(); })) << "the call never went out";
  ASSERT_TRUE(info->ok()) << info->status().to_string();
  EXPECT_EQ((*info)->bucket, "b");
  EXPECT_EQ((*info)->name, "s");
  EXPECT_EQ(c.client().connections_ready(), 1u);
  ASSERT_EQ(server.received().size(), 1u);
}

// A request that is not safe to repeat, lost with its connection, fails
// with kUnavailable (it may or may not have happened) and is never resent.
TEST(ClientWithFakeServer, ALostNonIdempotentAppendIsUnavailableAndNotResent) {
  FakeServer server(1, [](const Received& r) {
    if (r.opcode == static_cast<uint16_t>(wire::Opcode::kAppend)) return Reply::drop();
    return answer_streams(r);
  });
  ClientOnLoop c(server.port());
  std::optional<Result<AppendAck>> ack;
  c.client().append("b", "s", {{.body = "once"}}, AppendOptions{.idempotent = false},
                    [&ack](Result<AppendAck> a) { ack = std::move(a); });
  ASSERT_TRUE(c.run_until([&] { return ack.has_value(); })) << "the append was never answered";
  ASSERT_FALSE(ack->ok());
  EXPECT_EQ(ack->status().code(), ErrorCode::kUnavailable) << ack->status().to_string();

  // The client reconnects and serves later calls; the append stays sent once.
  std::optional<Result<StreamInfo>> info;
  c.client().get_stream("b", "s", [&info](Result<StreamInfo> i) { info = std::move(i); });
  ASSERT_TRUE(c.run_until([&] { return info.has_value(); }));
  ASSERT_TRUE(info->ok()) << info->status().to_string();
  const std::vector<Received> got = server.received();
  ASSERT_EQ(got.size(), 2u);
  const wire::Append sent = append_of(got[0]);
  EXPECT_EQ(sent.options & wire::Append::kHasProducer, 0) << "a non-idempotent append carries no producer";
  EXPECT_EQ(got[1].opcode, static_cast<uint16_t>(wire::Opcode::kGetStream));
  EXPECT_NE(got[1].conn, got[0].conn);
}

// The same for a create: not safe to repeat, so kUnavailable.
TEST(ClientWithFakeServer, ALostCreateStreamIsUnavailable) {
  FakeServer server(1, [](const Received&) { return Reply::drop(); });
  ClientOnLoop c(server.port());
  std::optional<Result<StreamInfo>> created;
  c.client().create_stream("b", "s", std::nullopt, [&created](Result<StreamInfo> i) { created = std::move(i); });
  ASSERT_TRUE(c.run_until([&] { return created.has_value(); }));
  ASSERT_FALSE(created->ok());
  EXPECT_EQ(created->status().code(), ErrorCode::kUnavailable) << created->status().to_string();
  ASSERT_EQ(server.received().size(), 1u);
  EXPECT_EQ(server.received()[0].opcode, static_cast<uint16_t>(wire::Opcode::kCreateStream));
}

}  // namespace
}  // namespace runnel::client
