"""What on-call reads: every message says what happened, what sentinel did, and what to run next."""

from __future__ import annotations

from typing import Any

from monitor.config import Target
from recover.diagnostics import summary as diagnostics_summary
from recover.incident import ORDER, Incident, Phase

WHAT_EACH_PHASE_DOES = {
    Phase.SNAPSHOT: "copy the cluster's configuration into a RunJobFlow request (or read the spec)",
    Phase.LAUNCH: "launch a new cluster tagged sentinel:incident=<incident>",
    Phase.WAIT_READY: "wait until it is WAITING and its setup steps COMPLETED (launch_timeout_min)",
    Phase.VERIFY_NEW: "run the verify checks against the new master directly",
    Phase.REPOINT: "move the target group / ELB / DNS record to the new master",
    Phase.VERIFY_PATH: "run the verify checks through the normal path",
    Phase.RETIRE_OLD: "terminate (or keep) the old cluster",
    Phase.DONE: "done: automation resumes",
    Phase.RESTART: "restart HiveServer2 on the current master (SSM Run Command or an EMR step)",
    Phase.VERIFY: "after a warm-up, run the trigger checks through the normal path",
    Phase.DIAGNOSE: "collect diagnostics on the current master (recovery.diagnostics; bounded by timeout_s)",
    Phase.APPROVAL: "wait for a person's yes (recovery.approval: sentinel approve|deny; on_timeout when nobody "
                    "answers)",
}


def _next_steps(target: str) -> list[str]:
    return ["", "Follow it:", f"  sentinel status --target {target}",
            "Stop it (the runbook pauses at the next tick while silenced):",
            f"  sentinel silence --target {target} --for 2h --reason \"taking over\""]


def started(target: Target, inc: Incident, attempt: int) -> tuple[str, str]:
    rec = target.recovery
    lines = [f"Automatic recovery started for {target.name}: {inc.reason or 'requested'}",
             f"Incident {inc.id}   strategy: {inc.strategy}   spec: {rec.spec.source}", "",
             "What will happen (each phase is persisted; a crash or timeout resumes where it stopped):"]
    prelude = [] if inc.current in ORDER[inc.strategy] else [inc.current]
    if isinstance(inc.approval, dict) and Phase.APPROVAL not in prelude:  # asked after the diagnostics
        prelude.append(Phase.APPROVAL)
    for i, phase in enumerate([*prelude, *ORDER[inc.strategy]], start=1):
        lines.append(f"  {i}. {phase.value:<12} {WHAT_EACH_PHASE_DOES[phase].replace('<incident>', inc.id)}")
    if len(rec.ladder) > 1:
        lines.append("Ladder: " + " -> ".join(
            f"{'[' if i == inc.rung else ''}{r.rung}{']' if i == inc.rung else ''}" for i, r in enumerate(rec.ladder))
            + " (a rung that fails or is over budget hands over to the next)")
    r = rec.routing
    routes = [f"target group {r.target_group_arn}" if r.target_group_arn else "",
              f"classic ELB {r.load_balancer_name}" if r.load_balancer_name else "",
              f"Route 53 {r.route53.record} ({r.route53.type})" if r.route53 else ""]
    when = " first (the failure is re-confirmed right before)" if inc.strategy == "terminate_first" \
        else " once the new one serves"
    lines += ["", f"Routing: {', '.join(x for x in routes if x) or 'none configured'}",
              f"Old cluster: {'kept' if rec.retire_old == 'keep' and inc.strategy == 'replace' else 'terminated'}"
              f"{when}",
              f"Limits: launch timeout {rec.limits.launch_timeout_min:g} min; recovery {attempt} of at most "
              f"{rec.limits.max_recoveries} per {rec.limits.window_hours:g} h",
              "If it fails, sentinel rolls back what it can and pages again."]
    return f"recovery started ({inc.strategy})", "\n".join(lines + _next_steps(target.name))


def phase_done(target: Target, inc: Incident, phase: Phase, note: str) -> tuple[str, str]:
    body = [f"Recovery {inc.id} of {target.name}: {phase.value} done.", note, "",
            f"Next phase: {inc.phase}", *_next_steps(target.name)]
    return f"recovery: {phase.value} done", "\n".join(body)


def climbing(target: Target, inc: Incident, phase: Phase, why: str) -> tuple[str, str]:
    rung = target.recovery.ladder[inc.rung]
    lines = [f"Recovery {inc.id} of {target.name}: {phase.value} did not help: {why}",
             f"Next rung ({inc.rung + 1} of {len(target.recovery.ladder)}): {rung.rung}, starting with {inc.phase}.",
             *diagnostics_summary(inc.diagnostics), *_next_steps(target.name)]
    return f"recovery climbing to {rung.rung}", "\n".join(lines)


