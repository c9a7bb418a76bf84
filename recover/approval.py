"""A person's yes before a destructive rung acts (issue 21; DESIGN §11 "Approval").

``recovery.approval: {rungs: [replace], timeout_min: 30, on_timeout: escalate | proceed,
auto_hours: "22:00-07:00"}``. A rung listed there does not start by itself outside
``auto_hours``: the incident enters phase APPROVAL, the page says what the rung would change
(its plan's changing calls, one line each) and how to answer, and every tick re-judges:

- an answer recorded by ``sentinel approve|deny`` (under the lease, version-conditional, so of
  two answers racing exactly one counts) → the rung starts, or the incident escalates with
  nothing changed;
- the target is healthy again (the trigger checks pass) → DONE, "recovered on its own",
  nothing done; the checks cannot judge → keep waiting (never proceed on old evidence);
- a ``veto_if_failing`` check is CRITICAL or UNKNOWN → keep waiting (an approval does not
  override a veto; the stall page tells a person when that lasts);
- nobody answered within ``timeout_min`` → ``on_timeout``: escalate (page, change nothing) or
  proceed as if approved.

A silence pauses the incident like any other phase (:func:`recover.runbook.advance`), timeout
included: it applies when the silence ends. Why waiting is safe at 3 a.m.: the default
``on_timeout`` is escalate, so an unanswered approval turns into a page, never into a relaunch.
"""

from __future__ import annotations

from datetime import datetime, time, timedelta
from typing import Any

from checks.base import Status
from monitor.config import Approval, Recovery, Target
from monitor.core.clock import iso, parse_iso, zone
from recover.incident import Incident, Phase
from recover.phases import reconfirm
from recover.run import Escalate, Next, Outcome, Resolved, Run, Wait

MAX_PLAN_LINES = 20  # changing calls listed in the page (a plan has ~10)
APPROVED, DENIED = "approved", "denied"


def in_auto_hours(approval: Approval, timezone: str, now: datetime) -> bool:
    """``now`` (any zone) falls inside ``auto_hours`` read in ``timezone``; a window whose end
    is before its start wraps midnight (22:00-07:00)."""
    if not approval.auto_hours:
        return False
    start_text, end_text = approval.auto_hours.split("-")
    start, end = time.fromisoformat(start_text), time.fromisoformat(end_text)
    local = now.astimezone(zone(timezone)).time().replace(tzinfo=None)
    if start < end:
        return start <= local < end
    return local >= start or local < end


def needed(rec: Recovery, rung_index: int, timezone: str, now: datetime) -> bool:
    """Whether ladder rung ``rung_index`` waits for a person's yes at ``now``."""
    approval = rec.approval
    if approval is None or not approval.needs(rec.ladder[rung_index].rung):
        return False
    return not in_auto_hours(approval, timezone, now)


def ask(inc: Incident, rec: Recovery, now: datetime, *, plan: list[str]) -> None:
    """Put ``inc`` (about to start its current rung) into APPROVAL; the rung's first phase
    follows an approval (:func:`recover.incident.next_phase`)."""
    approval = rec.approval
    assert approval is not None
    rung = rec.ladder[inc.rung].rung
    inc.approval = {"rung": rung, "index": inc.rung, "asked_at": iso(now), "timeout_min": approval.timeout_min,
                    "on_timeout": approval.on_timeout, "plan": plan[:MAX_PLAN_LINES], "answer": None}
    inc.phase, inc.phase_started_at = Phase.APPROVAL.value, iso(now)
    inc.timeline.append({"at": iso(now), "phase": Phase.APPROVAL.value,
                         "note": f"{rung} needs approval (timeout {approval.timeout_min:g} min, then "
                                 f"{approval.on_timeout})"})


def defer(inc: Incident, rec: Recovery) -> None:
    """The rung will ask after the prelude (diagnostics first): its budget is not spent at the
    start; :func:`ask` fills in the rest when the prelude hands over."""
    inc.approval = {"rung": rec.ladder[inc.rung].rung, "index": inc.rung, "asked_at": None, "answer": None}


def deferred(inc: Incident) -> bool:
    """An ask decided at the start and not made yet (see :func:`defer`)."""
    return isinstance(inc.approval, dict) and not inc.approval.get("asked_at")


def pending(inc: Incident) -> dict[str, Any] | None:
    """The approval the incident waits for, else None."""
    if inc.current is not Phase.APPROVAL or not isinstance(inc.approval, dict):
        return None
    return inc.approval


