"""Observers other than sentinel's own checks whose word counts as a look (issue 22).

A CloudWatch alarm a target lists in ``triggers.alarms`` is such an observer: its change to
ALARM, carried by the event's tick, counts as one failing look at the alarm's time
(:func:`monitor.policy.next_streaks` adds it). Kept apart from the policy because what makes
an outside word trustworthy (listed, in ALARM, fresh, not from the future) is its own rule.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from monitor.config import Target
from monitor.core.clock import iso, parse_iso

# An alarm's ALARM counts as a look only this long after it changed (a late or replayed event
# is a reason to look, not evidence), and not when it claims to be from the future.
ALARM_LOOK_MAX_AGE = timedelta(minutes=10)
ALARM_LOOK_SKEW = timedelta(minutes=1)


@dataclass(frozen=True)
class AlarmLook:
    """A listed alarm's change to ALARM, as one failing look (see the module's rules)."""

    alarm: str
    at: datetime


def alarm_look(target: Target, evidence: Any, now: datetime) -> tuple[AlarmLook | None, str | None]:
    """The look an event's evidence stands for, else None and why not (for the decision's
    reasons). Only an alarm this target lists, in ALARM, changed within ``ALARM_LOOK_MAX_AGE``."""
    if not isinstance(evidence, dict) or not evidence.get("alarm"):
        return None, None
    name = str(evidence.get("alarm"))[:255]
    if name not in target.triggers.alarms or evidence.get("state") != "ALARM":
        return None, f"alarm {name!r}: not a listed alarm in ALARM, not counted as a look"
    try:
        at = parse_iso(str(evidence.get("time") or ""))
    except ValueError:
        return None, f"alarm {name!r}: unreadable time, not counted as a look"
    if at.tzinfo is None:
        return None, f"alarm {name!r}: time without a zone, not counted as a look"
    if at > now + ALARM_LOOK_SKEW or now - at > ALARM_LOOK_MAX_AGE:
        return None, (f"alarm {name!r} changed at {iso(at)}: not within {ALARM_LOOK_MAX_AGE.total_seconds() / 60:.0f} "
                      "min of this look, not counted")
    return AlarmLook(name, at), None


def newer(at: datetime, than: Any) -> bool:
    """``at`` is after the time ``than`` (ISO; none or unreadable: it is)."""
    if not isinstance(than, str):
        return True
    try:
        return at > parse_iso(than)
    except ValueError:
        return True
