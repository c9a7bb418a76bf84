"""The hiveserver2 check against the HiveServer2-protocol test server, mode by mode.

Every scenario runs the real client stack (PyHive + thrift + thrift-sasl + pure-sasl, TLS from
the standard library) against ``monitor.sandbox.hs2_server`` on 127.0.0.1: TLS with a CA generated
for the session, SASL PLAIN checking user and password. The time bounds below are correctness bounds
(a hung server must yield a verdict within ``timeout_s`` + 0.5 s), not benchmarks.
"""

from __future__ import annotations

import functools
import json
import logging
import socket
import threading
import time
from collections.abc import Callable

import pytest

from checks.base import CheckResult, Deadline, Status
from checks.hiveserver2 import HiveServer2Check
from monitor.core.secrets import SecretResolver
from monitor.sandbox.certs import CertSet
from monitor.sandbox.hs2_server import Counters, HiveServer2Stub
from tests.fakes import NoClients
from tests.hs2.helpers import PASSWORD_ENV, make_check, make_ctx, run_check
from tests.hs2_fixtures import PASSWORD as HS2_PASSWORD
from tests.hs2_fixtures import ServerFactory

SLACK_S = 0.5
WRONG_PASSWORD = "Wrong-pw.for-rcapp-91c2"  # noqa: S105


CheckFactory = Callable[..., HiveServer2Check]


@pytest.fixture
def check(certs: CertSet) -> CheckFactory:
    """``make_check`` with TLS verified against the session CA (a server started by ``hs2_factory``)."""
    return functools.partial(make_check, ca_file=certs.ca_file)


@pytest.fixture(autouse=True)
def password(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv(PASSWORD_ENV, HS2_PASSWORD)
    return HS2_PASSWORD


def kinds(result: CheckResult) -> list[str | None]:
    return [a["error_kind"] for a in result.observed["attempts"]]


def queries(stats: Counters) -> list[str]:
    """The health queries the server received (PyHive also sends ``USE default``)."""
    return [s for s in stats.statements if not s.upper().startswith("USE")]


def attempt_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "hs2-attempt" and t.is_alive()]


# ---------------------------------------------------------------- healthy

def test_ok_returns_rows_latency_and_closes_everything(hs2: HiveServer2Stub, check: CheckFactory) -> None:
    result, wall = run_check(check(hs2))

    assert result.status is Status.OK, result.summary
    assert result.error_kind is None
    assert result.observed["rows"] == 3
    [attempt] = result.observed["attempts"]
    assert attempt["ok"] and attempt["error_kind"] is None and attempt["phase"] == "done"
    assert result.observed["tls"] == "verified"
    assert result.observed["connected_to"] == hs2.address
    assert 0 < result.latency_ms <= wall * 1000
    assert result.summary.startswith(f"SHOW DATABASES ok: 3 rows in {result.latency_ms:.0f} ms via 127.0.0.1:")
    assert result.summary.endswith("(tls verified)")
    assert hs2.wait_idle(), "the client must close its connection"
    stats = hs2.snapshot()
    assert (stats.logins, stats.failed_logins, queries(stats)) == (1, 0, ["SHOW DATABASES"])
    assert stats.sessions_opened == stats.sessions_closed == 1  # CloseSession sent, not just a dropped socket
    assert stats.client_closes == 1


def test_verify_false_accepts_an_untrusted_chain(hs2: HiveServer2Stub, check: CheckFactory, other_ca: str) -> None:
    result, _ = run_check(check(hs2, tls={"verify": False, "ca_file": other_ca}))
    assert result.status is Status.OK, result.summary
    assert result.observed["tls"] == "unverified"
    assert result.summary.endswith("(tls unverified)")


def test_median_latency_over_20_runs(hs2: HiveServer2Stub, check: CheckFactory) -> None:
    hive = check(hs2)
    ctx = make_ctx()
    latencies = []
    for _ in range(20):
        result = hive.run(ctx)
        assert result.status is Status.OK, result.summary
        latencies.append(result.latency_ms)
    latencies.sort()
    print(f"\nhiveserver2 check, TLS + SASL PLAIN, 20 runs: median {latencies[10]:.1f} ms, max {latencies[-1]:.1f} ms")
    assert hs2.snapshot().logins == 20
    assert hs2.wait_idle()


