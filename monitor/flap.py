"""Flap detection per check (DESIGN §11 "Evidence"), as Nagios does it.

A HiveServer2 that fails every other look never reaches two consecutive failures: without
this it is never paged, never recovered, and ``status`` shows OK half the time. So each
check keeps its last ``notify.flap.window`` statuses (one letter per look, oldest first) and,
once the window is full, the weighted share of looks where the status changed:

- each of the window's ``n - 1`` transitions that changes the status counts with a weight
  that rises linearly from 0.8 (the oldest) to 1.2 (the newest), as in Nagios; the sum is
  divided by ``n - 1`` (the weights average 1.0, so a status that changes on every look
  scores 1.0 and a steady one 0.0);
- above ``notify.flap.high`` the check starts flapping: one page (kind ``flapping``); below
  ``notify.flap.low`` it stops: an info message (kind ``flapping-cleared``). In between it
  keeps what it was (hysteresis).

Looks are spaced like streaks (``recovery.when.min_gap_s``): a look sooner than that after
the last recorded one (a duplicated dispatch, a quick manual tick) is not recorded, so a
burst of looks cannot fill the window. Flapping never starts a relaunch; the policy
(:mod:`monitor.policy`) reads :func:`is_flapping` for ``recovery.when.on_flapping``.

The tick calls :func:`judge` when it builds the next state and :func:`notify` when it pages.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from itertools import pairwise
from typing import TYPE_CHECKING, Any

from checks.base import CheckResult, Status
from monitor.config import Flap, Target, When
from monitor.core.clock import iso, parse_iso
from monitor.core.state.base import TargetState

if TYPE_CHECKING:
    from monitor.cycle import TargetTick
    from monitor.policy import Decision

LETTER = {Status.OK: "O", Status.WARNING: "W", Status.CRITICAL: "C", Status.UNKNOWN: "U"}
LETTERS = "OWCU"
OLDEST_WEIGHT, NEWEST_WEIGHT = 0.8, 1.2
DEFAULT_MIN_GAP_S: int = When.model_fields["min_gap_s"].default  # a target without recovery.when


def state_change_share(looks: str) -> float:
    """The weighted share of status changes in ``looks`` (oldest first), 0.0 to 1.0."""
    n = len(looks) - 1
    if n < 1:
        return 0.0
    total = 0.0
    for i in range(n):
        if looks[i] != looks[i + 1]:
            total += OLDEST_WEIGHT + (NEWEST_WEIGHT - OLDEST_WEIGHT) * (i / (n - 1) if n > 1 else 0.5)
    return total / n


def changes(looks: str) -> int:
    return sum(1 for a, b in pairwise(looks) if a != b)


@dataclass(frozen=True)
class CheckFlap:
    """One check's flap record, as stored in ``TargetState.flap[check]``."""

    looks: str = ""
    at: str | None = None  # the last recorded look
    share: float | None = None  # None until the window is full
    since: str | None = None  # flapping since (None: not flapping)
    paged: str | None = None  # when the flapping page went out

    @property
    def flapping(self) -> bool:
        return self.since is not None

    def to_dict(self) -> dict[str, Any]:
        return {"looks": self.looks, "at": self.at, "share": self.share, "since": self.since, "paged": self.paged}


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _time(value: Any) -> datetime | None:
    try:
        return parse_iso(value) if isinstance(value, str) else None
    except (ValueError, OverflowError):
        return None


def read(state: TargetState) -> dict[str, CheckFlap]:
    """The stored records; a malformed one (hand-edited or corrupt state) starts afresh."""
    raw = state.flap if isinstance(state.flap, dict) else {}
    out: dict[str, CheckFlap] = {}
    for name, rec in raw.items():
        if not isinstance(name, str) or not isinstance(rec, dict):
            continue
        looks = rec.get("looks")
        share = rec.get("share")
        out[name] = CheckFlap(
            looks="".join(c for c in looks if c in LETTERS)[-50:] if isinstance(looks, str) else "",
            at=_text(rec.get("at")),
            share=float(share) if isinstance(share, int | float) and not isinstance(share, bool) else None,
            since=_text(rec.get("since")),
            paged=_text(rec.get("paged")),
        )
    return out


def is_flapping(state: TargetState, check: str) -> bool:
    """Whether ``check`` was flapping as of the last recorded look."""
    rec = read(state).get(check)
    return rec is not None and rec.flapping


def min_gap_s(target: Target) -> int:
    when = target.recovery.when
    return when.min_gap_s if when is not None else DEFAULT_MIN_GAP_S


def spaced(last: str | None, now: datetime, gap_s: float) -> tuple[bool, float | None]:
    """Whether a look at ``now`` is at least ``gap_s`` after ``last`` (and the seconds since
    it). No gap, no or an unreadable ``last``, or a ``last`` in the future (a corrupt or
    hand-edited time must not stop counting for good): it is."""
    then = _time(last)
    if gap_s <= 0 or then is None:
        return True, None
    elapsed = (now - then).total_seconds()
    return elapsed >= gap_s or elapsed < 0, elapsed


