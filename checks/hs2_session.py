"""One HiveServer2 attempt: socket (TLS) → SASL → OpenSession → query → fetch → close.

PyHive has no TLS option for the binary transport and no timeout, so the transport is built
here: thrift's ``TSSLSocket`` (or ``TSocket`` for ``tls: false``) with a socket timeout that
bounds connect, the TLS handshake and every read, wrapped in ``thrift_sasl`` PLAIN for
CUSTOM/LDAP/NONE. The socket is opened by us first: through PyHive, thrift 0.25 reports any
open failure as ``AttributeError: 'NoneType' object has no attribute 'settimeout'``.

Drivers are imported inside functions: importing this module costs nothing.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import ssl
import time
from dataclasses import dataclass, field
from typing import Any

from checks.base import ErrorKind

# thrift logs every failed connect at ERROR with a traceback; the check reports it instead.
logging.getLogger("thrift").setLevel(logging.CRITICAL)
logging.getLogger("thrift_sasl").setLevel(logging.CRITICAL)

AUTH_MARKERS = ("bad status: 3", "error validating the login", "authentication", "peer indicated failure")


@dataclass
class Target:
    host: str  # where to connect (after host_aliases)
    port: int
    server_hostname: str  # the name TLS verifies
    tls: Any  # TlsConfig or False
    auth: str
    username: str
    password: str | None
    query: str
    database: str
    timeout_s: float


@dataclass
class Attempt:
    ok: bool
    phase: str = "connect"
    kind: ErrorKind | None = None
    message: str = ""
    rows: int = 0
    latency_ms: float = 0.0
    _closers: list[Any] = field(default_factory=list, repr=False)

    def abort(self) -> None:
        """Called by the watchdog: closing the socket unblocks a thread stuck in a read."""
        for closer in list(self._closers):
            with contextlib.suppress(Exception):  # best effort: the attempt is already lost
                closer()


def ssl_context(tls: Any) -> ssl.SSLContext:
    if tls.verify:
        return ssl.create_default_context(cafile=tls.ca_file)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def run_attempt(t: Target, attempt: Attempt) -> Attempt:
    """Fill ``attempt`` in place (the watchdog may abort it from another thread)."""
    from pyhive import hive
    from thrift.transport import TSocket, TSSLSocket

    started = time.monotonic()
    timeout_ms = max(1.0, t.timeout_s * 1000.0)
    conn = cursor = None
    try:
        if t.tls is False:
            sock: Any = TSocket.TSocket(t.host, t.port)
        else:
            sock = TSSLSocket.TSSLSocket(t.host, t.port, ssl_context=ssl_context(t.tls),
                                         server_hostname=t.server_hostname)
        sock.setTimeout(timeout_ms)
        attempt._closers.append(sock.close)
        attempt.phase = "connect" if t.tls is False else "tls"
        sock.open()
        attempt.phase = "auth"
        if t.auth == "NOSASL":
            transport: Any = _opened_buffered(sock)
        else:
            import thrift_sasl

            password = t.password if t.password else "x"  # NONE: any non-empty password

            def factory() -> Any:
                return hive.get_installed_sasl(host=t.server_hostname, sasl_auth="PLAIN", service=None,
                                               username=t.username, password=password)

            transport = thrift_sasl.TSaslClientTransport(factory, "PLAIN", sock)
        attempt._closers.append(transport.close)
        conn = hive.connect(thrift_transport=transport, username=t.username, database=t.database)
        attempt.phase = "query"
        cursor = conn.cursor()
        cursor.execute(t.query)
        attempt.rows = len(cursor.fetchall())
        attempt.phase = "done"
        attempt.ok = True
    except Exception as exc:
        attempt.kind, attempt.message = classify(exc, attempt.phase)
    finally:
        for closer in (getattr(cursor, "close", None), getattr(conn, "close", None)):
            if closer is not None:
                with contextlib.suppress(Exception):  # the verdict is already made
                    closer()
        attempt.abort()
        attempt.latency_ms = (time.monotonic() - started) * 1000.0
    return attempt


def _opened_buffered_class() -> Any:
    from thrift.transport import TTransport

    class OpenedBuffered(TTransport.TBufferedTransport):  # type: ignore[misc]
        """A buffered transport over a socket we already opened (PyHive calls open() again)."""

        def open(self) -> None:
            if not self.isOpen():
                super().open()

    return OpenedBuffered


def _opened_buffered(sock: Any) -> Any:
    return _opened_buffered_class()(sock)


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    todo: list[BaseException | None] = [exc]
    while todo and len(seen) < 10:
        cur = todo.pop(0)
        if cur is None or any(cur is s for s in seen):
            continue
        seen.append(cur)
        todo += [getattr(cur, "inner", None), cur.__cause__, cur.__context__]
    return seen


def classify(exc: BaseException, phase: str) -> tuple[ErrorKind, str]:
    """Map a driver exception to an error kind and a short message (never a secret)."""
    chain = _chain(exc)
    text = " | ".join(f"{type(e).__name__}: {e}" for e in chain)
    low = text.lower()
    short = f"{type(exc).__name__}: {exc}"[:300]
    if any(isinstance(e, socket.timeout | TimeoutError) for e in chain) or "timed out" in low or "read timeout" in low:
        return ErrorKind.TIMEOUT, f"no answer in time during {phase} (server hung?)"
    for e in chain:
        if isinstance(e, ssl.SSLCertVerificationError | ssl.CertificateError):
            return ErrorKind.TLS, f"certificate not trusted: {e}"[:300]
        if isinstance(e, ssl.SSLError):
            return ErrorKind.TLS, f"TLS failed: {e}"[:300]
    for e in chain:
        if isinstance(e, ConnectionRefusedError):
            return ErrorKind.REFUSED, f"connection refused ({phase})"
        if isinstance(e, socket.gaierror):
            return ErrorKind.CONFIG, f"cannot resolve host: {e}"[:300]
        if isinstance(e, ConnectionResetError | BrokenPipeError):
            return ErrorKind.REFUSED, f"connection reset by the server ({phase})"
    if any(marker in low for marker in AUTH_MARKERS) and phase in ("auth", "connect", "tls"):
        return ErrorKind.AUTH, "login rejected (wrong user or password?)"
    if "read 0 bytes" in low or "eof occurred" in low:
        return ErrorKind.REFUSED, f"server closed the connection ({phase})"
    if phase == "query" or type(exc).__module__.startswith("pyhive"):
        return ErrorKind.QUERY, f"query failed: {_server_message(exc) or short}"[:300]
    if isinstance(exc, OSError):
        return ErrorKind.REFUSED, f"connection failed ({phase}): {short}"
    return ErrorKind.QUERY, f"server error in {phase}: {short}"


def _server_message(exc: BaseException) -> str | None:
    """PyHive raises OperationalError(response): the server's own words are in its status."""
    for arg in getattr(exc, "args", ()):
        status = getattr(arg, "status", None)
        message = getattr(status, "errorMessage", None)
        if message:
            return str(message)
    return None
