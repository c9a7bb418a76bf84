"""``sentinel invoke``: the event it sends, what it prints, and its exit codes. moto cannot run
a Lambda without Docker, so the Lambda client is a fake (and botocore's Stubber, for the real
response shapes)."""

from __future__ import annotations

import base64
import io
import json
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError, NoRegionError
from botocore.response import StreamingBody
from botocore.stub import Stubber

from monitor import cli, invoke

FN = "sentinel-prod"


def report(exit_code: int = 0, status: str = "OK", **extra: Any) -> dict[str, Any]:
    return {
        "action": "check", "status": {0: "ok", 1: "problem", 3: "unknown"}[exit_code], "exit_code": exit_code,
        "started_at": "2026-01-01T00:00:00Z", "finished_at": "2026-01-01T00:00:01Z", "duration_ms": 812.0,
        "request_id": "req-1", "dry_run": False,
        "targets": [{"target": "prod-hive", "status": status,
                     "checks": [{"name": "hive-via-elb", "type": "hiveserver2", "status": status,
                                 "summary": "SHOW DATABASES ok" if status == "OK" else "timeout after 15 s",
                                 "observed": {}, "latency_ms": 120.5, "error_kind": None}],
                     "decision": None, "recovery": None, "actions": [], "skipped": None, "error": None,
                     "state_version": 7}],
        "notifications": [], "metrics": [], "errors": [], **extra,
    }


