// A tiny metrics registry: counters, gauges and fixed-bucket histograms,
// rendered in the Prometheus text exposition format 0.0.4. Updates are
// lock-free atomics so hot paths (commit, prepare) can record freely; the
// registry lock is taken only to register and to render.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace pact {

// Monotonic counter.
class Counter {
 public:
  // REQUIRES: n >= 0 (a counter only goes up; Prometheus treats a drop as a restart).
  void Add(int64_t n = 1) { value_.fetch_add(n, std::memory_order_relaxed); }
  int64_t value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<int64_t> value_{0};
};

// A value that goes up and down.
class Gauge {
 public:
  void Set(int64_t v) { value_.store(v, std::memory_order_relaxed); }
  void Add(int64_t n) { value_.fetch_add(n, std::memory_order_relaxed); }
  int64_t value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<int64_t> value_{0};
};

// A consistent-enough copy of a histogram: taken without stopping writers, so
// sum may lag the buckets by the observations in flight; count always equals
// the +Inf bucket.
struct HistogramSnapshot {
  std::vector<double> upper_bounds;         // finite, strictly increasing; +Inf implied
  std::vector<uint64_t> cumulative_counts;  // upper_bounds.size() + 1 entries, last is +Inf
  double sum = 0;
  uint64_t count = 0;

  // Estimates the q-quantile (q in [0, 1], e.g. 0.99) by linear interpolation
  // inside the bucket holding the rank, as Prometheus' histogram_quantile does.
  // The first bucket starts at 0 (or at its bound if that is negative); a rank
  // in the +Inf bucket returns the largest finite bound. Returns 0 when empty.
  double Percentile(double q) const;
};

class Histogram {
 public:
  // REQUIRES (CHECKed): bounds finite and strictly increasing; an empty list
  // leaves only the +Inf bucket.
  explicit Histogram(std::vector<double> upper_bounds);

  // Lock-free: one atomic add on the bucket and a CAS loop on the sum.
  void Observe(double v);
  HistogramSnapshot Snapshot() const;
  double Percentile(double q) const { return Snapshot().Percentile(q); }

 private:
  const std::vector<double> upper_bounds_;
  // Per-bucket (not cumulative) counts; the last one is +Inf.
  std::unique_ptr<std::atomic<uint64_t>[]> counts_;
  std::atomic<double> sum_{0};
};

// Owns the metrics of one process. Names and help texts are constants in the
// code, so a bad name is a programming error: registration CHECK-fails (aborts)
// on a name outside [a-zA-Z_:][a-zA-Z0-9_:]* or one already registered.
// Returned pointers stay valid for the registry's lifetime. Thread-safe.
class MetricsRegistry {
 public:
  MetricsRegistry();
  ~MetricsRegistry();
  MetricsRegistry(const MetricsRegistry&) = delete;
  MetricsRegistry& operator=(const MetricsRegistry&) = delete;

  Counter* AddCounter(const std::string& name, const std::string& help);
  Gauge* AddGauge(const std::string& name, const std::string& help);
  // A gauge computed at each scrape (e.g. the number of prepared branches).
  // `fn` runs under the registry lock: it must not register metrics.
  void AddCallbackGauge(const std::string& name, const std::string& help,
                        std::function<int64_t()> fn);
  Histogram* AddHistogram(const std::string& name, const std::string& help,
                          std::vector<double> upper_bounds);

  // All metrics in registration order: # HELP and # TYPE lines, then the
  // samples; histograms as cumulative name_bucket{le="..."} (ending with
  // le="+Inf"), name_sum and name_count.
  std::string RenderPrometheus() const;

 private:
  struct Entry;
  // CHECKs the name, then publishes the fully built entry.
  void Register(std::unique_ptr<Entry> entry);

  mutable std::mutex mu_;
  std::vector<std::unique_ptr<Entry>> entries_;
};

}  // namespace pact
