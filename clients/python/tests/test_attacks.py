"""Attacks on the Python client (pact/) and the Python inventory participant
(examples/inventory_service.py), with real processes over real sockets:
races, duplicates out of order, kills under load, a failing store, odd ids
and timeouts, strangers holding connections. Each test checks a guarantee
users rely on; one whose attack once succeeded says what it found."""

import contextlib
import os
import random
import socket
import sqlite3
import subprocess
import tempfile
import threading
import time
import unittest

import pact
from pact_rpc import Participant
from pact_rpc.ttypes import BranchState, PrepareItem, Value, ValueType, Vote

from harness import Cluster, ClusterTestCase, StoreFile, wait_until
from pact import errors, server, transport

DEBIT = "UPDATE accounts SET balance = balance - ? WHERE id = ?"
STOCK = 1000


def text(s):
    return Value(type=ValueType.TEXT, text_value=s)


def integer(n):
    return Value(type=ValueType.INTEGER, integer_value=n)


class AttackTest(ClusterTestCase):
    """A coordinator, the inventory service "inv" (widget: STOCK) and a
    SQLite bank "bank" (accounts 1..3 at 100), fresh for each test."""

    inventory_flags = ()
    security = "open"

    def setUp(self):
        self.cluster = Cluster(self.security)
        self.addCleanup(self.cluster.close)
        self.cluster.start_coordinator()
        self.cluster.start_sqlite_participant("bank")
        self.start_inventory()
        self.app = self.cluster.participant_pool_as("inv", "app", "application")
        self.coord_client = self.cluster.participant_pool_as("inv", "c1", "coordinator")
        self.coordinator_pool = self.cluster.coordinator_pool()
        for pool in (self.app, self.coord_client, self.coordinator_pool):
            self.addCleanup(pool.close)

    def start_inventory(self, env=None):
        return self.cluster.start_inventory("inv", {"widget": STOCK}, env,
                                            flags=self.inventory_flags)

    def connect(self, **options):
        coordinator = pact.connect(self.cluster.coordinators,
                                   **dict(self.cluster.client_options(), **options))
        self.addCleanup(coordinator.close)
        return coordinator

    def store_path(self):
        return self.cluster.store_path("inv")

    def stock(self):
        return StoreFile(self.store_path()).item("widget")

    def reservations(self):
        return len(StoreFile(self.store_path()).reservations())

    def balance(self, account=1):
        return self.cluster.balance("bank", account)

    def settled(self):
        try:
            return (not any(self.cluster.open_branches(p) for p in self.cluster.ports
                            if p in ("inv", "inv2", "bank"))
                    and self.reservations() == 0)
        except pact.PactError:
            return False

    def wait_settled(self, timeout_s=30):
        wait_until(self.settled, timeout_s, "nothing open or reserved anywhere")

    def assert_atomic(self, price, quantity):
        """Every purchase (bank debit of price, inventory reserve of
        quantity) went both ways or neither: the two sides count the same."""
        bought_by_bank = (100 - self.balance()) // price
        self.assertEqual((100 - self.balance()) % price, 0)
        self.assertEqual(self.stock(), (STOCK - quantity * bought_by_bank, 0))
        self.assertEqual(self.reservations(), 0)
        return bought_by_bank

    @contextlib.contextmanager
    def buyers(self, threads=4):
        """Threads buying (a debit of 1 at the bank, one widget at inv) while
        the block runs; yields what they were told, counted."""
        coordinator = self.connect(commit_budget_ms=8000)
        told = {"committed": 0, "unknown": 0, "aborted": 0}
        stop, mu = threading.Event(), threading.Lock()

        def buyer():
            while not stop.is_set():
                try:
                    with coordinator.transaction(timeout_ms=5000) as txn:
                        txn.execute("bank", DEBIT, [1, 1])
                        txn.execute("inv", "reserve", ["widget", 1])
                    what = "committed"
                except pact.Unknown:
                    what = "unknown"
                except pact.PactError:
                    what = "aborted"
                    time.sleep(0.05)
                with mu:
                    told[what] += 1
        running = [threading.Thread(target=buyer) for _ in range(threads)]
        for t in running:
            t.start()
        try:
            yield told
        finally:
            stop.set()
            for t in running:
                t.join(60)

    def assert_as_told(self, told):
        """Once settled, both sides count the same, and what was bought lies
        between what was told COMMITTED and that plus the unknown."""
        self.wait_settled(40)
        bought = self.assert_atomic(1, 1)
        self.assertGreaterEqual(bought, told["committed"], told)
        self.assertLessEqual(bought, told["committed"] + told["unknown"], told)

    def begin_id(self):
        return self.coordinator_pool.call(lambda c: c.beginTxn(30000)).txn_id

    def reserve(self, txn_id, qty, timeout_ms=30000):
        return self.app.call(lambda c: c.execute(txn_id, "reserve",
                                                 [text("widget"), integer(qty)], timeout_ms))


