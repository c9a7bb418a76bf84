"""The CLI on moto: exit codes, --json, --nagios, status timeline, silence/ack."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from moto import mock_aws

from checks.base import Status
from monitor.cli import main
from tests.fakes import Script
from tests.functional.aws import seed_account
from tests.functional.test_handler import write_config


@pytest.fixture
def cfg(tmp_path: Path, fake_checks: Script) -> Iterator[str]:
    with mock_aws():
        acct = seed_account()
        yield str(write_config(tmp_path / "s.yaml", acct.page_topic))


def test_tick_exit_codes_follow_status(cfg: str, fake_checks: Script, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["tick", "-c", cfg]) == 0
    fake_checks.set("hive", Status.CRITICAL, "timeout")
    capsys.readouterr()
    assert main(["tick", "-c", cfg, "--json"]) == 1
    assert json.loads(capsys.readouterr().out)["targets"][0]["status"] == "CRITICAL"
    fake_checks.set("hive", Status.UNKNOWN, "auth")
    assert main(["tick", "-c", cfg]) == 3


def test_tick_json_is_the_report(cfg: str, fake_checks: Script, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    assert main(["tick", "-c", cfg, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["action"] == "tick" and report["targets"][0]["checks"][0]["name"] == "hive"


def test_check_nagios_line_and_exit(cfg: str, fake_checks: Script, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    assert main(["check", "-c", cfg, "--target", "prod-hive", "--nagios"]) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith("SENTINEL OK - prod-hive: hive OK") and "| hive_latency=" in line
    assert "\n" not in line
    for status in (Status.WARNING, Status.CRITICAL, Status.UNKNOWN):
        fake_checks.set("hive", status)
        assert main(["check", "-c", cfg, "--target", "prod-hive", "--nagios"]) == int(status)
        assert capsys.readouterr().out.startswith(f"SENTINEL {status.name} - ")


def test_status_shows_timeline(cfg: str, fake_checks: Script, capsys: pytest.CaptureFixture[str]) -> None:
    fake_checks.set("hive", Status.CRITICAL)
    main(["tick", "-c", cfg])
    main(["silence", "-c", cfg, "--target", "prod-hive", "--for", "2h", "--reason", "db migration"])
    capsys.readouterr()
    assert main(["status", "-c", cfg, "--target", "prod-hive"]) == 0
    out = capsys.readouterr().out
    assert "silenced until" in out and "db migration" in out
    assert "timeline (newest first):" in out and "new -> failing" in out
    assert main(["status", "-c", cfg, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)["data"]["targets"]["prod-hive"]
    assert data["consecutive_failures"] == 1


def test_usage_errors_exit_2(cfg: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["silence", "-c", cfg, "--target", "prod-hive", "--for", "forever", "--reason", "x"]) == 2
    assert "duration 'forever'" in capsys.readouterr().err
    assert main(["ack", "-c", cfg, "--target", "nope"]) == 2
    with pytest.raises(SystemExit) as info:
        main(["check", "-c", cfg])  # --target required
    assert info.value.code == 2


def test_ack_clears_escalation(cfg: str, capsys: pytest.CaptureFixture[str]) -> None:
    from monitor.config import load_config
    from monitor.core.state.base import TargetState
    from monitor.runtime import build_services

    svc = build_services(load_config(cfg))
    svc.store.put("prod-hive", TargetState(escalated={"at": "2026-11-23T06:00:00Z", "reason": "launch failed"},
                                           incident={"id": "i-1", "phase": "ESCALATED"}), lease=None,
                  now=svc.clock.now())
    assert main(["ack", "-c", cfg, "--target", "prod-hive", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["data"]["was_escalated"] is True
    state = svc.store.get("prod-hive")
    assert state.escalated is None and state.incident is None
    assert svc.store.events("prod-hive")[0].kind == "ack"


def test_state_table_missing_is_unknown_not_crash(tmp_path: Path, fake_checks: Script,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    with mock_aws():
        import boto3

        topic = boto3.client("sns", region_name="us-east-1").create_topic(Name="p")["TopicArn"]
        cfg = write_config(tmp_path / "s.yaml", topic)  # no state table created
        assert main(["tick", "-c", str(cfg)]) == 3
        assert "state unreadable" in capsys.readouterr().out
