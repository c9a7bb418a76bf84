"""The recovery runbook on moto, tick by tick: both strategies end to end, the clone compared
field by field with the original, re-pointing, retirement, failures and rollback, the
guardrails (budget, escalation and ack, silence, transient errors), dry run and the plan."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from freezegun import freeze_time

from checks.base import Status
from monitor import actions, policy
from monitor.config import ClusterRef
from monitor.core.clock import SystemClock, iso
from monitor.core.clusters import find_cluster
from monitor.core.state.memory import MemoryStateStore
from monitor.runtime import new_invocation
from recover import runbook
from recover.calls import IAM_PREFIX, _api_name
from recover.incident import INCIDENT_TAG
from recover.permissions import all_actions
from recover.plan import print_plan
from recover.spec import capture_last_known_good
from tests.fakes import Script, services
from tests.recover_fixtures import (
    CLUSTER_NAME,
    METASTORE_PASSWORD,
    SEED_REQUEST,
    TARGET,
    BeforeCall,
    CallLog,
    FailCalls,
    Harness,
    World,
    moto_world,
    new_clusters,
    old_master_broken,
    real_now_clock,
    recovery_config,
    recovery_raw,
    set_cluster_state,
    set_steps,
)

VOLATILE = {"Id", "Status", "ClusterArn", "MasterPublicDnsName", "NormalizedInstanceHours", "Tags", "ResponseMetadata"}


@pytest.fixture
def world() -> Iterator[World]:
    with moto_world() as w:
        yield w


def make(world: World, **recovery: Any) -> Harness:
    return Harness(world, recovery_config(world, **recovery), MemoryStateStore(), real_now_clock())


@pytest.fixture
def h(world: World, fake_checks: Script) -> Harness:
    return make(world)


def start(h: Harness, **kw: Any) -> dict[str, Any]:
    return runbook.start(h.rctx(**kw), h.store.get(TARGET), reason="hive CRITICAL (2 consecutive)").report


def advance(h: Harness, **kw: Any) -> dict[str, Any]:
    return runbook.advance(h.rctx(**kw), h.store.get(TARGET)).report


def incident(h: Harness) -> dict[str, Any]:
    inc = h.store.get(TARGET).incident
    assert inc is not None
    return inc


def finish_setup(world: World) -> str:
    [new] = new_clusters(world)
    set_steps(new, "COMPLETED")
    return new


def _describe(world: World, cid: str) -> dict[str, Any]:
    return dict(world.emr().describe_cluster(ClusterId=cid)["Cluster"])


def _groups(world: World, cid: str) -> list[dict[str, Any]]:
    groups = world.emr().list_instance_groups(ClusterId=cid)["InstanceGroups"]
    keep = ("Name", "Market", "InstanceGroupType", "BidPrice", "InstanceType", "RequestedInstanceCount", "Configurations")
    out = [{k: g.get(k) for k in keep} | {"Ebs": [d["VolumeSpecification"] for d in g.get("EbsBlockDevices", [])]}
           for g in groups]
    return sorted(out, key=lambda g: str(g["Name"]))


def _steps(world: World, cid: str) -> list[tuple[str, str, dict[str, Any]]]:
    steps = world.emr().list_steps(ClusterId=cid)["Steps"]
    return [(s["Name"], s["ActionOnFailure"], s["Config"]) for s in reversed(steps)]


# ---------------------------------------------------------------------------- the happy paths

def test_replace_relaunches_an_identical_cluster_repoints_and_retires_the_old(h: Harness, world: World) -> None:
    with CallLog(world.clients) as log:
        report = start(h)
        assert report["phase"] == "WAIT_READY" and report["status"] == "CRITICAL"
        [new] = new_clusters(world)
        assert incident(h)["new"]["cluster_id"] == new  # persisted before anything waits on it
        assert advance(h)["phase"] == "WAIT_READY"  # setup steps still running
        finish_setup(world)
        report = advance(h)
    assert report["phase"] == "DONE" and report["status"] == "OK", report["summary"]

    old_d, new_d = _describe(world, world.cluster_id), _describe(world, new)
    assert {k: v for k, v in new_d.items() if k not in VOLATILE} == {k: v for k, v in old_d.items() if k not in VOLATILE}
    tags = {t["Key"]: t["Value"] for t in new_d["Tags"]}
    inc = incident(h)
    assert tags == {"team": "rc", "env": "test", INCIDENT_TAG: inc["id"], "sentinel:target": TARGET,
                    "sentinel:replaces": world.cluster_id}
    assert _groups(world, new) == _groups(world, world.cluster_id)
    assert world.emr().list_bootstrap_actions(ClusterId=new)["BootstrapActions"] == \
        world.emr().list_bootstrap_actions(ClusterId=world.cluster_id)["BootstrapActions"]
    assert _steps(world, new) == _steps(world, world.cluster_id)  # setup steps re-submitted, in order
    assert [s[0] for s in _steps(world, new)] == ["enable ssl", "warm metastore"]
    assert new_d["Configurations"][0]["Properties"]["javax.jdo.option.ConnectionPassword"] == METASTORE_PASSWORD

    master = world.master_of(new)
    assert world.tg_targets() == [master["Ec2InstanceId"]]
    assert world.elb_instances() == [master["Ec2InstanceId"]]
    assert world.record_value() == master["PrivateDnsName"]
    assert _describe(world, world.cluster_id)["Status"]["State"] == "TERMINATED"
    assert log.count("RunJobFlow") == 1 and log.count("TerminateJobFlows") == 1
    assert h.verify.calls == [(["hive"], master["PrivateDnsName"]), (["hive"], None)]

    state = h.store.get(TARGET)
    assert state.consecutive_failures == 0 and len(state.recoveries) == 1 and state.escalated is None
    assert not runbook.is_active(state) and inc["phase"] == "DONE" and inc["ttr_s"] is not None
    assert [t["phase"] for t in inc["timeline"]] == ["SNAPSHOT", "LAUNCH", "WAIT_READY", "VERIFY_NEW", "REPOINT",
                                                     "VERIFY_PATH", "RETIRE_OLD", "DONE"]
    assert h.sent() == [("page", "recovery-started"), ("info", "recovery-launch"), ("info", "recovery-wait_ready"),
                        ("info", "recovery-repoint"), ("page", "recovery-succeeded")]
    pages = world.pages()  # the info topic is not configured: only pages reach SNS
    assert [json.loads(json.dumps(p))["MessageAttributes"]["kind"]["Value"] for p in pages] == \
        ["recovery-started", "recovery-succeeded"]
    assert "sentinel silence --target prod-hive --for 2h" in pages[0]["Message"]
    assert "time to recover" in pages[1]["Message"]
    names = h.metric_names()
    assert names.count("RecoveryStarted") == 1 and names.count("RecoverySucceeded") == 1
    assert "TimeToRecoverSeconds" in names and names.count("RecoveryPhase") == 8
    kinds = [e.kind for e in h.store.events(TARGET, 100)]
    assert kinds.count("recovery") >= 8 and "recovery-wait" in kinds


def test_terminate_first_retires_the_old_cluster_before_launching(world: World, fake_checks: Script) -> None:
    h = make(world, strategy="terminate_first")
    old_master_broken(h)  # the failure is re-confirmed right before the old cluster is terminated
    report = start(h)
    assert report["phase"] == "WAIT_READY"
    assert [t["to"] for t in report["transitions"]] == ["RETIRE_OLD", "LAUNCH", "WAIT_READY"]
    assert _describe(world, world.cluster_id)["Status"]["State"] == "TERMINATED"
    new = finish_setup(world)
    report = advance(h)
    assert report["phase"] == "DONE", report["summary"]
    assert [t["phase"] for t in incident(h)["timeline"]] == ["SNAPSHOT", "RETIRE_OLD", "LAUNCH", "WAIT_READY",
                                                             "VERIFY_NEW", "REPOINT", "VERIFY_PATH", "DONE"]
    master = world.master_of(new)
    assert world.tg_targets() == [master["Ec2InstanceId"]] and world.record_value() == master["PrivateDnsName"]


def test_retire_old_keep_leaves_the_old_cluster_running_and_tagged(world: World, fake_checks: Script) -> None:
    h = make(world, retire_old="keep")
    start(h)
    finish_setup(world)
    assert advance(h)["phase"] == "DONE"
    old = _describe(world, world.cluster_id)
    assert old["Status"]["State"] == "WAITING"
    assert {"Key": "sentinel:retired-by", "Value": incident(h)["id"]} in old["Tags"]
    # two active clusters share the name now; the kept one is no longer "the" cluster
    [new] = new_clusters(world)
    current = find_cluster(world.emr(), ClusterRef(name=CLUSTER_NAME))
    assert current is not None and current["Id"] == new


def test_old_cluster_is_retired_only_after_the_dns_ttl(world: World, fake_checks: Script) -> None:
    h = make(world, routing={"route53": {"zone_id": world.zone_id, "record": "hive.internal.example.com", "ttl": 60}})
    start(h)
    finish_setup(world)
    report = advance(h)
    assert report["phase"] == "RETIRE_OLD" and "60 s" in report["summary"]
    assert _describe(world, world.cluster_id)["Status"]["State"] == "WAITING"
    h.clock.advance(seconds=61)
    assert advance(h)["phase"] == "DONE"
    assert _describe(world, world.cluster_id)["Status"]["State"] == "TERMINATED"


def test_termination_protected_old_cluster_is_unprotected_only_when_allowed(fake_checks: Script) -> None:
    with moto_world(protected=True) as world:
        h = make(world, allow_termination_protected=True)
        with CallLog(world.clients) as log:
            start(h)
            finish_setup(world)
            assert advance(h)["phase"] == "DONE"
        assert _describe(world, world.cluster_id)["Status"]["State"] == "TERMINATED"
        assert log.count("SetTerminationProtection") == 1
        assert _describe(world, new_clusters(world)[0])["TerminationProtected"] is True  # copied from the old one


def test_termination_protected_old_cluster_escalates_after_the_new_one_serves(fake_checks: Script) -> None:
    with moto_world(protected=True) as world:
        h = make(world)
        start(h)
        new = finish_setup(world)
        report = advance(h)
        assert report["phase"] == "ESCALATED" and report["status"] == "WARNING"
        state = h.store.get(TARGET)
        assert state.escalated and "termination-protected" in state.escalated["reason"]
        assert _describe(world, world.cluster_id)["Status"]["State"] == "WAITING"  # a person decides
        assert world.tg_targets() == [world.master_of(new)["Ec2InstanceId"]]  # no rollback: the new one serves
        assert h.sent()[-1] == ("page", "recovery-escalated")


def test_terminate_first_refuses_a_protected_cluster_before_changing_anything(fake_checks: Script) -> None:
    with moto_world(protected=True) as world:
        h = make(world, strategy="terminate_first")
        report = start(h)
        assert report["phase"] == "ESCALATED"
        assert incident(h)["failed"]["phase"] == "SNAPSHOT"
        assert new_clusters(world) == [] and _describe(world, world.cluster_id)["Status"]["State"] == "WAITING"


# ---------------------------------------------------------------------------- failures and rollback

def _assert_routing_untouched(world: World) -> None:
    assert world.tg_targets() == [world.master_instance]
    assert world.elb_instances() == [world.master_instance]
    assert world.record_value() == world.master_dns


def test_launch_timeout_terminates_the_new_cluster_and_escalates(h: Harness, world: World) -> None:
    start(h)
    [new] = new_clusters(world)
    h.clock.advance(minutes=44)
    assert advance(h)["phase"] == "WAIT_READY"
    h.clock.advance(minutes=2)
    report = advance(h)
    assert report["phase"] == "ESCALATED" and report["status"] == "CRITICAL"
    inc = incident(h)
    assert inc["failed"]["phase"] == "WAIT_READY" and "launch_timeout_min 45" in inc["failed"]["error"]
    assert _describe(world, new)["Status"]["State"] == "TERMINATED"
    assert _describe(world, world.cluster_id)["Status"]["State"] == "WAITING"
    _assert_routing_untouched(world)
    state = h.store.get(TARGET)
    assert state.escalated == {"at": inc["finished_at"], "reason": inc["failed"]["error"], "incident": inc["id"]}
    assert [k for _, k in h.sent()][-2:] == ["recovery-failed", "recovery-escalated"]
    body = [p for p in world.pages() if p["MessageAttributes"]["kind"]["Value"] == "recovery-escalated"][0]["Message"]
    assert "sentinel ack --target prod-hive" in body and "WAIT_READY" in body
    assert "RecoveryFailed" in h.metric_names()


def test_failed_setup_step_fails_the_launch(h: Harness, world: World) -> None:
    start(h)
    [new] = new_clusters(world)
    set_steps(new, "COMPLETED")
    set_steps(new, "FAILED", names=["enable ssl"])
    report = advance(h)
    assert report["phase"] == "ESCALATED"
    assert "enable ssl (FAILED)" in incident(h)["failed"]["error"]
    assert _describe(world, new)["Status"]["State"] == "TERMINATED"


def test_new_cluster_that_dies_fails_the_launch(h: Harness, world: World) -> None:
    start(h)
    [new] = new_clusters(world)
    set_cluster_state(new, "TERMINATED_WITH_ERRORS")
    assert advance(h)["phase"] == "ESCALATED"
    assert "TERMINATED_WITH_ERRORS" in incident(h)["failed"]["error"]


def test_unhealthy_new_master_is_never_put_behind_the_load_balancer(h: Harness, world: World) -> None:
    start(h)
    new = finish_setup(world)
    new_dns = world.master_of(new)["PrivateDnsName"]
    h.verify.by_host[new_dns] = Status.CRITICAL
    report = advance(h)
    assert report["phase"] == "VERIFY_NEW" and "fails" in report["summary"]
    h.clock.advance(minutes=21)
    assert advance(h)["phase"] == "ESCALATED"
    assert _describe(world, new)["Status"]["State"] == "TERMINATED"  # never became healthy
    _assert_routing_untouched(world)
    assert all(host == new_dns for _, host in h.verify.calls)


def test_failing_path_after_repoint_moves_traffic_back_to_the_old_master(h: Harness, world: World) -> None:
    start(h)
    new = finish_setup(world)
    h.verify.by_host[None] = Status.CRITICAL
    assert advance(h)["phase"] == "VERIFY_PATH"
    assert world.record_value() == world.master_of(new)["PrivateDnsName"]
    h.clock.advance(minutes=21)
    report = advance(h)
    assert report["phase"] == "ESCALATED"
    _assert_routing_untouched(world)  # re-pointed back, old master registered again
    inc = incident(h)
    assert inc["rollback"] == ["repoint_back", "terminate_new"]
    assert _describe(world, new)["Status"]["State"] == "WAITING"  # it passed VERIFY_NEW: kept for a person
    assert _describe(world, world.cluster_id)["Status"]["State"] == "WAITING"


def test_kerberos_cluster_cannot_be_cloned_and_nothing_is_launched(fake_checks: Script) -> None:
    request = json.loads(json.dumps(SEED_REQUEST))
    request["KerberosAttributes"] = {"Realm": "EC2.INTERNAL", "KdcAdminPassword": "kdc-secret"}
    with moto_world(request=request) as world:
        h = make(world)
        report = start(h)
        assert report["phase"] == "ESCALATED"
        inc = incident(h)
        assert "KdcAdminPassword" in inc["failed"]["error"] and "kdc-secret" not in json.dumps(inc)
        assert new_clusters(world) == []


# ---------------------------------------------------------------------------- guardrails

def test_transient_errors_are_waited_out_and_spend_nothing(h: Harness, world: World) -> None:
    start(h)
    finish_setup(world)
    with FailCalls(world.clients, "emr", "ListSteps", times=2):
        report = advance(h)
        assert report["phase"] == "WAIT_READY" and "transient: retried on the next tick" in report["waiting"]
        assert incident(h)["transient_errors"] == 0  # a transient AWS answer is not counted toward failing
        assert advance(h)["phase"] == "WAIT_READY"
        assert advance(h)["phase"] == "DONE"
    assert len(h.store.get(TARGET).recoveries) == 1


def test_persistent_throttling_ends_in_rollback_after_twice_the_stall_limit(h: Harness, world: World) -> None:
    start(h)
    [new] = new_clusters(world)
    with FailCalls(world.clients, "emr", "ListSteps", times=999):
        for _ in range(10):  # many failing ticks within the limit: still waiting
            assert advance(h)["phase"] == "WAIT_READY"
            h.clock.advance(minutes=10)
        h.clock.advance(minutes=20)  # WAIT_READY's stall limit is 45 + 10 min: twice that is 110 min
        assert advance(h)["phase"] == "ESCALATED"
    assert "ThrottlingException" in incident(h)["failed"]["error"]
    assert _describe(world, new)["Status"]["State"] == "TERMINATED"


def test_budget_is_double_checked_at_start(world: World, fake_checks: Script) -> None:
    with freeze_time("2026-11-23 06:00:00", tick=True) as frozen:
        h = make(world)
        h.clock = SystemClock()  # type: ignore[assignment]
        state = h.store.get(TARGET)
        earlier = iso(SystemClock().now() - timedelta(hours=1))
        h.store.put(TARGET, state.__class__(recoveries=[earlier]), lease=None, now=SystemClock().now())
        with pytest.raises(runbook.RecoveryUnavailable, match="budget exhausted"):
            start(h)
        assert new_clusters(world) == []
        frozen.tick(timedelta(hours=5, minutes=1))
        assert start(h)["phase"] == "WAIT_READY"
        assert len(h.store.get(TARGET).recoveries) == 2


def test_escalation_blocks_automation_until_ack(world: World, fake_checks: Script) -> None:
    h = make(world, limits={"max_recoveries": 3, "window_hours": 6, "launch_timeout_min": 45})
    start(h)
    h.clock.advance(minutes=50)
    assert advance(h)["phase"] == "ESCALATED"
    with pytest.raises(runbook.RecoveryUnavailable, match="sentinel ack"):
        start(h)
    from checks.base import CheckResult

    critical = [CheckResult("hive", "fake", Status.CRITICAL, "down"), CheckResult("dns", "fake", Status.OK, "ok")]
    state = h.store.get(TARGET)
    state.consecutive_failures, state.streaks = 5, {"hive": 5}
    decision = policy.evaluate(h.config.targets[0], critical, state, h.clock.now())
    assert not decision.recover and any("escalated" in b for b in decision.blocked_by)

    svc = services(h.config, store=h.store, clients=world.clients, clock=h.clock)
    assert h.lease is not None
    h.store.release_lease(h.lease)  # the last tick is over (an operator command waits for its lease)
    rep = actions.ack(new_invocation(svc, requested_by="alice"), TARGET)
    assert rep.data and rep.data["was_escalated"]
    state = h.store.get(TARGET)
    assert state.escalated is None and state.incident is None
    assert start(h)["phase"] == "WAIT_READY"  # automation resumed


def test_silence_pauses_a_running_recovery(h: Harness, world: World) -> None:
    start(h)
    svc = services(h.config, store=h.store, clients=world.clients, clock=h.clock)
    assert h.lease is not None
    h.store.release_lease(h.lease)  # the last tick is over (an operator command waits for its lease)
    actions.silence(new_invocation(svc, requested_by="bob"), TARGET, "2h", "taking over")
    finish_setup(world)
    version = h.store.get(TARGET).version
    report = advance(h)
    assert report["phase"] == "WAIT_READY" and "paused" in report["summary"] and "taking over" in report["summary"]
    assert h.store.get(TARGET).version == version
    h.clock.advance(hours=2, minutes=1)
    assert advance(h)["phase"] == "DONE"


def test_a_stale_lease_stops_the_runbook_before_it_changes_anything(h: Harness, world: World) -> None:
    stale = h.rctx()
    h.new_lease()  # another invocation took over
    result = runbook.start(stale, h.store.get(TARGET), reason="x")
    assert result.report["status"] == "UNKNOWN" and "not started" in result.report["summary"]
    assert new_clusters(world) == [] and h.store.get(TARGET).incident is None


def test_advance_stops_when_another_invocation_moved_the_state(h: Harness, world: World) -> None:
    start(h)
    finish_setup(world)
    ctx = h.rctx()
    old_state = h.store.get(TARGET)
    h.store.put(TARGET, old_state, lease=ctx.lease, now=h.clock.now())  # someone else wrote meanwhile
    report = runbook.advance(ctx, old_state).report
    assert report["stopped"] and "another invocation" in report["stopped"]
    assert len(new_clusters(world)) == 1 and world.tg_targets() == [world.master_instance]


# ---------------------------------------------------------------------------- dry run, plan, specs

def test_dry_run_records_the_plan_and_changes_nothing(world: World, fake_checks: Script) -> None:
    h = make(world, dry_run=True)
    h.dry_run = True
    with CallLog(world.clients) as log:
        report = start(h)
        report2 = start(h)
    assert report["phase"] == "DRY_RUN" and report["dry_run"] and report["status"] == "CRITICAL"
    calls = [c["call"] for c in report["plan"]["calls"] if c["mutating"]]
    assert calls == ["emr.add_tags", "emr.run_job_flow", "elbv2.register_targets", "elbv2.deregister_targets",
                     "elb.register_instances_with_load_balancer", "elb.deregister_instances_from_load_balancer",
                     "route53.change_resource_record_sets", "emr.terminate_job_flows"]
    assert log.mutating() == [] and new_clusters(world) == []
    _assert_routing_untouched(world)
    state = h.store.get(TARGET)
    assert state.incident is None and state.recoveries == []
    assert [e.kind for e in h.store.events(TARGET)] == ["dry-run", "dry-run"]
    assert [k for _, k in h.sent()] == ["recovery-dry-run"]  # once per failure episode
    assert report2["plan"]["ok"]


def test_plan_prints_every_call_with_parameters(world: World, fake_checks: Script, capsys: Any) -> None:
    h = make(world)
    svc = services(h.config, store=h.store, clients=world.clients, clock=h.clock)
    assert print_plan(svc, TARGET, as_json=False) == 0
    out = capsys.readouterr().out
    assert "CHANGE emr.run_job_flow" in out and '"ReleaseLabel": "emr-6.15.0"' in out
    assert "CHANGE emr.terminate_job_flows" in out and world.cluster_id in out
    assert "read   emr.describe_cluster" in out and "check  sentinel.run_checks" in out
    assert "Not copied:" in out and "HDFS and instance-local data" in out
    assert METASTORE_PASSWORD not in out and "****" in out
    assert print_plan(svc, TARGET, as_json=True) == 0
    plan = json.loads(capsys.readouterr().out)
    assert plan["ok"] and plan["final_phase"] == "DONE"
    assert set(plan["calls_by_phase"]) == {"SNAPSHOT", "LAUNCH", "WAIT_READY", "REPOINT", "VERIFY_PATH", "RETIRE_OLD"}
    assert new_clusters(world) == [] and h.store.get(TARGET).version == 0


def test_plan_exits_1_when_there_is_nothing_to_relaunch(world: World, fake_checks: Script, capsys: Any) -> None:
    cfg = recovery_config(world, cluster_name="NO.SUCH.CLUSTER")
    svc = services(cfg, store=MemoryStateStore(), clients=world.clients)
    assert print_plan(svc, TARGET, as_json=False) == 1
    assert "nothing to clone" in capsys.readouterr().out
    assert print_plan(svc, "nope", as_json=False) == 2


def test_clone_of_a_dead_cluster_uses_the_last_known_good_spec(h: Harness, world: World) -> None:
    ctx = h.rctx()
    first = capture_last_known_good(ctx)
    assert first["captured"] and first["cluster_id"] == world.cluster_id
    assert capture_last_known_good(ctx, cluster_id=world.cluster_id) == {
        "captured": False, "reason": "fresh", "cluster_id": world.cluster_id, "calls": 0}
    world.emr().terminate_job_flows(JobFlowIds=[world.cluster_id])  # the cluster died
    report = start(h)
    assert report["phase"] == "WAIT_READY"
    inc = incident(h)
    assert inc["spec_source"] == "last_known_good" and "last known good" in inc["notes"][0]
    [new] = new_clusters(world)
    assert _steps(world, new) == _steps(world, world.cluster_id)


def test_clone_of_a_dead_cluster_without_a_captured_spec_clones_the_ended_cluster(h: Harness, world: World) -> None:
    world.emr().terminate_job_flows(JobFlowIds=[world.cluster_id])
    start(h)
    inc = incident(h)
    assert inc["spec_source"] == "clone" and "TERMINATED" in inc["notes"][0]
    assert inc["old"]["active"] is False
    finish_setup(world)
    assert advance(h)["phase"] == "DONE"
    assert world.tg_targets() == [world.master_of(new_clusters(world)[0])["Ec2InstanceId"]]


def test_spec_file_source(world: World, fake_checks: Script, tmp_path: Path) -> None:
    request = json.loads(json.dumps(SEED_REQUEST))
    request["Name"] = CLUSTER_NAME
    request["Instances"] = {"InstanceGroups": request["Instances"]["InstanceGroups"][:2], "Ec2KeyName": "from-file"}
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(request))
    h = make(world, spec={"source": "file", "path": str(path)})
    report = start(h)
    assert len(new_clusters(world)) == 1, report["summary"]
    [new] = new_clusters(world)
    d = _describe(world, new)
    assert d["Ec2InstanceAttributes"]["Ec2KeyName"] == "from-file"
    assert incident(h)["spec_source"] == f"file {path}"


def test_last_known_good_source_without_a_capture_fails_at_snapshot(world: World, fake_checks: Script) -> None:
    h = make(world, spec={"source": "last_known_good"})
    assert start(h)["phase"] == "ESCALATED"
    assert "no last known good spec" in incident(h)["failed"]["error"]


# ---------------------------------------------------------------------------- calls and permissions

def test_aws_calls_per_phase_and_iam_coverage(h: Harness, world: World) -> None:
    with CallLog(world.clients, event="before-call") as log1:
        first = start(h)
    finish_setup(world)
    with CallLog(world.clients, event="before-call") as log2:
        second = advance(h)
    inc = incident(h)
    # SNAPSHOT 11 = ListClusters, DescribeCluster, ListInstanceGroups, ListBootstrapActions, ListSteps,
    #   GetManagedScalingPolicy, GetAutoTerminationPolicy, ListInstances, DescribeTargetHealth,
    #   DescribeLoadBalancers, ListResourceRecordSets
    # LAUNCH 10 = ListClusters + DescribeCluster x1 (same-name clusters), the claim (DescribeCluster, AddTags,
    #   DescribeCluster after the settle), DescribeCluster of the source cluster (its secret property is
    #   stored as a reference, opened at send), RunJobFlow, then the same 3 again
    # WAIT_READY 2 per waiting tick (DescribeCluster, ListSteps) + ListInstances when ready
    # REPOINT 7 = DescribeTargetHealth, RegisterTargets, DeregisterTargets, DescribeLoadBalancers,
    #   RegisterInstancesWithLoadBalancer, DeregisterInstancesFromLoadBalancer, ChangeResourceRecordSets
    # VERIFY_PATH 2 = DescribeTargetHealth, GetChange; RETIRE_OLD 5 = DescribeCluster, TerminateJobFlows,
    #   then the sweep before DONE: ListClusters + DescribeCluster x2 (same-name clusters)
    assert inc["calls"] == {"SNAPSHOT": 11, "LAUNCH": 10, "WAIT_READY": 2 + 3, "REPOINT": 7, "VERIFY_PATH": 2,
                            "RETIRE_OLD": 5}
    assert sum(inc["calls"].values()) == len(log1.calls) + len(log2.calls)
    recorded = {f"{IAM_PREFIX[r['call'].split('.')[0]]}:{_api_name(r['call'].split('.')[1])}"
                for r in first["calls"] + second["calls"]}
    assert recorded <= all_actions()


def test_sentinel_plan_command(world: World, fake_checks: Script, tmp_path: Path, capsys: Any) -> None:
    import yaml

    from monitor.cli import main

    path = tmp_path / "sentinel.yaml"
    path.write_text(yaml.safe_dump(recovery_raw(world)))
    assert main(["plan", "-c", str(path), "--target", TARGET]) == 0
    out = capsys.readouterr().out
    assert "Plan OK" in out and "CHANGE route53.change_resource_record_sets" in out
    assert "state unreadable" in out  # no state table in this account: planned anyway, said so
    assert main(["plan", "-c", str(path), "--target", TARGET, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["ok"] is True


def test_a_concurrent_duplicate_launch_leaves_exactly_one_cluster(h: Harness, world: World) -> None:
    """Another invocation (its lease expired mid-call) launched for the same incident just
    before our RunJobFlow: both see two tagged clusters and keep the same, oldest one."""
    import boto3

    other = boto3.client("emr", region_name="us-east-1")
    seen: list[str] = []

    def race(params: dict[str, Any]) -> None:
        if not seen:
            seen.append(other.run_job_flow(**params)["JobFlowId"])

    with BeforeCall(world.clients.changing_client("emr"), "RunJobFlow", race):
        start(h)
    states = {c["Id"]: c["Status"]["State"] for c in world.clusters() if c["Id"] != world.cluster_id}
    assert len(states) == 2 and sorted(states.values()) == ["TERMINATED", "WAITING"]
    # the survivor is the oldest (ties broken by id): seen[0] unless both got the same millisecond
    assert incident(h)["new"]["cluster_id"] == next(k for k, v in states.items() if v == "WAITING")
    assert seen[0] in states
    assert any("duplicate launch" in n for n in incident(h)["notes"])


def test_verify_path_polls_a_new_target_until_healthy(h: Harness, world: World, monkeypatch: Any) -> None:
    from recover import claim, phases

    sleeps: list[float] = []
    monkeypatch.setattr(phases, "SLEEP", sleeps.append)
    start(h)
    new = finish_setup(world)
    instance = world.master_of(new)["Ec2InstanceId"]
    answers = ["initial", "initial"]

    def health(params: dict[str, Any]) -> dict[str, Any] | None:
        targets = params.get("Targets") or []
        if not targets or targets[0]["Id"] != instance or not answers:
            return None
        return {"TargetHealthDescriptions": [{"Target": targets[0], "TargetHealth": {"State": answers.pop()}}]}

    with BeforeCall(world.clients.client("elbv2"), "DescribeTargetHealth", health):
        assert advance(h)["phase"] == "DONE"
    assert sleeps == [claim.SETTLE_S, phases.PATH_POLL_S, phases.PATH_POLL_S]  # the claim's settle at LAUNCH


def test_abort_rolls_back_and_escalates(h: Harness, world: World) -> None:
    start(h)
    [new] = new_clusters(world)
    result = runbook.abort(h.rctx(), h.store.get(TARGET), reason="wrong cluster")
    assert result.report["phase"] == "ESCALATED"
    assert "aborted" in incident(h)["failed"]["error"]
    assert _describe(world, new)["Status"]["State"] == "TERMINATED"
    _assert_routing_untouched(world)
    with pytest.raises(runbook.RecoveryUnavailable, match="no recovery in progress"):
        runbook.abort(h.rctx(), h.store.get(TARGET), reason="again")
