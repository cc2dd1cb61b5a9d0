// The runnel CLI against the real runneld (two shards, loopback ports of
// its own), run as a child process with stdin/stdout/stderr on pipes and a
// deadline: every bucket and stream command in human and --json form,
// append from stdin (lines and --format json), read back by range, a large
// input streamed through, read --follow stopped by SIGINT, and the exit
// status and stderr line of every error class.

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <fstream>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "tests/integration/process.h"

extern char** environ;

namespace runnel::testing {
namespace {

using Clock = std::chrono::steady_clock;
using nlohmann::json;
using namespace std::chrono_literals;

struct CliResult {
  int exit_code = -1;  // -1: killed at the deadline, or by a signal.
  std::string out;
  std::string err;
};

// One run of the runnel binary: stdin, stdout and stderr on pipes; the
// destructor SIGKILLs (by PID) a child still running.
class Cli {
 public:
  explicit Cli(const std::vector<std::string>& args) {
    int in[2], out[2], err[2];
    if (::pipe2(in, O_CLOEXEC) != 0 || ::pipe2(out, O_CLOEXEC) != 0 || ::pipe2(err, O_CLOEXEC) != 0) {
      ADD_FAILURE() << "pipe: " << std::strerror(errno);
      return;
    }
    std::vector<std::string> argv_storage = {RUNNEL_CLI_PATH};
    argv_storage.insert(argv_storage.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (auto& a : argv_storage) argv.push_back(a.data());
    argv.push_back(nullptr);
    // The test's environment without RUNNEL_* (RUNNEL_SERVER would be a default).
    std::vector<std::string> env_storage;
    for (char** e = environ; *e != nullptr; e++) {
      if (std::strncmp(*e, "RUNNEL_", 7) != 0) env_storage.emplace_back(*e);
    }
    std::vector<char*> envp;
    for (auto& e : env_storage) envp.push_back(e.data());
    envp.push_back(nullptr);
    pid_ = ::fork();
    if (pid_ == 0) {
      ::dup2(in[0], STDIN_FILENO);
      ::dup2(out[1], STDOUT_FILENO);
      ::dup2(err[1], STDERR_FILENO);
      ::execve(argv[0], argv.data(), envp.data());
      _exit(127);
    }
    ::close(in[0]);
    ::close(out[1]);
    ::close(err[1]);
    in_fd_ = in[1];
    out_fd_ = out[0];
    err_fd_ = err[0];
    ::fcntl(in_fd_, F_SETFL, O_NONBLOCK);
  }

  ~Cli() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      int status;
      ::waitpid(pid_, &status, 0);
    }
    for (int fd : {in_fd_, out_fd_, err_fd_}) {
      if (fd >= 0) ::close(fd);
    }
  }

  // Writes `data` to stdin (collecting output meanwhile, so neither side
  // blocks the other), then closes it. False at the deadline.
  bool feed(std::string_view data, Clock::time_point deadline) {
    const bool written = write_stdin(data, deadline);
    close_stdin();
    return written;
  }

  // Writes `data` to stdin and leaves it open.
  bool write_stdin(std::string_view data, Clock::time_point deadline) {
    size_t written = 0;
    while (written < data.size()) {
      if (Clock::now() >= deadline || in_fd_ < 0) return false;
      pump(50, /*want_write=*/true);
      ssize_t n = ::write(in_fd_, data.data() + written, std::min<size_t>(data.size() - written, 1 << 16));
      if (n > 0) {
        written += static_cast<size_t>(n);
      } else if (n < 0 && errno != EAGAIN && errno != EINTR) {
        break;  // The child closed its stdin (exited early): the caller checks what it said.
      }
    }
    return written == data.size();
  }

  void close_stdin() {
    if (in_fd_ >= 0) ::close(in_fd_);
    in_fd_ = -1;
  }

  // Collects stdout until `done(stdout so far)` or the deadline.
  bool wait_for_output(const std::function<bool(const std::string&)>& done, Clock::time_point deadline) {
    while (!done(out_)) {
      if (Clock::now() >= deadline) return false;
      pump(50, false);
    }
    return true;
  }

  void send_signal(int signal) {
    if (pid_ > 0) ::kill(pid_, signal);
  }

  // Waits for the output to end and the child to exit; SIGKILL at the deadline.
  CliResult finish(Clock::time_point deadline) {
    close_stdin();
    while ((out_fd_ >= 0 || err_fd_ >= 0) && Clock::now() < deadline) pump(50, false);
    CliResult r;
    while (pid_ > 0) {
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        if (WIFEXITED(status)) r.exit_code = WEXITSTATUS(status);
        break;
      }
      if (Clock::now() >= deadline) {
        ADD_FAILURE() << "runnel did not finish in time; killed. stdout so far:\n"
                      << out_.substr(0, 2000) << "\nstderr:\n"
                      << err_;
        ::kill(pid_, SIGKILL);
        ::waitpid(pid_, &status, 0);
        pid_ = -1;
        break;
      }
      ::usleep(2000);
    }
    r.out = std::move(out_);
    r.err = std::move(err_);
    return r;
  }

  const std::string& out() const { return out_; }

