"""Operator commands tell the truth, the sweep runs before every ESCALATED, and the failure is
re-confirmed before the old cluster is destroyed (issue 19, items 4-6).

- ``abort``, ``recover``, ``silence``, ``unsilence``, ``ack`` wait for the target's lease (a
  queued advance holds it for about a second) and then act, or exit 3 with ``busy``: never
  "ok" when nothing changed (CLI and Lambda);
- an abort after a verified cut-over terminates the incident's other clusters (a duplicate
  launched by a lost resend), and keeps the verified one;
- ``terminate_first`` runs the trigger checks once more right before terminating the old
  cluster: healthy again → DONE "aborted: recovered on its own", nothing destroyed, paged.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from checks.base import Deadline, Status
from monitor import actions, handler
from monitor.cli import main
from monitor.core.errors import ConflictError
from monitor.core.state.base import Event, Lease, StateStore, TargetState
from monitor.core.state.memory import MemoryStateStore
from monitor.cycle import run_tick
from monitor.runtime import Services, new_invocation
from recover import runbook
from recover.phases import RECOVERED_ON_ITS_OWN
from tests.fakes import FakeClock, Script, fake_config, services
from tests.recover_fixtures import (
    TARGET,
    CallLog,
    FailCalls,
    Harness,
    World,
    cli_services,
    moto_world,
    new_clusters,
    old_master_broken,
    real_now_clock,
    recovery_config,
    recovery_raw,
    set_steps,
)
from tests.unit.test_doors import Ctx, Warm

BUSY = "busy: another invocation holds the lease; try again"
HOLDER = "queued-advance"


@pytest.fixture
def world() -> Iterator[World]:
    with moto_world() as w:
        yield w


class Waits:
    """``monitor.actions.LEASE_SLEEP`` for tests: no real sleeping; records each wait, and the
    holder releases the lease during wait number ``free_at`` (None: it never does)."""

    def __init__(self, store: StateStore, lease: Lease, free_at: int | None = None) -> None:
        self.store, self.lease, self.free_at = store, lease, free_at
        self.slept: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.slept.append(seconds)
        if self.free_at is not None and len(self.slept) == self.free_at:
            self.store.release_lease(self.lease)


def hold(store: StateStore, clock: Any, monkeypatch: pytest.MonkeyPatch, *, free_at: int | None = None) -> Waits:
    """Another invocation (a queued advance) holds the target's lease now."""
    lease = store.acquire_lease(TARGET, HOLDER, 600, clock.now())
    waits = Waits(store, lease, free_at)
    monkeypatch.setattr(actions, "LEASE_SLEEP", waits)
    return waits


def pages(world: World) -> list[tuple[str, str, str]]:
    """(kind, subject, message) of every page since the last call."""
    return [(p["MessageAttributes"]["kind"]["Value"], p.get("Subject", ""), p["Message"]) for p in world.pages()]


def config_file(tmp_path: Path, world: World, **recovery: Any) -> str:
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(recovery_raw(world, **recovery)))
    return str(path)


def running_incident(world: World, store: StateStore) -> tuple[Harness, str]:
    """An incident in WAIT_READY with its new cluster launched; the harness's lease is gone."""
    h = Harness(world, recovery_config(world), store, real_now_clock())
    h.start()
    [new] = new_clusters(world)
    h.clock.advance(days=3)  # the harness's invocations and their leases are long over
    world.pages()  # drop the start's pages
    return h, new


def cluster_state(world: World, cid: str) -> str:
    return str(world.emr().describe_cluster(ClusterId=cid)["Cluster"]["Status"]["State"])


# ------------------------------------------------------------------ 4. abort, recover: wait for the lease

