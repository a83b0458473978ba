"""The inventory service's durable state: one SQLite file (WAL,
synchronous=FULL), every change in one transaction.

items and reservations are read by the harness directly, so their columns
are a contract: reservations holds one row per reserved line of a PREPARED
branch and nothing else. The other tables are this service's own: fences
(highest epoch per coordinator), commit markers (a repeated commit of a
forgotten branch answers OK) and heuristic decisions.
"""

import fcntl
import os
import sqlite3
import threading
import time

SCHEMA = """
CREATE TABLE IF NOT EXISTS items(
    sku TEXT PRIMARY KEY, on_hand INTEGER NOT NULL, reserved INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS reservations(
    txn_id TEXT NOT NULL, sku TEXT NOT NULL, qty INTEGER NOT NULL,
    line INTEGER NOT NULL, coordinator TEXT NOT NULL, epoch INTEGER NOT NULL,
    prepared_at_ms INTEGER NOT NULL, PRIMARY KEY(txn_id, line));
CREATE TABLE IF NOT EXISTS fences(coordinator TEXT PRIMARY KEY, epoch INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS commit_markers(txn_id TEXT PRIMARY KEY, at_ms INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS heuristics(
    txn_id TEXT PRIMARY KEY, committed INTEGER NOT NULL, decision TEXT NOT NULL DEFAULT '',
    reported INTEGER NOT NULL DEFAULT 0, at_ms INTEGER NOT NULL);
"""


def wall_ms():
    return int(time.time() * 1000)


class NotEnoughStock(Exception):
    pass


class StoreInUse(Exception):
    pass


class Heuristic:
    def __init__(self, txn_id, committed, decision, reported, at_ms):
        self.txn_id = txn_id
        self.committed = bool(committed)
        self.decision = decision  # "", "COMMIT" or "ABORT": the coordinator's
        self.reported = bool(reported)
        self.at_ms = at_ms


