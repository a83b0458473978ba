#include "participant/backends/sqlite/sqlite_backend.h"

#include <gtest/gtest.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <functional>
#include <thread>

#include "sqlite/sqlite.h"

namespace pact {
namespace {

// Runs `body` in a child process that then ends with _exit: no destructors,
// no commit, no rollback, like a power cut. Returns the child's exit code.
// REQUIRES: no other thread runs and no SQLite connection is open (SQLite
// connections must not cross a fork).
int RunInChild(const std::function<int()>& body) {
  fflush(nullptr);
  pid_t pid = fork();
  if (pid == 0) _exit(body());
  int status = 0;
  if (waitpid(pid, &status, 0) != pid) return -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

// Runs SQL on a plain connection of its own, outside Pact. Returns the rows as
// "a|b;c|d" (NULL as "null") or "error: ...".
std::string Sql(const std::string& path, const std::string& sql) {
  Result<SqliteConnection> db =
      SqliteConnection::Open(path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
  if (!db.ok()) return "error: " + db.status().message();
  db->SetBusyTimeout(100);  // reads never wait in WAL mode
  std::string out;
  Status status = db->Exec(sql, [&](const SqliteStatement& row) {
    if (!out.empty()) out += ";";
    for (int i = 0; i < row.ColumnCount(); ++i) {
      if (i > 0) out += "|";
      out += row.IsNull(i) ? "null" : row.Text(i);
    }
  });
  return status.ok() ? out : "error: " + status.message();
}

class SqliteBackendTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string dir = (std::filesystem::temp_directory_path() / "pact-sqlite-XXXXXX").string();
    ASSERT_NE(mkdtemp(dir.data()), nullptr);
    dir_ = dir;
    options_.db_path = dir_ + "/app.db";
    store_path_ = options_.db_path + "-pact";
    ASSERT_EQ(Db("CREATE TABLE accounts(id INTEGER PRIMARY KEY, owner TEXT, balance INTEGER);"
                 "INSERT INTO accounts VALUES(1, 'ann', 100), (2, 'bob', 50);"
                 "CREATE TABLE tags(name TEXT PRIMARY KEY, uses INTEGER) WITHOUT ROWID;"
                 "INSERT INTO tags VALUES('red', 1);"),
              "");
  }

  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::string Db(const std::string& sql) { return Sql(options_.db_path, sql); }
  std::string Store(const std::string& sql) { return Sql(store_path_, sql); }
  std::string Balances() { return Db("SELECT id, balance FROM accounts ORDER BY id"); }

  std::unique_ptr<SqliteBackend> OpenBackend() {
    auto backend = SqliteBackend::Open(options_);
    EXPECT_TRUE(backend.ok()) << backend.status().ToString();
    return backend.ok() ? std::move(backend).value() : nullptr;
  }

  std::unique_ptr<Branch> BeginBranch(Backend* backend, const std::string& txn_id) {
    auto branch = backend->Begin(txn_id);
    EXPECT_TRUE(branch.ok()) << branch.status().ToString();
    return branch.ok() ? std::move(branch).value() : nullptr;
  }

  // For a crashing child: returns 0 when the branch voted kCommit, leaving it
  // prepared, and the objects alive for the caller to _exit with.
  int PrepareInChild(const std::string& txn_id, const std::vector<std::string>& statements) {
    auto backend = SqliteBackend::Open(options_);
    if (!backend.ok()) return 10;
    auto branch = (*backend)->Begin(txn_id);
    if (!branch.ok()) return 11;
    for (const std::string& sql : statements) {
      if (!(*branch)->Execute(sql, {}).ok()) return 12;
    }
    std::string reason;
    auto vote = (*branch)->Prepare(&reason);
    if (!vote.ok() || *vote != Vote::kCommit) return 13;
    backend.value().release();  // skip the destructors, as a crash would
    branch.value().release();
    return 0;
  }

  std::string dir_;
  std::string store_path_;
  SqliteBackendOptions options_;
};

void ExpectOk(Branch* branch, const std::string& sql, const std::vector<SqlValue>& params = {}) {
  auto result = branch->Execute(sql, params);
  EXPECT_TRUE(result.ok()) << sql << ": " << result.status().ToString();
}

TEST_F(SqliteBackendTest, ExecuteReturnsTypedRowsAndAffectedRows) {
  auto backend = OpenBackend();
  auto branch = BeginBranch(backend.get(), "c.1.1");
  ExpectOk(branch.get(), "CREATE TABLE t(id INTEGER PRIMARY KEY, i, r, s, b, n)");
  const Blob blob{std::string("\0\x01\xff", 3)};
  auto insert =
      branch->Execute("INSERT INTO t VALUES(?1, ?2, ?3, ?4, ?5, ?6)",
                      {int64_t{1}, int64_t{-7}, 2.5, std::string("seven"), blob, std::monostate()});
  ASSERT_TRUE(insert.ok()) << insert.status().ToString();
  EXPECT_EQ(insert->affected_rows, 1);
  EXPECT_TRUE(insert->columns.empty());

  auto select = branch->Execute("SELECT i, r, s, b, n FROM t WHERE id = ?", {int64_t{1}});
  ASSERT_TRUE(select.ok()) << select.status().ToString();
  EXPECT_EQ(select->columns, (std::vector<std::string>{"i", "r", "s", "b", "n"}));
  ASSERT_EQ(select->rows.size(), 1u);
  EXPECT_EQ(select->rows[0], (std::vector<SqlValue>{int64_t{-7}, 2.5, std::string("seven"), blob,
                                                    std::monostate()}));
  EXPECT_EQ(select->affected_rows, 0);

  auto update = branch->Execute("UPDATE accounts SET balance = balance + ?", {int64_t{1}});
  ASSERT_TRUE(update.ok());
  EXPECT_EQ(update->affected_rows, 2);
  // Neither a read nor a schema change repeats the last UPDATE's count.
  auto read = branch->Execute("SELECT count(*) FROM accounts", {});
  ASSERT_TRUE(read.ok());
  EXPECT_EQ(read->affected_rows, 0);
  EXPECT_EQ(read->rows[0][0], SqlValue(int64_t{2}));
  auto ddl = branch->Execute("CREATE INDEX t_s ON t(s)", {});
  ASSERT_TRUE(ddl.ok());
  EXPECT_EQ(ddl->affected_rows, 0);
  ASSERT_TRUE(branch->CommitOnePhase().ok());
  EXPECT_EQ(Balances(), "1|101;2|51");
}

TEST_F(SqliteBackendTest, ExecuteRefusesSeveralStatementsAndTransactionControl) {
  auto backend = OpenBackend();
  auto branch = BeginBranch(backend.get(), "c.1.1");
  for (const char* sql :
       {"UPDATE accounts SET balance = 0; SELECT 1", "COMMIT", "end", "-- sneaky\n rollback",
        "SAVEPOINT s", "RELEASE s", "BEGIN", "ATTACH 'other.db' AS other", "VACUUM", "   ",
        "-- nothing", "DELETE FROM pact_committed_branches"}) {
    auto result = branch->Execute(sql, {});
    ASSERT_FALSE(result.ok()) << sql;
    EXPECT_EQ(result.status().code(), StatusCode::kInvalidArgument) << sql;
  }
  auto commit = branch->Execute("COMMIT", {});
  EXPECT_NE(commit.status().message().find("transaction control is Pact's job"), std::string::npos)
      << commit.status().ToString();
  auto params = branch->Execute("SELECT ?1 + ?2", {int64_t{1}});
  EXPECT_EQ(params.status().code(), StatusCode::kInvalidArgument);

  ExpectOk(branch.get(), "UPDATE accounts SET balance = 7 WHERE id = 1; -- trailing comment");
  std::string reason;
  auto vote = branch->Prepare(&reason);
  ASSERT_TRUE(vote.ok()) << vote.status().ToString();
  EXPECT_EQ(*vote, Vote::kCommit);
  ASSERT_TRUE(branch->CommitPrepared().ok());
  EXPECT_EQ(Balances(), "1|7;2|50");
}

TEST_F(SqliteBackendTest, SqlErrorsLeaveTheBranchOpenAndCommittable) {
  auto backend = OpenBackend();
  auto branch = BeginBranch(backend.get(), "c.1.1");
  ExpectOk(branch.get(), "UPDATE accounts SET balance = 1 WHERE id = 1");
  for (const char* sql : {"SELEC 1", "SELECT * FROM nowhere",
                          "INSERT INTO accounts VALUES(3, 'cy', 0), (2, 'dup', 0)"}) {
    auto result = branch->Execute(sql, {});
    ASSERT_FALSE(result.ok()) << sql;
    EXPECT_EQ(result.status().code(), StatusCode::kInvalidArgument) << sql;
  }
  ExpectOk(branch.get(), "UPDATE accounts SET balance = 2 WHERE id = 2");
  std::string reason;
  auto vote = branch->Prepare(&reason);
  ASSERT_TRUE(vote.ok()) << vote.status().ToString();
  ASSERT_EQ(*vote, Vote::kCommit) << reason;
  ASSERT_TRUE(branch->CommitPrepared().ok());
  // The failed INSERT took back its own first row and nothing else.
  EXPECT_EQ(Balances(), "1|1;2|2");
}

TEST_F(SqliteBackendTest, PreparedChangesStayInvisibleUntilCommitPrepared) {
  auto backend = OpenBackend();
  auto branch = BeginBranch(backend.get(), "c.1.1");
  ExpectOk(branch.get(), "UPDATE accounts SET balance = balance - 30 WHERE id = 1");
  ExpectOk(branch.get(), "INSERT INTO accounts VALUES(3, 'cy', 30)");
  ExpectOk(branch.get(), "UPDATE tags SET uses = 2");
  std::string reason;
  auto vote = branch->Prepare(&reason);
  ASSERT_TRUE(vote.ok()) << vote.status().ToString();
  ASSERT_EQ(*vote, Vote::kCommit) << reason;
  EXPECT_EQ(Store("SELECT txn_id FROM pact_prepared_branches"), "c.1.1");
  EXPECT_EQ(Balances(), "1|100;2|50");
  EXPECT_EQ(Db("SELECT uses FROM tags"), "1");
  EXPECT_EQ(branch->Execute("SELECT 1", {}).status().code(), StatusCode::kFailedPrecondition);

  ASSERT_TRUE(branch->CommitPrepared().ok());
  EXPECT_EQ(Balances(), "1|70;2|50;3|30");
  EXPECT_EQ(Db("SELECT uses FROM tags"), "2");
  EXPECT_EQ(Store("SELECT count(*) FROM pact_prepared_branches"), "0");
  auto committed = backend->IsCommitted("c.1.1");
  ASSERT_TRUE(committed.ok());
  EXPECT_TRUE(*committed);
}

TEST_F(SqliteBackendTest, RollbackAfterPrepareLeavesDataAndStoreUnchanged) {
  auto backend = OpenBackend();
  auto branch = BeginBranch(backend.get(), "c.1.1");
  ExpectOk(branch.get(), "DELETE FROM accounts");
  std::string reason;
  auto vote = branch->Prepare(&reason);
  ASSERT_TRUE(vote.ok() && *vote == Vote::kCommit) << reason;
  ASSERT_TRUE(branch->Rollback().ok());
  EXPECT_EQ(Balances(), "1|100;2|50");
  EXPECT_EQ(Store("SELECT count(*) FROM pact_prepared_branches"), "0");
  EXPECT_FALSE(*backend->IsCommitted("c.1.1"));
  // The lock is free again.
  auto next = BeginBranch(backend.get(), "c.1.2");
  EXPECT_NE(next, nullptr);
}

TEST_F(SqliteBackendTest, DecisionsAreIdempotentAndWrongOnesRefused) {
  auto backend = OpenBackend();
  auto committed = BeginBranch(backend.get(), "c.1.1");
  ExpectOk(committed.get(), "UPDATE accounts SET balance = 0 WHERE id = 1");
  std::string reason;
  ASSERT_EQ(*committed->Prepare(&reason), Vote::kCommit);
  EXPECT_EQ(*committed->Prepare(&reason), Vote::kCommit);
  EXPECT_EQ(committed->CommitOnePhase().code(), StatusCode::kFailedPrecondition);
  ASSERT_TRUE(committed->CommitPrepared().ok());
  EXPECT_TRUE(committed->CommitPrepared().ok());
  EXPECT_EQ(committed->Rollback().code(), StatusCode::kFailedPrecondition);

  auto rolled_back = BeginBranch(backend.get(), "c.1.2");
  ExpectOk(rolled_back.get(), "UPDATE accounts SET balance = 5 WHERE id = 2");
  ASSERT_TRUE(rolled_back->Rollback().ok());
  EXPECT_TRUE(rolled_back->Rollback().ok());
  EXPECT_EQ(rolled_back->CommitPrepared().code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(rolled_back->CommitOnePhase().code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(Balances(), "1|0;2|50");
}

TEST_F(SqliteBackendTest, ReadOnlyBranchVotesReadOnlyAndReleasesTheLock) {
  options_.busy_timeout_ms = 200;
  auto backend = OpenBackend();
  auto reader = BeginBranch(backend.get(), "c.1.1");
  ExpectOk(reader.get(), "SELECT * FROM accounts");
  // A change undone within the branch is no change.
  ExpectOk(reader.get(), "INSERT INTO accounts VALUES(9, 'tmp', 0)");
  ExpectOk(reader.get(), "DELETE FROM accounts WHERE id = 9");
  std::string reason;
  auto vote = reader->Prepare(&reason);
  ASSERT_TRUE(vote.ok()) << vote.status().ToString();
  EXPECT_EQ(*vote, Vote::kReadOnly);
  EXPECT_EQ(Store("SELECT count(*) FROM pact_prepared_branches"), "0");
  auto writer = BeginBranch(backend.get(), "c.1.2");
  EXPECT_NE(writer, nullptr);
  EXPECT_TRUE(reader->Rollback().ok());
}

TEST_F(SqliteBackendTest, TableWithoutPrimaryKeyVotesAbortNamingTheTable) {
  ASSERT_EQ(Db("CREATE TABLE audit_log(msg TEXT)"), "");
  auto backend = OpenBackend();
  auto branch = BeginBranch(backend.get(), "c.1.1");
  ExpectOk(branch.get(), "UPDATE accounts SET balance = 0");
  ExpectOk(branch.get(), "INSERT INTO audit_log VALUES('zeroed')");
  std::string reason;
  auto vote = branch->Prepare(&reason);
  ASSERT_TRUE(vote.ok()) << vote.status().ToString();
  EXPECT_EQ(*vote, Vote::kAbort);
  EXPECT_NE(reason.find("table audit_log has no PRIMARY KEY"), std::string::npos) << reason;
  EXPECT_EQ(Balances(), "1|100;2|50");
  EXPECT_EQ(Db("SELECT count(*) FROM audit_log"), "0");
  EXPECT_TRUE(branch->Rollback().ok());
}

TEST_F(SqliteBackendTest, SchemaChangeVotesAbortButCommitsInOnePhase) {
  auto backend = OpenBackend();
  auto prepared = BeginBranch(backend.get(), "c.1.1");
  ExpectOk(prepared.get(), "CREATE TABLE notes(id INTEGER PRIMARY KEY, body TEXT)");
  ExpectOk(prepared.get(), "INSERT INTO notes VALUES(1, 'hi')");
  std::string reason;
  auto vote = prepared->Prepare(&reason);
  ASSERT_TRUE(vote.ok());
  EXPECT_EQ(*vote, Vote::kAbort);
  EXPECT_NE(reason.find("schema"), std::string::npos) << reason;
  EXPECT_EQ(Db("SELECT count(*) FROM sqlite_schema WHERE name = 'notes'"), "0");

  auto one_phase = BeginBranch(backend.get(), "c.1.2");
  ExpectOk(one_phase.get(), "CREATE TABLE notes(id INTEGER PRIMARY KEY, body TEXT)");
  ExpectOk(one_phase.get(), "INSERT INTO notes VALUES(1, 'hi')");
  ASSERT_TRUE(one_phase->CommitOnePhase().ok());
  EXPECT_EQ(Db("SELECT body FROM notes"), "hi");
}

TEST_F(SqliteBackendTest, OnePhaseCommitIsDurableAndRecognised) {
  {
    auto backend = OpenBackend();
    auto branch = BeginBranch(backend.get(), "c.1.1");
    ExpectOk(branch.get(), "UPDATE accounts SET balance = 1 WHERE id = 1");
    ASSERT_TRUE(branch->CommitOnePhase().ok());
    EXPECT_TRUE(branch->CommitOnePhase().ok());
  }
  auto backend = OpenBackend();
  EXPECT_EQ(Balances(), "1|1;2|50");
  auto committed = backend->IsCommitted("c.1.1");
  ASSERT_TRUE(committed.ok()) << committed.status().ToString();
  EXPECT_TRUE(*committed);
  auto unknown = backend->IsCommitted("c.1.99");
  ASSERT_TRUE(unknown.ok());
  EXPECT_FALSE(*unknown);
  auto rolled_back = BeginBranch(backend.get(), "c.1.2");
  ASSERT_TRUE(rolled_back->Rollback().ok());
  EXPECT_FALSE(*backend->IsCommitted("c.1.2"));
}

TEST_F(SqliteBackendTest, SecondBeginFailsBusyAfterTheBusyTimeout) {
  options_.busy_timeout_ms = 200;
  auto backend = OpenBackend();
  auto holder = BeginBranch(backend.get(), "c.1.1");
  const auto start = std::chrono::steady_clock::now();
  auto second = backend->Begin("c.1.2");
  const auto waited = std::chrono::steady_clock::now() - start;
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), StatusCode::kBusy);
  EXPECT_NE(second.status().message().find("database is locked by another transaction"),
            std::string::npos);
  EXPECT_GE(waited, std::chrono::milliseconds(150));
  EXPECT_LT(waited, std::chrono::milliseconds(2000));
  // Reads by IsCommitted are not blocked by the held write lock.
  EXPECT_TRUE(backend->IsCommitted("c.1.0").ok());
}

TEST_F(SqliteBackendTest, WaitingBeginGetsTheLockWhenTheHolderCommits) {
  auto backend = OpenBackend();
  auto holder = BeginBranch(backend.get(), "c.1.1");
  ExpectOk(holder.get(), "UPDATE accounts SET balance = 1 WHERE id = 1");
  Result<std::unique_ptr<Branch>> waiter = Status::Internal("not run");
  std::thread thread([&] { waiter = backend->Begin("c.1.2"); });
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  ASSERT_TRUE(holder->CommitOnePhase().ok());
  thread.join();
  ASSERT_TRUE(waiter.ok()) << waiter.status().ToString();
  auto read = (*waiter)->Execute("SELECT balance FROM accounts WHERE id = 1", {});
  ASSERT_TRUE(read.ok());
  EXPECT_EQ(read->rows[0][0], SqlValue(int64_t{1}));
}

TEST_F(SqliteBackendTest, WaitingBeginsGetTheLockInArrivalOrder) {
  auto backend = OpenBackend();
  auto holder = BeginBranch(backend.get(), "c.1.1");
  std::mutex mu;
  std::vector<std::string> order;  // who got the lock, in order
  auto begin_and_note = [&](const std::string& txn_id) {
    auto branch = backend->Begin(txn_id);
    EXPECT_TRUE(branch.ok()) << txn_id << ": " << branch.status().ToString();
    {
      std::lock_guard<std::mutex> lock(mu);
      order.push_back(txn_id);
    }
    if (branch.ok()) EXPECT_TRUE((*branch)->Rollback().ok());
  };
  // Each waiter has queued before the next one starts (Begin blocks).
  std::thread first([&] { begin_and_note("c.1.2"); });
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  std::thread second([&] { begin_and_note("c.1.3"); });
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  std::thread third([&] { begin_and_note("c.1.4"); });
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  ASSERT_TRUE(holder->Rollback().ok());
  first.join();
  second.join();
  third.join();
  EXPECT_EQ(order, (std::vector<std::string>{"c.1.2", "c.1.3", "c.1.4"}));
}

TEST_F(SqliteBackendTest, BeginThatTimesOutLeavesTheLockToTheNextInLine) {
  options_.busy_timeout_ms = 200;
  auto backend = OpenBackend();
  auto holder = BeginBranch(backend.get(), "c.1.1");
  EXPECT_EQ(backend->Begin("c.1.2").status().code(), StatusCode::kBusy);  // gave up, queued no more
  Result<std::unique_ptr<Branch>> next = Status::Internal("not run");
  std::thread waiter([&] { next = backend->Begin("c.1.3"); });
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  ASSERT_TRUE(holder->Rollback().ok());
  waiter.join();
  ASSERT_TRUE(next.ok()) << next.status().ToString();
  ExpectOk(next->get(), "UPDATE accounts SET balance = 7 WHERE id = 1");
  ASSERT_TRUE((*next)->CommitOnePhase().ok());
  EXPECT_NE(Balances().find("1|7"), std::string::npos) << Balances();
}

TEST_F(SqliteBackendTest, SecondOpenOfTheSameDatabaseIsRefused) {
  auto backend = OpenBackend();
  auto second = SqliteBackend::Open(options_);
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), StatusCode::kBusy);
  backend.reset();
  EXPECT_TRUE(SqliteBackend::Open(options_).ok());
}

