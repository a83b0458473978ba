"""Serving a Thrift service the way Pact's servers do (rpc/rpc_server.h):
framed binary protocol with the RPC read limits, one thread per connection
up to a cap, idle and per-frame timeouts, optional mutual TLS, and the
caller's identity held per connection for the handler to check (require).

A malformed frame closes its connection only; the server goes on serving
everyone else.
"""

import hmac
import logging
import signal
import socket
import ssl
import struct
import threading
import time

from thrift.transport import TTransport

from . import errors, transport

log = logging.getLogger("pact.server")

# What a connection that has not proved who it is may send in one frame:
# enough for authenticate (or a refused call), not 64 MiB to hold in memory.
UNIDENTIFIED_FRAME_BYTES = 64 << 10


class TokenTable:
    """The "<role> <token>" lines of a tokens file."""

    def __init__(self, path):
        self._tokens = transport.read_tokens(path)

    def roles_of(self, token):
        token = token.encode() if isinstance(token, str) else token
        # Every entry is compared, so the time taken says nothing of which matched.
        return {role for role, expected in self._tokens
                if hmac.compare_digest(token, expected.encode())}


class Caller:
    """Who holds one connection: a certificate's CN and roles (tls), a
    token's role, or every role on an open server."""

    def __init__(self, tls=False, name="", roles=(), identified=False, tokens=None):
        self.tls = tls
        self.name = name
        self.roles = set(roles)
        self.identified = identified
        self.tokens = tokens  # TokenTable when the connection must present a token

    def describe(self):
        if self.tls:
            return "certificate %r (roles %s)" % (self.name, ", ".join(sorted(self.roles)) or
                                                  "none")
        return "token of role %s" % (", ".join(sorted(self.roles)) or "none")


_local = threading.local()


def current_caller():
    """The Caller of the connection this thread serves; None outside a server."""
    return getattr(_local, "caller", None)


def require(*roles, what="this call"):
    """Raises Unauthenticated (no identity yet) or PermissionDenied (an
    identity without any of `roles`). Outside a server everything is allowed."""
    caller = current_caller()
    if caller is None or caller.roles & set(roles):
        return
    if not caller.identified:
        raise errors.Unauthenticated("%s: this server requires a token (authenticate first)"
                                     % what)
    raise errors.PermissionDenied("%s needs the role %s; the %s has not" % (
        what, " or ".join(roles), caller.describe()))


def require_as(role, name, what="this call"):
    """require(role), and with TLS the caller's certificate must be `name`'s:
    nobody acts under another's name."""
    require(role, what=what)
    caller = current_caller()
    if caller is not None and caller.tls and caller.name != name:
        raise errors.PermissionDenied("%s as %s %r: the caller's certificate names %r" % (
            what, role, name, caller.name))


def authenticate(token):
    """Participant/Coordinator.authenticate: the connection takes the token's
    role. A no-op with TLS or on an open server."""
    caller = current_caller()
    if caller is None or caller.tls or caller.tokens is None:
        return
    roles = caller.tokens.roles_of(token)
    if not roles:
        raise errors.Unauthenticated("authenticate: unknown token")
    caller.roles, caller.identified = roles, True


class _FrameRefused(Exception):
    """The peer broke the framing rules: close its connection."""


