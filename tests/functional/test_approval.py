"""A person's yes before a destructive rung (issue 21 item 1; DESIGN §11 "Approval"), on moto.

The replace rung waits in APPROVAL: the page lists what it would change and how to answer;
``sentinel approve|deny`` answers under the lease (audited, paged to the info topic); nobody
answering follows ``on_timeout``; ``auto_hours`` asks nobody; a target healthy again ends the
incident with nothing done; a silence pauses the wait; of two answers racing one counts.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml

from checks.base import Status
from monitor.cli import main
from monitor.config import parse_config
from monitor.core.state.memory import MemoryStateStore
from recover import approval, runbook
from recover.plan import render as render_plan
from tests.fakes import Script
from tests.recover_fixtures import (
    SSM_RUNG,
    TARGET,
    Harness,
    World,
    cli_services,
    finish_incident,
    moto_world,
    new_clusters,
    old_master_broken,
    real_now_clock,
    recovery_config,
    recovery_raw,
    timed_harness,
)


@pytest.fixture
def world(fake_checks: Script) -> Iterator[World]:
    with moto_world() as w:
        yield w


def approval_raw(world: World, **ask: Any) -> dict[str, Any]:
    raw = recovery_raw(world, approval={"rungs": ["replace"], "timeout_min": 30, **ask})
    raw["notify"]["info_topic_arn"] = world.page_topic  # one queue reads both; severity tells them apart
    return raw


def harness(world: World, **ask: Any) -> Harness:
    h = Harness(world, parse_config(approval_raw(world, **ask)), MemoryStateStore(), real_now_clock())
    old_master_broken(h)  # the normal path fails until REPOINT: the failure is still there while waiting
    return h


def pages(world: World, severity: str = "page") -> list[tuple[str, str, str]]:
    return [(p["MessageAttributes"]["kind"]["Value"], p.get("Subject", ""), p["Message"]) for p in world.pages()
            if p["MessageAttributes"]["severity"]["Value"] == severity]


def messages(world: World) -> list[tuple[str, str, str, str]]:
    """(severity, kind, subject, body) of everything sent to either topic since the last call."""
    return [(p["MessageAttributes"]["severity"]["Value"], p["MessageAttributes"]["kind"]["Value"],
             p.get("Subject", ""), p["Message"]) for p in world.pages()]


def cli(world: World, h: Harness, tmp_path: Path, *argv: str) -> int:
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(approval_raw(world)))
    if h.lease is not None:  # the harness's last invocation is over
        h.store.release_lease(h.lease)
        h.lease = None
    return main([argv[0], "-c", str(path), "--target", TARGET, *argv[1:]],
                services_factory=cli_services(world, h.store, h.clock))


def restart_then_replace(world: World, monkeypatch: pytest.MonkeyPatch, **ask: Any) -> Harness:
    """Ladder [restart_service, replace] with an approval; the restart will not help."""

    raw = approval_raw(world, **ask)
    raw["targets"][0]["recovery"]["ladder"] = [
        SSM_RUNG, {"rung": "replace"}]
    h = timed_harness(world, parse_config(raw), monkeypatch)
    h.verify.by_host[None] = Status.CRITICAL  # the restart does not help
    return h


def waiting(world: World, **ask: Any) -> Harness:
    """An incident started and waiting for approval of the replace rung."""
    h = harness(world, **ask)
    report = h.start()
    assert report["phase"] == "APPROVAL", report
    return h


# ------------------------------------------------------------------ the ask

def test_the_replace_rung_waits_for_approval_with_its_plan_in_the_page(world: World) -> None:
    h = waiting(world)
    inc = h.incident()
    assert new_clusters(world) == [] and world.tg_targets() == [world.master_of(world.cluster_id)["Ec2InstanceId"]]
    assert h.store.get(TARGET).recoveries == []  # the budget is spent when approved, not when asked
    sent = pages(world)
    kinds = [k for k, _, _ in sent]
    assert kinds == ["recovery-started", "approval-needed"]
    _, subject, body = sent[1]
    assert subject.endswith("APPROVAL needed: replace for prod-hive")
    assert f"sentinel approve --target {TARGET} --reason" in body and f"sentinel deny --target {TARGET}" in body
    assert "LAUNCH       emr.run_job_flow" in body and "REPOINT" in body and "RETIRE_OLD" in body
    assert "nothing is changed and you are paged again" in body  # on_timeout: escalate (the default)
    assert inc["approval"]["answer"] is None and inc["approval"]["plan"]
    h.clock.advance(minutes=10)
    assert h.advance()["phase"] == "APPROVAL" and new_clusters(world) == []  # nobody answered yet: it waits


def test_approve_starts_the_rung_at_once_audited_and_announced(world: World, tmp_path: Path,
                                                               fake_checks: Script) -> None:
    h = waiting(world)
    world.pages()
    h.clock.advance(minutes=5)
    fake_checks.set("hive", Status.CRITICAL, "still down")  # the CLI's own reconfirmation runs the checks
    code = cli(world, h, tmp_path, "approve", "--reason", "change window ok")
    assert code == 1  # a recovery in progress is CRITICAL, as `recover` reports
    inc = h.incident()
    assert inc["phase"] == "WAIT_READY" and len(new_clusters(world)) == 1
    assert inc["approval"]["answer"]["decision"] == "approved"
    assert inc["approval"]["answer"]["reason"] == "change window ok"
    assert len(h.store.get(TARGET).recoveries) == 1  # spent now
    events = [e for e in h.store.events(TARGET, 50) if e.kind == "approval-approved"]
    assert events and events[0].actor not in ("sentinel", "") and "change window ok" in events[0].message
    sent = messages(world)
    answered = [m for m in sent if m[1] == "approval-answered"]
    assert answered and answered[0][0] == "info" and "approved by" in answered[0][3] and "change window ok" in answered[0][3]
    finish_incident(h)
    assert h.incident()["phase"] == "DONE"


def test_deny_escalates_with_traffic_untouched(world: World, tmp_path: Path, fake_checks: Script) -> None:
    h = waiting(world)
    before = (world.tg_targets(), world.elb_instances(), world.record_value())
    world.pages()
    fake_checks.set("hive", Status.CRITICAL, "still down")
    code = cli(world, h, tmp_path, "deny", "--reason", "not during the release")
    assert code == 1
    inc = h.incident()
    assert inc["phase"] == "ESCALATED" and "denied by" in inc["escalation"] and "not during the release" in inc["escalation"]
    assert new_clusters(world) == [] and (world.tg_targets(), world.elb_instances(), world.record_value()) == before
    assert h.store.get(TARGET).recoveries == [] and h.store.get(TARGET).escalated
    sent = messages(world)
    assert [(sev, k) for sev, k, _, _ in sent] == [("info", "approval-answered"), ("page", "recovery-escalated")]
    assert "denied by" in sent[0][3] and "not during the release" in sent[1][3]


@pytest.mark.parametrize(("on_timeout", "phase"), [("escalate", "ESCALATED"), ("proceed", "WAIT_READY")])
def test_nobody_answering_follows_on_timeout(world: World, on_timeout: str, phase: str) -> None:
    h = waiting(world, on_timeout=on_timeout)
    h.clock.advance(minutes=29)
    assert h.advance()["phase"] == "APPROVAL"
    h.clock.advance(minutes=2)
    report = h.advance()
    assert report["phase"] == phase
    inc = h.incident()
    assert "nobody answered within 30 min" in str(inc["timeline"][-1]["note"] if phase == "ESCALATED"
                                                  else inc["timeline"][-3]["note"])
    assert len(new_clusters(world)) == (1 if on_timeout == "proceed" else 0)


def test_inside_auto_hours_nobody_is_asked(world: World) -> None:
    h = harness(world, auto_hours="00:00-23:59")  # almost always inside (Europe/Berlin below)
    local_hour = h.clock.now().astimezone(ZoneInfo("UTC")).hour
    h.config = h.config.model_copy(update={"notify": h.config.notify.model_copy(update={"timezone": "UTC"})})
    if local_hour == 23 and h.clock.now().minute == 59:  # pragma: no cover - the one minute outside
        h.clock.advance(minutes=2)
    report = h.start()
    assert report["phase"] == "WAIT_READY" and len(new_clusters(world)) == 1
    assert [k for k, _, _ in pages(world)][:1] == ["recovery-started"]
    assert "approval-needed" not in [k for k, _, _ in pages(world)]


def test_outside_auto_hours_in_the_configured_zone_it_asks(world: World) -> None:
    h0 = harness(world)
    now_berlin = h0.clock.now().astimezone(ZoneInfo("Europe/Berlin"))
    start = (now_berlin + timedelta(hours=2)).strftime("%H:00")
    end = (now_berlin + timedelta(hours=4)).strftime("%H:00")
    h = harness(world, auto_hours=f"{start}-{end}")
    h.config = h.config.model_copy(update={"notify": h.config.notify.model_copy(update={"timezone": "Europe/Berlin"})})
    assert h.start()["phase"] == "APPROVAL"


def test_a_target_healthy_again_while_waiting_ends_with_nothing_done(world: World) -> None:
    h = waiting(world)
    world.pages()
    h.verify.path = None  # the normal path answers OK again
    h.clock.advance(minutes=3)
    report = h.advance()
    assert report["phase"] == "DONE"
    inc = h.incident()
    assert inc["outcome"] and "recovered on its own" in inc["outcome"]
    assert new_clusters(world) == [] and h.store.get(TARGET).recoveries == []
    [(kind, _, body)] = pages(world)
    assert kind == "recovery-aborted" and "no budget was spent" in body


def test_unknown_checks_while_waiting_keep_it_waiting(world: World) -> None:
    h = waiting(world, on_timeout="proceed")
    h.verify.path = lambda: Status.UNKNOWN
    h.clock.advance(minutes=45)  # past the timeout: proceeding on old evidence would be wrong
    assert h.advance()["phase"] == "APPROVAL" and new_clusters(world) == []


def test_a_silence_pauses_the_wait_and_its_timeout(world: World, tmp_path: Path) -> None:
    h = waiting(world, on_timeout="proceed")
    assert cli(world, h, tmp_path, "silence", "--for", "2h", "--reason", "maintenance") == 0
    h.clock.advance(minutes=60)
    report = h.advance()
    assert report["phase"] == "APPROVAL" and report.get("paused") and new_clusters(world) == []
    assert cli(world, h, tmp_path, "unsilence") == 0
    assert h.advance()["phase"] == "WAIT_READY"  # the timeout applies once the silence ends


def test_a_veto_keeps_an_approved_rung_waiting(world: World) -> None:
    raw = approval_raw(world)
    raw["targets"][0]["recovery"]["veto_if_failing"] = ["dns"]
    h = Harness(world, parse_config(raw), MemoryStateStore(), real_now_clock())
    old_master_broken(h)
    assert h.start()["phase"] == "APPROVAL"
    inc = runbook.Incident.from_dict(h.incident())
    approval.record(inc, approve=True, who="alice", reason="go", now=h.clock.now())
    state = h.store.get(TARGET)
    lease = h.new_lease()
    h.store.put(TARGET, replace(state, incident=inc.to_dict()), lease=lease, now=h.clock.now())
    h.verify.by_host[None] = Status.CRITICAL  # dns (a veto check) fails on the normal path too
    report = h.advance()
    assert report["phase"] == "APPROVAL" and "vetoed by dns CRITICAL" in str(report["waiting"])
    assert new_clusters(world) == []


# ------------------------------------------------------------------ answers

def test_nothing_to_approve_is_a_usage_error(world: World, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    h = harness(world)
    assert cli(world, h, tmp_path, "approve", "--reason", "x") == 2
    shown = capsys.readouterr()
    assert "no recovery in progress" in shown.out + shown.err


def test_two_approvals_racing_one_counts(world: World, tmp_path: Path, fake_checks: Script,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    h = waiting(world)
    stale = h.store.get(TARGET)  # both answers read this state
    first = runbook.answer(h.rctx(), stale, approve=True, reason="alice: go")
    assert first.report["phase"] == "WAIT_READY"
    second = runbook.answer(h.rctx(), stale, approve=False, reason="bob: no")  # the same approval, stale read
    assert second.report["status"] == "UNKNOWN" and "answer not recorded, nothing changed" in second.report["summary"]
    inc = h.incident()
    assert inc["approval"]["answer"]["reason"] == "alice: go" and inc["phase"] == "WAIT_READY"
    assert len(new_clusters(world)) == 1
    fake_checks.set("hive", Status.CRITICAL, "down")
    assert cli(world, h, tmp_path, "deny", "--reason", "bob again") == 2  # a fresh read: already answered
    shown = capsys.readouterr()
    assert "already approved by" in shown.out + shown.err
    assert h.incident()["phase"] == "WAIT_READY"


def test_plan_shows_the_approval_step(world: World) -> None:
    h = harness(world, auto_hours="22:00-07:00")
    plan = runbook.build_plan(h.rctx(), h.store.get(TARGET))
    assert plan["approval"] == "replace wait(s) for `sentinel approve` (timeout 30 min, then escalate); " \
                               "not asked 22:00-07:00 (UTC)"
    [rung] = plan["rungs"]
    assert rung["approval"] == plan["approval"]
    assert f"Approval: {plan['approval']}" in render_plan(plan)


def test_a_config_without_approval_is_unchanged(world: World) -> None:
    h = Harness(world, recovery_config(world), MemoryStateStore(), real_now_clock())
    old_master_broken(h)
    assert h.start()["phase"] == "WAIT_READY"


def test_a_restart_that_does_not_help_climbs_into_approval_not_into_a_relaunch(
        world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    h = restart_then_replace(world, monkeypatch)
    assert h.start()["phase"] == "VERIFY"  # the restart rung needs nobody's yes
    h.clock.advance(minutes=6)
    report = h.advance()
    assert report["phase"] == "APPROVAL" and new_clusters(world) == []
    inc = h.incident()
    assert inc["approval"]["rung"] == "replace" and inc["strategy"] == "replace"
    assert h.store.get(TARGET).recoveries == []  # the replace budget is not spent by asking
    assert [k for k, _, _ in pages(world)][-2:] == ["recovery-climbing", "approval-needed"]


def test_status_shows_the_pending_approval_and_how_to_answer(world: World, tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    h = waiting(world)
    capsys.readouterr()
    assert cli(world, h, tmp_path, "status") in (0, 1, 2)
    shown = capsys.readouterr().out
    assert "WAITING FOR APPROVAL of replace" in shown and f"sentinel approve|deny --target {TARGET}" in shown
    assert "would change: LAUNCH" in shown


def test_with_diagnostics_the_ask_follows_them_with_the_evidence_in_the_page(
        world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.functional.test_diagnostics import Host

    raw = approval_raw(world)
    raw["targets"][0]["recovery"]["diagnostics"] = {"timeout_s": 60}
    h = timed_harness(world, parse_config(raw), monkeypatch)
    old_master_broken(h)
    with Host(world, output="== thread dump\n\"HiveServer2-Handler-Pool\" #42 WAITING\n"):
        report = h.start()
    assert report["phase"] == "APPROVAL", report
    inc = h.incident()
    assert [t["phase"] for t in inc["timeline"]][:2] == ["DIAGNOSE", "APPROVAL"] or \
        [t["phase"] for t in inc["timeline"]][-1] == "APPROVAL"
    assert inc["approval"]["asked_at"] and new_clusters(world) == [] and h.store.get(TARGET).recoveries == []
    sent = pages(world)
    assert [k for k, _, _ in sent] == ["recovery-started", "approval-needed"]
    assert "HiveServer2-Handler-Pool" in sent[1][2]  # the evidence is in the ask
    h.clock.advance(minutes=31)
    assert h.advance()["phase"] == "ESCALATED" and new_clusters(world) == []
