"""Judgement: from this tick's check results and the remembered state to a decision.

Measurement (checks) and tolerance (here) are separate: a check says what it saw, the policy
says whether that is a confirmed failure and whether automation may act on it. The
decision is data (:class:`Decision`); the tick carries it out.

Rules:
- Trigger checks are ``recovery.when.checks`` (all checks when recovery has no ``when``: such
  a target is monitor-only and can never be recovered, see :func:`start_blockers`).
- Streaks are per trigger check: a check CRITICAL → its streak grows; OK/WARNING → it resets;
  UNKNOWN (could not judge) → it holds. UNKNOWN never counts as a failure, and one check's
  failure never adds to another's.
- Evidence is spaced (``recovery.when.min_gap_s``): a CRITICAL look adds to a streak only that
  long after the look that last added to it (``TargetState.streak_at``); a sooner one — a
  duplicated dispatch, a probe racing a re-check, a quick manual tick — holds the streak and
  the decision says it was not counted. The first failure of a streak always counts.
- A listed alarm is an observer (``targets[].triggers.alarms``): its change to ALARM, carried
  by the event's tick (:func:`alarm_look`), counts as one failing look at the alarm's time for
  each trigger check that is CRITICAL in this look — once per alarm change (it must be newer
  than the streak's last counted look, and no look since it may have passed), and only while
  fresh (``ALARM_LOOK_MAX_AGE``). The alarm's own evaluation is the spacing: a Route 53 health
  check fails ``FailureThreshold`` times from several checkers before its alarm's period ends.
  So with ``consecutive_failures: 2`` the event's own CRITICAL look confirms.
- ``confirmed`` once one check's streak reaches ``consecutive_failures`` (``force`` needs one).
- Flapping (:mod:`monitor.flap`) is paged, never a relaunch. With ``recovery.when.on_flapping:
  restart`` a trigger check that was flapping and is CRITICAL now is confirmed too, for a
  recovery limited to the ladder's restart rungs (``Decision.restart_only``): blocked, it stays
  ``failing`` (a blocked flapping check must not page "confirmed" and "resolved" every look).
- A ``per_primary`` trigger check WARNING because a running primary fails (two of three still
  serve) grows its streak like a CRITICAL; confirmed, it starts a restart-only recovery (the
  restart rung restarts that primary); blocked, it stays ``degraded``.
- Recovery is allowed only when the config supports it (``when``, routing, verification of the
  new master), enabled (or asked for by a person), not escalated, not already running, within
  the budget, caused by an error kind a relaunch can fix (``when.kinds``), not vetoed (a
  ``veto_if_failing`` check is CRITICAL or UNKNOWN), not silenced for actions. Otherwise the
  decision says why, and a person is paged.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from checks.base import CheckResult, Status
from checks.primaries import down_primaries, needs_restart
from monitor import flap
from monitor.config import RELAUNCH_KINDS, ReplaceRung, RestartRung, Target, recovery_gaps
from monitor.core.clock import iso, parse_iso
from monitor.core.state.base import TargetState
from monitor.observers import AlarmLook, alarm_look, newer

Verdict = Literal["ok", "degraded", "failing", "confirmed"]


@dataclass(frozen=True)
class ActiveSilence:
    until: datetime
    reason: str
    actions_only: bool
    source: str  # "config" | "manual"


@dataclass
class Decision:
    verdict: Verdict
    consecutive_failures: int
    consecutive_unknown: int
    status: Status  # the worst check status this tick
    failing_checks: list[str] = field(default_factory=list)
    unknown_checks: list[str] = field(default_factory=list)
    recover: bool = False  # start a recovery now
    blocked_by: list[str] = field(default_factory=list)  # why a wanted recovery may not run
    silence: ActiveSilence | None = None
    reasons: list[str] = field(default_factory=list)
    streaks: dict[str, int] = field(default_factory=dict)  # per trigger check
    # When each trigger check's streak was last added to (ISO; persisted as TargetState.streak_at).
    streak_at: dict[str, str] = field(default_factory=dict)
    # Trigger checks whose CRITICAL look this tick was too soon after the last counted one.
    not_counted: list[str] = field(default_factory=list)
    # Checks flapping as of the last recorded look (monitor.flap).
    flapping: list[str] = field(default_factory=list)
    # The recovery may use restart rungs only (confirmed by flapping, recovery.when.on_flapping):
    # the runbook records it on the incident and never climbs to a relaunch.
    restart_only: bool = False

    @property
    def notifications_silenced(self) -> bool:
        return self.silence is not None and not self.silence.actions_only

    def to_dict(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict,
            "status": self.status.name,
            "consecutive_failures": self.consecutive_failures,
            "consecutive_unknown": self.consecutive_unknown,
            "streaks": self.streaks,
            "not_counted": self.not_counted,
            "flapping": self.flapping,
            "restart_only": self.restart_only,
            "failing_checks": self.failing_checks,
            "unknown_checks": self.unknown_checks,
            "recover": self.recover,
            "blocked_by": self.blocked_by,
            "silenced": None if self.silence is None else {
                "until": iso(self.silence.until), "reason": self.silence.reason,
                "actions_only": self.silence.actions_only, "source": self.silence.source,
            },
            "reasons": self.reasons,
        }


def active_silence(target: Target, state: TargetState, now: datetime) -> ActiveSilence | None:
    """The silence in force now; a full silence wins over an actions-only one."""
    found: list[ActiveSilence] = []
    for s in target.silences:
        if s.until > now:
            found.append(ActiveSilence(s.until, s.reason, s.actions_only, "config"))
    for raw in state.silences:
        until = parse_iso(str(raw["until"]))
        if until > now:
            found.append(ActiveSilence(until, str(raw.get("reason", "")), bool(raw.get("actions_only", False)), "manual"))
    if not found:
        return None
    return sorted(found, key=lambda s: (s.actions_only, -s.until.timestamp()))[0]


def recoveries_in_window(state: TargetState, now: datetime, window_hours: float) -> list[str]:
    since = now - timedelta(hours=window_hours)
    return [ts for ts in state.recoveries if parse_iso(ts) > since]


def worst(results: Iterable[CheckResult]) -> Status:
    statuses = [r.status for r in results]
    if not statuses:
        return Status.UNKNOWN
    if Status.CRITICAL in statuses:
        return Status.CRITICAL
    return max(statuses)


def evaluate(
    target: Target,
    results: Sequence[CheckResult],
    state: TargetState,
    now: datetime,
    *,
    force: bool = False,
    manual: bool = False,
    evidence: Any = None,
) -> Decision:
    """``force`` skips only the streak threshold; ``manual`` (an on-call ``recover``) is not
    blocked by ``recovery.enabled: false``, which governs *automatic* recovery only. Neither
    skips the recoverability rules (:func:`monitor.config.recovery_gaps`). ``evidence``: an
    AWS event's (monitor.triggers), of which a listed alarm counts as a look."""
    by_name = {r.name: r for r in results}
    rec = target.recovery
    trigger = list(rec.when.checks) if rec.when else [c.name for c in target.checks]
    threshold = rec.when.consecutive_failures if rec.when else 1

    trig = [by_name[n] for n in trigger if n in by_name]
    failing = [r.name for r in trig if r.status == Status.CRITICAL]
    unknown = [r.name for r in results if r.status == Status.UNKNOWN]

    gap = flap.min_gap_s(target)
    observer, refused = alarm_look(target, evidence, now)
    counted = next_streaks(trigger, by_name, state, now, gap, observer=observer)
    streaks = counted.streaks
    streak = max(streaks.values(), default=0)
    unknown_streak = state.consecutive_unknown + 1 if unknown else 0

    reasons: list[str] = []
    if failing:
        reasons.append(", ".join(f"{n} CRITICAL ({streaks[n]} consecutive)" for n in failing)
                       + f", threshold {threshold}")
    for name, elapsed in counted.not_counted.items():
        reasons.append(f"{name}: look not counted: {elapsed:.0f} s since the last counted look (min_gap_s {gap})")
    if observer is not None and counted.observed:
        reasons.append(f"alarm {observer.alarm!r} in ALARM since {iso(observer.at)} counted as one failing look "
                       f"of {', '.join(counted.observed)}")
    elif observer is not None:
        reasons.append(f"alarm {observer.alarm!r} in ALARM: not counted (no trigger check CRITICAL in this look, "
                       "or already counted)")
    if refused:
        reasons.append(refused)
    if unknown:
        reasons.append(f"{', '.join(unknown)} UNKNOWN: cannot judge, failure count held")

    needed = 1 if force else threshold
    confirmed = [n for n in failing if streaks[n] >= needed]
    configured = {c.name for c in target.checks}
    flapping = sorted(n for n, f in flap.read(state).items() if f.flapping and n in configured)
    # on_flapping: restart — a flapping trigger check failing now confirms, for restart rungs only.
    by_flapping = [n for n in failing if n in flapping and n not in confirmed] \
        if rec.when is not None and rec.when.on_flapping == "restart" else []
    if by_flapping:
        reasons.append(f"{', '.join(by_flapping)} flapping and CRITICAL now: a restart may run "
                       "(recovery.when.on_flapping: restart), never a relaunch")
    # A trigger check that runs per primary (checks/primaries.py) is WARNING while two of three
    # primaries serve; a running primary down that long is worth a restart there, never a relaunch.
    reasons.extend(f"{r.name} WARNING: {r.summary}" for r in trig  # a primary EMR is replacing: said, not acted on
                   if r.status == Status.WARNING and r.observed.get("per_primary") and not needs_restart(r))
    down_now = [r.name for r in trig if needs_restart(r)]
    primary_down = [n for n in down_now if streaks[n] >= needed]
    if down_now:
        reasons.append(", ".join(f"{n} WARNING: primary {down_primaries(by_name[n])} down ({streaks[n]} consecutive)"
                                 for n in down_now) + f", threshold {threshold}: a restart on that primary "
                       "may run, never a relaunch")
    if confirmed:
        verdict: Verdict = "confirmed"
    elif failing:
        verdict = "failing"
    elif any(r.status != Status.OK for r in results):
        verdict = "degraded"
    else:
        verdict = "ok"

    silence = active_silence(target, state, now)
    decision = Decision(
        verdict=verdict, consecutive_failures=streak, consecutive_unknown=unknown_streak,
        status=worst(results), failing_checks=failing, unknown_checks=unknown,
        silence=silence, reasons=reasons, streaks=streaks, streak_at=counted.at,
        not_counted=list(counted.not_counted), flapping=flapping,
    )
    if verdict == "confirmed":
        decision.blocked_by = _blockers(target, [by_name[n] for n in confirmed], results, state, now,
                                        silence=silence, manual=manual)
        decision.recover = not decision.blocked_by
    elif by_flapping:
        blocked = _blockers(target, [by_name[n] for n in by_flapping], results, state, now,
                            silence=silence, manual=manual) + restart_blockers(target, state, now)
        if blocked:  # stays "failing": said in the reasons, paged as flapping (monitor.flap), not as confirmed
            decision.reasons.append("restart for flapping not started: " + "; ".join(blocked))
        else:
            decision.verdict, decision.recover, decision.restart_only = "confirmed", True, True
    elif primary_down and not failing:
        blocked = _blockers(target, [by_name[n] for n in primary_down], results, state, now, silence=silence,
                            manual=manual) + restart_blockers(target, state, now, why="a primary down")
        if blocked:  # stays "degraded": the cluster serves; said in the reasons
            decision.reasons.append("restart of the primary not started: " + "; ".join(blocked))
        else:
            decision.verdict, decision.recover, decision.restart_only = "confirmed", True, True
    return decision


