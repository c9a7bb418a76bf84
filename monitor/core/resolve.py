"""The one resolver every outgoing connection passes through.

Hosts come from config (``host``) and from AWS data (a new master's private DNS name).
``host_aliases`` maps a hostname or IP pattern (fnmatch glob) to the address to actually
connect to, optionally with a port: ``{"ip-10-*.ec2.internal": "127.0.0.1:10443"}``. TLS
still verifies against the *original* hostname unless the alias says otherwise.

When ``SENTINEL_LOOPBACK_ONLY=1`` (the test suite sets it) any connection that would leave
127.0.0.0/8 or ::1 raises instead: a test can never touch an address moto invented.

Name resolution is a phase of its own (:meth:`HostResolver.addresses`), bounded by the
caller's deadline: ``getaddrinfo`` cannot be interrupted, so it runs in a daemon thread that is
abandoned (never joined) when the time is up. An abandoned lookup holds no socket of ours and
its result is dropped; it ends when the system resolver gives up (resolv.conf timeout ×
attempts). At most ``MAX_STUCK_LOOKUPS`` may be pending at once: past that, a lookup fails at
once instead of starting one more thread (a wedged resolver cannot pile up threads tick after
tick in a warm Lambda container).
"""

from __future__ import annotations

import fnmatch
import ipaddress
import os
import socket
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from monitor.core.errors import ConnectionPolicyError

_LOCAL_NAMES = {"localhost", "localhost.localdomain"}
MAX_STUCK_LOOKUPS = 4

Lookup = Callable[..., list[Any]]  # socket.getaddrinfo's signature


class ResolutionError(Exception):
    """The name did not resolve (NXDOMAIN, no address) or the resolver did not answer in time."""

    def __init__(self, message: str, *, hung: bool = False) -> None:
        super().__init__(message)
        self.hung = hung


@dataclass(frozen=True)
class Endpoint:
    """Where to connect (``host``, ``port``) and the name to verify TLS against."""

    host: str
    port: int
    server_hostname: str
    aliased: bool


def _is_loopback(host: str) -> bool:
    if host.lower() in _LOCAL_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class HostResolver:
    def __init__(self, aliases: Mapping[str, str] | None = None, *, loopback_only: bool | None = None,
                 lookup: Lookup | None = None):
        self._aliases = dict(aliases or {})
        if loopback_only is None:
            loopback_only = os.environ.get("SENTINEL_LOOPBACK_ONLY", "") == "1"
        self.loopback_only = loopback_only
        self._lookup: Lookup = lookup or socket.getaddrinfo  # tests inject NXDOMAIN / a hung resolver
        self._pending = 0
        self._pending_lock = threading.Lock()

    def addresses(self, ep: Endpoint, timeout_s: float) -> list[str]:
        """The IP addresses of ``ep.host``, within ``timeout_s``; raise :class:`ResolutionError`.

        An IP literal is returned as is (no lookup). With ``loopback_only`` every address must
        be loopback (a name could resolve anywhere)."""
        try:
            return [str(ipaddress.ip_address(ep.host))]
        except ValueError:
            pass
        with self._pending_lock:
            if self._pending >= MAX_STUCK_LOOKUPS:
                raise ResolutionError(f"{self._pending} lookups already pending: the resolver is not answering",
                                      hung=True)
            self._pending += 1
        box: dict[str, Any] = {}

        def work() -> None:
            try:
                box["infos"] = self._lookup(ep.host, ep.port, type=socket.SOCK_STREAM)
            except BaseException as exc:  # handed to the caller's thread
                box["error"] = exc
            finally:
                with self._pending_lock:
                    self._pending -= 1

        worker = threading.Thread(target=work, name="resolve", daemon=True)
        worker.start()
        worker.join(max(0.0, timeout_s))
        if worker.is_alive():
            raise ResolutionError(f"no answer from the resolver for {ep.host} within {timeout_s:.1f} s", hung=True)
        if "error" in box:
            exc = box["error"]
            raise ResolutionError(f"{ep.host} does not resolve: {exc}") from exc
        found: list[str] = []
        for info in box.get("infos") or []:
            addr = str(info[4][0])
            if addr not in found:
                found.append(addr)
        if not found:
            raise ResolutionError(f"{ep.host} resolved to no address")
        if self.loopback_only and not all(_is_loopback(a) for a in found):
            raise ConnectionPolicyError(f"refusing to connect to {ep.host} ({', '.join(found)}): "
                                        "SENTINEL_LOOPBACK_ONLY=1 and it does not resolve to loopback")
        return found

    def resolve(self, host: str, port: int) -> Endpoint:
        target_host, target_port, aliased = host, port, False
        for pattern, value in self._aliases.items():
            if host == pattern or fnmatch.fnmatchcase(host.lower(), pattern.lower()):
                target_host, target_port = _split(value, port)
                aliased = True
                break
        if self.loopback_only and not _is_loopback(target_host):
            raise ConnectionPolicyError(
                f"refusing to connect to {target_host}:{target_port} (from {host}): "
                "SENTINEL_LOOPBACK_ONLY=1 and no host_aliases entry maps it to loopback"
            )
        return Endpoint(target_host, target_port, server_hostname=host, aliased=aliased)


def _split(value: str, default_port: int) -> tuple[str, int]:
    if value.startswith("["):  # [::1]:443
        host, _, rest = value[1:].partition("]")
        return host, int(rest[1:]) if rest.startswith(":") else default_port
    if value.count(":") == 1:
        host, _, port = value.partition(":")
        return host, int(port)
    return value, default_port
