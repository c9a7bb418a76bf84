"""One invocation's work on an incident: the latest persisted state, the AWS call layer,
and the outcomes a phase function can return.

A phase never writes state itself: it changes the :class:`~recover.incident.Incident` and
returns :class:`Next`, :class:`Wait`, :class:`Fail` or :class:`Escalate`; the phase
machine (runbook.py) persists the result. A phase that changes several things may call
:meth:`Run.save` to checkpoint in between (REPOINT records that it is about to move
traffic before it does, so a rollback after a crash knows to move it back).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from checks.base import EndpointOverride, Status
from monitor.core.clock import iso
from monitor.core.errors import ConflictError, StateError
from monitor.core.state.base import Event, TargetState
from recover.calls import AwsCalls, CallRecord, Settle
from recover.context import RecoveryContext
from recover.incident import Incident

log = logging.getLogger("sentinel.recover")


@dataclass
class Next:
    note: str


class Resolved(Next):
    """The failure is gone, re-checked right before a destroying call: the incident ends DONE
    at once (``incident.outcome`` says why) and nothing more is changed."""


class Again(Next):
    """Back to the rung's first phase (the restart rung of a three-primary cluster: the next
    failing primary is restarted after the previous one verified)."""


@dataclass
class Wait:
    note: str


@dataclass
class Fail:
    error: str


@dataclass
class Escalate:
    """Stop and hand over to a person, without rolling back (what was done is wanted)."""

    error: str


Outcome = Next | Wait | Fail | Escalate


class Stop(Exception):
    """Lost the race (ConflictError) or the store failed: stop at once, change nothing more."""


class StoreFailed(Stop):
    """The state store failed (not a lost race): an outage of sentinel's own dependency."""


class Run:
    def __init__(self, rctx: RecoveryContext, state: TargetState, inc: Incident, *, persist: bool,
                 dry_run: bool) -> None:
        self.rctx = rctx
        self.state = state
        self.inc = inc
        self.persist = persist
        self.aws = AwsCalls(rctx.clients, dry_run=dry_run, fence=self._fence if persist and not dry_run else None)
        self.transitions: list[dict[str, Any]] = []
        self.stopped: str | None = None
        self.store_failed: str | None = None  # set when a write failed because the store did
        self._counted = 0

    @property
    def dry_run(self) -> bool:
        return self.aws.dry_run

    @property
    def target(self) -> str:
        return self.rctx.target.name

    def now(self) -> datetime:
        return self.rctx.clock.now()

    def save(self, message: str, *, kind: str = "recovery", **state_changes: Any) -> None:
        """Persist the incident (and ``state_changes``) with an audit event; fenced and
        version-conditional. Raises :class:`Stop` when another invocation moved on."""
        records = self.aws.records
        fresh = [r for r in records[self._counted:] if r.service != "sentinel"]
        self._counted = len(records)
        self.inc.add_calls(_count(fresh))
        new = replace(self.state, incident=self.inc.to_dict(), **state_changes)
        if not self.persist:
            self.state = new
            return
        now = self.now()
        event = Event(at=iso(now), kind=kind, message=message,
                      data={"incident": self.inc.id, "phase": self.inc.phase},
                      actor=self.rctx.requested_by or "sentinel")
        try:
            self.state = self.rctx.store.put(self.target, new, lease=self.rctx.lease, events=[event], now=now)
        except ConflictError as exc:
            raise Stop(f"state changed under us ({exc}): another invocation owns this incident now") from exc
        except StateError as exc:
            self.store_failed = str(exc)
            raise StoreFailed(f"state store failed ({exc}): stopped (fail closed)") from exc
        log.info("recovery %s", message, extra={"target": self.target, "incident": self.inc.id, "phase": self.inc.phase})
        self.rctx.log("recovery", target=self.target, incident=self.inc.id, phase=self.inc.phase, message=message)

    def _fence(self, rec: CallRecord) -> Settle:
        """Persist the intent of a changing call under the lease before it is sent (the state
        store decides whether the lease is still ours, by its fencing token, not our clock);
        :class:`Stop` when it is not, so the call is never sent. Returns how to settle it."""
        lease = self.rctx.lease
        intent: dict[str, Any] = {
            "key": f"{self.inc.id}/{len(self.inc.intents) + 1}", "call": f"{rec.service}.{rec.op}",
            "phase": rec.phase, "subject": intent_subject(rec.op, rec.params),
            "lease_token": lease.token if lease else None, "at": iso(self.now()), "status": "pending",
        }
        self.inc.intents = [*self.inc.intents[-(MAX_INTENTS - 1):], intent]
        self.save(f"intent: {intent['call']} {intent['subject']}", kind="intent")

        def settle(status: str, response: dict[str, Any] | None, error: str | None) -> None:
            intent.update(status=status, settled_at=iso(self.now()))
            if error:
                intent["error"] = error
            if response is not None:
                intent["outcome"] = outcome_of(rec.op, response)
            self.save(f"{intent['call']} {status}" + (f" ({error})" if error else ""), kind="intent")

        return settle

    def verify(self, names: list[str], endpoint: EndpointOverride | None) -> tuple[bool, str]:
        """Run the verify checks (against ``endpoint``, the new master, or the normal path
        when None). In dry run the checks are not run (the new master does not exist):
        recorded instead."""
        if self.dry_run:
            self.aws.records.append(CallRecord(self.inc.phase, "sentinel", "run_checks",
                                               {"checks": names, "host_override": endpoint.host if endpoint else None,
                                                "port": endpoint.port if endpoint else None},
                                               mutating=False, sent=False, simulated=True))
            return True, "dry run: checks not run"
        results = self.rctx.run_checks(names, endpoint)
        ok = bool(results) and all(r.status in (Status.OK, Status.WARNING) for r in results)
        summary = "; ".join(f"{r.name} {r.status.name}: {r.summary}" for r in results) or "no check ran"
        return ok, summary


