"""EMR cluster state: is the target's cluster alive, and what did its steps do.

The cluster is found exactly as the recovery runbook finds it (:func:`monitor.core.clusters.find_cluster`),
so "the cluster" means the same thing to the check and to the relaunch. Besides the verdict,
the check records the cluster id and master instance in ``ctx.facts["cluster"]``: the recovery
code and the on-call message need them, and this saves them a second round of API calls.

Verdicts: WAITING/RUNNING → OK; STARTING/BOOTSTRAPPING → OK, WARNING once older than
``max_starting_min``; TERMINATING/TERMINATED(_WITH_ERRORS) or no active cluster with the
name → CRITICAL; a step that FAILED within ``failed_steps_window_h`` → WARNING (a failed step
does not take HiveServer2 down by itself, but someone should look).
"""

from __future__ import annotations

import builtins
from datetime import datetime, timedelta
from typing import Any, ClassVar, Literal

from pydantic import Field

from checks.aws_calls import api_error_summary, call_with_backoff, regional_client, worst
from checks.base import Check, CheckConfig, CheckContext, CheckResult, ErrorKind, Status
from monitor.core.aws import error_code
from monitor.core.clusters import (
    HA_PRIMARIES,
    LIVE_ORDER,
    ClusterLookupError,
    find_cluster,
    is_multi_primary,
    primary_rows,
)

ENDED_STATES = ("TERMINATING", "TERMINATED", "TERMINATED_WITH_ERRORS")
STARTING_STATES = ("STARTING", "BOOTSTRAPPING")


class EmrStateConfig(CheckConfig):
    type: Literal["emr_state"]
    # STARTING/BOOTSTRAPPING longer than this → WARNING (a normal launch takes 8-20 min).
    max_starting_min: float = Field(default=45, gt=0, le=1440)
    # FAILED steps that ended within this window → WARNING; 0 disables the step check.
    failed_steps_window_h: float = Field(default=24, ge=0, le=24 * 14)


