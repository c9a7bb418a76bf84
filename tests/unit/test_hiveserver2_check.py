"""The hiveserver2 check's own logic: lazy driver import, error classification, the checks it
makes before connecting (resolver policy, CA file, secret, deadline). Scenarios against a
server are in tests/functional/test_hiveserver2_server.py."""

from __future__ import annotations

import socket
import ssl
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from pydantic import ValidationError

from checks import registry
from checks.base import ErrorKind, Status
from checks.hiveserver2 import HiveServer2Check, HiveServer2Config, tls_mode, tls_server_name
from checks.hs2_errors import classify, exception_chain
from checks.hs2_session import ServerClosed, Target
from tests.hs2.helpers import PASSWORD_ENV, check_block, make_check, make_ctx, run_check

REPO = Path(__file__).resolve().parents[2]
SECRET = "Unit-test-pw.0b7e"  # noqa: S105


def test_importing_the_check_does_not_import_the_driver() -> None:
    code = (
        "import sys, checks.hiveserver2, checks.registry, monitor.handler\n"
        "checks.registry.config_model('hiveserver2')\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] in "
        "('pyhive', 'thrift', 'thrift_sasl', 'puresasl', 'TCLIService'))\n"
        "assert not loaded, loaded\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr


def test_registry_builds_the_check() -> None:
    cfg = HiveServer2Config.model_validate(check_block())
    assert isinstance(registry.build(cfg), HiveServer2Check)


# ---------------------------------------------------------------- config

def test_config_defaults_are_tls_verified_and_custom_auth() -> None:
    cfg = HiveServer2Config.model_validate({"type": "hiveserver2", "name": "h", "host": "hive",
                                            "credentials": {"provider": "env", "username": "u", "key": "K"}})
    assert tls_mode(cfg.tls) == "verified"
    assert (cfg.auth, cfg.port, cfg.query, cfg.attempts) == ("CUSTOM", 10000, "SHOW DATABASES", 1)


def test_config_tls_modes_and_credentials_rule() -> None:
    assert tls_mode(HiveServer2Config.model_validate(check_block(tls=False)).tls) == "off"
    assert tls_mode(HiveServer2Config.model_validate(check_block(tls={"verify": False})).tls) == "unverified"
    with pytest.raises(ValidationError, match="credentials: required for auth LDAP"):
        HiveServer2Config.model_validate(check_block(auth="LDAP", credentials=None))
    HiveServer2Config.model_validate(check_block(auth="NOSASL", credentials=None))
    with pytest.raises(ValidationError):
        HiveServer2Config.model_validate(check_block(tls={"verify": True, "cafile": "x"}))  # unknown key


def test_target_repr_hides_the_password() -> None:
    t = Target("127.0.0.1", 1, "localhost", False, "CUSTOM", "rcapp", SECRET, "SHOW DATABASES", "default", 1.0)
    assert SECRET not in repr(t)


# ---------------------------------------------------------------- before connecting

def test_host_not_allowed_by_the_resolver_is_unknown_config() -> None:
    result, _ = run_check(make_check(host="hive.internal.example.com"), make_ctx())  # loopback only, no alias
    assert (result.status, result.error_kind) == (Status.UNKNOWN, "config"), result.summary
    assert "hive.internal.example.com" in result.summary
    assert result.observed["attempts"] == []


def test_missing_ca_file_is_unknown_config(tmp_path: Path) -> None:
    result, _ = run_check(make_check(tls={"ca_file": str(tmp_path / "nope.pem")}))
    assert (result.status, result.error_kind) == (Status.UNKNOWN, "config"), result.summary
    assert "nope.pem" in result.summary


def test_unreadable_secret_is_unknown_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(PASSWORD_ENV, raising=False)
    result, _ = run_check(make_check(tls=False))
    assert (result.status, result.error_kind) == (Status.UNKNOWN, "secret"), result.summary


def test_no_time_left_is_unknown_without_an_attempt(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PASSWORD_ENV, SECRET)
    result, _ = run_check(make_check(tls=False), make_ctx(deadline_s=0.1))
    assert result.status is Status.UNKNOWN, result.summary
    assert result.observed["attempts"] == []


def test_closed_port_is_critical_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PASSWORD_ENV, SECRET)
    with socket.socket() as s:  # a port nobody listens on (just released)
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    result, wall = run_check(make_check(port=port, tls=False, attempts=2, retry_delay_s=0.01))
    assert (result.status, result.error_kind) == (Status.CRITICAL, "refused"), result.summary
    assert [a["error_kind"] for a in result.observed["attempts"]] == ["refused", "refused"]
    assert wall < 1.0
    assert SECRET not in repr(result)


