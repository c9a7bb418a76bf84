"""The SQS work queue (DESIGN §10, ``dispatch: queue``): fan a tick out, one message per target.

Why a queue: one invocation ticking every target on a thread pool runs out of its 300-s
budget at a few dozen slow targets, and confirms a failure only at the next scheduled tick.
With ``dispatch: queue`` the scheduled invocation (the *dispatcher*) only enqueues
``{"action": "tick", "target": T}`` per target; the same function consumes the queue through
an event-source mapping (batch size 1, a maximum concurrency) and ticks one target per
message under its lease, so targets scale with Lambda concurrency, not with one process.

The dispatcher also enqueues the rest of its interval's ticks, delayed (*probes*, kind
``probe``): with ``tick_every_s: 300`` and the 10-minute schedule each target is ticked at
0 and 300 s, so a failure is seen ~2.5 min after it starts (median), not ~5. Polling is what
bounds detection, and a queued tick costs a fraction of a cent; the schedule itself (the
heartbeat, the alarm periods) stays at 10 minutes. A probe finding a follow-up pending or a
recovery running is skipped: the follow-up serves, and a re-check window is never cut short.

The same queue carries *follow-ups*, delayed messages (``DelaySeconds`` ≤ 900):

- a first CRITICAL of a trigger check below ``consecutive_failures`` queues a re-check after
  ``recovery.when.recheck_after_s`` (a failure is confirmed in ~2 minutes, not at the next
  scheduled tick 10 minutes later);
- a running recovery queues its next advance at the pace of its phase (WAIT_READY every 60 s).

At most one follow-up is pending per target: ``TargetState.recheck_pending_until`` is set by
a conditional write (version + lease fencing) before the message is sent.

Duplicates are harmless: SQS delivers at least once. Concurrent deliveries meet the lease
(one ticks, the other is skipped); a late second delivery finds the target ticked after the
message became due (``due_at``, a message attribute) and is dropped (:func:`not_needed`).
Malformed bodies are reported as batch item failures, so SQS redrives them to the dead-letter
queue after ``maxReceiveCount`` receives; nothing runs for them.

Without a queue (``SENTINEL_QUEUE_URL`` unset: the CLI, the sandbox, inline set-ups) nothing
is enqueued and everything behaves as before.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from monitor.config import Config
from monitor.core.clock import iso, parse_iso
from monitor.core.errors import ConflictError, StateError, UsageError
from monitor.core.state.base import TargetState
from monitor.events import Request
from monitor.report import TickReport
from monitor.runtime import Invocation

if TYPE_CHECKING:
    from monitor import policy
    from monitor.cycle import TargetTick

log = logging.getLogger("sentinel.queue")

QUEUE_URL_ENV = "SENTINEL_QUEUE_URL"
# The deployment's default for a config that does not say `dispatch` (the template sets
# queue; a config's own `dispatch` always wins, so `dispatch: inline` keeps today's mode).
DISPATCH_ENV = "SENTINEL_DISPATCH"
# The schedule's interval in seconds (the template sets it from AlarmPeriodSeconds): the
# dispatcher enqueues the probes of one interval. Unset: DESIGN's rate(10 minutes).
SCHEDULE_ENV = "SENTINEL_SCHEDULE_S"
DEFAULT_SCHEDULE_S = 600
PROBE = "probe"
KINDS = ("scheduled", "alarm", "re-check", "advance", PROBE, "event")  # the ``kind`` attribute's values
# What the code calls: send_message_batch (IAM authorises it as sqs:SendMessage).
PERMISSIONS = ("sqs:SendMessage",)
# What Lambda's event-source mapping calls with the function's role to feed it the queue
# (never called by our code; deploy/iam.py lists them as implicit).
CONSUMER_PERMISSIONS = ("sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes")

BATCH = 10  # SendMessageBatch's limit
MAX_DELAY_S = 900  # SQS's limit for DelaySeconds
# A running recovery's next advance, by phase: polling a launching cluster every minute is
# plenty (EMR takes ~15 min); the other phases are short calls worth retrying sooner.
PHASE_PACE_S: Mapping[str, int] = {"WAIT_READY": 60, "LAUNCH": 30, "RESTART": 30, "VERIFY": 30}
DEFAULT_PACE_S = 30
# Seconds before a follow-up is due during which another is not queued (SQS's delay is a
# minimum and the clocks of two invocations are not the same clock).
DUE_TOLERANCE_S = 5.0


# ---------------------------------------------------------------- sending

@dataclass
class Sent:
    """What one enqueue did: message ids by target, and the targets that were not queued (why)."""

    ids: dict[str, str] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)


def message_body(target: str) -> str:
    """The contract body (DESIGN §10); what is not the request (kind, due time) travels in
    message attributes, so the body is a plain manual tick event too."""
    return json.dumps({"action": "tick", "target": target}, sort_keys=True)


class WorkQueue:
    """Sends ticks to the queue, ten per ``SendMessageBatch`` (one call per 10 targets)."""

    def __init__(self, client: Any, url: str) -> None:
        self._sqs = client
        self.url = url

    def send(self, targets: Sequence[str], *, kind: str, due_at: datetime, delay_s: int = 0,
             attributes: Mapping[str, str] | None = None) -> Sent:
        delay = max(0, min(MAX_DELAY_S, int(delay_s)))
        out = Sent()
        attrs = {"kind": {"DataType": "String", "StringValue": kind},
                 "due_at": {"DataType": "String", "StringValue": iso(due_at)},
                 **{k: {"DataType": "String", "StringValue": v} for k, v in (attributes or {}).items()}}
        for start in range(0, len(targets), BATCH):
            chunk = list(targets[start:start + BATCH])
            entries = [{"Id": str(i), "MessageBody": message_body(t), "DelaySeconds": delay,
                        "MessageAttributes": attrs} for i, t in enumerate(chunk)]
            try:
                resp = self._sqs.send_message_batch(QueueUrl=self.url, Entries=entries)
            except Exception as exc:  # one failed batch must not stop the other targets' messages
                for t in chunk:
                    out.failed[t] = f"{type(exc).__name__}: {str(exc)[:200]}"
                continue
            for ok in resp.get("Successful", []):
                out.ids[chunk[int(ok["Id"])]] = str(ok.get("MessageId", ""))
            for bad in resp.get("Failed", []):
                out.failed[chunk[int(bad["Id"])]] = f"{bad.get('Code')}: {bad.get('Message', '')}"[:200]
        return out


def dispatch_mode(config: Config) -> str:
    """``inline`` or ``queue``: the config's ``dispatch`` when it says so, else the deployment's
    default (``SENTINEL_DISPATCH``), else inline."""
    if "dispatch" in config.model_fields_set:
        return config.dispatch
    return "queue" if os.environ.get(DISPATCH_ENV, "").strip() == "queue" else "inline"


def work_queue(inv: Invocation) -> WorkQueue | None:
    """The queue to use: injected on the services, else ``SENTINEL_QUEUE_URL``, else none."""
    injected = inv.services.queue
    if injected is not None:
        return injected  # type: ignore[no-any-return]
    url = os.environ.get(QUEUE_URL_ENV, "").strip()
    if not url:
        return None
    return WorkQueue(inv.services.clients.client("sqs"), url)


# ---------------------------------------------------------------- dispatching (the scheduled invocation)

def schedule_seconds() -> int:
    """The schedule's interval (``SENTINEL_SCHEDULE_S``); anything but a whole number of
    seconds from 60 to 86400 falls back to DESIGN's 600 (and says so in the log)."""
    raw = os.environ.get(SCHEDULE_ENV, "").strip()
    if not raw:
        return DEFAULT_SCHEDULE_S
    if raw.isascii() and raw.isdecimal() and 60 <= int(raw) <= 86400:  # "²".isdigit() is True
        return int(raw)
    log.warning("%s=%r is not 60-86400 seconds: using %d", SCHEDULE_ENV, raw[:32], DEFAULT_SCHEDULE_S)
    return DEFAULT_SCHEDULE_S


