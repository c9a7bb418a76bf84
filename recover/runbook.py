"""The recovery runbook (DESIGN §7): a persisted phase machine advanced by successive ticks.

``start`` (the tick, after the policy confirmed a failure) double-checks the guardrails,
persists a new incident (and counts it against the budget), pages, and advances as far as
the invocation's time allows. ``advance`` (later ticks, while ``is_active``) continues.
Phases: see :mod:`recover.incident`; each is a function in :mod:`recover.phases` (the replace
rung), :mod:`recover.restart` (the restart rung) or :mod:`recover.rollback` (FAILED).

Guarantees, and what gives them:
- one recovery per target at a time: the tick's lease, the fencing token and the version
  condition on every state write (a :class:`~recover.run.Stop` ends the call at once), and
  the incident tag that LAUNCH looks for before launching;
- resumable: each phase is idempotent and its result is persisted before the next one;
- bounded: budget (start), ``launch_timeout_min`` (WAIT_READY), verify timeouts, a limit on
  internal errors per phase, and transient AWS faults retried for at most twice the phase's
  stall limit; then FAILED → rollback → ESCALATED (page, and the policy blocks automation
  until ``sentinel ack``);
- dry run: the same functions with the mutating AWS calls recorded instead of made.

Size: the phase machine is one job: its entry points (start, advance, abort, plan), the
loop that drives the phases and climbs the ladder, and the report of an incident all read
and write the same incident under the same guarantees (above); the phases themselves live
in recover/phases.py, recover/restart.py and recover/rollback.py.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from monitor.config import Recovery, RestartRung
from monitor.core.clock import iso, parse_iso
from monitor.core.errors import SentinelError
from monitor.core.faults import AwsError
from monitor.core.outages import STATE_TABLE
from monitor.core.state.base import Event, TargetState
from monitor.core.state.readonly import ReadOnlyStore
from monitor.fixes import recurring
from monitor.policy import active_silence, recoveries_in_window, rung_budget_notes, start_blockers, usable_rungs
from monitor.runner import check_budget
from recover import approval, diagnostics, messages, phases, restart, rollback
from recover.context import RecoveryContext, RecoveryResult
from recover.incident import ORDER, PRELUDE, RESTART_PHASES, TERMINAL, Incident, Phase, next_phase
from recover.phases import VERIFY_TIMEOUT, release_claim
from recover.rollback import sweep
from recover.run import Again, Escalate, Fail, Next, Outcome, Resolved, Run, Stop, Wait

MAX_TRANSIENT_ERRORS = 5  # consecutive internal errors (bugs) in one phase → FAILED
MIN_PHASE_BUDGET_S = 5.0  # do not start a phase with less time than this left in the invocation
KEEP_RECOVERIES = 50
INFO_PHASES = frozenset({Phase.LAUNCH, Phase.WAIT_READY, Phase.REPOINT, Phase.RETIRE_OLD, Phase.RESTART})
DEFAULT_STALL = timedelta(minutes=30)
STALL_SLACK = timedelta(minutes=10)


# Which function runs each phase (replace rung: recover/phases.py; restart rung: recover/restart.py).
PHASES: dict[Phase, Callable[[Run], Outcome]] = {
    Phase.SNAPSHOT: phases.snapshot,
    Phase.LAUNCH: phases.launch,
    Phase.WAIT_READY: phases.wait_ready,
    Phase.VERIFY_NEW: phases.verify_new,
    Phase.REPOINT: phases.repoint,
    Phase.VERIFY_PATH: phases.verify_path,
    Phase.RETIRE_OLD: phases.retire_old,
    Phase.FAILED: rollback.rollback,
    Phase.RESTART: restart.restart,
    Phase.VERIFY: restart.verify_restart,
    Phase.DIAGNOSE: diagnostics.diagnose,
    Phase.APPROVAL: approval.wait,
}
KEEP_FIXES = 50  # TargetState.fixes: enough for any recurring window (count <= 50)


class RecoveryUnavailable(SentinelError):
    pass


def is_active(state: TargetState) -> bool:
    return state.incident is not None and state.incident.get("phase") not in ("DONE", "ESCALATED", None)


# ---------------------------------------------------------------------------- entry points

def start(rctx: RecoveryContext, state: TargetState, *, reason: str, force: bool = False,
          restart_only: bool = False) -> RecoveryResult:
    """``restart_only``: the policy allowed restart rungs only (a flapping check): the incident
    never climbs to a relaunch."""
    target = rctx.target
    rec = target.recovery
    now = rctx.clock.now()
    blockers = start_blockers(target, state, now, manual=True)  # the tick's policy decided on `enabled`
    if blockers:
        raise RecoveryUnavailable("; ".join(blockers))
    if rctx.dry_run:
        return _dry_run_start(rctx, state, reason=reason, force=force)
    if rctx.lease is None:
        raise RecoveryUnavailable("no lease held: refusing to change anything")

    first = usable_rungs(target, state, now)[0]  # start_blockers made sure there is one
    if restart_only and not isinstance(rec.ladder[first], RestartRung):
        raise RecoveryUnavailable(f"only a restart was allowed (flapping), and the next rung with budget is "
                                  f"{rec.ladder[first].rung}")
    inc = Incident.create(target.name, order_of(rec, first), now, reason=reason, requested_by=rctx.requested_by,
                          force=force, rung=first, prelude=prelude(rec))
    inc.restart_only = restart_only
    skipped = [rec.ladder[i].rung for i in range(first)]
    paused = [r for r in skipped if r in state.paused_rungs]
    if set(skipped) - set(paused):
        inc.notes.append(f"rung(s) {', '.join(r for r in skipped if r not in paused)} skipped: over their budget")
    if paused:
        inc.notes.append(f"rung(s) {', '.join(paused)} skipped: paused (recurring fixes) until `sentinel ack`")
    asks = approval.needed(rec, first, rctx.config.notify.timezone, now)
    if asks and inc.current in PRELUDE:  # with diagnostics, the ask follows them, evidence in hand (_drive)
        approval.defer(inc, rec)
    elif asks:
        approval.ask(inc, rec, now, plan=rung_plan_lines(rctx, state, first, reason=reason))
    run = Run(rctx, state, inc, persist=True, dry_run=False)
    try:
        # A rung waiting for approval spends its budget when it is approved (see _enter).
        run.save(f"recovery {inc.id} started ({inc.strategy}): {reason}",
                 **({} if asks else _budget_use(rec, state, first, now)))
    except Stop as exc:
        report = {"status": "UNKNOWN", "phase": None, "summary": f"recovery not started: {exc}"}
        if run.store_failed:
            report["store_failed"] = run.store_failed
        return RecoveryResult(state, report)
    rctx.metrics.put("RecoveryStarted", 1, "Count", target=target.name)
    rctx.metrics.put("RecoveryPhase", inc.current.number, "None", target=target.name)
    rctx.metrics.put("RemediationRung", first + 1, "None", target=target.name)
    used = recoveries_in_window(state, now, rec.limits.window_hours)
    subject, body = messages.started(target, inc, attempt=len(used) + 1)
    rctx.notifier.page(target.name, "recovery-started", subject, body)
    if asks and inc.current is Phase.APPROVAL:
        rctx.notifier.page(target.name, "approval-needed", *messages.approval_needed(target, inc))
    return _continue(run)


def prelude(rec: Recovery) -> Phase | None:
    """The phase a new incident enters before its first rung acts (``incident.PRELUDE``):
    DIAGNOSE when ``recovery.diagnostics`` is configured; ``next_phase`` hands over from it to
    the rung's first phase (a phase added before the rung, e.g. an approval, goes here too)."""
    return Phase.DIAGNOSE if rec.diagnostics is not None else None


