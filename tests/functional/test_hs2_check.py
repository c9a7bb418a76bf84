"""The HiveServer2 check against the protocol stub on 127.0.0.1, in every mode it has."""

from __future__ import annotations

import subprocess
import sys
import time
from typing import Any

import pytest
from pydantic import SecretStr

from checks.base import CheckContext, CheckResult, Deadline, Status
from checks.hiveserver2 import HiveServer2Check, HiveServer2Config
from monitor.clock import SystemClock
from monitor.resolve import HostResolver
from monitor.sandbox.certs import CertSet
from monitor.sandbox.hs2_server import HiveServer2Stub
from monitor.secrets import Credentials, SecretResolver
from monitor.state.memory import MemoryStateStore
from tests.hs2_fixtures import PASSWORD

HOST = "hive.internal.example.com"
SLACK = 0.5  # the verdict may come this much after timeout_s


class Secrets(SecretResolver):
    """Serves a sequence of passwords: the first fetch, then each refresh."""

    def __init__(self, *values: str) -> None:
        super().__init__(clients=None)
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
    ctx = CheckContext(target="prod-hive", cluster=None, clients=None, secrets=secrets or Secrets(PASSWORD),
                       resolver=resolver, store=MemoryStateStore(), clock=SystemClock(),
                       deadline=Deadline.after(deadline))
    started = time.monotonic()
    result = HiveServer2Check(cfg).run(ctx)
    return result, time.monotonic() - started


def test_healthy_server_is_ok_with_rows_and_latency(hs2: HiveServer2Stub, certs: CertSet) -> None:
    r, _ = run(config(certs), hs2)
    assert r.status == Status.OK, r.summary
    assert r.observed["rows"] == 3 and r.observed["tls"] == "verified"
    assert 0 < r.latency_ms < 1000
    assert hs2.counters.logins == 1 and hs2.counters.queries >= 1


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


def test_rotated_password_is_picked_up_by_the_refetch(hs2: HiveServer2Stub, certs: CertSet) -> None:
    secrets = Secrets("old-password", PASSWORD)
    r, _ = run(config(certs), hs2, secrets=secrets)
    assert r.status == Status.OK, r.summary
    assert [a["error_kind"] for a in r.observed["attempts"]] == ["auth", None]


def test_query_error_is_critical_query(hs2: HiveServer2Stub, certs: CertSet) -> None:
    hs2.mode = "query_error"
    r, _ = run(config(certs), hs2)
    assert (r.status, r.error_kind) == (Status.CRITICAL, "query")
    assert "get_databases" in r.summary  # the server's own words


def test_stopped_server_is_critical_refused(hs2: HiveServer2Stub, certs: CertSet) -> None:
    hs2.stop()
    r, elapsed = run(config(certs), hs2)
    assert (r.status, r.error_kind) == (Status.CRITICAL, "refused")
    assert elapsed < 0.5


def test_wrong_ca_is_unknown_tls(hs2: HiveServer2Stub, certs: CertSet, other_ca: str) -> None:
    r, _ = run(config(certs, tls={"ca_file": other_ca}), hs2)
    assert (r.status, r.error_kind) == (Status.UNKNOWN, "tls")
    assert "certificate" in r.summary


def test_hostname_mismatch_is_unknown_tls(hs2: HiveServer2Stub, certs: CertSet) -> None:
    cfg = config(certs, host="hive.elsewhere.example.org")
    r, _ = run(cfg, hs2, aliases={"hive.elsewhere.example.org": f"127.0.0.1:{hs2.port}"})
    assert (r.status, r.error_kind) == (Status.UNKNOWN, "tls")


def test_verify_false_accepts_an_untrusted_certificate(hs2: HiveServer2Stub, certs: CertSet, other_ca: str) -> None:
    r, _ = run(config(certs, tls={"verify": False, "ca_file": other_ca}), hs2)
    assert r.status == Status.OK and r.observed["tls"] == "unverified"


