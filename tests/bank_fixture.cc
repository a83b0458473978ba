#include "tests/bank_fixture.h"

namespace pact {

void BankTest::SetUp() {
  CreateBank("bank_a");
  CreateBank("bank_b");
  for (Status st : {cluster_.StartCoordinator(), cluster_.StartParticipant("bank_a"),
                    cluster_.StartParticipant("bank_b")}) {
    ASSERT_TRUE(st.ok()) << st.ToString();
  }
}

void BankTest::CreateBank(const std::string& participant) {
  Status st = CreateSqliteBank(cluster_.db_path(participant), 3);
  ASSERT_TRUE(st.ok()) << st.ToString();
}

std::unique_ptr<Client> BankTest::Connect(bool return_at_decision) {
  // Tests kill coordinators on purpose: ask again for a second, not fifteen.
  ClientOptions options;
  options.commit_budget_ms = 1000;
  options.return_at_decision = return_at_decision;
  options.credentials = cluster_.application_credentials();
  auto client = Client::Connect(cluster_.coordinator_address(), options);
  EXPECT_TRUE(client.ok());
  return std::move(*client);
}

std::unique_ptr<Transaction> BankTest::PrepareTransfer(Client& client, int64_t amount,
                                                       int64_t from, int64_t to) {
  auto txn = client.Begin();
  EXPECT_TRUE(txn.ok()) << txn.status().ToString();
  if (!txn.ok()) return nullptr;
  auto debit = (*txn)->Execute("bank_a", "UPDATE accounts SET balance = balance - ?1 WHERE id = ?2",
                               {amount, from});
  EXPECT_TRUE(debit.ok()) << debit.status().ToString();
  if (debit.ok()) {
    EXPECT_EQ(debit->affected_rows, 1);
  }
  auto credit = (*txn)->Execute("bank_b", "UPDATE accounts SET balance = balance + ?1 WHERE id = ?2",
                                {amount, to});
  EXPECT_TRUE(credit.ok()) << credit.status().ToString();
  return std::move(*txn);
}

int64_t BankTest::Balance(const std::string& participant, int64_t account) {
  auto balance = QueryInt(cluster_.db_path(participant),
                          "SELECT balance FROM accounts WHERE id = " + std::to_string(account));
  EXPECT_TRUE(balance.ok()) << balance.status().ToString();
  return balance.ok() ? *balance : -1;
}

int64_t BankTest::Total(const std::string& participant) {
  auto total = QueryInt(cluster_.db_path(participant), "SELECT SUM(balance) FROM accounts");
  EXPECT_TRUE(total.ok()) << total.status().ToString();
  return total.ok() ? *total : -1;
}

}  // namespace pact
