#include "participant/backends/postgres/postgres_backend.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <gtest/gtest.h>
#include <libpq-fe.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <future>
#include <thread>

#include "cluster/postgres_server.h"
#include "cluster/temp_dir.h"

namespace pact {
namespace {

// One server for the suite (initdb takes a second); a fresh database per test.
class PostgresBackendTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    auto server = PostgresServer::Start(dir_->path());
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
    ASSERT_NE(server_, nullptr) << "no PostgreSQL server";
    if (!server_->running()) {
      ASSERT_TRUE(server_->StartAgain().ok());
    }
    static int databases = 0;
    db_ = "test" + std::to_string(++databases);
    ASSERT_TRUE(server_->CreateDatabase(db_).ok());
    ASSERT_EQ(Sql("CREATE TABLE accounts(id int PRIMARY KEY, owner text, balance int);"
                  "INSERT INTO accounts VALUES (1, 'ann', 100), (2, 'bob', 50)"),
              "");
  }

  // Drops the test's databases: every file in the cluster costs an fsync in
  // the crash recovery of a Restart. Prepared transactions go first, they
  // would keep a database alive.
  void TearDown() override {
    if (server_ == nullptr || !server_->running()) return;
    auto gids = server_->Query("postgres", "SELECT database, gid FROM pg_prepared_xacts");
    if (gids.ok()) {
      for (const auto& row : *gids) {
        EXPECT_TRUE(server_->Exec(row[0], "ROLLBACK PREPARED '" + row[1] + "'").ok());
      }
    }
    for (const std::string& db : {db_, db_ + "_b"}) {
      EXPECT_TRUE(
          server_->Exec("postgres", "DROP DATABASE IF EXISTS " + db + " WITH (FORCE)").ok());
    }
  }

  // Rows as "a|b;c|d" (NULL as "NULL"), or "error: ...", on a connection of
  // its own outside Pact.
  std::string Sql(const std::string& sql, const std::string& db = "") {
    auto rows = server_->Query(db.empty() ? db_ : db, sql);
    if (!rows.ok()) return "error: " + rows.status().message();
    std::string out;
    for (const auto& row : *rows) {
      if (!out.empty()) out += ";";
      for (size_t i = 0; i < row.size(); ++i) out += (i > 0 ? "|" : "") + row[i];
    }
    return out;
  }

  std::string Balances() { return Sql("SELECT id, balance FROM accounts ORDER BY id"); }

  std::string PreparedGids(const std::string& db = "") {
    return Sql("SELECT gid FROM pg_prepared_xacts WHERE database = current_database() ORDER BY gid",
               db);
  }

  std::unique_ptr<PostgresBackend> OpenBackend(const std::string& participant = "pg1",
                                               const std::string& db = "") {
    PostgresBackendOptions options;
    options.conninfo = server_->ConnInfo(db.empty() ? db_ : db);
    options.participant_name = participant;
    auto backend = PostgresBackend::Open(options);
    EXPECT_TRUE(backend.ok()) << backend.status().ToString();
    return backend.ok() ? std::move(backend).value() : nullptr;
  }

  std::unique_ptr<Branch> BeginBranch(Backend* backend, const std::string& txn_id) {
    auto branch = backend->Begin(txn_id);
    EXPECT_TRUE(branch.ok()) << branch.status().ToString();
    return branch.ok() ? std::move(branch).value() : nullptr;
  }

  // Begins a branch that moves 30 from account 1 to a new account 3 and
  // prepares it.
  std::unique_ptr<Branch> PreparedTransfer(Backend* backend, const std::string& txn_id) {
    auto branch = BeginBranch(backend, txn_id);
    if (branch == nullptr) return nullptr;
    EXPECT_TRUE(
        branch->Execute("UPDATE accounts SET balance = balance - 30 WHERE id = 1", {}).ok());
    EXPECT_TRUE(branch->Execute("INSERT INTO accounts VALUES (3, 'cy', 30)", {}).ok());
    std::string reason;
    auto vote = branch->Prepare(&reason);
    EXPECT_TRUE(vote.ok()) << vote.status().ToString();
    EXPECT_TRUE(vote.ok() && *vote == Vote::kCommit) << reason;
    return branch;
  }

  static constexpr const char* kBefore = "1|100;2|50";
  static constexpr const char* kAfter = "1|70;2|50;3|30";

  static TempDir* dir_;
  static PostgresServer* server_;
  std::string db_;
};

TempDir* PostgresBackendTest::dir_ = nullptr;
PostgresServer* PostgresBackendTest::server_ = nullptr;

void ExpectOk(Branch* branch, const std::string& sql, const std::vector<SqlValue>& params = {}) {
  auto result = branch->Execute(sql, params);
  EXPECT_TRUE(result.ok()) << sql << ": " << result.status().ToString();
}

TEST_F(PostgresBackendTest, ExecuteReturnsTypedRowsAndAffectedRows) {
  auto backend = OpenBackend();
  EXPECT_EQ(backend->Name(), "postgresql");
  auto branch = BeginBranch(backend.get(), "c.1.1");
  ExpectOk(branch.get(),
           "CREATE TABLE t(id int PRIMARY KEY, big bigint, small smallint, r real,"
           " d double precision, n numeric, s text, b bytea, f boolean, day date)");
  auto insert = branch->Execute(
      "INSERT INTO t VALUES (1, 9000000000, -3, 2.5, 0.1, 12.5, 'seven', '\\x00ff', true,"
      " '2024-01-02'), (2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, false, NULL)",
      {});
  ASSERT_TRUE(insert.ok()) << insert.status().ToString();
  EXPECT_EQ(insert->affected_rows, 2);
  EXPECT_TRUE(insert->columns.empty());

  auto select = branch->Execute("SELECT big, small, r, d, n, s, b, f, day FROM t ORDER BY id", {});
  ASSERT_TRUE(select.ok()) << select.status().ToString();
  EXPECT_EQ(select->columns,
            (std::vector<std::string>{"big", "small", "r", "d", "n", "s", "b", "f", "day"}));
  ASSERT_EQ(select->rows.size(), 2u);
  EXPECT_EQ(select->rows[0],
            (std::vector<SqlValue>{int64_t{9000000000}, int64_t{-3}, 2.5, 0.1, 12.5,
                                   std::string("seven"), Blob{std::string("\0\xff", 2)}, int64_t{1},
                                   std::string("2024-01-02")}));
  EXPECT_EQ(select->rows[1],
            (std::vector<SqlValue>{std::monostate(), std::monostate(), std::monostate(),
                                   std::monostate(), std::monostate(), std::monostate(),
                                   std::monostate(), int64_t{0}, std::monostate()}));
  EXPECT_EQ(select->affected_rows, 0);  // rows read are not rows changed

  auto update = branch->Execute("UPDATE accounts SET balance = balance + 1", {});
  ASSERT_TRUE(update.ok());
  EXPECT_EQ(update->affected_rows, 2);
  auto returning = branch->Execute("INSERT INTO accounts VALUES (3, 'cy', 0) RETURNING id", {});
  ASSERT_TRUE(returning.ok());
  EXPECT_EQ(returning->affected_rows, 1);
  EXPECT_EQ(returning->rows, (std::vector<std::vector<SqlValue>>{{int64_t{3}}}));
  auto ddl = branch->Execute("CREATE INDEX t_s ON t(s)", {});
  ASSERT_TRUE(ddl.ok());
  EXPECT_EQ(ddl->affected_rows, 0);
  ASSERT_TRUE(branch->CommitOnePhase().ok());
  EXPECT_EQ(Balances(), "1|101;2|51;3|0");
}

