"""Hostile and sloppy Lambda events are refused before anything runs: the handler returns a
report with exit 2 naming the field, creates no AWS client and makes no call, and never
raises, whatever the event or whatever breaks inside."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from monitor import handler
from tests.aws_guard import forbid_aws
from tests.functional.aws import LambdaContext

EXAMPLE = Path(__file__).resolve().parents[2] / "deploy" / "sentinel.example.yaml"
T = "prod-hive"
BIG = 600_000


def sns(message: Any) -> dict[str, Any]:
    return {"Records": [{"EventSource": "aws:sns", "Sns": {"Message": message}}]}


def Ctx() -> LambdaContext:
    """A Lambda context invoked through the operator door (nothing is refused for the door)."""
    return LambdaContext(request_id="req-hostile", qualifier="operator")


# (what is wrong, the event, a substring the error must contain: the field it names)
HOSTILE: list[tuple[str, Any, str]] = [
    ("600 000-character silence reason", {"action": "silence", "target": T, "for": "1h", "reason": "r" * BIG},
     "reason: String should have at most 1000 characters"),
    ("1001-character abort reason", {"action": "abort", "target": T, "reason": "r" * 1001},
     "reason: String should have at most 1000 characters"),
    ("65-character target", {"action": "check", "target": "t" * 65}, "target: String should have at most 64 characters"),
    ("600 000-character target", {"action": "status", "target": "t" * BIG}, "target: String should have at most 64"),
    ("1001 targets", {"action": "tick", "targets": [T] * 1001}, "targets: List should have at most 1000 items"),
    ("rule input with no targets", {"targets": []}, "targets: must be a non-empty list"),
    ("rule input with null targets", {"targets": None}, "targets: must be a non-empty list"),
    ("rule input with a string", {"targets": T}, "targets: must be a non-empty list"),
    ("tick with no targets", {"action": "tick", "targets": []}, "targets: List should have at least 1 item"),
    ("tick with null targets", {"action": "tick", "targets": None}, "targets: must be a non-empty list"),
    ("an empty target name", {"action": "tick", "targets": [""]}, "targets.0: String should have at least 1 character"),
    ("target and targets", {"action": "tick", "target": T, "targets": [T]}, "give \"target\" or \"targets\", not both"),
    ("129-character requested_by", {"action": "status", "requested_by": "a" * 129},
     "requested_by: String should have at most 128 characters"),
    ("33-character duration", {"action": "silence", "target": T, "for": "1" * 32 + "h", "reason": "x"},
     "for: String should have at most 32 characters"),
    ("abort without a reason", {"action": "abort", "target": T}, "action 'abort' needs \"reason\""),
    ("abort with a blank reason", {"action": "abort", "target": T, "reason": "  "}, "action 'abort' needs \"reason\""),
    ("abort without a target", {"action": "abort", "reason": "stuck"}, "action 'abort' needs \"target\""),
    ("plan without a target", {"action": "plan"}, "action 'plan' needs \"target\""),
    ("silence with a blank reason", {"action": "silence", "target": T, "for": "1h", "reason": "   "}, "needs \"for\""),
    ("unknown action", {"action": "explode"}, "action: Input should be"),
    ("action a number", {"action": 5}, "action: Input should be"),
    ("dry_run not a boolean", {"action": "tick", "dry_run": "maybe"}, "dry_run: Input should be a valid boolean"),
    ("force a list", {"action": "recover", "target": T, "force": [1]}, "force: Input should be a valid boolean"),
    ("a huge unknown key", {"action": "tick", "k" * BIG: 1}, "...(600000 chars): unknown key"),
    ("ten thousand unknown keys", {"action": "tick", **{f"k{i}": i for i in range(10_000)}}, "... 9990 more"),
    ("event a huge string", "e" * BIG, "event must be a JSON object, got str"),
    ("event null", None, "event must be a JSON object, got NoneType"),
    ("SNS message a number", sns(5), "SNS record without a Message string"),
    ("SNS record a string", {"Records": [{"Sns": "x"}]}, "SNS record without a Message string"),
    ("SNS Trigger a string", sns(json.dumps({"AlarmName": "a", "Trigger": "x"})), "the alarm names no configured target"),
    ("SNS Dimensions a string", sns(json.dumps({"AlarmName": "a", "Trigger": {"Dimensions": "target"}})),
     "the alarm names no configured target"),
    ("1001 SNS records", {"Records": [{"Sns": {"Message": "{}"}}] * 1001}, "Records: at most 1000 SNS records"),
    ("SNS message not JSON", sns("x" * BIG), "not a CloudWatch alarm (not JSON)"),
]
assert len(HOSTILE) >= 20


@pytest.fixture
def no_aws(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    made = forbid_aws(monkeypatch)
    monkeypatch.setenv("SENTINEL_CONFIG", str(EXAMPLE))
    monkeypatch.setattr(handler, "_WARM", handler._Warm())
    return made


@pytest.mark.parametrize(("event", "expected"), [(e, x) for _, e, x in HOSTILE], ids=[i for i, _, _ in HOSTILE])
def test_hostile_event_is_a_usage_error_naming_the_field_with_no_aws_client(
    event: Any, expected: str, no_aws: list[str]
) -> None:
    rep = handler.lambda_handler(event, Ctx())
    assert (rep["exit_code"], rep["status"]) == (2, "error"), rep
    [error] = rep["errors"]
    assert error.startswith("usage: ") and expected in error, error
    assert len(error) < 2000  # nothing the caller sent is echoed back at length
    assert rep["targets"] == [] and rep["notifications"] == []
    assert no_aws == []


def test_a_duration_past_14_days_changes_nothing_and_calls_nothing(no_aws: list[str]) -> None:
    rep = handler.lambda_handler({"action": "silence", "target": T, "for": "15d", "reason": "x"}, Ctx())
    assert rep["exit_code"] == 2 and "at most 14d" in rep["errors"][0]
    assert [m for m in no_aws if m.startswith("call ")] == []


@pytest.mark.parametrize("where", ["parse_event", "dispatch", "deadline_from", "refusal"])
def test_any_exception_inside_becomes_a_report_never_a_raise(
    where: str, no_aws: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def boom(*a: Any, **k: Any) -> Any:
        raise RuntimeError("x" * BIG)

    monkeypatch.setattr(handler, where, boom)
    rep = handler.lambda_handler({"action": "status", "target": T}, Ctx())
    assert (rep["exit_code"], rep["status"]) == (3, "unknown")
    [error] = rep["errors"]
    assert error.startswith("internal error: RuntimeError: xxx") and len(error) < 400


def test_a_config_that_cannot_be_read_is_a_config_error(no_aws: list[str], monkeypatch: pytest.MonkeyPatch,
                                                        tmp_path: Path) -> None:
    monkeypatch.setenv("SENTINEL_CONFIG", str(tmp_path / "missing.yaml"))
    rep = handler.lambda_handler({"action": "status"}, Ctx())
    assert rep["exit_code"] == 2 and rep["errors"][0].startswith("config: ")


def test_a_report_json_cannot_encode_is_still_returned(no_aws: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    from monitor.report import TickReport

    def odd(*a: Any, **k: Any) -> TickReport:
        rep = TickReport(action="status", started_at="now")
        rep.data = {"odd": {1, 2}, "path": Path("/x")}
        return rep

    monkeypatch.setattr(handler, "dispatch", odd)
    monkeypatch.setattr(handler._Warm, "services_for", lambda self, source: _StubServices())
    rep = handler.lambda_handler({"action": "status"}, Ctx())
    assert rep["data"] == {"odd": "{1, 2}", "path": "/x"}
    json.dumps(rep)


class _StubServices:
    """Enough of Services for new_invocation (nothing is sent: dispatch is replaced)."""

    def __init__(self) -> None:
        from monitor.config import load_config
        from monitor.core.secrets import SecretResolver
        from tests.fakes import NoClients

        self.config = load_config(EXAMPLE)
        self.clients = NoClients()
        self.secrets = SecretResolver(self.clients)


def test_no_config_named_is_a_config_error_not_an_internal_one(no_aws: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SENTINEL_CONFIG")
    rep = handler.lambda_handler({"action": "status"}, Ctx())
    assert rep["exit_code"] == 2
    assert rep["errors"] == ["config: no config given (use -c CONFIG or set SENTINEL_CONFIG)"]


@pytest.mark.parametrize(("argv", "expected"), [
    (["silence", "--target", T, "--for", "1h", "--reason", "r" * 2000], "reason: String should have at most 1000"),
    (["silence", "--target", T, "--for", "1" * 40 + "h", "--reason", "x"], "for: String should have at most 32"),
    (["status", "--target", "t" * 100], "target: String should have at most 64"),
    (["abort", "--target", T, "--reason", "r" * 1001, "--yes"], "reason: String should have at most 1000"),
])
def test_the_cli_holds_its_arguments_to_the_event_limits(
    argv: list[str], expected: str, no_aws: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    from monitor.cli import main
    from tests.fakes import services

    code = main([argv[0], "-c", str(EXAMPLE), *argv[1:]], services_factory=lambda cfg, args: services(cfg))
    err = capsys.readouterr().err
    assert code == 2 and expected in err and "Traceback" not in err
    assert no_aws == []