class _PausingLock:
    """Stands in for Coordinator._lock: the chosen thread's first release
    stops there until told to go on, so another thread runs in between."""

    def __init__(self):
        self._lock = threading.Lock()
        self.target = None
        self.paused, self.go = threading.Event(), threading.Event()

    def __enter__(self):
        self._lock.acquire()

    def __exit__(self, *exc):
        self._lock.release()
        if threading.current_thread() is self.target and not self.paused.is_set():
            self.paused.set()
            self.go.wait(10)


class ClientIdBlockTest(AttackTest):

    # Found: _next_id checked that the block was usable under the lock,
    # released it, then took ids.next under the lock again without checking:
    # a thread that lost the race took an id past the block's end, which the
    # next block handed out again (told COMMITTED for a debit that rolled back).
    def test_two_transactions_begun_concurrently_never_share_an_id(self):
        coordinator = self.connect(id_block=2)
        lock = coordinator._lock = _PausingLock()
        first = coordinator.begin(10000)          # block [s, s+2): s taken, s+1 left
        begun = {}
        lock.target = threading.Thread(target=lambda: begun.setdefault(
            "paused", coordinator.begin(10000)))
        lock.target.start()                       # sees s+1 usable, then pauses
        self.assertTrue(lock.paused.wait(10))
        second = coordinator.begin(10000)         # takes s+1 meanwhile
        lock.go.set()
        lock.target.join(10)
        third = coordinator.begin(10000)          # a new block
        ids = [first.id, second.id, begun["paused"].id, third.id]
        if len(set(ids)) < len(ids):
            # What it costs: two transactions under one id. The second to
            # commit is told COMMITTED, but its own work was never committed.
            shared = begun["paused"]
            shared.execute("inv", "reserve", ["widget", 3])
            third.execute("bank", DEBIT, [30, 1])
            shared.commit()
            third.commit()
            told_committed = "third told COMMITTED"
            wait_until(lambda: not self.cluster.open_branches("bank"), 40,
                       "the bank's branch ended")
            self.assertEqual((told_committed, self.balance()), (told_committed, 70),
                             "told COMMITTED, but the debit rolled back")
        self.assertEqual(len(set(ids)), len(ids), "ids handed out twice: %s" % ids)


class ClientResourceTest(AttackTest):

    # Found: Connection.looks_alive used select.select, which raises
    # ValueError for a descriptor >= 1024: in a process with many files open,
    # every call that would reuse a pooled connection raised ValueError (not
    # a PactError) and left the transaction open.
    def test_a_process_with_many_open_files_can_still_commit(self):
        files = [open(os.devnull) for _ in range(1100)]
        self.addCleanup(lambda: [f.close() for f in files])
        coordinator = self.connect()
        outcomes = []
        for _ in range(2):
            try:
                with coordinator.transaction(timeout_ms=10000) as txn:
                    txn.execute("inv", "reserve", ["widget", 1])
                outcomes.append("committed")
            except Exception as e:  # noqa: BLE001 - what the user sees is the point
                outcomes.append(repr(e))
        self.assertEqual(outcomes, ["committed", "committed"])

    # Found: a budget meant as "keep trying" (float("inf")) reached the
    # socket's timeout as is and commit raised OverflowError, with nothing
    # sent and the transaction left open. Options are now checked at connect.
    def test_an_endless_commit_budget_commits_or_is_refused_at_connect(self):
        try:
            coordinator = self.connect(commit_budget_ms=float("inf"))
        except pact.InvalidArgument:
            return
        try:
            with coordinator.transaction(timeout_ms=10000) as txn:
                txn.execute("inv", "reserve", ["widget", 1])
            told = "committed"
        except Exception as e:  # noqa: BLE001
            told = repr(e)
        self.assertEqual(told, "committed")


