"""What the CLI prints and returns at the edges: a closed pipe, AWS unreachable for `plan`,
and the latency a multi-attempt verdict reports."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from checks.base import Status
from monitor.cli import main
from monitor.render import nagios
from monitor.report import TargetReport, TickReport
from tests.fakes import Script
from tests.functional.test_check_without_state import closed_port, hive_config
from tests.hs2.helpers import PASSWORD_ENV, make_check, run_check
from tests.recover_fixtures import TARGET, moto_world, recovery_raw


@pytest.mark.timeout(90)
def test_check_json_into_a_closed_pipe_exits_quietly(tmp_path: Path) -> None:
    cfg = hive_config(tmp_path)  # hive refused: CRITICAL, exit 1 with --json
    env = {**os.environ, "AWS_ENDPOINT_URL": f"http://127.0.0.1:{closed_port()}"}
    proc = subprocess.Popen([sys.executable, "-m", "monitor.cli", "check", "-c", cfg, "--target", "prod-hive", "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    assert proc.stdout is not None
    proc.stdout.close()  # the reader is gone before a byte is written (`| head -c 10`, earlier)
    _, err = proc.communicate(timeout=60)
    assert b"Traceback" not in err and b"BrokenPipe" not in err, err.decode()
    assert proc.returncode == 1  # the verdict's exit code survives


def test_plan_exits_3_when_aws_cannot_be_read(tmp_path: Path, fake_checks: Script, monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "s.yaml"
    with moto_world() as world:
        cfg.write_text(yaml.safe_dump(recovery_raw(world)))
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{closed_port()}")  # nothing listens
    assert main(["plan", "-c", str(cfg), "--target", TARGET]) == 3
    out = capsys.readouterr().out
    assert "No plan: AWS could not be read" in out and "Plan FAILS" not in out


def test_latency_of_a_three_attempt_verdict_is_the_whole_check(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PASSWORD_ENV, "pw")
    with socket.create_server(("127.0.0.1", 0)) as s:
        port = int(s.getsockname()[1])
    result, wall = run_check(make_check(port=port, tls=False, attempts=3, retry_delay_s=0.2))
    attempts = result.observed["attempts"]
    assert (result.status, len(attempts)) == (Status.CRITICAL, 3)
    own = sum(a["latency_ms"] for a in attempts)
    assert result.latency_ms >= own + 2 * 200  # both retry delays are in the verdict's latency
    assert result.latency_ms <= wall * 1000
    assert result.observed["duration_ms"] == round(result.latency_ms, 1)
    report = TickReport(action="check", started_at="", targets=[TargetReport("t", Status.CRITICAL, [result])])
    line, _ = nagios(report)
    assert f"hive_latency={result.latency_ms:.0f}ms" in line