MAX_INTENTS = 60


def intent_subject(op: str, params: dict[str, Any]) -> str:
    """What a changing call is aimed at, without its payload (a RunJobFlow request carries
    the whole cluster spec, which may hold secrets)."""
    if op == "run_job_flow":
        tags = {t.get("Key"): t.get("Value") for t in params.get("Tags", [])}
        return f"{params.get('Name')} tagged {tags.get('sentinel:incident')}"
    if "JobFlowIds" in params:
        return ",".join(params["JobFlowIds"])
    if op in ("send_command", "cancel_command"):
        return ",".join(params.get("InstanceIds", [])) + (f" {params['CommandId']}" if "CommandId" in params else "")
    if op in ("add_job_flow_steps", "cancel_steps"):
        return str(params.get("JobFlowId") or params.get("ClusterId"))
    if op == "add_tags":
        return str(params.get("ResourceId"))
    if "TargetGroupArn" in params:
        ids = ",".join(str(t.get("Id")) for t in params.get("Targets", []))
        return f"{ids} @ {str(params['TargetGroupArn']).rsplit(':', 1)[-1]}"
    if "LoadBalancerName" in params:
        ids = ",".join(str(i.get("InstanceId")) for i in params.get("Instances", []))
        return f"{ids} @ {params['LoadBalancerName']}"
    if op == "change_resource_record_sets":
        changes = (params.get("ChangeBatch") or {}).get("Changes", [])
        return ", ".join(f"{c.get('Action')} {(c.get('ResourceRecordSet') or {}).get('Name')}" for c in changes)
    return ""


def outcome_of(op: str, response: dict[str, Any]) -> dict[str, Any]:
    if op == "run_job_flow":
        return {"JobFlowId": response.get("JobFlowId")}
    if op == "send_command":
        return {"id": (response.get("Command") or {}).get("CommandId")}
    if op == "add_job_flow_steps":
        return {"id": (response.get("StepIds") or [None])[0]}
    if op == "change_resource_record_sets":
        return {"ChangeId": (response.get("ChangeInfo") or {}).get("Id")}
    return {}


def _count(records: list[CallRecord]) -> dict[str, int]:
    out: dict[str, int] = {}
    for r in records:
        out[r.phase] = out.get(r.phase, 0) + 1
    return out