 private:
  // One poll over the output pipes (and stdin when writing); reads what came.
  void pump(int timeout_ms, bool want_write) {
    pollfd fds[3];
    int n = 0;
    if (out_fd_ >= 0) fds[n++] = {out_fd_, POLLIN, 0};
    if (err_fd_ >= 0) fds[n++] = {err_fd_, POLLIN, 0};
    if (want_write && in_fd_ >= 0) fds[n++] = {in_fd_, POLLOUT, 0};
    if (n == 0) {
      ::usleep(static_cast<useconds_t>(timeout_ms) * 1000);
      return;
    }
    if (::poll(fds, static_cast<nfds_t>(n), timeout_ms) <= 0) return;
    for (int i = 0; i < n; i++) {
      if (fds[i].fd == in_fd_ || (fds[i].revents & (POLLIN | POLLHUP | POLLERR)) == 0) continue;
      char buf[65536];
      ssize_t got = ::read(fds[i].fd, buf, sizeof(buf));
      int& fd = fds[i].fd == out_fd_ ? out_fd_ : err_fd_;
      std::string& into = fds[i].fd == out_fd_ ? out_ : err_;
      if (got > 0) {
        into.append(buf, static_cast<size_t>(got));
      } else if (got == 0 || (errno != EINTR && errno != EAGAIN)) {
        ::close(fd);
        fd = -1;
      }
    }
  }

  pid_t pid_ = -1;
  int in_fd_ = -1;
  int out_fd_ = -1;
  int err_fd_ = -1;
  std::string out_;
  std::string err_;
};

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) lines.push_back(line);
  return lines;
}

std::vector<json> json_lines(const std::string& text) {
  std::vector<json> out;
  for (const std::string& line : lines_of(text)) {
    json j = json::parse(line, nullptr, false);
    EXPECT_FALSE(j.is_discarded()) << "not JSON: " << line;
    out.push_back(std::move(j));
  }
  return out;
}

class CliTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    ::signal(SIGPIPE, SIG_IGN);  // A child that exits before reading all its input.
    dir_ = new TempDir();
    std::string error;
    server_ = RunneldProcess::start({"--data-dir", dir_->path() + "/data", "--listen", "127.0.0.1:0", "--admin-listen",
                                     "127.0.0.1:0", "--shards", "2"},
                                    {}, &error)
                  .release();
    ASSERT_NE(server_, nullptr) << error;
  }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
    delete dir_;
    dir_ = nullptr;
  }
  void SetUp() override { ASSERT_NE(server_, nullptr); }

  static std::string server_address() { return "127.0.0.1:" + std::to_string(server_->binary().port); }

  // runnel --server <ours> ARGS, with `input` on stdin; 60 s at most.
  static CliResult run(const std::vector<std::string>& args, const std::string& input = "",
                       std::chrono::milliseconds timeout = 60s) {
    std::vector<std::string> full = {"--server", server_address()};
    full.insert(full.end(), args.begin(), args.end());
    return run_raw(full, input, timeout);
  }

  static CliResult run_raw(const std::vector<std::string>& args, const std::string& input = "",
                           std::chrono::milliseconds timeout = 60s) {
    const auto deadline = Clock::now() + timeout;
    Cli cli(args);
    cli.feed(input, deadline);
    return cli.finish(deadline);
  }

  // Runs and expects success; returns stdout.
  static std::string ok(const std::vector<std::string>& args, const std::string& input = "") {
    CliResult r = run(args, input);
    std::string joined;
    for (const auto& a : args) joined += a + " ";
    EXPECT_EQ(r.exit_code, 0) << "runnel " << joined << "\nstderr: " << r.err;
    EXPECT_EQ(r.err, "") << "runnel " << joined;
    return r.out;
  }

  // Runs and expects failure with `code` and one stderr line holding `message`.
  static void fails(const std::vector<std::string>& args, int code, const std::string& message,
                    const std::string& input = "") {
    CliResult r = run(args, input);
    std::string joined;
    for (const auto& a : args) joined += a + " ";
    EXPECT_EQ(r.exit_code, code) << "runnel " << joined << "\nstderr: " << r.err;
    EXPECT_EQ(lines_of(r.err).size(), 1u) << "runnel " << joined << "\nstderr: " << r.err;
    EXPECT_EQ(r.err.rfind("runnel: ", 0), 0u) << r.err;
    EXPECT_NE(r.err.find(message), std::string::npos) << "runnel " << joined << "\nstderr: " << r.err;
  }

  static TempDir* dir_;
  static RunneldProcess* server_;
};

TempDir* CliTest::dir_ = nullptr;
RunneldProcess* CliTest::server_ = nullptr;

TEST_F(CliTest, HelpDocumentsCommandsAndExitCodes) {
  CliResult r = run_raw({"--help"});
  EXPECT_EQ(r.exit_code, 0);
  for (const char* word :
       {"bucket", "stream", "append", "read", "tail", "--server", "--json", "--timeout-ms", "Exit status", "not_found",
        "already_exists", "seq_num_mismatch", "unavailable", "invalid_argument"}) {
    EXPECT_NE(r.out.find(word), std::string::npos) << word;
  }
  for (int code = 0; code <= 8; code++) {
    EXPECT_NE(r.out.find("\n  " + std::to_string(code) + "  "), std::string::npos) << code;
  }
  r = run_raw({"read", "--help"});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_NE(r.out.find("--follow"), std::string::npos);
  EXPECT_NE(r.out.find("--from-tail"), std::string::npos);
}

