#pragma once
// Test helpers that drive the real runneld binary: start it on loopback
// ports of its own (port 0), read the ports from its ready line, talk HTTP to
// its admin port, and stop it by PID. Every wait has a deadline, and the
// destructor SIGKILLs a child that is still running, so no test leaves a
// process behind.

#include <sys/types.h>

#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace runnel::testing {

struct HostPortText {
  std::string host;
  int port = 0;
};

// A fresh, empty directory under /tmp, removed with everything in it at destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

class RunneldProcess {
 public:
  // Starts runneld with `args` (and extra environment entries "K=V") and
  // waits for its ready line. Returns nullopt-like empty on failure, with the
  // reason in *error (exit status and stderr).
  static std::unique_ptr<RunneldProcess> start(const std::vector<std::string>& args,
                                               const std::vector<std::string>& env, std::string* error,
                                               std::chrono::milliseconds timeout = std::chrono::seconds(20));
  ~RunneldProcess();

  pid_t pid() const { return pid_; }
  const HostPortText& binary() const { return binary_; }
  const HostPortText& admin() const { return admin_; }
  const std::string& ready_line() const { return ready_line_; }

  // Sends `signal` and waits for exit; returns the wait status, or nullopt
  // (after SIGKILL) if it did not exit within `timeout`.
  std::optional<int> stop(int signal, std::chrono::milliseconds timeout = std::chrono::seconds(15));
  std::string stderr_text() const;

 private:
  RunneldProcess() = default;
  pid_t pid_ = -1;
  int stdout_fd_ = -1;
  std::string stderr_path_;
  std::string ready_line_;
  HostPortText binary_;
  HostPortText admin_;
};

// Runs runneld to completion (for --print-config, --help, bad flags).
struct RunResult {
  int exit_code = -1;  // -1 if killed or timed out.
  std::string out;
  std::string err;
};
RunResult run_runneld(const std::vector<std::string>& args, const std::vector<std::string>& env,
                      std::chrono::milliseconds timeout = std::chrono::seconds(20));

struct HttpReply {
  int status = 0;
  std::map<std::string, std::string> headers;  // Lower-case names.
  std::string body;
};

// One request on a fresh connection (Connection: close), with `headers`
// added. Fails the calling test on connection errors or timeouts and
// returns status 0.
HttpReply http_request(const HostPortText& at, const std::string& method, const std::string& target,
                       const std::string& body = "",
                       const std::vector<std::pair<std::string, std::string>>& headers = {});

// Connects with receive/send timeouts set; -1 on failure.
int connect_loopback(int port, std::chrono::milliseconds timeout = std::chrono::seconds(5));

}  // namespace runnel::testing
