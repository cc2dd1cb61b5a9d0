#include "tests/integration/process.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>

extern char** environ;

namespace runnel::testing {
namespace {

using Clock = std::chrono::steady_clock;

bool parse_host_port(const std::string& text, HostPortText* out) {
  size_t colon = text.rfind(':');
  if (colon == std::string::npos) return false;
  out->host = text.substr(0, colon);
  out->port = std::atoi(text.c_str() + colon + 1);
  return out->port > 0;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string unique_temp_name(const char* stem) {
  static std::atomic<int> counter{0};
  return std::string("/tmp/") + stem + "-" + std::to_string(::getpid()) + "-" + std::to_string(counter++);
}

// fork + exec runneld with stdout to a pipe and stderr to a file. The child
// sees the test's environment minus every RUNNEL_* variable, plus `env`.
pid_t spawn(const std::vector<std::string>& args, const std::vector<std::string>& env, int* stdout_fd,
            const std::string& stderr_path) {
  int pipe_fds[2];
  if (::pipe2(pipe_fds, O_CLOEXEC) != 0) return -1;
  std::vector<std::string> argv_storage = {RUNNELD_PATH};
  argv_storage.insert(argv_storage.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : argv_storage) argv.push_back(a.data());
  argv.push_back(nullptr);
  std::vector<std::string> env_storage;
  for (char** e = environ; *e != nullptr; e++) {
    if (std::strncmp(*e, "RUNNEL_", 7) != 0) env_storage.emplace_back(*e);
  }
  env_storage.insert(env_storage.end(), env.begin(), env.end());
  std::vector<char*> envp;
  for (auto& e : env_storage) envp.push_back(e.data());
  envp.push_back(nullptr);

  pid_t pid = ::fork();
  if (pid == 0) {
    ::dup2(pipe_fds[1], STDOUT_FILENO);
    int err = ::open(stderr_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (err >= 0) ::dup2(err, STDERR_FILENO);
    ::execve(argv[0], argv.data(), envp.data());
    _exit(127);
  }
  ::close(pipe_fds[1]);
  *stdout_fd = pipe_fds[0];
  return pid;
}

// Reads from `fd` until EOF or the deadline; returns what arrived.
std::string read_until_eof(int fd, Clock::time_point deadline) {
  std::string out;
  char buf[4096];
  while (Clock::now() < deadline) {
    pollfd p{fd, POLLIN, 0};
    int ms = static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count());
    if (::poll(&p, 1, std::max(ms, 1)) <= 0) continue;
    ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

// waitpid with a deadline; SIGKILLs and reaps on timeout.
std::optional<int> wait_for_exit(pid_t pid, Clock::time_point deadline) {
  while (true) {
    int status = 0;
    pid_t r = ::waitpid(pid, &status, WNOHANG);
    if (r == pid) return status;
    if (Clock::now() >= deadline) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &status, 0);
      return std::nullopt;
    }
    ::usleep(2000);
  }
}

}  // namespace

TempDir::TempDir() : path_(unique_temp_name("runnel-test")) { std::filesystem::create_directories(path_); }

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

std::unique_ptr<RunneldProcess> RunneldProcess::start(const std::vector<std::string>& args,
                                                      const std::vector<std::string>& env, std::string* error,
                                                      std::chrono::milliseconds timeout) {
  std::unique_ptr<RunneldProcess> p(new RunneldProcess());
  p->stderr_path_ = unique_temp_name("runneld-stderr");
  p->pid_ = spawn(args, env, &p->stdout_fd_, p->stderr_path_);
  if (p->pid_ < 0) {
    *error = "fork failed";
    return nullptr;
  }
  // Read stdout line by line until the ready line or the deadline.
  const auto deadline = Clock::now() + timeout;
  std::string buffered;
  char buf[512];
  while (Clock::now() < deadline) {
    size_t newline = buffered.find('\n');
    if (newline != std::string::npos) {
      std::string line = buffered.substr(0, newline);
      buffered.erase(0, newline + 1);
      if (line.rfind("runneld ready ", 0) != 0) continue;
      p->ready_line_ = line;
      std::istringstream words(line.substr(14));
      std::string word;
      while (words >> word) {
        if (word.rfind("binary=", 0) == 0) parse_host_port(word.substr(7), &p->binary_);
        if (word.rfind("admin=", 0) == 0) parse_host_port(word.substr(6), &p->admin_);
      }
      if (p->binary_.port == 0 || p->admin_.port == 0) {
        *error = "malformed ready line: " + line;
        return nullptr;
      }
      return p;
    }
    pollfd pfd{p->stdout_fd_, POLLIN, 0};
    if (::poll(&pfd, 1, 50) <= 0) continue;
    ssize_t n = ::read(p->stdout_fd_, buf, sizeof(buf));
    if (n <= 0) break;  // Exited before getting ready.
    buffered.append(buf, static_cast<size_t>(n));
  }
  auto status = wait_for_exit(p->pid_, Clock::now() + std::chrono::seconds(2));
  *error = "runneld did not become ready (" +
           (status ? "exit status " + std::to_string(WIFEXITED(*status) ? WEXITSTATUS(*status) : -1)
                   : std::string("still running; killed")) +
           "); stderr:\n" + read_file(p->stderr_path_);
  p->pid_ = -1;
  return nullptr;
}

RunneldProcess::~RunneldProcess() {
  if (pid_ > 0) {
    ::kill(pid_, SIGKILL);
    int status;
    ::waitpid(pid_, &status, 0);
  }
  if (stdout_fd_ >= 0) ::close(stdout_fd_);
  if (!stderr_path_.empty()) ::unlink(stderr_path_.c_str());
}

std::optional<int> RunneldProcess::stop(int signal, std::chrono::milliseconds timeout) {
  if (pid_ <= 0) return std::nullopt;
  ::kill(pid_, signal);
  auto status = wait_for_exit(pid_, Clock::now() + timeout);
  pid_ = -1;
  return status;
}

std::string RunneldProcess::stderr_text() const { return read_file(stderr_path_); }

RunResult run_runneld(const std::vector<std::string>& args, const std::vector<std::string>& env,
                      std::chrono::milliseconds timeout) {
  RunResult result;
  std::string stderr_path = unique_temp_name("runneld-stderr");
  int out_fd = -1;
  pid_t pid = spawn(args, env, &out_fd, stderr_path);
  if (pid < 0) return result;
  const auto deadline = Clock::now() + timeout;
  result.out = read_until_eof(out_fd, deadline);
  ::close(out_fd);
  auto status = wait_for_exit(pid, deadline);
  if (status && WIFEXITED(*status)) result.exit_code = WEXITSTATUS(*status);
  result.err = read_file(stderr_path);
  ::unlink(stderr_path.c_str());
  return result;
}

int connect_loopback(int port, std::chrono::milliseconds timeout) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(timeout.count() / 1000);
  tv.tv_usec = static_cast<suseconds_t>((timeout.count() % 1000) * 1000);
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

HttpReply http_request(const HostPortText& at, const std::string& method, const std::string& target,
                       const std::string& body, const std::vector<std::pair<std::string, std::string>>& headers) {
  HttpReply reply;
  int fd = connect_loopback(at.port);
  if (fd < 0) {
    ADD_FAILURE() << "cannot connect to " << at.host << ":" << at.port;
    return reply;
  }
  std::string request = method + " " + target + " HTTP/1.1\r\nHost: " + at.host + "\r\nConnection: close\r\n";
  for (const auto& header : headers) request += header.first + ": " + header.second + "\r\n";
  if (!body.empty() || method == "POST") request += "Content-Length: " + std::to_string(body.size()) + "\r\n";
  request += "\r\n" + body;
  if (::send(fd, request.data(), request.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(request.size())) {
    ADD_FAILURE() << "send failed";
    ::close(fd);
    return reply;
  }
  // Connection: close, so the response ends at EOF (bounded by SO_RCVTIMEO).
  std::string raw;
  char buf[8192];
  while (true) {
    ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
    if (n <= 0) break;
    raw.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  size_t header_end = raw.find("\r\n\r\n");
  if (raw.rfind("HTTP/1.1 ", 0) != 0 || header_end == std::string::npos) {
    ADD_FAILURE() << "malformed HTTP response: " << raw.substr(0, 200);
    return reply;
  }
  reply.status = std::atoi(raw.c_str() + 9);
  std::istringstream lines(raw.substr(0, header_end));
  std::string line;
  std::getline(lines, line);
  while (std::getline(lines, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    size_t colon = line.find(':');
    if (colon == std::string::npos) continue;
    std::string name = line.substr(0, colon);
    for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    size_t value_start = line.find_first_not_of(' ', colon + 1);
    reply.headers[name] = value_start == std::string::npos ? "" : line.substr(value_start);
  }
  reply.body = raw.substr(header_end + 4);
  return reply;
}

}  // namespace runnel::testing
