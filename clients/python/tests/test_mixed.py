"""End to end: one transaction debits an account in PostgreSQL and reserves
stock in the Python inventory service, through the Python client. Committed,
aborted, and finished after the service is killed once it voted."""

import signal
import time
import unittest

import pact
from harness import wait_until
from mixed import INITIAL_STOCK, ShopTest


class MixedTest(ShopTest):
    def setUp(self):
        super().setUp()
        self.start_shop()
        self.coordinator = self.connect()

    def test_a_purchase_commits_in_both(self):
        with self.coordinator.transaction(timeout_ms=10000) as txn:
            self.buy(txn, 30, 2)
            rows = txn.execute("inventory", "available", ["widget"])
        self.assertEqual(rows.columns, ["sku", "on_hand", "reserved", "available"])
        self.assertEqual(rows.rows, [["widget", INITIAL_STOCK, 0, INITIAL_STOCK]])
        self.assert_bought(30, 2)
        self.assertEqual(self.coordinator.state(txn.id), "COMMITTED")
        self.wait_settled()

    def test_an_abort_vote_in_postgresql_gives_the_stock_back(self):
        with self.assertRaises(pact.Aborted):
            with self.coordinator.transaction() as txn:
                self.buy(txn, 30, 2)
                txn.execute("pg", "INSERT INTO ledger(account) VALUES (99)")  # fails at prepare
        self.wait_settled()
        self.assert_nothing_bought()

    def test_an_exception_rolls_back_both(self):
        with self.assertRaises(KeyError):
            with self.coordinator.transaction() as txn:
                self.buy(txn, 30, 2)
                raise KeyError("no shipping address")
        self.wait_settled()
        self.assert_nothing_bought()
        self.assertEqual(self.coordinator.state(txn.id), "ABORTED")

    def test_stock_taken_meanwhile_makes_the_service_vote_abort(self):
        # Both see 10 available when they reserve; the try happens at
        # prepare, where the second finds only 4 left and votes ABORT.
        first = self.coordinator.begin()
        second = self.coordinator.begin()
        self.buy(first, 10, 6, account=1)
        self.buy(second, 10, 6, account=2)
        first.commit()
        with self.assertRaises(pact.Aborted) as raised:
            second.commit()
        self.assertIn("inventory", str(raised.exception))
        self.wait_settled()
        self.assertEqual((self.balance(1), self.balance(2)), (90, 100))
        self.assertEqual(self.stock(), (4, 0))

    def test_more_than_is_available_is_refused_at_once(self):
        with self.assertRaises(pact.FailedPrecondition):
            with self.coordinator.transaction() as txn:
                txn.execute("pg", "UPDATE accounts SET balance = balance - 1 WHERE id = 1")
                txn.execute("inventory", "reserve", ["widget", INITIAL_STOCK + 1])
        with self.assertRaises(pact.InvalidArgument):
            with self.coordinator.transaction() as txn:
                txn.execute("inventory", "reserve", ["gadget", 1])
        self.wait_settled()
        self.assert_nothing_bought()

    def test_killed_when_the_commit_arrives_it_commits_after_its_restart(self):
        # The service votes COMMIT, the decision is durable, and the service
        # dies (exit 86, like a power cut) as the commit reaches it.
        self.cluster.processes["inventory"].kill()
        self.start_inventory(env={"PACT_CRASH_POINT": "before_commit_applied"})
        txn = self.coordinator.begin()
        self.buy(txn, 30, 2)
        join = self.commit_in_background(txn)
        self.assertEqual(self.cluster.processes["inventory"].wait(20), 86)
        self.assertEqual(self.stock(), (INITIAL_STOCK, 2))  # still reserved: prepared
        self.start_inventory()
        self.assertIsNone(join(), "the client was not told COMMITTED")
        self.wait_settled()
        self.assert_bought(30, 2)

    def test_kill_9_while_prepared_then_restart_and_the_commit_completes(self):
        # The coordinator dies right after its COMMIT decision is durable, so
        # the service holds its branch prepared; then the service is killed
        # with SIGKILL too. Both come back: the service restores the
        # reservation (the stock stays held meanwhile) and the commit completes.
        self.cluster.processes["c1"].kill()
        self.start_coordinator(env={"PACT_CRASH_POINT": "after_decision_logged"})
        coordinator = self.connect(commit_budget_ms=500)
        txn = coordinator.begin()
        self.buy(txn, 30, 2)
        with self.assertRaises(pact.Unknown) as raised:
            txn.commit()
        self.assertEqual(raised.exception.txn_id, txn.id)
        self.assertEqual(self.cluster.processes["c1"].wait(10), 86)

        inventory = self.cluster.processes["inventory"]
        prepared = self.cluster.open_branches("inventory")
        self.assertEqual([(b.txn_id, b.state) for b in prepared], [(txn.id, 2)])  # PREPARED
        inventory.signal(signal.SIGKILL)
        inventory.wait()
        self.start_inventory(wait_registered=False)
        time.sleep(0.5)  # it asks the coordinator, which is down: the branch must stay
        self.assertEqual([b.txn_id for b in self.cluster.open_branches("inventory")], [txn.id])
        self.assertEqual(self.stock(), (INITIAL_STOCK, 2))
        self.assertEqual(self.reservations(), 1)

        self.start_coordinator()
        self.wait_settled()
        self.assert_bought(30, 2)
        wait_until(lambda: self.coordinator.state(txn.id) == "COMMITTED", 10,
                   "status says COMMITTED")
        self.cluster.stop_coordinator_and_check_journal()


class MixedTlsTest(ShopTest):
    security = "tls"

    def test_a_purchase_commits_over_mutual_tls_and_strangers_are_refused(self):
        self.start_shop()
        coordinator = self.connect()
        with coordinator.transaction() as txn:
            self.buy(txn, 30, 2)
        self.assert_bought(30, 2)

        # A certificate of the cluster's CA without the application role
        # cannot open a branch at the service.
        self.cluster.make_certificates("intruder:participant")
        intruder = pact.connect(self.cluster.coordinators,
                                **self.cluster.client_options("intruder"))
        self.addCleanup(intruder.close)
        pool = pact.transport.participant_pool(
            "127.0.0.1", self.cluster.ports["inventory"],
            pact.transport.Security(**self.cluster.tls_files("intruder")), "inventory")
        self.addCleanup(pool.close)
        with self.assertRaises(pact.PermissionDenied):
            pool.call(lambda c: c.execute("c1.1.999999", "reserve", [], 1000))
        # Nor prepare as the coordinator without being it.
        from pact_rpc.ttypes import Fence
        with self.assertRaises(pact.PermissionDenied):
            pool.call(lambda c: c.prepare(Fence("c1", 99), "c1.99.1", ""))
        self.assert_bought(30, 2)


if __name__ == "__main__":
    unittest.main()
