"""The inventory participant (examples/inventory_service.py) against a real
pact-coordinator, over real sockets: TCC moves checked in the store's own
tables, idempotence, fencing, roles, bad frames, and crashes."""

import shutil
import signal
import socket
import struct
import threading
import time
import unittest

from pact_rpc import Participant
from pact_rpc import constants as rpc_constants
from pact_rpc.ttypes import (BranchState, EnlistedBranch, Fence, Outcome, ParticipantInfo,
                             PrepareItem, TxnState, Value, ValueType, Vote)

from harness import Cluster, ClusterTestCase, StoreFile, wait_until
from pact import errors, server, transport

CRASH_EXIT_CODE = 86
# The inquiry interval these tests were timed with (the harness's is 200 ms):
# test_kill_after_prepare_... waits through inquiries that must decide nothing.
INQUIRY_FLAGS = ("--inquiry_interval_ms=300",)


def text(s):
    return Value(type=ValueType.TEXT, text_value=s)


def integer(n):
    return Value(type=ValueType.INTEGER, integer_value=n)


class ServiceTest(ClusterTestCase):
    """One coordinator and one inventory service (widget: 10, gadget: 5)
    for the whole class; each test begins its own transactions."""

    security = "open"

    @classmethod
    def setUpClass(cls):
        cls.cluster = Cluster(cls.security)
        cls.addClassCleanup(cls.cluster.close)
        cls.cluster.start_coordinator()
        cls.coordinator = cls.cluster.coordinator_pool()
        cls.cluster.start_inventory("inv", stock={"widget": 10, "gadget": 5},
                                    flags=INQUIRY_FLAGS)
        cls.inv = StoreFile(cls.cluster.store_path("inv"))
        cls.app = cls.cluster.participant_pool_as("inv", "app", "application")
        cls.coord_client = cls.cluster.participant_pool_as("inv", "c1", "coordinator")

    @classmethod
    def tearDownClass(cls):
        for pool in (cls.app, cls.coord_client, cls.coordinator):
            pool.close()
        codes = (cls.cluster.processes["inv"].stop(), cls.cluster.processes["c1"].stop())
        assert codes == (0, 0), "unclean stop: %s" % (codes,)

    def begin(self):
        return self.coordinator.call(lambda c: c.beginTxn(30000)).txn_id

    def reserve(self, txn_id, sku, qty, pool=None):
        return (pool or self.app).call(
            lambda c: c.execute(txn_id, "reserve", [text(sku), integer(qty)], 30000))

    def available(self, sku):
        result = self.app.call(lambda c: c.execute(self.begin(), "available", [text(sku)], 0))
        return [v.integer_value for v in result.rows[0][1:]]

    def call(self, fn):
        return self.coord_client.call(fn)


