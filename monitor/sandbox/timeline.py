"""Plain-text rendering of the sandbox run: one block per tick, then pages and the audit
timeline. Plain text on purpose: it reads the same in a terminal, a CI log and a README.

Every line is wrapped at the terminal's width (``shutil.get_terminal_size``, 100 columns when
there is no terminal) with a hanging indent, never cut: a summary cut mid-word hides exactly
the part on-call needed (``deregistered i-… from target g``).
"""

from __future__ import annotations

import shutil
import textwrap
from datetime import datetime
from typing import Any, TextIO

from checks.base import Status
from monitor.core.clock import parse_iso
from monitor.core.state.base import Event, TargetState
from monitor.report import TickReport

MIN_WIDTH = 60


def width() -> int:
    return max(MIN_WIDTH, shutil.get_terminal_size((100, 24)).columns)


def wrap(text: str, indent: str = "", hanging: str | None = None) -> list[str]:
    """``text`` as lines of at most :func:`width` columns; continuation lines indented by
    ``hanging`` (default: ``indent`` plus two spaces). Long words (ids, ARNs) are kept whole."""
    out: list[str] = []
    for para in text.splitlines() or [""]:
        out.extend(textwrap.wrap(para, width=width(), initial_indent=indent,
                                 subsequent_indent=hanging if hanging is not None else indent + "  ",
                                 break_long_words=False, break_on_hyphens=False) or [indent.rstrip()])
    return out


def _hhmm(ts: str | None) -> str:
    if not ts:
        return "--:--"
    try:
        return f"{parse_iso(ts):%H:%M}"
    except ValueError:
        return ts[11:16]


class Printer:
    def __init__(self, out: TextIO) -> None:
        self.out = out
        self._undelivered: set[str] = set()

    def _w(self, text: str = "", indent: str = "", hanging: str | None = None) -> None:
        for line in wrap(text, indent, hanging):
            self.out.write(line + "\n")
        self.out.flush()

    def title(self, text: str) -> None:
        self._w(text)
        self._w("=" * min(len(text), width()))

    def setup(self, seeded: Any, old_port: int, new_port: int, elb_port: int) -> None:
        from monitor.sandbox.seed import LB_NAME, MASTER_RECORD

        self._w(f"moto account: EMR cluster {seeded.cluster_id} 'RC.HIVE.ADHOC' (master {seeded.master_dns}), "
                "credstash secret hive.rcapp.password, load balancer 'hive' (TLS :443) -> target group 'hive', "
                "SNS page topic -> SQS")
        self._w(f"names (Route 53, resolved as the VPC would): clients dial {LB_NAME}:443, an alias to the load "
                f"balancer (not sentinel's); {MASTER_RECORD} is a CNAME to the master, which a recovery "
                "re-points")
        self._w(f"HiveServer2 stubs on 127.0.0.1: old master :{old_port}, new masters :{new_port} "
                "(TLS with the masters' *.ec2.internal certificate + SASL PLAIN)")
        self._w(f"load balancer stand-in on 127.0.0.1:{elb_port}: terminates TLS with the ELB's certificate, "
                "forwards to the registered master's port")
        self._w("schedule: one tick every 10 simulated minutes; recovery after 2 consecutive failures")
        self._w()

    def event(self, at: datetime, text: str) -> None:
        self._w(f"  !! {at:%H:%M}  {text}", hanging=" " * 13)

    def between(self, at: datetime, lines: list[str]) -> None:
        """What the world did between two ticks (EMR finishing a new cluster's setup steps)."""
        if lines:
            self._w(f"  .. {at:%H:%M}  between ticks, EMR: {'; '.join(lines)}", hanging=" " * 13)

    def detail(self, text: str) -> None:
        self._w(text, indent="     ")

    def tick(self, n: int, at: datetime, report: TickReport) -> None:
        for t in report.targets:
            decision = t.decision or {}
            verdict = decision.get("verdict", "-")
            if verdict in ("failing", "confirmed"):
                verdict += f" ({decision.get('consecutive_failures')} in a row)"
            head = f"tick {n:>2}  {at:%H:%M}  {t.target}  {t.status.name:<8}"
            rec = t.recovery or {}
            head += f"  recovery: {rec.get('phase')}" if rec else f"  verdict: {verdict}"
            self._w(head)
            why = _why_warning(t.status, rec)
            if why:
                self._w(f"why WARNING: {why}", indent="     ")
            for c in t.checks:
                self._w(f"{c.status.name:<8} {c.name:<14} {c.summary}", indent="     ", hanging=" " * 29)
            self._recovery(rec)
            for a in t.actions:
                self._w(f"action: {a}", indent="     ")
            if t.error:
                self._w(f"error: {t.error}", indent="     ")
        for m in report.notifications:
            self._w(f"-> {m['severity'].upper()}: {m['subject']}{self._not_sent(m)}", indent="     ")

    def _recovery(self, rec: dict[str, Any]) -> None:
        """Each phase this tick went through, where it happened, with the changing AWS calls it
        made; then where the runbook stands (only when that adds something)."""
        if not rec:
            return
        calls: dict[str, list[str]] = {}
        for c in rec.get("calls") or []:
            if c.get("mutating"):
                calls.setdefault(str(c.get("phase")), []).append(str(c.get("call")))
        for tr in rec.get("transitions") or []:
            self._w(f"phase {tr['from']} -> {tr['to']}: {tr['note']}", indent="     ", hanging=" " * 9)
            if calls.get(tr["from"]):
                self._w(f"AWS: {', '.join(calls.pop(tr['from']))}", indent="         ")
        waiting = rec.get("waiting") or rec.get("stopped")
        if waiting and rec.get("phase") not in ("DONE",):
            self._w(f"now {rec.get('phase')}: {_strip_phase(str(waiting), str(rec.get('phase')))}",
                    indent="     ", hanging=" " * 9)
        elif not rec.get("transitions"):
            self._w(str(rec.get("summary", "")), indent="     ")

    def _not_sent(self, m: dict[str, Any]) -> str:
        """The reason a message was not sent, said once per reason (then: "as above")."""
        if m["delivered"]:
            return ""
        err = str(m.get("error"))
        if err in self._undelivered:
            return "  (not sent, as above)"
        self._undelivered.add(err)
        return f"  (not sent: {err})"

    def pages(self, messages: list[dict[str, Any]]) -> None:
        self._w()
        self._w(f"What on-call received ({len(messages)} SNS messages, read back from the SQS subscription):")
        for m in messages:
            self._w(f"* {m.get('Subject')}", indent="  ")

    def timeline(self, events: list[Event]) -> None:
        self._w()
        self._w("Audit timeline (state table, oldest first):")
        for e in reversed(events):
            self._w(f"{e.at[11:16]}  {e.kind:<13} {e.message}", indent="  ", hanging=" " * 23)

    def summary(self, state: TargetState, seeded: Any, new_queries: int, events: list[Event],
                names: list[str] | None = None) -> None:
        inc = state.incident or {}
        self._w()
        if inc.get("phase") == "DONE":
            self._w(f"Recovered: incident {inc.get('id')} DONE; the load balancer now sends Hive traffic to the new "
                    f"master ({new_queries} queries answered by it).")
            for line in recovery_times(inc, events):
                self._w(line, indent="  ")
            for line in names or []:
                self._w(line, indent="  ")
        else:
            self._w(f"Not recovered: incident phase {inc.get('phase')}; escalated: {state.escalated}")
        self._w("Try: sentinel --help   |   docs: README.md, section 'Recovery runbook'")