class ConcurrencyTest(AttackTest):

    def test_concurrent_purchases_of_more_than_the_stock_end_alike_everywhere(self):
        """Held: 8 transactions each reserve 2 of the last 5 widgets (every
        statement passes: nothing is reserved while active), then all commit
        at once: prepares and commits of one sku race; each side counts the same."""
        self.reserve_all_but(5)
        self.cluster.start_inventory("inv2", {"widget": 100})  # the bank allows one writer
        coordinator = self.connect()
        txns = []
        for _ in range(8):
            txn = coordinator.begin(20000)
            txn.execute("inv2", "reserve", ["widget", 1])
            txn.execute("inv", "reserve", ["widget", 2])
            txns.append(txn)
        told, start = [], threading.Barrier(len(txns))

        def commit(txn):
            start.wait()
            try:
                txn.commit()
                told.append("committed")
            except pact.PactError as e:
                told.append(e)
        threads = [threading.Thread(target=commit, args=(t,)) for t in txns]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        self.wait_settled()
        committed = told.count("committed")
        self.assertTrue(1 <= committed <= 2, told)
        self.assertEqual(StoreFile(self.cluster.store_path("inv2")).item("widget"),
                         (100 - committed, 0))
        self.assertEqual(self.stock(), (5 - 2 * committed, 0))
        self.assertTrue(all(isinstance(t, pact.Aborted) for t in told if t != "committed"),
                        told)

    def reserve_all_but(self, left):
        """Sells all but `left` widgets."""
        txn = self.begin_id()
        opening = self.reserve(txn, STOCK - left).branch
        fence = self.cluster.fence()
        self.assertEqual(self.coord_client.call(lambda c: c.prepare(fence, txn, opening)),
                         Vote.COMMIT)
        self.coord_client.call(lambda c: c.commit(fence, txn, False))

    def test_sigkill_of_the_service_under_load_keeps_both_sides_equal(self):
        """Held: 4 threads buy in a loop; the service is SIGKILLed at a
        random moment and restarted; once settled both sides count the same
        and no client was told COMMITTED for what did not commit."""
        self.kill_under_load("inv", self.start_inventory)

    def test_sigkill_of_the_coordinator_under_load_keeps_both_sides_equal(self):
        """Held: as above, the coordinator killed and restarted (a new epoch)."""
        self.kill_under_load("c1", self.cluster.start_coordinator)

    def kill_under_load(self, victim, restart):
        with self.buyers() as told:
            time.sleep(random.uniform(0.5, 2.0))
            self.cluster.processes[victim].kill()
            time.sleep(0.3)
            restart()
            time.sleep(1.0)
        self.assert_as_told(told)
        self.assertGreater(told["committed"], 0, told)


class InterruptTest(AttackTest):

    def test_keyboard_interrupt_in_the_with_block_rolls_back(self):
        """Held: a BaseException leaving the block rolls back; nothing held."""
        coordinator = self.connect()
        with self.assertRaises(KeyboardInterrupt):
            with coordinator.transaction(timeout_ms=30000) as txn:
                txn.execute("bank", DEBIT, [10, 1])
                txn.execute("inv", "reserve", ["widget", 4])
                raise KeyboardInterrupt()
        self.assertEqual(coordinator.state(txn.id), "ABORTED")
        self.wait_settled(5)
        self.assert_atomic(10, 4)
        self.assertEqual(self.balance(), 100)

    def test_keyboard_interrupt_during_execute_leaves_nothing_held(self):
        """Held: interrupted while the statement is on the wire (the reply is
        never read); the with block rolls back what may have opened."""
        coordinator = self.connect()
        real_call = transport.Pool.call

        def interrupted(pool, fn, *args, **kwargs):
            if pool.address.endswith(":%d" % self.cluster.ports["inv"]):
                real_call(pool, fn, *args, **kwargs)  # it ran; its answer is dropped
                raise KeyboardInterrupt()
            return real_call(pool, fn, *args, **kwargs)
        with self.assertRaises(KeyboardInterrupt):
            with coordinator.transaction(timeout_ms=30000) as txn:
                txn.execute("bank", DEBIT, [10, 1])
                transport.Pool.call = interrupted
                try:
                    txn.execute("inv", "reserve", ["widget", 4])
                finally:
                    transport.Pool.call = real_call
        self.wait_settled(5)
        self.assertEqual(self.balance(), 100)
        self.assertEqual(self.stock(), (STOCK, 0))


