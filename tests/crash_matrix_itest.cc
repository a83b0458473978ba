// The crash matrix: every named crash point, in a transaction that commits and
// in one that aborts, across three participants on two backends ("lite1" and
// "lite2" on SQLite, "pg" on PostgreSQL). The armed process dies at that step
// like a power cut, is restarted unarmed on the same files, and after recovery
// every branch must have ended the same way, the way the client was told, the
// way `status` reports, with nothing prepared and nothing unfinished in the
// journal.
#include <gtest/gtest.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/wait.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <fstream>
#include <iostream>
#include <optional>
#include <thread>

#include "client/pact_client.h"
#include "cluster/postgres_server.h"
#include "common/crash_point.h"
#include "tests/process_harness.h"

namespace pact {
namespace {

enum class Kind { kCommit, kAbort };

void PrintTo(Kind kind, std::ostream* os) { *os << (kind == Kind::kCommit ? "Commit" : "Abort"); }

// What the armed process is, and what must come of the transaction.
struct Expectation {
  bool coordinator = true;      // else a participant is armed
  std::string victim;           // the participant armed ("" for the coordinator)
  std::optional<bool> fires;    // whether the point is reached; unknown for new points
  std::optional<bool> commits;  // the outcome that must result; unknown for new points
};

bool IsParticipantPoint(const std::string& point) {
  static const std::vector<std::string> kParticipantPoints = {
      "after_prepare_durable", "before_commit_applied", "after_commit_applied",
      "after_rollback_applied"};
  return std::find(kParticipantPoints.begin(), kParticipantPoints.end(), point) !=
         kParticipantPoints.end();
}

Expectation Expect(const std::string& point, Kind kind) {
  Expectation e;
  e.coordinator = !IsParticipantPoint(point);
  // In the committing transaction pg's branch is the one that crashes (a
  // PostgreSQL prepared transaction must survive its adapter); in the
  // aborting one lite1, which votes COMMIT and so prepares and is rolled back.
  if (!e.coordinator) e.victim = kind == Kind::kCommit ? "pg" : "lite1";
  if (kind == Kind::kAbort) {
    // lite2 votes ABORT: nothing is ever logged or committed.
    e.commits = false;
    static const std::vector<std::string> kReached = {
        "after_begin", "after_prepare_sent", "after_votes_collected", "after_prepare_durable",
        "after_rollback_applied"};
    static const std::vector<std::string> kNotReached = {
        "after_decision_logged", "after_first_commit_sent", "before_end_logged",
        "before_commit_applied", "after_commit_applied"};
    if (std::find(kReached.begin(), kReached.end(), point) != kReached.end()) e.fires = true;
    if (std::find(kNotReached.begin(), kNotReached.end(), point) != kNotReached.end()) {
      e.fires = false;
    }
    return e;
  }
  // Presumed abort: a crash before the COMMIT record is durable (or a lost
  // vote) rolls back; one after it commits.
  static const std::vector<std::string> kRollsBack = {
      "after_begin", "after_prepare_sent", "after_votes_collected", "after_prepare_durable"};
  static const std::vector<std::string> kCommits = {
      "after_decision_logged", "after_first_commit_sent", "before_end_logged",
      "before_commit_applied", "after_commit_applied",    "after_rollback_applied"};
  if (std::find(kRollsBack.begin(), kRollsBack.end(), point) != kRollsBack.end()) {
    e.commits = false;
    e.fires = true;
  }
  if (std::find(kCommits.begin(), kCommits.end(), point) != kCommits.end()) {
    e.commits = true;
    e.fires = point != "after_rollback_applied";  // nothing rolls back in a commit
  }
  return e;
}

using CrashCase = std::tuple<std::string, Kind>;

class CrashMatrixTest : public ::testing::TestWithParam<CrashCase> {
 protected:
  // Moved by the transfer: lite1 pays kAmount out of account 1, lite2 and pg
  // each receive half of it into their account 1.
  static constexpr int64_t kInitial = 100;
  static constexpr int64_t kAmount = 30;
  // Short, so a branch whose prepare never arrived rolls back soon on its own.
  static constexpr int64_t kTxnTimeoutMs = 5000;
  static constexpr int kRecoveryWaitMs = 30000;

