"""The Python client against real processes: a pact-coordinator and two
SQLite participants (bank_a, bank_b), open, with tokens, with mutual TLS, and
a highly available shard (active and standby over ZooKeeper)."""

import signal
import time
import unittest

import pact
from harness import Cluster, ClusterTestCase, wait_until

# bank_b's ledger row for an account that does not exist fails its deferred
# foreign key at prepare: bank_b votes ABORT.
LEDGER_SCHEMA = """
CREATE TABLE accounts (id INTEGER PRIMARY KEY, balance INTEGER NOT NULL CHECK (balance >= 0));
INSERT INTO accounts VALUES (1, 100), (2, 100), (3, 100);
CREATE TABLE ledger (id INTEGER PRIMARY KEY, account INTEGER NOT NULL
                     REFERENCES accounts(id) DEFERRABLE INITIALLY DEFERRED);
"""
DEBIT = "UPDATE accounts SET balance = balance - ?1 WHERE id = ?2"
CREDIT = "UPDATE accounts SET balance = balance + ?1 WHERE id = ?2"


class BankTest(ClusterTestCase):
    security = "open"

    def setUp(self):
        self.cluster = Cluster(self.security)
        self.addCleanup(self.cluster.close)
        self.start_cluster()
        self.coordinator = self.connect()
        self.addCleanup(self.coordinator.close)

    def start_cluster(self):
        self.cluster.start_coordinator()
        for bank in ("bank_a", "bank_b"):
            self.cluster.start_sqlite_participant(bank, LEDGER_SCHEMA)

    def connect(self, **options):
        return pact.connect(self.cluster.coordinators,
                            **dict(self.cluster.client_options(), **options))

    def balances(self, account=1):
        return (self.cluster.balance("bank_a", account), self.cluster.balance("bank_b", account))

    def transfer(self, txn, amount, account=1):
        self.assertEqual(txn.execute("bank_a", DEBIT, [amount, account]).affected_rows, 1)
        self.assertEqual(txn.execute("bank_b", CREDIT, [amount, account]).affected_rows, 1)

    def assert_nothing_open(self):
        for bank in ("bank_a", "bank_b"):
            wait_until(lambda: not self.cluster.open_branches(bank), 10,
                       bank + " holds no branch")


