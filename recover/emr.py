"""EMR for the runbook: find the incident's cluster, launch, judge readiness, terminate.

Each function is idempotent by reading first: LAUNCH looks for a cluster already tagged
with the incident id before calling RunJobFlow (a crash after RunJobFlow but before the
state write must not launch a second cluster), and terminate looks at the cluster's state
before calling TerminateJobFlows (a crash after it must not terminate twice).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from monitor.core.clusters import LIVE_ORDER, is_multi_primary, primary_rows
from monitor.core.errors import SentinelError
from recover.calls import AwsCalls
from recover.facades import Emr
from recover.incident import INCIDENT_TAG, TARGET_TAG
from recover.sealed import unseal_spec

READY_STATES = ("WAITING", "RUNNING")
ENDED_STATES = ("TERMINATING", "TERMINATED", "TERMINATED_WITH_ERRORS")
BAD_STEP_STATES = ("FAILED", "CANCELLED", "CANCEL_PENDING", "INTERRUPTED")


class ProtectedCluster(SentinelError):
    """The cluster has termination protection and we may not lift it."""


def cluster_state(cluster: dict[str, Any]) -> str:
    return str((cluster.get("Status") or {}).get("State", "UNKNOWN"))


def state_reason(cluster: dict[str, Any]) -> str:
    reason = (cluster.get("Status") or {}).get("StateChangeReason") or {}
    return ": ".join(str(v) for v in (reason.get("Code"), reason.get("Message")) if v)


def master_of(emr: Emr, cluster_id: str, *, fleet: bool, live_only: bool = True) -> list[dict[str, Any]]:
    """The cluster's master instance(s), live ones first (three with multi-master).

    ``live_only=False`` also returns ended instances: the old master of a dead cluster must
    still be deregistered from the load balancer.
    """
    rows = primary_rows(emr.list_instances(cluster_id, fleet=fleet))
    return [r for r in rows if r["state"] in LIVE_ORDER] if live_only else rows


def tagged_clusters(emr: Emr, incident_id: str, name: str, created_after: datetime) -> list[dict[str, Any]]:
    """Clusters (any state) named ``name``, created after ``created_after`` and tagged with
    this incident: the idempotency marker of LAUNCH. Oldest first."""
    found = []
    for summary in emr.list_clusters(created_after=created_after):
        if summary.get("Name") != name:
            continue
        cluster = emr.describe_launched(str(summary["Id"]))  # listed a moment ago: maybe not describable yet
        if has_incident_tag(cluster, incident_id):
            found.append(cluster)
    return sorted(found, key=launch_order)


def has_incident_tag(cluster: dict[str, Any], incident_id: str) -> bool:
    return any(t.get("Key") == INCIDENT_TAG and t.get("Value") == incident_id for t in cluster.get("Tags") or [])


def launch_order(cluster: dict[str, Any]) -> tuple[datetime, str]:
    """Oldest first, then by id: every invocation picks the same survivor among duplicates."""
    created = ((cluster.get("Status") or {}).get("Timeline") or {}).get("CreationDateTime")
    return (created if isinstance(created, datetime) else _EPOCH, str(cluster.get("Id")))


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass
class Readiness:
    verdict: str  # "ready" | "starting" | "failed"
    detail: str
    master: dict[str, Any] | None = None
    primaries: list[dict[str, Any]] | None = None  # every running primary (a cluster with three)


def readiness(emr: Emr, cluster_id: str, *, fleet: bool) -> Readiness:
    """WAIT_READY's judgement: WAITING/RUNNING, every step COMPLETED, a running master."""
    cluster = emr.describe_launched(cluster_id)
    state = cluster_state(cluster)
    if state in ENDED_STATES:
        why = state_reason(cluster)
        return Readiness("failed", f"new cluster {cluster_id} is {state}" + (f" ({why})" if why else ""))
    if state not in READY_STATES:
        return Readiness("starting", f"new cluster {cluster_id} is {state}")
    steps = emr.list_steps(cluster_id)
    bad = [s for s in steps if (s.get("Status") or {}).get("State") in BAD_STEP_STATES]
    if bad:
        names = ", ".join(f"{s.get('Name')} ({(s.get('Status') or {}).get('State')})" for s in bad[:3])
        return Readiness("failed", f"setup step(s) of {cluster_id} did not complete: {names}")
    pending = [s for s in steps if (s.get("Status") or {}).get("State") != "COMPLETED"]
    if pending:
        return Readiness("starting", f"new cluster {cluster_id} is {state}; {len(pending)} of {len(steps)} setup "
                                     f"step(s) not completed yet ({pending[-1].get('Name')} ...)")
    masters = master_of(emr, cluster_id, fleet=fleet)
    running = [m for m in masters if m["state"] == "RUNNING" and m.get("private_dns")]
    if not running:
        return Readiness("starting", f"new cluster {cluster_id} is {state} but has no running master yet")
    if is_multi_primary(masters):  # three primaries: each is registered and verified, so each must run
        if len(running) < len(masters):
            return Readiness("starting", f"new cluster {cluster_id} is {state}; {len(running)} of {len(masters)} "
                                         "primaries running")
        return Readiness("ready", f"new cluster {cluster_id} is {state}, {len(steps)} setup step(s) completed, "
                                  f"{len(running)} primaries running", master=running[0], primaries=running)
    return Readiness("ready", f"new cluster {cluster_id} is {state}, {len(steps)} setup step(s) completed",
                     master=running[0])


