// HttpServer end to end: real servers on a 1- or 2-shard ShardSet bound to
// 127.0.0.1:0, driven from the test thread with blocking sockets whose
// timeouts bound every wait. The shards run their own threads; the test only
// talks to them over TCP, plus request_stop() and join().
#include "net/http_server.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <functional>
#include <future>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "core/shard_set.h"
#include "net/admin.h"
#include "net/socket.h"

namespace runnel {
namespace {

// Every blocking client call gives up after this long, so no test can hang.
constexpr int kClientTimeoutSeconds = 5;
// Bound for the few waits on server-side progress the test cannot observe directly.
constexpr auto kWaitMax = std::chrono::seconds(5);

// Polls `condition` every millisecond until it holds or kWaitMax passes.
bool eventually(const std::function<bool()>& condition) {
  const auto deadline = std::chrono::steady_clock::now() + kWaitMax;
  while (!condition()) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return true;
}

// --- client side: blocking POSIX sockets with timeouts ---

struct Response {
  int status = 0;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;

  // Case-insensitive; the first match, or empty.
  std::string header(std::string_view name) const {
    for (const auto& [key, value] : headers) {
      if (key.size() == name.size() && ::strncasecmp(key.data(), name.data(), name.size()) == 0) return value;
    }
    return {};
  }
  bool has_header(std::string_view name) const {
    for (const auto& [key, value] : headers) {
      if (key.size() == name.size() && ::strncasecmp(key.data(), name.data(), name.size()) == 0) return true;
    }
    return false;
  }
};

// One client connection to 127.0.0.1. Keeps unread bytes between calls so
// pipelined responses can be read one by one.
class Client {
 public:
  explicit Client(uint16_t port) : fd_(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) {
    if (!fd_.valid()) return;
    timeval timeout{kClientTimeoutSeconds, 0};
    ::setsockopt(fd_.get(), SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
    ::setsockopt(fd_.get(), SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof(timeout));
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connected_ = ::connect(fd_.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) == 0;
  }

  bool connected() const { return connected_; }

  bool send(std::string_view bytes) {
    while (!bytes.empty()) {
      ssize_t n = ::send(fd_.get(), bytes.data(), bytes.size(), MSG_NOSIGNAL);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return false;
      bytes.remove_prefix(static_cast<size_t>(n));
    }
    return true;
  }

  // Reads one response: status line, headers, and a Content-Length body
  // (none for HEAD or 1xx). Empty on EOF, error or timeout.
  std::optional<Response> read_response(bool head_request = false) {
    size_t head_end;
    while ((head_end = buffer_.find("\r\n\r\n")) == std::string::npos) {
      if (!fill()) return std::nullopt;
    }
    Response response;
    std::string_view head(buffer_.data(), head_end);
    size_t line_end = head.find("\r\n");
    std::string_view status_line = head.substr(0, line_end);
    if (status_line.size() < 12 || status_line.substr(0, 9) != "HTTP/1.1 ") return std::nullopt;
    if (std::from_chars(status_line.data() + 9, status_line.data() + 12, response.status).ec != std::errc()) {
      return std::nullopt;
    }
    while (line_end != std::string_view::npos) {
      head.remove_prefix(line_end + 2);
      line_end = head.find("\r\n");
      std::string_view line = head.substr(0, line_end);
      size_t colon = line.find(':');
      if (colon == std::string_view::npos) return std::nullopt;
      std::string_view value = line.substr(colon + 1);
      while (!value.empty() && value.front() == ' ') value.remove_prefix(1);
      response.headers.emplace_back(std::string(line.substr(0, colon)), std::string(value));
    }
    size_t length = 0;
    if (!head_request && response.status >= 200) {
      std::string text = response.header("Content-Length");
      if (std::from_chars(text.data(), text.data() + text.size(), length).ec != std::errc()) return std::nullopt;
    }
    const size_t body_start = head_end + 4;
    while (buffer_.size() < body_start + length) {
      if (!fill()) return std::nullopt;
    }
    response.body = buffer_.substr(body_start, length);
    buffer_.erase(0, body_start + length);
    return response;
  }

  // Waits (up to the receive timeout) for the server to close the
  // connection: true on EOF or reset, false if bytes arrive or time runs out.
  bool closed_by_server() {
    if (!buffer_.empty()) return false;
    char byte;
    ssize_t n;
    do {
      n = ::recv(fd_.get(), &byte, 1, 0);
    } while (n < 0 && errno == EINTR);
    if (n == 0 || (n < 0 && errno == ECONNRESET)) return true;
    if (n > 0) buffer_.push_back(byte);
    return false;
  }

  // Closes with a FIN, as a client that gives up does.
  void close() { fd_.reset(); }

  // Sends a FIN but keeps reading, as `nc -N` does.
  void shut_down_sending() { ::shutdown(fd_.get(), SHUT_WR); }

  // Closes with a RST (SO_LINGER 0), as a client that crashes does.
  void reset() {
    linger abort{1, 0};
    ::setsockopt(fd_.get(), SOL_SOCKET, SO_LINGER, &abort, sizeof(abort));
    fd_.reset();
  }

 private:
  bool fill() {
    char chunk[64 * 1024];
    ssize_t n;
    do {
      n = ::recv(fd_.get(), chunk, sizeof(chunk), 0);
    } while (n < 0 && errno == EINTR);
    if (n <= 0) return false;
    buffer_.append(chunk, static_cast<size_t>(n));
    return true;
  }

  UniqueFd fd_;
  bool connected_ = false;
  std::string buffer_;
};

std::string get(std::string_view path) { return "GET " + std::string(path) + " HTTP/1.1\r\nHost: test\r\n\r\n"; }

std::string post(std::string_view path, std::string_view body) {
  return "POST " + std::string(path) + " HTTP/1.1\r\nHost: test\r\nContent-Length: " + std::to_string(body.size()) +
         "\r\n\r\n" + std::string(body);
}

// --- server side ---

HttpResponse text(int status, std::string body) {
  HttpResponse response;
  response.status = status;
  response.content_type = "text/plain";
  response.body = std::move(body);
  return response;
}

constexpr size_t kBigBodyBytes = 1024 * 1024;

// An answer given later, from a timer on the shard.
struct SlowReply {
  explicit SlowReply(Reactor& reactor) : timer(reactor, [this] { responder.respond(text(200, "slow")); }) {}
  HttpResponder responder;
  Timer timer;  // Declared last: destroyed (cancelled) first.
};

// What the test handler keeps on one shard. Created in init, destroyed in
// fini, both on the shard.
struct ShardState {
  std::vector<std::unique_ptr<SlowReply>> slow_replies;
  std::unique_ptr<Router> streams;  // The admin handler's; no stores behind it.
};

class HttpServerTest : public ::testing::Test {
 protected:
  using HandlerFactory = std::function<HttpHandler(Reactor&, ShardState&)>;

