// The shape every state machine in Pact shares: its allowed moves written as
// one table of (from, to) pairs next to the states' comments, and one lookup.
// Each machine keeps its own single transition function, which consults its
// table before it persists and publishes.
#pragma once

#include <cstddef>

namespace pact {

template <typename State>
struct StateMove {
  State from;
  State to;
};

// Whether the `count` moves at `moves` list from -> to.
template <typename State>
constexpr bool IsListedMove(const StateMove<State>* moves, size_t count, State from, State to) {
  for (size_t i = 0; i < count; ++i) {
    if (moves[i].from == from && moves[i].to == to) return true;
  }
  return false;
}

template <typename State, size_t N>
constexpr bool IsListedMove(const StateMove<State> (&moves)[N], State from, State to) {
  return IsListedMove(moves, N, from, to);
}

}  // namespace pact