def judge(settings: Flap, target: Target, results: Sequence[CheckResult], state: TargetState,
          now: datetime) -> dict[str, dict[str, Any]]:
    """The next ``TargetState.flap``: each look recorded (when spaced), each full window judged.
    Records of checks no longer configured are dropped; a check that did not run keeps its own."""
    before = read(state)
    configured = {c.name for c in target.checks}
    by_name = {r.name: r for r in results}
    gap = min_gap_s(target)
    out: dict[str, dict[str, Any]] = {}
    for name in sorted(configured):
        rec = before.get(name, CheckFlap())
        r = by_name.get(name)
        if r is not None and spaced(rec.at, now, gap)[0]:
            rec = _record(settings, rec, LETTER[r.status], now)
        if rec.looks or rec.flapping:
            out[name] = rec.to_dict()
    return out


def _record(settings: Flap, rec: CheckFlap, letter: str, now: datetime) -> CheckFlap:
    looks = (rec.looks + letter)[-settings.window:]
    if len(looks) < settings.window:  # not judged until the window is full
        return CheckFlap(looks, iso(now), None, rec.since, rec.paged)
    share = round(state_change_share(looks), 4)
    since, paged = rec.since, rec.paged
    if since is None and share > settings.high:
        since, paged = iso(now), None
    elif since is not None and share < settings.low:
        since, paged = None, None
    return CheckFlap(looks, iso(now), share, since, paged)


def status_view(state: TargetState) -> dict[str, dict[str, Any]]:
    """``sentinel status``'s ``flapping`` entry: the checks flapping now, since when, how much."""
    return {name: {"since": rec.since, "share": rec.share, "looks": len(rec.looks), "paged": rec.paged is not None}
            for name, rec in sorted(read(state).items()) if rec.flapping}


# ---------------------------------------------------------------- pages, metrics, report

def notify(tick: TargetTick, old: TargetState, new: TargetState, decision: Decision) -> None:
    """Page a check that started flapping (once; a silenced page goes out once the silence
    ends, if it still flaps), tell the info topic when it stops, emit ``Flapping`` (0/1 per
    check that ran) and note it in the report. Records what was paged in ``new.flap``."""
    settings = tick.inv.config.notify.flap
    target = tick.target
    was, now_ = read(old), read(new)
    at = iso(tick.clock.now())
    for r in tick.rep.checks:
        rec = now_.get(r.name)
        tick.inv.metrics.put("Flapping", 1 if rec is not None and rec.flapping else 0, "None",
                             target=target.name, check=r.name)
    for name, rec in sorted(now_.items()):
        before = was.get(name)
        if rec.flapping:
            tick.rep.notes.append(f"{name} is flapping since {rec.since}: weighted state change {rec.share} over "
                                  f"its last {len(rec.looks)} looks (notify.flap.high {settings.high:g})")
            if rec.paged is not None:
                continue
            if decision.notifications_silenced:
                tick.rep.actions.append("page 'flapping' suppressed by silence")
                continue
            tick._send("page", "flapping", f"{name} flapping: {changes(rec.looks)} status changes in its last "
                       f"{len(rec.looks)} looks", tick._body(decision, _page_text(tick, name, rec)))
            new.flap[name] = {**rec.to_dict(), "paged": at}
        elif before is not None and before.flapping and before.paged is not None \
                and not decision.notifications_silenced:
            tick._send("info", "flapping-cleared", f"{name} no longer flapping", tick._body(
                decision, f"{name} is steady again: weighted state change {rec.share} over its last "
                f"{len(rec.looks)} looks, below notify.flap.low {settings.low:g}. Its failures are judged "
                "and paged as usual again."))


def _page_text(tick: TargetTick, name: str, rec: CheckFlap) -> str:
    settings = tick.inv.config.notify.flap
    when = tick.target.recovery.when
    restart = when is not None and when.on_flapping == "restart" and name in when.checks
    action = ("On its next CRITICAL look sentinel may run the recovery ladder's restart rung "
              "(recovery.when.on_flapping: restart); flapping never starts a relaunch."
              if restart else "Flapping never starts a relaunch: no automatic action is taken for it.")
    return "\n".join([
        f"{name} is flapping: its status changed {changes(rec.looks)} times in its last {len(rec.looks)} looks "
        f"(weighted share {rec.share}, above notify.flap.high {settings.high:g}).",
        f"Looks, oldest first: {' '.join(rec.looks)}   (O OK, W WARNING, C CRITICAL, U UNKNOWN)",
        "A check that keeps changing state rarely fails twice in a row, so it may never be confirmed as a "
        "failure; this page is sent once, and an info message follows when it is steady again "
        f"(below notify.flap.low {settings.low:g}).",
        action,
    ])
