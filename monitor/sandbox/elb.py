"""A stand-in for the load balancer in the sandbox: a TCP pass-through on 127.0.0.1 that
sends each new connection to whatever instance the (moto) target group has registered.

So when the runbook re-points the target group at the new master, traffic through the
"ELB" really moves, and VERIFY_PATH tests the path clients use. TLS passes through
untouched, as on a TCP listener. Backends are reached through the HostResolver (loopback
only), never through an address moto made up.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable

Backend = Callable[[], tuple[str, int] | None]


class TcpProxy:
    def __init__(self, backend: Backend, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self._backend = backend
        self._sock = socket.create_server((host, port))
        self._sock.settimeout(0.2)
        self.port = int(self._sock.getsockname()[1])
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="sandbox-elb", daemon=True)
        self.connections = 0

    def start(self) -> TcpProxy:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self._sock.close()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._sock.accept()
            except (TimeoutError, OSError):
                continue
            self.connections += 1
            threading.Thread(target=self._handle, args=(client,), daemon=True).start()

    def _handle(self, client: socket.socket) -> None:
        target = None
        with contextlib.suppress(Exception):
            target = self._backend()
        if target is None:
            client.close()  # no healthy target: like an ELB with an empty target group
            return
        try:
            upstream = socket.create_connection(target, timeout=5)
        except OSError:
            client.close()
            return
        upstream.settimeout(None)
        t = threading.Thread(target=_pipe, args=(upstream, client), daemon=True)
        t.start()
        _pipe(client, upstream)
        t.join(timeout=1)


def _pipe(src: socket.socket, dst: socket.socket) -> None:
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            dst.sendall(data)
    except OSError:
        pass
    finally:
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)
        with contextlib.suppress(OSError):
            src.close()