  void TearDown() override { stop_and_join(); }

  // A fresh HttpServer per shard on one 127.0.0.1:0 port; returns after
  // every shard accepts. Use with ASSERT_NO_FATAL_FAILURE.
  void start(const HttpServerOptions& options, int shard_count, const HandlerFactory& make_handler) {
    auto listeners = listen_reuseport_group(HostPort{"127.0.0.1", 0}, shard_count, 64);
    ASSERT_TRUE(listeners.is_ok()) << listeners.status().to_string();
    auto bound = bound_address(listeners->front().get());
    ASSERT_TRUE(bound.is_ok()) << bound.status().to_string();
    port_ = bound->port;
    listeners_ = std::move(*listeners);
    const auto n = static_cast<size_t>(shard_count);
    servers_.resize(n);
    states_.resize(n);
    open_at_exit_.assign(n, ~size_t{0});

    ShardSetOptions shard_options;
    shard_options.shards = shard_count;
    shard_options.ring_entries = 64;
    shard_options.shutdown_timeout_ms = 10'000;
    shard_options.pin_threads = false;
    shards_ = std::make_unique<ShardSet>(shard_options);
    Status started = shards_->start(
        [this, options, make_handler](Reactor& reactor) {
          const auto s = static_cast<size_t>(reactor.shard());
          states_[s] = std::make_unique<ShardState>();
          servers_[s] = std::make_unique<HttpServer>(reactor, std::move(listeners_[s]), options,
                                                     make_handler(reactor, *states_[s]));
          servers_[s]->start();
          return Status::ok();
        },
        [this](Reactor& reactor) {
          const auto s = static_cast<size_t>(reactor.shard());
          open_at_exit_[s] = servers_[s]->open_connections();
          servers_[s].reset();
          states_[s].reset();
        });
    ASSERT_TRUE(started.is_ok()) << started.to_string();
  }

  void start(const HttpServerOptions& options, int shard_count = 1) {
    start(options, shard_count, [this](Reactor& reactor, ShardState& state) { return test_handler(reactor, state); });
  }

  void start_admin(int shard_count) {
    start(HttpServerOptions(), shard_count,
          [this](Reactor& reactor, ShardState& state) {
            state.streams = std::make_unique<Router>(reactor, &no_stores_, nullptr);
            return make_admin_handler(reactor, node_, *state.streams);
          });
  }

  // Shard 0's open connections, asked on the shard.
  size_t open_connections() {
    std::promise<size_t> answer;
    auto future = answer.get_future();
    shards_->reactor(0).post_external([this, &answer] { answer.set_value(servers_[0]->open_connections()); });
    return future.get();
  }

  void stop_and_join() {
    if (shards_ == nullptr || joined_) return;
    shards_->request_stop();
    shards_->join();
    joined_ = true;
  }

