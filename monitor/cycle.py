"""One tick (DESIGN §1): for each target, under its lease: advance a running recovery, or
run the checks, judge, persist, notify, and start a recovery when the policy allows.

The Lambda handler and the CLI both call :func:`run_tick`; ``check`` and ``--dry-run`` take
the same path with a read-only store and no publishing.

Size: one tick of one target is one walk (lease, advance or check, judge, persist, notify,
start) over one shared context (``TargetTick``); the invocation's wrap-up (orphans, outages)
sits beside it because it reads the same report. Split up, a reader would follow one tick
through several files.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from checks.base import CheckContext, CheckResult, Deadline, EndpointOverride, Status
from monitor import flap, policy, queue
from monitor.actions import take_lease
from monitor.config import Target, recovery_gaps
from monitor.core.clock import iso, parse_iso
from monitor.core.errors import ConflictError, LeaseHeld, StateError
from monitor.core.outages import STATE_TABLE, OutageLedger
from monitor.core.state.base import Event, Lease, StateStore, TargetState
from monitor.core.state.readonly import ReadOnlyStore
from monitor.notify import MAX_PENDING, Message, PageFacts, pending_entry
from monitor.report import TargetReport, TickReport
from monitor.runner import check_budget, run_checks
from monitor.runtime import Invocation

if TYPE_CHECKING:
    from recover.context import RecoveryContext

log = logging.getLogger("sentinel.cycle")

LEASE_SLACK_S = 30.0
STATE_OUTAGE = STATE_TABLE  # the outage key of the state table (monitor.core.outages)
TICK_ACTIONS = ("tick", "check", "recover", "abort", "approve", "deny")
ANSWERS = ("abort", "approve", "deny")  # a person acts on a running incident: no target, no run


def run_tick(
    inv: Invocation,
    *,
    deadline: Deadline,
    targets: Sequence[str] | None = None,
    action: str = "tick",
    force: bool = False,
    reason: str = "",
    answering: dict[str, str] | None = None,
) -> TickReport:
    """``abort`` ends a running recovery (``reason`` says why); it takes the same lease."""
    if action not in TICK_ACTIONS:
        raise ValueError(f"run_tick handles {TICK_ACTIONS}, not {action!r}")
    started = time.monotonic()
    clock = inv.services.clock
    report = TickReport(action=action, started_at=iso(clock.now()), request_id=inv.owner, dry_run=inv.dry_run)
    cfg = inv.config
    selected = [t for t in cfg.targets if not targets or t.name in targets]
    unknown = [name for name in (targets or []) if name not in {t.name for t in cfg.targets}]
    if unknown:
        report.errors.append(f"usage: unknown target(s): {', '.join(unknown)} (configured: "
                             f"{', '.join(t.name for t in cfg.targets)})")
        return _finish(inv, report, started)

    if action == "recover":  # refused before any AWS call: a person asked for something unsafe
        gaps = [f"{t.name}: {gap}" for t in selected for gap in recovery_gaps(t)]
        if gaps:
            report.errors.append("usage: cannot recover " + "; ".join(gaps))
            return _finish(inv, report, started)

    workers = max(1, min(cfg.max_workers, len(selected)))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="target") as pool:
        futures = [pool.submit(_guarded, inv, t, action, force, deadline, reason=reason, answering=answering)
                   for t in selected]
        report.targets = [f.result() for f in futures]
    if action in ANSWERS and report.targets and all((t.error or "").startswith("usage:") for t in report.targets):
        report.errors.extend(str(t.error) for t in report.targets)  # e.g. nothing to abort or approve: exit 2
        report.targets = []
    if action == "tick" and not targets:
        report_orphans(inv, report)
    if action == "tick" and not inv.dry_run and inv.due_at is None:  # queued ticks: the dispatcher beats
        inv.metrics.put("Heartbeat", 1)
    page_outages(inv, report)
    return _finish(inv, report, started)


def report_orphans(inv: Invocation, report: TickReport) -> None:
    """An incident whose target was removed from the config is advanced by nobody: say so in
    every full tick's report and page once, so it cannot stall silently."""
    store = inv.services.store
    configured = {t.name for t in inv.config.targets}
    try:
        running = store.active_incidents()
    except StateError as exc:
        report.data = {**(report.data or {}), "orphaned_incidents_unknown": str(exc)}
        return
    orphans = {name: inc for name, inc in running.items() if name not in configured}
    if not orphans:
        return
    report.data = {**(report.data or {}), "orphaned_incidents": orphans}
    for name, inc in orphans.items():
        report.errors.append(f"incident {inc.get('id')} of {name} is in {inc.get('phase')} but {name} is no longer in "
                             "the config: nobody advances it (put the target back, then `sentinel abort`)")
        if inv.dry_run:
            continue
        with contextlib.suppress(StateError, ConflictError):
            state = store.get(name)
            if (state.last_page or {}).get("kind") == "orphaned":
                continue
            now = inv.services.clock.now()
            msg = inv.notifier.page(name, "incident-orphaned", f"incident {inc.get('id')} orphaned in {inc.get('phase')}",
                                    f"Target {name} was removed from the config while incident {inc.get('id')} was in "
                                    f"{inc.get('phase')}. Nothing advances or rolls it back now: clusters and routing "
                                    "may be half-moved.\n\nNext:\n  put the target back in the config, then\n"
                                    f"  sentinel abort --target {name} --reason \"target removed\"")
            if not msg.delivered:  # not recorded as paged: the next full tick pages again
                inv.unkept_pages.append(msg)
                continue
            store.put(name, replace(state, last_page={"kind": "orphaned", "at": iso(now)}), lease=None, now=now,
                      events=[Event(iso(now), "orphaned", "target removed from the config during an incident",
                                    dict(inc), "sentinel")])


