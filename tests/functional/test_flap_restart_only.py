"""``recovery.when.on_flapping: restart`` allows restart rungs only: an incident started for a
flapping check never climbs to a relaunch (issue 19, item 8)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from checks.base import Status
from monitor.core.state.memory import MemoryStateStore
from recover import runbook
from tests.fakes import Script
from tests.recover_fixtures import (
    RESTART_THEN_REPLACE,
    TARGET,
    CallLog,
    Harness,
    World,
    moto_world,
    new_clusters,
    real_now_clock,
    recovery_config,
    timed_harness,
)


@pytest.fixture
def world() -> Iterator[World]:
    with moto_world() as w:
        yield w


def test_a_restart_only_incident_escalates_instead_of_relaunching(
        world: World, fake_checks: Script, monkeypatch: pytest.MonkeyPatch) -> None:
    h = timed_harness(world, recovery_config(world, ladder=RESTART_THEN_REPLACE), monkeypatch)
    h.verify.by_host[None] = Status.CRITICAL  # the restart does not help
    with CallLog(world.clients) as log:
        report = runbook.start(h.rctx(), h.store.get(TARGET), reason="hive flapping", restart_only=True).report
        assert report["phase"] == "VERIFY", report
        h.clock.advance(minutes=6)
        report = h.advance()
    assert report["phase"] == "ESCALATED", report
    assert log.count("RunJobFlow") == 0 and new_clusters(world) == []
    assert "only restart rungs were allowed" in h.incident()["failed"]["error"]
    assert h.incident()["restart_only"] is True


def test_restart_only_with_no_restart_rung_left_does_not_start(
        world: World, fake_checks: Script, monkeypatch: pytest.MonkeyPatch) -> None:
    h = Harness(world, recovery_config(world), MemoryStateStore(), real_now_clock())  # ladder: [replace]
    with pytest.raises(runbook.RecoveryUnavailable, match="only a restart was allowed"):
        runbook.start(h.rctx(), h.store.get(TARGET), reason="hive flapping", restart_only=True)
    assert new_clusters(world) == []