TEST_F(CliTest, BucketCommands) {
  EXPECT_EQ(ok({"bucket", "create", "bk-one"}), "created bucket bk-one\n");
  json created = json::parse(ok({"--json", "bucket", "create", "bk-two", "--timestamping", "arrival",
                                 "--retention-age-ms", "60000", "--lz4", "--create-stream-on-append"}));
  EXPECT_EQ(created["name"], "bk-two");
  EXPECT_EQ(created["config"]["default_stream_config"]["timestamping"], "arrival");
  EXPECT_EQ(created["config"]["default_stream_config"]["retention_age_ms"], 60000);
  EXPECT_EQ(created["config"]["default_stream_config"]["retention_bytes"], 0);
  EXPECT_EQ(created["config"]["default_stream_config"]["delete_on_empty_ms"], 0);
  EXPECT_EQ(created["config"]["default_stream_config"]["compress_lz4"], true);
  EXPECT_EQ(created["config"]["create_stream_on_append"], true);
  EXPECT_EQ(created["config"]["create_stream_on_read"], false);
  EXPECT_GT(created["created_ms"].get<uint64_t>(), 0u);
  ok({"bucket", "create", "bk-three", "--create-stream-on-read"});

  // get: every field, both forms; --json may also follow the command.
  std::string human = ok({"bucket", "get", "bk-two"});
  EXPECT_NE(human.find("name: bk-two\n"), std::string::npos) << human;
  EXPECT_NE(human.find("default_stream_config.timestamping: arrival\n"), std::string::npos) << human;
  EXPECT_NE(human.find("default_stream_config.retention_age_ms: 60000\n"), std::string::npos) << human;
  EXPECT_NE(human.find("create_stream_on_append: true\n"), std::string::npos) << human;
  EXPECT_NE(human.find("created_ms: "), std::string::npos) << human;
  EXPECT_EQ(json::parse(ok({"bucket", "get", "bk-two", "--json"})), created);

  // list: names in order, everything by default, page by page.
  EXPECT_EQ(ok({"bucket", "list", "--prefix", "bk-"}), "bk-one\nbk-three\nbk-two\n");
  EXPECT_EQ(ok({"bucket", "list", "--prefix", "bk-", "--page-size", "1"}), "bk-one\nbk-three\nbk-two\n");
  EXPECT_EQ(ok({"bucket", "list", "--prefix", "bk-", "--start-after", "bk-one"}), "bk-three\nbk-two\n");
  EXPECT_EQ(ok({"bucket", "list", "--prefix", "bk-", "--limit", "2", "--page-size", "1"}), "bk-one\nbk-three\n");
  auto listed = json_lines(ok({"--json", "bucket", "list", "--prefix", "bk-t"}));
  ASSERT_EQ(listed.size(), 2u);
  EXPECT_EQ(listed[0]["name"], "bk-three");
  EXPECT_EQ(listed[0]["config"]["create_stream_on_read"], true);
  EXPECT_EQ(listed[1], created);
  auto long_lines = lines_of(ok({"bucket", "list", "--prefix", "bk-two", "--long"}));
  ASSERT_EQ(long_lines.size(), 2u);
  EXPECT_EQ(long_lines[0].rfind("NAME\t", 0), 0u);
  EXPECT_EQ(long_lines[1].rfind("bk-two\t", 0), 0u);

  // reconfigure: flags given change, the rest stays.
  json reconfigured = json::parse(
      ok({"--json", "bucket", "reconfigure", "bk-two", "--retention-bytes", "4096", "--no-create-stream-on-append"}));
  EXPECT_EQ(reconfigured["config"]["default_stream_config"]["retention_bytes"], 4096);
  EXPECT_EQ(reconfigured["config"]["default_stream_config"]["retention_age_ms"], 60000);
  EXPECT_EQ(reconfigured["config"]["default_stream_config"]["timestamping"], "arrival");
  EXPECT_EQ(reconfigured["config"]["create_stream_on_append"], false);
  human = ok({"bucket", "reconfigure", "bk-two", "--no-lz4"});
  EXPECT_NE(human.find("default_stream_config.compress_lz4: false\n"), std::string::npos) << human;
  EXPECT_NE(human.find("default_stream_config.retention_bytes: 4096\n"), std::string::npos) << human;
  fails({"bucket", "reconfigure", "bk-two"}, 1, "nothing to change");

  // delete.
  EXPECT_EQ(ok({"bucket", "delete", "bk-one"}), "deleted bucket bk-one\n");
  EXPECT_EQ(json::parse(ok({"--json", "bucket", "delete", "bk-three"})),
            json({{"name", "bk-three"}, {"deleted", true}}));
  fails({"bucket", "get", "bk-one"}, 2, "not_found");
  fails({"bucket", "delete", "bk-one"}, 2, "not_found");
  EXPECT_EQ(ok({"bucket", "list", "--prefix", "bk-"}), "bk-two\n");
  // A bucket that holds streams is not deleted.
  ok({"stream", "create", "bk-two/s"});
  fails({"bucket", "delete", "bk-two"}, 3, "already_exists");
}

