"""The crash matrix on the mix of PostgreSQL and the Python service: every
named crash point, in a purchase that commits and in one that aborts (pg
votes ABORT: a deferred foreign key fails at its prepare). The armed process
(the coordinator, or the Python service for the participant points) dies at
that step like a power cut and is restarted unarmed on the same files. Then
both branches must have ended the same way, the way the client was told and
`status` reports, with nothing prepared in PostgreSQL, no reservation held
and nothing unfinished in the journal. tests/crash_matrix_itest.cc is the
same matrix over Pact's own adapters."""

import signal
import time
import unittest

import pact
from mixed import INITIAL_BALANCE, INITIAL_STOCK, ShopTest

CRASH_EXIT_CODE = 86
PRICE, QUANTITY = 30, 2
COORDINATOR_POINTS = ["after_begin", "after_prepare_sent", "after_votes_collected",
                      "after_decision_logged", "after_first_commit_sent", "before_end_logged"]
SERVICE_POINTS = ["after_prepare_durable", "before_commit_applied", "after_commit_applied",
                  "after_rollback_applied"]

# point -> (reached, commits) in a purchase that commits. Presumed abort: a
# crash before the COMMIT record is durable (or a lost vote) rolls back.
COMMIT_CASES = {
    "after_begin": (True, False), "after_prepare_sent": (True, False),
    "after_votes_collected": (True, False), "after_prepare_durable": (True, False),
    "after_decision_logged": (True, True), "after_first_commit_sent": (True, True),
    "before_end_logged": (True, True), "before_commit_applied": (True, True),
    "after_commit_applied": (True, True), "after_rollback_applied": (False, True),
}
# In one that aborts nothing is ever logged or committed.
ABORT_REACHED = {"after_begin", "after_prepare_sent", "after_votes_collected",
                 "after_prepare_durable", "after_rollback_applied"}


class CrashMatrixTest(ShopTest):
    def run_case(self, point, commits):
        armed = {"PACT_CRASH_POINT": point}
        in_service = point in SERVICE_POINTS
        self.start_coordinator(env=None if in_service else armed)
        self.start_pg()
        self.start_inventory(env=armed if in_service else None)
        victim = self.cluster.processes["inventory" if in_service else "c1"]
        reached, must_commit = COMMIT_CASES[point] if commits else (point in ABORT_REACHED,
                                                                    False)
        coordinator = self.connect(commit_budget_ms=1000)  # it is killed on purpose

        told, txn = None, None
        try:
            txn = coordinator.begin(timeout_ms=5000)
            self.buy(txn, PRICE, QUANTITY)
            if not commits:
                txn.execute("pg", "INSERT INTO ledger(account) VALUES (99)")
            if commits and in_service and point in ("before_commit_applied",
                                                    "after_commit_applied"):
                # The commit waits for the service's acknowledgement, which
                # comes only once it is back: restart it meanwhile.
                join = self.commit_in_background(txn)
                self.assertEqual(victim.wait(20), CRASH_EXIT_CODE)
                self.start_inventory()
                told = join()
            else:
                txn.commit()
        except pact.PactError as e:
            told = e

        exit_code = victim.wait(10 if reached else 0)
        fired = exit_code == CRASH_EXIT_CODE
        self.assertIn(exit_code, (None, CRASH_EXIT_CODE),
                      "the armed process ended with %s" % exit_code)
        self.assertEqual(fired, reached, "%s was %sreached" % (point, "" if fired else "not "))
        self.recover()

        committed = self.balance() == INITIAL_BALANCE - PRICE
        if committed:
            self.assert_bought(PRICE, QUANTITY)
        else:
            self.assert_nothing_bought()
        self.assertEqual(committed, must_commit,
                         "a crash at %s must %s" % (point, "commit" if must_commit else
                                                    "roll back"))
        # As the client was told: never COMMITTED for what rolled back, never
        # ABORTED for what committed.
        if told is None:
            self.assertTrue(committed, "told COMMITTED, but it rolled back")
        elif isinstance(told, pact.Aborted):
            self.assertFalse(committed, "told %s, but it committed" % told)
        elif txn is None:  # begin failed: nothing began
            self.assertIsInstance(told, pact.Unavailable, "begin raised %r" % told)
            self.assertFalse(committed)
        else:
            self.assertIsInstance(told, pact.Unknown, "told %r" % told)
        if not commits:
            self.assertIsNotNone(told, "pg voted ABORT, yet the client was told COMMITTED")
        # As status reports, where the coordinator still remembers it.
        if txn is not None:
            try:
                state = self.connect().state(txn.id)
                self.assertEqual(state, "COMMITTED" if committed else "ABORTED")
            except pact.NotFound:
                self.assertFalse(committed, "status forgot %s, which committed" % txn.id)

        # An armed process that did not crash would in the next purchase.
        if victim.running:
            victim.signal(signal.SIGTERM)
            self.assertEqual(victim.wait(20), 0)
            self.recover()
        # Nothing is left locked or held: another purchase commits.
        with self.connect().transaction() as again:
            self.buy(again, 1, 1, account=2)
        self.assertEqual(self.balance(2), INITIAL_BALANCE - 1)
        self.assertEqual(self.stock()[0], INITIAL_STOCK - QUANTITY * committed - 1)
        self.wait_settled()
        self.cluster.stop_coordinator_and_check_journal()
        print("[ crash    ] %s %s: %s, client told %s, %s" % (
            point, "commit" if commits else "abort", "fired" if fired else "not reached",
            "OK" if told is None else type(told).__name__,
            "committed" if committed else "rolled back"))

    def recover(self):
        """Restarts whatever is down, unarmed, and waits until it settles."""
        started = time.monotonic()
        if not self.cluster.processes["c1"].running:
            self.start_coordinator()
        if not self.cluster.processes["pg"].running:
            self.start_pg()
        if not self.cluster.processes["inventory"].running:
            self.start_inventory()
        self.wait_settled()
        return time.monotonic() - started


def _add_cases():
    for point in COORDINATOR_POINTS + SERVICE_POINTS:
        for commits in (True, False):
            def case(self, point=point, commits=commits):
                self.run_case(point, commits)
            name = "test_crash_at_%s_%s" % (point, "commit" if commits else "abort")
            setattr(CrashMatrixTest, name, case)


_add_cases()

if __name__ == "__main__":
    unittest.main()
