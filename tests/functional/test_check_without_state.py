"""``check`` judges from its checks, not from the state table; every AWS client gives up in
bounded time. The AWS endpoint here is a loopback server that accepts connections and never
answers (a wedged VPC endpoint / proxy), set as ``AWS_ENDPOINT_URL``."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from moto import mock_aws

from checks.base import Status
from monitor.cli import main
from monitor.core.aws import ClientFactory
from tests.fakes import Script
from tests.functional.test_handler import write_config

VERDICT_WITHIN_S = 10.0  # the bound for `check` and `status` with AWS unreachable


class SilentServer:
    """Accepts TCP connections on 127.0.0.1 and never sends a byte."""

    def __init__(self) -> None:
        self._sock = socket.create_server(("127.0.0.1", 0))
        self._sock.settimeout(0.2)
        self.port = int(self._sock.getsockname()[1])
        self._held: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(OSError):
                conn, _ = self._sock.accept()
                self._held.append(conn)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        for conn in [*self._held, self._sock]:
            conn.close()


@pytest.fixture
def silent_aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[SilentServer]:
    server = SilentServer()
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{server.port}")
    yield server
    server.stop()


def closed_port() -> int:
    with socket.create_server(("127.0.0.1", 0)) as s:
        return int(s.getsockname()[1])


def hive_config(tmp_path: Path) -> str:
    """A real hiveserver2 check against a closed loopback port (CRITICAL refused), with its
    password from the environment, so only the state table needs AWS."""
    raw: dict[str, Any] = {
        "version": 1, "region": "us-east-1", "state_table": "sentinel-state",
        "notify": {"page_topic_arn": "arn:aws:sns:us-east-1:123456789012:p"},
        "host_aliases": {"hive.internal.example.com": f"127.0.0.1:{closed_port()}"},
        "targets": [{
            "name": "prod-hive", "cluster": {"name": "RC.HIVE"},
            "checks": [{"type": "hiveserver2", "name": "hive", "host": "hive.internal.example.com", "port": 443,
                        "tls": False, "auth": "NOSASL", "username": "rcapp", "timeout_s": 2}],
        }],
    }
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(raw))
    return str(path)


@pytest.mark.timeout(60)
def test_check_nagios_with_the_state_endpoint_hanging_is_critical_within_10s(
        silent_aws: SilentServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = hive_config(tmp_path)
    started = time.monotonic()
    code = main(["check", "-c", cfg, "--target", "prod-hive", "--nagios"])
    took = time.monotonic() - started
    line = capsys.readouterr().out
    assert code == int(Status.CRITICAL), line
    assert line.startswith("SENTINEL CRITICAL - prod-hive: hive CRITICAL: refused")
    assert "note: state table unreadable" in line
    assert took < VERDICT_WITHIN_S


@pytest.mark.timeout(60)
def test_status_with_the_state_endpoint_hanging_is_unknown_within_10s(
        silent_aws: SilentServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = hive_config(tmp_path)
    started = time.monotonic()
    code = main(["status", "-c", cfg, "--target", "prod-hive"])
    took = time.monotonic() - started
    captured = capsys.readouterr()
    assert code == 3
    assert "state" in captured.out + captured.err
    assert took < VERDICT_WITHIN_S


def test_check_with_the_state_table_missing_judges_from_the_checks(
        tmp_path: Path, fake_checks: Script, capsys: pytest.CaptureFixture[str]) -> None:
    with mock_aws():
        cfg = str(write_config(tmp_path / "s.yaml", "arn:aws:sns:us-east-1:123456789012:p"))  # no table
        assert main(["check", "-c", cfg, "--target", "prod-hive", "--nagios"]) == 0
        assert "note: state table unreadable" in capsys.readouterr().out
        fake_checks.set("hive", Status.CRITICAL, "refused")
        assert main(["check", "-c", cfg, "--target", "prod-hive", "--json"]) == 2 - 1  # CRITICAL: exit 1 outside Nagios
        assert '"notes": [' in capsys.readouterr().out
        # a rate check that lost its previous sample is UNKNOWN; the CRITICAL still decides the verdict
        raw = yaml.safe_load(Path(cfg).read_text())
        raw["targets"][0]["checks"].append({"type": "fake", "name": "dns"})
        Path(cfg).write_text(yaml.safe_dump(raw))
        fake_checks.set("dns", Status.UNKNOWN)
        assert main(["check", "-c", cfg, "--target", "prod-hive", "--nagios"]) == int(Status.CRITICAL)
        assert capsys.readouterr().out.startswith("SENTINEL CRITICAL")
        main(["check", "-c", cfg, "--target", "prod-hive", "--json"])
        assert '"status": "CRITICAL"' in capsys.readouterr().out.split('"checks"')[0]  # the target's own status


def test_every_client_has_bounded_timeouts_and_a_no_retry_variant() -> None:
    factory = ClientFactory("us-east-1")
    for service in ("dynamodb", "emr", "elbv2", "route53", "sns", "cloudwatch", "kms"):
        cfg = factory.config(service)
        assert cfg.connect_timeout <= 3
        assert cfg.read_timeout <= 5
        assert cfg.retries["total_max_attempts"] <= 2  # the first call included
    assert factory.config("dynamodb").read_timeout <= 2  # on the path of every verdict
    assert factory.config("emr", retries=False).retries["total_max_attempts"] == 1
    no_retry = factory.client("emr", retries=False)
    assert no_retry is not factory.client("emr")
    assert no_retry.meta.config.retries["total_max_attempts"] == 1
    assert factory.client("emr").meta.config.connect_timeout <= 3
