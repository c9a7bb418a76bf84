"""The tick with scripted checks and the in-memory store: counting, paging, leases,
deadlines, dry run, read-only check, fail-closed state."""

from __future__ import annotations

import time
from typing import Any

from checks.base import Deadline, Status
from monitor.core.errors import StateError
from monitor.core.state.memory import MemoryStateStore
from monitor.cycle import run_tick
from monitor.runtime import Services, new_invocation
from tests.fakes import FakeClock, Script, fake_config, services

ENABLED = {"enabled": True, "when": {"checks": ["hive"], "consecutive_failures": 2},
           "routing": {"route53": {"zone_id": "Z1", "record": "hive.example.com"}}, "verify": {"checks": ["hive"]}}


def tick(svc: Services, **kw: Any):
    action = kw.pop("action", "tick")
    inv = new_invocation(svc, request_id=kw.pop("request_id", None), dry_run=kw.pop("dry_run", False))
    report = run_tick(inv, deadline=Deadline.after(kw.pop("budget", 30)), action=action, **kw)
    if isinstance(svc.clock, FakeClock):  # the next tick is a schedule later: its look counts (min_gap_s)
        svc.clock.advance(minutes=10)
    return report, inv


def test_healthy_tick_persists_state_and_metrics(fake_checks: Script) -> None:
    svc = services(fake_config())
    report, inv = tick(svc)
    assert report.exit_code == 0
    t = report.targets[0]
    assert [c.status for c in t.checks] == [Status.OK, Status.OK]
    assert t.decision and t.decision["verdict"] == "ok"
    state = svc.store.get("prod-hive")
    assert state.version == 1 and state.last_decision == "ok"
    names = {(m["name"], m["dimensions"].get("check")) for m in report.metrics}
    assert {("CheckStatus", "hive"), ("CheckLatencyMs", "dns"), ("Heartbeat", None)} <= names
    assert inv.notifier.sent == []


def test_confirmed_failure_pages_once_when_recovery_not_allowed(fake_checks: Script) -> None:
    svc = services(fake_config())  # recovery disabled
    fake_checks.set("hive", Status.CRITICAL, "timeout")
    r1, inv1 = tick(svc)
    assert r1.targets[0].decision["verdict"] == "failing"  # type: ignore[index]
    assert inv1.notifier.sent == []
    r2, inv2 = tick(svc)
    assert r2.targets[0].decision["verdict"] == "confirmed"  # type: ignore[index]
    assert r2.exit_code == 1
    [page] = inv2.notifier.sent
    assert page.kind == "confirmed" and page.delivered
    assert "recovery is disabled" in page.body
    assert "sentinel status --target prod-hive" in page.body
    _, inv3 = tick(svc)
    assert inv3.notifier.sent == []  # same condition: no repeat page
    fake_checks.set("hive", Status.OK)
    _, inv4 = tick(svc)
    assert [m.kind for m in inv4.notifier.sent] == ["resolved"]
    events = svc.store.events("prod-hive")
    assert [e.data["to"] for e in events] == ["ok", "confirmed", "failing", "ok"][: len(events)]


def test_persistent_unknown_pages_after_threshold(fake_checks: Script) -> None:
    svc = services(fake_config())
    fake_checks.set("hive", Status.UNKNOWN, "auth")
    sent = []
    for _ in range(4):
        _, inv = tick(svc)
        sent.append([m.kind for m in inv.notifier.sent])
    assert sent == [[], [], ["unknown"], []]
    assert svc.store.get("prod-hive").consecutive_failures == 0


def test_unknown_never_starts_recovery(fake_checks: Script) -> None:
    svc = services(fake_config(recovery=ENABLED))
    fake_checks.set("hive", Status.UNKNOWN, "tls")
    for _ in range(5):
        report, _ = tick(svc)
        assert report.targets[0].recovery is None
        assert not report.targets[0].decision["recover"]  # type: ignore[index]


def test_confirmed_failure_with_recovery_enabled_reaches_the_runbook(fake_checks: Script) -> None:
    svc = services(fake_config(recovery=ENABLED))
    fake_checks.set("hive", Status.CRITICAL, "refused")
    tick(svc)
    report, _ = tick(svc)
    t = report.targets[0]
    assert t.decision and t.decision["recover"] is True
    assert t.recovery is not None or any("recovery" in a for a in t.actions)


def test_check_action_never_changes_state(fake_checks: Script) -> None:
    store = MemoryStateStore()
    svc = services(fake_config(), store=store)
    fake_checks.set("hive", Status.CRITICAL)
    report, inv = tick(svc, action="check")
    assert report.targets[0].status == Status.CRITICAL
    assert store.get("prod-hive").version == 0
    assert inv.notifier.sent == []


def test_dry_run_tick_changes_nothing_and_sends_nothing(fake_checks: Script) -> None:
    store = MemoryStateStore()
    svc = services(fake_config(), store=store)
    fake_checks.set("hive", Status.CRITICAL)
    tick(svc)  # one real failure recorded
    report, inv = tick(svc, dry_run=True)
    assert report.targets[0].decision["verdict"] == "confirmed"  # type: ignore[index]
    assert store.get("prod-hive").consecutive_failures == 1
    assert all(not m.delivered for m in inv.notifier.sent)
    assert svc.clients.sns.published == []