def order_of(rec: Recovery, index: int) -> str:
    """The phase order (ORDER key) of ladder rung ``index``."""
    return "restart_service" if isinstance(rec.ladder[index], RestartRung) else rec.strategy


def _budget_use(rec: Recovery, state: TargetState, index: int, now: datetime) -> dict[str, Any]:
    """The state change that counts one use of rung ``index`` against its budget."""
    rung = rec.ladder[index]
    if isinstance(rung, RestartRung):
        uses = dict(state.rung_uses)
        uses[rung.rung] = [*uses.get(rung.rung, [])[-KEEP_RECOVERIES:], iso(now)]
        return {"rung_uses": uses}
    return {"recoveries": [*state.recoveries[-KEEP_RECOVERIES:], iso(now)]}


def _climb(run: Run, phase: Phase, why: str) -> Fail | None:
    """A restart rung failed: hand the incident to the next rung with budget (None: there is
    none, the incident fails and escalates)."""
    inc, rctx = run.inc, run.rctx
    rec = rctx.target.recovery
    now = run.now()
    if inc.rungs:
        inc.rungs[-1].update(finished_at=iso(now), outcome="failed", note=why)
    nxt = usable_rungs(rctx.target, run.state, now, after=inc.rung)
    if inc.restart_only:  # flapping allowed restarts only: never a relaunch
        nxt = [i for i in nxt if isinstance(rec.ladder[i], RestartRung)]
        if not nxt:
            return Fail(why + "; only restart rungs were allowed (recovery.when.on_flapping: restart): "
                              "no relaunch for a flapping check")
    if not nxt:
        skipped = [rec.ladder[i].rung for i in range(inc.rung + 1, len(rec.ladder))]
        return Fail(why + (f"; next rung(s) {', '.join(skipped)} over budget" if skipped else "; no rung left"))
    index = nxt[0]
    inc.rung, inc.strategy = index, order_of(rec, index)
    inc.rungs.append({"rung": rec.ladder[index].rung, "index": index, "started_at": iso(now)})
    if inc.strategy == "restart_service":  # another restart rung sends its own command
        inc.restart = None
    first = ORDER[inc.strategy][0]
    inc.phase, inc.phase_started_at = first.value, iso(now)
    inc.timeline.append({"at": iso(now), "phase": first.value,
                         "note": f"{phase.value} did not help ({why}): rung {index + 1} {rec.ladder[index].rung}"})
    asks = approval.needed(rec, index, rctx.config.notify.timezone, now) and not run.dry_run
    if asks:
        approval.ask(inc, rec, now, plan=rung_plan_lines(rctx, run.state, index, reason=inc.reason))
        first = Phase.APPROVAL
    run.save(f"{phase.value} -> {first.value}: climbing to {rec.ladder[index].rung}: {why}",
             **({} if asks else _budget_use(rec, run.state, index, now)))
    run.transitions.append({"from": phase.value, "to": first.value, "at": iso(now), "note": why})
    rctx.metrics.put("RemediationRung", index + 1, "None", target=rctx.target.name)
    rctx.metrics.put("RecoveryPhase", first.number, "None", target=rctx.target.name)
    rctx.notifier.page(rctx.target.name, "recovery-climbing", *messages.climbing(rctx.target, inc, phase, why))
    if asks:
        rctx.notifier.page(rctx.target.name, "approval-needed", *messages.approval_needed(rctx.target, inc))
    return None


