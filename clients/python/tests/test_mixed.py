"""End to end: one transaction debits an account in PostgreSQL and reserves
stock in the Python inventory service, through the Python client. Committed,
aborted, and finished after the service is killed once it voted."""

import signal
import time
import unittest

import pact
from frame_proxy import FrameProxy
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

    def test_a_service_restarted_mid_transaction_makes_it_abort(self):
        # The reservation noted before the restart is gone with the process:
        # committing now would commit the debit without it.
        txn = self.coordinator.begin()
        self.buy(txn, 30, 2)
        self.cluster.processes["inventory"].kill()
        self.start_inventory()
        with self.assertRaises(pact.Aborted) as raised:
            txn.commit()
        self.assertIn("inventory", str(raised.exception))
        self.wait_settled()
        self.assert_nothing_bought()

    def test_a_statement_after_the_service_restarted_dooms_the_transaction(self):
        txn = self.coordinator.begin()
        self.buy(txn, 30, 2)
        self.cluster.processes["inventory"].kill()
        self.start_inventory()
        # The service answers from a new opening of the branch: the client
        # sees that the first one's work is lost and can only roll back.
        with self.assertRaises(pact.Aborted):
            txn.execute("inventory", "reserve", ["widget", 1])
        with self.assertRaises(pact.Aborted):
            txn.commit()
        self.wait_settled()
        self.assert_nothing_bought()

    def test_a_frozen_service_votes_nothing_and_the_purchase_aborts(self):
        # The coordinator answers after its prepare timeout (2 s) plus one
        # rollback round, bounded by its call timeout.
        self.cluster.processes["c1"].kill()
        self.cluster.start_coordinator(flags=["--rpc_timeout_ms=1000"])
        inventory = self.cluster.processes["inventory"]
        txn = self.coordinator.begin()
        self.buy(txn, 30, 2)
        inventory.signal(signal.SIGSTOP)  # frozen: it reads nothing, answers nothing
        started = time.monotonic()
        try:
            with self.assertRaises(pact.Aborted):
                txn.commit()  # no vote within the prepare timeout (2 s) is an ABORT vote
            self.assertLess(time.monotonic() - started, 10)
        finally:
            inventory.signal(signal.SIGCONT)
        self.wait_settled()  # thawed, it hears the rollback (or asks) and holds nothing
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