class InventoryTccTest(ServiceTest):

    def test_prepare_reserves_and_commit_confirms_each_idempotent(self):
        before = self.inv.item("widget")
        txn = self.begin()
        first = self.reserve(txn, "widget", 2)
        second = self.reserve(txn, "widget", 1)
        self.assertEqual((first.affected_rows, second.branch), (1, first.branch))
        self.assertEqual(self.inv.item("widget"), before)  # TCC: nothing held while active
        fence = self.cluster.fence()
        self.assertEqual(self.call(lambda c: c.prepare(fence, txn, first.branch)), Vote.COMMIT)
        self.assertEqual(self.inv.item("widget"), (before[0], before[1] + 3))
        self.assertEqual(self.inv.reservations(txn), [(txn, "widget", 2), (txn, "widget", 1)])
        self.assertEqual(self.call(lambda c: c.prepare(fence, txn, first.branch)), Vote.COMMIT)
        self.assertEqual(self.inv.item("widget"), (before[0], before[1] + 3))
        self.call(lambda c: c.commit(fence, txn, False))
        self.assertEqual(self.inv.item("widget"), (before[0] - 3, before[1]))
        self.assertEqual(self.inv.reservations(txn), [])
        self.call(lambda c: c.commit(fence, txn, False))  # repeated: OK, nothing moves
        self.assertEqual(self.inv.item("widget"), (before[0] - 3, before[1]))
        with self.assertRaises(errors.FailedPrecondition):  # an ended branch opens nothing
            self.reserve(txn, "widget", 1)

    def test_rollback_cancels_and_unknown_rollback_is_ok(self):
        before = self.inv.item("gadget")
        txn = self.begin()
        opening = self.reserve(txn, "gadget", 4).branch
        fence = self.cluster.fence()
        self.assertEqual(self.call(lambda c: c.prepare(fence, txn, opening)), Vote.COMMIT)
        self.assertEqual(self.available("gadget"), [before[0], before[1] + 4,
                                                    before[0] - before[1] - 4])
        self.call(lambda c: c.rollback(fence, txn))
        self.assertEqual(self.inv.item("gadget"), before)
        self.assertEqual(self.inv.reservations(txn), [])
        self.call(lambda c: c.rollback(fence, txn))
        self.call(lambda c: c.rollback(fence, self.begin()))  # never seen here
        with self.assertRaises(errors.NotFound):
            self.call(lambda c: c.commit(fence, txn, False))  # rolled back, no marker

    def test_wrong_opening_votes_abort(self):
        txn = self.begin()
        opening = self.reserve(txn, "widget", 1).branch
        fence = self.cluster.fence()
        with self.assertRaises(errors.Aborted) as caught:
            self.call(lambda c: c.prepare(fence, txn, opening + "0"))
        self.assertIn("opened as", caught.exception.message)
        with self.assertRaises(errors.Aborted):  # the branch is gone
            self.call(lambda c: c.prepare(fence, txn, opening))
        with self.assertRaises(errors.Aborted):  # never executed here
            self.call(lambda c: c.prepare(fence, self.begin(), opening))
        self.assertEqual(self.inv.reservations(txn), [])

    def test_branch_past_its_deadline_votes_abort(self):
        txn = self.begin()
        opening = self.app.call(lambda c: c.execute(
            txn, "reserve", [text("widget"), integer(1)], 1000)).branch
        [info] = [b for b in self.call(lambda c: c.listBranches()) if b.txn_id == txn]
        self.assertEqual(info.state, BranchState.ACTIVE)
        self.assertTrue(0 < info.deadline_in_ms <= 1000, info)
        time.sleep(1.1)
        with self.assertRaises(errors.Aborted):
            self.call(lambda c: c.prepare(self.cluster.fence(), txn, opening))
        self.assertEqual(self.inv.reservations(txn), [])

    def test_abandon_gives_up_only_the_named_active_opening(self):
        fence = self.cluster.fence()
        txn, prepared = self.begin(), self.begin()
        opening = self.reserve(txn, "widget", 1).branch
        prepared_opening = self.reserve(prepared, "widget", 1).branch
        self.call(lambda c: c.prepare(fence, prepared, prepared_opening))
        with self.assertRaises(errors.PermissionDenied):
            self.app.call(lambda c: c.abandon(txn, prepared_opening))
        with self.assertRaises(errors.FailedPrecondition):
            self.app.call(lambda c: c.abandon(prepared, prepared_opening))
        self.app.call(lambda c: c.abandon(txn, opening))
        self.app.call(lambda c: c.abandon(txn, opening))  # gone already: OK
        self.assertEqual([b.txn_id for b in self.call(lambda c: c.listBranches())
                          if b.txn_id in (txn, prepared)], [prepared])
        self.call(lambda c: c.rollback(fence, prepared))

    def test_not_enough_stock_refuses_the_line_then_votes_abort(self):
        on_hand, reserved = self.inv.item("gadget")
        free = on_hand - reserved
        txn = self.begin()
        opening = self.reserve(txn, "gadget", free).branch
        with self.assertRaises(errors.FailedPrecondition) as caught:
            self.reserve(txn, "gadget", 1)  # its own earlier line counts
        self.assertEqual(caught.exception.branch, opening)  # and the branch stays open
        rival = self.begin()
        rival_opening = self.reserve(rival, "gadget", free).branch
        fence = self.cluster.fence()
        self.assertEqual(self.call(lambda c: c.prepare(fence, txn, opening)), Vote.COMMIT)
        with self.assertRaises(errors.Aborted) as caught:
            self.call(lambda c: c.prepare(fence, rival, rival_opening))
        self.assertIn("not enough stock", caught.exception.message)
        self.assertEqual(self.inv.item("gadget"), (on_hand, reserved + free))
        self.assertEqual(self.inv.reservations(rival), [])
        self.call(lambda c: c.rollback(fence, txn))
        self.assertEqual(self.inv.item("gadget"), (on_hand, reserved))

    def test_bad_statements_are_invalid_arguments(self):
        txn = self.begin()
        for sql, params in (("reserve", [text("nosuch"), integer(1)]),
                            ("reserve", [text("widget"), integer(0)]),
                            ("reserve", [text("widget"), text("1")]),
                            ("reserve", [text("widget")]),
                            ("DELETE FROM items", []),
                            ("available", [integer(1)])):
            with self.subTest(sql=sql, params=params), self.assertRaises(errors.InvalidArgument):
                self.app.call(lambda c: c.execute(txn, sql, params, 0))
        self.assertEqual(self.reserve(txn, "widget", 1).affected_rows, 1)  # RESERVE works too
        result = self.app.call(lambda c: c.execute(txn, "AVAILABLE", [text("widget")], 0))
        self.assertEqual(result.columns, ["sku", "on_hand", "reserved", "available"])

    def test_read_only_branch_and_one_phase_commit(self):
        before = self.inv.item("widget")
        fence = self.cluster.fence()
        reader = self.begin()
        opening = self.app.call(lambda c: c.execute(reader, "available", [text("widget")], 0))
        self.assertEqual(self.call(lambda c: c.prepare(fence, reader, opening.branch)),
                         Vote.READ_ONLY)
        txn = self.begin()
        self.reserve(txn, "widget", 2)
        self.call(lambda c: c.commit(fence, txn, True))
        self.assertEqual(self.inv.item("widget"), (before[0] - 2, before[1]))
        self.call(lambda c: c.commit(fence, txn, True))  # the marker answers
        with self.assertRaises(errors.Aborted):
            self.call(lambda c: c.commit(fence, self.begin(), True))

    def test_batches_answer_each_item(self):
        fence = self.cluster.fence()
        txn, unknown = self.begin(), self.begin()
        opening = self.reserve(txn, "widget", 1).branch
        answers = self.call(lambda c: c.prepareBatch(fence, [
            PrepareItem(txn, opening), PrepareItem(unknown, opening)]))
        self.assertEqual(answers[0].vote, Vote.COMMIT)
        self.assertEqual(answers[1].error.code, errors.Aborted.code)
        answers = self.call(lambda c: c.commitBatch(fence, [txn, unknown]))
        self.assertIsNone(answers[0].error)
        self.assertEqual(answers[1].error.code, errors.NotFound.code)
        self.assertIsNone(self.call(lambda c: c.rollbackBatch(fence, [unknown]))[0].error)
        for items in ([], [unknown] * (rpc_constants.MAX_BATCH_ITEMS + 1)):
            with self.assertRaises(errors.InvalidArgument):
                self.call(lambda c: c.rollbackBatch(fence, items))

    def test_real_transaction_through_the_coordinator_commits(self):
        before = self.inv.item("widget")
        txn = self.begin()
        opening = self.reserve(txn, "widget", 1).branch
        result = self.coordinator.call(lambda c: c.commitTxn(
            txn, False, [EnlistedBranch("inv", opening)]))
        self.assertEqual(result.state, TxnState.COMMITTED, result.reason)
        self.assertEqual(self.inv.item("widget"), (before[0] - 1, before[1]))

    def test_forged_fence_is_fenced_and_nothing_is_stored(self):
        fence = self.cluster.fence()
        txn = self.begin()
        opening = self.reserve(txn, "widget", 1).branch
        self.call(lambda c: c.prepare(fence, txn, opening))
        stored = self.inv.fences()
        self.assertEqual(stored, {"c1": fence.epoch})
        forged = Fence("c1", fence.epoch + 5)
        with self.assertRaises(errors.Fenced):
            self.call(lambda c: c.rollback(forged, txn))
        with self.assertRaises(errors.Fenced):  # a name the coordinator does not hold
            self.call(lambda c: c.rollback(Fence("evil", 1), "evil.1.1"))
        with self.assertRaises(errors.PermissionDenied):  # not its transaction
            self.call(lambda c: c.rollback(Fence("evil", 1), txn))
        self.assertEqual(self.inv.fences(), stored)
        self.assertEqual(self.inv.reservations(txn), [(txn, "widget", 1)])  # still prepared
        self.call(lambda c: c.rollback(fence, txn))

    def test_heuristic_decision_and_a_disagreeing_coordinator(self):
        fence = self.cluster.fence()
        txn = self.begin()
        opening = self.reserve(txn, "gadget", 1).branch
        self.call(lambda c: c.prepare(fence, txn, opening))
        operator = self.app  # an open server: every caller holds every role
        with self.assertRaises(errors.NotFound):
            operator.call(lambda c: c.resolve(self.begin(), True))
        before = self.inv.item("gadget")
        operator.call(lambda c: c.resolve(txn, True))
        self.assertEqual(self.inv.item("gadget"), (before[0] - 1, before[1] - 1))
        [h] = [h for h in operator.call(lambda c: c.listHeuristics()) if h.txn_id == txn]
        self.assertEqual((h.participant, h.committed), ("inv", True))
        self.coordinator.call(lambda c: c.rollbackTxn(txn, []))  # it decides ABORT
        with self.assertRaises(errors.HeuristicMixed):
            self.call(lambda c: c.rollback(fence, txn))  # as the coordinator would tell it
        # The next housekeeping round reports the mix to the coordinator.
        wait_until(lambda: [
            (h.participant, h.committed, h.decision)
            for h in self.coordinator.call(lambda c: c.listHeuristics())
            if h.txn_id == txn] == [("inv", True, "ABORT")], 10, "the coordinator hears of it")
        [h] = [h for h in operator.call(lambda c: c.listHeuristics()) if h.txn_id == txn]
        self.assertEqual(h.decision, "ABORT")
        operator.call(lambda c: c.forgetHeuristic(txn))
        self.assertNotIn(txn, [h.txn_id for h in operator.call(lambda c: c.listHeuristics())])

    def test_junk_and_oversized_frames_close_only_that_connection(self):
        bystander = self.cluster.participant_pool_as("inv")
        self.assertEqual(bystander.call(lambda c: c.info()).backend, "inventory")
        name = b"nosuch"
        unknown_call = (struct.pack("!Ii", 0x80010001, len(name)) + name +
                        struct.pack("!i", 1) + b"\x00")
        for junk in (struct.pack("!i", 12) + b"\xff" * 12,          # bad protocol data
                     struct.pack("!i", 0x7fffffff),                  # refused unread
                     struct.pack("!i", len(unknown_call)) + unknown_call):
            with self.subTest(junk=junk[:8]), socket.create_connection(
                    ("127.0.0.1", self.cluster.ports["inv"]), timeout=3) as s:
                s.sendall(junk)
                while s.recv(1 << 16):  # a timeout here: the connection was left open
                    pass
        self.assertEqual(bystander.call(lambda c: c.info()).name, "inv")  # the same connection
        newcomer = self.cluster.participant_pool_as("inv")
        self.assertEqual(newcomer.call(lambda c: c.info()).name, "inv")
        for pool in (bystander, newcomer):
            pool.close()