def advance(rctx: RecoveryContext, state: TargetState) -> RecoveryResult:
    if not is_active(state):
        inc = Incident.from_dict(state.incident) if state.incident else None
        return RecoveryResult(state, _idle_report(inc))
    inc = Incident.from_dict(dict(state.incident or {}))
    state, stalled = _stall_check(rctx, state, inc)
    if rctx.dry_run:  # e.g. `sentinel tick --dry-run` during a recovery: what the next phases would do
        result = _continue(Run(rctx, state, inc, persist=False, dry_run=True))
        if rctx.target.recovery.dry_run:  # switched to dry run mid-incident: it does not advance
            result.report["frozen"] = (f"incident {inc.id} is active in {inc.phase} but recovery.dry_run is true: it "
                                       "does not advance. Set dry_run: false to continue, or run `sentinel abort "
                                       f"--target {rctx.target.name} --reason ...` to end it")
            result.report["summary"] = result.report["frozen"]
        if stalled:
            result.report["stalled"] = stalled
        return result
    if rctx.lease is None:
        raise RecoveryUnavailable("no lease held: refusing to change anything")
    silence = active_silence(rctx.target, state, rctx.clock.now())
    if silence is not None:
        report = _report(Run(rctx, state, inc, persist=False, dry_run=False))
        report.update(paused=True, summary=f"recovery {inc.id} paused in {inc.phase}: silenced until "
                                           f"{iso(silence.until)} ({silence.reason})")
        if stalled:
            report["stalled"] = stalled
        return RecoveryResult(state, report)
    result = _continue(Run(rctx, state, inc, persist=True, dry_run=False))
    if stalled:
        result.report["stalled"] = stalled
    return result


def stall_limit(rctx: RecoveryContext, inc: Incident) -> timedelta:
    """How long an incident may sit in one phase before a person is paged:
    ``recovery.stall_after_min``, else the phase's own timeout (plus a tick of slack), else 30 min."""
    rec = rctx.target.recovery
    phase = inc.current
    if rec.stall_after_min is not None:
        return timedelta(minutes=rec.stall_after_min)
    own = {Phase.WAIT_READY: timedelta(minutes=rec.limits.launch_timeout_min),
           Phase.VERIFY_NEW: VERIFY_TIMEOUT, Phase.VERIFY_PATH: VERIFY_TIMEOUT}.get(phase)
    if phase is Phase.SNAPSHOT and inc.ha:  # waiting for EMR to replace a primary (recover/ha.py)
        own = timedelta(minutes=rec.ha.replace_wait_min)
    rung = rec.ladder[min(inc.rung, len(rec.ladder) - 1)]
    if phase is Phase.APPROVAL:
        own = timedelta(minutes=float((inc.approval or {}).get("timeout_min") or 30))
    if isinstance(rung, RestartRung) and phase is Phase.RESTART:
        own = timedelta(minutes=rung.timeout_min)
    elif isinstance(rung, RestartRung) and phase is Phase.VERIFY:
        own = timedelta(seconds=rung.warmup_s, minutes=rung.verify_timeout_min)
    elif phase is Phase.DIAGNOSE and rec.diagnostics is not None:
        own = timedelta(seconds=rec.diagnostics.timeout_s)
    return own + STALL_SLACK if own is not None else DEFAULT_STALL


def _stall_check(rctx: RecoveryContext, state: TargetState, inc: Incident) -> tuple[TargetState, str | None]:
    """Page once per phase when the incident has not moved for too long: whatever the reason
    (dry run switched on, a silence, a lost lease, a phase that keeps waiting), a person
    must know that automation is not getting anywhere."""
    phase = inc.current
    waited = rctx.clock.now() - parse_iso(inc.phase_started_at)
    limit = stall_limit(rctx, inc)
    if waited <= limit:
        return state, None
    note = (f"incident {inc.id} has been in {phase.value} for {waited.total_seconds() / 60:.0f} min "
            f"(stall limit {limit.total_seconds() / 60:.0f} min)")
    marker = f"{phase.value}@{inc.phase_started_at}"
    if inc.stall_paged == marker or rctx.lease is None or isinstance(rctx.store, ReadOnlyStore):
        return state, note
    inc.stall_paged = marker
    why = inc.last_wait or "no progress recorded"
    if rctx.target.recovery.dry_run:
        why = "recovery.dry_run is true, so the incident does not advance"
    subject, body = messages.stalled(rctx.target, inc, note, why)
    try:
        state = rctx.store.put(rctx.target.name, replace(state, incident=inc.to_dict()), lease=rctx.lease, now=rctx.clock.now(),
                               events=[Event(iso(rctx.clock.now()), "recovery-stalled", f"{note}: {why}",
                                             {"incident": inc.id, "phase": phase.value}, "sentinel")])
    except SentinelError as exc:
        # The marker that makes the stall page go out once cannot be written (writes fail while
        # reads work: throttled, denied, an item over 400 KB): the page still goes out, once per
        # outage through the invocation's outage notes (or at once without them).
        if rctx.outages is None:
            rctx.notifier.page(rctx.target.name, "recovery-stalled", subject, body)
        else:
            rctx.outages.note(f"stall-{rctx.target.name}", rctx.target.name, str(exc), kind="recovery-stalled",
                              subject=subject, body=body)
            rctx.outages.note(STATE_TABLE, rctx.target.name, str(exc))
        return state, f"{note} (stall marker not recorded: {exc}; paged once per outage)"
    rctx.notifier.page(rctx.target.name, "recovery-stalled", subject, body)
    return state, note