# ---------------------------------------------------------------- classification

def _thrift_exc(message: str, *, type_: int = 1, inner: BaseException | None = None) -> BaseException:
    from thrift.transport.TTransport import TTransportException

    exc: BaseException = TTransportException(type=type_, message=message, inner=inner)
    return exc


def _operational_error(text: str) -> BaseException:
    from pyhive.exc import OperationalError

    status = SimpleNamespace(errorMessage=text, sqlState="42000")
    exc: BaseException = OperationalError(SimpleNamespace(status=status))
    return exc


def _with_context(outer: BaseException, inner: BaseException) -> BaseException:
    outer.__context__ = inner
    return outer


def _cert_error(message: str) -> ssl.SSLCertVerificationError:
    err = ssl.SSLCertVerificationError(1, "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed")
    err.verify_message = message
    return err


@pytest.mark.parametrize(("exc", "phase", "kind", "text"), [
    # what thrift's own socket reports for a wrong CA: the real cause only in .inner
    (_thrift_exc("Could not connect to any of [('127.0.0.1', 1)]", inner=_cert_error("self-signed certificate")),
     "tls", ErrorKind.TLS, "self-signed certificate"),
    # thrift 0.25 through PyHive: a failed open surfaces as an AttributeError; the cause is its context
    (_with_context(AttributeError("'NoneType' object has no attribute 'settimeout'"), ConnectionRefusedError(111, "refused")),
     "connect", ErrorKind.REFUSED, "refused"),
    (ConnectionRefusedError(111, "Connection refused"), "connect", ErrorKind.REFUSED, "refused"),
    (TimeoutError("timed out"), "connect", ErrorKind.TIMEOUT, "no answer within 2.0 s during connect"),
    (TimeoutError("_ssl.c:983: The handshake operation timed out"), "tls", ErrorKind.TIMEOUT, "during tls"),
    (_thrift_exc("read timeout", type_=3, inner=TimeoutError("timed out")), "query", ErrorKind.TIMEOUT, "during query"),
    (_thrift_exc("Bad status: 3 (b'Error validating the login')"), "auth", ErrorKind.AUTH,
     "login rejected (SASL status 3: Error validating the login)"),
    (ServerClosed("the server closed the connection"), "auth", ErrorKind.CONFIG, "SASL login"),
    (ssl.SSLEOFError(8, "EOF occurred in violation of protocol"), "tls", ErrorKind.TLS, "TLS handshake"),
    (ServerClosed("the server closed the connection"), "query", ErrorKind.REFUSED, "closed the connection during query"),
    (ConnectionResetError(104, "reset"), "session", ErrorKind.REFUSED, "during session"),
    (_operational_error("FAILED: SemanticException [Error 10072]: Database does not exist"), "query", ErrorKind.QUERY,
     "query failed: FAILED: SemanticException [Error 10072]: Database does not exist (SQLState 42000)"),
    (_operational_error("metastore down"), "session", ErrorKind.QUERY, "session failed: metastore down"),
    (socket.gaierror(-2, "Name or service not known"), "connect", ErrorKind.DNS, "cannot resolve"),
    (OSError(113, "No route to host"), "connect", ErrorKind.REFUSED, "No route to host"),
    (ValueError("check_hostname requires server_hostname"), "tls", ErrorKind.CONFIG, "client error during tls"),
    (AssertionError("Unable to handle protocol version 5"), "session", ErrorKind.CONFIG, "client error during session"),
])
def test_classify(exc: BaseException, phase: str, kind: ErrorKind, text: str) -> None:
    got_kind, message = classify(exc, phase, 2.0, SECRET)
    assert got_kind is kind, message
    assert text in message


