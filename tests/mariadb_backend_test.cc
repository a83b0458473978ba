#include "participant/backends/mariadb/mariadb_backend.h"

#include <gtest/gtest.h>
#include <mysql.h>
#include <signal.h>

#include <chrono>
#include <condition_variable>
#include <fstream>
#include <future>
#include <thread>

#include "cluster/mariadb_server.h"
#include "cluster/temp_dir.h"

namespace pact {
namespace {

#define ASSERT_OK(expr)                                       \
  do {                                                        \
    const ::pact::Status _st = (expr);                        \
    ASSERT_TRUE(_st.ok()) << #expr << ": " << _st.ToString(); \
  } while (0)

using Rows = std::vector<std::vector<std::string>>;

// One server for the suite (install-db is the slow part); a database and a
// participant name of its own for every test, since prepared XA transactions
// are server-wide.
class MariaDbBackendTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    auto server = MariaDbServer::Start(dir_->path());
    ASSERT_TRUE(server.ok()) << server.status().ToString();
    server_ = std::move(server).value().release();
  }

  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
    delete dir_;
    dir_ = nullptr;
  }

  void SetUp() override {
    ASSERT_NE(server_, nullptr) << "no test server";
    ++counter_;
    db_ = "t" + std::to_string(counter_);
    ASSERT_NO_FATAL_FAILURE(CreateAccounts(db_));
    options_.port = server_->port();
    options_.user = "root";
    options_.database = db_;
    options_.participant_name = "p" + std::to_string(counter_);
  }

  // Whatever a failed test left prepared would hold its locks for the rest
  // of the suite.
  void TearDown() override {
    backend_.reset();
    if (server_ == nullptr) return;
    auto rows = server_->Query("", "XA RECOVER FORMAT='SQL'");
    if (!rows.ok()) return;
    for (const auto& row : *rows) {
      Status ignored = server_->Exec("", "XA ROLLBACK " + row.at(3));
    }
  }

  std::unique_ptr<MariaDbBackend> OpenBackend(const MariaDbBackendOptions& options) {
    auto backend = MariaDbBackend::Open(options);
    EXPECT_TRUE(backend.ok()) << backend.status().ToString();
    return backend.ok() ? std::move(backend).value() : nullptr;
  }
  std::unique_ptr<MariaDbBackend> OpenBackend() { return OpenBackend(options_); }

  // The test's backend, on options_ as they are at the first call; null
  // (and the test failed) if it cannot open.
  MariaDbBackend* backend() {
    if (backend_ == nullptr) backend_ = OpenBackend();
    return backend_.get();
  }

  // A database with the two accounts every test starts from.
  void CreateAccounts(const std::string& db) {
    ASSERT_OK(server_->CreateDatabase(db));
    ASSERT_OK(server_->Exec(db,
                            "CREATE TABLE accounts(id INT PRIMARY KEY, owner VARCHAR(32),"
                            " balance BIGINT) ENGINE=InnoDB;"
                            "INSERT INTO accounts VALUES(1, 'ann', 100), (2, 'bob', 50)"));
  }

  static std::unique_ptr<Branch> BeginOrDie(Backend* backend, const std::string& txn_id) {
    if (backend == nullptr) return nullptr;
    auto branch = backend->Begin(txn_id);
    EXPECT_TRUE(branch.ok()) << branch.status().ToString();
    return branch.ok() ? std::move(branch).value() : nullptr;
  }

  // A branch of `backend` (the test's by default) that ran `sql`; null (and
  // the test failed) if either failed.
  static std::unique_ptr<Branch> BranchThatRan(Backend* backend, const std::string& txn_id,
                                               const std::string& sql) {
    auto branch = BeginOrDie(backend, txn_id);
    if (branch == nullptr) return nullptr;
    auto ran = branch->Execute(sql, {});
    EXPECT_TRUE(ran.ok()) << sql << ": " << ran.status().ToString();
    return ran.ok() ? std::move(branch) : nullptr;
  }
  std::unique_ptr<Branch> BranchThatRan(const std::string& txn_id, const std::string& sql) {
    return BranchThatRan(backend(), txn_id, sql);
  }

  // The same, then prepared: it must vote kCommit.
  std::unique_ptr<Branch> PreparedBranch(Backend* backend, const std::string& txn_id,
                                         const std::string& sql) {
    auto branch = BranchThatRan(backend, txn_id, sql);
    if (branch != nullptr) {
      EXPECT_EQ(PrepareOrDie(branch.get()), Vote::kCommit);
    }
    return branch;
  }
  std::unique_ptr<Branch> PreparedBranch(const std::string& txn_id, const std::string& sql) {
    return PreparedBranch(backend(), txn_id, sql);
  }

  // A branch prepared by an adapter that then goes away undecided (its
  // connection closes, the xid stays prepared).
  void PrepareInAnAdapterThatGoesAway(const std::string& txn_id, const std::string& sql) {
    auto adapter = OpenBackend();
    ASSERT_NE(adapter, nullptr);
    ASSERT_NE(PreparedBranch(adapter.get(), txn_id, sql), nullptr);
  }

  // What RecoverPrepared finds; empty (and the test failed) if it fails.
  static std::vector<RecoveredBranch> Recovered(Backend* backend) {
    if (backend == nullptr) return {};
    auto recovered = backend->RecoverPrepared();
    EXPECT_TRUE(recovered.ok()) << recovered.status().ToString();
    return recovered.ok() ? std::move(recovered).value() : std::vector<RecoveredBranch>{};
  }

  // "1:100,2:50", read outside Pact.
  std::string Balances(const std::string& db = "") {
    auto rows =
        server_->Query(db.empty() ? db_ : db, "SELECT id, balance FROM accounts ORDER BY id");
    if (!rows.ok()) return rows.status().ToString();
    std::string out;
    for (const auto& row : *rows) out += (out.empty() ? "" : ",") + row[0] + ":" + row[1];
    return out;
  }

  // gtrids of the server's prepared XA transactions with this participant's bqual.
  std::vector<std::string> XaPrepared(const std::string& participant = "") {
    const std::string bqual = participant.empty() ? options_.participant_name : participant;
    std::vector<std::string> gtrids;
    auto rows = server_->Query("", "XA RECOVER");
    EXPECT_TRUE(rows.ok()) << rows.status().ToString();
    if (!rows.ok()) return gtrids;
    for (const auto& row : *rows) {
      const size_t gtrid_length = std::stoul(row[1]);
      if (std::stoll(row[0]) == MariaDbBackend::kFormatId && row[3].substr(gtrid_length) == bqual) {
        gtrids.push_back(row[3].substr(0, gtrid_length));
      }
    }
    return gtrids;
  }

  Vote PrepareOrDie(Branch* branch) {
    std::string reason;
    auto vote = branch->Prepare(&reason);
    EXPECT_TRUE(vote.ok()) << vote.status().ToString();
    return vote.ok() ? *vote : Vote::kAbort;
  }

  static TempDir* dir_;
  static MariaDbServer* server_;
  static int counter_;
  std::string db_;
  MariaDbBackendOptions options_;
  std::unique_ptr<MariaDbBackend> backend_;  // backend() opens it
};

