"""AWS events that make sentinel look at once (issue 22; DESIGN §11 "Events").

EventBridge delivers two kinds to the function (the template's rules):

- ``source: aws.emr``: ``EMR Cluster State Change``, ``EMR Instance Group State Change``,
  ``EMR Instance Fleet State Change``. Mapped to targets by the cluster id: the target's
  configured ``cluster.id`` (or its ``cluster.name``, which a cluster state change carries),
  else what the state remembers (the cluster the ``emr_state`` check last saw, the clusters of
  the target's incident), else one ``DescribeCluster`` of the event's cluster to read its
  ``sentinel:target`` tag.
- ``source: aws.cloudwatch``: ``CloudWatch Alarm State Change``, mapped by
  ``targets[].triggers.alarms``; only a change *to* ALARM ticks.

Each mapped target gets an immediate tick, never an action: the event is a reason to look and
the checks decide. With ``dispatch: queue`` the tick is queued (``{"action": "tick", "target":
T}``, message attribute ``kind: event``), inline otherwise. The tick is due at the event's time:
a duplicate or late delivery finds the target ticked since and is skipped
(:func:`monitor.queue.not_needed`), and ``recovery.when.min_gap_s`` keeps a quick second look
from counting twice.

An EMR event that says the cluster is gone (TERMINATED / TERMINATED_WITH_ERRORS, or the master
instance group / fleet FAILED or TERMINATED) travels with the tick as evidence
(``facts["event"]``): the ``emr_state`` check holds it against its own reads. The cluster an
incident of sentinel's own is replacing is ignored: its termination is sentinel's retire.

Malformed, oversized or foreign events are usage errors (exit 2): nothing is read or changed.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from checks.base import Deadline
from monitor import queue
from monitor.config import Config
from monitor.core.clock import SystemClock, iso, parse_iso
from monitor.core.errors import StateError, UsageError
from monitor.cycle import run_tick
from monitor.report import TickReport
from monitor.runtime import Services, new_invocation

log = logging.getLogger("sentinel.triggers")

EMR_SOURCE = "aws.emr"
ALARM_SOURCE = "aws.cloudwatch"
CLUSTER_CHANGE = "EMR Cluster State Change"
GROUP_CHANGE = "EMR Instance Group State Change"
FLEET_CHANGE = "EMR Instance Fleet State Change"
ALARM_CHANGE = "CloudWatch Alarm State Change"
DETAIL_TYPES: Mapping[str, frozenset[str]] = {
    EMR_SOURCE: frozenset({CLUSTER_CHANGE, GROUP_CHANGE, FLEET_CHANGE}),
    ALARM_SOURCE: frozenset({ALARM_CHANGE}),
}
EVENT = "event"  # the queued tick's ``kind`` attribute (DESIGN §11)
EVIDENCE_ATTRIBUTE = "evidence"  # the queued tick's evidence (JSON), when the event carries some
TARGET_TAG = "sentinel:target"
# What mapping an event by tag calls (one read of the event's cluster; deploy/iam.py).
PERMISSIONS = ("elasticmapreduce:DescribeCluster",)

# EventBridge's own limit is 256 KB; an EMR or alarm event is a few KB at most.
MAX_EVENT_BYTES = 64 * 1024
MAX_FIELD_LEN = 1024  # a state, a reason, a name
MAX_ALARM_NAME_LEN = 255
CLUSTER_ID_MAX = 64
# Targets whose remembered cluster is read from state to map an event; more than this and the
# one DescribeCluster (by tag) is cheaper than that many reads.
MAX_STATE_LOOKUPS = 50
GONE_STATES = frozenset({"TERMINATED", "TERMINATED_WITH_ERRORS"})
MASTER_GONE_STATES = frozenset({"FAILED", "TERMINATED"})


@dataclass(frozen=True)
class AwsEvent:
    """One EventBridge event, understood (only what sentinel uses)."""

    source: str
    detail_type: str
    id: str
    time: str
    cluster_id: str | None = None
    state: str = ""
    role: str | None = None  # an instance group's or fleet's type: MASTER, CORE, TASK
    name: str | None = None  # a cluster state change: the cluster's name
    reason: str = ""
    alarm_name: str | None = None
    changed_at: str = ""  # an alarm's ``detail.state.timestamp``: when it turned to its state

    @property
    def cluster_gone(self) -> bool:
        """The cluster is gone (or its master is): evidence for ``emr_state``."""
        if self.detail_type == CLUSTER_CHANGE:
            return self.state in GONE_STATES
        return self.role == "MASTER" and self.state in MASTER_GONE_STATES

    def evidence(self) -> dict[str, Any] | None:
        """What the tick may hold against its own looks: an EMR event that the cluster (or its
        master) is gone, for ``emr_state``; an alarm that turned to ALARM, which the policy
        counts as one failing look of an independent observer (:func:`monitor.policy.alarm_look`)."""
        if self.source == ALARM_SOURCE:
            if self.state != "ALARM":
                return None
            return {"detail_type": self.detail_type, "alarm": self.alarm_name, "state": self.state,
                    "reason": self.reason[:300], "time": self.changed_at or self.time, "id": self.id}
        if not self.cluster_gone:
            return None
        return {"detail_type": self.detail_type, "cluster_id": self.cluster_id, "state": self.state,
                "role": self.role, "reason": self.reason[:300], "time": self.time, "id": self.id}

    def summary(self) -> str:
        if self.source == ALARM_SOURCE:
            return f"{self.detail_type}: alarm {self.alarm_name!r} is {self.state}"
        what = f" {self.role} {'fleet' if self.detail_type == FLEET_CHANGE else 'group'}" if self.role else ""
        return f"{self.detail_type}: {self.cluster_id}{what} is {self.state}"


def is_aws_event(event: Any) -> bool:
    """An event from one of the sources sentinel subscribes to (its detail-type is judged by
    :func:`parse`): anything else goes to :func:`monitor.events.parse_event`."""
    return isinstance(event, dict) and event.get("source") in DETAIL_TYPES and "detail" in event


def _text(value: Any, what: str, *, required: bool = True, limit: int = MAX_FIELD_LEN) -> str:
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value):
        raise UsageError(f"usage: {what}: must be a non-empty string")
    if len(value) > limit:
        raise UsageError(f"usage: {what}: longer than {limit} characters")
    return value


def parse(event: Any) -> AwsEvent:
    """An EventBridge event → :class:`AwsEvent`, or a :class:`UsageError` naming the problem."""
    if not isinstance(event, dict):
        raise UsageError(f"usage: event must be a JSON object, got {type(event).__name__}")
    try:
        size = len(json.dumps(event, default=str))
    except (TypeError, ValueError):
        raise UsageError("usage: event is not JSON") from None
    if size > MAX_EVENT_BYTES:
        raise UsageError(f"usage: event is {size} bytes, more than {MAX_EVENT_BYTES}: not an EMR or alarm event")
    raw_source = event.get("source")
    kinds = DETAIL_TYPES.get(raw_source) if isinstance(raw_source, str) else None
    if kinds is None or not isinstance(raw_source, str):
        raise UsageError(f"usage: events from source {str(raw_source)[:64]!r} are not served")
    source: str = raw_source
    dtype = event.get("detail-type")
    if dtype not in kinds:
        raise UsageError(f"usage: {source} event of detail-type {str(dtype)[:64]!r} is not served (served: "
                         f"{', '.join(sorted(kinds))})")
    detail = event.get("detail")
    if not isinstance(detail, dict):
        raise UsageError("usage: detail: must be an object")
    eid = _text(event.get("id", ""), "id", required=False, limit=128)
    when = _text(event.get("time", ""), "time", required=False, limit=64)
    if source == ALARM_SOURCE:
        alarm = _text(detail.get("alarmName"), "detail.alarmName", limit=MAX_ALARM_NAME_LEN)
        state = detail.get("state")
        value = _text(state.get("value") if isinstance(state, dict) else None, "detail.state.value", limit=32)
        why = _text(state.get("reason"), "detail.state.reason", required=False) if isinstance(state, dict) else ""
        changed = _text(state.get("timestamp"), "detail.state.timestamp", required=False,
                        limit=64) if isinstance(state, dict) else ""
        return AwsEvent(source, str(dtype), eid, when, state=value, reason=why, alarm_name=alarm,
                        changed_at=changed)
    cluster = _text(detail.get("clusterId"), "detail.clusterId", limit=CLUSTER_ID_MAX)
    if not cluster.startswith("j-") or not cluster[2:].isalnum():
        raise UsageError(f"usage: detail.clusterId: {cluster[:64]!r} is not an EMR cluster id (j-...)")
    state_text = _text(detail.get("state"), "detail.state", limit=64)
    role: str | None = None
    name: str | None = None
    if dtype == GROUP_CHANGE:
        role = _text(detail.get("instanceGroupType"), "detail.instanceGroupType", limit=32)
    elif dtype == FLEET_CHANGE:
        role = _text(detail.get("instanceFleetType"), "detail.instanceFleetType", limit=32)
    else:
        name = _text(detail.get("name"), "detail.name", required=False, limit=256) or None
    reason = _reason(detail.get("stateChangeReason"))
    return AwsEvent(source, str(dtype), eid, when, cluster_id=cluster, state=state_text, role=role, name=name,
                    reason=reason)


def _reason(raw: Any) -> str:
    """EMR sends ``stateChangeReason`` as a JSON string (``{"code": ..., "message": ...}``)."""
    if not isinstance(raw, str) or not raw:
        return ""
    text: str = raw[:MAX_FIELD_LEN]
    try:
        data = json.loads(text)
    except ValueError:
        return text
    if isinstance(data, dict):
        return ": ".join(str(data[k]) for k in ("code", "message") if data.get(k))
    return text


# ---------------------------------------------------------------- mapping to targets

@dataclass
class Mapped:
    targets: list[str]
    ignored: list[str]  # why (per target or for the whole event)
    by: str = ""  # config | state | tag | alarm


def map_alarm(ev: AwsEvent, config: Config) -> Mapped:
    names = [t.name for t in config.targets if ev.alarm_name in t.triggers.alarms]
    if not names:
        return Mapped([], [f"alarm {ev.alarm_name!r} is in no target's triggers.alarms"])
    if ev.state != "ALARM":
        return Mapped([], [f"alarm {ev.alarm_name!r} changed to {ev.state}, not ALARM: nothing to look at"])
    return Mapped(names, [], "alarm")


def _remembered(state: Any) -> set[str]:
    """The cluster ids a target's state knows as its own: the one ``emr_state`` last saw and
    the new cluster of its incident."""
    ids: set[str] = set()
    for result in getattr(state, "last_results", None) or []:
        observed = result.get("observed") if isinstance(result, dict) else None
        if result.get("type") == "emr_state" and isinstance(observed, dict) and observed.get("cluster_id"):
            ids.add(str(observed["cluster_id"]))
    inc = getattr(state, "incident", None)
    if isinstance(inc, dict) and isinstance(inc.get("new"), dict) and inc["new"].get("cluster_id"):
        ids.add(str(inc["new"]["cluster_id"]))
    return ids


def own_retire(state: Any, cluster_id: str) -> str | None:
    """Why an event for ``cluster_id`` is sentinel's own doing, else None: the cluster is the
    one the target's incident is replacing (running) or has terminated (its retire)."""
    inc = getattr(state, "incident", None)
    if not isinstance(inc, dict) or not isinstance(inc.get("old"), dict):
        return None
    if inc["old"].get("cluster_id") != cluster_id:
        return None
    if getattr(state, "active_incident", None):
        return f"incident {inc.get('id')} is replacing {cluster_id} (sentinel's own retire)"
    if (inc.get("retired") or {}).get("action") == "terminated":
        return f"incident {inc.get('id')} retired {cluster_id} (sentinel's own retire)"
    return None