def probe_delays(schedule_s: int, every_s: int) -> list[int]:
    """The delays of one interval's probes: every ``every_s`` after the scheduled tick and
    before the next one, within SQS's 900-s limit (a longer schedule is probed only in its
    first 15 minutes: say so in the README)."""
    return [d for d in range(every_s, schedule_s, every_s) if d <= MAX_DELAY_S]


def fans_out(inv: Invocation, req: Request) -> bool:
    """A scheduled or alarm tick with ``dispatch: queue`` is enqueued, not run. Without a
    queue URL the function ticks inline (and says so in its log): monitoring goes on."""
    if dispatch_mode(inv.config) != "queue" or req.action != "tick" or req.source not in ("scheduled", "alarm"):
        return False
    if inv.dry_run:
        return False
    if work_queue(inv) is None:
        log.warning("dispatch: queue but %s is not set: ticking inline", QUEUE_URL_ENV)
        return False
    return True


# ---------------------------------------------------------------- consuming (one message = one target)

@dataclass(frozen=True)
class Queued:
    """One SQS record, understood: the tick it asks for and when it became due."""

    message_id: str
    request: Request
    due_at: datetime | None
    kind: str = ""
    # An AWS event's evidence for the tick (monitor.triggers), from the ``evidence`` attribute.
    evidence: dict[str, Any] | None = None