def terminate(emr: Emr, cluster_id: str, *, allow_protected: bool, owner: str | None = None) -> str:
    """Terminate once: a cluster already ending is left alone. With ``owner``, a cluster not
    tagged ``sentinel:target=<owner>`` is refused (:class:`NotOwned`) before any change.
    Returns what happened."""
    cluster = emr.describe_cluster(cluster_id)
    state = cluster_state(cluster)
    if state in ENDED_STATES:
        return f"{cluster_id} already {state}"
    if owner is not None:
        require_owned(cluster, owner)
    lifted = ""
    if cluster.get("TerminationProtected"):
        if not allow_protected:
            raise ProtectedCluster(f"{cluster_id} is termination-protected")
        emr.set_termination_protection(cluster_id, False)
        lifted = " (termination protection lifted)"
    emr.terminate_job_flows(cluster_id)
    return f"{cluster_id} terminated{lifted}"


# ------------------------------------------------------------------ sealed specs and ownership

class NotOwned(SentinelError):
    """The cluster does not carry ``sentinel:target=<target>``: sentinel may not change it."""


def owner_of(cluster: dict[str, Any]) -> str | None:
    """The ``sentinel:target`` tag of a DescribeCluster ``Cluster``, None when it has none."""
    for tag in cluster.get("Tags") or []:
        if tag.get("Key") == TARGET_TAG:
            return str(tag.get("Value"))
    return None


def require_owned(cluster: dict[str, Any], target: str) -> None:
    """Refuse to change (terminate, unprotect, tag) a cluster that is not the target's.

    Why: the IAM policy allows TerminateJobFlows, SetTerminationProtection and AddTags only
    on clusters tagged ``sentinel:target=<target>`` (DESIGN §10), so whoever can edit the
    config cannot point a target at any ``j-…`` in the account and have it terminated. This
    check says so before AWS answers AccessDenied (and before a ``replace`` launches a new
    cluster it could not retire the old one for), with what to do: the first cluster gets the
    tag by hand (``aws emr add-tags``); every cluster sentinel launches carries it.

    ``cluster`` is a DescribeCluster ``Cluster`` (its ``Tags``) or an incident's ``old``
    record (its ``owner``, read at SNAPSHOT: no AWS call needed). Raises :class:`NotOwned`.
    """
    have = cluster["owner"] if "owner" in cluster else owner_of(cluster)
    if have == target:
        return
    cid = cluster.get("Id") or cluster.get("cluster_id") or "?"
    found = f"it is tagged {TARGET_TAG}={have}" if have is not None else f"it has no {TARGET_TAG} tag"
    raise NotOwned(f"refusing to change {cid}: {found}, not {TARGET_TAG}={target}. If {cid} is this target's "
                   f"cluster, tag it: aws emr add-tags --resource-id {cid} --tags {TARGET_TAG}={target}")


def run_job_flow(aws: AwsCalls, spec: dict[str, Any]) -> str:
    """RunJobFlow from a sealed spec (recover/sealed.py): the secrets are unsealed right
    before the call and only for it; the call record keeps the sealed form. Returns the new
    cluster id. Raises :class:`recover.sealed.SealError` when a secret cannot be recovered
    (launching with a wrong metastore password would only fail later and worse)."""
    return Emr(aws).run_job_flow(unseal_spec(aws, spec), record=spec)