def map_emr(ev: AwsEvent, services: Services, deadline: Deadline) -> Mapped:
    cfg = services.config
    cid = str(ev.cluster_id)
    matched: dict[str, str] = {}
    for t in cfg.targets:
        if t.cluster.id == cid or (ev.name and t.cluster.name == ev.name):
            matched[t.name] = "config"
    states: dict[str, Any] = {}

    def read(name: str) -> Any:
        if deadline.remaining() < 2.0:
            return None
        try:
            return services.store.get(name)
        except StateError:
            return None

    by_name = [t.name for t in cfg.targets if t.name not in matched and t.cluster.name is not None]
    if not matched and len(by_name) <= MAX_STATE_LOOKUPS:
        with ThreadPoolExecutor(max_workers=max(1, min(cfg.max_workers, len(by_name) or 1)),
                                thread_name_prefix="event") as pool:
            states.update(zip(by_name, pool.map(read, by_name), strict=True))
        for name, state in states.items():
            if state is not None and (cid in _remembered(state) or own_retire(state, cid)):
                matched[name] = "state"
    if not matched:
        tagged = _tagged_target(services, cid)
        if tagged in {t.name for t in cfg.targets}:
            matched[tagged] = "tag"
        elif tagged:
            return Mapped([], [f"{cid} is tagged {TARGET_TAG}={tagged[:64]!r}, which is not in the config"])
    if not matched:
        return Mapped([], [f"cluster {cid} belongs to no configured target (config, state, tag {TARGET_TAG})"])
    targets: list[str] = []
    ignored: list[str] = []
    for name in sorted(matched):
        state = states[name] if name in states else read(name)
        why = own_retire(state, cid) if state is not None else None
        if why:
            ignored.append(f"{name}: {why}")
        else:
            targets.append(name)
    return Mapped(targets, ignored, ",".join(sorted(set(matched.values()))))


