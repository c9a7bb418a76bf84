"""The one resolver every outgoing connection passes through.

Hosts come from config (``host``) and from AWS data (a new master's private DNS name).
``host_aliases`` maps a hostname or IP pattern (fnmatch glob) to the address to actually
connect to, optionally with a port: ``{"ip-10-*.ec2.internal": "127.0.0.1:10443"}``. TLS
still verifies against the *original* hostname unless the alias says otherwise.

When ``SENTINEL_LOOPBACK_ONLY=1`` (the test suite sets it) any connection that would leave
127.0.0.0/8 or ::1 raises instead: a test can never touch an address moto invented.
"""

from __future__ import annotations

import fnmatch
import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass

from monitor.errors import ConnectionPolicyError

_LOCAL_NAMES = {"localhost", "localhost.localdomain"}


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
    def __init__(self, aliases: Mapping[str, str] | None = None, *, loopback_only: bool | None = None):
        self._aliases = dict(aliases or {})
        if loopback_only is None:
            loopback_only = os.environ.get("SENTINEL_LOOPBACK_ONLY", "") == "1"
        self.loopback_only = loopback_only

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