@dataclass(frozen=True)
class Counted:
    """The trigger checks' streaks after this look, when each was last added to, and the
    CRITICAL looks not counted (check → seconds since its last counted look)."""

    streaks: dict[str, int]
    at: dict[str, str]
    not_counted: dict[str, float]
    observed: list[str] = field(default_factory=list)  # checks whose streak the alarm's look added to


def next_streaks(trigger: Sequence[str], by_name: dict[str, CheckResult], state: TargetState, now: datetime,
                 min_gap_s: float, *, observer: AlarmLook | None = None) -> Counted:
    """Each trigger check's own run of consecutive CRITICAL results: CRITICAL grows it (the
    first one always; a later one only ``min_gap_s`` after the look that last grew it, else it
    holds), OK/WARNING resets it, UNKNOWN or not run holds it. Checks no longer listed in
    ``when.checks`` are dropped (their old streak must not confirm anything).

    ``observer`` (a listed alarm's ALARM) adds one more to a CRITICAL check's streak when it
    is newer than the look that last added to it and, for a streak that was 0, newer than
    the last tick (a look after the alarm that did not fail makes the alarm stale)."""
    before = state.streaks if isinstance(state.streaks, dict) else {}
    before_at = state.streak_at if isinstance(state.streak_at, dict) else {}
    streaks: dict[str, int] = {}
    at: dict[str, str] = {}
    skipped: dict[str, float] = {}
    observed: list[str] = []
    for name in trigger:
        r = by_name.get(name)
        held = int(before.get(name, 0))
        last = before_at.get(name)
        if r is None or r.status == Status.UNKNOWN:
            streaks[name] = held
        elif r.status != Status.CRITICAL and not needs_restart(r):
            streaks[name] = 0
            continue
        elif held == 0:
            streaks[name], last = 1, iso(now)
        else:
            ok, elapsed = flap.spaced(last if isinstance(last, str) else None, now, min_gap_s)
            if ok:
                streaks[name], last = held + 1, iso(now)
            else:
                streaks[name] = held
                skipped[name] = elapsed or 0.0
        if observer is not None and r is not None and r.status == Status.CRITICAL \
                and newer(observer.at, before_at.get(name) if held else state.last_tick_at):
            streaks[name], last = streaks[name] + 1, iso(now)
            skipped.pop(name, None)
            observed.append(name)
        if streaks[name] and isinstance(last, str):
            at[name] = last
    return Counted(streaks, at, skipped, observed)


