"""Manual actions that only touch sentinel's own state: status, silence, unsilence, ack.

Each write is made under the target's lease (waited for, like every operator command:
:func:`take_lease`) as a conditional write on the state version, retried on a lost race,
and records an audit event naming who asked. A lease that stays held is reported as
``busy`` (exit 3), never as done.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from checks.base import Deadline
from monitor import flap
from monitor.core.clock import Clock, iso
from monitor.core.errors import ConflictError, LeaseHeld, StateError, UsageError
from monitor.core.state.base import Event, Lease, StateStore, TargetState
from monitor.fixes import FIXES_DAYS, fixes_by_rung
from monitor.policy import active_silence, recoveries_in_window
from monitor.report import TickReport
from monitor.runtime import Invocation

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhd])$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}
MAX_SILENCE = timedelta(days=14)
MAX_SHOWN = 2000  # characters of one state string shown by `status` (state could hold anything)

# Operator commands (recover, abort, silence, unsilence, ack) wait this long for the target's
# lease: a queued advance holds it for about a second, a tick for its checks.
LEASE_WAIT_S = 30.0
LEASE_POLL_S = 0.5
LEASE_RESERVE_S = 10.0  # stop waiting while this much of the invocation's time is left to act
ACTION_LEASE_S = 60.0  # silence, unsilence, ack hold the lease this long at most (a read and a write)
WRITE_ATTEMPTS = 5
BUSY = "busy: another invocation holds the lease; try again"
# How a waiting command sleeps between attempts; tests swap it for one that frees the lease.
LEASE_SLEEP: Callable[[float], None] = time.sleep


class Busy(LeaseHeld):
    """The lease stayed held for the whole wait (or the state kept changing under it): the
    command did nothing. The message starts with ``busy:``; the CLI exits 3."""


def take_lease(store: StateStore, target: str, owner: str, clock: Clock, *, ttl_s: Callable[[], float],
               deadline: Deadline | None = None, wait_s: float = LEASE_WAIT_S,
               poll_s: float = LEASE_POLL_S) -> Lease:
    """The target's lease for an operator command: taken at once when free, else retried
    every ``poll_s`` for up to ``wait_s`` (and never past ``deadline`` less a reserve to act
    in). Raises :class:`Busy` when it stays held; a state store failure (StateError) is
    raised as is. ``ttl_s`` is asked at each attempt (the time left shrinks while waiting)."""
    started = time.monotonic()
    waited = 0.0  # the sleeps asked for: bounds the wait even when sleeping is simulated
    while True:
        try:
            return store.acquire_lease(target, owner, ttl_s(), clock.now())
        except LeaseHeld as exc:
            held = exc
        elapsed = time.monotonic() - started
        spent = max(waited, elapsed)
        step = min(poll_s, wait_s - spent)
        if deadline is not None:  # as if every sleep asked for had been slept in full
            step = min(step, deadline.remaining() - (spent - elapsed) - LEASE_RESERVE_S)
        if step <= 0:
            raise Busy(f"{BUSY} ({held}; waited {spent:.0f} s)") from held
        LEASE_SLEEP(step)
        waited += step


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
    """Apply ``change`` to the target's state under its lease (waited for: a tick or an
    advance holding it finishes first, so the two never race on the same item). A version
    conflict left (a writer that holds no lease) is retried on a fresh read. Raises
    :class:`Busy` when the lease stays held or the state keeps changing: nothing was written."""
    store, clock = inv.services.store, inv.services.clock
    lease = take_lease(store, target, inv.owner, clock, ttl_s=lambda: ACTION_LEASE_S)
    try:
        for _ in range(WRITE_ATTEMPTS):
            state = store.get(target)
            new, event = change(state)
            try:
                return store.put(target, new, lease=lease, events=[event], now=clock.now())
            except ConflictError as exc:
                conflict = exc
                LEASE_SLEEP(0.05)
        raise Busy(f"busy: {target}'s state kept changing ({conflict}); nothing was changed: try again")
    finally:
        with contextlib.suppress(StateError):  # it expires by itself
            store.release_lease(lease)


def _busy(inv: Invocation, action: str, target: str, exc: Busy) -> TickReport:
    """The command did nothing: an error in the report (exit 3), no announcement."""
    rep = _report(inv, action)
    rep.errors.append(str(exc))
    rep.data = {"target": target, "changed": False}
    rep.finished_at = iso(inv.services.clock.now())
    return rep


def _announce(inv: Invocation, rep: TickReport, target: str, kind: str, *, subject: str, lines: list[str]) -> None:
    """Tell the info topic who changed what by hand and why: a silence or an ack changes what
    sentinel does next, so it must not happen quietly (a failed publish is in the report,
    the change stands)."""
    body = "\n".join([*lines, f"Requested by: {inv.requested_by or 'unknown'}",
                      f"See: sentinel status --target {target}"])
    inv.notifier.info(target, kind, subject, body)
    rep.notifications = [m.to_dict() for m in inv.notifier.sent]


def _reason_lines(reason: str | None) -> list[str]:
    """The reason line, when the caller gave one (optional for unsilence and ack)."""
    return [f"Reason: {reason}"] if reason and reason.strip() else []


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

    try:
        new = _update(inv, name, change)
    except Busy as exc:
        return _busy(inv, "silence", name, exc)
    rep = _report(inv, "silence")
    rep.data = {"target": name, "silences": new.silences}
    scope = "automatic actions only (pages still go out)" if actions_only else "pages and automatic actions"
    _announce(inv, rep, name, "silenced", subject=f"silenced until {iso(until)}", lines=[
        f"{name} is silenced until {iso(until)}: {scope}.", f"Reason: {reason}",
        f"To end it early: sentinel unsilence --target {name}"])
    return rep


def unsilence(inv: Invocation, target: str | None, *, reason: str | None = None) -> TickReport:
    name = _check_target(inv, target)
    who = inv.requested_by or "unknown"

    def change(state: TargetState) -> tuple[TargetState, Event]:
        return replace(state, silences=[]), Event(iso(inv.services.clock.now()), "unsilence",
                                                  f"{len(state.silences)} manual silence(s) removed", {}, who)

    try:
        _update(inv, name, change)
    except Busy as exc:
        return _busy(inv, "unsilence", name, exc)
    rep = _report(inv, "unsilence")
    rep.data = {"target": name, "silences": []}
    _announce(inv, rep, name, "unsilenced", subject="manual silences removed",
              lines=[f"{name}: manual silences removed; pages and automatic actions resume on the next tick.",
                     *_reason_lines(reason)])
    return rep


def ack(inv: Invocation, target: str | None, *, reason: str | None = None) -> TickReport:
    """Clear an escalation: automation resumes on the next tick, failure counts start over."""
    name = _check_target(inv, target)
    who = inv.requested_by or "unknown"
    cleared: dict[str, Any] = {}

    def change(state: TargetState) -> tuple[TargetState, Event]:
        cleared.clear()
        cleared.update({"escalated": state.escalated, "incident": state.incident, "paused_rungs": state.paused_rungs})
        incident = state.incident
        # FAILED is mid-rollback: leave it to the runbook, which ends in ESCALATED.
        if incident and incident.get("phase") in ("ESCALATED", "DONE"):
            incident = None
        new = replace(state, escalated=None, incident=incident, consecutive_failures=0, streaks={}, last_page=None,
                      paused_rungs={})
        what = "escalation acknowledged; automation resumed" if state.escalated else "acknowledged"
        if state.paused_rungs:
            what += f"; paused rung(s) {', '.join(sorted(state.paused_rungs))} resumed"
        return new, Event(iso(inv.services.clock.now()), "ack", what,
                          {"escalated": state.escalated, "paused_rungs": state.paused_rungs}, who)

    try:
        _update(inv, name, change)
    except Busy as exc:
        return _busy(inv, "ack", name, exc)
    rep = _report(inv, "ack")
    rep.data = {"target": name, "was_escalated": bool(cleared.get("escalated")), "cleared": cleared}
    was = "escalation acknowledged" if cleared.get("escalated") else "acknowledged (nothing was escalated)"
    if cleared.get("paused_rungs"):
        was += f"; rung(s) {', '.join(sorted(cleared['paused_rungs']))} no longer paused (recurring)"
    _announce(inv, rep, name, "acked", subject=was, lines=[
        f"{name}: {was}; automation resumes on the next tick and failure counts start over.", *_reason_lines(reason)])
    return rep


def status(inv: Invocation, targets: list[str] | None, *, events: int = 20) -> TickReport:
    rep = _report(inv, "status")
    names = [t.name for t in inv.config.targets if not targets or t.name in targets]
    for name in targets or []:
        _check_target(inv, name)
    now = inv.services.clock.now()
    out: dict[str, Any] = {}
    for name in names:
        try:
            out[name] = _status_of(inv, name, now, events)
        except Exception as exc:  # corrupt or hostile state: say so, never a traceback
            rep.errors.append(f"state: {name}: cannot show its state ({type(exc).__name__}: {str(exc)[:200]})")
    rep.data = {"targets": out}
    if not targets:  # incidents nobody advances: their target left the config
        try:
            running = inv.services.store.active_incidents()
        except Exception as exc:
            rep.errors.append(f"state: cannot list running incidents ({type(exc).__name__})")
            running = {}
        orphans = {n: inc for n, inc in running.items() if n not in {t.name for t in inv.config.targets}}
        if orphans:
            rep.data["orphaned_incidents"] = orphans
            rep.errors.extend(f"incident {inc.get('id')} of removed target {n} is stuck in {inc.get('phase')}"
                              for n, inc in orphans.items())
    return rep


def _status_of(inv: Invocation, name: str, now: datetime, events: int) -> dict[str, Any]:
    """One target's status entry. Values that came from the state table are shaped into what
    the text renderer reads (a corrupt item must not turn ``status`` into a traceback)."""
    target = inv.config.target(name)
    state = inv.services.store.get(name)
    silence = active_silence(target, state, now)
    recent = inv.services.store.events(name, max(events, INCIDENT_EVENTS))
    limits = target.recovery.limits
    used = len(recoveries_in_window(state, now, limits.window_hours))
    return {
        "version": state.version,
        "last_tick_at": state.last_tick_at,
        "verdict": state.last_decision,
        "consecutive_failures": state.consecutive_failures,
        "streaks": state.streaks,
        "consecutive_unknown": state.consecutive_unknown,
        "failing_since": state.failing_since,
        "silenced": None if silence is None else {"until": iso(silence.until), "reason": silence.reason,
                                                  "actions_only": silence.actions_only, "source": silence.source},
        "escalated": state.escalated,
        "incident": state.incident if isinstance(state.incident, dict | None)
        else {"id": "?", "phase": f"unreadable ({type(state.incident).__name__})"},
        "recoveries_in_window": used,
        "last_results": [_row(r, ("status", "name", "summary")) for r in state.last_results or []],
        "events": [_row(e.to_dict(), ("at", "kind", "message")) for e in recent[:events]],
        # Additive keys for the human view (the keys above are unchanged):
        "why": _why(recent),
        "budget": {"used": used, "max": limits.max_recoveries, "window_hours": limits.window_hours,
                   "left": max(0, limits.max_recoveries - used), "enabled": target.recovery.enabled},
        "incident_timeline": incident_timeline(state.incident, recent, now),
        "flapping": flap.status_view(state),  # {check: {since, share, looks, paged}} (monitor/flap.py)
        # Incidents each rung ended in the last 7 days, and rungs paused for recurring (until ack).
        "fixes": {"days": FIXES_DAYS, "by_rung": fixes_by_rung(state, now)},
        "paused_rungs": state.paused_rungs if isinstance(state.paused_rungs, dict) else {},
        **_primaries(state.last_results or []),
    }


def _primaries(results: list[dict[str, Any]]) -> dict[str, Any]:
    """A cluster with three primaries, as its ``per_primary`` check last saw each (a key only
    when there is one: a classic target's status is unchanged)."""
    for r in results:  # the state may hold anything (tests/unit/test_hostile_state.py): shown only if well-formed
        observed = r.get("observed") if isinstance(r, dict) else None
        rows = observed.get("primaries") if isinstance(observed, dict) and observed.get("per_primary") else None
        if isinstance(rows, list) and rows:
            keys = ("instance_id", "private_dns", "state", "status")
            return {"primaries": [{k: None if p.get(k) is None else str(p.get(k))[:MAX_SHOWN] for k in keys}
                                  for p in rows[:10] if isinstance(p, dict)]}
    return {}


INCIDENT_EVENTS = 200  # audit events read to find an incident's AWS calls (one query)


def _why(events: list[Event]) -> str | None:
    """The reason of the latest verdict change ("ok -> failing: hive CRITICAL (1 consecutive)...")."""
    for e in events:  # newest first
        if e.kind == "verdict":
            return str(e.message)[:MAX_SHOWN]
    return None


def incident_timeline(incident: Any, events: list[Event], now: datetime) -> list[dict[str, Any]]:
    """One row per phase the incident entered: when, how long it took (the running one: so
    far), what it changed when it finished (the next entry's note) and the AWS calls it made
    (its ``intent`` audit events)."""
    if not isinstance(incident, dict) or not isinstance(incident.get("timeline"), list):
        return []
    entries = [t for t in incident["timeline"] if isinstance(t, dict) and t.get("phase")]
    calls: dict[str, list[str]] = {}
    for e in reversed(events):  # oldest first
        data = e.data if isinstance(e.data, dict) else {}
        if e.kind == "intent" and data.get("incident") == incident.get("id") and str(e.message).startswith("intent: "):
            call = str(e.message).removeprefix("intent: ").split(" ", 1)[0]
            calls.setdefault(str(data.get("phase")), []).append(call)
    rows = []
    for i, entry in enumerate(entries):
        nxt = entries[i + 1] if i + 1 < len(entries) else None
        took = _seconds_between(entry.get("at"), nxt.get("at") if nxt else None, now)
        final = nxt is None and entry["phase"] in ("DONE", "ESCALATED")
        rows.append({
            "phase": str(entry["phase"]), "started": str(entry.get("at", "?")),
            "took_s": None if final else took, "running": nxt is None and not final,
            "changed": str(nxt.get("note", "")) if nxt else ("" if final else "(in progress)"),
            "aws_calls": calls.get(str(entry["phase"]), []),
        })
    return rows


def _seconds_between(start: Any, end: Any, now: datetime) -> float | None:
    from monitor.core.clock import parse_iso

    try:
        a = parse_iso(str(start))
        b = parse_iso(str(end)) if end else now
    except (TypeError, ValueError):
        return None
    return round((b - a).total_seconds(), 1)


def _row(value: Any, keys: tuple[str, ...]) -> dict[str, Any]:
    """A dict with at least ``keys`` as short strings (the renderer formats them)."""
    row = dict(value) if isinstance(value, dict) else {"summary": repr(value)[:200]}
    for key in keys:
        text = str(row.get(key, "?"))
        row[key] = text if len(text) <= MAX_SHOWN else text[:MAX_SHOWN] + f"...({len(text)} chars)"
    return row