def _tagged_target(services: Services, cluster_id: str) -> str | None:
    """The ``sentinel:target`` tag of the event's cluster (one DescribeCluster), or None."""
    try:
        emr = services.clients.client("emr")
        cluster = emr.describe_cluster(ClusterId=cluster_id)["Cluster"]
    except Exception as exc:  # an unknown or unreadable cluster is no target of ours
        log.warning("describe_cluster %s for an event failed: %s", cluster_id, str(exc)[:200])
        return None
    for tag in cluster.get("Tags") or []:
        if isinstance(tag, dict) and tag.get("Key") == TARGET_TAG and isinstance(tag.get("Value"), str):
            return str(tag["Value"])
    return None


# ---------------------------------------------------------------- handling

def due_at(ev: AwsEvent, now: datetime) -> datetime:
    """When the event's tick became due: the event's time (never later than now)."""
    try:
        when = parse_iso(ev.time) if ev.time else now
    except ValueError:
        return now
    if when.tzinfo is None:
        return now
    return min(when, now)


def handle(event: Any, config: Config, services_for: Callable[[], Services], *, request_id: str | None,
           deadline: Deadline) -> TickReport:
    """An EventBridge event → the ticks it asks for (queued or inline), in one report."""
    started = SystemClock().now()
    try:
        ev = parse(event)
    except UsageError as exc:  # judged before any client exists: nothing read, nothing changed
        report = TickReport(action="event", started_at=iso(started), request_id=request_id)
        report.errors.append(str(exc))
        report.finished_at = report.started_at
        return report
    services = services_for()
    inv = new_invocation(services, request_id=request_id, emit_metrics=True,
                         requested_by=f"event {ev.detail_type} {ev.id}"[:128])
    now = services.clock.now()
    mapped = map_alarm(ev, config) if ev.source == ALARM_SOURCE else map_emr(ev, services, deadline)
    data: dict[str, Any] = {"event": {**{k: v for k, v in asdict(ev).items() if v}, "summary": ev.summary()},
                            "mapped_by": mapped.by, "ignored": mapped.ignored, "ticked": mapped.targets}
    evidence = ev.evidence()
    if evidence:
        data["evidence"] = evidence
    log.info("event", extra={"event": ev.summary(), "targets": mapped.targets, "ignored": mapped.ignored})
    if not mapped.targets:
        report = TickReport(action="tick", started_at=iso(now), request_id=request_id)
        report.data = data
        report.finished_at = iso(services.clock.now())
        return report
    due = due_at(ev, now)
    inv.metrics.put("EventTicks", len(mapped.targets), "Count")
    work = queue.work_queue(inv) if queue.dispatch_mode(config) == "queue" else None
    if work is not None:
        extra = {EVIDENCE_ATTRIBUTE: json.dumps(evidence, sort_keys=True)} if evidence else None
        sent = work.send(mapped.targets, kind=EVENT, due_at=due, attributes=extra)
        data.update(dispatch="queue", enqueued=len(sent.ids), failed=sent.failed)
        inline = sorted(sent.failed)
    else:
        data["dispatch"] = "inline"
        inline = mapped.targets
    inv.due_at = due  # a target ticked since the event was served already (duplicates, late events)
    inv.evidence = dict.fromkeys(inline, evidence) if evidence else {}
    if inline:
        report = run_tick(inv, deadline=deadline, targets=inline)
        if work is not None:
            for t in report.targets:
                t.notes.append(f"not queued ({data['failed'][t.target]}): ticked inline")
    else:
        report = TickReport(action="tick", started_at=iso(now), request_id=request_id)
        report.metrics = [p.to_dict() for p in inv.metrics.points]
        report.finished_at = iso(services.clock.now())
    inv.metrics.flush()
    report.data = {**(report.data or {}), **data}
    return report