TEST_F(PostgresBackendTest, ExecuteBindsParametersOfEveryType) {
  auto backend = OpenBackend();
  auto branch = BeginBranch(backend.get(), "c.1.1");
  ExpectOk(branch.get(),
           "CREATE TABLE p(id int PRIMARY KEY, i bigint, r double precision, s text, b bytea,"
           " n text)");
  const Blob blob{std::string("\0\x01'\\\xff", 5)};
  auto insert = branch->Execute(
      "INSERT INTO p VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
      {int64_t{1}, int64_t{-7}, 0.1, std::string("it's ?1"), blob, std::monostate()});
  ASSERT_TRUE(insert.ok()) << insert.status().ToString();
  EXPECT_EQ(insert->affected_rows, 1);

  // Bare ? and PostgreSQL's own $1 work too; a ? inside a literal is text.
  auto bare = branch->Execute("SELECT i, r, s, b, n, '?' AS q FROM p WHERE id = ? AND i = ?",
                              {int64_t{1}, int64_t{-7}});
  ASSERT_TRUE(bare.ok()) << bare.status().ToString();
  ASSERT_EQ(bare->rows.size(), 1u);
  EXPECT_EQ(bare->rows[0], (std::vector<SqlValue>{int64_t{-7}, 0.1, std::string("it's ?1"), blob,
                                                  std::monostate(), std::string("?")}));
  auto dollar = branch->Execute("SELECT s FROM p WHERE r = $1", {0.1});
  ASSERT_TRUE(dollar.ok()) << dollar.status().ToString();
  EXPECT_EQ(dollar->rows.size(), 1u);
  ASSERT_TRUE(branch->CommitOnePhase().ok());
}

TEST_F(PostgresBackendTest, ExecuteRefusesTransactionControlAndSeveralStatements) {
  auto backend = OpenBackend();
  auto branch = BeginBranch(backend.get(), "c.1.1");
  ExpectOk(branch.get(), "UPDATE accounts SET balance = 7 WHERE id = 1");
  for (const char* sql :
       {"COMMIT", "end", "  /* a /* nested */ comment */ -- and a line\n rollback", "ABORT",
        "BEGIN", "START TRANSACTION", "SAVEPOINT s", "RELEASE s", "PREPARE TRANSACTION 'x'",
        "COMMIT PREPARED 'x'", "SET TRANSACTION ISOLATION LEVEL SERIALIZABLE", "   ",
        "-- nothing"}) {
    auto result = branch->Execute(sql, {});
    ASSERT_FALSE(result.ok()) << sql;
    EXPECT_EQ(result.status().code(), StatusCode::kInvalidArgument) << sql;
  }
  auto commit = branch->Execute("COMMIT", {});
  EXPECT_NE(commit.status().message().find("transaction control is Pact's job"), std::string::npos)
      << commit.status().ToString();
  // Refused before reaching PostgreSQL, so the branch is still whole.
  std::string reason;
  auto vote = branch->Prepare(&reason);
  ASSERT_TRUE(vote.ok()) << vote.status().ToString();
  ASSERT_EQ(*vote, Vote::kCommit) << reason;
  ASSERT_TRUE(branch->CommitPrepared().ok());
  EXPECT_EQ(Balances(), "1|7;2|50");

  auto two = BeginBranch(backend.get(), "c.1.2");
  auto result = two->Execute("UPDATE accounts SET balance = 0; SELECT 1", {});
  EXPECT_EQ(result.status().code(), StatusCode::kInvalidArgument) << result.status().ToString();
  EXPECT_TRUE(two->Rollback().ok());
  EXPECT_EQ(Balances(), "1|7;2|50");
}

TEST_F(PostgresBackendTest, PreparedChangesStayInvisibleUntilCommitPrepared) {
  auto backend = OpenBackend();
  auto branch = PreparedTransfer(backend.get(), "c.1.1");
  EXPECT_EQ(Balances(), kBefore);
  EXPECT_EQ(PreparedGids(), "pact:pg1:c.1.1");
  EXPECT_EQ(PostgresBackend::Gid("pg1", "c.1.1"), "pact:pg1:c.1.1");
  EXPECT_EQ(branch->Execute("SELECT 1", {}).status().code(), StatusCode::kFailedPrecondition);

  ASSERT_TRUE(branch->CommitPrepared().ok());
  EXPECT_EQ(Balances(), kAfter);
  EXPECT_EQ(PreparedGids(), "");
  EXPECT_TRUE(branch->CommitPrepared().ok());  // a repeated commit
  auto committed = backend->IsCommitted("c.1.1");
  ASSERT_TRUE(committed.ok());
  EXPECT_TRUE(*committed);
}

TEST_F(PostgresBackendTest, RollbackAfterPrepareLeavesDataUnchanged) {
  auto backend = OpenBackend();
  auto branch = PreparedTransfer(backend.get(), "c.1.1");
  ASSERT_TRUE(branch->Rollback().ok());
  EXPECT_TRUE(branch->Rollback().ok());  // a repeated rollback
  EXPECT_EQ(Balances(), kBefore);
  EXPECT_EQ(PreparedGids(), "");
  EXPECT_EQ(branch->CommitPrepared().code(), StatusCode::kFailedPrecondition);
  auto committed = backend->IsCommitted("c.1.1");
  ASSERT_TRUE(committed.ok());
  EXPECT_FALSE(*committed);
}

