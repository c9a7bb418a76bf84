"""`sentinel status` never shows a traceback: a corrupt, hostile or huge value in the state
table becomes an error line for that target (exit 3), the other targets still show."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from monitor import actions
from monitor.cli import main
from monitor.core.state.base import TargetState
from monitor.core.state.memory import MemoryStateStore
from tests.fakes import services

EXAMPLE = Path(__file__).resolve().parents[2] / "deploy" / "sentinel.example.yaml"
NOW = datetime(2026, 12, 1, tzinfo=UTC)


def status(store: MemoryStateStore, capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[int, str]:
    code = main(["status", "-c", str(EXAMPLE), *extra], services_factory=lambda cfg, args: services(cfg, store=store))
    out = capsys.readouterr()
    return code, out.out + out.err


def stored(**fields: Any) -> MemoryStateStore:
    store = MemoryStateStore()
    store.put("prod-hive", TargetState(**fields), lease=None, events=[], now=NOW)
    return store


@pytest.mark.parametrize(("fields", "kind"), [
    ({"recoveries": ["not-a-date"]}, "ValueError"),
    ({"recoveries": ["9999-12-31T23:59:59Z" + "9" * 100]}, "ValueError"),
    ({"silences": [{"until": "garbage", "reason": "x"}]}, "ValueError"),
    ({"silences": [{"reason": "no until"}]}, "KeyError"),
    ({"silences": ["a string"]}, "TypeError"),
])
@pytest.mark.parametrize("as_json", [False, True])
def test_corrupt_state_is_an_error_line_not_a_traceback(
    fields: dict[str, Any], kind: str, as_json: bool, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = status(stored(**fields), capsys, *(["--json"] if as_json else []))
    assert code == 3
    assert "Traceback" not in out
    assert f"state: prod-hive: cannot show its state ({kind}" in out


def test_huge_and_oddly_shaped_values_are_shown_cut_short(capsys: pytest.CaptureFixture[str]) -> None:
    store = stored(last_results=[5, {"status": "OK"}, {"status": "CRITICAL", "name": "hive", "summary": "s" * 1_000_000}],
                   incident="garbage", escalated={"at": "x" * 10})
    code, out = status(store, capsys)
    assert "Traceback" not in out
    assert code == 0
    assert len(out) < 20_000
    assert "incident ?: phase unreadable (str)" in out
    code, out = status(store, capsys, "--json")
    assert code == 0 and "Traceback" not in out
    assert len(out) < 20_000 and "...(1000000 chars)" in out


@pytest.mark.parametrize("method", ["get", "events"])
def test_a_store_that_raises_anything_is_an_error_line(
    method: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    store = stored()

    def boom(*a: Any, **k: Any) -> Any:
        raise OverflowError("date value out of range")

    monkeypatch.setattr(store, method, boom)
    code, out = status(store, capsys)
    assert code == 3 and "Traceback" not in out
    assert "state: prod-hive: cannot show its state (OverflowError: date value out of range)" in out


def test_any_unexpected_error_in_the_cli_is_one_line_and_exit_3(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def boom(*a: Any, **k: Any) -> Any:
        raise OverflowError("x" * 10_000)

    monkeypatch.setattr(actions, "status", boom)
    code, out = status(stored(), capsys)
    assert code == 3 and "Traceback" not in out
    assert out.startswith("error: internal error (OverflowError: xxx") and len(out) < 500
    assert "SENTINEL_DEBUG=1" in out
