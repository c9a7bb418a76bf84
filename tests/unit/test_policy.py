"""Policy: failure streaks across ticks, thresholds, vetoes, silences, budget, escalation."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from freezegun import freeze_time

from checks.base import CheckResult, Status
from monitor.config import Target
from monitor.core.clock import iso
from monitor.core.state.base import TargetState
from monitor.policy import evaluate

T0 = datetime(2026, 11, 23, 6, 0, tzinfo=timezone.utc)


def target(**recovery: Any) -> Target:
    rec: dict[str, Any] = {
        "enabled": True,
        "when": {"checks": ["hive"], "consecutive_failures": 2},
        "veto_if_failing": ["dns"],
        "routing": {"route53": {"zone_id": "Z1", "record": "hive.example.com"}},
        "verify": {"checks": ["hive"]},
    }
    rec.update(recovery)
    return Target.model_validate({
        "name": "prod-hive",
        "cluster": {"name": "RC.HIVE"},
        "checks": [
            {"type": "emr_state", "name": "hive"},
            {"type": "emr_state", "name": "dns"},
        ],
        "recovery": rec,
    })


def r(name: str, status: Status, kind: str | None = None) -> CheckResult:
    return CheckResult(name, "emr_state", status, f"{name} {status.name}", error_kind=kind)


def tick(t: Target, state: TargetState, hive: Status, dns: Status = Status.OK, **kw: Any):
    decision = evaluate(t, [r("hive", hive), r("dns", dns)], state, datetime.now(timezone.utc), **kw)
    state.consecutive_failures = decision.consecutive_failures
    state.streaks = decision.streaks
    state.consecutive_unknown = decision.consecutive_unknown
    return decision


@freeze_time(T0)
def test_failure_confirmed_only_after_threshold_consecutive_ticks() -> None:
    t, s = target(), TargetState()
    d1 = tick(t, s, Status.CRITICAL)
    assert (d1.verdict, d1.consecutive_failures, d1.recover) == ("failing", 1, False)
    d2 = tick(t, s, Status.CRITICAL)
    assert (d2.verdict, d2.consecutive_failures, d2.recover) == ("confirmed", 2, True)


@freeze_time(T0)
def test_ok_resets_the_streak() -> None:
    t, s = target(), TargetState()
    tick(t, s, Status.CRITICAL)
    assert tick(t, s, Status.OK).consecutive_failures == 0
    assert tick(t, s, Status.CRITICAL).verdict == "failing"


@freeze_time(T0)
def test_unknown_never_counts_as_failure_and_holds_the_streak() -> None:
    t, s = target(), TargetState()
    tick(t, s, Status.CRITICAL)
    d = tick(t, s, Status.UNKNOWN)
    assert d.consecutive_failures == 1
    assert d.verdict == "degraded"
    assert d.recover is False
    assert d.consecutive_unknown == 1
    assert tick(t, s, Status.CRITICAL).verdict == "confirmed"


@freeze_time(T0)
def test_warning_is_degraded_not_failing() -> None:
    d = tick(target(), TargetState(), Status.WARNING)
    assert (d.verdict, d.status) == ("degraded", Status.WARNING)


@freeze_time(T0)
def test_veto_check_failing_blocks_recovery() -> None:
    t, s = target(), TargetState(streaks={"hive": 1}, consecutive_failures=1)
    d = tick(t, s, Status.CRITICAL, dns=Status.CRITICAL)
    assert d.verdict == "confirmed"
    assert d.recover is False
    assert any(b.startswith("vetoed: dns is CRITICAL") for b in d.blocked_by)


@freeze_time(T0)
def test_veto_check_unknown_also_blocks() -> None:
    d = tick(target(), TargetState(streaks={"hive": 1}, consecutive_failures=1), Status.CRITICAL, dns=Status.UNKNOWN)
    assert not d.recover
    assert any("vetoed: dns is UNKNOWN" in b for b in d.blocked_by)


@freeze_time(T0)
def test_force_skips_only_the_threshold() -> None:
    t = target()
    d = tick(t, TargetState(), Status.CRITICAL, force=True)
    assert (d.verdict, d.recover) == ("confirmed", True)
    # force does not turn an OK check into a failure
    assert tick(t, TargetState(), Status.OK, force=True).verdict == "ok"
    # nor skip the veto
    assert tick(t, TargetState(), Status.CRITICAL, dns=Status.CRITICAL, force=True).recover is False


@freeze_time(T0)
def test_budget_counts_recoveries_in_the_window() -> None:
    t = target(limits={"max_recoveries": 1, "window_hours": 6})
    recent = TargetState(streaks={"hive": 1}, consecutive_failures=1, recoveries=[iso(T0 - timedelta(hours=5))])
    d = tick(t, recent, Status.CRITICAL)
    assert d.recover is False
    assert any(b.startswith("budget exhausted: 1 recoveries in the last 6 h") for b in d.blocked_by)
    old = TargetState(streaks={"hive": 1}, consecutive_failures=1, recoveries=[iso(T0 - timedelta(hours=7))])
    assert tick(t, old, Status.CRITICAL).recover is True


@freeze_time(T0)
def test_escalated_target_is_not_recovered_until_ack() -> None:
    s = TargetState(streaks={"hive": 1}, consecutive_failures=1, escalated={"at": iso(T0), "reason": "launch failed"})
    d = tick(target(), s, Status.CRITICAL)
    assert not d.recover
    assert any("sentinel ack" in b for b in d.blocked_by)


@freeze_time(T0)
def test_disabled_recovery_blocks() -> None:
    d = tick(target(enabled=False), TargetState(streaks={"hive": 1}, consecutive_failures=1), Status.CRITICAL)
    assert d.verdict == "confirmed" and not d.recover


def test_silences_expire_with_time() -> None:
    t = Target.model_validate({
        **target().model_dump(mode="json"),
        "silences": [{"until": iso(T0 + timedelta(hours=1)), "reason": "maintenance", "actions_only": True}],
    })
    with freeze_time(T0):
        d = tick(t, TargetState(streaks={"hive": 1}, consecutive_failures=1), Status.CRITICAL)
        assert not d.recover
        assert d.silence is not None and d.silence.actions_only
        assert not d.notifications_silenced
    with freeze_time(T0 + timedelta(hours=2)):
        d = tick(t, TargetState(streaks={"hive": 1}, consecutive_failures=1), Status.CRITICAL)
        assert d.recover and d.silence is None


def test_manual_full_silence_wins_over_actions_only() -> None:
    s = TargetState(streaks={"hive": 1}, consecutive_failures=1, silences=[
        {"until": iso(T0 + timedelta(hours=3)), "reason": "deploy", "actions_only": True},
        {"until": iso(T0 + timedelta(hours=1)), "reason": "quiet", "actions_only": False},
    ])
    with freeze_time(T0):
        d = tick(target(), s, Status.CRITICAL)
    assert d.silence is not None and d.silence.reason == "quiet"
    assert d.notifications_silenced


@freeze_time(T0)
def test_missing_trigger_result_holds_streak() -> None:
    t, s = target(), TargetState(streaks={"hive": 1}, consecutive_failures=1)
    d = evaluate(t, [r("dns", Status.OK)], s, datetime.now(timezone.utc))
    assert d.consecutive_failures == 1


def two_triggers(**recovery: Any) -> Target:
    return target(when={"checks": ["hive", "dns"], "consecutive_failures": 2}, veto_if_failing=[], **recovery)


@freeze_time(T0)
def test_streaks_are_per_check_one_failure_of_each_confirms_nothing() -> None:
    """hive CRITICAL then dns CRITICAL: two failures in a row, but neither check confirmed one."""
    t, s = two_triggers(), TargetState()
    tick(t, s, Status.CRITICAL, dns=Status.OK)
    d = tick(t, s, Status.OK, dns=Status.CRITICAL)
    assert d.verdict == "failing" and not d.recover and d.streaks == {"hive": 0, "dns": 1}
    d = tick(t, s, Status.OK, dns=Status.CRITICAL)
    assert d.verdict == "confirmed" and d.recover and d.streaks["dns"] == 2


@freeze_time(T0)
def test_a_check_dropped_from_when_checks_loses_its_streak() -> None:
    s = TargetState(streaks={"hive": 1, "dns": 1}, consecutive_failures=1)
    t = target(when={"checks": ["hive"], "consecutive_failures": 2}, veto_if_failing=[])
    d = evaluate(t, [r("hive", Status.OK), r("dns", Status.CRITICAL)], s, datetime.now(timezone.utc))
    assert d.streaks == {"hive": 0} and d.verdict == "degraded"


@freeze_time(T0)
def test_an_error_kind_a_relaunch_cannot_fix_pages_instead_of_recovering() -> None:
    t, s = target(), TargetState(streaks={"hive": 1}, consecutive_failures=1)
    d = evaluate(t, [r("hive", Status.CRITICAL, "dns"), r("dns", Status.OK)], s, datetime.now(timezone.utc))
    assert d.verdict == "confirmed" and not d.recover
    assert any("error kind dns" in b for b in d.blocked_by)
    d = evaluate(t, [r("hive", Status.CRITICAL, "no_backend"), r("dns", Status.OK)], s, datetime.now(timezone.utc))
    assert d.recover


@pytest.mark.parametrize(("recovery", "missing"), [
    ({"when": None, "enabled": False}, "recovery.when"),
    ({"routing": {}}, "recovery.routing"),
    ({"verify": {"checks": []}, "enabled": False}, "recovery.verify.checks"),
    ({"routing": {"target_group_arn": "arn:aws:elasticloadbalancing:us-east-1:1:targetgroup/x/1"}},
     "recovery.verify.master"),
])
@freeze_time(T0)
def test_a_target_that_cannot_be_recovered_safely_is_never_recovered_even_by_force(
        recovery: dict[str, Any], missing: str) -> None:
    raw = {"enabled": False, "when": {"checks": ["hive"], "consecutive_failures": 2},
           "routing": {"route53": {"zone_id": "Z1", "record": "hive.example.com"}}, "verify": {"checks": ["hive"]}}
    raw.update(recovery)
    raw = {k: v for k, v in raw.items() if v is not None}
    t = Target.model_validate({"name": "prod-hive", "cluster": {"name": "RC.HIVE"},
                               "checks": [{"type": "emr_state", "name": "hive"}, {"type": "emr_state", "name": "dns"}],
                               "recovery": raw})
    d = evaluate(t, [r("hive", Status.CRITICAL), r("dns", Status.OK)], TargetState(), datetime.now(timezone.utc),
                 force=True, manual=True)
    assert d.verdict == "confirmed" and not d.recover
    assert any(missing in b for b in d.blocked_by), d.blocked_by
