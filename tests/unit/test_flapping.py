"""Flapping is seen (DESIGN §11, issue 19 item 8): a check whose status keeps changing over its
last `notify.flap.window` looks (weighted toward recent ones, as Nagios does) is paged once as
flapping, shown in `status` and the `Flapping` metric, and cleared with an info message once
it is steady. Flapping never starts a relaunch; `recovery.when.on_flapping: restart` may allow
the ladder's restart rung."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from checks.base import CheckResult, Deadline, Status
from monitor import actions, flap
from monitor.config import Target
from monitor.core.errors import ConfigError
from monitor.core.state.base import TargetState
from monitor.cycle import run_tick
from monitor.notify import Message
from monitor.policy import evaluate
from monitor.report import TickReport
from monitor.runtime import Services, new_invocation
from tests.fakes import FakeClock, Script, fake_config, services

TARGET = "prod-hive"
ENABLED = {"enabled": True, "when": {"checks": ["hive"], "consecutive_failures": 2},
           "routing": {"route53": {"zone_id": "Z1", "record": "hive.example.com"}}, "verify": {"checks": ["hive"]}}
LOOK = timedelta(minutes=5)  # a probe's pace: well beyond min_gap_s


def look(svc: Services, fake_checks: Script, hive: Status) -> tuple[TickReport, list[Message]]:
    fake_checks.set("hive", hive, "refused" if hive is Status.CRITICAL else None)
    inv = new_invocation(svc)
    report = run_tick(inv, deadline=Deadline.after(30))
    assert isinstance(svc.clock, FakeClock)
    svc.clock.advance(seconds=LOOK.total_seconds())
    return report, list(inv.notifier.sent)


def flapping_value(report: TickReport, check: str = "hive") -> float | None:
    values = [m["value"] for m in report.metrics if m["name"] == "Flapping" and m["dimensions"].get("check") == check]
    return values[-1] if values else None


def status_entry(svc: Services) -> dict[str, Any]:
    data = actions.status(new_invocation(svc), [TARGET]).data
    assert data is not None
    return dict(data["targets"][TARGET])


# ---------------------------------------------------------------- the measure


def test_the_share_of_state_changes_is_weighted_toward_recent_looks_as_nagios_does() -> None:
    assert flap.state_change_share("OC" * 10 + "O") == pytest.approx(1.0)  # changes on every look
    assert flap.state_change_share("O" * 21) == 0.0
    assert flap.state_change_share("C" + "O" * 20) == pytest.approx(0.8 / 20)  # the oldest change weighs 0.8
    assert flap.state_change_share("O" * 20 + "C") == pytest.approx(1.2 / 20)  # the newest 1.2
    middle = flap.state_change_share("O" * 10 + "C" * 11)  # the 10th of 20 transitions
    assert middle == pytest.approx((0.8 + 0.4 * 9 / 19) / 20)


# ---------------------------------------------------------------- the tick


def test_a_check_failing_every_other_look_is_paged_once_as_flapping_and_never_relaunched(
        fake_checks: Script) -> None:
    svc = services(fake_config(recovery=ENABLED))
    pages: list[Message] = []
    reports: list[TickReport] = []
    for i in range(30):
        report, sent = look(svc, fake_checks, Status.CRITICAL if i % 2 == 0 else Status.OK)
        reports.append(report)
        pages += sent
        t = report.targets[0]
        assert t.recovery is None and t.decision and t.decision["recover"] is False, i
    flapping = [m for m in pages if m.kind == "flapping"]
    assert len(flapping) == 1 and flapping[0].severity == "page" and "flapping" in flapping[0].subject
    assert "hive" in flapping[0].subject and "never starts a relaunch" in flapping[0].body
    assert [m.kind for m in pages if m.kind != "flapping"] == []  # no confirmed/resolved storm either
    assert flapping_value(reports[0]) == 0.0 and flapping_value(reports[-1]) == 1.0
    assert flapping_value(reports[-1], "dns") == 0.0
    state = svc.store.get(TARGET)
    assert state.recoveries == [] and state.incident is None
    shown = status_entry(svc)["flapping"]
    assert list(shown) == ["hive"] and shown["hive"]["share"] > 0.5 and shown["hive"]["paged"] is True
    assert any("hive is flapping" in n for n in reports[-1].targets[0].notes)

    cleared: list[Message] = []
    for _ in range(21):  # it stabilises: OK from now on
        report, sent = look(svc, fake_checks, Status.OK)
        cleared += sent
    assert [(m.kind, m.severity) for m in cleared] == [("flapping-cleared", "info")]
    assert "no longer flapping" in cleared[0].subject
    assert status_entry(svc)["flapping"] == {} and flapping_value(report) == 0.0


def test_the_window_must_be_full_before_a_check_is_judged(fake_checks: Script) -> None:
    svc = services(fake_config(notify={"page_topic_arn": "arn:aws:sns:us-east-1:123456789012:pages",
                                       "flap": {"window": 5}}))
    kinds: list[str] = []
    for i in range(5):
        _, sent = look(svc, fake_checks, Status.CRITICAL if i % 2 == 0 else Status.OK)
        kinds += [m.kind for m in sent]
        if i < 4:
            assert "flapping" not in kinds, i
    assert kinds == ["flapping"]


def test_looks_sooner_than_min_gap_s_are_not_recorded(fake_checks: Script) -> None:
    svc = services(fake_config(notify={"page_topic_arn": "arn:aws:sns:us-east-1:123456789012:pages",
                                       "flap": {"window": 5}}))
    assert isinstance(svc.clock, FakeClock)
    for i in range(10):  # ten looks 2 s apart: one minute of duplicates is one look
        fake_checks.set("hive", Status.CRITICAL if i % 2 == 0 else Status.OK, "refused")
        run_tick(new_invocation(svc), deadline=Deadline.after(30))
        svc.clock.advance(seconds=2)
    assert svc.store.get(TARGET).flap["hive"]["looks"] == "C"


def test_a_silenced_flapping_page_goes_out_once_the_silence_ends(fake_checks: Script) -> None:
    svc = services(fake_config())
    actions.silence(new_invocation(svc, requested_by="alice"), TARGET, "3h", "maintenance")
    kinds: list[str] = []
    for i in range(30):  # 2.5 h of looks every 5 min: flapping from the 21st, silenced
        _, sent = look(svc, fake_checks, Status.CRITICAL if i % 2 == 0 else Status.OK)
        kinds += [m.kind for m in sent]
    assert "flapping" not in kinds and flap.is_flapping(svc.store.get(TARGET), "hive")
    for i in range(10):  # the silence ends during these
        _, sent = look(svc, fake_checks, Status.CRITICAL if i % 2 == 0 else Status.OK)
        kinds += [m.kind for m in sent]
    assert kinds.count("flapping") == 1


def test_corrupt_flap_records_start_afresh(fake_checks: Script) -> None:
    svc = services(fake_config())
    svc.store.put(TARGET, TargetState(flap={"hive": "garbage", "dns": {"looks": 5, "share": "x", "since": 3}}),
                  lease=None, now=svc.clock.now())
    report, _ = look(svc, fake_checks, Status.OK)
    assert report.targets[0].error is None
    assert svc.store.get(TARGET).flap["hive"]["looks"] == "O"
    assert status_entry(svc)["flapping"] == {}


# ---------------------------------------------------------------- on_flapping


def ladder_target(on_flapping: str, ladder: list[dict[str, Any]] | None = None) -> Target:
    return Target.model_validate({
        "name": TARGET, "cluster": {"name": "RC.HIVE"},
        "checks": [{"type": "emr_state", "name": "hive"}],
        "recovery": {
            "enabled": True, "when": {"checks": ["hive"], "consecutive_failures": 2, "on_flapping": on_flapping},
            "routing": {"route53": {"zone_id": "Z1", "record": "hive.example.com"}}, "verify": {"checks": ["hive"]},
            "ladder": ladder if ladder is not None else [{"rung": "restart_service"}, {"rung": "replace"}],
        },
    })


def flapping_state(**kw: Any) -> TargetState:
    now = "2026-11-23T06:00:00.000000Z"
    return TargetState(flap={"hive": {"looks": "CO" * 10 + "C", "at": now, "share": 1.0, "since": now,
                                      "paged": now}}, **kw)


NOW = datetime(2026, 11, 23, 7, 0, tzinfo=UTC)
CRIT = [CheckResult("hive", "emr_state", Status.CRITICAL, "hive CRITICAL", error_kind="refused")]


def test_flapping_never_starts_a_recovery_by_default() -> None:
    d = evaluate(ladder_target("none"), CRIT, flapping_state(), NOW)
    assert (d.verdict, d.recover, d.restart_only, d.flapping) == ("failing", False, False, ["hive"])


def test_on_flapping_restart_starts_a_recovery_limited_to_restart_rungs() -> None:
    d = evaluate(ladder_target("restart"), CRIT, flapping_state(), NOW)
    assert (d.verdict, d.recover, d.restart_only) == ("confirmed", True, True)
    assert any("flapping and CRITICAL now" in r for r in d.reasons)
    ok = [CheckResult("hive", "emr_state", Status.OK, "hive OK")]
    assert evaluate(ladder_target("restart"), ok, flapping_state(), NOW).recover is False  # only a failing look


@pytest.mark.parametrize(("ladder", "state", "why"), [
    ([{"rung": "replace"}], {}, "has no restart_service rung"),
    (None, {"rung_uses": {"restart_service": ["2026-11-23T06:30:00.000000Z"] * 2}},
     "the first rung with budget is replace"),
])
def test_on_flapping_restart_never_falls_through_to_a_relaunch(
        ladder: list[dict[str, Any]] | None, state: dict[str, Any], why: str) -> None:
    d = evaluate(ladder_target("restart", ladder), CRIT, flapping_state(**state), NOW)
    assert (d.verdict, d.recover) == ("failing", False)
    assert any(r.startswith("restart for flapping not started") and why in r for r in d.reasons), d.reasons


# ---------------------------------------------------------------- config


def test_flap_defaults_are_nagios_sized(fake_checks: Script) -> None:
    f = fake_config().notify.flap
    assert (f.window, f.high, f.low) == (21, 0.5, 0.25)


@pytest.mark.parametrize(("flap_cfg", "expected"), [
    ({"window": 4}, "notify.flap.window: must be >= 5"),
    ({"window": 51}, "notify.flap.window: must be <= 50"),
    ({"high": 1.5}, "notify.flap.high: must be <= 1"),
    ({"low": -0.1}, "notify.flap.low: must be >= 0"),
    ({"low": 0.6}, "notify.flap.high: must be > notify.flap.low (0.6)"),
    ({"low": 0.3, "high": 0.3}, "notify.flap.high: must be > notify.flap.low (0.3)"),
    ({"windows": 21}, "notify.flap.windows: unknown key"),
])
def test_bad_flap_settings_are_refused_naming_their_path(
        fake_checks: Script, flap_cfg: dict[str, Any], expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        fake_config(notify={"page_topic_arn": "arn:aws:sns:us-east-1:123456789012:pages", "flap": flap_cfg})
    assert any(e.startswith(expected) for e in info.value.errors), info.value.errors
