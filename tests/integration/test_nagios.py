"""``sentinel check --nagios`` under a real Nagios Core 4 (Debian ``nagios4-core``).

A team that watches HiveServer2 with Nagios can keep its dashboards while it moves to
sentinel: Nagios runs the plugin as a service check against the HiveServer2 stub on
127.0.0.1 (TLS + SASL PLAIN, the password from ``provider: env``), the service goes
SOFT → HARD CRITICAL when the server hangs and back to OK when it answers again, and Nagios
itself splits the perfdata off the output (status.dat and its perfdata file).
"""

from __future__ import annotations

import re
import shlex
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from monitor.sandbox.certs import CertSet
from monitor.sandbox.hs2_server import HiveServer2Stub
from tests.hs2_fixtures import PASSWORD, USERNAME
from tests.integration.nagios import Nagios, ServiceStatus, nagios_binary

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
HOST = "hive.internal.example.com"
TIMEOUT_S = 2  # the check's own deadline: a hung server is CRITICAL after this long
MAX_ATTEMPTS = 3
PERFDATA = re.compile(r"^hive_latency=\d+ms;;;0$")


def _plugin(config: Path) -> str:
    """The service's command: sentinel's console script with a clean environment holding the
    secret (provider: env) and fake AWS credentials pointed at a closed loopback port, so the
    state table is unreadable and `check` judges from its checks alone, as it is built to."""
    sentinel = Path(sys.executable).with_name("sentinel")
    env = {"PATH": "/usr/bin:/bin", "HIVE_PW": PASSWORD, "AWS_ACCESS_KEY_ID": "testing",
           "AWS_SECRET_ACCESS_KEY": "testing", "AWS_REGION": "us-east-1",
           "AWS_ENDPOINT_URL": "http://127.0.0.1:9", "SENTINEL_LOOPBACK_ONLY": "1"}
    assigns = " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items())
    return (f"#!/bin/sh\nexec env -i {assigns} {shlex.quote(str(sentinel))} check --nagios "
            f"-c {shlex.quote(str(config))} --target prod-hive\n")


def _config(path: Path, certs: CertSet, port: int) -> Path:
    path.write_text(yaml.safe_dump({
        "version": 1, "region": "us-east-1", "state_table": "sentinel-state",
        "notify": {"page_topic_arn": "arn:aws:sns:us-east-1:123456789012:sentinel-pages"},
        "host_aliases": {HOST: f"127.0.0.1:{port}"},
        "targets": [{"name": "prod-hive", "cluster": {"name": "RC.HIVE.ADHOC"}, "checks": [{
            "type": "hiveserver2", "name": "hive", "host": HOST, "port": 443,
            "tls": {"verify": True, "ca_file": certs.ca_file}, "auth": "CUSTOM",
            "credentials": {"provider": "env", "username": USERNAME, "key": "HIVE_PW"},
            "timeout_s": TIMEOUT_S, "attempts": 1}]}],
    }))
    return path


@pytest.fixture
def nagios(tmp_path: Path, hs2: HiveServer2Stub, certs: CertSet) -> Iterator[Nagios]:
    if nagios_binary() is None:
        pytest.skip("Nagios Core 4 is not installed (no /usr/sbin/nagios4): apt-get install nagios4-core")
    config = _config(tmp_path / "sentinel.yaml", certs, hs2.port)
    server = Nagios(tmp_path / "nagios", _plugin(config), max_attempts=MAX_ATTEMPTS, retry_s=1, interval_s=2)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _wait(nagios: Nagios, seen: list[tuple[float, str]], until: str, timeout: float) -> ServiceStatus:
    """Poll status.dat, recording every distinct (state type, state, attempt) with its time."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        st = nagios.status()
        if st is not None:
            if not seen or seen[-1][1] != st.label:
                seen.append((round(time.monotonic() - started, 1), st.label))
            if st.label.startswith(until):
                return st
        time.sleep(0.2)
    raise AssertionError(f"no '{until}' within {timeout:.0f}s; seen {seen}\n{nagios.log()[-1500:]}")


def test_nagios_sees_a_hung_server_go_soft_then_hard_critical_and_recover(
        nagios: Nagios, hs2: HiveServer2Stub) -> None:
    ok: list[tuple[float, str]] = []
    st = _wait(nagios, ok, "HARD OK", timeout=30)
    assert st.output.startswith("SENTINEL OK - prod-hive: hive OK")
    assert "|" not in st.output and PERFDATA.match(st.perfdata), st  # Nagios split the perfdata off

    hs2.mode = "hang_after_connect"
    failing: list[tuple[float, str]] = []
    st = _wait(nagios, failing, "HARD CRITICAL", timeout=40)
    labels = [label for _, label in failing]
    assert labels[-1] == f"HARD CRITICAL {MAX_ATTEMPTS}"
    assert [f"SOFT CRITICAL {n}" for n in range(1, MAX_ATTEMPTS)] == \
        [label for label in labels if label.startswith("SOFT CRITICAL")], failing
    assert "timeout" in st.output and PERFDATA.match(st.perfdata), st
    assert int(st.perfdata.split("=")[1].split("ms")[0]) >= TIMEOUT_S * 1000 * 0.9

    hs2.mode = "ok"
    back: list[tuple[float, str]] = []
    _wait(nagios, back, "HARD OK", timeout=30)

    # Nagios' own perfdata file: one line per check result, its state and type, the perfdata alone.
    rows = nagios.perfdata_lines()
    assert {(r[2], r[3]) for r in rows} >= {("OK", "HARD"), ("CRITICAL", "SOFT"), ("CRITICAL", "HARD")}
    assert all(PERFDATA.match(r[5]) for r in rows), rows
    print(f"\nnagios timings (s): ok {ok}; failing {failing}; recovered {back}")