  static void SetUpTestSuite() {
    servers_dir_ = new TempDir();
    auto pg = PostgresServer::Start(servers_dir_->ServerDir("pg"));
    ASSERT_TRUE(pg.ok()) << pg.status().ToString();
    pg_ = pg->release();
  }
  static void TearDownTestSuite() {
    delete pg_;
    pg_ = nullptr;
    delete servers_dir_;
    servers_dir_ = nullptr;
  }

  void SetUp() override {
    ASSERT_NE(pg_, nullptr);
    static int test_number = 0;
    db_ = "crash" + std::to_string(++test_number);
    ASSERT_TRUE(pg_->CreateDatabase(db_).ok());
    ASSERT_TRUE(pg_->Exec(db_, BankSchemaSql(SqlDialect::kPostgres, BankSpec{})).ok());
    for (const char* lite : {"lite1", "lite2"}) {
      Status st = CreateSqliteBank(cluster_.db_path(lite), 3);
      ASSERT_TRUE(st.ok()) << st.ToString();
    }
    cluster_.SetBackend("pg", {"--backend=postgresql", "--pg_conninfo=" + pg_->ConnInfo(db_)});
  }


  int64_t LiteInt(const std::string& participant, const std::string& sql) {
    auto v = QueryInt(cluster_.db_path(participant), sql);
    EXPECT_TRUE(v.ok()) << participant << ": " << v.status().ToString();
    return v.ok() ? *v : -1;
  }
  int64_t PgInt(const std::string& db, const std::string& sql) {
    auto rows = pg_->Query(db, sql);
    EXPECT_TRUE(rows.ok()) << rows.status().ToString();
    return rows.ok() && !rows->empty() ? std::stoll((*rows)[0][0]) : -1;
  }
  int64_t Balance(const std::string& participant, int64_t account) {
    std::string sql = "SELECT balance FROM accounts WHERE id = " + std::to_string(account);
    return participant == "pg" ? PgInt(db_, sql) : LiteInt(participant, sql);
  }
  // Prepared transactions left in this test's PostgreSQL database.
  int64_t PgPrepared() {
    return PgInt(db_, "SELECT count(*) FROM pg_prepared_xacts WHERE database = current_database()");
  }

  // Up to commit: a transfer over all three participants, plus (to abort) a
  // ledger row at lite2 whose deferred foreign key fails at prepare.
  Status RunTransfer(Client& client, Kind kind, int64_t account, int64_t amount,
                     std::string* txn_id) {
    auto txn = client.Begin(kTxnTimeoutMs);
    if (!txn.ok()) return txn.status();
    *txn_id = (*txn)->id();
    struct Step {
      const char* participant;
      const char* sql;
      int64_t delta;
    };
    for (const Step& step :
         {Step{"lite1", "UPDATE accounts SET balance = balance + ?1 WHERE id = ?2", -amount},
          Step{"lite2", "UPDATE accounts SET balance = balance + ?1 WHERE id = ?2", amount / 2},
          Step{"pg", "UPDATE accounts SET balance = balance + $1 WHERE id = $2",
               amount - amount / 2}}) {
      auto r = (*txn)->Execute(step.participant, step.sql, {step.delta, account});
      EXPECT_TRUE(r.ok()) << step.participant << ": " << r.status().ToString();
      if (!r.ok()) return r.status();
      EXPECT_EQ(r->affected_rows, 1) << step.participant;
    }
    if (kind == Kind::kAbort) {
      auto r = (*txn)->Execute("lite2", "INSERT INTO ledger(account) VALUES (99)");
      EXPECT_TRUE(r.ok()) << r.status().ToString();
      if (!r.ok()) return r.status();
    }
    return (*txn)->Commit();
  }

  Process& Victim(const Expectation& e) {
    return e.coordinator ? cluster_.coordinator() : cluster_.participant(e.victim);
  }

