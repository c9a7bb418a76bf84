"""One HiveServer2 attempt: TCP → TLS → SASL PLAIN → OpenSession → query → fetch → close.

PyHive has no TLS option for the binary transport and no timeout, so the transport is built
here. The socket is opened with the standard library, not through thrift, for three reasons:

- the errors stay clean: through PyHive, thrift 0.25 reports a failed open as
  ``AttributeError: 'NoneType' object has no attribute 'settimeout'`` and a wrong CA as
  ``Could not connect to any of [...]`` (the same text as a refused connection);
- the watchdog can reach the socket in every phase, the TLS handshake included (thrift only
  exposes its socket once the handshake is over), and shut it down to unblock the attempt;
- one socket timeout bounds connect, the handshake and every read.

:class:`SocketTransport` gives that socket the small interface thrift-sasl, thrift's buffered
transport and ``TBinaryProtocol`` use. Drivers are imported inside functions: importing this
module costs nothing (the Lambda loads PyHive only when a hiveserver2 check runs).
"""

from __future__ import annotations

import contextlib
import logging
import socket
import ssl
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from checks.base import ErrorKind
from checks.hs2_errors import classify

if TYPE_CHECKING:
    from checks.hiveserver2 import TlsConfig

# thrift logs every failed connect at ERROR with a traceback on stderr; the check reports it instead.
for _name in ("thrift", "thrift_sasl"):
    logging.getLogger(_name).setLevel(logging.CRITICAL)

WATCHDOG_SLACK_S = 0.2  # the watchdog fires this long after the socket timeout would have
NONE_AUTH_PASSWORD = "x"  # noqa: S105 - auth NONE: HiveServer2 wants any non-empty password (as PyHive sends)

Phase = Literal["connect", "tls", "auth", "session", "query", "close", "done"]


class ServerClosed(ConnectionError):
    """The server closed the connection (EOF where a reply was due)."""


@dataclass(frozen=True)
class Target:
    """Everything one attempt needs; ``password`` never shows in a repr."""

    host: str  # where to connect (after host_aliases)
    port: int
    server_hostname: str  # the name TLS verifies (the configured name, not the alias address)
    tls: TlsConfig | Literal[False]
    auth: str  # CUSTOM | LDAP | NONE | NOSASL
    username: str
    password: str | None = field(repr=False)
    query: str
    database: str
    timeout_s: float  # socket timeout; the watchdog adds WATCHDOG_SLACK_S
    eof_means_no_backend: bool = False  # see checks.hs2_errors.classify
    addresses: tuple[str, ...] = ()  # resolved addresses of ``host``, tried in order (as create_connection does)


