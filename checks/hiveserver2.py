"""HiveServer2 check: connect (TLS + SASL PLAIN), open a session, run the health query, close.

This is the question the seed's users cared about: does Hive answer a query through the path
clients use? ``SHOW DATABASES`` touches the metastore, whose overload is the failure this
project exists for.

Two clocks bound an attempt (``checks.hs2_session``): the socket timeout (connect, TLS
handshake, every read) and a watchdog on the whole attempt. A hung server therefore yields
CRITICAL ``timeout`` within ``timeout_s`` (+0.2 s), never a hung Lambda, and no attempt runs
past the context's deadline.

Error kinds (DESIGN §3, ``checks.hs2_errors``): ``timeout | refused | query`` mean the server
is broken (CRITICAL) and are retried up to ``attempts`` times; ``auth | tls | config | secret``
mean a person must look (UNKNOWN) and are not retried: a relaunch would not fix a wrong
password or certificate. One exception: after a rejected login the password is fetched again
once, bypassing the cache, and tried once more if it changed (it may just have been rotated).

The driver (PyHive, thrift) is imported only when an attempt runs.
"""

from __future__ import annotations

import builtins
import os
import time
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from checks.base import Check, CheckConfig, CheckContext, CheckResult, ErrorKind, Status
from checks.hs2_session import Attempt, Target, run_bounded
from monitor.errors import ConnectionPolicyError, SecretError
from monitor.secrets import Credentials

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
    permissions: ClassVar[tuple[str, ...]] = ()  # + the secret provider's (monitor.secrets.PERMISSIONS)

    @property
    def cfg(self) -> HiveServer2Config:
        assert isinstance(self.config, HiveServer2Config)
        return self.config

    def run(self, ctx: CheckContext) -> CheckResult:
        cfg = self.effective(ctx)
        host = (ctx.endpoint.host if ctx.endpoint else None) or ctx.host_override or cfg.host
        observed: dict[str, Any] = {"host": host, "port": cfg.port, "tls": tls_mode(cfg.tls), "auth": cfg.auth,
                                    "user": self._username(), "query": cfg.query, "attempts": []}
        try:
            endpoint = ctx.resolver.resolve(host, cfg.port)
        except ConnectionPolicyError as exc:
            return self._unknown(observed, ErrorKind.CONFIG, str(exc))
        server_name = (cfg.tls.server_hostname if cfg.tls is not False else None) or endpoint.server_hostname
        observed["connected_to"] = f"{endpoint.host}:{endpoint.port}"
        if cfg.tls is not False:
            observed["server_hostname"] = server_name
            if cfg.tls.ca_file and not os.path.isfile(cfg.tls.ca_file):
                return self._unknown(observed, ErrorKind.CONFIG, f"tls.ca_file {cfg.tls.ca_file} does not exist")
        try:
            password = self._password(ctx, refresh=False)
        except SecretError as exc:
            return self._unknown(observed, ErrorKind.SECRET, f"cannot read the password: {exc}")

        def target(timeout_s: float, password: str | None) -> Target:
            return Target(endpoint.host, endpoint.port, server_name, cfg.tls, cfg.auth, self._username(),
                          password, cfg.query, cfg.database, timeout_s)

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
        summary = (f"{self.cfg.query} ok: {a.rows} rows in {a.latency_ms:.0f} ms via {observed['host']}:{observed['port']} "
                   f"(tls {observed['tls']}{after})")
        return self.result(Status.OK, summary, observed=observed, latency_ms=a.latency_ms)

    def _failed(self, a: Attempt | None, observed: dict[str, Any]) -> CheckResult:
        if a is None:  # the deadline left no room for even one attempt: sentinel cannot judge
            return self._unknown(observed, ErrorKind.TIMEOUT, "no time left in this invocation for an attempt")
        kind = a.kind or ErrorKind.QUERY
        observed["phase"] = a.phase
        tries = len(observed["attempts"])
        plural = f" ({tries} attempts)" if tries > 1 else ""
        who = f" for user {observed['user']}" if kind is ErrorKind.AUTH else ""
        summary = f"{kind.value}: {a.message}{who} via {observed['host']}:{observed['port']}{plural}"
        status = Status.CRITICAL if kind.server_broken else Status.UNKNOWN
        return self.result(status, summary, observed=observed, latency_ms=a.latency_ms, error_kind=kind)

    def _unknown(self, observed: dict[str, Any], kind: ErrorKind, message: str) -> CheckResult:
        return self.result(Status.UNKNOWN, f"{kind.value}: {message}", observed=observed, error_kind=kind)