class PeerApplicationTest(AttackTest):
    """Mutual TLS: the victim is "app", the attacker "app2", both O=application."""

    security = "tls"

    # README "Security model" lets an application abandon only "its own
    # branch, by its opening's name". One execute of its own tells another
    # application how openings are named ("<run id>.<counter>.<random>");
    # it tries the neighbouring counters, with and without its own random
    # part. (Found when openings were "<run id>.<counter>": the victim's
    # branch was abandoned and its commit refused.)
    def test_another_application_cannot_abandon_my_branch_by_guessing_its_name(self):
        coordinator = self.connect()
        victim = coordinator.begin(20000)
        victim.execute("inv", "reserve", ["widget", 2])
        self.cluster.make_certificates("app2:application")
        attacker = self.cluster.participant_pool_as("inv", "app2", "application")
        attacker_coordinator = self.cluster.coordinator_pool(client="app2")
        for pool in (attacker, attacker_coordinator):
            self.addCleanup(pool.close)
        mine = attacker_coordinator.call(lambda c: c.beginTxn(30000)).txn_id
        run, counter, suffix = attacker.call(lambda c: c.execute(
            mine, "available", [text("widget")], 0)).branch.split(".")
        prefix, seq = mine.rsplit(".", 1)
        for guess_seq in range(max(1, int(seq) - 200), int(seq)):
            for guess in range(max(1, int(counter) - 3), int(counter)):
                for opening in ("%s.%d" % (run, guess), "%s.%d.%s" % (run, guess, suffix)):
                    try:
                        attacker.call(lambda c: c.abandon("%s.%d" % (prefix, guess_seq),
                                                          opening))
                    except errors.PermissionDenied:
                        pass
        try:
            victim.commit()
            told = "committed"
        except pact.PactError as e:
            told = e
        self.assertEqual(told, "committed")
        self.assertEqual(self.stock(), (STOCK - 2, 0))


class DuplicateMessageTest(AttackTest):

    def test_prepare_arriving_after_its_rollback_reserves_nothing(self):
        """Held: rollback first, then the delayed prepare with the right opening."""
        txn = self.begin_id()
        opening = self.reserve(txn, 7).branch
        fence = self.cluster.fence()
        self.coord_client.call(lambda c: c.rollback(fence, txn))
        with self.assertRaises(errors.Aborted):
            self.coord_client.call(lambda c: c.prepare(fence, txn, opening))
        [answer] = self.coord_client.call(lambda c: c.prepareBatch(
            fence, [PrepareItem(txn_id=txn, branch=opening)]))
        self.assertEqual((answer.vote, errors.from_wire(answer.error).code_name),
                         (None, "ABORTED"))
        with self.assertRaises(errors.FailedPrecondition):
            self.reserve(txn, 1)  # a late statement opens nothing
        self.assertEqual((self.stock(), self.reservations()), ((STOCK, 0), 0))

    def test_commit_repeated_after_a_restart_moves_stock_once(self):
        """Held: a prepared branch commits, the service restarts, the commit
        comes again (single and batch), then a stray rollback."""
        txn = self.begin_id()
        opening = self.reserve(txn, 3).branch
        fence = self.cluster.fence()
        self.coord_client.call(lambda c: c.prepare(fence, txn, opening))
        self.coord_client.call(lambda c: c.commit(fence, txn, False))
        self.cluster.processes["inv"].kill()
        self.start_inventory()
        self.coord_client.call(lambda c: c.commit(fence, txn, False))
        answers = self.coord_client.call(lambda c: c.commitBatch(fence, [txn, txn]))
        self.assertEqual([a.error for a in answers], [None, None])
        self.coord_client.call(lambda c: c.rollback(fence, txn))
        self.assertEqual(self.stock(), (STOCK - 3, 0))

    def test_resolve_racing_the_commit_ends_in_one_way_and_says_so(self):
        """Held: an operator's heuristic rollback and the coordinator's commit
        of one prepared branch, concurrently, many times: the stock moved
        exactly for the commits that won, and a lost race is a reported mix."""
        fence = self.cluster.fence()
        operator = self.cluster.participant_pool("inv")
        self.addCleanup(operator.close)
        won_by_commit = 0
        for _ in range(10):
            txn = self.begin_id()
            opening = self.reserve(txn, 1).branch
            self.coord_client.call(lambda c: c.prepare(fence, txn, opening))
            results = {}

            def commit():
                pool = self.cluster.participant_pool_as("inv", "c1", "coordinator")
                try:
                    pool.call(lambda c: c.commit(fence, txn, False))
                    results["commit"] = "ok"
                except errors.PactError as e:
                    results["commit"] = e
                finally:
                    pool.close()
            t = threading.Thread(target=commit)
            t.start()
            try:
                operator.call(lambda c: c.resolve(txn, False))
                results["resolve"] = "ok"
            except errors.PactError as e:
                results["resolve"] = e
            t.join(10)
            if results["resolve"] == "ok":
                self.assertIsInstance(results["commit"], errors.HeuristicMixed, results)
                operator.call(lambda c: c.forgetHeuristic(txn))
            else:
                self.assertEqual(results["commit"], "ok", results)
                won_by_commit += 1
        self.assertEqual(self.stock(), (STOCK - won_by_commit, 0))
        self.assertEqual(self.reservations(), 0)