TEST_F(CliTest, StreamCommands) {
  ok({"bucket", "create", "strm", "--timestamping", "arrival", "--retention-bytes", "1000000"});
  // Without config flags: the bucket's default; with some: those over the default.
  EXPECT_EQ(ok({"stream", "create", "strm/a/b/c"}), "created stream strm/a/b/c\n");
  json created = json::parse(ok({"--json", "stream", "create", "strm/x", "--retention-age-ms", "5000", "--lz4"}));
  EXPECT_EQ(created["bucket"], "strm");
  EXPECT_EQ(created["name"], "x");
  EXPECT_EQ(created["config"]["timestamping"], "arrival");
  EXPECT_EQ(created["config"]["retention_age_ms"], 5000);
  EXPECT_EQ(created["config"]["retention_bytes"], 1000000);
  EXPECT_EQ(created["config"]["delete_on_empty_ms"], 0);
  EXPECT_EQ(created["config"]["compress_lz4"], true);
  EXPECT_EQ(created["sealed"], false);
  EXPECT_EQ(created["fenced"], false);
  EXPECT_EQ(created["trim_seq"], 0);
  EXPECT_EQ(created["tail"], 0);
  EXPECT_GT(created["created_ms"].get<uint64_t>(), 0u);
  ok({"stream", "create", "strm/y", "--timestamping", "client-require", "--delete-on-empty-ms", "100000"});

  // get: the stream name holds '/' (split at the first one).
  json got = json::parse(ok({"stream", "get", "strm/a/b/c", "--json"}));
  EXPECT_EQ(got["name"], "a/b/c");
  EXPECT_EQ(got["config"]["timestamping"], "arrival");
  EXPECT_EQ(got["config"]["retention_bytes"], 1000000);
  std::string human = ok({"stream", "get", "strm/y"});
  for (const char* line :
       {"bucket: strm\n", "name: y\n", "timestamping: client-require\n", "delete_on_empty_ms: 100000\n",
        "sealed: false\n", "fenced: false\n", "trim_seq: 0\n", "tail: 0"}) {
    EXPECT_NE(human.find(line), std::string::npos) << line << " in\n" << human;
  }

  // list.
  EXPECT_EQ(ok({"stream", "list", "strm"}), "a/b/c\nx\ny\n");
  EXPECT_EQ(ok({"stream", "list", "strm", "--page-size", "1"}), "a/b/c\nx\ny\n");
  EXPECT_EQ(ok({"stream", "list", "strm", "--prefix", "a/"}), "a/b/c\n");
  EXPECT_EQ(ok({"stream", "list", "strm", "--start-after", "a/b/c", "--limit", "1"}), "x\n");
  auto listed = json_lines(ok({"stream", "list", "strm", "--json"}));
  ASSERT_EQ(listed.size(), 3u);
  EXPECT_EQ(listed[1], created);
  auto long_lines = lines_of(ok({"stream", "list", "strm", "-l", "--prefix", "x"}));
  ASSERT_EQ(long_lines.size(), 2u);
  EXPECT_EQ(long_lines[0], "NAME\tTAIL\tTRIM_SEQ\tSEALED\tFENCED\tCREATED_MS");
  EXPECT_EQ(long_lines[1].rfind("x\t0\t0\tfalse\tfalse\t", 0), 0u) << long_lines[1];

  // reconfigure: only what is given changes.
  json reconfigured = json::parse(ok({"--json", "stream", "reconfigure", "strm/x", "--timestamping", "client-prefer"}));
  EXPECT_EQ(reconfigured["config"]["timestamping"], "client-prefer");
  EXPECT_EQ(reconfigured["config"]["retention_age_ms"], 5000);
  EXPECT_EQ(reconfigured["config"]["compress_lz4"], true);
  human = ok({"stream", "reconfigure", "strm/x", "--no-lz4", "--retention-bytes", "0"});
  EXPECT_NE(human.find("compress_lz4: false\n"), std::string::npos) << human;
  EXPECT_NE(human.find("retention_bytes: 0\n"), std::string::npos) << human;
  EXPECT_NE(human.find("retention_age_ms: 5000\n"), std::string::npos) << human;
  fails({"stream", "reconfigure", "strm/x"}, 1, "nothing to change");

  // trim, fence, seal (on records appended here).
  ok({"append", "strm/x"}, "r0\nr1\nr2\nr3\n");
  EXPECT_EQ(ok({"stream", "trim", "strm/x", "2"}), "trimmed stream strm/x: records below seq_num 2 are gone\n");
  EXPECT_EQ(json::parse(ok({"--json", "stream", "trim", "strm/x", "2"}))["trim_seq"], 2);
  EXPECT_EQ(ok({"read", "strm/x"}), "r2\nr3\n");
  EXPECT_EQ(ok({"stream", "fence", "strm/x", "tok"}), "fenced stream strm/x\n");
  EXPECT_EQ(json::parse(ok({"stream", "get", "strm/x", "--json"}))["fenced"], true);
  ok({"append", "strm/x", "--fencing-token", "tok"}, "r4\n");
  json unfenced = json::parse(ok({"--json", "stream", "fence", "strm/x", ""}));
  EXPECT_EQ(unfenced["fenced"], false);
  ok({"append", "strm/x"}, "r5\n");
  EXPECT_EQ(ok({"stream", "seal", "strm/x"}), "sealed stream strm/x at tail 6\n");
  json sealed = json::parse(ok({"--json", "stream", "get", "strm/x"}));
  EXPECT_EQ(sealed["sealed"], true);
  EXPECT_EQ(sealed["tail"], 6);
  EXPECT_EQ(sealed["trim_seq"], 2);
  // Six records appended in the last minute: at least 0.1 records/s; none for strm/y.
  EXPECT_GE(sealed["append_rate"]["records_per_s"].get<double>(), 6.0 / 60.0 - 1e-9) << sealed.dump();
  EXPECT_GT(sealed["append_rate"]["bytes_per_s"].get<double>(), 0.0) << sealed.dump();
  EXPECT_NE(ok({"stream", "get", "strm/y"}).find("append_rate: 0.0 records/s, 0.0 bytes/s (last minute)"),
            std::string::npos);
  EXPECT_EQ(json::parse(ok({"--json", "stream", "seal", "strm/y"}))["sealed"], true);

  // tail.
  EXPECT_EQ(lines_of(ok({"tail", "strm/x"}))[0], "tail: 6");
  json tail = json::parse(ok({"tail", "strm/x", "--json"}));
  EXPECT_EQ(tail["tail"], 6);
  EXPECT_GT(tail["last_timestamp"].get<uint64_t>(), 0u);

  // delete.
  EXPECT_EQ(ok({"stream", "delete", "strm/a/b/c"}), "deleted stream strm/a/b/c\n");
  EXPECT_EQ(json::parse(ok({"--json", "stream", "delete", "strm/y"})),
            json({{"bucket", "strm"}, {"name", "y"}, {"deleted", true}}));
  fails({"stream", "get", "strm/a/b/c"}, 2, "not_found");
  EXPECT_EQ(ok({"stream", "list", "strm"}), "x\n");
}

