"""The incident: the runbook's persisted record (``TargetState.incident``), and its phases.

The runbook is data (style note 6): a phase enum, an order per strategy, and one JSON
document that says how far the recovery got and what it already did. Every phase function
reads the record and writes its result back into it; the state store persists it with a
version-conditional, lease-fenced write. Because everything a later phase or a rollback
needs is in the record (the RunJobFlow request, the old master, the routing as it was
before), any invocation can pick the incident up where the last one stopped.
"""

from __future__ import annotations

import enum
import uuid
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime
from typing import Any

from monitor.core.clock import iso

INCIDENT_TAG = "sentinel:incident"
TARGET_TAG = "sentinel:target"
REPLACES_TAG = "sentinel:replaces"


class Phase(str, enum.Enum):
    SNAPSHOT = "SNAPSHOT"
    LAUNCH = "LAUNCH"
    WAIT_READY = "WAIT_READY"
    VERIFY_NEW = "VERIFY_NEW"
    REPOINT = "REPOINT"
    VERIFY_PATH = "VERIFY_PATH"
    RETIRE_OLD = "RETIRE_OLD"
    DONE = "DONE"
    FAILED = "FAILED"  # rolling back; still active until ESCALATED
    ESCALATED = "ESCALATED"
    # The restart_service rung (numbers 11, 12: the ones above keep theirs).
    RESTART = "RESTART"
    VERIFY = "VERIFY"
    # Before the first rung acts (recovery.diagnostics): number 13, last, so the numbers above stay.
    DIAGNOSE = "DIAGNOSE"
    # Waiting for a person's yes before a rung acts (recover.approval; number 14).
    APPROVAL = "APPROVAL"

    @property
    def number(self) -> int:
        """A fixed number per phase for the ``RecoveryPhase`` metric (stable across strategies)."""
        return PHASE_INDEX[self]


PHASE_INDEX = {p: i for i, p in enumerate(Phase, start=1)}

ORDER: dict[str, tuple[Phase, ...]] = {
    "replace": (Phase.SNAPSHOT, Phase.LAUNCH, Phase.WAIT_READY, Phase.VERIFY_NEW, Phase.REPOINT,
                Phase.VERIFY_PATH, Phase.RETIRE_OLD, Phase.DONE),
    "terminate_first": (Phase.SNAPSHOT, Phase.RETIRE_OLD, Phase.LAUNCH, Phase.WAIT_READY, Phase.VERIFY_NEW,
                        Phase.REPOINT, Phase.VERIFY_PATH, Phase.DONE),
    "restart_service": (Phase.RESTART, Phase.VERIFY, Phase.DONE),
}
RESTART_PHASES = frozenset({Phase.RESTART, Phase.VERIFY})
TERMINAL = frozenset({Phase.DONE, Phase.ESCALATED})
# Phases an incident may pass through before its first rung's first phase (in this order); none
# belongs to a rung, so none is in ORDER: each hands over to the next, the last to the rung.
PRELUDE: tuple[Phase, ...] = (Phase.DIAGNOSE,)


def next_phase(strategy: str, phase: Phase) -> Phase:
    if phase is Phase.FAILED:
        return Phase.ESCALATED
    if phase in PRELUDE:
        return ORDER[strategy][0]
    order = ORDER[strategy]
    if phase is Phase.APPROVAL:  # approved (or on_timeout: proceed): the rung starts
        return order[0]
    return order[order.index(phase) + 1]


def rung_name(strategy: str) -> str:
    return "restart_service" if strategy == "restart_service" else "replace"


def new_incident_id(target: str, now: datetime) -> str:
    """Unique and readable; it is also the EMR tag value that makes LAUNCH idempotent."""
    return f"{target}-{now.strftime('%Y%m%dT%H%M%SZ')}-{uuid.uuid4().hex[:6]}"