class EpochTest(ServiceTest):
    """Restarts the coordinator: its own cluster."""

    def test_lower_epoch_is_fenced_and_old_active_branches_go(self):
        old = self.cluster.fence()
        txn = self.begin()
        opening = self.reserve(txn, "widget", 1).branch
        self.call(lambda c: c.rollback(old, self.begin()))  # admits the epoch
        self.assertEqual(self.cluster.processes["c1"].stop(), 0)
        self.coordinator.close()  # its connections ended with that run
        self.cluster.start_coordinator()
        new = self.cluster.fence()
        self.assertGreater(new.epoch, old.epoch)
        self.call(lambda c: c.rollback(new, self.begin()))
        self.assertEqual(self.inv.fences(), {"c1": new.epoch})
        for call in (lambda c: c.prepare(old, txn, opening), lambda c: c.recover(old),
                     lambda c: c.commit(old, txn, False)):
            with self.assertRaises(errors.Fenced):
                self.call(call)
        with self.assertRaises(errors.Fenced):  # a replaced run's transaction opens nothing
            self.reserve(txn, "widget", 1)
        self.assertEqual([b for b in self.call(lambda c: c.listBranches()) if b.txn_id == txn],
                         [])


class TokenTest(ServiceTest):
    security = "tokens"

    def test_stranger_is_unauthenticated_and_application_may_not_prepare(self):
        stranger = self.cluster.participant_pool_as("inv")
        with self.assertRaises(errors.Unauthenticated):
            stranger.call(lambda c: c.execute(self.begin(), "available", [text("widget")], 0))
        with self.assertRaises(errors.Unauthenticated):
            stranger.call(lambda c: c.authenticate("not-a-token-of-this-cluster"))
        stranger.close()
        txn = self.begin()
        opening = self.reserve(txn, "widget", 1).branch
        with self.assertRaises(errors.PermissionDenied):
            self.app.call(lambda c: c.prepare(self.cluster.fence(), txn, opening))
        with self.assertRaises(errors.PermissionDenied):
            self.coord_client.call(lambda c: c.execute(txn, "available", [text("widget")], 0))
        self.assertEqual(self.inv.reservations(txn), [])
        # The coordinator's own token works end to end.
        result = self.coordinator.call(lambda c: c.commitTxn(
            txn, False, [EnlistedBranch("inv", opening)]))
        self.assertEqual(result.state, TxnState.COMMITTED, result.reason)
        self.assertEqual(self.inv.item("widget"), (9, 0))


