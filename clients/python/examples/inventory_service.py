#!/usr/bin/env python3
"""An inventory-reservation participant of Pact, in the TCC style: a branch
collects reserve lines in memory (nothing durable while active); prepare is
the try (stock reserved durably, in one SQLite transaction fsynced before the
COMMIT vote); commit confirms (the stock leaves); rollback cancels (it is
available again).

It mirrors Pact's C++ participant (participant/participant_service.cc):
branch openings named per process run, deadlines, fencing that cannot be
forged, inquiries for branches left waiting, heuristics, crash points.

    inventory_service.py --name inv --port 7801 --coordinator 127.0.0.1:7700 \
        --stock widget=10
"""

import argparse
import logging
import os
import re
import secrets
import sqlite3
import ssl
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from pact_rpc import Participant  # noqa: E402
from pact_rpc import constants as rpc_constants  # noqa: E402
from pact_rpc.ttypes import (BranchInfo, BranchState, ExecuteResult, HeuristicInfo,  # noqa: E402
                             Outcome, ParticipantEndpoint, ParticipantInfo, PrepareAnswer,
                             BatchAnswer, Value, ValueType, Vote)

from pact import errors, server, transport  # noqa: E402
from inventory_store import InventoryStore, NotEnoughStock, StoreInUse  # noqa: E402

log = logging.getLogger("inventory")

CRASH_POINTS = ("after_prepare_durable", "before_commit_applied", "after_commit_applied",
                "after_rollback_applied")
CRASH_EXIT_CODE = 86
ENDED_KEPT = 10000
HOUSEKEEPING_INTERVAL_S = 0.1
REGISTER_INTERVAL_S = 1.0
ORPHAN_CHECK_INTERVAL_S = 10.0


class CrashPoint:
    """PACT_CRASH_POINT=name[:count]: _exit at the count-th pass of name,
    like a power cut (no flushing, no cleanup)."""

    def __init__(self, spec):
        self.name, self._remaining = None, 0
        if not spec:
            return
        name, _, count = spec.partition(":")
        if name not in CRASH_POINTS:
            raise ValueError("unknown crash point %r (known: %s)" % (name,
                                                                     ", ".join(CRASH_POINTS)))
        if count and (not count.isdigit() or int(count) < 1):
            raise ValueError("bad crash point count in %r" % spec)
        self.name, self._remaining = name, int(count or 1)
        self._lock = threading.Lock()

    def hit(self, name):
        if name != self.name:
            return
        with self._lock:
            self._remaining -= 1
            if self._remaining == 0:
                os._exit(CRASH_EXIT_CODE)


TXN_ID = re.compile(r"(.+)\.([0-9]{1,18})\.([0-9]{1,18})", re.ASCII)


def parse_txn_id(txn_id):
    """(coordinator, epoch) of "<coordinator>.<epoch>.<seq>"; InvalidArgument if not one."""
    match = TXN_ID.fullmatch(txn_id) if isinstance(txn_id, str) else None
    if not match or int(match.group(2)) < 1 or int(match.group(3)) < 1:
        raise errors.InvalidArgument("malformed transaction id %r (expected "
                                     "<coordinator>.<epoch>.<seq>)" % (txn_id,))
    return match.group(1), int(match.group(2))


class Branch:
    """One transaction's branch here. ACTIVE: lines in memory only. PREPARED:
    the lines are reserved in the store. DONE: gone (committed, rolled back,
    dropped); the entry is forgotten."""

    ACTIVE, PREPARED, DONE = "active", "prepared", "done"

    def __init__(self, txn_id, phase, lines=None):
        self.txn_id = txn_id
        self.coordinator, self.epoch = parse_txn_id(txn_id)
        self.lock = threading.Lock()  # held for each move of this branch
        self.phase = phase
        self.lines = lines or []      # [(sku, qty)]
        self.opening = ""             # "" when restored from the store
        self.since = time.monotonic()
        self.deadline = None          # ACTIVE only
        self.next_inquiry = None