TEST_F(SqliteBackendTest, CommitPreparedFailingOnAFullDiskKeepsTheBranchPrepared) {
  // Fill the marker table's page so the next marker needs new pages, which the
  // branch's connection is then refused: SQLite drops the whole transaction.
  ASSERT_EQ(Db("CREATE TABLE IF NOT EXISTS pact_committed_branches("
               "txn_id TEXT PRIMARY KEY, committed_at_ms INTEGER NOT NULL);"
               "INSERT INTO pact_committed_branches VALUES"
               "(printf('a%.1200c', 'x'), 9e15), (printf('b%.1200c', 'x'), 9e15),"
               "(printf('c%.1200c', 'x'), 9e15)"),
            "");
  auto backend = OpenBackend();
  const std::string txn_id = "c.1." + std::string(1000, '9');
  auto branch = BeginBranch(backend.get(), txn_id);
  ExpectOk(branch.get(), "UPDATE accounts SET balance = 0 WHERE id = 1");
  ExpectOk(branch.get(), "PRAGMA max_page_count = 1");  // clamps to the current size
  std::string reason;
  ASSERT_EQ(*branch->Prepare(&reason), Vote::kCommit) << reason;

  Status commit = branch->CommitPrepared();
  EXPECT_EQ(commit.code(), StatusCode::kIoError) << commit.ToString();
  EXPECT_FALSE(*backend->IsCommitted(txn_id));
  EXPECT_EQ(Balances(), "1|100;2|50");
  EXPECT_EQ(Db("UPDATE accounts SET balance = 5").substr(0, 6), "error:");  // still locked
  EXPECT_EQ(Store("SELECT count(*) FROM pact_prepared_branches"), "1");
  ASSERT_TRUE(branch->Rollback().ok());
  EXPECT_EQ(Balances(), "1|100;2|50");
  EXPECT_EQ(Store("SELECT count(*) FROM pact_prepared_branches"), "0");
}