class StoreFailureTest(AttackTest):

    def test_a_locked_store_at_prepare_aborts_everywhere(self):
        """Held: another process holds the store's write lock for 3 s, past
        the coordinator's prepare timeout (2 s); the client is told ABORTED
        and the late prepare is cancelled."""
        coordinator = self.connect()
        blocker = sqlite3.connect(self.store_path(), isolation_level=None, timeout=10,
                                  check_same_thread=False)
        self.addCleanup(blocker.close)
        txn = coordinator.begin(20000)
        txn.execute("bank", DEBIT, [10, 1])
        txn.execute("inv", "reserve", ["widget", 4])
        blocker.execute("BEGIN IMMEDIATE")
        threading.Timer(3.0, lambda: blocker.execute("ROLLBACK")).start()
        with self.assertRaises(pact.Aborted):
            txn.commit()
        self.wait_settled(20)
        self.assertEqual((self.balance(), self.stock()), (100, (STOCK, 0)))


class FullDiskTest(AttackTest):
    """The inventory store on a 1 MiB tmpfs that a filler file fills."""

    @classmethod
    def setUpClass(cls):
        cls.mount = tempfile.mkdtemp(prefix="pact-attack-tmpfs-")
        ran = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", cls.mount],
                             capture_output=True)
        if ran.returncode != 0:
            os.rmdir(cls.mount)
            raise unittest.SkipTest("cannot mount a tmpfs here")
        cls.inventory_flags = ("--store=" + os.path.join(cls.mount, "inv.db"),)

    @classmethod
    def tearDownClass(cls):
        subprocess.run(["umount", "-l", cls.mount])
        os.rmdir(cls.mount)

    def setUp(self):
        for name in os.listdir(self.mount):
            os.unlink(os.path.join(self.mount, name))
        super().setUp()

    def store_path(self):
        return os.path.join(self.mount, "inv.db")

    def fill(self):
        path = os.path.join(self.mount, "filler")
        try:
            with open(path, "ab") as f:
                while True:
                    f.write(b"\0" * 4096)
                    f.flush()
        except OSError:
            pass  # full
        self.addCleanup(lambda: os.path.exists(path) and os.unlink(path))
        return path

    def test_full_disk_at_prepare_aborts_and_at_commit_retries_until_space(self):
        """Held: prepare on a full disk votes no (IO_ERROR) and the purchase
        aborts everywhere; a commit on a full disk stays prepared and is
        retried until space comes back; the service keeps serving."""
        coordinator = self.connect()
        filler = self.fill()
        with self.assertRaises(pact.PactError):
            with coordinator.transaction(timeout_ms=10000) as txn:
                txn.execute("bank", DEBIT, [10, 1])
                txn.execute("inv", "reserve", ["widget", 4])
        os.unlink(filler)
        self.wait_settled(20)
        self.assertEqual((self.balance(), self.stock()), (100, (STOCK, 0)))
        # The commit (phase two) on a full disk.
        txn_id = self.begin_id()
        opening = self.reserve(txn_id, 2).branch
        fence = self.cluster.fence()
        self.coord_client.call(lambda c: c.prepare(fence, txn_id, opening))
        filler = self.fill()
        try:
            self.coord_client.call(lambda c: c.commit(fence, txn_id, False))
            committed_on_full_disk = True
        except errors.IoError:
            committed_on_full_disk = False
        self.assertTrue(self.cluster.processes["inv"].running)
        os.unlink(filler)
        if not committed_on_full_disk:
            self.assertEqual([b.state for b in self.cluster.open_branches("inv")],
                             [BranchState.PREPARED])
            self.coord_client.call(lambda c: c.commit(fence, txn_id, False))
        self.assertEqual((self.stock(), self.reservations()), ((STOCK - 2, 0), 0))


