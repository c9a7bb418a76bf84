"""`sentinel status --target T` for a person, on the sandbox's world after a whole recovery: the
verdict and why, each check's last result, silences, the budget left, and the incident as a
table (phase, started, took, what changed, AWS calls), wrapped at the terminal's width, never
cut; ``--json`` keeps every key it had (the new ones are additive)."""

from __future__ import annotations

from typing import Any

import pytest
from moto import mock_aws

from monitor import render
from monitor.actions import status
from monitor.report import TickReport
from monitor.runtime import new_invocation
from monitor.sandbox.demo import _sandbox_env, build_world, tick_until_recovered

WIDTH = 90
KEYS_BEFORE = {"version", "last_tick_at", "verdict", "consecutive_failures", "streaks", "consecutive_unknown",
               "failing_since", "silenced", "escalated", "incident", "recoveries_in_window", "last_results", "events"}


@pytest.fixture(scope="module")
def recovered(tmp_path_factory: pytest.TempPathFactory) -> TickReport:
    """The status report of prod-hive after the sandbox story ran to DONE."""
    with _sandbox_env(), mock_aws():
        w = build_world(str(tmp_path_factory.mktemp("world")))
        try:
            tick_until_recovered(w)
            return status(new_invocation(w.services), ["prod-hive"])
        finally:
            w.stop()


def _text(report: TickReport, monkeypatch: pytest.MonkeyPatch, width: int = WIDTH) -> str:
    monkeypatch.setenv("COLUMNS", str(width))
    return render.text(report)


def test_json_keeps_every_key_and_adds_the_human_ones(recovered: TickReport) -> None:
    st: dict[str, Any] = recovered.data["targets"]["prod-hive"]  # type: ignore[index]
    assert set(st) >= KEYS_BEFORE
    assert set(st) - KEYS_BEFORE == {"why", "budget", "incident_timeline", "flapping", "fixes", "paused_rungs"}
    assert st["budget"] == {"used": 1, "max": 1, "window_hours": 6, "left": 0, "enabled": True}
    assert st["fixes"] == {"days": 7, "by_rung": {"replace": 1}} and st["paused_rungs"] == {}


def test_the_incident_reads_as_a_table(recovered: TickReport, monkeypatch: pytest.MonkeyPatch) -> None:
    text = _text(recovered, monkeypatch, 150)
    lines = text.splitlines()
    head = next(i for i, line in enumerate(lines) if line.split() == ["PHASE", "STARTED", "TOOK", "WHAT",
                                                                      "CHANGED", "AWS", "CALLS"])
    phases = [line.split()[0] for line in lines[head + 1:] if line[4:5].isupper() and line[4:].split()[0].isupper()]
    assert phases[:8] == ["SNAPSHOT", "LAUNCH", "WAIT_READY", "VERIFY_NEW", "REPOINT", "VERIFY_PATH", "RETIRE_OLD",
                          "DONE"]
    table = " ".join(" ".join(lines[head:]).split())
    assert "emr.run_job_flow" in table and "elbv2.register_targets" in table and "emr.terminate_job_flows" in table
    assert "10.0 min" in table  # WAIT_READY waited one tick


def test_the_verdict_says_why_and_the_budget_and_silence_are_shown(recovered: TickReport,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    flat = " ".join(_text(recovered, monkeypatch).split())
    assert "prod-hive: verdict" in flat and "why: " in flat
    assert "recovery budget: 1 of 1 used in the last 6 h, 0 left" in flat
    assert "silenced: no" in flat
    assert "checks at the last tick:" in flat


@pytest.mark.parametrize("width", [60, 90, 150])
def test_lines_are_wrapped_not_cut(recovered: TickReport, monkeypatch: pytest.MonkeyPatch, width: int) -> None:
    text = _text(recovered, monkeypatch, width)
    for line in text.splitlines():
        assert len(line) <= width or max(len(w) for w in line.split()) > 30, line
    flat = " ".join(text.split())
    # whole notes survive: what REPOINT changed, in full
    assert "deregistered" in flat and "from target group; UPSERT hive-master.internal.example.com CNAME" in flat


def test_a_narrow_terminal_gets_each_phase_with_its_details_below(recovered: TickReport,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    flat = " ".join(_text(recovered, monkeypatch, 80).split())
    assert "PHASE STARTED TOOK SNAPSHOT" in flat
    assert "REPOINT" in flat and "AWS: elbv2.register_targets, elbv2.deregister_targets" in flat
