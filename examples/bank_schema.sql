-- The example bank held by each demo participant. Created by the operator
-- before the adapter starts (schema changes are not part of Pact transactions).
-- The tests, pact-chaos-bank and pact-bench create theirs in code, in every
-- dialect: cluster/bank_schema.cc.
PRAGMA journal_mode = WAL;
CREATE TABLE accounts (
  id      INTEGER PRIMARY KEY,
  owner   TEXT NOT NULL,
  balance INTEGER NOT NULL CHECK (balance >= 0)
);
-- Every movement of money, with the Pact transaction that made it. The
-- foreign key is checked at commit time, so a bad account number is only
-- found when the participant prepares, and it votes ABORT.
CREATE TABLE ledger (
  id      INTEGER PRIMARY KEY,
  txn_id  TEXT NOT NULL,
  account INTEGER NOT NULL REFERENCES accounts(id) DEFERRABLE INITIALLY DEFERRED,
  amount  INTEGER NOT NULL
);