def restart_blockers(target: Target, state: TargetState, now: datetime, *, why: str = "flapping") -> list[str]:
    """Why a recovery limited to restart rungs cannot start: the rung ``runbook.start`` would
    take first (the first with budget) must be a restart rung."""
    ladder = target.recovery.ladder
    if not any(isinstance(r, RestartRung) for r in ladder):
        allows = "on_flapping: restart allows" if why == "flapping" else f"{why} allows"
        return [f"recovery.ladder has no restart_service rung ({allows} nothing else)"]
    usable = usable_rungs(target, state, now)
    if usable and not isinstance(ladder[usable[0]], RestartRung):
        return [f"the first rung with budget is {ladder[usable[0]].rung}: {why} allows a restart only"]
    return []


def relaunch_fixes(target: Target, result: CheckResult) -> bool:
    """Whether a relaunch can fix what this CRITICAL result saw (``recovery.when.kinds``). A
    result without an error kind (route53_health, emr_state) counts."""
    kinds = list(target.recovery.when.kinds) if target.recovery.when else list(RELAUNCH_KINDS)
    return result.error_kind is None or result.error_kind in kinds


def start_blockers(target: Target, state: TargetState, now: datetime, *, manual: bool) -> list[str]:
    """The rules that hold for any recovery start, whatever the checks say: the config can
    support a recovery, automation is not paused, no incident is running, the budget has
    room. The tick asks before starting; the runbook asks again under the lease (the state
    it starts from is the one it persists on) — one rule, one home."""
    rec = target.recovery
    out: list[str] = []
    gaps = recovery_gaps(target)
    if gaps:
        out.append("not recoverable: " + "; ".join(gaps))
    if not rec.enabled and not manual:
        out.append("recovery is disabled for this target")
    if state.escalated:
        out.append(f"escalated at {state.escalated.get('at')}: automation paused until "
                   f"`sentinel ack --target {target.name}`")
    incident = state.incident or {}
    if incident.get("phase") not in (None, "DONE", "ESCALATED"):
        out.append(f"incident {incident.get('id')} is already in progress ({incident.get('phase')})")
    if not usable_rungs(target, state, now):
        out.append("budget exhausted: " + "; ".join(rung_budget_notes(target, state, now)))
    return out