TEST_F(CliTest, NamesAreNeverPrintedWithControlCharacters) {
  ok({"bucket", "create", "hostile"});
  // Stream names are any UTF-8 without NUL: someone else's may hold terminal escapes.
  ok({"--json", "stream", "create", "hostile/x\x1b[2J\x07\xc2\x9b" "31m"});
  const std::string listed = ok({"stream", "list", "hostile"});
  EXPECT_EQ(listed, "x\\x1b[2J\\x07\\xc2\\x9b31m\n");
  const std::string got = ok({"stream", "get", "hostile/x\x1b[2J\x07\xc2\x9b" "31m"});
  EXPECT_NE(got.find("name: x\\x1b[2J"), std::string::npos) << got;
  for (const std::string& text : {listed, got}) EXPECT_EQ(text.find('\x1b'), std::string::npos);
  // JSON keeps the name exact, escaped the JSON way.
  const std::string as_json = ok({"--json", "stream", "list", "hostile"});
  EXPECT_EQ(as_json.find('\x1b'), std::string::npos);
  EXPECT_NE(as_json.find("\\u001b[2J"), std::string::npos) << as_json;
}

TEST_F(CliTest, AppendLinesAndReadBack) {
  ok({"bucket", "create", "apnd"});
  ok({"stream", "create", "apnd/lines"});
  EXPECT_EQ(ok({"append", "apnd/lines"}, "alpha\nbeta\n\ngamma"), "appended 4 records: seq_nums 0..3\n");
  EXPECT_EQ(ok({"read", "apnd/lines"}), "alpha\nbeta\n\ngamma\n");
  // --json: one ack per batch, in order, end exclusive.
  auto acks = json_lines(ok({"--json", "append", "apnd/lines", "--batch-records", "2"}, "d\ne\nf\ng\nh\n"));
  ASSERT_EQ(acks.size(), 3u);
  EXPECT_EQ(acks[0], json({{"start_seq", 4}, {"end_seq", 6}}));
  EXPECT_EQ(acks[1], json({{"start_seq", 6}, {"end_seq", 8}}));
  EXPECT_EQ(acks[2], json({{"start_seq", 8}, {"end_seq", 9}}));
  EXPECT_EQ(ok({"append", "apnd/lines"}, ""), "appended 0 records\n");

  // Ranges.
  EXPECT_EQ(ok({"read", "apnd/lines", "--from-seq", "4"}), "d\ne\nf\ng\nh\n");
  EXPECT_EQ(ok({"read", "apnd/lines", "--from-seq", "1", "--count", "2"}), "beta\n\n");
  EXPECT_EQ(ok({"read", "apnd/lines", "--from-tail", "2"}), "g\nh\n");
  EXPECT_EQ(ok({"read", "apnd/lines", "--from-tail", "3", "--count", "1"}), "f\n");
  EXPECT_EQ(ok({"read", "apnd/lines", "--from-seq", "9"}), "");  // At the tail: nothing.
  auto meta = lines_of(ok({"read", "apnd/lines", "--from-seq", "8", "--meta"}));
  ASSERT_EQ(meta.size(), 1u);
  EXPECT_EQ(meta[0].rfind("8\t", 0), 0u) << meta[0];
  EXPECT_EQ(meta[0].substr(meta[0].size() - 2), "\th") << meta[0];

  // --from-time: the first record at or after it.
  auto all = json_lines(ok({"--json", "read", "apnd/lines"}));
  ASSERT_EQ(all.size(), 9u);
  for (size_t i = 0; i < all.size(); i++) EXPECT_EQ(all[i]["seq_num"], i);
  const uint64_t t4 = all[4]["timestamp"].get<uint64_t>();
  auto from_time = json_lines(ok({"--json", "read", "apnd/lines", "--from-time", std::to_string(t4)}));
  ASSERT_FALSE(from_time.empty());
  EXPECT_LE(from_time[0]["seq_num"].get<uint64_t>(), 4u);
  EXPECT_GE(from_time[0]["timestamp"].get<uint64_t>(), t4);
  EXPECT_EQ(from_time.back()["seq_num"], 8);
}

TEST_F(CliTest, AppendSendsWhatCameAfterLingering) {
  // Input that trickles in is appended line by line as it comes (after
  // --linger-ms), each ack printed at once, while stdin stays open.
  ok({"bucket", "create", "linger"});
  ok({"stream", "create", "linger/s"});
  const auto deadline = Clock::now() + 30s;
  Cli cli({"--server", server_address(), "--json", "append", "linger/s", "--linger-ms", "20"});
  ASSERT_TRUE(cli.write_stdin("one\ntwo\n", deadline));
  ASSERT_TRUE(cli.wait_for_output([](const std::string& out) { return lines_of(out).size() >= 1; }, deadline));
  EXPECT_EQ(json::parse(lines_of(cli.out())[0]), json({{"start_seq", 0}, {"end_seq", 2}}));
  EXPECT_EQ(ok({"read", "linger/s"}), "one\ntwo\n");
  ASSERT_TRUE(cli.write_stdin("three\n", deadline));
  ASSERT_TRUE(cli.wait_for_output([](const std::string& out) { return lines_of(out).size() >= 2; }, deadline));
  EXPECT_EQ(json::parse(lines_of(cli.out())[1]), json({{"start_seq", 2}, {"end_seq", 3}}));
  CliResult r = cli.finish(deadline);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(lines_of(r.out).size(), 2u);
}