TempDir* MariaDbBackendTest::dir_ = nullptr;
MariaDbServer* MariaDbBackendTest::server_ = nullptr;
int MariaDbBackendTest::counter_ = 0;

TEST_F(MariaDbBackendTest, ExecuteReturnsTypedRowsAndBindsParameters) {
  ASSERT_OK(server_->Exec(db_,
                          "CREATE TABLE kinds(id INT PRIMARY KEY, i BIGINT, u BIGINT UNSIGNED,"
                          " d DOUBLE, m DECIMAL(10,2), s VARCHAR(20), long_text TEXT,"
                          " b VARBINARY(20), bl BLOB, n INT NULL, dt DATETIME, bits BIT(8))"
                          " ENGINE=InnoDB"));
  auto branch = BeginOrDie(backend(), "coord.1.1");
  ASSERT_NE(branch, nullptr);
  const std::string long_text(1000, 'x');  // past the first fetch buffer
  const std::string bytes("\0\x01\xff'\\", 5);
  auto inserted = branch->Execute(
      "INSERT INTO kinds VALUES(1, ?, 18446744073709551615, ?, 12.5, ?, ?, ?, ?, ?,"
      " '2024-02-03 04:05:06', b'101')",
      {int64_t{-7}, 2.25, std::string("h\xc3\xa9llo"), long_text, Blob{bytes},
       Blob{std::string(300, '\x7f')}, std::monostate()});
  ASSERT_TRUE(inserted.ok()) << inserted.status().ToString();
  EXPECT_EQ(inserted->affected_rows, 1);
  EXPECT_TRUE(inserted->columns.empty());

  auto rows = branch->Execute(
      "SELECT i, u, d, m, s, long_text, b, bl, n, dt, bits FROM kinds"
      " WHERE id = ?",
      {int64_t{1}});
  ASSERT_TRUE(rows.ok()) << rows.status().ToString();
  EXPECT_EQ(rows->affected_rows, 0);
  ASSERT_EQ(rows->columns, (std::vector<std::string>{"i", "u", "d", "m", "s", "long_text", "b",
                                                     "bl", "n", "dt", "bits"}));
  ASSERT_EQ(rows->rows.size(), 1u);
  const auto& row = rows->rows[0];
  EXPECT_EQ(row[0], SqlValue(int64_t{-7}));
  EXPECT_EQ(row[1], SqlValue(std::string("18446744073709551615")));  // beyond int64
  EXPECT_EQ(row[2], SqlValue(2.25));
  EXPECT_EQ(row[3], SqlValue(12.5));
  EXPECT_EQ(row[4], SqlValue(std::string("h\xc3\xa9llo")));
  EXPECT_EQ(row[5], SqlValue(long_text));
  EXPECT_EQ(row[6], SqlValue(Blob{bytes}));
  EXPECT_EQ(row[7], SqlValue(Blob{std::string(300, '\x7f')}));
  EXPECT_EQ(row[8], SqlValue());
  EXPECT_EQ(row[9], SqlValue(std::string("2024-02-03 04:05:06")));
  EXPECT_EQ(row[10], SqlValue(int64_t{5}));

  auto updated = branch->Execute("UPDATE accounts SET balance = balance + ?", {int64_t{1}});
  ASSERT_TRUE(updated.ok()) << updated.status().ToString();
  EXPECT_EQ(updated->affected_rows, 2);
  auto wrong_count = branch->Execute("SELECT ?", {});
  EXPECT_EQ(wrong_count.status().code(), StatusCode::kInvalidArgument);
  ASSERT_OK(branch->CommitOnePhase());
  EXPECT_EQ(Balances(), "1:101,2:51");
}

