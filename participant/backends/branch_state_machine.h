// The state of one branch of a backend, and the one function that changes
// it. Each backend lists its states (one comment each: what it means
// and which durable record backs it) and the moves its protocol allows, in
// one table; MoveTo takes only those. A backend calls MoveTo once the
// database has made the new state durable (persist, then publish), so the
// state in memory never runs ahead of the server.
#pragma once

#include <glog/logging.h>

#include <cstddef>
#include <string>
#include <utility>

#include "common/state_moves.h"
#include "common/status.h"

namespace pact {

template <typename State>
class BranchStateMachine {
 public:
  using Namer = const char* (*)(State);

  // `moves` must outlive the machine (a static table); `name` describes a
  // state in messages; `branch` names the branch in the log.
  template <size_t N>
  BranchStateMachine(State initial, const StateMove<State> (&moves)[N], Namer name,
                     std::string branch)
      : state_(initial), moves_(moves), move_count_(N), name_(name), branch_(std::move(branch)) {}

  State state() const { return state_; }
  bool Is(State state) const { return state_ == state; }
  const char* Name() const { return name_(state_); }

  // A verb's precondition: Ok when the branch is in `needed`, else
  // kFailedPrecondition saying what it is and what it cannot do.
  Status Require(State needed, const char* cannot) const {
    if (state_ == needed) return Status::Ok();
    return Status::FailedPrecondition("branch " + branch_ + " is " + Name() + ": cannot " + cannot);
  }

  // Ok if already there; a move the table does not list is refused, logged,
  // and leaves the state as it was.
  Status MoveTo(State next) {
    if (next == state_) return Status::Ok();
    if (IsListedMove(moves_, move_count_, state_, next)) {
      state_ = next;
      return Status::Ok();
    }
    const std::string refused = std::string("branch ") + branch_ + " cannot move from " +
                                name_(state_) + " to " + name_(next);
    LOG(ERROR) << refused;
    return Status::Internal(refused);
  }

 private:
  State state_;
  const StateMove<State>* const moves_;
  const size_t move_count_;
  const Namer name_;
  const std::string branch_;
};

}  // namespace pact
