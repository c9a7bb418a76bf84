"""What the ladder's rungs fixed (``TargetState.fixes``, issue 21): fixes per rung over a
window for ``sentinel status`` and the dashboard, and when one rung's fixes are *recurring*
(``recovery.limits.recurring``): a fix that keeps working hides a cause.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from monitor.config import Target
from monitor.core.clock import parse_iso
from monitor.core.state.base import TargetState

FIXES_DAYS = 7  # `sentinel status` and the dashboard count fixes over this many days


def fixes_in(state: TargetState, now: datetime, days: float, rung: str | None = None) -> list[dict[str, Any]]:
    """Incidents a rung ended (``TargetState.fixes``) in the last ``days``, of ``rung`` if given."""
    since = now - timedelta(days=days)
    rows = state.fixes if isinstance(state.fixes, list) else []
    return [f for f in rows if isinstance(f, dict) and (rung is None or f.get("rung") == rung)
            and isinstance(f.get("at"), str) and parse_iso(f["at"]) > since]


def fixes_by_rung(state: TargetState, now: datetime, days: float = FIXES_DAYS) -> dict[str, int]:
    out: dict[str, int] = {}
    for f in fixes_in(state, now, days):
        out[str(f["rung"])] = out.get(str(f["rung"]), 0) + 1
    return out


def recurring(target: Target, state: TargetState, now: datetime, rung: str) -> list[dict[str, Any]]:
    """The fixes of ``rung`` that make it recurring (``recovery.limits.recurring``: at least
    ``count`` in ``days``), else []."""
    rule = target.recovery.limits.recurring
    if rule is None:
        return []
    found = fixes_in(state, now, rule.days, rung)
    return found if len(found) >= rule.count else []