def abort(rctx: RecoveryContext, state: TargetState, *, reason: str) -> RecoveryResult:
    """``sentinel abort`` / the Lambda ``abort`` action: end an active recovery by hand under
    the lease. Before the cut-over was verified: FAILED → rollback → ESCALATED. After it: the
    sweep (clusters of the incident other than the verified one are terminated, as before every
    ESCALATED), then ESCALATED with traffic left on the new cluster. Paged (page topic) with
    who and why, once the abort is persisted: an abort whose first write fails (the lease or
    the state moved on) changed nothing, pages nothing and says so (status UNKNOWN)."""
    if not is_active(state):
        raise RecoveryUnavailable("no recovery in progress")
    if rctx.lease is None:
        raise RecoveryUnavailable("no lease held: refusing to change anything")
    inc = Incident.from_dict(dict(state.incident or {}))
    was = inc.phase
    who = rctx.requested_by or "a person"
    run = Run(rctx, state, inc, persist=True, dry_run=False)
    error = f"aborted by {who}: {reason}"
    try:
        if inc.recovered_at:  # clients are on the verified new cluster: undo nothing
            inc.escalation = f"{error}. Clients stay on the new cluster {inc.new_cluster_id}"
            run.save(f"abort requested by {who} in {was}: {reason}", kind="recovery-aborted")
        elif inc.current is not Phase.FAILED:
            inc.failed = {"phase": inc.phase, "error": error, "at": iso(rctx.clock.now())}
            _enter(run, Phase.FAILED, error)
        else:  # already rolling back: the abort only says who asked
            run.save(f"abort requested by {who} in {was}: {reason}", kind="recovery-aborted")
    except Stop as exc:
        run.stopped = str(exc)
        report = _report(run)
        report.update(status="UNKNOWN", phase=was, transitions=[],
                      summary=f"abort of {inc.id} not done, nothing changed: {exc}; try again")
        return RecoveryResult(run.state, report)
    rctx.notifier.page(rctx.target.name, "recovery-aborted", *messages.aborted(rctx.target, inc, who, reason,
                                                                              in_phase=was))
    if inc.recovered_at:
        try:
            _sweep(run)
            _enter(run, Phase.ESCALATED, inc.escalation or error)
        except Stop as exc:
            run.stopped = str(exc)
            return RecoveryResult(run.state, _report(run))
    return _continue(run)


def answer(rctx: RecoveryContext, state: TargetState, *, approve: bool, reason: str, rung: str | None = None,
           incident: str | None = None) -> RecoveryResult:
    """``sentinel approve|deny`` / the Lambda ``approve``/``deny`` actions (operator door):
    record a person's answer on the pending approval under the lease, page it to the info
    topic with who and why, then go on at once (an approval starts the rung in this call; a
    denial escalates with nothing changed). The write is version-conditional: of two answers
    racing, the second finds the approval answered (or the state moved on) and changes nothing.

    An answer belongs to one ask: ``rung`` / ``incident`` (the approval page's command names
    them) must match the ask waiting, and the same answer (same person, same reason) given to
    an earlier ask of this incident is refused (a retried delivery, or a late "yes" to the
    restart's page, must not approve the relaunch nobody saw the plan of). Under
    ``recovery.dry_run`` nothing is recorded (the incident is frozen); under a silence the
    answer is recorded and acted on when the silence ends."""
    if rctx.lease is None:
        raise RecoveryUnavailable("no lease held: refusing to change anything")
    if rctx.dry_run:
        raise RecoveryUnavailable(f"usage: recovery.dry_run is true for {rctx.target.name}: its incident does not "
                                  "advance, so it takes no answer; nothing recorded (set dry_run: false first)")
    # A deep copy: the answer is written into the incident's nested approval record, which must
    # not alias the state this call was given (a caller may hold it for a retry or a report).
    inc = Incident.from_dict(copy.deepcopy(state.incident or {})) if is_active(state) else None
    if inc is None or approval.pending(inc) is None or (inc.approval or {}).get("answer"):
        raise RecoveryUnavailable(approval.why_not_pending(inc, rctx.target))
    who = rctx.requested_by or "a person"
    mismatch = approval.mismatch(inc, rung=rung, incident=incident, who=who, reason=reason)
    if mismatch:
        raise RecoveryUnavailable(mismatch)
    line = approval.record(inc, approve=approve, who=who, reason=reason, now=rctx.clock.now())
    run = Run(rctx, state, inc, persist=True, dry_run=False)
    try:
        run.save(line, kind="approval-approved" if approve else "approval-denied")
    except Stop as exc:
        report = _report(run)
        report.update(status="UNKNOWN", transitions=[],
                      summary=f"answer not recorded, nothing changed: {exc}; check `sentinel status` and try again")
        return RecoveryResult(run.state, report)
    rctx.notifier.info(rctx.target.name, "approval-answered", *messages.approval_answered(rctx.target, inc, line))
    silence = active_silence(rctx.target, run.state, rctx.clock.now())
    if silence is not None:  # recorded; acted on by the first tick after the silence
        report = _report(run)
        report.update(paused=True, summary=f"{line}: recorded; {rctx.target.name} is silenced until "
                                           f"{iso(silence.until)} ({silence.reason}): it acts when the silence ends")
        return RecoveryResult(run.state, report)
    return _continue(run)


def _dry_run_rung(rctx: RecoveryContext, state: TargetState, index: int, *, reason: str, incident_id: str,
                  with_prelude: bool = False) -> tuple[Incident, Run]:
    """Ladder rung ``index`` driven in dry run (real reads, changing calls recorded, nothing
    persisted): what ``plan`` and an approval page show."""
    rec = rctx.target.recovery
    inc = Incident.create(rctx.target.name, order_of(rec, index), rctx.clock.now(), reason=reason,
                          requested_by=rctx.requested_by, force=False, incident_id=incident_id, rung=index,
                          prelude=prelude(rec) if with_prelude else None)
    run = Run(rctx, state, inc, persist=False, dry_run=True)
    try:
        _drive(run)
    except Stop as exc:  # cannot happen without persistence; kept for symmetry
        run.stopped = str(exc)
    return inc, run


