"""Real Pact processes for the Python tests: a coordinator (or an active and
a standby over a standalone ZooKeeper), SQLite participants and the Python
inventory service, on loopback ports, with their files in one temporary
directory (kept when PACT_KEEP_TEST_FILES=1).

PACT_BIN_DIR names the directory of pact-coordinator and pact-participant
(build/bin); ctest sets it.
"""

import ctypes
import glob
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import tempfile
import time
import unittest

from pact import transport
from pact_rpc import Coordinator
from pact_rpc.ttypes import Fence

SOURCE_DIR = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
BIN_DIR = os.environ.get("PACT_BIN_DIR", os.path.join(SOURCE_DIR, "build", "bin"))
INVENTORY_SERVICE = os.path.join(SOURCE_DIR, "clients", "python", "examples",
                                 "inventory_service.py")
PYTHON = "/usr/bin/python3"
ZOOKEEPER_JARS = ["/usr/share/java/zookeeper.jar", "/usr/share/java/slf4j-simple.jar"]

BANK_SCHEMA = """
CREATE TABLE accounts (id INTEGER PRIMARY KEY, balance INTEGER NOT NULL CHECK (balance >= 0));
INSERT INTO accounts VALUES (1, 100), (2, 100), (3, 100);
"""


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(predicate, timeout_s, what):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise AssertionError("timed out waiting until " + what)


def _die_with_parent():
    """In the child: SIGKILL when the test process dies, however it dies."""
    PR_SET_PDEATHSIG = 1
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def query(path, sql, params=()):
    """Rows of `sql` on the SQLite file at path."""
    with sqlite3.connect(path, timeout=10) as conn:
        return conn.execute(sql, params).fetchall()


class StoreFile:
    """An inventory service's SQLite store, read directly: what the service
    holds durably, whatever it answers (its items and reservations tables
    are a contract)."""

    def __init__(self, path):
        self.path = path

    def item(self, sku):
        """(on_hand, reserved), None for an unknown sku."""
        rows = query(self.path, "SELECT on_hand, reserved FROM items WHERE sku = ?", (sku,))
        return rows[0] if rows else None

    def reservations(self, txn_id=None):
        """(txn_id, sku, qty) of the reserved lines, of one transaction or all."""
        sql = "SELECT txn_id, sku, qty FROM reservations"
        return query(self.path, sql + (" WHERE txn_id = ?" if txn_id else "") + " ORDER BY line",
                     (txn_id,) if txn_id else ())

    def fences(self):
        return dict(query(self.path, "SELECT coordinator, epoch FROM fences"))


class Process:
    """One child process, its output in a log file."""

    def __init__(self, name, argv, log_path, env=None):
        self.name, self.argv, self.log_path = name, argv, log_path
        self.env = dict(os.environ, **(env or {}))
        self.popen = None

    def start(self):
        with open(self.log_path, "ab") as log:
            self.popen = subprocess.Popen(self.argv, stdout=log, stderr=subprocess.STDOUT,
                                          env=self.env, start_new_session=True,
                                          preexec_fn=_die_with_parent)

    @property
    def running(self):
        return self.popen is not None and self.popen.poll() is None

    def signal(self, sig):
        if self.running:
            self.popen.send_signal(sig)

    def wait(self, timeout_s=10):
        try:
            return self.popen.wait(timeout_s)
        except subprocess.TimeoutExpired:
            return None

    def kill(self):
        self.signal(signal.SIGKILL)
        if self.popen:
            self.popen.wait()

    def stop(self, sig=None, timeout_s=10):
        """Sends sig (SIGTERM when None; the method signal hides the module
        here) and returns the exit code; SIGKILL if it has not exited within
        timeout_s (the code is then -9)."""
        self.signal(signal.SIGTERM if sig is None else sig)
        code = self.wait(timeout_s)
        if code is None:
            self.kill()
            code = self.popen.returncode
        return code

    def log_tail(self, lines=30):
        try:
            with open(self.log_path, errors="replace") as f:
                return "".join(f.readlines()[-lines:])
        except OSError:
            return ""


# Debian's server binaries, of whichever major version is installed.
PG_BIN_DIR = max(glob.glob("/usr/lib/postgresql/*/bin") or ["/usr/lib/postgresql/15/bin"],
                 key=lambda d: int(d.split("/")[-2]) if d.split("/")[-2].isdigit() else 0)


