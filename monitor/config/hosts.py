"""``host_aliases``: a host name or glob → the address (and port) to connect to instead.

An alias is checked at load (a bad one used to fail only when a check connected).
"""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Any

from pydantic import AfterValidator
from pydantic_core import PydanticCustomError

_HOST_LABEL = r"[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?"
_HOSTNAME_RE = re.compile(rf"^(?=.{{1,253}}$){_HOST_LABEL}(\.{_HOST_LABEL})*\.?$")
_HOST_PATTERN_RE = re.compile(r"^[A-Za-z0-9*?\[\]!._:-]{1,253}$")


def parse_host_alias(value: str) -> tuple[str, int | None]:
    """``host``, ``host:port``, ``[v6]``, ``[v6]:port`` or a bare IPv6 address → (host, port).
    The host is an IP address or a DNS name; the port 1-65535. Raises ValueError saying why
    (checked at load: a bad alias used to fail only when a check connected)."""
    if value.startswith("["):
        host, sep, rest = value[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise ValueError("use [IPv6] or [IPv6]:port")
        port_text: str | None = rest[1:] if rest else None
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError(f"{host!r} in brackets is not an IPv6 address") from None
    elif value.count(":") > 1:
        host, port_text = value, None
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError("not an IPv6 address (write [IPv6]:port for a port)") from None
    else:
        host, sep, port_text_ = value.partition(":")
        port_text = port_text_ if sep else None
        if not _is_address(host) and not _HOSTNAME_RE.match(host):
            raise ValueError(f"{host[:64]!r} is neither an IP address nor a host name")
    if port_text is None:
        return host, None
    if not port_text.isascii() or not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise ValueError(f"port {port_text[:16]!r}: must be a number from 1 to 65535")
    return host, int(port_text)


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _host_alias(value: Any) -> Any:
    if isinstance(value, str):
        if len(value) > 300:
            raise PydanticCustomError("host_alias", "at most 300 characters")
        try:
            parse_host_alias(value)
        except ValueError as exc:
            raise PydanticCustomError("host_alias", "{why} (expected host, host:port or [IPv6]:port)",
                                      {"why": str(exc)}) from None
    return value


def _host_pattern(value: Any) -> Any:
    if isinstance(value, str) and not _HOST_PATTERN_RE.match(value):
        raise PydanticCustomError("host_pattern", "key: a host name or glob pattern (letters, digits, "
                                  "'-', '.', '_', ':', '*', '?', '[...]'), at most 253 characters")
    return value


# host_aliases: ``{"ip-10-*.ec2.internal": "127.0.0.1:10443"}`` (keys are fnmatch globs).
HostPattern = Annotated[str, AfterValidator(_host_pattern)]
HostAlias = Annotated[str, AfterValidator(_host_alias)]
