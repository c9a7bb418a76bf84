"""Evidence is spaced (DESIGN §11, issue 19 item 3): a CRITICAL look adds to its check's streak
only `recovery.when.min_gap_s` after the look that last added to it. Duplicated dispatches,
a tick racing a re-check and quick manual ticks are reported, not counted."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest

from checks.base import Deadline, Status
from monitor import queue
from monitor.config import parse_config
from monitor.core.errors import ConfigError
from monitor.core.state.base import TargetState
from monitor.cycle import run_tick
from monitor.report import TargetReport
from monitor.runtime import Services, new_invocation
from tests.fakes import FakeClock, Script, fake_config, services

ENABLED = {"enabled": True, "when": {"checks": ["hive"], "consecutive_failures": 2},
           "routing": {"route53": {"zone_id": "Z1", "record": "hive.example.com"}}, "verify": {"checks": ["hive"]}}
TARGET = "prod-hive"


def tick(svc: Services, *, due_at: datetime | None = None, action: str = "tick") -> TargetReport:
    inv = new_invocation(svc, request_id="t")
    inv.due_at = due_at
    return run_tick(inv, deadline=Deadline.after(30), action=action).targets[0]


def enabled(**when: Any) -> Services:
    return services(fake_config(recovery={**ENABLED, "when": {**ENABLED["when"], **when}}))


def clock_of(svc: Services) -> FakeClock:
    assert isinstance(svc.clock, FakeClock)
    return svc.clock


# ---------------------------------------------------------------- the tick


def test_two_dispatches_two_seconds_apart_leave_the_streak_at_one_and_start_no_recovery(fake_checks: Script) -> None:
    svc = enabled()
    fake_checks.set("hive", Status.CRITICAL, "refused")
    first = tick(svc)
    clock_of(svc).advance(seconds=2)  # EventBridge delivered the same schedule twice
    second = tick(svc)
    assert first.decision and first.decision["streaks"] == {"hive": 1}
    assert second.decision and second.decision["streaks"] == {"hive": 1}
    assert second.decision["verdict"] == "failing" and second.decision["recover"] is False
    assert second.recovery is None and second.decision["not_counted"] == ["hive"]
    assert "hive: look not counted: 2 s since the last counted look (min_gap_s 60)" in second.decision["reasons"]
    state = svc.store.get(TARGET)
    assert state.streaks == {"hive": 1} and state.consecutive_failures == 1 and state.recoveries == []
    assert [c.status for c in second.checks][0] is Status.CRITICAL  # the look itself is reported


def test_two_ticks_61_seconds_apart_count_two_and_confirm(fake_checks: Script) -> None:
    svc = enabled()
    fake_checks.set("hive", Status.CRITICAL, "refused")
    tick(svc)
    clock_of(svc).advance(seconds=61)
    second = tick(svc)
    assert second.decision and second.decision["streaks"] == {"hive": 2}
    assert second.decision["verdict"] == "confirmed" and second.decision["recover"] is True
    assert second.decision["not_counted"] == []


def test_the_gap_runs_from_the_last_counted_look_not_the_last_look(fake_checks: Script) -> None:
    svc = enabled(consecutive_failures=3)
    fake_checks.set("hive", Status.CRITICAL, "timeout")
    for seconds in (0, 30, 29):  # looks at 0, 30 and 59 s: quick manual ticks, not counted, do not
        clock_of(svc).advance(seconds=seconds)  # push the next counted look further away
        tick(svc)
    assert svc.store.get(TARGET).streaks == {"hive": 1}
    clock_of(svc).advance(seconds=1)  # 60 s after the first (counted) look, 1 s after the last
    counted = tick(svc)
    assert counted.decision and counted.decision["streaks"] == {"hive": 2} and counted.decision["not_counted"] == []


def test_ok_and_unknown_looks_are_not_spaced(fake_checks: Script) -> None:
    svc = enabled(consecutive_failures=3)
    fake_checks.set("hive", Status.CRITICAL, "timeout")
    tick(svc)
    clock_of(svc).advance(seconds=2)
    fake_checks.set("hive", Status.OK)
    assert tick(svc).decision["streaks"] == {"hive": 0}  # type: ignore[index]  # an OK look resets at once
    clock_of(svc).advance(seconds=2)
    fake_checks.set("hive", Status.CRITICAL, "timeout")
    assert tick(svc).decision["streaks"] == {"hive": 1}  # type: ignore[index]  # a new streak's first look counts
    clock_of(svc).advance(seconds=2)
    fake_checks.set("hive", Status.UNKNOWN, "auth")
    unknown = tick(svc).decision
    assert unknown and unknown["streaks"] == {"hive": 1} and unknown["not_counted"] == []  # held, as always


def test_min_gap_s_zero_counts_every_look(fake_checks: Script) -> None:
    svc = enabled(min_gap_s=0)
    fake_checks.set("hive", Status.CRITICAL, "refused")
    tick(svc)
    clock_of(svc).advance(seconds=2)
    second = tick(svc)
    assert second.decision and second.decision["streaks"] == {"hive": 2} and second.decision["recover"] is True


def test_a_quick_manual_check_changes_nothing_and_a_dry_run_reports_the_look_as_not_counted(
        fake_checks: Script) -> None:
    svc = enabled()
    fake_checks.set("hive", Status.CRITICAL, "refused")
    tick(svc)
    clock_of(svc).advance(seconds=5)
    inv = new_invocation(svc, dry_run=True)
    dry = run_tick(inv, deadline=Deadline.after(30)).targets[0]
    assert dry.decision and dry.decision["not_counted"] == ["hive"] and dry.decision["recover"] is False
    assert svc.store.get(TARGET).streaks == {"hive": 1}


def test_a_streak_saved_before_spacing_existed_still_counts(fake_checks: Script) -> None:
    """State written by an older version has streaks but no streak_at: its next look counts."""
    svc = enabled()
    svc.store.put(TARGET, TargetState(streaks={"hive": 1}, consecutive_failures=1, last_decision="failing"),
                  lease=None, now=svc.clock.now())
    fake_checks.set("hive", Status.CRITICAL, "refused")
    assert tick(svc).decision["streaks"] == {"hive": 2}  # type: ignore[index]


@pytest.mark.parametrize("stored", ["not-a-date", 5, None, "9999-12-31T23:59:59Z"])
def test_an_unreadable_or_future_streak_time_counts_rather_than_blocking_for_good(
        fake_checks: Script, stored: Any) -> None:
    svc = enabled()
    svc.store.put(TARGET, TargetState(streaks={"hive": 1}, streak_at={"hive": stored}, consecutive_failures=1),
                  lease=None, now=svc.clock.now())
    fake_checks.set("hive", Status.CRITICAL, "refused")
    assert tick(svc).decision["streaks"] == {"hive": 2}  # type: ignore[index]


# ---------------------------------------------------------------- the queue's re-checks


class RecordingQueue:
    def __init__(self) -> None:
        self.sent: list[tuple[str, int, datetime]] = []

    def send(self, targets: list[str], *, kind: str, due_at: datetime, delay_s: int = 0) -> queue.Sent:
        out = queue.Sent()
        for t in targets:
            self.sent.append((kind, delay_s, due_at))
            out.ids[t] = f"id-{len(self.sent)}"
        return out


def test_a_recheck_after_recheck_after_s_counts_and_a_tick_racing_it_does_not(fake_checks: Script) -> None:
    raw: dict[str, Any] = {
        "version": 1, "region": "us-east-1", "state_table": "sentinel-state", "dispatch": "queue",
        "notify": {"page_topic_arn": "arn:aws:sns:us-east-1:123456789012:p"},
        "targets": [{"name": TARGET, "cluster": {"name": "RC.HIVE"}, "checks": [{"type": "fake", "name": "hive"}],
                     "recovery": {"enabled": False, "when": {"checks": ["hive"], "consecutive_failures": 3}}}],
    }
    clock = FakeClock()
    svc = services(parse_config(raw), clock=clock)
    rq = RecordingQueue()
    svc.queue = rq
    fake_checks.set("hive", Status.CRITICAL, "timeout")
    tick(svc)
    [(kind, delay, due)] = rq.sent
    assert (kind, delay) == ("re-check", 120)
    clock.t = due
    recheck = tick(svc, due_at=due)  # the re-check, 120 s later: counts
    assert recheck.decision and recheck.decision["streaks"] == {"hive": 2}
    clock.advance(seconds=3)  # a scheduled tick that became due just after the re-check ran
    racing = tick(svc, due_at=due + timedelta(seconds=1))
    assert racing.skipped is None and racing.decision and racing.decision["streaks"] == {"hive": 2}
    assert any("look not counted: 3 s" in r for r in racing.decision["reasons"])
    clock.t = rq.sent[-1][2]
    final = tick(svc, due_at=rq.sent[-1][2])  # the next re-check confirms
    assert final.decision and final.decision["verdict"] == "confirmed"


# ---------------------------------------------------------------- config


def test_min_gap_s_defaults_to_60_and_on_flapping_to_none(fake_checks: Script) -> None:
    when = fake_config().targets[0].recovery.when
    assert when is not None and (when.min_gap_s, when.on_flapping) == (60, "none")


@pytest.mark.parametrize(("when", "expected"), [
    ({"min_gap_s": 901}, "targets[0].recovery.when.min_gap_s: must be <= 900"),
    ({"min_gap_s": -1}, "targets[0].recovery.when.min_gap_s: must be >= 0"),
    ({"recheck_after_s": 30}, "targets[0].recovery.when.min_gap_s: must be <= recheck_after_s (30) or 0"),
    ({"recheck_after_s": 30, "min_gap_s": 31}, "targets[0].recovery.when.min_gap_s: must be <= recheck_after_s"),
    ({"on_flapping": "relaunch"}, "targets[0].recovery.when.on_flapping"),
])
def test_bad_evidence_settings_are_refused_naming_their_path(
        fake_checks: Script, when: dict[str, Any], expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        fake_config(recovery={"enabled": False, "when": {"checks": ["hive"], **when}})
    assert any(e.startswith(expected) for e in info.value.errors), info.value.errors


@pytest.mark.parametrize("when", [{"recheck_after_s": 30, "min_gap_s": 30}, {"recheck_after_s": 0},
                                  {"recheck_after_s": 30, "min_gap_s": 0}, {"on_flapping": "restart"}])
def test_good_evidence_settings_load(fake_checks: Script, when: dict[str, Any]) -> None:
    assert fake_config(recovery={"enabled": False, "when": {"checks": ["hive"], **when}}).targets


# ---------------------------------------------------------------- a listed alarm is one look (issue 22)

ALARM = "sentinel-trigger-prod-hive-no-backend"


def with_alarm(**when: Any) -> Services:
    svc = enabled(**when)
    raw = svc.config.model_dump(mode="json", exclude_none=True)
    raw["targets"][0]["triggers"] = {"alarms": [ALARM]}
    svc.config = parse_config(raw)
    return svc


def alarm_tick(svc: Services, *, changed: datetime | None = None, name: str = ALARM, state: str = "ALARM",
               action: str = "tick") -> TargetReport:
    """A tick carrying an alarm event's evidence (what monitor.triggers attaches to it)."""
    inv = new_invocation(svc, request_id="t")
    at = changed or clock_of(svc).now()
    inv.evidence = {TARGET: {"alarm": name, "state": state, "time": at.isoformat(), "id": "ev"}}
    return run_tick(inv, deadline=Deadline.after(30), action=action).targets[0]