TEST_F(SqliteBackendTest, CrashAfterPrepareHoldsTheBranchAgainAndCommits) {
  ASSERT_EQ(RunInChild([&] {
              return PrepareInChild(
                  "c.1.1", {"UPDATE accounts SET balance = 0 WHERE id = 1",
                            "INSERT INTO accounts VALUES(3, 'cy', 100)", "DELETE FROM tags"});
            }),
            0);
  auto backend = OpenBackend();
  auto recovered = backend->RecoverPrepared();
  ASSERT_TRUE(recovered.ok()) << recovered.status().ToString();
  ASSERT_EQ(recovered->size(), 1u);
  RecoveredBranch& branch = (*recovered)[0];
  EXPECT_EQ(branch.txn_id, "c.1.1");
  EXPECT_GT(branch.prepared_at_ms, 0);
  // Held prepared: invisible and locked.
  EXPECT_EQ(Balances(), "1|100;2|50");
  EXPECT_EQ(Db("SELECT name FROM tags"), "red");
  EXPECT_EQ(Db("UPDATE accounts SET balance = 5").substr(0, 6), "error:");
  EXPECT_FALSE(*backend->IsCommitted("c.1.1"));

  ASSERT_TRUE(branch.branch->CommitPrepared().ok());
  EXPECT_EQ(Balances(), "1|0;2|50;3|100");
  EXPECT_EQ(Db("SELECT count(*) FROM tags"), "0");
  EXPECT_EQ(Store("SELECT count(*) FROM pact_prepared_branches"), "0");
  EXPECT_TRUE(*backend->IsCommitted("c.1.1"));
}