class ClientTest(BankTest):
    def test_commits_on_leaving_the_block(self):
        with self.coordinator.transaction(timeout_ms=10000) as txn:
            self.transfer(txn, 30)
        self.assertEqual(self.balances(), (70, 130))
        self.assertEqual(self.coordinator.state(txn.id), "COMMITTED")
        self.assert_nothing_open()

    def test_reads_come_back_as_python_values(self):
        with self.coordinator.transaction() as txn:
            rows = txn.execute("bank_a", "SELECT id, balance, 'x', X'00ff', NULL, 2.5 FROM "
                               "accounts WHERE id = ?1", [2])
        self.assertEqual(rows.columns[:2], ["id", "balance"])
        self.assertEqual(rows.rows, [[2, 100, "x", b"\x00\xff", None, 2.5]])

    def test_an_exception_in_the_block_rolls_back(self):
        class Refused(Exception):
            pass
        with self.assertRaises(Refused):
            with self.coordinator.transaction() as txn:
                self.transfer(txn, 30)
                raise Refused("the application changed its mind")
        self.assertEqual(self.balances(), (100, 100))
        self.assertEqual(self.coordinator.state(txn.id), "ABORTED")
        self.assert_nothing_open()
        with self.assertRaises(pact.FailedPrecondition):
            txn.execute("bank_a", DEBIT, [1, 1])

    def test_an_abort_vote_raises_aborted(self):
        with self.assertRaises(pact.Aborted) as raised:
            with self.coordinator.transaction() as txn:
                self.transfer(txn, 30)
                txn.execute("bank_b", "INSERT INTO ledger(account) VALUES (99)")
        self.assertNotIsInstance(raised.exception, pact.TimedOut)
        self.assertEqual(raised.exception.txn_id, txn.id)
        self.assertEqual(self.balances(), (100, 100))
        self.assert_nothing_open()

    def test_a_statement_error_is_typed_and_the_transaction_goes_on(self):
        with self.coordinator.transaction() as txn:
            with self.assertRaises(pact.InvalidArgument):
                txn.execute("bank_a", "UPDATE nowhere SET x = 1")
            self.transfer(txn, 5)
        self.assertEqual(self.balances(), (95, 105))
        with self.assertRaises(pact.NotFound):
            with self.coordinator.transaction() as txn:
                txn.execute("bank_z", DEBIT, [1, 1])

    def test_past_its_deadline_raises_timed_out(self):
        txn = self.coordinator.begin(timeout_ms=400)
        self.transfer(txn, 30)
        time.sleep(0.6)
        with self.assertRaises(pact.TimedOut) as raised:
            txn.commit()
        self.assertIsInstance(raised.exception, pact.Aborted)
        self.assertEqual(self.balances(), (100, 100))
        self.assert_nothing_open()

    def test_values_other_than_int_float_str_bytes_none_are_refused(self):
        with self.coordinator.transaction() as txn:
            for bad in (True, {"a": 1}, [1], 2 ** 63, object(), 1 + 2j):
                with self.assertRaises(pact.InvalidArgument, msg=repr(bad)):
                    txn.execute("bank_a", DEBIT, [bad, 1])
            with self.assertRaises(pact.InvalidArgument):
                txn.execute("bank_a", DEBIT, "12")  # params must be a sequence
            self.transfer(txn, 1)  # nothing was sent: the transaction commits
        self.assertEqual(self.balances(), (99, 101))
        with self.coordinator.transaction() as txn:  # the edges that fit do bind
            rows = txn.execute("bank_a", "SELECT ?1, ?2, ?3", [2 ** 63 - 1, -2 ** 63, ""])
        self.assertEqual(rows.rows, [[2 ** 63 - 1, -2 ** 63, ""]])

    def test_unknown_outcome_carries_the_id_to_ask_about(self):
        coordinator = self.connect(commit_budget_ms=600, call_timeout_ms=300)
        self.addCleanup(coordinator.close)
        txn = coordinator.begin(timeout_ms=20000)
        self.transfer(txn, 30)
        c1 = self.cluster.processes["c1"]
        c1.signal(signal.SIGSTOP)  # a frozen coordinator: the answer never comes
        try:
            with self.assertRaises(pact.Unknown) as raised:
                txn.commit()
        finally:
            c1.signal(signal.SIGCONT)
        self.assertIsInstance(raised.exception, pact.Unavailable)
        self.assertEqual(raised.exception.txn_id, txn.id)
        with self.assertRaises(pact.FailedPrecondition):
            txn.commit()
        # Once the coordinator answers, the id tells what became of it, and
        # the data agrees with what it tells.
        state = [None]

        def decided():
            state[0] = self.coordinator.state(txn.id)
            return state[0] in ("COMMITTED", "ABORTED")
        wait_until(decided, 20, "the transaction is decided")
        self.assertEqual(self.balances(), (70, 130) if state[0] == "COMMITTED" else (100, 100))
        self.assert_nothing_open()

    def test_a_replaced_coordinator_run_raises_fenced(self):
        txn = self.coordinator.begin(timeout_ms=20000)
        txn.execute("bank_a", DEBIT, [30, 1])
        # The coordinator crashes and comes back with a higher epoch: the
        # transaction's id is of the run that is gone, and bank_a's branch of
        # it was rolled back at recovery.
        self.cluster.processes["c1"].kill()
        self.cluster.start_coordinator()
        with self.assertRaises(pact.Fenced) as raised:
            txn.execute("bank_b", CREDIT, [30, 1])
        self.assertIsInstance(raised.exception, pact.Aborted)
        with self.assertRaises(pact.Aborted):
            txn.commit()
        self.assertEqual(self.balances(), (100, 100))
        self.assert_nothing_open()
        with self.coordinator.transaction() as again:  # a fresh id works
            self.transfer(again, 10)
        self.assertEqual(self.balances(), (90, 110))

    def test_one_coordinator_object_serves_many_threads(self):
        import threading
        told = []

        def transfers(account):
            for _ in range(10):
                try:
                    with self.coordinator.transaction() as txn:
                        self.transfer(txn, 1, account)
                    told.append("committed")
                except pact.PactError as e:  # two threads on one row may time out on its lock
                    told.append(e)
        threads = [threading.Thread(target=transfers, args=(1 + i % 3,)) for i in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        committed = told.count("committed")
        self.assertGreater(committed, 0, told)
        self.assertTrue(all(t == "committed" or isinstance(t, pact.Aborted) for t in told), told)
        moved = sum(100 - self.cluster.balance("bank_a", a) for a in (1, 2, 3))
        received = sum(self.cluster.balance("bank_b", a) - 100 for a in (1, 2, 3))
        self.assertEqual((moved, received), (committed, committed))
        self.assert_nothing_open()

    def test_a_dead_address_in_the_list_is_passed_over(self):
        from harness import free_port
        coordinator = pact.connect("127.0.0.1:%d,%s" % (free_port(), self.cluster.coordinators),
                                   **self.cluster.client_options())
        self.addCleanup(coordinator.close)
        with coordinator.transaction() as txn:
            self.transfer(txn, 10)
        self.assertEqual(self.balances(), (90, 110))


class TokensTest(BankTest):
    security = "tokens"

    def test_commits_with_the_application_token(self):
        with self.coordinator.transaction() as txn:
            self.transfer(txn, 30)
        self.assertEqual(self.balances(), (70, 130))

    def test_strangers_and_wrong_roles_are_refused(self):
        stranger = pact.connect(self.cluster.coordinators)
        self.addCleanup(stranger.close)
        with self.assertRaises(pact.Unauthenticated):
            stranger.begin()
        forger = pact.connect(self.cluster.coordinators, token="not-a-token-of-this-cluster")
        self.addCleanup(forger.close)
        with self.assertRaises(pact.Unauthenticated):
            forger.begin()
        from pact.transport import load_token
        participant = pact.connect(self.cluster.coordinators,
                                   token=load_token(self.cluster.tokens_path, "participant"))
        self.addCleanup(participant.close)
        with self.assertRaises(pact.PermissionDenied):
            participant.begin()
        self.assertEqual(self.balances(), (100, 100))


class TlsTest(BankTest):
    security = "tls"

    def test_commits_over_mutual_tls(self):
        with self.coordinator.transaction() as txn:
            self.transfer(txn, 30)
        self.assertEqual(self.balances(), (70, 130))

    def test_a_certificate_without_the_application_role_is_refused(self):
        self.cluster.make_certificates("intruder:participant")
        intruder = pact.connect(self.cluster.coordinators,
                                **self.cluster.client_options("intruder"))
        self.addCleanup(intruder.close)
        with self.assertRaises(pact.PermissionDenied):
            intruder.begin()
        operator = self.connect(**self.cluster.client_options("operator"))
        self.addCleanup(operator.close)
        with self.assertRaises(pact.PermissionDenied):
            operator.begin()

    def test_a_server_without_the_coordinators_certificate_is_not_believed(self):
        # Someone holding an application certificate of the same CA listens
        # where the client expects the coordinator and would answer anything.
        from pact.server import ThriftServer
        from pact.transport import Security
        from pact_rpc import Coordinator
        import threading

        class Liar:
            def reserveTxnIds(self, count):
                raise AssertionError("the client called an impostor")
        impostor = ThriftServer(Coordinator.Processor(Liar()), "127.0.0.1", 0,
                                security=Security(**self.cluster.tls_files("app")))
        threading.Thread(target=impostor.serve_forever, daemon=True).start()
        self.addCleanup(impostor.stop)
        client = pact.connect("127.0.0.1:%d" % impostor.port, **self.cluster.client_options())
        self.addCleanup(client.close)
        with self.assertRaises(pact.Unauthenticated) as raised:
            client.begin()
        self.assertIn("coordinator", str(raised.exception))

    def test_no_certificate_no_service(self):
        plain = pact.connect(self.cluster.coordinators, call_timeout_ms=2000)
        self.addCleanup(plain.close)
        with self.assertRaises(pact.Unavailable):
            plain.begin()


class HighlyAvailableTest(BankTest):
    """An active and a standby of shard c1 over a standalone ZooKeeper; the
    client is given the standby's address first."""

    def start_cluster(self):
        zookeeper = self.cluster.start_zookeeper()
        self.cluster.start_coordinator("c1a", zookeeper=zookeeper)
        self.cluster.start_coordinator("c1b", zookeeper=zookeeper, wait_ready=False)
        wait_until(lambda: self._standby_answers("c1b"), 30, "the standby answers")
        self.cluster.coordinator_ports.reverse()  # the standby first
        for bank in ("bank_a", "bank_b"):
            self.cluster.start_sqlite_participant(bank, LEDGER_SCHEMA)

    def _standby_answers(self, name):
        try:
            self.cluster.coordinator_info(name)
            return True
        except pact.NotLeader:
            return True
        except Exception:
            return False

    def test_follows_not_leader_to_the_active_and_the_next_active_after_a_kill(self):
        with self.assertRaises(pact.NotLeader) as raised:
            self.cluster.coordinator_info("c1b")
        self.assertTrue(raised.exception.leader.endswith(":%d" % self.cluster.ports["c1a"]))

        with self.coordinator.transaction() as txn:
            self.transfer(txn, 10)
        self.assertEqual(self.balances(), (90, 110))

        self.cluster.processes["c1a"].kill()
        committed = [False]

        def commits_again():
            try:
                with self.coordinator.transaction() as txn:
                    self.transfer(txn, 10, account=2)
                committed[0] = True
            except pact.Unknown:  # it may have committed: look, never transfer twice
                self.assert_nothing_open()
                committed[0] = self.balances(2) == (90, 110)
            except (pact.Unavailable, pact.Aborted):
                pass
            return committed[0]
        wait_until(commits_again, 20, "the standby took over and commits")
        self.assertEqual(self.balances(2), (90, 110))


if __name__ == "__main__":
    unittest.main()
