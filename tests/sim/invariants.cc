#include "tests/sim/invariants.h"

namespace pact::sim {

const char* ToldName(Told told) {
  switch (told) {
    case Told::kNothing: return "nothing";
    case Told::kCommitted: return "COMMITTED";
    case Told::kAborted: return "ABORTED";
    case Told::kTimedOut: return "TIMED_OUT";
    case Told::kRolledBack: return "ROLLED_BACK";
    case Told::kUnknown: return "unknown";
  }
  return "?";
}

namespace {
bool ToldNo(Told told) {
  return told == Told::kAborted || told == Told::kTimedOut || told == Told::kRolledBack;
}
}  // namespace

std::string Invariants::Names(const std::set<std::string>& names) {
  std::string out;
  for (const auto& n : names) out += (out.empty() ? "" : ",") + n;
  return "{" + out + "}";
}

void Invariants::Violation(const std::string& what) {
  violations_.push_back(what);
  history_->Add("VIOLATION: " + what);
}

void Invariants::CheckFence(const std::string& txn, const std::string& participant,
                            const char* effect) {
  if (deliveries_.empty() || deliveries_.back().participant != participant) return;
  const Fence& fence = deliveries_.back().fence;
  if (deliveries_.back().forged) {
    if (deliveries_.back().crashed) return;
    Violation("forgery: " + participant + " applied " + effect + " of " + txn +
              " on a forged message of coordinator " + fence.coordinator + " epoch " +
              std::to_string(fence.epoch));
    return;
  }
  int64_t highest = highest_epoch ? highest_epoch(participant) : 0;
  if (fence.epoch < highest) {
    Violation("fence: " + participant + " applied " + effect + " of " + txn +
              " on a message of coordinator epoch " + std::to_string(fence.epoch) +
              " after admitting epoch " + std::to_string(highest));
  }
}

void Invariants::BeginDelivery(const std::string& participant, const Fence& fence,
                               bool forged) {
  deliveries_.push_back({participant, fence, forged});
}

void Invariants::EndDelivery(const Status& answer) {
  Delivery delivery = deliveries_.back();
  deliveries_.pop_back();
  if (!delivery.forged) {
    if (answer.code() == StatusCode::kFenced) ++fenced_answers_;
    return;
  }
  if (answer.ok()) {
    Violation("forgery: " + delivery.participant + " accepted a forged message of coordinator " +
              delivery.fence.coordinator + " epoch " + std::to_string(delivery.fence.epoch));
  }
}

void Invariants::Crashed(const std::string& participant) {
  for (auto& d : deliveries_) {
    if (d.participant == participant) d.crashed = true;
  }
}

void Invariants::Wrote(const std::string& txn, const std::string& participant) {
  txns_[txn].wrote.insert(participant);
}

void Invariants::Prepared(const std::string& txn, const std::string& participant) {
  CheckFence(txn, participant, "a prepare");
}

void Invariants::Committed(const std::string& txn, const std::string& participant) {
  CheckFence(txn, participant, "a commit");
  Txn& t = txns_[txn];
  t.committed.insert(participant);
  if (!t.rolled_back.empty()) {
    Violation("atomicity: " + txn + " committed at " + participant + " but its work at " +
              Names(t.rolled_back) + " was rolled back");
  }
  if (ToldNo(t.told)) {
    Violation("outcome: " + txn + " committed at " + participant + " but the client was told " +
              ToldName(t.told));
  }
}

void Invariants::RolledBack(const std::string& txn, const std::string& participant) {
  CheckFence(txn, participant, "a rollback");
  Txn& t = txns_[txn];
  t.rolled_back.insert(participant);
  if (!t.committed.empty()) {
    Violation("atomicity: " + txn + " rolled back at " + participant + " but committed at " +
              Names(t.committed));
  }
  if (t.told == Told::kCommitted) {
    Violation("outcome: " + txn + " rolled back at " + participant +
              " but the client was told COMMITTED");
  }
}

void Invariants::Tell(const std::string& txn, Told told) {
  Txn& t = txns_[txn];
  bool definite = told != Told::kUnknown && told != Told::kNothing;
  bool was_definite = t.told != Told::kUnknown && t.told != Told::kNothing;
  if (definite && was_definite && (told == Told::kCommitted) != (t.told == Told::kCommitted)) {
    Violation("outcome: the client of " + txn + " was told " + ToldName(t.told) + ", then " +
              ToldName(told));
  }
  if (!definite && was_definite) return;  // keep the definite answer
  t.told = told;
  if (told == Told::kCommitted && !t.rolled_back.empty()) {
    Violation("outcome: client told COMMITTED for " + txn + " whose work at " +
              Names(t.rolled_back) + " was rolled back");
  }
  if (ToldNo(told) && !t.committed.empty()) {
    Violation("outcome: client told " + std::string(ToldName(told)) + " for " + txn +
              " which committed at " + Names(t.committed));
  }
}

void Invariants::CheckOutcomes() {
  for (const auto& [txn, t] : txns_) {
    if (!t.committed.empty() && t.committed != t.wrote) {
      Violation("atomicity: " + txn + " committed at " + Names(t.committed) + " but wrote at " +
                Names(t.wrote));
    }
    if (t.told == Told::kCommitted && t.committed != t.wrote) {
      Violation("outcome: client told COMMITTED for " + txn + " which wrote at " +
                Names(t.wrote) + " and committed at " + Names(t.committed));
    }
  }
}

}  // namespace pact::sim