TEST_F(PostgresBackendTest, StatementErrorMakesTheBranchRollbackOnly) {
  auto backend = OpenBackend();
  auto branch = BeginBranch(backend.get(), "c.1.1");
  ExpectOk(branch.get(), "UPDATE accounts SET balance = 1 WHERE id = 1");
  auto duplicate = branch->Execute("INSERT INTO accounts VALUES (2, 'dup', 0)", {});
  ASSERT_EQ(duplicate.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(duplicate.status().message().find("duplicate key"), std::string::npos);

  auto next = branch->Execute("SELECT 1", {});
  EXPECT_EQ(next.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(next.status().message().find("can only roll back"), std::string::npos);
  std::string reason;
  auto vote = branch->Prepare(&reason);
  ASSERT_TRUE(vote.ok()) << vote.status().ToString();
  EXPECT_EQ(*vote, Vote::kAbort);
  EXPECT_NE(reason.find("duplicate key"), std::string::npos) << reason;
  EXPECT_TRUE(branch->Rollback().ok());
  EXPECT_EQ(Balances(), kBefore);
  EXPECT_EQ(PreparedGids(), "");

  // One phase: refused the same way.
  auto other = BeginBranch(backend.get(), "c.1.2");
  EXPECT_FALSE(other->Execute("SELEC 1", {}).ok());
  EXPECT_EQ(other->CommitOnePhase().code(), StatusCode::kAborted);
}

TEST_F(PostgresBackendTest, DeferredConstraintFailingAtPrepareVotesAbort) {
  ASSERT_EQ(Sql("CREATE TABLE parent(id int PRIMARY KEY);"
                "CREATE TABLE child(id int PRIMARY KEY, parent_id int"
                " REFERENCES parent(id) DEFERRABLE INITIALLY DEFERRED)"),
            "");
  auto backend = OpenBackend();
  auto branch = BeginBranch(backend.get(), "c.1.1");
  ExpectOk(branch.get(), "UPDATE accounts SET balance = 0 WHERE id = 1");
  ExpectOk(branch.get(), "INSERT INTO child VALUES (1, 99)");  // checked only at the end
  std::string reason;
  auto vote = branch->Prepare(&reason);
  ASSERT_TRUE(vote.ok()) << vote.status().ToString();
  EXPECT_EQ(*vote, Vote::kAbort);
  EXPECT_NE(reason.find("foreign key"), std::string::npos) << reason;
  EXPECT_EQ(Balances(), kBefore);
  EXPECT_EQ(PreparedGids(), "");
  EXPECT_EQ(Sql("SELECT count(*) FROM child"), "0");

  // And at a one-phase COMMIT: refused and rolled back.
  auto one_phase = BeginBranch(backend.get(), "c.1.2");
  ExpectOk(one_phase.get(), "INSERT INTO child VALUES (2, 98)");
  Status st = one_phase->CommitOnePhase();
  EXPECT_EQ(st.code(), StatusCode::kAborted) << st.ToString();
  EXPECT_EQ(Sql("SELECT count(*) FROM child"), "0");
}

TEST_F(PostgresBackendTest, ReadOnlyBranchVotesReadOnlyAndHoldsNothing) {
  auto backend = OpenBackend();
  auto branch = BeginBranch(backend.get(), "c.1.1");
  auto read = branch->Execute("SELECT balance FROM accounts WHERE id = ?1", {int64_t{1}});
  ASSERT_TRUE(read.ok()) << read.status().ToString();
  EXPECT_EQ(read->rows, (std::vector<std::vector<SqlValue>>{{int64_t{100}}}));
  std::string reason;
  auto vote = branch->Prepare(&reason);
  ASSERT_TRUE(vote.ok()) << vote.status().ToString();
  EXPECT_EQ(*vote, Vote::kReadOnly);
  EXPECT_EQ(PreparedGids(), "");
  EXPECT_EQ(Sql("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                " AND state LIKE 'idle in transaction%'"),
            "0");
}

// A branch whose statements changed no row may still have written (a
// function a SELECT calls): it must prepare, not vote READ_ONLY.
TEST_F(PostgresBackendTest, SelectThatWritesThroughAFunctionPreparesAndCommits) {
  ASSERT_EQ(Sql("CREATE FUNCTION pay(n int) RETURNS int LANGUAGE sql AS "
                "'UPDATE accounts SET balance = balance + n WHERE id = 1 RETURNING balance'"),
            "");
  auto backend = OpenBackend();
  auto branch = BeginBranch(backend.get(), "c.1.1");
  auto paid = branch->Execute("SELECT pay(?1)", {int64_t{5}});
  ASSERT_TRUE(paid.ok()) << paid.status().ToString();
  EXPECT_EQ(paid->affected_rows, 0);
  std::string reason;
  auto vote = branch->Prepare(&reason);
  ASSERT_TRUE(vote.ok()) << vote.status().ToString();
  EXPECT_EQ(*vote, Vote::kCommit);
  EXPECT_NE(PreparedGids(), "");
  ASSERT_TRUE(branch->CommitPrepared().ok());
  EXPECT_EQ(Sql("SELECT balance FROM accounts WHERE id = 1"), "105");
}

TEST_F(PostgresBackendTest, OnePhaseCommitIsVisibleAndRemembered) {
  auto backend = OpenBackend();
  auto branch = BeginBranch(backend.get(), "c.1.1");
  ExpectOk(branch.get(), "UPDATE accounts SET balance = balance - ?1 WHERE id = ?2",
           {int64_t{5}, int64_t{1}});
  ASSERT_TRUE(branch->CommitOnePhase().ok());
  EXPECT_TRUE(branch->CommitOnePhase().ok());  // a repeated commit
  EXPECT_EQ(Balances(), "1|95;2|50");
  auto rolled_back = BeginBranch(backend.get(), "c.1.2");
  ExpectOk(rolled_back.get(), "UPDATE accounts SET balance = 0");
  ASSERT_TRUE(rolled_back->Rollback().ok());
  EXPECT_EQ(Balances(), "1|95;2|50");

  for (const auto& [txn_id, expected] : std::vector<std::pair<std::string, bool>>{
           {"c.1.1", true}, {"c.1.2", false}, {"c.1.3", false}}) {
    auto committed = backend->IsCommitted(txn_id);
    ASSERT_TRUE(committed.ok()) << committed.status().ToString();
    EXPECT_EQ(*committed, expected) << txn_id;
  }
}

TEST_F(PostgresBackendTest, BeginRefusesMalformedTransactionIds) {
  auto backend = OpenBackend();
  for (const char* txn_id : {"", "no-dots", "c.1.x'y", "c.0.1"}) {
    EXPECT_EQ(backend->Begin(txn_id).status().code(), StatusCode::kInvalidArgument) << txn_id;
  }
}

TEST_F(PostgresBackendTest, OpenRefusesServerWithoutPreparedTransactions) {
  TempDir dir;
  auto server = PostgresServer::Start(dir.path(), {{"max_prepared_transactions", "0"}});
  ASSERT_TRUE(server.ok()) << server.status().ToString();
  PostgresBackendOptions options;
  options.conninfo = (*server)->ConnInfo("postgres");
  options.participant_name = "pg1";
  auto backend = PostgresBackend::Open(options);
  ASSERT_FALSE(backend.ok());
  EXPECT_EQ(backend.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(backend.status().message().find("max_prepared_transactions is 0 on this server"),
            std::string::npos)
      << backend.status().ToString();
}

TEST_F(PostgresBackendTest, OpenRefusesUnreachableServerAsUnavailable) {
  // A bound socket that never listens: connections to it are refused.
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  socklen_t len = sizeof(addr);
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  PostgresBackendOptions options;
  options.conninfo =
      "host=127.0.0.1 user=postgres dbname=x port=" + std::to_string(ntohs(addr.sin_port));
  options.participant_name = "pg1";
  auto backend = PostgresBackend::Open(options);
  close(fd);
  ASSERT_FALSE(backend.ok());
  EXPECT_EQ(backend.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(backend.status().message().find("refused"), std::string::npos)
      << backend.status().ToString();

  options.conninfo = server_->ConnInfo(db_);
  options.participant_name = "no spaces";
  EXPECT_EQ(PostgresBackend::Open(options).status().code(), StatusCode::kInvalidArgument);
}

TEST_F(PostgresBackendTest, PreparedBranchSurvivesTheAdapterAndCommitsFromANewOne) {
  {
    auto crashed = OpenBackend();
    auto branch = PreparedTransfer(crashed.get(), "c.1.1");
    // Both dropped undecided, as a crash of the adapter would.
  }
  EXPECT_EQ(Balances(), kBefore);
  auto backend = OpenBackend();
  auto recovered = backend->RecoverPrepared();
  ASSERT_TRUE(recovered.ok()) << recovered.status().ToString();
  ASSERT_EQ(recovered->size(), 1u);
  RecoveredBranch& branch = (*recovered)[0];
  EXPECT_EQ(branch.txn_id, "c.1.1");
  const int64_t now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                             std::chrono::system_clock::now().time_since_epoch())
                             .count();
  EXPECT_LE(branch.prepared_at_ms, now_ms);
  EXPECT_GT(branch.prepared_at_ms, now_ms - 60000);
  ASSERT_TRUE(branch.branch->CommitPrepared().ok());
  EXPECT_EQ(Balances(), kAfter);
  EXPECT_EQ(PreparedGids(), "");
}

TEST_F(PostgresBackendTest, PreparedBranchSurvivesTheAdapterAndRollsBackFromANewOne) {
  {
    auto crashed = OpenBackend();
    auto branch = PreparedTransfer(crashed.get(), "c.1.1");
  }
  auto backend = OpenBackend();
  auto recovered = backend->RecoverPrepared();
  ASSERT_TRUE(recovered.ok()) << recovered.status().ToString();
  ASSERT_EQ(recovered->size(), 1u);
  ASSERT_TRUE((*recovered)[0].branch->Rollback().ok());
  EXPECT_EQ(Balances(), kBefore);
  EXPECT_EQ(PreparedGids(), "");
}

TEST_F(PostgresBackendTest, PreparedBranchSurvivesServerRestartAndCommits) {
  auto backend = OpenBackend();
  auto branch = PreparedTransfer(backend.get(), "c.1.1");
  ASSERT_TRUE(server_->Restart().ok());
  EXPECT_EQ(PreparedGids(), "pact:pg1:c.1.1");
  EXPECT_EQ(Balances(), kBefore);
  Status st = branch->CommitPrepared();  // its pooled connections died with the server
  ASSERT_TRUE(st.ok()) << st.ToString();
  EXPECT_EQ(Balances(), kAfter);
  EXPECT_EQ(PreparedGids(), "");
  // New branches work on fresh connections too.
  auto next = BeginBranch(backend.get(), "c.1.2");
  ExpectOk(next.get(), "SELECT 1");
  EXPECT_TRUE(next->CommitOnePhase().ok());
}

TEST_F(PostgresBackendTest, CommitPreparedReconnectsAfterConnectionsAreTerminated) {
  auto backend = OpenBackend();
  auto branch = PreparedTransfer(backend.get(), "c.1.1");
  EXPECT_EQ(Sql("SELECT bool_and(pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"),
            "t");
  Status st = branch->CommitPrepared();
  ASSERT_TRUE(st.ok()) << st.ToString();
  EXPECT_EQ(Balances(), kAfter);
  EXPECT_EQ(PreparedGids(), "");
}

TEST_F(PostgresBackendTest, CommitPreparedOfABranchCommittedBehindPactsBackAnswersOk) {
  auto backend = OpenBackend();
  auto branch = PreparedTransfer(backend.get(), "c.1.1");
  ASSERT_EQ(Sql("COMMIT PREPARED 'pact:pg1:c.1.1'"), "");
  Status st = branch->CommitPrepared();
  EXPECT_TRUE(st.ok()) << st.ToString();
  EXPECT_EQ(Balances(), kAfter);

  auto rolled_back = BeginBranch(backend.get(), "c.1.2");
  ExpectOk(rolled_back.get(), "UPDATE accounts SET balance = 0");
  std::string reason;
  ASSERT_EQ(rolled_back->Prepare(&reason).value(), Vote::kCommit);
  ASSERT_EQ(Sql("ROLLBACK PREPARED 'pact:pg1:c.1.2'"), "");
  EXPECT_TRUE(rolled_back->Rollback().ok());
  EXPECT_EQ(Balances(), kAfter);
}

TEST_F(PostgresBackendTest, CommitPreparedWhileServerIsDownIsUnavailableAndRetriable) {
  auto backend = OpenBackend();
  auto branch = PreparedTransfer(backend.get(), "c.1.1");
  ASSERT_TRUE(server_->Stop().ok());
  const auto start = std::chrono::steady_clock::now();
  Status st = branch->CommitPrepared();
  const auto took = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(st.code(), StatusCode::kUnavailable) << st.ToString();
  EXPECT_LT(took, std::chrono::seconds(5));
  EXPECT_EQ(branch->Rollback().code(), StatusCode::kUnavailable);  // still undecided

  ASSERT_TRUE(server_->StartAgain().ok());
  EXPECT_EQ(PreparedGids(), "pact:pg1:c.1.1");
  EXPECT_EQ(Balances(), kBefore);
  st = branch->CommitPrepared();
  ASSERT_TRUE(st.ok()) << st.ToString();
  EXPECT_EQ(Balances(), kAfter);
  EXPECT_EQ(PreparedGids(), "");
}

TEST_F(PostgresBackendTest, TwoDatabasesOfOneClusterRecoverOnlyTheirOwnBranches) {
  const std::string other_db = db_ + "_b";  // dropped by TearDown
  ASSERT_TRUE(server_->CreateDatabase(other_db).ok());
  ASSERT_EQ(Sql("CREATE TABLE accounts(id int PRIMARY KEY, owner text, balance int);"
                "INSERT INTO accounts VALUES (1, 'ann', 100), (2, 'bob', 50)",
                other_db),
            "");
  auto pg1 = OpenBackend("pg1");
  auto pg2 = OpenBackend("pg2", other_db);
  // Names that a LIKE pattern would confuse: '_' matches any character.
  auto pg_1 = OpenBackend("pg_", other_db);
  auto a = PreparedTransfer(pg1.get(), "c.1.1");
  auto b = PreparedTransfer(pg2.get(), "c.1.1");
  auto c = BeginBranch(pg_1.get(), "c.1.2");
  ExpectOk(c.get(), "UPDATE accounts SET balance = 0 WHERE id = 2");
  std::string reason;
  ASSERT_EQ(c->Prepare(&reason).value(), Vote::kCommit);

  auto one = pg1->RecoverPrepared();
  auto two = pg2->RecoverPrepared();
  auto three = pg_1->RecoverPrepared();
  ASSERT_TRUE(one.ok() && two.ok() && three.ok());
  ASSERT_EQ(one->size(), 1u);
  ASSERT_EQ(two->size(), 1u);
  ASSERT_EQ(three->size(), 1u);
  EXPECT_EQ((*one)[0].txn_id, "c.1.1");
  EXPECT_EQ((*two)[0].txn_id, "c.1.1");
  EXPECT_EQ((*three)[0].txn_id, "c.1.2");
  ASSERT_TRUE((*one)[0].branch->CommitPrepared().ok());
  ASSERT_TRUE((*two)[0].branch->Rollback().ok());
  ASSERT_TRUE((*three)[0].branch->Rollback().ok());
  EXPECT_EQ(Balances(), kAfter);
  EXPECT_EQ(Sql("SELECT id, balance FROM accounts ORDER BY id", other_db), kBefore);
  EXPECT_EQ(PreparedGids(other_db), "");
}

TEST_F(PostgresBackendTest, OutcomesAreKnownAfterTheAdapterRestarts) {
  {
    auto crashed = OpenBackend();
    auto one_phase = BeginBranch(crashed.get(), "c.1.1");
    ExpectOk(one_phase.get(), "UPDATE accounts SET balance = 1 WHERE id = 1");
    ASSERT_TRUE(one_phase->CommitOnePhase().ok());
    auto two_phase = PreparedTransfer(crashed.get(), "c.1.2");
    ASSERT_TRUE(two_phase->CommitPrepared().ok());
    auto aborted = BeginBranch(crashed.get(), "c.1.3");
    ExpectOk(aborted.get(), "UPDATE accounts SET balance = 3 WHERE id = 2");
    std::string reason;
    ASSERT_EQ(aborted->Prepare(&reason).value(), Vote::kCommit);
    ASSERT_TRUE(aborted->Rollback().ok());
    auto rolled_back = BeginBranch(crashed.get(), "c.1.4");
    ExpectOk(rolled_back.get(), "UPDATE accounts SET balance = 4 WHERE id = 2");
    ASSERT_TRUE(rolled_back->Rollback().ok());
  }  // the adapter restarts: whatever it remembered is gone
  EXPECT_EQ(Balances(), "1|-29;2|50;3|30");
  auto backend = OpenBackend();
  for (const auto& [txn_id, expected] : std::vector<std::pair<std::string, bool>>{
           {"c.1.1", true}, {"c.1.2", true}, {"c.1.3", false}, {"c.1.4", false}}) {
    auto committed = backend->IsCommitted(txn_id);
    ASSERT_TRUE(committed.ok()) << committed.status().ToString();
    EXPECT_EQ(*committed, expected) << txn_id;
  }
  // Another participant in the same database has markers of its own.
  auto other = OpenBackend("pg2");
  EXPECT_FALSE(other->IsCommitted("c.1.1").value());
}

TEST_F(PostgresBackendTest, IsCommittedWhileServerIsDownIsUnavailable) {
  auto backend = OpenBackend();
  ASSERT_TRUE(server_->Stop().ok());
  auto committed = backend->IsCommitted("c.1.1");
  EXPECT_EQ(committed.status().code(), StatusCode::kUnavailable) << committed.status().ToString();
}

TEST_F(PostgresBackendTest, OldCommitMarkersArePruned) {
  PostgresBackendOptions options;
  options.conninfo = server_->ConnInfo(db_);
  options.participant_name = "pg1";
  {
    auto backend = PostgresBackend::Open(options).value();
    auto branch = BeginBranch(backend.get(), "c.1.1");
    ExpectOk(branch.get(), "UPDATE accounts SET balance = 1 WHERE id = 1");
    ASSERT_TRUE(branch->CommitOnePhase().ok());
  }
  ASSERT_EQ(Sql("UPDATE pact_committed_branches SET committed_at = now() - interval '1 hour'"), "");
  options.commit_marker_retention_ms = 60000;
  auto backend = PostgresBackend::Open(options).value();  // prunes at start
  EXPECT_EQ(Sql("SELECT count(*) FROM pact_committed_branches"), "0");
  EXPECT_FALSE(backend->IsCommitted("c.1.1").value());
}

TEST_F(PostgresBackendTest, FindOrphansAdoptsPreparedBranchesTheServiceDoesNotHold) {
  auto backend = OpenBackend();
  auto held = PreparedTransfer(backend.get(), "c.1.1");
  // Prepared with this participant's gids, as a PREPARE whose reply was lost
  // leaves them; and one of another participant.
  ASSERT_EQ(Sql("BEGIN; UPDATE accounts SET balance = 0 WHERE id = 2;"
                " PREPARE TRANSACTION 'pact:pg1:c.1.7'"),
            "");
  ASSERT_EQ(Sql("BEGIN; PREPARE TRANSACTION 'pact:pg2:c.1.8'"), "");
  auto orphans = backend->FindOrphans({"c.1.1"});
  ASSERT_TRUE(orphans.ok()) << orphans.status().ToString();
  ASSERT_EQ(orphans->size(), 1u);
  EXPECT_EQ((*orphans)[0].txn_id, "c.1.7");
  EXPECT_GT((*orphans)[0].prepared_at_ms, 0);
  EXPECT_TRUE(backend->FindOrphans({"c.1.1", "c.1.7"}).value().empty());
  ASSERT_TRUE((*orphans)[0].branch->Rollback().ok());
  EXPECT_EQ(PreparedGids(), "pact:pg1:c.1.1;pact:pg2:c.1.8");
  ASSERT_TRUE(held->CommitPrepared().ok());
  EXPECT_EQ(Balances(), kAfter);
}

TEST_F(PostgresBackendTest, RollbackWhileServerIsDownKeepsTheBranchPrepared) {
  auto backend = OpenBackend();
  auto branch = PreparedTransfer(backend.get(), "c.1.1");
  ASSERT_TRUE(server_->Stop().ok());
  Status st = branch->Rollback();
  EXPECT_EQ(st.code(), StatusCode::kUnavailable) << st.ToString();
  ASSERT_TRUE(server_->StartAgain().ok());
  EXPECT_EQ(PreparedGids(), "pact:pg1:c.1.1");
  st = branch->Rollback();
  ASSERT_TRUE(st.ok()) << st.ToString();
  EXPECT_EQ(PreparedGids(), "");
  EXPECT_EQ(Balances(), kBefore);
}

// Loses the reply to a statement of the branch: CutConnection shuts the
// client side of its socket down while the server works on the request, which
// the server then still finishes. Stop makes its server process wait until
// Resume.
class LostReply {
 public:
  explicit LostReply(Branch* branch) {
    auto rows = branch->Execute("SELECT pg_backend_pid(), inet_client_port()", {});
    EXPECT_TRUE(rows.ok()) << rows.status().ToString();
    pid_ = static_cast<pid_t>(std::get<int64_t>(rows->rows[0][0]));
    port_ = static_cast<int>(std::get<int64_t>(rows->rows[0][1]));
  }
  ~LostReply() { Resume(); }

  void Stop() { EXPECT_EQ(kill(pid_, SIGSTOP), 0); }

  // Call while the branch waits for its reply.
  void CutConnection() {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));  // the request is sent
    DIR* dir = opendir("/proc/self/fd");
    while (dirent* entry = readdir(dir)) {
      const int fd = std::atoi(entry->d_name);
      sockaddr_in addr{};
      socklen_t len = sizeof(addr);
      if (getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0 &&
          addr.sin_family == AF_INET && ntohs(addr.sin_port) == port_) {
        shutdown(fd, SHUT_RDWR);
      }
    }
    closedir(dir);
  }

  void Resume() {
    if (pid_ > 0) kill(pid_, SIGCONT);
    pid_ = -1;
  }

 private:
  pid_t pid_ = -1;
  int port_ = 0;
};

TEST_F(PostgresBackendTest, RollbackAfterALostPrepareWaitsForTheSessionThatMayStillPrepare) {
  auto backend = OpenBackend();
  // A deferred trigger, which runs at PREPARE, waits for a row that a side
  // transaction holds: the PREPARE's round trip waits until it ends.
  ASSERT_EQ(Sql("CREATE TABLE gate(id int PRIMARY KEY); INSERT INTO gate VALUES (1);"
                "CREATE FUNCTION pass_gate() RETURNS trigger LANGUAGE plpgsql AS"
                " $$BEGIN PERFORM 1 FROM gate FOR UPDATE; RETURN NULL; END$$;"
                "CREATE CONSTRAINT TRIGGER gate AFTER UPDATE ON accounts"
                " DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION pass_gate()"),
            "");
  PGconn* blocker = PQconnectdb(server_->ConnInfo(db_).c_str());
  ASSERT_EQ(PQstatus(blocker), CONNECTION_OK);
  PQclear(PQexec(blocker, "BEGIN; SELECT 1 FROM gate FOR UPDATE"));
  auto branch = BeginBranch(backend.get(), "c.1.1");
  ExpectOk(branch.get(), "UPDATE accounts SET balance = 0 WHERE id = 1");
  LostReply lost(branch.get());
  auto prepare = std::async(std::launch::async, [&] {
    std::string reason;
    return branch->Prepare(&reason).status();
  });
  lost.CutConnection();
  const Status prepared = prepare.get();
  EXPECT_EQ(prepared.code(), StatusCode::kUnavailable) << prepared.ToString();
  // The session that got the PREPARE still waits to run it: "no such gid"
  // is not final until it is gone.
  Status st = branch->Rollback();
  PQclear(PQexec(blocker, "ROLLBACK"));  // the lost PREPARE could go on now
  PQfinish(blocker);
  ASSERT_TRUE(st.ok()) << st.ToString();
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  EXPECT_EQ(PreparedGids(), "");
  EXPECT_EQ(Balances(), kBefore);
  EXPECT_TRUE(backend->FindOrphans({}).value().empty());
}

TEST_F(PostgresBackendTest, OnePhaseCommitWhoseReplyIsLostIsUnknownUntilTheSessionIsGone) {
  auto backend = OpenBackend();
  auto branch = BeginBranch(backend.get(), "c.1.1");
  ExpectOk(branch.get(), "UPDATE accounts SET balance = 0 WHERE id = 1");
  LostReply lost(branch.get());
  lost.Stop();
  auto commit = std::async(std::launch::async, [&] { return branch->CommitOnePhase(); });
  lost.CutConnection();
  const Status committed = commit.get();
  EXPECT_EQ(committed.code(), StatusCode::kUnavailable) << committed.ToString();
  auto unknown = backend->IsCommitted("c.1.1");
  EXPECT_EQ(unknown.status().code(), StatusCode::kUnavailable) << unknown.status().ToString();
  lost.Resume();  // it commits now, or dies first
  auto known = backend->IsCommitted("c.1.1");
  ASSERT_TRUE(known.ok()) << known.status().ToString();
  EXPECT_EQ(Balances(), *known ? "1|0;2|50" : kBefore);
}

// --- One pooled connection serving branch after branch. ---

// A backend with one pooled connection, so consecutive branches share it.
std::unique_ptr<PostgresBackend> OpenOneConnectionBackend(PostgresServer* server,
                                                          const std::string& db) {
  PostgresBackendOptions options;
  options.conninfo = server->ConnInfo(db);
  options.participant_name = "pg1";
  options.max_idle_connections = 1;
  auto backend = PostgresBackend::Open(options);
  EXPECT_TRUE(backend.ok()) << backend.status().ToString();
  return backend.ok() ? std::move(backend).value() : nullptr;
}

// The first column of the only row, as text ("" on error, with a failure).
std::string One(Branch* branch, const std::string& sql) {
  auto result = branch->Execute(sql, {});
  EXPECT_TRUE(result.ok()) << sql << ": " << result.status().ToString();
  if (!result.ok() || result->rows.empty()) return "";
  const SqlValue& v = result->rows[0][0];
  if (auto* i = std::get_if<int64_t>(&v)) return std::to_string(*i);
  if (auto* t = std::get_if<std::string>(&v)) return *t;
  return "NULL";
}

TEST_F(PostgresBackendTest, SessionStateOfABranchDoesNotLeakIntoTheNextOnTheSameConnection) {
  auto backend = OpenOneConnectionBackend(server_, db_);
  for (bool two_phase : {true, false}) {
    const std::string n = two_phase ? "1" : "2";
    auto branch = BeginBranch(backend.get(), "c.1." + n);
    const std::string pid = One(branch.get(), "SELECT pg_backend_pid()");
    ExpectOk(branch.get(), "UPDATE public.accounts SET balance = balance + 1 WHERE id = ?1",
             {int64_t{1}});
    ExpectOk(branch.get(), "SET statement_timeout = 1234");
    ExpectOk(branch.get(), "SET search_path = nowhere");
    ExpectOk(branch.get(), "SELECT pg_advisory_lock(42)");
    ExpectOk(branch.get(), "PREPARE mine AS SELECT 1");
    // PREPARE TRANSACTION refuses a transaction that listened or used a
    // temporary table.
    if (!two_phase) ExpectOk(branch.get(), "LISTEN pact_channel");
    if (!two_phase) ExpectOk(branch.get(), "CREATE TEMP TABLE scratch(x int)");
    if (two_phase) {
      std::string reason;
      auto vote = branch->Prepare(&reason);
      ASSERT_TRUE(vote.ok()) << vote.status().ToString();
      ASSERT_EQ(*vote, Vote::kCommit) << reason;
      ASSERT_TRUE(branch->CommitPrepared().ok());
    } else {
      ASSERT_TRUE(branch->CommitOnePhase().ok());
    }

    auto next = BeginBranch(backend.get(), "c.2." + n);
    ASSERT_EQ(One(next.get(), "SELECT pg_backend_pid()"), pid) << "not the same connection";
    EXPECT_EQ(One(next.get(), "SHOW statement_timeout"), "0");
    EXPECT_EQ(One(next.get(), "SELECT current_schema()"), "public");
    EXPECT_EQ(One(next.get(), "SELECT current_user = session_user"), "1");
    EXPECT_EQ(One(next.get(), "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'"
                              " AND pid = pg_backend_pid()"),
              "0");
    EXPECT_EQ(One(next.get(), "SELECT count(*) FROM pg_listening_channels()"), "0");
    EXPECT_EQ(One(next.get(), "SELECT count(*) FROM pg_prepared_statements WHERE name = 'mine'"),
              "0");
    EXPECT_EQ(One(next.get(), "SELECT count(*) FROM pg_class WHERE relname = 'scratch'"), "0");
    ASSERT_TRUE(next->CommitOnePhase().ok());
  }
  EXPECT_EQ(Balances(), "1|102;2|50");

  // Another role (read-only: the marker of a writing branch is inserted as
  // that role, which may not have the right).
  auto branch = BeginBranch(backend.get(), "c.3.1");
  ExpectOk(branch.get(), "SET ROLE pg_monitor");
  std::string reason;
  ASSERT_EQ(branch->Prepare(&reason).value(), Vote::kReadOnly);
  auto next = BeginBranch(backend.get(), "c.3.2");
  EXPECT_EQ(One(next.get(), "SELECT current_user = session_user"), "1");
  ASSERT_TRUE(next->CommitOnePhase().ok());
}

TEST_F(PostgresBackendTest, StatementsWithParametersArePreparedOncePerConnection) {
  auto backend = OpenOneConnectionBackend(server_, db_);
  const char* update = "UPDATE accounts SET balance = balance + ?1 WHERE id = ?2";
  for (int i = 1; i <= 3; ++i) {
    auto branch = BeginBranch(backend.get(), "c.1." + std::to_string(i));
    ExpectOk(branch.get(), update, {int64_t{1}, int64_t{1}});
    ExpectOk(branch.get(), update, {int64_t{-1}, int64_t{2}});
    // A statement that returns rows is not kept: a schema change could
    // change its result type.
    ExpectOk(branch.get(), "SELECT balance FROM accounts WHERE id = ?1", {int64_t{1}});
    // The first branch's SELECT is still held until the reset drops it.
    EXPECT_EQ(One(branch.get(), "SELECT count(*) FROM pg_prepared_statements WHERE NOT from_sql"),
              i == 1 ? "2" : "1");
    std::string reason;
    auto vote = branch->Prepare(&reason);
    ASSERT_TRUE(vote.ok() && *vote == Vote::kCommit) << reason;
    ASSERT_TRUE(branch->CommitPrepared().ok());
  }
  EXPECT_EQ(Balances(), "1|103;2|47");
}

TEST_F(PostgresBackendTest, CachedStatementsSurviveSchemaChangesAndDeallocation) {
  auto backend = OpenOneConnectionBackend(server_, db_);
  const char* update = "UPDATE accounts SET balance = balance + ?1 WHERE id = ?2";
  const char* select = "SELECT * FROM accounts WHERE id = ?1";
  auto run = [&](const std::string& txn_id, const std::string& extra) -> size_t {
    auto branch = BeginBranch(backend.get(), txn_id);
    ExpectOk(branch.get(), update, {int64_t{1}, int64_t{1}});
    auto rows = branch->Execute(select, {int64_t{1}});
    EXPECT_TRUE(rows.ok()) << rows.status().ToString();
    if (!extra.empty()) ExpectOk(branch.get(), extra);
    ExpectOk(branch.get(), update, {int64_t{1}, int64_t{1}});
    std::string reason;
    auto vote = branch->Prepare(&reason);
    EXPECT_TRUE(vote.ok() && *vote == Vote::kCommit) << vote.status().ToString() << reason;
    EXPECT_TRUE(branch->CommitPrepared().ok());
    return rows.ok() ? rows->columns.size() : 0;
  };
  EXPECT_EQ(run("c.1.1", ""), 3u);
  ASSERT_EQ(Sql("ALTER TABLE accounts ADD COLUMN note text; ALTER TABLE accounts ALTER COLUMN"
                " balance TYPE bigint"),
            "");
  EXPECT_EQ(run("c.1.2", ""), 4u);
  EXPECT_EQ(run("c.1.3", "DEALLOCATE ALL"), 4u);  // mid-branch, under the cache
  EXPECT_EQ(run("c.1.4", ""), 4u);
  EXPECT_EQ(Sql("SELECT balance FROM accounts WHERE id = 1"), "108");
}

TEST_F(PostgresBackendTest, DeallocateInsideAFunctionAbortsOnlyThatBranch) {
  auto backend = OpenOneConnectionBackend(server_, db_);
  const char* update = "UPDATE accounts SET balance = balance + ?1 WHERE id = ?2";
  auto branch = BeginBranch(backend.get(), "c.1.1");
  ExpectOk(branch.get(), update, {int64_t{1}, int64_t{1}});
  // Drops the adapter's prepared statements behind its back.
  ExpectOk(branch.get(), "DO $$BEGIN EXECUTE 'DEALLOCATE ALL'; END$$");
  std::string reason;
  auto vote = branch->Prepare(&reason);
  ASSERT_TRUE(vote.ok()) << vote.status().ToString();
  EXPECT_EQ(*vote, Vote::kAbort);
  EXPECT_EQ(PreparedGids(), "");
  for (int i = 2; i <= 3; ++i) {
    auto next = BeginBranch(backend.get(), "c.1." + std::to_string(i));
    ExpectOk(next.get(), update, {int64_t{1}, int64_t{1}});
    auto next_vote = next->Prepare(&reason);
    ASSERT_TRUE(next_vote.ok() && *next_vote == Vote::kCommit) << reason;
    ASSERT_TRUE(next->CommitPrepared().ok());
  }
  EXPECT_EQ(Balances(), "1|102;2|50");
  EXPECT_FALSE(backend->IsCommitted("c.1.1").value());
  EXPECT_TRUE(backend->IsCommitted("c.1.3").value());
}

TEST_F(PostgresBackendTest, FirstStatementGoesToANewConnectionWhenTheIdleOneDied) {
  auto backend = OpenBackend();
  auto warm = BeginBranch(backend.get(), "c.1.1");
  ExpectOk(warm.get(), "UPDATE accounts SET balance = 1 WHERE id = ?1", {int64_t{2}});
  ASSERT_TRUE(warm->CommitOnePhase().ok());
  EXPECT_EQ(Sql("SELECT bool_and(pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"),
            "t");
  auto branch = BeginBranch(backend.get(), "c.1.2");
  ExpectOk(branch.get(), "UPDATE accounts SET balance = 2 WHERE id = ?1", {int64_t{2}});
  ASSERT_TRUE(branch->CommitOnePhase().ok());
  EXPECT_EQ(Balances(), "1|100;2|2");
}

TEST_F(PostgresBackendTest, BranchWithoutStatementsIsReadOnly) {
  auto backend = OpenBackend();
  auto branch = BeginBranch(backend.get(), "c.1.1");
  std::string reason;
  auto vote = branch->Prepare(&reason);
  ASSERT_TRUE(vote.ok()) << vote.status().ToString();
  EXPECT_EQ(*vote, Vote::kReadOnly);
  auto other = BeginBranch(backend.get(), "c.1.2");
  EXPECT_TRUE(other->CommitOnePhase().ok());
  auto third = BeginBranch(backend.get(), "c.1.3");
  EXPECT_TRUE(third->Rollback().ok());
  EXPECT_EQ(PreparedGids(), "");
  EXPECT_FALSE(backend->IsCommitted("c.1.2").value());
}

TEST_F(PostgresBackendTest, DeadlockAbortsOneBranchAndTheOtherCommits) {
  auto backend = OpenBackend();
  auto a = BeginBranch(backend.get(), "c.1.1");
  auto b = BeginBranch(backend.get(), "c.1.2");
  ExpectOk(a.get(), "UPDATE accounts SET balance = balance + 1 WHERE id = 1");
  ExpectOk(b.get(), "UPDATE accounts SET balance = balance + 1 WHERE id = 2");
  Result<QueryResult> a_second = Status::Internal("not run");
  std::thread blocked(
      [&] { a_second = a->Execute("UPDATE accounts SET balance = balance + 1 WHERE id = 2", {}); });
  // Let a wait for b's row lock first, so each waits for the other.
  for (int i = 0; i < 200 && Sql("SELECT count(*) FROM pg_stat_activity WHERE datname ="
                                 " current_database() AND wait_event_type = 'Lock'") != "1";
       ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  auto b_second = b->Execute("UPDATE accounts SET balance = balance + 1 WHERE id = 1", {});
  blocked.join();

  ASSERT_NE(a_second.ok(), b_second.ok())
      << a_second.status().ToString() << " / " << b_second.status().ToString();
  Branch* winner = a_second.ok() ? a.get() : b.get();
  Branch* loser = a_second.ok() ? b.get() : a.get();
  const Status& lost = a_second.ok() ? b_second.status() : a_second.status();
  EXPECT_EQ(lost.code(), StatusCode::kAborted);
  EXPECT_NE(lost.message().find("deadlock detected"), std::string::npos) << lost.ToString();
  std::string reason;
  auto vote = loser->Prepare(&reason);
  ASSERT_TRUE(vote.ok());
  EXPECT_EQ(*vote, Vote::kAbort);
  EXPECT_TRUE(winner->CommitOnePhase().ok());
  EXPECT_EQ(Balances(), "1|101;2|51");
}

TEST_F(PostgresBackendTest, LockTimeoutIsBusy) {
  auto backend = OpenBackend();
  auto holder = BeginBranch(backend.get(), "c.1.1");
  ExpectOk(holder.get(), "UPDATE accounts SET balance = 0 WHERE id = 1");
  auto waiter = BeginBranch(backend.get(), "c.1.2");
  ExpectOk(waiter.get(), "SET LOCAL lock_timeout = '50ms'");
  auto blocked = waiter->Execute("UPDATE accounts SET balance = 1 WHERE id = 1", {});
  EXPECT_EQ(blocked.status().code(), StatusCode::kBusy) << blocked.status().ToString();
  EXPECT_TRUE(waiter->Rollback().ok());
  EXPECT_TRUE(holder->Rollback().ok());
  EXPECT_EQ(Balances(), kBefore);
}

}  // namespace
}  // namespace pact
