"""Lambda events (DESIGN §4) → one :class:`Request`.

Three shapes: an EventBridge scheduled event (or a rule's constant ``Input`` such as
``{"targets": [...]}``), a manual ``{"action": ...}`` event, and an SNS notification that
wraps a CloudWatch alarm. Anything else is a :class:`UsageError` that names the problem;
nothing runs.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from monitor.config import Config
from monitor.core.errors import UsageError

Action = Literal["tick", "check", "recover", "status", "plan", "silence", "unsilence", "ack", "abort", "approve",
                 "deny"]

# Two invoke doors (DESIGN §10): one function, two aliases. The read-only door may look and
# tick (a tick may recover on its own, under the config's rules, as the schedule does); only
# the operator door may ask for a change by hand. IAM decides who may invoke which alias.
Door = Literal["readonly", "operator"]
READONLY_ACTIONS: frozenset[str] = frozenset({"tick", "check", "status", "plan"})
OPERATOR_ACTIONS: frozenset[str] = READONLY_ACTIONS | {"recover", "abort", "silence", "unsilence", "ack", "approve",
                                                        "deny"}

# Event limits (hostile or sloppy input is refused before anything runs). A target name is
# at most 63 characters in the config; the rest are generous for a person, small for a log line.
MAX_TARGET_LEN = 64
MAX_TARGETS = 1000
MAX_REASON_LEN = 1000
MAX_REQUESTED_BY_LEN = 128
MAX_DURATION_LEN = 32
MAX_INCIDENT_LEN = 128
MAX_EVENT_ERRORS = 10  # an event with 10 000 bad keys gets 10 lines, not 10 000
MAX_SHOWN_KEY_LEN = 64  # a 1 MB key name is not echoed back

TargetName = Annotated[str, StringConstraints(min_length=1, max_length=MAX_TARGET_LEN)]


class Request(BaseModel):
    model_config = ConfigDict(extra="forbid")

    action: Action = "tick"
    target: TargetName | None = None
    targets: list[TargetName] | None = Field(default=None, min_length=1, max_length=MAX_TARGETS)
    dry_run: bool = False
    force: bool = False
    requested_by: str | None = Field(default=None, max_length=MAX_REQUESTED_BY_LEN)
    duration: str | None = Field(default=None, alias="for", max_length=MAX_DURATION_LEN)  # silence
    reason: str | None = Field(default=None, max_length=MAX_REASON_LEN)  # silence, abort, approve, deny
    actions_only: bool = False  # silence
    # approve, deny: the ask answered (the approval page's command names them); a mismatch is
    # refused, so an answer meant for one ask never approves another
    rung: Literal["replace", "restart_service"] | None = None
    incident: str | None = Field(default=None, min_length=1, max_length=MAX_INCIDENT_LEN)
    source: str = "manual"  # scheduled | manual | alarm

    def target_names(self) -> list[str] | None:
        if self.target:
            return [self.target]
        return self.targets


_TARGETED = ("recover", "silence", "unsilence", "ack", "abort", "plan", "approve", "deny")


def door_of(context: Any) -> Door:
    """The door an invocation came through: the qualifier of the invoked ARN
    (``arn:aws:lambda:<region>:<account>:function:<name>:<qualifier>``). Only the exact
    ``operator`` alias opens the operator door; unqualified, ``$LATEST``, a version number or
    any other alias is read-only (fail closed)."""
    arn = getattr(context, "invoked_function_arn", None)
    if not isinstance(arn, str):
        return "readonly"
    parts = arn.split(":")
    return "operator" if len(parts) == 8 and parts[5] == "function" and parts[7] == "operator" else "readonly"


def refusal(req: Request, door: Door) -> str | None:
    """Why ``req`` may not run through ``door`` (a usage error, exit 2), or None."""
    allowed = OPERATOR_ACTIONS if door == "operator" else READONLY_ACTIONS
    if req.action in allowed:
        return None
    return (f"usage: action {req.action!r} is not allowed through the {door} door; invoke the "
            "function's 'operator' alias (sentinel invoke does) with lambda:InvokeFunction on "
            "<function ARN>:operator")


def sqs_records(event: Any) -> list[Any] | None:
    """The records of an SQS event (the work queue's event-source mapping, ``dispatch: queue``),
    else None. Each record is one queued tick, judged on its own (monitor.queue.consume)."""
    records = event.get("Records") if isinstance(event, dict) else None
    if isinstance(records, list) and records and isinstance(records[0], dict) \
            and records[0].get("eventSource") == "aws:sqs":
        return records
    return None


def parse_event(event: Any, config: Config) -> Request:
    if not isinstance(event, dict):
        raise UsageError(f"usage: event must be a JSON object, got {type(event).__name__}")
    if event.get("source") == "aws.events" or event.get("detail-type") == "Scheduled Event":
        return Request(action="tick", source="scheduled", requested_by="schedule")
    records = event.get("Records")
    if isinstance(records, list) and records and isinstance(records[0], dict) and "Sns" in records[0]:
        return _from_sns(records, config)
    if "action" not in event and set(event) == {"targets"}:
        if not isinstance(event["targets"], list) or not event["targets"]:
            raise UsageError("usage: targets: must be a non-empty list of target names (leave the key out to "
                             "tick every target)")
        return _validated({"action": "tick", "targets": event.get("targets"), "source": "scheduled",
                           "requested_by": "schedule"})
    if "action" not in event:
        raise UsageError(f"usage: unrecognised event (keys: {_keys(event)}); "
                         "expected a scheduled event, an SNS notification or {\"action\": ...}")
    if "targets" in event and event["targets"] is None:
        raise UsageError("usage: targets: must be a non-empty list of target names (leave the key out for all)")
    req = _validated({**event, "source": "manual"})
    if req.target is not None and req.targets is not None:
        raise UsageError("usage: give \"target\" or \"targets\", not both")
    if req.action in _TARGETED and not req.target:
        raise UsageError(f"usage: action {req.action!r} needs \"target\"")
    if req.action == "silence" and not (req.duration and req.reason and req.reason.strip()):
        raise UsageError("usage: action 'silence' needs \"for\" (e.g. \"2h\") and \"reason\"")
    if req.action in ("abort", "approve", "deny") and not (req.reason and req.reason.strip()):
        raise UsageError(f"usage: action {req.action!r} needs \"reason\"")
    return req


def _short(text: str, limit: int = MAX_SHOWN_KEY_LEN) -> str:
    return text if len(text) <= limit else text[:limit] + f"...({len(text)} chars)"


def _keys(event: dict[str, Any]) -> str:
    names = sorted(_short(str(k)) for k in event)
    shown = ", ".join(names[:MAX_EVENT_ERRORS])
    more = len(names) - MAX_EVENT_ERRORS
    return (shown + (f", ... {more} more" if more > 0 else "")) or "none"


def request_from(data: dict[str, Any]) -> Request:
    """A :class:`Request` from the CLI's arguments, held to the same limits as an event (a
    2 000-character ``--reason`` is a usage error, exit 2, not a validation traceback)."""
    return _validated(data)


def _validated(data: dict[str, Any]) -> Request:
    try:
        return Request.model_validate(data)
    except ValidationError as exc:
        errs = []
        for err in exc.errors():
            path = ".".join(_short(str(p)) for p in err["loc"]) or "(event)"
            msg = "unknown key" if err["type"] == "extra_forbidden" else str(err["msg"])
            errs.append(f"{path}: {msg}")
        more = len(errs) - MAX_EVENT_ERRORS
        shown = errs[:MAX_EVENT_ERRORS] + ([f"... {more} more"] if more > 0 else [])
        raise UsageError("usage: " + "; ".join(shown)) from None


def _from_sns(records: list[dict[str, Any]], config: Config) -> Request:
    """A CloudWatch alarm through SNS: tick the target it names, on ALARM only."""
    names = {t.name for t in config.targets}
    found: list[str] = []
    states: list[str] = []
    if len(records) > MAX_TARGETS:
        raise UsageError(f"usage: Records: at most {MAX_TARGETS} SNS records")
    for rec in records:
        sns = rec.get("Sns") if isinstance(rec, dict) else None
        raw = sns.get("Message", "") if isinstance(sns, dict) else None
        if not isinstance(raw, str):
            raise UsageError("usage: SNS record without a Message string")
        try:
            alarm = json.loads(raw)
        except ValueError:
            raise UsageError("usage: SNS message is not a CloudWatch alarm (not JSON)") from None
        if not isinstance(alarm, dict) or "AlarmName" not in alarm:
            raise UsageError("usage: SNS message is not a CloudWatch alarm (no AlarmName)")
        states.append(str(alarm.get("NewStateValue", "ALARM")))
        trigger = alarm.get("Trigger")
        dims = trigger.get("Dimensions") if isinstance(trigger, dict) else None
        dims = dims if isinstance(dims, list) else []
        named = [str(d.get("value")) for d in dims if isinstance(d, dict) and d.get("name") == "target"]
        if not named:
            alarm_name = str(alarm["AlarmName"])
            named = [n for n in names if n in alarm_name]
        found.extend(n for n in named if n in names)
    if not found:
        raise UsageError("usage: the alarm names no configured target (dimension 'target' or the alarm name)")
    if all(s != "ALARM" for s in states):
        return Request(action="status", targets=sorted(set(found)), source="alarm", requested_by="alarm")
    return Request(action="tick", targets=sorted(set(found)), source="alarm", requested_by="alarm")
