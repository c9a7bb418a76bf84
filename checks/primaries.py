"""A HiveServer2 check run against each primary of the target's cluster (``per_primary: true``).

Why: on a cluster with three primary nodes HiveServer2 runs on each of them, and the load
balancer hides one that hangs (its health check routes around it) until a second one does.
The check through the load balancer says whether clients are served; this one says how many
primaries could serve them, so sentinel can restart the one that fails before the second
does, and can tell "EMR is replacing a primary" from "relaunch the cluster".

Each primary is reached directly (its private name from EMR, connected through the one
resolver that honours ``host_aliases``) on the port and TLS of ``recovery.verify.master``,
as VERIFY_NEW reaches a new master; all of them in parallel, within the check's own deadline.

Verdict: every primary answers → OK; at least two answer → WARNING (the cluster serves, one
primary does not: ``observed["restartable"]`` names a running one that failed with an error a
restart can fix); fewer than two (one, for a classic cluster with one master) → CRITICAL with
the failures' error kind, or UNKNOWN when every failure is one a person must look at (auth,
tls, config, secret) or the cluster's primaries cannot be listed.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import replace
from typing import Any

from checks.aws_calls import api_error_summary, call_with_backoff, regional_client
from checks.base import Check, CheckContext, CheckResult, EndpointOverride, ErrorKind, Status
from monitor.core.aws import error_code
from monitor.core.clusters import LIVE_ORDER, ClusterLookupError, expected_primaries, find_cluster, list_primaries

SERVING = (Status.OK, Status.WARNING)
GRACE_S = 0.5


def primaries_of(ctx: CheckContext) -> tuple[str | None, list[dict[str, Any]]]:
    """The target's cluster id and its primaries (live first), read from EMR."""
    emr = regional_client(ctx, "emr")
    cluster = call_with_backoff(lambda: find_cluster(emr, ctx.cluster), ctx.deadline)
    if cluster is None:
        return None, []
    return str(cluster["Id"]), call_with_backoff(lambda: list_primaries(emr, cluster), ctx.deadline)


def run_per_primary(check: Check, ctx: CheckContext, one: Callable[[CheckContext], CheckResult]) -> CheckResult:
    """``one(ctx)`` runs the check once against ``ctx.endpoint`` (a fresh check per primary:
    a run keeps per-run state)."""
    observed: dict[str, Any] = {"per_primary": True}
    try:
        cluster_id, every = primaries_of(ctx)
    except ClusterLookupError as exc:
        return check.result(Status.UNKNOWN, f"config: {exc}", observed=observed, error_kind=ErrorKind.CONFIG)
    except Exception as exc:
        observed["error_code"] = error_code(exc)
        return check.result(Status.UNKNOWN, api_error_summary("listing the primaries", exc), observed=observed,
                            error_kind=ErrorKind.API)
    observed["cluster_id"] = cluster_id
    live = [p for p in every if p["state"] in LIVE_ORDER]
    expected = expected_primaries(every)
    need = min(2, expected)
    observed.update(expected=expected, need=need)
    if cluster_id is None:
        return check.result(Status.CRITICAL, "no active cluster: no primary to ask", observed=observed,
                            error_kind=ErrorKind.REFUSED)
    template = ctx.primary_endpoint
    running = [p for p in live if p["state"] == "RUNNING" and (p.get("private_dns") or p.get("private_ip"))]
    results: dict[str, CheckResult] = {}
    pool = ThreadPoolExecutor(max_workers=max(1, len(running)), thread_name_prefix="primary")
    try:
        jobs = []
        for p in running:
            host = str(p.get("private_dns") or p.get("private_ip"))
            # Always an endpoint (never the per_primary fan-out again); without ``recovery.verify.master``
            # the check's own port and TLS.
            endpoint = replace(template, host=host) if template is not None else EndpointOverride(host=host)
            sub = replace(ctx, endpoint=endpoint, host_override=host, facts={})
            jobs.append((p, pool.submit(one, sub)))
        for p, fut in jobs:
            try:
                results[str(p["instance_id"])] = fut.result(timeout=ctx.deadline.remaining() + GRACE_S)
            except FutureTimeout:
                results[str(p["instance_id"])] = check.result(
                    Status.UNKNOWN, "timeout: no verdict within the check's deadline", error_kind=ErrorKind.TIMEOUT)
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
    return _judge(check, observed, live, results, expected)


def _judge(check: Check, observed: dict[str, Any], live: list[dict[str, Any]],
           results: dict[str, CheckResult], expected: int) -> CheckResult:
    need = min(2, expected)
    rows: list[dict[str, Any]] = []
    serving: list[str] = []
    failed: list[CheckResult] = []
    restartable: list[dict[str, Any]] = []
    for p in live:
        iid = str(p["instance_id"])
        r = results.get(iid)
        row = {**p, "status": r.status.name if r else None, "error_kind": r.error_kind if r else None,
               "summary": r.summary if r else f"not running ({p['state']}): EMR is bringing it up"}
        rows.append(row)
        if r is None:
            continue
        if r.status in SERVING:
            serving.append(iid)
            continue
        failed.append(r)
        if r.error_kind and ErrorKind(r.error_kind).server_broken:
            restartable.append({k: p.get(k) for k in ("instance_id", "private_dns", "private_ip")})
    observed.update(primaries=rows, serving=serving, restartable=restartable)
    latency = max((r.latency_ms for r in results.values()), default=0.0)
    down = [f"{r['instance_id']} ({r['summary']})" for r in rows if r["instance_id"] not in serving]
    missing = expected - len(live)
    if missing > 0:
        down.append(f"{missing} primary not listed (EMR is replacing it)" if missing == 1 else
                    f"{missing} primaries not listed (EMR is replacing them)")
    head = f"{len(serving)} of {expected} primar{'y' if expected == 1 else 'ies'} serve"
    if len(serving) >= expected:
        return check.result(Status.OK, head, observed=observed, latency_ms=latency)
    if len(serving) >= need:
        return check.result(Status.WARNING, f"{head}; down: {'; '.join(down)}", observed=observed,
                            latency_ms=latency, error_kind=_kind(failed))
    critical = [r for r in failed if r.error_kind and ErrorKind(r.error_kind).critical]
    not_running = len(live) - len(results) + max(missing, 0)
    status = Status.CRITICAL if critical or not_running else Status.UNKNOWN
    kind = _kind(critical) if critical else (ErrorKind.REFUSED.value if not_running else _kind(failed))
    return check.result(status, f"{head} (fewer than {need}); down: {'; '.join(down)}", observed=observed,
                        latency_ms=latency, error_kind=kind)


def _kind(failed: list[CheckResult]) -> str | None:
    """The error kind of the first failure that has one (the primaries' order: running first)."""
    return next((r.error_kind for r in failed if r.error_kind), None)


def needs_restart(result: CheckResult) -> bool:
    """A ``per_primary`` check that is WARNING because a running primary failed with an error a
    restart can fix (``observed["restartable"]``): the policy grows its streak as it would a
    CRITICAL one's (monitor.policy)."""
    return result.status == Status.WARNING and bool(result.observed.get("restartable"))


def down_primaries(result: CheckResult) -> str:
    """The instance ids of the primaries a restart could bring back, for the decision's reasons."""
    return ", ".join(str(p.get("instance_id")) for p in result.observed.get("restartable") or [])
