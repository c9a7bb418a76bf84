"""Clusters with three primary nodes (EMR multi-primary): what the runbook does differently.

EMR replaces a failed primary by itself (the replacement keeps the private IP), the cluster
serves while two of three primaries do, and termination protection is forced on. So:

- the restart rung restarts HiveServer2 on one failing primary at a time: the one that fails
  on its own endpoint (``recovery.verify.master``'s port and TLS, as VERIFY_NEW reaches a new
  master), verifies it, then the next (:func:`pick_restart`, :func:`next_to_restart`);
- before a relaunch (SNAPSHOT), a primary EMR is replacing is waited for, up to
  ``recovery.ha.replace_wait_min``; the relaunch goes ahead only when fewer than two
  primaries serve after that, or at once when the cluster has ended (:func:`hold_for_emr`);
- a relaunched cluster has its three primaries registered and verified (phases.py, routing.py).

A classic cluster (one master) never reaches any of this: :func:`is_multi_primary` is false
and no extra AWS call is made for it.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

from monitor.core.clock import iso, parse_iso
from monitor.core.clusters import HA_PRIMARIES, LIVE_ORDER, is_multi_primary
from recover.run import Escalate, Outcome, Resolved, Run, Wait

HEALED_BY_EMR = "no relaunch: the primaries serve again (EMR replaced what it lost)"


class Healed(Resolved):
    """Two or more primaries serve again while a relaunch waited: the incident ends DONE with
    ``incident.outcome`` set (nothing launched, nothing destroyed)."""


def name(p: dict[str, Any]) -> str:
    return f"{p.get('instance_id')} ({p.get('private_dns') or p.get('private_ip')})"


def running(primaries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [p for p in primaries if p.get("state") == "RUNNING" and (p.get("private_dns") or p.get("private_ip"))]


def replacing(primaries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Live primaries that are not running yet: EMR is bringing them up."""
    return [p for p in primaries if p.get("state") in LIVE_ORDER and p.get("state") != "RUNNING"]


def missing(primaries: list[dict[str, Any]]) -> int:
    """Primaries not listed live at all (EMR has not started their replacement yet)."""
    return max(0, HA_PRIMARIES - len([p for p in primaries if p.get("state") in LIVE_ORDER]))


def probe(run: Run, primaries: list[dict[str, Any]]) -> dict[str, tuple[bool, str]]:
    """Each running primary on its own endpoint, in parallel: instance id → (serves, what the
    checks said). The checks are ``recovery.verify.master``'s (VERIFY_NEW's). Dry run: recorded,
    not run (each "serves")."""
    verify = run.rctx.target.recovery.verify
    names = verify.master_checks
    live = running(primaries)
    if not live:
        return {}
    if run.dry_run:
        return {str(p["instance_id"]): run.verify(names, verify.master_endpoint(_host(p))) for p in live}
    with ThreadPoolExecutor(max_workers=len(live), thread_name_prefix="primary-probe") as pool:
        futures = {str(p["instance_id"]): pool.submit(run.verify, names, verify.master_endpoint(_host(p)))
                   for p in live}
        return {iid: fut.result() for iid, fut in futures.items()}


def _host(p: dict[str, Any]) -> str:
    return str(p.get("private_dns") or p.get("private_ip"))


def describe(primaries: list[dict[str, Any]], probed: dict[str, tuple[bool, str]]) -> str:
    """One line naming each primary and what it is doing (the timeline and the plan show it)."""
    parts = []
    for p in primaries:
        if p.get("state") not in LIVE_ORDER:
            continue
        seen = probed.get(str(p.get("instance_id")))
        what = str(p.get("state")) if seen is None else ("serves" if seen[0] else "fails")
        parts.append(f"{name(p)} {what}")
    gone = missing(primaries)
    if gone:
        parts.append(f"{gone} not listed (EMR is replacing it)")
    return "primaries: " + "; ".join(parts)


# ------------------------------------------------------------------ the restart rung

def pick_restart(run: Run, primaries: list[dict[str, Any]]) -> tuple[dict[str, Any] | None, str]:
    """RESTART on a cluster with three primaries: the first running primary that fails on its
    own endpoint and was not restarted yet in this rung. Returns it (None: nothing to restart)
    and what the primaries are doing."""
    probed = probe(run, primaries)
    done = set((run.inc.ha or {}).get("restarted") or [])
    failing = [p for p in running(primaries) if not probed.get(str(p["instance_id"]), (True, ""))[0]]
    if run.dry_run and not failing:  # the plan: probes are not run; show the restart on a primary
        failing = running(primaries)[:1]
    todo = [p for p in failing if str(p["instance_id"]) not in done]
    return (todo[0] if todo else None), describe(primaries, probed)