class InventoryService:
    """The participant's core; InventoryHandler puts it on the wire."""

    def __init__(self, options, store, route, crash, tls=False):
        self.options = options
        self.name = options.name
        self.store = store
        self.route = route
        self.tls = tls  # callers are known by certificate: fences name them
        self.crash = crash
        self.run_id = secrets.token_hex(8)
        self._mu = threading.Lock()
        self._branches = {}        # guarded by _mu: txn_id -> Branch
        self._ended = {}           # guarded by _mu: txn_id -> how it ended (insertion ordered)
        self._opened = 0           # guarded by _mu
        self._raise_lock = threading.Lock()  # one epoch raise confirmed at a time
        self._stop = threading.Event()
        self._threads = []
        self._register_failure = "not tried yet"  # housekeeping only: "" once registered
        self._next_register = 0.0   # housekeeping only, as the next two
        self._report_failures = {}  # housekeeping only: txn_id -> last reason

    # ------------------------------------------------------------- life

    def start(self):
        interval = self.options.inquiry_interval_ms / 1000.0
        for txn_id, (lines, prepared_at_ms) in self.store.prepared().items():
            self._hold_prepared(txn_id, lines, prepared_at_ms)
            log.info("restored prepared branch of %s (%s); asking its coordinator", txn_id,
                     ", ".join("%s x%d" % line for line in lines))
        self._next_reconcile = time.monotonic() + interval
        self._next_orphan_check = time.monotonic() + ORPHAN_CHECK_INTERVAL_S
        for round_ in (self._expire_round, self._coordinator_round):
            thread = threading.Thread(target=self._loop, args=(round_,), daemon=True)
            thread.start()
            self._threads.append(thread)

    def _hold_prepared(self, txn_id, lines, prepared_at_ms):
        """REQUIRES: no branch of txn_id held. A branch the store holds
        prepared; it asks its coordinator at once (it may have decided while
        nobody here knew of the branch)."""
        branch = Branch(txn_id, Branch.PREPARED, lines)
        branch.since -= max(0, time.time() * 1000 - prepared_at_ms) / 1000.0
        branch.next_inquiry = time.monotonic()
        self._branches[txn_id] = branch

    def _adopt_orphans(self):
        """Prepared branches the store holds that this process lost track of
        (a prepare whose COMMIT reached the disk but reported an error). One
        that finished between the two reads below is adopted needlessly but
        harmlessly: its moves act on reservation rows, and it has none."""
        with self._mu:
            held = set(self._branches)
        orphans = {t: v for t, v in self.store.prepared().items() if t not in held}
        with self._mu:
            for txn_id, (lines, prepared_at_ms) in orphans.items():
                if txn_id in self._branches:
                    continue  # opened since: that one is the live branch
                self._hold_prepared(txn_id, lines, prepared_at_ms)
                log.warning("txn %s: the store holds a prepared branch this process had lost "
                            "track of; holding it and asking its coordinator", txn_id)

    def stop(self):
        """Active branches are discarded (they hold nothing durable); prepared
        ones stay in the store."""
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=self.options.rpc_timeout_ms / 1000.0 + 1)
        for branch in self._all():
            with branch.lock:
                if branch.phase == Branch.ACTIVE:
                    self._drop(branch, "discarded at stop")

    def _loop(self, round_):
        while not self._stop.is_set():
            try:
                round_()
            except Exception:
                log.exception("housekeeping round failed")
            self._stop.wait(HOUSEKEEPING_INTERVAL_S)

    # ------------------------------------------------------------- table

    def _all(self):
        with self._mu:
            return list(self._branches.values())

    def _lookup(self, txn_id):
        with self._mu:
            return self._branches.get(txn_id)

    def _drop(self, branch, how):
        """REQUIRES: branch.lock held. Forgets the branch (its store half is done)."""
        branch.phase = Branch.DONE
        with self._mu:
            if self._branches.get(branch.txn_id) is branch:
                del self._branches[branch.txn_id]
            self._remember_ended(branch.txn_id, how)

    def _remember_ended(self, txn_id, how):  # REQUIRES: _mu held
        self._ended.pop(txn_id, None)
        self._ended[txn_id] = how
        while len(self._ended) > ENDED_KEPT:
            del self._ended[next(iter(self._ended))]

    # ------------------------------------------------------------- execute

    def execute(self, txn_id, sql, params, timeout_ms):
        if not isinstance(sql, str) or not isinstance(params or [], list):
            raise errors.InvalidArgument("execute needs a statement and a list of parameters")
        coordinator, epoch = parse_txn_id(txn_id)
        highest = self.store.highest_epoch(coordinator)
        if epoch < highest:
            raise errors.Fenced("transaction %s is from run %d of coordinator %s, replaced by "
                                "run %d: it can never commit" % (txn_id, epoch, coordinator,
                                                                  highest))
        with self._mu:
            branch = self._branches.get(txn_id)
            if branch is None:
                if txn_id in self._ended:
                    raise errors.FailedPrecondition(
                        "the branch of %s here has ended (%s); it takes no more statements" % (
                            txn_id, self._ended[txn_id]))
                branch = Branch(txn_id, Branch.ACTIVE)
                self._opened += 1
                # Unique per run, and not to be guessed: an opening's name
                # is what lets its client abandon it.
                branch.opening = "%s.%d.%s" % (self.run_id, self._opened, secrets.token_hex(8))
                if timeout_ms <= 0:
                    timeout_ms = self.options.default_branch_timeout_ms
                timeout_ms = min(timeout_ms, self.options.max_branch_timeout_ms)
                branch.deadline = branch.since + timeout_ms / 1000.0
                branch.next_inquiry = branch.since + min(
                    self.options.first_active_inquiry_ms,
                    self.options.inquiry_interval_ms) / 1000.0
                self._branches[txn_id] = branch
        with branch.lock:
            if branch.phase != Branch.ACTIVE:
                raise errors.FailedPrecondition("the branch of %s here is %s; it takes no more "
                                                "statements" % (txn_id, branch.phase))
            try:
                return self._run_statement(branch, sql, params)
            except errors.PactError as e:
                e.branch = branch.opening
                raise

    def _run_statement(self, branch, sql, params):
        words = sql.strip().rstrip(";").split()
        command = words[0].lower() if len(words) == 1 else None
        if command == "reserve":
            sku, qty = self._params(params, (ValueType.TEXT, ValueType.INTEGER), "reserve")
            if qty <= 0:
                raise errors.InvalidArgument("reserve: qty must be > 0, not %d" % qty)
            item = self._item(sku)
            held = sum(q for s, q in branch.lines if s == sku)
            available = item[0] - item[1]
            if held + qty > available:
                raise errors.FailedPrecondition(
                    "reserve %s x%d: %d available, %d already reserved by this branch" % (
                        sku, qty, available, held))
            branch.lines.append((sku, qty))
            return ExecuteResult(columns=[], rows=[], affected_rows=1, branch=branch.opening)
        if command == "available":
            (sku,) = self._params(params, (ValueType.TEXT,), "available")
            on_hand, reserved = self._item(sku)
            row = [Value(type=ValueType.TEXT, text_value=sku)] + [
                Value(type=ValueType.INTEGER, integer_value=n)
                for n in (on_hand, reserved, on_hand - reserved)]
            return ExecuteResult(columns=["sku", "on_hand", "reserved", "available"],
                                 rows=[row], affected_rows=0, branch=branch.opening)
        raise errors.InvalidArgument("unknown statement %r: expected 'reserve' [sku, qty] or "
                                     "'available' [sku]" % sql)

    @staticmethod
    def _params(params, types, what):
        params = params or []
        if len(params) != len(types) or any(p is None or p.type != t
                                             for p, t in zip(params, types)):
            raise errors.InvalidArgument("%s takes [%s]" % (what, ", ".join(
                ValueType._VALUES_TO_NAMES[t] for t in types)))
        values = []
        for p, t in zip(params, types):
            value = p.text_value if t == ValueType.TEXT else p.integer_value
            if value is None:
                raise errors.InvalidArgument("%s: a %s parameter without its value" % (
                    what, ValueType._VALUES_TO_NAMES[t]))
            values.append(value)
        return values

    def _item(self, sku):
        item = self.store.item(sku)
        if item is None:
            raise errors.InvalidArgument("unknown sku %r" % sku)
        return item

    def abandon(self, txn_id, opening):
        branch = self._lookup(txn_id)
        if branch is None:
            return
        with branch.lock:
            if branch.phase == Branch.DONE:
                return
            if not opening or branch.opening != opening:
                raise errors.PermissionDenied("the branch of %s here is not the opening named; "
                                              "only the client that opened it may abandon it"
                                              % txn_id)
            if branch.phase == Branch.PREPARED:
                raise errors.FailedPrecondition("the branch of %s is prepared; only its "
                                                "coordinator decides it now" % txn_id)
            self._drop(branch, "abandoned")
            log.info("txn %s: its client abandoned the branch here", txn_id)

    # ------------------------------------------------------------- fencing

    @staticmethod
    def check_owner(fence, txn_id):
        coordinator, _ = parse_txn_id(txn_id)
        if coordinator != fence.coordinator:
            raise errors.PermissionDenied("transaction %s belongs to coordinator %s, not to %s"
                                          % (txn_id, coordinator, fence.coordinator))

    def admit_fence(self, fence):
        """A fence is its sender's claim: one that raises an epoch (or names a
        coordinator not seen yet) is stored only once the coordinator at
        --coordinator confirms it, since a stored epoch fences off every lower
        one for good."""
        if not fence or not fence.coordinator:
            raise errors.InvalidArgument("a call without a fence")
        self.check_fence(fence)
        if not self._raises(fence):
            return
        with self._raise_lock:  # only raises wait here, never the hot path
            if self._raises(fence):
                self._confirm_raise(fence)
                if self.store.admit(fence.coordinator, fence.epoch):
                    log.info("admitted epoch %d of coordinator %s", fence.epoch,
                             fence.coordinator)
        self._drop_superseded()

    def _raises(self, fence):
        highest = self.store.highest_epoch(fence.coordinator)
        return highest == 0 or fence.epoch > highest

    def check_fence(self, fence):
        highest = self.store.highest_epoch(fence.coordinator)
        if fence.epoch < highest:
            raise errors.Fenced("coordinator %s epoch %d was replaced by epoch %d" % (
                fence.coordinator, fence.epoch, highest))

    def _confirm_raise(self, fence):
        try:
            info = self._coordinator_info(fence.coordinator)
        except errors.Unauthenticated as e:
            raise self._refused(errors.Fenced(
                "coordinator %s is not the one this participant serves: %s" % (
                    fence.coordinator, e.message)))
        except errors.PactError as e:
            raise self._refused(errors.Unavailable(
                "cannot confirm epoch %d of coordinator %s with the coordinator: %s" % (
                    fence.epoch, fence.coordinator, e)))
        if info.name != fence.coordinator:
            raise self._refused(errors.Fenced(
                "coordinator %r is not the one this participant serves (%r)" % (
                    fence.coordinator, info.name)))
        if info.epoch < fence.epoch:
            raise self._refused(errors.Fenced(
                "epoch %d of coordinator %s is not the one serving (epoch %d)" % (
                    fence.epoch, fence.coordinator, info.epoch)))

    def _coordinator_info(self, coordinator):
        return self.route.call_repeatable(lambda c: c.info(),
                                          server_name=coordinator if self.tls else None)

    @staticmethod
    def _refused(exc):
        log.warning("refused a fence: %s", exc)
        return exc

    def _drop_superseded(self):
        """Active branches of a replaced coordinator run can never commit."""
        for branch in self._all():
            if branch.epoch >= self.store.highest_epoch(branch.coordinator):
                continue
            if not branch.lock.acquire(blocking=False):
                continue  # busy: the next housekeeping round
            try:
                if branch.phase == Branch.ACTIVE:
                    self._drop(branch, "rolled back: its coordinator restarted")
                    log.warning("txn %s: dropped the active branch, coordinator %s restarted",
                                branch.txn_id, branch.coordinator)
            finally:
                branch.lock.release()

    # ------------------------------------------------------------- 2PC

    def prepare(self, fence, txn_id, opening):
        self.check_owner(fence, txn_id)
        if not opening:
            raise errors.InvalidArgument("prepare of %s names no branch opening" % txn_id)
        self.admit_fence(fence)
        branch = self._lookup(txn_id)
        if branch is None:
            raise self._abort_vote(txn_id, "no branch of it here (never executed here, lost "
                                           "in a restart, or finished)")
        with branch.lock:
            self.check_fence(fence)
            if branch.phase == Branch.PREPARED:
                return Vote.COMMIT  # a repeated prepare
            if branch.phase == Branch.DONE:
                raise self._abort_vote(txn_id, "its branch here has ended")
            reason = None
            if branch.opening != opening:
                reason = "the branch here opened as %s, not as %s: the work done in %s is lost" \
                         % (branch.opening, opening, opening)
            elif branch.deadline <= time.monotonic():
                reason = "the branch's deadline passed before prepare"
            elif not branch.lines:
                self._drop(branch, "released at prepare (read only)")
                return Vote.READ_ONLY
            else:
                try:
                    self.store.prepare(txn_id, branch.lines, branch.coordinator, branch.epoch)
                except NotEnoughStock as e:
                    reason = "not enough stock: %s" % e
                except sqlite3.Error:
                    self._drop(branch, "failed at prepare")
                    raise
            if reason:
                self._drop(branch, "voted ABORT")
                raise self._abort_vote(txn_id, reason)
            branch.phase = Branch.PREPARED
            branch.since = time.monotonic()
            branch.next_inquiry = branch.since + self.options.inquiry_interval_ms / 1000.0
            self.crash.hit("after_prepare_durable")
            return Vote.COMMIT

    @staticmethod
    def _abort_vote(txn_id, reason):
        # As the C++ participant: an ABORT vote travels as ABORTED with its reason.
        log.warning("txn %s: voted ABORT: %s", txn_id, reason)
        return errors.Aborted("voted ABORT: " + reason)

    def commit(self, fence, txn_id, one_phase):
        self.check_owner(fence, txn_id)
        self.admit_fence(fence)
        branch = self._lookup(txn_id)
        if branch is None:
            return self._commit_forgotten(txn_id, one_phase)
        with branch.lock:
            self.check_fence(fence)
            if branch.phase == Branch.DONE:
                return self._commit_forgotten(txn_id, one_phase)
            if one_phase:
                if branch.phase == Branch.PREPARED:
                    raise errors.FailedPrecondition("the branch of %s is prepared; a one-phase "
                                                    "commit does not apply" % txn_id)
                try:
                    if branch.deadline <= time.monotonic():
                        raise NotEnoughStock("its deadline passed")
                    self.store.commit_one_phase(txn_id, branch.lines)
                except NotEnoughStock as e:
                    self._drop(branch, "rolled back at a one-phase commit")
                    raise errors.Aborted("one-phase commit of %s failed and rolled back: %s"
                                         % (txn_id, e))
                self._drop(branch, "committed")
                self.crash.hit("after_commit_applied")
                return
            if branch.phase == Branch.ACTIVE:
                raise errors.FailedPrecondition("the branch of %s is not prepared; commit "
                                                "needs a COMMIT vote first" % txn_id)
            self.crash.hit("before_commit_applied")
            self.store.commit_prepared(txn_id)  # on error it stays prepared
            self._drop(branch, "committed")
            self.crash.hit("after_commit_applied")

    def _commit_forgotten(self, txn_id, one_phase):
        heuristic = self.store.find_heuristic(txn_id)
        if heuristic is not None:
            return self._settle_heuristic(heuristic, committed=True)
        if self.store.is_committed(txn_id):
            return  # a repeated commit
        if one_phase:
            raise errors.Aborted("the branch of %s here is gone without committing" % txn_id)
        raise errors.NotFound("no branch of transaction %s here (never executed here, or "
                              "already finished)" % txn_id)

    def rollback(self, fence, txn_id):
        self.check_owner(fence, txn_id)
        self.admit_fence(fence)
        branch = self._lookup(txn_id)
        if branch is not None:
            with branch.lock:
                self.check_fence(fence)
                if branch.phase != Branch.DONE:
                    if branch.phase == Branch.PREPARED:
                        self.store.rollback_prepared(txn_id)  # on error it stays prepared
                    self._drop(branch, "rolled back")
                    self.crash.hit("after_rollback_applied")
                    return
        heuristic = self.store.find_heuristic(txn_id)
        if heuristic is not None:
            return self._settle_heuristic(heuristic, committed=False)
        with self._mu:
            # A statement of it arriving late must open nothing.
            if txn_id not in self._branches:
                self._remember_ended(txn_id, "rolled back")

    def recover(self, fence):
        self.admit_fence(fence)
        return [b for b in self.list_branches()
                if b.state == BranchState.PREPARED
                and parse_txn_id(b.txn_id)[0] == fence.coordinator]

    def list_branches(self):
        """A snapshot, taken without the branches' locks (a call holding one
        must not delay it): each field is read as it stands."""
        out, now = [], time.monotonic()
        for branch in self._all():
            phase = branch.phase
            if phase == Branch.DONE:
                continue
            info = BranchInfo(txn_id=branch.txn_id, age_ms=int((now - branch.since) * 1000),
                              state=BranchState.PREPARED if phase == Branch.PREPARED
                              else BranchState.ACTIVE)
            if phase == Branch.ACTIVE:
                info.deadline_in_ms = int((branch.deadline - now) * 1000)
            out.append(info)
        return out

    # ------------------------------------------------------------- heuristics

    def resolve(self, txn_id, commit):
        branch = self._lookup(txn_id)
        if branch is None:
            raise errors.NotFound("no prepared branch of transaction %s here" % txn_id)
        with branch.lock:
            if branch.phase != Branch.PREPARED:
                raise errors.FailedPrecondition("the branch of %s here is not prepared; only "
                                                "in-doubt branches can be resolved" % txn_id)
            self.store.resolve(txn_id, commit)
            self._drop(branch, "heuristically " + ("committed" if commit else "rolled back"))
        log.warning("txn %s HEURISTIC %s participant=%s by an operator", txn_id,
                    "COMMIT" if commit else "ROLLBACK", self.name)

    def list_heuristics(self):
        return [HeuristicInfo(txn_id=h.txn_id, participant=self.name, committed=h.committed,
                              decision=h.decision, at_ms=h.at_ms)
                for h in self.store.heuristics()]

    def forget_heuristic(self, txn_id):
        self.store.forget_heuristic(txn_id)

    def _settle_heuristic(self, heuristic, committed):
        """The coordinator's own decision message meets a heuristic record: an
        agreeing one is reconciled now, a disagreeing one is a mix."""
        if heuristic.committed == committed:
            self.store.forget_heuristic(heuristic.txn_id)
            return
        decision = "COMMIT" if committed else "ABORT"
        self.store.set_heuristic_decision(heuristic.txn_id, decision, reported=False)
        self._log_mix(heuristic, decision)
        raise errors.HeuristicMixed(
            "the branch of %s here was heuristically %s by an operator, but the coordinator "
            "decided %s" % (heuristic.txn_id, "committed" if heuristic.committed
                            else "rolled back", decision))

    def _reconcile_heuristics(self):
        for h in self.store.heuristics():
            if h.reported:
                continue  # shown until an operator forgets it
            decision = h.decision
            if not decision:
                outcome, _ = self._inquire(h.txn_id)
                if outcome is None or outcome == Outcome.ACTIVE:
                    continue
                decision = "COMMIT" if outcome == Outcome.COMMITTED else "ABORT"
            if (decision == "COMMIT") == h.committed:
                self.store.forget_heuristic(h.txn_id)
                continue
            if not h.decision:
                self._log_mix(h, decision)
            info = HeuristicInfo(txn_id=h.txn_id, participant=self.name, committed=h.committed,
                                 decision=decision, at_ms=h.at_ms)
            try:
                self.route.call(lambda c: c.reportHeuristic(info),
                                server_name=parse_txn_id(h.txn_id)[0] if self.tls else None)
                reported = True
                log.info("txn %s: reported the heuristic mix to its coordinator", h.txn_id)
            except errors.PactError as e:
                if self._report_failures.get(h.txn_id) != str(e):  # once per reason
                    log.warning("cannot report the heuristic mix of %s yet: %s", h.txn_id, e)
                self._report_failures[h.txn_id] = str(e)
                reported = False
            if reported:
                self._report_failures.pop(h.txn_id, None)
            self.store.set_heuristic_decision(h.txn_id, decision, reported)

    def _log_mix(self, heuristic, decision):
        log.error("txn %s HEURISTIC MIX participant=%s coordinator decided %s, operator %s",
                  heuristic.txn_id, self.name, decision,
                  "committed" if heuristic.committed else "rolled back")

    # ------------------------------------------------------------- housekeeping

    def _expire_round(self):
        """Unprepared branches past their deadline, or of replaced coordinator runs."""
        now = time.monotonic()
        for branch in self._all():
            if not branch.lock.acquire(blocking=False):
                continue
            try:
                if branch.phase == Branch.ACTIVE and branch.deadline <= now:
                    self._drop(branch, "rolled back: its deadline passed")
                    log.warning("txn %s: dropped the active branch, its deadline passed",
                                branch.txn_id)
            finally:
                branch.lock.release()
        self._drop_superseded()

    def _coordinator_round(self):
        now = time.monotonic()
        if now >= self._next_register:
            self._register()
            self._next_register = now + REGISTER_INTERVAL_S
        if now >= self._next_orphan_check:
            self._adopt_orphans()
            self.store.forget_commit_markers(self.options.commit_marker_retention_ms)
            self._next_orphan_check = now + ORPHAN_CHECK_INTERVAL_S
        for branch in self._all():
            if not branch.lock.acquire(blocking=False):
                continue
            try:
                due = branch.phase != Branch.DONE and branch.next_inquiry <= now
            finally:
                branch.lock.release()
            if due:
                self._resolve_by_inquiry(branch)
        if now >= self._next_reconcile:
            self._reconcile_heuristics()
            self._next_reconcile = now + self.options.inquiry_interval_ms / 1000.0

    def _register(self):
        endpoint = ParticipantEndpoint(name=self.name, host=self.options.advertise_host,
                                       port=self.options.advertise_port, backend="inventory")
        try:
            self.route.call(lambda c: c.registerParticipant(endpoint))
            failure = ""
        except errors.PactError as e:
            failure = str(e)
        # Logged when it changes: once per failure reason, once when it works.
        if failure != self._register_failure:
            if failure:
                log.warning("cannot register with the coordinator: %s", failure)
            else:
                log.info("registered with the coordinator at %s", self.route.current_address)
        self._register_failure = failure

    def _inquire(self, txn_id):
        """(the coordinator's Outcome, None), or (None, the error) when it
        cannot tell: an error is never taken for a decision."""
        try:
            coordinator, _ = parse_txn_id(txn_id)
            return self.route.call(lambda c: c.outcome(txn_id),
                                   server_name=coordinator if self.tls else None), None
        except errors.PactError as e:
            return None, e

    def _resolve_by_inquiry(self, branch):
        outcome, error = self._inquire(branch.txn_id)  # no lock held while asking
        with branch.lock:
            if branch.phase == Branch.DONE:
                return  # decided meanwhile
            branch.next_inquiry = time.monotonic() + self.options.inquiry_interval_ms / 1000.0
            if branch.phase == Branch.ACTIVE:
                # Nobody can commit it: the coordinator decided it without this
                # opening, or does not own the id. Dropping an unprepared branch
                # is always safe: at worst its transaction aborts.
                nobody_commits = (outcome not in (None, Outcome.ACTIVE) or isinstance(
                    error, (errors.NotFound, errors.Unauthenticated)))
                if nobody_commits:
                    self._drop(branch, "rolled back: the coordinator cannot commit it")
                    log.warning("txn %s: dropped the active branch, its coordinator answers %s",
                                branch.txn_id, Outcome._VALUES_TO_NAMES.get(outcome, error))
                return
            if outcome is None:
                log.warning("txn %s: prepared here, the coordinator did not answer: %s",
                            branch.txn_id, error)
                return
            if outcome == Outcome.ACTIVE:
                return
            commit = outcome == Outcome.COMMITTED
            try:
                if commit:
                    self.crash.hit("before_commit_applied")
                    self.store.commit_prepared(branch.txn_id)
                else:
                    self.store.rollback_prepared(branch.txn_id)
            except sqlite3.Error as e:
                log.warning("txn %s: applying the coordinator's %s failed, will retry: %s",
                            branch.txn_id, Outcome._VALUES_TO_NAMES[outcome], e)
                return
            self._drop(branch, "committed" if commit else "rolled back")
            self.crash.hit("after_commit_applied" if commit else "after_rollback_applied")
            log.info("txn %s: the coordinator says %s; %s the prepared branch here",
                     branch.txn_id, Outcome._VALUES_TO_NAMES[outcome],
                     "committed" if commit else "rolled back")


