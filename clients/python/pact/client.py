"""The Python client: begin a transaction, run statements on named
participants, commit atomically. It behaves as the C++ client library
(client/pact_client.h) does:

- Beginning costs no round trip: ids come in blocks reserved at the
  coordinator (`id_block` at a time).
- A statement is never repeated. After a lost answer nobody knows whether it
  ran, so the transaction can then only roll back: commit does that and
  raises Aborted.
- commit is idempotent on the wire. When its answer is lost it asks again
  for up to `commit_budget_ms`, then raises Unknown with the transaction id.
- A standby coordinator's NOT_LEADER is followed to the active.
"""

import threading
import time

from pact_rpc.ttypes import EnlistedBranch, TxnState

from . import errors
from .transport import CoordinatorRoute, Security, load_token, participant_pool
from .values import from_wire as value_from_wire
from .values import params_to_wire


def _now_ms():
    return time.monotonic() * 1000.0


class ExecuteResult:
    """What a statement answered: rows of Python values."""

    def __init__(self, wire):
        self.columns = list(wire.columns or [])
        self.rows = [[value_from_wire(v) for v in row] for row in (wire.rows or [])]
        self.affected_rows = wire.affected_rows

    def __iter__(self):
        return iter(self.rows)

    def __len__(self):
        return len(self.rows)

    def __repr__(self):
        return "ExecuteResult(columns=%r, rows=%r, affected_rows=%r)" % (
            self.columns, self.rows, self.affected_rows)


class _IdBlock:
    """Ids reserved at the coordinator, used one per transaction."""

    def __init__(self, wire=None, asked_ms=0.0):
        self.prefix = "%s.%d." % (wire.coordinator, wire.epoch) if wire else ""
        self.next = wire.first_seq if wire else 0
        self.end = wire.first_seq + wire.count if wire else 0
        # Valid from before the ask: the coordinator counts from its answer.
        self.valid_until_ms = asked_ms + wire.valid_ms if wire else 0.0
        self.default_timeout_ms = wire.default_timeout_ms if wire else 0
        self.max_timeout_ms = wire.max_timeout_ms if wire else 0

    def usable(self):
        return self.next < self.end and _now_ms() < self.valid_until_ms