def rung_uses(target: Target, state: TargetState, now: datetime, index: int) -> list[str]:
    """Starts of ladder rung ``index`` within ``limits.window_hours``."""
    rung = target.recovery.ladder[index]
    if isinstance(rung, ReplaceRung):
        return recoveries_in_window(state, now, target.recovery.limits.window_hours)
    since = now - timedelta(hours=target.recovery.limits.window_hours)
    return [ts for ts in state.rung_uses.get(rung.rung, []) if parse_iso(ts) > since]


def usable_rungs(target: Target, state: TargetState, now: datetime, *, after: int = -1) -> list[int]:
    """Ladder rungs (indices, after ``after``) whose own budget has room now and that are not
    paused for fixing the same failure again and again (``recovery.limits.recurring``)."""
    rec = target.recovery
    paused = state.paused_rungs if isinstance(state.paused_rungs, dict) else {}
    return [i for i, rung in enumerate(rec.ladder)
            if i > after and rung.rung not in paused and len(rung_uses(target, state, now, i)) < rec.rung_budget(rung)]


def rung_budget_notes(target: Target, state: TargetState, now: datetime) -> list[str]:
    rec = target.recovery
    notes = []
    for i, rung in enumerate(rec.ladder):
        what = "recoveries" if isinstance(rung, ReplaceRung) else f"{rung.rung} ({rung.via})"
        prefix = "" if len(rec.ladder) == 1 else f"{rung.rung}: "
        paused = " (paused: recurring, until `sentinel ack`)" if rung.rung in (state.paused_rungs or {}) else ""
        notes.append(f"{prefix}{len(rung_uses(target, state, now, i))} {what} in the last "
                     f"{rec.limits.window_hours:g} h (max {rec.rung_budget(rung)}){paused}")
    return notes


def _blockers(
    target: Target, confirmed: Sequence[CheckResult], results: Sequence[CheckResult], state: TargetState,
    now: datetime, *,
    silence: ActiveSilence | None,
    manual: bool,
) -> list[str]:
    rec = target.recovery
    out = start_blockers(target, state, now, manual=manual)
    fixable = [r for r in confirmed if relaunch_fixes(target, r)]
    if not fixable:
        kinds = ", ".join(sorted({str(r.error_kind) for r in confirmed}))
        out.append(f"error kind {kinds}: a relaunch cannot fix it (recovery.when.kinds)")
    by_name = {r.name: r for r in results}
    for name in rec.veto_if_failing:
        r = by_name.get(name)
        if r is None or r.status in (Status.CRITICAL, Status.UNKNOWN):
            seen = "did not run" if r is None else r.status.name
            out.append(f"vetoed: {name} is {seen} (a relaunch would not fix it)")
    if silence is not None:
        out.append(f"silenced until {iso(silence.until)}: {silence.reason}")
    return out
