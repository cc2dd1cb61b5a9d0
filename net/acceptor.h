#pragma once
// Acceptor: the accepting half of a per-shard server (the admin HTTP port,
// the binary port). Every shard accepts on its own SO_REUSEPORT socket with
// a multishot accept, so a connection lives on the shard that accepted it.
//
// Connections live in slots created on demand up to connections_max and
// reused after close; a connection beyond the limit takes the place of the
// longest-idle one where the server allows it (evict_idle), else it is sent
// reject_bytes (best effort) and closed at once. After EMFILE/ENFILE accepting backs off
// instead of spinning. On shutdown it stops accepting, asks every
// connection to shut down, and holds the reactor until the last is gone.

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/metrics.h"
#include "core/reactor.h"
#include "net/socket.h"

namespace runnel {

// What an Acceptor needs of a connection. A connection calls
// Acceptor::connection_closed(this) once its socket is closed.
class AcceptedConnection {
 public:
  virtual ~AcceptedConnection() = default;
  virtual void start(int fd) = 0;  // Takes ownership of an accepted socket.
  virtual void shut_down() = 0;    // Close now if idle, else after the work in hand.
  virtual bool open() const = 0;
  // A connection the acceptor may close to make room when every slot is
  // taken (the admin port: no request in hand), and since when it has been
  // so. The binary port's connections never are.
  virtual bool idle() const { return false; }
  virtual uint64_t idle_since_us() const { return 0; }
};

struct AcceptorOptions {
  std::string name;         // "admin", "binary": logs and metric names (runnel_<name>_connections...).
  std::string description;  // "admin HTTP": metric help texts.
  uint32_t connections_max = 256;
  std::string reject_bytes;  // Sent to a connection refused for want of a slot.
  // At connections_max, close the longest-idle connection to take the new
  // one, so silent clients cannot lock everyone else out (the admin port:
  // /health and /metrics stay reachable). A closing connection keeps its
  // slot until it is gone: at most connections_max more are open meanwhile.
  bool evict_idle = false;
};

class Acceptor {
 public:
  using Factory = std::function<std::unique_ptr<AcceptedConnection>()>;

  Acceptor(Reactor& reactor, UniqueFd listener, AcceptorOptions options, Factory make_connection);
  Acceptor(const Acceptor&) = delete;
  Acceptor& operator=(const Acceptor&) = delete;

  // Starts accepting and registers the shutdown hook. Call on the shard.
  void start();
  void connection_closed(AcceptedConnection* connection);
  bool stopping() const { return stopping_; }
  size_t open_connections() const { return open_; }
  // Calls `fn` with every open connection.
  template <typename Fn>
  void for_each_open(Fn&& fn) {
    for (auto& slot : slots_) {
      if (slot && slot->open()) fn(slot.get());
    }
  }

 private:
  struct AcceptOp final : IoCompletion {
    Acceptor* acceptor = nullptr;
    void on_complete(int res, uint32_t flags) override { acceptor->on_accept(res, flags); }
  };

  void arm_accept();
  void on_accept(int res, uint32_t flags);
  void reject(int fd);
  // Asks the longest-idle connection to close; false if none is idle.
  bool evict_one();
  void stop();
  void maybe_release();

  Reactor& reactor_;
  UniqueFd listener_;
  AcceptorOptions options_;
  Factory make_connection_;
  AcceptOp accept_op_;
  Timer accept_retry_;
  std::vector<std::unique_ptr<AcceptedConnection>> slots_;
  std::vector<AcceptedConnection*> free_slots_;
  size_t open_ = 0;
  bool accept_in_flight_ = false;
  bool stopping_ = false;
  bool holding_ = false;

  Gauge& connections_open_;
  Counter& connections_accepted_;
  Counter& connections_rejected_;
  Counter& connections_evicted_;
  Counter& accept_errors_;
};

}  // namespace runnel
