"""Crash anywhere, resume: the Lambda dies right before or right after every changing AWS
call, and after every state write (or just before it lands); the next invocation takes a
fresh lease and advances. Whatever the crash point: exactly one new cluster, the old one
terminated exactly once, routing on the new master, one budget entry, nothing lost."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

import pytest

from monitor.core.state.base import Event, Lease, TargetState
from monitor.core.state.memory import MemoryStateStore
from recover import runbook
from tests.fakes import Script
from tests.recover_fixtures import (
    TARGET,
    CallLog,
    Crash,
    CrashOnCall,
    Harness,
    World,
    moto_world,
    new_clusters,
    old_master_broken,
    real_now_clock,
    recovery_config,
    set_steps,
)

CHANGING_CALLS = 8  # AddTags (the claim), RunJobFlow, Register/Deregister (ELBv2, ELB), UPSERT, TerminateJobFlows
# start, 7 phase moves, 1 WAIT_READY wait, the REPOINT checkpoint, and for each changing call
# its intent (before) and its outcome (after)
STATE_WRITES = 10 + 2 * CHANGING_CALLS
TICK_EVERY_MIN = 2  # a re-check cadence; a RunJobFlow with no recorded outcome is resent after 5 min


class CrashingStore(MemoryStateStore):
    """Dies on the n-th state write: before it lands, or right after (the write is durable,
    the invocation is gone)."""

    def __init__(self, n: int, *, after: bool) -> None:
        super().__init__()
        self.n, self.after, self.writes = n, after, 0

    def put(self, target: str, state: TargetState, *, lease: Lease | None,
            events: list[Event] | None = None, now: datetime) -> TargetState:
        self.writes += 1
        if self.writes == self.n and not self.after:
            raise Crash(f"crash before state write #{self.n}")
        result = super().put(target, state, lease=lease, events=events, now=now)
        if self.writes == self.n:
            raise Crash(f"crash after state write #{self.n}")
        return result


def run_to_the_end(h: Harness, world: World, *, max_ticks: int = 20) -> list[str]:
    """Tick until the incident is finished; every tick is a new invocation with a new lease."""
    crashes = []
    for _ in range(max_ticks):
        state = h.store.get(TARGET)
        try:
            if state.incident is None:
                runbook.start(h.rctx(), state, reason="hive CRITICAL")
            else:
                runbook.advance(h.rctx(), state)
        except Crash as exc:
            crashes.append(str(exc))
        for cid in new_clusters(world):
            set_steps(cid, "COMPLETED")  # a new cluster's setup steps finish between ticks
        h.clock.advance(minutes=TICK_EVERY_MIN)
        inc = h.store.get(TARGET).incident
        if inc and inc["phase"] in ("DONE", "ESCALATED"):
            return crashes
    raise AssertionError(f"not finished after {max_ticks} ticks: {h.store.get(TARGET).incident}")


def assert_one_clean_recovery(h: Harness, world: World, log: CallLog) -> None:
    state = h.store.get(TARGET)
    assert state.incident and state.incident["phase"] == "DONE", state.incident
    [new] = new_clusters(world)
    new_state = world.emr().describe_cluster(ClusterId=new)["Cluster"]["Status"]["State"]
    assert new_state == "WAITING"
    old_state = world.emr().describe_cluster(ClusterId=world.cluster_id)["Cluster"]["Status"]["State"]
    assert old_state == "TERMINATED"
    assert log.count("RunJobFlow") == 1
    assert log.count("TerminateJobFlows") == 1
    master = world.master_of(new)
    assert world.tg_targets() == [master["Ec2InstanceId"]]
    assert world.elb_instances() == [master["Ec2InstanceId"]]
    assert world.record_value() == master["PrivateDnsName"]
    assert len(state.recoveries) == 1
    assert state.incident["new"]["cluster_id"] == new


def _scenario(fake_checks: Script, strategy: str, arm: Callable[[World], Any] | None,
              store: MemoryStateStore | None = None) -> tuple[list[str], Harness]:
    with moto_world() as world:
        h = Harness(world, recovery_config(world, strategy=strategy), store or MemoryStateStore(), real_now_clock())
        old_master_broken(h)  # terminate_first re-confirms the failure before terminating the old cluster
        with CallLog(world.clients) as log:
            crash = arm(world) if arm else None
            try:
                crashes = run_to_the_end(h, world)
            finally:
                if crash is not None:
                    crash.disarm()
            assert_one_clean_recovery(h, world, log)
        return crashes, h


@pytest.mark.parametrize("strategy", ["replace", "terminate_first"])
def test_a_clean_run_makes_the_expected_changes_and_writes(fake_checks: Script, strategy: str) -> None:
    with moto_world() as world:
        store = CrashingStore(0, after=True)
        h = Harness(world, recovery_config(world, strategy=strategy), store, real_now_clock())
        old_master_broken(h)
        with CallLog(world.clients) as log:
            assert run_to_the_end(h, world) == []
            assert len(log.mutating()) == CHANGING_CALLS
        assert store.writes == STATE_WRITES


@pytest.mark.parametrize("after", [True, False], ids=["after-call", "before-call"])
@pytest.mark.parametrize("strategy", ["replace", "terminate_first"])
@pytest.mark.parametrize("n", range(1, CHANGING_CALLS + 1))
def test_crash_around_every_changing_call_resumes_to_one_recovery(fake_checks: Script, strategy: str,
                                                                 after: bool, n: int) -> None:
    crashes, _ = _scenario(fake_checks, strategy, lambda w: CrashOnCall(w.clients, n, after=after))
    assert len(crashes) == 1 and f"#{n}" in crashes[0]


@pytest.mark.parametrize("after", [True, False], ids=["after-write", "before-write"])
@pytest.mark.parametrize("n", range(1, STATE_WRITES + 1))
def test_crash_around_every_state_write_resumes_to_one_recovery(fake_checks: Script, after: bool, n: int) -> None:
    crashes, _ = _scenario(fake_checks, "replace", None, CrashingStore(n, after=after))
    assert len(crashes) == 1


def test_crash_right_after_run_job_flow_adopts_the_launched_cluster(fake_checks: Script) -> None:
    crashes, h = _scenario(fake_checks, "replace", lambda w: CrashOnCall(w.clients, 2, after=True))
    assert "RunJobFlow" in crashes[0]  # changing call #1 is the claim tag (recover.claim)
    timeline = h.store.get(TARGET).incident["timeline"]  # type: ignore[index]
    assert any("adopted" in t["note"] for t in timeline)
