"""A TCP proxy that understands Thrift framing, for losing one message on
purpose: the request of a named method (the server never sees it) or its
reply (the server ran it, the caller never hears). Either way the proxy
then closes both sides of that connection, as a network cut would, so the
caller learns at once that the outcome is unknown. cluster/fault_proxy.h is
the C++ harness's richer version of this."""

import socket
import struct
import threading


def method_of(frame):
    """The method name of a framed binary-protocol message ("" if none)."""
    if len(frame) < 8:
        return ""
    (version,) = struct.unpack("!i", frame[:4])
    if version >= 0:  # not the strict binary protocol Pact speaks
        return ""
    (length,) = struct.unpack("!i", frame[4:8])
    return frame[8:8 + length].decode("utf-8", "replace")


def _read_frame(sock):
    header = b""
    while len(header) < 4:
        chunk = sock.recv(4 - len(header))
        if not chunk:
            return None
        header += chunk
    (length,) = struct.unpack("!i", header)
    body = b""
    while len(body) < length:
        chunk = sock.recv(min(length - len(body), 1 << 20))
        if not chunk:
            return None
        body += chunk
    return header + body


class FrameProxy:
    """Listens on 127.0.0.1:port and forwards each connection to upstream."""

    def __init__(self, upstream_port, port=0):
        self.upstream_port = upstream_port
        self._listener = socket.socket()
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", port))
        self._listener.listen(64)
        self.port = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._rules = []  # [what, set of methods, how many more to lose]
        self.lost = []    # (what, method), in order: what is "request" or "reply"
        threading.Thread(target=self._accept, daemon=True).start()

    def lose_request(self, *methods, times=1):
        """The next `times` requests of any of `methods` (e.g. "commit",
        "commitBatch": a call and its batch form) never reach the server."""
        with self._lock:
            self._rules.append(["request", set(methods), times])

    def lose_reply(self, *methods, times=1):
        """The server runs the next `times` calls of `methods`; their replies are lost."""
        with self._lock:
            self._rules.append(["reply", set(methods), times])

    def _take(self, what, method):
        with self._lock:
            for rule in self._rules:
                if rule[0] == what and method in rule[1] and rule[2] > 0:
                    rule[2] -= 1
                    self.lost.append((what, method))
                    return True
            return False

    def close(self):
        self._listener.close()

    def _accept(self):
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(("127.0.0.1", self.upstream_port), timeout=5)
                server.settimeout(None)
            except OSError:
                client.close()
                continue
            threading.Thread(target=self._pump, args=(client, server), daemon=True).start()

    def _pump(self, client, server):
        """Requests one at a time, each followed by its reply (Thrift calls
        on one connection are sequential)."""
        try:
            while True:
                request = _read_frame(client)
                if request is None:
                    return
                method = method_of(request[4:])
                if self._take("request", method):
                    return
                server.sendall(request)
                reply = _read_frame(server)
                if reply is None:
                    return
                if self._take("reply", method):
                    return
                client.sendall(reply)
        except OSError:
            return
        finally:
            for sock in (client, server):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                sock.close()
