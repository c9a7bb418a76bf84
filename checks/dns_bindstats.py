"""Read the incoming-query counter from a BIND 9 statistics channel.

Which counter: ``opcode QUERY`` — every request with opcode QUERY the server received, over
UDP and TCP, answered or not (XML ``/xml/v3/server``: ``<counters type="opcode"><counter
name="QUERY">``; JSON ``/json/v1/server``: ``opcodes.QUERY``). That is the load the server (or
the VPC resolver behind a caching bind) sees from clients. Not ``nsstat Requestv4/v6``, which
also counts NOTIFY/UPDATE, and not ``QryUDP``, which misses TCP and is absent in older BINDs.
The server's ``boot-time`` marks restarts (counters start at zero again).

The connection goes through :class:`monitor.core.resolve.HostResolver` (host aliases; loopback only
in tests): we connect to the resolved address and send the configured host in ``Host:``.
``http.client`` is used directly (it is what ``urllib`` runs on) because https then needs
the TLS name of the configured host, not of the resolved address.
"""

from __future__ import annotations

import http.client
import json
import socket
import ssl

# Our own monitored server's stats; expat does not expand external entities.
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

from monitor.core.resolve import HostResolver

MAX_BODY_BYTES = 16 * 1024 * 1024


class BindStatsError(Exception):
    """Reading the counter failed. ``kind`` is an ErrorKind value (timeout, refused, query, config)."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


@dataclass(frozen=True)
class BindCounter:
    queries: int
    boot_time: str | None
    version: str | None


def fetch(url: str, fmt: Literal["xml", "json"], resolver: HostResolver, timeout_s: float) -> BindCounter:
    body = _get(url, resolver, timeout_s)
    return parse_json(body) if fmt == "json" else parse_xml(body)


def _get(url: str, resolver: HostResolver, timeout_s: float) -> bytes:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise BindStatsError("config", f"not an http(s) URL: {url!r}")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:
        raise BindStatsError("config", f"bad port in {url!r}: {exc}") from exc
    endpoint = resolver.resolve(parts.hostname, port)  # ConnectionPolicyError propagates (config)
    conn: http.client.HTTPConnection
    if parts.scheme == "https":
        ctx = ssl.create_default_context()
        conn = _NamedHTTPSConnection(endpoint.host, endpoint.port, timeout=timeout_s, context=ctx,
                                     server_hostname=endpoint.server_hostname)
    else:
        conn = http.client.HTTPConnection(endpoint.host, endpoint.port, timeout=timeout_s)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    host_header = parts.netloc.rpartition("@")[2]
    try:
        conn.request("GET", path, headers={"Host": host_header, "Accept": "*/*", "User-Agent": "sentinel"})
        response = conn.getresponse()
        body = response.read(MAX_BODY_BYTES + 1)
    except TimeoutError as exc:
        raise BindStatsError("timeout", f"GET {url}: timed out after {timeout_s:.1f} s") from exc
    except ConnectionRefusedError as exc:
        raise BindStatsError("refused", f"GET {url}: connection refused ({endpoint.host}:{endpoint.port})") from exc
    except (OSError, http.client.HTTPException) as exc:
        raise BindStatsError("query", f"GET {url}: {type(exc).__name__}: {exc}") from exc
    finally:
        conn.close()
    if response.status != 200:
        raise BindStatsError("query", f"GET {url}: HTTP {response.status} {response.reason}")
    if len(body) > MAX_BODY_BYTES:
        raise BindStatsError("query", f"GET {url}: response larger than {MAX_BODY_BYTES} bytes")
    return body


class _NamedHTTPSConnection(http.client.HTTPSConnection):
    """HTTPS to a resolved address, verifying the certificate against the configured name."""

    def __init__(self, host: str, port: int, *, timeout: float, context: ssl.SSLContext, server_hostname: str) -> None:
        super().__init__(host, port, timeout=timeout, context=context)
        self._ctx = context
        self._name = server_hostname

    def connect(self) -> None:
        sock = socket.create_connection((self.host, self.port), self.timeout)
        self.sock = self._ctx.wrap_socket(sock, server_hostname=self._name)


def parse_xml(body: bytes) -> BindCounter:
    try:
        root = ET.fromstring(body)  # noqa: S314 - see the import
    except ET.ParseError as exc:
        raise BindStatsError("query", f"statistics XML does not parse: {exc}") from exc
    server = root.find("server")
    if root.tag != "statistics" or server is None:
        raise BindStatsError("query", "not a BIND v3 statistics document (no <statistics><server>); is the URL /xml/v3/server?")
    opcodes = server.find("counters[@type='opcode']")
    if opcodes is None:
        raise BindStatsError("query", "no <counters type='opcode'> in the statistics XML")
    node = opcodes.find("counter[@name='QUERY']")
    # BIND lists every opcode counter, zero or not (9.11+); a missing QUERY counter means zero.
    queries = _int(node.text if node is not None else "0", "opcode QUERY")
    return BindCounter(queries, _text(server, "boot-time"), _text(server, "version"))


def parse_json(body: bytes) -> BindCounter:
    try:
        data = json.loads(body)
    except ValueError as exc:
        raise BindStatsError("query", f"statistics JSON does not parse: {exc}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("opcodes"), dict):
        raise BindStatsError("query", "no 'opcodes' object in the statistics JSON; is the URL /json/v1/server?")
    queries = _int(data["opcodes"].get("QUERY", 0), "opcodes.QUERY")
    boot, version = data.get("boot-time"), data.get("version")
    return BindCounter(queries, str(boot) if boot else None, str(version) if version else None)


def _int(value: object, what: str) -> int:
    try:
        number = int(str(value).strip())
    except ValueError as exc:
        raise BindStatsError("query", f"{what} is not an integer: {value!r}") from exc
    if number < 0:
        raise BindStatsError("query", f"{what} is negative: {number}")
    return number


def _text(parent: ET.Element, tag: str) -> str | None:
    node = parent.find(tag)
    return node.text.strip() if node is not None and node.text else None
