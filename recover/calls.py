"""Every AWS call recover/ makes goes through :class:`AwsCalls`.

Why one choke point:
- **dry run on the same code path**: the phase functions do not know whether they run for
  real. In dry run the mutating operations (:data:`MUTATING`) are recorded with their
  parameters instead of being sent, and reads about the cluster that a dry run only
  pretended to launch are answered from the recorded request. Every other read is real,
  so ``sentinel plan`` shows what would happen against the account as it is now.
- **counting**: each call is recorded with the phase it ran in (the report and the
  incident carry per-phase counts; the IAM test checks them against permissions.py).
- **errors translated once** (style note 4): any failure becomes :class:`AwsError` with
  its :class:`~monitor.core.faults.Fault` (transient, not visible yet, final) from the fault
  contract (:mod:`monitor.core.faults`, plus the codes the call site declares "not visible yet").
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from checks.base import ClientSource
from monitor.core.faults import translate
from recover.secret_keys import mask

MUTATING = frozenset({
    "run_job_flow", "terminate_job_flows", "set_termination_protection", "add_tags",
    "register_targets", "deregister_targets",
    "register_instances_with_load_balancer", "deregister_instances_from_load_balancer",
    "change_resource_record_sets",
    "send_command", "cancel_command", "add_job_flow_steps", "cancel_steps",
    "put_object",
})
IAM_PREFIX = {"emr": "elasticmapreduce", "elbv2": "elasticloadbalancing", "elb": "elasticloadbalancing",
              "route53": "route53", "ssm": "ssm", "s3": "s3"}

# What a dry run's pretend cluster is called (valid ids, so parameter validation passes).
DRY_CLUSTER_ID = "j-DRYRUN0NEWCLUSTER"
DRY_INSTANCE_ID = "i-0dryrun0new0master"
DRY_MASTER_DNS = "new-master.dry-run.invalid"
DRY_MASTER_IP = "192.0.2.10"  # TEST-NET-1: never routable
DRY_CHANGE_ID = "/change/DRYRUN"
DRY_COMMAND_ID = "00000000-dry0-run0-0000-000000000000"
DRY_STEP_ID = "s-DRYRUNRESTART"


@dataclass
class CallRecord:
    phase: str
    service: str
    op: str
    params: dict[str, Any]
    mutating: bool
    sent: bool  # False: dry run recorded it (mutating) or answered it (simulated read)
    simulated: bool = False
    error: str | None = None
    fault: str | None = None  # monitor.core.faults.Fault value when the call failed

    def to_dict(self, *, params: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {"phase": self.phase, "call": f"{self.service}.{self.op}",
                               "mutating": self.mutating, "sent": self.sent}
        if self.simulated:
            out["simulated"] = True
        if self.error:
            out["error"] = self.error
            out["fault"] = self.fault
        if params:
            out["params"] = self.params
        return out

    @property
    def iam_action(self) -> str:
        return f"{IAM_PREFIX.get(self.service, self.service)}:{_api_name(self.op)}"


def _api_name(op: str) -> str:
    return "".join(part.capitalize() for part in op.split("_"))


# fence(record) is called before a changing call is sent; it persists the intent under the
# lease (raising to stop when the lease is no longer ours) and returns settle(outcome), which
# records what happened: "done" (with the response), "error" (the call definitely failed) or
# "unknown" (no answer: it may or may not have taken effect).
Settle = Callable[[str, dict[str, Any] | None, str | None], None]
Fence = Callable[["CallRecord"], Settle]


@dataclass
class AwsCalls:
    clients: ClientSource
    dry_run: bool = False
    phase: str = "-"
    records: list[CallRecord] = field(default_factory=list)
    # Dry run: the request RunJobFlow would have sent, to answer reads about that cluster.
    launched_request: dict[str, Any] | None = None
    # Set by the runbook when it persists: every changing call is fenced (see Fence).
    fence: Fence | None = None

    def client(self, service: str) -> RecordingClient:
        return RecordingClient(self, service)

    def by_phase(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for r in self.records:
            if r.service == "sentinel":
                continue
            out[r.phase] = out.get(r.phase, 0) + 1
        return out

    def call(self, service: str, op: str, params: dict[str, Any], *,
             record_params: dict[str, Any] | None = None, not_visible: frozenset[str] = frozenset()) -> dict[str, Any]:
        """Send (or in a dry run record) one call. The record holds ``record_params`` when
        given (RunJobFlow: the sealed spec, while ``params`` carries the clear secrets), and
        is masked by the secret rule either way: records reach reports, plans and the state."""
        mutating = op in MUTATING
        rec = CallRecord(self.phase, service, op, mask(params if record_params is None else record_params),
                         mutating, sent=True)
        if self.dry_run and mutating:
            rec.sent = False
            self.records.append(rec)
            return self._pretend_write(op, params)
        if self.dry_run and _mentions_pretend(params):
            rec.sent, rec.simulated = False, True
            self.records.append(rec)
            return self._pretend_read(op, params)
        # Fenced first: when the lease is no longer ours the call is neither sent nor recorded as sent.
        settle = self.fence(rec) if mutating and self.fence is not None else None
        self.records.append(rec)
        try:
            response: dict[str, Any] = getattr(self._client(service, mutating=mutating), op)(**params)
        except Exception as exc:  # translated once, here
            err = translate(exc, service, op, not_visible=not_visible)
            rec.error, rec.fault = err.code, err.fault.value
            if settle is not None:  # no answer (timeout, 5xx): it may have taken effect
                settle("unknown" if err.unanswered else "error", None, err.code)
            raise err from exc
        if settle is not None:
            settle("done", response, None)
        return response

    def _client(self, service: str, *, mutating: bool) -> Any:
        """Changing calls go through a client that never retries (when the factory has one):
        whether to resend is the runbook's decision, after it looked."""
        changing = getattr(self.clients, "changing_client", None) if mutating else None
        return changing(service) if callable(changing) else self.clients.client(service)

    def service_model_shape(self, service: str, operation: str) -> Any:
        """The botocore input shape of an operation (to validate a request before sending)."""
        return self.clients.client(service).meta.service_model.operation_model(operation).input_shape

    # ------------------------------------------------------------ dry run answers
    def _pretend_write(self, op: str, params: dict[str, Any]) -> dict[str, Any]:
        if op == "run_job_flow":
            self.launched_request = copy.deepcopy(params)
            return {"JobFlowId": DRY_CLUSTER_ID}
        if op == "change_resource_record_sets":
            return {"ChangeInfo": {"Id": DRY_CHANGE_ID, "Status": "PENDING"}}
        if op == "send_command":
            return {"Command": {"CommandId": DRY_COMMAND_ID, "Status": "Pending"}}
        if op == "add_job_flow_steps":
            return {"StepIds": [DRY_STEP_ID]}
        return {}

    def _pretend_read(self, op: str, params: dict[str, Any]) -> dict[str, Any]:
        req = self.launched_request or {}
        if op == "describe_cluster":
            return {"Cluster": {"Id": DRY_CLUSTER_ID, "Name": req.get("Name"), "Status": {"State": "WAITING"},
                                "Tags": req.get("Tags", []),
                                "TerminationProtected": bool((req.get("Instances") or {}).get("TerminationProtected"))}}
        if op == "list_steps":
            return {"Steps": [{"Id": f"s-DRYRUN{i}", "Name": s.get("Name"), "Status": {"State": "COMPLETED"}}
                              for i, s in enumerate(req.get("Steps", []))]}
        if op == "list_instances":
            return {"Instances": [{"Ec2InstanceId": DRY_INSTANCE_ID, "PrivateDnsName": DRY_MASTER_DNS,
                                   "PrivateIpAddress": DRY_MASTER_IP, "Status": {"State": "RUNNING"}}]}
        if op == "describe_target_health":
            return {"TargetHealthDescriptions": [{"Target": t, "TargetHealth": {"State": "healthy"}}
                                                 for t in params.get("Targets", [])]}
        if op == "get_change":
            return {"ChangeInfo": {"Id": DRY_CHANGE_ID, "Status": "INSYNC"}}
        if op == "get_command_invocation":
            return {"CommandId": DRY_COMMAND_ID, "Status": "Success"}
        if op == "describe_step":
            return {"Step": {"Id": DRY_STEP_ID, "Status": {"State": "COMPLETED"}}}
        return {}


