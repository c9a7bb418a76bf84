"""Phase logic without AWS: verification against the new master (fake run_checks), the
phase order per strategy, what the tick is told, dry-run answers, and secret masking."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import pytest

from checks.base import CheckResult, Deadline, EndpointOverride, Status
from monitor.core.resolve import HostResolver
from monitor.core.state.base import TargetState
from monitor.core.state.memory import MemoryStateStore
from monitor.metrics import MetricsRecorder
from monitor.notify import Notifier
from recover import phases, runbook
from recover.calls import DRY_CLUSTER_ID, AwsCalls
from recover.context import RecoveryContext
from recover.incident import ORDER, Incident, Phase, next_phase
from recover.plan import mask
from recover.run import Fail, Next, Run, Wait
from tests.fakes import FakeClients, FakeClock, Script, fake_config

NEW_DNS = "ip-10-20-30-40.ec2.internal"


class Verify:
    def __init__(self, status: Status) -> None:
        self.status = status
        self.calls: list[tuple[list[str], str | None]] = []
        self.endpoints: list[EndpointOverride | None] = []

    def __call__(self, names: Sequence[str], endpoint: EndpointOverride | None) -> list[CheckResult]:
        self.calls.append((list(names), endpoint.host if endpoint else None))
        self.endpoints.append(endpoint)
        return [CheckResult(n, "fake", self.status, f"{n} {self.status.name}") for n in names]


def make_run(fake_checks: Script, verify: Verify, *, routing: dict[str, Any] | None = None,
             verify_checks: list[str] | None = None, dry_run: bool = False) -> Run:
    cfg = fake_config(recovery={
        "enabled": verify_checks != [], "when": {"checks": ["hive"], "consecutive_failures": 2},
        "routing": routing if routing is not None else {"route53": {"zone_id": "Z1", "record": "hive.example.com"}},
        "retire_old": "keep",
        "verify": {"checks": ["hive"] if verify_checks is None else verify_checks}})
    clock = FakeClock()
    clients = FakeClients()
    rctx = RecoveryContext(
        config=cfg, target=cfg.targets[0], clients=clients, store=MemoryStateStore(), lease=None, clock=clock,
        deadline=Deadline.after(30), resolver=HostResolver({}),
        notifier=Notifier(clients.sns, cfg.notify.page_topic_arn, None), metrics=MetricsRecorder("S", emit=False),
        run_checks=verify)
    inc = Incident.create("prod-hive", "replace", clock.now(), reason="test", requested_by=None, force=False)
    inc.new = {"cluster_id": "j-NEW", "master": {"instance_id": "i-new", "private_dns": NEW_DNS,
                                                  "private_ip": "10.20.30.40"}}
    inc.phase = Phase.VERIFY_NEW.value
    return Run(rctx, TargetState(), inc, persist=False, dry_run=dry_run)


def test_verify_new_runs_the_verify_checks_against_the_new_master(fake_checks: Script) -> None:
    verify = Verify(Status.OK)
    run = make_run(fake_checks, verify)
    outcome = phases.verify_new(run)
    assert isinstance(outcome, Next) and NEW_DNS in outcome.note
    assert verify.calls == [(["hive"], NEW_DNS)]
    assert run.inc.verified_new_at is not None


def test_verify_new_waits_on_a_failing_master_then_fails_after_the_timeout(fake_checks: Script) -> None:
    verify = Verify(Status.CRITICAL)
    run = make_run(fake_checks, verify)
    assert isinstance(phases.verify_new(run), Wait)
    run.rctx.clock.advance(minutes=21)  # type: ignore[attr-defined]
    outcome = phases.verify_new(run)
    assert isinstance(outcome, Fail) and "still failing after 21 min" in outcome.error
    assert run.inc.verified_new_at is None


def test_unknown_is_not_a_pass(fake_checks: Script) -> None:
    run = make_run(fake_checks, Verify(Status.UNKNOWN))
    assert isinstance(phases.verify_new(run), Wait)


def test_verify_path_uses_the_normal_path_when_nothing_to_wait_for(fake_checks: Script) -> None:
    verify = Verify(Status.WARNING)
    run = make_run(fake_checks, verify)
    outcome = phases.verify_path(run)
    assert isinstance(outcome, Next) and verify.calls == [(["hive"], None)]
    assert run.inc.recovered_at is not None


def test_without_verify_checks_nothing_passes_unverified(fake_checks: Script) -> None:
    """Validation refuses such a config for recovery; the phases refuse too (defence in depth)."""
    verify = Verify(Status.OK)
    run = make_run(fake_checks, verify, verify_checks=[])
    outcome = phases.verify_new(run)
    assert isinstance(outcome, Fail) and "unverified" in outcome.error and verify.calls == []
    assert run.inc.verified_new_at is None
    outcome = phases.verify_path(run)
    assert isinstance(outcome, Fail) and run.inc.recovered_at is None


def test_dry_run_never_runs_checks_and_records_them(fake_checks: Script) -> None:
    verify = Verify(Status.CRITICAL)
    run = make_run(fake_checks, verify, dry_run=True)
    assert isinstance(phases.verify_new(run), Next)
    assert verify.calls == []
    [rec] = run.aws.records
    assert rec.op == "run_checks" and rec.params == {"checks": ["hive"], "host_override": NEW_DNS, "port": None}
    assert run.aws.by_phase() == {}  # not an AWS call


@pytest.mark.parametrize("strategy", ["replace", "terminate_first"])
def test_each_strategy_walks_its_phases_to_done(strategy: str) -> None:
    phase, seen = Phase.SNAPSHOT, [Phase.SNAPSHOT]
    while phase is not Phase.DONE:
        phase = next_phase(strategy, phase)
        seen.append(phase)
    assert tuple(seen) == ORDER[strategy]
    assert next_phase(strategy, Phase.FAILED) is Phase.ESCALATED


def test_is_active_only_while_the_runbook_has_work() -> None:
    for phase, active in [("SNAPSHOT", True), ("WAIT_READY", True), ("FAILED", True), ("DONE", False),
                          ("ESCALATED", False)]:
        assert runbook.is_active(TargetState(incident={"id": "x", "phase": phase})) is active
    assert not runbook.is_active(TargetState())


def test_incident_round_trips_through_state_json() -> None:
    inc = Incident.create("prod-hive", "replace", FakeClock().now(), reason="r", requested_by="alice", force=True)
    inc.add_calls({"SNAPSHOT": 3})
    inc.add_calls({"SNAPSHOT": 2, "LAUNCH": 1})
    state = TargetState.from_json(TargetState(incident=inc.to_dict()).to_json(), 1)
    again = Incident.from_dict(state.incident or {})
    assert again == inc and again.calls == {"SNAPSHOT": 5, "LAUNCH": 1}
    assert [p.number for p in Phase][:2] == [1, 2]


def test_dry_run_layer_records_writes_and_answers_reads_about_the_pretend_cluster() -> None:
    aws = AwsCalls(FakeClients(), dry_run=True)
    emr = aws.client("emr")
    assert emr.run_job_flow(Name="X", Instances={}, Steps=[{"Name": "a"}])["JobFlowId"] == DRY_CLUSTER_ID
    assert emr.describe_cluster(ClusterId=DRY_CLUSTER_ID)["Cluster"]["Status"]["State"] == "WAITING"
    assert emr.list_steps(ClusterId=DRY_CLUSTER_ID)["Steps"][0]["Status"]["State"] == "COMPLETED"
    assert [(r.op, r.sent, r.simulated) for r in aws.records] == [
        ("run_job_flow", False, False), ("describe_cluster", False, True), ("list_steps", False, True)]


def test_plan_output_masks_secret_looking_values() -> None:
    shown = mask({"Configurations": [{"Classification": "hive-site", "Properties": {
        "javax.jdo.option.ConnectionPassword": "pw", "hive.server2.port": "10000"}}],
        "Tags": [{"Key": "api-token", "Value": "t"}, {"Key": "team", "Value": "rc"}],
        "not_copied": [{"field": "KerberosAttributes.KdcAdminPassword", "reason": "a secret"}]})
    props = shown["Configurations"][0]["Properties"]
    assert props == {"javax.jdo.option.ConnectionPassword": "****", "hive.server2.port": "10000"}
    assert shown["Tags"] == [{"Key": "api-token", "Value": "****"}, {"Key": "team", "Value": "rc"}]
    assert shown["not_copied"][0]["field"] == "KerberosAttributes.KdcAdminPassword"


def test_start_refuses_without_a_lease_outside_dry_run(fake_checks: Script) -> None:
    run = make_run(fake_checks, Verify(Status.OK))
    with pytest.raises(runbook.RecoveryUnavailable, match="no lease"):
        runbook.start(run.rctx, TargetState(), reason="x")


def test_timeouts_are_measured_from_the_phase_start(fake_checks: Script) -> None:
    run = make_run(fake_checks, Verify(Status.CRITICAL))
    run.rctx.clock.advance(minutes=19)  # type: ignore[attr-defined]
    assert isinstance(phases.verify_new(run), Wait)
    run.inc.phase_started_at = (run.rctx.clock.now() - timedelta(minutes=25)).isoformat()
    assert isinstance(phases.verify_new(run), Fail)
