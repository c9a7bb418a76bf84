"""Every page ends with the same "at a glance" block: the target, what failed, since when (in
``notify.timezone`` and in UTC), what sentinel did or will do, and the exact command to run
next. The kinds are read from the code, so a page kind added later is tested too."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from monitor.config import Notify
from monitor.core.errors import ConfigError, StateError
from monitor.core.state.base import TargetState
from monitor.notify import DEFAULT_GUIDE, KIND_GUIDE, Notifier, PageFacts, facts_from_state

ROOT = Path(__file__).resolve().parents[2]
TOPIC = "arn:aws:sns:us-east-1:123456789012:sentinel-pages"
FAILED_AT = datetime(2026, 12, 1, 4, 9, tzinfo=UTC)
PAGE_CALL = re.compile(r'notifier\.page\(\s*[^,()]+,\s*"([a-z-]+)"|_send\(\s*"page",\s*"([a-z-]+)"')


def page_kinds_in_code() -> set[str]:
    """Every literal page kind in monitor/ and recover/, plus ``unknown`` (sent through a
    variable in the tick's ``_notify``) and ``state-unreadable`` (through ``page_outages``)."""
    kinds = {"unknown", "state-unreadable"}
    for path in [*ROOT.glob("monitor/**/*.py"), *ROOT.glob("recover/**/*.py")]:
        for m in PAGE_CALL.finditer(path.read_text()):
            kinds.add(m.group(1) or m.group(2))
    return kinds


class Sns:
    def __init__(self) -> None:
        self.published: list[dict[str, Any]] = []

    def publish(self, **kwargs: Any) -> dict[str, str]:
        self.published.append(kwargs)
        return {"MessageId": "1"}


def notifier(facts: Any = None, timezone: str = "Europe/Berlin") -> tuple[Notifier, Sns]:
    sns = Sns()
    return Notifier(sns, TOPIC, None, timezone=timezone, facts=facts,
                    now=lambda: datetime(2026, 12, 1, 4, 30, tzinfo=UTC)), sns


def glance(body: str) -> dict[str, str]:
    block = body.split("-- at a glance --\n", 1)[1]
    return {k: v.strip() for k, v in (line.split(":", 1) for line in block.splitlines())}


def test_the_code_pages_the_kinds_this_test_knows() -> None:
    kinds = page_kinds_in_code()
    assert {"confirmed", "unknown", "resolved", "state-unreadable", "incident-orphaned", "recovery-started",
            "recovery-succeeded", "recovery-escalated", "recovery-stalled", "recovery-aborted",
            "recovery-dry-run"} <= kinds


@pytest.mark.parametrize("kind", sorted(page_kinds_in_code()))
def test_every_page_kind_says_target_failure_since_when_action_and_next_command(kind: str) -> None:
    facts = PageFacts(failed="hive-via-elb CRITICAL (no_backend)", since=FAILED_AT, since_label="Failing since",
                      incident="prod-hive-20261201T0409Z-abc in WAIT_READY")
    n, sns = notifier(lambda _t: facts)
    n.page("prod-hive", kind, "something happened", "What happened, in the kind's own words.")
    body = sns.published[0]["Message"]
    assert body.startswith("What happened, in the kind's own words.")
    g = glance(body)
    assert g["Target"] == "prod-hive"
    assert (g.get("Failed") or g.get("Had failed")) == "hive-via-elb CRITICAL (no_backend)"
    assert g["Failing since"] == "2026-12-01 05:09 CET (Europe/Berlin) = 04:09 UTC"
    assert g["Incident"].startswith("prod-hive-20261201T0409Z-abc")
    assert kind in KIND_GUIDE, f"page kind {kind!r} has no specific guidance in monitor.notify.KIND_GUIDE"
    assert g["sentinel"] and g["sentinel"] != DEFAULT_GUIDE[0]
    assert re.search(r"\bsentinel (status|check|plan|ack|abort|recover|approve|deny) --target prod-hive\b", g["Next"]), g["Next"]


def test_a_kind_nobody_listed_still_gets_a_complete_block() -> None:
    n, sns = notifier(lambda _t: PageFacts(failed="hive CRITICAL (timeout)", since=FAILED_AT))
    n.page("prod-hive", "recovery-restart-rung-7", "new", "body")
    g = glance(sns.published[0]["Message"])
    assert g["sentinel"] == "see above"
    assert g["Next"] == "sentinel status --target prod-hive"


def test_utc_is_said_once_when_the_zone_is_utc() -> None:
    n, sns = notifier(lambda _t: PageFacts(failed="x CRITICAL", since=FAILED_AT), timezone="UTC")
    n.page("prod-hive", "confirmed", "s", "b")
    assert glance(sns.published[0]["Message"])["Since"] == "2026-12-01 04:09 UTC"


def test_an_unreadable_state_table_still_sends_the_page_with_what_it_cannot_know() -> None:
    def broken(_t: str) -> PageFacts:
        raise StateError("get_item failed (AccessDenied)")

    n, sns = notifier(broken)
    msg = n.page("prod-hive", "state-unreadable", "state store unreadable", "body")
    g = glance(sns.published[0]["Message"])
    assert msg.delivered
    assert g["Failed"] == "unknown (state table unreadable)"
    assert g["Since"].startswith("not known; sent 2026-12-01 05:30 CET (Europe/Berlin) = 04:30 UTC")


def test_facts_the_tick_noted_win_over_the_stored_state() -> None:
    n, sns = notifier(lambda _t: PageFacts(failed="stale"))
    n.note("prod-hive", PageFacts(failed="hive CRITICAL (refused)", since=FAILED_AT, since_label="Failing since"))
    n.page("prod-hive", "confirmed", "s", "b")
    assert glance(sns.published[0]["Message"])["Failed"] == "hive CRITICAL (refused)"


def test_facts_from_state_use_failing_since_else_the_incident_start() -> None:
    st = TargetState(last_results=[{"name": "hive", "status": "CRITICAL", "error_kind": "timeout"},
                                   {"name": "cluster-state", "status": "OK"}],
                     failing_since="2026-12-01T04:09:00Z")
    f = facts_from_state(st)
    assert (f.failed, f.since, f.since_label) == ("hive CRITICAL (timeout)", FAILED_AT, "Failing since")
    done = TargetState(incident={"id": "i-1", "phase": "DONE", "started_at": "2026-12-01T04:09:00Z"})
    f = facts_from_state(done)
    assert (f.failed, f.since, f.since_label, f.incident) == (None, FAILED_AT, "Incident started", "i-1 in DONE")


def test_notify_timezone_is_an_iana_name() -> None:
    assert Notify(page_topic_arn=TOPIC).timezone == "UTC"
    assert Notify(page_topic_arn=TOPIC, timezone="Europe/Berlin").timezone == "Europe/Berlin"
    with pytest.raises(ValueError, match="unknown IANA time zone 'Mars/Olympus'"):
        Notify(page_topic_arn=TOPIC, timezone="Mars/Olympus")


def test_a_bad_timezone_is_a_config_error_with_its_path() -> None:
    from monitor.config import parse_config

    raw = {"version": 1, "region": "us-east-1", "state_table": "t",
           "notify": {"page_topic_arn": TOPIC, "timezone": "Berlin"},
           "targets": [{"name": "a", "cluster": {"name": "C"}, "checks": [{"type": "emr_state", "name": "s"}]}]}
    with pytest.raises(ConfigError) as exc:
        parse_config(raw)
    assert any(e.startswith("notify.timezone:") for e in exc.value.errors), exc.value.errors