def test_a_listed_alarm_in_alarm_and_a_critical_look_confirm_at_once(fake_checks: Script) -> None:
    svc = with_alarm()
    fake_checks.set("hive", Status.CRITICAL, "no_backend")
    rep = alarm_tick(svc, changed=clock_of(svc).now() - timedelta(seconds=5))
    assert rep.decision and rep.decision["streaks"] == {"hive": 2}
    assert rep.decision["verdict"] == "confirmed" and rep.decision["recover"] is True
    assert any(f"alarm {ALARM!r} in ALARM since" in r for r in rep.decision["reasons"])


def test_without_the_alarm_the_same_look_is_only_the_first(fake_checks: Script) -> None:
    svc = with_alarm()
    fake_checks.set("hive", Status.CRITICAL, "no_backend")
    rep = tick(svc)
    assert rep.decision and rep.decision["streaks"] == {"hive": 1} and rep.decision["verdict"] == "failing"


def test_the_alarm_never_confirms_alone_a_look_that_does_not_fail(fake_checks: Script) -> None:
    svc = with_alarm()
    fake_checks.set("hive", Status.OK, "fine")
    rep = alarm_tick(svc)
    assert rep.decision and rep.decision["streaks"] == {"hive": 0} and rep.decision["verdict"] == "ok"
    assert any("not counted (no trigger check CRITICAL" in r for r in rep.decision["reasons"])
    fake_checks.set("hive", Status.UNKNOWN, "cannot judge")
    clock_of(svc).advance(seconds=61)
    assert alarm_tick(svc).decision["streaks"] == {"hive": 0}  # type: ignore[index]


