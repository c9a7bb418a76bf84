"""Two invoke doors (DESIGN §10): the handler reads the invoked alias; the read-only door runs
tick/check/status/plan and refuses the rest with exit 2 and nothing changed; the operator door
runs them all. Hand-made changes are announced on the info topic with who asked and why, and
``sentinel invoke`` picks the door by action."""

from __future__ import annotations

import argparse
import io
import json
from typing import Any

import pytest
from botocore.response import StreamingBody

from checks.base import Status
from monitor import handler, invoke
from monitor.events import OPERATOR_ACTIONS, READONLY_ACTIONS, door_of
from monitor.report import TargetReport, TickReport
from monitor.runtime import Services
from tests.fakes import FakeClients, Script, fake_config, services

FN_ARN = "arn:aws:lambda:us-east-1:123456789012:function:sentinel-prod"
INFO = "arn:aws:sns:us-east-1:123456789012:info"
T = "prod-hive"


class Ctx:
    def __init__(self, qualifier: str | None = None, *, identity: Any = None, client_context: Any = None) -> None:
        self.aws_request_id = "req-door"
        self.function_name = "sentinel-prod"
        self.memory_limit_in_mb = 256
        self.invoked_function_arn = FN_ARN + (f":{qualifier}" if qualifier is not None else "")
        self.identity = identity
        self.client_context = client_context

    def get_remaining_time_in_millis(self) -> int:
        return 60_000


class Warm:
    """The handler's warm caches, holding in-memory services (FakeClients records SNS)."""

    def __init__(self, svc: Services) -> None:
        self.svc = svc
        self.configs = self

    def get(self, source: str) -> Any:
        return self.svc.config

    def services_for(self, source: str) -> Services:
        return self.svc


@pytest.fixture
def svc(fake_checks: Script, monkeypatch: pytest.MonkeyPatch) -> Services:
    config = fake_config(notify={"page_topic_arn": "arn:aws:sns:us-east-1:123456789012:pages", "info_topic_arn": INFO})
    s = services(config)
    monkeypatch.setattr(handler, "_WARM", Warm(s))
    monkeypatch.setenv("SENTINEL_CONFIG", "in-memory (see Warm)")
    return s


def published(s: Services) -> list[dict[str, Any]]:
    clients: FakeClients = s.clients
    return clients.sns.published


EVENTS: dict[str, dict[str, Any]] = {
    "tick": {"action": "tick"},
    "check": {"action": "check", "target": T},
    "status": {"action": "status"},
    "plan": {"action": "plan", "target": T},
    "recover": {"action": "recover", "target": T, "force": True},
    "abort": {"action": "abort", "target": T, "reason": "stuck in WAIT_READY"},
    "silence": {"action": "silence", "target": T, "for": "14d", "reason": "mute"},
    "unsilence": {"action": "unsilence", "target": T},
    "ack": {"action": "ack", "target": T},
    "approve": {"action": "approve", "target": T, "reason": "change window ok"},
    "deny": {"action": "deny", "target": T, "reason": "not during the release"},
}


@pytest.mark.parametrize(("arn_tail", "door"), [
    ("", "readonly"), (":readonly", "readonly"), (":operator", "operator"), (":$LATEST", "readonly"),
    (":7", "readonly"), (":OPERATOR", "readonly"), (":operators", "readonly"), (":operator:x", "readonly"),
])
def test_the_door_is_the_invoked_alias_and_anything_else_is_readonly(arn_tail: str, door: str) -> None:
    ctx = argparse.Namespace(invoked_function_arn=FN_ARN + arn_tail)
    assert door_of(ctx) == door


def test_a_context_without_an_arn_is_readonly() -> None:
    assert door_of(None) == "readonly"
    assert door_of(argparse.Namespace(invoked_function_arn=5)) == "readonly"
    assert door_of(argparse.Namespace(invoked_function_arn="operator")) == "readonly"


def test_the_door_sets_match_the_contract() -> None:
    assert set(READONLY_ACTIONS) == {"tick", "check", "status", "plan"}
    assert set(OPERATOR_ACTIONS) == {"tick", "check", "status", "plan", "recover", "abort", "silence", "unsilence", "ack",
                                     "approve", "deny"}
    assert set(EVENTS) == set(OPERATOR_ACTIONS)


