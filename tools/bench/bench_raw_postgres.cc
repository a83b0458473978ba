#include "tools/bench/bench_raw_postgres.h"

namespace pact {
namespace {

const char kUpdateSql[] = "UPDATE accounts SET balance = balance + $1 WHERE id = $2";
constexpr int kCommitAttempts = 3;

}  // namespace

Result<std::unique_ptr<TransferDriver>> RawPostgresDriver::Create(
    const std::vector<std::string>& conninfo, const std::string& run, int client) {
  std::vector<std::unique_ptr<PgConnection>> connections;
  for (const auto& c : conninfo) {
    ASSIGN_OR_RETURN(auto conn, PgConnection::Connect(c));
    connections.push_back(std::move(conn));
  }
  return std::unique_ptr<TransferDriver>(new RawPostgresDriver(
      std::move(connections), "raw-" + run + "-" + std::to_string(client) + "-"));
}

std::string RawPostgresDriver::Gid(size_t database) const {
  return gid_prefix_ + std::to_string(seq_) + "-" + std::to_string(database);
}

void RawPostgresDriver::RollbackOpen() {
  for (auto& conn : connections_) (void)conn->Exec("ROLLBACK");
}

Status RawPostgresDriver::PrepareAll() {
  std::vector<Status> sent(connections_.size());
  for (size_t i = 0; i < connections_.size(); ++i) {
    sent[i] = connections_[i]->Send("PREPARE TRANSACTION '" + Gid(i) + "'");
  }
  Status first_failure;
  std::vector<bool> prepared(connections_.size(), false);
  for (size_t i = 0; i < connections_.size(); ++i) {
    Status st = sent[i].ok() ? connections_[i]->Finish() : sent[i];
    prepared[i] = st.ok();
    if (!st.ok() && first_failure.ok()) first_failure = st;
  }
  if (first_failure.ok()) return first_failure;
  // A failed PREPARE TRANSACTION has already rolled its own branch back.
  for (size_t i = 0; i < connections_.size(); ++i) {
    if (prepared[i]) (void)connections_[i]->Exec("ROLLBACK PREPARED '" + Gid(i) + "'");
  }
  return Status::Aborted("prepare failed: " + first_failure.message());
}

Status RawPostgresDriver::CommitAll() {
  std::vector<Status> sent(connections_.size());
  for (size_t i = 0; i < connections_.size(); ++i) {
    sent[i] = connections_[i]->Send("COMMIT PREPARED '" + Gid(i) + "'");
  }
  Status failure;
  for (size_t i = 0; i < connections_.size(); ++i) {
    Status st = sent[i].ok() ? connections_[i]->Finish() : sent[i];
    // The decision is COMMIT: it must reach every branch, so ask again.
    for (int attempt = 1; !st.ok() && attempt < kCommitAttempts; ++attempt) {
      st = connections_[i]->Exec("COMMIT PREPARED '" + Gid(i) + "'");
    }
    if (!st.ok() && failure.ok()) failure = st;
  }
  return failure;
}

TxnResult RawPostgresDriver::Run(const std::vector<Update>& transfer) {
  ++seq_;
  for (auto& conn : connections_) {
    Status st = conn->Exec("BEGIN");
    if (!st.ok()) {
      RollbackOpen();
      return {TxnOutcome::kError, st};
    }
  }
  for (const Update& u : transfer) {
    auto changed = connections_[u.participant]->ExecParams(
        kUpdateSql, {std::to_string(u.delta), std::to_string(u.account)});
    Status st = changed.status();
    if (st.ok() && *changed != 1) {
      st = Status::Internal("UPDATE of account " + std::to_string(u.account) + " changed " +
                            std::to_string(*changed) + " rows");
    }
    if (!st.ok()) {
      RollbackOpen();
      return {TxnOutcome::kError, st.WithContext("database " + std::to_string(u.participant))};
    }
  }
  Status st = PrepareAll();
  if (!st.ok()) return {TxnOutcome::kAborted, st};
  st = CommitAll();
  if (!st.ok()) return {TxnOutcome::kError, st.WithContext("commit prepared")};
  return {TxnOutcome::kCommitted, Status::Ok()};
}

}  // namespace pact
