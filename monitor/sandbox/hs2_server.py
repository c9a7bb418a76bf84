"""A small HiveServer2-protocol server on 127.0.0.1 for the sandbox and the tests.

It speaks what a real HiveServer2 speaks on its binary transport: optional TLS, SASL PLAIN
(the thrift-sasl framing) or NOSASL, then TCLIService over TBinaryProtocol, using the Thrift
definitions PyHive ships. Its ``mode`` switches at run time between answering and the ways a
real server fails:

- ``ok``: answers; ``SHOW DATABASES`` returns a fixed list, anything else (but ``USE``) one row.
- ``reject_login``: SASL BAD ``Error validating the login`` (what Hive sends for a wrong password).
- ``query_error``: ExecuteStatement fails (``USE`` still succeeds); ``fail_queries(n)`` does the
  same for the next ``n`` queries only (a server that recovers between two attempts).
- ``hang_before_tls``: accepts TCP and reads, but never starts the TLS handshake (a frozen JVM).
- ``hang_after_connect``: TLS and login succeed, then no RPC is answered (an overloaded metastore).
- ``trickle``: after the login the reply arrives one byte every ``TRICKLE_INTERVAL_S``: no single
  read times out, only a deadline on the whole attempt ends it.
- ``stop()``: connections are refused; ``start()`` / ``restart()`` listen again on the same port.

Hung connections end when the client closes them or at ``stop()``; what the server saw is in
``counters`` (``snapshot()`` copies it). Not a Hive: it answers just enough for one query.

Size: a fake server's protocol handlers and its failure modes are one state machine over
one connection; it is sandbox and test furniture, never shipped (deploy/build.py excludes
monitor/sandbox/).
"""

from __future__ import annotations

import contextlib
import dataclasses
import socket
import ssl
import struct
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

MODES = ("ok", "reject_login", "query_error", "hang_before_tls", "hang_after_connect", "trickle")
START, OK, BAD, ERROR, COMPLETE = 1, 2, 3, 4, 5
DATABASES = ["default", "rc_adhoc", "rc_reporting"]
HANDSHAKE_TIMEOUT_S = 10.0  # a client that stalls its own handshake cannot pin a thread for long
IDLE_TIMEOUT_S = 60.0  # a connection idle this long is dropped
TRICKLE_INTERVAL_S = 0.2
MAX_FRAME = 16 * 1024 * 1024  # a longer "frame" is not SASL (e.g. a TLS ClientHello on a plain port)
_GONE = (ConnectionResetError, BrokenPipeError, ssl.SSLEOFError)  # the client went away


@dataclass
class Counters:
    connections: int = 0  # accepted TCP connections
    open_connections: int = 0  # being served now
    rejected_connections: int = 0  # over max_connections
    client_closes: int = 0  # connections the client ended (not stop())
    tls_failures: int = 0
    logins: int = 0
    failed_logins: int = 0
    queries: int = 0  # statements answered (USE included)
    sessions_opened: int = 0
    sessions_closed: int = 0
    fetches: int = 0
    operations_closed: int = 0
    login_users: list[str] = field(default_factory=list)  # users that tried (never passwords)
    statements: list[str] = field(default_factory=list)  # every ExecuteStatement, failed ones too
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def bump(self, name: str, delta: int = 1) -> None:
        with self.lock:
            setattr(self, name, getattr(self, name) + delta)

    def record(self, name: str, value: str) -> None:
        with self.lock:
            getattr(self, name).append(value)

    def copy(self) -> Counters:
        with self.lock:
            return dataclasses.replace(self, login_users=list(self.login_users), statements=list(self.statements),
                                       lock=threading.Lock())


class _Transport:
    """The Thrift transport after login: 4-byte length-prefixed frames (SASL) or raw bytes (NOSASL)."""

    def __init__(self, sock: socket.socket, *, framed: bool) -> None:
        self._sock = sock
        self._framed = framed
        self._rbuf = b""
        self._wbuf: list[bytes] = []

    def isOpen(self) -> bool:
        return True

    def read(self, n: int) -> bytes:
        if not self._framed:
            return _recv(self._sock, n)
        while not self._rbuf:
            self._rbuf = _recv_frame(self._sock, _recv_exact(self._sock, 4))
        out, self._rbuf = self._rbuf[:n], self._rbuf[n:]
        return out

    def readAll(self, n: int) -> bytes:
        out = b""
        while len(out) < n:
            out += self.read(n - len(out))
        return out

    def write(self, data: bytes) -> None:
        self._wbuf.append(data)

    def flush(self) -> None:
        payload = b"".join(self._wbuf)
        self._wbuf = []
        _send(self._sock, struct.pack(">I", len(payload)) + payload if self._framed else payload)


