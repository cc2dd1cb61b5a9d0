// Durable appends through the binary protocol against a running runneld: one
// connection, a window of pipelined APPEND requests over a few streams, as
// fast as acknowledgements come back. Prints records/s, MB/s of payload and
// ack latency percentiles. A first look at the network path until
// runnel-bench (issue 5) exists; it is single-threaded and blocking, so on
// this 2-core machine it competes with the server for CPU.
//
//   wire_bench --port P [--streams 4] [--record-bytes 1024] [--batch-records 100]
//              [--window 32] [--seconds 5] [--producer 1]
// --producer 1: every append carries a producer id (one per stream) and a
// rising producer_seq, as librunnel's appends do.

#include <fmt/format.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "proto/records.h"
#include "proto/wire.h"

namespace runnel {
namespace {

using Clock = std::chrono::steady_clock;

struct Args {
  int port = 7420;
  int streams = 4;
  int record_bytes = 1024;
  int batch_records = 100;
  int window = 32;
  double seconds = 5;
  bool producer = false;
  std::string token;  // Sent in the hello (a server with --auth).
};

class Connection {
 public:
  explicit Connection(int port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
      ::close(fd_);
      fd_ = -1;
    }
    const int one = 1;
    if (fd_ >= 0) (void)::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  }
  ~Connection() {
    if (fd_ >= 0) ::close(fd_);
  }
  bool ok() const { return fd_ >= 0; }
  bool send_all(std::string_view bytes) {
    while (!bytes.empty()) {
      ssize_t n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
      if (n <= 0) return false;
      bytes.remove_prefix(static_cast<size_t>(n));
    }
    return true;
  }
  // The next frame (header + body), or false when the connection ends.
  bool receive(wire::FrameHeader* header, std::string* body) {
    while (true) {
      if (buffer_.size() - start_ >= wire::kFrameHeaderBytes) {
        *header = wire::read_frame_header(buffer_.data() + start_);
        if (buffer_.size() - start_ >= header->frame_bytes) {
          body->assign(buffer_, start_ + wire::kFrameHeaderBytes, header->frame_bytes - wire::kFrameHeaderBytes);
          start_ += header->frame_bytes;
          if (start_ == buffer_.size()) buffer_.clear(), start_ = 0;
          return true;
        }
      }
      char chunk[1 << 16];
      ssize_t n = ::recv(fd_, chunk, sizeof(chunk), 0);
      if (n <= 0) return false;
      buffer_.append(chunk, static_cast<size_t>(n));
    }
  }