@dataclass
class Attempt:
    """The outcome of one attempt, filled in place by the worker thread."""

    ok: bool = False
    phase: Phase = "connect"
    kind: ErrorKind | None = None
    message: str = ""
    rows: int = 0
    latency_ms: float = 0.0
    close_error: str | None = None  # a failed graceful close after a good query (verdict stays OK)
    _sockets: list[socket.socket] = field(default_factory=list, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def track(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.append(sock)

    def abort(self) -> None:
        """Shut the sockets down at TCP level: wakes a thread blocked in a read, even mid-handshake."""
        with self._lock:
            socks = list(self._sockets)
        for sock in socks:
            with contextlib.suppress(OSError):
                socket.socket.shutdown(sock, socket.SHUT_RDWR)  # not SSLSocket.shutdown: no TLS state touched
            with contextlib.suppress(OSError):
                sock.close()

    def to_dict(self, n: int) -> dict[str, Any]:
        """For ``observed["attempts"]``: what happened, never a secret (messages are scrubbed)."""
        return {"n": n, "ok": self.ok, "phase": self.phase, "latency_ms": round(self.latency_ms, 1),
                "error_kind": self.kind.value if self.kind else None, "error": self.message or None}


class SocketTransport:
    """thrift's transport interface over a socket opened (and timed) by us.

    Timeouts surface as ``TimeoutError`` and EOF as :class:`ServerClosed`, not as thrift
    exceptions whose text has to be parsed.
    """

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._open = True

    def isOpen(self) -> bool:
        return self._open

    def open(self) -> None:
        """Already connected; thrift-sasl and PyHive call this anyway."""

    def read(self, sz: int) -> bytes:
        data = self._sock.recv(sz)
        if not data:
            raise ServerClosed("the server closed the connection")
        return data

    def readAll(self, sz: int) -> bytes:
        chunks, have = [], 0
        while have < sz:
            chunk = self.read(sz - have)
            chunks.append(chunk)
            have += len(chunk)
        return b"".join(chunks)

    def write(self, buf: bytes) -> None:
        self._sock.sendall(buf)

    def flush(self) -> None:
        """Writes are unbuffered."""

    def close(self) -> None:
        self._open = False
        with contextlib.suppress(OSError):
            self._sock.close()


class AlreadyOpen:
    """Hands PyHive a transport whose login is done, so OpenSession is a phase of its own."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def open(self) -> None:
        """Opened (and logged in) by run_attempt."""

    def isOpen(self) -> bool:
        return bool(self._inner.isOpen())

    def close(self) -> None:
        self._inner.close()

    def read(self, sz: int) -> bytes:
        return bytes(self._inner.read(sz))

    def readAll(self, sz: int) -> bytes:
        return bytes(self._inner.readAll(sz))

    def write(self, buf: bytes) -> None:
        self._inner.write(buf)

    def flush(self) -> None:
        self._inner.flush()


def ssl_context(tls: TlsConfig) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=tls.ca_file)
    if not tls.verify:  # explicit ``verify: false`` only
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


def _login_transport(t: Target, sock: socket.socket) -> Any:
    """SASL PLAIN for CUSTOM/LDAP/NONE (NONE: any password, like PyHive), nothing for NOSASL."""
    from thrift.transport import TTransport

    raw = SocketTransport(sock)
    if t.auth == "NOSASL":
        return TTransport.TBufferedTransport(raw)
    import thrift_sasl
    from pyhive import hive

    password = t.password if t.auth in ("CUSTOM", "LDAP") else NONE_AUTH_PASSWORD

    def sasl_client() -> Any:
        return hive.get_installed_sasl(host=t.server_hostname, sasl_auth="PLAIN", service=None,
                                       username=t.username, password=password)

    return thrift_sasl.TSaslClientTransport(sasl_client, "PLAIN", raw)


def _connect(t: Target) -> socket.socket:
    """Connect to the first address that accepts. The addresses were resolved beforehand
    (bounded, ``monitor.core.resolve``), so nothing here waits on a resolver."""
    last: OSError | None = None
    for address in t.addresses or (t.host,):
        try:
            return socket.create_connection((address, t.port), timeout=t.timeout_s)
        except OSError as exc:
            last = exc
    assert last is not None
    raise last


def run_attempt(t: Target, a: Attempt) -> None:
    """Fill ``a`` in place (the watchdog may abandon it and abort its socket from another thread)."""
    started = time.monotonic()
    try:
        from pyhive import hive

        a.phase = "connect"
        sock = _connect(t)
        a.track(sock)
        # thrift-sasl sends START and the PLAIN response as two small writes before reading:
        # with Nagle's algorithm and the server's delayed ACK that costs up to 40 ms per login.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if t.tls is not False:
            a.phase = "tls"
            sock = ssl_context(t.tls).wrap_socket(sock, server_hostname=t.server_hostname,
                                                  do_handshake_on_connect=False)
            a.track(sock)
            sock.do_handshake()
        a.phase = "auth"
        transport = _login_transport(t, sock)
        transport.open()
        a.phase = "session"
        conn = hive.connect(thrift_transport=AlreadyOpen(transport), username=t.username, database=t.database)
        a.phase = "query"
        cursor = conn.cursor()
        cursor.execute(t.query)
        a.rows = len(cursor.fetchall()) if cursor.description is not None else 0  # e.g. a ``USE db`` health query
        a.phase = "close"
        a.ok = True
        try:  # graceful: CloseOperation + CloseSession, so the server frees them at once
            cursor.close()
            conn.close()
        except Exception as exc:
            a.close_error = f"{type(exc).__name__}"
        a.phase = "done"
    except Exception as exc:
        a.kind, a.message = classify(exc, a.phase, t.timeout_s, t.password,
                                     eof_means_no_backend=t.eof_means_no_backend)
    finally:
        a.abort()
        a.latency_ms = (time.monotonic() - started) * 1000.0


def run_bounded(t: Target) -> Attempt:
    """Run one attempt in a daemon thread under a hard deadline.

    The socket timeout bounds each read; a server that trickles a byte now and then would
    never trip it, so past ``timeout_s`` + slack the watchdog shuts the socket down and
    reports a timeout. The worker then fails on its own and ends (it is never joined).
    """
    a = Attempt()
    worker = threading.Thread(target=run_attempt, args=(t, a), name="hs2-attempt", daemon=True)
    started = time.monotonic()
    worker.start()
    worker.join(t.timeout_s + WATCHDOG_SLACK_S)
    if not worker.is_alive():
        return a
    elapsed_ms = (time.monotonic() - started) * 1000.0
    ok, phase, rows = a.ok, a.phase, a.rows
    a.abort()
    if ok:  # the query answered; only the graceful close hung: still a healthy answer
        return Attempt(ok=True, phase="close", rows=rows, latency_ms=elapsed_ms,
                       close_error="no answer to CloseOperation/CloseSession")
    return Attempt(phase=phase, kind=ErrorKind.TIMEOUT, latency_ms=elapsed_ms,
                   message=f"no answer within {t.timeout_s:.1f} s during {phase} (watchdog)")