def rung_plan_lines(rctx: RecoveryContext, state: TargetState, index: int, *, reason: str) -> list[str]:
    """The changing calls ladder rung ``index`` would make, one line each (a dry run of the
    rung: real reads, nothing sent), for the approval page. Never raises: a plan that cannot
    be made says so (the person is still asked)."""
    try:
        inc, run = _dry_run_rung(rctx, state, index, reason=reason, incident_id=f"{rctx.target.name}-APPROVAL")
    except Exception as exc:  # the ask must go out whatever the plan does
        return [f"(plan unavailable: {type(exc).__name__}: {str(exc)[:200]}; see sentinel plan)"]
    lines = [f"{r.phase:<12} {r.service}.{r.op}{_subject(r.params)}" for r in run.aws.records if r.mutating]
    if inc.failed or inc.escalation:
        lines.append(f"(the dry run stops: {(inc.failed or {}).get('error') or inc.escalation})")
    return lines or ["(no changing AWS call)"]


# Parameters that name what a changing call changes (never a secret: ids, names, record names).
_SUBJECT_KEYS = ("Name", "JobFlowIds", "ClusterId", "TargetGroupArn", "LoadBalancerName", "HostedZoneId",
                 "InstanceIds", "ResourceId")


def _subject(params: dict[str, Any]) -> str:
    parts = [f"{k}={str(params[k])[:120]}" for k in _SUBJECT_KEYS if params.get(k)]
    return f" ({', '.join(parts[:3])})" if parts else ""


def build_plan(rctx: RecoveryContext, state: TargetState, *, reason: str = "plan") -> dict[str, Any]:
    """Every rung of the ladder in dry run, in order: every AWS call with its parameters.
    Nothing is persisted, sent or launched; reads are real. The top-level keys describe the
    relaunch rung when the ladder has one (else the last rung)."""
    rec = rctx.target.recovery
    rungs: list[dict[str, Any]] = []
    calls: list[dict[str, Any]] = []
    main: tuple[Incident, Run] | None = None
    for index, rung in enumerate(rec.ladder):
        inc, run = _dry_run_rung(rctx, state, index, reason=reason, incident_id=f"{rctx.target.name}-DRYRUN",
                                 with_prelude=index == 0)
        rung_calls = [{**r.to_dict(), "rung": rung.rung} for r in run.aws.records]
        calls.extend(rung_calls)
        entry: dict[str, Any] = {"rung": rung.rung, "ok": inc.current is Phase.DONE, "phases": list(inc.timeline),
                                 "calls": rung_calls, "budget": rec.rung_budget(rung)}
        if rec.approval is not None and rec.approval.needs(rung.rung):
            entry["approval"] = approval.summary(rec, rctx.config.notify.timezone)
        if isinstance(rung, RestartRung):
            entry.update(via=rung.via, command=rung.command, timeout_min=rung.timeout_min,
                         note=("an EMR step waits behind running steps when the cluster's step concurrency is 1: "
                               f"the rung gives up after timeout_min ({rung.timeout_min:g} min), cancels it and "
                               "moves on") if rung.via == "step" else
                              f"SSM Run Command (AWS-RunShellScript) on the master instance; "
                              f"timeout_min {rung.timeout_min:g}")
        rungs.append(entry)
        if main is None or not isinstance(rung, RestartRung):
            main = (inc, run)
    assert main is not None
    inc, run = main
    now = rctx.clock.now()
    blockers = start_blockers(rctx.target, state, now, manual=True)
    if not rec.enabled:
        blockers.append("recovery.enabled is false: only `sentinel recover` would start it")
    by_phase: dict[str, int] = {}
    for c in calls:
        if not c["call"].startswith("sentinel."):
            by_phase[c["phase"]] = by_phase.get(c["phase"], 0) + 1
    return {
        "target": rctx.target.name,
        "strategy": inc.strategy,
        "ladder": [r.rung for r in rec.ladder],
        "rungs": rungs,
        "spec_source": inc.spec_source or rec.spec.source,
        "old_cluster": inc.old,
        "ok": inc.current is Phase.DONE,
        "error": (inc.failed or {}).get("error") or inc.escalation,
        "final_phase": inc.phase,
        "phases": [p for r in rungs for p in r["phases"]],
        "calls": calls,
        "calls_by_phase": by_phase,
        "request": inc.spec,
        "not_copied": inc.not_copied,
        "notes": inc.notes,
        "would_not_start_now": blockers,
        "approval": approval.summary(rec, rctx.config.notify.timezone),
    }


# ---------------------------------------------------------------------------- the machine

def _continue(run: Run) -> RecoveryResult:
    try:
        _drive(run)
    except Stop as exc:
        run.stopped = str(exc)
    return RecoveryResult(run.state, _report(run))


