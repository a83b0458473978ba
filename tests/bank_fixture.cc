#include "tests/bank_fixture.h"

#include <sqlite3.h>

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
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(cluster_.db_path(participant).c_str(), &db), SQLITE_OK);
  const char* kSchema =
      "PRAGMA journal_mode=WAL;"
      "CREATE TABLE accounts(id INTEGER PRIMARY KEY,"
      "                      balance INTEGER NOT NULL CHECK (balance >= 0));"
      "INSERT INTO accounts VALUES (1, 100), (2, 100), (3, 100);"
      // Checked at commit time, so a participant can only refuse at prepare.
      "CREATE TABLE ledger(id INTEGER PRIMARY KEY,"
      "                    account INTEGER NOT NULL REFERENCES accounts(id)"
      "                        DEFERRABLE INITIALLY DEFERRED,"
      "                    amount INTEGER NOT NULL);";
  char* error = nullptr;
  EXPECT_EQ(sqlite3_exec(db, kSchema, nullptr, nullptr, &error), SQLITE_OK)
      << (error ? error : "");
  sqlite3_free(error);
  sqlite3_close(db);
}

std::unique_ptr<Client> BankTest::Connect() {
  auto client = Client::Connect(cluster_.coordinator_address());
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