def _wire_error(e, what):
    """The IDL's PactError for any failure of a call: its own code for a Pact
    error, IO_ERROR for the store, INTERNAL (logged) for anything else."""
    if isinstance(e, errors.PactError):
        return errors.to_wire(e)
    if isinstance(e, sqlite3.Error):
        log.error("store failed in %s: %s", what, e)
        return errors.to_wire(errors.IoError("the inventory store failed: %s" % e))
    log.exception("%s failed", what)
    return errors.to_wire(errors.Internal("%s failed: %s: %s" % (what, type(e).__name__, e)))


def _wire(fn):
    """Runs a handler method, turning every failure into the IDL's PactError."""
    def wrapped(*args):
        try:
            return fn(*args)
        except Exception as e:
            raise _wire_error(e, fn.__name__)
    wrapped.__name__ = fn.__name__
    return wrapped


def _check_batch(items, what):
    if not items:
        raise errors.InvalidArgument("%s: an empty batch" % what)
    if len(items) > rpc_constants.MAX_BATCH_ITEMS:
        raise errors.InvalidArgument("%s: a batch of %d items (at most %d)" % (
            what, len(items), rpc_constants.MAX_BATCH_ITEMS))


def _item_answer(answer_class, fn, what):
    """One batch item run as its single call: its error is its own."""
    try:
        return fn()
    except Exception as e:
        return answer_class(error=_wire_error(e, what))