def _drive(run: Run) -> None:
    """Advance phase after phase while time allows; stop at a wait or a terminal phase."""
    if run.inc.escalation and run.inc.current not in TERMINAL and not run.dry_run:
        # An escalation was decided (an abort after the cut-over, an Escalate outcome) and
        # persisted, but the invocation ended before ESCALATED: finish it, never carry on.
        _sweep(run)
        _enter(run, Phase.ESCALATED, run.inc.escalation)
        return
    while True:
        phase = run.inc.current
        if phase in TERMINAL:
            return
        if run.rctx.deadline.remaining() < _budget_s(run, phase):
            run.inc.last_wait = f"out of time in this invocation: {phase.value} continues on the next tick"
            return
        run.aws.phase = phase.value
        errors_before = run.inc.transient_errors
        try:
            outcome: Outcome = PHASES[phase](run)
        except Stop:
            raise
        except AwsError as exc:
            outcome = _on_error(run, phase, exc, transient=exc.transient)
        except Exception as exc:  # a bug must not loop forever: counts like a transient error
            outcome = _on_error(run, phase, exc, transient=True)
        if isinstance(outcome, Wait):
            if run.inc.transient_errors == errors_before:  # an ordinary wait: the error streak is over
                run.inc.transient_errors = 0
            if run.inc.last_wait != outcome.note:
                run.inc.last_wait = outcome.note
                run.save(f"{phase.value}: {outcome.note}", kind="recovery-wait")
            return
        run.inc.transient_errors = 0
        run.inc.last_wait = None
        if isinstance(outcome, Fail) and phase in RESTART_PHASES:
            climbed = _climb(run, phase, outcome.error)
            if climbed is None:
                continue
            outcome = climbed
        if isinstance(outcome, Fail) and run.inc.recovered_at:
            # Clients are on the new cluster and it passed through the normal path: moving them
            # back to the old (broken) master would undo the recovery. A person finishes it.
            outcome = Escalate(f"{outcome.error}. Clients stay on the new cluster {run.inc.new_cluster_id} (verified at "
                               f"{run.inc.recovered_at}); nothing was rolled back")
        if isinstance(outcome, Again):  # the next primary: RESTART picks it afresh
            run.inc.restart = None
        if isinstance(outcome, Next):
            # Resolved: the failure was gone when re-confirmed before a destroying call (phases.reconfirm)
            nxt = Phase.DONE if isinstance(outcome, Resolved) else \
                ORDER[run.inc.strategy][0] if isinstance(outcome, Again) else next_phase(run.inc.strategy, phase)
            if phase in PRELUDE and nxt is not Phase.DONE and _ask_after_prelude(run, phase, outcome.note):
                continue
            if nxt in TERMINAL:
                _sweep(run)
            _enter(run, nxt, outcome.note)
        elif isinstance(outcome, Fail):
            run.inc.failed = {"phase": phase.value, "error": outcome.error, "at": iso(run.now())}
            _enter(run, Phase.FAILED, outcome.error)
        else:
            run.inc.escalation = outcome.error
            _sweep(run)
            _enter(run, Phase.ESCALATED, outcome.error)


def _ask_after_prelude(run: Run, phase: Phase, note: str) -> bool:
    """After the prelude (diagnostics), a rung that needs approval asks now, with the evidence
    in hand: enter APPROVAL (persisted, then paged). False: no approval is asked (none
    configured, inside ``auto_hours``, a dry run, or it was asked already)."""
    rctx, inc = run.rctx, run.inc
    rec = rctx.target.recovery
    now = run.now()
    if run.dry_run or not approval.deferred(inc) or not approval.needed(rec, inc.rung, rctx.config.notify.timezone,
                                                                        now):
        return False  # (deferred but no longer needed, e.g. auto_hours began: _enter spends the budget)
    approval.ask(inc, rec, now, plan=rung_plan_lines(rctx, run.state, inc.rung, reason=inc.reason))
    run.save(f"{phase.value} -> {Phase.APPROVAL.value}: {note}")
    run.transitions.append({"from": phase.value, "to": Phase.APPROVAL.value, "at": iso(now), "note": note})
    rctx.metrics.put("RecoveryPhase", Phase.APPROVAL.number, "None", target=rctx.target.name)
    rctx.notifier.page(rctx.target.name, "approval-needed", *messages.approval_needed(rctx.target, inc))
    return True


def _sweep(run: Run) -> None:
    """Before DONE or ESCALATED: exactly one cluster of this incident may remain (the verified
    one), or none. Extras are terminated; what cannot be is in the notes of the final page.
    Best effort: a sweep error never keeps the incident open."""
    if run.dry_run:
        return
    try:
        released = release_claim(run)
    except Stop:
        raise
    except Exception as exc:  # it expires by itself
        released = f"claim not released ({exc})"
    if released:
        run.inc.notes.append(released)
    try:
        run.inc.notes.extend(sweep(run))
    except Stop:
        raise
    except Exception as exc:
        run.inc.notes.append(f"sweep for clusters tagged {run.inc.id} failed ({exc}): check by hand "
                             f"(aws emr list-clusters --active; tag sentinel:incident={run.inc.id})")


def _on_error(run: Run, phase: Phase, exc: Exception, *, transient: bool) -> Outcome:
    """A phase raised. The fault contract (monitor.core.faults) decides:

    - a transient or not-yet-visible AWS answer never fails the phase (nor climbs a rung,
      escalates or spends a budget): the phase waits and is retried on a later tick, until it
      has been stuck for twice its stall limit (the stall page went out at one limit: a person
      knows), which is no longer one bad answer;
    - anything else that is not an AWS error is a bug: retried a few times (it must not loop
      forever), then the phase fails;
    - a final AWS answer fails the phase.
    """
    what = str(exc) if isinstance(exc, AwsError) else f"internal error {type(exc).__name__}: {exc}"
    if isinstance(exc, AwsError) and exc.transient and not run.dry_run:
        stuck = run.now() - parse_iso(run.inc.phase_started_at)
        limit = 2 * stall_limit(run.rctx, run.inc)
        if stuck <= limit:
            kind = "not visible yet" if exc.not_visible else "transient"
            return Wait(f"{what} ({kind}: retried on the next tick; {phase.value} has waited "
                        f"{stuck.total_seconds() / 60:.0f} of {limit.total_seconds() / 60:.0f} min)")
        return Fail(f"{phase.value}: {what} (AWS kept failing for {stuck.total_seconds() / 60:.0f} min)")
    if transient and not isinstance(exc, AwsError) and not run.dry_run \
            and run.inc.transient_errors + 1 < MAX_TRANSIENT_ERRORS:
        run.inc.transient_errors += 1
        return Wait(f"{what} (attempt {run.inc.transient_errors} of {MAX_TRANSIENT_ERRORS}; retried next tick)")
    if phase is Phase.FAILED:  # rollback itself keeps failing: escalate with what is known
        run.inc.rollback_errors.append(what)
        return Next(f"rollback incomplete: {what}")
    return Fail(f"{phase.value}: {what}")


