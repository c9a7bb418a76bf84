"""Human-readable output for the CLI: a report as text, and the Nagios plugin line."""

from __future__ import annotations

import re
import shutil
import textwrap
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
        out.extend(_status_lines(name, st))
    if not out:
        out = [f"{k}: {v}" for k, v in data.items()]
    return out


def width() -> int:
    """The terminal's width (COLUMNS, then the tty; 100 when output is piped), at least 60."""
    return max(60, shutil.get_terminal_size((100, 24)).columns)


CUT_MARK = re.compile(r"\.\.\.\((\d+) chars\)")  # what _row appends to a value it shortened


def _wrap(text: str, indent: str, hanging: str | None = None) -> list[str]:
    """Wrapped at the terminal's width, never cut: ids, ARNs and a "...(N chars)" mark stay whole."""
    protected = CUT_MARK.sub(lambda m: f"...({m.group(1)}\x00chars)", str(text))
    lines = textwrap.wrap(protected, width=width(), initial_indent=indent,
                          subsequent_indent=indent + "    " if hanging is None else hanging,
                          break_long_words=False, break_on_hyphens=False) or [indent.rstrip()]
    return [line.replace("\x00", " ") for line in lines]


def _when(ts: Any) -> str:
    text = str(ts or "")
    return f"{text[:10]} {text[11:19]} UTC" if len(text) >= 19 and text[10] == "T" else (text or "never")


def _took(seconds: Any, running: bool) -> str:
    if not isinstance(seconds, int | float):
        return "-"
    text = f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"
    return f"{text} so far" if running else text


def _status_lines(name: str, st: dict[str, Any]) -> list[str]:
    """One target for a person: the verdict and why, each check's last result, silences, the
    recovery budget, then the incident as a table and the recent audit events."""
    out = _wrap(f"{name}: verdict {str(st.get('verdict') or 'none yet').upper()}   "
                f"last tick {_when(st.get('last_tick_at'))}", "")
    if st.get("why"):
        out += _wrap(f"why: {st['why']}", "  ")
    facts = [f"consecutive failures {st.get('consecutive_failures')}", f"unknown {st.get('consecutive_unknown')}"]
    if st.get("failing_since"):
        facts.append(f"failing since {_when(st['failing_since'])}")
    out += _wrap("; ".join(facts), "  ")
    results = st.get("last_results") or []
    if results:
        out.append("  checks at the last tick:")
        for r in results:
            out += _wrap(f"{r['status']:<8} {r['name']}: {r['summary']}", "    ", " " * 13)
    if st.get("primaries"):
        out += _wrap("primaries: " + "; ".join(f"{p['instance_id']} {p.get('private_dns')} {p.get('state')} "
                                               f"{p.get('status') or 'not asked'}" for p in st["primaries"]), "  ")
    silenced = st.get("silenced")
    if silenced:
        scope = "actions only (pages still go out)" if silenced.get("actions_only") else "pages and actions"
        out += _wrap(f"silenced until {_when(silenced['until'])} ({scope}): {silenced['reason']}", "  ")
    else:
        out.append("  silenced: no")
    budget = st.get("budget")
    if isinstance(budget, dict):
        state = "" if budget.get("enabled", True) else " (automatic recovery disabled)"
        out.append(f"  recovery budget: {budget.get('used')} of {budget.get('max')} used in the last "
                   f"{budget.get('window_hours'):g} h, {budget.get('left')} left{state}")
    fixes = (st.get("fixes") or {}).get("by_rung") or {}
    if fixes:
        out.append(f"  fixes in the last {st['fixes'].get('days')} days: "
                   + ", ".join(f"{rung} {n}" for rung, n in sorted(fixes.items())))
    for rung, why in sorted((st.get("paused_rungs") or {}).items()):
        out += _wrap(f"PAUSED rung {rung} (recurring: find the cause): {(why or {}).get('reason')}  -> run "
                     f"`sentinel ack --target {name}` when handled", "  ")
    if st.get("escalated"):
        out += _wrap(f"ESCALATED: {st['escalated']}  -> run `sentinel ack --target {name}` when handled", "  ")
    if st.get("incident"):
        inc = st["incident"]
        started = f", started {_when(inc.get('started_at'))} (times below: UTC)" if inc.get("started_at") else ""
        out += _wrap(f"incident {inc.get('id')}: phase {inc.get('phase')}{started}", "  ")
        ask = inc.get("approval") if isinstance(inc.get("approval"), dict) else None
        if ask and inc.get("phase") == "APPROVAL":
            out += _wrap(f"WAITING FOR APPROVAL of {ask.get('rung')} since {_when(ask.get('asked_at'))} (then "
                         f"{ask.get('on_timeout')} after {ask.get('timeout_min')} min): sentinel approve|deny "
                         f"--target {name} --reason \"...\"", "  ")
            out += [f"    would change: {line}" for line in (ask.get("plan") or [])[:20]]
        elif ask and isinstance(ask.get("answer"), dict):
            a = ask["answer"]
            out += _wrap(f"{ask.get('rung')} {a.get('decision')} by {a.get('by')} at {_when(a.get('at'))}: "
                         f"{a.get('reason')}", "  ")
        out += _table(st.get("incident_timeline") or [])
        out += _diagnostics_lines(inc.get("diagnostics"))
    if st.get("events"):
        out.append("  timeline (newest first):")
        for e in st["events"]:
            out += _wrap(f"{_when(e['at'])}  {e['kind']:<13} {e['message']}", "    ",
                         " " * (42 if width() >= 100 else 8))
    return out