@pytest.mark.parametrize(("exc", "phase", "kind"), [
    (ServerClosed("the server closed the connection"), "auth", ErrorKind.NO_BACKEND),  # TLS done, then EOF
    (ConnectionResetError(104, "reset"), "auth", ErrorKind.NO_BACKEND),
    (ssl.SSLEOFError(8, "EOF occurred in violation of protocol"), "tls", ErrorKind.NO_BACKEND),  # TCP listener
    (ssl.SSLZeroReturnError(6, "TLS/SSL connection has been closed (EOF)"), "auth", ErrorKind.NO_BACKEND),
    # Still what they were: a refusal, a certificate, a TLS protocol error, a rejected login, a timeout.
    (ConnectionRefusedError(111, "Connection refused"), "connect", ErrorKind.REFUSED),
    (_cert_error("self-signed certificate"), "tls", ErrorKind.TLS),
    (ssl.SSLError(1, "[SSL: WRONG_VERSION_NUMBER] wrong version number"), "tls", ErrorKind.TLS),
    (_thrift_exc("Bad status: 3 (b'Error validating the login')"), "auth", ErrorKind.AUTH),
    (TimeoutError("timed out"), "auth", ErrorKind.TIMEOUT),
    (ServerClosed("the server closed the connection"), "query", ErrorKind.REFUSED),
])
def test_classify_with_a_load_balancer_in_the_path(exc: BaseException, phase: str, kind: ErrorKind) -> None:
    got, message = classify(exc, phase, 2.0, SECRET, eof_means_no_backend=True)
    assert got is kind, message
    assert got.critical or kind in (ErrorKind.TLS, ErrorKind.AUTH)


def test_no_backend_and_dns_are_critical_and_only_no_backend_is_retried() -> None:
    assert ErrorKind.NO_BACKEND.server_broken and ErrorKind.NO_BACKEND.critical
    assert ErrorKind.DNS.critical and not ErrorKind.DNS.server_broken
    assert not ErrorKind.CONFIG.critical


@pytest.mark.parametrize(("configured", "host", "expected"), [
    (None, "hive.internal.example.com", "hive.internal.example.com"),
    ("hive.internal.example.com", "10.0.1.5", "hive.internal.example.com"),
    ("*.ec2.internal", "ip-10-0-1-23.ec2.internal", "ip-10-0-1-23.ec2.internal"),
    ("*.EC2.internal", "IP-10-0-1-23.ec2.internal.", "IP-10-0-1-23.ec2.internal."),
])
def test_tls_server_name_verifies_the_connected_host_when_it_matches_the_wildcard(
        configured: str | None, host: str, expected: str) -> None:
    assert tls_server_name(configured, host) == expected


@pytest.mark.parametrize("host", ["ec2.internal", "a.b.ec2.internal", "ip-10-0-1-23.compute.internal", "10.0.1.23"])
def test_tls_server_name_wildcard_mismatch_is_a_config_error(host: str) -> None:
    with pytest.raises(ValueError, match="does not match"):
        tls_server_name("*.ec2.internal", host)


def test_classify_scrubs_the_password_and_bounds_the_message() -> None:
    kind, message = classify(RuntimeError(f"weird driver text with {SECRET} " + "x" * 500), "session", 1.0, SECRET)
    assert SECRET not in message and "****" in message
    assert len(message) <= 240
    assert kind is ErrorKind.CONFIG


def test_exception_chain_follows_inner_cause_and_context_once() -> None:
    root = ConnectionRefusedError()
    mid = _thrift_exc("Could not connect", inner=root)
    top = _with_context(AttributeError("x"), mid)
    mid.__cause__ = top  # a cycle must not loop
    assert exception_chain(top) == [top, mid, root]