@dataclass
class Incident:
    id: str
    target: str
    strategy: str
    phase: str
    started_at: str
    phase_started_at: str
    reason: str = ""
    requested_by: str | None = None
    force: bool = False
    # Started for a flapping check (recovery.when.on_flapping: restart): restart rungs only; a
    # restart that does not help escalates instead of climbing to a relaunch.
    restart_only: bool = False
    spec_source: str | None = None
    # The cluster being replaced: id, name, state, master {instance_id, private_dns, private_ip},
    # termination_protected. None when no cluster was running.
    old: dict[str, Any] | None = None
    spec: dict[str, Any] | None = None  # the RunJobFlow request LAUNCH sends
    not_copied: list[dict[str, Any]] = field(default_factory=list)
    routing_before: dict[str, Any] | None = None  # what REPOINT changes, as it was (for rollback)
    new: dict[str, Any] | None = None  # cluster_id, launched_at, master..., ready_at
    repoint: dict[str, Any] | None = None  # started_at (checkpoint before any change), done_at, change_id
    verified_new_at: str | None = None
    recovered_at: str | None = None  # VERIFY_PATH passed: clients are served again
    retired: dict[str, Any] | None = None
    failed: dict[str, Any] | None = None  # {phase, error, at}
    rollback: list[str] = field(default_factory=list)  # rollback steps done
    rollback_errors: list[str] = field(default_factory=list)
    escalation: str | None = None
    # How a DONE incident ended when the runbook did not recover anything: "aborted: recovered
    # on its own" (the failure was gone when re-confirmed before a destroying call). None: recovered.
    outcome: str | None = None
    finished_at: str | None = None
    ttr_s: float | None = None
    last_wait: str | None = None
    transient_errors: int = 0
    calls: dict[str, int] = field(default_factory=dict)  # AWS calls made, by phase (cumulative)
    # Fenced changing calls: {key, call, phase, subject, lease_token, at, status, outcome}; the
    # intent is persisted under the lease before the call is sent (status "pending"), then
    # settled ("done" / "error" / "unknown"). A pending or unknown one may have taken effect.
    intents: list[dict[str, Any]] = field(default_factory=list)
    # The remediation ladder: index of the rung working now, and each rung tried
    # ({rung, via, started_at, finished_at, outcome, note}).
    rung: int = 0
    rungs: list[dict[str, Any]] = field(default_factory=list)
    # restart_service: cluster_id, instance_id, via, sent_at, command_id | step_id, done_at, status
    restart: dict[str, Any] | None = None
    # DIAGNOSE (recover/diagnostics.py): instance_id, command_id, sent_at, status, output (masked,
    # first 4 KB), s3 (where the whole masked output went), note (why it ended as it did).
    diagnostics: dict[str, Any] | None = None
    # The claim tag this deployment holds on the cluster it changes (recover.claim), once confirmed.
    claim: dict[str, Any] | None = None
    # recovery.approval: {rung, index, asked_at, timeout_min, on_timeout, plan, answer: {decision,
    # by, reason, at} | None} for the rung waiting (or last waiting) for a person's yes.
    approval: dict[str, Any] | None = None
    answers: list[dict[str, Any]] = field(default_factory=list)  # every answer given in this incident (bounded)
    stall_paged: str | None = None  # the phase (and its start) a stall page was sent for
    # A cluster with three primaries (recover/ha.py): primaries restarted in this rung
    # (``restarted``), when a relaunch began waiting for EMR's own replacement (``waiting_since``).
    # None for a classic cluster (and then left out of the record).
    ha: dict[str, Any] | None = None
    timeline: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @classmethod
    def create(cls, target: str, strategy: str, now: datetime, *, reason: str, requested_by: str | None,
            force: bool, incident_id: str | None = None, rung: int = 0, prelude: Phase | None = None) -> Incident:
        """``strategy`` is the phase order of the first rung: ``replace``/``terminate_first``
        (a relaunch) or ``restart_service``; ``prelude`` (one of :data:`PRELUDE`) comes first
        when given."""
        ts = iso(now)
        first = prelude or ORDER[strategy][0]
        inc = cls(id=incident_id or new_incident_id(target, now), target=target, strategy=strategy,
                  phase=first.value, started_at=ts, phase_started_at=ts, reason=reason,
                  requested_by=requested_by, force=force, rung=rung)
        inc.rungs.append({"rung": rung_name(strategy), "index": rung, "started_at": ts})
        inc.timeline.append({"at": ts, "phase": first.value, "note": f"recovery started: {reason}"})
        return inc

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Incident:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        if out["ha"] is None:  # a classic cluster's record stays as it was
            del out["ha"]
        return out

    @property
    def current(self) -> Phase:
        return Phase(self.phase)

    def approved_by(self, rung: str = "replace") -> str | None:
        """Who approved ``rung`` by hand in this incident (recovery.approval), else None: an
        on_timeout "proceed" is nobody's yes."""
        answer = (self.approval or {}).get("answer") if isinstance(self.approval, dict) else None
        if isinstance(answer, dict) and answer.get("decision") == "approved" and (self.approval or {}).get("rung") == rung:
            return str(answer.get("by") or "a person")
        return None

    @property
    def old_cluster_id(self) -> str | None:
        return None if not self.old else self.old.get("cluster_id")

    @property
    def new_cluster_id(self) -> str | None:
        return None if not self.new else self.new.get("cluster_id")

    def intents_for(self, call: str, phase: Phase | None = None) -> list[dict[str, Any]]:
        """The intents of ``call``; with ``phase``, only that phase's (one instance may get a
        DIAGNOSE command and a RESTART command: neither adopts the other's). An intent
        recorded before intents carried a phase counts for every phase."""
        return [i for i in self.intents if i.get("call") == call
                and (phase is None or i.get("phase") in (None, phase.value))]

    def add_calls(self, by_phase: dict[str, int]) -> None:
        for phase, n in by_phase.items():
            self.calls[phase] = self.calls.get(phase, 0) + n
