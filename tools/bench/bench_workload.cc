#include "tools/bench/bench_workload.h"

#include <algorithm>
#include <tuple>

#include "client/pact_client.h"

namespace pact {
namespace {

constexpr int64_t kMaxAmount = 10;
const char kUpdateSql[] = "UPDATE accounts SET balance = balance + ?1 WHERE id = ?2";

}  // namespace

std::vector<Update> NextTransfer(const WorkloadOptions& options, std::mt19937_64& rng) {
  std::uniform_int_distribution<int64_t> account(1, options.accounts);
  std::uniform_int_distribution<int64_t> amount(1, kMaxAmount);
  const int64_t a = amount(rng);
  const int creditors = std::max(1, options.participants - 1);
  std::vector<Update> transfer;
  // statements debits of creditors*a on the first participant, and
  // statements credits of a on each creditor: the totals cancel.
  for (int s = 0; s < options.statements; ++s) {
    transfer.push_back({0, account(rng), -a * creditors});
  }
  for (int p = options.participants == 1 ? 0 : 1; p < options.participants; ++p) {
    for (int s = 0; s < options.statements; ++s) transfer.push_back({p, account(rng), a});
  }
  std::sort(transfer.begin(), transfer.end(), [](const Update& x, const Update& y) {
    return std::tie(x.participant, x.account) < std::tie(y.participant, y.account);
  });
  return transfer;
}

Result<std::unique_ptr<TransferDriver>> PactTransferDriver::Create(
    const std::string& coordinator, std::vector<std::string> participants, bool expect_one_row,
    ClientOptions options) {
  ASSIGN_OR_RETURN(std::unique_ptr<Client> client, Client::Connect(coordinator, options));
  return std::unique_ptr<TransferDriver>(
      new PactTransferDriver(std::move(client), std::move(participants), expect_one_row));
}

PactTransferDriver::PactTransferDriver(std::unique_ptr<Client> client,
                                       std::vector<std::string> participants, bool expect_one_row)
    : client_(std::move(client)),
      participants_(std::move(participants)),
      expect_one_row_(expect_one_row) {}

PactTransferDriver::~PactTransferDriver() = default;

TxnResult PactTransferDriver::Run(const std::vector<Update>& transfer) {
  auto txn = client_->Begin();
  if (!txn.ok()) return {TxnOutcome::kError, txn.status().WithContext("begin")};
  for (const Update& u : transfer) {
    auto updated = (*txn)->Execute(participants_[u.participant], kUpdateSql, {u.delta, u.account});
    Status st = updated.status();
    if (st.ok() && expect_one_row_ && updated->affected_rows != 1) {
      st = Status::Internal("UPDATE of account " + std::to_string(u.account) + " changed " +
                            std::to_string(updated->affected_rows) + " rows");
    }
    if (!st.ok()) {
      // Best effort: should this fail, the transaction's deadline rolls it back.
      (void)(*txn)->Rollback();
      return {TxnOutcome::kError, st.WithContext("execute on " + participants_[u.participant])};
    }
  }
  Status st = (*txn)->Commit();
  if (st.ok()) return {TxnOutcome::kCommitted, st};
  if (st.code() == StatusCode::kAborted || st.code() == StatusCode::kTimedOut) {
    return {TxnOutcome::kAborted, st};
  }
  return {TxnOutcome::kError, st.WithContext("commit")};
}

}  // namespace pact
