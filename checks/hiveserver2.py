"""HiveServer2 check: connect (TLS + SASL PLAIN), open a session, run the health query, close.

This is the question the seed's users cared about: does Hive answer a query through the
path clients use? ``SHOW DATABASES`` touches the metastore, whose overload is the failure
this project exists for.

Two clocks bound an attempt: the socket timeout (connect, TLS handshake, every read) and
a watchdog on the whole attempt that closes the socket if the attempt is still running at
``timeout`` + a small slack (a server that trickles bytes never trips a read timeout). A
hung server therefore yields CRITICAL ``timeout`` in ``timeout_s``, never a hung Lambda.

Error kinds (DESIGN §3): ``timeout | refused | query`` mean the server is broken
(CRITICAL); ``auth | tls | config | secret`` mean a person must look (UNKNOWN): a relaunch
would not fix a wrong password or certificate. Only server-broken attempts are retried.
"""

from __future__ import annotations

import builtins
import os
import threading
import time
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from checks.base import Check, CheckConfig, CheckContext, CheckResult, ErrorKind, Status
from checks.hs2_session import Attempt, Target, run_attempt
from monitor.errors import ConnectionPolicyError, SecretError
from monitor.secrets import Credentials

WATCHDOG_SLACK_S = 0.25
MIN_ATTEMPT_S = 0.2  # no attempt with less time than this left


class TlsConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    verify: bool = True
    ca_file: str | None = None  # None: the system trust store
    server_hostname: str | None = None  # name to verify instead of ``host`` (e.g. an ELB's cert name)


class HiveServer2Config(CheckConfig):
    type: Literal["hiveserver2"]
    host: str = Field(min_length=1)
    port: int = Field(default=10000, ge=1, le=65535)
    query: str = Field(default="SHOW DATABASES", min_length=1)
    database: str = "default"
    # TLS is on unless written ``tls: false``; verification is on unless ``verify: false``.
    tls: TlsConfig | Literal[False] = Field(default_factory=TlsConfig)
    auth: Literal["CUSTOM", "LDAP", "NONE", "NOSASL"] = "CUSTOM"
    credentials: Credentials | None = None
    username: str | None = None  # for auth NONE/NOSASL (no password)
    attempts: int = Field(default=1, ge=1, le=10)
    retry_delay_s: float = Field(default=10.0, ge=0, le=300)

    @model_validator(mode="after")
    def _credentials_for_password_auth(self) -> HiveServer2Config:
        if self.auth in ("CUSTOM", "LDAP") and self.credentials is None:
            raise ValueError(f"credentials: required for auth {self.auth}")
        return self


