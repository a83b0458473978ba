"""Pact from Python: one atomic commit across several databases or services.

    import pact

    coordinator = pact.connect("127.0.0.1:7700")
    with coordinator.transaction(timeout_ms=10000) as txn:
        txn.execute("bank", "UPDATE accounts SET balance = balance - $1 WHERE id = $2", [30, 1])
        txn.execute("inventory", "reserve", ["widget", 2])
    # committed, durably, on leaving the block; rolled back if it raised

Needs Debian's python3-thrift and the module generated from rpc/pact.thrift
(`pact_rpc`, in build/python after scripts/build) on the path.
"""

try:
    import pact_rpc  # noqa: F401
except ImportError as e:  # pragma: no cover - a setup error, said plainly
    raise ImportError("pact needs the generated module pact_rpc: run scripts/build and put "
                      "build/python on PYTHONPATH (%s)" % e) from e

from .client import Coordinator, ExecuteResult, Transaction
from .errors import (Aborted, Busy, Corruption, FailedPrecondition, Fenced, HeuristicMixed,
                     Internal, InvalidArgument, IoError, NotFound, NotLeader, PactError,
                     PermissionDenied, TimedOut, Unauthenticated, Unavailable, Unknown)


def connect(addresses, **options):
    """A Coordinator for `addresses`: "host:port", or a shard's coordinators
    as "host:port,host:port" (or a list). Options: tls_cert_path,
    tls_key_path, tls_ca_path (mutual TLS; the certificate holds
    O=application), token or auth_tokens_path (the application's token),
    connect_timeout_ms, call_timeout_ms, commit_budget_ms,
    return_at_decision, id_block. Connections open lazily."""
    return Coordinator(addresses, **options)


__all__ = [
    "connect", "Coordinator", "Transaction", "ExecuteResult", "PactError", "Aborted", "TimedOut",
    "Unavailable", "Unknown", "Fenced", "NotLeader", "NotFound", "InvalidArgument",
    "FailedPrecondition", "IoError", "Corruption", "Busy", "Internal", "HeuristicMixed",
    "Unauthenticated", "PermissionDenied",
]