class LostMessageTest(ShopTest):
    """Every message between the coordinator (or the client) and the Python
    service passes a proxy that loses the one the test names: the request
    (never run) or the reply (run, never heard of)."""

    def setUp(self):
        super().setUp()
        self.start_coordinator()
        self.start_pg()
        self.proxy = FrameProxy(self.cluster.port_of("inventory"))
        self.addCleanup(self.proxy.close)
        self.start_inventory(flags=["--advertise_port=%d" % self.proxy.port],
                             wait_registered=False)
        self.coordinator = self.connect()
        wait_until(lambda: self.coordinator.participants().get("inventory") ==
                   "127.0.0.1:%d" % self.proxy.port, 10, "the service is registered")

    def purchase(self, abort_vote=False):
        """What the client is told: None for COMMITTED, else the error."""
        try:
            with self.coordinator.transaction() as txn:
                self.buy(txn, 30, 2)
                if abort_vote:
                    txn.execute("pg", "INSERT INTO ledger(account) VALUES (99)")
        except pact.PactError as e:
            return e
        return None

    # A lost prepare (or its vote) is asked again by the coordinator while
    # its prepare timeout lasts, or ends in an abort: either way both
    # participants end as the client was told, with nothing held.
    def test_a_lost_vote_ends_the_same_in_both_as_told(self):
        self.proxy.lose_reply("prepare", "prepareBatch")
        told = self.purchase()
        self.assertEqual(len(self.proxy.lost), 1)
        self.wait_settled()
        self.assert_as_told(told, 30, 2)

    def test_a_lost_prepare_ends_the_same_in_both_as_told(self):
        self.proxy.lose_request("prepare", "prepareBatch")
        told = self.purchase()
        self.assertEqual(len(self.proxy.lost), 1)
        self.wait_settled()
        self.assert_as_told(told, 30, 2)

    def test_a_lost_commit_acknowledgement_is_asked_again_and_commits_once(self):
        self.proxy.lose_reply("commit", "commitBatch")
        self.assertIsNone(self.purchase())
        self.assertEqual(len(self.proxy.lost), 1)
        self.wait_settled()
        self.assert_bought(30, 2)  # confirmed once: the repeat found it committed

    def test_a_lost_commit_is_sent_again_and_commits(self):
        self.proxy.lose_request("commit", "commitBatch", times=2)
        self.assertIsNone(self.purchase())
        self.assertEqual(len(self.proxy.lost), 2)
        self.wait_settled()
        self.assert_bought(30, 2)

    def test_a_lost_rollback_acknowledgement_still_gives_the_stock_back(self):
        self.proxy.lose_reply("rollback", "rollbackBatch")
        self.assertIsInstance(self.purchase(abort_vote=True), pact.Aborted)
        self.assertEqual(len(self.proxy.lost), 1)
        self.wait_settled()
        self.assert_nothing_bought()

    def test_a_lost_statement_reply_can_only_roll_back(self):
        self.proxy.lose_reply("execute")
        told = self.purchase()
        self.assertIsInstance(told, pact.Unavailable)  # the reserve may or may not have run
        self.assertEqual(self.proxy.lost, [("reply", "execute")])
        self.wait_settled()
        self.assert_nothing_bought()
        self.assertIsNone(self.purchase())  # and the next purchase is unaffected
        self.assert_bought(30, 2)

    def test_a_second_service_on_the_same_store_is_refused(self):
        from harness import PYTHON, INVENTORY_SERVICE, free_port
        import subprocess
        ran = subprocess.run([PYTHON, INVENTORY_SERVICE, "--name=inventory",
                              "--port=%d" % free_port(),
                              "--coordinator=" + self.cluster.coordinators,
                              "--store=" + self.cluster.store_path("inventory")],
                             capture_output=True, text=True, timeout=30,
                             env=self.cluster.processes["inventory"].env)
        self.assertEqual(ran.returncode, 2, ran.stderr)
        self.assertIn("another process serves the store", ran.stderr)
        self.assertIsNone(self.purchase())  # the first one serves on
        self.assert_bought(30, 2)


class HighlyAvailableShopTest(ShopTest):
    """The shop over a shard of two coordinators (an active and a standby over
    a standalone ZooKeeper). The service and the client are given the
    standby's address first, so each follows NOT_LEADER from the start."""

    def setUp(self):
        super().setUp()
        zookeeper = self.cluster.start_zookeeper()
        self.cluster.start_coordinator(
            "c1a", zookeeper=zookeeper, env={"PACT_CRASH_POINT": "after_decision_logged"})
        self.cluster.start_coordinator("c1b", zookeeper=zookeeper, wait_ready=False)
        self.cluster.coordinator_ports.reverse()  # the standby first
        self.start_pg()
        self.start_inventory()

    def test_the_active_dies_after_its_decision_and_the_standby_finishes_it(self):
        coordinator = self.connect()
        txn = coordinator.begin()
        self.buy(txn, 30, 2)
        told = None
        try:
            txn.commit()  # c1a records COMMIT in ZooKeeper and dies (exit 86)
        except pact.Unknown as e:
            told = e
        self.assertEqual(self.cluster.processes["c1a"].wait(10), 86)
        # c1b takes over, loads the decision and re-drives the commit at
        # both participants; the service learned the new active by itself.
        self.wait_settled(30)
        self.assert_bought(30, 2)
        self.assertEqual(self.connect().state(txn.id), "COMMITTED")
        self.assertTrue(told is None or told.txn_id == txn.id)
        with self.connect().transaction() as again:  # and the shop sells on
            self.buy(again, 1, 1, account=2)
        self.assertEqual(self.stock(), (INITIAL_STOCK - 3, 0))


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
