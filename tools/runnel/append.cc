// runnel append: stdin to a stream, one record per line, in batches that
// are pipelined through the asynchronous client (a bounded number in
// flight), so memory stays bounded however large the input. Acks are
// handled in the order the batches were sent.

#include <fcntl.h>
#include <fmt/format.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "core/text.h"
#include "tools/runnel/commands.h"
#include "tools/runnel/output.h"

namespace runnel::cli {
namespace {

using client::AppendAck;
using client::AppendRecord;
using client::ErrorCode;
using client::Result;
using client::Status;
using Clock = std::chrono::steady_clock;
using nlohmann::json;

// The server's default limits (docs/REFERENCE.md): a batch holds at most 1,000
// records and 1 MiB; a record is at most 1 MiB.
constexpr size_t kBatchBytesMax = 1u << 20;
constexpr size_t kRecordBytesMax = 1u << 20;
// A line longer than this cannot be a record (base64 and JSON included).
constexpr size_t kTextLineMax = kRecordBytesMax;
constexpr size_t kJsonLineMax = 4 * kRecordBytesMax;

size_t varint_size(uint64_t v) {
  size_t n = 1;
  while (v >= 0x80) {
    v >>= 7;
    n++;
  }
  return n;
}

// The record's bytes in the batch payload (storage/FORMAT.md, "Payload"),
// without and with its length prefix.
size_t record_bytes(const AppendRecord& r) {
  size_t n = varint_size(r.timestamp) + varint_size(r.headers.size());
  for (const client::Header& h : r.headers) {
    n += varint_size(h.name.size()) + h.name.size() + varint_size(h.value.size()) + h.value.size();
  }
  return n + varint_size(r.body.size()) + r.body.size();
}
size_t encoded_size(const AppendRecord& r) {
  const size_t n = record_bytes(r);
  return varint_size(n) + n;
}

// Lines from a file descriptor, read in chunks when poll() says so.
class LineReader {
 public:
  LineReader(int fd, size_t line_max) : fd_(fd), line_max_(line_max) {}

  // The next whole line (without its '\n') from what has been read; at end
  // of input, the last one even without a newline.
  bool next(std::string* line) {
    const size_t nl = buf_.find('\n', scanned_);
    if (nl == std::string::npos) {
      scanned_ = buf_.size();
      if (!eof_ || pos_ == buf_.size()) return false;
      line->assign(buf_, pos_, std::string::npos);
      pos_ = scanned_ = buf_.size();
      line_number_++;
      return true;
    }
    line->assign(buf_, pos_, nl - pos_);
    pos_ = scanned_ = nl + 1;
    line_number_++;
    return true;
  }

  // Reads once; an error or a line over the limit is a Status.
  Status fill() {
    if (pos_ > 0) {
      buf_.erase(0, pos_);
      scanned_ -= pos_;
      pos_ = 0;
    }
    if (buf_.size() > line_max_) {
      return Status(ErrorCode::kTooLarge,
                    fmt::format("line {}: longer than {} bytes, too large for a record", line_number_ + 1, line_max_));
    }
    const size_t old = buf_.size();
    buf_.resize(old + kChunk);
    ssize_t n;
    do {
      n = ::read(fd_, buf_.data() + old, kChunk);
    } while (n < 0 && errno == EINTR);
    if (n < 0) {
      buf_.resize(old);
      if (errno == EAGAIN || errno == EWOULDBLOCK) return Status();
      return Status(ErrorCode::kInvalidArgument, fmt::format("cannot read stdin: {}", std::strerror(errno)));
    }
    buf_.resize(old + static_cast<size_t>(n));
    if (n == 0) eof_ = true;
    return Status();
  }

  // Everything read and handed out.
  bool done() const { return eof_ && pos_ == buf_.size(); }
  uint64_t line_number() const { return line_number_; }

