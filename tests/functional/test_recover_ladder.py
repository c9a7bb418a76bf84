"""The remediation ladder on moto: restart HiveServer2 on the master first (SSM Run Command or
an EMR step), relaunch only when that does not help. moto runs neither commands nor steps:
the tests force their states (a botocore after-call hook for SSM, moto's backend for steps)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from checks.base import Status
from monitor.core.clock import iso
from monitor.core.state.base import TargetState
from recover import runbook
from tests.fakes import Script
from tests.recover_fixtures import (
    SSM_RUNG,
    TARGET,
    CallLog,
    Crash,
    CrashOnCall,
    Harness,
    World,
    both_clients,
    emr_backend,
    moto_world,
    new_clusters,
    recovery_config,
    timed_harness,
)

STEP_RUNG = {**SSM_RUNG, "via": "step"}


@pytest.fixture
def world() -> Iterator[World]:
    with moto_world() as w:
        yield w


def make(world: World, monkeypatch: pytest.MonkeyPatch, *ladder: dict[str, Any], **recovery: Any) -> Harness:
    rungs = list(ladder) or [SSM_RUNG, {"rung": "replace"}]
    return timed_harness(world, recovery_config(world, ladder=rungs, **recovery), monkeypatch)





def kinds(world: World) -> list[str]:
    return [p["MessageAttributes"]["kind"]["Value"] for p in world.pages()]


class SsmStatus:
    """What GetCommandInvocation answers (moto says Success at once)."""

    def __init__(self, world: World, status: str) -> None:
        self.status = status
        self._clients = both_clients(world.clients, "ssm")
        for c in self._clients:
            c.meta.events.register("after-call", self._hook)

    def _hook(self, parsed: dict[str, Any], model: Any, **_: Any) -> None:
        if model.name == "GetCommandInvocation":
            parsed["Status"] = self.status

    def __enter__(self) -> SsmStatus:
        return self

    def __exit__(self, *exc: object) -> None:
        for c in self._clients:
            c.meta.events.unregister("after-call", self._hook)


def finish(h: Harness, world: World, ticks: int = 12) -> dict[str, Any]:
    report: dict[str, Any] = {}
    for _ in range(ticks):
        for cid in new_clusters(world):
            _complete_setup(cid)
        report = h.advance()
        if report["phase"] in ("DONE", "ESCALATED"):
            return report
        h.clock.advance(minutes=2)
    raise AssertionError(report)


def _complete_setup(cluster_id: str) -> None:
    for step in emr_backend().clusters[cluster_id].steps:
        if not step.name.startswith("sentinel restart"):
            step.state = "COMPLETED"


# ------------------------------------------------------------------ restart fixes it

def test_a_restart_that_fixes_it_ends_the_incident_with_no_relaunch(
        world: World, fake_checks: Script, monkeypatch: pytest.MonkeyPatch) -> None:
    h = make(world, monkeypatch)
    with CallLog(world.clients) as log:
        report = h.start()
    assert report["phase"] == "DONE", report
    assert log.count("SendCommand") == 1 and log.count("RunJobFlow") == 0 and new_clusters(world) == []
    inc = h.incident()
    master = world.master_of(world.cluster_id)
    assert inc["restart"]["instance_id"] == master["Ec2InstanceId"] and inc["restart"]["via"] == "ssm"
    assert [r["outcome"] for r in inc["rungs"]] == ["recovered"]
    assert h.verify.calls == [(["hive"], None)]  # the trigger checks, through the normal path
    assert 60 <= inc["ttr_s"] < 120  # warm-up included
    pages = world.pages()  # read once: the queue hands each message out once
    assert [p["MessageAttributes"]["kind"]["Value"] for p in pages] == ["recovery-started", "recovery-succeeded"]
    page = pages[-1]
    assert "Restarted HiveServer2 on" in page["Message"] and world.cluster_id in page["Message"]
    assert h.store.get(TARGET).rung_uses["restart_service"] and h.store.get(TARGET).recoveries == []
    points = {(m.name, tuple(sorted(m.dimensions.items()))) for r in h.metrics for m in r.points}
    assert ("RemediationRung", (("target", TARGET),)) in points
    assert ("TimeToRecoverSeconds", (("rung", "restart_service"), ("target", TARGET))) in points


def test_a_restart_via_an_emr_step(world: World, fake_checks: Script, monkeypatch: pytest.MonkeyPatch) -> None:
    h = make(world, monkeypatch, STEP_RUNG, {"rung": "replace"})
    report = h.start()
    assert report["phase"] == "RESTART" and "restart via step is step" in (report["waiting"] or ""), report
    [step] = [s for s in emr_backend().clusters[world.cluster_id].steps if s.name.startswith("sentinel restart")]
    step.state = "COMPLETED"
    assert h.advance()["phase"] == "DONE"
    assert new_clusters(world) == []


# ------------------------------------------------------------------ restart does not fix it

def test_a_restart_that_does_not_help_climbs_to_the_same_relaunch_as_today(
        world: World, fake_checks: Script, monkeypatch: pytest.MonkeyPatch) -> None:
    h = make(world, monkeypatch)
    h.verify.by_host[None] = Status.CRITICAL  # the normal path stays broken after the restart
    report = h.start()
    assert report["phase"] == "VERIFY", report
    h.clock.advance(minutes=6)  # past warm-up + verify_timeout_min
    report = h.advance()
    assert report["phase"] in ("WAIT_READY", "LAUNCH"), report
    inc = h.incident()
    assert [r["rung"] for r in inc["rungs"]] == ["restart_service", "replace"]
    assert inc["rungs"][0]["outcome"] == "failed" and inc["strategy"] == "replace"
    [new] = new_clusters(world)
    assert inc["spec"]["Name"] == world.emr().describe_cluster(ClusterId=world.cluster_id)["Cluster"]["Name"]
    del h.verify.by_host[None]
    assert finish(h, world)["phase"] == "DONE"
    assert "recovery-climbing" in kinds(world) and len(h.store.get(TARGET).recoveries) == 1
    assert world.emr().describe_cluster(ClusterId=new)["Cluster"]["Status"]["State"] == "WAITING"


@pytest.mark.parametrize("status", ["Failed", "TimedOut", "Cancelled"])
def test_a_failed_command_hands_over_to_the_next_rung(
        world: World, fake_checks: Script, monkeypatch: pytest.MonkeyPatch, status: str) -> None:
    h = make(world, monkeypatch)
    with SsmStatus(world, status):
        report = h.start()
    assert report["phase"] in ("WAIT_READY", "LAUNCH"), report
    assert status in h.incident()["rungs"][0]["note"]


def test_a_command_that_never_finishes_times_out_and_moves_on(
        world: World, fake_checks: Script, monkeypatch: pytest.MonkeyPatch) -> None:
    h = make(world, monkeypatch)
    with SsmStatus(world, "InProgress"), CallLog(world.clients, event="before-call") as log:
        report = h.start()
        assert report["phase"] == "RESTART" and "InProgress" in (report["waiting"] or ""), report
        h.clock.advance(minutes=11)
        report = h.advance()
    assert report["phase"] in ("LAUNCH", "WAIT_READY"), report
    assert "timeout_min 10" in h.incident()["rungs"][0]["note"] and log.count("CancelCommand") == 1


def test_a_step_stuck_behind_a_running_step_times_out_and_moves_on(
        world: World, fake_checks: Script, monkeypatch: pytest.MonkeyPatch) -> None:
    h = make(world, monkeypatch, STEP_RUNG, {"rung": "replace"})
    report = h.start()
    [step] = [s for s in emr_backend().clusters[world.cluster_id].steps if s.name.startswith("sentinel restart")]
    step.state = "PENDING"  # step concurrency 1, another step is running
    h.clock.advance(minutes=11)
    report = h.advance()
    assert report["phase"] in ("LAUNCH", "WAIT_READY"), report
    note = h.incident()["rungs"][0]["note"]
    assert "PENDING" in note and "waiting behind other steps" in note


def test_a_restart_rung_over_budget_goes_straight_to_replace(
        world: World, fake_checks: Script, monkeypatch: pytest.MonkeyPatch) -> None:
    h = make(world, monkeypatch)
    now = iso(h.clock.now())
    h.store.put(TARGET, TargetState(rung_uses={"restart_service": [now, now]}), lease=None, now=h.clock.now())
    with CallLog(world.clients) as log:
        report = h.start()
    assert report["phase"] == "WAIT_READY" and log.count("SendCommand") == 0
    inc = h.incident()
    assert [r["rung"] for r in inc["rungs"]] == ["replace"] and "over their budget" in inc["notes"][0]


def test_every_rung_over_budget_blocks_the_start(world: World, fake_checks: Script,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    h = make(world, monkeypatch, limits={"max_recoveries": 0, "window_hours": 6, "launch_timeout_min": 45})
    now = iso(h.clock.now())
    h.store.put(TARGET, TargetState(rung_uses={"restart_service": [now, now]}), lease=None, now=h.clock.now())
    with pytest.raises(runbook.RecoveryUnavailable, match="budget exhausted.*restart_service"):
        h.start()


def test_a_restart_only_ladder_needs_no_routing_and_escalates_when_it_does_not_help(
        world: World, fake_checks: Script, monkeypatch: pytest.MonkeyPatch) -> None:
    h = make(world, monkeypatch, SSM_RUNG, routing={}, verify={"checks": []})
    h.verify.by_host[None] = Status.CRITICAL
    h.start()
    h.clock.advance(minutes=6)
    report = h.advance()
    assert report["phase"] == "ESCALATED" and new_clusters(world) == []
    assert "no rung left" in h.incident()["failed"]["error"]


# ------------------------------------------------------------------ crashes around the sends

@pytest.mark.parametrize("after", [True, False], ids=["after-call", "before-call"])
@pytest.mark.parametrize("rung", [SSM_RUNG, STEP_RUNG], ids=["ssm", "step"])
def test_a_crash_around_the_restart_sends_it_exactly_once(
        world: World, fake_checks: Script, monkeypatch: pytest.MonkeyPatch, rung: dict[str, Any], after: bool) -> None:
    h = make(world, monkeypatch, rung, {"rung": "replace"})
    op = "SendCommand" if rung["via"] == "ssm" else "AddJobFlowSteps"
    with CallLog(world.clients) as log:
        with CrashOnCall(world.clients, 2, after=after), pytest.raises(Crash, match=op):  # #1: the claim tag
            h.start()
        for s in emr_backend().clusters[world.cluster_id].steps:
            if s.name.startswith("sentinel restart"):
                s.state = "COMPLETED"
        h.clock.advance(minutes=6)  # past the settle window a send without an outcome gets before a resend
        report = h.advance()
        for s in emr_backend().clusters[world.cluster_id].steps:
            if s.name.startswith("sentinel restart"):
                s.state = "COMPLETED"
        if report["phase"] != "DONE":
            report = h.advance()
    assert report["phase"] == "DONE", report
    assert log.count(op) == 1 and new_clusters(world) == []


def test_plan_of_a_ladder_lists_the_restart_then_the_relaunch(
        world: World, fake_checks: Script, monkeypatch: pytest.MonkeyPatch) -> None:
    h = make(world, monkeypatch)
    h.dry_run = True
    report = runbook.start(h.rctx(), h.store.get(TARGET), reason="plan").report
    calls = [c["call"] for c in report["plan"]["calls"] if c.get("mutating")]
    assert calls[:2] == ["emr.add_tags", "ssm.send_command"] and calls.index("emr.run_job_flow") > 1  # claim first
    assert [r["rung"] for r in report["plan"]["rungs"]] == ["restart_service", "replace"]
    assert new_clusters(world) == []
