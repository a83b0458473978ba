#include "participant/backends/null/null_backend.h"

namespace pact {
namespace {

class NullBranch : public Branch {
 public:
  Result<QueryResult> Execute(const std::string&, const std::vector<SqlValue>&) override {
    return QueryResult{};
  }
  // COMMIT rather than READ_ONLY, so the benchmark exercises both phases.
  Result<Vote> Prepare(std::string*) override { return Vote::kCommit; }
  Status CommitOnePhase() override { return Status::Ok(); }
  Status CommitPrepared() override { return Status::Ok(); }
  Status Rollback() override { return Status::Ok(); }
};

}  // namespace

Result<std::unique_ptr<Branch>> NullBackend::Begin(const std::string&) {
  return std::unique_ptr<Branch>(new NullBranch());
}

}  // namespace pact
