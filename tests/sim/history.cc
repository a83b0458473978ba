#include "tests/sim/history.h"

#include <cstdio>

namespace pact::sim {

void History::Add(const std::string& what) {
  char stamp[32];
  int64_t ms = clock_->elapsed_ms();
  std::snprintf(stamp, sizeof(stamp), "[%5lld.%03lld] ", static_cast<long long>(ms / 1000),
                static_cast<long long>(ms % 1000));
  lines_.push_back(stamp + what);
}

std::string History::Text(size_t tail) const {
  size_t first = tail == 0 || tail >= lines_.size() ? 0 : lines_.size() - tail;
  std::string out;
  if (first > 0) out += "  ... " + std::to_string(first) + " earlier lines ...\n";
  for (size_t i = first; i < lines_.size(); ++i) out += lines_[i] + "\n";
  return out;
}

}  // namespace pact::sim