TEST_F(CliTest, AppendJsonRecordsAndReadJson) {
  ok({"bucket", "create", "json"});
  ok({"stream", "create", "json/s"});
  const std::string input =
      "{\"body\":\"first\",\"headers\":[[\"k\",\"v\"],[\"k2\",\"\"]],\"timestamp\":1000}\n"
      "\n"
      "{\"body_base64\":\"/wBh\",\"timestamp\":2000}\n"
      "{\"body\":\"caf\\u00e9\",\"headers\":[],\"timestamp\":1500}\n"
      "{\"headers_base64\":[[\"/w==\",\"YQ==\"]]}\n";
  EXPECT_EQ(ok({"append", "json/s", "--format", "json"}, input), "appended 4 records: seq_nums 0..3\n");
  auto records = json_lines(ok({"read", "json/s", "--json"}));
  ASSERT_EQ(records.size(), 4u);
  EXPECT_EQ(records[0],
            json::parse(R"({"seq_num":0,"timestamp":1000,"headers":[["k","v"],["k2",""]],"body":"first"})"));
  // Not UTF-8: base64, the same bytes.
  EXPECT_EQ(records[1], json::parse(R"({"seq_num":1,"timestamp":2000,"headers":[],"body_base64":"/wBh"})"));
  // Timestamps never decrease within a stream.
  EXPECT_EQ(records[2]["timestamp"], 2000);
  EXPECT_EQ(records[2]["body"], "caf\xc3\xa9");
  EXPECT_EQ(records[3]["headers_base64"], json::parse(R"([["/w==","YQ=="]])"));
  EXPECT_EQ(records[3]["body"], "");
  // The keys in the order docs/REFERENCE.md shows them.
  EXPECT_EQ(lines_of(ok({"read", "json/s", "--json", "--count", "1"}))[0],
            R"({"seq_num":0,"timestamp":1000,"headers":[["k","v"],["k2",""]],"body":"first"})");
  // Without --json the body's bytes as they are.
  EXPECT_EQ(ok({"read", "json/s", "--from-seq", "1", "--count", "1"}), std::string("\xff\x00"
                                                                                   "a\n",
                                                                                   4));

  // read --json output appends as it is.
  ok({"stream", "create", "json/copy"});
  ok({"append", "json/copy", "--format", "json"}, ok({"read", "json/s", "--json"}));
  auto copied = json_lines(ok({"read", "json/copy", "--json"}));
  EXPECT_EQ(copied, records);

  // A bad line stops the input: what came before it is appended.
  ok({"stream", "create", "json/bad"});
  CliResult r = run({"append", "json/bad", "--format", "json"}, "{\"body\":\"a\"}\n{\"body\":1}\n{\"body\":\"c\"}\n");
  EXPECT_EQ(r.exit_code, 6) << r.err;
  EXPECT_NE(r.err.find("line 2"), std::string::npos) << r.err;
  EXPECT_EQ(r.out, "appended 1 record: seq_nums 0..0\n");
  fails({"append", "json/bad", "--format", "json"}, 6, "not valid JSON", "{nope\n");
  fails({"append", "json/bad", "--format", "json"}, 6, "unknown field", "{\"bdy\":\"x\"}\n");
  fails({"append", "json/bad", "--format", "json"}, 6, "not base64", "{\"body_base64\":\"@@@\"}\n");
  EXPECT_EQ(ok({"read", "json/bad"}), "a\n");

  // Base64 is read as the REST API reads it (core/text.h): padding may be left off.
  ok({"stream", "create", "json/unpadded"});
  ok({"append", "json/unpadded", "--format", "json"},
     "{\"body_base64\":\"/w\",\"headers_base64\":[[\"/w\",\"YQ\"]]}\n");
  auto unpadded = json_lines(ok({"read", "json/unpadded", "--json"}));
  ASSERT_EQ(unpadded.size(), 1u);
  EXPECT_EQ(unpadded[0]["body_base64"], "/w==");
  EXPECT_EQ(unpadded[0]["headers_base64"], json::parse(R"([["/w==","YQ=="]])"));
}

TEST_F(CliTest, LargeInputIsStreamed) {
  ok({"bucket", "create", "big"});
  ok({"stream", "create", "big/s"});
  constexpr int kLines = 200000;
  std::string input;
  for (int i = 0; i < kLines; i++) input += "line-" + std::to_string(i) + "\n";
  EXPECT_EQ(ok({"append", "big/s"}, input), "appended 200000 records: seq_nums 0..199999\n");
  EXPECT_EQ(json::parse(ok({"tail", "big/s", "--json"}))["tail"], kLines);
  const std::string back = ok({"read", "big/s"});
  EXPECT_EQ(back.size(), input.size());
  EXPECT_TRUE(back == input) << "records read back differ from the lines appended";
  EXPECT_EQ(ok({"read", "big/s", "--from-tail", "1"}), "line-199999\n");

  // Records of 100 KB: batches stay under the 1 MiB limit.
  ok({"stream", "create", "big/fat"});
  std::string fat;
  for (int i = 0; i < 30; i++) fat += std::string(100000, static_cast<char>('a' + i % 26)) + "\n";
  auto acks = json_lines(ok({"--json", "append", "big/fat"}, fat));
  ASSERT_GE(acks.size(), 3u);
  uint64_t next = 0;
  for (const json& a : acks) {
    EXPECT_EQ(a["start_seq"], next);
    EXPECT_LE(a["end_seq"].get<uint64_t>() - a["start_seq"].get<uint64_t>(), 10u);
    next = a["end_seq"].get<uint64_t>();
  }
  EXPECT_EQ(next, 30u);
  EXPECT_TRUE(ok({"read", "big/fat"}) == fat);
  // A line over the record limit.
  fails({"append", "big/fat"}, 6, "too_large", std::string(2 << 20, 'x') + "\n");
}