 private:
  static constexpr size_t kChunk = 64 * 1024;
  int fd_;
  size_t line_max_;
  std::string buf_;
  size_t pos_ = 0;      // Start of what is not handed out yet.
  size_t scanned_ = 0;  // No '\n' in [pos_, scanned_).
  bool eof_ = false;
  uint64_t line_number_ = 0;
};

std::optional<std::string> string_field(const json& value, const char* what, std::string* error) {
  if (!value.is_string()) {
    *error = fmt::format("\"{}\" must be a string", what);
    return std::nullopt;
  }
  return value.get<std::string>();
}

// One --format json line: {"body"|"body_base64":…, "headers"|"headers_base64":[[name,value],…], "timestamp":MS}.
// "seq_num" is ignored, so the output of `runnel read --json` can be appended again.
Status parse_json_record(const std::string& line, uint64_t line_number, AppendRecord* out) {
  auto bad = [&](const std::string& why) {
    return Status(ErrorCode::kInvalidArgument, fmt::format("line {}: {}", line_number, why));
  };
  json j = json::parse(line, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return bad("not valid JSON");
  if (!j.is_object()) return bad("not a JSON object");
  std::string error;
  bool have_body = false;
  for (auto it = j.begin(); it != j.end(); ++it) {
    const std::string& key = it.key();
    const json& v = it.value();
    if (key == "body" || key == "body_base64") {
      if (have_body) return bad("give \"body\" or \"body_base64\", not both");
      have_body = true;
      auto text = string_field(v, key.c_str(), &error);
      if (!text) return bad(error);
      if (key == "body") {
        out->body = std::move(*text);
      } else {
        if (!base64_decode(*text, &out->body)) return bad("\"body_base64\" is not base64");
      }
    } else if (key == "headers" || key == "headers_base64") {
      if (!out->headers.empty()) return bad("give \"headers\" or \"headers_base64\", not both");
      const bool b64 = key == "headers_base64";
      if (!v.is_array()) return bad(fmt::format("\"{}\" must be an array of [name, value] pairs", key));
      for (const json& pair : v) {
        if (!pair.is_array() || pair.size() != 2 || !pair[0].is_string() || !pair[1].is_string()) {
          return bad(fmt::format("\"{}\" must be an array of [name, value] string pairs", key));
        }
        client::Header h{.name = pair[0].get<std::string>(), .value = pair[1].get<std::string>()};
        if (b64) {
          client::Header decoded;
          if (!base64_decode(h.name, &decoded.name) || !base64_decode(h.value, &decoded.value)) {
            return bad("\"headers_base64\" holds something that is not base64");
          }
          h = std::move(decoded);
        }
        out->headers.push_back(std::move(h));
      }
    } else if (key == "timestamp") {
      if (!v.is_number_unsigned() && !(v.is_number_integer() && v.get<int64_t>() >= 0)) {
        return bad("\"timestamp\" must be a non-negative integer (ms)");
      }
      out->timestamp = v.get<uint64_t>();
    } else if (key == "seq_num") {
      // Assigned by the server; accepted so that read --json output appends as is.
    } else {
      return bad(
          fmt::format("unknown field \"{}\" (expected body, body_base64, headers, headers_base64, timestamp)", key));
    }
  }
  return Status();
}

// What the loop thread hands back: acks by batch number.
struct Acks {
  std::mutex mu;
  std::map<uint64_t, Result<AppendAck>> done;
  int wake_fd = -1;
};

}  // namespace

int run_append(client::BlockingClient& client, const Invocation& inv) {
  auto acks = std::make_shared<Acks>();
  acks->wake_fd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (acks->wake_fd < 0) {
    print_error(fmt::format("eventfd: {}", std::strerror(errno)));
    return kExitOther;
  }
  LineReader reader(STDIN_FILENO, inv.json_input ? kJsonLineMax : kTextLineMax);

  uint64_t batches_sent = 0;
  uint64_t batches_done = 0;
  uint64_t records_sent = 0;
  // The acknowledged ones.
  uint64_t records_acked = 0;
  uint64_t batches_acked = 0;
  uint64_t first_seq = 0;
  uint64_t last_end = 0;
  bool contiguous = true;
  std::optional<Status> error;        // The first failed append; nothing more is sent after it.
  std::optional<Status> input_error;  // A bad line or stdin failing: what came before it still goes.

  std::vector<AppendRecord> batch;
  size_t batch_bytes = 0;
  Clock::time_point batch_started{};
  std::optional<AppendRecord> carry;  // Parsed, for the next batch.
  bool input_over = false;            // End of input, or a bad line (then `input_error` says which).

  auto send = [&] {
    auto records = std::make_shared<std::vector<AppendRecord>>(std::move(batch));
    batch.clear();
    batch_bytes = 0;
    client::AppendOptions options;
    options.fencing_token = inv.fencing_token;
    if (inv.match_seq_num) options.match_seq_num = *inv.match_seq_num + records_sent;
    records_sent += records->size();
    const uint64_t number = batches_sent++;
    client.post([acks, records, options, number, &inv](client::Client& c) {
      c.append(inv.bucket, inv.stream, *records, options, [acks, records, number](Result<AppendAck> r) {
        {
          std::lock_guard<std::mutex> lock(acks->mu);
          acks->done.emplace(number, std::move(r));
        }
        const uint64_t one = 1;
        [[maybe_unused]] ssize_t n = ::write(acks->wake_fd, &one, sizeof(one));
      });
    });
  };

  // Handles the acks that arrived, in the order the batches were sent.
  auto drain = [&] {
    uint64_t ignored;
    [[maybe_unused]] ssize_t n = ::read(acks->wake_fd, &ignored, sizeof(ignored));
    std::lock_guard<std::mutex> lock(acks->mu);
    const uint64_t before = batches_acked;
    for (auto it = acks->done.find(batches_done); it != acks->done.end(); it = acks->done.find(batches_done)) {
      Result<AppendAck>& r = it->second;
      if (r.ok()) {
        if (inv.json) Out::json(nlohmann::ordered_json{{"start_seq", r->start_seq}, {"end_seq", r->end_seq}});
        if (batches_acked == 0) {
          first_seq = r->start_seq;
        } else if (r->start_seq != last_end) {
          contiguous = false;
        }
        last_end = r->end_seq;
        records_acked += r->end_seq - r->start_seq;
        batches_acked++;
      } else if (!error) {
        error = r.status();
      }
      acks->done.erase(it);
      batches_done++;
    }
    if (inv.json && batches_acked != before) Out::flush();  // A reader of the acks sees them as they come.
  };

  auto wait_for_ack = [&] {
    pollfd p{acks->wake_fd, POLLIN, 0};
    while (::poll(&p, 1, -1) < 0 && errno == EINTR) {
    }
  };

  while (!error) {
    drain();
    if (error) break;
    // Take the whole lines read so far into the batch until it is full.
    bool full = batch.size() >= inv.batch_records;  // Still waiting for a slot to send it.
    while (!full && !input_over) {
      if (!carry) {
        std::string line;
        if (!reader.next(&line)) break;
        AppendRecord r;
        if (inv.json_input) {
          if (line.find_first_not_of(" \t\r") == std::string::npos) continue;  // Blank line.
          Status st = parse_json_record(line, reader.line_number(), &r);
          if (!st) {
            input_error = st;
            input_over = true;
            break;
          }
        } else {
          r.body = std::move(line);
        }
        if (record_bytes(r) > kRecordBytesMax) {
          input_error =
              Status(ErrorCode::kTooLarge, fmt::format("line {}: the record is {} bytes, over the {} byte limit",
                                                       reader.line_number(), record_bytes(r), kRecordBytesMax));
          input_over = true;
          break;
        }
        carry = std::move(r);
      }
      const size_t size = encoded_size(*carry);
      if (!batch.empty() && batch_bytes + size > kBatchBytesMax) {
        full = true;
        break;
      }
      if (batch.empty()) batch_started = Clock::now();
      batch.push_back(std::move(*carry));
      carry.reset();
      batch_bytes += size;
      if (batch.size() >= inv.batch_records) {
        full = true;
        break;
      }
    }
    if (!input_over && !carry && reader.done()) input_over = true;

    const auto linger = std::chrono::milliseconds(inv.linger_ms);
    const bool lingered = !batch.empty() && Clock::now() - batch_started >= linger;
    if (!batch.empty() && (full || input_over || lingered)) {
      // A bad line stops the input; the lines before it still go.
      if (batches_sent - batches_done < inv.in_flight) {
        send();
      } else {
        wait_for_ack();
      }
      continue;
    }
    if (input_over) break;
    // Wait for input (no whole line is buffered) or an ack, or until the batch has lingered long enough.
    int timeout_ms = -1;
    if (!batch.empty()) {
      const auto left = linger - (Clock::now() - batch_started);
      timeout_ms = static_cast<int>(
          std::max<int64_t>(0, std::chrono::duration_cast<std::chrono::milliseconds>(left).count() + 1));
    }
    pollfd fds[2] = {{STDIN_FILENO, POLLIN, 0}, {acks->wake_fd, POLLIN, 0}};
    if (::poll(fds, 2, timeout_ms) < 0) {
      if (errno == EINTR) continue;
      error = Status(ErrorCode::kInternal, fmt::format("poll: {}", std::strerror(errno)));
      break;
    }
    if ((fds[0].revents & (POLLIN | POLLHUP | POLLERR | POLLNVAL)) != 0) {
      Status st = (fds[0].revents & POLLNVAL) != 0
                      ? Status(ErrorCode::kInvalidArgument, "cannot read stdin: it is not open")
                      : reader.fill();
      if (!st) {
        input_error = st;
        input_over = true;
      }
    }
  }
  // Wait for every batch in flight, whatever happened.
  while (batches_done < batches_sent) {
    wait_for_ack();
    drain();
  }
  ::close(acks->wake_fd);

  if (!inv.json && (records_acked > 0 || (!error && !input_error))) {
    if (records_acked == 0) {
      Out::line("appended 0 records");
    } else if (contiguous) {
      Out::line(fmt::format("appended {} record{}: seq_nums {}..{}", records_acked, records_acked == 1 ? "" : "s",
                            first_seq, last_end - 1));
    } else {
      Out::line(fmt::format("appended {} records in {} batches: seq_nums {}..{}, with others' records between",
                            records_acked, batches_acked, first_seq, last_end - 1));
    }
  }
  if (error) return fail(inv, *error);
  if (input_error) return fail(inv, *input_error);
  return kExitOk;
}

}  // namespace runnel::cli
