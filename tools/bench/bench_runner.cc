#include "tools/bench/bench_runner.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <mutex>
#include <thread>

namespace pact {
namespace {

using Clock = std::chrono::steady_clock;

constexpr size_t kFailureExamples = 5;

double SecondsBetween(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

// What the clients and the main thread share.
struct Control {
  std::atomic<bool> measuring{false};
  std::atomic<bool> stop{false};
  std::atomic<int64_t> tickets{0};  // transactions begun in the window (count mode)
  std::atomic<int> running{0};      // client threads still looping
};

// One client's figures. The client updates them after every transaction and
// the main thread reads them once a second for the progress line; the lock
// is uncontended otherwise.
struct ClientFigures {
  std::mutex mu;
  Tally measured;
  Tally total;
  LatencyHistogram latency;
  std::map<std::string, int64_t> failures_by_code;
  std::vector<std::string> failure_examples;
};

void RecordOutcome(const TxnResult& result, bool measured, int64_t micros, ClientFigures& f) {
  std::lock_guard<std::mutex> lock(f.mu);
  f.total.Add(result.outcome);
  if (!measured) return;
  f.measured.Add(result.outcome);
  if (result.outcome == TxnOutcome::kCommitted) {
    f.latency.Record(micros);
    return;
  }
  f.failures_by_code[StatusCodeName(result.status.code())]++;
  std::string message = result.status.ToString();
  if (f.failure_examples.size() < kFailureExamples &&
      std::find(f.failure_examples.begin(), f.failure_examples.end(), message) ==
          f.failure_examples.end()) {
    f.failure_examples.push_back(std::move(message));
  }
}

void ClientLoop(int client, const LoadOptions& options, TransferDriver& driver, Control& control,
                ClientFigures& figures) {
  std::mt19937_64 rng(options.seed * 7919 + client);
  while (!control.stop.load()) {
    bool measured = control.measuring.load();
    if (measured && options.count > 0 && control.tickets.fetch_add(1) >= options.count) break;
    std::vector<Update> transfer = NextTransfer(options.workload, rng);
    auto begun = Clock::now();
    TxnResult result = driver.Run(transfer);
    int64_t micros =
        std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - begun).count();
    RecordOutcome(result, measured, micros, figures);
  }
  control.running.fetch_sub(1);
}

// The live line: elapsed, tx/s over the last second, latency so far.
class Progress {
 public:
  explicit Progress(bool enabled) : enabled_(enabled), tty_(isatty(STDERR_FILENO) == 1) {}
  ~Progress() {
    if (enabled_ && tty_ && printed_) std::fputc('\n', stderr);
  }

  void Print(const char* phase, double elapsed_s, double tx_per_s, const LatencyHistogram& h,
             const Tally& measured) {
    if (!enabled_) return;
    char line[256];
    std::snprintf(line, sizeof(line),
                  "%-8s %6.1fs  %9.0f tx/s  p50 %7.2f ms  p99 %7.2f ms  "
                  "committed %lld aborted %lld errors %lld",
                  phase, elapsed_s, tx_per_s, h.PercentileMicros(0.50) / 1000.0,
                  h.PercentileMicros(0.99) / 1000.0, static_cast<long long>(measured.committed),
                  static_cast<long long>(measured.aborted),
                  static_cast<long long>(measured.errors));
    // On a terminal the line is rewritten in place; in a log, one per second.
    std::fprintf(stderr, tty_ ? "\r%s\033[K" : "%s\n", line);
    std::fflush(stderr);
    printed_ = true;
  }

 private:
  const bool enabled_;
  const bool tty_;
  bool printed_ = false;
};

struct Snapshot {
  int64_t finished = 0;  // all transactions, warm-up included
  Tally measured;
  LatencyHistogram latency;
};

Snapshot TakeSnapshot(std::vector<std::unique_ptr<ClientFigures>>& figures) {
  Snapshot s;
  for (auto& f : figures) {
    std::lock_guard<std::mutex> lock(f->mu);
    s.finished += f->total.attempted;
    s.measured.Merge(f->measured);
    s.latency.Merge(f->latency);
  }
  return s;
}

}  // namespace

void Tally::Add(TxnOutcome outcome) {
  attempted++;
  switch (outcome) {
    case TxnOutcome::kCommitted:
      committed++;
      break;
    case TxnOutcome::kAborted:
      aborted++;
      break;
    case TxnOutcome::kError:
      errors++;
      break;
  }
}

void Tally::Merge(const Tally& other) {
  attempted += other.attempted;
  committed += other.committed;
  aborted += other.aborted;
  errors += other.errors;
}

Result<LoadResult> RunLoad(const LoadOptions& options, const DriverFactory& make_driver,
                           const std::function<void()>& on_window_start,
                           const std::function<void()>& on_window_end) {
  std::vector<std::unique_ptr<TransferDriver>> drivers;
  std::vector<std::unique_ptr<ClientFigures>> figures;
  for (int i = 0; i < options.clients; ++i) {
    ASSIGN_OR_RETURN(auto driver, make_driver(i));
    drivers.push_back(std::move(driver));
    figures.push_back(std::make_unique<ClientFigures>());
  }

  Control control;
  control.running = options.clients;
  std::vector<std::thread> threads;
  for (int i = 0; i < options.clients; ++i) {
    threads.emplace_back([&, i] { ClientLoop(i, options, *drivers[i], control, *figures[i]); });
  }

  auto interrupted = [&] { return options.interrupt != nullptr && options.interrupt->load(); };
  auto clients_done = [&] { return control.running.load() == 0; };
  Progress progress(options.progress);
  const auto started = Clock::now();
  auto window_start = started;
  auto next_report = started + std::chrono::seconds(1);
  int64_t finished_at_last_report = 0;
  bool in_window = false;

  // Ticks every 10 ms; opens the window after the warm-up and ends it after
  // the duration, the count, or an interrupt.
  while (true) {
    auto now = Clock::now();
    if (now >= next_report) {
      Snapshot s = TakeSnapshot(figures);
      double since_last = SecondsBetween(next_report - std::chrono::seconds(1), now);
      progress.Print(in_window ? "measured" : "warm-up",
                     SecondsBetween(in_window ? window_start : started, now),
                     (s.finished - finished_at_last_report) / since_last, s.latency, s.measured);
      finished_at_last_report = s.finished;
      next_report += std::chrono::seconds(1);
    }
    if (!in_window && (SecondsBetween(started, now) >= options.warmup_s || interrupted())) {
      on_window_start();
      window_start = Clock::now();
      control.measuring = true;
      in_window = true;
    }
    bool ended = options.end_window != nullptr && options.end_window->load();
    bool over = in_window &&
                (interrupted() || clients_done() || ended ||
                 (options.count == 0 && SecondsBetween(window_start, now) >= options.duration_s));
    if (over) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  control.stop = true;
  for (auto& t : threads) t.join();
  LoadResult result;
  result.measured_seconds = SecondsBetween(window_start, Clock::now());
  on_window_end();

  result.interrupted = interrupted();
  for (auto& f : figures) {
    result.measured.Merge(f->measured);
    result.total.Merge(f->total);
    result.latency.Merge(f->latency);
    for (const auto& [code, n] : f->failures_by_code) result.failures_by_code[code] += n;
    for (const auto& e : f->failure_examples) {
      auto& examples = result.failure_examples;
      if (examples.size() < kFailureExamples &&
          std::find(examples.begin(), examples.end(), e) == examples.end()) {
        examples.push_back(e);
      }
    }
  }
  return result;
}

}  // namespace pact
