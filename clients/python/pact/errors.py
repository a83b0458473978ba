"""Pact's errors as Python exceptions: one class per ErrorCode of pact.thrift.

Every class derives from PactError, which carries the code, the message and,
where the call was about one, the transaction id (txn_id). `Unknown` is the
one to read carefully: the outcome of a commit is unknown (the coordinator's
answer was lost, or it could not tell), never "it failed"; ask
coordinator.state(e.txn_id) later.
"""

from pact_rpc.ttypes import ErrorCode


class PactError(Exception):
    code = ErrorCode.INTERNAL

    def __init__(self, message, txn_id=None, branch=None, leader=None):
        super().__init__(message)
        self.message = message
        self.txn_id = txn_id
        self.branch = branch  # execute only: the opening the statement ran in
        self.leader = leader  # NOT_LEADER only: the active's host:port, if known

    @property
    def code_name(self):
        return ErrorCode._VALUES_TO_NAMES.get(self.code, str(self.code))

    def __str__(self):
        return "%s: %s" % (self.code_name, self.message)


class NotFound(PactError):
    code = ErrorCode.NOT_FOUND


class InvalidArgument(PactError, ValueError):
    code = ErrorCode.INVALID_ARGUMENT


class FailedPrecondition(PactError):
    code = ErrorCode.FAILED_PRECONDITION


class Aborted(PactError):
    """The transaction was rolled back everywhere; the message says why."""
    code = ErrorCode.ABORTED


class TimedOut(Aborted):
    """The transaction's deadline passed and it was rolled back."""
    code = ErrorCode.TIMED_OUT


class Unavailable(PactError):
    """A peer did not answer. For a call that changes nothing (begin, state)
    it simply failed; a commit whose answer was lost raises Unknown."""
    code = ErrorCode.UNAVAILABLE


class Unknown(Unavailable):
    """The outcome of the transaction `txn_id` is unknown: it may have
    committed. Ask coordinator.state(txn_id) once the coordinator answers."""


class IoError(PactError):
    code = ErrorCode.IO_ERROR


class Fenced(Aborted):
    """The transaction is of a coordinator run that was replaced (its epoch
    is superseded): it can never commit, and is rolled back everywhere."""
    code = ErrorCode.FENCED


class Corruption(PactError):
    code = ErrorCode.CORRUPTION


class Busy(PactError):
    code = ErrorCode.BUSY


class Internal(PactError):
    code = ErrorCode.INTERNAL


class HeuristicMixed(PactError):
    code = ErrorCode.HEURISTIC_MIXED


class Unauthenticated(PactError):
    code = ErrorCode.UNAUTHENTICATED


class PermissionDenied(PactError):
    code = ErrorCode.PERMISSION_DENIED


class NotLeader(Unavailable):
    """A standby answered; the client follows `leader` by itself and raises
    this only when no active could be found."""
    code = ErrorCode.NOT_LEADER


_BY_CODE = {cls.code: cls for cls in (
    NotFound, InvalidArgument, FailedPrecondition, Aborted, TimedOut, Unavailable, IoError,
    Fenced, Corruption, Busy, Internal, HeuristicMixed, Unauthenticated, PermissionDenied,
    NotLeader)}


def from_wire(error, txn_id=None):
    """The exception for a pact_rpc.ttypes.PactError."""
    cls = _BY_CODE.get(error.code, Internal)
    exc = cls(error.message or "", txn_id=txn_id, branch=error.branch, leader=error.leader)
    exc.code = error.code  # a code newer than this package keeps its number
    return exc


def to_wire(exc):
    """The pact_rpc.ttypes.PactError a server throws for `exc`."""
    from pact_rpc.ttypes import PactError as WireError
    return WireError(code=exc.code, message=exc.message, branch=exc.branch, leader=exc.leader)
