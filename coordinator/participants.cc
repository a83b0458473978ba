#include "coordinator/participants.h"

namespace pact {

std::vector<Result<Vote>> Participants::PrepareEach(const std::vector<EnlistedBranch>& branches,
                                                    const std::string& txn_id, int timeout_ms,
                                                    const FanOut& fan_out,
                                                    const Answered& answered) {
  std::vector<Result<Vote>> votes(branches.size(), Status::Internal("prepare not sent"));
  fan_out(branches.size(), [&](size_t i) {
    votes[i] = Prepare(branches[i].participant, txn_id, branches[i].opening, timeout_ms);
    if (answered) answered(i);
  });
  return votes;
}

std::vector<Status> Participants::CommitEach(const std::vector<std::string>& participants,
                                             const std::string& txn_id, const FanOut& fan_out,
                                             const Answered& answered) {
  std::vector<Status> results(participants.size());
  fan_out(participants.size(), [&](size_t i) {
    results[i] = Commit(participants[i], txn_id, /*one_phase=*/false);
    if (answered) answered(i);
  });
  return results;
}

std::vector<Status> Participants::RollbackEach(const std::vector<std::string>& participants,
                                               const std::string& txn_id,
                                               const FanOut& fan_out) {
  std::vector<Status> results(participants.size());
  fan_out(participants.size(),
          [&](size_t i) { results[i] = Rollback(participants[i], txn_id); });
  return results;
}

}  // namespace pact
