// Integration tests: the real runneld binary on loopback ports of its own,
// driven over HTTP and signals the way an operator would.

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "tests/integration/process.h"

namespace runnel::testing {
namespace {

std::vector<std::string> loopback_args(const TempDir& dir, int shards) {
  return {"--data-dir", dir.path() + "/data", "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0",
          "--shards", std::to_string(shards)};
}

std::unique_ptr<RunneldProcess> must_start(const std::vector<std::string>& args,
                                           const std::vector<std::string>& env = {}) {
  std::string error;
  auto p = RunneldProcess::start(args, env, &error);
  EXPECT_NE(p, nullptr) << error;
  return p;
}

bool exited_with(const std::optional<int>& status, int code) {
  return status && WIFEXITED(*status) && WEXITSTATUS(*status) == code;
}

TEST(Runneld, PrintsReadyLineWithBoundPortsAndServesHealth) {
  TempDir dir;
  auto server = must_start(loopback_args(dir, 2));
  ASSERT_NE(server, nullptr);
  EXPECT_EQ(server->binary().host, "127.0.0.1");
  EXPECT_NE(server->binary().port, server->admin().port);

  HttpReply health = http_request(server->admin(), "GET", "/health");
  EXPECT_EQ(health.status, 200);
  EXPECT_EQ(health.headers["content-type"], "application/json");
  EXPECT_NE(health.body.find("\"status\":\"ok\""), std::string::npos);

  HttpReply ready = http_request(server->admin(), "GET", "/ready");
  EXPECT_EQ(ready.status, 200);
  EXPECT_NE(ready.body.find("true"), std::string::npos);

  // The binary port is bound and listening (its protocol arrives with issue 4).
  int fd = connect_loopback(server->binary().port);
  EXPECT_GE(fd, 0);
  if (fd >= 0) ::close(fd);

  EXPECT_TRUE(exited_with(server->stop(SIGTERM), 0)) << server->stderr_text();
}

TEST(Runneld, MetricsHaveSeriesForEveryShard) {
  TempDir dir;
  auto server = must_start(loopback_args(dir, 3));
  ASSERT_NE(server, nullptr);
  HttpReply metrics = http_request(server->admin(), "GET", "/metrics");
  ASSERT_EQ(metrics.status, 200);
  EXPECT_EQ(metrics.headers["content-type"].rfind("text/plain; version=0.0.4", 0), 0u);
  for (int shard = 0; shard < 3; shard++) {
    for (const char* series : {"runnel_reactor_loop_steps_total", "runnel_io_uring_enter_calls_total",
                               "runnel_io_uring_cqes_total", "runnel_admin_connections",
                               "runnel_log_appends_total", "runnel_log_flushes_total", "runnel_buckets"}) {
      std::string needle = std::string(series) + "{shard=\"" + std::to_string(shard) + "\"}";
      EXPECT_NE(metrics.body.find(needle), std::string::npos) << "missing " << needle;
    }
  }
  EXPECT_EQ(metrics.body.find("shard=\"3\""), std::string::npos);
  for (const char* series : {"process_cpu_seconds_total ", "process_resident_memory_bytes ", "process_open_fds "}) {
    EXPECT_NE(metrics.body.find(series), std::string::npos) << "missing " << series;
  }
  EXPECT_TRUE(exited_with(server->stop(SIGTERM), 0));
}

TEST(Runneld, ConfigEndpointReflectsFlagsOverEnvironmentOverFile) {
  TempDir dir;
  std::string config_path = dir.path() + "/runneld.toml";
  std::ofstream(config_path) << "shards = 3\nlog_level = \"warn\"\n[admin]\nidle_timeout_ms = 1234\n"
                                "request_timeout_ms = 999\n";
  auto args = loopback_args(dir, 2);  // Flag: shards = 2.
  args.insert(args.end(), {"--config", config_path});
  auto server = must_start(args, {"RUNNEL_SHARDS=4", "RUNNEL_ADMIN_IDLE_TIMEOUT_MS=4321"});
  ASSERT_NE(server, nullptr);
  HttpReply config = http_request(server->admin(), "GET", "/v1/config");
  ASSERT_EQ(config.status, 200);
  EXPECT_NE(config.body.find("\"shards\":2"), std::string::npos) << config.body;                       // Flag.
  EXPECT_NE(config.body.find("\"admin.idle_timeout_ms\":4321"), std::string::npos) << config.body;    // Env.
  EXPECT_NE(config.body.find("\"admin.request_timeout_ms\":999"), std::string::npos) << config.body;  // File.
  EXPECT_NE(config.body.find("\"log_level\":\"warn\""), std::string::npos) << config.body;            // File.
  EXPECT_TRUE(exited_with(server->stop(SIGTERM), 0));
}

TEST(Runneld, RecoversEachShardsLogBeforeReportingReady) {
  TempDir dir;
  {
    auto server = must_start(loopback_args(dir, 2));
    ASSERT_NE(server, nullptr);
    EXPECT_TRUE(exited_with(server->stop(SIGTERM), 0));
  }
  for (int shard = 0; shard < 2; shard++) {
    EXPECT_TRUE(std::filesystem::exists(dir.path() + "/data/shard-" + std::to_string(shard) +
                                        "/00000000000000000000.seg"));
  }
  // A restart on the same data dir recovers every shard's log, and says how much it scanned.
  auto server = must_start(loopback_args(dir, 2));
  ASSERT_NE(server, nullptr);
  EXPECT_EQ(http_request(server->admin(), "GET", "/ready").status, 200);
  EXPECT_TRUE(exited_with(server->stop(SIGTERM), 0));
  const std::string log = server->stderr_text();
  EXPECT_NE(log.find("shard-0: 1 segments"), std::string::npos) << log;
  EXPECT_NE(log.find("shard-1: 1 segments"), std::string::npos) << log;
  EXPECT_NE(log.find("MiB/s"), std::string::npos) << log;
}

TEST(Runneld, SigintAlsoStopsCleanly) {
  TempDir dir;
  auto server = must_start(loopback_args(dir, 2));
  ASSERT_NE(server, nullptr);
  EXPECT_TRUE(exited_with(server->stop(SIGINT), 0)) << server->stderr_text();
}

TEST(Runneld, StopsCleanlyWithClientsConnected) {
  TempDir dir;
  auto server = must_start(loopback_args(dir, 2));
  ASSERT_NE(server, nullptr);
  // An idle keep-alive connection and one with half a request.
  int idle = connect_loopback(server->admin().port);
  int partial = connect_loopback(server->admin().port);
  ASSERT_GE(idle, 0);
  ASSERT_GE(partial, 0);
  const std::string half = "GET /health HTTP/1.1\r\nHost: x\r\n";
  ASSERT_EQ(::send(partial, half.data(), half.size(), MSG_NOSIGNAL), static_cast<ssize_t>(half.size()));
  EXPECT_TRUE(exited_with(server->stop(SIGTERM), 0)) << server->stderr_text();
  char c;
  EXPECT_LE(::recv(idle, &c, 1, 0), 0);  // Closed by the server.
  ::close(idle);
  ::close(partial);
}

TEST(Runneld, GarbageOnTheAdminPortDoesNotDisturbOtherClients) {
  TempDir dir;
  auto server = must_start(loopback_args(dir, 1));
  ASSERT_NE(server, nullptr);
  int fd = connect_loopback(server->admin().port);
  ASSERT_GE(fd, 0);
  const std::string garbage("\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03 not http at all\r\n\r\n", 36);
  ::send(fd, garbage.data(), garbage.size(), MSG_NOSIGNAL);
  char buf[512];
  ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
  ASSERT_GT(n, 0);
  EXPECT_EQ(std::string(buf, static_cast<size_t>(n)).rfind("HTTP/1.1 400", 0), 0u);
  ::close(fd);
  EXPECT_EQ(http_request(server->admin(), "GET", "/health").status, 200);
  EXPECT_TRUE(exited_with(server->stop(SIGTERM), 0));
}

TEST(Runneld, PrintConfigShowsTheEffectiveConfigAndExits) {
  RunResult r = run_runneld({"--print-config", "--shards", "3", "--admin-listen", "127.0.0.1:9999"},
                            {"RUNNEL_LOG_LEVEL=debug"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("shards = 3"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("log_level = \"debug\""), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("listen = \"127.0.0.1:9999\""), std::string::npos) << r.out;
}

TEST(Runneld, BadFlagValueExitsNonZeroNamingTheKey) {
  RunResult r = run_runneld({"--shards", "many"}, {});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("shards"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("many"), std::string::npos) << r.err;
}

TEST(Runneld, BadEnvironmentValueExitsNonZeroNamingTheVariable) {
  RunResult r = run_runneld({}, {"RUNNEL_ADMIN_LISTEN=nowhere"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("RUNNEL_ADMIN_LISTEN"), std::string::npos) << r.err;
}

TEST(Runneld, UnknownFlagExitsNonZero) {
  RunResult r = run_runneld({"--no-such-flag"}, {});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_FALSE(r.err.empty());
}

TEST(Runneld, UnknownKeyInConfigFileExitsNonZero) {
  TempDir dir;
  std::string path = dir.path() + "/bad.toml";
  std::ofstream(path) << "[admin]\nlisen = \"127.0.0.1:1\"\n";
  RunResult r = run_runneld({"--config", path}, {});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("admin.lisen"), std::string::npos) << r.err;
}

TEST(Runneld, BusyPortFailsWithAClearMessage) {
  // Hold a port without SO_REUSEPORT so runneld cannot share it.
  int holder = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(holder, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  ASSERT_EQ(::listen(holder, 1), 0);
  socklen_t len = sizeof(addr);
  ::getsockname(holder, reinterpret_cast<sockaddr*>(&addr), &len);
  TempDir dir;
  RunResult r = run_runneld({"--data-dir", dir.path(), "--listen", "127.0.0.1:0", "--admin-listen",
                             "127.0.0.1:" + std::to_string(ntohs(addr.sin_port))},
                            {});
  ::close(holder);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("admin.listen"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("cannot bind"), std::string::npos) << r.err;
}

// No authentication yet: a server that would listen beyond loopback refuses
// to start, naming the flag that overrides it (never bound: the check comes first).
TEST(Runneld, ListeningBeyondLoopbackWithoutAuthIsRefused) {
  TempDir dir;
  for (const std::vector<std::string>& listen :
       {std::vector<std::string>{"--listen", "0.0.0.0:0", "--admin-listen", "127.0.0.1:0"},
        std::vector<std::string>{"--listen", "127.0.0.1:0", "--admin-listen", "0.0.0.0:0"}}) {
    std::vector<std::string> args = {"--data-dir", dir.path()};
    args.insert(args.end(), listen.begin(), listen.end());
    RunResult r = run_runneld(args, {});
    EXPECT_EQ(r.exit_code, 2) << r.err;
    EXPECT_NE(r.err.find("--allow-unauthenticated"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("0.0.0.0:0"), std::string::npos) << r.err;
  }
  // The same from the environment.
  RunResult env =
      run_runneld({"--data-dir", dir.path(), "--admin-listen", "127.0.0.1:0"}, {"RUNNEL_SERVER_LISTEN=0.0.0.0:0"});
  EXPECT_EQ(env.exit_code, 2) << env.err;
  EXPECT_NE(env.err.find("server.listen"), std::string::npos) << env.err;
}

TEST(Runneld, SecondServerOnTheSameDataDirIsRefused) {
  TempDir dir;
  auto first = must_start(loopback_args(dir, 1));
  ASSERT_NE(first, nullptr);
  RunResult second = run_runneld(loopback_args(dir, 1), {});
  EXPECT_EQ(second.exit_code, 1);
  EXPECT_NE(second.err.find("in use"), std::string::npos) << second.err;
  EXPECT_TRUE(exited_with(first->stop(SIGTERM), 0));
}

}  // namespace
}  // namespace runnel::testing
