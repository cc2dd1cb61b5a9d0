// runneld: the Runnel server. Parses config, starts the shards, prints the
// ready line, then waits for SIGTERM/SIGINT (clean stop, exit 0) or for a
// shard to leave on its own (exit 1).

#include <poll.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "core/config.h"
#include "core/log.h"
#include "net/server.h"

extern char** environ;

namespace runnel {
namespace {

std::vector<std::string> environment() {
  std::vector<std::string> env;
  for (char** e = environ; *e != nullptr; e++) env.emplace_back(*e);
  return env;
}

int run(int argc, char** argv) {
  // Signals are taken synchronously on this thread via signalfd; the shard
  // threads inherit the blocked mask and never see them.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGHUP);  // Reloads the TLS certificate and key.
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  auto command_line = parse_command_line(argc, argv);
  if (!command_line) {
    std::fprintf(stderr, "runneld: %s\n", command_line.status().message().c_str());
    return 2;
  }
  if (command_line->help) {
    std::fputs(command_line->help_text.c_str(), stdout);
    return 0;
  }
  auto config = load_config(*command_line, environment());
  if (!config) {
    std::fprintf(stderr, "runneld: %s\n", config.status().message().c_str());
    return 2;
  }
  if (command_line->print_config) {
    std::fputs(config_to_toml(*config).c_str(), stdout);
    return 0;
  }
  if (Status exposed = check_exposure(*config, command_line->allow_unauthenticated); !exposed) {
    std::fprintf(stderr, "runneld: %s\n", exposed.message().c_str());
    return 2;
  }
  set_log_level(config->log_level);

  int signal_fd = signalfd(-1, &stop_signals, SFD_CLOEXEC);
  if (signal_fd < 0) {
    log_error("signalfd: {}", std::strerror(errno));
    return 1;
  }

  auto server = Server::start(*config);
  if (!server) {
    log_error("cannot start: {}", server.status().message());
    return 1;
  }
  std::printf("%s\n", (*server)->ready_line().c_str());
  std::fflush(stdout);

  pollfd fds[2] = {{signal_fd, POLLIN, 0}, {(*server)->exit_fd(), POLLIN, 0}};
  int exit_code = 0;
  while (true) {
    fds[0].revents = fds[1].revents = 0;
    if (::poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      log_error("poll: {}", std::strerror(errno));
      exit_code = 1;
      break;
    }
    if (fds[0].revents & POLLIN) {
      signalfd_siginfo info{};
      [[maybe_unused]] ssize_t n = ::read(signal_fd, &info, sizeof(info));
      if (info.ssi_signo == SIGHUP) {
        // New connections get the new certificate; open ones keep theirs.
        if (Status s = (*server)->reload_tls(); !s) log_error("SIGHUP: TLS not reloaded: {}", s.message());
        continue;
      }
      log_info("received {}, stopping", info.ssi_signo == SIGINT ? "SIGINT" : "SIGTERM");
    } else {
      log_error("a shard stopped unexpectedly; stopping the server");
      exit_code = 1;
    }
    break;
  }
  uint64_t started = Reactor::clock_us();
  (*server)->request_stop();
  (*server)->join();
  log_info("stopped in {} ms", (Reactor::clock_us() - started) / 1000);
  ::close(signal_fd);
  return exit_code;
}

}  // namespace
}  // namespace runnel

int main(int argc, char** argv) {
  try {
    return runnel::run(argc, argv);
  } catch (const std::exception& e) {
    // Exceptions exist only at startup (config parsing); nothing throws through a reactor.
    std::fprintf(stderr, "runneld: fatal: %s\n", e.what());
    return 1;
  }
}
