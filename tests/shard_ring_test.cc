// ShardRing: a key's shard depends only on the set of shard names; adding a
// shard moves at most 1.2 x its fair share of 100,000 keys, all of them to the
// new shard; removing one moves only its own keys; every shard gets its share
// of the load within 25%.
#include "zookeeper/shard_ring.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <iostream>
#include <map>
#include <string>
#include <vector>

namespace pact {
namespace {

constexpr int kKeys = 100000;

std::vector<std::string> Shards(int n) {
  std::vector<std::string> names;
  for (int i = 1; i <= n; ++i) names.push_back("c" + std::to_string(i));
  return names;
}

std::string Key(int i) { return "order-" + std::to_string(i); }

ShardRing Ring(std::vector<std::string> shards) {
  auto ring = ShardRing::Build(std::move(shards));
  EXPECT_TRUE(ring.ok()) << ring.status().ToString();
  return std::move(ring).value();
}

TEST(ShardRingTest, StableHashIsFnv1aWithTheMurmurFinalizerOnEveryBuild) {
  // Values of an independent implementation: a change here would move every
  // key of every deployed shard map.
  EXPECT_EQ(StableHash64(""), 0xefd01f60ba992926ULL);
  EXPECT_EQ(StableHash64("a"), 0x82a2a958a9bece5bULL);
  EXPECT_EQ(StableHash64("order-42"), 0x8e47543c313c6386ULL);
  EXPECT_EQ(StableHash64("c1#0"), 0xda3b89863767852cULL);
}

TEST(ShardRingTest, SameKeyReachesTheSameShardWhateverOrderTheShardsCameIn) {
  const ShardRing sorted = Ring({"c1", "c2", "c3", "c4", "c5"});
  const ShardRing shuffled = Ring({"c4", "c2", "c5", "c1", "c3", "c2"});  // and a duplicate
  EXPECT_EQ(shuffled.shards(), sorted.shards());
  std::map<std::string, int> used;
  for (int i = 0; i < kKeys; ++i) {
    const std::string& shard = sorted.ShardFor(Key(i));
    ASSERT_EQ(shuffled.ShardFor(Key(i)), shard) << Key(i);
    ASSERT_EQ(sorted.ShardFor(Key(i)), shard) << Key(i);
    ++used[shard];
  }
  EXPECT_EQ(used.size(), 5u);
}

TEST(ShardRingTest, AddingAShardMovesAtMostItsShareAndOnlyToTheNewShard) {
  for (int n : {1, 2, 3, 7}) {
    const ShardRing before = Ring(Shards(n));
    const ShardRing after = Ring(Shards(n + 1));
    const std::string added = "c" + std::to_string(n + 1);
    int moved = 0;
    for (int i = 0; i < kKeys; ++i) {
      const std::string& was = before.ShardFor(Key(i));
      const std::string& is = after.ShardFor(Key(i));
      if (was == is) continue;
      ++moved;
      ASSERT_EQ(is, added) << Key(i) << " moved from " << was << " to an old shard";
    }
    const double fair = static_cast<double>(kKeys) / (n + 1);
    std::cout << n << " -> " << n + 1 << " shards: " << moved << " of " << kKeys
              << " keys moved (fair share " << static_cast<int>(fair) << ")\n";
    EXPECT_LE(moved, 1.2 * fair) << n << " -> " << n + 1 << " shards";
    EXPECT_GT(moved, 0);
  }
}

TEST(ShardRingTest, RemovingAShardMovesOnlyItsOwnKeys) {
  const ShardRing before = Ring(Shards(4));
  const ShardRing after = Ring({"c1", "c3", "c4"});
  int orphans = 0;
  for (int i = 0; i < kKeys; ++i) {
    const std::string& was = before.ShardFor(Key(i));
    const std::string& is = after.ShardFor(Key(i));
    if (was == "c2") {
      ++orphans;
      ASSERT_NE(is, "c2");
    } else {
      ASSERT_EQ(is, was) << Key(i) << " moved although its shard stayed";
    }
  }
  EXPECT_GT(orphans, 0);
}

TEST(ShardRingTest, EveryShardGetsItsShareOfTheKeysWithinAQuarter) {
  for (int n : {2, 3, 4, 8, 16}) {
    const ShardRing ring = Ring(Shards(n));
    std::map<std::string, int> load;
    for (int i = 0; i < kKeys; ++i) ++load[ring.ShardFor(Key(i))];
    ASSERT_EQ(static_cast<int>(load.size()), n);
    const double mean = static_cast<double>(kKeys) / n;
    for (const auto& [shard, keys] : load) {
      EXPECT_GE(keys, 0.75 * mean) << shard << " of " << n;
      EXPECT_LE(keys, 1.25 * mean) << shard << " of " << n;
    }
    const auto [least, most] = std::minmax_element(
        load.begin(), load.end(), [](const auto& a, const auto& b) { return a.second < b.second; });
    std::cout << n << " shards: " << least->second << " to " << most->second
              << " keys each (mean " << static_cast<int>(mean) << ")\n";
  }
}

TEST(ShardRingTest, BuildRefusesNoShardAnEmptyNameAndNoVirtualNodes) {
  EXPECT_EQ(ShardRing::Build({}).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(ShardRing::Build({"c1", ""}).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(ShardRing::Build({"c1"}, 0).status().code(), StatusCode::kInvalidArgument);
  auto one = ShardRing::Build({"c1"});
  ASSERT_TRUE(one.ok());
  EXPECT_EQ(one->ShardFor("anything"), "c1");
  EXPECT_EQ(one->ShardFor(""), "c1");
}

}  // namespace
}  // namespace pact
