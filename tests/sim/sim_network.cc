#include "tests/sim/sim_network.h"

namespace pact::sim {

std::string Show(const Status& status) {
  if (status.ok()) return "OK";
  std::string text = status.ToString();
  return text.size() > 160 ? text.substr(0, 160) + "..." : text;
}
std::string ShowValue(Vote vote) { return VoteName(vote); }
std::string ShowValue(Outcome outcome) { return OutcomeName(outcome); }
std::string ShowValue(int64_t value) { return std::to_string(value); }
std::string ShowValue(const BeginInfo& info) { return info.txn_id; }
std::string ShowValue(const IdBlock& block) {
  return "ids " + std::to_string(block.first_seq) + ".." +
         std::to_string(block.first_seq + block.count - 1) + " of epoch " +
         std::to_string(block.epoch);
}
std::string ShowValue(const CommitOutcome& outcome) {
  return std::string(TxnStateName(outcome.state)) +
         (outcome.reason.empty() ? "" : " (" + outcome.reason + ")");
}
std::string ShowValue(const QueryResult& result) {
  return "OK (" + std::to_string(result.affected_rows) + " row)";
}
std::string ShowValue(const std::vector<BranchSnapshot>& branches) {
  std::string out;
  for (const auto& b : branches) out += (out.empty() ? "" : ",") + b.txn_id;
  return "[" + out + "]";
}

std::string ShowValue(const TxnSnapshot& txn) { return TxnStateName(txn.state); }
std::string ShowValue(const CoordinatorIdentity& identity) {
  return identity.name + " epoch " + std::to_string(identity.epoch);
}

void SimNetwork::Partition(const std::string& a, const std::string& b, int64_t ms) {
  partitions_[std::minmax(a, b)] = clock_->elapsed_ms() + ms;
  history_->Add("network: partition " + a + " | " + b + " for " + std::to_string(ms) + " ms");
}

bool SimNetwork::Partitioned(const std::string& a, const std::string& b) const {
  auto it = partitions_.find(std::minmax(a, b));
  return it != partitions_.end() && it->second > clock_->elapsed_ms();
}

void SimNetwork::DeliverOneHeld() {
  if (held_.empty()) return;
  size_t i = random_->Below(held_.size());
  Held held = std::move(held_[i]);
  held_.erase(held_.begin() + static_cast<long>(i));
  if (!held.to->Alive(held.incarnation) || held.to->asleep) {
    history_->Add("held " + held.what + " to " + held.to->name() + " dropped (it " +
                  (held.to->asleep ? "is paused)" : "restarted)"));
    return;
  }
  std::string answer = held.deliver();
  history_->Add("held " + held.what + " delivered late to " + held.to->name() + " = " + answer);
}

}  // namespace pact::sim