def next_to_restart(run: Run, primaries: list[dict[str, Any]]) -> tuple[bool, str]:
    """VERIFY on a cluster with three primaries: the restarted primary serves again; does
    another running primary fail that was not restarted yet (then RESTART takes it next)?"""
    probed = probe(run, primaries)
    done = set((run.inc.ha or {}).get("restarted") or [])
    more = [p for p in running(primaries)
            if not probed.get(str(p["instance_id"]), (True, ""))[0] and str(p["instance_id"]) not in done]
    return bool(more) and not run.dry_run, describe(primaries, probed)


def restarted_serves(run: Run, instance: dict[str, Any]) -> tuple[bool, str]:
    """The primary just restarted, on its own endpoint."""
    verify = run.rctx.target.recovery.verify
    return run.verify(verify.master_checks, verify.master_endpoint(_host(instance)))


def note_restarted(run: Run, instance_id: str, *, fleet: bool) -> None:
    ha = dict(run.inc.ha or {})
    ha["restarted"] = [*(ha.get("restarted") or []), instance_id]
    ha["fleet"] = fleet
    run.inc.ha = ha


# ------------------------------------------------------------------ before a relaunch

def hold_for_emr(run: Run, old: dict[str, Any] | None) -> Outcome | None:
    """SNAPSHOT of a cluster with three primaries, before a relaunch is prepared. None: go ahead
    (not a three-primary cluster, the cluster ended, or fewer than two primaries serve after
    ``recovery.ha.replace_wait_min``). :class:`Wait`: EMR is replacing a primary and the wait is
    not over. :class:`Healed`: two or more primaries serve: no relaunch."""
    old = old or {}
    primaries = list(old.get("primaries") or [])
    if not old.get("active") or not is_multi_primary(primaries):
        return None
    probed = probe(run, primaries)
    serving = [iid for iid, (ok, _) in probed.items() if ok]
    said = describe(primaries, probed)
    if run.dry_run:
        run.inc.notes.append(f"three primaries: a relaunch starts only if fewer than two serve after "
                             f"{run.rctx.target.recovery.ha.replace_wait_min:g} min of EMR replacing them ({said})")
        return None
    ha = dict(run.inc.ha or {})
    if len(serving) >= 2:
        run.inc.ha = ha
        rec = run.rctx.target.recovery
        ok, summary = run.verify(list(rec.when.checks) if rec.when else [], None)
        if not ok:  # a relaunch is not allowed while two primaries serve, and would not help
            return Escalate(f"{len(serving)} of {HA_PRIMARIES} primaries serve on their own endpoints ({said}) but "
                            f"the trigger checks fail ({summary}): a relaunch would not fix it; look at the path "
                            "(load balancer, target group, DNS)")
        run.inc.outcome = HEALED_BY_EMR
        return Healed(f"{HEALED_BY_EMR}: {len(serving)} of {HA_PRIMARIES} serve ({said}) and the trigger checks "
                      f"pass ({summary}); nothing launched")
    limit = timedelta(minutes=run.rctx.target.recovery.ha.replace_wait_min)
    pending = replacing(primaries) or missing(primaries)
    since = parse_iso(str(ha.setdefault("waiting_since", iso(run.now()))))
    run.inc.ha = ha
    waited = run.now() - since
    if pending and waited < limit:
        return Wait(f"EMR is replacing a primary; {len(serving)} of {HA_PRIMARIES} serve ({said}): waited "
                    f"{waited.total_seconds() / 60:.0f} of {limit.total_seconds() / 60:g} min "
                    "(recovery.ha.replace_wait_min) before a relaunch")
    ha["relaunch_because"] = (f"{len(serving)} of {HA_PRIMARIES} primaries serve after "
                              f"{waited.total_seconds() / 60:.0f} min ({said})")
    run.inc.notes.append(f"relaunching a three-primary cluster: {ha['relaunch_because']}")
    return None


def retire_protected_note(old: dict[str, Any] | None, allowed: bool) -> str | None:
    """RETIRE_OLD of a three-primary cluster: EMR forces termination protection on, so the old
    cluster can be terminated only with ``allow_termination_protected: true``."""
    old = old or {}
    if not is_multi_primary(list(old.get("primaries") or [])) or not old.get("termination_protected"):
        return None
    if allowed:
        return (f"{old.get('cluster_id')} has three primaries (termination protection forced on by EMR): "
                "RETIRE_OLD lifts it (allow_termination_protected: true)")
    return (f"{old.get('cluster_id')} has three primaries and EMR forces termination protection on: RETIRE_OLD "
            "cannot terminate it without allow_termination_protected: true (or a person's approval of the "
            "relaunch: recovery.approval with rungs [replace])")