class CrashTest(ClusterTestCase):
    """Two inventory services in one transaction (so it runs two phases);
    one of them dies at a crash point and is restarted on its store."""

    def setUp(self):
        self.cluster = Cluster()
        self.addCleanup(self.cluster.close)
        self.cluster.start_coordinator()
        self.coordinator = self.cluster.coordinator_pool()
        self.a, self.b = (StoreFile(self.cluster.store_path("inv_a")),
                          StoreFile(self.cluster.store_path("inv_b")))
        self.start("inv_a")
        self.pools = [self.cluster.participant_pool_as("inv_a")]

    def tearDown(self):
        for pool in self.pools + [self.coordinator]:
            pool.close()

    def start(self, name, env=None):
        """Starts (or restarts, on its store) one of the two services."""
        return self.cluster.start_inventory(name, stock={"widget": 10}, env=env,
                                            flags=INQUIRY_FLAGS)

    def b_pool(self):
        pool = self.cluster.participant_pool_as("inv_b")
        self.pools.append(pool)
        return pool

    @property
    def b_process(self):
        return self.cluster.processes["inv_b"]

    def transaction(self, qty):
        txn = self.coordinator.call(lambda c: c.beginTxn(30000)).txn_id
        branches = []
        for name, pool in (("inv_a", self.pools[0]), ("inv_b", self.pools[-1])):
            result = pool.call(lambda c: c.execute(txn, "reserve",
                                                   [text("widget"), integer(qty)], 30000))
            branches.append(EnlistedBranch(name, result.branch))
        return txn, branches

    def commit_in_background(self, txn, branches):
        answer = {}

        def run():
            try:
                answer["result"] = self.coordinator.call(
                    lambda c: c.commitTxn(txn, False, branches))
            except errors.PactError as e:
                answer["error"] = e
        thread = threading.Thread(target=run)
        thread.start()
        return thread, answer

    def b_has_no_open_branches(self):
        return self.cluster.open_branches("inv_b") == []

    def commit_until_b_crashes(self, crash_point, qty):
        """b armed at crash_point, a transaction of qty widgets on a and b
        committed in the background, until b dies at that point."""
        self.start("inv_b", env={"PACT_CRASH_POINT": crash_point})
        self.b_pool()
        txn, branches = self.transaction(qty)
        thread, answer = self.commit_in_background(txn, branches)
        self.assertEqual(self.b_process.wait(10), CRASH_EXIT_CODE)
        return txn, thread, answer

    def test_crash_after_the_vote_commits_after_restart(self):
        txn, thread, answer = self.commit_until_b_crashes("before_commit_applied", 3)
        # Dead after its COMMIT vote: the store holds the branch prepared.
        self.assertEqual(self.b.item("widget"), (10, 3))
        self.assertEqual(self.b.reservations(txn), [(txn, "widget", 3)])
        self.b_process.stop()
        self.start("inv_b")
        thread.join(15)  # commitTxn answers once b acknowledged, after its restart
        self.assertEqual(answer["result"].state, TxnState.COMMITTED)
        wait_until(self.b_has_no_open_branches, 10, "inv_b has no open branch")
        self.assertEqual(self.b.item("widget"), (7, 0))
        self.assertEqual(self.b.reservations(), [])
        self.assertEqual(self.a.item("widget"), (7, 0))

    def test_crash_before_the_vote_aborts_and_restart_cancels(self):
        txn, thread, answer = self.commit_until_b_crashes("after_prepare_durable", 4)
        self.assertEqual(self.b.reservations(txn), [(txn, "widget", 4)])  # durable, no vote
        thread.join(15)
        self.assertEqual(answer["result"].state, TxnState.ABORTED)  # no vote is ABORT
        self.b_process.stop()
        self.start("inv_b")
        # Restored prepared; its inquiry hears ABORTED (presumed abort) and cancels.
        wait_until(self.b_has_no_open_branches, 10, "inv_b has no open branch")
        self.assertEqual(self.b.item("widget"), (10, 0))
        self.assertEqual(self.a.item("widget"), (10, 0))
        self.assertEqual(self.coordinator.call(lambda c: c.outcome(txn)), Outcome.ABORTED)

    def test_kill_after_prepare_keeps_it_prepared_until_the_coordinator_answers(self):
        self.start("inv_b")
        self.b_pool()
        txn, branches = self.transaction(2)
        fence = self.cluster.fence()
        self.assertEqual(self.pools[-1].call(lambda c: c.prepare(fence, txn, branches[1].branch)),
                         Vote.COMMIT)
        self.b_process.stop(signal.SIGKILL)
        self.start("inv_b", env={"PACT_CRASH_POINT": ""})
        pool = self.b_pool()
        [info] = pool.call(lambda c: c.listBranches())
        self.assertEqual((info.txn_id, info.state), (txn, BranchState.PREPARED))
        self.assertEqual([b.txn_id for b in pool.call(lambda c: c.recover(fence))], [txn])
        time.sleep(0.7)  # inquiries answer ACTIVE meanwhile: nothing is decided
        self.assertEqual(self.b.item("widget"), (10, 2))
        self.assertEqual(pool.call(lambda c: c.prepare(fence, txn, branches[1].branch)),
                         Vote.COMMIT)  # a repeated prepare after the restart
        self.coordinator.call(lambda c: c.rollbackTxn(txn, []))  # tells b nothing itself
        wait_until(self.b_has_no_open_branches, 10, "inv_b has no open branch")
        self.assertEqual(self.b.item("widget"), (10, 0))
        self.assertEqual(self.b.reservations(), [])

    def test_clean_stop_keeps_prepared_and_commit_after_restart(self):
        self.start("inv_b")
        self.b_pool()
        txn, branches = self.transaction(5)
        other, _ = self.transaction(1)
        fence = self.cluster.fence()
        self.assertEqual(self.pools[-1].call(lambda c: c.prepare(fence, txn, branches[1].branch)),
                         Vote.COMMIT)
        self.assertEqual(self.b_process.stop(), 0)  # SIGTERM
        self.assertEqual(self.b.reservations(), [(txn, "widget", 5)])  # the active one is gone
        for _ in range(2):
            self.start("inv_b")
            pool = self.b_pool()
            self.assertEqual([(b.txn_id, b.state) for b in pool.call(lambda c: c.listBranches())],
                             [(txn, BranchState.PREPARED)] if _ == 0 else [])
            pool.call(lambda c: c.commit(fence, txn, False))  # again after the 2nd restart: OK
            self.assertEqual(self.b.item("widget"), (5, 0))
            self.assertEqual(self.b_process.stop(), 0)
        with self.assertRaises(errors.FailedPrecondition):  # a's: active, never voted
            self.pools[0].call(lambda c: c.commit(fence, other, False))

    def test_unknown_crash_point_exits_2(self):
        process = self.cluster.launch_inventory("inv_b", stock={"widget": 10},
                                                env={"PACT_CRASH_POINT": "nosuch"},
                                                flags=INQUIRY_FLAGS)
        self.assertEqual(process.wait(10), 2)


