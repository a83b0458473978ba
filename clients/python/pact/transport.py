"""Connections to Pact's servers: framed binary Thrift over TCP, optionally
mutual TLS, with a token presented first when the cluster uses tokens.

Security says how this process proves who it is (README, "Security model"):
a certificate (CN = name, one O entry per role) or a role's token, or neither
for an open cluster. With TLS a connection also checks whom it reached: the
server's certificate must name the host dialled, hold the expected role and,
when a name is expected, carry it as its CN.

Pool keeps idle connections to one server; CoordinatorRoute goes to the
active coordinator of a shard, following a standby's NOT_LEADER. Neither ever
repeats a call whose answer was lost: the caller decides (only idempotent
calls are asked again).
"""

import select
import socket
import ssl
import threading
import time

from thrift.Thrift import TApplicationException
from thrift.protocol import TBinaryProtocol
from thrift.transport import TTransport

from pact_rpc import Coordinator, Participant
from pact_rpc.ttypes import PactError as WireError

from . import errors

# The limits Pact's own servers apply to what they read (rpc/rpc_limits.h).
MAX_FRAME_BYTES = 64 << 20
MAX_STRING_BYTES = 16 << 20
MAX_CONTAINER_ITEMS = 1 << 20

ROLES = ("application", "coordinator", "participant", "operator")

# An idle connection older than this is closed rather than used: the server
# may have timed it out (its --rpc_idle_timeout_ms) just as a call goes out.
MAX_IDLE_S = 60.0


def parse_address(address):
    """"host:port" -> (host, port); InvalidArgument when malformed."""
    host, sep, port = address.strip().rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise errors.InvalidArgument("bad address %r: expected host:port" % address)
    return host.strip("[]"), int(port)


def parse_addresses(addresses):
    """"host:port,host:port" (or a list of them) -> [(host, port), ...]."""
    if isinstance(addresses, str):
        addresses = addresses.split(",")
    parsed = [parse_address(a) for a in addresses]
    if not parsed:
        raise errors.InvalidArgument("no address given")
    return parsed


MIN_TOKEN_CHARS = 16


def read_tokens(tokens_path):
    """[(role, token)] of a tokens file: "<role> <token>" lines, '#' starts a
    comment, tokens of MIN_TOKEN_CHARS or more (as rpc/rpc_auth.h reads it)."""
    tokens = []
    with open(tokens_path) as f:
        for number, line in enumerate(f, 1):
            fields = line.split("#", 1)[0].split()
            if not fields:
                continue
            if len(fields) != 2 or fields[0] not in ROLES:
                raise errors.InvalidArgument("%s:%d: expected '<role> <token>'"
                                             % (tokens_path, number))
            if len(fields[1]) < MIN_TOKEN_CHARS:
                raise errors.InvalidArgument("%s:%d: a token needs %d characters or more"
                                             % (tokens_path, number, MIN_TOKEN_CHARS))
            tokens.append((fields[0], fields[1]))
    if not tokens:
        raise errors.InvalidArgument("%s holds no tokens" % tokens_path)
    return tokens


def load_token(tokens_path, role):
    """The token of `role` in a tokens file."""
    for holder, token in read_tokens(tokens_path):
        if holder == role:
            return token
    raise errors.InvalidArgument("%s holds no token for role %s" % (tokens_path, role))


def peer_identity(ssl_socket):
    """(CN, set of roles) of the certificate the peer presented."""
    cert = ssl_socket.getpeercert() or {}
    name, roles = "", set()
    for rdn in cert.get("subject", ()):
        for key, value in rdn:
            if key == "commonName":
                name = value
            elif key == "organizationName" and value in ROLES:
                roles.add(value)
    return name, roles


class Security:
    """How this process proves who it is, and checks whom it reached."""

    def __init__(self, tls_cert_path=None, tls_key_path=None, tls_ca_path=None, token=None):
        tls = [tls_cert_path, tls_key_path, tls_ca_path]
        if any(tls) and not all(tls):
            raise errors.InvalidArgument(
                "TLS needs all of tls_cert_path, tls_key_path and tls_ca_path")
        if all(tls) and token:
            raise errors.InvalidArgument("use TLS or a token, not both")
        self.token = token
        self.tls_files = tls if all(tls) else None
        self._client_context = None
        if self.tls_files:
            self._client_context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            self._client_context.minimum_version = ssl.TLSVersion.TLSv1_2
            self._client_context.load_verify_locations(cafile=tls_ca_path)
            self._client_context.load_cert_chain(tls_cert_path, tls_key_path)

    @classmethod
    def from_flags(cls, tls_cert_path=None, tls_key_path=None, tls_ca_path=None,
                   auth_tokens_path=None, role="application"):
        """As Pact's programs take it: certificate files, or the tokens file
        from which this process presents its role's token."""
        token = load_token(auth_tokens_path, role) if auth_tokens_path else None
        return cls(tls_cert_path, tls_key_path, tls_ca_path, token)

    @property
    def tls(self):
        return self.tls_files is not None

    def server_context(self):
        """For a server of this process: mutual TLS, clients must present a
        certificate of the cluster's CA."""
        cert, key, ca = self.tls_files
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(cafile=ca)
        context.load_cert_chain(cert, key)
        return context

    def wrap_client(self, sock, host):
        return self._client_context.wrap_socket(sock, server_hostname=host)