def test_one_alarm_change_counts_once_however_often_it_is_delivered(fake_checks: Script) -> None:
    svc = with_alarm(consecutive_failures=3)
    fake_checks.set("hive", Status.CRITICAL, "no_backend")
    changed = clock_of(svc).now()
    first = alarm_tick(svc, changed=changed)
    clock_of(svc).advance(seconds=3)
    again = alarm_tick(svc, changed=changed)  # EventBridge delivered it twice
    assert first.decision and first.decision["streaks"] == {"hive": 2}
    assert again.decision and again.decision["streaks"] == {"hive": 2} and again.decision["verdict"] == "failing"
    clock_of(svc).advance(seconds=60)
    later = alarm_tick(svc, changed=changed)  # a late copy: the spaced look counts, the alarm not again
    assert later.decision and later.decision["streaks"] == {"hive": 3}


@pytest.mark.parametrize("case", ["stale", "future", "not-listed", "ok-state", "looked-since"])
def test_an_alarm_that_is_not_fresh_evidence_is_not_a_look(fake_checks: Script, case: str) -> None:
    svc = with_alarm()
    fake_checks.set("hive", Status.CRITICAL, "no_backend")
    now = clock_of(svc).now()
    changed = {"stale": now - timedelta(minutes=11), "future": now + timedelta(minutes=5)}.get(case, now)
    if case == "looked-since":  # a look after the alarm changed did not fail: the alarm is stale
        fake_checks.set("hive", Status.OK, "fine")
        clock_of(svc).advance(seconds=30)
        tick(svc)
        fake_checks.set("hive", Status.CRITICAL, "no_backend")
        clock_of(svc).advance(seconds=30)
    rep = alarm_tick(svc, changed=changed, name="someone-elses" if case == "not-listed" else ALARM,
                     state="OK" if case == "ok-state" else "ALARM")
    assert rep.decision and rep.decision["streaks"] == {"hive": 1} and rep.decision["verdict"] == "failing"
