"""HiveServer2 check: connect (TLS + SASL PLAIN), open a session, run the health query, close.

This is the question the seed's users cared about: does Hive answer a query through the path
clients use? ``SHOW DATABASES`` touches the metastore, whose overload is the failure this
project exists for.

Two clocks bound an attempt (``checks.hs2_session``): the socket timeout (connect, TLS
handshake, every read) and a watchdog on the whole attempt. A hung server therefore yields
CRITICAL ``timeout`` within ``timeout_s`` (+0.2 s), never a hung Lambda, and no attempt runs
past the context's deadline.

Error kinds (DESIGN §3 and §10, ``checks.hs2_errors``): ``timeout | refused | no_backend |
query`` mean the server or the path to it is broken (CRITICAL) and are retried up to
``attempts`` times; ``no_backend`` (EOF right after TLS) needs a load balancer known to be in
the path (``load_balancer``, default from the target's routing) or a pass last tick with the
same settings (``CheckContext.last_ok_settings``), else the same EOF is a settings mismatch.
``dns`` (the name did not resolve within the deadline: resolution is its own phase, before any
connection) is CRITICAL and not retried. ``auth | tls | config | secret`` mean a person must
look (UNKNOWN) and are not retried: a relaunch would not fix a wrong
password or certificate. One exception: after a rejected login the password is fetched again
once, bypassing the cache, and tried once more if it changed (it may just have been rotated).

The driver (PyHive, thrift) is imported only when an attempt runs.
"""

from __future__ import annotations

import builtins
import fnmatch
import hashlib
import os
import time
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from checks.base import Check, CheckConfig, CheckContext, CheckResult, ErrorKind, Status
from checks.hs2_session import Attempt, Target, run_bounded
from monitor.core.clusters import PRIMARY_PERMISSIONS
from monitor.core.errors import ConnectionPolicyError, SecretError
from monitor.core.resolve import ResolutionError
from monitor.core.secrets import Credentials

MIN_ATTEMPT_S = 1.0  # an attempt given less time than min(timeout_s, this) would only time out falsely


class TlsConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    verify: bool = True
    ca_file: str | None = Field(default=None, min_length=1, max_length=4096)  # None: the system trust store
    # name to verify instead of ``host`` (e.g. an ELB's cert name)
    server_hostname: str | None = Field(default=None, min_length=1, max_length=253)


class HiveServer2Config(CheckConfig):
    type: Literal["hiveserver2"]
    host: str = Field(min_length=1, max_length=253)
    port: int = Field(default=10000, ge=1, le=65535)
    query: str = Field(default="SHOW DATABASES", min_length=1, max_length=10_000)
    database: str = Field(default="default", min_length=1, max_length=128)
    # TLS is on unless written ``tls: false``; verification is on unless ``verify: false``.
    tls: TlsConfig | Literal[False] = Field(default_factory=TlsConfig)
    auth: Literal["CUSTOM", "LDAP", "NONE", "NOSASL"] = "CUSTOM"
    credentials: Credentials | None = None
    username: str | None = Field(default=None, min_length=1, max_length=128)  # for auth NONE/NOSASL (no password)
    attempts: int = Field(default=1, ge=1, le=10)
    retry_delay_s: float = Field(default=10.0, ge=0, le=300)
    # A load balancer answers this check's connections: an EOF right after TLS means "no
    # healthy backend" (CRITICAL no_backend). Default (None): true when the target's
    # ``recovery.routing`` names a target group or classic ELB.
    load_balancer: bool | None = None
    # Run against each primary of the target's cluster (checks/primaries.py), on the port and TLS
    # of ``recovery.verify.master``; ``host`` stays the service's name (not dialled then).
    per_primary: bool = False

    @model_validator(mode="after")
    def _credentials_for_password_auth(self) -> HiveServer2Config:
        if self.auth in ("CUSTOM", "LDAP") and self.credentials is None:
            raise ValueError(f"credentials: required for auth {self.auth}")
        return self


def tls_mode(tls: TlsConfig | Literal[False]) -> str:
    if tls is False:
        return "off"
    return "verified" if tls.verify else "unverified"


