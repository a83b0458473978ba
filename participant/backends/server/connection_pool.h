// Idle connections to one database server, kept for reuse by the branches of
// a backend, and the two ways a backend borrows one: to start a branch, and
// to run one of its own statements through connection failures under a
// RetryPolicy. `Conn` is the client library's connection handle and `Closer`
// its deleter; what differs between servers comes in through Hooks.
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <mutex>
#include <utility>
#include <vector>

#include "common/status.h"
#include "participant/backends/server/retry_policy.h"

namespace pact {

template <typename Conn, typename Closer>
class ConnectionPool {
 public:
  using ConnPtr = std::unique_ptr<Conn, Closer>;

  struct Hooks {
    // Opens a new connection; fails with kUnavailable when the server cannot
    // be reached.
    std::function<Result<ConnPtr>(int connect_timeout_s)> connect;
    // Whether an idle connection still works when it is taken (the server may
    // have ended it meanwhile); unset: idle connections are trusted.
    std::function<bool(Conn*)> alive;
    // Whether a connection given back may serve again (outside any
    // transaction, say); unset: always.
    std::function<bool(Conn*)> reusable;
    // Clears what a branch's statements left in the session before another
    // branch gets it; false drops the connection.
    std::function<bool(Conn*)> reset;
  };

  // Keeps at most `max_idle` idle connections; opens new ones with
  // `connect_timeout_s`.
  ConnectionPool(Hooks hooks, int max_idle, int connect_timeout_s)
      : hooks_(std::move(hooks)), max_idle_(max_idle), connect_timeout_s_(connect_timeout_s) {}

  ConnectionPool(const ConnectionPool&) = delete;
  ConnectionPool& operator=(const ConnectionPool&) = delete;

  // An idle connection that still works, or a new one.
  Result<ConnPtr> Take() { return Take(connect_timeout_s_); }
  Result<ConnPtr> Take(int connect_timeout_s) {
    while (true) {
      ConnPtr conn;
      {
        std::lock_guard<std::mutex> lock(mu_);
        if (idle_.empty()) break;
        conn = std::move(idle_.back());
        idle_.pop_back();
      }
      if (!hooks_.alive || hooks_.alive(conn.get())) return conn;
    }
    return hooks_.connect(connect_timeout_s);
  }

  // Keeps `conn` for reuse if it may serve again and the pool has room;
  // `reset` first clears the session of the branch that used it.
  void Give(ConnPtr conn, bool reset) {
    if (hooks_.reusable && !hooks_.reusable(conn.get())) return;
    if (reset && !hooks_.reset(conn.get())) return;
    std::lock_guard<std::mutex> lock(mu_);
    if (static_cast<int>(idle_.size()) < max_idle_) idle_.push_back(std::move(conn));
  }

  // After one connection failed the idle ones most likely died with it (a
  // restarted server).
  void DropIdle() {
    std::vector<ConnPtr> dropped;  // closed after the lock is released
    std::lock_guard<std::mutex> lock(mu_);
    dropped.swap(idle_);
  }

  size_t IdleCount() const {
    std::lock_guard<std::mutex> lock(mu_);
    return idle_.size();
  }

  // A connection on which `start` (BEGIN, XA START) succeeded. An idle
  // connection can have died unnoticed, so after a transient failure the idle
  // ones are dropped and a new connection is tried, once.
  Result<ConnPtr> TakeStarted(const std::function<Status(Conn*)>& start) {
    for (int attempt = 0;; ++attempt) {
      ASSIGN_OR_RETURN(ConnPtr conn, Take());
      Status started = start(conn.get());
      if (started.ok()) return conn;
      if (!RetryPolicy::IsTransient(started) || attempt > 0) return started;
      DropIdle();
    }
  }

  // Runs `op` on a pooled connection, on a new one after each transient
  // failure (a connection that failed is closed, and the idle ones dropped),
  // as `policy` allows. The connection goes back to the pool after an answer.
  Status WithRetry(const RetryPolicy& policy, const std::function<Status(Conn*)>& op) {
    return policy.Run(
        [&]() -> Status {
          ASSIGN_OR_RETURN(ConnPtr conn, Take(policy.connect_timeout_s));
          Status status = op(conn.get());
          if (!RetryPolicy::IsTransient(status)) Give(std::move(conn), false);
          return status;
        },
        [&] { DropIdle(); });
  }

 private:
  const Hooks hooks_;
  const int max_idle_;
  const int connect_timeout_s_;

  mutable std::mutex mu_;
  std::vector<ConnPtr> idle_;  // guarded by mu_
};

}  // namespace pact
