// The simulation's only source of randomness: one std::mt19937_64 seeded
// from the seed. Helpers use plain modulo arithmetic rather than the
// standard distributions, whose output may differ between libraries.
#pragma once

#include <cstdint>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "common/runtime.h"

namespace pact::sim {

class SimRandom {
 public:
  explicit SimRandom(uint64_t seed) : engine_(seed) {}

  uint64_t Next() { return engine_(); }
  // Uniform in [0, n); 0 when n is 0.
  uint64_t Below(uint64_t n) { return n == 0 ? 0 : Next() % n; }
  // Uniform in [lo, hi].
  int64_t Range(int64_t lo, int64_t hi) { return lo + static_cast<int64_t>(Below(hi - lo + 1)); }
  double Unit() { return static_cast<double>(Next() >> 11) / 9007199254740992.0; }
  bool Chance(double p) { return p > 0 && Unit() < p; }

  template <typename T>
  const T& Pick(const std::vector<T>& items) {
    return items[Below(items.size())];
  }
  template <typename T>
  void Shuffle(std::vector<T>& items) {
    for (size_t i = items.size(); i > 1; --i) std::swap(items[i - 1], items[Below(i)]);
  }
  std::string Hex(int digits) {
    static const char kHex[] = "0123456789abcdef";
    std::string out;
    uint64_t v = Next();
    for (int i = 0; i < digits; ++i, v >>= 4) out += kHex[v & 0xf];
    return out;
  }

 private:
  std::mt19937_64 engine_;
};

// Runs the fan-out's calls one after another, in an order the seed chooses.
inline FanOut SequentialFanOut(SimRandom* random) {
  return [random](size_t n, const std::function<void(size_t)>& fn) {
    std::vector<size_t> order(n);
    for (size_t i = 0; i < n; ++i) order[i] = i;
    random->Shuffle(order);
    for (size_t i : order) fn(i);
  };
}

}  // namespace pact::sim