TEST_F(MariaDbBackendTest, TransactionControlAndTwoStatementsAreRefused) {
  auto branch = BeginOrDie(backend(), "coord.1.1");
  ASSERT_NE(branch, nullptr);
  for (const char* sql :
       {"COMMIT", "  /* hi */ xa end 'x'", "-- note\nROLLBACK", "# note\n begin",
        "START TRANSACTION", "SAVEPOINT a", "RELEASE SAVEPOINT a", "SET autocommit = 0",
        "set @@session.AutoCommit=1", "LOCK TABLES accounts WRITE", "UNLOCK TABLES", "/*!COMMIT*/",
        "/*M!100500 ROLLBACK */"}) {
    auto result = branch->Execute(sql, {});
    EXPECT_EQ(result.status().code(), StatusCode::kInvalidArgument) << sql;
    EXPECT_NE(result.status().message().find("transaction control is Pact's job"),
              std::string::npos)
        << result.status().message();
  }
  auto two = branch->Execute("UPDATE accounts SET balance = 0; COMMIT", {});
  EXPECT_EQ(two.status().code(), StatusCode::kInvalidArgument) << two.status().ToString();
  auto one = branch->Execute("UPDATE accounts SET balance = 7 WHERE id = 1;", {});
  ASSERT_TRUE(one.ok()) << one.status().ToString();
  ASSERT_OK(branch->CommitOnePhase());
  EXPECT_EQ(Balances(), "1:7,2:50");
}