class HiveServer2Check(Check):
    type: ClassVar[str] = "hiveserver2"
    config_model: ClassVar[builtins.type[CheckConfig]] = HiveServer2Config
    # + the secret provider's (monitor.core.secrets.PERMISSIONS); the EMR reads list a
    # ``per_primary`` check's primaries.
    permissions: ClassVar[tuple[str, ...]] = PRIMARY_PERMISSIONS

    _started: float = 0.0

    @property
    def cfg(self) -> HiveServer2Config:
        assert isinstance(self.config, HiveServer2Config)
        return self.config

    def run(self, ctx: CheckContext) -> CheckResult:
        self._started = time.monotonic()  # the result's latency is the whole run (see _done)
        if self.cfg.per_primary and ctx.endpoint is None:  # a given endpoint (VERIFY_NEW) is one host
            from checks.primaries import run_per_primary

            return run_per_primary(self, ctx, lambda one: HiveServer2Check(self.cfg).run(one))
        cfg = self.effective(ctx)
        host = (ctx.endpoint.host if ctx.endpoint else None) or ctx.host_override or cfg.host
        observed: dict[str, Any] = {"host": host, "port": cfg.port, "tls": tls_mode(cfg.tls), "auth": cfg.auth,
                                    "user": self._username(), "query": cfg.query, "attempts": []}
        try:
            endpoint = ctx.resolver.resolve(host, cfg.port)
        except ConnectionPolicyError as exc:
            return self._unknown(observed, ErrorKind.CONFIG, str(exc))
        server_name = endpoint.server_hostname
        observed["connected_to"] = f"{endpoint.host}:{endpoint.port}"
        if cfg.tls is not False:
            try:
                server_name = tls_server_name(cfg.tls.server_hostname, endpoint.server_hostname)
            except ValueError as exc:
                return self._unknown(observed, ErrorKind.CONFIG, str(exc))
            observed["server_hostname"] = server_name
            if cfg.tls.ca_file and not os.path.isfile(cfg.tls.ca_file):
                return self._unknown(observed, ErrorKind.CONFIG, f"tls.ca_file {cfg.tls.ca_file} does not exist")
        settings = settings_id(cfg, host, server_name)
        observed["settings"] = settings
        behind_lb = self.load_balancer_in_path(cfg, ctx)
        passed_before = ctx.last_ok_settings.get(self.name) == settings
        observed["load_balancer"] = behind_lb
        try:
            password = self._password(ctx, refresh=False)
        except SecretError as exc:
            return self._unknown(observed, ErrorKind.SECRET, f"cannot read the password: {exc}")
        # Name resolution: its own phase, bounded by the deadline (monitor.core.resolve).
        try:
            addresses = ctx.resolver.addresses(endpoint, min(cfg.timeout_s, ctx.deadline.remaining()))
        except ResolutionError as exc:
            observed["phase"] = "dns"
            return self._done(Status.CRITICAL, f"dns: {exc} via {host}:{cfg.port}", observed, ErrorKind.DNS)
        except ConnectionPolicyError as exc:
            return self._unknown(observed, ErrorKind.CONFIG, str(exc))
        if addresses != [endpoint.host]:
            observed["addresses"] = addresses

        def target(timeout_s: float, password: str | None) -> Target:
            return Target(addresses[0], endpoint.port, server_name, cfg.tls, cfg.auth, self._username(),
                          password, cfg.query, cfg.database, timeout_s,
                          eof_means_no_backend=behind_lb or passed_before, addresses=tuple(addresses))

        min_attempt_s = min(cfg.timeout_s, MIN_ATTEMPT_S)
        attempts: list[dict[str, Any]] = observed["attempts"]
        allowed, refetched, last = cfg.attempts, False, None
        while len(attempts) < allowed:
            budget = min(cfg.timeout_s, ctx.deadline.remaining())
            if budget < min_attempt_s:
                observed["stopped"] = f"{budget:.2f} s left in the deadline: no further attempt"
                break
            last = run_bounded(target(budget, password))
            attempts.append(last.to_dict(len(attempts) + 1))
            if last.ok:
                return self._ok(last, observed)
            if last.kind is ErrorKind.AUTH and password is not None and not refetched:
                refetched = True  # the password may just have been rotated: fetch it again, once
                rotated, password = self._refetch(ctx, password, observed)
                if rotated:
                    allowed += 1  # one more try with the new value, not counted against ``attempts``
                    continue
                break
            if last.kind is None or not last.kind.server_broken or len(attempts) >= allowed:
                break
            if ctx.deadline.remaining() - cfg.retry_delay_s < min_attempt_s:
                observed["stopped"] = f"no time left for another attempt after {cfg.retry_delay_s:g} s"
                break
            time.sleep(cfg.retry_delay_s)
        return self._failed(last, observed)

    def load_balancer_in_path(self, cfg: HiveServer2Config, ctx: CheckContext) -> bool:
        """Whether a load balancer answers this check's connections. The ``load_balancer`` key
        wins; by default, the target's routing has one. Never against a new master reached
        directly (VERIFY_NEW's ``ctx.endpoint``): nothing stands between the check and it."""
        if ctx.endpoint is not None:
            return False
        return cfg.load_balancer if cfg.load_balancer is not None else ctx.behind_load_balancer

    def effective(self, ctx: CheckContext) -> HiveServer2Config:
        """The settings of this run: the config, with VERIFY_NEW's master endpoint (port,
        TLS) laid over it. A key ``verify.master`` leaves out keeps the check's value."""
        cfg = self.cfg
        over = ctx.endpoint
        if over is None:
            return cfg
        changes: dict[str, Any] = {}
        if over.port is not None:
            changes["port"] = over.port
        if over.tls is False:
            changes["tls"] = False
        elif over.tls:
            base = cfg.tls if cfg.tls is not False else TlsConfig()
            changes["tls"] = base.model_copy(update=dict(over.tls))
        return cfg.model_copy(update=changes) if changes else cfg

    # ------------------------------------------------------------------ helpers
    def _username(self) -> str:
        cfg = self.cfg
        if cfg.credentials is not None:
            return cfg.credentials.username
        return cfg.username or "sentinel"

    def _password(self, ctx: CheckContext, *, refresh: bool) -> str | None:
        creds = self.cfg.credentials
        if creds is None or self.cfg.auth not in ("CUSTOM", "LDAP"):
            return None  # NONE/NOSASL: no password is sent (NONE sends a dummy)
        return ctx.secrets.password(creds, refresh=refresh).get_secret_value()

    def _refetch(self, ctx: CheckContext, old: str | None, observed: dict[str, Any]) -> tuple[bool, str | None]:
        """Fetch the password again, bypassing the cache. Returns (changed, the value to use)."""
        try:
            new = self._password(ctx, refresh=True)
        except SecretError as exc:
            observed["password_refetch"] = f"failed: {exc}"
            return False, old
        changed = new != old
        observed["password_refetch"] = "changed: retried" if changed else "unchanged"
        return changed, new

    def _ok(self, a: Attempt, observed: dict[str, Any]) -> CheckResult:
        observed["rows"] = a.rows
        if a.close_error:
            observed["close_error"] = a.close_error
        tries = len(observed["attempts"])
        after = f", attempt {tries}" if tries > 1 else ""
        latency_ms = self._elapsed_ms()
        summary = (f"{self.cfg.query} ok: {a.rows} rows in {latency_ms:.0f} ms via {observed['host']}:{observed['port']} "
                   f"(tls {observed['tls']}{after})")
        return self._done(Status.OK, summary, observed, None, latency_ms)

    def _elapsed_ms(self) -> float:
        return (time.monotonic() - self._started) * 1000.0

    def _done(self, status: Status, summary: str, observed: dict[str, Any], kind: ErrorKind | None,
              latency_ms: float | None = None) -> CheckResult:
        """The result's latency is the whole check (resolution, every attempt, retry delays):
        what a caller waited for. Each attempt's own is in ``observed["attempts"]``."""
        latency_ms = self._elapsed_ms() if latency_ms is None else latency_ms
        observed["duration_ms"] = round(latency_ms, 1)
        return self.result(status, summary, observed=observed, latency_ms=latency_ms, error_kind=kind)

    def _failed(self, a: Attempt | None, observed: dict[str, Any]) -> CheckResult:
        if a is None:  # the deadline left no room for even one attempt: sentinel cannot judge
            return self._unknown(observed, ErrorKind.TIMEOUT, "no time left in this invocation for an attempt")
        kind = a.kind or ErrorKind.QUERY
        observed["phase"] = a.phase
        tries = len(observed["attempts"])
        plural = f" ({tries} attempts)" if tries > 1 else ""
        who = f" for user {observed['user']}" if kind is ErrorKind.AUTH else ""
        summary = f"{kind.value}: {a.message}{who} via {observed['host']}:{observed['port']}{plural}"
        status = Status.CRITICAL if kind.critical else Status.UNKNOWN
        return self._done(status, summary, observed, kind)

    def _unknown(self, observed: dict[str, Any], kind: ErrorKind, message: str) -> CheckResult:
        return self._done(Status.UNKNOWN, f"{kind.value}: {message}", observed, kind)


