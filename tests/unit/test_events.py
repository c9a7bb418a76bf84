"""Lambda event shapes (DESIGN §4) → requests; malformed events are clear usage errors."""

from __future__ import annotations

import json
from typing import Any

import pytest

from monitor.core.errors import UsageError
from monitor.events import parse_event
from tests.fakes import fake_config

SCHEDULED = {
    "version": "0", "id": "x", "detail-type": "Scheduled Event", "source": "aws.events",
    "account": "123456789012", "time": "2026-11-23T06:00:00Z", "region": "us-east-1",
    "resources": ["arn:aws:events:us-east-1:123456789012:rule/sentinel"], "detail": {},
}


def alarm(state: str = "ALARM", dims: list[dict[str, str]] | None = None, name: str = "sentinel-x") -> dict[str, Any]:
    msg = {"AlarmName": name, "NewStateValue": state,
           "Trigger": {"MetricName": "TargetStatus", "Namespace": "Sentinel", "Dimensions": dims or []}}
    return {"Records": [{"EventSource": "aws:sns", "Sns": {"Message": json.dumps(msg)}}]}


@pytest.fixture
def config(fake_checks: Any):  # type: ignore[no-untyped-def]
    return fake_config()


def test_scheduled_event_is_a_tick_over_all_targets(config: Any) -> None:
    req = parse_event(SCHEDULED, config)
    assert (req.action, req.target_names(), req.source) == ("tick", None, "scheduled")


def test_rule_input_with_targets(config: Any) -> None:
    req = parse_event({"targets": ["prod-hive"]}, config)
    assert (req.action, req.target_names()) == ("tick", ["prod-hive"])


def test_manual_events(config: Any) -> None:
    req = parse_event({"action": "recover", "target": "prod-hive", "force": True, "requested_by": "alice"}, config)
    assert (req.action, req.force, req.requested_by, req.source) == ("recover", True, "alice", "manual")
    req = parse_event({"action": "silence", "target": "prod-hive", "for": "2h", "reason": "deploy"}, config)
    assert (req.duration, req.reason) == ("2h", "deploy")
    assert parse_event({"action": "check", "target": "prod-hive"}, config).action == "check"
    assert parse_event({"action": "status"}, config).target_names() is None


def test_alarm_through_sns_ticks_the_named_target(config: Any) -> None:
    req = parse_event(alarm(dims=[{"name": "target", "value": "prod-hive"}]), config)
    assert (req.action, req.target_names(), req.source) == ("tick", ["prod-hive"], "alarm")
    by_name = parse_event(alarm(name="sentinel-prod-hive-unhealthy"), config)
    assert by_name.target_names() == ["prod-hive"]


def test_alarm_back_to_ok_only_reports_status(config: Any) -> None:
    req = parse_event(alarm(state="OK", dims=[{"name": "target", "value": "prod-hive"}]), config)
    assert req.action == "status"


@pytest.mark.parametrize(("event", "message"), [
    ([], "event must be a JSON object"),
    ("tick", "event must be a JSON object"),
    ({}, "unrecognised event"),
    ({"foo": 1}, "unrecognised event (keys: foo)"),
    ({"action": "explode"}, "action: Input should be"),
    ({"action": "tick", "dry_run": "maybe"}, "dry_run: Input should be a valid boolean"),
    ({"action": "tick", "colour": "red"}, "colour: unknown key"),
    ({"action": "recover"}, "action 'recover' needs \"target\""),
    ({"action": "silence", "target": "prod-hive"}, "needs \"for\""),
    (alarm(name="unrelated"), "the alarm names no configured target"),
    ({"Records": [{"Sns": {"Message": "not json"}}]}, "not a CloudWatch alarm (not JSON)"),
    ({"Records": [{"Sns": {"Message": "{}"}}]}, "no AlarmName"),
])
def test_malformed_events_are_usage_errors(config: Any, event: Any, message: str) -> None:
    with pytest.raises(UsageError) as info:
        parse_event(event, config)
    assert str(info.value).startswith("usage: ")
    assert message in str(info.value)
