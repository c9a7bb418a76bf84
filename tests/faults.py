"""The fault matrix's machinery: one whole incident driven by the real tick on moto, every AWS
call it makes seen through botocore hooks, and one fault injected at one call site.

A call SITE is (incident phase, service, operation), the phase being "tick" when no incident
is active. The phase is read from what the run itself persisted: the ``incident`` of every
state item the DynamoDB store read or wrote successfully (the store's own calls are hooked
too), so a site means the same thing in the fault-free run and in a faulted one.

How a fault reaches the product:
- an error answer (throttle, 5xx, "not visible yet" errors) is returned from botocore's
  ``before-call`` event, which is outside botocore's retry loop (``botocore.client`` emits it
  before ``_make_request``; retries live in the endpoint): the reading clients' one retry
  (``total_max_attempts`` 2) does not absorb it. So one injected error is one failed *logical*
  call, exactly as if both attempts had been throttled.
- a read timeout after the call took effect: moto executes the call, then the ``after-call``
  hook raises ``ReadTimeoutError`` (after-call is also outside the retry loop: botocore's own
  resend of a timed-out call is a different fault, not modelled here).
- "not visible yet" list answers: the ``after-call`` hook edits the parsed answer.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

from checks.base import Deadline, Status
from monitor.config import Config
from monitor.core.state.dynamodb import DynamoStateStore, create_table
from monitor.cycle import run_tick
from monitor.runtime import Services, new_invocation
from recover import phases, runbook
from recover.incident import Incident
from tests.fakes import FakeClock, Script, services
from tests.recover_fixtures import (
    MUTATING_API,
    RESTART_THEN_REPLACE,
    World,
    both_clients,
    emr_backend,
    moto_world,
    real_now_clock,
    recovery_config,
)

LADDER = RESTART_THEN_REPLACE
# DIAGNOSE runs first (recovery.diagnostics, its output written to S3): its calls are sites too.
DIAGNOSTICS: dict[str, Any] = {"timeout_s": 60, "s3_uri": "s3://sentinel-diagnostics/matrix"}
# The relaunch waits in APPROVAL (its plan's dry-run reads are sites too); nobody answers, and
# on_timeout: proceed lets it go on after a tick: a fault while waiting must change nothing.
APPROVAL: dict[str, Any] = {"rungs": ["replace"], "timeout_min": 2, "on_timeout": "proceed"}
SERVICES = ("emr", "elbv2", "elb", "route53", "ssm", "sns", "dynamodb", "kms", "sts", "secretsmanager", "cloudwatch", "sqs",
            "s3")
TERMINAL = ("DONE", "ESCALATED")
TICK_EVERY_MIN = 2
MAX_TICKS = 60  # the fault-free incident takes ~8; the rest is room for waits and retries on later ticks
SETTLE_TICKS = 2  # ticks after the incident ended: a page retried on a later tick still counts

# Calls that change the world (a timeout after them leaves "did it happen?" open).
CHANGING = MUTATING_API | {"TransactWriteItems", "PutItem", "UpdateItem", "DeleteItem", "Publish"}

# (error code, HTTP status) per service; from the services' models and botocore's retry lists.
THROTTLE = {"emr": ("ThrottlingException", 400), "ssm": ("ThrottlingException", 400), "kms": ("ThrottlingException", 400),
            "elbv2": ("Throttling", 400), "elb": ("Throttling", 400), "route53": ("Throttling", 400),
            "sns": ("Throttling", 400), "sts": ("Throttling", 400), "s3": ("SlowDown", 503),
            "dynamodb": ("ProvisionedThroughputExceededException", 400)}
SERVER_ERROR = {"emr": ("InternalServerError", 500), "ssm": ("InternalServerError", 500),
                "dynamodb": ("InternalServerError", 500), "kms": ("KMSInternalException", 500),
                "elbv2": ("ServiceUnavailable", 503), "elb": ("ServiceUnavailable", 503),
                "route53": ("ServiceUnavailable", 503), "sns": ("InternalError", 500), "sts": ("InternalFailure", 500),
                "s3": ("InternalError", 500)}

# Fault kinds.
THROTTLED = "throttle"
SERVER = "5xx"
TIMEOUT = "timeout after effect"
NOT_VISIBLE = "not visible yet"
TIMEOUT_THEN_LAG = "timeout after effect, then the list lags"

# How many answers a "not visible yet" fault changes (longer than one poll), per operation.
NOT_VISIBLE_CALLS = {"GetCommandInvocation": 3, "ListClusters": 2, "DescribeCluster": 2, "ListCommands": 2}
# After a timed-out send, the list that would show it (the product's "did it happen?" look).
LAGGING_LIST = {"SendCommand": ("ssm", "ListCommands"), "RunJobFlow": ("emr", "ListClusters")}


@dataclass(frozen=True, order=True)
class Site:
    phase: str
    service: str
    op: str

    def __str__(self) -> str:
        return f"{self.phase} {self.service}.{self.op}"


@dataclass(frozen=True)
class Fault:
    site: Site
    kind: str

    def __str__(self) -> str:
        return f"{self.site}: {self.kind}"


@dataclass
class Call:
    site: Site
    params: dict[str, Any]
    about_new_cluster: bool  # ListClusters after a launch, DescribeCluster of a launched id
    faulted: bool = False
    took_effect: bool = False


class Tap:
    """Every AWS call made through ``clients`` while armed (botocore hooks on the reading and
    the changing client of every service the run uses), its site, and the one fault to inject."""

    def __init__(self, clients: Any, fault: Fault | None = None) -> None:
        self.fault = fault
        self.calls: list[Call] = []
        self.armed = False
        self.incident: dict[str, Any] | None = None  # as last persisted (or read) by the run
        self.phases_seen: list[str] = []
        self.launched: list[str] = []  # cluster ids RunJobFlow returned
        self.injected = 0  # answers the fault changed
        self._started = False  # the fault's first occurrence was reached
        self._left = 0  # answers it still changes
        self._lagging: tuple[str, str] | None = None
        self._lag_left = 0
        self._active_this_tick = False
        self._clients = [c for s in SERVICES for c in both_clients(clients, s)]
        for client in self._clients:
            client.meta.events.register("before-parameter-build", self._params)
            client.meta.events.register("before-call", self._before)
            client.meta.events.register("after-call", self._after)

    def close(self) -> None:
        for client in self._clients:
            client.meta.events.unregister("before-parameter-build", self._params)
            client.meta.events.unregister("before-call", self._before)
            client.meta.events.unregister("after-call", self._after)

    @contextmanager
    def tick(self) -> Iterator[None]:
        self.armed, self._active_this_tick = True, False
        try:
            yield
        finally:
            self.armed = False

    # ------------------------------------------------------------ sites
    def phase(self) -> str:
        """The incident's phase while one is active, or ended during this tick; else "tick"."""
        inc = self.incident or {}
        phase = inc.get("phase")
        if phase and (phase not in TERMINAL or self._active_this_tick):
            return str(phase)
        return "tick"

    def _learn(self, state_json: str) -> None:
        inc = json.loads(state_json).get("incident")
        self.incident = inc if isinstance(inc, dict) else None
        phase = (self.incident or {}).get("phase")
        if phase and phase not in TERMINAL:
            self._active_this_tick = True
        if phase and (not self.phases_seen or self.phases_seen[-1] != phase):
            self.phases_seen.append(str(phase))

    def count(self, op: str, phase: str | None = None) -> int:
        """Calls of ``op`` (in incident phase ``phase``) that reached AWS and took effect."""
        return sum(1 for c in self.calls if c.site.op == op and c.took_effect and phase in (None, c.site.phase))

    # ------------------------------------------------------------ hooks
    def _params(self, params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        context["fault_matrix_params"] = dict(params)

    def _before(self, model: Any, context: dict[str, Any], **_: Any) -> Any:
        if not self.armed:
            return None
        service, op = model.service_model.service_name, model.name
        params = context.get("fault_matrix_params") or {}
        about_new = (op == "ListClusters" and bool(self.launched)) or \
            (op == "DescribeCluster" and params.get("ClusterId") in self.launched)
        call = Call(Site(self.phase(), service, op), params, about_new)
        self.calls.append(call)
        context["fault_matrix_call"] = call
        error = self._error_for(call)
        if error is None:
            return None
        call.faulted = True
        self.injected += 1
        from botocore.awsrequest import AWSResponse

        code, status, message = error
        return (AWSResponse("https://injected.invalid", status, {}, None),
                {"Error": {"Code": code, "Message": message}, "ResponseMetadata": {"HTTPStatusCode": status}})

    def _after(self, http_response: Any, parsed: dict[str, Any], model: Any, context: dict[str, Any], **_: Any) -> None:
        call: Call | None = context.get("fault_matrix_call")
        if call is None or call.faulted:
            return
        call.took_effect = http_response.status_code < 300
        if not call.took_effect:
            return
        op = call.site.op
        if op == "GetItem" and (parsed.get("Item") or {}).get("sk", {}).get("S") == "state":
            self._learn(parsed["Item"]["data"]["S"])
        elif op == "TransactWriteItems":
            for item in call.params.get("TransactItems", []):
                put = (item.get("Put") or {}).get("Item") or {}
                if put.get("sk", {}).get("S") == "state":
                    self._learn(put["data"]["S"])
        elif op == "RunJobFlow":
            self.launched.append(str(parsed.get("JobFlowId")))
        self._edit_list(call, parsed)
        if self._times_out(call):
            call.faulted = True
            self.injected += 1
            from botocore.exceptions import ReadTimeoutError

            raise ReadTimeoutError(endpoint_url=f"https://{call.site.service}.us-east-1.amazonaws.com/")

    # ------------------------------------------------------------ the fault
    def _first(self, call: Call) -> bool:
        """Is this the fault's first occurrence (its site, and for "not visible yet" the first
        call there that can see the new cluster or command)?"""
        fault = self.fault
        if fault is None or self._started or call.site != fault.site:
            return False
        if fault.kind == NOT_VISIBLE and call.site.op in ("ListClusters", "DescribeCluster") and not call.about_new_cluster:
            return False
        self._started = True
        return True

    def _error_for(self, call: Call) -> tuple[str, int, str] | None:
        fault = self.fault
        if fault is None or fault.kind in (TIMEOUT, TIMEOUT_THEN_LAG):
            return None
        service, op = call.site.service, call.site.op
        if fault.kind == NOT_VISIBLE:
            if op not in ("GetCommandInvocation", "DescribeCluster") or (service, op) != (fault.site.service, fault.site.op):
                return None
            if self._first(call):
                self._left = NOT_VISIBLE_CALLS[op]
            if self._left <= 0 or (op == "DescribeCluster" and not call.about_new_cluster):
                return None
            self._left -= 1
            if op == "GetCommandInvocation":
                return "InvocationDoesNotExist", 400, "injected: the invocation is not visible yet"
            return "InvalidRequestException", 400, f"Cluster id '{call.params.get('ClusterId')}' is not valid."
        if not self._first(call):
            return None
        code, status = THROTTLE.get(service, ("ThrottlingException", 400)) if fault.kind == THROTTLED else \
            SERVER_ERROR.get(service, ("InternalFailure", 500))
        return code, status, f"injected {fault.kind}"

    def _edit_list(self, call: Call, parsed: dict[str, Any]) -> None:
        fault = self.fault
        service, op = call.site.service, call.site.op
        lagging = self._lagging == (service, op) and self._lag_left > 0
        if fault is not None and fault.kind == NOT_VISIBLE and op in ("ListClusters", "ListCommands") and \
                (service, op) == (fault.site.service, fault.site.op):
            if self._first(call):
                self._lagging, self._lag_left = (service, op), NOT_VISIBLE_CALLS[op]
            lagging = self._lagging == (service, op) and self._lag_left > 0
        if not lagging:
            return
        if op == "ListClusters" and self.launched:
            self._lag_left -= 1
            self.injected += 1
            parsed["Clusters"] = [c for c in parsed.get("Clusters", []) if c.get("Id") not in self.launched]
        elif op == "ListCommands":
            self._lag_left -= 1
            self.injected += 1
            parsed["Commands"] = []

    def _times_out(self, call: Call) -> bool:
        fault = self.fault
        if fault is None or fault.kind not in (TIMEOUT, TIMEOUT_THEN_LAG) or not self._first(call):
            return False
        if fault.kind == TIMEOUT_THEN_LAG:
            self._lagging, self._lag_left = LAGGING_LIST[call.site.op], NOT_VISIBLE_CALLS[LAGGING_LIST[call.site.op][1]]
        return True


# ---------------------------------------------------------------------------- one incident

@dataclass
class Outcome:
    """What one whole incident did, as the invariants read it."""

    final_phase: str | None
    final_rung: str | None
    ladder: list[str]  # "restart_service failed in VERIFY", "replace recovered"
    rung_notes: list[str]
    phases_seen: list[str]
    pages: list[str]  # kinds delivered to the page topic, in order
    run_job_flows: int  # that took effect
    send_commands: int  # the restart's (RESTART)
    diagnose_commands: int  # DIAGNOSE's
    stalls: list[str]  # phases the incident sat in past their stall limit
    calls: list[Call]
    injected: int
    ticks: int
    errors: list[str] = field(default_factory=list)  # tick reports' errors
    failed: str | None = None  # the incident's failure (FAILED/ESCALATED), if any
    notes: list[str] = field(default_factory=list)  # the incident's notes ("sent again", ...)

    @property
    def escalated(self) -> bool:
        return "ESCALATED" in self.phases_seen or "recovery-escalated" in self.pages

    def sites(self) -> list[Site]:
        """Distinct sites, in order of first occurrence."""
        return list(dict.fromkeys(c.site for c in self.calls))


def tick(svc: Services) -> Any:
    return run_tick(new_invocation(svc), deadline=Deadline.after(60))


def run_incident(script: Script, monkeypatch: Any, fault: Fault | None = None) -> Outcome:
    """A fresh moto world, one target failing; tick every 2 simulated minutes until the incident
    ended and a few ticks more (or MAX_TICKS): the whole story, with ``fault`` injected once."""
    with moto_world() as world:
        ddb = world.clients.client("dynamodb")
        create_table(ddb, "sentinel-state")
        clock = real_now_clock()
        monkeypatch.setattr(phases, "SLEEP", lambda s: clock.advance(seconds=s))  # waiting is time passing
        config = recovery_config(world, ladder=LADDER, diagnostics=DIAGNOSTICS, approval=APPROVAL)
        world.clients.client("s3").create_bucket(Bucket="sentinel-diagnostics")
        svc = services(config, store=DynamoStateStore(ddb, "sentinel-state"), clients=world.clients, clock=clock)
        script.calls.clear()
        tap = Tap(world.clients, fault)
        stalls: list[str] = []
        errors: list[str] = []
        ended_at: int | None = None
        n = 0
        try:
            for n in range(1, MAX_TICKS + 1):
                script.set("hive", *_hive_answer(tap.incident))
                _complete_setup(world)
                stalls += _stalled(config, tap.incident, clock)
                with tap.tick():
                    report = tick(svc)
                errors += [e for t in report.targets for e in (t.error,) if e] + list(report.errors)
                if ended_at is None and (tap.incident or {}).get("phase") in TERMINAL:
                    ended_at = n
                if ended_at is not None and n >= ended_at + SETTLE_TICKS:
                    break
                clock.advance(minutes=TICK_EVERY_MIN)
            pages = [p["MessageAttributes"]["kind"]["Value"] for p in world.pages()]
        finally:
            tap.close()
        inc = tap.incident or {}
        rungs = list(inc.get("rungs") or [])
        climbs = [str(t.get("note", "")).split(" did not help", 1)[0] for t in inc.get("timeline") or []
                  if " did not help" in str(t.get("note", ""))]
        ladder = []
        for i, r in enumerate(rungs):
            where = f" in {climbs[i]}" if r.get("outcome") == "failed" and i < len(climbs) else ""
            ladder.append(f"{r.get('rung')} {r.get('outcome') or 'unfinished'}{where}")
        return Outcome(
            final_phase=inc.get("phase"), final_rung=rungs[-1].get("rung") if rungs else None, ladder=ladder,
            rung_notes=[str(r.get("note") or "") for r in rungs], phases_seen=tap.phases_seen, pages=pages,
            run_job_flows=tap.count("RunJobFlow"), send_commands=tap.count("SendCommand", "RESTART"),
            diagnose_commands=tap.count("SendCommand", "DIAGNOSE"),
            stalls=list(dict.fromkeys(stalls)), calls=tap.calls, injected=tap.injected, ticks=n, errors=errors,
            failed=(inc.get("failed") or {}).get("error") or inc.get("escalation"),
            notes=[str(x) for x in inc.get("notes") or []],
        )


def _hive_answer(incident: dict[str, Any] | None) -> tuple[Status, str | None]:
    """CRITICAL (refused) until the incident is on a later rung than the restart and has
    launched its new cluster: the restart does not help, the relaunch does."""
    inc = incident or {}
    if int(inc.get("rung") or 0) >= 1 and inc.get("new"):
        return Status.OK, None
    return Status.CRITICAL, "refused"


def _complete_setup(world: World) -> None:
    """moto's steps never run: the new clusters' setup steps finish between two ticks."""
    for cid, cluster in emr_backend().clusters.items():
        if cid == world.cluster_id:
            continue
        for step in cluster.steps:
            if not step.name.startswith("sentinel restart"):
                step.state = "COMPLETED"


def _stalled(config: Config, incident: dict[str, Any] | None, clock: FakeClock) -> list[str]:
    """The phase the active incident has sat in past its stall limit (the product's own
    ``stall_limit``) at this tick's time, if any."""
    inc = incident or {}
    if not inc.get("phase") or inc.get("phase") in TERMINAL:
        return []
    parsed = Incident.from_dict(dict(inc))
    from monitor.core.clock import parse_iso

    waited = clock.now() - parse_iso(parsed.phase_started_at)
    limit = runbook.stall_limit(SimpleNamespace(target=config.targets[0]), parsed)  # type: ignore[arg-type]
    return [f"{parsed.phase} for {waited.total_seconds() / 60:.0f} min (limit {limit.total_seconds() / 60:.0f})"] \
        if waited > limit else []


# ---------------------------------------------------------------------------- the matrix

def matrix(base: Outcome) -> list[Fault]:
    """Every fault that applies to every site of the fault-free run: throttle and 5xx
    everywhere; a timeout after effect on changing calls (and, on the two sends whose fate
    the product looks up in a list, a timeout followed by that list lagging); "not visible
    yet" where AWS has such an answer and the fault-free run's call could see it."""
    cells: list[Fault] = []
    for site in base.sites():
        calls = [c for c in base.calls if c.site == site]
        cells += [Fault(site, THROTTLED), Fault(site, SERVER)]
        if site.op in CHANGING:
            cells.append(Fault(site, TIMEOUT))
        if site.op in LAGGING_LIST:
            cells.append(Fault(site, TIMEOUT_THEN_LAG))
        if site.op in ("GetCommandInvocation", "ListCommands") or \
                (site.op in ("ListClusters", "DescribeCluster") and any(c.about_new_cluster for c in calls)):
            cells.append(Fault(site, NOT_VISIBLE))
    return cells


def broken(out: Outcome, base: Outcome) -> list[str]:
    """The invariants a faulted run must keep; each broken one with what the product did."""
    why: list[str] = []
    if out.injected == 0:
        why.append("fault never injected: the site was not reached")
    resent = [n for n in out.notes if "sent again" in n]
    if out.run_job_flows > 1:
        why.append(f"{out.run_job_flows} RunJobFlow calls took effect (at most 1)" + (f": {resent}" if resent else ""))
    if out.send_commands > 1:
        why.append(f"{out.send_commands} SendCommand calls took effect (at most 1)" + (f": {resent}" if resent else ""))
    if out.diagnose_commands > 1:
        why.append(f"{out.diagnose_commands} diagnostics SendCommand calls took effect (at most 1)")
    if out.escalated:
        why.append(f"escalated ({' > '.join(out.phases_seen)}: {(out.failed or '')[:200]})")
    if out.ladder != base.ladder:
        notes = "; ".join(n[:160] for n in out.rung_notes if n)
        why.append(f"ladder {out.ladder}, not {base.ladder}" + (f" (rung notes: {notes})" if notes else ""))
    missing = sorted(set(base.pages) - set(out.pages))
    if missing:
        why.append(f"page(s) {missing} never delivered (delivered: {out.pages})")
    if out.stalls and "recovery-stalled" not in out.pages:
        why.append(f"stalled without a page: {out.stalls}")
    if (out.final_phase, out.final_rung) != (base.final_phase, base.final_rung):
        why.append(f"ended {out.final_phase} on {out.final_rung} after {out.ticks} ticks, not {base.final_phase} on "
                   f"{base.final_rung}" + (f" (tick errors: {out.errors[-2:]})" if out.errors else ""))
    return why


def duplicates(out: Outcome, base: Outcome) -> list[str]:
    """Page kinds delivered more than once, and more often than in the fault-free run (an
    observation, not a failure)."""
    return sorted({k for k in out.pages if out.pages.count(k) > max(1, base.pages.count(k))})