class ThriftServer:
    """Serves `processor` (a generated Processor) on host:port."""

    def __init__(self, processor, host, port, security=None, tokens_path=None,
                 max_connections=1024, idle_timeout_s=300.0, frame_timeout_s=30.0):
        self._processor = processor
        self._tls_context = security.server_context() if security and security.tls else None
        self._tokens = TokenTable(tokens_path) if tokens_path and not self._tls_context else None
        self._max_connections = max_connections
        self._idle_timeout_s = idle_timeout_s
        self._frame_timeout_s = frame_timeout_s
        self._stop = threading.Event()
        self._lock = threading.Lock()
        # guarded by _lock: socket being served -> its Caller (None until
        # its TLS handshake is done), oldest first
        self._connections = {}
        self._listener = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind((host, port))
        self._listener.listen(128)
        self._listener.settimeout(0.2)  # the accept loop looks at _stop this often
        self.host, self.port = self._listener.getsockname()[:2]

    def stop(self):
        self._stop.set()

    def stop_on_sigterm(self):
        """REQUIRES: called from the main thread."""
        signal.signal(signal.SIGTERM, lambda signum, frame: self.stop())

    def serve_forever(self):
        """Accepts until stop(); then closes every connection."""
        try:
            while not self._stop.is_set():
                try:
                    sock, peer = self._listener.accept()
                except socket.timeout:
                    continue
                except OSError as e:
                    if self._stop.is_set():
                        break
                    log.warning("accept failed: %s", e)
                    time.sleep(0.05)
                    continue
                self._admit(sock, peer)
        finally:
            self._listener.close()
            with self._lock:
                open_sockets = list(self._connections)
            for sock in open_sockets:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def _admit(self, sock, peer):
        """At the cap, a connection that has not proved who it is yet (no
        token, a handshake unfinished) makes room for the newcomer: strangers
        holding every slot cannot lock out those who can authenticate."""
        if self._tls_context is not None:
            # Wrapped now, the handshake left for its thread: the socket held
            # here is the one that thread serves, so closing it here ends it.
            try:
                sock = self._tls_context.wrap_socket(sock, server_side=True,
                                                     do_handshake_on_connect=False)
            except (ssl.SSLError, OSError) as e:
                log.info("connection from %s:%s ended: %s", peer[0], peer[1], e)
                sock.close()
                return
        evicted = None
        with self._lock:
            if len(self._connections) >= self._max_connections:
                evicted = next((s for s, caller in self._connections.items()
                                if caller is None or not caller.identified), None)
                if evicted is not None:
                    del self._connections[evicted]
            refused = len(self._connections) >= self._max_connections
            if not refused:
                self._connections[sock] = None
        if evicted is not None:
            log.warning("closed a connection that never proved who it is, to admit %s", peer)
            try:
                evicted.shutdown(socket.SHUT_RDWR)  # its thread sees the end and leaves
            except OSError:
                pass
        if refused:
            log.warning("refused a connection from %s: %d connections served already",
                        peer, self._max_connections)
            sock.close()
            return
        threading.Thread(target=self._serve_connection, args=(sock, peer), daemon=True,
                         name="rpc-%s:%s" % peer[:2]).start()

    def _serve_connection(self, served, peer):
        try:
            served.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self._tls_context is not None:
                # The handshake is bounded like a frame: a silent peer cannot pin us.
                served.settimeout(self._frame_timeout_s)
                served.do_handshake()
                name, roles = transport.peer_identity(served)
                _local.caller = Caller(tls=True, name=name, roles=roles, identified=True)
            elif self._tokens is not None:
                _local.caller = Caller(tokens=self._tokens)
            else:
                _local.caller = Caller(roles=transport.ROLES, identified=True)
            with self._lock:
                if served not in self._connections:
                    return  # evicted during its handshake
                self._connections[served] = _local.caller
            while not self._stop.is_set():
                request = self._read_frame(served, transport.MAX_FRAME_BYTES
                                           if _local.caller.identified
                                           else UNIDENTIFIED_FRAME_BYTES)
                if request is None:
                    break  # closed by the peer, between frames
                reply, keep_open = self._process(request, peer)
                served.settimeout(self._frame_timeout_s)
                served.sendall(struct.pack("!i", len(reply)) + reply)
                if not keep_open:
                    break
        except _FrameRefused as e:
            log.warning("closed the connection from %s:%s: %s", peer[0], peer[1], e)
        except (ssl.SSLError, socket.timeout, OSError) as e:
            log.info("connection from %s:%s ended: %s", peer[0], peer[1], e)
        finally:
            _local.caller = None
            with self._lock:
                self._connections.pop(served, None)
            try:
                served.close()
            except OSError:
                pass

    def _read_frame(self, sock, max_bytes):
        """One frame's bytes, None at a clean end. The idle timeout runs
        until a frame's first byte, the frame timeout from there on."""
        sock.settimeout(self._idle_timeout_s)
        try:
            first = sock.recv(1)
        except socket.timeout:
            raise _FrameRefused("idle for %g s" % self._idle_timeout_s)
        if not first:
            return None
        deadline = time.monotonic() + self._frame_timeout_s
        header = first + self._read_exactly(sock, 3, deadline)
        (length,) = struct.unpack("!i", header)
        if length <= 0 or length > max_bytes:
            # Refused before reading or allocating any of it.
            raise _FrameRefused("frame of %d bytes (limit %d)" % (length, max_bytes))
        return self._read_exactly(sock, length, deadline)

    def _read_exactly(self, sock, size, deadline):
        chunks, left = [], size
        while left > 0:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise _FrameRefused("a frame took longer than %g s" % self._frame_timeout_s)
            sock.settimeout(remaining)
            try:
                chunk = sock.recv(min(left, 1 << 20))
            except socket.timeout:
                raise _FrameRefused("a frame took longer than %g s" % self._frame_timeout_s)
            if not chunk:
                raise _FrameRefused("the connection closed within a frame")
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks)

    def _process(self, request, peer):
        """(reply bytes, whether the connection may stay open)."""
        out = TTransport.TMemoryBuffer()
        try:
            known = self._processor.process(
                transport.binary_protocol(TTransport.TMemoryBuffer(request)),
                transport.binary_protocol(out))
        except Exception as e:  # bad protocol data: the stream cannot be trusted any more
            raise _FrameRefused("malformed request: %s: %s" % (type(e).__name__, e))
        if not known:
            log.warning("closing the connection from %s:%s after a call of an unknown method",
                        peer[0], peer[1])
        return out.getvalue(), bool(known)
