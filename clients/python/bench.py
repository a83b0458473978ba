#!/usr/bin/env python3
"""What the Python pieces cost: transactions through the Python client, with
threads of one process sharing one pact.Coordinator, against a coordinator
and participants it starts on loopback (docs/BENCHMARKS.md, "Python").

    bench.py [--threads N] [--duration S] [--with inventory|null]

Each transaction runs one statement on each of two participants and commits
(two-phase). --with null: both are pact-participant's null backend, so the
figure is the client's and Pact's own cost (compare pact-bench --backend null
--participants 2 --statements 1). --with inventory: the second is the Python
inventory service (a reserve, fsynced at prepare and at commit).
PACT_BIN_DIR and PYTHONPATH as for the tests (clients/python/tests).
"""

import argparse
import os
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "tests"))

import pact  # noqa: E402
from harness import Cluster  # noqa: E402


def start(cluster, second):
    cluster.start_coordinator()
    for name in ("a", "b") if second == "null" else ("a",):
        cluster.start_null_participant(name)
    if second == "inventory":
        cluster.start_inventory("b", {"widget": 10 ** 12})


def run(coordinator, second, stop_at, latencies, outcomes):
    """Transactions until stop_at, into this thread's own latencies and outcomes."""
    statement = ("reserve", ["widget", 1]) if second == "inventory" else ("UPDATE x", [])
    while time.monotonic() < stop_at:
        started = time.monotonic()
        try:
            with coordinator.transaction(timeout_ms=10000) as txn:
                txn.execute("a", "UPDATE accounts SET balance = balance - 1", [])
                txn.execute("b", *statement)
            latencies.append(time.monotonic() - started)
            outcomes["committed"] += 1
        except pact.PactError as e:
            outcomes[type(e).__name__] = outcomes.get(type(e).__name__, 0) + 1


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--duration", type=float, default=10)
    parser.add_argument("--warmup", type=float, default=1)
    parser.add_argument("--with", dest="second", choices=("null", "inventory"), default="null")
    options = parser.parse_args()
    cluster = Cluster()
    try:
        start(cluster, options.second)
        coordinator = pact.connect(cluster.coordinators)
        warm = {"committed": 0}
        run(coordinator, options.second, time.monotonic() + options.warmup, [], warm)
        per_thread = [([], {"committed": 0}) for _ in range(options.threads)]
        stop_at = time.monotonic() + options.duration
        threads = [threading.Thread(target=run, args=(coordinator, options.second, stop_at,
                                                      latencies, outcomes))
                   for latencies, outcomes in per_thread]
        started = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.monotonic() - started
        latencies = sorted(x for mine, _ in per_thread for x in mine)
        outcomes = {}
        for _, mine in per_thread:
            for outcome, n in mine.items():
                outcomes[outcome] = outcomes.get(outcome, 0) + n
        if not latencies:
            print("nothing committed: %s" % outcomes)
            return 1

        def percentile(p):
            return latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000
        print("python client, %d thread(s), second participant %s: %.0f tx/s committed; "
              "p50 %.2f ms, p99 %.2f ms; outcomes %s" % (
                  options.threads, options.second, outcomes["committed"] / elapsed,
                  percentile(0.5), percentile(0.99), outcomes))
        coordinator.close()
        return 0 if set(outcomes) == {"committed"} else 1
    finally:
        cluster.close()


if __name__ == "__main__":
    sys.exit(main())
