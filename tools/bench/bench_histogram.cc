#include "tools/bench/bench_histogram.h"

#include <algorithm>
#include <cmath>

namespace pact {

int LatencyHistogram::BucketFor(int64_t micros) {
  if (micros < kSubBuckets) return static_cast<int>(std::max<int64_t>(micros, 0));
  int exponent = 63 - __builtin_clzll(static_cast<uint64_t>(micros));  // >= 4
  if (exponent >= kMaxExponent) return kBuckets - 1;
  int shift = exponent - 4;
  int mantissa = static_cast<int>((micros >> shift) & (kSubBuckets - 1));
  return kSubBuckets + shift * kSubBuckets + mantissa;
}

int64_t LatencyHistogram::UpperBound(int bucket) {
  if (bucket < kSubBuckets) return bucket;
  int shift = (bucket - kSubBuckets) / kSubBuckets;
  int mantissa = (bucket - kSubBuckets) % kSubBuckets;
  return ((int64_t{kSubBuckets} + mantissa + 1) << shift) - 1;
}

void LatencyHistogram::Record(int64_t micros) {
  micros = std::max<int64_t>(micros, 0);
  counts_[BucketFor(micros)]++;
  count_++;
  sum_ += micros;
  max_ = std::max(max_, micros);
}

void LatencyHistogram::Merge(const LatencyHistogram& other) {
  for (int i = 0; i < kBuckets; ++i) counts_[i] += other.counts_[i];
  count_ += other.count_;
  sum_ += other.sum_;
  max_ = std::max(max_, other.max_);
}

int64_t LatencyHistogram::PercentileMicros(double q) const {
  if (count_ == 0) return 0;
  q = std::clamp(q, 0.0, 1.0);
  // The rank of the sample the quantile names, 1-based: p50 of 2 samples is
  // the first, p100 is the last.
  int64_t rank = std::max<int64_t>(1, static_cast<int64_t>(std::ceil(q * count_)));
  int64_t seen = 0;
  for (int i = 0; i < kBuckets; ++i) {
    seen += counts_[i];
    if (seen >= rank) return std::min(UpperBound(i), max_);
  }
  return max_;
}

}  // namespace pact
