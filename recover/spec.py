"""Where the RunJobFlow request comes from (``recovery.spec.source``), and the last known
good spec the tick captures while the target is healthy.

- ``clone``: the live cluster, read at SNAPSHOT. When no cluster is active any more (it
  died, which is the usual reason to recover), the last known good spec if one was
  captured, else the newest cluster with that name that ended in the last 7 days: EMR
  still describes ended clusters, so the clone still works.
- ``file``: a JSON RunJobFlow request (``spec.path``; relative paths are tried from the
  working directory, then from the config file's directory).
- ``last_known_good``: what :func:`capture_last_known_good` stored under ``sk = spec``.

Whatever the source, :func:`resolve` seals its secret properties (recover/sealed.py: KMS
ciphertext or a reference to the source cluster, never the clear value) before the request
goes anywhere it is stored or shown, and :func:`finalize` adds the incident and ownership
tags, forces a persistent cluster and validates the request against botocore's model, so a
bad spec fails at SNAPSHOT (with the reason) rather than at LAUNCH.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from botocore.validate import ParamValidator

from monitor.config import Target
from monitor.core.clock import iso, parse_iso
from monitor.core.clusters import is_multi_primary
from recover.calls import AwsCalls
from recover.clone import ClusterSnapshot, NotCopied, read_cluster
from recover.emr import ENDED_STATES, cluster_state, master_of, owner_of
from recover.facades import Emr
from recover.incident import INCIDENT_TAG, REPLACES_TAG, TARGET_TAG
from recover.sealed import SealError, seal_spec
from recover.spec_file import SpecError, read_spec_file

ENDED_LOOKBACK = timedelta(days=7)
LKG_MAX_AGE_H = 24.0


@dataclass
class Resolved:
    request: dict[str, Any]
    source: str
    old: dict[str, Any] | None  # the cluster being replaced (incident.old)
    not_copied: list[NotCopied] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    cluster_id: str | None = None  # the cluster the request was cloned from (references point there)


def resolve(aws: AwsCalls, target: Target, store: Any, now: datetime) -> Resolved:
    """SNAPSHOT's reads: the cluster being replaced and the request that replaces it, its
    secrets sealed (the request ends up in the incident, in reports and in call records)."""
    resolved = _resolve(aws, target, store, now)
    source_file = str(target.recovery.spec.path) if resolved.source.startswith("file") else None
    resolved.request = seal(aws.clients, target, resolved.request, source_cluster_id=resolved.cluster_id,
                            source_file=source_file, dry_run=aws.dry_run)
    return resolved


def seal(clients: Any, target: Target, request: dict[str, Any], *, source_cluster_id: str | None,
         source_file: str | None = None, dry_run: bool) -> dict[str, Any]:
    """:func:`recover.sealed.seal_spec` with the target's ``recovery.spec`` settings; a
    secret that cannot be sealed is a :class:`SpecError` (SNAPSHOT fails with the reason)."""
    cfg = target.recovery.spec
    kms = clients.client("kms") if cfg.kms_key_id and not dry_run else None
    try:
        return seal_spec(kms, request, target=target.name, secret_properties=cfg.secret_properties,
                         key_id=cfg.kms_key_id, source_cluster_id=source_cluster_id, source_file=source_file,
                         dry_run=dry_run)
    except SealError as exc:
        raise SpecError(str(exc)) from None


def _resolve(aws: AwsCalls, target: Target, store: Any, now: datetime) -> Resolved:
    emr = Emr(aws)
    source = target.recovery.spec.source
    live = emr.find(target.cluster)
    snap: ClusterSnapshot | None = None
    if live is not None and source == "clone":
        snap = read_cluster(emr, live)
    old = snap.old_record() if snap else (_old_record(emr, live) if live is not None else None)
    notes: list[str] = []
    if source == "file":
        return Resolved(read_spec_file(str(target.recovery.spec.path)), f"file {target.recovery.spec.path}", old,
                        cluster_id=None)
    if source == "last_known_good" or (source == "clone" and snap is None):
        lkg = store.get_spec(target.name)
        if lkg and lkg.get("request"):
            if source == "clone":
                notes.append(f"no active cluster to clone: using the last known good spec captured "
                             f"{lkg.get('captured_at')} from {lkg.get('cluster_id')}")
            return Resolved(copy.deepcopy(lkg["request"]), "last_known_good", old,
                            list(lkg.get("not_copied") or []), notes, lkg.get("cluster_id"))
        if source == "last_known_good":
            raise SpecError("no last known good spec captured yet for this target (it is captured while the "
                            "target is healthy); use spec source clone or file")
    if snap is None:  # clone, nothing active, nothing captured: the newest ended cluster
        ended = _newest_ended(emr, getattr(target.cluster, "name", None), now)
        if ended is None:
            label = target.cluster.id or repr(target.cluster.name)
            raise SpecError(f"nothing to clone: no active cluster {label}, no last known good spec, "
                            "no cluster with that name ended in the last 7 days; use spec source file")
        snap = read_cluster(emr, ended)
        old = snap.old_record()
        notes.append(f"no active cluster: cloned {snap.cluster_id}, which is {snap.state}")
    return Resolved(snap.request, "clone", old, snap.not_copied, notes, snap.cluster_id)


def _old_record(emr: Emr, cluster: dict[str, Any]) -> dict[str, Any]:
    fleet = cluster.get("InstanceCollectionType") == "INSTANCE_FLEET"
    masters = master_of(emr, str(cluster["Id"]), fleet=fleet, live_only=False)
    state = cluster_state(cluster)
    record = {"cluster_id": cluster["Id"], "name": cluster.get("Name"), "state": state,
              "master": masters[0] if masters else None,
              "termination_protected": bool(cluster.get("TerminationProtected")), "fleet": fleet,
              "active": state not in ENDED_STATES, "owner": owner_of(cluster)}
    if is_multi_primary(masters):  # every primary (live first, then the ones EMR replaced): REPOINT
        record["primaries"] = masters  # deregisters them all; SNAPSHOT waits for EMR's replacements
    return record


def _newest_ended(emr: Emr, name: str | None, now: datetime) -> dict[str, Any] | None:
    if not name:
        return None
    page = emr.list_clusters_page(states=list(ENDED_STATES), created_after=now - ENDED_LOOKBACK)
    mine = [c for c in page if c.get("Name") == name]
    if not mine:
        return None
    newest = max(mine, key=lambda c: ((c.get("Status") or {}).get("Timeline") or {}).get("CreationDateTime") or now)
    return emr.describe_cluster(str(newest["Id"]))


def finalize(aws: AwsCalls, request: dict[str, Any], *, incident_id: str, target: str,
             old_cluster_id: str | None) -> tuple[dict[str, Any], list[str]]:
    """The request LAUNCH sends: incident tags, persistent, valid. Returns it and the
    validation problems (empty when it can be sent)."""
    req = copy.deepcopy(request)
    tags = [t for t in req.get("Tags") or [] if not str(t.get("Key", "")).startswith("sentinel:")]
    tags += [{"Key": INCIDENT_TAG, "Value": incident_id}, {"Key": TARGET_TAG, "Value": target}]
    if old_cluster_id:
        tags.append({"Key": REPLACES_TAG, "Value": old_cluster_id})
    req["Tags"] = tags
    req.setdefault("Instances", {})["KeepJobFlowAliveWhenNoSteps"] = True
    report = ParamValidator().validate(req, aws.service_model_shape("emr", "RunJobFlow"))
    problems = report.generate_report().splitlines() if report.has_errors() else []
    return req, [p.strip() for p in problems if p.strip()]


# ------------------------------------------------------------------ last known good

def capture_last_known_good(rctx: Any, *, cluster_id: str | None = None,
                            max_age_h: float = LKG_MAX_AGE_H) -> dict[str, Any]:
    """Store the healthy cluster's spec (``sk = spec``) for ``spec.source: last_known_good``
    and for a clone whose cluster is gone. Call it from the tick while the target is healthy.

    Cheap when fresh: with ``cluster_id`` (the emr_state check's ``facts['cluster']['id']``)
    and a spec of that cluster younger than ``max_age_h`` it makes no AWS call; otherwise
    about eight read calls. Never raises: returns ``{"captured": bool, "reason": ...}``.
    """
    target: Target = rctx.target
    now = rctx.clock.now()
    try:
        current = rctx.store.get_spec(target.name)
        if current and cluster_id and current.get("cluster_id") == cluster_id and \
                now - parse_iso(str(current.get("captured_at"))) < timedelta(hours=max_age_h):
            return {"captured": False, "reason": "fresh", "cluster_id": cluster_id, "calls": 0}
        aws = AwsCalls(rctx.clients, dry_run=True)  # reads only; nothing here may change the world
        aws.phase = "CAPTURE"
        emr = Emr(aws)
        live = emr.find(target.cluster)
        if live is None or cluster_state(live) not in ("WAITING", "RUNNING"):
            return {"captured": False, "reason": "no healthy active cluster", "calls": len(aws.records)}
        if current and current.get("cluster_id") == live["Id"] and \
                now - parse_iso(str(current.get("captured_at"))) < timedelta(hours=max_age_h):
            return {"captured": False, "reason": "fresh", "cluster_id": live["Id"], "calls": len(aws.records)}
        snap = read_cluster(emr, live)
        request = seal(rctx.clients, target, snap.request, source_cluster_id=snap.cluster_id,
                       dry_run=bool(getattr(rctx, "dry_run", False)))
        spec = {"captured_at": iso(now), "cluster_id": snap.cluster_id, "cluster_name": snap.name,
                "request": request, "not_copied": snap.not_copied, "source": "clone"}
        rctx.store.put_spec(target.name, spec, lease=rctx.lease)
        return {"captured": True, "reason": "captured", "cluster_id": snap.cluster_id, "calls": len(aws.records)}
    except Exception as exc:  # an optimisation for later: never break the tick
        return {"captured": False, "reason": f"{type(exc).__name__}: {exc}"[:300]}