@pytest.mark.parametrize("qualifier", [None, "readonly", "$LATEST", "3"])
@pytest.mark.parametrize("action", sorted(set(OPERATOR_ACTIONS) - set(READONLY_ACTIONS)))
def test_operator_actions_through_the_readonly_door_are_refused_and_change_nothing(
    svc: Services, action: str, qualifier: str | None
) -> None:
    rep = handler.lambda_handler(EVENTS[action], Ctx(qualifier))
    assert (rep["exit_code"], rep["status"]) == (2, "error")
    assert rep["errors"] == [f"usage: action {action!r} is not allowed through the readonly door; invoke the "
                             "function's 'operator' alias (sentinel invoke does) with lambda:InvokeFunction on "
                             "<function ARN>:operator"]
    state = svc.store.get(T)
    assert (state.version, state.silences, state.incident) == (0, [], None)
    assert published(svc) == []


@pytest.mark.parametrize("qualifier", [None, "readonly", "operator"])
@pytest.mark.parametrize("action", sorted(READONLY_ACTIONS))
def test_readonly_actions_run_through_either_door(
    svc: Services, action: str, qualifier: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    planned: list[str | None] = []

    def plan(services_: Any, target: str | None, **kw: Any) -> TickReport:
        planned.append(target)
        return TickReport(action="plan", started_at="now", targets=[TargetReport(target=T, status=Status.OK)])

    monkeypatch.setattr(handler, "plan_report", plan)
    rep = handler.lambda_handler(EVENTS[action], Ctx(qualifier))
    assert rep["exit_code"] in (0, 3) and rep["action"] == action, rep  # fake checks without a script: UNKNOWN
    assert not any(e.startswith("usage:") for e in rep["errors"])
    assert planned == ([T] if action == "plan" else [])


@pytest.mark.parametrize("event", [
    {"source": "aws.events", "detail-type": "Scheduled Event", "detail": {}},
    {"targets": [T]},
    {"Records": [{"EventSource": "aws:sns", "Sns": {"Message": json.dumps(
        {"AlarmName": "x", "NewStateValue": "ALARM", "Trigger": {"Dimensions": [{"name": "target", "value": T}]}})}}]},
])
def test_scheduled_and_alarm_events_are_ticks_on_the_readonly_door(svc: Services, event: dict[str, Any]) -> None:
    rep = handler.lambda_handler(event, Ctx())
    assert rep["action"] == "tick" and [t["target"] for t in rep["targets"]] == [T]


def test_silence_through_the_operator_door_is_announced_with_who_and_why(svc: Services) -> None:
    rep = handler.lambda_handler({**EVENTS["silence"], "requested_by": "alice"}, Ctx("operator"))
    assert rep["exit_code"] == 0
    who = "alice (self-declared; via operator door, request req-door)"
    assert svc.store.get(T).silences[0]["by"] == who
    [msg] = published(svc)
    assert msg["TopicArn"] == INFO
    assert msg["MessageAttributes"]["kind"]["StringValue"] == "silenced"
    assert "Reason: mute" in msg["Message"] and f"Requested by: {who}" in msg["Message"]
    assert "sentinel unsilence --target prod-hive" in msg["Message"]
    assert rep["notifications"][0]["delivered"] is True


@pytest.mark.parametrize(("action", "kind"), [("unsilence", "unsilenced"), ("ack", "acked")])
def test_unsilence_and_ack_are_announced_on_the_info_topic(svc: Services, action: str, kind: str) -> None:
    rep = handler.lambda_handler({**EVENTS[action], "requested_by": "bob"}, Ctx("operator"))
    assert rep["exit_code"] == 0
    [msg] = published(svc)
    assert (msg["TopicArn"], msg["MessageAttributes"]["kind"]["StringValue"]) == (INFO, kind)
    assert "Requested by: bob (self-declared; via operator door" in msg["Message"]
    assert [e.actor for e in svc.store.events(T, 5)][0].startswith("bob (self-declared")


def test_a_caller_without_a_name_is_anonymous_and_lambdas_identity_is_kept(svc: Services) -> None:
    identity = argparse.Namespace(cognito_identity_id="us-east-1:abcd", cognito_identity_pool_id="pool")
    client = argparse.Namespace(client=argparse.Namespace(installation_id="laptop-7", app_title="x"))
    rep = handler.lambda_handler(EVENTS["ack"], Ctx("operator", identity=identity, client_context=client))
    assert rep["exit_code"] == 0
    assert svc.store.events(T, 1)[0].actor == ("anonymous (self-declared; via operator door, request req-door, "
                                               "cognito us-east-1:abcd, client laptop-7 (self-declared))")


def test_abort_through_the_operator_door_reaches_the_runbook(svc: Services) -> None:
    rep = handler.lambda_handler({**EVENTS["abort"], "requested_by": "carol"}, Ctx("operator"))
    # nothing is running in the in-memory state: the runbook itself answers; the door let it through
    assert rep["errors"] == ["usage: no recovery in progress for prod-hive"]


@pytest.mark.parametrize("action", ["approve", "deny"])
def test_approve_and_deny_through_the_operator_door_reach_the_runbook(svc: Services, action: str) -> None:
    rep = handler.lambda_handler({**EVENTS[action], "requested_by": "carol"}, Ctx("operator"))
    assert rep["errors"] == ["usage: no recovery in progress for prod-hive: nothing to approve or deny"]


@pytest.mark.parametrize("action", ["approve", "deny"])
def test_approve_and_deny_need_a_reason(svc: Services, action: str) -> None:
    rep = handler.lambda_handler({"action": action, "target": T}, Ctx("operator"))
    assert rep["exit_code"] == 2 and rep["errors"] == [f"usage: action {action!r} needs \"reason\""]


# ------------------------------------------------------------------ sentinel invoke


class FakeLambda:
    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def invoke(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(kwargs)
        body = json.dumps(TickReport(action="x", started_at="now").to_dict()).encode()
        return {"StatusCode": 200, "Payload": StreamingBody(io.BytesIO(body), len(body))}


@pytest.mark.parametrize(("action", "alias"), [
    ("tick", "readonly"), ("check", "readonly"), ("status", "readonly"), ("plan", "readonly"),
    ("recover", "operator"), ("abort", "operator"), ("silence", "operator"), ("unsilence", "operator"),
    ("ack", "operator"),
])
def test_sentinel_invoke_picks_the_door_by_action(action: str, alias: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from monitor.cli import main

    fake = FakeLambda()
    monkeypatch.setattr(invoke, "client_factory", lambda region, profile: fake)
    argv = ["invoke", "--function", "sentinel-prod", action, "--target", T, "--yes"]
    if action == "silence":
        argv += ["--for", "1h", "--reason", "deploy"]
    if action == "abort":
        argv += ["--reason", "stuck"]
    assert main(argv) == 0
    [call] = fake.calls
    assert (call["FunctionName"], call["Qualifier"]) == ("sentinel-prod", alias)
    assert json.loads(call["Payload"])["action"] == action


def test_invoke_abort_without_a_reason_is_refused_before_invoking(monkeypatch: pytest.MonkeyPatch) -> None:
    from monitor.cli import main

    fake = FakeLambda()
    monkeypatch.setattr(invoke, "client_factory", lambda region, profile: fake)
    assert main(["invoke", "--function", "sentinel-prod", "abort", "--target", T]) == 2
    assert fake.calls == []


def test_access_denied_on_the_operator_door_names_the_operator_policy(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from botocore.exceptions import ClientError

    from monitor.cli import main

    class Denied:
        def invoke(self, **kwargs: Any) -> Any:
            raise ClientError({"Error": {"Code": "AccessDeniedException", "Message": "no"}}, "Invoke")

    monkeypatch.setattr(invoke, "client_factory", lambda region, profile: Denied())
    assert main(["invoke", "--function", "sentinel-prod", "ack", "--target", T]) == 3
    err = capsys.readouterr().err
    assert "not allowed to invoke sentinel-prod:operator" in err and "OperatorInvokePolicyArn" in err


@pytest.mark.parametrize("action", ["unsilence", "ack"])
def test_unsilence_and_ack_say_why_when_given(svc: Services, action: str) -> None:
    from monitor import actions
    from monitor.runtime import new_invocation

    inv = new_invocation(svc, requested_by="dana")
    rep = getattr(actions, action)(inv, T, reason="maintenance over")
    assert rep.notifications[0]["delivered"] is True
    assert "Reason: maintenance over" in published(svc)[0]["Message"]


@pytest.mark.parametrize("action", ["approve", "deny"])
def test_approve_and_deny_have_no_dry_run_and_refuse_hostile_fields(svc: Services, action: str) -> None:
    dry = handler.lambda_handler({**EVENTS[action], "dry_run": True}, Ctx("operator"))
    assert dry["exit_code"] == 2 and "has no dry run" in dry["errors"][0]
    huge = handler.lambda_handler({**EVENTS[action], "reason": "x" * 5000}, Ctx("operator"))
    assert huge["exit_code"] == 2 and huge["errors"][0].startswith("usage:")
    bad_rung = handler.lambda_handler({**EVENTS[action], "rung": "terminate_everything"}, Ctx("operator"))
    assert bad_rung["exit_code"] == 2 and "rung" in bad_rung["errors"][0]
    assert svc.store.get(T).version == 0 and published(svc) == []
