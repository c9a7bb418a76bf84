"""The queue's config keys and event shapes (DESIGN §10): `dispatch`, `recheck_after_s`, the
SQS record shape, and which dispatch mode applies when the config does not say."""

from __future__ import annotations

import json

import pytest

from monitor import queue
from monitor.core.errors import ConfigError, UsageError
from monitor.events import sqs_records
from tests.fakes import fake_config

pytestmark = pytest.mark.usefixtures("fake_checks")  # registers the `fake` check type


def test_dispatch_defaults_to_inline_and_recheck_to_120_s() -> None:
    cfg = fake_config()
    when = cfg.targets[0].recovery.when
    assert cfg.dispatch == "inline" and when is not None and when.recheck_after_s == 120


@pytest.mark.parametrize(("top", "recovery", "expected"), [
    ({"dispatch": "fanout"}, None, "dispatch: Input should be 'inline' or 'queue'"),
    ({}, {"enabled": False, "when": {"checks": ["hive"], "recheck_after_s": 901}},
     "targets[0].recovery.when.recheck_after_s"),
    ({}, {"enabled": False, "when": {"checks": ["hive"], "recheck_after_s": -1}},
     "targets[0].recovery.when.recheck_after_s"),
])
def test_bad_values_are_refused_naming_their_path(top: dict[str, str], recovery: dict[str, object] | None,
                                                   expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        fake_config(recovery=recovery, **top)
    assert any(e.startswith(expected) for e in info.value.errors), info.value.errors


def test_more_than_200_targets_need_the_queue() -> None:
    with pytest.raises(ConfigError) as info:
        fake_config(targets=201)
    assert any("use dispatch: queue" in e for e in info.value.errors)
    assert len(fake_config(targets=201, dispatch="queue").targets) == 201


def test_the_deployment_default_applies_only_when_the_config_does_not_say(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(queue.DISPATCH_ENV, "queue")
    assert queue.dispatch_mode(fake_config()) == "queue"
    assert queue.dispatch_mode(fake_config(dispatch="inline")) == "inline"
    monkeypatch.delenv(queue.DISPATCH_ENV)
    assert queue.dispatch_mode(fake_config()) == "inline"


def test_sqs_records_are_recognised_and_nothing_else_is() -> None:
    rec = {"messageId": "m", "body": "{}", "eventSource": "aws:sqs"}
    assert sqs_records({"Records": [rec]}) == [rec]
    assert sqs_records({"Records": [{"Sns": {"Message": "{}"}}]}) is None
    assert sqs_records({"Records": []}) is None and sqs_records([rec]) is None


def test_a_record_names_one_configured_target_or_is_poison() -> None:
    cfg = fake_config()
    ok = queue.parse_record({"messageId": "m", "body": json.dumps({"action": "tick", "target": "prod-hive"}),
                             "messageAttributes": {"due_at": {"stringValue": "2026-11-23T06:00:00.000000Z"}}}, cfg)
    assert ok.request.target == "prod-hive" and ok.request.action == "tick" and ok.due_at is not None
    sent_only = queue.parse_record({"messageId": "m", "body": json.dumps({"action": "tick", "target": "prod-hive"}),
                                    "attributes": {"SentTimestamp": "1796000000000"}}, cfg)
    assert sent_only.due_at is not None and sent_only.due_at.year == 2026
    with pytest.raises(queue.UnknownTarget):
        queue.parse_record({"messageId": "m", "body": json.dumps({"action": "tick", "target": "gone"})}, cfg)
    for body in ("", "null", json.dumps({"action": "tick"}), json.dumps({"action": "ack", "target": "prod-hive"})):
        with pytest.raises(UsageError):
            queue.parse_record({"messageId": "m", "body": body}, cfg)