TEST_F(MariaDbBackendTest, StatementErrorsLeaveTheBranchUsable) {
  auto branch = BranchThatRan("coord.1.1", "UPDATE accounts SET balance = 1 WHERE id = 1");
  ASSERT_NE(branch, nullptr);
  auto syntax = branch->Execute("SELEC 1", {});
  EXPECT_EQ(syntax.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(syntax.status().message().find("syntax"), std::string::npos);
  auto no_table = branch->Execute("SELECT * FROM nowhere", {});
  EXPECT_EQ(no_table.status().code(), StatusCode::kInvalidArgument);
  auto duplicate = branch->Execute("INSERT INTO accounts VALUES(1, 'x', 0)", {});
  EXPECT_EQ(duplicate.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(duplicate.status().message().find("Duplicate"), std::string::npos);
  auto ddl = branch->Execute("CREATE TABLE t2(id INT)", {});  // MariaDB refuses DDL in XA
  EXPECT_FALSE(ddl.ok());
  EXPECT_EQ(PrepareOrDie(branch.get()), Vote::kCommit);
  ASSERT_OK(branch->CommitPrepared());
  EXPECT_EQ(Balances(), "1:1,2:50");
}

TEST_F(MariaDbBackendTest, PreparedChangesStayInvisibleUntilCommitPrepared) {
  auto branch =
      PreparedBranch("coord.1.1", "UPDATE accounts SET balance = balance - 10 WHERE id = 1");
  ASSERT_NE(branch, nullptr);
  EXPECT_EQ(PrepareOrDie(branch.get()), Vote::kCommit);  // a repeated prepare
  EXPECT_EQ(Balances(), "1:100,2:50");
  EXPECT_EQ(XaPrepared(), std::vector<std::string>{"coord.1.1"});
  EXPECT_EQ(branch->Execute("SELECT 1", {}).status().code(), StatusCode::kFailedPrecondition);

  ASSERT_OK(branch->CommitPrepared());
  EXPECT_EQ(Balances(), "1:90,2:50");
  EXPECT_TRUE(XaPrepared().empty());
  ASSERT_OK(branch->CommitPrepared());  // idempotent
  // The connection went back to the pool and serves the next branch.
  auto next = BranchThatRan("coord.1.2", "UPDATE accounts SET balance = 0 WHERE id = 2");
  ASSERT_NE(next, nullptr);
  ASSERT_OK(next->CommitOnePhase());
  EXPECT_EQ(Balances(), "1:90,2:0");
}

TEST_F(MariaDbBackendTest, RollbackAfterPrepareLeavesDataUnchanged) {
  auto branch = PreparedBranch("coord.1.1", "DELETE FROM accounts WHERE id = 2");
  ASSERT_NE(branch, nullptr);
  ASSERT_OK(branch->Rollback());
  ASSERT_OK(branch->Rollback());  // idempotent
  EXPECT_EQ(Balances(), "1:100,2:50");
  EXPECT_TRUE(XaPrepared().empty());
  EXPECT_EQ(branch->CommitPrepared().code(), StatusCode::kFailedPrecondition);
}

TEST_F(MariaDbBackendTest, RollbackOfActiveBranchReleasesItsLocks) {
  auto branch = BranchThatRan("coord.1.1", "UPDATE accounts SET balance = 1");
  ASSERT_NE(branch, nullptr);
  ASSERT_OK(branch->Rollback());
  ASSERT_OK(server_->Exec(db_, "UPDATE accounts SET balance = 2 WHERE id = 1"));  // no lock wait
  EXPECT_EQ(Balances(), "1:2,2:50");
}

TEST_F(MariaDbBackendTest, ReadOnlyBranchPreparesAndCommits) {
  auto branch = BeginOrDie(backend(), "coord.1.1");
  ASSERT_NE(branch, nullptr);
  auto rows = branch->Execute("SELECT owner FROM accounts ORDER BY id", {});
  ASSERT_TRUE(rows.ok()) << rows.status().ToString();
  ASSERT_EQ(rows->rows.size(), 2u);
  EXPECT_EQ(rows->rows[1][0], SqlValue(std::string("bob")));
  // MariaDB prepares a read-only XA transaction and then answers its commit
  // with XA_RBROLLBACK: nothing was there to commit.
  EXPECT_EQ(PrepareOrDie(branch.get()), Vote::kCommit);
  ASSERT_OK(branch->CommitPrepared());
  EXPECT_TRUE(XaPrepared().empty());
}

TEST_F(MariaDbBackendTest, OnePhaseCommitIsDurableAndIsCommittedSaysSo) {
  auto branch = BranchThatRan("coord.1.1", "INSERT INTO accounts VALUES(3, 'cy', 5)");
  ASSERT_NE(branch, nullptr);
  ASSERT_OK(branch->CommitOnePhase());
  ASSERT_OK(branch->CommitOnePhase());  // idempotent
  EXPECT_EQ(Balances(), "1:100,2:50,3:5");
  auto committed = backend()->IsCommitted("coord.1.1");
  ASSERT_TRUE(committed.ok()) << committed.status().ToString();
  EXPECT_TRUE(*committed);
  auto unknown = backend()->IsCommitted("coord.1.999");
  ASSERT_TRUE(unknown.ok()) << unknown.status().ToString();
  EXPECT_FALSE(*unknown);
  EXPECT_TRUE(XaPrepared().empty());

  // Another participant's marker in the same database is not this one's.
  MariaDbBackendOptions other = options_;
  other.participant_name += "-other";
  auto other_backend = OpenBackend(other);
  ASSERT_NE(other_backend, nullptr);
  auto other_committed = other_backend->IsCommitted("coord.1.1");
  ASSERT_TRUE(other_committed.ok());
  EXPECT_FALSE(*other_committed);
  auto reopened = OpenBackend();
  ASSERT_NE(reopened, nullptr);
  EXPECT_TRUE(*reopened->IsCommitted("coord.1.1"));
}

TEST_F(MariaDbBackendTest, PreparedBranchOutlivesTheAdapterAndCommitsFromAnother) {
  ASSERT_NO_FATAL_FAILURE(
      PrepareInAnAdapterThatGoesAway("coord.1.1", "UPDATE accounts SET balance = 1 WHERE id = 1"));
  EXPECT_EQ(XaPrepared(), std::vector<std::string>{"coord.1.1"});
  auto b = OpenBackend();
  ASSERT_NE(b, nullptr);
  auto recovered = Recovered(b.get());
  ASSERT_EQ(recovered.size(), 1u);
  EXPECT_EQ(recovered[0].txn_id, "coord.1.1");
  EXPECT_GT(recovered[0].prepared_at_ms, 0);
  EXPECT_EQ(Balances(), "1:100,2:50");
  ASSERT_OK(recovered[0].branch->CommitPrepared());
  EXPECT_EQ(Balances(), "1:1,2:50");
  EXPECT_TRUE(XaPrepared().empty());
  auto again = b->RecoverPrepared();
  ASSERT_TRUE(again.ok());
  EXPECT_TRUE(again->empty());
}

TEST_F(MariaDbBackendTest, PreparedBranchOutlivesTheAdapterAndRollsBackFromAnother) {
  ASSERT_NO_FATAL_FAILURE(
      PrepareInAnAdapterThatGoesAway("coord.1.1", "UPDATE accounts SET balance = 1 WHERE id = 1"));
  auto b = OpenBackend();
  ASSERT_NE(b, nullptr);
  auto recovered = Recovered(b.get());
  ASSERT_EQ(recovered.size(), 1u);
  ASSERT_OK(recovered[0].branch->Rollback());
  EXPECT_EQ(Balances(), "1:100,2:50");
  EXPECT_TRUE(XaPrepared().empty());
}

TEST_F(MariaDbBackendTest, CommitOfBranchCommittedBehindPactsBackIsOk) {
  ASSERT_NO_FATAL_FAILURE(
      PrepareInAnAdapterThatGoesAway("coord.1.1", "UPDATE accounts SET balance = 3 WHERE id = 2"));
  auto b = OpenBackend();
  ASSERT_NE(b, nullptr);
  auto recovered = Recovered(b.get());
  ASSERT_EQ(recovered.size(), 1u);
  // An operator commits it by hand. The first adapter's session may still be
  // closing on the server, which then answers XAER_NOTA to everyone else
  // until it lets go of the XA transaction: ask again for a moment.
  const std::string commit = "XA COMMIT 'coord.1.1','" + options_.participant_name + "'," +
                             std::to_string(MariaDbBackend::kFormatId);
  Status by_hand = server_->Exec("", commit);
  for (int i = 0; i < 100 && !by_hand.ok() &&
                  by_hand.message().find("XAER_NOTA") != std::string::npos;
       ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    by_hand = server_->Exec("", commit);
  }
  ASSERT_OK(by_hand);
  ASSERT_OK(recovered[0].branch->CommitPrepared());  // XA's NOTA: done
  EXPECT_EQ(Balances(), "1:100,2:3");
}

// MariaDB answers "unknown XID" to other sessions while the preparing session
// lives; that must not pass for "already committed".
TEST_F(MariaDbBackendTest, CommitElsewhereWhileThePreparingSessionLivesIsUnavailable) {
  auto branch = PreparedBranch("coord.1.1", "UPDATE accounts SET balance = 4 WHERE id = 1");
  ASSERT_NE(branch, nullptr);
  auto b = OpenBackend();
  ASSERT_NE(b, nullptr);
  auto recovered = Recovered(b.get());
  ASSERT_EQ(recovered.size(), 1u);
  Status elsewhere = recovered[0].branch->CommitPrepared();
  EXPECT_EQ(elsewhere.code(), StatusCode::kUnavailable) << elsewhere.ToString();
  EXPECT_EQ(XaPrepared(), std::vector<std::string>{"coord.1.1"});
  ASSERT_OK(branch->CommitPrepared());
  EXPECT_EQ(Balances(), "1:4,2:50");
  ASSERT_OK(recovered[0].branch->CommitPrepared());  // now truly gone: done
}

TEST_F(MariaDbBackendTest, PreparedBranchSurvivesServerCrashAndCommitsAfterReconnecting) {
  auto branch = PreparedBranch("coord.1.1", "UPDATE accounts SET balance = 42 WHERE id = 1");
  ASSERT_NE(branch, nullptr);
  ASSERT_OK(server_->Restart());
  EXPECT_EQ(XaPrepared(), std::vector<std::string>{"coord.1.1"});
  ASSERT_OK(branch->CommitPrepared());
  EXPECT_EQ(Balances(), "1:42,2:50");
  EXPECT_TRUE(XaPrepared().empty());
  // The pool's connections died with the server; new branches reconnect.
  auto next = BeginOrDie(backend(), "coord.1.2");
  ASSERT_NE(next, nullptr);
  ASSERT_OK(next->CommitOnePhase());
}

TEST_F(MariaDbBackendTest, CommitWhileServerIsDownIsUnavailableAndKeepsTheBranchPrepared) {
  auto branch = PreparedBranch("coord.1.1", "UPDATE accounts SET balance = 7 WHERE id = 2");
  ASSERT_NE(branch, nullptr);
  ASSERT_OK(server_->Kill());

  const auto start = std::chrono::steady_clock::now();
  Status down = branch->CommitPrepared();
  const auto took = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(down.code(), StatusCode::kUnavailable) << down.ToString();
  EXPECT_LT(took, std::chrono::seconds(5));
  auto is_committed = backend()->IsCommitted("coord.1.1");
  EXPECT_EQ(is_committed.status().code(), StatusCode::kUnavailable);

  ASSERT_OK(server_->StartAgain());
  EXPECT_EQ(XaPrepared(), std::vector<std::string>{"coord.1.1"});
  EXPECT_EQ(Balances(), "1:100,2:50");
  ASSERT_OK(branch->CommitPrepared());
  EXPECT_EQ(Balances(), "1:100,2:7");
  EXPECT_TRUE(XaPrepared().empty());
}

// The id of the session a branch runs on.
int64_t SessionId(Branch* branch) {
  auto rows = branch->Execute("SELECT CONNECTION_ID()", {});
  EXPECT_TRUE(rows.ok()) << rows.status().ToString();
  if (!rows.ok() || rows->rows.empty()) return -1;
  return std::get<int64_t>(rows->rows[0][0]);
}

TEST_F(MariaDbBackendTest, KilledSessionMakesTheActiveBranchVoteAbort) {
  auto branch = BranchThatRan("coord.1.1", "UPDATE accounts SET balance = 9 WHERE id = 1");
  ASSERT_NE(branch, nullptr);
  ASSERT_OK(server_->Exec("", "KILL " + std::to_string(SessionId(branch.get()))));
  auto lost = branch->Execute("UPDATE accounts SET balance = 9 WHERE id = 2", {});
  EXPECT_EQ(lost.status().code(), StatusCode::kUnavailable) << lost.status().ToString();
  std::string reason;
  auto vote = branch->Prepare(&reason);
  ASSERT_TRUE(vote.ok()) << vote.status().ToString();
  EXPECT_EQ(*vote, Vote::kAbort);
  EXPECT_NE(reason.find("lost the connection"), std::string::npos) << reason;
  EXPECT_EQ(Balances(), "1:100,2:50");
  // The pool recovers: the next branch gets a live connection.
  auto next = BeginOrDie(backend(), "coord.1.2");
  ASSERT_NE(next, nullptr);
  ASSERT_OK(next->CommitOnePhase());
}

TEST_F(MariaDbBackendTest, PreparedBranchWhoseSessionWasKilledCommitsOnAnotherConnection) {
  auto branch = BeginOrDie(backend(), "coord.1.1");
  ASSERT_NE(branch, nullptr);
  const int64_t session = SessionId(branch.get());
  ASSERT_TRUE(branch->Execute("UPDATE accounts SET balance = 8 WHERE id = 1", {}).ok());
  EXPECT_EQ(PrepareOrDie(branch.get()), Vote::kCommit);
  ASSERT_OK(server_->Exec("", "KILL " + std::to_string(session)));
  EXPECT_EQ(XaPrepared(), std::vector<std::string>{"coord.1.1"});  // detached, still prepared
  ASSERT_OK(branch->CommitPrepared());
  EXPECT_EQ(Balances(), "1:8,2:50");
  EXPECT_TRUE(XaPrepared().empty());
}

TEST_F(MariaDbBackendTest, DroppedActiveBranchRollsBack) {
  {
    auto branch = BranchThatRan("coord.1.1", "UPDATE accounts SET balance = 0");
    ASSERT_NE(branch, nullptr);
  }
  EXPECT_EQ(Balances(), "1:100,2:50");
  EXPECT_TRUE(XaPrepared().empty());
  // The xid is free again.
  auto again = BranchThatRan("coord.1.1", "UPDATE accounts SET balance = 1 WHERE id = 1");
  ASSERT_NE(again, nullptr);
  ASSERT_OK(again->CommitOnePhase());
  EXPECT_EQ(Balances(), "1:1,2:50");
}

TEST_F(MariaDbBackendTest, DeadlockAbortsOneBranchAndTheOtherCommits) {
  auto a = BranchThatRan("coord.1.1", "UPDATE accounts SET balance = balance + 1 WHERE id = 1");
  auto b = BranchThatRan("coord.1.2", "UPDATE accounts SET balance = balance + 10 WHERE id = 2");
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  Result<QueryResult> a_second = Status::Internal("not run");
  std::thread waiter(
      [&] { a_second = a->Execute("UPDATE accounts SET balance = balance + 1 WHERE id = 2", {}); });
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // a waits for b's lock
  Result<QueryResult> b_second =
      b->Execute("UPDATE accounts SET balance = balance + 10 WHERE id = 1", {});
  waiter.join();

  ASSERT_NE(a_second.ok(), b_second.ok())
      << a_second.status().ToString() << " / " << b_second.status().ToString();
  Branch* winner = a_second.ok() ? a.get() : b.get();
  Branch* loser = a_second.ok() ? b.get() : a.get();
  const Status& lost = a_second.ok() ? b_second.status() : a_second.status();
  EXPECT_EQ(lost.code(), StatusCode::kAborted) << lost.ToString();
  EXPECT_NE(lost.message().find("deadlock"), std::string::npos) << lost.message();

  EXPECT_EQ(loser->Execute("SELECT 1", {}).status().code(), StatusCode::kAborted);
  std::string reason;
  auto vote = loser->Prepare(&reason);
  ASSERT_TRUE(vote.ok()) << vote.status().ToString();
  EXPECT_EQ(*vote, Vote::kAbort);
  EXPECT_NE(reason.find("deadlock"), std::string::npos) << reason;
  ASSERT_OK(loser->Rollback());

  EXPECT_EQ(PrepareOrDie(winner), Vote::kCommit);
  ASSERT_OK(winner->CommitPrepared());
  EXPECT_EQ(Balances(), a_second.ok() ? "1:101,2:51" : "1:110,2:60");
  EXPECT_TRUE(XaPrepared().empty());
}

TEST_F(MariaDbBackendTest, LockWaitTimeoutMakesTheBranchVoteAbort) {
  auto holder = BranchThatRan("coord.1.1", "UPDATE accounts SET balance = 5 WHERE id = 1");
  auto waiter = BranchThatRan("coord.1.2", "SET SESSION innodb_lock_wait_timeout = 1");
  ASSERT_NE(holder, nullptr);
  ASSERT_NE(waiter, nullptr);
  auto timed_out = waiter->Execute("UPDATE accounts SET balance = 6 WHERE id = 1", {});
  EXPECT_EQ(timed_out.status().code(), StatusCode::kAborted) << timed_out.status().ToString();
  std::string reason;
  auto vote = waiter->Prepare(&reason);
  ASSERT_TRUE(vote.ok());
  EXPECT_EQ(*vote, Vote::kAbort);
  EXPECT_NE(reason.find("lock wait timeout"), std::string::npos) << reason;
  ASSERT_OK(holder->CommitOnePhase());
  EXPECT_EQ(Balances(), "1:5,2:50");
}

TEST_F(MariaDbBackendTest, TwoParticipantsOnOneServerRecoverOnlyTheirOwnBranches) {
  const std::string db2 = db_ + "b";
  ASSERT_NO_FATAL_FAILURE(CreateAccounts(db2));
  MariaDbBackendOptions m1 = options_;
  m1.participant_name = "m1";
  MariaDbBackendOptions m2 = options_;
  m2.participant_name = "m2";
  m2.database = db2;
  {
    auto b1 = OpenBackend(m1);
    auto b2 = OpenBackend(m2);
    ASSERT_NE(b1, nullptr);
    ASSERT_NE(b2, nullptr);
    auto x1 =
        PreparedBranch(b1.get(), "coord.1.1", "UPDATE accounts SET balance = 1 WHERE id = 1");
    auto x2 =
        PreparedBranch(b2.get(), "coord.1.1", "UPDATE accounts SET balance = 2 WHERE id = 1");
    ASSERT_NE(x1, nullptr);
    ASSERT_NE(x2, nullptr);
  }  // both adapters go away undecided
  auto b1 = OpenBackend(m1);
  auto b2 = OpenBackend(m2);
  ASSERT_NE(b1, nullptr);
  ASSERT_NE(b2, nullptr);
  auto r1 = Recovered(b1.get());
  auto r2 = Recovered(b2.get());
  ASSERT_EQ(r1.size(), 1u);
  ASSERT_EQ(r2.size(), 1u);
  EXPECT_EQ(r1[0].txn_id, "coord.1.1");
  EXPECT_EQ(r2[0].txn_id, "coord.1.1");
  ASSERT_OK(r1[0].branch->CommitPrepared());
  EXPECT_EQ(XaPrepared("m1"), std::vector<std::string>{});
  EXPECT_EQ(XaPrepared("m2"), std::vector<std::string>{"coord.1.1"});  // m1's commit left it
  ASSERT_OK(r2[0].branch->Rollback());
  EXPECT_EQ(Balances(db_), "1:1,2:50");
  EXPECT_EQ(Balances(db2), "1:100,2:50");
}

// A session of its own outside Pact that can hold a transaction open.
class SideSession {
 public:
  explicit SideSession(int port) : conn_(mysql_init(nullptr)) {
    EXPECT_NE(mysql_real_connect(conn_, "127.0.0.1", "root", "", nullptr,
                                 static_cast<unsigned int>(port), nullptr, 0),
              nullptr)
        << mysql_error(conn_);
  }
  ~SideSession() { mysql_close(conn_); }

  void Run(const std::string& sql) {
    EXPECT_EQ(mysql_query(conn_, sql.c_str()), 0) << sql << ": " << mysql_error(conn_);
  }

 private:
  MYSQL* conn_;
};

// The marker of a one-phase commit still in flight in another session.
TEST_F(MariaDbBackendTest, IsCommittedWaitsForACommitInFlightAndNeverGuessesNo) {
  ASSERT_NE(backend(), nullptr);  // it creates the marker table
  const std::string insert = "INSERT INTO " + db_ + ".pact_committed_branches VALUES('coord.1.";
  const std::string row = "', '" + options_.participant_name + "', NOW())";
  SideSession lost(server_->port());
  lost.Run("BEGIN");
  lost.Run(insert + "1" + row);
  auto commit_soon = std::async(std::launch::async, [&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    lost.Run("COMMIT");
  });
  auto committed = backend()->IsCommitted("coord.1.1");
  commit_soon.get();
  ASSERT_TRUE(committed.ok()) << committed.status().ToString();
  EXPECT_TRUE(*committed);

  // Held past the wait: unknown, not "rolled back".
  lost.Run("BEGIN");
  lost.Run(insert + "2" + row);
  auto held = backend()->IsCommitted("coord.1.2");
  EXPECT_EQ(held.status().code(), StatusCode::kUnavailable) << held.status().ToString();
  lost.Run("COMMIT");
  EXPECT_TRUE(backend()->IsCommitted("coord.1.2").value());
}

TEST_F(MariaDbBackendTest, FindOrphansAdoptsPreparedBranchesTheServiceDoesNotHold) {
  auto held = PreparedBranch("coord.1.1", "UPDATE accounts SET balance = 1 WHERE id = 1");
  ASSERT_NE(held, nullptr);
  // Prepared with this participant's xid, as an XA PREPARE whose reply was
  // lost leaves it; and one of another participant.
  const std::string format = "," + std::to_string(MariaDbBackend::kFormatId);
  for (const auto& [xid, change] : std::vector<std::pair<std::string, std::string>>{
           {"'coord.1.7','" + options_.participant_name + "'" + format,
            "UPDATE accounts SET balance = 0 WHERE id = 2"},
           {"'coord.1.8','other'" + format, "INSERT INTO accounts VALUES(3, 'cy', 0)"}}) {
    ASSERT_OK(server_->Exec(
        db_, "XA START " + xid + "; " + change + "; XA END " + xid + "; XA PREPARE " + xid));
  }
  auto orphans = backend()->FindOrphans({"coord.1.1"});
  ASSERT_TRUE(orphans.ok()) << orphans.status().ToString();
  ASSERT_EQ(orphans->size(), 1u);
  EXPECT_EQ((*orphans)[0].txn_id, "coord.1.7");
  EXPECT_TRUE(backend()->FindOrphans({"coord.1.1", "coord.1.7"}).value().empty());
  ASSERT_OK((*orphans)[0].branch->Rollback());
  EXPECT_EQ(XaPrepared(), std::vector<std::string>{"coord.1.1"});
  EXPECT_EQ(XaPrepared("other"), std::vector<std::string>{"coord.1.8"});
  ASSERT_OK(held->CommitPrepared());
  EXPECT_EQ(Balances(), "1:1,2:50");
}

TEST_F(MariaDbBackendTest, RollbackWhileServerIsDownKeepsTheBranchPrepared) {
  auto branch = PreparedBranch("coord.1.1", "UPDATE accounts SET balance = 7 WHERE id = 2");
  ASSERT_NE(branch, nullptr);
  ASSERT_OK(server_->Kill());
  Status down = branch->Rollback();
  EXPECT_EQ(down.code(), StatusCode::kUnavailable) << down.ToString();
  ASSERT_OK(server_->StartAgain());
  EXPECT_EQ(XaPrepared(), std::vector<std::string>{"coord.1.1"});
  ASSERT_OK(branch->Rollback());
  EXPECT_TRUE(XaPrepared().empty());
  EXPECT_EQ(Balances(), "1:100,2:50");
}

// Stops the server (SIGSTOP: hung, not dead) until Resume or the end of the
// scope, and at the latest after 30 s, so no test can hang for ever.
class HungServer {
 public:
  explicit HungServer(const std::string& dir) {
    std::ifstream(dir + "/mysqld.pid") >> pid_;
    EXPECT_GT(pid_, 0);
    kill(pid_, SIGSTOP);
    watchdog_ = std::async(std::launch::async, [this] {
      std::unique_lock<std::mutex> lock(mu_);
      resumed_.wait_for(lock, std::chrono::seconds(30), [this] { return done_; });
      kill(pid_, SIGCONT);
    });
  }
  ~HungServer() { Resume(); }
  void Resume() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      done_ = true;
    }
    resumed_.notify_all();
    if (watchdog_.valid()) watchdog_.get();
  }

 private:
  pid_t pid_ = -1;
  std::mutex mu_;
  std::condition_variable resumed_;
  bool done_ = false;
  std::future<void> watchdog_;
};

