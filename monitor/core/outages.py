"""Pages about sentinel's own dependencies: one per outage, not one per target per tick.

Why: when the state table cannot be read or written, every target's tick fails the same way.
Paging each of them (20 targets × every tick, twice with probes) buries on-call in copies of
one fact and trains them to ignore the pager. And the usual "page on change" memory lives in
the very table that is failing, so it cannot say "already paged" either.

So an invocation *collects* what failed (:class:`OutageNotes`: which targets, which error),
and at its end sends at most one page per outage kind, naming how many targets are affected.
Whether that outage was paged already is remembered **outside the state table**, in an SSM
parameter per outage kind (:class:`OutageLedger`, ``/sentinel/<state table>/outages/<key>``):

- no entry, or one whose outage ended (not seen for ``OUTAGE_GAP``): a new outage, paged.
  The entry is created with ``Overwrite=False`` first, so of several invocations that see the
  new outage at once (queued ticks) exactly one pages;
- an entry paged less than ``REMIND_EVERY`` ago: not paged again (its ``last_seen`` is
  refreshed at most every ``TOUCH_EVERY`` to stay within SSM's write rate);
- otherwise a reminder.

When the ledger itself cannot be read or written, the outage is paged (a lost page is worse
than a second one); the invocation still pages at most once per outage kind.
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from monitor.core.aws import error_code
from monitor.core.clock import iso, parse_iso

PERMISSIONS = ("ssm:GetParameter", "ssm:PutParameter", "ssm:DeleteParameter")
OUTAGE_GAP = timedelta(minutes=30)  # not seen this long: the outage ended; the next one is new
REMIND_EVERY = timedelta(hours=1)
TOUCH_EVERY = timedelta(minutes=5)
STATE_TABLE = "state-table"  # the outage key of the state table
MAX_NAMED = 20  # targets named in a page and kept in an entry


def parameter_prefix(state_table: str) -> str:
    """Where the ledger lives (the IAM policy allows exactly this path)."""
    return f"/sentinel/{_safe(state_table)}/outages/"


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.\-]", "-", text)[:200]


@dataclass
class OutageNotes:
    """What one invocation saw fail, by outage key ("state-table", "stall-<target>")."""

    seen: dict[str, dict[str, Any]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def note(self, key: str, target: str, error: str, *, kind: str | None = None, subject: str | None = None,
             body: str | None = None) -> None:
        """``kind``/``subject``/``body``: the page to send for this outage (default: the state
        table's, written by the tick)."""
        with self._lock:
            entry = self.seen.setdefault(key, {"targets": [], "error": error})
            if target not in entry["targets"]:
                entry["targets"].append(target)
            if subject is not None:
                entry.update(kind=kind, subject=subject, body=body)


@dataclass
class Verdict:
    page: bool
    why: str  # "new outage" | "reminder" | "paged at ..." | "ledger unavailable (...)"
    first_at: str | None = None
    targets: list[str] = field(default_factory=list)


class OutageLedger:
    """Per outage key: when it was first seen, last seen, and last paged (SSM parameters)."""

    def __init__(self, clients: Any, state_table: str) -> None:
        self._clients = clients  # the SSM client is made on first use, inside the fault handling
        self.prefix = parameter_prefix(state_table)

    @property
    def _ssm(self) -> Any:
        return self._clients.client("ssm")

    def name(self, key: str) -> str:
        return self.prefix + _safe(key)

    def decide(self, key: str, targets: list[str], now: datetime) -> Verdict:
        """Whether to page ``key`` now; records the sighting (and, when it says page, the page
        as about to be sent: :meth:`unpaged` takes that back if SNS refused it)."""
        name = self.name(key)
        try:
            entry = self._read(name)
            fresh = entry is None or now - parse_iso(str(entry.get("last_seen"))) > OUTAGE_GAP
            if fresh:
                if entry is not None:
                    self._delete(name)
                new = {"first_at": iso(now), "last_seen": iso(now), "paged_at": iso(now),
                       "targets": targets[:MAX_NAMED]}
                if not self._create(name, new):  # another invocation created it first: it pages
                    return Verdict(False, "paged by another invocation", iso(now))
                return Verdict(True, "new outage", iso(now), targets)
            assert entry is not None
            known = list(dict.fromkeys([*entry.get("targets", []), *targets]))[:MAX_NAMED]
            paged_at = parse_iso(str(entry.get("paged_at")))
            if now - paged_at >= REMIND_EVERY:
                self._write(name, {**entry, "last_seen": iso(now), "paged_at": iso(now), "targets": known})
                return Verdict(True, "reminder", str(entry.get("first_at")), known)
            if now - parse_iso(str(entry.get("last_seen"))) >= TOUCH_EVERY or known != entry.get("targets"):
                self._write(name, {**entry, "last_seen": iso(now), "targets": known})
            return Verdict(False, f"paged at {entry.get('paged_at')}", str(entry.get("first_at")), known)
        except Exception as exc:  # the ledger is down too: page (a lost page is worse than a copy)
            return Verdict(True, f"ledger unavailable ({error_code(exc)})", None, targets)

    def unpaged(self, key: str) -> None:
        """SNS did not take the page: forget that it was paged, so the next invocation pages."""
        name = self.name(key)
        try:
            entry = self._read(name)
            if entry is not None:
                self._write(name, {**entry, "paged_at": "1970-01-01T00:00:00Z"})
        except Exception:  # noqa: S110 - best effort: the report and PagesNotDelivered say it
            pass

    # ---------------------------------------------------------------- SSM
    def _read(self, name: str) -> dict[str, Any] | None:
        try:
            value = self._ssm.get_parameter(Name=name)["Parameter"]["Value"]
        except Exception as exc:
            if error_code(exc) == "ParameterNotFound":
                return None
            raise
        data = json.loads(value)
        return data if isinstance(data, dict) else None

    def _create(self, name: str, data: dict[str, Any]) -> bool:
        try:
            self._ssm.put_parameter(Name=name, Value=json.dumps(data), Type="String", Overwrite=False)
        except Exception as exc:
            if error_code(exc) == "ParameterAlreadyExists":
                return False
            raise
        return True

    def _write(self, name: str, data: dict[str, Any]) -> None:
        self._ssm.put_parameter(Name=name, Value=json.dumps(data), Type="String", Overwrite=True)

    def _delete(self, name: str) -> None:
        try:
            self._ssm.delete_parameter(Name=name)
        except Exception as exc:
            if error_code(exc) != "ParameterNotFound":
                raise