  // Restarts whatever is down (unarmed) and waits until no branch is open at
  // any participant and nothing is prepared in PostgreSQL.
  void Recover() {
    for (int round = 0; round < 3; ++round) {
      if (!cluster_.coordinator().running()) {
        Status st = cluster_.StartCoordinator();
        ASSERT_TRUE(st.ok()) << st.ToString();
        restarted_coordinator_ = true;
      }
      for (const char* p : {"lite1", "lite2", "pg"}) {
        if (!cluster_.participant(p).running()) {
          Status st = cluster_.StartParticipant(p);
          ASSERT_TRUE(st.ok()) << st.ToString();
        }
      }
      bool settled = cluster_.EventuallyNoOpenBranches(kRecoveryWaitMs) &&
                     PollUntil([&] { return PgPrepared() == 0; }, kRecoveryWaitMs);
      bool all_running = cluster_.coordinator().running();
      for (const char* p : {"lite1", "lite2", "pg"}) {
        all_running = all_running && cluster_.participant(p).running();
      }
      if (all_running) {
        EXPECT_TRUE(settled) << "branches still open or prepared after recovery";
        return;
      }
      // Something died late (a crash point reached during recovery): again.
      ADD_FAILURE() << "a process died after the crash had been handled";
    }
  }

  void TearDown() override {
    if (!HasFailure()) return;
    for (const char* log : {"coordinator", "lite1", "lite2", "pg"}) {
      std::cout << "---- " << log << ".log\n" << LogTail(dir_.File(std::string(log) + ".log"), 40);
    }
    if (const char* keep = std::getenv("PACT_KEEP_FAILED_DIR")) {
      std::string cmd = std::string("cp -r ") + dir_.path() + " " + keep;
      (void)!std::system(cmd.c_str());
    }
  }

  static TempDir* servers_dir_;
  static PostgresServer* pg_;
  std::string db_;
  TempDir dir_;
  TestCluster cluster_{dir_};
  bool restarted_coordinator_ = false;
};

TempDir* CrashMatrixTest::servers_dir_ = nullptr;
PostgresServer* CrashMatrixTest::pg_ = nullptr;

TEST_P(CrashMatrixTest, EndsTheSameEverywhereAsTheClientWasTold) {
  const auto& [point, kind] = GetParam();
  const Expectation expect = Expect(point, kind);
  const std::map<std::string, std::string> armed = {{"PACT_CRASH_POINT", point}};

  ASSERT_TRUE(
      cluster_.StartCoordinator(expect.coordinator ? armed : std::map<std::string, std::string>{})
          .ok());
  for (const char* p : {"lite1", "lite2", "pg"}) {
    Status st = cluster_.StartParticipant(p, !expect.coordinator && expect.victim == p
                                                 ? armed
                                                 : std::map<std::string, std::string>{});
    ASSERT_TRUE(st.ok()) << st.ToString();
  }
  ClientOptions options;
  options.commit_budget_ms = 1000;  // the coordinator is killed on purpose
  auto client = Client::Connect(cluster_.coordinator_address(), options);
  ASSERT_TRUE(client.ok());

  std::string txn_id;
  const Status told = RunTransfer(**client, kind, /*account=*/1, kAmount, &txn_id);

  // Every step that can reach the point runs within Commit (or Begin), so
  // by now the armed process has crashed or it never will.
  Process& victim = Victim(expect);
  int exit_code = expect.fires.value_or(false) ? victim.WaitForExit(10000) : victim.WaitForExit(0);
  const bool fired = exit_code == kCrashExitCode;
  EXPECT_TRUE(exit_code == -1 || fired) << "the armed process ended with " << exit_code;
  if (expect.fires.has_value()) {
    EXPECT_EQ(fired, *expect.fires) << point << " was " << (fired ? "" : "not ") << "reached";
  }

  const auto recovery_start = std::chrono::steady_clock::now();
  Recover();
  if (HasFatalFailure()) return;
  const auto recovery_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                               std::chrono::steady_clock::now() - recovery_start)
                               .count();

  // Every branch ended the same way.
  const int64_t lite1 = Balance("lite1", 1), lite2 = Balance("lite2", 1), pg = Balance("pg", 1);
  const bool committed = lite1 == kInitial - kAmount;
  if (committed) {
    EXPECT_EQ(lite2, kInitial + kAmount / 2) << "lite1 committed, lite2 did not";
    EXPECT_EQ(pg, kInitial + kAmount - kAmount / 2) << "lite1 committed, pg did not";
  } else {
    EXPECT_EQ(lite1, kInitial);
    EXPECT_EQ(lite2, kInitial) << "lite1 rolled back, lite2 did not";
    EXPECT_EQ(pg, kInitial) << "lite1 rolled back, pg did not";
  }
  EXPECT_EQ(LiteInt("lite2", "SELECT count(*) FROM ledger"), 0);
  if (expect.commits.has_value()) {
    EXPECT_EQ(committed, *expect.commits)
        << "a crash at " << point << " must " << (*expect.commits ? "commit" : "roll back");
  }