class InventoryHandler:
    """Participant.Iface: who may call (README "Security model"), then the core."""

    COORDINATOR_OR_OPERATOR = ("coordinator", "operator")

    def __init__(self, service):
        self.service = service

    @_wire
    def authenticate(self, token):
        server.authenticate(token)

    @_wire
    def info(self):
        server.require(*transport.ROLES, what="info")
        return ParticipantInfo(name=self.service.name, backend="inventory")

    @_wire
    def execute(self, txn_id, sql, params, timeout_ms):
        server.require("application", what="execute")
        return self.service.execute(txn_id, sql, params, timeout_ms)

    @_wire
    def abandon(self, txn_id, branch):
        server.require("application", what="abandon")
        self.service.abandon(txn_id, branch)

    @_wire
    def prepare(self, fence, txn_id, branch):
        server.require_as("coordinator", fence.coordinator, what="prepare")
        return self.service.prepare(fence, txn_id, branch)

    @_wire
    def commit(self, fence, txn_id, one_phase):
        server.require_as("coordinator", fence.coordinator, what="commit")
        self.service.commit(fence, txn_id, one_phase)

    @_wire
    def rollback(self, fence, txn_id):
        server.require_as("coordinator", fence.coordinator, what="rollback")
        self.service.rollback(fence, txn_id)

    @_wire
    def recover(self, fence):
        server.require_as("coordinator", fence.coordinator, what="recover")
        return self.service.recover(fence)

    @_wire
    def listBranches(self):
        server.require(*self.COORDINATOR_OR_OPERATOR, what="listBranches")
        return self.service.list_branches()

    @_wire
    def resolve(self, txn_id, commit):
        server.require("operator", what="resolve")
        self.service.resolve(txn_id, commit)

    @_wire
    def listHeuristics(self):
        server.require("operator", what="listHeuristics")
        return self.service.list_heuristics()

    @_wire
    def forgetHeuristic(self, txn_id):
        server.require(*self.COORDINATOR_OR_OPERATOR, what="forgetHeuristic")
        self.service.forget_heuristic(txn_id)

    # Batches: each item runs as its single call would, with its own answer.
    @_wire
    def prepareBatch(self, fence, items):
        return self._batch("prepareBatch", fence, items, PrepareAnswer, lambda i: PrepareAnswer(
            vote=self.service.prepare(fence, i.txn_id, i.branch)))

    @_wire
    def commitBatch(self, fence, txn_ids):
        return self._batch("commitBatch", fence, txn_ids, BatchAnswer,
                           lambda t: _acknowledged(self.service.commit(fence, t, False)))

    @_wire
    def rollbackBatch(self, fence, txn_ids):
        return self._batch("rollbackBatch", fence, txn_ids, BatchAnswer,
                           lambda t: _acknowledged(self.service.rollback(fence, t)))

    @staticmethod
    def _batch(what, fence, items, answer_class, run_one):
        server.require_as("coordinator", fence.coordinator, what=what)
        _check_batch(items, what)
        return [_item_answer(answer_class, lambda item=item: run_one(item), what)
                for item in items]


