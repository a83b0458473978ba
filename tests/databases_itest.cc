// Real databases as participants: one transaction across PostgreSQL, MariaDB
// and SQLite through the real binaries, against throwaway servers this test
// starts itself; crashes of the adapters and of the database servers.

#include <atomic>
#include <random>
#include <thread>

#include "client/pact_client.h"
#include "cluster/mariadb_server.h"
#include "cluster/postgres_server.h"
#include "common/crash_point.h"
#include "tests/bank_fixture.h"

namespace pact {
namespace {

std::map<std::string, std::string> CrashAt(const std::string& point) {
  return {{"PACT_CRASH_POINT", point}};
}

// Participants: "pg" (PostgreSQL database <test>_a), "pg2" (<test>_b, same
// cluster, started on demand), "maria" (MariaDB) and "lite" (SQLite); each
// holds accounts 1..4 with 100.
class DatabasesTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    servers_dir_ = new TempDir();
    auto pg = PostgresServer::Start(servers_dir_->ServerDir("pg"));
    ASSERT_TRUE(pg.ok()) << pg.status().ToString();
    pg_ = pg->release();
    auto maria = MariaDbServer::Start(servers_dir_->ServerDir("maria"));
    ASSERT_TRUE(maria.ok()) << maria.status().ToString();
    maria_ = maria->release();
  }
  static void TearDownTestSuite() {
    delete pg_;
    delete maria_;
    delete servers_dir_;
  }

  void SetUp() override {
    ASSERT_NE(pg_, nullptr);
    ASSERT_NE(maria_, nullptr);
    static int test_number = 0;
    db_ = "t" + std::to_string(++test_number);
    BankSpec bank;
    bank.accounts = 4;
    for (const std::string& db : {db_ + "_a", db_ + "_b"}) {
      ASSERT_TRUE(pg_->CreateDatabase(db).ok());
      ASSERT_TRUE(pg_->Exec(db, BankSchemaSql(SqlDialect::kPostgres, bank)).ok());
    }
    ASSERT_TRUE(maria_->CreateDatabase(db_).ok());
    BankSpec maria_bank = bank;
    maria_bank.ledger = BankSpec::Ledger::kNone;
    ASSERT_TRUE(maria_->Exec(db_, BankSchemaSql(SqlDialect::kMariaDb, maria_bank)).ok());
    Status created = CreateSqliteBank(cluster_.db_path("lite"), bank);
    ASSERT_TRUE(created.ok()) << created.ToString();

    cluster_.SetBackend("pg", {"--backend=postgresql", "--pg_conninfo=" + pg_->ConnInfo(db_ + "_a")});
    cluster_.SetBackend("pg2",
                        {"--backend=postgresql", "--pg_conninfo=" + pg_->ConnInfo(db_ + "_b")});
    cluster_.SetBackend("maria", {"--backend=mariadb", "--mariadb_host=127.0.0.1",
                                  "--mariadb_port=" + std::to_string(maria_->port()),
                                  "--mariadb_user=root", "--mariadb_database=" + db_});
    ASSERT_TRUE(cluster_.StartCoordinator().ok());
    for (const char* p : {"pg", "maria", "lite"}) {
      ASSERT_TRUE(cluster_.StartParticipant(p).ok()) << p;
    }
    auto client = Client::Connect(cluster_.coordinator_address());
    ASSERT_TRUE(client.ok());
    client_ = std::move(*client);
  }


  // Moves `amount` out of account 1 at pg into account 1 at maria and lite
  // (half each), up to commit.
  std::unique_ptr<Transaction> ThreeWayTransfer(int64_t amount) {
    auto txn = client_->Begin();
    EXPECT_TRUE(txn.ok()) << txn.status().ToString();
    if (!txn.ok()) return nullptr;
    // PostgreSQL numbers its placeholders; MariaDB and SQLite take '?'.
    struct Step {
      const char* participant;
      const char* sql;
      int64_t delta;
    };
    for (const Step& step :
         {Step{"pg", "UPDATE accounts SET balance = balance + $1 WHERE id = 1", -amount},
          Step{"maria", "UPDATE accounts SET balance = balance + ? WHERE id = 1", amount / 2},
          Step{"lite", "UPDATE accounts SET balance = balance + ? WHERE id = 1",
               amount - amount / 2}}) {
      auto r = (*txn)->Execute(step.participant, step.sql, {step.delta});
      EXPECT_TRUE(r.ok()) << step.participant << ": " << r.status().ToString();
      if (r.ok()) {
        EXPECT_EQ(r->affected_rows, 1) << step.participant;
      }
    }
    return std::move(*txn);
  }

