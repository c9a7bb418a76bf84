"""The destructive path in an unkind world (issue: recovery safety). Each test reproduces what
production does and the first release did not survive: a lease superseded mid-phase, EMR's
ListClusters lagging behind RunJobFlow, botocore resending a changing call, a cluster owned by
another target, a permanent error after the cut-over was verified, a dry-run flip mid-incident,
a replaced record with a long TTL, and a person asking for a recovery the config cannot support."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from checks.base import Status
from monitor.core.errors import ConflictError
from monitor.core.state.base import Event, Lease, TargetState
from monitor.core.state.memory import MemoryStateStore
from recover import runbook
from tests.fakes import Script
from tests.recover_fixtures import (
    TARGET,
    CallLog,
    CrashOnCall,
    FailCalls,
    Harness,
    World,
    both_clients,
    cli_services,
    finish_incident,
    moto_world,
    new_clusters,
    real_now_clock,
    recovery_config,
    recovery_raw,
    seed_world,
    set_steps,
)


@pytest.fixture
def world() -> Iterator[World]:
    with moto_world() as w:
        yield w


def make(world: World, store: MemoryStateStore | None = None, **recovery: Any) -> Harness:
    return Harness(world, recovery_config(world, **recovery), store or MemoryStateStore(), real_now_clock())





def finish(h: Harness, world: World, *, ticks: int = 12, every_min: float = 2) -> dict[str, Any]:
    return finish_incident(h, ticks=ticks, every_min=every_min)


class TakeoverStore(MemoryStateStore):
    """Another invocation takes the lease (ours expired) at the moment this one persists the
    intent of ``call``: the intent write must fail, so the call is never sent."""

    def __init__(self, call: str) -> None:
        super().__init__()
        self.call, self.fired = call, False

    def put(self, target: str, state: TargetState, *, lease: Lease | None, events: list[Event] | None = None,
            now: datetime) -> TargetState:
        if not self.fired and any(e.kind == "intent" and self.call in e.message and "pending" not in e.message
                                  and e.message.startswith("intent") for e in events or []):
            self.fired = True
            self.acquire_lease(target, "the-other-invocation", 600, now + timedelta(days=1, hours=1))
        return super().put(target, state, lease=lease, events=events, now=now)


# ------------------------------------------------------------------ fencing

def test_an_invocation_whose_lease_was_taken_over_never_sends_run_job_flow(world: World, fake_checks: Script) -> None:
    store = TakeoverStore("emr.run_job_flow")
    h = make(world, store)
    with CallLog(world.clients, event="before-call") as log:
        report = h.start()
        assert store.fired and log.count("RunJobFlow") == 0, report
        assert "another invocation" in (report.get("stopped") or "")
        assert not any(c["call"] == "emr.run_job_flow" for c in report["calls"])  # not even recorded as sent
        assert new_clusters(world) == []
        # the invocation that owns the lease now carries on: exactly one cluster in the end
        h.clock.advance(minutes=6)
        done = finish(h, world)
    assert done["phase"] == "DONE"
    assert log.count("RunJobFlow") == 1 and len(new_clusters(world)) == 1


def test_a_lagging_list_clusters_never_makes_a_second_cluster(world: World, fake_checks: Script) -> None:
    """RunJobFlow went out, the invocation died before recording its outcome, and EMR's list
    does not show the cluster yet: the next invocation waits instead of launching again."""
    h = make(world)
    hidden = True

    def lag(parsed: dict[str, Any], model: Any, **_: Any) -> None:
        if hidden and model.name == "ListClusters":
            parsed["Clusters"] = [c for c in parsed.get("Clusters", []) if c["Id"] == world.cluster_id]

    clients = both_clients(world.clients, "emr")
    for c in clients:
        c.meta.events.register("after-call", lag)
    try:
        with CrashOnCall(world.clients, 2, after=True):  # dies right after RunJobFlow (#1 is the claim tag)
            with pytest.raises(BaseException, match="RunJobFlow"):
                h.start()
        assert [i["status"] for i in h.incident()["intents"]] == ["done", "pending"]
        with CallLog(world.clients, event="before-call") as log:
            for minutes in (0, 2, 2):
                h.clock.advance(minutes=minutes)
                report = h.advance()
                assert report["phase"] == "LAUNCH" and "before any resend" in (report["waiting"] or ""), report
            assert log.count("RunJobFlow") == 0
            hidden = False  # the list catches up: the cluster is adopted, not launched again
            h.clock.advance(minutes=2)
            done = finish(h, world)
            assert log.count("RunJobFlow") == 0
    finally:
        for c in clients:
            c.meta.events.unregister("after-call", lag)
    assert done["phase"] == "DONE" and len(new_clusters(world)) == 1


def test_a_changing_call_is_sent_once_even_when_botocore_would_retry(world: World, fake_checks: Script) -> None:
    """A read timeout on RunJobFlow after AWS took it (the answer is lost): botocore's standard
    mode would resend it (3 attempts, three clusters); the client of changing calls sends it
    once, the runbook records 'unknown', and the next tick finds the cluster by its tag."""
    from botocore.exceptions import ReadTimeoutError

    h = make(world)
    sends: list[str] = []

    def timeout(request: Any, **_: Any) -> None:
        if "RunJobFlow" in str(request.headers.get("X-Amz-Target", b"")):
            sends.append("RunJobFlow")
            raise ReadTimeoutError(endpoint_url="https://elasticmapreduce.us-east-1.amazonaws.com")

    for c in both_clients(world.clients, "emr"):
        c.meta.events.register("before-send", timeout)
    try:
        report = h.start()
    finally:
        for c in both_clients(world.clients, "emr"):
            c.meta.events.unregister("before-send", timeout)
    assert sends == ["RunJobFlow"], sends
    [intent] = [i for i in h.incident()["intents"] if i["call"] == "emr.run_job_flow"]  # after the claim tag
    assert intent["status"] == "unknown" and report["phase"] == "LAUNCH"
    with CallLog(world.clients, event="before-call") as log:
        assert h.advance()["phase"] == "WAIT_READY"  # the next tick looks first: adopted, not resent
    assert log.count("RunJobFlow") == 0 and len(new_clusters(world)) == 1
    assert any("adopted" in t["note"] for t in h.incident()["timeline"])


# ------------------------------------------------------------------ ownership and shared resources

def test_a_cluster_owned_by_another_target_is_never_touched(world: World, fake_checks: Script) -> None:
    world.emr().add_tags(ResourceId=world.cluster_id, Tags=[{"Key": "sentinel:target", "Value": "other-hive"}])
    h = make(world)
    with CallLog(world.clients) as log:
        report = h.start()
    assert report["phase"] == "ESCALATED" and log.mutating() == []
    assert "other-hive" in h.incident()["failed"]["error"]
    assert new_clusters(world) == []


def test_validate_rejects_two_targets_on_one_cluster_or_one_routing_resource(world: World, fake_checks: Script) -> None:
    from monitor.config import parse_config
    from monitor.core.errors import ConfigError

    raw = recovery_raw(world)
    second = yaml.safe_load(yaml.safe_dump(raw["targets"][0]))
    second["name"] = "prod-hive-2"
    raw["targets"].append(second)
    with pytest.raises(ConfigError) as err:
        parse_config(raw)
    text = "\n".join(err.value.errors)
    for what in ("targets[1].cluster", "targets[1].recovery.routing.target_group_arn",
                 "targets[1].recovery.routing.load_balancer_name", "targets[1].recovery.routing.route53.record"):
        assert what in text, text


# ------------------------------------------------------------------ a verified cut-over is never undone

def test_a_permanent_error_after_verify_path_escalates_with_traffic_on_the_new_cluster(
        world: World, fake_checks: Script) -> None:
    h = make(world)
    h.start()
    [new] = new_clusters(world)
    set_steps(new, "COMPLETED")
    with FailCalls(world.clients, "emr", "TerminateJobFlows", code="AccessDeniedException", times=10):
        report = finish(h, world)
    assert report["phase"] == "ESCALATED"
    inc = h.incident()
    assert inc["recovered_at"] and inc["failed"] is None and "stay on the new cluster" in inc["escalation"]
    master = world.master_of(new)
    assert world.tg_targets() == [master["Ec2InstanceId"]]
    assert world.elb_instances() == [master["Ec2InstanceId"]]
    assert world.record_value() == master["PrivateDnsName"]
    escalation = [p for p in world.pages() if p["MessageAttributes"]["kind"]["Value"] == "recovery-escalated"]
    assert escalation and "STAYS on the new cluster" in escalation[-1]["Message"]


def test_a_new_master_that_fails_verification_never_gets_traffic(world: World, fake_checks: Script) -> None:
    h = make(world)
    h.start()
    [new] = new_clusters(world)
    set_steps(new, "COMPLETED")
    h.verify.by_host[world.master_of(new)["PrivateDnsName"]] = Status.CRITICAL
    before = (world.tg_targets(), world.elb_instances(), world.record_value())
    report = finish(h, world, every_min=5)
    assert report["phase"] == "ESCALATED"
    assert (world.tg_targets(), world.elb_instances(), world.record_value()) == before
    assert world.emr().describe_cluster(ClusterId=new)["Cluster"]["Status"]["State"] == "TERMINATED"
    assert world.emr().describe_cluster(ClusterId=world.cluster_id)["Cluster"]["Status"]["State"] == "WAITING"


def test_abort_after_the_cut_over_keeps_traffic_and_abort_before_rolls_back(world: World, fake_checks: Script) -> None:
    h = make(world)
    h.start()
    [new] = new_clusters(world)
    h.requested_by = "alice"
    result = runbook.abort(h.rctx(), h.store.get(TARGET), reason="taking over by hand")
    assert result.report["phase"] == "ESCALATED"
    assert world.emr().describe_cluster(ClusterId=new)["Cluster"]["Status"]["State"] == "TERMINATED"
    kinds = [p["MessageAttributes"]["kind"]["Value"] for p in world.pages()]
    assert "recovery-aborted" in kinds and kinds[-1] == "recovery-escalated"


# ------------------------------------------------------------------ no silent incidents

def test_a_dry_run_flip_mid_incident_is_reported_and_pages_once_when_stalled(world: World, fake_checks: Script) -> None:
    h = make(world)
    assert h.start()["phase"] == "WAIT_READY"
    h.config = recovery_config(world, dry_run=True)
    h.dry_run = True  # what the tick passes when recovery.dry_run is true
    report = h.advance()
    assert report.get("frozen") and "recovery.dry_run is true" in report["frozen"] and not report.get("stalled")
    h.clock.advance(minutes=56)  # WAIT_READY's own timeout (45 min) + slack: nobody is advancing it
    report = h.advance()
    assert report.get("stalled")
    h.clock.advance(minutes=10)
    h.advance()
    stalled = [p for p in world.pages() if p["MessageAttributes"]["kind"]["Value"] == "recovery-stalled"]
    assert len(stalled) == 1 and "dry_run" in stalled[0]["Message"]
    assert h.incident()["phase"] == "WAIT_READY"


def test_stall_after_min_pages_a_recovery_paused_by_a_silence(world: World, fake_checks: Script) -> None:
    from monitor.core.clock import iso

    h = make(world, stall_after_min=15)
    h.start()
    state = h.store.get(TARGET)
    until = iso(h.clock.now() + timedelta(hours=2))
    h.store.put(TARGET, TargetState(**{**state.__dict__, "silences": [{"until": until, "reason": "x"}]}),
                lease=None, now=h.clock.now())
    h.clock.advance(minutes=16)
    report = h.advance()
    assert report.get("paused") and report.get("stalled")
    assert [p for p in world.pages() if p["MessageAttributes"]["kind"]["Value"] == "recovery-stalled"]


# ------------------------------------------------------------------ DNS TTL of the replaced record

def test_retire_old_waits_the_ttl_the_replaced_record_had(fake_checks: Script) -> None:
    with moto_world(record_ttl=300) as world:
        h = Harness(world, recovery_config(world), MemoryStateStore(), real_now_clock())
        h.start()
        for cid in new_clusters(world):
            set_steps(cid, "COMPLETED")
        report = h.advance()
        assert report["phase"] == "RETIRE_OLD" and "300 s" in (report["waiting"] or ""), report
        h.clock.advance(seconds=301)
        assert h.advance()["phase"] == "DONE"


# ------------------------------------------------------------------ recovery is a validated capability

def test_force_recover_of_a_monitor_only_target_is_refused_before_any_aws_call(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from monitor.cli import main
    from tests.fakes import NoClients

    raw = {"version": 1, "region": "us-east-1", "state_table": "sentinel-state",
           "notify": {"page_topic_arn": "arn:aws:sns:us-east-1:123456789012:pages"},
           "targets": [{"name": "prod-hive", "cluster": {"name": "RC.HIVE"},
                        "checks": [{"type": "emr_state", "name": "cluster-state"}]}]}
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(raw))
    made: list[str] = []

    def factory(config: Any, args: Any) -> Any:
        from tests.fakes import services

        made.append("services")
        return services(config, clients=NoClients())  # any AWS client use would raise

    code = main(["recover", "-c", str(path), "--target", "prod-hive", "--force", "--yes"], services_factory=factory)
    err = capsys.readouterr()
    assert code == 2
    assert "recovery.when" in err.out + err.err and "recovery.verify.checks" in err.out + err.err


def test_the_conflict_error_of_a_superseded_lease_is_what_stops_the_runbook() -> None:
    """The state store decides (fencing token), not the local clock: a lease taken over by
    another owner makes every write of the old holder fail, whatever its clock says."""
    store = MemoryStateStore()
    now = datetime.now().astimezone()
    mine = store.acquire_lease(TARGET, "me", 1, now)
    store.acquire_lease(TARGET, "other", 600, now + timedelta(seconds=2))
    with pytest.raises(ConflictError):
        store.put(TARGET, TargetState(), lease=mine, now=now)


_ = seed_world  # the world builder these tests use through moto_world


# ------------------------------------------------------------------ sweep, orphans, abort from outside

def test_the_sweep_terminates_an_extra_cluster_of_the_incident_before_done(world: World, fake_checks: Script) -> None:
    """A duplicate the LAUNCH phase could not see (ListClusters lag) is found and terminated
    before DONE: exactly the verified cluster remains."""
    h = make(world)
    h.start()
    inc = h.incident()
    extra = world.emr().run_job_flow(**{**inc["spec"], "Configurations": []})["JobFlowId"]  # same tags
    report = finish(h, world)
    assert report["phase"] == "DONE"
    assert world.emr().describe_cluster(ClusterId=extra)["Cluster"]["Status"]["State"] == "TERMINATED"
    assert world.emr().describe_cluster(ClusterId=h.incident()["new"]["cluster_id"])["Cluster"]["Status"]["State"] \
        == "WAITING"
    assert any(n.startswith(f"sweep: {extra}") for n in h.incident()["notes"])


def test_an_incident_whose_target_left_the_config_is_reported_and_paged_once(world: World, fake_checks: Script) -> None:
    from checks.base import Deadline
    from monitor.actions import status
    from monitor.cycle import run_tick
    from monitor.runtime import new_invocation
    from tests.fakes import services

    h = make(world)
    h.start()
    raw = recovery_raw(world)
    raw["targets"][0]["name"] = "other-hive"
    raw["targets"][0]["cluster"] = {"name": "OTHER"}
    from monitor.config import parse_config

    svc = services(parse_config(raw), store=h.store, clients=world.clients, clock=h.clock)
    fake_checks.set("hive", Status.OK)
    h.clock.advance(days=3)
    reports = [run_tick(new_invocation(svc), deadline=Deadline.after(30)) for _ in range(2)]
    assert all(r.data and TARGET in r.data["orphaned_incidents"] for r in reports)
    assert all(any("no longer in the config" in e for e in r.errors) for r in reports)
    orphaned = [p for p in world.pages() if p["MessageAttributes"]["kind"]["Value"] == "incident-orphaned"]
    assert len(orphaned) == 1 and "sentinel abort" in orphaned[0]["Message"]
    shown = status(new_invocation(svc), None)
    assert shown.data and TARGET in shown.data["orphaned_incidents"]


def test_abort_from_the_cli_ends_the_incident_under_the_lease(world: World, fake_checks: Script, tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    from monitor.cli import main

    h = make(world)
    h.start()
    [new] = new_clusters(world)
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(recovery_raw(world)))
    h.clock.advance(days=3)  # the harness's last invocation and its lease are long gone

    factory = cli_services(world, h.store, h.clock)
    code = main(["abort", "-c", str(path), "--target", TARGET, "--reason", "taking over", "--yes", "--json"],
                services_factory=factory)
    out = capsys.readouterr().out
    assert code in (1, 0), out
    inc = h.incident()
    assert inc["phase"] == "ESCALATED" and "taking over" in inc["failed"]["error"]
    assert world.emr().describe_cluster(ClusterId=new)["Cluster"]["Status"]["State"] == "TERMINATED"
    code = main(["abort", "-c", str(path), "--target", TARGET, "--reason", "again", "--yes"], services_factory=factory)
    shown = capsys.readouterr()
    assert code == 2 and "no recovery in progress" in shown.out + shown.err
