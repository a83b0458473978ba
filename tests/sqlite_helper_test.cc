#include "sqlite/sqlite.h"

#include <gtest/gtest.h>
#include <sqlite3.h>
#include <stdlib.h>

#include <filesystem>
#include <string>
#include <vector>

namespace pact {
namespace {

class SqliteHelperTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string dir = (std::filesystem::temp_directory_path() / "pact-sqlite-XXXXXX").string();
    ASSERT_NE(mkdtemp(dir.data()), nullptr);
    dir_ = dir;
    path_ = dir_ + "/test.db";
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  SqliteConnection OpenOrDie() {
    auto db = SqliteConnection::Open(path_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
    EXPECT_TRUE(db.ok()) << db.status().ToString();
    return db.ok() ? std::move(db).value() : SqliteConnection();
  }

  std::string dir_;
  std::string path_;
};

TEST(SqliteStatusTest, EveryKindOfFailureMapsToTheCodeItsCallersReactTo) {
  const struct {
    int rc;
    StatusCode code;
  } kCases[] = {
      {SQLITE_OK, StatusCode::kOk},
      {SQLITE_DONE, StatusCode::kOk},
      {SQLITE_BUSY, StatusCode::kBusy},
      {SQLITE_BUSY_SNAPSHOT, StatusCode::kBusy},
      {SQLITE_LOCKED, StatusCode::kBusy},
      {SQLITE_FULL, StatusCode::kIoError},
      {SQLITE_IOERR_FSYNC, StatusCode::kIoError},
      {SQLITE_CANTOPEN, StatusCode::kIoError},
      {SQLITE_READONLY, StatusCode::kIoError},
      {SQLITE_CORRUPT, StatusCode::kCorruption},
      {SQLITE_NOTADB, StatusCode::kCorruption},
      {SQLITE_CONSTRAINT_UNIQUE, StatusCode::kInvalidArgument},
      {SQLITE_ERROR, StatusCode::kInvalidArgument},
      {SQLITE_NOMEM, StatusCode::kInternal},
  };
  for (const auto& c : kCases) {
    EXPECT_EQ(SqliteStatus(c.rc, "m").code(), c.code) << sqlite3_errstr(c.rc);
  }
  EXPECT_EQ(SqliteStatus(SQLITE_FULL, "disk is full").message(), "disk is full");
}

TEST_F(SqliteHelperTest, WriteWhileAnotherConnectionHoldsTheWriteLockIsBusy) {
  SqliteConnection holder = OpenOrDie();
  ASSERT_TRUE(holder.Exec("CREATE TABLE t(x INTEGER PRIMARY KEY)").ok());
  ASSERT_TRUE(holder.Exec("BEGIN IMMEDIATE; INSERT INTO t VALUES(1)").ok());
  ASSERT_TRUE(holder.InTransaction());

  SqliteConnection other = OpenOrDie();
  other.SetBusyTimeout(10);
  Status st = other.Exec("INSERT INTO t VALUES(2)");
  EXPECT_EQ(st.code(), StatusCode::kBusy) << st.ToString();
  EXPECT_NE(st.message().find("locked"), std::string::npos) << st.ToString();

  ASSERT_TRUE(holder.Exec("COMMIT").ok());
  EXPECT_TRUE(other.Exec("INSERT INTO t VALUES(2)").ok());
}

TEST_F(SqliteHelperTest, ConstraintViolationIsInvalidArgumentAndSaysWhich) {
  SqliteConnection db = OpenOrDie();
  ASSERT_TRUE(db.Exec("CREATE TABLE t(x INTEGER PRIMARY KEY); INSERT INTO t VALUES(1)").ok());
  Status st = db.Exec("INSERT INTO t VALUES(1)");
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument) << st.ToString();
  EXPECT_NE(st.message().find("UNIQUE constraint failed: t.x"), std::string::npos)
      << st.ToString();
}

TEST_F(SqliteHelperTest, MissingTableIsInvalidArgumentAtPrepare) {
  SqliteConnection db = OpenOrDie();
  auto stmt = db.Prepare("SELECT * FROM nowhere");
  ASSERT_FALSE(stmt.ok());
  EXPECT_EQ(stmt.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(stmt.status().message().find("no such table: nowhere"), std::string::npos)
      << stmt.status().ToString();
}

TEST_F(SqliteHelperTest, OpeningAMissingFileReadOnlyIsAnIoError) {
  auto db = SqliteConnection::Open(dir_ + "/absent.db", SQLITE_OPEN_READONLY);
  ASSERT_FALSE(db.ok());
  EXPECT_EQ(db.status().code(), StatusCode::kIoError) << db.status().ToString();
}

TEST_F(SqliteHelperTest, EveryValueTypeRoundTripsThroughBindAndRun) {
  SqliteConnection db = OpenOrDie();
  ASSERT_TRUE(db.Exec("CREATE TABLE t(id INTEGER PRIMARY KEY, v)").ok());
  auto insert = db.Prepare("INSERT INTO t(id, v) VALUES(?1, ?2)", SQLITE_PREPARE_PERSISTENT);
  ASSERT_TRUE(insert.ok()) << insert.status().ToString();
  const std::vector<SqlValue> values = {std::monostate(), int64_t{-7}, 2.5, std::string("a\0b", 3),
                                        Blob{std::string("\x00\x01", 2)}, Blob{}};
  for (size_t i = 0; i < values.size(); ++i) {
    // One statement reused: Run leaves it reset with its bindings cleared.
    ASSERT_TRUE(insert->BindAll({static_cast<int64_t>(i), values[i]}).ok());
    ASSERT_TRUE(insert->Run().ok());
  }
  EXPECT_EQ(db.Changes(), 1);
  EXPECT_EQ(db.TotalChanges(), static_cast<int64_t>(values.size()));

  auto select = db.Prepare("SELECT id, v FROM t ORDER BY id");
  ASSERT_TRUE(select.ok());
  std::vector<SqlValue> read;
  ASSERT_TRUE(select->Run([&](const SqliteStatement& row) {
                      EXPECT_EQ(row.ColumnCount(), 2);
                      EXPECT_EQ(row.ColumnName(1), "v");
                      EXPECT_EQ(row.Int64(0), static_cast<int64_t>(read.size()));
                      read.push_back(row.Value(1));
                    })
                  .ok());
  EXPECT_EQ(read, values);
  // Run resets: the same statement runs again from the first row.
  int rows = 0;
  ASSERT_TRUE(select->Run([&](const SqliteStatement&) { ++rows; }).ok());
  EXPECT_EQ(rows, static_cast<int>(values.size()));
}

TEST_F(SqliteHelperTest, BindAllRefusesTheWrongNumberOfParameters) {
  SqliteConnection db = OpenOrDie();
  auto stmt = db.Prepare("SELECT ?1 + ?2");
  ASSERT_TRUE(stmt.ok());
  Status st = stmt->BindAll({int64_t{1}});
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("takes 2 parameters, got 1"), std::string::npos) << st.ToString();
}

TEST_F(SqliteHelperTest, ExecRunsEveryStatementOfAScriptAndShowsTheirRows) {
  SqliteConnection db = OpenOrDie();
  std::vector<std::string> texts;
  Status st = db.Exec(
      "CREATE TABLE t(x); -- a comment\n INSERT INTO t VALUES(1), (NULL);"
      "SELECT x FROM t ORDER BY x;  ",
      [&](const SqliteStatement& row) {
        texts.push_back(row.IsNull(0) ? "null" : row.Text(0));
      });
  ASSERT_TRUE(st.ok()) << st.ToString();
  EXPECT_EQ(texts, (std::vector<std::string>{"null", "1"}));
  // A failing statement stops the script.
  EXPECT_FALSE(db.Exec("INSERT INTO t VALUES(2); SELECT nope; INSERT INTO t VALUES(3)").ok());
  EXPECT_EQ(*db.QueryInt("SELECT count(*) FROM t"), 3);
}

TEST_F(SqliteHelperTest, QueryIntAndQueryTextReadTheFirstValue) {
  SqliteConnection db = OpenOrDie();
  EXPECT_EQ(*db.QueryInt("SELECT ?1 * 2", {int64_t{21}}), 42);
  EXPECT_EQ(*db.QueryText("SELECT 'wal'"), "wal");
  EXPECT_EQ(db.QueryInt("SELECT 'text'").status().code(), StatusCode::kInternal);
  EXPECT_EQ(db.QueryInt("SELECT 1 WHERE 0").status().code(), StatusCode::kNotFound);
}

TEST_F(SqliteHelperTest, PrepareHandsBackTheRestOfTheScript) {
  SqliteConnection db = OpenOrDie();
  std::string_view rest;
  auto stmt = db.Prepare("SELECT 1; SELECT 2", 0, &rest);
  ASSERT_TRUE(stmt.ok());
  EXPECT_EQ(rest, " SELECT 2");
  auto empty = db.Prepare("-- nothing", 0, &rest);
  ASSERT_TRUE(empty.ok());
  EXPECT_TRUE(empty->empty());
  EXPECT_TRUE(rest.empty());
}

}  // namespace
}  // namespace pact