class InventoryStore:
    """Thread-safe: one connection, one lock; each method is one transaction."""

    def __init__(self, path):
        # One process per store: a second one would hold the same prepared
        # branches in memory and decide them on its own. The lock goes with
        # the process, however it ends; it is named after the store's real
        # path, so a symlink to the store finds it held too.
        lock_path = os.path.realpath(path) + ".lock"
        self._lock_file = open(lock_path, "a")
        try:
            fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock_file.close()
            raise StoreInUse("another process serves the store %s (it holds %s)"
                             % (path, lock_path))
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("PRAGMA busy_timeout=5000")
        with self._lock:
            self._db.executescript(SCHEMA)
            # Every fenced call reads these: kept in memory, written through
            # (the lock file makes this process the store's only writer).
            self._epochs = dict(self._db.execute("SELECT coordinator, epoch FROM fences"))

    def close(self):
        with self._lock:
            self._db.close()
        self._lock_file.close()  # the store is free for the next process

    def _transaction(self, change):
        """Runs change(db) in one IMMEDIATE transaction; COMMIT is the fsync.
        A failed COMMIT (an I/O error, a full disk) may or may not have
        reached the disk: the caller treats the change as unknown, and the
        connection is left with no transaction open, so the next one can run."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                result = change(self._db)
                self._db.execute("COMMIT")
            except BaseException:
                if self._db.in_transaction:
                    try:
                        self._db.execute("ROLLBACK")
                    except sqlite3.Error:
                        pass  # the failure being raised is the one to report
                raise
            return result

    def _read(self, sql, args=()):
        with self._lock:
            return self._db.execute(sql, args).fetchall()

    # ------------------------------------------------------------- items

    def seed(self, sku, on_hand):
        """Adds the item unless the store has it: a restart keeps its numbers."""
        self._transaction(lambda db: db.execute(
            "INSERT OR IGNORE INTO items(sku, on_hand, reserved) VALUES(?, ?, 0)",
            (sku, on_hand)))

    def item(self, sku):
        """(on_hand, reserved), or None for an unknown sku."""
        rows = self._read("SELECT on_hand, reserved FROM items WHERE sku = ?", (sku,))
        return rows[0] if rows else None

    @staticmethod
    def _check_available(db, lines):
        wanted = {}
        for sku, qty in lines:
            wanted[sku] = wanted.get(sku, 0) + qty
        for sku, qty in wanted.items():
            row = db.execute("SELECT on_hand - reserved FROM items WHERE sku = ?",
                             (sku,)).fetchone()
            if row is None or row[0] < qty:
                raise NotEnoughStock("%s: %d wanted, %d available" % (
                    sku, qty, row[0] if row else 0))

    # ------------------------------------------------------------- branches

    def prepare(self, txn_id, lines, coordinator, epoch):
        """The try: reserves every line durably. NotEnoughStock changes nothing."""
        at_ms = wall_ms()

        def change(db):
            self._check_available(db, lines)
            for number, (sku, qty) in enumerate(lines):
                db.execute("UPDATE items SET reserved = reserved + ? WHERE sku = ?", (qty, sku))
                db.execute("INSERT INTO reservations VALUES(?, ?, ?, ?, ?, ?, ?)",
                           (txn_id, sku, qty, number, coordinator, epoch, at_ms))
        self._transaction(change)
        return at_ms

    def prepared(self):
        """{txn_id: (lines, prepared_at_ms)} of every prepared branch."""
        out = {}
        for txn_id, sku, qty, at_ms in self._read(
                "SELECT txn_id, sku, qty, prepared_at_ms FROM reservations ORDER BY txn_id, line"):
            lines, _ = out.get(txn_id, ([], at_ms))
            lines.append((sku, qty))
            out[txn_id] = (lines, at_ms)
        return out

    @staticmethod
    def _confirm(db, txn_id):
        for sku, qty in db.execute("SELECT sku, qty FROM reservations WHERE txn_id = ?",
                                   (txn_id,)).fetchall():
            db.execute("UPDATE items SET on_hand = on_hand - ?, reserved = reserved - ? "
                       "WHERE sku = ?", (qty, qty, sku))
        db.execute("DELETE FROM reservations WHERE txn_id = ?", (txn_id,))
        db.execute("INSERT OR REPLACE INTO commit_markers VALUES(?, ?)", (txn_id, wall_ms()))

    @staticmethod
    def _cancel(db, txn_id):
        for sku, qty in db.execute("SELECT sku, qty FROM reservations WHERE txn_id = ?",
                                   (txn_id,)).fetchall():
            db.execute("UPDATE items SET reserved = reserved - ? WHERE sku = ?", (qty, sku))
        db.execute("DELETE FROM reservations WHERE txn_id = ?", (txn_id,))

    def commit_prepared(self, txn_id):
        """The confirm: the reserved stock leaves, with a commit marker."""
        self._transaction(lambda db: self._confirm(db, txn_id))

    def rollback_prepared(self, txn_id):
        """The cancel: the reserved stock is available again."""
        self._transaction(lambda db: self._cancel(db, txn_id))

    def commit_one_phase(self, txn_id, lines):
        """Try and confirm at once. NotEnoughStock changes nothing."""
        def change(db):
            self._check_available(db, lines)
            for sku, qty in lines:
                db.execute("UPDATE items SET on_hand = on_hand - ? WHERE sku = ?", (qty, sku))
            db.execute("INSERT OR REPLACE INTO commit_markers VALUES(?, ?)",
                       (txn_id, wall_ms()))
        self._transaction(change)

    def forget_commit_markers(self, older_than_ms):
        """Markers of commits older than this: a coordinator re-sends a commit
        long before (every retry is within its backoff cap)."""
        self._transaction(lambda db: db.execute("DELETE FROM commit_markers WHERE at_ms < ?",
                                                (wall_ms() - older_than_ms,)))

    def is_committed(self, txn_id):
        return bool(self._read("SELECT 1 FROM commit_markers WHERE txn_id = ?", (txn_id,)))

    # ------------------------------------------------------------- fences

    def highest_epoch(self, coordinator):
        """0 for a coordinator never admitted (epochs start at 1)."""
        with self._lock:
            return self._epochs.get(coordinator, 0)

    def admit(self, coordinator, epoch):
        """Stores epoch if it is the highest yet; whether it raised it. The
        memory copy changes only once the row is durable."""
        def change(db):
            if self._epochs.get(coordinator, 0) >= epoch:
                return False
            db.execute("INSERT OR REPLACE INTO fences VALUES(?, ?)", (coordinator, epoch))
            return True
        raised = self._transaction(change)
        if raised:
            with self._lock:
                self._epochs[coordinator] = max(epoch, self._epochs.get(coordinator, 0))
        return raised

    # ------------------------------------------------------------- heuristics

    def resolve(self, txn_id, commit):
        """An operator's decision of a prepared branch: recorded and applied
        in one transaction, so no crash can separate the two."""
        def change(db):
            db.execute("INSERT OR REPLACE INTO heuristics(txn_id, committed, at_ms) "
                       "VALUES(?, ?, ?)", (txn_id, int(commit), wall_ms()))
            (self._confirm if commit else self._cancel)(db, txn_id)
        self._transaction(change)

    def heuristics(self):
        return [Heuristic(*row) for row in self._read(
            "SELECT txn_id, committed, decision, reported, at_ms FROM heuristics "
            "ORDER BY at_ms, txn_id")]

    def find_heuristic(self, txn_id):
        rows = self._read("SELECT txn_id, committed, decision, reported, at_ms FROM heuristics "
                          "WHERE txn_id = ?", (txn_id,))
        return Heuristic(*rows[0]) if rows else None

    def set_heuristic_decision(self, txn_id, decision, reported):
        self._transaction(lambda db: db.execute(
            "UPDATE heuristics SET decision = ?, reported = MAX(reported, ?) WHERE txn_id = ?",
            (decision, int(reported), txn_id)))

    def forget_heuristic(self, txn_id):
        self._transaction(lambda db: db.execute("DELETE FROM heuristics WHERE txn_id = ?",
                                                (txn_id,)))