class TlsTest(ClusterTestCase):
    """Mutual TLS end to end: the certificate's CN and O entries are the
    caller's name and roles."""

    @classmethod
    def setUpClass(cls):
        # The suite installs openssl: without it this test fails, never skips.
        if not shutil.which("openssl"):
            raise AssertionError("TlsTest needs openssl for scripts/make-tls-certs")
        cls.cluster = Cluster("tls")  # certificates of c1, app and operator
        cls.addClassCleanup(cls.cluster.close)
        cls.cluster.make_certificates("inv:participant", "op:operator", "c2:coordinator")
        cls.cluster.start_coordinator()
        cls.coordinator = cls.cluster.coordinator_pool()
        cls.cluster.start_inventory("inv", stock={"widget": 10}, flags=INQUIRY_FLAGS)
        cls.inv = StoreFile(cls.cluster.store_path("inv"))
        cls.pools = {name: cls.cluster.participant_pool_as("inv", name, role)
                     for name, role in (("app", "application"), ("op", "operator"),
                                        ("c2", "coordinator"))}

    @classmethod
    def tearDownClass(cls):
        for pool in [*cls.pools.values(), cls.coordinator]:
            pool.close()
        codes = (cls.cluster.processes["inv"].stop(), cls.cluster.processes["c1"].stop())
        assert codes == (0, 0), "unclean stop: %s" % (codes,)

    def test_roles_and_names_come_from_certificates(self):
        txn = self.coordinator.call(lambda c: c.beginTxn(30000)).txn_id
        opening = self.pools["app"].call(lambda c: c.execute(
            txn, "reserve", [text("widget"), integer(2)], 30000)).branch
        fence = self.cluster.fence()
        with self.assertRaises(errors.PermissionDenied):  # an application
            self.pools["app"].call(lambda c: c.prepare(fence, txn, opening))
        with self.assertRaises(errors.PermissionDenied):  # a coordinator under c1's name
            self.pools["c2"].call(lambda c: c.prepare(fence, txn, opening))
        with self.assertRaises(errors.PermissionDenied):
            self.pools["op"].call(lambda c: c.execute(txn, "available", [text("widget")], 0))
        self.assertEqual([b.txn_id for b in self.pools["op"].call(lambda c: c.listBranches())],
                         [txn])
        self.assertEqual(self.inv.fences(), {})
        result = self.coordinator.call(lambda c: c.commitTxn(
            txn, False, [EnlistedBranch("inv", opening)]))
        self.assertEqual(result.state, TxnState.COMMITTED, result.reason)
        self.assertEqual(self.inv.item("widget"), (8, 0))
        with self.assertRaises(errors.Unavailable):  # no certificate: no handshake
            with socket.create_connection(("127.0.0.1", self.cluster.ports["inv"]),
                                      timeout=3) as s:
                s.sendall(b"\x00\x00\x00\x01\x00")
                if not s.recv(1):
                    raise errors.Unavailable("closed")


