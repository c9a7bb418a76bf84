"""A HiveServer2-protocol server on 127.0.0.1 for tests: no Java, starts in milliseconds.

It speaks what a HiveServer2 in binary transport mode speaks, using the Thrift service
definitions PyHive ships (``TCLIService``): optional TLS, then SASL PLAIN (the thrift-sasl
framing, implemented here) or NOSASL, then the TCLIService RPCs a client needs for one query
(OpenSession, ExecuteStatement, GetOperationStatus, GetResultSetMetadata, FetchResults,
CloseOperation, CloseSession). Failures are switched at runtime with ``server.mode``, so one
server can be healthy, then broken the way production breaks, then healthy again:

- ``ok``: answers; ``SHOW DATABASES`` (any statement but ``USE``) returns ``server.rows``.
- ``reject_login``: SASL BAD status 3 ``Error validating the login`` (what Hive sends for a wrong
  password; a wrong user/password in ``ok`` mode gets the same).
- ``query_error``: ExecuteStatement answers an error status (PyHive raises OperationalError);
  ``USE <db>`` (sent by PyHive while connecting) still succeeds. ``fail_queries(n)`` does the
  same for the next ``n`` queries only (a server that recovers between two attempts).
- ``hang_before_tls``: accepts TCP and reads, but never starts the TLS handshake (a frozen JVM:
  the kernel still accepts).
- ``hang_after_connect``: TLS and login succeed, then no RPC is ever answered.
- ``trickle``: TLS and login succeed, then the reply to OpenSession arrives one byte every
  ``TRICKLE_INTERVAL_S``: no single read ever times out, only a deadline on the whole attempt ends it.
- ``stop()``: the port is closed, connections are refused; ``start()`` listens again on the same port.

Every thread is a daemon, the number of connections is bounded, hung connections are
released by ``stop()`` and every count a test may assert (logins, queries, open connections,
connections the client closed) is in ``server.stats``. The module does not import pytest, so
it can be reused outside tests (e.g. a local demo).
"""

from __future__ import annotations

import contextlib
import logging
import socket
import ssl
import struct
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from TCLIService import TCLIService, ttypes
from thrift.protocol import TBinaryProtocol
from thrift.transport.TTransport import TTransportBase, TTransportException

from tests.hs2.certs import Pki

Mode = Literal["ok", "reject_login", "query_error", "hang_before_tls", "hang_after_connect", "trickle"]
MODES: tuple[Mode, ...] = ("ok", "reject_login", "query_error", "hang_before_tls", "hang_after_connect", "trickle")
ServerAuth = Literal["PLAIN", "NONE", "NOSASL"]  # PLAIN checks user/password (CUSTOM/LDAP); NONE accepts any

# thrift-sasl negotiation status bytes (thrift_sasl.TSaslClientTransport)
SASL_START, SASL_OK, SASL_BAD, SASL_ERROR, SASL_COMPLETE = 1, 2, 3, 4, 5
LOGIN_REJECTED = b"Error validating the login"  # HiveServer2's text, which clients match on

HANDSHAKE_TIMEOUT_S = 10.0  # a client that stalls its own handshake cannot pin a thread for long
IDLE_TIMEOUT_S = 60.0  # a connection idle this long is dropped (tests are far shorter)
ACCEPT_POLL_S = 0.05  # how fast the accept loop notices stop()
TRICKLE_INTERVAL_S = 0.2
MAX_FRAME = 16 * 1024 * 1024

log = logging.getLogger(__name__)


class ClientGone(Exception):
    """The client closed the connection (EOF) or it was reset."""


@dataclass
class ServerStats:
    """What the server saw. Read it under ``server.lock`` or through ``server.snapshot()``."""

    connections: int = 0  # accepted TCP connections
    rejected_connections: int = 0  # over max_connections
    open_connections: int = 0  # currently being served
    client_closes: int = 0  # connections that ended because the client closed them
    tls_failures: int = 0  # handshakes that failed (e.g. the client did not trust the certificate)
    logins_ok: int = 0
    logins_failed: int = 0
    login_users: list[str] = field(default_factory=list)  # users that tried (never passwords)
    sessions_opened: int = 0
    sessions_closed: int = 0
    statements: list[str] = field(default_factory=list)  # every ExecuteStatement, USE included
    queries: list[str] = field(default_factory=list)  # statements other than USE (the health queries)
    fetches: int = 0
    operations_closed: int = 0


