// Crash test: a child process appends with acknowledgements and is killed
// with SIGKILL at a random moment; then a fresh process recovers the log and
// checks that every acknowledged record is present, intact and in order, and
// that nothing corrupt is returned. Repeated many times on one data dir.
//
//   RUNNEL_CRASH_ITERATIONS  kills per test (default 200; more for a long run)
//   RUNNEL_SEED              replay a failing run's choices (the seed is printed;
//                            core/test_seed.h); the kills still land by the clock

#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <map>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "core/test_seed.h"

namespace {

using Clock = std::chrono::steady_clock;

struct Child {
  pid_t pid = -1;
  int out = -1;
};

Child spawn(const std::vector<std::string>& args) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) return {};
  std::vector<std::string> storage = {LOG_CRASH_CHILD_PATH};
  storage.insert(storage.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& s : storage) argv.push_back(s.data());
  argv.push_back(nullptr);
  pid_t pid = ::fork();
  if (pid == 0) {
    ::dup2(fds[1], STDOUT_FILENO);
    ::execv(argv[0], argv.data());
    _exit(127);
  }
  ::close(fds[1]);
  return {pid, fds[0]};
}

// Reads whatever is available (or until EOF when `until_eof`), bounded by `deadline`.
void read_lines(int fd, std::string* buffer, std::vector<std::string>* lines, Clock::time_point deadline,
                bool until_eof) {
  char chunk[4096];
  while (Clock::now() < deadline) {
    pollfd p{fd, POLLIN, 0};
    int ms = static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count());
    int ready = ::poll(&p, 1, std::max(ms, 0));
    if (ready <= 0) break;
    ssize_t n = ::read(fd, chunk, sizeof(chunk));
    if (n <= 0) break;
    buffer->append(chunk, static_cast<size_t>(n));
    size_t newline;
    while ((newline = buffer->find('\n')) != std::string::npos) {
      lines->push_back(buffer->substr(0, newline));
      buffer->erase(0, newline + 1);
    }
    if (!until_eof) continue;
  }
}

int wait_exit(pid_t pid, Clock::time_point deadline) {
  int status = 0;
  while (::waitpid(pid, &status, WNOHANG) == 0) {
    if (Clock::now() > deadline) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &status, 0);
      return -1;
    }
    ::usleep(1000);
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

TEST(LogCrash, EveryAcknowledgedRecordSurvivesSigkill) {
  const char* iterations_env = std::getenv("RUNNEL_CRASH_ITERATIONS");
  const int iterations = iterations_env != nullptr ? std::atoi(iterations_env) : 200;
  const uint64_t seed = runnel::test_seed();
  std::printf("crash test: %d kills, seed %llu\n", iterations, static_cast<unsigned long long>(seed));
  SCOPED_TRACE(runnel::seed_trace(seed));
  std::mt19937_64 rng(seed);
  const std::string dir = "/tmp/runnel-crash-" + std::to_string(::getpid());
  std::filesystem::remove_all(dir);
  constexpr int kStreams = 4;
  std::map<int, uint64_t> acked;      // Highest acknowledged end_seq per stream.
  std::map<int, uint64_t> recovered;  // Tail seen by the last verify: never goes back.
  uint64_t total_acks = 0;

  for (int i = 0; i < iterations; i++) {
    SCOPED_TRACE("iteration " + std::to_string(i));
    Child writer = spawn({"append", dir, std::to_string(kStreams)});
    ASSERT_GT(writer.pid, 0);
    // Let it run a random while: one time in five from the start (so some
    // kills land during recovery itself), otherwise from when it has
    // recovered and begun appending — a slow machine must not turn the
    // test into one that only ever kills recoveries.
    std::string buffer;
    std::vector<std::string> lines;
    if (rng() % 5 != 0) {
      const auto give_up = Clock::now() + std::chrono::seconds(10);
      while (Clock::now() < give_up && std::find(lines.begin(), lines.end(), "ready") == lines.end()) {
        read_lines(writer.out, &buffer, &lines, Clock::now() + std::chrono::milliseconds(2), false);
      }
    }
    const bool after_ready = std::find(lines.begin(), lines.end(), "ready") != lines.end();
    const auto kill_at = Clock::now() + std::chrono::microseconds(rng() % (after_ready ? 15'000 : 60'000));
    read_lines(writer.out, &buffer, &lines, kill_at, false);
    ::kill(writer.pid, SIGKILL);
    // Lines written before the kill are still in the pipe: each is an ack.
    read_lines(writer.out, &buffer, &lines, Clock::now() + std::chrono::seconds(10), true);
    ::close(writer.out);
    wait_exit(writer.pid, Clock::now() + std::chrono::seconds(10));
    for (const std::string& line : lines) {
      std::istringstream words(line);
      std::string word;
      int stream;
      uint64_t end;
      words >> word;
      ASSERT_NE(word, "error") << line;
      if (word == "ack" && words >> stream >> end) {
        acked[stream] = std::max(acked[stream], end);
        total_acks++;
      }
    }

    Child verifier = spawn({"verify", dir, std::to_string(kStreams)});
    ASSERT_GT(verifier.pid, 0);
    std::string vbuffer;
    std::vector<std::string> vlines;
    read_lines(verifier.out, &vbuffer, &vlines, Clock::now() + std::chrono::seconds(60), true);
    ::close(verifier.out);
    int code = wait_exit(verifier.pid, Clock::now() + std::chrono::seconds(10));
    std::string all;
    for (const auto& l : vlines) all += l + "\n";
    ASSERT_EQ(code, 0) << all;
    ASSERT_FALSE(vlines.empty());
    ASSERT_EQ(vlines.back(), "ok") << all;
    for (const std::string& line : vlines) {
      std::istringstream words(line);
      std::string word;
      int stream;
      uint64_t tail;
      words >> word;
      if (word != "tail" || !(words >> stream >> tail)) continue;
      ASSERT_GE(tail, acked[stream]) << "acknowledged records of stream " << stream << " were lost\n" << all;
      ASSERT_GE(tail, recovered[stream]) << "records of stream " << stream << " seen after a recovery vanished";
      recovered[stream] = tail;
    }
  }
  std::printf("crash test: %llu acknowledged appends checked across %d kills; tails:",
              static_cast<unsigned long long>(total_acks), iterations);
  for (const auto& [stream, tail] : recovered) std::printf(" %d=%llu", stream, static_cast<unsigned long long>(tail));
  std::printf("\n");
  EXPECT_GT(total_acks, 0u);
  std::filesystem::remove_all(dir);
}

}  // namespace