  int64_t PgInt(const std::string& db, const std::string& sql) {
    auto rows = pg_->Query(db, sql);
    EXPECT_TRUE(rows.ok()) << rows.status().ToString();
    return rows.ok() && !rows->empty() ? std::stoll((*rows)[0][0]) : -1;
  }
  int64_t MariaInt(const std::string& sql) {
    auto rows = maria_->Query(db_, sql);
    EXPECT_TRUE(rows.ok()) << rows.status().ToString();
    return rows.ok() && !rows->empty() ? std::stoll((*rows)[0][0]) : -1;
  }
  int64_t PgBalance(int id = 1, const std::string& suffix = "_a") {
    return PgInt(db_ + suffix, "SELECT balance FROM accounts WHERE id = " + std::to_string(id));
  }
  int64_t MariaBalance(int id = 1) {
    return MariaInt("SELECT balance FROM accounts WHERE id = " + std::to_string(id));
  }
  int64_t LiteBalance(int id = 1) {
    auto v = QueryInt(cluster_.db_path("lite"),
                      "SELECT balance FROM accounts WHERE id = " + std::to_string(id));
    return v.ok() ? *v : -1;
  }
  // Prepared transactions left in the databases, Pact's or anyone's.
  int64_t PgPrepared() { return PgInt("postgres", "SELECT count(*) FROM pg_prepared_xacts"); }
  int64_t MariaPrepared() {
    auto rows = maria_->Query(db_, "XA RECOVER");
    EXPECT_TRUE(rows.ok());
    return rows.ok() ? static_cast<int64_t>(rows->size()) : -1;
  }
  void ExpectNothingPrepared() {
    EXPECT_TRUE(cluster_.EventuallyNoOpenBranches());
    EXPECT_EQ(PgPrepared(), 0);
    EXPECT_EQ(MariaPrepared(), 0);
  }
  void ExpectUnchanged() {
    EXPECT_EQ(PgBalance(), 100);
    EXPECT_EQ(MariaBalance(), 100);
    EXPECT_EQ(LiteBalance(), 100);
  }

  static TempDir* servers_dir_;
  static PostgresServer* pg_;
  static MariaDbServer* maria_;
  std::string db_;
  TempDir dir_;
  TestCluster cluster_{dir_};
  std::unique_ptr<Client> client_;
};

TempDir* DatabasesTest::servers_dir_ = nullptr;
PostgresServer* DatabasesTest::pg_ = nullptr;
MariaDbServer* DatabasesTest::maria_ = nullptr;

TEST_F(DatabasesTest, OneTransactionCommitsOnPostgresMariaDbAndSqlite) {
  auto txn = ThreeWayTransfer(10);
  ASSERT_TRUE(txn);
  ASSERT_TRUE(txn->Commit().ok());
  EXPECT_EQ(PgBalance(), 90);
  EXPECT_EQ(MariaBalance(), 105);
  EXPECT_EQ(LiteBalance(), 105);
  ExpectNothingPrepared();
}

TEST_F(DatabasesTest, SqliteVotingNoLeavesAllThreeUnchanged) {
  auto txn = ThreeWayTransfer(10);
  ASSERT_TRUE(txn);
  ASSERT_TRUE(txn->Execute("lite", "INSERT INTO ledger(account) VALUES (99)").ok());
  Status st = txn->Commit();
  EXPECT_EQ(st.code(), StatusCode::kAborted) << st.ToString();
  EXPECT_NE(st.message().find("lite voted ABORT"), std::string::npos) << st.ToString();
  ExpectUnchanged();
  ExpectNothingPrepared();
}