class _SocketTransport(TTransport.TTransportBase):
    """A connected (maybe TLS) socket as a Thrift transport."""

    def __init__(self, sock):
        self.sock = sock

    def isOpen(self):
        return self.sock is not None

    def read(self, size):
        data = self.sock.recv(size)
        if not data:
            raise TTransport.TTransportException(TTransport.TTransportException.END_OF_FILE,
                                                 "the server closed the connection")
        return data

    def write(self, data):
        self.sock.sendall(data)

    def flush(self):
        pass

    def close(self):
        if self.sock is not None:
            try:
                self.sock.close()
            finally:
                self.sock = None


def binary_protocol(transport):
    """The protocol Pact speaks, with the read limits its servers apply."""
    return TBinaryProtocol.TBinaryProtocolAccelerated(
        transport, string_length_limit=MAX_STRING_BYTES,
        container_length_limit=MAX_CONTAINER_ITEMS)


class Connection:
    """One connection to a server, holding a generated client."""

    def __init__(self, client_class, host, port, security, server_role, server_name,
                 connect_timeout_ms, timeout_ms):
        sock = socket.create_connection((host, port), timeout=connect_timeout_ms / 1000.0)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if security.tls:
                try:
                    sock = security.wrap_client(sock, host)
                except ssl.SSLCertVerificationError as e:
                    # Not a network failure: whoever answers is not trusted.
                    raise errors.Unauthenticated("%s:%d: %s" % (host, port, e.verify_message))
                name, roles = peer_identity(sock)
                if server_role not in roles or (server_name and name != server_name):
                    raise errors.Unauthenticated(
                        "%s:%d presented the certificate of %r (roles %s), not of %s %s" % (
                            host, port, name, ", ".join(sorted(roles)) or "none", server_role,
                            server_name or "(any)"))
            sock.settimeout(timeout_ms / 1000.0)
        except BaseException:
            sock.close()
            raise
        self.server_name = server_name
        self._transport = TTransport.TFramedTransport(_SocketTransport(sock))
        self.client = client_class(binary_protocol(self._transport))
        self._sock = sock
        if security.token:
            try:
                self.client.authenticate(security.token)
            except BaseException:
                self.close()
                raise

    def set_timeout(self, timeout_ms):
        self._sock.settimeout(timeout_ms / 1000.0)

    def looks_alive(self):
        """An idle connection has nothing to read: readable means the server
        closed it (it restarted, or timed the connection out), or bytes of a
        reply nobody asked for. A call must never go into such a connection:
        execute is not idempotent, so a call lost there is lost for good."""
        if isinstance(self._sock, ssl.SSLSocket) and self._sock.pending():
            return False
        poller = select.poll()  # not select(): descriptors may be above 1024
        poller.register(self._sock, select.POLLIN | select.POLLPRI)
        return not poller.poll(0)

    def close(self):
        self._transport.close()


def _unavailable(host, port, exc):
    return errors.Unavailable("%s:%d: %s" % (host, port, exc or type(exc).__name__))


