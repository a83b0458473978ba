// What one coordinator of a highly available shard says it is, from its
// answer to info(): the active serves it, a standby answers NOT_LEADER, an
// active cut off from ZooKeeper answers UNAVAILABLE.
#pragma once

#include <cstdint>
#include <memory>

namespace pact {

enum class CoordinatorRole {
  kDown,        // nothing answers: dead, starting, or stuck
  kStandby,     // NOT_LEADER
  kCutOff,      // an active that lost ZooKeeper, until its session returns or expires
  kRecovering,  // the elected active, loading and re-driving decisions
  kActive,      // the elected active, serving
};

const char* CoordinatorRoleName(CoordinatorRole role);

struct CoordinatorView {
  CoordinatorRole role = CoordinatorRole::kDown;
  int64_t epoch = 0;  // while kRecovering or kActive
};

// Asks the coordinator on 127.0.0.1:port, over one connection kept between
// asks (reopened after a failure). One thread at a time.
class CoordinatorProbe {
 public:
  explicit CoordinatorProbe(int port, int timeout_ms = 500);
  ~CoordinatorProbe();

  CoordinatorView Ask();

 private:
  struct Connection;
  std::unique_ptr<Connection> conn_;
};

// One ask over a connection of its own.
inline CoordinatorView ProbeCoordinator(int port) { return CoordinatorProbe(port).Ask(); }

}  // namespace pact
