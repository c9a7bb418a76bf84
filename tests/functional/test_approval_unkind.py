"""Review: approval answered in states where the incident must not move."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta

import pytest

from monitor.core.clock import iso
from recover import runbook
from tests.fakes import Script
from tests.functional.test_approval import restart_then_replace, waiting
from tests.recover_fixtures import TARGET, World, moto_world, new_clusters


@pytest.fixture
def world(fake_checks: Script) -> Iterator[World]:
    with moto_world() as w:
        yield w


def test_approve_while_recovery_dry_run_was_switched_on_does_not_launch(world: World) -> None:
    """recovery.dry_run switched on mid-incident freezes it (advance: "it does not advance");
    an approval must not launch a real cluster then (rctx.dry_run is True)."""
    h = waiting(world)
    h.dry_run = True  # what cycle passes when target.recovery.dry_run is true
    with pytest.raises(runbook.RecoveryUnavailable, match="recovery.dry_run is true"):
        runbook.answer(h.rctx(), h.store.get(TARGET), approve=True, reason="go")
    assert new_clusters(world) == [] and h.incident()["approval"]["answer"] is None


def test_approve_during_a_silence_does_not_start_the_rung(world: World) -> None:
    """A silence pauses the incident, the approval wait included (approval docstring); an
    answer recorded during it must not act before the silence ends."""
    h = waiting(world)
    state = h.store.get(TARGET)
    until = h.clock.now() + timedelta(hours=2)
    lease = h.new_lease()
    h.store.put(TARGET, replace(state, silences=[{"until": iso(until), "reason": "maintenance",
                                                   "actions_only": False}]), lease=lease, now=h.clock.now())
    assert h.advance().get("paused")  # the silence holds the incident
    runbook.answer(h.rctx(), h.store.get(TARGET), approve=True, reason="go")
    assert new_clusters(world) == []
    assert h.incident()["phase"] == "APPROVAL" and h.incident()["approval"]["answer"]["decision"] == "approved"
    h.clock.advance(hours=3)  # the silence ends: the recorded answer acts at the next tick
    assert h.advance()["phase"] == "WAIT_READY" and len(new_clusters(world)) == 1


def test_a_repeated_approve_does_not_approve_the_next_rung(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """An approve is not tied to the ask it answers: the same request delivered again (an
    asynchronous Lambda invocation is retried twice when the first one dies, e.g. a timeout
    while the approved rung ran) or a second person's late "yes" to the restart page, arriving
    after the restart failed and the incident climbed into a new APPROVAL, approves the
    relaunch nobody saw the plan of."""
    h = restart_then_replace(world, monkeypatch, rungs=["restart_service", "replace"])
    assert h.start()["phase"] == "APPROVAL"
    assert h.incident()["approval"]["rung"] == "restart_service"
    ctx = h.rctx()
    ctx.requested_by = "alice"
    runbook.answer(ctx, h.store.get(TARGET), approve=True, reason="restart ok")  # the request
    for _ in range(5):
        if h.incident()["phase"] == "APPROVAL":
            break
        h.clock.advance(minutes=3)
        h.advance()
    inc = h.incident()
    assert inc["phase"] == "APPROVAL" and inc["approval"]["rung"] == "replace", inc["phase"]
    ctx = h.rctx()
    ctx.requested_by = "alice"
    with pytest.raises(runbook.RecoveryUnavailable, match="the same answer .* was given to the restart_service ask"):
        runbook.answer(ctx, h.store.get(TARGET), approve=True, reason="restart ok")  # retried / late duplicate
    assert new_clusters(world) == [], "the relaunch was approved by an answer to the restart's ask"
    assert h.incident()["phase"] == "APPROVAL" and h.incident()["approval"]["answer"] is None
    with pytest.raises(runbook.RecoveryUnavailable, match="--rung restart_service is not the rung waiting"):
        runbook.answer(h.rctx(), h.store.get(TARGET), approve=True, reason="restart ok, again", rung="restart_service")
    runbook.answer(h.rctx(), h.store.get(TARGET), approve=True, reason="relaunch ok", rung="replace")
    assert len(new_clusters(world)) == 1  # an answer to this ask counts


def test_an_answer_naming_another_incident_is_refused(world: World) -> None:
    h = waiting(world)
    with pytest.raises(runbook.RecoveryUnavailable, match="is not the incident waiting for approval"):
        runbook.answer(h.rctx(), h.store.get(TARGET), approve=True, reason="go", incident="prod-hive-old-one")
    inc = h.incident()
    runbook.answer(h.rctx(), h.store.get(TARGET), approve=True, reason="go", incident=inc["id"], rung="replace")
    assert len(new_clusters(world)) == 1