TEST_F(SqliteBackendTest, CrashAfterPrepareHoldsTheBranchAgainAndRollsBack) {
  ASSERT_EQ(RunInChild([&] {
              return PrepareInChild(
                  "c.1.1", {"UPDATE accounts SET balance = 0", "UPDATE tags SET uses = 9"});
            }),
            0);
  {
    auto backend = OpenBackend();
    auto recovered = backend->RecoverPrepared();
    ASSERT_TRUE(recovered.ok()) << recovered.status().ToString();
    ASSERT_EQ(recovered->size(), 1u);
    ASSERT_TRUE((*recovered)[0].branch->Rollback().ok());
    EXPECT_EQ(Balances(), "1|100;2|50");
    EXPECT_EQ(Db("SELECT uses FROM tags"), "1");
    EXPECT_EQ(Store("SELECT count(*) FROM pact_prepared_branches"), "0");
  }
  auto backend = OpenBackend();
  auto recovered = backend->RecoverPrepared();
  ASSERT_TRUE(recovered.ok());
  EXPECT_TRUE(recovered->empty());
}

TEST_F(SqliteBackendTest, CrashBetweenCommitAndStoreCleanupIsRecognisedAsCommitted) {
  ASSERT_EQ(RunInChild([&] {
              auto backend = SqliteBackend::Open(options_);
              if (!backend.ok()) return 10;
              auto branch = (*backend)->Begin("c.1.1");
              if (!branch.ok() ||
                  !(*branch)->Execute("UPDATE accounts SET balance = 0 WHERE id = 2", {}).ok()) {
                return 11;
              }
              std::string reason;
              auto vote = (*branch)->Prepare(&reason);
              if (!vote.ok() || *vote != Vote::kCommit) return 12;
              // Put the store row back after the commit deleted it: the state a
              // crash between COMMIT and the cleanup leaves behind.
              if (Store("CREATE TABLE saved AS SELECT * FROM pact_prepared_branches") != "")
                return 13;
              if (!(*branch)->CommitPrepared().ok()) return 14;
              if (Store("INSERT INTO pact_prepared_branches SELECT * FROM saved;"
                        "DROP TABLE saved") != "") {
                return 15;
              }
              backend.value().release();
              branch.value().release();
              return 0;
            }),
            0);
  EXPECT_EQ(Store("SELECT txn_id FROM pact_prepared_branches"), "c.1.1");
  auto backend = OpenBackend();
  auto recovered = backend->RecoverPrepared();
  ASSERT_TRUE(recovered.ok()) << recovered.status().ToString();
  EXPECT_TRUE(recovered->empty());
  EXPECT_TRUE(*backend->IsCommitted("c.1.1"));
  EXPECT_EQ(Balances(), "1|100;2|0");
  EXPECT_EQ(Store("SELECT count(*) FROM pact_prepared_branches"), "0");
}

