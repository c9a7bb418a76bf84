"""The runbook driven by the real tick (monitor.cycle.run_tick): detection, relaunch,
verification through the tick's own check runner (host_override to the new master), and a
race of eight concurrent invocations on one failing target that must relaunch exactly once."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from checks.base import Deadline, Status
from monitor import actions
from monitor.core.state.base import StateStore, TargetState
from monitor.core.state.dynamodb import DynamoStateStore, create_table
from monitor.core.state.memory import MemoryStateStore
from monitor.cycle import run_tick
from monitor.report import TickReport
from monitor.runtime import Services, new_invocation
from monitor.sandbox.motolock import serialize_all
from tests.fakes import Script, services
from tests.recover_fixtures import (
    TARGET,
    CallLog,
    World,
    moto_world,
    new_clusters,
    real_now_clock,
    recovery_config,
    set_steps,
)


def tick(svc: Services, **kw: Any) -> TickReport:
    inv = new_invocation(svc, request_id=kw.pop("request_id", None), dry_run=kw.pop("dry_run", False))
    report = run_tick(inv, deadline=Deadline.after(60), **kw)
    svc.clock.advance(seconds=120)  # the next look is a re-check later: it counts (recovery.when.min_gap_s)
    return report


def test_ticks_detect_relaunch_verify_against_the_new_master_and_resume(fake_checks: Script) -> None:
    with moto_world() as world:
        svc = services(recovery_config(world), store=MemoryStateStore(), clients=world.clients, clock=real_now_clock())
        fake_checks.set("hive", Status.CRITICAL, "refused")
        first = tick(svc).targets[0]
        assert first.decision and first.decision["verdict"] == "failing" and first.recovery is None
        second = tick(svc).targets[0]
        assert second.decision and second.decision["recover"] is True
        assert second.recovery and second.recovery["phase"] == "WAIT_READY"
        [new] = new_clusters(world)

        version = svc.store.get(TARGET).version
        dry = tick(svc, dry_run=True).targets[0]  # `sentinel tick --dry-run` during a recovery
        assert dry.recovery and dry.recovery["dry_run"] is True
        assert svc.store.get(TARGET).version == version and new_clusters(world) == [new]

        set_steps(new, "COMPLETED")
        fake_checks.set("hive", Status.OK)
        fake_checks.calls.clear()
        third = tick(svc).targets[0]
        assert third.recovery and third.recovery["phase"] == "DONE", third.recovery
        assert third.status == Status.OK  # the runbook verified; then the tick watched what serves now
        new_dns = world.master_of(new)["PrivateDnsName"]
        # VERIFY_NEW on the master, VERIFY_PATH through the path; the watch on what serves reuses
        # VERIFY_PATH's result and runs only the check it did not (never a check twice a tick)
        assert fake_checks.calls == [("hive", new_dns), ("hive", None), ("dns", None)]
        assert [c.name for c in third.checks] == ["hive", "dns"]

        fourth = tick(svc).targets[0]
        assert fourth.decision and fourth.decision["verdict"] == "ok" and fourth.recovery is None
        status = actions.status(new_invocation(svc), [TARGET]).data
        assert status and status["targets"][TARGET]["incident"]["phase"] == "DONE"
        kinds = [p["MessageAttributes"]["kind"]["Value"] for p in world.pages()]
        assert kinds == ["recovery-started", "recovery-succeeded"]


def _store(kind: str, world: World) -> StateStore:
    if kind == "memory":
        return MemoryStateStore()
    create_table(world.clients.client("dynamodb"), "sentinel-state")
    return DynamoStateStore(world.clients.client("dynamodb"), "sentinel-state")


@pytest.mark.parametrize("store_kind", ["memory", "dynamodb"])
def test_eight_concurrent_invocations_relaunch_exactly_once(fake_checks: Script, store_kind: str) -> None:
    with moto_world() as world:
        store = _store(store_kind, world)
        clock = real_now_clock()
        svc = services(recovery_config(world), store=store, clients=world.clients, clock=clock)
        store.put(TARGET, TargetState(streaks={"hive": 1}, consecutive_failures=1, last_decision="failing"),
                  lease=None, now=clock.now())
        fake_checks.set("hive", Status.CRITICAL, "timeout")
        barrier = threading.Barrier(8)

        def invocation(i: int) -> TickReport:
            inv = new_invocation(svc, request_id=f"inv-{i}")  # scheduled, manual, retried: all different owners
            barrier.wait()
            action = "recover" if i % 3 == 0 else "tick"
            return run_tick(inv, deadline=Deadline.after(60), action=action, force=i % 3 == 0)

        serialize_all(world.clients)  # moto itself is not thread-safe (monitor/sandbox/motolock.py)
        with CallLog(world.clients) as log, ThreadPoolExecutor(8) as pool:
            reports = list(pool.map(invocation, range(8)))
        targets = [r.targets[0] for r in reports]
        assert log.count("RunJobFlow") == 1
        assert len(new_clusters(world)) == 1
        starts = [t for t in targets if t.recovery and t.recovery.get("transitions")
                  and t.recovery["transitions"][0]["from"] == "SNAPSHOT"]
        assert len(starts) == 1
        assert all(t.error is None for t in targets), [t.error for t in targets]
        state = store.get(TARGET)
        assert len(state.recoveries) == 1 and state.incident and state.incident["phase"] == "WAIT_READY"


def test_every_tick_during_a_recovery_says_the_target_is_critical_until_traffic_is_back(
        fake_checks: Script) -> None:
    """The unhealthy alarm must not go OK mid-outage for lack of TargetStatus data."""
    with moto_world() as world:
        svc = services(recovery_config(world), store=MemoryStateStore(), clients=world.clients, clock=real_now_clock())
        fake_checks.set("hive", Status.CRITICAL, "refused")
        tick(svc)
        tick(svc)  # confirmed: recovery started, now waiting for the new cluster
        waiting = tick(svc)
        points = {(p["name"], p["value"]) for p in waiting.metrics if p["dimensions"].get("target") == TARGET}
        assert ("TargetStatus", int(Status.CRITICAL)) in points and ("RecoveryPhase", 3) in points, points
        [new] = new_clusters(world)
        set_steps(new, "COMPLETED")
        fake_checks.set("hive", Status.OK)
        done = tick(svc)
        points = {(p["name"], p["value"]) for p in done.metrics if p["dimensions"].get("target") == TARGET}
        assert ("TargetStatus", int(Status.OK)) in points, points


def test_a_name_that_does_not_resolve_pages_but_never_relaunches(fake_checks: Script) -> None:
    """`dns` (NXDOMAIN) is CRITICAL and confirmed like any failure, but a new cluster cannot fix
    a name: not in recovery.when.kinds, so the page says why and nothing is launched."""
    with moto_world() as world:
        svc = services(recovery_config(world), store=MemoryStateStore(), clients=world.clients, clock=real_now_clock())
        fake_checks.set("hive", Status.CRITICAL, "dns")
        with CallLog(world.clients) as log:
            tick(svc)
            second = tick(svc).targets[0]
        assert second.decision and second.decision["verdict"] == "confirmed" and not second.decision["recover"]
        assert any("error kind dns" in b for b in second.decision["blocked_by"])
        assert log.mutating() == [] and new_clusters(world) == []
        pages = world.pages()
        assert [p["MessageAttributes"]["kind"]["Value"] for p in pages] == ["confirmed"]
        assert "error kind dns" in pages[0]["Message"]