class EmrStateCheck(Check):
    type: ClassVar[str] = "emr_state"
    config_model: ClassVar[builtins.type[CheckConfig]] = EmrStateConfig
    permissions: ClassVar[tuple[str, ...]] = (
        "elasticmapreduce:ListClusters",
        "elasticmapreduce:DescribeCluster",
        "elasticmapreduce:ListSteps",
        "elasticmapreduce:ListInstances",
    )

    @property
    def cfg(self) -> EmrStateConfig:
        assert isinstance(self.config, EmrStateConfig)
        return self.config

    def run(self, ctx: CheckContext) -> CheckResult:  # latency: measured by monitor.runner
        def done(status: Status, summary: str, observed: dict[str, Any], kind: ErrorKind | None = None) -> CheckResult:
            return self.result(status, summary, observed=observed, error_kind=kind)

        ref = ctx.cluster
        label = f"cluster {ref.id}" if getattr(ref, "id", None) else f"cluster named {getattr(ref, 'name', None)!r}"
        emr = regional_client(ctx, "emr")
        observed: dict[str, Any] = {}
        try:
            cluster = call_with_backoff(lambda: find_cluster(emr, ref), ctx.deadline)
        except ClusterLookupError as exc:
            return done(Status.UNKNOWN, f"{exc}: give the target a cluster id, or terminate the extra one",
                        observed, ErrorKind.CONFIG)
        except Exception as exc:
            observed["error_code"] = error_code(exc)
            if error_code(exc) == "InvalidRequestException" and getattr(ref, "id", None):
                return done(Status.UNKNOWN, f"{label}: {exc}", observed, ErrorKind.CONFIG)
            return done(Status.UNKNOWN, api_error_summary(f"finding the {label}", exc), observed, ErrorKind.API)

        if cluster is None:
            return self._no_active_cluster(ctx, emr, label, observed)

        status, summary = self._judge_state(ctx, cluster, observed)
        facts = {"active": status_active(observed["state"]), "id": cluster["Id"], "name": cluster.get("Name"),
                 "state": observed["state"], "master_public_dns": cluster.get("MasterPublicDnsName")}
        kind: ErrorKind | None = None
        try:
            every = self._masters(ctx, emr, cluster)
            masters = [m for m in every if m["state"] in LIVE_ORDER]
            primary = masters[0] if masters else {}
            observed.update(master_instance_id=primary.get("instance_id"), master_private_dns=primary.get("private_dns"),
                            master_private_ip=primary.get("private_ip"), masters=masters)
            facts.update(master_instance_id=primary.get("instance_id"), master_private_dns=primary.get("private_dns"),
                         master_private_ip=primary.get("private_ip"))
            if is_multi_primary(every):
                status, summary = _primaries(masters, observed, facts, status, summary)
            if self.cfg.failed_steps_window_h > 0:
                failed = self._failed_steps(ctx, emr, cluster["Id"])
                observed["failed_steps"] = failed
                if failed:
                    names = ", ".join(f"{s['name']} ({s['id']})" for s in failed[:3])
                    status = worst(status, Status.WARNING)
                    summary += f"; {len(failed)} step(s) failed in the last {self.cfg.failed_steps_window_h:g} h: {names}"
        except Exception as exc:
            observed["error_code"] = error_code(exc)
            status, kind = worst(status, Status.UNKNOWN), ErrorKind.API
            summary += f"; {api_error_summary('reading instances/steps', exc)}"
        status, summary = _with_event(ctx, cluster["Id"], observed, status, summary)
        ctx.facts["cluster"] = facts
        return done(status, summary, observed, kind if status is Status.UNKNOWN else None)

    # ------------------------------------------------------------------ pieces
    def _judge_state(self, ctx: CheckContext, cluster: dict[str, Any], observed: dict[str, Any]) -> tuple[Status, str]:
        st = cluster.get("Status") or {}
        state = str(st.get("State", "UNKNOWN"))
        reason = st.get("StateChangeReason") or {}
        created = (st.get("Timeline") or {}).get("CreationDateTime")
        observed.update(
            cluster_id=cluster["Id"], name=cluster.get("Name"), state=state,
            state_change_reason={"code": reason.get("Code"), "message": reason.get("Message")},
            master_public_dns=cluster.get("MasterPublicDnsName"),
            normalized_instance_hours=cluster.get("NormalizedInstanceHours"),
            created_at=created.isoformat() if isinstance(created, datetime) else None,
        )
        head = f"{cluster['Id']} ({cluster.get('Name')}) is {state}"
        if state in ENDED_STATES:
            why = ": ".join(str(v) for v in (reason.get("Code"), reason.get("Message")) if v)
            return Status.CRITICAL, head + (f" ({why})" if why else "")
        if state in STARTING_STATES:
            if isinstance(created, datetime):
                age_min = (ctx.clock.now() - created).total_seconds() / 60
                observed["starting_for_min"] = round(age_min, 1)
                if age_min > self.cfg.max_starting_min:
                    return Status.WARNING, f"{head} for {age_min:.0f} min (> {self.cfg.max_starting_min:g} min)"
                return Status.OK, f"{head} for {age_min:.0f} min"
            return Status.OK, head
        if state in ("WAITING", "RUNNING"):
            return Status.OK, head
        return Status.UNKNOWN, f"{head}: unexpected state"

    def _masters(self, ctx: CheckContext, emr: Any, cluster: dict[str, Any]) -> list[dict[str, Any]]:
        """The cluster's master instance(s), live first, running first (3 with multi-master,
        plus the ones EMR replaced, ended)."""
        if cluster.get("InstanceCollectionType") == "INSTANCE_FLEET":
            kwargs: dict[str, Any] = {"ClusterId": cluster["Id"], "InstanceFleetType": "MASTER"}
        else:
            kwargs = {"ClusterId": cluster["Id"], "InstanceGroupTypes": ["MASTER"]}
        instances: list[dict[str, Any]] = []
        marker: str | None = None
        while True:
            request = {**kwargs, **({"Marker": marker} if marker else {})}
            page = call_with_backoff(lambda req=request: emr.list_instances(**req), ctx.deadline)  # type: ignore[misc]
            instances.extend(page.get("Instances", []))
            marker = page.get("Marker")
            if not marker:
                break
        return primary_rows(instances)

    def _failed_steps(self, ctx: CheckContext, emr: Any, cluster_id: str) -> list[dict[str, Any]]:
        """FAILED steps among the newest page (50) that ended inside the window."""
        since = ctx.clock.now() - timedelta(hours=self.cfg.failed_steps_window_h)
        page = call_with_backoff(lambda: emr.list_steps(ClusterId=cluster_id, StepStates=["FAILED"]), ctx.deadline)
        failed = []
        for step in page.get("Steps", []):
            st = step.get("Status") or {}
            timeline = st.get("Timeline") or {}
            when = timeline.get("EndDateTime") or timeline.get("CreationDateTime")
            if isinstance(when, datetime) and when < since:
                continue
            details = st.get("FailureDetails") or {}
            reason = details.get("Reason") or details.get("Message") or (st.get("StateChangeReason") or {}).get("Message")
            failed.append({"name": step.get("Name"), "id": step.get("Id"), "reason": reason,
                           "log_file": details.get("LogFile"),
                           "ended_at": when.isoformat() if isinstance(when, datetime) else None})
        return failed

    def _no_active_cluster(self, ctx: CheckContext, emr: Any, label: str, observed: dict[str, Any]) -> CheckResult:
        """CRITICAL; name the newest ended cluster with that name so on-call sees why it ended."""
        name = getattr(ctx.cluster, "name", None)
        observed.update(cluster_id=None, state=None)
        summary = f"no active {label}"
        ctx.facts["cluster"] = {"active": False, "id": None, "name": name, "state": None}
        try:
            last = call_with_backoff(lambda: _newest_ended(emr, name, ctx.clock.now()), ctx.deadline)
        except Exception as exc:
            observed["last_cluster_error"] = error_code(exc)
            last = None
        if last is not None:
            st = last.get("Status") or {}
            reason = st.get("StateChangeReason") or {}
            observed["last_cluster"] = {"id": last.get("Id"), "state": st.get("State"),
                                        "state_change_reason": {"code": reason.get("Code"), "message": reason.get("Message")}}
            ctx.facts["cluster"].update(last_id=last.get("Id"), last_state=st.get("State"))
            why = ": ".join(str(v) for v in (reason.get("Code"), reason.get("Message")) if v)
            summary += f"; the last one, {last.get('Id')}, is {st.get('State')}" + (f" ({why})" if why else "")
            _, summary = _with_event(ctx, str(last.get("Id")), observed, Status.CRITICAL, summary)
        return self.result(Status.CRITICAL, summary, observed=observed)