class _InfoOnly:
    """The least a Participant handler needs to answer info."""

    def info(self):
        server.require(*transport.ROLES, what="info")
        return ParticipantInfo(name="limits", backend="test")


class ServerLimitsTest(unittest.TestCase):
    """pact.server's own limits, with short timeouts (the service runs the
    defaults: 1024 connections, 300 s idle, 30 s per frame)."""

    def setUp(self):
        self.server = server.ThriftServer(Participant.Processor(_InfoOnly()), "127.0.0.1", 0,
                                          max_connections=2, idle_timeout_s=0.6,
                                          frame_timeout_s=0.6)
        self.thread = threading.Thread(target=self.server.serve_forever)
        self.thread.start()
        self.pools = []

    def tearDown(self):
        for pool in self.pools:
            pool.close()
        self.server.stop()
        self.thread.join(5)

    def pool(self):
        pool = transport.Pool(Participant.Client, "127.0.0.1", self.server.port,
                              transport.Security(), "participant", timeout_ms=3000)
        self.pools.append(pool)
        return pool

    def closed_within(self, sock, seconds):
        start = time.monotonic()
        sock.settimeout(seconds + 2)
        while sock.recv(1 << 16):
            pass
        return time.monotonic() - start < seconds + 1

    def connect(self):
        return socket.create_connection(("127.0.0.1", self.server.port), timeout=3)

    def test_connections_above_the_cap_are_closed_on_accept(self):
        first, second = self.pool(), self.pool()
        for pool in (first, second):
            self.assertEqual(pool.call(lambda c: c.info()).name, "limits")
        with self.connect() as third:
            self.assertTrue(self.closed_within(third, 0.2))
        first.close()
        wait_until(self._answers, 10, "a connection under the cap again")

    def _answers(self):
        try:
            return self.pool().call(lambda c: c.info()).name == "limits"
        except errors.PactError:
            return False

    def test_a_frame_must_arrive_within_the_frame_timeout_of_its_first_byte(self):
        with self.connect() as slow:
            for byte in b"\x00\x00\x00\x10\x80\x01":  # a live but too slow sender
                try:
                    slow.sendall(bytes([byte]))
                except OSError:
                    break
                time.sleep(0.15)
            self.assertTrue(self.closed_within(slow, 0.6))
        self.assertEqual(self.pool().call(lambda c: c.info()).name, "limits")

    def test_an_idle_connection_is_closed(self):
        with self.connect() as idle:
            self.assertTrue(self.closed_within(idle, 0.6))


if __name__ == "__main__":
    unittest.main()