class _Stream:
    """Exact reads over a (possibly TLS) socket; EOF and resets become ``ClientGone``."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    def recv_some(self, n: int) -> bytes:
        try:
            data = self.sock.recv(n)
        except (ConnectionResetError, BrokenPipeError, ssl.SSLEOFError) as exc:
            raise ClientGone(str(exc)) from exc
        if not data:
            raise ClientGone("EOF")
        return data

    def recv_exact(self, n: int) -> bytes:
        chunks: list[bytes] = []
        while n > 0:
            chunk = self.recv_some(n)
            chunks.append(chunk)
            n -= len(chunk)
        return b"".join(chunks)

    def send(self, data: bytes) -> None:
        try:
            self.sock.sendall(data)
        except (ConnectionResetError, BrokenPipeError, ssl.SSLEOFError) as exc:
            raise ClientGone(str(exc)) from exc


class _ServerTransport(TTransportBase):  # type: ignore[misc]  # thrift is untyped
    """The Thrift transport after login: SASL-framed (4-byte length + payload, both ways) or raw (NOSASL)."""

    def __init__(self, stream: _Stream, *, framed: bool) -> None:
        self._stream = stream
        self._framed = framed
        self._rbuf = b""
        self._wbuf: list[bytes] = []

    def isOpen(self) -> bool:
        return True

    def read(self, sz: int) -> bytes:
        if not self._framed:
            try:
                return self._stream.recv_some(sz)
            except ClientGone as exc:
                raise TTransportException(TTransportException.END_OF_FILE, "client closed") from exc
        if not self._rbuf:
            try:
                (length,) = struct.unpack(">I", self._stream.recv_exact(4))
                if length > MAX_FRAME:
                    raise TTransportException(TTransportException.SIZE_LIMIT, f"frame of {length} bytes")
                self._rbuf = self._stream.recv_exact(length)
            except ClientGone as exc:
                raise TTransportException(TTransportException.END_OF_FILE, "client closed") from exc
        out, self._rbuf = self._rbuf[:sz], self._rbuf[sz:]
        return out

    def write(self, buf: bytes) -> None:
        self._wbuf.append(buf)

    def flush(self) -> None:
        data = b"".join(self._wbuf)
        self._wbuf = []
        self._stream.send(struct.pack(">I", len(data)) + data if self._framed else data)


def _ok_status() -> Any:
    return ttypes.TStatus(statusCode=ttypes.TStatusCode.SUCCESS_STATUS)


def _handle() -> Any:
    return ttypes.THandleIdentifier(guid=uuid.uuid4().bytes, secret=uuid.uuid4().bytes)


class _Handler:
    """TCLIService.Iface, the part a client needs for one query (duck-typed: Iface is untyped)."""

    def __init__(self, server: HiveServer2TestServer) -> None:
        self.server = server
        self._results: dict[bytes, list[str]] = {}  # operation guid -> rows not yet fetched

    def OpenSession(self, req: Any) -> Any:
        with self.server.lock:
            self.server.stats.sessions_opened += 1
        return ttypes.TOpenSessionResp(status=_ok_status(), serverProtocolVersion=req.client_protocol,
                                       sessionHandle=ttypes.TSessionHandle(sessionId=_handle()), configuration={})

    def CloseSession(self, req: Any) -> Any:
        with self.server.lock:
            self.server.stats.sessions_closed += 1
        return ttypes.TCloseSessionResp(status=_ok_status())

    def ExecuteStatement(self, req: Any) -> Any:
        statement = str(req.statement)
        is_use = statement.strip().lower().startswith("use ")
        with self.server.lock:
            self.server.stats.statements.append(statement)
            if not is_use:
                self.server.stats.queries.append(statement)
            rows = list(self.server.rows)
        if not is_use and self.server.take_query_failure():
            return ttypes.TExecuteStatementResp(status=ttypes.TStatus(
                statusCode=ttypes.TStatusCode.ERROR_STATUS, sqlState="08S01", errorCode=40000,
                errorMessage="Error while compiling statement: FAILED: SemanticException metastore unavailable",
            ))
        op = _handle()
        if not is_use:
            self._results[op.guid] = rows
        return ttypes.TExecuteStatementResp(status=_ok_status(), operationHandle=ttypes.TOperationHandle(
            operationId=op, operationType=ttypes.TOperationType.EXECUTE_STATEMENT, hasResultSet=not is_use))

    def GetOperationStatus(self, req: Any) -> Any:
        return ttypes.TGetOperationStatusResp(status=_ok_status(), operationState=ttypes.TOperationState.FINISHED_STATE,
                                              hasResultSet=req.operationHandle.hasResultSet)

    def GetResultSetMetadata(self, req: Any) -> Any:
        column = ttypes.TColumnDesc(
            columnName="database_name", position=1,
            typeDesc=ttypes.TTypeDesc(types=[ttypes.TTypeEntry(
                primitiveEntry=ttypes.TPrimitiveTypeEntry(type=ttypes.TTypeId.STRING_TYPE))]),
        )
        return ttypes.TGetResultSetMetadataResp(status=_ok_status(), schema=ttypes.TTableSchema(columns=[column]))

    def FetchResults(self, req: Any) -> Any:
        rows = self._results.pop(req.operationHandle.operationId.guid, [])  # all rows at once, then none
        with self.server.lock:
            self.server.stats.fetches += 1
        column = ttypes.TColumn(stringVal=ttypes.TStringColumn(values=rows, nulls=b""))
        return ttypes.TFetchResultsResp(status=_ok_status(), hasMoreRows=False,
                                        results=ttypes.TRowSet(startRowOffset=0, rows=[], columns=[column]))

    def CloseOperation(self, req: Any) -> Any:
        self._results.pop(req.operationHandle.operationId.guid, None)
        with self.server.lock:
            self.server.stats.operations_closed += 1
        return ttypes.TCloseOperationResp(status=_ok_status())

    def CancelOperation(self, req: Any) -> Any:
        self._results.pop(req.operationHandle.operationId.guid, None)
        return ttypes.TCancelOperationResp(status=_ok_status())


class HiveServer2TestServer:
    """See the module docstring. Use as a context manager or ``start()`` / ``stop()``."""

    def __init__(
        self,
        pki: Pki | None,
        *,
        tls: bool = True,
        auth: ServerAuth = "PLAIN",
        username: str = "rcapp",
        password: str = "",
        rows: Sequence[str] = ("default", "sales", "staging"),
        max_connections: int = 16,
        port: int = 0,
    ) -> None:
        if tls and pki is None:
            raise ValueError("tls=True needs a Pki (tests.hs2.certs.make_pki)")
        if auth == "PLAIN" and not password:
            raise ValueError("auth PLAIN needs a password")
        self.host = "127.0.0.1"
        self.port = port
        self.tls = tls
        self.auth: ServerAuth = auth
        self.username = username
        self.password = password  # may be changed at runtime (password rotation)
        self.rows = list(rows)
        self.pki = pki
        self.mode: Mode = "ok"
        self._failures_left = 0
        self.lock = threading.Lock()
        self.stats = ServerStats()
        self._max_connections = max_connections
        self._ssl: ssl.SSLContext | None = None
        if tls and pki is not None:
            self._ssl = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self._ssl.load_cert_chain(pki.cert_pem, pki.key_pem)
        self._listener: socket.socket | None = None
        self._stopping = threading.Event()
        self._accept_thread: threading.Thread | None = None
        self._conns: set[socket.socket] = set()
        self._threads: set[threading.Thread] = set()

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> HiveServer2TestServer:
        if self._listener is not None:
            return self
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((self.host, self.port))
        listener.listen(64)
        listener.settimeout(ACCEPT_POLL_S)
        self.port = listener.getsockname()[1]  # later start()s reuse the same port
        self._listener = listener
        self._stopping.clear()
        self._accept_thread = threading.Thread(target=self._accept_loop, args=(listener,),
                                               name=f"hs2-accept-{self.port}", daemon=True)
        self._accept_thread.start()
        return self

    def stop(self, timeout_s: float = 2.0) -> None:
        """Close the port (new connections are refused) and drop every open connection."""
        self._stopping.set()
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.close()
        if self._accept_thread is not None:
            self._accept_thread.join(timeout_s)
            self._accept_thread = None
        with self.lock:
            conns, threads = list(self._conns), list(self._threads)
        for conn in conns:
            _shutdown(conn)
        until = time.monotonic() + timeout_s
        for thread in threads:
            thread.join(max(0.0, until - time.monotonic()))

    def __enter__(self) -> HiveServer2TestServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._listener is not None

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def snapshot(self) -> ServerStats:
        """A copy of the counters, safe to inspect while the server runs."""
        with self.lock:
            s = self.stats
            return ServerStats(**{**s.__dict__, "login_users": list(s.login_users),
                                  "statements": list(s.statements), "queries": list(s.queries)})

    def fail_queries(self, n: int) -> None:
        """The next ``n`` health queries (not ``USE``) fail as in ``query_error`` mode."""
        with self.lock:
            self._failures_left = n

    def take_query_failure(self) -> bool:
        """Should this query fail? (``query_error`` mode, or one of the ``fail_queries`` budget)."""
        with self.lock:
            if self._failures_left > 0:
                self._failures_left -= 1
                return True
        return self.mode == "query_error"

    def wait_idle(self, timeout_s: float = 2.0) -> bool:
        """True once no connection is open (every client has closed or been dropped)."""
        until = time.monotonic() + timeout_s
        while time.monotonic() < until:
            with self.lock:
                if self.stats.open_connections == 0:
                    return True
            time.sleep(0.01)
        with self.lock:
            return self.stats.open_connections == 0

    # ------------------------------------------------------------------ connections
    def _accept_loop(self, listener: socket.socket) -> None:
        while not self._stopping.is_set():
            try:
                raw, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return  # the listener was closed by stop()
            with self.lock:
                self.stats.connections += 1
                if len(self._conns) >= self._max_connections:
                    self.stats.rejected_connections += 1
                    raw.close()
                    continue
                self.stats.open_connections += 1
                self._conns.add(raw)
            thread = threading.Thread(target=self._serve, args=(raw,), name=f"hs2-conn-{self.port}", daemon=True)
            with self.lock:
                self._threads.add(thread)
            thread.start()

    def _serve(self, raw: socket.socket) -> None:
        sock = raw
        try:
            raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            raw.settimeout(HANDSHAKE_TIMEOUT_S)
            if self.mode == "hang_before_tls":
                self._drain(raw)
                return
            if self._ssl is not None:
                sock = self._ssl.wrap_socket(raw, server_side=True, do_handshake_on_connect=False)
                self._replace(raw, sock)
                try:
                    sock.do_handshake()
                except (ssl.SSLError, OSError):
                    with self.lock:
                        self.stats.tls_failures += 1
                    return
            sock.settimeout(IDLE_TIMEOUT_S)
            stream = _Stream(sock)
            if self.auth != "NOSASL" and not self._sasl_login(stream):
                return
            self._rpc_loop(stream)
        except ClientGone:
            if not self._stopping.is_set():
                with self.lock:
                    self.stats.client_closes += 1
        except OSError:
            pass  # dropped by stop(), idle timeout, or the client vanished mid-write
        except Exception:
            log.exception("hs2 test server: connection failed")
        finally:
            with contextlib.suppress(OSError):
                sock.close()
            with self.lock:
                self._conns.discard(sock)
                self._conns.discard(raw)
                self._threads.discard(threading.current_thread())
                self.stats.open_connections -= 1

    def _replace(self, old: socket.socket, new: socket.socket) -> None:
        with self.lock:
            self._conns.discard(old)
            self._conns.add(new)

    def _drain(self, sock: socket.socket) -> None:
        """Read and discard until the client gives up: a server that accepts but never answers."""
        sock.settimeout(IDLE_TIMEOUT_S)
        stream = _Stream(sock)
        while not self._stopping.is_set():
            stream.recv_some(65536)

    def _sasl_login(self, stream: _Stream) -> bool:
        """Server side of thrift-sasl PLAIN: START(mechanism), OK(authzid NUL user NUL password) → COMPLETE or BAD."""
        status, mechanism = _read_sasl(stream)
        if status != SASL_START:
            _write_sasl(stream, SASL_ERROR, b"expected a START message")
            return False
        if mechanism != b"PLAIN":
            _write_sasl(stream, SASL_BAD, b"Unsupported mechanism type " + mechanism[:32])
            return False
        status, payload = _read_sasl(stream)
        parts = payload.split(b"\x00")
        if status not in (SASL_OK, SASL_COMPLETE) or len(parts) != 3:
            _write_sasl(stream, SASL_ERROR, b"malformed PLAIN response")
            return False
        _authzid, user, password = (p.decode("utf-8", "replace") for p in parts)
        accepted = self.mode != "reject_login" and (
            self.auth != "PLAIN" or (user == self.username and password == self.password))
        with self.lock:
            self.stats.login_users.append(user)
            if accepted:
                self.stats.logins_ok += 1
            else:
                self.stats.logins_failed += 1
        if not accepted:
            _write_sasl(stream, SASL_BAD, LOGIN_REJECTED)
            return False
        _write_sasl(stream, SASL_COMPLETE, b"")
        return True

    def _rpc_loop(self, stream: _Stream) -> None:
        protocol = TBinaryProtocol.TBinaryProtocol(_ServerTransport(stream, framed=self.auth != "NOSASL"))
        processor = TCLIService.Processor(_Handler(self))
        while not self._stopping.is_set():
            if self.mode == "hang_after_connect":
                self._drain(stream.sock)
                return
            if self.mode == "trickle":
                self._trickle(stream)
                return
            try:
                processor.process(protocol, protocol)
            except (TTransportException, EOFError) as exc:
                raise ClientGone(str(exc)) from exc


    def _trickle(self, stream: _Stream) -> None:
        """Promise a 4 KiB reply (a SASL frame header, or a Thrift message header for NOSASL), then drip it."""
        framed = self.auth != "NOSASL"
        stream.send(struct.pack(">I", 4096) if framed else struct.pack(">iI", -2147418110, 4096))  # 0x80010002
        while not self._stopping.wait(TRICKLE_INTERVAL_S):
            stream.send(b"\x00")


def _read_sasl(stream: _Stream) -> tuple[int, bytes]:
    status, length = struct.unpack(">BI", stream.recv_exact(5))
    if length > MAX_FRAME:
        raise ClientGone(f"SASL frame of {length} bytes")
    return status, stream.recv_exact(length) if length else b""


def _write_sasl(stream: _Stream, status: int, payload: bytes) -> None:
    stream.send(struct.pack(">BI", status, len(payload)) + payload)


def _shutdown(sock: socket.socket) -> None:
    """Wake a thread blocked reading ``sock`` (TCP-level, so it also works mid-TLS)."""
    with contextlib.suppress(OSError):
        socket.socket.shutdown(sock, socket.SHUT_RDWR)


@contextlib.contextmanager
def running(pki: Pki | None, **kwargs: Any) -> Iterator[HiveServer2TestServer]:
    """``with running(pki, password=...) as server:`` for code outside pytest."""
    server = HiveServer2TestServer(pki, **kwargs).start()
    try:
        yield server
    finally:
        server.stop()
