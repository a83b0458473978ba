// A latency histogram with fixed log-linear buckets: memory stays constant
// however long a run is, any two histograms merge by adding counts, and a
// percentile is off by at most one bucket width (1/16, about 6%).
#pragma once

#include <array>
#include <cstdint>

namespace pact {

class LatencyHistogram {
 public:
  // Values below 16 us get a bucket each; above, every power of two is cut
  // into 16 buckets. Up to 2^40 us (12 days), beyond which values clamp.
  static constexpr int kSubBuckets = 16;
  static constexpr int kMaxExponent = 40;
  static constexpr int kBuckets = kSubBuckets + (kMaxExponent - 4) * kSubBuckets;

  void Record(int64_t micros);
  void Merge(const LatencyHistogram& other);

  int64_t count() const { return count_; }
  int64_t max_micros() const { return max_; }
  double mean_micros() const { return count_ == 0 ? 0 : static_cast<double>(sum_) / count_; }
  // The upper bound of the bucket that holds the q-quantile (0 <= q <= 1),
  // capped at the largest value seen; 0 when empty.
  int64_t PercentileMicros(double q) const;

 private:
  static int BucketFor(int64_t micros);
  static int64_t UpperBound(int bucket);

  std::array<int64_t, kBuckets> counts_{};
  int64_t count_ = 0;
  int64_t sum_ = 0;
  int64_t max_ = 0;
};

}  // namespace pact