 private:
  int fd_ = -1;
  std::string buffer_;
  size_t start_ = 0;
};

int run(int argc, char** argv) {
  Args a;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i], v = argv[i + 1];
    if (k == "--port") a.port = std::stoi(v);
    else if (k == "--streams") a.streams = std::stoi(v);
    else if (k == "--record-bytes") a.record_bytes = std::stoi(v);
    else if (k == "--batch-records") a.batch_records = std::stoi(v);
    else if (k == "--window") a.window = std::stoi(v);
    else if (k == "--seconds") a.seconds = std::stod(v);
    else if (k == "--producer") a.producer = v != "0";
    else if (k == "--token")
      a.token = v;
    else {
      fmt::print(stderr, "unknown argument {}\n", k);
      return 2;
    }
  }
  Connection c(a.port);
  if (!c.ok()) {
    fmt::print(stderr, "cannot connect to 127.0.0.1:{}\n", a.port);
    return 1;
  }
  wire::FrameHeader h;
  std::string body, out;
  uint32_t next_id = 1;
  auto call = [&](wire::Opcode op, const auto& m) {
    out.clear();
    wire::append_frame(&out, op, 0, next_id++, m);
    return c.send_all(out) && c.receive(&h, &body);
  };
  if (!call(wire::Opcode::kHello, wire::Hello{1, 1, "wire_bench", a.token}) || (h.flags & wire::kFlagError) != 0) {
    fmt::print(stderr, "hello failed\n");
    return 1;
  }
  // Streams live in a bucket: "bench", made by the first run against this server.
  if (!call(wire::Opcode::kCreateBucket, wire::BucketWithConfig{"bench", {}})) return 1;
  if ((h.flags & wire::kFlagError) != 0) {
    wire::ErrorBody e;
    if (!wire::decode_body(body, &e) || e.code != static_cast<uint16_t>(ErrorCode::kAlreadyExists)) {
      fmt::print(stderr, "creating bucket 'bench' failed: {}\n", e.message);
      return 1;
    }
  }
  std::vector<std::string> names;
  for (int s = 0; s < a.streams; s++) {
    names.push_back(fmt::format("bench-{}-{}", ::getpid(), s));
    if (!call(wire::Opcode::kCreateStream, wire::CreateStream{"bench", names.back(), true, {}})) return 1;
    if ((h.flags & wire::kFlagError) != 0) {
      fmt::print(stderr, "creating stream {} failed\n", names.back());
      return 1;
    }
  }
  PayloadBuilder builder;
  const std::string record(static_cast<size_t>(a.record_bytes), 'x');
  for (int r = 0; r < a.batch_records; r++) builder.add(0, record);
  std::vector<std::string> frames;  // One ready frame per stream; the request id is patched in.
  std::vector<wire::Append> appends;
  for (const std::string& name : names) {
    wire::Append m;
    m.bucket = "bench";
    m.stream = name;
    m.record_count = builder.record_count();
    m.payload_checksum = payload_checksum(builder.bytes());
    m.payload = builder.bytes();
    if (a.producer) {
      m.options = wire::Append::kHasProducer;
      m.producer_id = (static_cast<uint64_t>(::getpid()) << 16) + appends.size() + 1;
    }
    std::string f;
    wire::append_frame(&f, wire::Opcode::kAppend, 0, 0, m);
    frames.push_back(std::move(f));
    appends.push_back(m);
  }
  std::map<uint32_t, Clock::time_point> sent;
  std::vector<uint32_t> latencies_us;
  uint64_t acked = 0, errors = 0;
  const auto start = Clock::now();
  const auto deadline = start + std::chrono::duration<double>(a.seconds);
  size_t turn = 0;
  while (true) {
    const bool sending = Clock::now() < deadline;
    std::string burst;  // Fill the window in one send.
    while (sending && static_cast<int>(sent.size()) < a.window) {
      const size_t stream = turn++ % frames.size();
      std::string& f = frames[stream];
      if (a.producer) {  // A new producer_seq: encoded afresh (the client's cost, not the server's).
        appends[stream].producer_seq++;
        f.clear();
        wire::append_frame(&f, wire::Opcode::kAppend, 0, 0, appends[stream]);
      }
      const uint32_t id = next_id++;
      std::memcpy(f.data() + 8, &id, 4);
      burst.append(f);
      sent[id] = Clock::now();
    }
    if (!burst.empty() && !c.send_all(burst)) break;
    if (sent.empty()) break;
    if (!c.receive(&h, &body)) break;
    auto it = sent.find(h.request_id);
    if (it == sent.end()) continue;  // A ping or a stray answer.
    latencies_us.push_back(static_cast<uint32_t>(
        std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - it->second).count()));
    sent.erase(it);
    if ((h.flags & wire::kFlagError) != 0) {
      errors++;
    } else {
      acked++;
    }
  }
  const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
  std::sort(latencies_us.begin(), latencies_us.end());
  auto pct = [&](double p) {
    return latencies_us.empty() ? 0u : latencies_us[std::min(latencies_us.size() - 1, static_cast<size_t>(p * latencies_us.size()))];
  };
  const double records = static_cast<double>(acked) * a.batch_records;
  fmt::print("record_bytes={} batch_records={} streams={} window={}: {:.0f} records/s, {:.1f} MB/s payload, "
             "ack p50={}us p99={}us p99.9={}us max={}us, errors={}\n",
             a.record_bytes, a.batch_records, a.streams, a.window, records / elapsed,
             records * a.record_bytes / 1e6 / elapsed, pct(0.5), pct(0.99), pct(0.999),
             latencies_us.empty() ? 0 : latencies_us.back(), errors);
  return errors == 0 ? 0 : 1;
}

}  // namespace
}  // namespace runnel

int main(int argc, char** argv) { return runnel::run(argc, argv); }
