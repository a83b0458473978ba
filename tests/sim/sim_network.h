// The simulated network: every call between processes goes through Send,
// which calls the real object synchronously, or not, as the seed decides: a
// request lost (the callee never sees it), a reply lost (the callee acted),
// a duplicate (delivered again now, or held and delivered again later), a
// delay (held and delivered at a later step, long after the caller gave up),
// a partition between two processes for a while. A call from or to a
// process that is down fails kUnavailable and has no effect, and an armed
// crash strikes the sender as it sends or the callee as it receives (before
// or after handling: then the reply is lost). An asleep process (a paused
// zombie) counts as down both ways.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "common/protocol.h"
#include "common/status.h"
#include "coordinator/coordinator.h"
#include "participant/participant_service.h"
#include "tests/sim/faults.h"
#include "tests/sim/history.h"
#include "tests/sim/process.h"
#include "tests/sim/sim_clock.h"

namespace pact::sim {

// One-line renderings of answers, for the history.
std::string Show(const Status& status);
std::string ShowValue(Vote vote);
std::string ShowValue(Outcome outcome);
std::string ShowValue(int64_t value);
std::string ShowValue(const BeginInfo& info);
std::string ShowValue(const IdBlock& block);
std::string ShowValue(const CommitOutcome& outcome);
std::string ShowValue(const QueryResult& result);
std::string ShowValue(const std::vector<BranchSnapshot>& branches);
std::string ShowValue(const TxnSnapshot& txn);
std::string ShowValue(const CoordinatorIdentity& identity);
template <typename T>
std::string Show(const Result<T>& result) {
  return result.ok() ? ShowValue(*result) : Show(result.status());
}

class SimNetwork {
 public:
  SimNetwork(SimRandom* random, const Faults* faults, History* history, SimClock* clock)
      : random_(random), faults_(faults), history_(history), clock_(clock) {}

  // Delivers `handle` from `from` to `to`, or fails kUnavailable. Calls that
  // are not idempotent (a statement, a begin) are never duplicated.
  template <typename R>
  R Send(Process& from, Process& to, const std::string& what, const std::function<R()>& handle,
         bool idempotent = true);

  // Cuts the link between two processes (both ways) for `ms`.
  void Partition(const std::string& a, const std::string& b, int64_t ms);
  void HealAll() { partitions_.clear(); }

  size_t held() const { return held_.size(); }
  // Delivers one held message, chosen by the seed (so they reorder).
  void DeliverOneHeld();

 private:
  struct Held {
    std::string what;
    Process* to;
    int incarnation;  // a restarted callee never sees the old run's messages
    std::function<std::string()> deliver;
  };
  bool Partitioned(const std::string& a, const std::string& b) const;
  // Hands the request to the callee, which may crash on receiving it.
  template <typename R>
  R Deliver(Process& to, const std::string& what, const std::function<R()>& handle);
  template <typename R>
  void Hold(Process& to, const std::string& what, const std::function<R()>& handle);
  static Status Down(const std::string& why) { return Status::Unavailable("sim: " + why); }

  SimRandom* const random_;
  const Faults* const faults_;
  History* const history_;
  SimClock* const clock_;
  std::map<std::pair<std::string, std::string>, int64_t> partitions_;  // until elapsed ms
  std::vector<Held> held_;
};

template <typename R>
R SimNetwork::Deliver(Process& to, const std::string& what, const std::function<R()>& handle) {
  if (!to.CountEvent()) return handle();
  if (random_->Chance(0.5)) {
    to.Crash("on receiving " + what);
    return R(Down(to.name() + " crashed"));
  }
  R result = handle();
  to.Crash("after handling " + what + " = " + Show(result) + ", before replying");
  return R(Down(to.name() + " crashed"));
}

template <typename R>
void SimNetwork::Hold(Process& to, const std::string& what, const std::function<R()>& handle) {
  held_.push_back({what, &to, to.incarnation(),
                   [this, &to, what, handle] { return Show(Deliver<R>(to, what, handle)); }});
}

template <typename R>
R SimNetwork::Send(Process& from, Process& to, const std::string& what,
                   const std::function<R()>& handle, bool idempotent) {
  const std::string line = from.name() + " -> " + to.name() + " " + what;
  if (!from.up() || from.asleep) return R(Down(from.name() + " is down"));
  if (from.CountEvent()) {
    bool sent = random_->Chance(0.5);
    from.Crash("while sending " + what + (sent ? " (sent)" : " (not sent)"));
    if (!sent) return R(Down(from.name() + " is down"));
  }
  if (!to.up() || to.asleep) {
    history_->Add(line + ": " + to.name() + " is down");
    return R(Down(to.name() + " is down"));
  }
  if (Partitioned(from.name(), to.name())) {
    history_->Add(line + ": partitioned");
    return R(Down("partitioned from " + to.name()));
  }
  if (random_->Chance(faults_->lose_request)) {
    history_->Add(line + ": request lost");
    return R(Down("request lost"));
  }
  if (random_->Chance(faults_->delay)) {
    history_->Add(line + ": delayed (held)");
    Hold(to, what, handle);
    return R(Down("timed out"));
  }
  bool twice = false;
  if (idempotent && random_->Chance(faults_->duplicate)) {
    if (random_->Chance(0.5)) {
      twice = true;
    } else {
      history_->Add(line + ": duplicated, the copy is held");
      Hold(to, what, handle);
    }
  }
  const int incarnation = to.incarnation();
  R result = Deliver(to, what, handle);
  if (twice && to.Alive(incarnation)) {
    history_->Add(line + " = " + Show(result) + " (delivered twice)");
    result = Deliver(to, what, handle);
  }
  history_->Add(line + " = " + Show(result));
  if (!from.up()) return R(Down(from.name() + " is down"));
  if (!to.Alive(incarnation)) return R(Down(to.name() + " crashed"));
  if (random_->Chance(faults_->lose_reply)) {
    history_->Add(line + ": reply lost");
    return R(Down("reply lost"));
  }
  return result;
}

}  // namespace pact::sim