class OddInputTest(AttackTest):

    # Found: parse_txn_id took str.isdigit as "int() can read it"; "²" is a
    # digit to isdigit but int("²") raises ValueError, which the handler did
    # not map: INTERNAL and a closed connection instead of INVALID_ARGUMENT.
    def test_a_txn_id_with_a_superscript_digit_is_an_invalid_argument(self):
        for txn_id in ("c1.1.\u00b2", "c1.\u00b9.5"):
            try:
                self.reserve(txn_id, 1)
                answer = "opened a branch"
            except errors.PactError as e:
                answer = e
            self.assertIsInstance(answer, errors.InvalidArgument, "%r: %r" % (txn_id, answer))
        self.assertEqual(self.app.call(lambda c: c.info()).name, "inv")

    # Found: one batch item's unexpected error failed the whole
    # rollbackBatch, and the items after it were never rolled back, against
    # pact.thrift's "one item's failure is never another's".
    def test_one_bad_batch_item_does_not_fail_the_others(self):
        txn = self.begin_id()
        opening = self.reserve(txn, 5).branch
        fence = self.cluster.fence()
        self.coord_client.call(lambda c: c.prepare(fence, txn, opening))
        try:
            answers = self.coord_client.call(lambda c: c.rollbackBatch(
                fence, ["c1.1.\u00b2", txn]))
        except errors.PactError as e:
            answers = e
        self.assertIsInstance(answers, list, "the whole batch failed: %r" % (answers,))
        self.assertIsNotNone(answers[0].error)
        self.assertIsNone(answers[1].error)
        self.assertEqual(self.stock(), (STOCK, 0))

    # Found: a statement without its sql (a Thrift string left unset)
    # reached sql.strip() as None: INTERNAL with the connection closed, and an
    # empty ACTIVE branch left until its deadline.
    def test_a_statement_without_sql_is_an_invalid_argument_and_opens_nothing(self):
        txn = self.begin_id()
        try:
            self.app.call(lambda c: c.execute(txn, None, [], 30000))
            answer = "ran"
        except errors.PactError as e:
            answer = e
        self.assertIsInstance(answer, errors.InvalidArgument)
        self.assertNotIn(txn, [b.txn_id for b in self.cluster.open_branches("inv")])

    # Found: a str with a lone surrogate failed in Thrift's UTF-8 encoding:
    # execute raised UnicodeEncodeError, outside the PactError family.
    def test_a_str_that_is_not_utf8_encodable_is_an_invalid_argument(self):
        coordinator = self.connect()
        txn = coordinator.begin(10000)
        try:
            txn.execute("inv", "reserve", ["wid\ud800get", 1])
            answer = "ran"
        except Exception as e:  # noqa: BLE001
            answer = e
        self.assertIsInstance(answer, pact.InvalidArgument, repr(answer))
        txn.rollback()

    def test_a_slow_transaction_survives_the_services_inquiries(self):
        """Held: 1.5 s between the statements and commit, while the service
        asks the coordinator about its active branch every 200 ms: the
        reserved, not yet committed id answers ACTIVE and nothing is dropped."""
        coordinator = self.connect()
        with coordinator.transaction(timeout_ms=10000) as txn:
            txn.execute("bank", DEBIT, [10, 1])
            txn.execute("inv", "reserve", ["widget", 4])
            time.sleep(1.5)
        self.assertEqual((self.balance(), self.stock()), (90, (STOCK - 4, 0)))

    def test_huge_and_negative_timeout_ms_are_bounded(self):
        """Held: i64 max is capped at --max_branch_timeout_ms, <= 0 takes
        the default; neither wedges the service."""
        huge, negative = self.begin_id(), self.begin_id()
        self.reserve(huge, 1, timeout_ms=(1 << 63) - 1)
        self.reserve(negative, 1, timeout_ms=-(1 << 63))
        deadlines = {b.txn_id: b.deadline_in_ms for b in self.cluster.open_branches("inv")}
        self.assertTrue(0 < deadlines[huge] <= 3600000, deadlines)
        self.assertTrue(0 < deadlines[negative] <= 30000, deadlines)

    def test_a_huge_client_timeout_is_refused_before_anything_is_sent(self):
        """Held: begin(timeout_ms) above the coordinator's maximum raises
        InvalidArgument; a negative one takes the default and commits."""
        coordinator = self.connect()
        with self.assertRaises(pact.InvalidArgument):
            coordinator.begin(1 << 62)
        with coordinator.transaction(timeout_ms=-5) as txn:
            txn.execute("inv", "reserve", ["widget", 1])
        self.assertEqual(self.stock(), (STOCK - 1, 0))

    def test_deadline_passing_between_prepare_and_commit_still_commits(self):
        """Held: a prepared branch has no deadline of its own any more."""
        txn = self.begin_id()
        opening = self.reserve(txn, 2, timeout_ms=500).branch
        fence = self.cluster.fence()
        self.coord_client.call(lambda c: c.prepare(fence, txn, opening))
        time.sleep(1.0)
        self.coord_client.call(lambda c: c.commit(fence, txn, False))
        self.assertEqual(self.stock(), (STOCK - 2, 0))