class HiveServer2Check(Check):
    type: ClassVar[str] = "hiveserver2"
    config_model: ClassVar[builtins.type[CheckConfig]] = HiveServer2Config
    permissions: ClassVar[tuple[str, ...]] = ()  # + the secret provider's (monitor.secrets.PERMISSIONS)

    @property
    def cfg(self) -> HiveServer2Config:
        assert isinstance(self.config, HiveServer2Config)
        return self.config

    def run(self, ctx: CheckContext) -> CheckResult:
        cfg = self.cfg
        host = ctx.host_override or cfg.host
        observed: dict[str, Any] = {"host": host, "port": cfg.port, "query": cfg.query,
                                    "tls": _tls_mode(cfg.tls), "attempts": []}
        try:
            endpoint = ctx.resolver.resolve(host, cfg.port)
        except ConnectionPolicyError as exc:
            return self.result(Status.UNKNOWN, str(exc), observed=observed, error_kind=ErrorKind.CONFIG)
        observed["connected_to"] = f"{endpoint.host}:{endpoint.port}"
        if cfg.tls is not False and cfg.tls.ca_file and not os.path.isfile(cfg.tls.ca_file):
            return self.result(Status.UNKNOWN, f"tls.ca_file {cfg.tls.ca_file} does not exist",
                               observed=observed, error_kind=ErrorKind.CONFIG)
        server_name = (cfg.tls.server_hostname if cfg.tls is not False else None) or endpoint.server_hostname

        refreshed = False
        last: Attempt | None = None
        planned = cfg.attempts
        n = 0
        while n < planned:
            n += 1
            remaining = ctx.deadline.remaining()
            if remaining < MIN_ATTEMPT_S:
                observed["stopped"] = "no time left in the deadline for another attempt"
                break
            try:
                password = self._password(ctx)  # after a refetch the cache holds the new value
            except SecretError as exc:
                return self.result(Status.UNKNOWN, f"cannot read the password: {exc}", observed=observed,
                                   error_kind=ErrorKind.SECRET)
            target = Target(endpoint.host, endpoint.port, server_name, cfg.tls, cfg.auth, self._username(),
                            password, cfg.query, cfg.database, min(cfg.timeout_s, remaining))
            last = _with_watchdog(target)
            observed["attempts"].append({"n": n, "ok": last.ok, "phase": last.phase, "latency_ms": round(last.latency_ms, 1),
                                         "error_kind": last.kind.value if last.kind else None, "error": last.message or None})
            if last.ok:
                return self._ok(last, observed, endpoint.host, endpoint.port)
            if last.kind == ErrorKind.AUTH and not refreshed and cfg.credentials is not None:
                refreshed = True  # the password may have been rotated: fetch it again, once
                if self._password_changed(ctx, password):
                    planned += 1
                    continue
                break
            if last.kind is None or not last.kind.server_broken:
                break
            if n < planned:
                delay = min(cfg.retry_delay_s, max(0.0, ctx.deadline.remaining() - MIN_ATTEMPT_S))
                if ctx.deadline.remaining() - delay < MIN_ATTEMPT_S:
                    observed["stopped"] = "no time left in the deadline for another attempt"
                    break
                time.sleep(delay)
        return self._failed(last, observed)

    # ------------------------------------------------------------------ helpers
    def _username(self) -> str:
        cfg = self.cfg
        if cfg.credentials is not None:
            return cfg.credentials.username
        return cfg.username or "sentinel"

    def _password(self, ctx: CheckContext) -> str | None:
        creds = self.cfg.credentials
        if creds is None:
            return None
        return ctx.secrets.password(creds).get_secret_value()

    def _password_changed(self, ctx: CheckContext, old: str | None) -> bool:
        creds = self.cfg.credentials
        if creds is None:
            return False
        try:
            return ctx.secrets.password(creds, refresh=True).get_secret_value() != old
        except SecretError:
            return False

    def _ok(self, a: Attempt, observed: dict[str, Any], host: str, port: int) -> CheckResult:
        observed["rows"] = a.rows
        tls = observed["tls"]
        return self.result(
            Status.OK,
            f"{self.cfg.query} ok: {a.rows} rows in {a.latency_ms:.0f} ms via {observed['host']}:{self.cfg.port} (tls {tls})",
            observed=observed, latency_ms=a.latency_ms,
        )

    def _failed(self, a: Attempt | None, observed: dict[str, Any]) -> CheckResult:
        if a is None:
            return self.result(Status.UNKNOWN, "no attempt made: no time left in this invocation", observed=observed,
                               error_kind=ErrorKind.TIMEOUT)
        kind = a.kind or ErrorKind.QUERY
        status = Status.CRITICAL if kind.server_broken else Status.UNKNOWN
        tries = len(observed["attempts"])
        summary = f"{a.message} via {observed['host']}:{self.cfg.port} ({tries} attempt{'s' if tries != 1 else ''})"
        return self.result(status, summary, observed=observed, latency_ms=a.latency_ms, error_kind=kind)


def _tls_mode(tls: TlsConfig | Literal[False]) -> str:
    if tls is False:
        return "off"
    return "verified" if tls.verify else "unverified"


def _with_watchdog(target: Target) -> Attempt:
    """Run one attempt in a daemon thread; past its timeout + slack, close its socket and
    report a timeout. The thread then ends on its own (its reads fail on the closed socket)."""
    attempt = Attempt(ok=False)
    worker = threading.Thread(target=run_attempt, args=(target, attempt), name="hs2-attempt", daemon=True)
    started = time.monotonic()
    worker.start()
    worker.join(target.timeout_s + WATCHDOG_SLACK_S)
    if worker.is_alive():
        attempt.abort()
        worker.join(0.5)
        return Attempt(ok=False, phase=attempt.phase, kind=ErrorKind.TIMEOUT,
                       message=f"no answer within {target.timeout_s:.1f} s (hung in {attempt.phase})",
                       latency_ms=(time.monotonic() - started) * 1000.0)
    return attempt
