"""Undoing a failed relaunch (FAILED: ``rollback``) and the final ``sweep`` of any other
cluster carrying the incident's tag. Each rollback step runs once; a permanent error in one
is recorded and the next still runs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from monitor.core.clock import parse_iso
from monitor.core.faults import AwsError
from recover import emr as emr_ops
from recover import routing
from recover.facades import Emr
from recover.incident import Phase
from recover.phases import LAUNCH_SEARCH_SLACK
from recover.run import Next, Outcome, Run


def rollback(run: Run) -> Outcome:
    """FAILED: move traffic back if it moved, terminate a new cluster that never became
    healthy. Each step runs once (recorded in ``incident.rollback``); a permanent error in
    one step is recorded and the next step still runs."""
    inc = run.inc
    rec = run.rctx.target.recovery
    said: list[str] = []
    if "repoint_back" not in inc.rollback:
        if inc.recovered_at:  # never undo a verified cut-over (the machine escalates instead of failing)
            said.append(f"routing left on the new master: it was verified at {inc.recovered_at}")
        elif (inc.repoint or {}).get("started_at"):
            old = inc.old or {}
            if inc.strategy == "replace" and old.get("active") and old.get("master"):
                said += _guarded(inc, "re-point", lambda: routing.repoint_back(
                    run.aws, rec.routing, inc.routing_before or {}, old.get("master"), (inc.new or {}).get("master"),
                    old_all=old.get("primaries"), new_all=(inc.new or {}).get("primaries")))
            else:
                said.append("routing not moved back: the old master is gone")
        inc.rollback.append("repoint_back")
        run.save("FAILED: rollback: routing " + ("; ".join(said) or "was not changed"))
    if "terminate_new" not in inc.rollback:
        new_id = inc.new_cluster_id
        if new_id is None and inc.spec is not None and inc.failed and inc.failed.get("phase") == Phase.LAUNCH.value:
            since = parse_iso(inc.started_at) - LAUNCH_SEARCH_SLACK
            found = _guarded(inc, "find launched cluster", lambda: [str(c["Id"]) for c in emr_ops.tagged_clusters(
                Emr(run.aws), inc.id, str((inc.spec or {})["Name"]), since)])
            new_id = found[0] if found else None
        if new_id and inc.verified_new_at:
            said.append(f"kept new cluster {new_id}: it passed VERIFY_NEW (inspect it; terminate it by hand if unneeded)")
        elif new_id:
            said += _guarded(inc, "terminate new cluster",
                             lambda: [emr_ops.terminate(Emr(run.aws), new_id, allow_protected=True)])
        inc.rollback.append("terminate_new")
    return Next("rolled back: " + ("; ".join(said) or "nothing to roll back"))


def sweep(run: Run) -> list[str]:
    """Every cluster carrying this incident's tag: the one kept as the new cluster (if it is
    still wanted) stays; any other that is still active never passed VERIFY_NEW (only the kept
    one can) and is terminated. Returns notes for the final page."""
    inc = run.inc
    if inc.spec is None:
        return []
    emr = Emr(run.aws)
    since = parse_iso(inc.started_at) - LAUNCH_SEARCH_SLACK
    keep = inc.new_cluster_id if "terminate_new" not in inc.rollback or inc.verified_new_at else None
    notes: list[str] = []
    for cluster in emr_ops.tagged_clusters(emr, inc.id, str(inc.spec["Name"]), since):
        cid = str(cluster["Id"])
        if cid == keep or emr_ops.cluster_state(cluster) in emr_ops.ENDED_STATES:
            continue
        notes.append(f"sweep: {cid} also carries {inc.id} and never passed VERIFY_NEW: " +
                     emr_ops.terminate(emr, cid, allow_protected=True, owner=run.rctx.target.name))
    return notes


def _guarded(inc: Any, what: str, step: Callable[[], list[str]]) -> list[str]:
    try:
        return step()
    except AwsError as exc:
        if exc.transient:
            raise
        inc.rollback_errors.append(f"{what}: {exc}")
        return [f"{what} FAILED: {exc}"]
