#include "coordinator/id_reservations.h"

namespace pact {

void IdReservations::Add(int64_t first, int count, TimePoint expires) {
  if (count <= 0) return;
  blocks_.emplace(first, Block{std::vector<bool>(count, false), count, expires});
  unused_ += count;
}

std::map<int64_t, IdReservations::Block>::const_iterator IdReservations::BlockOf(
    int64_t seq) const {
  auto it = blocks_.upper_bound(seq);
  if (it == blocks_.begin()) return blocks_.end();
  --it;
  if (seq - it->first >= static_cast<int64_t>(it->second.used.size())) return blocks_.end();
  return it;
}

std::map<int64_t, IdReservations::Block>::iterator IdReservations::BlockOf(int64_t seq) {
  auto found = static_cast<const IdReservations*>(this)->BlockOf(seq);
  return blocks_.erase(found, found);  // the same position, not const
}

bool IdReservations::IsUnused(int64_t seq) const {
  auto it = BlockOf(seq);
  return it != blocks_.end() && !it->second.used[seq - it->first];
}

bool IdReservations::Use(int64_t seq) {
  auto it = BlockOf(seq);
  if (it == blocks_.end()) return false;
  Block& block = it->second;
  int64_t offset = seq - it->first;
  if (block.used[offset]) return false;
  block.used[offset] = true;
  --unused_;
  // Every id used: each is now a transaction in the table, or one that
  // finished and is forgotten, which a missing block means as well.
  if (--block.left == 0) blocks_.erase(it);
  return true;
}

void IdReservations::DropExpired(TimePoint now) {
  for (auto it = blocks_.begin(); it != blocks_.end();) {
    if (it->second.expires <= now) {
      unused_ -= it->second.left;
      it = blocks_.erase(it);
    } else {
      ++it;
    }
  }
}

}  // namespace pact