def _with_event(ctx: CheckContext, cluster_id: str, observed: dict[str, Any], status: Status,
                summary: str) -> tuple[Status, str]:
    """An AWS event's evidence (``facts["event"]``, monitor.triggers) for this cluster, held
    against this check's own reads, which always decide: a master instance group or fleet
    FAILED/TERMINATED is CRITICAL at once when no master instance is running any more (the
    cluster itself may still read RUNNING for a while); an event that the reads contradict
    (a stale, duplicated or forged one) is only noted."""
    event = ctx.facts.get("event")
    if not isinstance(event, dict) or event.get("cluster_id") != cluster_id:
        return status, summary
    observed["event"] = {k: event.get(k) for k in ("detail_type", "state", "role", "reason", "time")}
    said = f"EMR event at {event.get('time') or '?'}: {event.get('role') or 'cluster'} {event.get('state')}"
    if event.get("role") == "MASTER" and "masters" in observed and not observed["masters"]:
        return worst(status, Status.CRITICAL), f"{summary}; no running master instance ({said})"
    if status is Status.CRITICAL:
        return status, f"{summary} ({said})"
    return status, f"{summary}; {said}, not confirmed by the cluster's own state"


def _primaries(live: list[dict[str, Any]], observed: dict[str, Any], facts: dict[str, Any], status: Status,
               summary: str) -> tuple[Status, str]:
    """A cluster with three primary nodes: name each, and say which one EMR is replacing.
    One primary short is WARNING, never more: the cluster serves on two, EMR replaces the
    third by itself, and the cluster's own state says when it does not survive."""
    running = [m for m in live if m["state"] == "RUNNING"]
    named = ", ".join(f"{m['instance_id']} {m.get('private_dns')} {m['state']}" for m in live)
    observed["primaries"] = live
    facts["primaries"] = live
    summary += f"; primaries {len(running)} of {HA_PRIMARIES} running ({named})"
    if len(running) < HA_PRIMARIES and status is Status.OK:
        return Status.WARNING, summary + ": EMR is replacing the others"
    return status, summary


def status_active(state: str) -> bool:
    return state not in ENDED_STATES


def _newest_ended(emr: Any, name: str | None, now: datetime) -> dict[str, Any] | None:
    """The newest cluster with ``name`` that ended in the last 7 days (first page only: bounded cost)."""
    if not name:
        return None
    page = emr.list_clusters(ClusterStates=list(ENDED_STATES), CreatedAfter=now - timedelta(days=7))
    mine: list[dict[str, Any]] = [c for c in page.get("Clusters", []) if c.get("Name") == name]
    if not mine:
        return None
    return max(mine, key=lambda c: ((c.get("Status") or {}).get("Timeline") or {}).get("CreationDateTime") or now)
