"""A small HiveServer2-protocol server on 127.0.0.1 for the sandbox and the tests.

It speaks what a real HiveServer2 speaks on its binary transport: TLS, SASL PLAIN (the
thrift-sasl framing), then TCLIService over TBinaryProtocol, using the Thrift definitions
PyHive ships. Its ``mode`` switches at run time between answering and the ways a real
server fails: rejecting the login, failing the query, hanging before the TLS handshake,
hanging after the login (the seed's overloaded metastore), or not listening at all.

Not a Hive: ``SHOW DATABASES`` returns a fixed list and anything else returns one row.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import struct
import threading
import uuid
from dataclasses import dataclass, field
from typing import Any

MODES = ("ok", "reject_login", "query_error", "hang_before_tls", "hang_after_connect")
START, OK, BAD, ERROR, COMPLETE = 1, 2, 3, 4, 5
DATABASES = ["default", "rc_adhoc", "rc_reporting"]


@dataclass
class Counters:
    connections: int = 0
    open_connections: int = 0
    logins: int = 0
    failed_logins: int = 0
    queries: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def bump(self, name: str, delta: int = 1) -> None:
        with self.lock:
            setattr(self, name, getattr(self, name) + delta)


class _SaslFramed:
    """Server side of thrift-sasl after negotiation: 4-byte length-prefixed frames."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._rbuf = b""
        self._wbuf: list[bytes] = []

    def isOpen(self) -> bool:
        return True

    def read(self, n: int) -> bytes:
        while not self._rbuf:
            (length,) = struct.unpack(">I", _recv_exact(self._sock, 4))
            self._rbuf = _recv_exact(self._sock, length)
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
        self._sock.sendall(struct.pack(">I", len(payload)) + payload)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._sock.close()


class _Plain(_SaslFramed):
    """NOSASL: the Thrift bytes as they are (TBufferedTransport on the client)."""

    def read(self, n: int) -> bytes:
        data = self._sock.recv(n)
        if not data:
            raise EOFError("client closed")
        return data

    def flush(self) -> None:
        self._sock.sendall(b"".join(self._wbuf))
        self._wbuf = []


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    out = b""
    while len(out) < n:
        chunk = sock.recv(n - len(out))
        if not chunk:
            raise EOFError("client closed")
        out += chunk
    return out


