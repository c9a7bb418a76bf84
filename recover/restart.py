"""The restart_service rung's phases (DESIGN §10): RESTART runs the rung's command on the
target's current master (SSM Run Command or an EMR step), once, and waits for it; VERIFY runs
the trigger checks through the normal path after the warm-up. Waits go through
``recover.phases.SLEEP`` (the one seam tests and the sandbox replace)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from monitor.config import RestartRung
from monitor.core.clock import iso, parse_iso
from monitor.core.clusters import ClusterLookupError, is_multi_primary
from monitor.core.faults import AwsError
from recover import emr as emr_ops
from recover import ha, phases
from recover.facades import Emr, Ssm
from recover.incident import Phase
from recover.phases import RECOVERED_ON_ITS_OWN, SEND_LIST_LAG, NotListedYet, reserve_s, take_claim
from recover.run import Again, Fail, Next, Outcome, Resolved, Run, Wait
from recover.secret_keys import mask_text

SSM_DONE = {"Success"}
SSM_FAILED = {"Cancelled", "TimedOut", "Failed", "Cancelling", "Undeliverable", "Terminated", "InvalidPlatform",
              "AccessDenied", "DeliveryTimedOut", "ExecutionTimedOut"}
STEP_FAILED = {"CANCELLED", "FAILED", "INTERRUPTED", "CANCEL_PENDING"}
RESTART_POLL_S = 5.0  # poll a running command/step this often within one invocation,
RESTART_POLLS = 24  # for at most 2 minutes (a restart takes seconds; later ticks keep looking)


def _restart_rung(run: Run) -> RestartRung:
    rung = run.rctx.target.recovery.ladder[run.inc.rung]
    assert isinstance(rung, RestartRung)
    return rung


def restart(run: Run) -> Outcome:
    """RESTART: run the rung's command on the target's current master, once, and wait for it.
    The master is found from the cluster (never from config); the cluster must carry
    ``sentinel:target`` (SendCommand and AddJobFlowSteps are allowed only on owned clusters).
    A command or step that does not finish within ``timeout_min`` fails the rung (a step
    waits behind running steps when step concurrency is 1: the rung moves on, and cancels it)."""
    inc, rung = run.inc, _restart_rung(run)
    emr = Emr(run.aws)
    if not (inc.restart or {}).get("instance_id"):
        try:
            cluster = emr.find(run.rctx.target.cluster)
        except ClusterLookupError as exc:
            return Fail(str(exc))
        if cluster is None or emr_ops.cluster_state(cluster) not in ("WAITING", "RUNNING"):
            what = "no active cluster" if cluster is None else f"{cluster['Id']} is {emr_ops.cluster_state(cluster)}"
            return Fail(f"nothing to restart on: {what}")
        try:
            emr_ops.require_owned(cluster, run.rctx.target.name)
        except emr_ops.NotOwned as exc:
            return Fail(str(exc))
        cid = str(cluster["Id"])
        fleet = cluster.get("InstanceCollectionType") == "INSTANCE_FLEET"
        every = emr_ops.master_of(emr, cid, fleet=fleet, live_only=False)
        masters = [m for m in every if m.get("state") == "RUNNING"]
        if not masters:
            return Fail(f"{cid} has no running master instance")
        chosen = masters[0]
        if is_multi_primary(every):  # three primaries: the one that fails, one at a time (recover/ha.py)
            picked, said = ha.pick_restart(run, every)
            if picked is None:
                return _nothing_to_restart(run, said)
            chosen = picked
            ha.note_restarted(run, str(chosen["instance_id"]), fleet=fleet)
            inc.notes.append(f"RESTART on {cid}: {said}: restarting HiveServer2 on {ha.name(chosen)}")
        inc.restart = {"cluster_id": cid, "instance_id": chosen["instance_id"], "via": rung.via,
                       "private_dns": chosen.get("private_dns")}
        if inc.ha:
            inc.restart["since"] = iso(run.now())
    r = inc.restart
    assert r is not None
    if not r.get("sent_at"):
        try:
            found = _restart_already_sent(run, r)
        except NotListedYet as exc:
            return Wait(str(exc))
        if found is None:
            stand_down = take_claim(run, str(r["cluster_id"]))
            if stand_down is not None:
                return stand_down
            r.update(_send_restart(run, rung, r), sent_at=iso(run.now()))
        else:
            r.update(found, sent_at=iso(run.now()), note="found an earlier send of this incident: not resent")
    limit = timedelta(minutes=rung.timeout_min)
    polls = 0
    while True:
        status, detail = _restart_status(run, r)
        r["status"] = status
        if status == "done":
            r["done_at"] = iso(run.now())
            return Next(f"restarted HiveServer2 on {r['cluster_id']}/{r['instance_id']} via {rung.via}: {detail}")
        if status == "failed":
            return Fail(f"restart via {rung.via} on {r['cluster_id']}/{r['instance_id']} failed: {detail}")
        waited = run.now() - parse_iso(str(r["sent_at"]))
        if waited > limit:
            cancelled = _cancel_restart(run, r)
            return Fail(f"restart via {rung.via} still {detail} after {waited.total_seconds() / 60:.1f} min "
                        f"(timeout_min {rung.timeout_min:g}){cancelled}")
        if run.dry_run or polls >= RESTART_POLLS or run.rctx.deadline.remaining() < RESTART_POLL_S + reserve_s(run):
            return Wait(f"restart via {rung.via} is {detail} ({waited.total_seconds() / 60:.1f} of "
                        f"{rung.timeout_min:g} min)")
        polls += 1
        phases.SLEEP(RESTART_POLL_S)


def current_master(run: Run) -> dict[str, Any] | str:
    """The target's current master ({cluster_id, instance_id, private_dns}) from EMR (never
    from config), on a live cluster that carries ``sentinel:target`` (SendCommand and
    AddJobFlowSteps are allowed only on owned clusters); else why there is none."""
    emr = Emr(run.aws)
    try:
        cluster = emr.find(run.rctx.target.cluster)
    except ClusterLookupError as exc:
        return str(exc)
    if cluster is None or emr_ops.cluster_state(cluster) not in ("WAITING", "RUNNING"):
        return "no active cluster" if cluster is None else \
            f"no active cluster: {cluster['Id']} is {emr_ops.cluster_state(cluster)}"
    try:
        emr_ops.require_owned(cluster, run.rctx.target.name)
    except emr_ops.NotOwned as exc:
        return str(exc)
    cid = str(cluster["Id"])
    fleet = cluster.get("InstanceCollectionType") == "INSTANCE_FLEET"
    masters = [m for m in emr_ops.master_of(emr, cid, fleet=fleet) if m.get("state") == "RUNNING"]
    if not masters:
        return f"{cid} has no running master instance"
    return {"cluster_id": cid, "instance_id": masters[0]["instance_id"], "private_dns": masters[0].get("private_dns")}


def _nothing_to_restart(run: Run, said: str) -> Outcome:
    """Three primaries, and none to restart: every running one serves on its own endpoint (or
    each failing one was restarted already in this rung)."""
    restarted = (run.inc.ha or {}).get("restarted") or []
    if restarted:
        return Fail(f"{said}: HiveServer2 restarted on {', '.join(restarted)} already in this rung; still failing")
    names = list(run.rctx.target.recovery.when.checks) if run.rctx.target.recovery.when else []
    ok, summary = run.verify(names, None)
    if ok:
        run.inc.outcome = RECOVERED_ON_ITS_OWN
        return Resolved(f"{RECOVERED_ON_ITS_OWN}: no primary fails on its own endpoint ({said}) and the trigger "
                        f"checks pass ({summary}); nothing restarted")
    return Fail(f"no primary fails on its own endpoint ({said}) but the trigger checks do ({summary}): "
                "a restart would not help")


def _send_restart(run: Run, rung: RestartRung, r: dict[str, Any]) -> dict[str, Any]:
    inc = run.inc
    if rung.via == "ssm":
        command_id = Ssm(run.aws).run_shell(r["instance_id"], rung.command, comment=f"sentinel {inc.id}",
                                            timeout_s=max(30, int(rung.timeout_min * 60)))
        return {"command_id": command_id}
    [step_id] = Emr(run.aws).add_job_flow_steps(r["cluster_id"], [{
        "Name": _step_name(inc.id, r), "ActionOnFailure": "CONTINUE",
        "HadoopJarStep": {"Jar": "command-runner.jar", "Args": ["bash", "-c", rung.command]}}])
    return {"step_id": step_id}


def _step_name(incident_id: str, r: dict[str, Any]) -> str:
    """One step per restart: on a cluster with three primaries, per primary restarted."""
    each = f" {r['instance_id']}" if r.get("since") else ""
    return f"sentinel restart {incident_id}{each}"[:256]


def _restart_already_sent(run: Run, r: dict[str, Any]) -> dict[str, Any] | None:
    """Before sending: did an earlier invocation of this incident send it already (an intent
    without a recorded outcome)? Look by the incident id in the comment / step name."""
    inc = run.inc
    call = "ssm.send_command" if r["via"] == "ssm" else "emr.add_job_flow_steps"
    # Only RESTART's own sends (DIAGNOSE sends a command to the same instance before it), and
    # with three primaries only this primary's restart (each is sent after it was picked).
    sent = [i for i in inc.intents_for(call, Phase.RESTART) if str(i.get("at")) >= str(r.get("since") or "")]
    done = [i for i in sent if (i.get("outcome") or {}).get("id")]
    if done:
        key = "command_id" if r["via"] == "ssm" else "step_id"
        return {key: str(done[-1]["outcome"]["id"])}
    unsettled = [i for i in sent if i.get("status") in ("pending", "unknown")]
    if not unsettled:
        return None
    if r["via"] == "ssm":
        for cmd in Ssm(run.aws).commands(r["instance_id"]):
            if cmd.get("Comment") == f"sentinel {inc.id}"[:100]:
                return {"command_id": str(cmd["CommandId"])}
    else:
        for step in Emr(run.aws).list_steps(r["cluster_id"]):
            if step.get("Name") == _step_name(inc.id, r):
                return {"step_id": str(step["Id"])}
    # Sent with no recorded outcome and not listed: ListCommands (like ListClusters) lags
    # behind a send. Give it a settle window before sending again, as LAUNCH does.
    waited = run.now() - parse_iso(str(unsettled[-1]["at"]))
    if waited < SEND_LIST_LAG and not run.dry_run:
        raise NotListedYet(f"{call} was sent at {unsettled[-1]['at']} with no recorded outcome; waiting for it to "
                           f"be listed before any resend ({waited.total_seconds():.0f} of "
                           f"{SEND_LIST_LAG.total_seconds():.0f} s)")
    inc.notes.append(f"{call} of {unsettled[-1]['at']} was not listed after {waited.total_seconds():.0f} s: sent again")
    return None


def _restart_status(run: Run, r: dict[str, Any]) -> tuple[str, str]:
    """("done" | "failed" | "running", what AWS says). A command SSM does not show yet
    (``InvocationDoesNotExist`` right after SendCommand, documented) or a throttled or failed
    poll is still running as far as anyone knows: the rung's ``timeout_min`` bounds it."""
    try:
        return _restart_status_once(run, r)
    except AwsError as exc:
        if not exc.transient:
            raise
        what = f"command {r.get('command_id')}" if r["via"] == "ssm" else f"step {r.get('step_id')}"
        return "running", f"{what} not visible yet ({exc.code})" if exc.not_visible else \
            f"{what} status unknown ({exc.code}, transient)"