TEST_F(MariaDbBackendTest, HungServerMakesCallsUnavailableAfterTheReadTimeout) {
  options_.read_timeout_s = 1;
  options_.write_timeout_s = 1;
  options_.connect_timeout_s = 1;
  auto prepared = PreparedBranch("coord.1.1", "UPDATE accounts SET balance = 1 WHERE id = 1");
  auto one_phase = BranchThatRan("coord.1.2", "UPDATE accounts SET balance = 2 WHERE id = 2");
  ASSERT_NE(prepared, nullptr);
  ASSERT_NE(one_phase, nullptr);
  {
    HungServer hung(dir_->path());
    auto start = std::chrono::steady_clock::now();
    Status commit = prepared->CommitPrepared();
    EXPECT_EQ(commit.code(), StatusCode::kUnavailable) << commit.ToString();
    Status commit_one_phase = one_phase->CommitOnePhase();
    EXPECT_EQ(commit_one_phase.code(), StatusCode::kUnavailable) << commit_one_phase.ToString();
    EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(20));
  }
  ASSERT_OK(prepared->CommitPrepared());
  auto committed = backend()->IsCommitted("coord.1.2");
  ASSERT_TRUE(committed.ok()) << committed.status().ToString();
  EXPECT_EQ(Balances(), *committed ? "1:1,2:2" : "1:1,2:50");
}

