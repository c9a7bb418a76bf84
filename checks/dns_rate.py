"""Counter samples and the rate between two of them (pure functions, no I/O).

A Lambda container may be fresh on any tick, so the previous sample lives in the state store
(``sample#<check>``), never in process memory. A sample is::

    {"at": "<iso ts>", "value": <counter>, "boot": "<server boot time or null>", "source": "<what was read>"}

The rate is ``(value - prev.value) / (at - prev.at)``. Cases that would give a negative or a
meaningless huge rate start a new baseline instead:

- first sample, or the source changed (a config edit) → baseline;
- the server restarted (``boot`` changed) or the counter went down → counter reset;
- the previous sample is older than ``max_age_s`` (missed ticks: the average would hide a
  burst) or not older than the new one (clock skew) → stale.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from monitor.core.clock import iso, parse_iso

DeltaKind = Literal["baseline", "reset", "stale", "rate"]


@dataclass(frozen=True)
class Sample:
    at: datetime
    value: float
    boot: str | None
    source: str

    def to_dict(self) -> dict[str, Any]:
        return {"at": iso(self.at), "value": self.value, "boot": self.boot, "source": self.source}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Sample | None:
        """None for a malformed or foreign item (treated as no previous sample)."""
        try:
            boot = data.get("boot")
            return cls(at=parse_iso(str(data["at"])), value=float(data["value"]),
                       boot=None if boot is None else str(boot), source=str(data.get("source", "")))
        except (KeyError, TypeError, ValueError):
            return None


@dataclass(frozen=True)
class Delta:
    kind: DeltaKind
    reason: str
    increase: float | None = None
    elapsed_s: float | None = None

    @property
    def per_s(self) -> float | None:
        if self.increase is None or not self.elapsed_s:
            return None
        return self.increase / self.elapsed_s


def compare(prev: Sample | None, cur: Sample, *, max_age_s: float) -> Delta:
    """What ``cur`` says relative to ``prev`` (see the module docstring)."""
    if prev is None:
        return Delta("baseline", "first sample: baseline recorded")
    if prev.source != cur.source:
        return Delta("baseline", "counter source changed: new baseline recorded")
    elapsed = (cur.at - prev.at).total_seconds()
    if elapsed <= 0:
        return Delta("stale", f"previous sample is not older than this one ({elapsed:.0f} s): new baseline")
    if elapsed > max_age_s:
        return Delta("stale", f"previous sample is {elapsed:.0f} s old (> {max_age_s:.0f} s): new baseline")
    if prev.boot != cur.boot:
        return Delta("reset", f"counter reset (server restarted at {cur.boot}): new baseline")
    if cur.value < prev.value:
        return Delta("reset", f"counter reset (went down from {prev.value:g} to {cur.value:g}): new baseline")
    return Delta("rate", "rate", increase=cur.value - prev.value, elapsed_s=elapsed)