def _restart_status_once(run: Run, r: dict[str, Any]) -> tuple[str, str]:
    if r["via"] == "ssm":
        inv = Ssm(run.aws).invocation(r["command_id"], r["instance_id"])
        status = str(inv.get("Status"))
        if status in SSM_DONE:
            return "done", f"command {r['command_id']} Success"
        if status in SSM_FAILED:
            # masked before it is cut and kept (the incident, the climbing page): a failing command
            # may print a password (a metastore check, a config dump)
            raw = str(inv.get("StandardErrorContent") or inv.get("StatusDetails") or "")[:4000]
            err = mask_text(raw, run.rctx.secrets())[:200]
            return "failed", f"command {r['command_id']} {status}" + (f": {err}" if err else "")
        return "running", f"command {r['command_id']} {status}"
    step = Emr(run.aws).describe_step(r["cluster_id"], r["step_id"])
    state = str((step.get("Status") or {}).get("State"))
    if state == "COMPLETED":
        return "done", f"step {r['step_id']} COMPLETED"
    if state in STEP_FAILED:
        return "failed", f"step {r['step_id']} {state}"
    return "running", f"step {r['step_id']} {state}" + (" (waiting behind other steps)" if state == "PENDING" else "")


def _cancel_restart(run: Run, r: dict[str, Any]) -> str:
    """Best effort: a restart that runs later, in the middle of the next rung, helps nobody."""
    try:
        if r["via"] == "ssm":
            Ssm(run.aws).cancel(r["command_id"], r["instance_id"])
        else:
            Emr(run.aws).cancel_steps(r["cluster_id"], [r["step_id"]])
    except AwsError as exc:
        return f"; cancel failed ({exc.code})"
    return "; cancelled"


