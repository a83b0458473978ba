// A gate a test closes to hold the calls that pass it (an RPC kept in
// flight) and opens to let them all go on.
#pragma once

#include <condition_variable>
#include <mutex>

namespace pact {

class CallGate {
 public:
  void Close() {
    std::lock_guard<std::mutex> lock(mu_);
    closed_ = true;
  }
  void Open() {
    std::lock_guard<std::mutex> lock(mu_);
    closed_ = false;
    opened_.notify_all();
  }
  // Returns at once while open; while closed, once opened.
  void Pass() {
    std::unique_lock<std::mutex> lock(mu_);
    opened_.wait(lock, [&] { return !closed_; });
  }

 private:
  std::mutex mu_;
  std::condition_variable opened_;
  bool closed_ = false;  // guarded by mu_
};

}  // namespace pact
