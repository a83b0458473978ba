#include "common/metrics.h"

#include <glog/logging.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>

namespace pact {
namespace {

bool IsValidMetricName(const std::string& name) {
  if (name.empty()) return false;
  for (size_t i = 0; i < name.size(); ++i) {
    char c = name[i];
    bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':';
    if (!alpha && !(i > 0 && c >= '0' && c <= '9')) return false;
  }
  return true;
}

// Shortest text that reads back as the same double, as Go's FormatFloat(v,
// 'g', -1, 64) writes it for Prometheus ("0.0005", "10", "+Inf").
std::string FormatDouble(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  char buf[32];
  for (int precision = 1; precision <= 17; ++precision) {
    std::snprintf(buf, sizeof(buf), "%.*g", precision, v);
    if (std::strtod(buf, nullptr) == v) break;
  }
  return buf;
}

// The format reserves backslash and newline in HELP text.
std::string EscapeHelp(const std::string& help) {
  std::string out;
  for (char c : help) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

}  // namespace

double HistogramSnapshot::Percentile(double q) const {
  if (count == 0) return 0;
  double rank = std::clamp(q, 0.0, 1.0) * static_cast<double>(count);
  size_t i = 0;
  while (i < upper_bounds.size() && static_cast<double>(cumulative_counts[i]) < rank) ++i;
  if (i == upper_bounds.size()) return upper_bounds.empty() ? 0 : upper_bounds.back();
  double lower = i > 0 ? upper_bounds[i - 1] : std::min(0.0, upper_bounds[0]);
  uint64_t below = i > 0 ? cumulative_counts[i - 1] : 0;
  uint64_t in_bucket = cumulative_counts[i] - below;
  if (in_bucket == 0) return lower;  // only when rank is 0
  return lower + (upper_bounds[i] - lower) * (rank - static_cast<double>(below)) /
                     static_cast<double>(in_bucket);
}

Histogram::Histogram(std::vector<double> upper_bounds)
    : upper_bounds_(std::move(upper_bounds)),
      counts_(new std::atomic<uint64_t>[upper_bounds_.size() + 1]) {
  for (size_t i = 0; i < upper_bounds_.size(); ++i) {
    CHECK(std::isfinite(upper_bounds_[i])) << "histogram bound " << i << " is not finite";
    CHECK(i == 0 || upper_bounds_[i - 1] < upper_bounds_[i])
        << "histogram bounds must be strictly increasing";
  }
  for (size_t i = 0; i <= upper_bounds_.size(); ++i) counts_[i].store(0);
}

void Histogram::Observe(double v) {
  // Bucket i holds v <= upper_bounds_[i]; NaN and anything above the last go to +Inf.
  size_t i = std::isnan(v) ? upper_bounds_.size()
                           : std::lower_bound(upper_bounds_.begin(), upper_bounds_.end(), v) -
                                 upper_bounds_.begin();
  counts_[i].fetch_add(1, std::memory_order_relaxed);
  double sum = sum_.load(std::memory_order_relaxed);
  while (!sum_.compare_exchange_weak(sum, sum + v, std::memory_order_relaxed)) {
  }
}

HistogramSnapshot Histogram::Snapshot() const {
  HistogramSnapshot s;
  s.upper_bounds = upper_bounds_;
  s.cumulative_counts.resize(upper_bounds_.size() + 1);
  for (size_t i = 0; i <= upper_bounds_.size(); ++i) {
    s.count += counts_[i].load(std::memory_order_relaxed);
    s.cumulative_counts[i] = s.count;
  }
  s.sum = sum_.load(std::memory_order_relaxed);
  return s;
}

struct MetricsRegistry::Entry {
  Entry(std::string name, std::string help, const char* type)
      : name(std::move(name)), help(std::move(help)), type(type) {}

  std::string name;
  std::string help;
  const char* type;  // "counter", "gauge" or "histogram"
  std::unique_ptr<Counter> counter;
  std::unique_ptr<Gauge> gauge;
  std::function<int64_t()> callback;
  std::unique_ptr<Histogram> histogram;
};

MetricsRegistry::MetricsRegistry() = default;
MetricsRegistry::~MetricsRegistry() = default;

void MetricsRegistry::Register(std::unique_ptr<Entry> entry) {
  CHECK(IsValidMetricName(entry->name)) << "invalid metric name '" << entry->name << "'";
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& e : entries_) {
    CHECK(e->name != entry->name) << "metric '" << entry->name << "' registered twice";
  }
  entries_.push_back(std::move(entry));
}

Counter* MetricsRegistry::AddCounter(const std::string& name, const std::string& help) {
  auto entry = std::make_unique<Entry>(name, help, "counter");
  Counter* counter = (entry->counter = std::make_unique<Counter>()).get();
  Register(std::move(entry));
  return counter;
}

Gauge* MetricsRegistry::AddGauge(const std::string& name, const std::string& help) {
  auto entry = std::make_unique<Entry>(name, help, "gauge");
  Gauge* gauge = (entry->gauge = std::make_unique<Gauge>()).get();
  Register(std::move(entry));
  return gauge;
}

void MetricsRegistry::AddCallbackGauge(const std::string& name, const std::string& help,
                                       std::function<int64_t()> fn) {
  CHECK(fn) << "callback gauge '" << name << "' needs a function";
  auto entry = std::make_unique<Entry>(name, help, "gauge");
  entry->callback = std::move(fn);
  Register(std::move(entry));
}

Histogram* MetricsRegistry::AddHistogram(const std::string& name, const std::string& help,
                                         std::vector<double> upper_bounds) {
  auto entry = std::make_unique<Entry>(name, help, "histogram");
  Histogram* histogram =
      (entry->histogram = std::make_unique<Histogram>(std::move(upper_bounds))).get();
  Register(std::move(entry));
  return histogram;
}

std::string MetricsRegistry::RenderPrometheus() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::string out;
  for (const auto& e : entries_) {
    out += "# HELP " + e->name + " " + EscapeHelp(e->help) + "\n";
    out += "# TYPE " + e->name + " " + e->type + "\n";
    if (e->counter) {
      out += e->name + " " + std::to_string(e->counter->value()) + "\n";
    } else if (e->gauge) {
      out += e->name + " " + std::to_string(e->gauge->value()) + "\n";
    } else if (e->callback) {
      out += e->name + " " + std::to_string(e->callback()) + "\n";
    } else {
      HistogramSnapshot s = e->histogram->Snapshot();
      for (size_t i = 0; i < s.cumulative_counts.size(); ++i) {
        std::string le = i < s.upper_bounds.size() ? FormatDouble(s.upper_bounds[i]) : "+Inf";
        out +=
            e->name + "_bucket{le=\"" + le + "\"} " + std::to_string(s.cumulative_counts[i]) + "\n";
      }
      out += e->name + "_sum " + FormatDouble(s.sum) + "\n";
      out += e->name + "_count " + std::to_string(s.count) + "\n";
    }
  }
  return out;
}

}  // namespace pact