def tls_server_name(configured: str | None, host: str) -> str:
    """The name to verify the server certificate against. ``tls.server_hostname`` may be a
    wildcard pattern (``*.ec2.internal`` in ``recovery.verify.master.tls``): the new master's
    name is not known in advance, so the certificate is verified against the host actually
    connected to, provided that host matches the pattern (the leftmost ``*`` stands for one
    label, as in a certificate). Anything else is a setting a person must fix (ValueError)."""
    if not configured:
        return host
    if "*" not in configured:
        return configured
    if _wildcard_match(configured, host):
        return host
    raise ValueError(f"host {host} does not match tls.server_hostname {configured!r}: "
                     "cannot tell which name the certificate should carry")


def _wildcard_match(pattern: str, host: str) -> bool:
    want, have = pattern.lower().rstrip(".").split("."), host.lower().rstrip(".").split(".")
    return len(want) == len(have) and all(fnmatch.fnmatchcase(h, w) for w, h in zip(want, have, strict=True))


def settings_id(cfg: HiveServer2Config, host: str, server_name: str) -> str:
    """A short fingerprint of what decides whether a login can succeed (where, TLS, auth,
    user); saved in ``observed["settings"]`` so a later run can tell "passed before with the
    same settings" (then an EOF after TLS cannot be a settings mismatch)."""
    tls = "off" if cfg.tls is False else f"{cfg.tls.verify}|{cfg.tls.ca_file}|{server_name}"
    user = cfg.credentials.username if cfg.credentials is not None else cfg.username
    raw = "|".join(str(x) for x in (host, cfg.port, tls, cfg.auth, user, cfg.database))
    return hashlib.sha256(raw.encode()).hexdigest()[:12]
