"""The load balancer's stand-in in the sandbox and the tests, on 127.0.0.1. It sends a
new connection to whatever backend ``backend()`` names (in the sandbox: the instance the
moto target group has registered), so when the runbook re-points the target group at the
new master, traffic through the "ELB" really moves and VERIFY_PATH tests the path clients use.
Backends are reached through the HostResolver (loopback only), never an address moto made up.

- :class:`TlsTerminatingProxy`: what production runs (an ALB/NLB with a TLS listener): it
  answers the TLS handshake itself with the *load balancer's* certificate, then forwards the
  plaintext to the backend, re-encrypted with TLS when ``backend_tls`` (the master's own
  certificate, not verified: as an ELB does). No backend, or a backend that refuses: the
  handshake completes, then the connection is closed (or reset, ``reset=True``) before any
  protocol byte; what a client of a real ELB sees when HiveServer2 is gone.
"""

from __future__ import annotations

import contextlib
import select
import socket
import ssl
import struct
import threading
from collections.abc import Callable
from typing import Any

Backend = Callable[[], tuple[str, int] | None]


class TlsTerminatingProxy:
    """A TLS listener that terminates TLS with its own certificate and forwards to a backend."""

    HANDSHAKE_TIMEOUT_S = 10.0
    IDLE_TIMEOUT_S = 60.0

    def __init__(self, backend: Backend, *, certfile: str, keyfile: str, backend_tls: bool = True,
                 reset: bool = False, host: str = "127.0.0.1", port: int = 0) -> None:
        self._backend = backend
        self._server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self._server_ctx.load_cert_chain(certfile, keyfile)
        self._backend_ctx: ssl.SSLContext | None = None
        if backend_tls:  # an ELB re-encrypting to its targets does not verify their certificates
            self._backend_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            self._backend_ctx.check_hostname = False
            self._backend_ctx.verify_mode = ssl.CERT_NONE
        self.reset = reset
        self._sock = socket.create_server((host, port))
        self._sock.settimeout(0.2)
        self.port = int(self._sock.getsockname()[1])
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="sandbox-elb-tls", daemon=True)
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()
        self.connections = 0
        self.closed_without_backend = 0

    def start(self) -> TlsTerminatingProxy:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self._sock.close()
        with self._lock:
            socks = list(self._open)
        for sock in socks:  # ends the per-connection threads
            with contextlib.suppress(OSError):
                sock.close()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._sock.accept()
            except (TimeoutError, OSError):
                continue
            self.connections += 1
            threading.Thread(target=self._handle, args=(client,), name="sandbox-elb-conn", daemon=True).start()

    def _track(self, sock: socket.socket) -> socket.socket:
        with self._lock:
            self._open.add(sock)
        return sock

    def _forget(self, *socks: socket.socket | None) -> None:
        for sock in socks:
            if sock is None:
                continue
            with self._lock:
                self._open.discard(sock)
            with contextlib.suppress(OSError):
                sock.close()

    def _handle(self, raw: socket.socket) -> None:
        self._track(raw)
        client: socket.socket | None = None
        upstream: socket.socket | None = None
        try:
            raw.settimeout(self.HANDSHAKE_TIMEOUT_S)
            client = self._track(self._server_ctx.wrap_socket(raw, server_side=True))
            upstream = self._connect_backend()
            if upstream is None:
                self.closed_without_backend += 1
                if self.reset:  # RST instead of FIN
                    client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                return
            self._relay(client, upstream)
        except (OSError, ValueError):
            return
        finally:
            self._forget(upstream, client, raw)

    def _connect_backend(self) -> socket.socket | None:
        target = None
        with contextlib.suppress(Exception):
            target = self._backend()
        if target is None:
            return None
        try:
            sock = self._track(socket.create_connection(target, timeout=5))
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self._backend_ctx is not None:
                sock = self._track(self._backend_ctx.wrap_socket(sock))
            return sock
        except OSError:
            return None

    def _relay(self, a: socket.socket, b: socket.socket) -> None:
        """One thread per connection, so no TLS object is used by two threads at once. Data
        already decrypted inside an SSL object (``pending()``) is drained before waiting."""
        a.settimeout(self.IDLE_TIMEOUT_S)
        b.settimeout(self.IDLE_TIMEOUT_S)
        peer = {a: b, b: a}
        while not self._stop.is_set():
            ready: list[socket.socket] = [s for s in (a, b) if isinstance(s, ssl.SSLSocket) and s.pending()]
            if not ready:
                ready, _, _ = select.select([a, b], [], [], self.IDLE_TIMEOUT_S)
                if not ready:
                    return  # idle
            for src in ready:
                data = self._read_ready(src)
                if data is None:
                    continue  # TLS bytes without application data (e.g. a TLS 1.3 session ticket)
                if not data:
                    return
                peer[src].sendall(data)

    def _read_ready(self, sock: socket.socket) -> bytes | None:
        """Read what is there without blocking: a readable TLS socket may hold only a
        handshake message, and a blocking read would then wait for data the other side sends
        only after we forward its peer's request."""
        sock.setblocking(False)
        try:
            return sock.recv(65536)
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError, BlockingIOError):
            return None
        finally:
            sock.settimeout(self.IDLE_TIMEOUT_S)


def registered_backend(seeded: Any, resolver: Any, healthy: Callable[[str, int], bool] | None = None) -> Backend:
    """The load balancer's routing: target group → registered instance and port → its private
    DNS name (from EMR) → host_aliases (loopback only). With ``healthy`` (three primaries
    registered) the newest registered target that passes it, as the ELB's health check would
    route; without, the newest registered target."""
    clients = seeded.clients

    def where(target: dict[str, Any]) -> tuple[str, int] | None:
        emr = clients.client("emr")
        for summary in emr.list_clusters()["Clusters"]:
            for inst in emr.list_instances(ClusterId=summary["Id"], InstanceGroupTypes=["MASTER"])["Instances"]:
                if inst.get("Ec2InstanceId") == target["Id"]:
                    ep = resolver.resolve(inst["PrivateDnsName"], int(target.get("Port") or 10000))
                    return ep.host, ep.port
        return None

    def backend() -> tuple[str, int] | None:
        health = clients.client("elbv2").describe_target_health(TargetGroupArn=seeded.target_group_arn)
        targets = [d["Target"] for d in health["TargetHealthDescriptions"]]
        if not targets:
            return None
        if healthy is None:
            return where(targets[-1])
        found = [f for f in (where(t) for t in reversed(targets)) if f is not None]
        return next((f for f in found if healthy(*f)), found[0] if found else None)

    return backend
