"""Manual actions that only touch sentinel's own state: status, silence, unsilence, ack.

Each write is a conditional write on the state version, retried on a lost race, and
records an audit event naming who asked.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta
from typing import Any

from monitor.clock import iso
from monitor.errors import ConflictError, UsageError
from monitor.policy import active_silence, recoveries_in_window
from monitor.report import TickReport
from monitor.runtime import Invocation
from monitor.state.base import Event, TargetState

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhd])$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}
MAX_SILENCE = timedelta(days=14)


def parse_duration(text: str) -> timedelta:
    m = _DURATION.match(text.strip())
    if not m:
        raise UsageError(f"usage: duration {text!r}: use e.g. 30m, 2h, 1d")
    delta = timedelta(seconds=float(m.group(1)) * _UNIT_S[m.group(2)])
    if delta <= timedelta(0) or delta > MAX_SILENCE:
        raise UsageError(f"usage: duration {text!r}: must be > 0 and at most 14d")
    return delta


def _report(inv: Invocation, action: str) -> TickReport:
    return TickReport(action=action, started_at=iso(inv.services.clock.now()), request_id=inv.owner)


def _update(inv: Invocation, target: str, change: Callable[[TargetState], tuple[TargetState, Event]]) -> TargetState:
    store = inv.services.store
    for _ in range(5):
        state = store.get(target)
        new, event = change(state)
        try:
            return store.put(target, new, lease=None, events=[event], now=inv.services.clock.now())
        except ConflictError:
            time.sleep(0.05)
    raise ConflictError(f"{target}: state kept changing; try again")


def _check_target(inv: Invocation, target: str | None) -> str:
    names = [t.name for t in inv.config.targets]
    if not target:
        raise UsageError("usage: --target is required")
    if target not in names:
        raise UsageError(f"usage: unknown target {target!r} (configured: {', '.join(names)})")
    return target


def silence(inv: Invocation, target: str | None, duration: str, reason: str, *, actions_only: bool = False) -> TickReport:
    name = _check_target(inv, target)
    if not reason.strip():
        raise UsageError("usage: --reason is required")
    until = inv.services.clock.now() + parse_duration(duration)
    who = inv.requested_by or "unknown"

    def change(state: TargetState) -> tuple[TargetState, Event]:
        entry = {"until": iso(until), "reason": reason, "actions_only": actions_only, "by": who}
        new = replace(state, silences=[*state.silences, entry])
        return new, Event(iso(inv.services.clock.now()), "silence", f"silenced until {iso(until)}: {reason}", entry, who)

    new = _update(inv, name, change)
    rep = _report(inv, "silence")
    rep.data = {"target": name, "silences": new.silences}
    return rep


def unsilence(inv: Invocation, target: str | None) -> TickReport:
    name = _check_target(inv, target)
    who = inv.requested_by or "unknown"

    def change(state: TargetState) -> tuple[TargetState, Event]:
        return replace(state, silences=[]), Event(iso(inv.services.clock.now()), "unsilence",
                                                  f"{len(state.silences)} manual silence(s) removed", {}, who)

    _update(inv, name, change)
    rep = _report(inv, "unsilence")
    rep.data = {"target": name, "silences": []}
    return rep


def ack(inv: Invocation, target: str | None) -> TickReport:
    """Clear an escalation: automation resumes on the next tick, failure counts start over."""
    name = _check_target(inv, target)
    who = inv.requested_by or "unknown"
    cleared: dict[str, Any] = {}

    def change(state: TargetState) -> tuple[TargetState, Event]:
        cleared.clear()
        cleared.update({"escalated": state.escalated, "incident": state.incident})
        incident = state.incident
        # FAILED is mid-rollback: leave it to the runbook, which ends in ESCALATED.
        if incident and incident.get("phase") in ("ESCALATED", "DONE"):
            incident = None
        new = replace(state, escalated=None, incident=incident, consecutive_failures=0, last_page=None)
        return new, Event(iso(inv.services.clock.now()), "ack",
                          "escalation acknowledged; automation resumed" if state.escalated else "acknowledged",
                          {"escalated": state.escalated}, who)

    _update(inv, name, change)
    rep = _report(inv, "ack")
    rep.data = {"target": name, "was_escalated": bool(cleared.get("escalated")), "cleared": cleared}
    return rep


def status(inv: Invocation, targets: list[str] | None, *, events: int = 20) -> TickReport:
    rep = _report(inv, "status")
    names = [t.name for t in inv.config.targets if not targets or t.name in targets]
    for name in targets or []:
        _check_target(inv, name)
    now = inv.services.clock.now()
    out: dict[str, Any] = {}
    for name in names:
        target = inv.config.target(name)
        state = inv.services.store.get(name)
        silence = active_silence(target, state, now)
        out[name] = {
            "version": state.version,
            "last_tick_at": state.last_tick_at,
            "verdict": state.last_decision,
            "consecutive_failures": state.consecutive_failures,
            "consecutive_unknown": state.consecutive_unknown,
            "failing_since": state.failing_since,
            "silenced": None if silence is None else {"until": iso(silence.until), "reason": silence.reason,
                                                      "actions_only": silence.actions_only, "source": silence.source},
            "escalated": state.escalated,
            "incident": state.incident,
            "recoveries_in_window": len(recoveries_in_window(state, now, target.recovery.limits.window_hours)),
            "last_results": state.last_results,
            "events": [e.to_dict() for e in inv.services.store.events(name, events)],
        }
    rep.data = {"targets": out}
    return rep