  // As the client was told: never COMMITTED for what rolled back.
  if (told.ok()) {
    EXPECT_TRUE(committed) << "the client was told COMMITTED, but it rolled back";
  }
  if (told.code() == StatusCode::kAborted || told.code() == StatusCode::kTimedOut) {
    EXPECT_FALSE(committed) << "the client was told " << told.ToString() << ", but it committed";
  }
  if (kind == Kind::kAbort) {
    EXPECT_FALSE(told.ok()) << "lite2 voted ABORT, yet the client was told COMMITTED";
  }

  // As `status` reports, where the coordinator still remembers it. A
  // decision that was logged is remembered across a restart.
  if (!txn_id.empty()) {
    Result<TxnState> state = Status::Internal("not asked");
    TxnState final_state = committed ? TxnState::kCommitted : TxnState::kAborted;
    // COMMITTING and ABORTING pass once every branch acknowledged.
    PollUntil(
        [&] {
          state = (*client)->GetState(txn_id);
          return !state.ok() || *state == TxnState::kCommitted || *state == TxnState::kAborted;
        },
        10000);
    if (state.ok()) {
      EXPECT_EQ(*state, final_state) << "status of " << txn_id << " disagrees with the data";
    } else {
      EXPECT_EQ(state.status().code(), StatusCode::kNotFound) << state.status().ToString();
      EXPECT_TRUE(restarted_coordinator_ && !committed)
          << "status forgot " << txn_id << ": " << state.status().ToString();
    }
  }

  // An armed process that did not crash would crash in the next transaction:
  // restart it unarmed, with a clean stop.
  if (!fired) {
    victim.Signal(SIGTERM);
    EXPECT_EQ(victim.WaitForExit(20000), 0);
    Recover();
    if (HasFatalFailure()) return;
  }

  // Nothing is left locked: the same transfer on other accounts commits.
  std::string next_id;
  Status next = RunTransfer(**client, Kind::kCommit, /*account=*/2, 2, &next_id);
  EXPECT_TRUE(next.ok()) << next.ToString();
  EXPECT_EQ(Balance("lite1", 2), kInitial - 2);
  EXPECT_EQ(Balance("pg", 2), kInitial + 1);
  EXPECT_TRUE(cluster_.EventuallyNoOpenBranches(kRecoveryWaitMs));

  // The journal, read with the coordinator stopped, holds nothing unfinished.
  Status journal = cluster_.StopCoordinatorAndCheckJournal();
  EXPECT_TRUE(journal.ok()) << journal.ToString();

  RecordProperty("crash_fired", fired ? "true" : "false");
  RecordProperty("client_told", told.ok() ? "OK" : StatusCodeName(told.code()));
  RecordProperty("outcome", committed ? "committed" : "rolled back");
  std::cout << "[ crash    ] " << point << (kind == Kind::kCommit ? " commit" : " abort")
            << ": crash " << (fired ? "fired" : "not reached") << " in "
            << (expect.coordinator ? "the coordinator" : expect.victim) << ", client told "
            << (told.ok() ? "OK" : told.ToString()) << ", outcome "
            << (committed ? "committed" : "rolled back") << ", recovered in " << recovery_ms
            << " ms\n";
}

std::string CaseName(const ::testing::TestParamInfo<CrashCase>& info) {
  return "CrashAt_" + std::get<0>(info.param) +
         (std::get<1>(info.param) == Kind::kCommit ? "_Commit" : "_Abort");
}

INSTANTIATE_TEST_SUITE_P(KnownCrashPoints, CrashMatrixTest,
                         ::testing::Combine(::testing::ValuesIn(KnownCrashPoints()),
                                            ::testing::Values(Kind::kCommit, Kind::kAbort)),
                         CaseName);

}  // namespace
}  // namespace pact
