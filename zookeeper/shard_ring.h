// Which shard owns a key: consistent hashing over the shard names, each shard
// placed on the ring at many points (virtual nodes), a key going to the first
// point at or after its own hash. Adding a shard to N moves only the keys the
// new shard takes over, about 1/(N+1) of them; removing one moves only its own
// keys; and the answer depends only on the set of names, never on their order
// or on this build: the hash is FNV-1a 64 with a fixed finalizer, not std::hash.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/status.h"

namespace pact {

// A hash whose values are part of the ring's contract: the same bytes give
// the same value on every build and machine.
uint64_t StableHash64(std::string_view bytes);

class ShardRing {
 public:
  // Enough points that each shard's share of keys stays within about 10% of
  // 1/N for 2 to 16 shards (256 left it at up to 22%); a ring of 16 shards
  // is 16k points, 256 KB.
  static constexpr int kDefaultVirtualNodes = 1024;

  // kInvalidArgument for no shard, an empty name or virtual_nodes < 1.
  // Duplicate names count once.
  static Result<ShardRing> Build(std::vector<std::string> shards,
                                 int virtual_nodes = kDefaultVirtualNodes);

  // The shard that owns `key`.
  const std::string& ShardFor(std::string_view key) const;

  // The shard names, sorted.
  const std::vector<std::string>& shards() const { return shards_; }
  int virtual_nodes() const { return virtual_nodes_; }

 private:
  ShardRing(std::vector<std::string> shards, int virtual_nodes);

  std::vector<std::string> shards_;
  int virtual_nodes_;
  // (point on the ring, index into shards_), sorted.
  std::vector<std::pair<uint64_t, uint32_t>> points_;
};

}  // namespace pact