TEST_F(DatabasesTest, PostgresVotingNoLeavesAllThreeUnchanged) {
  auto txn = ThreeWayTransfer(10);
  ASSERT_TRUE(txn);
  // The deferred foreign key fails at PREPARE TRANSACTION.
  ASSERT_TRUE(txn->Execute("pg", "INSERT INTO ledger(account) VALUES (99)").ok());
  Status st = txn->Commit();
  EXPECT_EQ(st.code(), StatusCode::kAborted) << st.ToString();
  EXPECT_NE(st.message().find("pg voted ABORT"), std::string::npos) << st.ToString();
  ExpectUnchanged();
  ExpectNothingPrepared();
}

TEST_F(DatabasesTest, MariaDbLosingTheBranchBeforePrepareLeavesAllThreeUnchanged) {
  auto txn = ThreeWayTransfer(10);
  ASSERT_TRUE(txn);
  // A DBA kills the adapter's session: MariaDB rolls the branch back, so
  // the adapter cannot prepare it and the transaction must abort.
  auto sessions = maria_->Query(db_, "SELECT id FROM information_schema.processlist "
                                     "WHERE db = '" + db_ + "' AND id <> CONNECTION_ID()");
  ASSERT_TRUE(sessions.ok());
  ASSERT_FALSE(sessions->empty());
  for (const auto& row : *sessions) ASSERT_TRUE(maria_->Exec(db_, "KILL " + row[0]).ok());
  Status st = txn->Commit();
  EXPECT_EQ(st.code(), StatusCode::kAborted) << st.ToString();
  EXPECT_NE(st.message().find("maria"), std::string::npos) << st.ToString();
  ExpectUnchanged();
  ExpectNothingPrepared();
}

TEST_F(DatabasesTest, TwoPostgresDatabasesOfOneClusterInOneTransaction) {
  ASSERT_TRUE(cluster_.StartParticipant("pg2").ok());
  auto txn = client_->Begin();
  ASSERT_TRUE(txn.ok());
  ASSERT_TRUE((*txn)->Execute("pg", "UPDATE accounts SET balance = balance - 7 WHERE id = 2").ok());
  ASSERT_TRUE((*txn)->Execute("pg2", "UPDATE accounts SET balance = balance + 7 WHERE id = 2").ok());
  ASSERT_TRUE((*txn)->Commit().ok());
  EXPECT_EQ(PgBalance(2, "_a"), 93);
  EXPECT_EQ(PgBalance(2, "_b"), 107);
  ExpectNothingPrepared();
}

TEST_F(DatabasesTest, KilledPostgresAndMariaDbAdaptersFinishTheCommitAfterRestart) {
  ASSERT_TRUE(cluster_.StartParticipant("pg", CrashAt("before_commit_applied")).ok());
  ASSERT_TRUE(cluster_.StartParticipant("maria", CrashAt("before_commit_applied")).ok());
  auto txn = ThreeWayTransfer(20);
  ASSERT_TRUE(txn);
  ASSERT_TRUE(txn->Commit().ok());  // the decision is durable
  EXPECT_EQ(cluster_.participant("pg").WaitForExit(5000), kCrashExitCode);
  EXPECT_EQ(cluster_.participant("maria").WaitForExit(5000), kCrashExitCode);
  // Both branches stay prepared in their databases while the adapters are down.
  EXPECT_EQ(PgPrepared(), 1);
  EXPECT_EQ(MariaPrepared(), 1);
  EXPECT_EQ(PgBalance(), 100);
  ASSERT_TRUE(cluster_.StartParticipant("pg").ok());
  ASSERT_TRUE(cluster_.StartParticipant("maria").ok());
  ExpectNothingPrepared();
  EXPECT_EQ(PgBalance(), 80);
  EXPECT_EQ(MariaBalance(), 110);
  EXPECT_EQ(LiteBalance(), 110);
}