class FakeLambda:
    """Records invocations; answers with a canned response or raises."""

    def __init__(self, payload: Any = None, *, function_error: str | None = None, raises: Exception | None = None,
                 log: str = "") -> None:
        self.payload, self.function_error, self.raises, self.log = payload, function_error, raises, log
        self.calls: list[dict[str, Any]] = []

    def invoke(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(kwargs)
        if self.raises is not None:
            raise self.raises
        body = json.dumps(self.payload).encode()
        resp: dict[str, Any] = {"StatusCode": 200, "Payload": StreamingBody(io.BytesIO(body), len(body)),
                                "ExecutedVersion": "$LATEST"}
        if self.function_error:
            resp["FunctionError"] = self.function_error
        if self.log:
            resp["LogResult"] = base64.b64encode(self.log.encode()).decode()
        return resp

    def event(self) -> dict[str, Any]:
        return dict(json.loads(self.calls[-1]["Payload"]))


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeLambda:
    client = FakeLambda(report())
    made: list[tuple[str | None, str | None]] = []

    def factory(region: str | None, profile: str | None) -> FakeLambda:
        made.append((region, profile))
        return client

    monkeypatch.setattr(invoke, "client_factory", factory)
    monkeypatch.setenv("SENTINEL_USER", "alice")
    client.made = made  # type: ignore[attr-defined]
    return client


def run(*argv: str) -> int:
    return cli.main(["invoke", "--function", FN, *argv])


def client_error(code: str, message: str = "nope") -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": message}}, "Invoke")


def test_sends_the_manual_event_synchronously(fake: FakeLambda) -> None:
    assert run("--region", "eu-west-1", "check", "--target", "prod-hive") == 0
    call = fake.calls[-1]
    assert call["FunctionName"] == FN and call["InvocationType"] == "RequestResponse"
    assert fake.event() == {"action": "check", "target": "prod-hive", "dry_run": False, "force": False,
                            "requested_by": "alice", "for": None, "reason": None}
    assert fake.made == [("eu-west-1", None)]  # type: ignore[attr-defined]


def test_the_event_is_what_the_handler_accepts(fake: FakeLambda) -> None:
    from monitor.config import parse_config
    from monitor.events import parse_event

    run("silence", "--target", "prod-hive", "--for", "2h", "--reason", "maintenance", "--dry-run")
    config = parse_config({"version": 1, "region": "us-east-1", "state_table": "sentinel-prod-state",
                           "notify": {"page_topic_arn": "arn:aws:sns:us-east-1:1:p"},
                           "targets": [{"name": "prod-hive", "cluster": {"name": "C"},
                                        "checks": [{"type": "emr_state", "name": "s"}]}]})
    req = parse_event(fake.event(), config)
    assert (req.action, req.target, req.duration, req.reason, req.dry_run, req.requested_by, req.source) == (
        "silence", "prod-hive", "2h", "maintenance", True, "alice", "manual")


def test_prints_the_text_report_and_exits_with_its_code(fake: FakeLambda, capsys: pytest.CaptureFixture[str]) -> None:
    fake.payload = report(exit_code=1, status="CRITICAL")
    assert run("check", "--target", "prod-hive") == 1
    out = capsys.readouterr().out
    assert "prod-hive: CRITICAL" in out and "timeout after 15 s" in out
    assert "-- check problem (exit 1)" in out


def test_json_prints_the_report_as_returned(fake: FakeLambda, capsys: pytest.CaptureFixture[str]) -> None:
    fake.payload = report(exit_code=1, status="WARNING", future_key={"from": "a newer deployment"})
    assert run("tick", "--json") == 1
    assert json.loads(capsys.readouterr().out) == fake.payload


def test_a_report_from_another_version_still_prints(fake: FakeLambda, capsys: pytest.CaptureFixture[str]) -> None:
    fake.payload = {"exit_code": 0, "targets": [{"target": "x", "status": "SOMETHING_NEW"}]}
    assert run("status") == 0
    assert json.loads(capsys.readouterr().out) == fake.payload


def test_status_data_is_rendered(fake: FakeLambda, capsys: pytest.CaptureFixture[str]) -> None:
    fake.payload = report(targets=[], data={"targets": {"prod-hive": {
        "verdict": "ok", "consecutive_failures": 0, "consecutive_unknown": 0, "last_tick_at": "2026-01-01T00:00:00Z",
        "escalated": "recovery failed", "silenced": None, "incident": None, "last_results": [], "events": []}}})
    assert run("status") == 0
    out = capsys.readouterr().out
    assert "ESCALATED: recovery failed" in out


def test_function_error_prints_type_and_message_and_exits_3(fake: FakeLambda,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    fake.payload = {"errorType": "Sandbox.Timedout", "errorMessage": "Task timed out after 300.00 seconds"}
    fake.function_error = "Unhandled"
    fake.log = "START RequestId: 1\nsomething\nEND RequestId: 1\n"
    assert run("tick") == 3
    err = capsys.readouterr().err
    assert f"{FN} failed (Unhandled): Sandbox.Timedout: Task timed out after 300.00 seconds" in err
    assert "log: END RequestId: 1" in err


def test_function_error_with_json_prints_it_as_json(fake: FakeLambda, capsys: pytest.CaptureFixture[str]) -> None:
    fake.payload = {"errorType": "ImportModuleError", "errorMessage": "No module named 'pyhive'"}
    fake.function_error = "Unhandled"
    assert run("tick", "--json") == 3
    assert json.loads(capsys.readouterr().out)["errorType"] == "ImportModuleError"


@pytest.mark.parametrize(("exc", "code", "text"), [
    (client_error("AccessDeniedException", "not authorized to perform: lambda:InvokeFunction"), 3, "InvokePolicyArn"),
    (client_error("ResourceNotFoundException", "Function not found"), 3, "no function 'sentinel-prod'"),
    (client_error("TooManyRequestsException", "Rate exceeded"), 3, "TooManyRequestsException"),
    (NoRegionError(), 2, "pass --region"),
])
def test_aws_errors_say_what_to_do(fake: FakeLambda, capsys: pytest.CaptureFixture[str], exc: Exception, code: int,
                                   text: str) -> None:
    fake.raises = exc
    assert run("status") == code
    assert text in capsys.readouterr().err


@pytest.mark.parametrize(("argv", "text"), [
    (["recover"], "needs --target"),
    (["ack"], "needs --target"),
    (["silence", "--target", "prod-hive", "--for", "2h"], "needs --for (e.g. 2h) and --reason"),
])
def test_usage_errors_exit_2_before_invoking(fake: FakeLambda, capsys: pytest.CaptureFixture[str], argv: list[str],
                                             text: str) -> None:
    assert run(*argv) == 2
    assert text in capsys.readouterr().err
    assert fake.calls == []


def test_recover_is_forwarded_with_force(fake: FakeLambda, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdin.isatty", lambda: False)
    fake.payload = report(action="recover")
    assert run("recover", "--target", "prod-hive", "--force") == 0
    assert fake.event()["action"] == "recover" and fake.event()["force"] is True


def test_recover_on_a_terminal_asks_first(fake: FakeLambda, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdin.isatty", lambda: True)
    monkeypatch.setattr("builtins.input", lambda prompt: "n")
    assert run("recover", "--target", "prod-hive") == 2
    assert fake.calls == []


def test_a_payload_that_is_not_a_report_is_unknown(fake: FakeLambda, capsys: pytest.CaptureFixture[str]) -> None:
    fake.payload = {"hello": "world"}
    assert run("tick") == 3
    assert "returned no sentinel report" in capsys.readouterr().err


# ------------------------------------------------------------------ the real botocore client


def stubbed(monkeypatch: pytest.MonkeyPatch) -> Stubber:
    client = boto3.client("lambda", region_name="us-east-1")
    stub = Stubber(client)
    monkeypatch.setattr(invoke, "client_factory", lambda region, profile: client)
    monkeypatch.setenv("SENTINEL_USER", "bob")
    return stub


def test_real_client_request_and_response_shapes(monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    stub = stubbed(monkeypatch)
    body = json.dumps(report()).encode()
    event = {"action": "tick", "target": None, "dry_run": True, "force": False, "requested_by": "bob", "for": None,
             "reason": None}
    stub.add_response("invoke", {"StatusCode": 200, "Payload": StreamingBody(io.BytesIO(body), len(body))},
                      {"FunctionName": FN, "Qualifier": "readonly", "InvocationType": "RequestResponse",
                       "LogType": "Tail", "Payload": json.dumps(event).encode()})
    with stub:
        assert run("tick", "--dry-run") == 0
    stub.assert_no_pending_responses()
    assert "prod-hive: OK" in capsys.readouterr().out


def test_real_client_access_denied(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    stub = stubbed(monkeypatch)
    stub.add_client_error("invoke", service_error_code="AccessDeniedException", http_status_code=403,
                          service_message="User is not authorized to perform: lambda:InvokeFunction")
    with stub:
        assert run("status") == 3
    assert "not allowed to invoke sentinel-prod:readonly (AccessDeniedException)" in capsys.readouterr().err


def test_the_client_waits_for_long_ticks_and_never_resends() -> None:
    client = invoke.lambda_client("us-east-1", None)
    cfg = client.meta.config
    assert cfg.read_timeout > 900  # the longest Lambda timeout
    assert cfg.retries["total_max_attempts"] == 1


def test_actions_only_is_forwarded_when_the_parser_has_it(fake: FakeLambda) -> None:
    import argparse

    args = argparse.Namespace(function=FN, region=None, profile=None, action="silence", target="prod-hive",
                              dry_run=False, force=False, duration="1h", reason="deploy", json=False, actions_only=True)
    assert invoke.invoke_cli(args) == 0
    assert fake.event()["actions_only"] is True
