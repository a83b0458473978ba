// The journal's tables and the queries that decode them, shared by the
// journal and its offline reader so both read a file the same way.
#pragma once

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

// A COMMIT record whose write failed ambiguously and was then overruled by a
// durable abort (aborted_decisions) is not a decision.
constexpr const char kSelectUnfinished[] =
    "SELECT txn_id, branches, decided_at_ms FROM commit_records "
    "WHERE txn_id NOT IN (SELECT txn_id FROM aborted_decisions) "
    "ORDER BY decided_at_ms, txn_id";

constexpr const char kSelectParticipants[] =
    "SELECT name, host, port, backend FROM participants ORDER BY name";

constexpr const char kSelectHeuristics[] =
    "SELECT txn_id, participant, committed, decision, at_ms "
    "FROM heuristics ORDER BY at_ms, txn_id";

}  // namespace pact
