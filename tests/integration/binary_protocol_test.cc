// The binary protocol against the real runneld (two shards, loopback ports
// of its own): handshake, buckets, every stream operation, appends and reads
// across both shards with pipelining, match_seq_num races, and bad input —
// which closes only the connection that sent it.
//
// The client here is deliberately minimal (blocking socket, proto/wire.h),
// so these tests check the server, not the client library.

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "proto/wire.h"
#include "proto/wire_test_util.h"
#include "storage/batch.h"
#include "tests/integration/process.h"

namespace runnel::testing {
namespace {

using namespace runnel::wire;

struct Frame {
  FrameHeader header;
  std::string body;
};

class WireClient {
 public:
  explicit WireClient(int port) : fd_(connect_loopback(port)) {}
  ~WireClient() {
    if (fd_ >= 0) ::close(fd_);
  }
  bool connected() const { return fd_ >= 0; }

  void send_raw(std::string_view bytes) {
    while (!bytes.empty()) {
      ssize_t n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
      if (n <= 0) return;
      bytes.remove_prefix(static_cast<size_t>(n));
    }
  }
  template <typename T>
  uint32_t send(Opcode opcode, const T& m) {
    std::string out;
    const uint32_t id = next_id_++;
    append_frame(&out, opcode, 0, id, m);
    send_raw(out);
    return id;
  }
  // The next frame, or nullopt when the server closed (or the read timed out).
  std::optional<Frame> receive() {
    while (true) {
      if (buffer_.size() >= kFrameHeaderBytes) {
        FrameHeader h = read_frame_header(buffer_.data());
        if (buffer_.size() >= h.frame_bytes) {
          Frame f{h, buffer_.substr(kFrameHeaderBytes, h.frame_bytes - kFrameHeaderBytes)};
          buffer_.erase(0, h.frame_bytes);
          return f;
        }
      }
      char chunk[65536];
      ssize_t n = ::recv(fd_, chunk, sizeof(chunk), 0);
      if (n <= 0) return std::nullopt;
      buffer_.append(chunk, static_cast<size_t>(n));
    }
  }
  // The answer to `id`, skipping server pings (answered) and others' answers (kept).
  Frame answer(uint32_t id) {
    if (auto it = stash_.find(id); it != stash_.end()) {
      Frame f = std::move(it->second);
      stash_.erase(it);
      return f;
    }
    while (true) {
      auto f = receive();
      if (!f) {
        ADD_FAILURE() << "connection closed waiting for request " << id;
        return {};
      }
      if (f->header.opcode == static_cast<uint16_t>(Opcode::kPing) && f->header.flags == 0) {
        std::string pong;
        finish_frame(&pong, begin_frame(&pong, Opcode::kPing, kFlagResponse, f->header.request_id));
        send_raw(pong);
        continue;
      }
      if ((f->header.flags & kFlagPush) != 0) {
        pushes_.push_back(std::move(*f));
        continue;
      }
      if (f->header.request_id == id) return std::move(*f);
      stash_[f->header.request_id] = std::move(*f);
    }
  }
  template <typename T>
  T answer_as(uint32_t id) {
    Frame f = answer(id);
    T m{};
    if ((f.header.flags & kFlagError) != 0) {
      ErrorBody e;
      (void)decode_body(f.body, &e);
      ADD_FAILURE() << "request " << id << " failed: code " << e.code << ": " << e.message;
      return m;
    }
    EXPECT_TRUE(decode_body(f.body, &m)) << "answer to " << id << " does not decode";
    return m;
  }
  ErrorBody error_of(uint32_t id) {
    Frame f = answer(id);
    ErrorBody e;
    EXPECT_NE(f.header.flags & kFlagError, 0) << "request " << id << " was expected to fail";
    EXPECT_TRUE(decode_body(f.body, &e));
    return e;
  }
  HelloOk hello() { return answer_as<HelloOk>(send(Opcode::kHello, Hello{1, 1, "test", ""})); }

  // The next frame pushed for subscription `id` (answers to other requests are kept).
  std::optional<Frame> next_push(uint32_t id) {
    while (true) {
      for (auto it = pushes_.begin(); it != pushes_.end(); ++it) {
        if (it->header.request_id == id) {
          Frame f = std::move(*it);
          pushes_.erase(it);
          return f;
        }
      }
      auto f = receive();
      if (!f) return std::nullopt;
      if (f->header.opcode == static_cast<uint16_t>(Opcode::kPing) && f->header.flags == 0) continue;
      if ((f->header.flags & kFlagPush) != 0) {
        pushes_.push_back(std::move(*f));
      } else {
        stash_[f->header.request_id] = std::move(*f);
      }
    }
  }

