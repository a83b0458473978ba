// Bad input through the real processes: each gets a clear error, and nothing
// is left prepared or locked afterwards.
#include "gen-cpp/Coordinator.h"
#include "gen-cpp/Participant.h"
#include "rpc/rpc_client.h"
#include "tests/bank_fixture.h"

namespace pact {
namespace {

class BadInputTest : public BankTest {
 protected:
  // Whatever the test did, the banks are usable and untouched afterwards.
  void ExpectNothingHeld() {
    EXPECT_TRUE(cluster_.EventuallyNoOpenBranches());
    auto client = Connect();
    auto txn = PrepareTransfer(*client, 1);
    ASSERT_TRUE(txn);
    EXPECT_TRUE(txn->Commit().ok());
  }

  Status RawCommit(const std::string& txn_id, rpc::CommitResult* result,
                   const std::vector<rpc::EnlistedBranch>& branches = {}) {
    RpcConnection<rpc::CoordinatorClient> conn(
        *Endpoint::Parse(cluster_.coordinator_address()), RpcTimeouts{});
    return conn.Call(
        [&](rpc::CoordinatorClient& c) { c.commitTxn(*result, txn_id, false, branches); });
  }

  // Sets *opening to the branch's opening when the statement ran.
  Status RawExecute(const std::string& participant, const std::string& txn_id,
                    const std::string& sql, const std::vector<rpc::Value>& params = {},
                    int64_t timeout_ms = 0, std::string* opening = nullptr) {
    RpcConnection<rpc::ParticipantClient> conn(
        Endpoint{"127.0.0.1", cluster_.participant_port(participant)}, RpcTimeouts{});
    rpc::ExecuteResult result;
    Status st = conn.Call(
        [&](rpc::ParticipantClient& c) { c.execute(result, txn_id, sql, params, timeout_ms); });
    if (opening != nullptr) *opening = result.branch;
    return st;
  }
};

TEST_F(BadInputTest, UnknownAndMalformedTransactionIdsAreRejected) {
  auto client = Connect();
  rpc::CommitResult result;
  EXPECT_EQ(RawCommit("c1.1.424242", &result).code(), StatusCode::kNotFound);
  EXPECT_EQ(RawCommit("not-an-id", &result).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(client->GetState("someone-else.1.1").status().code(), StatusCode::kNotFound);
  // A participant opens a branch for any well-formed id (its coordinator
  // hears of a transaction only at commit), but only that coordinator can
  // commit it: a commit of an id it never handed out is refused, and the
  // branch rolls back by itself at the deadline the statement carried.
  std::string opening;
  Status st = RawExecute("bank_a", "c1.1.424242", "UPDATE accounts SET balance = 0", {},
                         /*timeout_ms=*/300, &opening);
  ASSERT_TRUE(st.ok()) << st.ToString();
  rpc::EnlistedBranch branch;
  branch.participant = "bank_a";
  branch.branch = opening;
  EXPECT_EQ(RawCommit("c1.1.424242", &result, {branch}).code(), StatusCode::kNotFound);
  EXPECT_EQ(RawExecute("bank_a", "garbage", "SELECT 1").code(), StatusCode::kInvalidArgument);
  ExpectNothingHeld();
  EXPECT_EQ(Balance("bank_a", 2), 100);
}

TEST_F(BadInputTest, CommitTwiceIsRefusedByTheClientAndIdempotentOnTheWire) {
  auto client = Connect();
  auto txn = PrepareTransfer(*client, 10);
  ASSERT_TRUE(txn);
  ASSERT_TRUE(txn->Commit().ok());
  Status again = txn->Commit();
  EXPECT_EQ(again.code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(again.message().find("already committed"), std::string::npos);
  // A retry on the wire (say after a lost reply) gets the same outcome.
  rpc::CommitResult result;
  ASSERT_TRUE(RawCommit(txn->id(), &result).ok());
  EXPECT_EQ(result.state, rpc::TxnState::COMMITTED);
  EXPECT_EQ(Balance("bank_a", 1), 90);  // applied once
  ExpectNothingHeld();
}

// Remembers one finished transaction only, so the first below is forgotten
// by the time its commit is asked again.
class ForgetfulCoordinatorTest : public BadInputTest {
 protected:
  void SetUp() override {
    cluster_.coordinator_flags.push_back("--finished_txns_kept=1");
    BadInputTest::SetUp();
  }
};

// The coordinator first hears of a transaction begun from a reserved id at
// its commit. Asked again after it finished and was forgotten, it must not
// take that for a first commit and run the protocol again: the branches are
// gone, so a second run would answer ABORTED for a transaction that
// committed. It says the transaction is no longer remembered (a client
// reports that as unknown).
TEST_F(ForgetfulCoordinatorTest, CommitAskedAgainAfterItsTransactionWasForgottenIsNotRunAgain) {
  auto client = Connect();
  auto first = PrepareTransfer(*client, 10);
  ASSERT_TRUE(first);
  ASSERT_TRUE(first->Commit().ok());
  auto second = PrepareTransfer(*client, 5, 2, 2);
  ASSERT_TRUE(second);
  ASSERT_TRUE(second->Commit().ok());  // pushes the first out of memory
  rpc::CommitResult result;
  Status again = RawCommit(first->id(), &result);
  EXPECT_EQ(again.code(), StatusCode::kNotFound) << again.ToString();
  EXPECT_NE(again.message().find("no longer remembered"), std::string::npos) << again.ToString();
  EXPECT_EQ(Balance("bank_a", 1), 90);  // applied once, and stays applied
  EXPECT_EQ(Balance("bank_b", 1), 110);
  ExpectNothingHeld();
}

TEST_F(BadInputTest, ExecuteAfterCommitIsRefused) {
  auto client = Connect();
  auto txn = PrepareTransfer(*client, 10);
  ASSERT_TRUE(txn);
  ASSERT_TRUE(txn->Commit().ok());
  EXPECT_EQ(txn->Execute("bank_a", "UPDATE accounts SET balance = 0").status().code(),
            StatusCode::kFailedPrecondition);
  Status st = RawExecute("bank_a", txn->id(), "UPDATE accounts SET balance = 0");
  EXPECT_EQ(st.code(), StatusCode::kFailedPrecondition) << st.ToString();
  EXPECT_NE(st.message().find("ended (committed)"), std::string::npos) << st.ToString();
  EXPECT_EQ(Balance("bank_a", 2), 100);
  ExpectNothingHeld();
}

TEST_F(BadInputTest, MalformedSqlIsAnErrorAndTheTransactionCanStillRollBack) {
  auto client = Connect();
  auto txn = client->Begin();
  ASSERT_TRUE(txn.ok());
  ASSERT_TRUE((*txn)->Execute("bank_a", "UPDATE accounts SET balance = 1 WHERE id = 3").ok());
  auto bad = (*txn)->Execute("bank_a", "UPDATE acounts SET");
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument) << bad.status().ToString();
  auto no_table = (*txn)->Execute("bank_b", "SELECT * FROM nowhere");
  EXPECT_EQ(no_table.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(no_table.status().message().find("nowhere"), std::string::npos);
  ASSERT_TRUE((*txn)->Rollback().ok());
  EXPECT_EQ(Balance("bank_a", 3), 100);
  ExpectNothingHeld();
}

TEST_F(BadInputTest, ConstraintViolationIsAnErrorOnExecute) {
  auto client = Connect();
  auto txn = client->Begin();
  ASSERT_TRUE(txn.ok());
  auto overdraft = (*txn)->Execute("bank_a", "UPDATE accounts SET balance = balance - 1000");
  EXPECT_EQ(overdraft.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(overdraft.status().message().find("CHECK"), std::string::npos)
      << overdraft.status().ToString();
  txn->reset();  // dropped: rolls back
  ExpectNothingHeld();
  EXPECT_EQ(Total("bank_a"), 3 * kInitialBalance - 1);
}

TEST_F(BadInputTest, UnknownParticipantNameIsAClearError) {
  auto client = Connect();
  auto txn = client->Begin();
  ASSERT_TRUE(txn.ok());
  auto result = (*txn)->Execute("bank_z", "SELECT 1");
  EXPECT_EQ(result.status().code(), StatusCode::kNotFound);
  EXPECT_NE(result.status().message().find("bank_a, bank_b"), std::string::npos)
      << result.status().ToString();
  EXPECT_TRUE((*txn)->Commit().ok());  // nothing enlisted: trivially committed
  ExpectNothingHeld();
}

TEST_F(BadInputTest, TransactionControlStatementsAreRefused) {
  auto client = Connect();
  auto txn = client->Begin();
  ASSERT_TRUE(txn.ok());
  for (const char* sql : {"COMMIT", "ROLLBACK", "BEGIN", "SELECT 1; SELECT 2"}) {
    EXPECT_EQ((*txn)->Execute("bank_a", sql).status().code(), StatusCode::kInvalidArgument)
        << sql;
  }
  ASSERT_TRUE((*txn)->Rollback().ok());
  ExpectNothingHeld();
}

// A Value whose type and field disagree would bind 0 or NULL into a money
// UPDATE: it is refused, and nothing changes.
TEST_F(BadInputTest, MalformedParameterValuesAreRefusedNotSubstituted) {
  auto client = Connect();
  auto txn = client->Begin();
  ASSERT_TRUE(txn.ok());
  const std::string sql = "UPDATE accounts SET balance = ?1 WHERE id = 1";
  rpc::Value integer_without_value;
  integer_without_value.type = rpc::ValueType::INTEGER;
  Status st = RawExecute("bank_a", (*txn)->id(), sql, {integer_without_value});
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument) << st.ToString();
  EXPECT_NE(st.message().find("without integer_value"), std::string::npos) << st.ToString();
  rpc::Value unknown_type;
  unknown_type.type = static_cast<rpc::ValueType::type>(99);
  unknown_type.__set_integer_value(5);
  st = RawExecute("bank_a", (*txn)->id(), sql, {unknown_type});
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument) << st.ToString();
  rpc::Value text_without_value;
  text_without_value.type = rpc::ValueType::TEXT;
  st = RawExecute("bank_a", (*txn)->id(), sql, {text_without_value});
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument) << st.ToString();
  ASSERT_TRUE((*txn)->Commit().ok());
  EXPECT_EQ(Balance("bank_a", 1), kInitialBalance);
  ExpectNothingHeld();
}

}  // namespace
}  // namespace pact