class Pool:
    """Idle connections to one server. call(fn) runs fn(client) on one of
    them and maps every failure to a pact.errors exception: the server's own
    answer to its class, a broken connection or timeout to Unavailable (the
    call may or may not have run)."""

    def __init__(self, client_class, host, port, security, server_role, server_name=None,
                 connect_timeout_ms=2000, timeout_ms=10000):
        self.host, self.port = host, port
        self.address = "%s:%d" % (host, port)
        self._args = (client_class, host, port, security, server_role)
        self._server_name = server_name
        self._connect_timeout_ms = connect_timeout_ms
        self._timeout_ms = timeout_ms
        self._idle = []
        self._closed = False
        self._lock = threading.Lock()

    def call(self, fn, timeout_ms=None, server_name=None):
        server_name = server_name or self._server_name
        conn = self._take(server_name)
        timeout_ms = timeout_ms or self._timeout_ms
        if timeout_ms != self._timeout_ms:
            conn.set_timeout(timeout_ms)
        # The generated exception is immutable: it must not become the
        # __context__ of the one raised here (tracebacks get attached to it).
        refused = None
        try:
            result = fn(conn.client)
        except WireError as e:
            refused = e
        except TApplicationException as e:
            conn.close()  # the server failed this call; its state is unknown
            raise errors.Internal("%s: %s" % (self.address, e.message))
        except (OSError, EOFError, TTransport.TTransportException) as e:
            conn.close()
            raise _unavailable(self.host, self.port, e)
        except BaseException:
            conn.close()
            raise
        self._give_back(conn, timeout_ms)
        if refused is not None:
            raise errors.from_wire(refused)
        return result

    def close(self):
        """Closes the idle connections, and those of calls still running as
        they end."""
        with self._lock:
            idle, self._idle, self._closed = self._idle, [], True
        for conn in idle:
            conn.close()

    def _take(self, server_name):
        # One look at the socket per call: a server that restarted even a
        # moment ago must not receive a call into the void.
        now = time.monotonic()
        with self._lock:
            stale = [c for c in self._idle if now - c.idle_since > MAX_IDLE_S]
            if stale:
                self._idle = [c for c in self._idle if now - c.idle_since <= MAX_IDLE_S]
            for i in range(len(self._idle) - 1, -1, -1):
                if self._idle[i].server_name == server_name:
                    conn = self._idle.pop(i)
                    if conn.looks_alive():
                        break
                    stale.append(conn)
            else:
                conn = None
        for dead in stale:
            dead.close()
        if conn is not None:
            return conn
        refused = None
        try:
            return Connection(*self._args, server_name, self._connect_timeout_ms,
                              self._timeout_ms)
        except WireError as e:  # the token was refused
            refused = e
        except errors.PactError:
            raise
        except (OSError, EOFError, TTransport.TTransportException) as e:
            raise _unavailable(self.host, self.port, e) from None
        raise errors.from_wire(refused)

    def _give_back(self, conn, timeout_ms):
        if timeout_ms != self._timeout_ms:
            conn.set_timeout(self._timeout_ms)
        conn.idle_since = time.monotonic()
        with self._lock:
            if not self._closed:
                self._idle.append(conn)
                return
        conn.close()


def participant_pool(host, port, security, name, **timeouts):
    """A pool to the participant registered as `name`."""
    return Pool(Participant.Client, host, port, security, "participant", name, **timeouts)


class CoordinatorRoute:
    """The way to a shard's active coordinator, given the addresses of its
    active and standbys. Calls go to the one that last answered as the
    active; a standby's NOT_LEADER is followed to the active it names; an
    address that does not answer is left for the next one, from the next
    call on (the failed call raises Unavailable)."""

    MAX_HOPS = 3

    def __init__(self, addresses, security, connect_timeout_ms=2000, timeout_ms=10000):
        self._security = security
        self._timeouts = dict(connect_timeout_ms=connect_timeout_ms, timeout_ms=timeout_ms)
        self._pools = []
        self._current = 0
        self._lock = threading.Lock()
        with self._lock:
            for host, port in parse_addresses(addresses):
                self._index_of(host, port)

    @property
    def address_count(self):
        with self._lock:
            return len(self._pools)

    @property
    def current_address(self):
        with self._lock:
            return self._pools[self._current].address

    def call(self, fn, timeout_ms=None, server_name=None):
        """fn(pact_rpc.Coordinator.Client) at the active. server_name: with
        TLS, the coordinator's certificate must carry it as CN."""
        last = None
        for _ in range(self.MAX_HOPS):
            with self._lock:
                pool = self._pools[self._current]
            try:
                return pool.call(fn, timeout_ms, server_name)
            except errors.NotLeader as e:
                last = e
                if not self._follow(pool, e.leader):
                    break
            except errors.Unavailable:
                self._move_on(pool)
                raise
        raise errors.NotLeader("no active coordinator answered: %s" % (last.message if last
                                                                           else "no hop"))

    def call_repeatable(self, fn, timeout_ms=None, server_name=None):
        """call() for a call that is safe to ask again (info, reserving ids):
        every address gets its turn, so a take-over that left the route on
        the dead active costs no failure."""
        for attempt in range(self.address_count):
            try:
                return self.call(fn, timeout_ms, server_name)
            except errors.Unavailable:
                if attempt + 1 == self.address_count:
                    raise

    def close(self):
        with self._lock:
            pools = list(self._pools)
        for pool in pools:
            pool.close()

    def _move_on(self, failed):
        with self._lock:
            if self._pools[self._current] is failed:
                self._current = (self._current + 1) % len(self._pools)

    def _follow(self, standby, leader):
        with self._lock:
            if self._pools[self._current] is not standby:
                return True  # someone moved on already
            try:
                host, port = parse_address(leader or "")
            except errors.InvalidArgument:
                # No active known yet (a take-over in progress): the call did
                # not run, so it may go on to the next address now.
                self._current = (self._current + 1) % len(self._pools)
                return len(self._pools) > 1
            active = self._index_of(host, port)
            if self._pools[active] is standby:
                return False  # it names itself: nowhere to go
            self._current = active
            return True

    def _index_of(self, host, port):  # REQUIRES: self._lock held
        for i, pool in enumerate(self._pools):
            if pool.host == host and pool.port == port:
                return i
        self._pools.append(Pool(Coordinator.Client, host, port, self._security, "coordinator",
                                **self._timeouts))
        return len(self._pools) - 1