def test_server_hostname_verifies_another_name(hs2: HiveServer2Stub, certs: CertSet) -> None:
    cfg = config(certs, host="10.1.2.3", tls={"ca_file": certs.ca_file, "server_hostname": "localhost"})
    r, _ = run(cfg, hs2, aliases={"10.1.2.3": f"127.0.0.1:{hs2.port}"})
    assert r.status == Status.OK, r.summary
    assert r.observed["connected_to"] == f"127.0.0.1:{hs2.port}"


@pytest.mark.parametrize("mode", ["hang_before_tls", "hang_after_connect"])
@pytest.mark.parametrize("timeout_s", [1.0, 2.0])
def test_hung_server_yields_critical_timeout_within_deadline(
    hs2: HiveServer2Stub, certs: CertSet, mode: str, timeout_s: float
) -> None:
    hs2.mode = mode
    r, elapsed = run(config(certs, timeout_s=timeout_s), hs2)
    assert (r.status, r.error_kind) == (Status.CRITICAL, "timeout")
    assert timeout_s * 0.9 <= elapsed < timeout_s + SLACK


def test_attempts_are_spaced_and_counted(hs2: HiveServer2Stub, certs: CertSet) -> None:
    hs2.mode = "query_error"
    r, elapsed = run(config(certs, attempts=3, retry_delay_s=0.2), hs2)
    assert len(r.observed["attempts"]) == 3
    assert elapsed >= 0.4


def test_attempts_stop_when_the_deadline_is_used_up(hs2: HiveServer2Stub, certs: CertSet) -> None:
    hs2.mode = "hang_after_connect"
    r, elapsed = run(config(certs, attempts=5, retry_delay_s=0.1, timeout_s=1.0), hs2, deadline=2.5)
    assert r.status == Status.CRITICAL
    assert 2 <= len(r.observed["attempts"]) < 5
    assert elapsed < 2.5 + SLACK


def test_auth_failure_is_not_retried_as_if_the_server_were_broken(hs2: HiveServer2Stub, certs: CertSet) -> None:
    hs2.mode = "reject_login"
    r, _ = run(config(certs, attempts=3, retry_delay_s=0.0), hs2)
    assert len(r.observed["attempts"]) == 1


def test_plain_transport_and_nosasl(certs: CertSet) -> None:
    with HiveServer2Stub(password="", sasl=False) as plain:
        cfg = config(certs, tls=False, auth="NOSASL", credentials=None, username="anon")
        r, _ = run(cfg, plain)
        assert r.status == Status.OK and r.observed["tls"] == "off"
    with HiveServer2Stub(username="anon", password="") as none_auth:
        r, _ = run(config(certs, tls=False, auth="NONE", credentials=None, username="anon"), none_auth)
        assert r.status == Status.OK, r.summary


def test_non_loopback_target_is_refused_in_tests(hs2: HiveServer2Stub, certs: CertSet) -> None:
    r, _ = run(config(certs), hs2, aliases={})
    assert (r.status, r.error_kind) == (Status.UNKNOWN, "config")
    assert "SENTINEL_LOOPBACK_ONLY" in r.summary


def test_missing_ca_file_is_config(hs2: HiveServer2Stub, certs: CertSet) -> None:
    r, _ = run(config(certs, tls={"ca_file": "/nope/ca.pem"}), hs2)
    assert (r.status, r.error_kind) == (Status.UNKNOWN, "config")


def test_password_never_in_result(hs2: HiveServer2Stub, certs: CertSet, caplog: pytest.LogCaptureFixture) -> None:
    for mode in ("ok", "reject_login", "query_error"):
        hs2.mode = mode
        r, _ = run(config(certs), hs2, secrets=Secrets(PASSWORD))
        assert PASSWORD not in repr(r) and PASSWORD not in str(r.to_dict())
    assert PASSWORD not in caplog.text


def test_importing_the_check_does_not_import_the_driver() -> None:
    code = ("import sys, checks.hiveserver2, monitor.handler; "
            "bad = [m for m in ('pyhive', 'thrift', 'thrift_sasl', 'puresasl') if m in sys.modules]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)
