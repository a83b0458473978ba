// A backend that stores nothing: every statement succeeds with no rows and
// every branch votes COMMIT. The whole adapter, Thrift and coordinator path
// still runs, so pact-bench uses it to measure Pact's own cost. Never for data.
#pragma once

#include <memory>
#include <string>

#include "participant/backend.h"

namespace pact {

class NullBackend : public Backend {
 public:
  std::string Name() const override { return "null"; }
  Result<std::unique_ptr<Branch>> Begin(const std::string& txn_id) override;
  Result<std::vector<RecoveredBranch>> RecoverPrepared() override { return std::vector<RecoveredBranch>{}; }
  // It stores nothing, so a commit it is asked about again (its first answer
  // lost, or a recovery benchmark's re-drive) is as done as it will ever be.
  Result<bool> IsCommitted(const std::string&) override { return true; }
};

}  // namespace pact