def succeeded(target: Target, inc: Incident) -> tuple[str, str]:
    ttr = f"{inc.ttr_s / 60:.1f} min" if inc.ttr_s is not None else "unknown"
    if inc.strategy == "restart_service":
        r = inc.restart or {}
        lines = [f"Restarted HiveServer2 on {r.get('cluster_id')}/{r.get('instance_id')} (via {r.get('via')}): "
                 f"{target.name} is healthy again in {ttr}. No cluster was changed.",
                 f"Incident {inc.id} (started {inc.started_at})."]
        lines += [f"Note: {n}" for n in inc.notes]
        lines += diagnostics_summary(inc.diagnostics)
        lines += ["", "Automation continues as usual. Review:", f"  sentinel status --target {target.name}"]
        return f"restarted HiveServer2: healthy again in {ttr}", "\n".join(lines)
    lines = [f"Recovered {target.name}: clients are served by the new cluster {inc.new_cluster_id}.",
             f"Incident {inc.id}: time to recover {ttr}, from the recovery's start ({inc.started_at}) to "
             f"clients served again ({inc.recovered_at or 'not recorded'}, VERIFY_PATH passed).",
             f"Old cluster: {inc.old_cluster_id or 'none'} "
             f"({(inc.retired or {}).get('detail') or (inc.retired or {}).get('action') or 'nothing to retire'})."]
    lines += [f"Note: {n}" for n in inc.notes]
    lines += diagnostics_summary(inc.diagnostics)
    lines += ["", "Automation continues as usual. Review:", f"  sentinel status --target {target.name}"]
    return f"recovered in {ttr} from recovery start", "\n".join(lines)


def recovered_on_its_own(target: Target, inc: Incident, phase: Phase, note: str, *, budget: str) -> tuple[str, str]:
    """The failure was gone when re-confirmed right before a destroying call (recover/phases.py
    ``reconfirm``): the incident ended DONE with nothing destroyed."""
    lines = [f"Recovery {inc.id} of {target.name} was aborted in {phase.value}: {target.name} recovered on its own.",
             note,
             f"Nothing was destroyed: the old cluster {inc.old_cluster_id or '(none)'} was left as it was"
             + (f"; the new cluster {inc.new_cluster_id} was launched and is kept (terminate it by hand if unneeded)"
                if inc.new_cluster_id else "; no new cluster was launched") + ".",
             f"This attempt still counts against the recovery budget ({budget}); nothing is refunded."
             if phase is not Phase.APPROVAL else
             f"It was waiting for approval: no rung ran and no budget was spent ({budget})."]
    lines += [f"Note: {n}" for n in inc.notes]
    lines += ["", "Automation continues as usual; a new failure starts a new confirmation. Review:",
              f"  sentinel status --target {target.name}"]
    return "recovery aborted: recovered on its own, nothing destroyed", "\n".join(lines)


def escalated(target: Target, inc: Incident) -> tuple[str, str]:
    failed = inc.failed or {}
    lines = [f"Automatic recovery of {target.name} stopped and needs a person. Incident {inc.id}."]
    if failed:
        lines.append(f"Failed in {failed.get('phase')}: {failed.get('error')}")
    if inc.escalation:
        lines.append(inc.escalation)
    if inc.recovered_at:
        lines.append(f"Traffic STAYS on the new cluster {inc.new_cluster_id}: it passed verification through the "
                     f"normal path at {inc.recovered_at}, so sentinel did not move clients back to the old master.")
    lines += ["", "Rolled back:" if inc.rollback else "Nothing was rolled back."]
    lines += [f"  {t['note']}" for t in inc.timeline if t.get("phase") == Phase.ESCALATED.value][-1:]
    lines += [f"  rollback error: {e}" for e in inc.rollback_errors]
    lines += ["", "Now:",
              f"  old cluster: {inc.old_cluster_id or 'none'} ({(inc.old or {}).get('state', 'unknown')} at start"
              f"{', terminated by sentinel' if (inc.retired or {}).get('action') == 'terminated' else ''})",
              f"  new cluster: {inc.new_cluster_id or 'none launched'}"]
    lines += [f"  {n}" for n in inc.notes if n.startswith("sweep")]  # other clusters of the incident
    if inc.strategy == "terminate_first" and (inc.retired or {}).get("action") == "terminated" and not inc.recovered_at:
        lines.append("  WARNING: the old cluster is terminated and no new cluster serves: relaunch by hand "
                     f"(the request is in `sentinel status --target {target.name}`, incident.spec)")
    lines += diagnostics_summary(inc.diagnostics)
    lines += ["", "Automatic actions for this target are paused. When handled:",
              f"  sentinel ack --target {target.name}      (resume automation)",
              f"  sentinel status --target {target.name}   (incident timeline)"]
    return "recovery ESCALATED: a person must act", "\n".join(lines)