def _acknowledged(_):
    """A batch item whose single call returned: done."""
    return BatchAnswer()


def parse_flags(argv):
    p = argparse.ArgumentParser(description="Pact inventory-reservation participant (TCC)")
    p.add_argument("--name", required=True)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--advertise_host")
    p.add_argument("--advertise_port", type=int)
    p.add_argument("--coordinator", required=True, help="host:port,... of the shard")
    p.add_argument("--state_dir", default=".")
    p.add_argument("--store", help="SQLite file (default <state_dir>/<name>.inventory.db)")
    for flag, default in (("inquiry_interval_ms", 1000), ("first_active_inquiry_ms", 200),
                          ("rpc_connect_timeout_ms", 2000), ("rpc_timeout_ms", 10000),
                          ("default_branch_timeout_ms", 30000),
                          ("max_branch_timeout_ms", 3600000),
                          ("commit_marker_retention_ms", 86400000),
                          ("rpc_max_connections", 1024), ("rpc_idle_timeout_ms", 300000),
                          ("rpc_frame_timeout_ms", 30000)):
        p.add_argument("--" + flag, type=int, default=default)
    for flag in ("tls_cert_path", "tls_key_path", "tls_ca_path", "auth_tokens_path"):
        p.add_argument("--" + flag)
    p.add_argument("--stock", action="append", default=[], metavar="SKU=N",
                   help="seeds the item with N on hand unless the store has it (repeatable)")
    options = p.parse_args(argv)
    options.advertise_host = options.advertise_host or options.host
    options.advertise_port = options.advertise_port or options.port
    options.store = options.store or os.path.join(options.state_dir,
                                                  options.name + ".inventory.db")
    stock = []
    for spec in options.stock:
        sku, sep, n = spec.partition("=")
        if not sep or not sku or not n.isdigit():
            p.error("--stock %r: expected SKU=N" % spec)
        stock.append((sku, int(n)))
    options.stock = stock
    return options


