"""The dispatcher of ``dispatch: queue`` (DESIGN §10): one scheduled invocation fans the tick out.

It enqueues one tick per target on the work queue (:mod:`monitor.queue`, transport and pacing),
ticks inline what SQS refused (through :func:`monitor.cycle.run_tick`), and on a full scheduled
tick beats the heartbeat, reports each target's age and the orphans, then enqueues the probes.
It sits above both the tick and the queue, so neither has to import the other to serve it.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import Any

from checks.base import Deadline
from monitor.core.clock import iso, parse_iso
from monitor.core.errors import StateError
from monitor.cycle import report_orphans, run_tick
from monitor.events import Request
from monitor.queue import BATCH, PROBE, WorkQueue, probe_delays, schedule_seconds, work_queue
from monitor.report import TickReport
from monitor.runtime import Invocation

log = logging.getLogger("sentinel.queue")

def fan_out(inv: Invocation, req: Request, deadline: Deadline) -> TickReport:
    """Enqueue one tick per target; on a full scheduled tick also beat the heartbeat, report
    how long ago each target was ticked (the monitor of the monitor) and the orphans."""
    clock = inv.services.clock
    started = clock.now()
    report = TickReport(action="tick", started_at=iso(started), request_id=inv.owner)
    names = [t.name for t in inv.config.targets]
    wanted = req.target_names()
    unknown = [n for n in (wanted or []) if n not in names]
    if unknown:
        report.errors.append(f"usage: unknown target(s): {', '.join(unknown)} (configured: {', '.join(names)})")
        return _finish(inv, report, started)
    selected = [n for n in names if not wanted or n in wanted]
    queue = work_queue(inv)
    assert queue is not None  # fans_out said so
    sent = queue.send(selected, kind=req.source, due_at=started)
    report.data = {"dispatch": "queue", "enqueued": len(sent.ids), "failed": sent.failed}
    inv.metrics.put("TicksEnqueued", len(sent.ids), "Count")
    if sent.failed:  # SQS refused: tick those here, as dispatch: inline would (monitoring goes on)
        log.error("%d ticks not queued, ticking them inline", len(sent.failed), extra={"failed": sent.failed})
        inv.metrics.put("TicksNotEnqueued", len(sent.failed), "Count")
        report.targets = run_tick(inv, deadline=deadline, targets=sorted(sent.failed)).targets
        for t in report.targets:
            t.notes.append(f"not queued ({sent.failed[t.target]}): ticked inline by the dispatcher")
    if req.source == "scheduled":  # a rule's {"targets": [...]} beats too, as an inline tick does
        inv.metrics.put("Heartbeat", 1)
        _freshness(inv, report, started, deadline, selected)
        if not wanted:
            report_orphans(inv, report)
        # Last: what the dispatcher owes (the inline fallback, the heartbeat, the ages) comes
        # first, and only targets the queue took now get probes (a refusing SQS is not asked
        # again, hundreds of times, on the fallback's time).
        report.data.update(_probes(inv, queue, [n for n in selected if n in sent.ids], started, deadline))
    return _finish(inv, report, started)


def _probes(inv: Invocation, queue: WorkQueue, names: list[str], now: datetime,
            deadline: Deadline) -> dict[str, Any]:
    """The rest of the interval's ticks, delayed. Best effort: a probe not sent (SQS refused,
    the dispatcher's time ran short) only means that target waits for the next schedule, as
    it would without probes, so it is reported, never ticked inline."""
    delays = probe_delays(schedule_seconds(), inv.config.tick_every_s)
    sent = failed = 0
    step = BATCH * 10  # the deadline is looked at every 10 SendMessageBatch calls
    for delay in delays:
        for start in range(0, len(names), step):
            chunk = names[start:start + step]
            if deadline.remaining() < 5.0:
                failed += len(chunk)
                continue
            out = queue.send(chunk, kind=PROBE, due_at=now + timedelta(seconds=delay), delay_s=delay)
            sent += len(out.ids)
            failed += len(out.failed)
    if failed:  # detection falls back to one look per schedule for those: visible, not only logged
        log.warning("%d probes not queued (those targets wait for the next schedule)", failed)
        inv.metrics.put("ProbesNotEnqueued", failed, "Count")
    return {"probes": {"delays_s": delays, "enqueued": sent, "failed": failed}}


def _freshness(inv: Invocation, report: TickReport, now: datetime, deadline: Deadline, names: list[str]) -> None:
    """``SecondsSinceTick`` per target and ``StalestTickSeconds`` over all: a target whose
    messages are lost, stuck or failing stops being ticked while the dispatcher goes on, and
    the heartbeat alone would not show it. A target with a recovery running is advanced, not
    ticked (its stall is paged by the runbook), and one never ticked yet has no age."""
    store = inv.services.store

    def age(name: str) -> float | None:
        if deadline.remaining() < 1.0:
            return None
        try:
            state = store.get(name)
        except StateError:
            return None
        if state.active_incident or not state.last_tick_at:
            return None
        return max(0.0, (now - parse_iso(state.last_tick_at)).total_seconds())

    with ThreadPoolExecutor(max_workers=max(1, min(inv.config.max_workers, len(names))),
                            thread_name_prefix="fresh") as pool:
        ages = dict(zip(names, pool.map(age, names), strict=True))
    known = {n: a for n, a in ages.items() if a is not None}
    for name, seconds in known.items():
        inv.metrics.put("SecondsSinceTick", round(seconds, 1), "Seconds", target=name)
    if known:
        stalest = max(known, key=lambda n: known[n])
        inv.metrics.put("StalestTickSeconds", round(known[stalest], 1), "Seconds")
        report.data = {**(report.data or {}), "stalest": {"target": stalest, "seconds": round(known[stalest], 1)}}


def _finish(inv: Invocation, report: TickReport, started: datetime) -> TickReport:
    end = inv.services.clock.now()
    report.finished_at = iso(end)
    report.duration_ms = (end - started).total_seconds() * 1000
    report.metrics = [p.to_dict() for p in inv.metrics.points]
    report.notifications = [m.to_dict() for m in inv.notifier.sent]
    return report
