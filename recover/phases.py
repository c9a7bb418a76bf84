"""The phase functions (DESIGN §7). Each is idempotent: it reads before it changes, and
everything it needs comes from the incident record, so running it twice (after a crash, or
by a second invocation that got the lease) ends in the same place as running it once.

Size: the replace rung's phases (SNAPSHOT to RETIRE_OLD) and the helpers they share (the
claim, the re-confirmation before a destroying call, the retry window, the one ``SLEEP``
seam); the restart rung and the rollback already moved out.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from checks.base import EndpointOverride, Status
from monitor.config import Verify
from monitor.core.clock import iso, parse_iso
from monitor.core.clusters import RETIRED_TAG, ClusterLookupError
from monitor.core.faults import AwsError
from monitor.runner import check_budget
from recover import claim, ha, routing, sealed, spec
from recover import emr as emr_ops
from recover.facades import Emr
from recover.run import Escalate, Fail, Next, Outcome, Resolved, Run, Wait
from recover.spec_file import SpecError

VERIFY_TIMEOUT = timedelta(minutes=20)  # VERIFY_NEW / VERIFY_PATH keep retrying this long
PATH_POLL_S = 10.0  # VERIFY_PATH: poll the target's health this often within one invocation,
PATH_POLLS = 9  # at most this many times,
PATH_POLL_RESERVE_S = 60.0  # and only while this much time would be left for the checks
SLEEP: Callable[[float], None] = time.sleep
LAUNCH_SEARCH_SLACK = timedelta(hours=1)  # clock skew margin when looking for our own cluster
# How long a RunJobFlow whose outcome nobody recorded may take to appear in ListClusters
# (eventually consistent: seconds to a minute in practice) before the runbook sends it again.
LAUNCH_LIST_LAG = timedelta(minutes=5)
# The same for SendCommand / AddJobFlowSteps and ListCommands / ListSteps.
SEND_LIST_LAG = timedelta(minutes=5)
MAX_LAUNCHES = 2  # clusters of one incident that ended on their own before LAUNCH gives up


class NotListedYet(Exception):
    """A send with no recorded outcome is not listed yet: wait before sending again."""


def snapshot(run: Run) -> Outcome:
    inc, target = run.inc, run.rctx.target
    rec = target.recovery
    try:
        resolved = spec.resolve(run.aws, target, run.rctx.store, run.now())
    except (SpecError, ClusterLookupError) as exc:
        return Fail(f"no spec to relaunch from: {exc}")
    held = ha.hold_for_emr(run, resolved.old)  # three primaries: EMR may be replacing one
    if held is not None:
        return held
    old_id = (resolved.old or {}).get("cluster_id")
    request, problems = spec.finalize(run.aws, resolved.request, incident_id=inc.id, target=target.name,
                                      old_cluster_id=old_id)
    inc.spec_source, inc.old, inc.spec = resolved.source, resolved.old, request
    inc.not_copied = resolved.not_copied
    inc.notes.extend(resolved.notes)
    protected = ha.retire_protected_note(inc.old, rec.allow_termination_protected)
    if protected and (inc.old or {}).get("active") and rec.retire_old == "terminate":
        inc.notes.append(protected)
    if target.cluster.id:
        inc.notes.append("the target names its cluster by id: after the relaunch set cluster: {id: <new id>} "
                         "in the config (or name it by cluster name)")
    blocking = [str(g["field"]) for g in inc.not_copied if g.get("blocking")]
    if problems or blocking:
        return Fail("the RunJobFlow request cannot be sent: " + "; ".join(
            [*(f"{b} cannot be copied" for b in blocking), *problems]) + " (use spec source file)")
    old = inc.old or {}
    if inc.strategy == "terminate_first" and old.get("active") and old.get("termination_protected") \
            and not rec.allow_termination_protected and not (old.get("primaries") and inc.approved_by("replace")):
        return Fail(f"terminate_first would terminate {old_id}, which is termination-protected, and "
                    "allow_termination_protected is false")
    if old.get("active") and old_id:  # the old record carries its sentinel:target tag (owner)
        try:
            emr_ops.require_owned(old, target.name)
        except emr_ops.NotOwned as exc:
            return Fail(str(exc))
    inc.routing_before = routing.snapshot(run.aws, rec.routing)
    kind = "instance fleets" if "InstanceFleets" in request.get("Instances", {}) else "instance groups"
    return Next(f"spec from {resolved.source}" + (f" of {old_id}" if old_id else "") +
                f" ({kind}, {len(request.get('Steps', []))} step(s), {len(request.get('BootstrapActions', []))} "
                f"bootstrap action(s)); {len(inc.not_copied)} item(s) not copied")


def launch(run: Run) -> Outcome:
    """RunJobFlow once. Before any send, look for what an earlier send (this invocation's
    predecessor, or a botocore-level resend) may have launched: by the id an earlier settled
    intent recorded, then by the incident tag. A send whose outcome nobody saw (a crash, a
    timeout, a lease lost after the intent was written) is given ``LAUNCH_LIST_LAG`` for
    EMR's eventually consistent ListClusters to show it before anything is resent.

    Among the incident's clusters a live one is kept (the oldest live, so every invocation
    picks the same); ended ones are ignored. Only ended ones (a lost send whose cluster
    died at once) is a resend after the same settle window, at most ``MAX_LAUNCHES`` sends."""
    inc = run.inc
    assert inc.spec is not None
    emr = Emr(run.aws)
    name = str(inc.spec["Name"])
    since = parse_iso(inc.started_at) - LAUNCH_SEARCH_SLACK
    found = emr_ops.tagged_clusters(emr, inc.id, name, since)
    known = {str(c["Id"]) for c in found}
    sent = inc.intents_for("emr.run_job_flow")
    for intent in sent:  # launched earlier, maybe not listed yet: describe needs no list
        launched = str((intent.get("outcome") or {}).get("JobFlowId") or "")
        if launched and launched not in known:
            found.append(emr.describe_launched(launched))
            known.add(launched)
    how = "adopted (launched earlier for this incident)"
    live = [c for c in found if emr_ops.cluster_state(c) not in emr_ops.ENDED_STATES]
    dead = [c for c in found if emr_ops.cluster_state(c) in emr_ops.ENDED_STATES]
    if not live:
        if len(dead) >= MAX_LAUNCHES:
            return Fail("every cluster launched for this incident ended: " + "; ".join(
                f"{c['Id']} {emr_ops.cluster_state(c)}" + (f" ({emr_ops.state_reason(c)})" if emr_ops.state_reason(c)
                                                          else "") for c in dead))
        unsettled = [i for i in sent if i.get("status") in ("pending", "unknown")]
        if unsettled and not run.dry_run:
            waited = run.now() - parse_iso(str(unsettled[-1]["at"]))
            if waited < LAUNCH_LIST_LAG:
                return Wait(f"RunJobFlow was sent at {unsettled[-1]['at']} with no recorded outcome; waiting "
                            f"for EMR to list a live cluster tagged {inc.id} before any resend "
                            f"({waited.total_seconds():.0f} of {LAUNCH_LIST_LAG.total_seconds():.0f} s)")
            inc.notes.append(f"RunJobFlow of {unsettled[-1]['at']} left no live cluster after "
                             f"{waited.total_seconds() / 60:.0f} min: sent again")
        for gone in dead:
            inc.notes.append(f"{gone['Id']} (launched for this incident) is {emr_ops.cluster_state(gone)}: ignored")
        stand_down = take_claim(run, inc.old_cluster_id if (inc.old or {}).get("active") else None)
        if stand_down is not None:
            return stand_down
        try:  # secrets are opened only for this call; its record keeps the sealed form
            launched = emr_ops.run_job_flow(run.aws, inc.spec)
        except sealed.SealError as exc:
            return Fail(f"the RunJobFlow request cannot be completed: {exc}")
        how = "launched"
        found = [] if run.dry_run else emr_ops.tagged_clusters(emr, inc.id, name, since)
        if launched not in {str(c["Id"]) for c in found}:  # ListClusters may lag behind RunJobFlow
            found = [*found, emr.describe_launched(launched)]
        live = [c for c in found if emr_ops.cluster_state(c) not in emr_ops.ENDED_STATES] or \
            [c for c in found if str(c["Id"]) == launched]
    live = sorted(live, key=emr_ops.launch_order)
    keep = str(live[0]["Id"])
    for extra in live[1:]:
        inc.notes.append(f"duplicate launch {extra['Id']}: " +
                         emr_ops.terminate(emr, str(extra["Id"]), allow_protected=True))
    inc.new = {"cluster_id": keep, "launched_at": iso(run.now()),
               "fleet": "InstanceFleets" in inc.spec.get("Instances", {})}
    return Next(f"{how} {keep}")


def take_claim(run: Run, cluster_id: str | None) -> Escalate | None:
    """Before this deployment's first change to ``cluster_id``: claim it (recover.claim).
    None: this deployment acts; an :class:`Escalate` when another deployment does. Without a
    live old cluster there is nothing to claim (noted)."""
    inc = run.inc
    if (inc.claim or {}).get("cluster_id") == cluster_id and cluster_id:
        return None  # claimed and confirmed earlier in this incident
    if not cluster_id:
        inc.notes.append("no live cluster to claim: another deployment watching this target is not kept out")
        return None
    emr = Emr(run.aws)
    now = run.now()
    mine = claim.Claim(run.rctx.deployment, inc.id, now)
    ttl = claim.claim_ttl(run.rctx.target.recovery.limits.launch_timeout_min)
    others = claim.live_others(claim.claims(emr.describe_cluster(cluster_id)), mine, now, ttl)
    if others:  # someone is on it already: write nothing
        return Escalate(claim.stood_down_reason(min(others, key=claim.Claim.order), cluster_id, "holds a claim on"))
    now = run.now()
    mine = claim.Claim(run.rctx.deployment, inc.id, now)
    emr.add_tags(cluster_id, claim.tags(mine, now))
    # A write that took long (a pause, botocore's backoff) carries a time older than the moment it
    # landed: another deployment may have claimed and decided in between. Then any other live
    # claim wins (both standing down is safe: a person is paged; both acting is not).
    late = run.now() - now > timedelta(seconds=claim.SETTLE_S / 2)
    if not run.dry_run:
        SLEEP(claim.SETTLE_S)  # tags are eventually consistent: read back after they settle
        others = claim.live_others(claim.claims(emr.describe_cluster(cluster_id)), mine, run.now(), ttl)
        first = min(others, key=claim.Claim.order) if late and others else \
            min([*others, mine], key=claim.Claim.order)
        if first is not mine:
            try:
                emr.add_tags(cluster_id, claim.released(mine))
            except AwsError as exc:
                inc.notes.append(f"claim on {cluster_id} not released ({exc.code}): it expires by itself")
            return Escalate(claim.stood_down_reason(first, cluster_id, "claimed first"))
    inc.claim = claim.describe(mine, cluster_id, now)
    return None


def release_claim(run: Run) -> str | None:
    """At the end of an incident: release its claim, so another deployment may act on a later
    failure at once. Best effort (an unreleased claim expires by itself); skipped for a cluster
    this incident terminated."""
    inc = run.inc
    held = inc.claim or {}
    cid = held.get("cluster_id")
    if not cid or held.get("released_at") or run.dry_run:
        return None
    if (inc.retired or {}).get("action") == "terminated" and cid == inc.old_cluster_id:
        return None
    Emr(run.aws).add_tags(str(cid), claim.released(claim.Claim(str(held.get("deployment")), inc.id)))
    held["released_at"] = iso(run.now())
    return f"claim on {cid} released"


def wait_ready(run: Run) -> Outcome:
    inc = run.inc
    assert inc.new is not None
    limit = timedelta(minutes=run.rctx.target.recovery.limits.launch_timeout_min)
    ready = emr_ops.readiness(Emr(run.aws), str(inc.new["cluster_id"]), fleet=bool(inc.new.get("fleet")))
    if ready.verdict == "failed":
        return Fail(ready.detail)
    if ready.verdict == "starting":
        waited = run.now() - parse_iso(str(inc.new["launched_at"]))
        if waited > limit:
            return Fail(f"{ready.detail} after {waited.total_seconds() / 60:.0f} min "
                        f"(launch_timeout_min {limit.total_seconds() / 60:g})")
        return Wait(f"{ready.detail} ({waited.total_seconds() / 60:.0f} of {limit.total_seconds() / 60:g} min)")
    assert ready.master is not None
    inc.new.update(master=ready.master, ready_at=iso(run.now()))
    if ready.primaries:  # three primaries: REPOINT registers and VERIFY_NEW verifies each
        inc.new["primaries"] = ready.primaries
        return Next(f"{ready.detail}; primaries " + ", ".join(ha.name(p) for p in ready.primaries))
    return Next(f"{ready.detail}; master {ready.master['instance_id']} {ready.master['private_dns']}")


def master_endpoint(verify: Verify, master: dict[str, Any]) -> EndpointOverride:
    """The new master as VERIFY_NEW reaches it: its private name from EMR, port and TLS from
    ``recovery.verify.master`` (the check's own values where that leaves a key out)."""
    return verify.master_endpoint(str(master.get("private_dns") or master.get("private_ip")))


def verify_new(run: Run) -> Outcome:
    inc = run.inc
    verify = run.rctx.target.recovery.verify
    names = verify.master_checks
    master = (inc.new or {}).get("master") or {}
    if not names:  # config validation makes this unreachable; never pass an unverified cluster
        return Fail("no verify checks configured for the new master: refusing to move traffic to it unverified")
    primaries = (inc.new or {}).get("primaries")
    if primaries:  # three primaries: each on its own endpoint; all must pass
        said = [(p, *run.verify(names, master_endpoint(verify, p))) for p in primaries]
        failing = [f"{p['private_dns']}: {summary}" for p, ok, summary in said if not ok]
        if not failing:
            inc.verified_new_at = iso(run.now())
            return Next(f"new primaries {', '.join(str(p['private_dns']) for p in primaries)} pass: {said[0][2]}")
        return _retry_or_fail(run, f"{len(failing)} of {len(primaries)} new primaries fail: {'; '.join(failing)}")
    endpoint = master_endpoint(verify, master)
    ok, summary = run.verify(names, endpoint)
    if ok:
        inc.verified_new_at = iso(run.now())
        return Next(f"new master {master['private_dns']} passes: {summary}")
    return _retry_or_fail(run, f"new master {master['private_dns']} fails: {summary}")


def repoint(run: Run) -> Outcome:
    inc = run.inc
    rec = run.rctx.target.recovery
    new_master = (inc.new or {}).get("master")
    assert new_master is not None
    if not (inc.repoint or {}).get("started_at"):
        # Checkpoint first: from here on a rollback must consider the routing moved.
        inc.repoint = {"started_at": iso(run.now())}
        run.save("REPOINT: changing routing to the new master")
    done = routing.repoint(run.aws, rec.routing, inc.routing_before or {}, (inc.old or {}).get("master"), new_master,
                           old_all=(inc.old or {}).get("primaries"), new_all=(inc.new or {}).get("primaries"))
    assert inc.repoint is not None
    inc.repoint.update(done, done_at=iso(run.now()))
    return Next("; ".join(done["changes"]) or "nothing to change (no routing configured, or already done)")


def verify_path(run: Run) -> Outcome:
    inc = run.inc
    rec = run.rctx.target.recovery
    new_master = (inc.new or {}).get("master") or {}
    new_all = (inc.new or {}).get("primaries")
    waiting = routing.path_ready(run.aws, rec.routing, inc.repoint or {}, new_master, new_all=new_all)
    # A new target is "initial" for a few health-check intervals: worth a short poll within
    # this invocation rather than a whole tick (10 min) of waiting.
    polls = 0
    while waiting and not run.dry_run and polls < PATH_POLLS and \
            run.rctx.deadline.remaining() > PATH_POLL_S + PATH_POLL_RESERVE_S:
        SLEEP(PATH_POLL_S)
        polls += 1
        waiting = routing.path_ready(run.aws, rec.routing, inc.repoint or {}, new_master, new_all=new_all)
    if waiting:
        return _retry_or_fail(run, waiting)
    names = list(rec.verify.checks)
    if not names:  # unreachable after config validation: never call an unverified path recovered
        return Fail("no verify checks configured: the path to the new master cannot be verified")
    ok, summary = run.verify(names, None)
    if not ok:
        return _retry_or_fail(run, f"through the normal path: {summary}")
    inc.recovered_at = iso(run.now())
    return Next(f"clients reach the new master: {summary}")


RECOVERED_ON_ITS_OWN = "aborted: recovered on its own"
DESTROYING_CALLS = ("emr.set_termination_protection", "emr.terminate_job_flows")


def reconfirm(run: Run, before: str) -> Outcome | str:
    """Run the trigger checks (``recovery.when.checks``) once more through the normal path,
    right before ``before`` (a call that destroys the old cluster's serving). Returns:

    - a str (what the checks said): a trigger check is still CRITICAL, the failure is
      re-confirmed: go ahead;
    - :class:`Resolved`: every trigger check passes (OK or WARNING): the target recovered on
      its own, nothing is destroyed (``incident.outcome`` is set);
    - :class:`Wait`: the checks could not judge (UNKNOWN, none CRITICAL), or this invocation
      has too little time left to run them: nothing is destroyed on old evidence; the next
      tick asks again (the stall page tells a person when that lasts).

    Dry run (``sentinel plan``): the checks are recorded, not run, and the plan goes ahead."""
    rec = run.rctx.target.recovery
    names = list(rec.when.checks) if rec.when else []
    if not names:  # unreachable: a recoverable target has `when` (config validation)
        return "no trigger checks to re-confirm with"
    if run.dry_run:
        run.verify(names, None)
        return "dry run: checks not run"
    need = reserve_s(run)
    if run.rctx.deadline.remaining() < need:
        return Wait(f"{before}: the failure is re-confirmed first, which needs about {need:.0f} s; too little time "
                    "left in this invocation: nothing destroyed, the next tick does it")
    results = run.rctx.run_checks(names, None)
    summary = "; ".join(f"{r.name} {r.status.name}: {r.summary}" for r in results) or "no check ran"
    if any(r.status is Status.CRITICAL for r in results):
        return summary
    if results and all(r.status in (Status.OK, Status.WARNING) for r in results):
        run.inc.outcome = RECOVERED_ON_ITS_OWN
        return Resolved(f"{RECOVERED_ON_ITS_OWN}: the trigger checks pass again, re-checked right before {before} "
                        f"({summary}); nothing was destroyed")
    return Wait(f"{before}: cannot re-confirm the failure ({summary}): nothing destroyed on old evidence; "
                "asked again on the next tick")


def retire_old(run: Run) -> Outcome:
    """Terminate (or, ``replace`` with ``retire_old: keep``, tag) the old cluster.

    Re-confirm before destroying (issue 19): under ``terminate_first`` this phase runs before
    LAUNCH, so SetTerminationProtection(false) and TerminateJobFlows of the old cluster
    destroy the only thing that may still serve clients; right before the first of them the
    trigger checks run once more (:func:`reconfirm`). Passing → DONE, "aborted: recovered
    on its own", nothing destroyed. They do not run again once an intent for either call is
    recorded for the old cluster (the call may have taken effect: too late to take back).

    The other calls that remove or detach a cluster do not qualify, because a verified
    replacement serves by then or the cluster never served:
    - ``replace``: RETIRE_OLD runs after VERIFY_PATH passed (clients are on the new cluster,
      checked through the normal path), and only after the old record's DNS TTL;
    - REPOINT (recover/routing.py) deregisters the old master from the target group and the
      classic ELB only after VERIFY_NEW passed (the new master answers the verify checks on its
      own endpoint), in both strategies; under ``terminate_first`` the old cluster is already
      gone by then;
    - rollback and the sweep terminate only clusters launched for the incident that never
      passed VERIFY_NEW (never registered, never served).
    """
    inc = run.inc
    rec = run.rctx.target.recovery
    old_id = inc.old_cluster_id
    if not old_id:
        return Next("no old cluster to retire")
    emr = Emr(run.aws)
    confirmed = ""
    if inc.strategy == "terminate_first" and not inc.recovered_at and (inc.old or {}).get("active") \
            and not any(i.get("call") in DESTROYING_CALLS and i.get("subject") == old_id for i in inc.intents):
        checked = reconfirm(run, f"terminating {old_id}")
        if not isinstance(checked, str):
            return checked
        confirmed = f" (failure re-confirmed first: {checked})"
    if inc.strategy == "replace":
        ttl = dns_ttl(rec.routing.route53.ttl if rec.routing.route53 else 0, inc.routing_before or {})
        moved = (inc.repoint or {}).get("done_at")
        if ttl and moved and not run.dry_run and run.now() < parse_iso(moved) + timedelta(seconds=ttl):
            return Wait(f"clients may cache the old DNS answer for {ttl} s: {old_id} is retired after that")
        if rec.retire_old == "keep":
            if (inc.old or {}).get("active"):
                emr.add_tags(old_id, {RETIRED_TAG: inc.id})
            inc.retired = {"action": "kept", "at": iso(run.now())}
            return Next(f"kept {old_id} (retire_old: keep), tagged {RETIRED_TAG}={inc.id}: terminate it when done with it")
    if inc.strategy == "terminate_first" and (inc.old or {}).get("active"):
        stand_down = take_claim(run, old_id)  # the first change of terminate_first: the old cluster goes
        if stand_down is not None:
            return stand_down
    try:
        # EMR forces protection on for three primaries: a person's yes to this relaunch
        # (recovery.approval) lifts it too, as allow_termination_protected would.
        by_hand = inc.approved_by("replace") if (inc.old or {}).get("primaries") else None
        what = emr_ops.terminate(emr, old_id, allow_protected=rec.allow_termination_protected or bool(by_hand),
                                 owner=run.rctx.target.name)
        if by_hand and not rec.allow_termination_protected and (inc.old or {}).get("termination_protected"):
            inc.notes.append(f"termination protection of the three-primary cluster {old_id} lifted on "
                             f"{by_hand}'s approval of the relaunch")
    except emr_ops.NotOwned as exc:
        return Escalate(str(exc)) if inc.recovered_at else Fail(str(exc))
    except emr_ops.ProtectedCluster as exc:
        why = f"{exc} and allow_termination_protected is false"
        if (inc.old or {}).get("primaries"):  # EMR forces protection on for three primaries
            why = ha.retire_protected_note(inc.old, False) or why
        if inc.recovered_at:
            return Escalate(f"the new cluster serves, but {why}: terminate {old_id} by hand")
        return Fail(why)
    inc.retired = {"action": "terminated", "detail": what, "at": iso(run.now())}
    return Next(what + confirmed)


def dns_ttl(configured: int, before: dict[str, Any]) -> int:
    """How long resolvers may keep handing out the old master: the larger of the TTL sentinel
    writes and the TTL the replaced record had (a longer old TTL is still cached out there)."""
    previous = ((before.get("route53") or {}).get("previous") or {}).get("TTL")
    return max(configured, int(previous) if isinstance(previous, int | float | str) and str(previous).isdigit() else 0)


def _retry_or_fail(run: Run, problem: str) -> Outcome:
    waited = run.now() - parse_iso(run.inc.phase_started_at)
    if waited > VERIFY_TIMEOUT:
        return Fail(f"{problem} (still failing after {waited.total_seconds() / 60:.0f} min)")
    return Wait(problem)


def reserve_s(run: Run) -> float:
    """Time the trigger checks need after a wait within this invocation."""
    rec = run.rctx.target.recovery
    names = list(rec.when.checks) if rec.when else []
    return max([5.0, *(check_budget(run.rctx.target.check(n)) for n in names)]) + 5.0