TEST_F(CliTest, FollowSeesNewRecordsUntilSigint) {
  ok({"bucket", "create", "follow"});
  ok({"stream", "create", "follow/s"});
  ok({"append", "follow/s"}, "before\n");
  const auto deadline = Clock::now() + 30s;
  Cli follower({"--server", server_address(), "--json", "read", "follow/s", "--follow"});
  follower.close_stdin();
  ASSERT_TRUE(follower.wait_for_output([](const std::string& out) { return lines_of(out).size() >= 1; }, deadline))
      << follower.out();
  ok({"append", "follow/s"}, "after-1\nafter-2\n");
  ASSERT_TRUE(follower.wait_for_output([](const std::string& out) { return lines_of(out).size() >= 3; }, deadline))
      << follower.out();
  ok({"append", "follow/s"}, "after-3\n");
  ASSERT_TRUE(follower.wait_for_output([](const std::string& out) { return lines_of(out).size() >= 4; }, deadline))
      << follower.out();
  follower.send_signal(SIGINT);
  CliResult r = follower.finish(deadline);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.err, "");
  auto records = json_lines(r.out);
  ASSERT_EQ(records.size(), 4u);
  const char* bodies[] = {"before", "after-1", "after-2", "after-3"};
  for (size_t i = 0; i < 4; i++) {
    EXPECT_EQ(records[i]["seq_num"], i);
    EXPECT_EQ(records[i]["body"], bodies[i]);
  }

  // --count ends a follow on its own (from a seq_num not yet written).
  Cli counted({"--server", server_address(), "read", "follow/s", "--follow", "--from-seq", "4", "--count", "2"});
  counted.close_stdin();
  ok({"append", "follow/s"}, "n1\nn2\nn3\n");
  r = counted.finish(Clock::now() + 30s);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "n1\nn2\n");
}

