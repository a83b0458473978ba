// What one benchmark transaction does, and the drivers that run it: a
// transfer that debits accounts on the first participant and credits
// accounts on the others by the same total, so the sum of every balance
// never changes whatever commits or aborts.
#pragma once

#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "client/pact_client.h"
#include "common/status.h"
#include "rpc/rpc_auth.h"

namespace pact {

struct WorkloadOptions {
  int participants = 2;
  int statements = 1;       // UPDATEs per branch
  int64_t accounts = 1000;  // rows per participant, ids 1..accounts
};

// balance += delta on one row.
struct Update {
  int participant = 0;  // index into the participant list
  int64_t account = 0;
  int64_t delta = 0;
};

// One transfer, ordered by participant and then account: every transaction
// locks rows in the same order, so concurrent transfers cannot deadlock. With
// one participant it both debits and credits there.
std::vector<Update> NextTransfer(const WorkloadOptions& options, std::mt19937_64& rng);

enum class TxnOutcome {
  kCommitted,
  kAborted,  // the system rolled it back (a vote, a deadline): expected under load
  kError,    // anything else, e.g. a statement failed; the transfer was rolled back
};

struct TxnResult {
  TxnOutcome outcome = TxnOutcome::kError;
  Status status;  // why, unless committed
};

// Runs transfers for one client; used by one thread only.
class TransferDriver {
 public:
  virtual ~TransferDriver() = default;
  virtual TxnResult Run(const std::vector<Update>& transfer) = 0;
};

// Through Pact: begin at the coordinator, one UPDATE per row through the
// owning participant's adapter, commit. Owns its Client: no pool is shared
// between benchmark clients.
class PactTransferDriver : public TransferDriver {
 public:
  // expect_one_row: an UPDATE must change exactly one row (false for the null
  // backend, which stores nothing).
  static Result<std::unique_ptr<TransferDriver>> Create(const std::string& coordinator,
                                                        std::vector<std::string> participants,
                                                        bool expect_one_row,
                                                        ClientOptions options);
  ~PactTransferDriver() override;
  TxnResult Run(const std::vector<Update>& transfer) override;

 private:
  PactTransferDriver(std::unique_ptr<Client> client, std::vector<std::string> participants,
                     bool expect_one_row);

  std::unique_ptr<Client> client_;
  const std::vector<std::string> participants_;
  const bool expect_one_row_;
};

}  // namespace pact
