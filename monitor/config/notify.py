"""``notify``: where pages and info messages go, on-call's time zone, flap detection."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, Field, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError

from monitor.config.base import Strict


def _iana_zone(name: str) -> str:
    """An IANA zone name Python's zoneinfo knows (``Europe/Berlin``), else a config error.
    ``UTC`` needs no time zone database (a minimal runtime may have none)."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    if name == "UTC":
        return name
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise PydanticCustomError("timezone", "unknown IANA time zone '{name}' (e.g. Europe/Berlin, UTC; "
                                  "without a system time zone database: pip install tzdata)",
                                  {"name": name}) from exc
    return name


class Flap(Strict):
    """Nagios-style flap detection: a check whose weighted share of state changes over its
    last ``window`` looks (judged once the window is full) is above ``high`` is flapping
    (paged once); below ``low`` it is not any more (an info message)."""

    window: int = Field(default=21, ge=5, le=50,
                        description="Looks per check over which flapping is judged (once the window is full).")
    low: float = Field(default=0.25, ge=0, lt=1,
                       description="Below this weighted share of status changes a flapping check is steady again (info message).")
    high: float = Field(default=0.5, gt=0, le=1, validate_default=True,
                        description="Above this weighted share of status changes a check is flapping (one page); must be > low.")

    @field_validator("high")
    @classmethod
    def _above_low(cls, high: float, info: ValidationInfo) -> float:
        low = info.data.get("low")
        if isinstance(low, int | float) and high <= low:
            raise PydanticCustomError("flap_thresholds", "must be > notify.flap.low ({low}): a check starts "
                                      "flapping above high and stops below low", {"low": f"{low:g}"})
        return high


class Notify(Strict):
    page_topic_arn: str = Field(pattern=r"^arn:aws[a-z-]*:sns:", description="SNS topic for pages (people are woken).")
    info_topic_arn: str | None = Field(default=None, pattern=r"^arn:aws[a-z-]*:sns:",
                                       description="SNS topic for info messages (phase progress, silences, acks); optional.")
    # Pages for a persistent UNKNOWN are sent after this many consecutive UNKNOWN ticks.
    unknown_after: int = Field(default=3, ge=1, le=1000,
                               description="Page when a check stays UNKNOWN this many consecutive ticks.")
    # Every page says "since when" in this IANA zone (on-call's clock) and in UTC (logs, AWS).
    timezone: Annotated[str, AfterValidator(_iana_zone)] = Field(default="UTC",
        description="IANA time zone of on-call's clock; pages say 'since when' in it and in UTC.")
    # Flap detection per check (DESIGN §11, monitor/flap.py).
    flap: Flap = Field(default_factory=Flap, description="Flap detection per check (Nagios-style weighted state changes).")
