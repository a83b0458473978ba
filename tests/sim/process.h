// One simulated process: up or down, which run of it (incarnation) is up,
// and an optional crash armed to strike at its N-th event (a message sent or
// received, a journal write), so that crashes land in the middle of the
// protocol. Durable stores act only for the run that opened them, and only
// while it is up: a crashed process writes nothing. An armed freeze strikes
// like a crash, except that the event goes on (in the zombie it makes: see
// Simulation::Freeze). An asleep process is up, yet sends and answers
// nothing (a paused zombie).
#pragma once

#include <cstdint>
#include <functional>
#include <string>

namespace pact::sim {

class Process {
 public:
  explicit Process(std::string name) : name_(std::move(name)) {}

  const std::string& name() const { return name_; }
  bool up() const { return up_; }
  int incarnation() const { return incarnation_; }
  // Whether `incarnation` is the run that is up now.
  bool Alive(int incarnation) const { return up_ && incarnation_ == incarnation; }

  // A new run; returns its incarnation.
  int Start() {
    up_ = true;
    asleep = false;
    ArmCrash(0);
    return ++incarnation_;
  }
  void Crash(const std::string& why) {
    if (!up_) return;
    up_ = false;
    if (on_crash_) on_crash_(why);
  }
  void OnCrash(std::function<void(const std::string&)> f) { on_crash_ = std::move(f); }

  // Arms a crash at the `n`-th event from now (n >= 1); 0 disarms.
  void ArmCrash(int64_t n) {
    crash_at_event_ = n > 0 ? events_ + n : -1;
    freeze_ = nullptr;
  }
  // Arms `freeze` instead, to be called at the `n`-th event from now.
  void ArmFreeze(int64_t n, std::function<void()> freeze) {
    ArmCrash(n);
    freeze_ = std::move(freeze);
  }
  // Counts one event; true when the armed crash is due now (the caller
  // decides whether the event happened before the crash, then calls Crash).
  // A freeze due now is done here, and the event goes on: false.
  bool CountEvent() {
    ++events_;
    if (!up_ || events_ != crash_at_event_) return false;
    if (!freeze_) return true;
    auto freeze = std::move(freeze_);
    ArmCrash(0);
    freeze();
    return false;
  }

  int64_t down_since_ms = 0;  // simulated time of the last crash
  bool asleep = false;        // a paused zombie: no messages in or out

 private:
  std::string name_;
  bool up_ = false;
  int incarnation_ = 0;
  int64_t events_ = 0;
  int64_t crash_at_event_ = -1;
  std::function<void(const std::string&)> on_crash_;
  std::function<void()> freeze_;
};

}  // namespace pact::sim