TEST_F(MariaDbBackendTest, LostPrepareIsNotTakenAsRolledBackWhileItsSessionMayStillPrepare) {
  options_.read_timeout_s = 1;
  auto branch = BranchThatRan("coord.1.1", "UPDATE accounts SET balance = 1 WHERE id = 1");
  ASSERT_NE(branch, nullptr);
  // The global read lock makes XA PREPARE wait past the read timeout.
  SideSession lock(server_->port());
  lock.Run("FLUSH TABLES WITH READ LOCK");
  std::string reason;
  auto vote = branch->Prepare(&reason);
  lock.Run("UNLOCK TABLES");  // a PREPARE still waiting would go on now
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  if (vote.ok() && *vote == Vote::kAbort) {
    EXPECT_TRUE(XaPrepared().empty()) << "voted abort, but the branch prepared after all";
  } else {
    EXPECT_EQ(vote.status().code(), StatusCode::kUnavailable) << vote.status().ToString();
  }
  ASSERT_OK(branch->Rollback());
  EXPECT_TRUE(XaPrepared().empty());
  EXPECT_EQ(Balances(), "1:100,2:50");
}

TEST_F(MariaDbBackendTest, OpenFailsClearlyWhenTheServerIsUnreachable) {
  MariaDbBackendOptions options = options_;
  options.port = 1;  // nothing listens there
  auto backend = MariaDbBackend::Open(options);
  ASSERT_FALSE(backend.ok());
  EXPECT_EQ(backend.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(backend.status().message().find("127.0.0.1:1"), std::string::npos)
      << backend.status().message();
}

TEST_F(MariaDbBackendTest, NamesTooLongForAnXidAreRefused) {
  MariaDbBackendOptions options = options_;
  options.participant_name = std::string(65, 'p');
  EXPECT_EQ(MariaDbBackend::Open(options).status().code(), StatusCode::kInvalidArgument);
  ASSERT_NE(backend(), nullptr);
  auto branch = backend()->Begin("coord.1." + std::string(60, '9'));
  EXPECT_EQ(branch.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(branch.status().message().find("64"), std::string::npos);
}

}  // namespace
}  // namespace pact