def _recv(sock: socket.socket, n: int) -> bytes:
    try:
        data = sock.recv(n)
    except _GONE as exc:
        raise EOFError(str(exc)) from exc
    if not data:
        raise EOFError("client closed")
    return data


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    out = b""
    while len(out) < n:
        out += _recv(sock, n - len(out))
    return out


def _recv_frame(sock: socket.socket, header: bytes) -> bytes:
    """The payload after a 4-byte big-endian length (the last 4 bytes of ``header``)."""
    (length,) = struct.unpack(">I", header[-4:])
    if length > MAX_FRAME:
        raise ConnectionAbortedError(f"a frame of {length} bytes: not a SASL/Thrift client")
    return _recv_exact(sock, length)


def _send(sock: socket.socket, data: bytes) -> None:
    try:
        sock.sendall(data)
    except _GONE as exc:
        raise EOFError(str(exc)) from exc


def _shutdown(sock: socket.socket) -> None:
    """Wake a thread blocked on ``sock`` (TCP level, so it also works mid-TLS)."""
    with contextlib.suppress(OSError):
        socket.socket.shutdown(sock, socket.SHUT_RDWR)


class HiveServer2Stub:
    """``start()`` → ``port``; ``mode`` and ``password`` may change at any time; ``stop()`` ends it all."""

    def __init__(self, *, username: str = "rcapp", password: str = "", certfile: str | None = None,
                 keyfile: str | None = None, sasl: bool = True, host: str = "127.0.0.1",
                 max_connections: int = 64) -> None:
        self.username = username
        self.password = password  # "" accepts any password (auth NONE)
        self.sasl = sasl  # False: NOSASL
        self.mode = "ok"
        self.counters = Counters()
        self.errors: list[str] = []
        self._tls: ssl.SSLContext | None = None
        if certfile:
            self._tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self._tls.load_cert_chain(certfile, keyfile)
        self.host = host
        self.port = 0
        self._max_connections = max_connections
        self._failures_left = 0
        self._sock: socket.socket | None = None
        self._stop = threading.Event()
        self._clients: set[socket.socket] = set()
        self._threads: set[threading.Thread] = set()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle
    def start(self, port: int = 0) -> HiveServer2Stub:
        self._stop.clear()
        self._sock = socket.create_server((self.host, port or self.port))
        self._sock.settimeout(0.2)
        self.port = int(self._sock.getsockname()[1])
        self._thread = threading.Thread(target=self._accept_loop, name=f"hs2-stub-{self.port}", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout_s: float = 2.0) -> None:
        """Stop listening and drop every connection: clients now get 'connection refused'."""
        self._stop.set()
        if self._sock is not None:
            _shutdown(self._sock)  # wakes the blocked accept() at once
            self._sock.close()
            self._sock = None
        if self._thread is not None:
            self._thread.join(timeout=timeout_s)
        with self._lock:
            clients, threads = list(self._clients), list(self._threads)
        for c in clients:
            _shutdown(c)
        until = time.monotonic() + timeout_s
        for t in threads:
            t.join(max(0.0, until - time.monotonic()))

    def restart(self) -> HiveServer2Stub:
        self.stop()
        return self.start(self.port)

    def __enter__(self) -> HiveServer2Stub:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def serving(self) -> bool:
        """Listening and answering queries: what a load balancer's health check on HiveServer2
        would see (the sandbox's stand-in routes around a primary that is not)."""
        return self._sock is not None and self.mode == "ok"

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def snapshot(self) -> Counters:
        """A copy of the counters, safe to inspect while the server runs."""
        return self.counters.copy()

    def fail_queries(self, n: int) -> None:
        """The next ``n`` queries (not ``USE``) fail as in ``query_error`` mode."""
        with self._lock:
            self._failures_left = n

    def take_query_failure(self) -> bool:
        with self._lock:
            if self._failures_left > 0:
                self._failures_left -= 1
                return True
        return self.mode == "query_error"

    def wait_idle(self, timeout_s: float = 2.0) -> bool:
        """True once no connection is open (every client has closed or been dropped)."""
        until = time.monotonic() + timeout_s
        while self.counters.open_connections and time.monotonic() < until:
            time.sleep(0.01)
        return self.counters.open_connections == 0

    # ------------------------------------------------------------------ serving
    def _accept_loop(self) -> None:
        sock = self._sock
        while not self._stop.is_set() and sock is not None:
            try:
                client, _ = sock.accept()
            except (TimeoutError, OSError):
                continue
            with self._lock:
                full = len(self._clients) >= self._max_connections
                if not full:
                    self._clients.add(client)
            if full:
                client.close()
                self.counters.bump("rejected_connections")
            else:
                self.counters.bump("open_connections")
                thread = threading.Thread(target=self._serve, args=(client,), name=f"hs2-conn-{self.port}",
                                          daemon=True)
                with self._lock:
                    self._threads.add(thread)
                thread.start()
            self.counters.bump("connections")  # last: a test that sees it sees the rest

    def _serve(self, raw: socket.socket) -> None:
        conn: socket.socket = raw
        try:
            raw.settimeout(HANDSHAKE_TIMEOUT_S)
            if self.mode == "hang_before_tls":
                return self._drain(raw)
            if self._tls is not None:
                conn = self._tls.wrap_socket(raw, server_side=True, do_handshake_on_connect=False)
                with self._lock:
                    self._clients.add(conn)
                try:
                    conn.do_handshake()
                except (ssl.SSLError, OSError):
                    self.counters.bump("tls_failures")
                    return None
            conn.settimeout(IDLE_TIMEOUT_S)
            if self.sasl and not self._negotiate(conn):
                return None
            self._process(_Transport(conn, framed=self.sasl), conn)
        except EOFError:
            if not self._stop.is_set():
                self.counters.bump("client_closes")
        except OSError:
            pass  # dropped by stop(), idle timeout, or the client vanished mid-write
        except Exception as exc:  # a garbled client or a bug here: drop the connection, keep serving
            self.errors.append(f"{type(exc).__name__}: {exc}")
        finally:
            with contextlib.suppress(OSError):
                conn.close()
            with self._lock:
                self._clients.discard(raw)
                self._clients.discard(conn)
                self._threads.discard(threading.current_thread())
            self.counters.bump("open_connections", -1)
        return None

    def _drain(self, conn: socket.socket) -> None:
        """Read and discard until the client gives up: a server that accepts but never answers."""
        conn.settimeout(IDLE_TIMEOUT_S)
        while not self._stop.is_set():
            _recv(conn, 65536)

    def _trickle(self, conn: socket.socket) -> None:
        """Promise a 4 KiB reply (a SASL frame header, or a Thrift message header for NOSASL), then drip it."""
        _send(conn, struct.pack(">I", 4096) if self.sasl else struct.pack(">iI", -2147418110, 4096))  # 0x80010002
        while not self._stop.wait(TRICKLE_INTERVAL_S):
            _send(conn, b"\x00")

    def _negotiate(self, conn: socket.socket) -> bool:
        status, mech = self._read_sasl(conn)
        if status != START or mech != b"PLAIN":
            self._send_sasl(conn, BAD, b"only PLAIN is supported")
            return False
        status, payload = self._read_sasl(conn)
        parts = payload.split(b"\0")
        user, password = (parts[1].decode(), parts[2].decode()) if len(parts) == 3 else ("", "")
        self.counters.record("login_users", user)
        if self.mode == "reject_login" or user != self.username or (self.password and password != self.password):
            self.counters.bump("failed_logins")
            self._send_sasl(conn, BAD, b"Error validating the login")
            return False
        self.counters.bump("logins")
        self._send_sasl(conn, COMPLETE, b"")
        return True

    @staticmethod
    def _read_sasl(conn: socket.socket) -> tuple[int, bytes]:
        header = _recv_exact(conn, 5)
        return header[0], _recv_frame(conn, header)

    @staticmethod
    def _send_sasl(conn: socket.socket, status: int, payload: bytes) -> None:
        _send(conn, bytes([status]) + struct.pack(">I", len(payload)) + payload)

    def _process(self, transport: _Transport, conn: socket.socket) -> None:
        from TCLIService import TCLIService
        from thrift.protocol import TBinaryProtocol
        from thrift.transport.TTransport import TTransportException

        processor = TCLIService.Processor(_Handler(self))
        proto = TBinaryProtocol.TBinaryProtocol(transport)
        while not self._stop.is_set():
            if self.mode == "hang_after_connect":
                return self._drain(conn)
            if self.mode == "trickle":
                return self._trickle(conn)
            try:
                processor.process(proto, proto)
            except TTransportException as exc:
                raise EOFError(str(exc)) from exc
        return None