TEST_F(DatabasesTest, PreparedBranchesSurviveDatabaseRestartsAndCommitWhenTheCoordinatorReturns) {
  ASSERT_TRUE(cluster_.StartCoordinator(CrashAt("after_decision_logged")).ok());
  auto txn = ThreeWayTransfer(20);
  ASSERT_TRUE(txn);
  EXPECT_EQ(txn->Commit().code(), StatusCode::kUnavailable);
  EXPECT_EQ(cluster_.coordinator().WaitForExit(5000), kCrashExitCode);
  // Crash both database servers while the branches are prepared.
  ASSERT_TRUE(pg_->Restart().ok());
  ASSERT_TRUE(maria_->Restart().ok());
  EXPECT_EQ(PgPrepared(), 1);
  EXPECT_EQ(MariaPrepared(), 1);
  ASSERT_TRUE(cluster_.StartCoordinator().ok());
  ExpectNothingPrepared();
  EXPECT_EQ(PgBalance(), 80);
  EXPECT_EQ(MariaBalance(), 110);
  EXPECT_EQ(LiteBalance(), 110);
}

TEST_F(DatabasesTest, PreparedBranchesSurviveDatabaseRestartsAndRollBackWithoutADecision) {
  ASSERT_TRUE(cluster_.StartCoordinator(CrashAt("after_votes_collected")).ok());
  auto txn = ThreeWayTransfer(20);
  ASSERT_TRUE(txn);
  EXPECT_EQ(txn->Commit().code(), StatusCode::kUnavailable);
  EXPECT_EQ(cluster_.coordinator().WaitForExit(5000), kCrashExitCode);
  ASSERT_TRUE(pg_->Restart().ok());
  ASSERT_TRUE(maria_->Restart().ok());
  EXPECT_EQ(PgPrepared(), 1);
  EXPECT_EQ(MariaPrepared(), 1);
  ASSERT_TRUE(cluster_.StartCoordinator().ok());
  ExpectNothingPrepared();
  ExpectUnchanged();
}

TEST_F(DatabasesTest, ConcurrentTransfersOnPostgresAndMariaDbConserveTheTotals) {
  constexpr int kClients = 16;
  constexpr int kTransfersEach = 8;
  std::atomic<int> committed{0}, failed{0};
  std::vector<std::thread> threads;
  for (int c = 0; c < kClients; ++c) {
    threads.emplace_back([&, c] {
      std::mt19937 rng(c);
      auto client = Client::Connect(cluster_.coordinator_address());
      for (int i = 0; i < kTransfersEach; ++i) {
        // Two rows of each database in random order: local deadlocks happen
        // and must end as an error or an ABORT vote, never a hang.
        int a = 1 + rng() % 4, b = 1 + rng() % 4;
        if (a == b) b = 1 + b % 4;
        auto txn = (*client)->Begin(/*timeout_ms=*/20000);
        if (!txn.ok()) {
          failed++;
          continue;
        }
        bool ok = true;
        auto run = [&](const char* p, const std::string& sql, int64_t amount, int64_t id) {
          if (ok) ok = (*txn)->Execute(p, sql, {amount, id}).ok();
        };
        run("pg", "UPDATE accounts SET balance = balance - $1 WHERE id = $2", 1, a);
        run("pg", "UPDATE accounts SET balance = balance + $1 WHERE id = $2", 1, b);
        run("maria", "UPDATE accounts SET balance = balance - ? WHERE id = ?", 1, b);
        run("maria", "UPDATE accounts SET balance = balance + ? WHERE id = ?", 1, a);
        if (ok && (*txn)->Commit().ok()) {
          committed++;
        } else {
          failed++;
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  std::cout << committed << " transfers committed, " << failed
            << " rolled back (deadlocks, lock waits)\n";
  EXPECT_EQ(committed + failed, kClients * kTransfersEach);
  EXPECT_GT(committed, 0);
  EXPECT_EQ(PgInt(db_ + "_a", "SELECT sum(balance) FROM accounts"), 400);
  EXPECT_EQ(MariaInt("SELECT sum(balance) FROM accounts"), 400);
  ExpectNothingPrepared();
}

}  // namespace
}  // namespace pact
