"""Human-readable output for the CLI: a report as text, and the Nagios plugin line."""

from __future__ import annotations

import re
from typing import Any

from checks.base import Status
from monitor.report import TickReport


def prefixed(prefix: str, text: str) -> str:
    """``prefix: text``, unless the text already starts with a prefix of its own
    (``usage: …``, ``config: …``): never ``error: usage: …``."""
    return text if re.match(r"^(usage|config|state|error|hint): ", text) else f"{prefix}: {text}"


def text(report: TickReport) -> str:
    lines = []
    for t in report.targets:
        head = f"{t.target}: {t.status.name}"
        if t.decision:
            head += f"  verdict={t.decision['verdict']} failures={t.decision['consecutive_failures']}"
        if t.skipped:
            head += f"  (skipped: {t.skipped})"
        lines.append(head)
        for c in t.checks:
            lines.append(f"  {c.status.name:<8} {c.name:<24} {c.latency_ms:>8.0f} ms  {c.summary}")
        if t.decision and t.decision.get("blocked_by"):
            lines.extend(f"  blocked: {b}" for b in t.decision["blocked_by"])
        lines.extend(f"  action: {a}" for a in t.actions)
        if t.recovery:
            lines.append(f"  recovery: {t.recovery.get('summary') or t.recovery.get('phase')}")
        if t.error:
            lines.append(f"  {prefixed('error', t.error)}")
        lines.extend(f"  note: {n}" for n in t.notes)
    lines.extend(prefixed("error", e) for e in report.errors)
    if report.data is not None and not report.targets:
        lines.extend(_data_lines(report.data))
    lines.append(f"-- {report.action} {report.status} (exit {report.exit_code}) in {report.duration_ms:.0f} ms")
    return "\n".join(lines)


def _data_lines(data: dict[str, Any]) -> list[str]:
    out = []
    for name, st in (data.get("targets") or {}).items():
        out.append(f"{name}: verdict={st['verdict']} failures={st['consecutive_failures']} "
                   f"unknown={st['consecutive_unknown']} last tick {st['last_tick_at']}")
        if st.get("silenced"):
            out.append(f"  silenced until {st['silenced']['until']}: {st['silenced']['reason']}")
        if st.get("escalated"):
            out.append(f"  ESCALATED: {st['escalated']}  -> run `sentinel ack --target {name}` when handled")
        if st.get("incident"):
            inc = st["incident"]
            out.append(f"  incident {inc.get('id')}: phase {inc.get('phase')}")
        for r in st.get("last_results") or []:
            out.append(f"  {r['status']:<8} {r['name']}: {r['summary']}")
        if st.get("events"):
            out.append("  timeline (newest first):")
            out.extend(f"    {e['at']}  {e['kind']:<10} {e['message']}" for e in st["events"])
    if not out:
        out = [f"{k}: {v}" for k, v in data.items()]
    return out


def _label(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name)


def nagios(report: TickReport) -> tuple[str, int]:
    """One status line plus perfdata, and the plugin exit code (0/1/2/3)."""
    if not report.targets:
        return f"SENTINEL UNKNOWN - {'; '.join(report.errors) or 'no target'}", int(Status.UNKNOWN)
    t = report.targets[0]
    status = t.status
    parts = [f"{c.name} {c.status.name}: {c.summary}" for c in t.checks]
    perf = []
    for c in t.checks:
        perf.append(f"{_label(c.name)}_latency={c.latency_ms:.0f}ms;;;0")
        qps = c.observed.get("queries_per_s")
        if isinstance(qps, int | float):
            perf.append(f"{_label(c.name)}_qps={qps:.1f};;;0")
    line = f"SENTINEL {status.name} - {t.target}: {'; '.join(parts) or t.error or t.skipped}"
    line += "".join(f" (note: {n})" for n in t.notes)
    line = line.replace("|", "/").replace("\n", " ")
    return f"{line} | {' '.join(perf)}", int(status)