def wait(run: Run) -> Outcome:
    """Phase APPROVAL (see the module docstring for the rules, in this order)."""
    inc = run.inc
    ask_ = inc.approval if isinstance(inc.approval, dict) else {}
    rung = str(ask_.get("rung") or "the next rung")
    if run.dry_run:
        return Next(f"dry run: {rung} would wait for approval (sentinel approve|deny --target {inc.target})")
    answer = ask_.get("answer") if isinstance(ask_.get("answer"), dict) else None
    if answer and answer.get("decision") == DENIED:
        return Escalate(f"{rung} denied by {answer.get('by')}: {answer.get('reason')}; nothing was changed "
                        "(traffic untouched)")
    checked = reconfirm(run, f"{rung} (waiting for approval)")
    if isinstance(checked, Resolved):
        return Resolved(checked.note.replace("nothing was destroyed", f"nothing was done ({rung} was never approved "
                                                                     "or run)"))
    if isinstance(checked, Wait):
        return checked
    vetoed = _vetoed(run)
    if vetoed:
        return Wait(f"{rung}: vetoed by {vetoed}: waits (an approval does not override a veto)")
    if answer and answer.get("decision") == APPROVED:
        return Next(f"{rung} approved by {answer.get('by')}: {answer.get('reason')}")
    asked = parse_iso(str(ask_.get("asked_at") or inc.phase_started_at))
    limit = timedelta(minutes=float(ask_.get("timeout_min") or 30))
    waited = run.now() - asked
    if waited >= limit:
        what = f"nobody answered within {limit.total_seconds() / 60:g} min"
        if ask_.get("on_timeout") == "proceed":
            return Next(f"{what}: proceeding with {rung} (recovery.approval.on_timeout: proceed)")
        return Escalate(f"{what} (recovery.approval.on_timeout: escalate): {rung} not run, nothing was changed")
    return Wait(f"waiting for approval of {rung}: {waited.total_seconds() / 60:.0f} of "
                f"{limit.total_seconds() / 60:g} min; then {ask_.get('on_timeout') or 'escalate'}")


def _vetoed(run: Run) -> str | None:
    names = list(run.rctx.target.recovery.veto_if_failing)
    if not names:
        return None
    results = run.rctx.run_checks(names, None)
    bad = [f"{r.name} {r.status.name}" for r in results if r.status in (Status.CRITICAL, Status.UNKNOWN)]
    return ", ".join(bad) or None


MAX_ANSWERS = 10  # answers kept per incident (each ask has at most one)


def mismatch(inc: Incident, *, rung: str | None, incident: str | None, who: str, reason: str) -> str | None:
    """Why this answer does not belong to the ask waiting (a usage error), else None."""
    ask_ = inc.approval or {}
    if incident and incident != inc.id:
        return f"usage: --incident {incident[:128]} is not the incident waiting for approval ({inc.id}): nothing recorded"
    if rung and rung != ask_.get("rung"):
        return (f"usage: --rung {rung} is not the rung waiting for approval ({ask_.get('rung')}, asked at "
                f"{ask_.get('asked_at')}): nothing recorded; read its page (sentinel status) and answer that")
    for old in inc.answers:
        if old.get("by") == who and old.get("reason") == reason and old.get("asked_at") != ask_.get("asked_at"):
            return (f"usage: the same answer ({who}: {reason[:80]!r}) was given to the {old.get('rung')} ask at "
                    f"{old.get('at')}; {ask_.get('rung')} is a new ask: answer it with its own reason, or "
                    f"--rung {ask_.get('rung')}: nothing recorded")
    return None


def record(inc: Incident, *, approve: bool, who: str, reason: str, now: datetime) -> str:
    """Record a person's answer on the pending approval; returns the audit line. The caller
    holds the lease and saves it (version-conditional): of two answers racing, the second
    finds it answered."""
    ask_ = pending(inc)
    assert ask_ is not None
    decision = APPROVED if approve else DENIED
    ask_["answer"] = {"decision": decision, "by": who, "reason": reason, "at": iso(now)}
    inc.answers = [*inc.answers[-(MAX_ANSWERS - 1):], {"rung": ask_.get("rung"), "asked_at": ask_.get("asked_at"),
                                                        "by": who, "reason": reason, "at": iso(now)}]
    return f"{ask_.get('rung')} {decision} by {who}: {reason}"


def why_not_pending(inc: Incident | None, target: Target) -> str:
    """The usage error of an approve/deny with nothing to answer."""
    if inc is None:
        return f"usage: no recovery in progress for {target.name}: nothing to approve or deny"
    answered = inc.approval.get("answer") if isinstance(inc.approval, dict) else None
    if isinstance(answered, dict):
        return (f"usage: no approval pending for {target.name}: {inc.approval.get('rung') if inc.approval else ''} "
                f"was already {answered.get('decision')} by {answered.get('by')} at {answered.get('at')} "
                f"(incident {inc.id} is in {inc.phase})")
    return f"usage: no approval pending for {target.name} (incident {inc.id} is in {inc.phase})"


def summary(rec: Recovery, timezone: str) -> str | None:
    """One line for ``plan``: which rungs wait for whom, and what happens when nobody answers."""
    a = rec.approval
    if a is None:
        return None
    hours = f"; not asked {a.auto_hours} ({timezone})" if a.auto_hours else ""
    return (f"{', '.join(a.rungs)} wait(s) for `sentinel approve` (timeout {a.timeout_min:g} min, then "
            f"{a.on_timeout}){hours}")