def test_lease_held_by_another_invocation_skips_target(fake_checks: Script) -> None:
    svc = services(fake_config())
    svc.store.acquire_lease("prod-hive", "someone-else", 600, svc.clock.now())
    report, _ = tick(svc)
    assert report.targets[0].skipped and "lease" in report.targets[0].skipped
    assert fake_checks.calls == []
    assert svc.store.get("prod-hive").version == 0


def test_lease_released_after_tick(fake_checks: Script) -> None:
    svc = services(fake_config())
    tick(svc, request_id="a")
    svc.store.acquire_lease("prod-hive", "b", 60, svc.clock.now())  # no LeaseHeld


def test_hung_check_yields_unknown_within_deadline(fake_checks: Script) -> None:
    svc = services(fake_config(checks=[{"type": "fake", "name": "hive", "timeout_s": 0.5},
                                       {"type": "fake", "name": "dns", "timeout_s": 0.5}]))
    fake_checks.hangs.add("hive")
    started = time.monotonic()
    report, _ = tick(svc)
    elapsed = time.monotonic() - started
    hive = report.targets[0].checks[0]
    assert hive.status == Status.UNKNOWN and "did not finish" in hive.summary
    assert elapsed < 0.5 + 0.5 + 1.0 + 0.5  # budget + runner grace + margin


class BrokenStore(MemoryStateStore):
    def get(self, target: str):  # type: ignore[no-untyped-def]
        raise StateError("table unreachable")


def test_unreadable_state_fails_closed_and_pages(fake_checks: Script) -> None:
    svc = services(fake_config(recovery=ENABLED), store=BrokenStore())
    fake_checks.set("hive", Status.CRITICAL)
    report, inv = tick(svc)
    t = report.targets[0]
    assert t.status == Status.UNKNOWN and t.error and "state unreadable" in t.error
    assert t.recovery is None and t.decision is None
    assert [m.kind for m in inv.notifier.sent] == ["state-unreadable"]
    assert [c.status for c in t.checks] == [Status.CRITICAL, Status.OK]  # still shown to on-call
    assert report.exit_code in (1, 3)


def test_full_silence_suppresses_pages(fake_checks: Script) -> None:
    from monitor import actions

    svc = services(fake_config())
    inv = new_invocation(svc, requested_by="alice")
    actions.silence(inv, "prod-hive", "2h", "planned maintenance")
    fake_checks.set("hive", Status.CRITICAL)
    tick(svc)
    report, inv2 = tick(svc)
    assert inv2.notifier.sent == []
    assert "page 'confirmed' suppressed by silence" in report.targets[0].actions


def test_many_targets_run_in_a_bounded_pool(fake_checks: Script) -> None:
    svc = services(fake_config(targets=12, max_workers=4))
    report, _ = tick(svc)
    assert len(report.targets) == 12 and report.exit_code == 0


def test_unknown_target_is_usage_error(fake_checks: Script) -> None:
    svc = services(fake_config())
    report, _ = tick(svc, targets=["nope"])
    assert report.exit_code == 2 and "unknown target" in report.errors[0]


def test_clock_is_injected(fake_checks: Script) -> None:
    clock = FakeClock()
    svc = services(fake_config(), clock=clock)
    tick(svc)
    assert svc.store.get("prod-hive").last_tick_at == "2026-11-23T06:00:00.000000Z"


class FlakyWriteStore(MemoryStateStore):
    def put(self, *a: Any, **k: Any):  # type: ignore[no-untyped-def]
        raise StateError("write failed (RuntimeError)")


def test_lease_is_released_even_when_the_tick_fails_closed(fake_checks: Script) -> None:
    store = FlakyWriteStore()
    svc = services(fake_config(), store=store)
    report, _ = tick(svc)
    assert report.targets[0].error and "state unreadable" in report.targets[0].error
    store.acquire_lease("prod-hive", "next-invocation", 60, svc.clock.now())  # not LeaseHeld


def test_failed_state_write_does_not_run_the_checks_twice(fake_checks: Script) -> None:
    svc = services(fake_config(recovery=ENABLED), store=FlakyWriteStore())
    fake_checks.set("hive", Status.CRITICAL)
    report, _ = tick(svc)
    assert sorted(name for name, _ in fake_checks.calls) == ["dns", "hive"]
    assert report.targets[0].decision is None and report.targets[0].recovery is None


def test_manual_recover_is_not_blocked_by_disabled_automatic_recovery(fake_checks: Script) -> None:
    svc = services(fake_config(recovery={**ENABLED, "enabled": False}))
    fake_checks.set("hive", Status.CRITICAL)
    auto, _ = tick(svc)
    assert auto.targets[0].decision["recover"] is False  # type: ignore[index]
    manual, _ = tick(svc, action="recover", force=True)
    assert manual.targets[0].decision["recover"] is True  # type: ignore[index]
    assert manual.targets[0].decision["blocked_by"] == []  # type: ignore[index]