TEST_F(CliTest, ErrorClassesHaveTheirExitCodes) {
  ok({"bucket", "create", "errs"});
  ok({"stream", "create", "errs/s"});
  ok({"append", "errs/s"}, "a\nb\n");

  // 2: not found.
  fails({"stream", "get", "errs/missing"}, 2, "not_found: ");
  fails({"read", "errs/missing"}, 2, "not_found");
  fails({"append", "errs/missing"}, 2, "not_found", "x\n");
  fails({"tail", "errs/missing"}, 2, "not_found");
  fails({"stream", "create", "no-such-bucket/s"}, 2, "not_found");
  fails({"stream", "list", "no-such-bucket"}, 2, "not_found");
  // 3: already exists.
  fails({"stream", "create", "errs/s"}, 3, "already_exists");
  fails({"bucket", "create", "errs"}, 3, "already_exists");
  // 4: conflicts. --match-seq-num holds for every batch in turn.
  fails({"append", "errs/s", "--match-seq-num", "0"}, 4, "seq_num_mismatch", "c\n");
  EXPECT_EQ(ok({"append", "errs/s", "--match-seq-num", "2", "--batch-records", "1"}, "c\nd\ne\n"),
            "appended 3 records: seq_nums 2..4\n");
  ok({"stream", "fence", "errs/s", "secret"});
  fails({"append", "errs/s"}, 4, "fencing_token_mismatch", "x\n");
  fails({"append", "errs/s", "--fencing-token", "wrong"}, 4, "fencing_token_mismatch", "x\n");
  ok({"stream", "fence", "errs/s", ""});
  ok({"stream", "seal", "errs/s"});
  fails({"append", "errs/s"}, 4, "stream_sealed", "x\n");
  EXPECT_EQ(ok({"read", "errs/s"}), "a\nb\nc\nd\ne\n");
  // 6: invalid.
  fails({"bucket", "create", "Not_A_Name"}, 6, "invalid_argument");
  fails({"bucket", "create", "ab"}, 6, "invalid_argument");
  fails({"read", "errs/s", "--from-seq", "100"}, 6, "out_of_range");
  // 1: usage.
  fails({}, 1, "");
  fails({"frobnicate"}, 1, "");
  fails({"bucket"}, 1, "");
  fails({"read", "errs"}, 1, "not BUCKET/STREAM");
  fails({"read", "errs/"}, 1, "not BUCKET/STREAM");
  fails({"read", "errs/s", "--from-seq", "-1"}, 1, "--from-seq");
  fails({"read", "errs/s", "--from-seq", "1", "--from-tail", "1"}, 1, "excludes");
  fails({"append", "errs/s", "--batch-records", "1001"}, 1, "--batch-records");
  fails({"stream", "trim", "errs/s"}, 1, "SEQ");
  CliResult r = run_raw({"--server", "nowhere", "tail", "errs/s"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.err, "runnel: --server 'nowhere' is not HOST:PORT\n");
  r = run_raw({"--server", "127.0.0.1:99999", "tail", "errs/s"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.err, "runnel: --server '127.0.0.1:99999': bad port '99999'\n");
}

TEST_F(CliTest, UnreachableServerFailsInTime) {
  // A port nobody listens on: bound, then closed again.
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  socklen_t len = sizeof(addr);
  ASSERT_EQ(::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len), 0);
  ::close(fd);
  const std::string address = "127.0.0.1:" + std::to_string(ntohs(addr.sin_port));

  for (const std::vector<std::string>& command :
       {std::vector<std::string>{"bucket", "list"}, {"tail", "a-b/c"}, {"read", "a-b/c", "--follow"}}) {
    const auto started = Clock::now();
    std::vector<std::string> args = {"--server", address, "--timeout-ms", "500"};
    args.insert(args.end(), command.begin(), command.end());
    CliResult r = run_raw(args, "", 20s);
    EXPECT_EQ(r.exit_code, 5) << command[0] << ": " << r.err;
    EXPECT_NE(r.err.find("timeout"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find(address), std::string::npos) << r.err;
    EXPECT_EQ(lines_of(r.err).size(), 1u) << r.err;
    EXPECT_LT(Clock::now() - started, 10s);
  }
  const auto started = Clock::now();
  CliResult r = run_raw({"--server", address, "--timeout-ms", "500", "append", "a-b/c"}, "x\ny\n", 20s);
  EXPECT_EQ(r.exit_code, 5) << r.err;
  EXPECT_NE(r.err.find("timeout"), std::string::npos) << r.err;
  EXPECT_LT(Clock::now() - started, 10s);
}

// Access control through the CLI, as a new user meets it: runneld --auth,
// the root token file, a read-only token for a bucket prefix, refusals with
// their exit code, `read --follow` ended by a revocation.
TEST(CliAuth, TokensAreIssuedListedRevokedAndEnforced) {
  TempDir dir;
  std::string error;
  auto server = RunneldProcess::start({"--auth", "--data-dir", dir.path() + "/data", "--listen", "127.0.0.1:0",
                                       "--admin-listen", "127.0.0.1:0", "--shards", "2"},
                                      {}, &error);
  ASSERT_NE(server, nullptr) << error;
  std::string root;
  {
    std::ifstream in(dir.path() + "/data/root-token");
    std::getline(in, root);
  }
  ASSERT_FALSE(root.empty());
  const std::string address = "127.0.0.1:" + std::to_string(server->binary().port);
  auto run = [&](const std::string& token, std::vector<std::string> args, const std::string& input = "") {
    std::vector<std::string> full = {"--server", address};
    if (!token.empty()) full.insert(full.end(), {"--token", token});
    full.insert(full.end(), args.begin(), args.end());
    const auto deadline = Clock::now() + 60s;
    Cli cli(full);
    cli.feed(input, deadline);
    return cli.finish(deadline);
  };
  EXPECT_EQ(run("", {"bucket", "list"}).exit_code, 8);
  ASSERT_EQ(run(root, {"bucket", "create", "logs-eu"}).exit_code, 0);
  ASSERT_EQ(run(root, {"bucket", "create", "metrics"}).exit_code, 0);
  ASSERT_EQ(run(root, {"stream", "create", "logs-eu/web"}).exit_code, 0);
  ASSERT_EQ(run(root, {"append", "logs-eu/web"}, "one\ntwo\n").exit_code, 0);

  CliResult issued = run(root, {"token", "issue", "--id", "reader", "--buckets", "logs-*", "--ops", "read"});
  ASSERT_EQ(issued.exit_code, 0) << issued.err;
  const std::string reader = lines_of(issued.out).at(0);  // Only the secret.
  EXPECT_EQ(reader.rfind("reader.", 0), 0u);
  CliResult as_json =
      run(root, {"--json", "token", "issue", "--id", "writer", "--ops", "append,read", "--expires-in", "1h"});
  ASSERT_EQ(as_json.exit_code, 0) << as_json.err;
  nlohmann::json j = nlohmann::json::parse(as_json.out);
  EXPECT_EQ(j["id"], "writer");
  EXPECT_EQ(j["token"].get<std::string>().rfind("writer.", 0), 0u);
  EXPECT_GT(j["info"]["expires_ms"].get<uint64_t>(), 0u);
  CliResult listed = run(root, {"token", "list"});
  EXPECT_EQ(listed.out, "reader\nroot\nwriter\n");

  EXPECT_EQ(run(reader, {"read", "logs-eu/web"}).out, "one\ntwo\n");
  EXPECT_EQ(run(reader, {"bucket", "list"}).out, "logs-eu\n");  // Only what it may see.
  CliResult refused = run(reader, {"append", "logs-eu/web"}, "x\n");
  EXPECT_EQ(refused.exit_code, 8);
  EXPECT_NE(refused.err.find("permission_denied: token 'reader' may not append stream 'web' in bucket 'logs-eu'"),
            std::string::npos)
      << refused.err;
  EXPECT_EQ(run(reader, {"bucket", "delete", "metrics"}).exit_code, 8);
  EXPECT_EQ(run(reader, {"token", "issue", "--id", "reader-2"}).exit_code, 8);

  // A follower stops within a second of the revocation, saying why.
  Cli follower({"--server", address, "--token", reader, "read", "logs-eu/web", "--follow"});
  ASSERT_TRUE(follower.wait_for_output([](const std::string& out) { return out == "one\ntwo\n"; }, Clock::now() + 10s));
  CliResult revoked = run(root, {"token", "revoke", "reader"});
  EXPECT_EQ(revoked.out, "revoked token reader\n");
  const auto at = Clock::now();
  CliResult ended = follower.finish(Clock::now() + 10s);
  EXPECT_LT(Clock::now() - at, 1500ms);
  EXPECT_EQ(ended.exit_code, 8);
  EXPECT_NE(ended.err.find("unauthenticated: the access token was revoked"), std::string::npos) << ended.err;
  EXPECT_EQ(run(reader, {"read", "logs-eu/web"}).exit_code, 8);
  EXPECT_TRUE(server->stop(SIGTERM).has_value());
}

}  // namespace
}  // namespace runnel::testing
