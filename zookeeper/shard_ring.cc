#include "zookeeper/shard_ring.h"

#include <algorithm>

namespace pact {

uint64_t StableHash64(std::string_view bytes) {
  // FNV-1a 64 ...
  uint64_t h = 14695981039346656037ULL;
  for (unsigned char c : bytes) {
    h ^= c;
    h *= 1099511628211ULL;
  }
  // ... then MurmurHash3's fmix64: FNV alone leaves names that differ only
  // in their last characters ("c1#7", "c1#8") close together on the ring.
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdULL;
  h ^= h >> 33;
  h *= 0xc4ceb9fe1a85ec53ULL;
  h ^= h >> 33;
  return h;
}

ShardRing::ShardRing(std::vector<std::string> shards, int virtual_nodes)
    : shards_(std::move(shards)), virtual_nodes_(virtual_nodes) {
  points_.reserve(shards_.size() * static_cast<size_t>(virtual_nodes_));
  for (uint32_t s = 0; s < shards_.size(); ++s) {
    for (int v = 0; v < virtual_nodes_; ++v) {
      points_.emplace_back(StableHash64(shards_[s] + "#" + std::to_string(v)), s);
    }
  }
  // shards_ is sorted, so two shards on the same point are ordered by name:
  // the ring does not depend on the order it was given the names in.
  std::sort(points_.begin(), points_.end());
}

Result<ShardRing> ShardRing::Build(std::vector<std::string> shards, int virtual_nodes) {
  if (shards.empty()) return Status::InvalidArgument("a shard ring needs a shard");
  if (virtual_nodes < 1) return Status::InvalidArgument("a shard needs a point on the ring");
  for (const std::string& name : shards) {
    if (name.empty()) return Status::InvalidArgument("a shard needs a name");
  }
  std::sort(shards.begin(), shards.end());
  shards.erase(std::unique(shards.begin(), shards.end()), shards.end());
  return ShardRing(std::move(shards), virtual_nodes);
}

const std::string& ShardRing::ShardFor(std::string_view key) const {
  const uint64_t h = StableHash64(key);
  // The first point at or after h; past the last point the ring wraps.
  auto it = std::lower_bound(points_.begin(), points_.end(), std::make_pair(h, uint32_t{0}));
  if (it == points_.end()) it = points_.begin();
  return shards_[it->second];
}

}  // namespace pact