class HiveServer2Stub:
    """``start()`` → ``port``; ``mode`` may change at any time; ``stop()`` ends it all."""

    def __init__(self, *, username: str = "rcapp", password: str = "", certfile: str | None = None,
                 keyfile: str | None = None, sasl: bool = True, host: str = "127.0.0.1") -> None:
        self.username = username
        self.password = password
        self.sasl = sasl
        self.mode = "ok"
        self.counters = Counters()
        self._tls: ssl.SSLContext | None = None
        if certfile:
            self._tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self._tls.load_cert_chain(certfile, keyfile)
        self._host = host
        self._sock: socket.socket | None = None
        self.port = 0
        self._stop = threading.Event()
        self._clients: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self.errors: list[str] = []

    # ------------------------------------------------------------------ lifecycle
    def start(self, port: int = 0) -> HiveServer2Stub:
        self._stop.clear()
        self._sock = socket.create_server((self._host, port or self.port))
        self._sock.settimeout(0.2)
        self.port = int(self._sock.getsockname()[1])
        self._thread = threading.Thread(target=self._accept_loop, name=f"hs2-stub-{self.port}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening and drop every connection: clients now get 'connection refused'."""
        self._stop.set()
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept() at once
            self._sock.close()
            self._sock = None
        if self._thread is not None:
            self._thread.join(timeout=2)
        with self._lock:
            for c in list(self._clients):
                with contextlib.suppress(OSError):
                    c.close()
            self._clients.clear()

    def restart(self) -> HiveServer2Stub:
        self.stop()
        return self.start(self.port)

    def __enter__(self) -> HiveServer2Stub:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ serving
    def _accept_loop(self) -> None:
        sock = self._sock
        while not self._stop.is_set() and sock is not None:
            try:
                client, _ = sock.accept()
            except (TimeoutError, OSError):
                continue
            with self._lock:
                self._clients.add(client)
            self.counters.bump("connections")
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _hang(self) -> None:
        self._stop.wait()

    def _serve(self, raw: socket.socket) -> None:
        self.counters.bump("open_connections")
        conn: socket.socket = raw
        try:
            raw.settimeout(None)
            if self.mode == "hang_before_tls":
                self._hang()
                return
            if self._tls is not None:
                conn = self._tls.wrap_socket(raw, server_side=True)
                with self._lock:
                    self._clients.add(conn)
            if self.sasl:
                if not self._negotiate(conn):
                    return
                transport: Any = _SaslFramed(conn)
            else:
                transport = _Plain(conn)
            if self.mode == "hang_after_connect":
                self._hang()
                return
            self._process(transport)
        except (OSError, EOFError, ssl.SSLError):
            pass
        except Exception as exc:  # a garbled client or a bug here: drop the connection, keep serving
            self.errors.append(f"{type(exc).__name__}: {exc}")
        finally:
            with contextlib.suppress(OSError):
                conn.close()
            with self._lock:
                self._clients.discard(raw)
                self._clients.discard(conn)
            self.counters.bump("open_connections", -1)

    def _negotiate(self, conn: socket.socket) -> bool:
        status, mech = self._read_sasl(conn)
        if status != START or mech != b"PLAIN":
            self._send_sasl(conn, BAD, b"only PLAIN is supported")
            return False
        status, payload = self._read_sasl(conn)
        parts = payload.split(b"\0")
        user, password = (parts[1], parts[2]) if len(parts) == 3 else (b"", b"")
        if self.mode == "reject_login" or user.decode() != self.username or (
                self.password and password.decode() != self.password):
            self.counters.bump("failed_logins")
            self._send_sasl(conn, BAD, b"Error validating the login")
            return False
        self.counters.bump("logins")
        self._send_sasl(conn, COMPLETE, b"")
        return True

    @staticmethod
    def _read_sasl(conn: socket.socket) -> tuple[int, bytes]:
        header = _recv_exact(conn, 5)
        status, length = header[0], struct.unpack(">I", header[1:])[0]
        return status, _recv_exact(conn, length)

    @staticmethod
    def _send_sasl(conn: socket.socket, status: int, payload: bytes) -> None:
        conn.sendall(bytes([status]) + struct.pack(">I", len(payload)) + payload)

    def _process(self, transport: Any) -> None:
        from TCLIService import TCLIService
        from thrift.protocol import TBinaryProtocol

        processor = TCLIService.Processor(_Handler(self))
        proto = TBinaryProtocol.TBinaryProtocol(transport)
        while not self._stop.is_set():
            if self.mode == "hang_after_connect":
                self._hang()
                return
            processor.process(proto, proto)


class _Handler:
    """TCLIService.Iface: just enough of it for PyHive's connect/execute/fetch/close."""

    def __init__(self, server: HiveServer2Stub) -> None:
        self.server = server
        self._results: dict[bytes, list[str]] = {}

    @staticmethod
    def _ok() -> Any:
        from TCLIService import ttypes

        return ttypes.TStatus(statusCode=ttypes.TStatusCode.SUCCESS_STATUS)

    def OpenSession(self, req: Any) -> Any:
        from TCLIService import ttypes

        handle = ttypes.TSessionHandle(sessionId=ttypes.THandleIdentifier(guid=uuid.uuid4().bytes,
                                                                          secret=uuid.uuid4().bytes))
        return ttypes.TOpenSessionResp(status=self._ok(), serverProtocolVersion=req.client_protocol,
                                       sessionHandle=handle, configuration={})

    def CloseSession(self, req: Any) -> Any:
        from TCLIService import ttypes

        return ttypes.TCloseSessionResp(status=self._ok())

    def ExecuteStatement(self, req: Any) -> Any:
        from TCLIService import ttypes

        sql = str(req.statement).strip()
        if self.server.mode == "query_error" and not sql.upper().startswith("USE"):
            status = ttypes.TStatus(statusCode=ttypes.TStatusCode.ERROR_STATUS, sqlState="08S01", errorCode=1,
                                    errorMessage="FAILED: SemanticException Unable to fetch table list: "
                                                 "MetaException(message:Timeout when executing method: get_databases)")
            return ttypes.TExecuteStatementResp(status=status)
        self.server.counters.bump("queries")
        guid = uuid.uuid4().bytes
        has_rows = not sql.upper().startswith("USE")
        if has_rows:
            self._results[guid] = list(DATABASES) if sql.upper().startswith("SHOW DATABASES") else ["1"]
        handle = ttypes.TOperationHandle(
            operationId=ttypes.THandleIdentifier(guid=guid, secret=guid),
            operationType=ttypes.TOperationType.EXECUTE_STATEMENT, hasResultSet=has_rows)
        return ttypes.TExecuteStatementResp(status=self._ok(), operationHandle=handle)

    def GetOperationStatus(self, req: Any) -> Any:
        from TCLIService import ttypes

        return ttypes.TGetOperationStatusResp(status=self._ok(), operationState=ttypes.TOperationState.FINISHED_STATE)

    def GetResultSetMetadata(self, req: Any) -> Any:
        from TCLIService import ttypes

        string = ttypes.TTypeDesc(types=[ttypes.TTypeEntry(
            primitiveEntry=ttypes.TPrimitiveTypeEntry(type=ttypes.TTypeId.STRING_TYPE))])
        schema = ttypes.TTableSchema(columns=[ttypes.TColumnDesc(columnName="database_name", typeDesc=string,
                                                                 position=1)])
        return ttypes.TGetResultSetMetadataResp(status=self._ok(), schema=schema)

    def FetchResults(self, req: Any) -> Any:
        from TCLIService import ttypes

        rows = self._results.pop(req.operationHandle.operationId.guid, [])
        column = ttypes.TColumn(stringVal=ttypes.TStringColumn(values=rows, nulls=b"\x00"))
        rowset = ttypes.TRowSet(startRowOffset=0, rows=[], columns=[column])
        return ttypes.TFetchResultsResp(status=self._ok(), hasMoreRows=False, results=rowset)

    def CloseOperation(self, req: Any) -> Any:
        from TCLIService import ttypes

        return ttypes.TCloseOperationResp(status=self._ok())

    def GetInfo(self, req: Any) -> Any:
        from TCLIService import ttypes

        return ttypes.TGetInfoResp(status=self._ok(), infoValue=ttypes.TGetInfoValue(stringValue="sentinel-stub"))