def stalled(target: Target, inc: Incident, note: str, why: str) -> tuple[str, str]:
    lines = [f"Recovery of {target.name} is not advancing: {note}.", f"Why, as far as sentinel knows: {why}.",
             f"Incident {inc.id}, phase {inc.phase} since {inc.phase_started_at}.", "",
             "Decide:", f"  sentinel status --target {target.name}             (what it is waiting for)",
             f"  sentinel abort --target {target.name} --reason \"...\"   (end it; rolls back what it can)"]
    return f"recovery STALLED in {inc.phase}", "\n".join(lines)


def aborted(target: Target, inc: Incident, who: str, reason: str, *, in_phase: str | None = None) -> tuple[str, str]:
    lines = [f"Recovery {inc.id} of {target.name} was aborted by {who} in {in_phase or inc.phase}: {reason}"]
    if inc.recovered_at:
        lines.append(f"Clients were already on the new cluster {inc.new_cluster_id} (verified at {inc.recovered_at}): "
                     "traffic stays there; nothing is rolled back (any other cluster tagged with this incident "
                     "is terminated).")
    else:
        lines.append("sentinel rolls back what this phase allows (routing moved back to a live old master, a new "
                     "cluster that never passed verification terminated), then stops automation for this target.")
    lines += ["", f"  sentinel status --target {target.name}", f"  sentinel ack --target {target.name}   (resume automation)"]
    return f"recovery ABORTED by {who}", "\n".join(lines)


def dry_run(target: Target, plan: dict[str, Any]) -> tuple[str, str]:
    writes = [s for s in plan.get("calls", []) if s.get("mutating")]
    lines = [f"Confirmed failure of {target.name}. Recovery is in dry-run mode: nothing was changed.",
             f"It would make {len(writes)} changing AWS call(s):"]
    lines += [f"  {s['phase']:<12} {s['call']}" for s in writes]
    if plan.get("error"):
        lines.append(f"and it would fail: {plan['error']}")
    lines += ["", "Full plan:", f"  sentinel plan --target {target.name}",
              "Recover for real: set recovery.dry_run: false in the config."]
    return "confirmed failure: recovery dry run", "\n".join(lines)


def approval_needed(target: Target, inc: Incident) -> tuple[str, str]:
    """The ask (recover.approval): what the rung would change, one line per changing call, and
    how to answer; what happens when nobody does."""
    ask = inc.approval or {}
    rung = ask.get("rung") or "the next rung"
    name = target.name
    timeout = f"{float(ask.get('timeout_min') or 30):g} min"
    then = ("sentinel escalates: nothing is changed and you are paged again" if ask.get("on_timeout") != "proceed"
            else f"sentinel PROCEEDS with {rung} as if approved (recovery.approval.on_timeout: proceed)")
    lines = [f"{name} needs a person's yes before sentinel runs {rung}: {inc.reason or 'confirmed failure'}",
             f"Incident {inc.id}. Asked at {ask.get('asked_at')}.", "", f"What {rung} would change:"]
    lines += [f"  {line}" for line in ask.get("plan") or ["(no plan available: see sentinel plan)"]]
    lines += ["", "Answer (operator door; audited with your name and reason):",
              f"  sentinel approve --target {name} --rung {rung} --reason \"...\"",
              f"  sentinel deny --target {name} --rung {rung} --reason \"...\"    (escalates; traffic untouched)",
              f"If nobody answers within {timeout}, {then}.",
              "If the target is healthy again before an answer, the incident ends with nothing done.",
              *diagnostics_summary(inc.diagnostics), *_next_steps(name)]
    return f"APPROVAL needed: {rung} for {name}", "\n".join(lines)


def approval_answered(target: Target, inc: Incident, line: str) -> tuple[str, str]:
    lines = [f"{target.name}: {line}.", f"Incident {inc.id}, now in {inc.phase}.",
             "", f"  sentinel status --target {target.name}"]
    return line.split(":", maxsplit=1)[0], "\n".join(lines)


def recurring(target: Target, rung: str, fixes: list[dict[str, Any]], *, paused: bool) -> tuple[str, str]:
    """``recovery.limits.recurring``: one rung keeps fixing this target; the fix works, the
    cause is still there."""
    rule = target.recovery.limits.recurring
    days = f"{rule.days:g}" if rule else "?"
    lines = [f"recurring: find the cause. {rung} has ended {len(fixes)} incidents of {target.name} in the last "
             f"{days} days; each time the failure came back.", "", "Incidents (newest last):"]
    for f in fixes:
        lines.append(f"  {f.get('at')}  {f.get('incident')}" + (f"  {f['diagnostics']}" if f.get("diagnostics") else ""))
    if paused:
        lines += ["", f"{rung} is PAUSED for {target.name} (recovery.limits.recurring.then: pause): the next failure "
                      "goes to the next rung of the ladder, or escalates when there is none.",
                  "When the cause is handled, resume it:", f"  sentinel ack --target {target.name}"]
    else:
        lines += ["", f"{rung} keeps running (then: page). Diagnostics of the last incident:",
                  f"  sentinel status --target {target.name}"]
    return f"recurring: find the cause ({rung} fixed {target.name} {len(fixes)} times)", "\n".join(lines)