def parse_record(record: Any, config: Config) -> Queued:
    """An SQS record → the tick it asks for. Anything but ``{"action": "tick", "target": T}``
    with a configured T is a :class:`UsageError` (a poison message: it goes to the DLQ)."""
    if not isinstance(record, dict):
        raise UsageError("usage: SQS record is not an object")
    mid = str(record.get("messageId") or "")
    try:
        body = json.loads(str(record.get("body") or ""))
    except ValueError:
        raise UsageError(f"usage: message {mid}: body is not JSON") from None
    if not isinstance(body, dict) or set(body) != {"action", "target"} or body.get("action") != "tick" \
            or not isinstance(body.get("target"), str):
        raise UsageError(f"usage: message {mid}: body must be {{\"action\": \"tick\", \"target\": T}}")
    target = body["target"]
    if target not in {t.name for t in config.targets}:
        raise UnknownTarget(f"message {mid}: target {target[:64]!r} is not in the config")
    return Queued(mid, Request(action="tick", target=target, source="queue", requested_by="queue"),
                  _due_at(record), _kind(record), _evidence(record))


MAX_EVIDENCE_LEN = 2048


def _evidence(record: Mapping[str, Any]) -> dict[str, Any] | None:
    """The ``evidence`` attribute of an event's tick (a JSON object), else None: malformed
    evidence is dropped, the tick still runs (the checks decide anyway)."""
    text = _attribute(record, "evidence")
    if text is None or len(text) > MAX_EVIDENCE_LEN:
        return None
    try:
        data = json.loads(text)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def _attribute(record: Mapping[str, Any], name: str) -> str | None:
    """A string message attribute as Lambda hands it over, or None (absent or malformed)."""
    attrs = record.get("messageAttributes")
    attr = attrs.get(name) if isinstance(attrs, Mapping) else None
    text = attr.get("stringValue") if isinstance(attr, Mapping) else None
    return text if isinstance(text, str) else None


def _kind(record: Mapping[str, Any]) -> str:
    """The ``kind`` attribute when it is one of ours (a follow-up's ``advance (PHASE)`` counts
    as ``advance``), else empty: an unknown kind is ticked as a plain tick."""
    text = _attribute(record, "kind")
    if text is None:
        return ""
    head = text.split(" ", 1)[0]
    return head if head in KINDS else ""


class UnknownTarget(UsageError):
    """A well-formed message for a target removed from the config: dropped, not redriven
    (it would fill the DLQ and page for an intended config change)."""


def _due_at(record: Mapping[str, Any]) -> datetime | None:
    text = _attribute(record, "due_at")
    if text is not None:
        try:
            return parse_iso(text)
        except ValueError:
            pass
    sent = (record.get("attributes") or {}).get("SentTimestamp") if isinstance(record.get("attributes"), dict) \
        else None
    try:
        return datetime.fromtimestamp(int(sent) / 1000, UTC) if sent is not None else None
    except (TypeError, ValueError, OverflowError):
        return None