TEST_F(SqliteBackendTest, RecoveryReportsCorruptionWhenTheDatabaseChangedBehindPact) {
  ASSERT_EQ(RunInChild([&] {
              return PrepareInChild("c.1.1", {"UPDATE accounts SET balance = 0 WHERE id = 1"});
            }),
            0);
  ASSERT_EQ(Db("UPDATE accounts SET balance = 999 WHERE id = 1"), "");
  auto backend = OpenBackend();
  auto recovered = backend->RecoverPrepared();
  ASSERT_FALSE(recovered.ok());
  EXPECT_EQ(recovered.status().code(), StatusCode::kCorruption);
  EXPECT_NE(recovered.status().message().find("accounts"), std::string::npos)
      << recovered.status().ToString();
  EXPECT_EQ(Balances(), "1|999;2|50");
}

TEST_F(SqliteBackendTest, RecoveryPrunesOnlyOldCommitMarkers) {
  {
    auto backend = OpenBackend();
    auto branch = BeginBranch(backend.get(), "c.1.2");
    ASSERT_TRUE(branch->CommitOnePhase().ok());
  }
  ASSERT_EQ(Db("INSERT INTO pact_committed_branches VALUES('c.1.1', 1)"), "");
  auto backend = OpenBackend();
  EXPECT_TRUE(*backend->IsCommitted("c.1.1"));
  auto recovered = backend->RecoverPrepared();
  ASSERT_TRUE(recovered.ok()) << recovered.status().ToString();
  EXPECT_FALSE(*backend->IsCommitted("c.1.1"));
  EXPECT_TRUE(*backend->IsCommitted("c.1.2"));
}

}  // namespace
}  // namespace pact
