"""Lambda events (DESIGN §4) → one :class:`Request`.

Three shapes: an EventBridge scheduled event (or a rule's constant ``Input`` such as
``{"targets": [...]}``), a manual ``{"action": ...}`` event, and an SNS notification that
wraps a CloudWatch alarm. Anything else is a :class:`UsageError` that names the problem;
nothing runs.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from monitor.config import Config
from monitor.errors import UsageError

Action = Literal["tick", "check", "recover", "status", "silence", "unsilence", "ack"]


class Request(BaseModel):
    model_config = ConfigDict(extra="forbid")

    action: Action = "tick"
    target: str | None = None
    targets: list[str] | None = None
    dry_run: bool = False
    force: bool = False
    requested_by: str | None = Field(default=None, max_length=128)
    duration: str | None = Field(default=None, alias="for")  # silence
    reason: str | None = None  # silence
    actions_only: bool = False  # silence
    source: str = "manual"  # scheduled | manual | alarm

    def target_names(self) -> list[str] | None:
        if self.target:
            return [self.target]
        return self.targets


_TARGETED = ("recover", "silence", "unsilence", "ack")


def parse_event(event: Any, config: Config) -> Request:
    if not isinstance(event, dict):
        raise UsageError(f"usage: event must be a JSON object, got {type(event).__name__}")
    if event.get("source") == "aws.events" or event.get("detail-type") == "Scheduled Event":
        return Request(action="tick", source="scheduled", requested_by="schedule")
    records = event.get("Records")
    if isinstance(records, list) and records and isinstance(records[0], dict) and "Sns" in records[0]:
        return _from_sns(records, config)
    if "action" not in event and set(event) == {"targets"}:
        return _validated({"action": "tick", "targets": event.get("targets"), "source": "scheduled",
                           "requested_by": "schedule"})
    if "action" not in event:
        raise UsageError(f"usage: unrecognised event (keys: {', '.join(sorted(event)) or 'none'}); "
                         "expected a scheduled event, an SNS notification or {\"action\": ...}")
    req = _validated({**event, "source": "manual"})
    if req.action in _TARGETED and not req.target:
        raise UsageError(f"usage: action {req.action!r} needs \"target\"")
    if req.action == "silence" and not (req.duration and req.reason):
        raise UsageError("usage: action 'silence' needs \"for\" (e.g. \"2h\") and \"reason\"")
    return req


def _validated(data: dict[str, Any]) -> Request:
    try:
        return Request.model_validate(data)
    except ValidationError as exc:
        errs = []
        for err in exc.errors():
            path = ".".join(str(p) for p in err["loc"]) or "(event)"
            msg = "unknown key" if err["type"] == "extra_forbidden" else str(err["msg"])
            errs.append(f"{path}: {msg}")
        raise UsageError("usage: " + "; ".join(errs)) from None


def _from_sns(records: list[dict[str, Any]], config: Config) -> Request:
    """A CloudWatch alarm through SNS: tick the target it names, on ALARM only."""
    names = {t.name for t in config.targets}
    found: list[str] = []
    states: list[str] = []
    for rec in records:
        raw = (rec.get("Sns") or {}).get("Message", "")
        try:
            alarm = json.loads(raw) if isinstance(raw, str) else raw
        except ValueError:
            raise UsageError("usage: SNS message is not a CloudWatch alarm (not JSON)") from None
        if not isinstance(alarm, dict) or "AlarmName" not in alarm:
            raise UsageError("usage: SNS message is not a CloudWatch alarm (no AlarmName)")
        states.append(str(alarm.get("NewStateValue", "ALARM")))
        dims = (alarm.get("Trigger") or {}).get("Dimensions") or []
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