def _mentions_pretend(params: dict[str, Any]) -> bool:
    text = repr(params)
    return any(d in text for d in (DRY_CLUSTER_ID, DRY_INSTANCE_ID, DRY_CHANGE_ID, DRY_COMMAND_ID, DRY_STEP_ID))


class RecordingClient:
    """Looks like a boto3 client to the code using it (``emr.describe_cluster(...)``, and
    ``get_paginator`` for :func:`monitor.core.clusters.find_cluster`), records every call."""

    def __init__(self, calls: AwsCalls, service: str) -> None:
        self._calls = calls
        self._service = service

    @property
    def calls(self) -> AwsCalls:
        return self._calls

    def __getattr__(self, op: str) -> Any:
        if op.startswith("_"):
            raise AttributeError(op)

        def invoke(**params: Any) -> dict[str, Any]:
            return self._calls.call(self._service, op, params)

        return invoke

    def call(self, op: str, params: dict[str, Any], *, not_visible: frozenset[str] = frozenset()) -> dict[str, Any]:
        """One call with the codes that mean "not visible yet" at this site."""
        return self._calls.call(self._service, op, params, not_visible=not_visible)

    def get_paginator(self, op: str) -> _Paginator:
        return _Paginator(self, op)


class _Paginator:
    def __init__(self, client: RecordingClient, op: str) -> None:
        self._client, self._op = client, op

    def paginate(self, **params: Any) -> Iterator[dict[str, Any]]:
        return pages(self._client, self._op, **params)


def pages(client: RecordingClient, op: str, **params: Any) -> Iterator[dict[str, Any]]:
    """EMR-style ``Marker`` pagination, one recorded call per page."""
    marker: str | None = None
    while True:
        page: dict[str, Any] = getattr(client, op)(**params, **({"Marker": marker} if marker else {}))
        yield page
        marker = page.get("Marker")
        if not marker:
            return


def collect(client: RecordingClient, op: str, key: str, **params: Any) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for page in pages(client, op, **params):
        out.extend(page.get(key, []))
    return out