class Coordinator:
    """A connection to one shard of coordinators (its active and standbys).
    Thread-safe: share one. Each Transaction is used by one thread at a time.
    Connections open lazily."""

    def __init__(self, addresses, tls_cert_path=None, tls_key_path=None, tls_ca_path=None,
                 token=None, auth_tokens_path=None, connect_timeout_ms=2000,
                 call_timeout_ms=10000, commit_budget_ms=15000, return_at_decision=False,
                 id_block=64):
        for name, value in (("connect_timeout_ms", connect_timeout_ms),
                            ("call_timeout_ms", call_timeout_ms),
                            ("commit_budget_ms", commit_budget_ms), ("id_block", id_block)):
            if not isinstance(value, int) or isinstance(value, bool) or not 0 < value < 2 ** 31:
                raise errors.InvalidArgument("%s must be a whole number of 1 to 2^31-1, not %r"
                                             % (name, value))
        if auth_tokens_path:
            if token:
                raise errors.InvalidArgument("give token or auth_tokens_path, not both")
            token = load_token(auth_tokens_path, "application")
        self._security = Security(tls_cert_path, tls_key_path, tls_ca_path, token)
        self._timeouts = dict(connect_timeout_ms=connect_timeout_ms, timeout_ms=call_timeout_ms)
        self._route = CoordinatorRoute(addresses, self._security, **self._timeouts)
        self.call_timeout_ms = call_timeout_ms
        self.commit_budget_ms = commit_budget_ms
        self.return_at_decision = return_at_decision
        self.id_block = id_block
        self._lock = threading.Lock()
        self._reserving = threading.Lock()  # held by the one thread asking for ids
        self._ids = _IdBlock()
        self._participants = {}  # name -> Pool

    def begin(self, timeout_ms=0):
        """A new transaction; timeout_ms <= 0 takes the coordinator's default.
        Not committed by then, it is rolled back everywhere. As a `with`
        block it commits on normal exit and rolls back on an exception."""
        txn_id, timeout = self._next_id(timeout_ms)
        return Transaction(self, txn_id, _now_ms() + timeout)

    transaction = begin  # reads better in `with coordinator.transaction() as txn:`

    def state(self, txn_id):
        """The coordinator's view of a transaction: "ACTIVE", "PREPARING",
        "COMMITTING", "COMMITTED", "ABORTING" or "ABORTED". NotFound when
        it does not remember it."""
        status = self._call(lambda c: c.status(txn_id), txn_id, repeatable=True)
        return TxnState._VALUES_TO_NAMES[status.state]

    def participants(self):
        """{name: "host:port"} of the registered participants."""
        return {p.name: "%s:%d" % (p.host, p.port)
                for p in self._call(lambda c: c.listParticipants(), repeatable=True)}

    def close(self):
        self._route.close()
        with self._lock:
            pools, self._participants = list(self._participants.values()), {}
        for pool in pools:
            pool.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _call(self, fn, txn_id=None, repeatable=False):
        """fn at the active coordinator; a repeatable call (one that changes
        nothing) is asked at each address in turn before it fails."""
        try:
            if repeatable:
                return self._route.call_repeatable(fn)
            return self._route.call(fn)
        except errors.PactError as e:
            e.txn_id = e.txn_id or txn_id
            raise

    def _next_id(self, timeout_ms):
        """An id is taken only under the lock that found its block usable, so
        two threads never take one id, nor one past a block's end. One thread
        reserves at a time; the others then use its block."""
        with self._lock:
            taken = self._take_id(timeout_ms)
        if taken:
            return taken
        with self._reserving:
            with self._lock:
                taken = self._take_id(timeout_ms)
            if taken:
                return taken
            asked = _now_ms()
            wire = self._route.call_repeatable(lambda c: c.reserveTxnIds(self.id_block))
            with self._lock:
                self._ids = _IdBlock(wire, asked)
                taken = self._take_id(timeout_ms)
        if not taken:
            raise errors.Unavailable("the coordinator reserved no usable transaction ids")
        return taken

    def _take_id(self, timeout_ms):  # REQUIRES: self._lock held
        """(txn_id, timeout) from the current block, None if it is used up or old."""
        ids = self._ids
        if not ids.usable():
            return None
        timeout = timeout_ms if timeout_ms > 0 else ids.default_timeout_ms
        if timeout > ids.max_timeout_ms:
            raise errors.InvalidArgument("timeout %d ms exceeds the maximum of %d ms"
                                         % (timeout, ids.max_timeout_ms))
        txn_id = ids.prefix + str(ids.next)
        ids.next += 1
        return txn_id, timeout

    def _drop_ids(self):
        """After a failure that may mean the coordinator restarted (its old
        run's ids can no longer become transactions): reserve afresh."""
        with self._lock:
            self._ids = _IdBlock()

    def _pool_for(self, participant):
        with self._lock:
            pool = self._participants.get(participant)
        if pool:
            return pool
        registered = self._call(lambda c: c.listParticipants(), repeatable=True)
        replaced = []
        with self._lock:
            for p in registered:
                known = self._participants.get(p.name)
                if not known or (known.host, known.port) != (p.host, p.port):
                    if known:
                        replaced.append(known)
                    self._participants[p.name] = participant_pool(
                        p.host, p.port, self._security, p.name, **self._timeouts)
            pool = self._participants.get(participant)
        for old in replaced:  # it moved: its connections lead nowhere
            old.close()
        if not pool:
            names = ", ".join(sorted(p.name for p in registered)) or "none"
            raise errors.NotFound("unknown participant %r; registered: %s" % (participant, names))
        return pool