def _strip_phase(text: str, phase: str) -> str:
    prefix = f"{phase}: "
    return text[len(prefix):] if text.startswith(prefix) else text


def _why_warning(status: Status, rec: dict[str, Any]) -> str | None:
    if status is not Status.WARNING:
        return None
    if rec.get("strategy") == "restart_service" and rec.get("phase") == "DONE":
        return "the checks above ran before the restart; it is done and verified (the next tick shows it)"
    if rec:
        return (f"clients are served by the new cluster again (verified through the normal path); the recovery "
                f"is still finishing ({rec.get('phase')}), so the target is not OK yet")
    return "a check is WARNING (see below)"


def recovery_times(inc: dict[str, Any], events: list[Event]) -> list[str]:
    """Time to recover measured from each of the three starts on-call asks about: the first
    failed check, the detection (the failure confirmed), the recovery's start."""
    served = inc.get("recovered_at")
    if not served:
        return []
    started = str(inc.get("started_at") or "")
    # this incident's episode: the last verdicts before its start (an earlier incident had its own)
    before = [e for e in events if e.kind == "verdict" and e.at <= started]  # newest first
    first_fail = next((e.at for e in before if e.data.get("to") == "failing"), None)
    confirmed = next((e.at for e in before if e.data.get("to") == "confirmed"), None)
    end = parse_iso(served)
    how = "VERIFY passed after the restart" if inc.get("strategy") == "restart_service" else "VERIFY_PATH passed"
    out = [f"clients served again at {_hhmm(served)} ({how}); time to recover:"]
    for label, ts in (("from the first failed check", first_fail), ("from detection (failure confirmed)", confirmed),
                      ("from the recovery's start", inc.get("started_at"))):
        if ts:
            out.append(f"  {(end - parse_iso(ts)).total_seconds() / 60:>5.1f} min {label} at {_hhmm(ts)}")
    return out
