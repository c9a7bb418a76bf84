"""Plain-text rendering of the sandbox run: one block per tick, then pages and the audit
timeline. Plain text on purpose: it reads the same in a terminal, a CI log and a README."""

from __future__ import annotations

from datetime import datetime
from typing import Any, TextIO

from monitor.report import TickReport
from monitor.state.base import Event, TargetState


class Printer:
    def __init__(self, out: TextIO) -> None:
        self.out = out

    def _w(self, text: str = "") -> None:
        self.out.write(text + "\n")
        self.out.flush()

    def title(self, text: str) -> None:
        self._w(text)
        self._w("=" * len(text))

    def setup(self, seeded: Any, old_port: int, new_port: int, elb_port: int) -> None:
        self._w(f"moto account: EMR cluster {seeded.cluster_id} 'RC.HIVE.ADHOC' (master {seeded.master_dns}),")
        self._w("  credstash secret hive.rcapp.password, target group 'hive', Route 53 CNAME, SNS page topic -> SQS")
        self._w(f"HiveServer2 stubs on 127.0.0.1: old master :{old_port}, new masters :{new_port} "
                "(TLS with the masters' *.ec2.internal certificate + SASL PLAIN)")
        self._w(f"load balancer stand-in on 127.0.0.1:{elb_port}: terminates TLS with the ELB's certificate, "
                "forwards to the registered master's port")
        self._w("schedule: one tick every 10 simulated minutes; recovery after 2 consecutive failures")
        self._w()

    def event(self, at: datetime, text: str) -> None:
        self._w(f"  !! {at:%H:%M}  {text}")

    def detail(self, text: str) -> None:
        self._w(f"     {text}")

    def tick(self, n: int, at: datetime, report: TickReport) -> None:
        for t in report.targets:
            decision = t.decision or {}
            verdict = decision.get("verdict", "-")
            if verdict in ("failing", "confirmed"):
                verdict += f" ({decision.get('consecutive_failures')} in a row)"
            head = f"tick {n:>2}  {at:%H:%M}  {t.target}  {t.status.name:<8}"
            if t.recovery:
                head += f"  recovery: {t.recovery.get('phase')}"
            else:
                head += f"  verdict: {verdict}"
            self._w(head)
            for c in t.checks:
                self._w(f"     {c.status.name:<8} {c.name:<14} {c.summary[:110]}")
            if t.recovery:
                self._w(f"     {str(t.recovery.get('summary', ''))[:130]}")
            for a in t.actions:
                self._w(f"     action: {a}")
            if t.error:
                self._w(f"     error: {t.error}")
        for m in report.notifications:
            sent = "" if m["delivered"] else f"  (not sent: {m['error']})"
            self._w(f"     -> {m['severity'].upper()}: {m['subject']}{sent}")

    def pages(self, messages: list[dict[str, Any]]) -> None:
        self._w()
        self._w(f"What on-call received ({len(messages)} SNS messages, read back from the SQS subscription):")
        for m in messages:
            self._w(f"  * {m.get('Subject')}")

    def timeline(self, events: list[Event]) -> None:
        self._w()
        self._w("Audit timeline (state table, oldest first):")
        for e in reversed(events):
            self._w(f"  {e.at[11:16]}  {e.kind:<10} {e.message[:120]}")

    def report(self, report: TickReport) -> None:
        self._w()
        self._w("The last tick's TickReport (what the Lambda returns; `sentinel tick --json` prints the same):")
        self._w(report.to_json())

    def summary(self, state: TargetState, seeded: Any, new_queries: int) -> None:
        inc = state.incident or {}
        self._w()
        if inc.get("phase") == "DONE":
            self._w(f"Recovered: incident {inc.get('id')} DONE; the load balancer now sends Hive traffic to the new "
                    f"master ({new_queries} queries answered by it).")
        else:
            self._w(f"Not recovered: incident phase {inc.get('phase')}; escalated: {state.escalated}")
        self._w("Try: sentinel --help   |   docs: README.md, section 'Recovery runbook'")
