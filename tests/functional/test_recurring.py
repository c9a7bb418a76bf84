"""recovery.limits.recurring on moto (issue 21): the same rung ending the same target's
incidents ``count`` times in ``days`` pages "recurring: find the cause"; with ``pause`` the
rung is skipped (the ladder climbs) until `sentinel ack`."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from monitor import actions, render
from monitor.runtime import new_invocation
from tests.fakes import Script, services
from tests.recover_fixtures import (
    RESTART_THEN_REPLACE,
    TARGET,
    CallLog,
    Harness,
    World,
    moto_world,
    recovery_config,
    timed_harness,
)

LIMITS = {"max_recoveries": 1, "window_hours": 6, "launch_timeout_min": 45}


@pytest.fixture
def world() -> Iterator[World]:
    with moto_world() as w:
        yield w


def make(world: World, monkeypatch: pytest.MonkeyPatch, then: str = "page") -> Harness:
    return timed_harness(world, recovery_config(world, ladder=RESTART_THEN_REPLACE, limits={
        **LIMITS, "recurring": {"count": 3, "days": 7, "then": then}}), monkeypatch)


def fix(h: Harness, world: World, *, days_later: float = 1) -> list[dict[str, Any]]:
    """One incident the restart fixes; the pages it sent; then time passes."""
    report = h.start()
    assert report["phase"] == "DONE" and h.incident()["rungs"][-1]["rung"] == "restart_service", report
    pages = world.pages()
    h.clock.advance(days=days_later)
    return pages


def kinds(pages: list[dict[str, Any]]) -> list[str]:
    return [p["MessageAttributes"]["kind"]["Value"] for p in pages]


def status(h: Harness, world: World) -> tuple[dict[str, Any], str]:
    svc = services(h.config, store=h.store, clients=world.clients, clock=h.clock)
    rep = actions.status(new_invocation(svc), [TARGET])
    return rep.data["targets"][TARGET], render.text(rep)


def ack(h: Harness, world: World) -> None:
    assert h.lease is not None
    h.store.release_lease(h.lease)  # the last tick is over
    svc = services(h.config, store=h.store, clients=world.clients, clock=h.clock)
    actions.ack(new_invocation(svc, requested_by="alice"), TARGET)


def test_the_third_fix_in_seven_days_pages_recurring_with_the_incidents(
        world: World, fake_checks: Script, monkeypatch: pytest.MonkeyPatch) -> None:
    h = make(world, monkeypatch)
    ids = []
    for _ in range(2):
        assert "recovery-recurring" not in kinds(fix(h, world))
        ids.append(h.incident()["id"])
    pages = fix(h, world)
    ids.append(h.incident()["id"])
    assert kinds(pages) == ["recovery-started", "recovery-succeeded", "recovery-recurring"]
    page = pages[-1]["Message"]
    assert "recurring: find the cause" in page and all(i in page for i in ids)
    assert "keeps running (then: page)" in page
    fixes = [(m.name, m.dimensions) for r in h.metrics for m in r.points if m.name == "RemediationFixes"]
    assert fixes == [("RemediationFixes", {"target": TARGET, "rung": "restart_service"})] * 3
    st, text = status(h, world)
    assert st["fixes"] == {"days": 7, "by_rung": {"restart_service": 3}} and st["paused_rungs"] == {}
    assert "fixes in the last 7 days: restart_service 3" in text
    with CallLog(world.clients) as log:  # then: page: the rung keeps working
        fix(h, world)
    assert log.count("SendCommand") == 1


def test_fixes_further_apart_than_days_do_not_page(
        world: World, fake_checks: Script, monkeypatch: pytest.MonkeyPatch) -> None:
    h = make(world, monkeypatch)
    pages = [p for _ in range(3) for p in fix(h, world, days_later=4)]  # day 0, 4, 8: two in any 7 days
    assert "recovery-recurring" not in kinds(pages)
    assert len(h.store.get(TARGET).fixes) == 3


def test_pause_skips_the_rung_and_the_ladder_climbs_to_the_relaunch(
        world: World, fake_checks: Script, monkeypatch: pytest.MonkeyPatch) -> None:
    h = make(world, monkeypatch, then="pause")
    for _ in range(3):
        pages = fix(h, world)
    assert "is PAUSED" in pages[-1]["Message"] and "sentinel ack --target" in pages[-1]["Message"]
    st, text = status(h, world)
    assert list(st["paused_rungs"]) == ["restart_service"] and "PAUSED rung restart_service" in text
    with CallLog(world.clients) as log:
        report = h.start()
    assert report["phase"] in ("LAUNCH", "WAIT_READY"), report
    inc = h.incident()
    assert log.count("SendCommand") == 0 and [r["rung"] for r in inc["rungs"]] == ["replace"]
    assert any("paused (recurring fixes)" in n for n in inc["notes"]), inc["notes"]


def test_ack_clears_the_pause(world: World, fake_checks: Script, monkeypatch: pytest.MonkeyPatch) -> None:
    h = make(world, monkeypatch, then="pause")
    for _ in range(3):
        fix(h, world)
    assert "restart_service" in h.store.get(TARGET).paused_rungs
    ack(h, world)
    state = h.store.get(TARGET)
    assert state.paused_rungs == {} and len(state.fixes) == 3  # the history stays; only the pause is cleared
    assert "paused_rungs" in json.dumps(h.store.events(TARGET)[0].data)
    with CallLog(world.clients) as log:
        fix(h, world)  # the restart rung runs again (and, a 4th fix in 7 days, pauses it again)
    assert log.count("SendCommand") == 1


def test_a_fix_is_recorded_once_per_incident_and_the_history_is_bounded(
        world: World, fake_checks: Script, monkeypatch: pytest.MonkeyPatch) -> None:
    from dataclasses import replace

    from monitor.core.clock import iso

    h = make(world, monkeypatch)
    old = [{"rung": "replace", "at": iso(h.clock.now()), "incident": f"old-{i}"} for i in range(60)]
    h.store.put(TARGET, replace(h.store.get(TARGET), fixes=old), lease=None, now=h.clock.now())
    fix(h, world)
    fixes = h.store.get(TARGET).fixes
    assert len(fixes) == 50 and fixes[-1]["incident"] == h.incident()["id"]
    assert [f["incident"] for f in fixes].count(h.incident()["id"]) == 1
