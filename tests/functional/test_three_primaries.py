"""Clusters with three primary nodes (issue 23): each primary watched, HiveServer2 restarted on
one failing primary at a time, and no relaunch for what EMR heals itself.

Two worlds: the sandbox's (real checks through the real tick: a HiveServer2 stub per primary on
127.0.0.1, the load balancer's stand-in, moto) and the recovery harness (moto, the checks faked
per host). moto cannot lose or replace one primary: both use the sandbox's documented shim
(:class:`monitor.sandbox.ha.EmrReplacesPrimaries`)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from checks.base import Status
from monitor.sandbox.ha import EmrReplacesPrimaries, HaWorld
from recover import ha, phases, runbook
from tests.fakes import Script
from tests.recover_fixtures import (
    SEED_REQUEST,
    TARGET,
    CallLog,
    Harness,
    World,
    both_clients,
    finish_incident,
    moto_world,
    new_clusters,
    old_master_broken,
    recovery_config,
    timed_harness,
)

# ------------------------------------------------------------------ the sandbox's world, real checks


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[HaWorld]:
    from moto import mock_aws

    from monitor.sandbox.demo import sandbox_env
    from monitor.sandbox.ha import build_ha_world

    with sandbox_env(), mock_aws():
        w = build_ha_world(str(tmp_path))
        saved = phases.SLEEP
        phases.SLEEP = lambda s: w.clock.advance(timedelta(seconds=s))  # a warm-up is simulated time
        try:
            yield w
        finally:
            phases.SLEEP = saved
            w.stop()


def _check(report: Any, name: str) -> Any:
    return next(c for c in report.targets[0].checks if c.name == name)


def _registered(w: HaWorld) -> list[str]:
    desc = w.seeded.clients.client("elbv2").describe_target_health(TargetGroupArn=w.seeded.target_group_arn)
    return sorted(d["Target"]["Id"] for d in desc["TargetHealthDescriptions"])


def _clusters(w: HaWorld) -> list[str]:
    return [c["Id"] for c in w.seeded.clients.client("emr").list_clusters()["Clusters"]]


def test_one_hung_primary_is_a_warning_restarted_there_alone_and_done_with_no_cluster_change(
        sandbox: HaWorld) -> None:
    w = sandbox
    hung = w.seeded.primaries[1]
    before = _registered(w)
    assert w.tick(1).targets[0].status is Status.OK
    w.stubs[1].mode = "hang_after_connect"  # the load balancer routes around it: clients are served
    first = w.tick(2)
    primaries = _check(first, "hive-primaries")
    assert (primaries.status, primaries.error_kind) == (Status.WARNING, "timeout"), primaries.summary
    assert primaries.summary.startswith("2 of 3 primaries serve") and hung["instance_id"] in primaries.summary
    assert [p["instance_id"] for p in primaries.observed["restartable"]] == [hung["instance_id"]]
    assert _check(first, "hive-via-elb").status is Status.OK
    assert first.targets[0].status is Status.WARNING and first.targets[0].recovery is None
    from monitor.actions import status
    from monitor.render import text
    from monitor.runtime import new_invocation

    shown = status(new_invocation(w.services, request_id="st"), [TARGET])
    rows = shown.data["targets"][TARGET]["primaries"]  # `sentinel status` names each primary
    assert [(r["instance_id"], r["status"]) for r in rows] == [
        (p["instance_id"], "CRITICAL" if p is hung else "OK") for p in w.seeded.primaries]
    assert f"primaries: {w.seeded.primaries[0]['instance_id']}" in " ".join(text(shown).split())

    second = w.tick(3)  # confirmed (2 looks): a restart on that primary only, never a relaunch
    recovery = second.targets[0].recovery
    assert recovery is not None and recovery["phase"] == "DONE", recovery
    incident = w.services.store.get(TARGET).incident or {}
    assert w.restarted == [hung["instance_id"]]  # one SSM restart, on the hung primary
    assert incident["restart"]["instance_id"] == hung["instance_id"] and incident["ha"]["restarted"] == [hung["instance_id"]]
    assert incident["restart_only"] is True and [r["outcome"] for r in incident["rungs"]] == ["recovered"]
    assert _clusters(w) == [w.seeded.cluster_id] and _registered(w) == before  # no cluster change
    assert any(f"restarting HiveServer2 on {hung['instance_id']}" in n for n in incident["notes"])
    assert _check(w.tick(4), "hive-primaries").status is Status.OK


def test_sandbox_a_lost_primary_is_waited_for_while_emr_replaces_it_never_relaunched(sandbox: HaWorld) -> None:
    w = sandbox
    lost = w.seeded.primaries[2]["instance_id"]
    w.tick(1)
    replacement = w.lose(2, ready_after=timedelta(minutes=15))
    seen = [w.tick(n) for n in (2, 3, 4)]
    during = _check(seen[0], "hive-primaries")
    assert during.status is Status.WARNING and "PROVISIONING" in during.summary and not during.observed["restartable"]
    state = _check(seen[0], "cluster-state")
    assert state.status is Status.WARNING and "EMR is replacing" in state.summary and replacement in state.summary
    assert _check(seen[0], "hive-via-elb").status is Status.OK  # clients are served by the two others
    assert all(r.targets[0].recovery is None for r in seen)
    assert _check(seen[-1], "hive-primaries").status is Status.OK  # the replacement answers (same address)
    assert _clusters(w) == [w.seeded.cluster_id] and w.restarted == []
    assert lost in _registered(w)  # EMR kept the private address: the registration still leads there


def test_run_ha_sandbox_story_ends_with_no_cluster_launched(capsys: pytest.CaptureFixture[str]) -> None:
    import io

    from monitor.sandbox.ha import run_ha_sandbox

    out = io.StringIO()
    assert run_ha_sandbox(out) == 0, out.getvalue()[-3000:]
    assert "clusters launched: 0; every primary serves: True" in out.getvalue()


# ------------------------------------------------------------------ the recovery harness (moto, checks per host)

HA_REQUEST: dict[str, Any] = json.loads(json.dumps(SEED_REQUEST))
HA_REQUEST["Instances"]["InstanceGroups"][0]["InstanceCount"] = 3


@pytest.fixture
def world(fake_checks: Script) -> Iterator[World]:
    with moto_world(request=HA_REQUEST, protected=True) as w:
        yield w


def _primaries(world: World, cluster_id: str) -> list[dict[str, Any]]:
    return list(world.emr().list_instances(ClusterId=cluster_id, InstanceGroupTypes=["MASTER"])["Instances"])


def _harness(world: World, monkeypatch: pytest.MonkeyPatch, **recovery: Any) -> tuple[Harness, EmrReplacesPrimaries]:
    h = timed_harness(world, recovery_config(world, **recovery), monkeypatch)
    shim = EmrReplacesPrimaries(h.clock)
    for client in both_clients(world.clients, "emr"):
        shim.register(client)
    return h, shim


@pytest.fixture
def unhook(world: World) -> Iterator[list[EmrReplacesPrimaries]]:
    shims: list[EmrReplacesPrimaries] = []
    yield shims
    for shim in shims:
        for client in both_clients(world.clients, "emr"):
            shim.unregister(client)


def test_a_primary_emr_replaces_within_the_wait_is_never_relaunched(
        world: World, monkeypatch: pytest.MonkeyPatch, unhook: list[EmrReplacesPrimaries]) -> None:
    h, shim = _harness(world, monkeypatch, allow_termination_protected=True)
    unhook.append(shim)
    a, b, _ = _primaries(world, world.cluster_id)
    shim.lose(a["Ec2InstanceId"], ready_after=timedelta(minutes=12))  # same private name: EMR keeps the IP
    h.verify.by_host[b["PrivateDnsName"]] = Status.CRITICAL  # and HiveServer2 on a second one hangs
    with CallLog(world.clients) as log:
        report = h.start("hive CRITICAL: fewer than two primaries serve")
        assert report["phase"] == "SNAPSHOT" and "EMR is replacing a primary" in report["summary"], report
        h.clock.advance(minutes=10)
        assert h.advance()["phase"] == "SNAPSHOT"
        h.clock.advance(minutes=5)  # the replacement runs, within replace_wait_min (20)
        report = h.advance()
    assert report["phase"] == "DONE", report
    assert log.count("RunJobFlow") == 0 and new_clusters(world) == [] and log.mutating() == []
    incident = h.incident()
    assert incident["outcome"] == ha.HEALED_BY_EMR and incident["recovered_at"] is None
    kinds = [p["MessageAttributes"]["kind"]["Value"] for p in world.pages()]
    assert kinds == ["recovery-started", "recovery-aborted"]


def test_two_primaries_down_past_the_wait_relaunch_with_three_primaries_registered_and_verified(
        world: World, monkeypatch: pytest.MonkeyPatch, unhook: list[EmrReplacesPrimaries]) -> None:
    h, shim = _harness(world, monkeypatch, allow_termination_protected=True)
    unhook.append(shim)
    old = _primaries(world, world.cluster_id)
    elbv2, elb = world.clients.client("elbv2"), world.clients.client("elb")
    elbv2.register_targets(TargetGroupArn=world.tg_arn, Targets=[{"Id": p["Ec2InstanceId"], "Port": 10000}
                                                                 for p in old[1:]])
    elb.register_instances_with_load_balancer(LoadBalancerName=world.elb_name,
                                              Instances=[{"InstanceId": p["Ec2InstanceId"]} for p in old[1:]])
    for p in old[:2]:
        shim.lose(p["Ec2InstanceId"], ready_after=None)  # EMR never gets them back
    assert h.start()["phase"] == "SNAPSHOT"
    h.clock.advance(minutes=10)
    assert h.advance()["phase"] == "SNAPSHOT"
    assert new_clusters(world) == []
    h.clock.advance(minutes=11)  # past replace_wait_min: fewer than two primaries serve
    report = finish_incident(h)
    assert report["phase"] == "DONE", report
    [new_id] = new_clusters(world)
    new = _primaries(world, new_id)
    assert len(new) == 3
    new_ids = sorted(p["Ec2InstanceId"] for p in new)
    assert world.tg_targets() == new_ids and world.elb_instances() == new_ids  # every old one deregistered
    verified = {e.host for e in h.verify.endpoints if e is not None}
    assert {p["PrivateDnsName"] for p in new} <= verified  # VERIFY_NEW ran on each new primary
    incident = h.incident()
    assert sorted(p["instance_id"] for p in incident["new"]["primaries"]) == new_ids
    assert incident["ha"]["relaunch_because"].startswith("1 of 3 primaries serve after 21 min")
    assert incident["retired"]["action"] == "terminated" and "termination protection lifted" in incident["retired"]["detail"]
    assert report["new_primaries"] == [p["private_dns"] for p in incident["new"]["primaries"]]


def test_retire_old_of_a_protected_three_primary_cluster_says_it_needs_allow_termination_protected(
        world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    h, shim = _harness(world, monkeypatch)  # allow_termination_protected: false (the default)
    try:
        plan = runbook.build_plan(h.rctx(), h.store.get(TARGET))
    finally:
        for client in both_clients(world.clients, "emr"):
            shim.unregister(client)
    assert plan["ok"] is False and plan["final_phase"] == "ESCALATED"
    assert "three primaries" in plan["error"] and "allow_termination_protected: true" in plan["error"]
    assert len(plan["old_cluster"]["primaries"]) == 3  # the plan names each primary
    assert any("a relaunch starts only if fewer than two serve" in n for n in plan["notes"])


def test_two_hung_primaries_are_critical_within_one_deadline_asked_in_parallel(sandbox: HaWorld) -> None:
    w = sandbox
    w.stubs[0].mode = w.stubs[1].mode = "hang_after_connect"
    check = _check(w.tick(1), "hive-primaries")
    assert (check.status, check.error_kind) == (Status.CRITICAL, "timeout"), check.summary
    assert check.summary.startswith("1 of 3 primaries serve (fewer than 2)")
    assert check.latency_ms < 2 * 2000  # timeout_s 2 each, asked in parallel: one deadline, not two
    assert all(p["private_dns"] in p["summary"] for p in check.observed["primaries"])


def test_a_persons_approval_of_the_relaunch_lifts_the_forced_protection_of_three_primaries(
        world: World, monkeypatch: pytest.MonkeyPatch, unhook: list[EmrReplacesPrimaries]) -> None:
    """allow_termination_protected stays false: the approval is the person's yes (issue 23 item 4)."""
    h, shim = _harness(world, monkeypatch, approval={"rungs": ["replace"], "timeout_min": 30})
    unhook.append(shim)
    old = _primaries(world, world.cluster_id)
    for p in old[:2]:
        shim.lose(p["Ec2InstanceId"], ready_after=None)
    old_master_broken(h)  # the normal path fails until REPOINT
    assert h.start()["phase"] == "APPROVAL"
    h.clock.advance(minutes=1)
    report = runbook.answer(h.rctx(), h.store.get(TARGET), approve=True, reason="relaunch it")
    assert report.report["phase"] == "SNAPSHOT", report.report
    h.clock.advance(minutes=21)  # past replace_wait_min
    report = finish_incident(h)
    assert report["phase"] == "DONE", report
    incident = h.incident()
    assert incident["retired"]["action"] == "terminated"
    assert any("lifted on" in n and "approval of the relaunch" in n for n in incident["notes"])
    assert world.emr().describe_cluster(ClusterId=world.cluster_id)["Cluster"]["Status"]["State"].startswith("TERMINAT")