 private:
  int fd_;
  uint32_t next_id_ = 1;
  std::string buffer_;
  std::map<uint32_t, Frame> stash_;
  std::vector<Frame> pushes_;
};

std::unique_ptr<RunneldProcess> start_server(const TempDir& dir, int shards = 2,
                                             std::vector<std::string> environment = {}) {
  std::string error;
  auto p = RunneldProcess::start({"--data-dir", dir.path() + "/data", "--listen", "127.0.0.1:0", "--admin-listen",
                                  "127.0.0.1:0", "--shards", std::to_string(shards)},
                                 environment, &error);
  EXPECT_NE(p, nullptr) << error;
  return p;
}

// Creates a bucket; its answer.
BucketInfo create_bucket(WireClient& c, const std::string& name, const BucketConfig& config = {}) {
  return c.answer_as<BucketInfo>(c.send(Opcode::kCreateBucket, BucketWithConfig{name, config}));
}

// A connection (after hello) that landed on `shard`: the kernel picks, so
// connect until one does.
std::unique_ptr<WireClient> connect_to_shard(int port, uint32_t shard) {
  for (int attempt = 0; attempt < 200; attempt++) {
    auto c = std::make_unique<WireClient>(port);
    if (c->connected() && c->hello().shard == shard) return c;
  }
  ADD_FAILURE() << "no connection landed on shard " << shard;
  return nullptr;
}

uint16_t code_of(ErrorCode code) { return static_cast<uint16_t>(code); }

// Creates orders/`name` with the default config (bucket "orders" must exist).
void create_stream(WireClient& c, const std::string& name) {
  c.answer_as<StreamInfo>(c.send(Opcode::kCreateStream, CreateStream{"orders", name, true, {}}));
}

// SIGTERM, and a clean exit with status 0.
void expect_clean_stop(RunneldProcess& server) {
  auto stopped = server.stop(SIGTERM);
  ASSERT_TRUE(stopped.has_value());
  EXPECT_TRUE(WIFEXITED(*stopped) && WEXITSTATUS(*stopped) == 0);
}

std::string body_of(const std::string& stream, uint64_t seq) { return stream + " record " + std::to_string(seq); }

// The records of a READ answer or SUBSCRIPTION_DATA frame from *next_seq on,
// each batch's end-to-end checksum verified; returns the payload bytes.
uint64_t take_records(const Frame& f, uint64_t* next_seq, std::vector<std::string>* bodies) {
  ReadAnswer data;
  EXPECT_TRUE(decode_body(f.body, &data));
  uint64_t bytes = 0;
  for (const Batch& b : data.batches) {
    EXPECT_EQ(payload_checksum(b.payload), b.payload_checksum);
    bytes += b.payload.size();
    RecordIterator it(b.payload, b.record_count, BatchLimits{});
    RecordView rec;
    uint64_t seq = b.base_seq;
    while (it.next(&rec)) {
      if (seq >= *next_seq) {
        EXPECT_EQ(seq, *next_seq) << "records come in order, none skipped";
        bodies->emplace_back(rec.body);
        *next_seq = seq + 1;
      }
      seq++;
    }
  }
  return bytes;
}

// Every record of `stream` read back: bodies in seq order, each batch's checksum verified.
std::vector<std::string> read_all(WireClient& c, const std::string& stream) {
  std::vector<std::string> bodies;
  uint64_t next = 0;
  while (true) {
    Read r{"orders", stream, Start{Start::kSeqNum, next}, 1000, 1 << 20, 0, 0};
    Frame f = c.answer(c.send(Opcode::kRead, r));
    if ((f.header.flags & kFlagError) != 0) {
      ErrorBody e;
      (void)decode_body(f.body, &e);
      if (e.code != static_cast<uint16_t>(ErrorCode::kOutOfRange)) ADD_FAILURE() << "read failed: " << e.message;
      break;
    }
    if (take_records(f, &next, &bodies) == 0) break;
  }
  return bodies;
}

TEST(BinaryProtocol, HelloThenPingThenStreamOperations) {
  TempDir dir;
  auto server = start_server(dir);
  ASSERT_NE(server, nullptr);
  WireClient c(server->binary().port);
  ASSERT_TRUE(c.connected());
  HelloOk ok = c.hello();
  EXPECT_EQ(ok.version, 1);
  EXPECT_EQ(ok.shard_count, 2u);
  EXPECT_LT(ok.shard, 2u);
  EXPECT_GE(ok.frame_bytes_max, 1u << 20);

  std::string ping;
  finish_frame(&ping, begin_frame(&ping, Opcode::kPing, 0, 900));
  c.send_raw(ping);
  Frame pong = c.answer(900);
  EXPECT_EQ(pong.header.flags, kFlagResponse);
  create_bucket(c, "orders");

  CreateStream create{"orders", "eu/1", false, StreamConfig{Timestamping::kArrival, 0, 0, 0, false}};
  StreamInfo info = c.answer_as<StreamInfo>(c.send(Opcode::kCreateStream, create));
  EXPECT_EQ(info.bucket, "orders");
  EXPECT_EQ(info.name, "eu/1");
  EXPECT_EQ(info.config.timestamping, Timestamping::kArrival);
  EXPECT_EQ(c.error_of(c.send(Opcode::kCreateStream, create)).code, static_cast<uint16_t>(ErrorCode::kAlreadyExists));

  EXPECT_EQ(c.answer_as<StreamInfo>(c.send(Opcode::kGetStream, StreamName{"orders", "eu/1"})).name, "eu/1");
  EXPECT_EQ(c.error_of(c.send(Opcode::kGetStream, StreamName{"orders", "nope"})).code,
            static_cast<uint16_t>(ErrorCode::kNotFound));
  StreamInfo fenced = c.answer_as<StreamInfo>(c.send(Opcode::kFenceStream, FenceStream{"orders", "eu/1", "tok"}));
  EXPECT_TRUE(fenced.fenced);

  PayloadBuilder payload;
  payload.add(0, "x");
  EXPECT_EQ(c.error_of(c.send(Opcode::kAppend, append_of(payload, "orders", "eu/1"))).code,
            static_cast<uint16_t>(ErrorCode::kFencingTokenMismatch));
  Append with_token = append_of(payload, "orders", "eu/1");
  with_token.options = Append::kHasFencingToken;
  with_token.fencing_token = "tok";
  AppendAck ack = c.answer_as<AppendAck>(c.send(Opcode::kAppend, with_token));
  EXPECT_EQ(ack.start_seq, 0u);
  EXPECT_EQ(ack.end_seq, 1u);
  TailAnswer tail = c.answer_as<TailAnswer>(c.send(Opcode::kCheckTail, StreamName{"orders", "eu/1"}));
  EXPECT_EQ(tail.tail, 1u);

  StreamInfo trimmed = c.answer_as<StreamInfo>(c.send(Opcode::kTrimStream, TrimStream{"orders", "eu/1", 1}));
  EXPECT_EQ(trimmed.trim_seq, 1u);
  StreamInfo sealed = c.answer_as<StreamInfo>(c.send(Opcode::kSealStream, StreamName{"orders", "eu/1"}));
  EXPECT_TRUE(sealed.sealed);
  EXPECT_EQ(c.error_of(c.send(Opcode::kAppend, with_token)).code, static_cast<uint16_t>(ErrorCode::kStreamSealed));
  Frame deleted = c.answer(c.send(Opcode::kDeleteStream, StreamName{"orders", "eu/1"}));
  EXPECT_EQ(deleted.header.flags, kFlagResponse);
  EXPECT_EQ(c.error_of(c.send(Opcode::kCheckTail, StreamName{"orders", "eu/1"})).code,
            static_cast<uint16_t>(ErrorCode::kNotFound));
  EXPECT_EQ(c.answer_as<BucketInfo>(c.send(Opcode::kGetBucket, BucketName{"orders"})).name, "orders");
}

TEST(BinaryProtocol, PipelinedAppendsAcrossShardsReadBackInOrder) {
  TempDir dir;
  auto server = start_server(dir);
  ASSERT_NE(server, nullptr);
  WireClient c(server->binary().port);
  ASSERT_TRUE(c.connected());
  c.hello();
  create_bucket(c, "orders");
  constexpr int kStreams = 16;  // Spread over both shards by their hash.
  for (int s = 0; s < kStreams; s++) {
    const std::string name = "s" + std::to_string(s);
    create_stream(c, name);
  }
  // 50 batches per stream, all sent before any answer is read.
  std::map<uint32_t, std::pair<std::string, uint64_t>> sent;  // request id -> (stream, first seq)
  std::map<std::string, uint64_t> next;
  for (int round = 0; round < 50; round++) {
    for (int s = 0; s < kStreams; s++) {
      const std::string name = "s" + std::to_string(s);
      PayloadBuilder payload;
      for (int r = 0; r < 3; r++) payload.add(0, body_of(name, next[name] + static_cast<uint64_t>(r)));
      const uint32_t id = c.send(Opcode::kAppend, append_of(payload, "orders", name));
      sent[id] = {name, next[name]};
      next[name] += 3;
    }
  }
  for (const auto& [id, what] : sent) {
    AppendAck ack = c.answer_as<AppendAck>(id);
    EXPECT_EQ(ack.start_seq, what.second) << what.first;
    EXPECT_EQ(ack.end_seq, what.second + 3);
  }
  for (int s = 0; s < kStreams; s++) {
    const std::string name = "s" + std::to_string(s);
    auto bodies = read_all(c, name);
    ASSERT_EQ(bodies.size(), 150u) << name;
    for (uint64_t i = 0; i < bodies.size(); i++) ASSERT_EQ(bodies[i], body_of(name, i));
  }
  // Listing merges every shard's streams by name.
  auto list = c.answer_as<ListAnswer<StreamInfo>>(c.send(Opcode::kListStreams, ListRequest{"orders", "s1", "", 0}));
  std::vector<std::string> names;
  for (const auto& item : list.items) names.push_back(item.name);
  EXPECT_EQ(names, (std::vector<std::string>{"s1", "s10", "s11", "s12", "s13", "s14", "s15"}));
  auto page = c.answer_as<ListAnswer<StreamInfo>>(c.send(Opcode::kListStreams, ListRequest{"orders", "", "s12", 2}));
  ASSERT_EQ(page.items.size(), 2u);
  EXPECT_EQ(page.items[0].name, "s13");
  EXPECT_TRUE(page.more);
  EXPECT_EQ(page.items[0].tail, 150u);
  // The server timed each of the 800 appends, on the connection's shard
  // whichever shard owned the stream.
  HttpReply metrics = http_request(server->admin(), "GET", "/metrics");
  uint64_t timed = 0;
  for (const char* shard : {"0", "1"}) {
    const std::string series = std::string("runnel_append_seconds_count{shard=\"") + shard + "\"} ";
    const size_t at = metrics.body.find(series);
    ASSERT_NE(at, std::string::npos) << series << metrics.body;
    timed += std::stoull(metrics.body.substr(at + series.size()));
  }
  EXPECT_EQ(timed, 800u);
}

TEST(BinaryProtocol, ManyClientsOnManyStreamsEachSeeTheirOwnRecordsInOrder) {
  TempDir dir;
  auto server = start_server(dir, 2);
  ASSERT_NE(server, nullptr);
  constexpr int kClients = 8, kStreamsPerClient = 8, kBatches = 40;
  {
    WireClient setup(server->binary().port);
    setup.hello();
    create_bucket(setup, "orders");
  }
  std::vector<std::thread> clients;
  std::vector<std::string> failures(kClients);
  for (int c = 0; c < kClients; c++) {
    clients.emplace_back([&, c] {
      WireClient w(server->binary().port);
      if (!w.connected()) {
        failures[c] = "cannot connect";
        return;
      }
      w.hello();
      std::vector<std::string> names;
      for (int s = 0; s < kStreamsPerClient; s++) {
        names.push_back("c" + std::to_string(c) + "/s" + std::to_string(s));
        create_stream(w, names.back());
      }
      // Every batch of every stream in flight at once, then every answer.
      std::vector<std::pair<uint32_t, uint64_t>> sent;
      for (int b = 0; b < kBatches; b++) {
        for (const std::string& name : names) {
          PayloadBuilder payload;
          payload.add(0, body_of(name, static_cast<uint64_t>(b) * 2));
          payload.add(0, body_of(name, static_cast<uint64_t>(b) * 2 + 1));
          sent.emplace_back(w.send(Opcode::kAppend, append_of(payload, "orders", name)), static_cast<uint64_t>(b) * 2);
        }
      }
      for (const auto& [id, first] : sent) {
        if (w.answer_as<AppendAck>(id).start_seq != first) failures[c] = "an ack out of place";
      }
      for (const std::string& name : names) {
        auto bodies = read_all(w, name);
        if (bodies.size() != 2 * kBatches) failures[c] = name + ": wrong count";
        for (uint64_t i = 0; i < bodies.size(); i++) {
          if (bodies[i] != body_of(name, i)) failures[c] = name + ": wrong record";
        }
      }
    });
  }
  for (auto& t : clients) t.join();
  for (int c = 0; c < kClients; c++) EXPECT_EQ(failures[c], "") << "client " << c;
}

TEST(BinaryProtocol, OfRacingMatchSeqNumAppendsExactlyOneWins) {
  TempDir dir;
  auto server = start_server(dir);
  ASSERT_NE(server, nullptr);
  WireClient a(server->binary().port), b(server->binary().port);
  a.hello();
  b.hello();
  create_bucket(a, "orders");
  create_stream(a, "race");
  int wins = 0;
  for (uint64_t round = 0; round < 20; round++) {
    PayloadBuilder payload;
    payload.add(0, "r" + std::to_string(round));
    Append m = append_of(payload, "orders", "race");
    m.options = Append::kHasMatchSeqNum;
    m.match_seq_num = round;
    const uint32_t ia = a.send(Opcode::kAppend, m);
    const uint32_t ib = b.send(Opcode::kAppend, m);
    Frame fa = a.answer(ia), fb = b.answer(ib);
    const bool a_won = (fa.header.flags & kFlagError) == 0, b_won = (fb.header.flags & kFlagError) == 0;
    EXPECT_NE(a_won, b_won) << "round " << round;
    const Frame& lost = a_won ? fb : fa;
    ErrorBody e;
    ASSERT_TRUE(decode_body(lost.body, &e));
    EXPECT_EQ(e.code, static_cast<uint16_t>(ErrorCode::kSeqNumMismatch));
    EXPECT_EQ(e.detail, round + 1) << "the error carries the tail";
    wins += a_won + b_won;
  }
  EXPECT_EQ(wins, 20);
}

TEST(BinaryProtocol, BadFramesCloseOnlyTheirConnection) {
  TempDir dir;
  auto server = start_server(dir);
  ASSERT_NE(server, nullptr);
  WireClient good(server->binary().port);
  good.hello();
  create_bucket(good, "orders");
  create_stream(good, "calm");

  auto expect_closed_with = [&](const std::string& bytes, ErrorCode code, bool hello_first) {
    WireClient bad(server->binary().port);
    ASSERT_TRUE(bad.connected());
    if (hello_first) bad.hello();
    bad.send_raw(bytes);
    auto f = bad.receive();
    ASSERT_TRUE(f.has_value()) << "an error frame comes before the close";
    EXPECT_NE(f->header.flags & kFlagError, 0);
    ErrorBody e;
    ASSERT_TRUE(decode_body(f->body, &e));
    EXPECT_EQ(e.code, static_cast<uint16_t>(code)) << e.message;
    EXPECT_FALSE(bad.receive().has_value()) << "then the connection closes";
  };
  // Not a hello first.
  std::string ping;
  finish_frame(&ping, begin_frame(&ping, Opcode::kPing, 0, 1));
  expect_closed_with(ping, ErrorCode::kInvalidArgument, false);
  // A length below the header.
  std::string shortlen(16, '\0');
  shortlen[0] = 8;
  expect_closed_with(shortlen, ErrorCode::kInvalidArgument, true);
  // Over the maximum frame size.
  std::string huge(16, '\0');
  const uint32_t big = 1u << 30;
  std::memcpy(huge.data(), &big, 4);
  expect_closed_with(huge, ErrorCode::kTooLarge, true);
  // A PING with a body (the protocol says it has none).
  std::string fat_ping;
  const size_t ping_start = begin_frame(&fat_ping, Opcode::kPing, 0, 2);
  fat_ping.append("extra");
  finish_frame(&fat_ping, ping_start);
  expect_closed_with(fat_ping, ErrorCode::kInvalidArgument, true);
  // A body that does not decode (truncated append).
  std::string truncated;
  const size_t start = begin_frame(&truncated, Opcode::kAppend, 0, 5);
  truncated.append("\x06\x00ord", 5);
  finish_frame(&truncated, start);
  expect_closed_with(truncated, ErrorCode::kInvalidArgument, true);
  // Random garbage.
  std::string garbage;
  for (int i = 0; i < 300; i++) garbage.push_back(static_cast<char>(i * 37 + 11));
  expect_closed_with(garbage, ErrorCode::kTooLarge, true);  // Its first four bytes read as a huge length.
  // Unknown opcodes are answered and the connection stays.
  WireClient curious(server->binary().port);
  curious.hello();
  std::string unknown;
  finish_frame(&unknown, begin_frame(&unknown, static_cast<Opcode>(0x7777), 0, 42));
  curious.send_raw(unknown);
  EXPECT_EQ(curious.error_of(42).code, static_cast<uint16_t>(ErrorCode::kUnsupported));
  EXPECT_EQ(curious.answer_as<TailAnswer>(curious.send(Opcode::kCheckTail, StreamName{"orders", "calm"})).tail, 0u);
  // A client that vanishes mid-frame: the server drops it and carries on.
  {
    WireClient vanishing(server->binary().port);
    vanishing.hello();
    std::string part;
    PayloadBuilder payload;
    payload.add(0, "half");
    append_frame(&part, Opcode::kAppend, 0, 7, append_of(payload, "orders", "calm"));
    vanishing.send_raw(std::string_view(part).substr(0, part.size() / 2));
  }
  // The first connection never noticed any of it.
  PayloadBuilder payload;
  payload.add(0, "still here");
  AppendAck ack = good.answer_as<AppendAck>(good.send(Opcode::kAppend, append_of(payload, "orders", "calm")));
  EXPECT_EQ(ack.start_seq, 0u);
  expect_clean_stop(*server);
}

TEST(BinaryProtocol, ALongPollReadAnswersWhenRecordsLandAndBlocksNothingElse) {
  TempDir dir;
  auto server = start_server(dir);
  ASSERT_NE(server, nullptr);
  WireClient reader(server->binary().port), writer(server->binary().port);
  reader.hello();
  writer.hello();
  create_bucket(writer, "orders");
  create_stream(writer, "waited");
  // Waits at the tail (long enough that only the append can end it)...
  const uint32_t waiting =
      reader.send(Opcode::kRead, Read{"orders", "waited", Start{Start::kSeqNum, 0}, 100, 1 << 20, 0, 30'000});
  // ...while the same connection goes on being served.
  EXPECT_EQ(reader.answer_as<TailAnswer>(reader.send(Opcode::kCheckTail, StreamName{"orders", "waited"})).tail, 0u);
  PayloadBuilder payload;
  payload.add(0, "worth the wait");
  writer.answer_as<AppendAck>(writer.send(Opcode::kAppend, append_of(payload, "orders", "waited")));
  ReadAnswer got = reader.answer_as<ReadAnswer>(waiting);
  ASSERT_EQ(got.batches.size(), 1u);
  EXPECT_EQ(got.batches[0].base_seq, 0u);
  EXPECT_EQ(got.tail, 1u);
  // With nothing new, the wait ends empty, with the tail.
  ReadAnswer empty = reader.answer_as<ReadAnswer>(
      reader.send(Opcode::kRead, Read{"orders", "waited", Start{Start::kSeqNum, 1}, 100, 1 << 20, 0, 100}));
  EXPECT_TRUE(empty.batches.empty());
  EXPECT_EQ(empty.tail, 1u);
  // A server told to stop answers waiting reads at once and exits cleanly.
  const uint32_t parked =
      reader.send(Opcode::kRead, Read{"orders", "waited", Start{Start::kSeqNum, 1}, 100, 1 << 20, 0, 60'000});
  EXPECT_EQ(reader.answer_as<TailAnswer>(reader.send(Opcode::kCheckTail, StreamName{"orders", "waited"})).tail, 1u);
  ::kill(server->pid(), SIGTERM);
  ReadAnswer cut_short = reader.answer_as<ReadAnswer>(parked);
  EXPECT_TRUE(cut_short.batches.empty());
  expect_clean_stop(*server);
}

TEST(BinaryProtocol, ASubscriberSeesEveryRecordOnceInOrderWithinItsCredit) {
  TempDir dir;
  auto server = start_server(dir);
  ASSERT_NE(server, nullptr);
  WireClient sub(server->binary().port), writer(server->binary().port);
  sub.hello();
  writer.hello();
  create_bucket(writer, "orders");
  create_stream(writer, "feed");
  PayloadBuilder early;
  for (int r = 0; r < 5; r++) early.add(0, body_of("feed", static_cast<uint64_t>(r)));
  writer.answer_as<AppendAck>(writer.send(Opcode::kAppend, append_of(early, "orders", "feed")));

  const uint32_t id = sub.send(Opcode::kSubscribe, Subscribe{"orders", "feed", Start{Start::kSeqNum, 0}, 1 << 20, 200});
  TailAnswer started = sub.answer_as<TailAnswer>(id);
  EXPECT_EQ(started.tail, 5u);
  // 200 more batches, pipelined, while the subscriber consumes and grants credit.
  std::vector<uint32_t> sent;
  for (uint64_t b = 0; b < 200; b++) {
    PayloadBuilder payload;
    for (uint64_t r = 0; r < 5; r++) payload.add(0, body_of("feed", 5 + b * 5 + r));
    sent.push_back(writer.send(Opcode::kAppend, append_of(payload, "orders", "feed")));
  }
  uint64_t next = 0;
  std::vector<std::string> bodies;
  while (next < 1005) {
    auto f = sub.next_push(id);
    ASSERT_TRUE(f.has_value()) << "subscription ended at " << next;
    ASSERT_EQ(f->header.flags & kFlagError, 0);
    const uint64_t bytes = take_records(*f, &next, &bodies);
    if (bytes > 0) sub.send(Opcode::kCredit, Credit{id, static_cast<uint32_t>(bytes)});
  }
  for (uint32_t a : sent) writer.answer_as<AppendAck>(a);
  ASSERT_EQ(bodies.size(), 1005u);
  for (uint64_t i = 0; i < bodies.size(); i++) ASSERT_EQ(bodies[i], body_of("feed", i));
  // Idle: heartbeats, empty, carrying the tail.
  auto beat = sub.next_push(id);
  ASSERT_TRUE(beat.has_value());
  ReadAnswer idle;
  ASSERT_TRUE(decode_body(beat->body, &idle));
  EXPECT_TRUE(idle.batches.empty());
  EXPECT_EQ(idle.tail, 1005u);

  // A subscriber out of credit is sent nothing more, and the writer is not held up.
  const uint32_t thin = sub.send(Opcode::kSubscribe, Subscribe{"orders", "feed", Start{Start::kSeqNum, 1005}, 1, 100});
  sub.answer_as<TailAnswer>(thin);
  for (uint64_t b = 0; b < 20; b++) {
    PayloadBuilder payload;
    payload.add(0, body_of("feed", 1005 + b));
    writer.answer_as<AppendAck>(writer.send(Opcode::kAppend, append_of(payload, "orders", "feed")));
  }
  uint64_t thin_next = 1005;
  std::vector<std::string> thin_bodies;
  auto first = sub.next_push(thin);
  ASSERT_TRUE(first.has_value());
  take_records(*first, &thin_next, &thin_bodies);
  while (thin_bodies.empty()) {  // Heartbeats may come first.
    first = sub.next_push(thin);
    ASSERT_TRUE(first.has_value());
    take_records(*first, &thin_next, &thin_bodies);
  }
  EXPECT_EQ(thin_bodies.size(), 1u) << "one byte of credit buys one batch";
  for (int beats = 0; beats < 3; beats++) {  // Only heartbeats until credit comes.
    auto f = sub.next_push(thin);
    ASSERT_TRUE(f.has_value());
    EXPECT_EQ(take_records(*f, &thin_next, &thin_bodies), 0u);
  }
  sub.send(Opcode::kCredit, Credit{thin, 1 << 20});
  while (thin_next < 1025) {
    auto f = sub.next_push(thin);
    ASSERT_TRUE(f.has_value());
    take_records(*f, &thin_next, &thin_bodies);
  }
  EXPECT_EQ(thin_bodies.size(), 20u);
  Frame gone = sub.answer(sub.send(Opcode::kUnsubscribe, Unsubscribe{thin}));
  EXPECT_EQ(gone.header.flags, kFlagResponse);
  EXPECT_EQ(sub.error_of(sub.send(Opcode::kUnsubscribe, Unsubscribe{thin})).code,
            static_cast<uint16_t>(ErrorCode::kNotFound));

  // A stopping server ends subscriptions with shutting_down.
  ::kill(server->pid(), SIGTERM);
  while (true) {
    auto f = sub.next_push(id);
    ASSERT_TRUE(f.has_value()) << "the subscription should end with an error frame";
    if ((f->header.flags & kFlagError) == 0) continue;
    ErrorBody e;
    ASSERT_TRUE(decode_body(f->body, &e));
    EXPECT_EQ(e.code, static_cast<uint16_t>(ErrorCode::kShuttingDown));
    break;
  }
  expect_clean_stop(*server);
}

// server.subscriptions_max bounds what one connection may hold open: one
// more is refused with overloaded (the connection and its other
// subscriptions carry on), and ending one makes room.
TEST(BinaryProtocol, SubscriptionsPerConnectionAreBounded) {
  TempDir dir;
  auto server = start_server(dir, 2, {"RUNNEL_SERVER_SUBSCRIPTIONS_MAX=3"});
  ASSERT_NE(server, nullptr);
  WireClient c(server->binary().port);
  c.hello();
  create_bucket(c, "orders");
  std::vector<uint32_t> ids;
  for (int s = 0; s < 3; s++) {
    const std::string name = "feed" + std::to_string(s);
    create_stream(c, name);
    ids.push_back(c.send(Opcode::kSubscribe, Subscribe{"orders", name, Start{Start::kSeqNum, 0}, 1 << 20, 1000}));
    c.answer_as<TailAnswer>(ids.back());
  }
  create_stream(c, "feed3");
  Frame refused = c.answer(c.send(Opcode::kSubscribe, Subscribe{"orders", "feed3", Start{}, 1 << 20, 1000}));
  ErrorBody why;
  ASSERT_NE(refused.header.flags & kFlagError, 0);
  ASSERT_TRUE(decode_body(refused.body, &why));
  EXPECT_EQ(why.code, static_cast<uint16_t>(ErrorCode::kOverloaded));
  EXPECT_NE(why.message.find("server.subscriptions_max"), std::string_view::npos) << why.message;
  // The connection still serves, and its subscriptions still push.
  PayloadBuilder payload;
  payload.add(0, "still here");
  c.answer_as<AppendAck>(c.send(Opcode::kAppend, append_of(payload, "orders", "feed0")));
  std::optional<Frame> pushed;
  for (int tries = 0; tries < 10 && !pushed; tries++) {
    auto f = c.next_push(ids[0]);
    ASSERT_TRUE(f.has_value());
    ReadAnswer data;
    ASSERT_TRUE(decode_body(f->body, &data));
    if (!data.batches.empty()) pushed = std::move(f);
  }
  EXPECT_TRUE(pushed.has_value()) << "the first subscription got no records";
  // Ending one makes room for another.
  c.answer(c.send(Opcode::kUnsubscribe, Unsubscribe{ids[1]}));
  c.answer_as<TailAnswer>(c.send(Opcode::kSubscribe, Subscribe{"orders", "feed3", Start{}, 1 << 20, 1000}));
}

// A subscriber that grants credit and never reads cannot make the server
// hold more for it than server.output_bytes_max: one subscription's credit
// is capped there, and once that much waits unsent on the connection, its
// subscriptions with more to push end with overloaded (after the frames
// already queued, so the client knows where to resume).
TEST(BinaryProtocol, ASubscriberThatDoesNotReadIsEndedNotBufferedFor) {
  TempDir dir;
  constexpr uint64_t kOutputMax = 1u << 20;
  auto server = start_server(dir, 1, {"RUNNEL_SERVER_OUTPUT_BYTES_MAX=" + std::to_string(kOutputMax)});
  ASSERT_NE(server, nullptr);
  WireClient writer(server->binary().port);
  writer.hello();
  create_bucket(writer, "orders");
  create_stream(writer, "feed");
  WireClient reader(server->binary().port);
  reader.hello();
  // Each asks for 4 GiB of credit; together they would push far more than
  // the bound plus what the sockets' buffers hold.
  constexpr int kSubscriptions = 24;
  std::vector<uint32_t> ids;
  for (int i = 0; i < kSubscriptions; i++) {
    ids.push_back(
        reader.send(Opcode::kSubscribe, Subscribe{"orders", "feed", Start{Start::kSeqNum, 0}, UINT32_MAX, 60'000}));
    reader.answer_as<TailAnswer>(ids.back());
  }
  HttpReply before = http_request(server->admin(), "GET", "/v1/buckets/orders/streams/feed");
  EXPECT_NE(before.body.find("\"credit_bytes\":" + std::to_string(kOutputMax)), std::string::npos)
      << "credit is not capped: " << before.body;
  for (int i = 0; i < 2; i++) {
    PayloadBuilder payload;
    for (int r = 0; r < 1000; r++) payload.add(0, std::string(1000, static_cast<char>('a' + i)));
    writer.answer_as<AppendAck>(writer.send(Opcode::kAppend, append_of(payload, "orders", "feed")));
  }
  // Without reading a byte, wait (bounded) for the server to end some.
  auto live = [&server] {
    HttpReply details = http_request(server->admin(), "GET", "/v1/buckets/orders/streams/feed");
    size_t n = 0;
    for (size_t at = details.body.find("\"connection_shard\""); at != std::string::npos;
         at = details.body.find("\"connection_shard\"", at + 1)) {
      n++;
    }
    return n;
  };
  bool some_ended = false;
  for (int tries = 0; tries < 600 && !some_ended; tries++) {
    some_ended = live() < static_cast<size_t>(kSubscriptions);
    if (!some_ended) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ASSERT_TRUE(some_ended) << "every subscription still pushes to a reader that reads nothing";
  std::optional<Frame> ended;
  for (int frames = 0; frames < 100'000 && !ended; frames++) {
    auto f = reader.receive();
    ASSERT_TRUE(f.has_value()) << "the connection closed";
    if ((f->header.flags & kFlagError) != 0) ended = std::move(f);
  }
  ASSERT_TRUE(ended.has_value());
  EXPECT_EQ(ended->header.opcode, static_cast<uint16_t>(Opcode::kSubscriptionData));
  ErrorBody why;
  ASSERT_TRUE(decode_body(ended->body, &why));
  EXPECT_EQ(why.code, static_cast<uint16_t>(ErrorCode::kOverloaded)) << why.message;
  EXPECT_NE(why.message.find("server.output_bytes_max"), std::string_view::npos) << why.message;
  // The connection itself still serves.
  reader.answer_as<TailAnswer>(reader.send(Opcode::kCheckTail, StreamName{"orders", "feed"}));
}

// A client timestamp far in the future (2^64 - 1 here) once held every later
// record of its stream there and stopped age retention: on a client-prefer
// stream its batch now gets the arrival time, and a client-require stream
// refuses it.
TEST(BinaryProtocol, AFutureClientTimestampDoesNotPoisonTheStream) {
  TempDir dir;
  auto server = start_server(dir);
  ASSERT_NE(server, nullptr);
  WireClient c(server->binary().port);
  c.hello();
  create_bucket(c, "orders");
  create_stream(c, "prefer");
  const auto now_ms = static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
          .count());
  PayloadBuilder poison;
  poison.add(UINT64_MAX, "from the far future");
  AppendAck first = c.answer_as<AppendAck>(c.send(Opcode::kAppend, append_of(poison, "orders", "prefer")));
  EXPECT_LT(first.end_timestamp, now_ms + 3'600'000) << "stored as given";
  PayloadBuilder honest;
  honest.add(now_ms, "from now");
  AppendAck second = c.answer_as<AppendAck>(c.send(Opcode::kAppend, append_of(honest, "orders", "prefer")));
  EXPECT_LT(second.end_timestamp, now_ms + 3'600'000) << "the stream is stuck in the future";
  EXPECT_GE(second.end_timestamp, now_ms);
  TailAnswer tail = c.answer_as<TailAnswer>(c.send(Opcode::kCheckTail, StreamName{"orders", "prefer"}));
  EXPECT_EQ(tail.last_timestamp, second.end_timestamp);

  c.answer_as<StreamInfo>(
      c.send(Opcode::kCreateStream,
             CreateStream{"orders", "require", false, StreamConfig{Timestamping::kClientRequire, 0, 0, 0, false}}));
  ErrorBody refused = c.error_of(c.send(Opcode::kAppend, append_of(poison, "orders", "require")));
  EXPECT_EQ(refused.code, static_cast<uint16_t>(ErrorCode::kInvalidArgument));
  EXPECT_EQ(c.answer_as<TailAnswer>(c.send(Opcode::kCheckTail, StreamName{"orders", "require"})).tail, 0u);
}

// The batch limits come from the config: an append over them is refused
// with too_large naming the key, one within them lands, and lowering a limit
// after larger batches were stored never hides them from readers.
TEST(BinaryProtocol, BatchLimitsComeFromTheConfigAndNeverHideStoredBatches) {
  TempDir dir;
  auto batch_of = [](int records, size_t body_bytes) {
    PayloadBuilder payload;
    for (int r = 0; r < records; r++) payload.add(0, std::string(body_bytes, static_cast<char>('a' + r % 26)));
    return payload;
  };
  {
    auto server = start_server(dir);  // The default limits: 1000 records.
    ASSERT_NE(server, nullptr);
    WireClient c(server->binary().port);
    c.hello();
    create_bucket(c, "orders");
    create_stream(c, "wide");
    PayloadBuilder wide = batch_of(100, 10);
    c.answer_as<AppendAck>(c.send(Opcode::kAppend, append_of(wide, "orders", "wide")));
    ASSERT_TRUE(server->stop(SIGTERM).has_value());
  }
  auto server = start_server(dir, 2,
                             {"RUNNEL_SERVER_BATCH_RECORDS_MAX=10", "RUNNEL_SERVER_BATCH_BYTES_MAX=4096",
                              "RUNNEL_SERVER_RECORD_BYTES_MAX=1024"});
  ASSERT_NE(server, nullptr);
  WireClient c(server->binary().port);
  c.hello();
  auto refusal = [&](const PayloadBuilder& payload) {
    Frame f = c.answer(c.send(Opcode::kAppend, append_of(payload, "orders", "wide")));
    ErrorBody e;
    EXPECT_NE(f.header.flags & kFlagError, 0) << "the append was expected to be refused";
    EXPECT_TRUE(decode_body(f.body, &e));
    return std::make_pair(e.code, std::string(e.message));
  };
  auto [code, message] = refusal(batch_of(11, 10));
  EXPECT_EQ(code, static_cast<uint16_t>(ErrorCode::kTooLarge));
  EXPECT_NE(message.find("server.batch_records_max"), std::string::npos) << message;
  std::tie(code, message) = refusal(batch_of(5, 1000));  // 5 KB: over batch_bytes_max.
  EXPECT_EQ(code, static_cast<uint16_t>(ErrorCode::kTooLarge)) << message;
  std::tie(code, message) = refusal(batch_of(1, 2000));  // One record over record_bytes_max.
  EXPECT_EQ(code, static_cast<uint16_t>(ErrorCode::kTooLarge)) << message;
  PayloadBuilder fits = batch_of(10, 10);
  AppendAck ack = c.answer_as<AppendAck>(c.send(Opcode::kAppend, append_of(fits, "orders", "wide")));
  EXPECT_EQ(ack.start_seq, 100u);
  EXPECT_EQ(ack.end_seq, 110u);
  // The 100-record batch stored under the old limits reads back whole.
  EXPECT_EQ(read_all(c, "wide").size(), 110u);
}

TEST(BinaryProtocol, LargeBatchesTravelWholeBothWays) {
  TempDir dir;
  auto server = start_server(dir);
  ASSERT_NE(server, nullptr);
  WireClient c(server->binary().port);
  c.hello();
  create_bucket(c, "orders");
  create_stream(c, "big");
  // Batches of ~900 KiB (a frame far larger than a connection's initial
  // buffer), a few small ones between them.
  std::vector<std::string> bodies;
  for (int round = 0; round < 4; round++) {
    PayloadBuilder big;
    for (int r = 0; r < 9; r++) {
      bodies.push_back(std::string(100'000, static_cast<char>('a' + round)) + std::to_string(r));
      big.add(0, bodies.back());
    }
    c.answer_as<AppendAck>(c.send(Opcode::kAppend, append_of(big, "orders", "big")));
    PayloadBuilder small;
    bodies.push_back("small " + std::to_string(round));
    small.add(0, bodies.back());
    c.answer_as<AppendAck>(c.send(Opcode::kAppend, append_of(small, "orders", "big")));
  }
  EXPECT_EQ(read_all(c, "big"), bodies);
}

TEST(BinaryProtocol, ARetriedProducerAppendIsNotWrittenTwice) {
  TempDir dir;
  auto server = start_server(dir);
  ASSERT_NE(server, nullptr);
  WireClient setup(server->binary().port);
  setup.hello();
  create_bucket(setup, "orders");
  create_stream(setup, "once");
  PayloadBuilder payload;
  payload.add(0, "exactly once");
  Append a = append_of(payload, "orders", "once");
  a.options = Append::kHasProducer;
  a.producer_id = 99;
  a.producer_seq = 1;
  {
    // The first attempt's connection dies before its answer is read.
    WireClient lost(server->binary().port);
    lost.hello();
    lost.send(Opcode::kAppend, a);
  }
  WireClient again(server->binary().port);
  again.hello();
  AppendAck ack = again.answer_as<AppendAck>(again.send(Opcode::kAppend, a));
  EXPECT_EQ(ack.start_seq, 0u);
  EXPECT_EQ(ack.end_seq, 1u);
  AppendAck twice = again.answer_as<AppendAck>(again.send(Opcode::kAppend, a));
  EXPECT_EQ(twice.start_seq, 0u);
  EXPECT_EQ(again.answer_as<TailAnswer>(again.send(Opcode::kCheckTail, StreamName{"orders", "once"})).tail, 1u);
}

// The first try is acknowledged, the server is killed before the producer
// sees the ack, the retry goes to the restarted server: it lands once, and
// the retry's answer is the first try's ack.
TEST(BinaryProtocol, AProducerRetryAfterARestartLandsOnce) {
  TempDir dir;
  PayloadBuilder payload;
  payload.add(0, "once, across a restart");
  Append a = append_of(payload, "orders", "restarted");
  a.options = Append::kHasProducer;
  a.producer_id = 4242;
  a.producer_seq = 17;
  AppendAck first;
  for (int signal : {SIGKILL, SIGTERM}) {
    {
      auto server = start_server(dir);
      ASSERT_NE(server, nullptr);
      WireClient c(server->binary().port);
      c.hello();
      if (signal == SIGKILL) {
        create_bucket(c, "orders");
        create_stream(c, "restarted");
        first = c.answer_as<AppendAck>(c.send(Opcode::kAppend, a));
        EXPECT_EQ(first.start_seq, 0u);
      } else {
        // The retry after a crash, then a clean stop, then the retry again.
        AppendAck retry = c.answer_as<AppendAck>(c.send(Opcode::kAppend, a));
        EXPECT_EQ(retry.start_seq, first.start_seq);
        EXPECT_EQ(retry.end_seq, first.end_seq);
        EXPECT_EQ(retry.end_timestamp, first.end_timestamp);
      }
      ASSERT_TRUE(server->stop(signal).has_value());
    }
  }
  auto server = start_server(dir);
  ASSERT_NE(server, nullptr);
  WireClient c(server->binary().port);
  c.hello();
  AppendAck retry = c.answer_as<AppendAck>(c.send(Opcode::kAppend, a));
  EXPECT_EQ(retry.start_seq, first.start_seq);
  EXPECT_EQ(read_all(c, "restarted"), std::vector<std::string>{"once, across a restart"});
  EXPECT_EQ(c.answer_as<TailAnswer>(c.send(Opcode::kCheckTail, StreamName{"orders", "restarted"})).tail, 1u);
}

TEST(BinaryProtocol, AcknowledgedAppendsSurviveARestart) {
  TempDir dir;
  {
    auto server = start_server(dir);
    ASSERT_NE(server, nullptr);
    WireClient c(server->binary().port);
    c.hello();
    create_bucket(c, "orders");
    for (int s = 0; s < 6; s++) {
      const std::string name = "k" + std::to_string(s);
      create_stream(c, name);
      PayloadBuilder payload;
      for (int r = 0; r < 10; r++) payload.add(0, body_of(name, static_cast<uint64_t>(r)));
      c.answer_as<AppendAck>(c.send(Opcode::kAppend, append_of(payload, "orders", name)));
    }
    ASSERT_TRUE(server->stop(SIGKILL).has_value());
  }
  auto server = start_server(dir);
  ASSERT_NE(server, nullptr);
  WireClient c(server->binary().port);
  c.hello();
  for (int s = 0; s < 6; s++) {
    const std::string name = "k" + std::to_string(s);
    auto bodies = read_all(c, name);
    ASSERT_EQ(bodies.size(), 10u) << name;
    for (uint64_t i = 0; i < 10; i++) EXPECT_EQ(bodies[i], body_of(name, i));
  }
}


// ---- Buckets ----

std::vector<std::string> bucket_names(const ListAnswer<BucketInfo>& list) {
  std::vector<std::string> out;
  for (const BucketInfo& b : list.items) out.push_back(b.name);
  return out;
}

ListAnswer<BucketInfo> list_buckets(WireClient& c, std::string_view prefix, std::string_view start_after,
                                    uint32_t limit) {
  return c.answer_as<ListAnswer<BucketInfo>>(c.send(Opcode::kListBuckets, ListRequest{"", prefix, start_after, limit}));
}

// The error answer to `id`, its message copied out of the frame.
struct OwnedError {
  uint16_t code = 0;
  std::string message;
};
OwnedError owned_error_of(WireClient& c, uint32_t id) {
  Frame f = c.answer(id);
  ErrorBody e;
  EXPECT_NE(f.header.flags & kFlagError, 0) << "request " << id << " was expected to fail";
  EXPECT_TRUE(decode_body(f.body, &e));
  return OwnedError{e.code, std::string(e.message)};
}

// A stream name in `bucket` that lives on `shard` of two.
std::string name_on_shard(const std::string& bucket, uint32_t shard, const std::string& prefix) {
  for (int i = 0;; i++) {
    std::string name = prefix + std::to_string(i);
    if (owner_shard(bucket, name, 2) == shard) return name;
  }
}

// Timestamping by arrival, one hour of retention, LZ4.
StreamConfig arrival_config() { return StreamConfig{Timestamping::kArrival, 3'600'000, 0, 0, true}; }

TEST(BinaryProtocol, BucketsAreCreatedListedReconfiguredAndDeletedOnEveryShard) {
  TempDir dir;
  auto server = start_server(dir);
  ASSERT_NE(server, nullptr);
  // A change made through one shard is seen through the other once answered.
  auto zero = connect_to_shard(server->binary().port, 0);
  auto one = connect_to_shard(server->binary().port, 1);
  ASSERT_TRUE(zero && one);

  BucketConfig config{arrival_config(), true, false};
  BucketInfo created = create_bucket(*one, "eu-orders", config);
  EXPECT_EQ(created.name, "eu-orders");
  EXPECT_EQ(created.config, config);
  EXPECT_GT(created.created_ms, 0u);
  EXPECT_EQ(zero->answer_as<BucketInfo>(zero->send(Opcode::kGetBucket, BucketName{"eu-orders"})), created);
  EXPECT_EQ(zero->error_of(zero->send(Opcode::kCreateBucket, BucketWithConfig{"eu-orders", {}})).code,
            code_of(ErrorCode::kAlreadyExists));
  for (const char* bad : {"ab", "-ab", "Orders", "a_b", ""}) {
    EXPECT_EQ(zero->error_of(zero->send(Opcode::kCreateBucket, BucketWithConfig{bad, {}})).code,
              code_of(ErrorCode::kInvalidArgument))
        << bad;
  }
  EXPECT_EQ(one->error_of(one->send(Opcode::kGetBucket, BucketName{"us-orders"})).code,
            code_of(ErrorCode::kNotFound));

  // Listing: by name, prefix, start_after, limit and `more`.
  for (const char* name : {"us-orders", "eu-payments", "a-1", "eu-audit"}) create_bucket(*zero, name);
  EXPECT_EQ(bucket_names(list_buckets(*one, "", "", 0)),
            (std::vector<std::string>{"a-1", "eu-audit", "eu-orders", "eu-payments", "us-orders"}));
  EXPECT_FALSE(list_buckets(*one, "", "", 0).more);
  auto page = list_buckets(*one, "eu-", "", 2);
  EXPECT_EQ(bucket_names(page), (std::vector<std::string>{"eu-audit", "eu-orders"}));
  EXPECT_TRUE(page.more);
  page = list_buckets(*zero, "eu-", "eu-orders", 2);
  EXPECT_EQ(bucket_names(page), (std::vector<std::string>{"eu-payments"}));
  EXPECT_FALSE(page.more);
  page = list_buckets(*zero, "", "eu-payments", 1);
  EXPECT_EQ(bucket_names(page), (std::vector<std::string>{"us-orders"}));
  EXPECT_FALSE(page.more) << "nothing after the last one";
  EXPECT_TRUE(list_buckets(*zero, "zz", "", 0).items.empty());

  BucketConfig other{StreamConfig{}, false, true};
  BucketInfo reconfigured = zero->answer_as<BucketInfo>(
      zero->send(Opcode::kReconfigureBucket, BucketWithConfig{"eu-orders", other}));
  EXPECT_EQ(reconfigured.config, other);
  EXPECT_EQ(reconfigured.created_ms, created.created_ms);
  EXPECT_EQ(one->answer_as<BucketInfo>(one->send(Opcode::kGetBucket, BucketName{"eu-orders"})).config, other);
  EXPECT_EQ(one->error_of(one->send(Opcode::kReconfigureBucket, BucketWithConfig{"nope", other})).code,
            code_of(ErrorCode::kNotFound));

  Frame deleted = one->answer(one->send(Opcode::kDeleteBucket, BucketName{"a-1"}));
  EXPECT_EQ(deleted.header.flags, kFlagResponse);
  EXPECT_TRUE(deleted.body.empty());
  EXPECT_EQ(zero->error_of(zero->send(Opcode::kGetBucket, BucketName{"a-1"})).code, code_of(ErrorCode::kNotFound));
  EXPECT_EQ(zero->error_of(zero->send(Opcode::kDeleteBucket, BucketName{"a-1"})).code,
            code_of(ErrorCode::kNotFound));
  EXPECT_EQ(bucket_names(list_buckets(*one, "a", "", 0)), std::vector<std::string>{});
  // Every shard's copy holds the four left.
  HttpReply metrics = http_request(server->admin(), "GET", "/metrics");
  for (const char* series : {"runnel_buckets{shard=\"0\"} 4\n", "runnel_buckets{shard=\"1\"} 4\n"}) {
    EXPECT_NE(metrics.body.find(series), std::string::npos) << series << metrics.body;
  }
}

TEST(BinaryProtocol, AStreamNeedsItsBucketAndMayTakeItsDefaultConfig) {
  TempDir dir;
  auto server = start_server(dir);
  ASSERT_NE(server, nullptr);
  WireClient c(server->binary().port);
  c.hello();
  // Names spread over both shards, each refused for want of a bucket.
  for (int s = 0; s < 8; s++) {
    const std::string name = "s" + std::to_string(s);
    OwnedError e = owned_error_of(c, c.send(Opcode::kCreateStream, CreateStream{"orders", name, true, {}}));
    EXPECT_EQ(e.code, code_of(ErrorCode::kNotFound)) << name;
    EXPECT_NE(e.message.find("no bucket 'orders'"), std::string::npos) << e.message;
  }
  EXPECT_EQ(c.error_of(c.send(Opcode::kListStreams, ListRequest{"orders", "", "", 0})).code,
            code_of(ErrorCode::kNotFound));

  create_bucket(c, "orders", BucketConfig{arrival_config(), false, false});
  for (int s = 0; s < 8; s++) {
    const std::string name = "s" + std::to_string(s);
    StreamInfo info = c.answer_as<StreamInfo>(c.send(Opcode::kCreateStream, CreateStream{"orders", name, true, {}}));
    EXPECT_EQ(info.config, arrival_config()) << "use_bucket_default takes the bucket's default";
  }
  const StreamConfig own{Timestamping::kClientRequire, 0, 5'000, 0, false};
  StreamInfo explicit_config =
      c.answer_as<StreamInfo>(c.send(Opcode::kCreateStream, CreateStream{"orders", "own", false, own}));
  EXPECT_EQ(explicit_config.config, own);
  // A later default applies to later streams only.
  c.answer_as<BucketInfo>(c.send(Opcode::kReconfigureBucket, BucketWithConfig{"orders", {}}));
  EXPECT_EQ(c.answer_as<StreamInfo>(c.send(Opcode::kGetStream, StreamName{"orders", "s0"})).config, arrival_config());
  EXPECT_EQ(c.answer_as<StreamInfo>(c.send(Opcode::kCreateStream, CreateStream{"orders", "later", true, {}})).config,
            StreamConfig{});
  EXPECT_EQ(c.answer_as<ListAnswer<StreamInfo>>(c.send(Opcode::kListStreams, ListRequest{"orders", "", "", 0}))
                .items.size(),
            10u);
}

TEST(BinaryProtocol, ABucketHoldingStreamsIsDeletedOnlyOnceTheyAreGone) {
  TempDir dir;
  auto server = start_server(dir);
  ASSERT_NE(server, nullptr);
  WireClient c(server->binary().port);
  c.hello();
  create_bucket(c, "orders");
  std::vector<std::string> names;
  for (int s = 0; s < 6; s++) {  // On both shards.
    names.push_back("s" + std::to_string(s));
    create_stream(c, names.back());
  }
  for (size_t left = names.size(); left > 0; left--) {
    OwnedError e = owned_error_of(c, c.send(Opcode::kDeleteBucket, BucketName{"orders"}));
    EXPECT_EQ(e.code, code_of(ErrorCode::kAlreadyExists)) << "with " << left << " streams left";
    EXPECT_NE(e.message.find("still holds streams"), std::string::npos) << e.message;
    // A refused delete leaves the bucket as it was: streams can still be made in it.
    create_stream(c, "extra");
    c.answer(c.send(Opcode::kDeleteStream, StreamName{"orders", "extra"}));
    c.answer(c.send(Opcode::kDeleteStream, StreamName{"orders", names[left - 1]}));
  }
  // One stream on either shard alone keeps it.
  for (uint32_t shard : {0u, 1u}) {
    const std::string name = name_on_shard("orders", shard, "alone-");
    create_stream(c, name);
    EXPECT_EQ(c.error_of(c.send(Opcode::kDeleteBucket, BucketName{"orders"})).code, code_of(ErrorCode::kAlreadyExists))
        << "a stream on shard " << shard;
    c.answer(c.send(Opcode::kDeleteStream, StreamName{"orders", name}));
  }
  Frame deleted = c.answer(c.send(Opcode::kDeleteBucket, BucketName{"orders"}));
  EXPECT_EQ(deleted.header.flags, kFlagResponse);
  EXPECT_EQ(c.error_of(c.send(Opcode::kCreateStream, CreateStream{"orders", "s0", true, {}})).code,
            code_of(ErrorCode::kNotFound));
  // A bucket of the same name starts empty.
  create_bucket(c, "orders");
  EXPECT_TRUE(c.answer_as<ListAnswer<StreamInfo>>(c.send(Opcode::kListStreams, ListRequest{"orders", "", "", 0}))
                  .items.empty());
}

TEST(BinaryProtocol, ADeleteRacingStreamCreatesNeverLeavesAStreamBehind) {
  TempDir dir;
  auto server = start_server(dir);
  ASSERT_NE(server, nullptr);
  auto zero = connect_to_shard(server->binary().port, 0);
  auto one = connect_to_shard(server->binary().port, 1);
  ASSERT_TRUE(zero && one);
  for (int round = 0; round < 20; round++) {
    const std::string bucket = "race-" + std::to_string(round);
    create_bucket(*zero, bucket);
    // Creates pipelined on both connections, the delete sent among them
    // (first, in every other round, so that it sometimes wins).
    std::vector<std::pair<WireClient*, uint32_t>> creates;
    uint32_t delete_id = 0;
    const int delete_at = round % 2 == 0 ? 0 : round % 10;
    for (int i = 0; i < 16; i++) {
      WireClient& c = i % 2 == 0 ? *zero : *one;
      if (i == delete_at) {
        delete_id = one->send(Opcode::kDeleteBucket, BucketName{bucket});
        // Varies the interleaving only; what is checked holds for any.
        if (round % 2 == 0) std::this_thread::sleep_for(std::chrono::microseconds(100 * (round % 7)));
      }
      creates.emplace_back(&c, c.send(Opcode::kCreateStream, CreateStream{bucket, "s" + std::to_string(i), true, {}}));
    }
    int created = 0;
    for (auto& [c, id] : creates) {
      Frame f = c->answer(id);
      if ((f.header.flags & kFlagError) == 0) {
        created++;
        continue;
      }
      ErrorBody e;
      ASSERT_TRUE(decode_body(f.body, &e));
      EXPECT_TRUE(e.code == code_of(ErrorCode::kNotFound) || e.code == code_of(ErrorCode::kUnavailable))
          << "round " << round << ": " << e.message;
    }
    Frame d = one->answer(delete_id);
    if ((d.header.flags & kFlagError) == 0) {
      EXPECT_EQ(created, 0) << "round " << round << ": streams created in a bucket that was then deleted";
      create_bucket(*zero, bucket);
      EXPECT_TRUE(zero->answer_as<ListAnswer<StreamInfo>>(
                          zero->send(Opcode::kListStreams, ListRequest{bucket, "", "", 0}))
                      .items.empty())
          << "round " << round;
    } else {
      ErrorBody e;
      ASSERT_TRUE(decode_body(d.body, &e));
      EXPECT_EQ(e.code, code_of(ErrorCode::kAlreadyExists)) << "round " << round << ": " << e.message;
      EXPECT_GT(created, 0) << "round " << round;
      EXPECT_EQ(static_cast<int>(zero->answer_as<ListAnswer<StreamInfo>>(
                                         zero->send(Opcode::kListStreams, ListRequest{bucket, "", "", 0}))
                                     .items.size()),
                created);
    }
  }
}

TEST(BinaryProtocol, ABucketMayCreateStreamsOnAppendOrOnRead) {
  TempDir dir;
  auto server = start_server(dir);
  ASSERT_NE(server, nullptr);
  WireClient c(server->binary().port), sub(server->binary().port);
  c.hello();
  sub.hello();
  create_bucket(c, "plain");
  create_bucket(c, "on-append", BucketConfig{arrival_config(), true, false});
  create_bucket(c, "on-read", BucketConfig{arrival_config(), false, true});
  PayloadBuilder payload;
  payload.add(0, body_of("x", 0));

  // Appends to missing streams, on both shards.
  for (int s = 0; s < 6; s++) {
    const std::string name = "a" + std::to_string(s);
    EXPECT_EQ(c.error_of(c.send(Opcode::kAppend, append_of(payload, "plain", name))).code,
              code_of(ErrorCode::kNotFound));
    EXPECT_EQ(c.error_of(c.send(Opcode::kAppend, append_of(payload, "on-read", name))).code,
              code_of(ErrorCode::kNotFound));
    // Two in flight at once: one create, both land.
    const uint32_t first = c.send(Opcode::kAppend, append_of(payload, "on-append", name));
    const uint32_t second = c.send(Opcode::kAppend, append_of(payload, "on-append", name));
    EXPECT_EQ(c.answer_as<AppendAck>(first).start_seq, 0u) << name;
    EXPECT_EQ(c.answer_as<AppendAck>(second).start_seq, 1u) << name;
    StreamInfo info = c.answer_as<StreamInfo>(c.send(Opcode::kGetStream, StreamName{"on-append", name}));
    EXPECT_EQ(info.config, arrival_config());
    EXPECT_EQ(info.tail, 2u);
  }
  EXPECT_EQ(c.error_of(c.send(Opcode::kRead, Read{"on-append", "r", Start{}, 10, 1 << 20, 0, 0})).code,
            code_of(ErrorCode::kNotFound))
      << "create_stream_on_append does not create on read";

  // Reads of missing streams: created, then read at their (empty) tail.
  for (int s = 0; s < 6; s++) {
    const std::string name = "r" + std::to_string(s);
    EXPECT_EQ(c.error_of(c.send(Opcode::kRead, Read{"plain", name, Start{}, 10, 1 << 20, 0, 0})).code,
              code_of(ErrorCode::kNotFound));
    ReadAnswer empty = c.answer_as<ReadAnswer>(c.send(Opcode::kRead, Read{"on-read", name, Start{}, 10, 1 << 20, 0, 0}));
    EXPECT_TRUE(empty.batches.empty());
    EXPECT_EQ(empty.tail, 0u);
    EXPECT_EQ(c.answer_as<StreamInfo>(c.send(Opcode::kGetStream, StreamName{"on-read", name})).config,
              arrival_config());
  }
  // A long poll on a missing stream waits on the new stream for its first record.
  const uint32_t waiting = c.send(Opcode::kRead, Read{"on-read", "polled", Start{}, 10, 1 << 20, 0, 30'000});
  // A subscription to a missing stream starts on the new stream.
  const uint32_t subscription =
      sub.send(Opcode::kSubscribe, Subscribe{"on-read", "pushed", Start{}, 1 << 20, 100});
  EXPECT_EQ(sub.answer_as<TailAnswer>(subscription).tail, 0u);
  EXPECT_EQ(sub.error_of(sub.send(Opcode::kSubscribe, Subscribe{"plain", "pushed", Start{}, 1 << 20, 100})).code,
            code_of(ErrorCode::kNotFound));
  // The stream exists once the read is answered, or once its create is
  // durable: an append may have to wait for that.
  WireClient writer(server->binary().port);
  writer.hello();
  for (const char* name : {"polled", "pushed"}) {
    for (int attempt = 0;; attempt++) {
      Frame f = writer.answer(writer.send(Opcode::kAppend, append_of(payload, "on-read", name)));
      if ((f.header.flags & kFlagError) == 0) break;
      ASSERT_LT(attempt, 1000) << name << " never appeared";
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  }
  ReadAnswer got = c.answer_as<ReadAnswer>(waiting);
  ASSERT_EQ(got.batches.size(), 1u);
  EXPECT_EQ(got.batches[0].base_seq, 0u);
  uint64_t next = 0;
  std::vector<std::string> bodies;
  while (bodies.empty()) {
    auto f = sub.next_push(subscription);
    ASSERT_TRUE(f.has_value());
    ASSERT_EQ(f->header.flags & kFlagError, 0);
    take_records(*f, &next, &bodies);
  }
  EXPECT_EQ(bodies, std::vector<std::string>{body_of("x", 0)});
}

TEST(BinaryProtocol, BucketsSurviveARestartOnEveryShard) {
  TempDir dir;
  std::vector<BucketInfo> before;
  {
    auto server = start_server(dir);
    ASSERT_NE(server, nullptr);
    WireClient c(server->binary().port);
    c.hello();
    create_bucket(c, "kept");
    create_bucket(c, "changed");
    create_bucket(c, "gone");
    c.answer_as<BucketInfo>(
        c.send(Opcode::kReconfigureBucket, BucketWithConfig{"changed", BucketConfig{arrival_config(), true, true}}));
    c.answer(c.send(Opcode::kDeleteBucket, BucketName{"gone"}));
    before = list_buckets(c, "", "", 0).items;
    ASSERT_EQ(before.size(), 2u);
    ASSERT_TRUE(server->stop(SIGKILL).has_value());
  }
  auto server = start_server(dir);
  ASSERT_NE(server, nullptr);
  // Each shard's replica was filled from shard 0's log before it accepted.
  for (uint32_t shard : {0u, 1u}) {
    auto c = connect_to_shard(server->binary().port, shard);
    ASSERT_NE(c, nullptr);
    EXPECT_EQ(list_buckets(*c, "", "", 0).items, before) << "shard " << shard;
    EXPECT_EQ(c->error_of(c->send(Opcode::kGetBucket, BucketName{"gone"})).code, code_of(ErrorCode::kNotFound));
  }
  WireClient c(server->binary().port);
  c.hello();
  for (int s = 0; s < 6; s++) {  // Streams on both shards get the recovered default.
    const std::string name = "s" + std::to_string(s);
    EXPECT_EQ(c.answer_as<StreamInfo>(c.send(Opcode::kCreateStream, CreateStream{"changed", name, true, {}})).config,
              arrival_config());
  }
  expect_clean_stop(*server);
}

}  // namespace
}  // namespace runnel::testing
