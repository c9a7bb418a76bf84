"""DIAGNOSE (``recovery.diagnostics``): before the first rung acts, run a read-only command on
the target's current master and keep what it printed.

Why: a restart or a relaunch destroys the evidence (the hung JVM's threads, the log around
the failure, the connections to the metastore); without it every recurring failure is
fixed again and never explained.

Rules it keeps:
- it never delays the fix past ``timeout_s`` from the incident's start (the command is
  cancelled then), and it never fails the incident: whatever goes wrong is noted and the
  first rung's first phase follows;
- it never sends twice: SendCommand is fenced like every changing call (the intent is
  persisted under the lease first); an intent without a recorded outcome is looked up in
  ListCommands by its comment, and when it is not listed the command is not sent again
  (diagnostics are not worth the risk or the wait of ListCommands' lag);
- transient or not-yet-visible AWS answers are polled through until the timeout;
- the output is masked (:func:`recover.secret_keys.mask_text`, plus the secret values the
  invocation knows) before it is kept anywhere: the incident keeps the first 4 KB (state,
  ``sentinel status``, pages), S3 the whole of what SSM returned (``s3_uri``); SSM returns at
  most 24,000 characters of standard output, so the default command prints its short parts
  first;
- dry run / plan: the SendCommand is recorded, not sent.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from monitor.config import Diagnostics
from monitor.core.clock import iso, parse_iso
from monitor.core.faults import AwsError
from recover import phases
from recover.facades import S3, Ssm
from recover.incident import Phase
from recover.restart import SSM_DONE, SSM_FAILED, current_master
from recover.run import Next, Outcome, Run, Stop, Wait
from recover.secret_keys import mask_text

KEEP_BYTES = 4096  # of the masked output, on the incident
POLL_S = 5.0
SUMMARY_LINES = 8
RESERVE_S = 5.0  # time left in the invocation after a poll, for the save that follows


def comment(incident_id: str) -> str:
    return f"sentinel diagnose {incident_id}"[:100]


def diagnose(run: Run) -> Outcome:
    """The DIAGNOSE phase: always :class:`Next` (or :class:`Wait` when this invocation runs out
    of time before ``timeout_s``); a failure is a note, never a failed incident."""
    cfg = run.rctx.target.recovery.diagnostics
    d = run.inc.diagnostics = dict(run.inc.diagnostics or {})
    if cfg is None:  # the config changed under a running incident
        return _end(run, d, "skipped", "recovery.diagnostics is no longer configured")
    until = parse_iso(run.inc.phase_started_at) + timedelta(seconds=cfg.timeout_s)
    try:
        return _diagnose(run, cfg, d, until)
    except Stop:
        raise
    except Exception as exc:  # an AWS answer or a bug: diagnostics never hold up the fix
        what = str(exc) if isinstance(exc, AwsError) else f"internal error {type(exc).__name__}: {exc}"
        _cancel(run, d)
        return _end(run, d, "error", f"diagnostics failed: {what}")


def _diagnose(run: Run, cfg: Diagnostics, d: dict[str, Any], until: datetime) -> Outcome:
    if not d.get("instance_id"):
        master = current_master(run)
        if isinstance(master, str):
            return _end(run, d, "skipped", f"no master to diagnose: {master}")
        d.update(cluster_id=master["cluster_id"], instance_id=master["instance_id"], via=cfg.via)
    instance = str(d["instance_id"])
    if run.dry_run:
        Ssm(run.aws).run_shell(instance, cfg.command, comment=comment(run.inc.id), timeout_s=cfg.timeout_s,
                             execution_timeout_s=cfg.timeout_s)
        return _end(run, d, "recorded", "dry run: the diagnostics command is recorded, not sent")
    while not d.get("command_id"):
        earlier = _earlier_send(run, instance)
        if earlier == "":
            return _end(run, d, "not sent", "an earlier SendCommand of this incident has no recorded answer and "
                                            "is not listed: not sent again (never twice)")
        if earlier is None:
            try:
                earlier = Ssm(run.aws).run_shell(instance, cfg.command, comment=comment(run.inc.id),
                                                 timeout_s=cfg.timeout_s, execution_timeout_s=cfg.timeout_s)
            except AwsError as exc:
                # Throttled: ask again while time is left. No answer (it may have been sent): the
                # next turn looks for it in ListCommands instead of sending again.
                if exc.transient and _sleep(run, until):
                    continue
                if exc.transient and run.now() < until:
                    return Wait(f"diagnostics: SendCommand {exc.code} (transient): asked again on the next tick")
                return _end(run, d, "not sent", f"SendCommand failed ({exc.code}): no diagnostics")
        d.update(command_id=earlier, sent_at=iso(run.now()))
        run.save(f"DIAGNOSE: command {earlier} sent to {instance}", kind="recovery-wait")
    command_id = str(d["command_id"])
    while True:
        inv = _poll(run, command_id, instance)
        status = str(inv.get("Status") or "unknown")
        d["status"] = status
        if status in SSM_DONE or status in SSM_FAILED:
            return _collect(run, cfg, d, inv)
        if run.now() >= until:
            cancelled = _cancel(run, d)
            d["status"] = "TimedOut"
            return _collect(run, cfg, d, inv, note=f"still {status} after timeout_s {cfg.timeout_s}: {cancelled}")
        if not _sleep(run, until):
            return Wait(f"diagnostics command {command_id} is {status}: the first rung acts at the latest at "
                        f"{iso(until)}")


def _sleep(run: Run, until: datetime) -> bool:
    """Wait one poll interval (at most until ``until``) when this invocation has the time;
    False when it has not (or ``until`` has passed)."""
    left = (until - run.now()).total_seconds()
    if left <= 0 or run.rctx.deadline.remaining() < min(POLL_S, left) + RESERVE_S:
        return False
    phases.SLEEP(min(POLL_S, left))
    return True


def _poll(run: Run, command_id: str, instance: str) -> dict[str, Any]:
    """GetCommandInvocation; a transient or not-yet-visible answer reads as still running."""
    try:
        return Ssm(run.aws).invocation(command_id, instance)
    except AwsError as exc:
        if not exc.transient:
            raise
        return {"Status": "NotVisibleYet" if exc.not_visible else f"unknown ({exc.code})"}


def _earlier_send(run: Run, instance: str) -> str | None:
    """The command id of an earlier send of this incident's diagnostics; "" when one may have
    been sent but cannot be found; None when none was."""
    mine = run.inc.intents_for("ssm.send_command", Phase.DIAGNOSE)
    done = [i for i in mine if (i.get("outcome") or {}).get("id")]
    if done:
        return str(done[-1]["outcome"]["id"])
    if not [i for i in mine if i.get("status") in ("pending", "unknown")]:
        return None
    try:
        listed = Ssm(run.aws).commands(instance)
    except AwsError:
        return ""
    for cmd in listed:
        if cmd.get("Comment") == comment(run.inc.id):
            return str(cmd["CommandId"])
    return ""


def _cancel(run: Run, d: dict[str, Any]) -> str:
    if not d.get("command_id") or d.get("status") in SSM_DONE or d.get("status") in SSM_FAILED or run.dry_run:
        return "nothing to cancel"
    try:
        Ssm(run.aws).cancel(str(d["command_id"]), str(d["instance_id"]))
    except Stop:
        raise
    except AwsError as exc:
        return f"cancel failed ({exc.code})"
    d["cancelled_at"] = iso(run.now())
    return "cancelled"


def _collect(run: Run, cfg: Diagnostics, d: dict[str, Any], inv: dict[str, Any], *, note: str = "") -> Outcome:
    """Mask what the command printed, keep its head on the incident, the whole in S3."""
    out = str(inv.get("StandardOutputContent") or "")
    err = str(inv.get("StandardErrorContent") or "")
    text = mask_text(out + (f"\n== stderr\n{err}" if err.strip() else ""), run.rctx.secrets())
    raw = text.encode("utf-8")
    d.update(output=raw[:KEEP_BYTES].decode("utf-8", "ignore"), bytes=len(raw), truncated=len(raw) > KEEP_BYTES,
             exit_code=inv.get("ResponseCode"))
    if cfg.bucket:  # written even when empty: "it printed nothing" is a finding too
        key = "/".join(p for p in (cfg.prefix, run.rctx.target.name, f"{run.inc.id}.txt") if p)
        try:
            S3(run.aws).put_text(cfg.bucket, key, text or f"(command {d.get('command_id')} printed nothing)\n")
            d["s3"] = f"s3://{cfg.bucket}/{key}"
        except AwsError as exc:
            note = "; ".join(n for n in (note, f"not written to S3 ({exc.code})") if n)
    status = str(d.get("status"))
    return _end(run, d, status, note or f"command {d.get('command_id')} {status}")


def _end(run: Run, d: dict[str, Any], status: str, note: str) -> Outcome:
    d.update(status=status, note=note, finished_at=iso(run.now()))
    run.inc.diagnostics = d
    if status not in SSM_DONE:
        run.inc.notes.append(f"diagnostics: {note}")
    return Next(f"diagnostics {status}: {note}")


def summary(diag: dict[str, Any] | None, *, lines: int = SUMMARY_LINES) -> list[str]:
    """A few lines for a page or ``sentinel status``: the status, where the whole output is,
    and the first lines of the (masked) output."""
    if not diag:
        return []
    head = [ln for ln in str(diag.get("output") or "").splitlines() if ln.strip()][:lines]
    where = f"; whole output: {diag['s3']}" if diag.get("s3") else ""
    size = f" ({diag.get('bytes')} bytes{', first 4 KB kept' if diag.get('truncated') else ''})" \
        if diag.get("bytes") else ""
    return [f"Diagnostics: {diag.get('status')}{size}: {diag.get('note') or ''}{where}",
            *(f"  | {ln[:160]}" for ln in head)]
