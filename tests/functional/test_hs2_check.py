"""The HiveServer2 check against the protocol stub on 127.0.0.1: the cases the mode-by-mode suite
(tests/functional/test_hiveserver2_server.py) does not cover: a refetched password that is still
wrong, connections closed after each outcome, several attempts inside the deadline, and the
suite-wide loopback guard."""

from __future__ import annotations

import time
from typing import Any

from pydantic import SecretStr

from checks.base import CheckContext, CheckResult, Deadline, Status
from checks.hiveserver2 import HiveServer2Check, HiveServer2Config
from monitor.core.clock import SystemClock
from monitor.core.resolve import HostResolver
from monitor.core.secrets import Credentials, SecretResolver
from monitor.core.state.memory import MemoryStateStore
from monitor.sandbox.certs import CertSet
from monitor.sandbox.hs2_server import HiveServer2Stub
from tests.fakes import NoClients
from tests.hs2_fixtures import PASSWORD

HOST = "hive.internal.example.com"
SLACK = 0.5  # the verdict may come this much after timeout_s


class Secrets(SecretResolver):
    """Serves a sequence of passwords: the first fetch, then each refresh."""

    def __init__(self, *values: str) -> None:
        super().__init__(clients=NoClients())
        self.values = list(values)
        self.fetches = 0

    def password(self, creds: Credentials, *, refresh: bool = False) -> SecretStr:
        if refresh or self.fetches == 0:
            self.fetches += 1
        return SecretStr(self.values[min(self.fetches, len(self.values)) - 1])


def config(certs: CertSet, **over: Any) -> HiveServer2Config:
    raw: dict[str, Any] = {
        "type": "hiveserver2", "name": "hive", "host": HOST, "port": 443,
        "tls": {"ca_file": certs.ca_file},
        "credentials": {"provider": "env", "username": "rcapp", "key": "HIVE_PW"},
        "timeout_s": 1.0,
    }
    raw.update(over)
    return HiveServer2Config.model_validate(raw)


def run(cfg: HiveServer2Config, server: HiveServer2Stub, *, secrets: SecretResolver | None = None,
        deadline: float = 30.0, aliases: dict[str, str] | None = None) -> tuple[CheckResult, float]:
    resolver = HostResolver(aliases if aliases is not None else {HOST: f"127.0.0.1:{server.port}"})
    ctx = CheckContext(target="prod-hive", cluster=None, clients=NoClients(), secrets=secrets or Secrets(PASSWORD),
                       resolver=resolver, store=MemoryStateStore(), clock=SystemClock(),
                       deadline=Deadline.after(deadline))
    started = time.monotonic()
    result = HiveServer2Check(cfg).run(ctx)
    return result, time.monotonic() - started


def test_connections_are_closed(hs2: HiveServer2Stub, certs: CertSet) -> None:
    for mode in ("ok", "query_error", "reject_login"):
        hs2.mode = mode
        run(config(certs), hs2)
    deadline = time.monotonic() + 2
    while hs2.counters.open_connections and time.monotonic() < deadline:
        time.sleep(0.02)
    assert hs2.counters.open_connections == 0


def test_wrong_password_is_unknown_auth_after_one_refetch(hs2: HiveServer2Stub, certs: CertSet) -> None:
    secrets = Secrets("wrong", "still-wrong")
    r, _ = run(config(certs), hs2, secrets=secrets)
    assert (r.status, r.error_kind) == (Status.UNKNOWN, "auth")
    assert secrets.fetches == 2  # fetched, then refetched once
    assert hs2.counters.failed_logins == 2


def test_attempts_stop_when_the_deadline_is_used_up(hs2: HiveServer2Stub, certs: CertSet) -> None:
    hs2.mode = "hang_after_connect"
    r, elapsed = run(config(certs, attempts=5, retry_delay_s=0.1, timeout_s=1.0), hs2, deadline=2.5)
    assert r.status == Status.CRITICAL
    assert 2 <= len(r.observed["attempts"]) < 5
    assert elapsed < 2.5 + SLACK


def test_non_loopback_target_is_refused_in_tests(hs2: HiveServer2Stub, certs: CertSet) -> None:
    r, _ = run(config(certs), hs2, aliases={})
    assert (r.status, r.error_kind) == (Status.UNKNOWN, "config")
    assert "SENTINEL_LOOPBACK_ONLY" in r.summary
