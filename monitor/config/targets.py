"""``targets[]``: a cluster to watch, its checks (each validated by its plugin's model), its
recovery and its configured silences."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BeforeValidator, Field, StringConstraints, model_validator
from pydantic_core import PydanticCustomError

from checks import registry
from checks.base import CheckConfig
from monitor.config.base import NAME_RE, Strict, named
from monitor.config.recovery import Recovery


def _check_config(value: Any) -> CheckConfig:
    if isinstance(value, CheckConfig):
        return value
    if not isinstance(value, dict):
        raise PydanticCustomError("check_shape", "must be a mapping with a 'type'")
    type_name = value.get("type")
    if not isinstance(type_name, str):
        valid = ", ".join(sorted(registry.REGISTRY))
        raise PydanticCustomError("check_type", "type: missing (valid: {valid})", {"valid": valid})
    try:
        model = registry.config_model(type_name)
    except registry.UnknownCheckType as exc:
        raise PydanticCustomError("check_type", "type: {msg}", {"msg": exc.message}) from None
    return model.model_validate(value)


AnyCheck = Annotated[CheckConfig, BeforeValidator(_check_config)]


class ClusterRef(Strict):
    """The cluster a target watches: by id, or the active cluster with this name."""

    name: str | None = Field(default=None, min_length=1, max_length=256,  # EMR's own limit
                             description="The active cluster (STARTING..WAITING) with this EMR name; give name or id.")
    id: str | None = Field(default=None, pattern=r"^j-[A-Z0-9]+$", max_length=64,
        description="The cluster's id (j-...); a relaunch changes it, so update it after one. Give name or id.")

    @model_validator(mode="after")
    def _one_of(self) -> ClusterRef:
        if (self.name is None) == (self.id is None):
            raise ValueError("give exactly one of 'name' or 'id'")
        return self


class Silence(Strict):
    until: datetime = Field(description="End of the silence, with a time zone (e.g. 2026-12-01T06:00:00Z).")
    reason: str = Field(min_length=1, max_length=1000, description="Why (shown in status and pages).")
    actions_only: bool = Field(default=False, description="Keep paging; only stop automatic actions.")

    @model_validator(mode="after")
    def _aware(self) -> Silence:
        if self.until.tzinfo is None:
            raise ValueError("until: needs a timezone (e.g. 2026-12-01T06:00:00Z)")
        return self


# CloudWatch allows 255-character alarm names; a target listens to a handful of alarms.
MAX_TRIGGER_ALARMS = 20
MAX_ALARM_NAME_LEN = 255


class Triggers(Strict):
    """What else makes sentinel look at a target at once (issue 22): an EventBridge ``CloudWatch
    Alarm State Change`` to ALARM for one of these alarms ticks the target (never an action:
    the checks decide). EMR state events need no config: they are mapped by cluster id."""

    alarms: list[Annotated[str, StringConstraints(min_length=1, max_length=MAX_ALARM_NAME_LEN)]] = Field(
        default_factory=list, max_length=MAX_TRIGGER_ALARMS,
        description="CloudWatch alarm names whose change to ALARM (an EventBridge event) ticks this target at once; "
                    "the change counts as one failing look for trigger checks CRITICAL in that tick.")


class Target(Strict):
    name: str = Field(pattern=NAME_RE,
                      description="The target's name (lower case, digits, '-'); used in commands, tags and metrics.")
    cluster: ClusterRef = Field(description="The EMR cluster this target watches.")
    checks: list[AnyCheck] = Field(min_length=1, max_length=32)
    recovery: Recovery = Field(default_factory=Recovery, description="What sentinel does about a confirmed failure.")
    silences: list[Silence] = Field(default_factory=list, max_length=100,
                                    description="Configured silences (sentinel silence adds more in the state table).")
    triggers: Triggers = Field(default_factory=Triggers,
                               description="Events that tick this target at once (alarm state changes).")

    def check(self, name: str) -> CheckConfig:
        return named(self.checks, name)