def page_outages(inv: Invocation, report: TickReport) -> None:
    """One page per outage of sentinel's own dependencies seen by this invocation (the state
    table; a stall whose marker could not be written), deduplicated across invocations by
    the outage ledger (monitor.core.outages), naming how many targets are affected."""
    if inv.dry_run or not inv.outages.seen:
        return
    ledger = OutageLedger(inv.services.clients, inv.config.state_table)
    now = inv.services.clock.now()
    for key, seen in sorted(inv.outages.seen.items()):
        verdict = ledger.decide(key, list(seen["targets"]), now)
        names = verdict.targets or list(seen["targets"])
        report.data = {**(report.data or {}), "outages": {**(report.data or {}).get("outages", {}),
                                                          key: {"paged": verdict.page, "why": verdict.why,
                                                                "targets": names, "since": verdict.first_at}}}
        if not verdict.page:
            continue
        subject, body, kind, target = _outage_text(inv, key, seen, names, verdict)
        since = parse_iso(verdict.first_at) if verdict.first_at else now
        inv.notifier.note(target, PageFacts(failed=str(seen["error"])[:300], since=since, since_label="Outage since"))
        msg = inv.notifier.page(target, kind, subject, body)
        if not msg.delivered:  # the next invocation that sees the outage pages it again
            ledger.unpaged(key)
            inv.unkept_pages.append(msg)


def _outage_text(inv: Invocation, key: str, seen: dict[str, Any], names: list[str],
                 verdict: Any) -> tuple[str, str, str, str]:
    if seen.get("subject"):
        return str(seen["subject"]), str(seen["body"]), str(seen.get("kind") or "recovery-stalled"), names[0]
    table = inv.config.state_table
    again = "(reminder) " if verdict.why == "reminder" else ""
    subject = f"{again}{len(names)} target(s) paused: {table} unreadable or unwritable"
    body = (f"sentinel cannot read or write its state table '{table}' ({str(seen['error'])[:300]}).\n"
            f"Targets affected so far ({len(names)}): {', '.join(names)}.\n"
            "No automatic action is taken for them until the table works (fail closed); checks still run and "
            "their results are in the function's reports and metrics.\n"
            "This is paged once per outage, then at most hourly, whatever the number of targets and ticks.\n\n"
            f"Next:\n  check the DynamoDB table '{table}' (throttling, item size, IAM) and the function's role.")
    return subject, body, "state-unreadable", "state-table"