def _budget_s(run: Run, phase: Phase) -> float:
    if phase not in (Phase.VERIFY_NEW, Phase.VERIFY_PATH, Phase.VERIFY) or run.dry_run:
        return MIN_PHASE_BUDGET_S
    rec = run.rctx.target.recovery
    if phase is Phase.VERIFY:
        names = list(rec.when.checks) if rec.when else []
    else:
        names = rec.verify.master_checks if phase is Phase.VERIFY_NEW else rec.verify.checks
    need = max([MIN_PHASE_BUDGET_S, *(check_budget(run.rctx.target.check(n)) for n in names)])
    return need + MIN_PHASE_BUDGET_S


def _enter(run: Run, phase: Phase, note: str) -> None:
    """Persist the move to ``phase``; then (only once it is persisted) tell people and dashboards."""
    inc = run.inc
    rctx = run.rctx
    prev = inc.current
    now = run.now()
    inc.phase, inc.phase_started_at = phase.value, iso(now)
    inc.timeline.append({"at": iso(now), "phase": phase.value, "note": note})
    changes: dict[str, Any] = {}
    if phase is Phase.DONE:
        inc.finished_at = iso(now)
        if inc.rungs:
            inc.rungs[-1].update(finished_at=iso(now), outcome=inc.outcome or "recovered")
        inc.ttr_s = None if inc.outcome else round(((parse_iso(inc.recovered_at) if inc.recovered_at else now)
                                                    - parse_iso(inc.started_at)).total_seconds(), 1)
        if not _failing_since_cut_over(run.state, inc):
            changes = dict(_CLEAN_SLATE)
        # else: the new cluster has been failing since clients moved to it (the tick watches it
        # during RETIRE_OLD): its streak carries over into the next confirmation.
        if not inc.outcome:  # a rung ended it: one more fix of that rung (recovery.limits.recurring)
            changes.update(_record_fix(run, now))
    elif phase is Phase.ESCALATED:
        inc.finished_at = iso(now)
        reason = inc.escalation or (inc.failed or {}).get("error") or note
        changes = {"escalated": {"at": iso(now), "reason": reason, "incident": inc.id},
                   "last_page": {"kind": "confirmed", "at": iso(now), "via": "recovery-escalated"}}
    elif (prev is Phase.APPROVAL or (prev in PRELUDE and approval.deferred(inc))) and phase is not Phase.FAILED:
        # approved (or proceeding, or no longer asked after the prelude): the rung starts, its budget is spent now
        changes = _budget_use(rctx.target.recovery, run.state, inc.rung, now)
    elif inc.recovered_at and prev in (Phase.VERIFY_PATH, Phase.VERIFY) and phase is not Phase.FAILED:
        changes = dict(_CLEAN_SLATE)  # clients are on the verified cluster: its watch starts clean
    run.save(f"{prev.value} -> {phase.value}: {note}", **changes)
    run.transitions.append({"from": prev.value, "to": phase.value, "at": iso(now), "note": note})
    if not run.persist:
        return
    name = rctx.target.name
    rctx.metrics.put("RecoveryPhase", phase.number, "None", target=name)
    if phase is Phase.DONE and inc.outcome:  # it ended without recovering anything: no success, no TTR
        rctx.notifier.page(name, "recovery-aborted", *messages.recovered_on_its_own(
            rctx.target, inc, prev, note, budget="; ".join(rung_budget_notes(rctx.target, run.state, now))))
    elif phase is Phase.DONE:
        rctx.metrics.put("RecoverySucceeded", 1, "Count", target=name)
        rctx.metrics.put("TimeToRecoverSeconds", inc.ttr_s or 0.0, "Seconds", target=name)
        rung = rctx.target.recovery.ladder[min(inc.rung, len(rctx.target.recovery.ladder) - 1)].rung
        rctx.metrics.put("TimeToRecoverSeconds", inc.ttr_s or 0.0, "Seconds", target=name, rung=rung)
        rctx.metrics.put("RemediationFixes", 1, "Count", target=name, rung=rung)
        rctx.notifier.page(name, "recovery-succeeded", *messages.succeeded(rctx.target, inc))
        fixes = recurring(rctx.target, run.state, now, rung)
        if fixes:
            rctx.notifier.page(name, "recovery-recurring", *messages.recurring(
                rctx.target, rung, fixes, paused=rung in run.state.paused_rungs))
    elif phase is Phase.ESCALATED:
        rctx.metrics.put("RecoveryFailed", 1, "Count", target=name)
        rctx.notifier.page(name, "recovery-escalated", *messages.escalated(rctx.target, inc))
    elif phase is Phase.FAILED:
        rctx.notifier.info(name, "recovery-failed", f"recovery FAILED in {prev.value}: rolling back",
                           f"Recovery {inc.id} of {name} failed in {prev.value}: {note}\nRolling back; "
                           "a page follows when it is done.")
    elif prev in INFO_PHASES:
        rctx.notifier.info(name, f"recovery-{prev.value.lower()}", *messages.phase_done(rctx.target, inc, prev, note))


