"""Manual actions on sentinel's own state: silence limits, ack semantics."""

from __future__ import annotations

import pytest

from monitor import actions
from monitor.core.errors import UsageError
from monitor.core.state.base import TargetState
from monitor.runtime import new_invocation
from tests.fakes import Script, fake_config, services


@pytest.mark.parametrize(("text", "seconds"), [("30m", 1800), ("2h", 7200), ("1d", 86400), ("90s", 90)])
def test_durations(text: str, seconds: int) -> None:
    assert actions.parse_duration(text).total_seconds() == seconds


@pytest.mark.parametrize("text", ["forever", "0h", "15d", "-1h", "2 hours"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(UsageError):
        actions.parse_duration(text)


def test_ack_keeps_a_rollback_in_progress(fake_checks: Script) -> None:
    svc = services(fake_config())
    svc.store.put("prod-hive", TargetState(incident={"id": "i", "phase": "FAILED"}, escalated=None), lease=None,
                  now=svc.clock.now())
    actions.ack(new_invocation(svc, requested_by="bob"), "prod-hive")
    assert svc.store.get("prod-hive").incident == {"id": "i", "phase": "FAILED"}


def test_ack_clears_escalation_and_finished_incident(fake_checks: Script) -> None:
    svc = services(fake_config())
    svc.store.put("prod-hive", TargetState(incident={"id": "i", "phase": "ESCALATED"}, consecutive_failures=4,
                                           escalated={"at": "x", "reason": "launch failed"}), lease=None,
                  now=svc.clock.now())
    rep = actions.ack(new_invocation(svc, requested_by="bob"), "prod-hive")
    state = svc.store.get("prod-hive")
    assert (state.incident, state.escalated, state.consecutive_failures) == (None, None, 0)
    assert rep.data is not None and rep.data["was_escalated"] is True
    assert svc.store.events("prod-hive")[0].actor == "bob"
