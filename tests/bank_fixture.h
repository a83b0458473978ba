// Two SQLite participants holding bank accounts, a coordinator, and helpers
// to move money between them through the client library.
#pragma once

#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "client/pact_client.h"
#include "tests/process_harness.h"

namespace pact {

class BankTest : public ::testing::Test {
 protected:
  // Each bank starts with accounts 1..3 holding 100 each.
  static constexpr int64_t kInitialBalance = 100;

  void SetUp() override;

  // Creates the accounts table the way an operator would, before the
  // adapter starts.
  void CreateBank(const std::string& participant);
  // `return_at_decision`: see ClientOptions.
  std::unique_ptr<Client> Connect(bool return_at_decision = false);

  // Debits `from` at bank_a and credits `to` at bank_b in one transaction,
  // up to (not including) commit.
  std::unique_ptr<Transaction> PrepareTransfer(Client& client, int64_t amount,
                                               int64_t from = 1, int64_t to = 1);
  int64_t Balance(const std::string& participant, int64_t account);
  int64_t Total(const std::string& participant);

  TempDir dir_;
  TestCluster cluster_{dir_};
};

}  // namespace pact