class _Handler:
    """TCLIService.Iface: just enough of it for PyHive's connect/execute/fetch/cancel/close."""

    def __init__(self, server: HiveServer2Stub) -> None:
        self.server = server
        self.counters = server.counters
        self._results: dict[bytes, list[str]] = {}

    @staticmethod
    def _ok() -> Any:
        from TCLIService import ttypes

        return ttypes.TStatus(statusCode=ttypes.TStatusCode.SUCCESS_STATUS)

    def OpenSession(self, req: Any) -> Any:
        from TCLIService import ttypes

        self.counters.bump("sessions_opened")
        handle = ttypes.TSessionHandle(sessionId=ttypes.THandleIdentifier(guid=uuid.uuid4().bytes,
                                                                          secret=uuid.uuid4().bytes))
        return ttypes.TOpenSessionResp(status=self._ok(), serverProtocolVersion=req.client_protocol,
                                       sessionHandle=handle, configuration={})

    def CloseSession(self, req: Any) -> Any:
        from TCLIService import ttypes

        self.counters.bump("sessions_closed")
        return ttypes.TCloseSessionResp(status=self._ok())

    def ExecuteStatement(self, req: Any) -> Any:
        from TCLIService import ttypes

        sql = str(req.statement).strip()
        self.counters.record("statements", sql)
        has_rows = not sql.upper().startswith("USE")
        if has_rows and self.server.take_query_failure():
            status = ttypes.TStatus(statusCode=ttypes.TStatusCode.ERROR_STATUS, sqlState="08S01", errorCode=1,
                                    errorMessage="FAILED: SemanticException Unable to fetch table list: "
                                                 "MetaException(message:Timeout when executing method: get_databases)")
            return ttypes.TExecuteStatementResp(status=status)
        self.counters.bump("queries")
        guid = uuid.uuid4().bytes
        if has_rows:
            self._results[guid] = list(DATABASES) if sql.upper().startswith("SHOW DATABASES") else ["1"]
        handle = ttypes.TOperationHandle(
            operationId=ttypes.THandleIdentifier(guid=guid, secret=guid),
            operationType=ttypes.TOperationType.EXECUTE_STATEMENT, hasResultSet=has_rows)
        return ttypes.TExecuteStatementResp(status=self._ok(), operationHandle=handle)

    def GetOperationStatus(self, req: Any) -> Any:
        from TCLIService import ttypes

        return ttypes.TGetOperationStatusResp(status=self._ok(), operationState=ttypes.TOperationState.FINISHED_STATE,
                                              hasResultSet=req.operationHandle.hasResultSet)

    def GetResultSetMetadata(self, req: Any) -> Any:
        from TCLIService import ttypes

        string = ttypes.TTypeDesc(types=[ttypes.TTypeEntry(
            primitiveEntry=ttypes.TPrimitiveTypeEntry(type=ttypes.TTypeId.STRING_TYPE))])
        schema = ttypes.TTableSchema(columns=[ttypes.TColumnDesc(columnName="database_name", typeDesc=string,
                                                                 position=1)])
        return ttypes.TGetResultSetMetadataResp(status=self._ok(), schema=schema)

    def FetchResults(self, req: Any) -> Any:
        from TCLIService import ttypes

        self.counters.bump("fetches")
        rows = self._results.pop(req.operationHandle.operationId.guid, [])
        column = ttypes.TColumn(stringVal=ttypes.TStringColumn(values=rows, nulls=b"\x00"))
        rowset = ttypes.TRowSet(startRowOffset=0, rows=[], columns=[column])
        return ttypes.TFetchResultsResp(status=self._ok(), hasMoreRows=False, results=rowset)

    def CloseOperation(self, req: Any) -> Any:
        from TCLIService import ttypes

        self.counters.bump("operations_closed")
        self._results.pop(req.operationHandle.operationId.guid, None)
        return ttypes.TCloseOperationResp(status=self._ok())

    def CancelOperation(self, req: Any) -> Any:
        from TCLIService import ttypes

        self._results.pop(req.operationHandle.operationId.guid, None)
        return ttypes.TCancelOperationResp(status=self._ok())

    def GetInfo(self, req: Any) -> Any:
        from TCLIService import ttypes

        return ttypes.TGetInfoResp(status=self._ok(), infoValue=ttypes.TGetInfoValue(stringValue="sentinel-stub"))
