"""Wall-clock time in one place, so tests move it with freezegun."""

from __future__ import annotations

from datetime import UTC, datetime, tzinfo
from typing import Protocol
from zoneinfo import ZoneInfo


class Clock(Protocol):
    def now(self) -> datetime: ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


def iso(ts: datetime) -> str:
    """Sortable UTC timestamp with microseconds (used in DynamoDB sort keys)."""
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def zone(name: str) -> tzinfo:
    """An IANA zone (``notify.timezone``, validated by the config); UTC needs no tz database."""
    return UTC if name == "UTC" else ZoneInfo(name)


def parse_iso(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)
