#include "common/parallel.h"

#include <chrono>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>

namespace pact {
namespace {

// Threads that wait for tasks and are reused. A task never waits for a free
// worker: if none is idle a new one starts, so nested fan-outs cannot
// deadlock. Workers idle for a minute exit, so a burst does not pin threads.
class WorkerPool {
 public:
  void Submit(std::function<void()> task) {
    std::unique_lock<std::mutex> lock(mu_);
    tasks_.push_back(std::move(task));
    if (tasks_.size() <= idle_) {
      cv_.notify_one();
      return;
    }
    lock.unlock();
    std::thread([this] { Work(); }).detach();
  }

 private:
  void Work() {
    std::unique_lock<std::mutex> lock(mu_);
    while (true) {
      if (tasks_.empty()) {
        idle_++;
        bool woken = cv_.wait_for(lock, std::chrono::minutes(1), [this] { return !tasks_.empty(); });
        idle_--;
        if (!woken) return;
      }
      std::function<void()> task = std::move(tasks_.front());
      tasks_.pop_front();
      lock.unlock();
      task();
      lock.lock();
    }
  }

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> tasks_;  // guarded by mu_
  size_t idle_ = 0;                          // guarded by mu_; workers waiting for a task
};

WorkerPool& Pool() {
  static WorkerPool* pool = new WorkerPool();  // never destroyed: detached workers use it
  return *pool;
}

}  // namespace

void RunDetached(std::function<void()> task) { Pool().Submit(std::move(task)); }

void RunInParallel(size_t n, const std::function<void(size_t)>& fn) {
  if (n == 0) return;
  std::mutex mu;
  std::condition_variable done;
  size_t pending = n - 1;
  for (size_t i = 0; i + 1 < n; ++i) {
    Pool().Submit([&, i] {
      fn(i);
      std::lock_guard<std::mutex> lock(mu);
      if (--pending == 0) done.notify_one();
    });
  }
  fn(n - 1);
  std::unique_lock<std::mutex> lock(mu);
  done.wait(lock, [&] { return pending == 0; });
}

}  // namespace pact