  // /echo answers with the body; /big with kBigBodyBytes; /sync at once;
  // /slow 20 ms later from a timer, /slower 600 ms later; /slow-until-stop 20 ms after shutdown
  // begins; /drop never answers (drops the responder); anything else is 404.
  HttpHandler test_handler(Reactor& reactor, ShardState& state) {
    return [this, &reactor, &state](const HttpRequest& request, HttpResponder responder) {
      if (request.path == "/echo") {
        responder.respond(text(200, request.body));
      } else if (request.path == "/big") {
        responder.respond(text(200, std::string(kBigBodyBytes, 'b')));
      } else if (request.path == "/sync") {
        responder.respond(text(200, "sync"));
      } else if (request.path == "/slow" || request.path == "/slower" || request.path == "/slow-until-stop") {
        auto reply = std::make_unique<SlowReply>(reactor);
        reply->responder = std::move(responder);
        if (request.path == "/slow") {
          reply->timer.arm_after_us(20'000);
        } else if (request.path == "/slower") {
          reply->timer.arm_after_us(600'000);
        } else {
          reactor.on_stop([timer = &reply->timer] { timer->arm_after_us(20'000); });
        }
        state.slow_replies.push_back(std::move(reply));
        slow_requests_started_++;
      } else if (request.path == "/drop") {
        // The responder goes out of scope unanswered.
      } else {
        responder.respond(HttpResponse::error(404, "not_found", "no such route"));
      }
    };
  }

  NodeInfo node_;
  Sharded<StreamStore> no_stores_{0};  // The REST API is never ready here.
  uint16_t port_ = 0;
  std::atomic<int> slow_requests_started_{0};
  // Per shard, each element touched only by its shard (and by this thread
  // before start and after join).
  std::vector<UniqueFd> listeners_;
  std::vector<std::unique_ptr<HttpServer>> servers_;
  std::vector<std::unique_ptr<ShardState>> states_;
  std::vector<size_t> open_at_exit_;
  std::unique_ptr<ShardSet> shards_;
  bool joined_ = false;
};

// --- keep-alive and pipelining ---

TEST_F(HttpServerTest, AnswersTwoRequestsOnOneKeepAliveConnection) {
  ASSERT_NO_FATAL_FAILURE(start(HttpServerOptions()));
  Client client(port_);
  ASSERT_TRUE(client.connected());
  ASSERT_TRUE(client.send(post("/echo", "first")));
  auto first = client.read_response();
  ASSERT_TRUE(first.has_value());
  EXPECT_EQ(first->status, 200);
  EXPECT_EQ(first->body, "first");
  EXPECT_EQ(first->header("Connection"), "keep-alive");
  ASSERT_TRUE(client.send(post("/echo", "second")));
  auto second = client.read_response();
  ASSERT_TRUE(second.has_value());
  EXPECT_EQ(second->status, 200);
  EXPECT_EQ(second->body, "second");
}

TEST_F(HttpServerTest, AnswersPipelinedRequestsInOrderWhenTheFirstIsSlow) {
  ASSERT_NO_FATAL_FAILURE(start(HttpServerOptions()));
  Client client(port_);
  ASSERT_TRUE(client.connected());
  ASSERT_TRUE(client.send(get("/slow") + post("/echo", "second") + get("/sync") + get("/missing")));
  auto first = client.read_response();
  auto second = client.read_response();
  auto third = client.read_response();
  auto fourth = client.read_response();
  ASSERT_TRUE(first.has_value() && second.has_value() && third.has_value() && fourth.has_value());
  EXPECT_EQ(first->body, "slow");
  EXPECT_EQ(second->body, "second");
  EXPECT_EQ(third->body, "sync");
  EXPECT_EQ(fourth->status, 404);
}

TEST_F(HttpServerTest, AnswersPipelinedRequestsWhoseAnswersExceedTheOutputHighWater) {
  ASSERT_NO_FATAL_FAILURE(start(HttpServerOptions()));
  Client client(port_);
  ASSERT_TRUE(client.connected());
  // Eight 1 MiB answers, twice HttpConnection::kOutputBytesHighWater: the
  // server must stop parsing while they queue and resume as they drain.
  constexpr int kRequests = 8;
  static_assert(kRequests * kBigBodyBytes > HttpConnection::kOutputBytesHighWater);
  std::string requests;
  for (int i = 0; i < kRequests; i++) requests += get("/big");
  ASSERT_TRUE(client.send(requests + post("/echo", "last")));
  for (int i = 0; i < kRequests; i++) {
    auto response = client.read_response();
    ASSERT_TRUE(response.has_value()) << "response " << i;
    EXPECT_EQ(response->body.size(), kBigBodyBytes);
  }
  auto last = client.read_response();
  ASSERT_TRUE(last.has_value());
  EXPECT_EQ(last->body, "last");
}

TEST_F(HttpServerTest, ServesManyConnectionsAtOnceAcrossShards) {
  ASSERT_NO_FATAL_FAILURE(start(HttpServerOptions(), 2));
  constexpr int kClients = 32;
  std::vector<std::unique_ptr<Client>> clients;
  for (int i = 0; i < kClients; i++) {
    clients.push_back(std::make_unique<Client>(port_));
    ASSERT_TRUE(clients.back()->connected());
  }
  for (int i = 0; i < kClients; i++) {
    const std::string id = std::to_string(i);
    Client& client = *clients[static_cast<size_t>(i)];
    ASSERT_TRUE(client.send(post("/echo", id + "a") + get("/slow") + post("/echo", id + "b")));
  }
  for (int i = 0; i < kClients; i++) {
    Client& client = *clients[static_cast<size_t>(i)];
    const std::string id = std::to_string(i);
    auto a = client.read_response();
    auto slow = client.read_response();
    auto b = client.read_response();
    ASSERT_TRUE(a.has_value() && slow.has_value() && b.has_value()) << "client " << i;
    EXPECT_EQ(a->body, id + "a");
    EXPECT_EQ(slow->body, "slow");
    EXPECT_EQ(b->body, id + "b");
  }
}

TEST_F(HttpServerTest, AnswersARequestSplitAcrossManyWrites) {
  ASSERT_NO_FATAL_FAILURE(start(HttpServerOptions()));
  Client client(port_);
  ASSERT_TRUE(client.connected());
  for (char byte : post("/echo", "in pieces")) ASSERT_TRUE(client.send(std::string_view(&byte, 1)));
  auto response = client.read_response();
  ASSERT_TRUE(response.has_value());
  EXPECT_EQ(response->body, "in pieces");
}

TEST_F(HttpServerTest, EchoesABodyLargerThanTheReadBuffer) {
  ASSERT_NO_FATAL_FAILURE(start(HttpServerOptions()));
  Client client(port_);
  ASSERT_TRUE(client.connected());
  std::string body(200 * 1024, 'x');
  for (size_t i = 0; i < body.size(); i += 1000) body[i] = static_cast<char>('a' + (i / 1000) % 26);
  ASSERT_TRUE(client.send(post("/echo", body)));
  auto response = client.read_response();
  ASSERT_TRUE(response.has_value());
  EXPECT_EQ(response->status, 200);
  EXPECT_TRUE(response->body == body);  // Not EXPECT_EQ: a mismatch would print 400 KiB.
}

TEST_F(HttpServerTest, ClosesAfterAnsweringConnectionClose) {
  ASSERT_NO_FATAL_FAILURE(start(HttpServerOptions()));
  Client client(port_);
  ASSERT_TRUE(client.connected());
  ASSERT_TRUE(client.send("GET /sync HTTP/1.1\r\nConnection: close\r\n\r\n"));
  auto response = client.read_response();
  ASSERT_TRUE(response.has_value());
  EXPECT_EQ(response->status, 200);
  EXPECT_EQ(response->header("Connection"), "close");
  EXPECT_TRUE(client.closed_by_server());
}

TEST_F(HttpServerTest, ClosesAfterAnsweringHttp10) {
  ASSERT_NO_FATAL_FAILURE(start(HttpServerOptions()));
  Client client(port_);
  ASSERT_TRUE(client.connected());
  ASSERT_TRUE(client.send("GET /sync HTTP/1.0\r\n\r\n"));
  auto response = client.read_response();
  ASSERT_TRUE(response.has_value());
  EXPECT_EQ(response->header("Connection"), "close");
  EXPECT_TRUE(client.closed_by_server());
}

TEST_F(HttpServerTest, AnswersHeadWithContentLengthButNoBody) {
  ASSERT_NO_FATAL_FAILURE(start(HttpServerOptions()));
  Client client(port_);
  ASSERT_TRUE(client.connected());
  // A GET right behind the HEAD: any body bytes sent for the HEAD would be
  // read as the start of the GET's response.
  ASSERT_TRUE(client.send("HEAD /sync HTTP/1.1\r\n\r\n" + get("/sync")));
  auto head = client.read_response(/*head_request=*/true);
  ASSERT_TRUE(head.has_value());
  EXPECT_EQ(head->status, 200);
  EXPECT_EQ(head->header("Content-Length"), "4");
  EXPECT_EQ(head->body, "");
  auto next = client.read_response();
  ASSERT_TRUE(next.has_value());
  EXPECT_EQ(next->status, 200);
  EXPECT_EQ(next->body, "sync");
}

TEST_F(HttpServerTest, AnswersAnUnansweredRequestWith500) {
  ASSERT_NO_FATAL_FAILURE(start(HttpServerOptions()));
  Client client(port_);
  ASSERT_TRUE(client.connected());
  ASSERT_TRUE(client.send(get("/drop") + get("/sync")));
  auto dropped = client.read_response();
  ASSERT_TRUE(dropped.has_value());
  EXPECT_EQ(dropped->status, 500);
  auto next = client.read_response();
  ASSERT_TRUE(next.has_value());
  EXPECT_EQ(next->body, "sync");
}

TEST_F(HttpServerTest, KeepsServingAfterAnIgnoredUpgradeRequest) {
  ASSERT_NO_FATAL_FAILURE(start(HttpServerOptions()));
  Client client(port_);
  ASSERT_TRUE(client.connected());
  ASSERT_TRUE(client.send("GET /sync HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n"));
  auto upgrade = client.read_response();
  ASSERT_TRUE(upgrade.has_value());
  EXPECT_EQ(upgrade->status, 200);
  ASSERT_TRUE(client.send(get("/sync")));
  auto next = client.read_response();
  ASSERT_TRUE(next.has_value());
  EXPECT_EQ(next->status, 200);
}

// --- refused requests ---

TEST_F(HttpServerTest, RejectsOversizedHeadersWith431AndCloses) {
  HttpServerOptions o;
  o.limits.parser.header_bytes_max = 1024;
  ASSERT_NO_FATAL_FAILURE(start(o));
  Client client(port_);
  ASSERT_TRUE(client.connected());
  ASSERT_TRUE(client.send("GET /sync HTTP/1.1\r\nX-Big: " + std::string(2048, 'v') + "\r\n\r\n"));
  auto response = client.read_response();
  ASSERT_TRUE(response.has_value());
  EXPECT_EQ(response->status, 431);
  EXPECT_EQ(response->header("Connection"), "close");
  EXPECT_NE(response->body.find("\"headers_too_large\""), std::string::npos) << response->body;
  EXPECT_TRUE(client.closed_by_server());
}

TEST_F(HttpServerTest, RejectsHeadersLargerThanTheReadBufferWith431) {
  ASSERT_NO_FATAL_FAILURE(start(HttpServerOptions()));  // Default limit: 16 KiB.
  Client client(port_);
  ASSERT_TRUE(client.connected());
  // The server stops reading at the limit, so part of this stays unread and
  // the send may fail when the server closes; the answer must still arrive.
  client.send("GET /sync HTTP/1.1\r\nX-Big: " + std::string(256 * 1024, 'v') + "\r\n\r\n");
  auto response = client.read_response();
  ASSERT_TRUE(response.has_value());
  EXPECT_EQ(response->status, 431);
}

TEST_F(HttpServerTest, RejectsMalformedInputWith400AndCloses) {
  ASSERT_NO_FATAL_FAILURE(start(HttpServerOptions()));
  Client client(port_);
  ASSERT_TRUE(client.connected());
  ASSERT_TRUE(client.send("this is not http\r\n\r\n"));
  auto response = client.read_response();
  ASSERT_TRUE(response.has_value());
  EXPECT_EQ(response->status, 400);
  EXPECT_EQ(response->header("Connection"), "close");
  EXPECT_NE(response->body.find("\"bad_request\""), std::string::npos) << response->body;
  EXPECT_TRUE(client.closed_by_server());
}

TEST_F(HttpServerTest, AnswersEarlierPipelinedRequestsBeforeRejectingMalformedInput) {
  ASSERT_NO_FATAL_FAILURE(start(HttpServerOptions()));
  Client client(port_);
  ASSERT_TRUE(client.connected());
  ASSERT_TRUE(client.send(get("/slow") + "garbage\r\n\r\n"));
  auto first = client.read_response();
  ASSERT_TRUE(first.has_value());
  EXPECT_EQ(first->body, "slow");
  auto second = client.read_response();
  ASSERT_TRUE(second.has_value());
  EXPECT_EQ(second->status, 400);
  EXPECT_TRUE(client.closed_by_server());
}

TEST_F(HttpServerTest, RejectsAnOversizedBodyWith413BeforeItArrives) {
  HttpServerOptions o;
  o.limits.parser.body_bytes_max = 1024;
  ASSERT_NO_FATAL_FAILURE(start(o));
  Client client(port_);
  ASSERT_TRUE(client.connected());
  ASSERT_TRUE(client.send("POST /echo HTTP/1.1\r\nContent-Length: 4096\r\n\r\n"));
  auto response = client.read_response();
  ASSERT_TRUE(response.has_value());
  EXPECT_EQ(response->status, 413);
  EXPECT_EQ(response->header("Connection"), "close");
  EXPECT_TRUE(client.closed_by_server());
}

TEST_F(HttpServerTest, SendsContinueBeforeTheFinalAnswer) {
  ASSERT_NO_FATAL_FAILURE(start(HttpServerOptions()));
  Client client(port_);
  ASSERT_TRUE(client.connected());
  ASSERT_TRUE(client.send("POST /echo HTTP/1.1\r\nContent-Length: 7\r\nExpect: 100-continue\r\n\r\n"));
  auto interim = client.read_response();
  ASSERT_TRUE(interim.has_value());
  EXPECT_EQ(interim->status, 100);
  ASSERT_TRUE(client.send("payload"));
  auto response = client.read_response();
  ASSERT_TRUE(response.has_value());
  EXPECT_EQ(response->status, 200);
  EXPECT_EQ(response->body, "payload");
}

TEST_F(HttpServerTest, RefusesAnOversizedBodyInsteadOfAskingForIt) {
  HttpServerOptions o;
  o.limits.parser.body_bytes_max = 1024;
  ASSERT_NO_FATAL_FAILURE(start(o));
  Client client(port_);
  ASSERT_TRUE(client.connected());
  ASSERT_TRUE(client.send("POST /echo HTTP/1.1\r\nContent-Length: 4096\r\nExpect: 100-continue\r\n\r\n"));
  auto response = client.read_response();
  ASSERT_TRUE(response.has_value());
  EXPECT_EQ(response->status, 413);
}

// --- abrupt disconnects ---
// With one slot, a new connection is served only once the old one's slot was
// freed, so these also show that nothing leaks. The server notices the
// disconnect asynchronously: until it does, a new connection gets a 503 (or
// a reset), so the client retries within a bound.

bool serves_a_new_connection(uint16_t port) {
  return eventually([port] {
    Client client(port);
    if (!client.connected() || !client.send(get("/sync"))) return false;
    auto response = client.read_response();
    return response.has_value() && response->status == 200 && response->body == "sync";
  });
}

HttpServerOptions one_slot() {
  HttpServerOptions o;
  o.connections_max = 1;
  return o;
}

TEST_F(HttpServerTest, ServesANewConnectionAfterAClientClosesMidRequest) {
  ASSERT_NO_FATAL_FAILURE(start(one_slot()));
  {
    Client client(port_);
    ASSERT_TRUE(client.connected());
    ASSERT_TRUE(client.send("GET /sync HTTP/1.1\r\nHost: te"));
    client.close();
  }
  EXPECT_TRUE(serves_a_new_connection(port_));
}

TEST_F(HttpServerTest, ServesANewConnectionAfterAClientClosesMidBody) {
  ASSERT_NO_FATAL_FAILURE(start(one_slot()));
  {
    Client client(port_);
    ASSERT_TRUE(client.connected());
    ASSERT_TRUE(client.send("POST /echo HTTP/1.1\r\nContent-Length: 100\r\n\r\nonly part"));
    client.close();
  }
  EXPECT_TRUE(serves_a_new_connection(port_));
}

TEST_F(HttpServerTest, ServesANewConnectionAfterAClientResetsMidBody) {
  ASSERT_NO_FATAL_FAILURE(start(one_slot()));
  {
    Client client(port_);
    ASSERT_TRUE(client.connected());
    ASSERT_TRUE(client.send("POST /echo HTTP/1.1\r\nContent-Length: 100\r\n\r\nonly part"));
    client.reset();
  }
  EXPECT_TRUE(serves_a_new_connection(port_));
}

TEST_F(HttpServerTest, ServesANewConnectionAfterAClientClosesWhileItsAnswerIsPending) {
  ASSERT_NO_FATAL_FAILURE(start(one_slot()));
  {
    Client client(port_);
    ASSERT_TRUE(client.connected());
    ASSERT_TRUE(client.send(get("/slow")));
    ASSERT_TRUE(eventually([this] { return slow_requests_started_.load() == 1; }));
    client.close();
  }
  EXPECT_TRUE(serves_a_new_connection(port_));
}

TEST_F(HttpServerTest, ServesANewConnectionAfterAClientResetsWhileItsAnswerIsPending) {
  ASSERT_NO_FATAL_FAILURE(start(one_slot()));
  {
    Client client(port_);
    ASSERT_TRUE(client.connected());
    ASSERT_TRUE(client.send(get("/slow")));
    ASSERT_TRUE(eventually([this] { return slow_requests_started_.load() == 1; }));
    client.reset();
  }
  EXPECT_TRUE(serves_a_new_connection(port_));
}

TEST_F(HttpServerTest, AnswersAClientThatHalfClosesAfterItsRequest) {
  ASSERT_NO_FATAL_FAILURE(start(HttpServerOptions()));
  Client client(port_);
  ASSERT_TRUE(client.connected());
  ASSERT_TRUE(client.send(post("/echo", "last words")));
  client.shut_down_sending();
  auto response = client.read_response();
  ASSERT_TRUE(response.has_value());
  EXPECT_EQ(response->status, 200);
  EXPECT_EQ(response->body, "last words");
  EXPECT_TRUE(client.closed_by_server());
}

// --- connection limit ---

TEST_F(HttpServerTest, RefusesAConnectionBeyondTheMaximumWith503WhenNoneIsIdle) {
  HttpServerOptions o;
  o.connections_max = 2;
  ASSERT_NO_FATAL_FAILURE(start(o));
  Client first(port_);
  Client second(port_);
  ASSERT_TRUE(first.connected() && second.connected());
  // Both busy: their requests are with the handler until shutdown.
  ASSERT_TRUE(first.send(get("/slow-until-stop")) && second.send(get("/slow-until-stop")));
  ASSERT_TRUE(eventually([this] { return slow_requests_started_.load() == 2; }));
  Client third(port_);
  ASSERT_TRUE(third.connected());
  auto response = third.read_response();
  ASSERT_TRUE(response.has_value());
  EXPECT_EQ(response->status, 503);
  EXPECT_EQ(response->header("Connection"), "close");
  EXPECT_NE(response->body.find("\"overloaded\""), std::string::npos) << response->body;
  EXPECT_TRUE(third.closed_by_server());
}

TEST_F(HttpServerTest, KeepsServingExistingConnectionsWhileRefusingNewOnes) {
  HttpServerOptions o;
  o.connections_max = 1;
  ASSERT_NO_FATAL_FAILURE(start(o));
  Client first(port_);
  ASSERT_TRUE(first.connected());
  ASSERT_TRUE(first.send(get("/sync")));
  ASSERT_TRUE(first.read_response().has_value());
  // Busy (its request with the handler): the slot is not given away.
  ASSERT_TRUE(first.send(get("/slow-until-stop")));
  ASSERT_TRUE(eventually([this] { return slow_requests_started_.load() == 1; }));
  Client refused(port_);
  auto rejection = refused.read_response();
  ASSERT_TRUE(rejection.has_value());
  ASSERT_EQ(rejection->status, 503);
  stop_and_join();  // The handler answers once shutdown begins.
  auto response = first.read_response();
  ASSERT_TRUE(response.has_value());
  EXPECT_EQ(response->status, 200);
}

TEST_F(HttpServerTest, ANewConnectionTakesTheSlotOfTheLongestIdleOne) {
  HttpServerOptions o;
  o.connections_max = 2;
  ASSERT_NO_FATAL_FAILURE(start(o));
  // Two silent connections hold every slot (a client that connects and
  // never speaks): a newcomer still gets in, closing the older one.
  Client silent_old(port_);
  ASSERT_TRUE(silent_old.connected());
  ASSERT_TRUE(eventually([this] { return open_connections() == 1; }));
  Client silent_new(port_);
  ASSERT_TRUE(silent_new.connected());
  ASSERT_TRUE(eventually([this] { return open_connections() == 2; }));
  Client health(port_);
  ASSERT_TRUE(health.send(get("/sync")));
  auto response = health.read_response();
  ASSERT_TRUE(response.has_value());
  EXPECT_EQ(response->status, 200);
  EXPECT_TRUE(silent_old.closed_by_server());
}

TEST_F(HttpServerTest, ManySilentConnectionsDoNotLockOthersOut) {
  HttpServerOptions o;
  o.connections_max = 8;
  ASSERT_NO_FATAL_FAILURE(start(o));
  std::vector<std::unique_ptr<Client>> silent;
  for (int i = 0; i < 40; i++) {
    silent.push_back(std::make_unique<Client>(port_));
    ASSERT_TRUE(silent.back()->connected());
  }
  for (int i = 0; i < 5; i++) EXPECT_TRUE(serves_a_new_connection(port_)) << "attempt " << i;
}

TEST_F(HttpServerTest, AcceptsAgainOnceAConnectionCloses) {
  HttpServerOptions o;
  o.connections_max = 1;
  ASSERT_NO_FATAL_FAILURE(start(o));
  {
    Client first(port_);
    ASSERT_TRUE(first.connected());
    ASSERT_TRUE(first.send(get("/sync")));
    ASSERT_TRUE(first.read_response().has_value());
  }
  EXPECT_TRUE(serves_a_new_connection(port_));
}

// --- timeouts ---

TEST_F(HttpServerTest, AnswersAHalfSentRequestWith408AndCloses) {
  HttpServerOptions o;
  o.limits.request_timeout_ms = 100;
  ASSERT_NO_FATAL_FAILURE(start(o));
  Client client(port_);
  ASSERT_TRUE(client.connected());
  ASSERT_TRUE(client.send("GET /sync HTTP/1.1\r\nHost: te"));
  auto response = client.read_response();
  ASSERT_TRUE(response.has_value());
  EXPECT_EQ(response->status, 408);
  EXPECT_EQ(response->header("Connection"), "close");
  EXPECT_TRUE(client.closed_by_server());
}

TEST_F(HttpServerTest, AnswersAHalfSentBodyWith408) {
  HttpServerOptions o;
  o.limits.request_timeout_ms = 100;
  ASSERT_NO_FATAL_FAILURE(start(o));
  Client client(port_);
  ASSERT_TRUE(client.connected());
  ASSERT_TRUE(client.send("POST /echo HTTP/1.1\r\nContent-Length: 10\r\n\r\nabc"));
  auto response = client.read_response();
  ASSERT_TRUE(response.has_value());
  EXPECT_EQ(response->status, 408);
}

TEST_F(HttpServerTest, DoesNotTimeOutARequestWhileItsHandlerWorks) {
  HttpServerOptions o;
  o.limits.request_timeout_ms = 200;  // Far shorter than /slower takes (a new connection's request is due by then).
  ASSERT_NO_FATAL_FAILURE(start(o));
  Client client(port_);
  ASSERT_TRUE(client.connected());
  ASSERT_TRUE(client.send(get("/slower")));
  auto response = client.read_response();
  ASSERT_TRUE(response.has_value());
  EXPECT_EQ(response->status, 200);
  EXPECT_EQ(response->body, "slow");
}

TEST_F(HttpServerTest, ClosesAnIdleKeepAliveConnection) {
  HttpServerOptions o;
  o.limits.idle_timeout_ms = 100;
  ASSERT_NO_FATAL_FAILURE(start(o));
  Client client(port_);
  ASSERT_TRUE(client.connected());
  ASSERT_TRUE(client.send(get("/sync")));
  auto response = client.read_response();
  ASSERT_TRUE(response.has_value());
  EXPECT_EQ(response->header("Connection"), "keep-alive");
  EXPECT_TRUE(client.closed_by_server());
}

TEST_F(HttpServerTest, ClosesAConnectionThatNeverSendsAnything) {
  HttpServerOptions o;
  o.limits.request_timeout_ms = 100;  // A silent newcomer owes a request, not keep-alive patience.
  o.limits.idle_timeout_ms = 600'000;
  ASSERT_NO_FATAL_FAILURE(start(o));
  Client client(port_);
  ASSERT_TRUE(client.connected());
  EXPECT_TRUE(client.closed_by_server());
}

// --- shutdown ---

TEST_F(HttpServerTest, FinishesAnInFlightRequestWithConnectionCloseOnShutdown) {
  ASSERT_NO_FATAL_FAILURE(start(HttpServerOptions(), 2));
  Client client(port_);
  ASSERT_TRUE(client.connected());
  // Answered only after the stop begins, so it is surely in flight.
  ASSERT_TRUE(client.send(get("/slow-until-stop")));
  ASSERT_TRUE(eventually([this] { return slow_requests_started_.load() == 1; }));
  shards_->request_stop();
  auto response = client.read_response();
  ASSERT_TRUE(response.has_value());
  EXPECT_EQ(response->status, 200);
  EXPECT_EQ(response->body, "slow");
  EXPECT_EQ(response->header("Connection"), "close");
  EXPECT_TRUE(client.closed_by_server());
  stop_and_join();
  // Every shard left after draining, not because the shutdown timed out.
  EXPECT_EQ(open_at_exit_, (std::vector<size_t>{0, 0}));
}

TEST_F(HttpServerTest, ClosesIdleConnectionsOnShutdown) {
  ASSERT_NO_FATAL_FAILURE(start(HttpServerOptions(), 2));
  Client client(port_);
  ASSERT_TRUE(client.connected());
  ASSERT_TRUE(client.send(get("/sync")));
  ASSERT_TRUE(client.read_response().has_value());
  shards_->request_stop();
  EXPECT_TRUE(client.closed_by_server());
  stop_and_join();
  EXPECT_EQ(open_at_exit_, (std::vector<size_t>{0, 0}));
}

TEST_F(HttpServerTest, StopsAcceptingOnShutdown) {
  ASSERT_NO_FATAL_FAILURE(start(HttpServerOptions(), 2));
  stop_and_join();
  Client client(port_);
  EXPECT_FALSE(client.connected());
}

// --- the admin API on a real handler ---

TEST_F(HttpServerTest, AdminHealthAnswers200) {
  ASSERT_NO_FATAL_FAILURE(start_admin(2));
  Client client(port_);
  ASSERT_TRUE(client.connected());
  ASSERT_TRUE(client.send(get("/health")));
  auto response = client.read_response();
  ASSERT_TRUE(response.has_value());
  EXPECT_EQ(response->status, 200);
  EXPECT_EQ(response->header("Content-Type"), "application/json");
  EXPECT_NE(response->body.find("\"status\":\"ok\""), std::string::npos) << response->body;
}

TEST_F(HttpServerTest, AdminReadyAnswers503UntilTheNodeIsReadyThen200) {
  ASSERT_NO_FATAL_FAILURE(start_admin(2));
  Client client(port_);
  ASSERT_TRUE(client.connected());
  ASSERT_TRUE(client.send(get("/ready")));
  auto before = client.read_response();
  ASSERT_TRUE(before.has_value());
  EXPECT_EQ(before->status, 503);
  EXPECT_EQ(before->body, "{\"ready\":false}\n");
  node_.ready.store(true, std::memory_order_release);
  ASSERT_TRUE(client.send(get("/ready")));
  auto after = client.read_response();
  ASSERT_TRUE(after.has_value());
  EXPECT_EQ(after->status, 200);
  EXPECT_EQ(after->body, "{\"ready\":true}\n");
}

TEST_F(HttpServerTest, AdminMetricsCoverEveryShard) {
  ASSERT_NO_FATAL_FAILURE(start_admin(2));
  Client client(port_);
  ASSERT_TRUE(client.connected());
  ASSERT_TRUE(client.send(get("/metrics")));
  auto response = client.read_response();
  ASSERT_TRUE(response.has_value());
  EXPECT_EQ(response->status, 200);
  EXPECT_EQ(response->header("Content-Type").rfind("text/plain", 0), 0u);
  EXPECT_NE(response->body.find("shard=\"0\""), std::string::npos);
  EXPECT_NE(response->body.find("shard=\"1\""), std::string::npos);
  EXPECT_NE(response->body.find("runnel_admin_connections{shard=\"0\"}"), std::string::npos);
  EXPECT_NE(response->body.find("runnel_admin_connections{shard=\"1\"}"), std::string::npos);
}

TEST_F(HttpServerTest, AdminConfigAnswersTheEffectiveConfiguration) {
  node_.config.data_dir = "/tmp/runnel-http-server-test";
  ASSERT_NO_FATAL_FAILURE(start_admin(2));
  Client client(port_);
  ASSERT_TRUE(client.connected());
  ASSERT_TRUE(client.send(get("/v1/config")));
  auto response = client.read_response();
  ASSERT_TRUE(response.has_value());
  EXPECT_EQ(response->status, 200);
  EXPECT_NE(response->body.find("\"data_dir\":\"/tmp/runnel-http-server-test\""), std::string::npos)
      << response->body;
}

TEST_F(HttpServerTest, AdminRejectsOtherMethodsWith405) {
  ASSERT_NO_FATAL_FAILURE(start_admin(1));
  Client client(port_);
  ASSERT_TRUE(client.connected());
  ASSERT_TRUE(client.send(post("/health", "x")));
  auto response = client.read_response();
  ASSERT_TRUE(response.has_value());
  EXPECT_EQ(response->status, 405);
  EXPECT_EQ(response->header("Allow"), "GET, HEAD");
}

TEST_F(HttpServerTest, AdminRestApiAnswers503UntilTheNodeIsReady) {
  ASSERT_NO_FATAL_FAILURE(start_admin(1));
  Client client(port_);
  ASSERT_TRUE(client.connected());
  ASSERT_TRUE(client.send(get("/v1/buckets")));
  auto response = client.read_response();
  ASSERT_TRUE(response.has_value());
  EXPECT_EQ(response->status, 503);
  EXPECT_EQ(response->header("Retry-After"), "1");
  EXPECT_NE(response->body.find("\"unavailable\""), std::string::npos) << response->body;
}

TEST_F(HttpServerTest, AdminAnswersAnUnknownPathWith404) {
  ASSERT_NO_FATAL_FAILURE(start_admin(1));
  Client client(port_);
  ASSERT_TRUE(client.connected());
  ASSERT_TRUE(client.send(get("/nope")));
  auto response = client.read_response();
  ASSERT_TRUE(response.has_value());
  EXPECT_EQ(response->status, 404);
  EXPECT_NE(response->body.find("\"not_found\""), std::string::npos) << response->body;
}

}  // namespace
}  // namespace runnel