def test_abort_against_a_held_lease_exits_3_and_changes_nothing(
        world: World, fake_checks: Script, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    store = MemoryStateStore()
    h, new = running_incident(world, store)
    before = store.get(TARGET)
    waits = hold(store, h.clock, monkeypatch)
    cfg = config_file(tmp_path, world)
    code = main(["abort", "-c", cfg, "--target", TARGET, "--reason", "taking over", "--yes"],
                services_factory=cli_services(world, store, h.clock))
    shown = capsys.readouterr()
    assert code == 3, shown
    assert BUSY in shown.out + shown.err and "abort ok" not in shown.out
    assert sum(waits.slept) == pytest.approx(actions.LEASE_WAIT_S)  # it waited the whole 30 s first
    after = store.get(TARGET)
    assert after.version == before.version and after.incident == before.incident
    assert cluster_state(world, new) != "TERMINATED" and pages(world) == []

    code = main(["abort", "-c", cfg, "--target", TARGET, "--reason", "taking over", "--yes", "--json"],
                services_factory=cli_services(world, store, h.clock))
    report = json.loads(capsys.readouterr().out)
    assert code == 3 and report["exit_code"] == 3 and report["status"] == "unknown"
    assert report["targets"][0]["error"].startswith(BUSY)


def test_abort_acts_once_the_lease_frees_during_the_wait(
        world: World, fake_checks: Script, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    store = MemoryStateStore()
    h, new = running_incident(world, store)
    waits = hold(store, h.clock, monkeypatch, free_at=3)  # the queued advance finishes ~1.5 s later
    code = main(["abort", "-c", config_file(tmp_path, world), "--target", TARGET, "--reason", "taking over", "--yes"],
                services_factory=cli_services(world, store, h.clock))
    shown = capsys.readouterr()
    assert code == 1, shown  # as before: the abort rolled back and escalated
    assert len(waits.slept) == 3 and BUSY not in shown.out + shown.err
    inc = store.get(TARGET).incident
    assert inc and inc["phase"] == "ESCALATED" and "taking over" in inc["failed"]["error"]
    assert cluster_state(world, new) == "TERMINATED"
    kinds = [k for k, _, _ in pages(world)]
    assert kinds == ["recovery-aborted", "recovery-escalated"]


def test_recover_against_a_held_lease_exits_3_then_starts_once_the_lease_frees(
        world: World, fake_checks: Script, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    store = MemoryStateStore()
    clock = real_now_clock()
    fake_checks.set("hive", Status.CRITICAL, "timeout")
    cfg = config_file(tmp_path, world)
    argv = ["recover", "-c", cfg, "--target", TARGET, "--force", "--yes"]
    hold(store, clock, monkeypatch)
    with CallLog(world.clients) as log:
        code = main(argv, services_factory=cli_services(world, store, clock))
        shown = capsys.readouterr()
        assert code == 3 and BUSY in shown.out + shown.err, shown
        assert log.mutating() == [] and fake_checks.calls == []  # not even a check ran
    assert store.get(TARGET) == TargetState() and new_clusters(world) == []

    store.release_lease(Lease(TARGET, HOLDER, 1, 0))  # the first holder is gone; another one comes
    hold(store, clock, monkeypatch, free_at=2)
    code = main(argv, services_factory=cli_services(world, store, clock))
    assert code == 1, capsys.readouterr()
    inc = store.get(TARGET).incident
    assert inc and inc["phase"] == "WAIT_READY" and len(new_clusters(world)) == 1


def test_a_recover_that_starts_nothing_says_why(world: World, fake_checks: Script, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    store, clock = MemoryStateStore(), real_now_clock()
    cfg = config_file(tmp_path, world)
    code = main(["recover", "-c", cfg, "--target", TARGET, "--force", "--yes"],
                services_factory=cli_services(world, store, clock))
    out = capsys.readouterr().out
    assert code == 0 and "no recovery started: the trigger checks do not fail" in out  # healthy: as before
    fake_checks.set("hive", Status.CRITICAL, "timeout")
    code = main(["recover", "-c", cfg, "--target", TARGET, "--yes", "--json"],
                services_factory=cli_services(world, store, clock))
    [target] = json.loads(capsys.readouterr().out)["targets"]
    assert code == 1 and target["recovery"] is None and new_clusters(world) == []
    assert any(n.startswith("no recovery started: hive CRITICAL") and "--force" in n for n in target["notes"])


def test_the_lambda_abort_action_reports_busy_as_an_error(world: World, fake_checks: Script,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    store = MemoryStateStore()
    h, new = running_incident(world, store)
    svc = services(recovery_config(world), store=store, clients=world.clients, clock=h.clock)
    _serve(monkeypatch, svc)
    hold(store, h.clock, monkeypatch)
    version = store.get(TARGET).version
    rep = handler.lambda_handler({"action": "abort", "target": TARGET, "reason": "stuck"}, Ctx("operator"))
    assert rep["exit_code"] == 3 and rep["status"] == "unknown"
    assert rep["targets"][0]["error"].startswith(BUSY)
    assert store.get(TARGET).version == version and cluster_state(world, new) != "TERMINATED"


# ------------------------------------------------------------------ 4. silence, unsilence, ack take the lease

@pytest.mark.parametrize("argv", [["silence", "--for", "2h", "--reason", "db migration"], ["unsilence"], ["ack"]])
def test_silence_unsilence_and_ack_wait_for_the_lease_or_say_busy(
        world: World, fake_checks: Script, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    store = MemoryStateStore()
    clock = real_now_clock()
    cfg = config_file(tmp_path, world)
    command = [argv[0], "-c", cfg, "--target", TARGET, *argv[1:]]
    hold(store, clock, monkeypatch)
    code = main(command, services_factory=cli_services(world, store, clock))
    shown = capsys.readouterr()
    assert code == 3 and BUSY in shown.err + shown.out, shown
    assert store.get(TARGET).version == 0 and store.events(TARGET) == []
    assert world.pages() == []  # nothing announced either (announcements go to the page topic here)

    store.release_lease(Lease(TARGET, HOLDER, 1, 0))
    hold(store, clock, monkeypatch, free_at=4)
    assert main(command, services_factory=cli_services(world, store, clock)) == 0
    assert store.get(TARGET).version == 1 and store.events(TARGET)[0].kind == argv[0]
    store.acquire_lease(TARGET, "next-tick", 60, clock.now())  # the command released its lease


def test_the_lambda_silence_action_reports_busy_as_an_error(fake_checks: Script,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    svc = services(fake_config())
    _serve(monkeypatch, svc)
    hold(svc.store, svc.clock, monkeypatch)
    rep = handler.lambda_handler({"action": "silence", "target": TARGET, "for": "1h", "reason": "deploy"},
                                 Ctx("operator"))
    assert rep["exit_code"] == 3 and any(e.startswith(BUSY) for e in rep["errors"])
    assert svc.store.get(TARGET).silences == [] and svc.clients.sns.published == []


class RacingStore(MemoryStateStore):
    """A writer that holds no lease (e.g. the orphan page marker) wins ``races`` writes."""

    def __init__(self, races: int) -> None:
        super().__init__()
        self.races = races

    def put(self, target: str, state: TargetState, *, lease: Lease | None, events: list[Event] | None = None,
            now: Any) -> TargetState:
        if lease is not None and self.races > 0:
            self.races -= 1
            raise ConflictError(f"{target}: state version moved on")
        return super().put(target, state, lease=lease, events=events, now=now)


def test_an_ack_that_loses_a_race_is_retried_and_one_that_keeps_losing_says_busy(
        fake_checks: Script, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(actions, "LEASE_SLEEP", lambda s: None)
    escalated = TargetState(escalated={"at": "x", "reason": "launch failed"}, incident={"id": "i", "phase": "ESCALATED"})
    store = RacingStore(races=2)
    svc = services(fake_config(), store=store, clock=FakeClock())
    MemoryStateStore.put(store, TARGET, escalated, lease=None, now=svc.clock.now())
    rep = actions.ack(new_invocation(svc, requested_by="bob"), TARGET)
    assert rep.exit_code == 0 and rep.data and rep.data["was_escalated"]
    assert store.get(TARGET).escalated is None

    store = RacingStore(races=actions.WRITE_ATTEMPTS)
    svc = services(fake_config(), store=store, clock=FakeClock())
    MemoryStateStore.put(store, TARGET, escalated, lease=None, now=svc.clock.now())
    rep = actions.ack(new_invocation(svc, requested_by="bob"), TARGET)
    assert rep.exit_code == 3 and rep.errors[0].startswith("busy:") and "nothing was changed" in rep.errors[0]
    assert store.get(TARGET).escalated is not None and svc.clients.sns.published == []


def test_the_lease_wait_stops_before_the_invocation_runs_out_of_time(fake_checks: Script,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    store, clock = MemoryStateStore(), FakeClock()
    waits = hold(store, clock, monkeypatch)
    with pytest.raises(actions.Busy, match="^busy: "):
        actions.take_lease(store, TARGET, "me", clock, ttl_s=lambda: 60, deadline=Deadline.after(12))
    assert sum(waits.slept) <= 2.0 + 1e-6  # 12 s left, 10 s kept to act in


# ------------------------------------------------------------------ 5. the sweep before every ESCALATED

def test_abort_after_the_cut_over_sweeps_a_duplicate_and_keeps_the_verified_cluster(fake_checks: Script) -> None:
    with moto_world(record_ttl=300) as world:  # RETIRE_OLD waits out the old record's TTL
        h = Harness(world, recovery_config(world), MemoryStateStore(), real_now_clock())
        h.start()
        inc = h.incident()
        # a lost resend's cluster, tagged like the first and invisible to LAUNCH (ListClusters lag)
        extra = world.emr().run_job_flow(**{**inc["spec"], "Configurations": []})["JobFlowId"]
        for cid in new_clusters(world):
            set_steps(cid, "COMPLETED")
        report = h.advance()
        assert report["phase"] == "RETIRE_OLD" and h.incident()["recovered_at"], report
        new = h.incident()["new"]["cluster_id"]
        assert new != extra and cluster_state(world, extra) != "TERMINATED"
        world.pages()

        h.requested_by = "alice"
        result = runbook.abort(h.rctx(), h.store.get(TARGET), reason="taking over by hand")
        assert result.report["phase"] == "ESCALATED"
        assert cluster_state(world, extra) == "TERMINATED"
        assert cluster_state(world, new) == "WAITING"  # clients stay on the verified new cluster
        assert cluster_state(world, world.cluster_id) == "WAITING"  # nothing rolled back or retired
        master = world.master_of(new)
        assert world.tg_targets() == [master["Ec2InstanceId"]] and world.record_value() == master["PrivateDnsName"]
        assert any(n.startswith(f"sweep: {extra}") for n in h.incident()["notes"])
        sent = pages(world)
        assert [k for k, _, _ in sent] == ["recovery-aborted", "recovery-escalated"]
        assert f"sweep: {extra}" in sent[-1][2] and "STAYS on the new cluster" in sent[-1][2]


# ------------------------------------------------------------------ 6. re-confirm before destroying

def test_terminate_first_with_the_target_healthy_again_destroys_nothing_and_pages_it(
        world: World, fake_checks: Script) -> None:
    h = Harness(world, recovery_config(world, strategy="terminate_first"), MemoryStateStore(), real_now_clock())
    # The normal path answers OK at the last moment: the target recovered on its own.
    with CallLog(world.clients) as log:
        report = h.start()
    assert report["phase"] == "DONE" and report["status"] == "OK", report
    assert log.count("TerminateJobFlows") == 0 and log.count("SetTerminationProtection") == 0
    assert log.mutating() == [] and new_clusters(world) == []
    assert cluster_state(world, world.cluster_id) == "WAITING"
    assert (["hive"], None) in h.verify.calls  # the trigger checks, through the normal path
    inc = h.incident()
    assert inc["outcome"] == RECOVERED_ON_ITS_OWN and inc["retired"] is None and inc["ttr_s"] is None
    assert [t["phase"] for t in inc["timeline"]] == ["SNAPSHOT", "RETIRE_OLD", "DONE"]
    assert inc["rungs"][-1]["outcome"] == RECOVERED_ON_ITS_OWN
    state = h.store.get(TARGET)
    assert state.escalated is None and not runbook.is_active(state)  # automation continues as usual
    assert len(state.recoveries) == 1  # the attempt counts against the budget (said in the page)
    sent = pages(world)
    assert [k for k, _, _ in sent] == ["recovery-started", "recovery-aborted"]
    _, subject, body = sent[-1]
    assert "recovered on its own" in subject and "nothing destroyed" in subject
    assert "Nothing was destroyed" in body and world.cluster_id in body and "recovery budget" in body
    assert "RecoverySucceeded" not in h.metric_names()


def test_terminate_first_still_failing_at_the_last_moment_terminates_as_before(
        world: World, fake_checks: Script) -> None:
    h = Harness(world, recovery_config(world, strategy="terminate_first"), MemoryStateStore(), real_now_clock())
    old_master_broken(h)
    with CallLog(world.clients) as log:
        report = h.start()
    assert report["phase"] == "WAIT_READY" and log.count("TerminateJobFlows") == 1
    retired = [t for t in h.incident()["timeline"] if t["phase"] == "LAUNCH"][0]["note"]
    assert "failure re-confirmed first: hive CRITICAL" in retired


def test_terminate_first_that_cannot_judge_at_the_last_moment_waits_and_destroys_nothing(
        world: World, fake_checks: Script) -> None:
    h = Harness(world, recovery_config(world, strategy="terminate_first"), MemoryStateStore(), real_now_clock())
    h.verify.by_host[None] = Status.UNKNOWN  # e.g. the secret cannot be read: no judgement
    report = h.start()
    assert report["phase"] == "RETIRE_OLD" and "cannot re-confirm" in (report["waiting"] or ""), report
    assert cluster_state(world, world.cluster_id) == "WAITING" and new_clusters(world) == []
    h.verify.by_host[None] = Status.CRITICAL
    h.clock.advance(minutes=2)
    assert h.advance()["phase"] == "WAIT_READY"
    assert cluster_state(world, world.cluster_id) == "TERMINATED"


def test_a_terminate_already_sent_is_not_second_guessed_after_a_crash(world: World, fake_checks: Script) -> None:
    """An intent for TerminateJobFlows is on record (the call may have taken effect): the
    resumed phase does not re-check and call a dying cluster "recovered on its own"."""
    h = Harness(world, recovery_config(world, strategy="terminate_first"), MemoryStateStore(), real_now_clock())
    old_master_broken(h)
    with FailCalls(world.clients, "emr", "TerminateJobFlows", code="ThrottlingException", times=1):
        report = h.start()  # the intent is persisted, the call answers "throttled": maybe done
    assert report["phase"] == "RETIRE_OLD", report
    h.verify.path = None  # the normal path answers OK now (whatever serves it)
    h.clock.advance(minutes=2)
    checks_before = len(h.verify.calls)
    assert h.advance()["phase"] == "WAIT_READY"
    assert len(h.verify.calls) == checks_before and cluster_state(world, world.cluster_id) == "TERMINATED"


def test_plan_of_terminate_first_lists_the_re_check_before_the_terminate(world: World, fake_checks: Script) -> None:
    h = Harness(world, recovery_config(world, strategy="terminate_first"), MemoryStateStore(), real_now_clock())
    plan = runbook.build_plan(h.rctx(), h.store.get(TARGET))
    calls = [(c["phase"], c["call"]) for c in plan["calls"]]
    recheck = calls.index(("RETIRE_OLD", "sentinel.run_checks"))
    assert calls[recheck + 1:].index(("RETIRE_OLD", "emr.terminate_job_flows")) >= 0
    assert plan["ok"] and plan["final_phase"] == "DONE"


def test_through_the_tick_a_target_that_recovers_between_snapshot_and_the_next_tick_keeps_its_cluster(
        world: World, fake_checks: Script) -> None:
    svc = services(recovery_config(world, strategy="terminate_first"), store=MemoryStateStore(),
                   clients=world.clients, clock=real_now_clock())

    def tick() -> Any:
        report = run_tick(new_invocation(svc), deadline=Deadline.after(60))
        svc.clock.advance(seconds=120)
        return report.targets[0]

    fake_checks.set("hive", Status.CRITICAL, "refused")
    tick()
    with FailCalls(world.clients, "emr", "ListClusters", code="ThrottlingException", times=20):
        started = tick()  # confirmed: the recovery starts; SNAPSHOT cannot read EMR this tick
    assert started.recovery and started.recovery["phase"] == "SNAPSHOT", started.recovery
    fake_checks.set("hive", Status.OK)  # HiveServer2 came back on its own
    with CallLog(world.clients) as log:
        done = tick()
    assert done.recovery and done.recovery["phase"] == "DONE", done.recovery
    assert log.count("TerminateJobFlows") == 0 and log.mutating() == [] and new_clusters(world) == []
    assert cluster_state(world, world.cluster_id) == "WAITING"
    kinds = [k for k, _, _ in pages(world)]
    assert kinds[-1] == "recovery-aborted"
    after = tick()
    assert after.recovery is None and after.decision and after.decision["verdict"] == "ok"


# ------------------------------------------------------------------ the handler's in-memory doors

# The handler's test context and warm caches: the same as the doors tests use.


def _serve(monkeypatch: pytest.MonkeyPatch, svc: Services) -> None:
    monkeypatch.setattr(handler, "_WARM", Warm(svc))
    monkeypatch.setenv("SENTINEL_CONFIG", "in-memory")



def test_an_abort_after_the_cut_over_that_dies_before_escalating_is_finished_by_the_next_tick(
        fake_checks: Script, monkeypatch: pytest.MonkeyPatch) -> None:
    class Died(BaseException):
        pass

    with moto_world(record_ttl=300) as world:
        h = Harness(world, recovery_config(world), MemoryStateStore(), real_now_clock())
        h.start()
        for cid in new_clusters(world):
            set_steps(cid, "COMPLETED")
        assert h.advance()["phase"] == "RETIRE_OLD"
        real_sweep = runbook._sweep

        def die(run: Any) -> None:
            raise Died("the Lambda is killed after the abort was saved")

        monkeypatch.setattr(runbook, "_sweep", die)
        with pytest.raises(Died):
            runbook.abort(h.rctx(), h.store.get(TARGET), reason="taking over by hand")
        monkeypatch.setattr(runbook, "_sweep", real_sweep)
        assert h.incident()["phase"] == "RETIRE_OLD" and h.incident()["escalation"]
        h.clock.advance(minutes=10)  # past the TTL: RETIRE_OLD would now terminate the old cluster
        report = h.advance()
        assert report["phase"] == "ESCALATED", report
        assert cluster_state(world, world.cluster_id) == "WAITING"  # the abort held: nothing retired
