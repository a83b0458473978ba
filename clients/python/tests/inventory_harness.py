"""Real processes for the inventory service's tests: a pact-coordinator from
$PACT_BIN_DIR and inventory_service.py, on free ports, in a temporary
directory (kept when PACT_KEEP_TEST_FILES=1)."""

import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time

from pact_rpc import Coordinator, Participant
from pact_rpc.ttypes import Fence, Value, ValueType

from pact import errors, transport

HERE = os.path.dirname(os.path.abspath(__file__))
CLIENTS_PYTHON = os.path.dirname(HERE)
SERVICE = os.path.join(CLIENTS_PYTHON, "examples", "inventory_service.py")
BIN_DIR = os.environ.get("PACT_BIN_DIR", "/tmp/pact-dev3/bin")
CRASH_EXIT_CODE = 86
MAKE_TLS_CERTS = os.path.join(os.path.dirname(os.path.dirname(CLIENTS_PYTHON)), "scripts",
                              "make-tls-certs")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(predicate, timeout_s=10.0, interval_s=0.05):
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval_s)


def text(s):
    return Value(type=ValueType.TEXT, text_value=s)


def integer(n):
    return Value(type=ValueType.INTEGER, integer_value=n)


class TestDir:
    def __init__(self):
        self.path = tempfile.mkdtemp(prefix="pact-inventory-test-")

    def file(self, name):
        return os.path.join(self.path, name)

    def remove(self):
        if os.environ.get("PACT_KEEP_TEST_FILES") == "1":
            sys.stderr.write("test files kept in %s\n" % self.path)
        else:
            shutil.rmtree(self.path, ignore_errors=True)


def make_certs(test_dir, *specs):
    """scripts/make-tls-certs: {name: (cert, key, ca)} for each NAME:ROLES."""
    certs = test_dir.file("certs")
    subprocess.run([MAKE_TLS_CERTS, certs] + list(specs), check=True,
                   stdout=subprocess.DEVNULL)
    ca = os.path.join(certs, "ca.pem")
    return {spec.split(":")[0]: (os.path.join(certs, spec.split(":")[0] + ".pem"),
                                 os.path.join(certs, spec.split(":")[0] + "-key.pem"), ca)
            for spec in specs}


def tls_flags(tls):
    if not tls:
        return []
    return ["--tls_cert_path", tls[0], "--tls_key_path", tls[1], "--tls_ca_path", tls[2]]


class Process:
    """A child process with its stderr in a log file."""

    def __init__(self, argv, log_path, env=None):
        self.argv, self.log_path = argv, log_path
        self._log = open(log_path, "ab")
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=self._log,
                                     env=dict(os.environ, **(env or {})))

    @property
    def pid(self):
        return self.proc.pid

    def wait(self, timeout_s=10.0):
        try:
            return self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, sig=signal.SIGTERM, timeout_s=10.0):
        """The exit code; SIGKILL if it does not stop in time."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        code = self.wait(timeout_s)
        if code is None:
            self.proc.kill()
            code = self.proc.wait()
        self.proc.stdout.close()
        self._log.close()
        return code

    def log(self):
        with open(self.log_path, errors="replace") as f:
            return f.read()


class CoordinatorProcess:
    def __init__(self, test_dir, name="c1", tokens_path=None, tls=None, client_tls=None):
        """tls: its own (cert, key, ca); client_tls: the test's, as application."""
        self.name, self.port = name, free_port()
        self.test_dir, self.tokens_path, self.tls = test_dir, tokens_path, tls
        if client_tls:
            self.security = transport.Security(*client_tls)
        else:
            self.security = transport.Security.from_flags(auth_tokens_path=tokens_path,
                                                          role="application")
        self.process = None

    @property
    def address(self):
        return "127.0.0.1:%d" % self.port

    def start(self):
        argv = [os.path.join(BIN_DIR, "pact-coordinator"), "--name", self.name,
                "--port", str(self.port), "--journal", self.test_dir.file("journal.db"),
                "--prepare_timeout_ms=2000", "--commit_retry_initial_ms=50",
                "--commit_retry_max_ms=200"]
        if self.tokens_path:
            argv += ["--auth_tokens_path", self.tokens_path]
        self.process = Process(argv + tls_flags(self.tls), self.test_dir.file("coordinator.log"))
        self.pool = transport.Pool(Coordinator.Client, "127.0.0.1", self.port, self.security,
                                   "coordinator", self.name if self.tls else None,
                                   timeout_ms=10000)
        if not wait_until(self._ready):
            raise RuntimeError("the coordinator did not start:\n" + self.process.log())

    def _ready(self):
        try:
            return self.pool.call(lambda c: c.info()).ready
        except errors.PactError:
            return False

    def call(self, fn):
        return self.pool.call(fn)

    def fence(self):
        return Fence(coordinator=self.name, epoch=self.call(lambda c: c.info()).epoch)

    def stop(self, sig=signal.SIGTERM):
        self.pool.close()
        return self.process.stop(sig)