def check_own_certificate(cert_path, name):
    """With TLS, a participant's certificate must name it (CN = --name):
    that is how the coordinator and clients know they reached it. The ssl
    module offers no public reader of a certificate file; CPython's private
    one is the one Python's own tests use."""
    cert = ssl._ssl._test_decode_cert(cert_path)
    names = [value for rdn in cert.get("subject", ()) for key, value in rdn
             if key == "commonName"]
    if names != [name]:
        raise errors.InvalidArgument("the certificate %s is for %s, not for --name %s"
                                     % (cert_path, ", ".join(names) or "no name", name))


def main(argv):
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    options = parse_flags(argv)
    try:
        crash = CrashPoint(os.environ.get("PACT_CRASH_POINT", ""))
    except ValueError as e:
        print("inventory_service: PACT_CRASH_POINT: %s" % e, file=sys.stderr)
        return 2
    try:
        security = transport.Security.from_flags(options.tls_cert_path, options.tls_key_path,
                                                 options.tls_ca_path, options.auth_tokens_path,
                                                 role="participant")
        route = transport.CoordinatorRoute(options.coordinator, security,
                                           connect_timeout_ms=options.rpc_connect_timeout_ms,
                                           timeout_ms=options.rpc_timeout_ms)
        store = InventoryStore(options.store)
        for sku, n in options.stock:
            store.seed(sku, n)
        service = InventoryService(options, store, route, crash, security.tls)
        rpc_server = server.ThriftServer(
            Participant.Processor(InventoryHandler(service)), options.host, options.port,
            security=security, tokens_path=options.auth_tokens_path,
            max_connections=options.rpc_max_connections,
            idle_timeout_s=options.rpc_idle_timeout_ms / 1000.0,
            frame_timeout_s=options.rpc_frame_timeout_ms / 1000.0)
        if security.tls:
            check_own_certificate(options.tls_cert_path, options.name)
    except (errors.PactError, OSError, sqlite3.Error, ssl.SSLError, StoreInUse) as e:
        print("inventory_service: cannot start: %s" % e, file=sys.stderr)
        return 2
    rpc_server.stop_on_sigterm()
    if not security.tls and not security.token and options.host not in ("127.0.0.1",
                                                                          "localhost", "::1"):
        log.warning("INSECURE: listening on %s without TLS or tokens", options.host)
    service.start()
    print("serving on %s:%d" % (rpc_server.host, rpc_server.port), flush=True)
    log.info("%s serving on %s:%d (store %s, run %s)", options.name, rpc_server.host,
             rpc_server.port, options.store, service.run_id)
    rpc_server.serve_forever()
    log.info("stopping")
    service.stop()
    route.close()
    store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