class PostgresServer:
    """A throwaway PostgreSQL server on loopback, run as the postgres user
    (it refuses root), with prepared transactions enabled."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="pact-test-py-pg-")
        self.port = free_port()
        self.data = os.path.join(self.dir, "data")
        self.user = "postgres" if os.geteuid() == 0 else None
        if self.user:
            shutil.chown(self.dir, self.user, self.user)
        subprocess.run([os.path.join(PG_BIN_DIR, "initdb"), "-D", self.data, "-A", "trust",
                        "-U", "postgres", "--no-sync", "-E", "UTF8", "--locale=C"],
                       check=True, user=self.user, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        settings = dict(listen_addresses="127.0.0.1", unix_socket_directories=self.dir,
                        max_prepared_transactions="64", fsync="on", shared_buffers="32MB",
                        deadlock_timeout="100ms")
        argv = [os.path.join(PG_BIN_DIR, "postgres"), "-D", self.data, "-p", str(self.port)]
        for key, value in settings.items():
            argv += ["-c", "%s=%s" % (key, value)]
        with open(os.path.join(self.dir, "postgres.log"), "ab") as log:
            self.popen = subprocess.Popen(argv, user=self.user, stdout=log,
                                          stderr=subprocess.STDOUT, start_new_session=True,
                                          preexec_fn=_die_with_parent)
        wait_until(lambda: self._psql("postgres", "SELECT 1", check=False) == "1", 30,
                   "PostgreSQL answers")

    def conninfo(self, db):
        return "host=127.0.0.1 port=%d user=postgres dbname=%s" % (self.port, db)

    def _psql(self, db, sql, check=True):
        ran = subprocess.run(["psql", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres",
                              "-d", db, "-v", "ON_ERROR_STOP=1", "-Atqc", sql],
                             capture_output=True, text=True)
        if check and ran.returncode != 0:
            raise AssertionError("psql %s: %s" % (sql, ran.stderr))
        return ran.stdout.strip()

    def create_database(self, db, schema):
        self._psql("postgres", 'CREATE DATABASE "%s"' % db)
        self._psql(db, schema)

    def query_int(self, db, sql):
        return int(self._psql(db, sql))

    def prepared(self, db):
        return self.query_int(db, "SELECT count(*) FROM pg_prepared_xacts "
                                  "WHERE database = current_database()")

    def close(self):
        self.popen.send_signal(signal.SIGQUIT)  # immediate shutdown, backends too
        try:
            self.popen.wait(10)
        except subprocess.TimeoutExpired:
            self.popen.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


class Cluster:
    """security: "open", "tokens" or "tls"."""

    def __init__(self, security="open"):
        self.dir = tempfile.mkdtemp(prefix="pact-test-py-")
        self.security = security
        self.processes = {}
        self.ports = {}
        self.coordinator_ports = []
        self.coordinator_names = {}  # process name -> --name
        self.tokens_path = os.path.join(self.dir, "tokens")
        self.tls_dir = os.path.join(self.dir, "tls")
        if security == "tokens":
            with open(self.tokens_path, "w") as f:
                for role in transport.ROLES:
                    f.write("%s %s\n" % (role, os.urandom(16).hex()))
        elif security == "tls":
            self.make_certificates("c1:coordinator", "app:application", "operator:operator")
        self.operator = self.security_of("operator", "operator")

    # ---------------------------------------------------------------- security

    def make_certificates(self, *specs):
        subprocess.run([os.path.join(SOURCE_DIR, "scripts", "make-tls-certs"), self.tls_dir,
                        *specs], check=True, stdout=subprocess.DEVNULL)

    def tls_files(self, name):
        return dict(tls_cert_path=os.path.join(self.tls_dir, name + ".pem"),
                    tls_key_path=os.path.join(self.tls_dir, name + "-key.pem"),
                    tls_ca_path=os.path.join(self.tls_dir, "ca.pem"))

    def security_of(self, name, role):
        """What the process `name`, holding `role`, presents as a client."""
        if self.security == "tls":
            return transport.Security(**self.tls_files(name))
        if self.security == "tokens":
            return transport.Security.from_flags(auth_tokens_path=self.tokens_path, role=role)
        return transport.Security()

    def flags_of(self, name, role):
        if self.security == "tls":
            if not os.path.exists(os.path.join(self.tls_dir, name + ".pem")):
                self.make_certificates("%s:%s" % (name, role))
            return ["--%s=%s" % kv for kv in self.tls_files(name).items()]
        if self.security == "tokens":
            return ["--auth_tokens_path=" + self.tokens_path]
        return []

    def client_options(self, name="app"):
        """pact.connect options of an application."""
        if self.security == "tls":
            return self.tls_files(name)
        if self.security == "tokens":
            return dict(auth_tokens_path=self.tokens_path)
        return {}

    # ---------------------------------------------------------------- processes

    def port_of(self, name):
        return self.ports.setdefault(name, free_port())

    def launch(self, name, argv, env=None):
        process = Process(name, argv, os.path.join(self.dir, name + ".log"), env)
        self.processes[name] = process
        process.start()
        return process

    def start_zookeeper(self):
        port = self.port_of("zookeeper")
        data = os.path.join(self.dir, "zookeeper")
        os.makedirs(data, exist_ok=True)
        config = os.path.join(data, "zoo.cfg")
        with open(config, "w") as f:
            f.write("tickTime=500\ndataDir=%s\nclientPort=%d\nclientPortAddress=127.0.0.1\n"
                    "admin.enableServer=false\n4lw.commands.whitelist=*\n" % (data, port))
        classpath = ":".join(j for j in ZOOKEEPER_JARS if os.path.exists(j))
        self.launch("zookeeper", ["/usr/bin/java", "-Xmx128m", "-XX:+UseSerialGC",
                                  "-XX:-UsePerfData", "-Djava.net.preferIPv4Stack=true", "-cp",
                                  classpath, "org.apache.zookeeper.server.quorum.QuorumPeerMain",
                                  config])

        def answers():
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                    s.sendall(b"ruok")
                    return s.recv(4) == b"imok"
            except OSError:
                return False
        wait_until(answers, 60, "ZooKeeper answers")
        return "127.0.0.1:%d" % port

    def start_coordinator(self, process_name="c1", name="c1", zookeeper=None, flags=(),
                          env=None, wait_ready=True):
        port = self.port_of(process_name)
        if port not in self.coordinator_ports:
            self.coordinator_ports.append(port)
        self.coordinator_names[process_name] = name
        argv = [os.path.join(BIN_DIR, "pact-coordinator"), "--name=" + name,
                "--port=%d" % port, "--prepare_timeout_ms=2000", "--commit_retry_initial_ms=50",
                "--commit_retry_max_ms=200", *self.flags_of(name, "coordinator"), *flags]
        if zookeeper:
            argv += ["--zookeeper=" + zookeeper, "--zk_session_timeout_ms=2000",
                     "--advertise=127.0.0.1:%d" % port]
        else:
            argv += ["--journal=" + os.path.join(self.dir, name + ".journal.db")]
        process = self.launch(process_name, argv, env)
        if wait_ready:
            self.wait_coordinator_ready(process_name)
        return process

    def coordinator_info(self, process_name):
        pool = transport.Pool(Coordinator.Client, "127.0.0.1", self.ports[process_name],
                              self.operator, "coordinator", connect_timeout_ms=500,
                              timeout_ms=2000)
        try:
            return pool.call(lambda c: c.info())
        finally:
            pool.close()

    def coordinator_pool(self, process_name="c1", client="app", role="application"):
        """A pool to the coordinator run as process_name, whose caller is
        `client` holding `role` (as security_of). With TLS the coordinator
        must present its own name's certificate."""
        return transport.Pool(Coordinator.Client, "127.0.0.1", self.ports[process_name],
                              self.security_of(client, role), "coordinator",
                              self.coordinator_names[process_name])

    def fence(self, process_name="c1"):
        """The fence (name, epoch) of the coordinator's current run."""
        info = self.coordinator_info(process_name)
        return Fence(coordinator=info.name, epoch=info.epoch)

    def wait_coordinator_ready(self, process_name, timeout_s=30):
        process = self.processes[process_name]

        def ready():
            if not process.running:
                raise AssertionError("%s exited: %s" % (process_name, process.log_tail()))
            try:
                return self.coordinator_info(process_name).ready
            except Exception:
                return False
        wait_until(ready, timeout_s, process_name + " serves")

    @property
    def coordinators(self):
        """Every coordinator's address, as applications are given them."""
        return ",".join("127.0.0.1:%d" % p for p in self.coordinator_ports)

    def _participant_argv(self, program, name):
        port = self.port_of(name)
        return program + ["--name=" + name, "--port=%d" % port,
                          "--coordinator=" + self.coordinators, "--state_dir=" + self.dir,
                          "--inquiry_interval_ms=200", *self.flags_of(name, "participant")]

    def start_sqlite_participant(self, name, schema=BANK_SCHEMA, env=None):
        db = self.db_path(name)
        if not os.path.exists(db):
            with sqlite3.connect(db) as conn:
                conn.executescript(schema)
        argv = self._participant_argv([os.path.join(BIN_DIR, "pact-participant")], name)
        argv += ["--backend=sqlite", "--sqlite_path=" + db]
        return self._start_participant(name, argv, env)

    def start_null_participant(self, name):
        """A pact-participant that stores nothing (benchmarks: Pact's own cost)."""
        argv = self._participant_argv([os.path.join(BIN_DIR, "pact-participant")], name)
        return self._start_participant(name, argv + ["--backend=null"], None)

    def start_pg_participant(self, name, conninfo, env=None):
        argv = self._participant_argv([os.path.join(BIN_DIR, "pact-participant")], name)
        argv += ["--backend=postgresql", "--pg_conninfo=" + conninfo]
        return self._start_participant(name, argv, env)

    def start_inventory(self, name="inventory", stock=None, env=None, wait_registered=True,
                        flags=()):
        argv, env = self._inventory_command(name, stock, env, flags)
        return self._start_participant(name, argv, env, wait_registered)

    def launch_inventory(self, name="inventory", stock=None, env=None, flags=()):
        """Starts the inventory service without waiting for it to serve:
        for one that must fail to start."""
        return self.launch(name, *self._inventory_command(name, stock, env, flags))

    def _inventory_command(self, name, stock, env, flags):
        """(argv, env) of the inventory service `name`."""
        argv = self._participant_argv([PYTHON, INVENTORY_SERVICE], name)
        argv += ["--store=" + self.store_path(name), *flags]
        for sku, qty in (stock or {}).items():
            argv.append("--stock=%s=%d" % (sku, qty))
        python_path = os.pathsep.join([os.path.join(SOURCE_DIR, "clients", "python"),
                                       os.path.join(os.path.dirname(BIN_DIR), "python")])
        return argv, dict(env or {}, PYTHONPATH=python_path)

    def _start_participant(self, name, argv, env, wait_registered=True):
        """Starts it and waits until it serves and (unless told otherwise:
        its coordinator is down) the coordinator has it registered. A
        restarted participant is registered already: it must answer too."""
        process = self.launch(name, argv, env)
        port = self.ports[name]

        def serving():
            if not process.running:
                raise AssertionError("%s exited: %s" % (name, process.log_tail()))
            pool = self.participant_pool(name)
            try:
                pool.call(lambda c: c.info())
                return True
            except Exception:
                return False
            finally:
                pool.close()
        wait_until(serving, 30, name + " serves")
        if not wait_registered:
            return process

        def registered():
            for p in self.coordinator_ports:
                pool = transport.Pool(Coordinator.Client, "127.0.0.1", p, self.operator,
                                      "coordinator", connect_timeout_ms=500, timeout_ms=2000)
                try:
                    if any(e.name == name and e.port == port
                           for e in pool.call(lambda c: c.listParticipants())):
                        return True
                except Exception:
                    pass
                finally:
                    pool.close()
            return False
        wait_until(registered, 30, name + " is registered")
        return process

    def stop_coordinator_and_check_journal(self, name="c1"):
        """A clean stop (exit 0), then the journal read offline: it must hold
        no unfinished decision."""
        process = self.processes[name]
        process.signal(signal.SIGTERM)
        code = process.wait(20)
        if code != 0:
            raise AssertionError("the coordinator's clean stop exited %s" % code)
        ran = subprocess.run([os.path.join(BIN_DIR, "pactctl"), "--json", "journal",
                              os.path.join(self.dir, name + ".journal.db")],
                             capture_output=True, text=True)
        if ran.returncode != 0 or '"unfinished":[]' not in ran.stdout:
            raise AssertionError("the journal holds unfinished decisions: " + ran.stdout
                                 + ran.stderr)

    def participant_pool(self, name):
        return transport.participant_pool("127.0.0.1", self.ports[name], self.operator, name)

    def participant_pool_as(self, name, client=None, role=None):
        """A pool to participant `name` whose caller is `client` holding
        `role` (as security_of); without a role, a stranger presenting no
        token and no certificate."""
        security = self.security_of(client, role) if role else transport.Security()
        return transport.participant_pool("127.0.0.1", self.ports[name], security, name)

    def open_branches(self, name):
        pool = self.participant_pool(name)
        try:
            return pool.call(lambda c: c.listBranches())
        finally:
            pool.close()

    def db_path(self, name):
        return os.path.join(self.dir, name + ".db")

    def store_path(self, name):
        return os.path.join(self.dir, name + ".inventory.db")

    query = staticmethod(query)  # the module's, for the tests that hold a cluster

    def balance(self, participant, account):
        return self.query(self.db_path(participant), "SELECT balance FROM accounts WHERE id = ?",
                          (account,))[0][0]

    def close(self):
        for process in reversed(list(self.processes.values())):
            process.kill()
        if os.environ.get("PACT_KEEP_TEST_FILES") == "1":
            print("kept", self.dir)
        else:
            shutil.rmtree(self.dir, ignore_errors=True)

    def logs(self):
        return "\n".join("---- %s\n%s" % (n, p.log_tail()) for n, p in self.processes.items())


class ClusterTestCase(unittest.TestCase):
    """A test case whose failure prints the end of its processes' logs
    (self.cluster's)."""

    def run(self, result=None):
        if result is None:
            return super().run(result)
        failed_before = len(result.errors) + len(result.failures)
        outcome = super().run(result)
        if len(result.errors) + len(result.failures) > failed_before and hasattr(self, "cluster"):
            print(self.cluster.logs())
        return outcome