def _finish(inv: Invocation, report: TickReport, started: float) -> TickReport:
    undelivered = sum(t.pages_pending for t in report.targets) + len(inv.unkept_pages)
    if undelivered and not inv.dry_run:
        # Powertools adds the `service` dimension from POWERTOOLS_SERVICE_NAME (sentinel-<env>) to
        # every metric; naming it here keeps that value (the alarm's) and shows it in --json too.
        inv.metrics.put("PagesNotDelivered", undelivered, "Count",
                        service=os.environ.get("POWERTOOLS_SERVICE_NAME", "sentinel"))
    report.finished_at = iso(inv.services.clock.now())
    report.duration_ms = (time.monotonic() - started) * 1000
    report.notifications = [m.to_dict() for m in inv.notifier.sent]
    report.metrics = [p.to_dict() for p in inv.metrics.points]
    return report


def _guarded(inv: Invocation, target: Target, action: str, force: bool, deadline: Deadline, *,
             reason: str = "", answering: dict[str, str] | None = None) -> TargetReport:
    """A bug in one target's tick must not take the others down with it."""
    try:
        return TargetTick(inv, target, action, force, deadline, reason=reason, answering=answering).run()
    except Exception as exc:
        log.exception("target tick crashed", extra={"target": target.name})
        return TargetReport(target.name, status=Status.UNKNOWN, error=f"internal error: {type(exc).__name__}: {exc}")