def _diagnostics_lines(diag: Any) -> list[str]:
    """DIAGNOSE's result (recover/diagnostics.py): status, where the whole output is, and the
    output kept on the incident (masked, at most 4 KB)."""
    if not isinstance(diag, dict) or not diag:
        return []
    where = f"; whole output: {diag['s3']}" if diag.get("s3") else ""
    out = _wrap(f"diagnostics: {diag.get('status')}: {diag.get('note') or ''}{where}", "  ")
    lines = str(diag.get("output") or "").splitlines()
    out += [f"    | {ln}" for ln in lines]
    if diag.get("truncated"):
        out.append(f"    | ... ({diag.get('bytes')} bytes in all; first 4 KB shown)")
    return out


def _table(rows: list[dict[str, Any]]) -> list[str]:
    """The incident as a table (phase, started, took, what changed, AWS calls); the two text
    columns share what the terminal leaves and wrap inside their cells. A terminal too narrow
    for five columns gets each phase as a line plus its indented details instead."""
    if not rows:
        return []
    heads = ("PHASE", "STARTED", "TOOK", "WHAT CHANGED", "AWS CALLS")
    cells = [(r["phase"], _when(r["started"])[11:19], _took(r.get("took_s"), bool(r.get("running"))),
              r.get("changed") or "-", ", ".join(r.get("aws_calls") or []) or "-") for r in rows]
    fixed = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(heads[:3])]
    indent = "    "
    free = width() - len(indent) - sum(fixed) - 2 * 4
    longest_call = max((len(call) for r in rows for call in r.get("aws_calls") or []), default=0)
    calls_w = max(len(heads[4]), longest_call + 1)
    if free - calls_w < 24:
        out = [f"{indent}{heads[0]:<{fixed[0]}}  {heads[1]:<{fixed[1]}}  {heads[2]}"]
        for c in cells:
            out.append(f"{indent}{c[0]:<{fixed[0]}}  {c[1]:<{fixed[1]}}  {c[2]}".rstrip())
            out += _wrap(f"changed: {c[3]}", indent + "    ", indent + "             ")
            if c[4] != "-":
                out += _wrap(f"AWS: {c[4]}", indent + "    ", indent + "         ")
        return out
    widths = [*fixed, free - calls_w, calls_w]
    out = []
    for row in [heads, *cells]:
        wrapped = [textwrap.wrap(str(v), w, break_long_words=False, break_on_hyphens=False) or [""]
                   for v, w in zip(row, widths, strict=True)]
        for n in range(max(len(c) for c in wrapped)):
            line = "  ".join(f"{(c[n] if n < len(c) else ''):<{w}}" for c, w in zip(wrapped, widths, strict=True))
            out.append((indent + line).rstrip())
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
