// Transaction ids carry their owner: "<coordinator>.<epoch>.<seq>", so any
// process can tell which coordinator to ask about a transaction.
#pragma once

#include <cstdint>
#include <string>

#include "common/status.h"

namespace pact {

struct TxnId {
  std::string coordinator;  // the owning coordinator's name
  int64_t epoch = 0;        // the owner's epoch when it began the transaction
  int64_t seq = 0;          // 1, 2, ... within that epoch

  std::string ToString() const;
  static Result<TxnId> Parse(const std::string& text);
};

// Coordinator and participant names: [A-Za-z0-9_-]{1,64}. No dots, so that a
// transaction id splits unambiguously.
bool IsValidName(const std::string& name);

// 16 random hex digits naming one run of a process (a participant's
// incarnation): two runs never share one.
std::string RandomIncarnation();

}  // namespace pact
