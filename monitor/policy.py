"""Judgement: from this tick's check results and the remembered state to a decision.

Measurement (checks) and tolerance (here) are separate: a check says what it saw, the policy
says whether that is a confirmed failure and whether automation may act on it. The
decision is data (:class:`Decision`); the tick carries it out.

Rules:
- Trigger checks are ``recovery.when.checks`` (all checks when recovery has no ``when``).
- A trigger check CRITICAL → the failure streak grows; all trigger checks OK/WARNING → it
  resets; UNKNOWN (could not judge) → the streak holds. UNKNOWN never counts as a failure.
- ``confirmed`` once the streak reaches ``consecutive_failures`` (``force`` needs only one).
- Recovery is allowed only when enabled, not escalated, not vetoed (a ``veto_if_failing``
  check is CRITICAL or UNKNOWN: we cannot tell that a relaunch would help), not silenced for
  actions, and within the budget. Otherwise the decision says why, and a person is paged.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from checks.base import CheckResult, Status
from monitor.clock import iso, parse_iso
from monitor.config import Target
from monitor.state.base import TargetState

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

    @property
    def notifications_silenced(self) -> bool:
        return self.silence is not None and not self.silence.actions_only

    def to_dict(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict,
            "status": self.status.name,
            "consecutive_failures": self.consecutive_failures,
            "consecutive_unknown": self.consecutive_unknown,
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
) -> Decision:
    """``force`` skips only the streak threshold; ``manual`` (an on-call ``recover``) is not
    blocked by ``recovery.enabled: false``, which governs *automatic* recovery only."""
    by_name = {r.name: r for r in results}
    rec = target.recovery
    trigger = list(rec.when.checks) if rec.when else [c.name for c in target.checks]
    threshold = rec.when.consecutive_failures if rec.when else 1

    trig = [by_name[n] for n in trigger if n in by_name]
    failing = [r.name for r in trig if r.status == Status.CRITICAL]
    unknown = [r.name for r in results if r.status == Status.UNKNOWN]
    missing = [n for n in trigger if n not in by_name]

    streak = state.consecutive_failures
    if failing:
        streak += 1
    elif trig and not missing and all(r.status in (Status.OK, Status.WARNING) for r in trig):
        streak = 0
    unknown_streak = state.consecutive_unknown + 1 if unknown else 0

    reasons: list[str] = []
    if failing:
        reasons.append(f"{', '.join(failing)} CRITICAL ({streak} consecutive, threshold {threshold})")
    if unknown:
        reasons.append(f"{', '.join(unknown)} UNKNOWN: cannot judge, failure count held")

    needed = 1 if force else threshold
    if failing and streak >= needed:
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
        silence=silence, reasons=reasons,
    )
    if verdict == "confirmed":
        decision.blocked_by = _blockers(target, results, state, now, silence, manual=manual)
        decision.recover = not decision.blocked_by
    return decision


def _blockers(
    target: Target, results: Sequence[CheckResult], state: TargetState, now: datetime,
    silence: ActiveSilence | None,
    *,
    manual: bool,
) -> list[str]:
    rec = target.recovery
    out: list[str] = []
    if not rec.enabled and not manual:
        out.append("recovery is disabled for this target")
    if state.escalated:
        out.append(f"escalated at {state.escalated.get('at')}: automation paused until `sentinel ack`")
    by_name = {r.name: r for r in results}
    for name in rec.veto_if_failing:
        r = by_name.get(name)
        if r is None or r.status in (Status.CRITICAL, Status.UNKNOWN):
            seen = "did not run" if r is None else r.status.name
            out.append(f"vetoed: {name} is {seen} (a relaunch would not fix it)")
    if silence is not None:
        out.append(f"silenced until {iso(silence.until)}: {silence.reason}")
    used = recoveries_in_window(state, now, rec.limits.window_hours)
    if len(used) >= rec.limits.max_recoveries:
        out.append(
            f"budget exhausted: {len(used)} recoveries in the last {rec.limits.window_hours:g} h "
            f"(max {rec.limits.max_recoveries})"
        )
    return out