class Transaction:
    """One transaction. Use it in a `with` block, or end it with commit() or
    rollback(); one that is left open rolls back at its deadline."""

    def __init__(self, coordinator, txn_id, deadline_ms):
        self._coordinator = coordinator
        self.id = txn_id  # final once a statement opened a branch
        self._deadline_ms = deadline_ms
        self._phase = "open"  # "committed", "rolled back", "unknown"
        self._openings = {}  # participant -> its opening of the branch ("" until one answered)
        self._doubtful = ""  # why the transaction can only roll back, if it can

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if self._phase != "open":
            return False
        if exc_type is None:
            self.commit()
            return False
        try:
            self.rollback()
        except errors.PactError:
            pass  # its branches roll back at the deadline; the first error is the one to see
        return False

    def execute(self, participant, sql, params=()):
        """Runs one statement on `participant`, opening its branch there on
        first use; params bind in order. Raises PactError subclasses; after
        Unavailable the statement may or may not have run, and the
        transaction can only roll back."""
        self._require_open()
        wire_params = params_to_wire(params)  # a bad value is refused before anything is sent
        pool = self._coordinator._pool_for(participant)
        self._openings.setdefault(participant, "")  # sent there: a rollback tells it
        result, opening, error = self._send(pool, sql, wire_params)
        if isinstance(error, errors.Fenced):
            # The id is of a coordinator run that was replaced: it can never
            # commit. While no branch opened anywhere, nothing of the
            # transaction exists yet: the statement goes again under a fresh id.
            self._coordinator._drop_ids()
            untouched = not self._doubtful and not any(self._openings.values())
            if untouched:
                try:
                    self.id, _ = self._coordinator._next_id(0)
                except errors.PactError:
                    pass
                else:
                    self._openings = {participant: ""}
                    result, opening, error = self._send(pool, sql, wire_params)
        if _lost(error) and not self._doubtful:  # no answer, or the server failed mid-call
            self._doubtful = "statement on %s may or may not have run (%s)" % (participant, error)
        if isinstance(error, errors.Fenced):
            self._doubtful = self._doubtful or str(error)
            raise errors.Fenced("transaction %s can never commit: %s" % (self.id, error),
                                txn_id=self.id)
        had_no_doubt = not self._doubtful
        self._note_opening(participant, opening)
        if had_no_doubt and self._doubtful:
            raise errors.Aborted("transaction %s can only roll back: %s"
                                 % (self.id, self._doubtful), txn_id=self.id)
        if error:
            error.txn_id = self.id
            raise error
        return ExecuteResult(result)

    def commit(self):
        """Returns once the transaction committed, durably. Raises Aborted
        (rolled back everywhere; the message says why), TimedOut (its
        deadline passed) or Unknown (the outcome is unknown: ask
        coordinator.state(e.txn_id) later)."""
        self._require_open()
        if self._doubtful:
            # Committing would commit whatever that statement did or did not do.
            self._roll_back_and_raise(errors.Aborted(
                "transaction %s rolled back: %s" % (self.id, self._doubtful)))
        if _now_ms() >= self._deadline_ms:
            self._roll_back_and_raise(errors.TimedOut(
                "transaction %s timed out: its deadline passed before commit" % self.id))
        coordinator = self._coordinator
        # A participant that answered without opening a branch holds nothing.
        branches = [EnlistedBranch(participant=p, branch=o) for p, o in self._openings.items()
                    if o]
        give_up_ms = _now_ms() + coordinator.commit_budget_ms
        backoff_s = 0.05
        attempt = 0
        while True:
            attempt += 1
            result, error = None, None
            try:
                # One ask may take the coordinator's prepare timeout plus its
                # first commit round: never cut it shorter than the budget.
                result = coordinator._route.call(
                    lambda c: c.commitTxn(self.id, coordinator.return_at_decision, branches),
                    max(coordinator.call_timeout_ms, coordinator.commit_budget_ms))
            except errors.PactError as e:
                error = e
            if attempt > 1 and isinstance(error, errors.NotFound):
                # Asked again after a lost answer, and the coordinator (restarted
                # meanwhile) no longer knows it: it may have committed and forgotten.
                error = errors.Unavailable("the coordinator no longer knows it: %s" % error)
                break
            if attempt > 1 and isinstance(error, (errors.Unauthenticated,
                                                  errors.PermissionDenied)):
                # A refusal of the caller says nothing of what the first ask did.
                error = errors.Unavailable("asking again was refused: %s" % error)
                break
            if not _lost(error) or _now_ms() + backoff_s * 1000 >= give_up_ms:
                break
            time.sleep(backoff_s)
            backoff_s = min(backoff_s * 2, 1.0)
        if _lost(error):
            # The coordinator may be gone: the next begin asks it first.
            # Branches it never prepared would hold their locks until their
            # deadline; giving them up can only make the outcome an abort.
            coordinator._drop_ids()
            self._abandon_branches()
            self._phase = "unknown"
            raise errors.Unknown("outcome of %s unknown: %s" % (self.id, error), txn_id=self.id)
        self._phase = "rolled back"
        if error:
            # The coordinator's answer (deadline passed, unknown id, refused):
            # nothing of this transaction committed. Unless it rolled the
            # transaction back itself, its branches are given up here, so
            # they hold nothing until their deadline.
            if isinstance(error, errors.NotFound):
                coordinator._drop_ids()
            if not isinstance(error, errors.Aborted):
                self._abandon_branches()
            error.txn_id = self.id
            raise error
        if result.state == TxnState.COMMITTED:
            self._phase = "committed"
            return
        raise errors.Aborted("transaction %s rolled back: %s" % (self.id, result.reason),
                             txn_id=self.id)

    def rollback(self):
        """Rolls the transaction back everywhere it reached."""
        self._require_open()
        branches = [EnlistedBranch(participant=p, branch=o) for p, o in self._openings.items()]
        try:
            self._coordinator._call(lambda c: c.rollbackTxn(self.id, branches), self.id)
        except errors.NotFound:
            # Of an earlier run of the coordinator (it restarted): that run's
            # transactions can never commit; give the branches up now.
            self._coordinator._drop_ids()
            self._abandon_branches()
        except errors.Unavailable:
            self._coordinator._drop_ids()
            if not self._abandon_branches():
                raise
        self._phase = "rolled back"

    def _require_open(self):
        if self._phase == "unknown":
            raise errors.FailedPrecondition(
                "transaction %s has an unknown outcome; ask coordinator.state" % self.id,
                txn_id=self.id)
        if self._phase != "open":
            raise errors.FailedPrecondition("transaction %s is already %s"
                                            % (self.id, self._phase), txn_id=self.id)

    def _send(self, pool, sql, wire_params):
        """(wire result, the opening it ran in, error): never raises a PactError."""
        left_ms = int(self._deadline_ms - _now_ms())
        if left_ms <= 0:
            return None, "", errors.TimedOut("transaction %s timed out" % self.id)
        try:
            result = pool.call(lambda c: c.execute(self.id, sql, wire_params, left_ms))
        except errors.PactError as e:
            return None, e.branch or "", e
        return result, result.branch, None

    def _note_opening(self, participant, opening):
        if not opening:
            return
        known = self._openings.get(participant, "")
        if not known:
            self._openings[participant] = opening
        elif known != opening and not self._doubtful:
            self._doubtful = ("participant %s lost the transaction's earlier work there (it "
                              "restarted or rolled the branch back: opened as %s, then as %s)"
                              % (participant, known, opening))

    def _roll_back_and_raise(self, why):
        try:
            self.rollback()
        except errors.PactError as e:
            why.message += "; rollback: %s" % e.message
            why.args = (why.message,)
        why.txn_id = self.id
        raise why

    def _abandon_branches(self):
        """Gives up every branch opened, without the coordinator (unreachable):
        an active branch rolls back, a prepared one is left to its
        coordinator. True once every branch is known gone."""
        all_gone = True
        for participant, opening in self._openings.items():
            if not opening:
                all_gone = False  # whether a branch opened is unknown; its deadline ends it
                continue
            try:
                pool = self._coordinator._pool_for(participant)
                pool.call(lambda c: c.abandon(self.id, opening))
            except errors.PactError:
                all_gone = False
        return all_gone


def _lost(error):
    return isinstance(error, (errors.Unavailable, errors.Internal))
