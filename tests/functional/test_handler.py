"""The Lambda handler end to end on moto: DynamoDB state, SNS pages read back through SQS,
EMF metrics on stdout, warm-container reuse without leaking invocation data."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from moto import mock_aws

from checks.base import Status
from monitor import handler
from monitor.core.state.dynamodb import DynamoStateStore
from tests.fakes import Script
from tests.functional.aws import Account, LambdaContext, seed_account


def write_config(path: Path, topic: str, **recovery: Any) -> Path:
    raw = {
        "version": 1, "region": "us-east-1", "state_table": "sentinel-state",
        "notify": {"page_topic_arn": topic},
        "targets": [{
            "name": "prod-hive", "cluster": {"name": "RC.HIVE"},
            "checks": [{"type": "fake", "name": "hive"}],
            # min_gap_s 0: the scheduled ticks here run back to back on the real clock, each meant as
            # its own look (spacing: tests/unit/test_evidence.py).
            "recovery": {"enabled": False, "when": {"checks": ["hive"], "consecutive_failures": 2, "min_gap_s": 0},
                         **recovery},
        }],
    }
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.fixture
def account(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fake_checks: Script) -> Iterator[Account]:
    with mock_aws():
        acct = seed_account()
        monkeypatch.setenv("SENTINEL_CONFIG", str(write_config(tmp_path / "sentinel.yaml", acct.page_topic)))
        monkeypatch.setattr(handler, "_WARM", handler._Warm())
        yield acct


def emf_lines(out: str) -> list[dict[str, Any]]:
    lines = []
    for line in out.splitlines():
        try:
            doc = json.loads(line)
        except ValueError:
            continue
        if isinstance(doc, dict) and "_aws" in doc:
            lines.append(doc)
    return lines


SCHEDULED = {"source": "aws.events", "detail-type": "Scheduled Event", "detail": {}}


def test_scheduled_ticks_persist_page_and_publish_metrics(
    account: Account, fake_checks: Script, capsys: pytest.CaptureFixture[str]
) -> None:
    fake_checks.set("hive", Status.CRITICAL, "timeout")
    r1 = handler.lambda_handler(SCHEDULED, LambdaContext("req-1"))
    r2 = handler.lambda_handler(SCHEDULED, LambdaContext("req-2"))
    assert r1["targets"][0]["decision"]["verdict"] == "failing"
    assert r2["targets"][0]["decision"]["verdict"] == "confirmed"
    assert (r2["exit_code"], r2["request_id"]) == (1, "req-2")
    assert r1["notifications"] == []  # no leak of invocation data between warm invocations
    assert [n["kind"] for n in r2["notifications"]] == ["confirmed"]

    [msg] = account.messages()
    assert "prod-hive" in msg["Subject"] and "CRITICAL" in msg["Subject"]
    assert "recovery is disabled" in msg["Message"]
    assert msg["MessageAttributes"]["kind"]["Value"] == "confirmed"

    state = DynamoStateStore(account.clients.client("dynamodb"), "sentinel-state").get("prod-hive")
    assert (state.version, state.consecutive_failures, state.last_decision) == (2, 2, "confirmed")

    metrics = emf_lines(capsys.readouterr().out)
    check_status = [m for m in metrics if "CheckStatus" in m and m.get("check") == "hive"]
    assert [m["CheckStatus"] for m in check_status] == [[2.0], [2.0]]
    assert check_status[0]["target"] == "prod-hive"
    assert check_status[0]["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "Sentinel"
    assert len([m for m in metrics if "Heartbeat" in m]) == 2


def test_warm_container_reuses_its_services(account: Account) -> None:
    handler.lambda_handler(SCHEDULED, LambdaContext("a"))
    first = handler._WARM.services
    handler.lambda_handler(SCHEDULED, LambdaContext("b"))
    assert handler._WARM.services is first


def test_malformed_event_changes_nothing(account: Account) -> None:
    report = handler.lambda_handler({"action": "explode"}, LambdaContext())
    assert report["exit_code"] == 2 and report["errors"][0].startswith("usage: action")
    state = DynamoStateStore(account.clients.client("dynamodb"), "sentinel-state").get("prod-hive")
    assert state.version == 0
    assert account.messages() == []


def test_bad_config_is_reported_without_aws_calls(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fake_checks: Script
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 1\nregion: us-east-1\n")
    monkeypatch.setenv("SENTINEL_CONFIG", str(bad))
    monkeypatch.setattr(handler, "_WARM", handler._Warm())
    report = handler.lambda_handler(SCHEDULED, LambdaContext())
    assert report["exit_code"] == 2
    assert report["errors"][0].startswith("config: state_table: required")


def test_manual_actions_through_the_handler(account: Account, fake_checks: Script) -> None:
    ctx = LambdaContext(qualifier="operator")
    rep = handler.lambda_handler({"action": "silence", "target": "prod-hive", "for": "1h", "reason": "deploy",
                                  "requested_by": "alice"}, ctx)
    assert rep["exit_code"] == 0
    assert rep["data"]["silences"][0]["by"] == "alice (self-declared; via operator door, request req-1)"
    status = handler.lambda_handler({"action": "status", "target": "prod-hive"}, ctx)
    assert status["data"]["targets"]["prod-hive"]["silenced"]["reason"] == "deploy"
    assert status["data"]["targets"]["prod-hive"]["events"][0]["kind"] == "silence"
    fake_checks.set("hive", Status.CRITICAL)
    check = handler.lambda_handler({"action": "check", "target": "prod-hive"}, ctx)
    assert check["targets"][0]["status"] == "CRITICAL"
    assert handler.lambda_handler({"action": "unsilence", "target": "prod-hive"}, ctx)["exit_code"] == 0
    ack = handler.lambda_handler({"action": "ack", "target": "prod-hive"}, ctx)
    assert ack["data"]["was_escalated"] is False
    state = DynamoStateStore(account.clients.client("dynamodb"), "sentinel-state").get("prod-hive")
    assert state.silences == [] and state.consecutive_failures == 0  # check did not count


def test_alarm_notification_ticks_target(account: Account) -> None:
    msg = {"AlarmName": "sentinel-heartbeat", "NewStateValue": "ALARM",
           "Trigger": {"Dimensions": [{"name": "target", "value": "prod-hive"}]}}
    rep = handler.lambda_handler({"Records": [{"EventSource": "aws:sns", "Sns": {"Message": json.dumps(msg)}}]},
                                 LambdaContext())
    assert rep["action"] == "tick" and rep["targets"][0]["target"] == "prod-hive"


def test_logs_are_structured_json_with_request_id(account: Account, monkeypatch: pytest.MonkeyPatch) -> None:
    buf = io.StringIO()
    monkeypatch.setattr(handler.logger.registered_handler, "stream", buf)
    handler.lambda_handler(SCHEDULED, LambdaContext("req-log"))
    logs = [json.loads(line) for line in buf.getvalue().splitlines()]
    done = [entry for entry in logs if entry.get("message") == "done"]
    assert done and done[0]["function_request_id"] == "req-log"