def _rung_name(run: Run) -> str:
    ladder = run.rctx.target.recovery.ladder
    return ladder[min(run.inc.rung, len(ladder) - 1)].rung


def _record_fix(run: Run, now: datetime) -> dict[str, Any]:
    """The state change that records this DONE as a fix of its rung (``TargetState.fixes``,
    bounded, one entry per incident), and pauses the rung when it now recurs and
    ``recovery.limits.recurring.then`` is ``pause``. Written with the DONE itself: both or neither."""
    inc, state, rung = run.inc, run.state, _rung_name(run)
    diag = diagnostics.summary(inc.diagnostics, lines=0)
    fix = {"rung": rung, "at": iso(now), "incident": inc.id, **({"diagnostics": diag[0][:200]} if diag else {})}
    kept = [f for f in (state.fixes if isinstance(state.fixes, list) else []) if f.get("incident") != inc.id]
    changes: dict[str, Any] = {"fixes": [*kept[-(KEEP_FIXES - 1):], fix]}
    rule = run.rctx.target.recovery.limits.recurring
    after = replace(state, fixes=changes["fixes"])
    found = recurring(run.rctx.target, after, now, rung)
    if found and rule is not None and rule.then == "pause" and rung not in state.paused_rungs:
        changes["paused_rungs"] = {**state.paused_rungs, rung: {
            "at": iso(now), "incidents": [f.get("incident") for f in found],
            "reason": f"{len(found)} fixes in {rule.days:g} days (recovery.limits.recurring)"}}
    return changes


_CLEAN_SLATE: dict[str, Any] = {"consecutive_failures": 0, "streaks": {}, "consecutive_unknown": 0,
                                 "failing_since": None, "last_page": None}


def _failing_since_cut_over(state: TargetState, inc: Incident) -> bool:
    """The serving (new) cluster has a failing streak that began after the cut-over."""
    if not inc.recovered_at or not state.failing_since or not any(state.streaks.values()):
        return False
    return parse_iso(state.failing_since) >= parse_iso(inc.recovered_at)


# ---------------------------------------------------------------------------- dry run and reports

def _dry_run_start(rctx: RecoveryContext, state: TargetState, *, reason: str, force: bool) -> RecoveryResult:
    """No incident that later ticks advance: an audit event, one page per failure episode,
    and the plan in the report."""
    plan = build_plan(rctx, state, reason=reason)
    now = rctx.clock.now()
    writes = [c for c in plan["calls"] if c.get("mutating")]
    new = replace(state)
    if (state.last_page or {}).get("kind") != "recovery-dry-run":
        rctx.notifier.page(rctx.target.name, "recovery-dry-run", *messages.dry_run(rctx.target, plan))
        new.last_page = {"kind": "recovery-dry-run", "at": iso(now)}
    event = Event(iso(now), "dry-run", f"dry run: would recover ({len(writes)} changing call(s)): {reason}",
                  {"calls": [c["call"] for c in writes], "error": plan["error"], "force": force},
                  rctx.requested_by or "sentinel")
    with contextlib.suppress(SentinelError):  # the audit record is best effort; nothing else happened
        state = rctx.store.put(rctx.target.name, new, lease=rctx.lease, events=[event], now=now)
    report = {"status": "CRITICAL", "phase": "DRY_RUN", "dry_run": True,
              "summary": f"dry run: would recover {rctx.target.name} with {len(writes)} changing AWS call(s)"
                         + (f"; it would fail: {plan['error']}" if plan["error"] else ""),
              "plan": plan}
    return RecoveryResult(state, report)


def _status(inc: Incident) -> str:
    phase = inc.current
    if phase is Phase.DONE:
        return "OK"
    if phase is Phase.ESCALATED:
        return "WARNING" if inc.recovered_at and not inc.failed else "CRITICAL"
    if phase is Phase.FAILED:
        return "CRITICAL"
    return "WARNING" if inc.recovered_at else "CRITICAL"


def _report(run: Run) -> dict[str, Any]:
    inc = run.inc
    last = run.transitions[-1]["note"] if run.transitions else None
    what = run.stopped or inc.last_wait or last or ""
    master = (inc.new or {}).get("master") or {}
    return {
        "status": _status(inc),
        "phase": inc.phase,
        "summary": f"recovery {inc.id}: {inc.phase}" + (f": {what}" if what else ""),
        "incident": inc.id,
        "strategy": inc.strategy,
        "old_cluster": inc.old_cluster_id,
        "new_cluster": inc.new_cluster_id,
        "new_master": master.get("private_dns"),
        "transitions": run.transitions,
        "waiting": inc.last_wait,
        "stopped": run.stopped,
        "dry_run": run.dry_run,
        "calls": [r.to_dict(params=run.dry_run) for r in run.aws.records],
        "calls_by_phase": run.aws.by_phase(),
        "not_copied": [str(g.get("field")) for g in inc.not_copied],
        "ttr_s": inc.ttr_s,
        **({"store_failed": run.store_failed} if run.store_failed else {}),
        **({"new_primaries": [p.get("private_dns") for p in (inc.new or {}).get("primaries") or []]}
           if (inc.new or {}).get("primaries") else {}),
    }


def _idle_report(inc: Incident | None) -> dict[str, Any]:
    if inc is None:
        return {"status": "UNKNOWN", "phase": None, "summary": "no recovery in progress"}
    return {"status": _status(inc), "phase": inc.phase, "incident": inc.id,
            "summary": f"recovery {inc.id}: {inc.phase} (not active)"}