def consume(records: Sequence[Any], config: Config,
            tick: Callable[[Queued], TickReport]) -> dict[str, Any]:
    """Tick each record's target; the Lambda partial-batch response names the records to
    retry (``ReportBatchItemFailures``): a malformed body (redriven to the DLQ after
    ``maxReceiveCount``) or a tick that crashed. A tick that ran and reported a problem is
    done: its state says so and the next message or schedule ticks again."""
    failures: list[str] = []
    for record in records:
        mid = str(record.get("messageId") or "") if isinstance(record, dict) else ""
        try:
            queued = parse_record(record, config)
        except UnknownTarget as exc:
            log.warning("queued tick dropped: %s", exc)
            continue
        except UsageError as exc:
            log.error("poison message: %s", exc)
            failures.append(mid)
            continue
        try:
            report = tick(queued)
        except Exception:
            log.exception("queued tick crashed", extra={"message_id": mid})
            failures.append(mid)
            continue
        if any((t.error or "").startswith("internal error") for t in report.targets):
            failures.append(mid)
    return {"batchItemFailures": [{"itemIdentifier": m} for m in failures]}


def not_needed(inv: Invocation, state: TargetState, now: datetime) -> str | None:
    """Why a queued tick has nothing to do (checked under the lease), else None.

    - Its target was ticked after the message became due: the work it asked for is done (a
      duplicate delivery, or a schedule that came first), so two deliveries make one tick's
      effect. A running recovery is exempt: its phases are idempotent and its follow-ups
      carry no tick time.
    - A probe, while a recovery runs (its own follow-ups pace it) or a follow-up is pending
      until a little after it is due (SQS delays are minimums): the re-check is the next look,
      and a probe before it would count a second failure sooner than ``recheck_after_s``.
    """
    if inv.due_at is not None and state.last_tick_at and not state.active_incident \
            and parse_iso(state.last_tick_at) >= inv.due_at:
        return "queued tick already served: ticked after this message became due"
    if inv.queued_kind != PROBE:
        return None
    if state.active_incident:
        return "probe skipped: a recovery is running (its own follow-ups advance it)"
    if _pending(state, now, slack_s=DUE_TOLERANCE_S):
        return f"probe skipped: a follow-up is pending until {state.recheck_pending_until}"
    return None


# ---------------------------------------------------------------- follow-ups (delayed messages)

def _pending(state: TargetState, now: datetime, *, slack_s: float = -DUE_TOLERANCE_S) -> bool:
    """Whether the target's follow-up is still pending ``slack_s`` around its due time: a new
    follow-up may be queued a little *before* it is due (the default), a probe waits until a
    little *after*."""
    until = state.recheck_pending_until
    if not until:
        return False
    try:
        return now < parse_iso(until) + timedelta(seconds=slack_s)
    except ValueError:
        return False


def _follow_up(tick: TargetTick, state: TargetState, delay_s: int, kind: str) -> TargetState:
    """Record the pending follow-up (conditional write), then send it. A failed send leaves
    the mark, which expires by itself: the schedule then takes over, as before the queue."""
    if tick.read_only or tick.inv.dry_run or delay_s <= 0 or dispatch_mode(tick.inv.config) != "queue":
        return state
    queue = work_queue(tick.inv)
    now = tick.clock.now()
    if queue is None or _pending(state, now):
        return state
    due = now + timedelta(seconds=min(delay_s, MAX_DELAY_S))
    name = tick.target.name
    try:
        state = tick.store.put(name, replace(state, recheck_pending_until=iso(due)), lease=tick.lease, now=now)
    except (ConflictError, StateError) as exc:
        tick.rep.actions.append(f"{kind} not queued: {exc}")
        return state
    tick.rep.state_version = state.version
    sent = queue.send([name], kind=kind, due_at=due, delay_s=delay_s)
    if name in sent.failed:
        tick.rep.actions.append(f"{kind} not queued: {sent.failed[name]} (the schedule ticks it)")
    else:
        tick.rep.actions.append(f"{kind} queued in {delay_s} s")
    return state


def after_tick(tick: TargetTick, state: TargetState, decision: policy.Decision) -> TargetState:
    """A trigger check failing below its threshold: re-check after ``recheck_after_s``."""
    when = tick.target.recovery.when
    if decision.verdict != "failing" or when is None:
        return state
    return _follow_up(tick, state, when.recheck_after_s, "re-check")


def after_advance(tick: TargetTick, state: TargetState) -> TargetState:
    """A recovery still running: its next advance at the pace of its phase."""
    phase = str((state.active_incident or {}).get("phase") or "")
    if not phase:
        return state
    return _follow_up(tick, state, PHASE_PACE_S.get(phase, DEFAULT_PACE_S), f"advance ({phase})")