class InventoryProcess:
    """inventory_service.py on a fixed port and store, restartable."""

    def __init__(self, test_dir, name, coordinator, stock=(), tokens_path=None, extra=(),
                 tls=None):
        self.name, self.port, self.tls = name, free_port(), tls
        self.test_dir, self.coordinator = test_dir, coordinator
        self.stock, self.tokens_path, self.extra = stock, tokens_path, list(extra)
        self.store_path = test_dir.file(name + ".inventory.db")
        self.process = None

    def start(self, env=None, wait_serving=True):
        argv = [sys.executable, SERVICE, "--name=" + self.name, "--port", str(self.port),
                "--coordinator", self.coordinator.address, "--state_dir=" + self.test_dir.path,
                "--inquiry_interval_ms=300"] + self.extra + tls_flags(self.tls)
        for sku, n in self.stock:
            argv += ["--stock", "%s=%d" % (sku, n)]
        if self.tokens_path:
            argv += ["--auth_tokens_path", self.tokens_path]
        env = dict(env or {})
        env["PYTHONPATH"] = os.pathsep.join(
            [CLIENTS_PYTHON] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep)
                                if p])
        self.process = Process(argv, self.test_dir.file(self.name + ".log"), env)
        if wait_serving:
            line = self.process.proc.stdout.readline().decode()
            if not line.startswith("serving on 127.0.0.1:%d" % self.port):
                raise RuntimeError("%s did not start (%r):\n%s" % (self.name, line,
                                                                   self.process.log()))
        return self

    def client(self, token_role=None, tls=None):
        """A pool of raw generated clients; with a tokens file, presenting
        token_role's token (None: no token at all); with tls, that
        (cert, key, ca), checking that the service's certificate is its name's."""
        security = transport.Security()
        if tls:
            return transport.Pool(Participant.Client, "127.0.0.1", self.port,
                                  transport.Security(*tls), "participant", self.name,
                                  timeout_ms=10000)
        if token_role:
            security = transport.Security.from_flags(auth_tokens_path=self.tokens_path,
                                                     role=token_role)
        return transport.Pool(Participant.Client, "127.0.0.1", self.port, security,
                              "participant", timeout_ms=10000)

    def stop(self, sig=signal.SIGTERM):
        return self.process.stop(sig)

    def item(self, sku):
        """(on_hand, reserved) read from the store file, as the harness does."""
        with sqlite3.connect(self.store_path) as db:
            return db.execute("SELECT on_hand, reserved FROM items WHERE sku = ?",
                              (sku,)).fetchone()

    def reservations(self, txn_id=None):
        with sqlite3.connect(self.store_path) as db:
            sql = "SELECT txn_id, sku, qty FROM reservations"
            rows = db.execute(sql + (" WHERE txn_id = ?" if txn_id else "") + " ORDER BY line",
                              (txn_id,) if txn_id else ()).fetchall()
        return rows

    def fences(self):
        with sqlite3.connect(self.store_path) as db:
            return dict(db.execute("SELECT coordinator, epoch FROM fences").fetchall())