class StrangerConnectionsTest(unittest.TestCase):
    """pact.server.ThriftServer as the inventory service runs it (tokens),
    in this process, with a small connection cap (the service's is 1024)."""

    def setUp(self):
        handle, self.tokens = tempfile.mkstemp(prefix="pact-attack-tokens-")
        with os.fdopen(handle, "w") as f:
            f.write("operator %s\n" % os.urandom(16).hex())
        self.server = server.ThriftServer(
            Participant.Processor(_InfoHandler()), "127.0.0.1", 0,
            tokens_path=self.tokens, max_connections=4, idle_timeout_s=300)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.addCleanup(self.thread.join, 5)
        self.addCleanup(self.server.stop)
        self.addCleanup(os.unlink, self.tokens)

    # Found: a connection that never authenticated kept its slot under the
    # cap for the whole idle timeout, renewed by any frame: a stranger holding
    # max_connections sockets kept every coordinator and client out. At the
    # cap such a connection now makes room for a newcomer.
    def test_strangers_without_a_token_cannot_lock_out_the_token_holders(self):
        strangers = [socket.create_connection(("127.0.0.1", self.server.port))
                     for _ in range(4)]
        self.addCleanup(lambda: [s.close() for s in strangers])
        time.sleep(0.3)
        security = transport.Security.from_flags(auth_tokens_path=self.tokens, role="operator")
        pool = transport.participant_pool("127.0.0.1", self.server.port, security, None,
                                          connect_timeout_ms=1000, timeout_ms=1000)
        self.addCleanup(pool.close)
        try:
            answer = pool.call(lambda c: c.info()).name
        except errors.PactError as e:
            answer = e
        self.assertEqual(answer, "stranger-test", "the operator, holding its token, is out")


class _InfoHandler:
    def info(self):
        from pact_rpc.ttypes import ParticipantInfo
        try:
            server.require(*transport.ROLES, what="info")
        except errors.PactError as e:
            raise errors.to_wire(e)
        return ParticipantInfo(name="stranger-test", backend="test")

    def authenticate(self, token):
        try:
            server.authenticate(token)
        except errors.PactError as e:
            raise errors.to_wire(e)


if __name__ == "__main__":
    unittest.main()