def verify_restart(run: Run) -> Outcome:
    """VERIFY: after the warm-up, the trigger checks through the normal path. Healthy → DONE
    with no cluster change; still failing after ``verify_timeout_min`` → the next rung."""
    inc, rung = run.inc, _restart_rung(run)
    done_at = parse_iso(str((inc.restart or {}).get("done_at") or inc.phase_started_at))
    ready_at = done_at + timedelta(seconds=rung.warmup_s)
    wait_s = (ready_at - run.now()).total_seconds()
    if wait_s > 0:
        if run.dry_run or run.rctx.deadline.remaining() < wait_s + reserve_s(run):
            return Wait(f"HiveServer2 warming up: checks in {wait_s:.0f} s")
        phases.SLEEP(wait_s)
    names = list(run.rctx.target.recovery.when.checks) if run.rctx.target.recovery.when else []
    if not names:
        return Fail("no trigger checks to verify the restart with")
    r = inc.restart or {}
    if (inc.ha or {}).get("restarted") and r.get("instance_id"):  # three primaries: this one, then the next
        served, said = ha.restarted_serves(run, r)
        if not served:
            if run.now() - ready_at > timedelta(minutes=rung.verify_timeout_min):
                return Fail(f"{r['instance_id']} still fails {rung.verify_timeout_min:g} min after the restart: {said}")
            return Wait(f"{r['instance_id']} not serving yet after the restart: {said}")
        every = emr_ops.master_of(Emr(run.aws), str(r["cluster_id"]), fleet=bool((inc.ha or {}).get("fleet")),
                                  live_only=False)
        more, primaries = ha.next_to_restart(run, every)
        if more:
            return Again(f"{r['instance_id']} serves again after the restart ({said}); {primaries}: the next one")
        inc.notes.append(f"after the restart of {r['instance_id']}: {primaries}")
    ok, summary = run.verify(names, None)
    if ok:
        inc.recovered_at = iso(run.now())
        return Next(f"healthy again: {summary}")
    if run.now() - ready_at > timedelta(minutes=rung.verify_timeout_min):
        return Fail(f"still failing {rung.verify_timeout_min:g} min after the restart: {summary}")
    return Wait(f"not healthy yet after the restart: {summary}")
