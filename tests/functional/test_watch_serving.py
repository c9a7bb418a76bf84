"""Watch what serves (issue 19, item 2): once clients are on the new cluster, every tick of the
incident runs the target's checks against it. While RETIRE_OLD waits out a long DNS TTL, a new
cluster that fails is seen, paged and counted; its streak carries over past DONE. Before the
cut-over the checks run for status and metrics only and start nothing."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from checks.base import Deadline, Status
from monitor.core.state.memory import MemoryStateStore
from monitor.cycle import run_tick
from monitor.report import TickReport
from monitor.runtime import Services, new_invocation
from recover import phases
from tests.fakes import Script, services
from tests.recover_fixtures import (
    TARGET,
    World,
    moto_world,
    new_clusters,
    real_now_clock,
    recovery_config,
    set_steps,
)


@pytest.fixture
def world() -> Iterator[World]:
    with moto_world(record_ttl=3600) as w:  # resolvers may keep the old master for an hour
        yield w


def tick(svc: Services) -> TickReport:
    return run_tick(new_invocation(svc), deadline=Deadline.after(120))


def metric(report: TickReport, name: str) -> list[float]:
    return [m["value"] for m in report.metrics if m["name"] == name]


def kinds(world: World) -> list[str]:
    return [p["MessageAttributes"]["kind"]["Value"] for p in world.pages()]


def test_a_new_cluster_failing_while_retire_old_waits_is_watched_paged_and_counted(
        world: World, fake_checks: Script, monkeypatch: pytest.MonkeyPatch) -> None:
    clock = real_now_clock()
    monkeypatch.setattr(phases, "SLEEP", lambda s: clock.advance(seconds=s))
    svc = services(recovery_config(world), store=MemoryStateStore(), clients=world.clients, clock=clock)
    fake_checks.set("hive", Status.CRITICAL, "refused")
    tick(svc)
    clock.advance(minutes=10)
    report = tick(svc)
    rec = report.targets[0].recovery
    assert rec and rec["phase"] == "WAIT_READY", rec
    before = report.targets[0]
    assert [c.name for c in before.checks] == ["hive", "dns"]  # run before the cut-over too: status only
    assert metric(report, "TargetStatus") == [2.0]
    for cid in new_clusters(world):
        set_steps(cid, "COMPLETED")
    fake_checks.set("hive", Status.OK)
    clock.advance(minutes=10)
    report = tick(svc)
    rec = report.targets[0].recovery
    assert rec and rec["phase"] == "RETIRE_OLD" and "3600 s" in rec["waiting"], rec
    assert report.targets[0].status is Status.WARNING and metric(report, "TargetStatus") == [0.0]  # open, serving OK
    assert kinds(world) == ["recovery-started"]

    fake_checks.set("hive", Status.CRITICAL, "refused")  # the new cluster fails in the blind window
    seen: list[TickReport] = []
    for _ in range(3):
        clock.advance(minutes=10)
        seen.append(tick(svc))
    assert all(r.targets[0].recovery and r.targets[0].recovery["phase"] == "RETIRE_OLD" for r in seen)
    assert all(metric(r, "TargetStatus") == [2.0] for r in seen)
    assert [r.targets[0].decision and r.targets[0].decision["streaks"]["hive"] for r in seen] == [1, 2, 3]
    assert kinds(world) == ["confirmed"]  # paged once: the serving cluster fails
    assert not any(r.targets[0].decision and r.targets[0].decision["recover"] for r in seen)

    clock.advance(minutes=40)  # the old record's TTL is over: the old cluster is retired, DONE
    report = tick(svc)
    rec = report.targets[0].recovery
    assert rec and rec["phase"] == "DONE", rec
    state = svc.store.get(TARGET)
    assert state.streaks["hive"] >= 3 and state.failing_since is not None  # carried over past DONE
    clock.advance(minutes=10)
    after: Any = tick(svc).targets[0].decision
    assert after["verdict"] == "confirmed" and after["streaks"]["hive"] >= 4
    assert "budget" in " ".join(after["blocked_by"])  # the next incident is judged on it (here: over budget)
