// runnel read: records from a start position up to the tail as it was at
// the first read; with --follow, on from there through a subscription until
// --count records or SIGINT/SIGTERM (exit 0).

#include <fmt/format.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <limits>
#include <memory>

#include "tools/runnel/commands.h"
#include "tools/runnel/output.h"

namespace runnel::cli {
namespace {

using client::ErrorCode;
using client::Record;
using namespace std::chrono_literals;

volatile std::sig_atomic_t g_stop = 0;

// The first signal asks the follow loop to stop; a second one (say, while a
// request is waiting for an unreachable server) ends the process at once.
void on_stop_signal(int) {
  if (g_stop != 0) _exit(0);
  g_stop = 1;
}

void install_stop_handlers() {
  struct sigaction sa {};
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = 0;
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
}

void print_record(const Invocation& inv, const Record& r) {
  if (inv.json) {
    Out::json(to_json(r));
  } else if (inv.show_meta) {
    Out::line(fmt::format("{}\t{}\t{}", r.seq_num, r.timestamp, r.body));
  } else {
    Out::line(r.body);
  }
}

}  // namespace

int run_read(client::BlockingClient& client, const Invocation& inv) {
  if (inv.follow) install_stop_handlers();
  uint64_t remaining = inv.count.value_or(std::numeric_limits<uint64_t>::max());
  if (remaining == 0) return kExitOk;

  // Reads up to the tail the first answer names (the position a time or
  // tail-offset start resolves to is the first record's seq_num).
  client::ReadOptions options{.start = inv.start};
  std::optional<uint64_t> end;
  uint64_t next_seq = 0;
  while (remaining > 0 && g_stop == 0) {
    options.max_records = static_cast<uint32_t>(std::min<uint64_t>(remaining, 1000));
    auto r = client.read(inv.bucket, inv.stream, options);
    if (!r) return fail(inv, r.status());
    if (!end) {
      end = r->tail;
      next_seq = r->tail;  // Where nothing is left to read.
    }
    bool past_end = r->records.empty();
    for (const Record& rec : r->records) {
      if (!inv.follow && rec.seq_num >= *end) {
        past_end = true;
        break;
      }
      print_record(inv, rec);
      next_seq = rec.seq_num + 1;
      if (--remaining == 0) break;
    }
    if (Out::broken_pipe()) return kExitOk;
    if (past_end || (!inv.follow && next_seq >= *end)) break;
    options.start = client::Start::seq_num(next_seq);
  }
  if (!inv.follow || remaining == 0 || g_stop != 0) return kExitOk;

  // Caught up: the server pushes the rest as it lands.
  Out::flush();
  auto subscription =
      client.subscribe(inv.bucket, inv.stream, client::SubscribeOptions{.start = client::Start::seq_num(next_seq)});
  while (remaining > 0 && g_stop == 0) {
    auto r = subscription->next(0ms);
    if (!r && r.status().code() == ErrorCode::kTimeout) {
      Out::flush();  // Nothing more right now: show what came.
      if (Out::broken_pipe()) break;
      r = subscription->next(100ms);
    }
    if (!r) {
      if (r.status().code() == ErrorCode::kTimeout) continue;
      return fail(inv, r.status());
    }
    print_record(inv, *r);
    remaining--;
  }
  return kExitOk;
}

}  // namespace runnel::cli