class TargetTick:
    def __init__(self, inv: Invocation, target: Target, action: str, force: bool, deadline: Deadline, *,
                 reason: str = "", answering: dict[str, str] | None = None) -> None:
        self.inv = inv
        self.reason = reason
        self.answering = answering or {}  # approve/deny: the ask it answers (rung, incident), when named
        self.target = target
        self.action = action
        self.force = force
        self.deadline = deadline
        self.read_only = action == "check" or inv.dry_run
        svc = inv.services
        self.store: StateStore = ReadOnlyStore(svc.store) if self.read_only else svc.store
        self._lease_store = self.store  # stays the real store even if the tick turns read-only
        self.clock = svc.clock
        self.rep = TargetReport(target.name)
        self.lease: Lease | None = None
        self.facts: dict[str, Any] = {}  # what checks learned (emr_state: the cluster and its master)
        if inv.evidence.get(target.name):  # an AWS event's evidence (monitor.triggers)
            self.facts["event"] = dict(inv.evidence[target.name])
        self.last_results: list[dict[str, Any]] = []  # the saved results of the previous tick (from state)
        # This invocation's results through the normal path, by check (the runbook's VERIFY_PATH
        # runs some): the watch on what serves does not run them a second time.
        self.path_results: dict[str, CheckResult] = {}

    # ------------------------------------------------------------------ flow
    def run(self) -> TargetReport:
        name = self.target.name
        now = self.clock.now()
        if not self.read_only:
            waits = self.action in ("recover", *ANSWERS)  # a person asked: wait for the lease, or say busy
            try:
                if waits:
                    self.lease = take_lease(self.store, name, self.inv.owner, self.clock, deadline=self.deadline,
                                            ttl_s=lambda: self.deadline.remaining() + LEASE_SLACK_S)
                else:
                    self.lease = self.store.acquire_lease(name, self.inv.owner, self.deadline.remaining() + LEASE_SLACK_S,
                                                          now)
            except LeaseHeld as exc:
                if waits:  # nothing was done: an error (exit 3), never a skip that reads as "ok"
                    self.rep.error = str(exc)
                    return self.rep
                self.rep.skipped = f"{exc}: another invocation is working on this target"
                return self.rep
            except StateError as exc:
                return self._state_unreadable(exc)
        try:
            return self._run_locked()
        finally:
            try:
                self._keep_undelivered()
            except Exception:  # never let bookkeeping hide the tick's own outcome
                log.exception("keeping undelivered pages failed", extra={"target": name})
            if self.lease is not None:
                with contextlib.suppress(StateError):  # it expires by itself
                    self._lease_store.release_lease(self.lease)

    def _run_locked(self) -> TargetReport:
        try:
            state = self.store.get(self.target.name)
        except StateError as exc:
            if self.action == "check":
                return self._check_without_state(exc)
            return self._state_unreadable(exc)
        self.rep.state_version = state.version
        state = self._deliver_pending(state)
        self.last_results = list(state.last_results)
        not_needed = queue.not_needed(self.inv, state, self.clock.now())
        if not_needed:
            self.rep.skipped = not_needed
            return self.rep

        from recover import runbook

        if self.action == "abort":
            return self._abort(state)
        if self.action in ("approve", "deny"):
            return self._answer(state, approve=self.action == "approve")
        if runbook.is_active(state) and self.action != "check":
            return self._advance_recovery(state)

        results = self.run_checks([c.name for c in self.target.checks], None)
        decision = policy.evaluate(self.target, results, state, self.clock.now(),
                                   force=self.force and self.action == "recover", manual=self.action == "recover",
                                   evidence=self.facts.get("event"))
        self.rep.checks = results
        self.rep.status = decision.status
        self.rep.decision = decision.to_dict()
        self._check_metrics(results, decision)
        if self.action == "check":
            return self.rep

        new_state = self._next_state(state, results, decision)
        self._notify(state, new_state, decision)
        if decision.recover and self.inv.dry_run:
            self.rep.actions.append("dry run: would start a recovery")
        try:
            new_state = self.store.put(self.target.name, new_state, lease=self.lease,
                                       events=self._events(state, decision), now=self.clock.now())
        except ConflictError as exc:
            self.rep.error = f"state changed under us ({exc}); this tick's result was not saved"
            return self.rep
        except StateError as exc:
            return self._state_unreadable(exc)
        self.rep.state_version = new_state.version
        new_state = queue.after_tick(self, new_state, decision)
        if decision.recover and not self.inv.dry_run:
            self._start_recovery(new_state, decision)
        elif decision.verdict == "ok" and self.target.recovery.enabled:
            self._capture_last_known_good()
        return self.rep

    def _capture_last_known_good(self) -> None:
        """While healthy, keep the cluster's spec (``sk = spec``) for ``spec.source:
        last_known_good`` and for a clone whose cluster is gone. Free while the stored spec
        is fresh; never fails the tick."""
        from recover.spec import capture_last_known_good

        cluster = self.facts.get("cluster") or {}
        result = capture_last_known_good(self._recovery_context(), cluster_id=cluster.get("id"))
        if result.get("captured"):
            self.rep.actions.append(f"last known good spec saved ({result.get('reason', '')})")

    # ------------------------------------------------------------------ pages SNS refused
    def _deliver_pending(self, state: TargetState) -> TargetState:
        """Pages kept from earlier ticks go first: SNS may take them now. Each is marked late
        and carries its original time. Dropped from the state only once SNS accepted it (a
        failed write sends it again next tick: a copy, never a loss)."""
        if not state.pending_pages or self.read_only:
            self.rep.pages_pending = len(state.pending_pages)
            return state
        left: list[dict[str, Any]] = []
        for entry in state.pending_pages:
            msg = self.inv.notifier.redeliver(self.target.name, entry)
            if not msg.delivered:
                left.append({**entry, "attempts": msg.attempts, "error": msg.error})
        sent = len(state.pending_pages) - len(left)
        self.rep.pages_pending = len(left)
        if sent:
            self.rep.actions.append(f"{sent} page(s) SNS refused earlier delivered late")
            try:
                state = self.store.put(self.target.name, replace(state, pending_pages=left), lease=self.lease,
                                       now=self.clock.now())
            except (ConflictError, StateError) as exc:
                self.rep.notes.append(f"late pages sent, but not cleared from the state ({exc}): sent again next tick")
        return state

    def _keep_undelivered(self) -> None:
        """This tick's pages that SNS refused are kept in the target's state and retried by
        every later tick; when the state cannot be written they stay in this invocation's
        report and its PagesNotDelivered metric."""
        if self.read_only:
            return
        fresh = [m for m in self.inv.notifier.undelivered(self.target.name) if not m.pending_id]
        if not fresh:
            return
        try:
            state = self._lease_store.get(self.target.name)
            kept = [*state.pending_pages, *(pending_entry(m) for m in fresh)]
            if len(kept) > MAX_PENDING:
                self.rep.notes.append(f"{len(kept) - MAX_PENDING} oldest undelivered page(s) dropped "
                                      f"(at most {MAX_PENDING} are kept)")
                kept = kept[-MAX_PENDING:]
            self._lease_store.put(self.target.name, replace(state, pending_pages=kept), lease=self.lease,
                                  now=self.clock.now())
            self.rep.pages_pending = len(kept)
            self.rep.actions.append(f"{len(fresh)} page(s) SNS refused kept; every tick retries them")
        except (ConflictError, StateError) as exc:
            self.inv.unkept_pages.extend(fresh)
            self.rep.notes.append(f"{len(fresh)} page(s) SNS refused could not be kept in the state ({exc}): "
                                  "they are in this report's notifications and PagesNotDelivered")

    # ------------------------------------------------------------------ checks
    def run_checks(self, names: Sequence[str], endpoint: EndpointOverride | None) -> list[CheckResult]:
        svc = self.inv.services
        wanted = [c for c in self.target.checks if c.name in set(names)]
        facts = self.facts
        facts["lease"] = self.lease

        # What the checks may know about the path without reading the state table themselves:
        # a load balancer in front (routing), and which checks passed last tick with which settings.
        behind_lb = self.target.recovery.routing.load_balancer and endpoint is None
        last_ok = {} if endpoint is not None else {
            str(r.get("name")): str((r.get("observed") or {}).get("settings"))
            for r in self.last_results if r.get("status") == Status.OK.name and (r.get("observed") or {}).get("settings")
        }

        primary = self.target.recovery.verify.master_endpoint("")  # a per_primary check fills in each host

        def make_ctx(own: Deadline) -> CheckContext:
            return CheckContext(
                target=self.target.name, cluster=self.target.cluster, clients=svc.clients,
                secrets=svc.secrets, resolver=svc.resolver, store=self.store, clock=self.clock,
                deadline=own, host_override=endpoint.host if endpoint else None, endpoint=endpoint, facts=facts,
                behind_load_balancer=behind_lb, last_ok_settings=last_ok, primary_endpoint=primary,
            )

        results = run_checks(wanted, make_ctx, self.deadline)
        if endpoint is None:
            self.path_results.update((r.name, r) for r in results)
        return results

    def _check_metrics(self, results: list[CheckResult], decision: policy.Decision) -> None:
        m = self.inv.metrics
        name = self.target.name
        for r in results:
            m.put("CheckStatus", int(r.status), "None", target=name, check=r.name)
            m.put("CheckLatencyMs", r.latency_ms, "Milliseconds", target=name, check=r.name)
            qps = r.observed.get("queries_per_s")
            if isinstance(qps, int | float):
                m.put("DnsQueriesPerSecond", float(qps), "Count/Second", target=name, check=r.name)
        m.put("TargetStatus", int(decision.status), "None", target=name)
        m.put("ConsecutiveFailures", decision.consecutive_failures, "Count", target=name)

    # ------------------------------------------------------------------ state
    def _next_state(self, state: TargetState, results: list[CheckResult], decision: policy.Decision) -> TargetState:
        now = iso(self.clock.now())
        failing_since = state.failing_since
        if decision.verdict in ("failing", "confirmed"):
            failing_since = failing_since or now
        elif decision.consecutive_failures == 0:
            failing_since = None
        return replace(
            state,
            consecutive_failures=decision.consecutive_failures,
            streaks=decision.streaks,
            streak_at=decision.streak_at,  # evidence is spaced (recovery.when.min_gap_s)
            flap=flap.judge(self.inv.config.notify.flap, self.target, results, state, self.clock.now()),
            consecutive_unknown=decision.consecutive_unknown,
            last_tick_at=now,
            last_decision=decision.verdict,
            last_results=[r.to_dict() for r in results],
            failing_since=failing_since,
        )

    def _events(self, state: TargetState, decision: policy.Decision) -> list[Event]:
        if state.last_decision == decision.verdict:
            return []
        return [Event(
            at=iso(self.clock.now()), kind="verdict",
            message=f"{state.last_decision or 'new'} -> {decision.verdict}: {'; '.join(decision.reasons) or 'all checks OK'}",
            data={"from": state.last_decision, "to": decision.verdict, "status": decision.status.name},
            actor=self.inv.requested_by or "sentinel",
        )]

    # ------------------------------------------------------------------ notifications
    _state_before: TargetState | None = None  # the state this tick read (for the pages' "since when")

    def _notify(self, old: TargetState, new: TargetState, decision: policy.Decision) -> None:
        """Page on a change of condition, not on every tick; record what was paged."""
        self._state_before = old
        flap.notify(self, old, new, decision)  # flapping: its own page once, an info when it stops
        last = (old.last_page or {}).get("kind")
        kind: str | None = None
        if decision.verdict == "confirmed" and not decision.recover:
            kind = "confirmed"
        elif decision.consecutive_unknown >= self.inv.config.notify.unknown_after and decision.verdict != "confirmed":
            kind = "unknown"
        if kind is None:
            if decision.verdict == "ok" and last is not None:
                self._send("page", "resolved", "resolved: all checks OK", self._body(decision, "Resolved."))
                new.last_page = None
            return
        if kind == last:
            return
        if decision.notifications_silenced:
            self.rep.actions.append(f"page '{kind}' suppressed by silence")
            return
        if kind == "confirmed":
            why = "; ".join(decision.blocked_by) or "recovery not started"
            subject = f"{', '.join(decision.failing_checks)} CRITICAL, no automatic recovery"
            body = self._body(decision, f"Confirmed failure. Automatic recovery will not run: {why}.")
        else:
            subject = f"{', '.join(decision.unknown_checks)} UNKNOWN for {decision.consecutive_unknown} ticks"
            body = self._body(decision, "sentinel cannot judge this target (auth, TLS, config, secret or API "
                                        "problem). No automatic action is taken while it cannot judge.")
        self._send("page", kind, subject, body)
        new.last_page = {"kind": kind, "at": iso(self.clock.now())}

    def _send(self, severity: str, kind: str, subject: str, body: str) -> Message:
        n = self.inv.notifier
        n.note(self.target.name, self._facts(kind))
        msg = n.page(self.target.name, kind, subject, body) if severity == "page" else \
            n.info(self.target.name, kind, subject, body)
        self.rep.actions.append(f"{severity} '{kind}' {'sent' if msg.delivered else 'not sent: ' + str(msg.error)}")
        return msg

    def _facts(self, kind: str) -> PageFacts:
        """This tick's own facts for the page's glance block: its results, and since when the
        target has been failing (the state it read; a first failure: now)."""
        failing = [r for r in self.rep.checks if r.status is not Status.OK]
        old = self._state_before.failing_since if self._state_before else None
        # An UNKNOWN streak sets no failing_since: "not known" beats a made-up start.
        since = old if old else (None if kind in ("resolved", "unknown") else iso(self.clock.now()))
        return PageFacts(
            failed=", ".join(f"{r.name} {r.status.name}" + (f" ({r.error_kind})" if r.error_kind else "")
                             for r in failing) or None,
            since=parse_iso(since) if since else None,
            since_label="Was failing since" if kind == "resolved" else ("Failing since" if old else "Since"),
        )

    def _body(self, decision: policy.Decision, headline: str) -> str:
        lines = [headline, "", f"Target: {self.target.name}   verdict: {decision.verdict}   "
                 f"consecutive failures: {decision.consecutive_failures}", ""]
        for r in self.rep.checks:
            lines.append(f"  {r.status.name:<8} {r.name}: {r.summary}")
        lines += ["", "Next:", f"  sentinel status --target {self.target.name}",
                  f"  sentinel check --target {self.target.name}"]
        if decision.verdict == "confirmed" and not decision.recover:
            lines.append(f"  sentinel recover --target {self.target.name}   (after fixing what blocks it)")
        return "\n".join(lines)

    def _check_without_state(self, exc: Exception) -> TargetReport:
        """``check`` judges from the checks alone: an unreadable state table is a note, not a
        verdict (only a rate check that needs its stored previous sample turns UNKNOWN, by
        itself). Nothing is decided or saved, as always for ``check``."""
        self.rep.notes.append(f"state table unreadable ({exc}): judged from this run's checks alone")
        results = self.run_checks([c.name for c in self.target.checks], None)
        self.rep.checks = results
        self.rep.status = policy.worst(results)  # CRITICAL outranks UNKNOWN, as in every verdict
        return self.rep

    def _state_unreadable(self, exc: Exception) -> TargetReport:
        """Fail closed: no action. The checks still run read-only so on-call sees them (once:
        when the state write failed after they ran, their results are already in the report)."""
        self.rep.error = f"state unreadable: {exc}"
        self.rep.status = Status.UNKNOWN
        self.rep.decision = None  # nothing was decided: no verdict was saved, no action taken
        self.store = ReadOnlyStore(self.inv.services.store)
        if not self.rep.checks:
            try:
                self.rep.checks = self.run_checks([c.name for c in self.target.checks], None)
            except Exception as check_exc:
                self.rep.error += f"; checks not run ({type(check_exc).__name__})"
        self.inv.metrics.put("TargetStatus", int(Status.UNKNOWN), "None", target=self.target.name)
        if not self.read_only:  # one page per outage for every target it hits (run_tick's end)
            self.inv.outages.note(STATE_OUTAGE, self.target.name, str(exc))
            self.rep.actions.append("state table outage noted: paged once per outage, not per target")
        return self.rep

    # ------------------------------------------------------------------ recovery
    def _recovery_context(self) -> RecoveryContext:
        from recover.context import RecoveryContext

        svc = self.inv.services
        return RecoveryContext(
            config=self.inv.config, target=self.target, clients=svc.clients, store=self.store,
            lease=self.lease, clock=self.clock, deadline=self.deadline, resolver=svc.resolver,
            notifier=self.inv.notifier, metrics=self.inv.metrics, run_checks=self.run_checks,
            dry_run=self.inv.dry_run or self.target.recovery.dry_run, requested_by=self.inv.requested_by,
            outages=self.inv.outages, secrets=svc.secrets.cache.known_values,
        )

    def _start_recovery(self, state: TargetState, decision: policy.Decision) -> None:
        from recover import runbook

        reason = "; ".join(decision.reasons)
        try:
            result = runbook.start(self._recovery_context(), state, reason=reason, force=self.force,
                                   restart_only=decision.restart_only)
        except runbook.RecoveryUnavailable as exc:
            self.rep.actions.append(f"recovery not started: {exc}")
            self._send("page", "confirmed", f"{', '.join(decision.failing_checks)} CRITICAL",
                       self._body(decision, f"Confirmed failure; {exc}."))
            return
        self.rep.recovery = result.report
        self.rep.state_version = result.state.version
        queue.after_advance(self, result.state)

    def _advance_recovery(self, state: TargetState) -> TargetReport:
        from recover import runbook

        try:
            result = runbook.advance(self._recovery_context(), state)
        except runbook.RecoveryUnavailable as exc:
            self.rep.error = str(exc)
            self._recovery_metrics(state.incident or {})
            return self.rep
        self._recovery_done(result.state, result.report)
        self._watch_serving(result.state)
        return self.rep

    def _watch_serving(self, state: TargetState) -> None:
        """The target's checks run on every tick of a recovery too, through the normal path.

        Before the cut-over was verified (VERIFY_PATH / VERIFY passed) they are for status and
        metrics only: the incident is still deciding. From then on clients are on the new
        cluster, and it is watched like any cluster: its results are saved, TargetStatus comes
        from them, a failure counts into the streaks and pages. Nothing is started from a tick
        that advanced an incident; after DONE a streak that began on the new cluster carries
        over into the next confirmation (the runbook keeps it)."""
        inc = state.incident or {}
        serving = bool(inc.get("recovered_at")) and inc.get("phase") not in ("FAILED", None)
        checks = list(self.target.checks)
        if self.read_only or not checks or state.version != self.rep.state_version:
            return
        missing = [c.name for c in checks if c.name not in self.path_results]
        need = max([check_budget(c) for c in checks if c.name in missing] or [0.0]) + 5.0
        if missing and self.deadline.remaining() < need:
            self.rep.notes.append(f"checks not run this tick: {self.deadline.remaining():.0f} s left after the "
                                  f"recovery, they need {need:.0f} s")
            if serving:
                self.inv.metrics.put("TargetStatus", int(self.rep.status), "None", target=self.target.name)
            return
        if missing:
            self.run_checks(missing, None)
        results = [self.path_results[c.name] for c in checks if c.name in self.path_results]
        self.rep.checks = results
        if not serving:
            for r in results:
                self.inv.metrics.put("CheckStatus", int(r.status), "None", target=self.target.name, check=r.name)
                self.inv.metrics.put("CheckLatencyMs", r.latency_ms, "Milliseconds", target=self.target.name,
                                     check=r.name)
            return
        decision = policy.evaluate(self.target, results, state, self.clock.now())
        decision.recover = False  # never from a tick that advanced an incident: the next tick decides
        self.rep.decision = decision.to_dict()
        # The report keeps saying an incident is still open (WARNING) unless what serves is worse.
        if decision.status is Status.CRITICAL or self.rep.status is Status.OK:
            self.rep.status = decision.status
        self._check_metrics(results, decision)
        new_state = self._next_state(state, results, decision)
        self._notify(state, new_state, decision)
        try:
            saved = self.store.put(self.target.name, new_state, lease=self.lease, now=self.clock.now(),
                                   events=self._events(state, decision))
        except ConflictError as exc:
            self.rep.notes.append(f"the serving cluster's results were not saved ({exc})")
            return
        except StateError as exc:
            self.inv.outages.note(STATE_OUTAGE, self.target.name, str(exc))
            return
        self.rep.state_version = saved.version

    def _abort(self, state: TargetState) -> TargetReport:
        from recover import runbook

        if self.inv.dry_run:
            self.rep.error = "usage: abort has no dry run (it only rolls back; see `sentinel status`)"
            return self.rep
        if not runbook.is_active(state):
            self.rep.error = f"usage: no recovery in progress for {self.target.name}"
            return self.rep
        try:
            result = runbook.abort(self._recovery_context(), state, reason=self.reason)
        except runbook.RecoveryUnavailable as exc:
            self.rep.error = str(exc)
            return self.rep
        return self._recovery_done(result.state, result.report)

    def _answer(self, state: TargetState, *, approve: bool) -> TargetReport:
        """``sentinel approve|deny``: a person's answer to the incident's pending approval
        (recover.approval), under the lease the command waited for."""
        from recover import runbook

        if self.inv.dry_run:
            self.rep.error = f"usage: {self.action} has no dry run (see `sentinel plan` for what the rung would do)"
            return self.rep
        try:
            result = runbook.answer(self._recovery_context(), state, approve=approve, reason=self.reason,
                                    rung=self.answering.get("rung"), incident=self.answering.get("incident"))
        except runbook.RecoveryUnavailable as exc:
            self.rep.error = str(exc)
            return self.rep
        return self._recovery_done(result.state, result.report)

    def _recovery_done(self, state: TargetState, report: dict[str, Any]) -> TargetReport:
        if report.get("store_failed"):
            self.inv.outages.note(STATE_OUTAGE, self.target.name, str(report["store_failed"]))
        self.rep.recovery = report
        self.rep.state_version = state.version
        state = queue.after_advance(self, state)
        self.rep.status = Status[str(report.get("status", "UNKNOWN"))] \
            if str(report.get("status", "")) in Status.__members__ else Status.WARNING
        self._recovery_metrics(state.incident or {})
        return self.rep

    def _recovery_metrics(self, incident: dict[str, Any]) -> None:
        """Every tick during a recovery says how the target is: CRITICAL until clients are
        back (VERIFY_PATH passed), so the unhealthy alarm does not go OK mid-outage for lack
        of data; and which phase the runbook is in."""
        from recover.incident import Phase

        name = self.target.name
        served = bool(incident.get("recovered_at")) and incident.get("phase") != "FAILED"
        if not served:  # once clients are served, the watch on the new cluster says (_watch_serving)
            self.inv.metrics.put("TargetStatus", int(Status.CRITICAL), "None", target=name)
        phase = str(incident.get("phase") or "")
        if phase in Phase.__members__:
            self.inv.metrics.put("RecoveryPhase", Phase(phase).number, "None", target=name)

