// The transaction ids a coordinator handed out in blocks (reserveTxnIds), and
// which of them have become transactions. A client begins a transaction from
// its block without a round trip, so the coordinator first hears of it at its
// commit (or rollback); it must then tell a first commit, which starts the
// protocol, from a repeated one whose transaction finished and was forgotten,
// which must not start it again (the branches are gone, and a second run
// would answer ABORTED for a transaction that committed).
#pragma once

#include <cstdint>
#include <map>
#include <vector>

#include "common/clock.h"

namespace pact {

class IdReservations {
 public:
  // Reserves seq in [first, first + count) until `expires`: by then no first
  // commit of one of them can still arrive (see Coordinator::ReserveIds).
  void Add(int64_t first, int count, TimePoint expires);

  // True exactly once per reserved seq: the first time it is used while its
  // block lasts. False for a seq used before, or outside every live block.
  bool Use(int64_t seq);

  // Whether seq is reserved in a live block and not used yet.
  bool IsUnused(int64_t seq) const;

  // Forgets the blocks that expired by `now`.
  void DropExpired(TimePoint now);

  // Reserved ids not used yet, over all live blocks.
  int64_t unused() const { return unused_; }

 private:
  struct Block {
    std::vector<bool> used;
    int left;  // ids not used yet; the block goes when it reaches 0
    TimePoint expires;
  };
  // The live block holding seq, or blocks_.end().
  std::map<int64_t, Block>::iterator BlockOf(int64_t seq);
  std::map<int64_t, Block>::const_iterator BlockOf(int64_t seq) const;

  std::map<int64_t, Block> blocks_;  // by first seq
  int64_t unused_ = 0;
};

}  // namespace pact