# ---------------------------------------------------------------- login and secrets

def test_wrong_password_is_unknown_auth_and_refetched_once(
    hs2: HiveServer2Stub, check: CheckFactory, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(PASSWORD_ENV, WRONG_PASSWORD)
    secrets = SecretResolver(NoClients())
    result, wall = run_check(check(hs2, attempts=3), make_ctx(secrets=secrets))

    assert result.status is Status.UNKNOWN, result.summary
    assert result.error_kind == "auth"
    assert "Error validating the login" in result.summary
    assert secrets.cache.fetches == 2  # the cached value, then one refetch bypassing the cache
    assert result.observed["password_refetch"] == "unchanged"
    assert kinds(result) == ["auth"]  # auth is never retried: a relaunch would not fix it
    assert result.observed["phase"] == "auth"
    assert hs2.snapshot().failed_logins == 1
    assert wall < 2.0


def test_rotated_password_is_refetched_and_the_check_recovers(
    hs2: HiveServer2Stub, check: CheckFactory, monkeypatch: pytest.MonkeyPatch,
) -> None:
    secrets = SecretResolver(NoClients())  # one warm container: the cache outlives a check
    hive = check(hs2)
    assert hive.run(make_ctx(secrets=secrets)).status is Status.OK  # caches the current password

    rotated = "Rotated-pw.rcapp-5d01"
    hs2.password = rotated  # the password was rotated in the server and in the store
    monkeypatch.setenv(PASSWORD_ENV, rotated)
    result, _ = run_check(hive, make_ctx(secrets=secrets))

    assert result.status is Status.OK, result.summary
    assert result.observed["password_refetch"] == "changed: retried"
    assert kinds(result) == ["auth", None]
    assert secrets.cache.fetches == 2
    stats = hs2.snapshot()
    assert (stats.logins, stats.failed_logins) == (2, 1)


def test_reject_login_mode_is_unknown_auth(hs2: HiveServer2Stub, check: CheckFactory) -> None:
    hs2.mode = "reject_login"
    result, _ = run_check(check(hs2, attempts=3, retry_delay_s=0.0))
    assert (result.status, result.error_kind) == (Status.UNKNOWN, "auth"), result.summary
    assert kinds(result) == ["auth"]  # not retried as if the server were broken


def test_missing_secret_is_unknown_secret_and_never_connects(
    hs2: HiveServer2Stub, check: CheckFactory, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(PASSWORD_ENV)
    result, _ = run_check(check(hs2))
    assert (result.status, result.error_kind) == (Status.UNKNOWN, "secret"), result.summary
    assert PASSWORD_ENV in result.summary
    assert hs2.snapshot().connections == 0


def test_password_never_appears_in_results_or_logs(
    hs2: HiveServer2Stub, check: CheckFactory, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.DEBUG)
    outputs = []
    for mode, secret in (("ok", HS2_PASSWORD), ("ok", WRONG_PASSWORD), ("query_error", HS2_PASSWORD),
                         ("hang_after_connect", HS2_PASSWORD)):
        hs2.mode = mode  # type: ignore[assignment]
        monkeypatch.setenv(PASSWORD_ENV, secret)
        result, _ = run_check(check(hs2, timeout_s=0.5), make_ctx(secrets=SecretResolver(NoClients())))
        outputs += [repr(result), json.dumps(result.to_dict()), str(result.observed)]
    captured = capsys.readouterr()
    everything = "\n".join([*outputs, caplog.text, captured.out, captured.err])
    assert "SHOW DATABASES" in caplog.text  # the driver's own logging was captured too
    for secret in (HS2_PASSWORD, WRONG_PASSWORD):
        assert secret not in everything


# ---------------------------------------------------------------- server-side failures

def test_query_error_is_critical_query(hs2: HiveServer2Stub, check: CheckFactory) -> None:
    hs2.mode = "query_error"
    result, _ = run_check(check(hs2))
    assert (result.status, result.error_kind) == (Status.CRITICAL, "query"), result.summary
    assert "SemanticException" in result.summary and "get_databases" in result.summary  # the server's words
    assert result.observed["phase"] == "query"
    assert hs2.wait_idle()


def test_stopped_server_is_critical_refused(hs2: HiveServer2Stub, check: CheckFactory) -> None:
    hs2.stop()
    result, wall = run_check(check(hs2))
    assert (result.status, result.error_kind) == (Status.CRITICAL, "refused"), result.summary
    assert result.observed["phase"] == "connect"
    assert wall < 1.0

    hs2.start()  # same port: the server is back
    assert run_check(check(hs2))[0].status is Status.OK


@pytest.mark.parametrize(("mode", "timeout_s", "phase"), [
    ("hang_before_tls", 1.0, "tls"),
    ("hang_before_tls", 2.0, "tls"),
    ("hang_after_connect", 1.0, "session"),
    ("hang_after_connect", 2.0, "session"),
    ("trickle", 1.0, "session"),  # no single read times out: only the watchdog ends it
])
def test_hung_server_is_critical_timeout_within_the_bound(
    hs2: HiveServer2Stub, check: CheckFactory, mode: str, timeout_s: float, phase: str,
) -> None:
    hs2.mode = mode  # type: ignore[assignment]
    result, wall = run_check(check(hs2, timeout_s=timeout_s))

    print(f"\n{mode}, timeout_s={timeout_s}: {result.status.name}/{result.error_kind} after {wall:.3f} s")
    assert (result.status, result.error_kind) == (Status.CRITICAL, "timeout"), result.summary
    assert timeout_s * 0.9 <= wall < timeout_s + SLACK_S
    assert result.observed["phase"] == phase
    assert hs2.wait_idle(1.0), "the client must drop the connection it gave up on"
    until = time.monotonic() + 1.0
    while attempt_threads() and time.monotonic() < until:
        time.sleep(0.01)
    assert not attempt_threads(), "the attempt thread must end once its socket is shut down"


def test_deadline_shorter_than_timeout_bounds_the_verdict(hs2: HiveServer2Stub, check: CheckFactory) -> None:
    hs2.mode = "hang_after_connect"
    result, wall = run_check(check(hs2, timeout_s=30), make_ctx(deadline_s=1.2))
    assert (result.status, result.error_kind) == (Status.CRITICAL, "timeout"), result.summary
    assert wall < 1.2 + SLACK_S


# ---------------------------------------------------------------- TLS

def test_certificate_from_another_ca_is_unknown_tls(hs2: HiveServer2Stub, check: CheckFactory, other_ca: str) -> None:
    result, wall = run_check(check(hs2, attempts=3, tls={"ca_file": other_ca}))
    assert (result.status, result.error_kind) == (Status.UNKNOWN, "tls"), result.summary
    assert "local issuer" in result.summary or "self-signed" in result.summary
    assert kinds(result) == ["tls"]  # not retried
    assert result.observed["phase"] == "tls"
    assert hs2.snapshot().logins == 0
    assert wall < 1.0


def test_hostname_mismatch_is_unknown_tls(hs2: HiveServer2Stub, check: CheckFactory, certs: CertSet) -> None:
    result, _ = run_check(check(hs2, tls={"ca_file": certs.ca_file, "server_hostname": "hive.other.example"}))
    assert (result.status, result.error_kind) == (Status.UNKNOWN, "tls"), result.summary
    assert "hive.other.example" in result.summary


def test_tls_setting_mismatch_is_never_critical(
    hs2_factory: ServerFactory, hs2: HiveServer2Stub, check: CheckFactory, certs: CertSet,
) -> None:
    """A plain client on the TLS port, or a TLS client on a plain port: a person must fix the
    config; a relaunch would not help, so it must not look like a broken server."""
    result, _ = run_check(check(hs2, tls=False))
    assert (result.status, result.error_kind) == (Status.UNKNOWN, "config"), result.summary
    assert result.observed["phase"] == "auth"

    plain_server = hs2_factory(tls=False)
    result, _ = run_check(check(plain_server, tls={"ca_file": certs.ca_file}, timeout_s=1))
    assert (result.status, result.error_kind) == (Status.UNKNOWN, "tls"), result.summary


# ---------------------------------------------------------------- host aliases and overrides

def test_host_alias_connects_to_loopback_and_verifies_the_configured_name(
    hs2: HiveServer2Stub, check: CheckFactory, certs: CertSet,
) -> None:
    aliases = {"hive.internal.example.com": hs2.address}
    hive = check(hs2, host="hive.internal.example.com", port=443,
                      tls={"ca_file": certs.ca_file, "server_hostname": "localhost"})
    result, _ = run_check(hive, make_ctx(aliases=aliases))
    assert result.status is Status.OK, result.summary
    assert result.observed["connected_to"] == hs2.address
    assert result.observed["server_hostname"] == "localhost"
    assert "via hive.internal.example.com:443" in result.summary

    # Without tls.server_hostname the certificate is checked against the configured name
    # (not the alias address): this certificate is not for hive.elsewhere.example.org.
    aliases = {"hive.elsewhere.example.org": hs2.address}
    mismatch = check(hs2, host="hive.elsewhere.example.org", port=443, tls={"ca_file": certs.ca_file})
    result, _ = run_check(mismatch, make_ctx(aliases=aliases))
    assert (result.status, result.error_kind) == (Status.UNKNOWN, "tls"), result.summary
    assert "hive.elsewhere.example.org" in result.summary


def test_host_override_goes_through_the_resolver(hs2: HiveServer2Stub, check: CheckFactory, certs: CertSet) -> None:
    aliases = {"ip-10-*.ec2.internal": hs2.address}
    hive = check(hs2, host="hive.internal.example.com", tls={"ca_file": certs.ca_file,
                                                                          "server_hostname": "localhost"})
    result, _ = run_check(hive, make_ctx(aliases=aliases, host_override="ip-10-1-2-3.ec2.internal"))
    assert result.status is Status.OK, result.summary
    assert result.observed["host"] == "ip-10-1-2-3.ec2.internal"


# ---------------------------------------------------------------- attempts and the deadline

def test_three_attempts_on_a_broken_server(hs2: HiveServer2Stub, check: CheckFactory) -> None:
    hs2.mode = "query_error"
    result, wall = run_check(check(hs2, attempts=3, retry_delay_s=0.2))
    assert (result.status, result.error_kind) == (Status.CRITICAL, "query"), result.summary
    assert [a["n"] for a in result.observed["attempts"]] == [1, 2, 3]
    assert wall >= 0.4  # two retry delays
    assert kinds(result) == ["query"] * 3
    assert all("SemanticException" in a["error"] for a in result.observed["attempts"])
    assert "(3 attempts)" in result.summary
    assert len(queries(hs2.snapshot())) == 3


def test_a_retry_that_succeeds_is_ok(hs2: HiveServer2Stub, check: CheckFactory) -> None:
    hs2.fail_queries(1)  # broken for the first attempt only
    result, _ = run_check(check(hs2, attempts=3, retry_delay_s=0.05))
    assert result.status is Status.OK, result.summary
    assert kinds(result) == ["query", None]
    assert "attempt 2" in result.summary


def test_attempts_stop_when_the_deadline_is_nearly_used(hs2: HiveServer2Stub, check: CheckFactory) -> None:
    hs2.mode = "hang_after_connect"
    result, wall = run_check(check(hs2, timeout_s=1, attempts=3, retry_delay_s=0.1),
                             make_ctx(deadline_s=1.6))
    assert (result.status, result.error_kind) == (Status.CRITICAL, "timeout"), result.summary
    assert kinds(result) == ["timeout"]
    assert "stopped" in result.observed
    assert wall < 1.6 + SLACK_S


def test_refused_attempts_are_spaced_and_bounded_by_the_deadline(hs2: HiveServer2Stub, check: CheckFactory) -> None:
    hs2.stop()
    result, wall = run_check(check(hs2, timeout_s=1, attempts=10, retry_delay_s=0.3),
                             make_ctx(deadline_s=2.0))
    assert (result.status, result.error_kind) == (Status.CRITICAL, "refused"), result.summary
    # attempts at ~0, 0.3, 0.6, 0.9; the next would leave less than min(timeout_s, 1 s) after its delay
    assert 2 <= len(result.observed["attempts"]) <= 4, result.observed
    assert wall < 2.0


def test_no_time_left_makes_no_attempt(hs2: HiveServer2Stub, check: CheckFactory) -> None:
    ctx = make_ctx()
    ctx.deadline = Deadline.after(0.3)
    result, _ = run_check(check(hs2, timeout_s=5), ctx)
    assert result.status is Status.UNKNOWN, result.summary
    assert result.observed["attempts"] == []
    assert hs2.snapshot().connections == 0


# ---------------------------------------------------------------- other auth modes

def test_nosasl_without_tls(hs2_factory: ServerFactory, check: CheckFactory) -> None:
    server = hs2_factory(tls=False, sasl=False)
    result, _ = run_check(check(server, tls=False, auth="NOSASL", credentials=None, username="hive"))
    assert result.status is Status.OK, result.summary
    assert result.observed["tls"] == "off"
    assert result.summary.endswith("(tls off)")
    stats = server.snapshot()
    assert queries(stats) == ["SHOW DATABASES"] and stats.logins == 0 and stats.login_users == []  # no SASL
    assert server.wait_idle()


def test_nosasl_hang_is_timeout(hs2_factory: ServerFactory, check: CheckFactory) -> None:
    server = hs2_factory(tls=False, sasl=False)
    server.mode = "hang_after_connect"
    result, wall = run_check(check(server, tls=False, auth="NOSASL", credentials=None, timeout_s=1))
    assert (result.status, result.error_kind) == (Status.CRITICAL, "timeout"), result.summary
    assert wall < 1.0 + SLACK_S


def test_auth_none_sends_the_user_and_a_dummy_password(hs2_factory: ServerFactory, check: CheckFactory) -> None:
    server = hs2_factory(username="monitor", password="")  # "": any password (HiveServer2 auth NONE)
    result, _ = run_check(check(server, auth="NONE", credentials=None, username="monitor"))
    assert result.status is Status.OK, result.summary
    assert server.snapshot().login_users == ["monitor"]


def test_auth_none_ignores_configured_credentials_secret(
    hs2_factory: ServerFactory, check: CheckFactory, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(PASSWORD_ENV)  # NONE sends no password: the secret is not even read
    server = hs2_factory(password="")
    result, _ = run_check(check(server, auth="NONE"))
    assert result.status is Status.OK, result.summary
    assert server.snapshot().login_users == ["rcapp"]


# ---------------------------------------------------------------- the test server itself

def test_server_bounds_connections_and_stop_releases_hung_ones(hs2_factory: ServerFactory) -> None:
    server = hs2_factory(max_connections=2)
    server.mode = "hang_before_tls"
    clients = [socket.create_connection((server.host, server.port), timeout=2) for _ in range(3)]
    try:
        until = time.monotonic() + 2
        while server.snapshot().connections < 3 and time.monotonic() < until:
            time.sleep(0.01)
        stats = server.snapshot()
        assert (stats.connections, stats.rejected_connections, stats.open_connections) == (3, 1, 2)

        started = time.monotonic()
        server.stop()
        assert time.monotonic() - started < 1.0
        assert server.snapshot().open_connections == 0
        assert not [t for t in threading.enumerate() if t.name.startswith(f"hs2-conn-{server.port}")]
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection((server.host, server.port), timeout=2).close()
    finally:
        for c in clients:
            c.close()
