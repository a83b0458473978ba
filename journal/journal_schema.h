// The journal's tables, every statement on them and the code that turns
// their rows into records and back: the one place that knows a column, shared
// by the journal and its offline reader so both read a file the same way.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"
#include "journal/journal.h"
#include "sqlite/sqlite.h"

namespace pact {

constexpr int kJournalSchemaVersion = 2;

// Version 2 added aborted_decisions.
constexpr const char kCreateAbortedDecisions[] = R"sql(
  CREATE TABLE aborted_decisions (
    txn_id TEXT PRIMARY KEY,
    at_ms INTEGER NOT NULL) WITHOUT ROWID;
)sql";

constexpr const char kCreateJournalTables[] = R"sql(
  CREATE TABLE meta (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    schema_version INTEGER NOT NULL,
    coordinator_name TEXT NOT NULL,
    epoch INTEGER NOT NULL);
  CREATE TABLE participants (
    name TEXT PRIMARY KEY,
    host TEXT NOT NULL,
    port INTEGER NOT NULL,
    backend TEXT NOT NULL) WITHOUT ROWID;
  CREATE TABLE commit_records (
    txn_id TEXT PRIMARY KEY,
    branches TEXT NOT NULL,
    decided_at_ms INTEGER NOT NULL) WITHOUT ROWID;
  CREATE TABLE heuristics (
    txn_id TEXT NOT NULL,
    participant TEXT NOT NULL,
    committed INTEGER NOT NULL,
    decision TEXT NOT NULL,
    at_ms INTEGER NOT NULL,
    PRIMARY KEY (txn_id, participant)) WITHOUT ROWID;
)sql";

// The tables every schema version has (aborted_decisions came with 2).
constexpr const char* kJournalTables[] = {"meta", "participants", "commit_records", "heuristics"};

constexpr const char kSelectTables[] =
    "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'";

// meta: the one row naming the owner, the schema version and the epoch.
constexpr const char kSelectMeta[] =
    "SELECT schema_version, coordinator_name, epoch FROM meta WHERE id = 1";
constexpr const char kInsertMeta[] =
    "INSERT INTO meta (id, schema_version, coordinator_name, epoch) VALUES (1, ?1, ?2, 0)";
constexpr const char kRaiseEpoch[] = "UPDATE meta SET epoch = epoch + 1 WHERE id = 1";
constexpr const char kSelectEpoch[] = "SELECT epoch FROM meta WHERE id = 1";
constexpr const char kUpgradeToSchema2[] = "UPDATE meta SET schema_version = 2 WHERE id = 1";

// commit_records: one per COMMIT decision not yet ended.
constexpr const char kInsertCommitRecord[] =
    "INSERT OR REPLACE INTO commit_records (txn_id, branches, decided_at_ms) VALUES (?1, ?2, ?3)";
constexpr const char kDeleteCommitRecord[] = "DELETE FROM commit_records WHERE txn_id = ?1";
// A COMMIT record whose write failed ambiguously and was then overruled by a
// durable abort (aborted_decisions) is not a decision.
constexpr const char kSelectUnfinished[] =
    "SELECT txn_id, branches, decided_at_ms FROM commit_records "
    "WHERE txn_id NOT IN (SELECT txn_id FROM aborted_decisions) "
    "ORDER BY decided_at_ms, txn_id";
// Schema 1 had no abort records; its coordinator upgrades it at start.
constexpr const char kSelectUnfinishedSchema1[] =
    "SELECT txn_id, branches, decided_at_ms FROM commit_records "
    "ORDER BY decided_at_ms, txn_id";
constexpr const char kInsertAbortedDecision[] =
    "INSERT OR REPLACE INTO aborted_decisions (txn_id, at_ms) VALUES (?1, ?2)";

constexpr const char kInsertParticipant[] =
    "INSERT OR REPLACE INTO participants (name, host, port, backend) VALUES (?1, ?2, ?3, ?4)";
constexpr const char kSelectParticipants[] =
    "SELECT name, host, port, backend FROM participants ORDER BY name";
constexpr const char kDeleteParticipant[] = "DELETE FROM participants WHERE name = ?1";

constexpr const char kInsertHeuristic[] =
    "INSERT OR REPLACE INTO heuristics (txn_id, participant, committed, decision, at_ms) "
    "VALUES (?1, ?2, ?3, ?4, ?5)";
constexpr const char kSelectHeuristics[] =
    "SELECT txn_id, participant, committed, decision, at_ms "
    "FROM heuristics ORDER BY at_ms, txn_id";
constexpr const char kDeleteHeuristics[] = "DELETE FROM heuristics WHERE txn_id = ?1";

struct JournalMeta {
  int64_t schema_version = 0;
  std::string coordinator_name;
  int64_t epoch = 0;
};

// A COMMIT record's branches are stored comma-joined (names pass IsValidName).
std::vector<std::string> SplitBranches(const std::string& joined);

// The meta row; nullopt when the table is empty.
Result<std::optional<JournalMeta>> ReadJournalMeta(SqliteConnection* db);

// Bind a record to the matching kInsert* statement. A COMMIT record with
// decided_at_ms == 0 is stamped `now_ms`.
Status BindCommitRecord(SqliteStatement* insert, const CommitRecord& record, int64_t now_ms);
Status BindParticipant(SqliteStatement* insert, const ParticipantRecord& participant);
Status BindHeuristic(SqliteStatement* insert, const HeuristicRecord& heuristic);

// Run the matching kSelect* statement and decode every row.
Result<std::vector<CommitRecord>> ReadCommitRecords(SqliteStatement* select);
Result<std::vector<ParticipantRecord>> ReadParticipants(SqliteStatement* select);
Result<std::vector<HeuristicRecord>> ReadHeuristics(SqliteStatement* select);

}  // namespace pact
