"""The remediation ladder: failure → traffic healthy again when a HiveServer2 restart fixes it
(``ladder: [restart_service, replace]``) vs the relaunch (``[replace]``), same run, on
sentinel's real tick loop (moto, the sandbox's HiveServer2 stubs and TLS load balancer, a
simulated clock).

The world: the old master's HiveServer2 hangs at the failure offset; the restart command
un-hangs it (what a restart of a process wedged by metastore load does); a relaunch takes
``--launch-min`` of EMR time. Ticks every 10 min (EventBridge); with ``--recheck`` a failing
tick schedules the next one ``recovery.when.recheck_after_s`` later (the fast confirmation of
the queue issue), so both schedules are reported.

SSM, two ways, same run (issue 18):

- ``moto``: moto's SSM, which answers ``Success`` to the first ``GetCommandInvocation``; the
  restart takes effect on ``SendCommand``.
- ``realistic``: what SSM documents and does. ``GetCommandInvocation`` answers
  ``InvocationDoesNotExist`` (a ClientError) for ``--ssm-not-visible-s`` after
  ``SendCommand``, then ``InProgress`` for ``--ssm-in-progress-s``, then ``Success``; the
  restart takes effect when the command succeeds. Times are the simulated clock's: sentinel's
  waits (``recover.phases.SLEEP``) advance it.

Each incident reports the rung that ended it (the ladder's path: ``restart_service:failed >
replace:recovered`` when the restart rung gave up and the cluster was relaunched), so a restart
rung that takes SSM's "not visible yet" for a failure shows as a relaunch, not just as a slower
number. The relaunch baseline (``[replace]``) sends no SSM command, so it is measured once per
schedule and is the baseline of both SSM modes.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from bench.common import table, write

TICK_MIN = 10


@dataclass(frozen=True)
class SsmTiming:
    """How long after ``SendCommand`` SSM shows the invocation, and how long it runs."""

    not_visible_s: float
    in_progress_s: float


@dataclass
class Outcome:
    minutes: float  # failure → clients served again (the incident's recovered_at)
    rung: str  # the rung that ended the incident
    path: str  # every rung tried: "restart_service:failed > replace:recovered"
    notes: list[str] = field(default_factory=list)  # why a rung failed
    ssm_answers: dict[str, int] = field(default_factory=dict)  # GetCommandInvocation: what it answered, how often


class Ssm:
    """The ssm clients' view of the restart: moto's (``timing`` None) or SSM's realistic one,
    injected with botocore hooks on both ssm clients (read-only and changing), as
    tests/functional/test_recover_ladder.py's SsmStatus does."""

    def __init__(self, clients: Any, clock: Any, timing: SsmTiming | None, on_restart: Callable[[], None]) -> None:
        self.clock, self.timing, self.on_restart = clock, timing, on_restart
        self.sent: dict[str, datetime] = {}  # command id → SendCommand's time (the restart)
        self.diagnose: dict[str, datetime] = {}  # the diagnostics command (recovery.diagnostics): reads only
        self.answers: dict[str, int] = {}  # GetCommandInvocation: InvocationDoesNotExist / InProgress / Success
        self._clients = [clients.client("ssm"), clients.changing_client("ssm")]
        for c in self._clients:
            c.meta.events.register("before-parameter-build", self._params)
            c.meta.events.register("before-call", self._before)
            c.meta.events.register("after-call", self._after)

    def restart_done(self) -> bool:
        """Has a restart command finished on the instance by now (whether or not anyone polls)?"""
        if not self.sent:
            return False
        if self.timing is None:
            return True
        took = timedelta(seconds=self.timing.not_visible_s + self.timing.in_progress_s)
        now: datetime = self.clock.now()
        return now >= min(self.sent.values()) + took

    def settle(self) -> None:
        """Apply what happened on the instance up to the simulated now."""
        if self.restart_done():
            self.on_restart()

    def _age_s(self, command_id: str) -> float | None:
        sent = self.sent.get(command_id) or self.diagnose.get(command_id)
        return None if sent is None else (self.clock.now() - sent).total_seconds()

    @staticmethod
    def _params(params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        context["bench_command_id"] = params.get("CommandId")  # before-call sees the serialized request only

    def _before(self, model: Any, context: dict[str, Any], **_: Any) -> Any:
        self.settle()
        if self.timing is None or model.name != "GetCommandInvocation":
            return None
        age = self._age_s(str(context.get("bench_command_id")))
        if age is None or age >= self.timing.not_visible_s:
            return None
        from botocore.awsrequest import AWSResponse

        self._answered("InvocationDoesNotExist")
        return (AWSResponse("https://ssm.invalid", 400, {}, None),
                {"Error": {"Code": "InvocationDoesNotExist", "Message": f"not visible yet ({age:.1f} s after send)"},
                 "ResponseMetadata": {"HTTPStatusCode": 400}})

    def _after(self, model: Any, parsed: dict[str, Any], http_response: Any, **_: Any) -> None:
        if http_response.status_code >= 300:
            return
        if model.name == "SendCommand" and str(parsed["Command"].get("Comment", "")).startswith("sentinel diagnose"):
            self.diagnose[str(parsed["Command"]["CommandId"])] = self.clock.now()  # changes nothing on the host
        elif model.name == "SendCommand":
            self.sent[str(parsed["Command"]["CommandId"])] = self.clock.now()
            self.settle()  # moto: the restart takes effect now
        elif model.name == "GetCommandInvocation" and self.timing is not None:
            age = self._age_s(str(parsed.get("CommandId")))
            if age is not None and age < self.timing.not_visible_s + self.timing.in_progress_s:
                parsed["Status"] = parsed["StatusDetails"] = "InProgress"
        if model.name == "GetCommandInvocation":
            self._answered(str(parsed.get("Status")))

    def _answered(self, what: str) -> None:
        self.answers[what] = self.answers.get(what, 0) + 1

    def close(self) -> None:
        for c in self._clients:
            c.meta.events.unregister("before-parameter-build", self._params)
            c.meta.events.unregister("before-call", self._before)
            c.meta.events.unregister("after-call", self._after)


def _ended(inc: dict[str, Any], failure_at: datetime, ssm_answers: dict[str, int]) -> Outcome:
    from monitor.core.clock import parse_iso

    rungs = inc.get("rungs") or [{"rung": "replace"}]
    # recovered_at is set: the last rung is the one that served clients again (its outcome may
    # be written only when the incident closes)
    path = " > ".join(f"{r.get('rung')}:{r.get('outcome') or 'recovered'}" for r in rungs)
    ended_by = str(rungs[-1].get("rung"))
    notes = [f"{r.get('rung')}: {r.get('note')}" for r in rungs if r.get("outcome") == "failed"]
    healthy_at = parse_iso(str(inc["recovered_at"]))
    return Outcome((healthy_at - failure_at).total_seconds() / 60, ended_by, path, notes, dict(ssm_answers))


def time_to_healthy(offset_min: float, *, ladder: list[dict[str, Any]], launch_min: float,
                    recheck_s: float | None, ssm: SsmTiming | None = None, diagnostics: bool = False) -> Outcome:
    """Minutes from the failure until clients are served again (the incident's
    ``recovered_at``: VERIFY after a restart, VERIFY_PATH after a relaunch), and the rung.
    ``diagnostics``: the incident collects diagnostics first (recovery.diagnostics, SSM)."""
    from moto import mock_aws

    from bench.incident import _simulate_emr
    from checks.base import Deadline
    from monitor.config import parse_config
    from monitor.cycle import run_tick
    from monitor.runtime import new_invocation
    from monitor.sandbox.demo import SANDBOX_ENV, build_world
    from recover import phases

    os.environ.update(SANDBOX_ENV)
    with tempfile.TemporaryDirectory() as tmp, mock_aws():
        w = build_world(tmp)
        clock, services, old = w.clock, w.services, w.old
        raw = services.config.model_dump(mode="json", exclude_none=True, serialize_as_any=True)
        raw["targets"][0]["recovery"]["ladder"] = ladder
        if diagnostics:
            raw["targets"][0]["recovery"]["diagnostics"] = {"via": "ssm", "timeout_s": 60}
        services.config = parse_config(raw)

        def restarted() -> None:
            old.mode = "ok"  # the restart un-wedges HiveServer2

        world_ssm = Ssm(services.clients, clock, ssm, restarted)
        sleep = phases.SLEEP

        def simulated_sleep(s: float) -> None:  # waiting is simulated time; the instance goes on meanwhile
            clock.advance(timedelta(seconds=s))
            world_ssm.settle()

        phases.SLEEP = simulated_sleep
        launched: dict[str, Any] = {}
        failure_at = clock.now() + timedelta(minutes=offset_min)
        try:
            for n in range(60):
                if clock.now() >= failure_at and not world_ssm.sent:
                    old.mode = "hang_after_connect"
                world_ssm.settle()
                _simulate_emr(w.seeded.cluster_id, launched, clock.now(), launch_min)
                report = run_tick(new_invocation(services, request_id=f"t{n}"), deadline=Deadline.after(120))
                inc = services.store.get("prod-hive").incident or {}
                if inc.get("recovered_at"):  # clients served again (VERIFY / VERIFY_PATH passed)
                    return _ended(inc, failure_at, world_ssm.answers)
                failing = any((t.decision or {}).get("verdict") == "failing" for t in report.targets)
                step = timedelta(seconds=recheck_s) if recheck_s and failing else timedelta(minutes=TICK_MIN)
                clock.advance(step)
        finally:
            phases.SLEEP = sleep
            world_ssm.close()
            w.stop()
    raise RuntimeError(f"no recovery within 60 ticks (offset {offset_min}, ladder {ladder}, ssm {ssm})")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--launch-min", type=float, default=15.0, help="EMR launch + setup steps")
    parser.add_argument("--recheck-s", type=float, default=120.0, help="recovery.when.recheck_after_s")
    parser.add_argument("--ssm-not-visible-s", type=float, default=1.0,
                        help="realistic SSM: InvocationDoesNotExist this long after SendCommand")
    # 6 s, not less: the restart phase polls every RESTART_POLL_S (5 s) from the send, so an
    # InProgress that ends before the second poll (not_visible + in_progress <= 5) is never seen
    parser.add_argument("--ssm-in-progress-s", type=float, default=6.0,
                        help="realistic SSM: then InProgress this long, then Success")
    args = parser.parse_args()
    offsets = [0.5, 3.0, 6.0, 9.5]
    restart: list[dict[str, Any]] = [{"rung": "restart_service", "via": "ssm", "warmup_s": 60}, {"rung": "replace"}]
    replace: list[dict[str, Any]] = [{"rung": "replace"}]
    realistic = SsmTiming(args.ssm_not_visible_s, args.ssm_in_progress_s)
    modes: dict[str, SsmTiming | None] = {"moto": None, "realistic": realistic, "realistic+diagnostics": realistic}
    rows: list[list[Any]] = []
    out: dict[str, Any] = {}
    for label, recheck in (("10-min schedule", None), (f"re-check {args.recheck_s:g} s", args.recheck_s)):
        base = [time_to_healthy(off, ladder=replace, launch_min=args.launch_min, recheck_s=recheck) for off in offsets]
        p_med = statistics.median(o.minutes for o in base)
        out[label] = {"replace_min": [o.minutes for o in base], "replace_median_min": p_med}
        for mode, timing in modes.items():
            runs = [time_to_healthy(off, ladder=restart, launch_min=args.launch_min, recheck_s=recheck, ssm=timing,
                                    diagnostics=mode.endswith("+diagnostics")) for off in offsets]
            if mode == "moto":  # the bench's own world: a restart fixes it, moto answers at once
                assert all(o.rung == "restart_service" for o in runs), [o.path for o in runs]
            for off, o, p in zip(offsets, runs, base, strict=True):
                rows.append([label, mode, f"{off:g}", o.minutes, o.path, p.minutes, o.minutes / p.minutes])
            r_med = statistics.median(o.minutes for o in runs)
            ended = sorted({o.rung for o in runs})
            rows.append([label, mode, "median", r_med, f"ended by {', '.join(ended)}", p_med, r_med / p_med])
            out[label][mode] = {"restart_ladder_min": [o.minutes for o in runs], "ended_by": [o.rung for o in runs],
                                "paths": [o.path for o in runs], "failed_rung_notes": [o.notes for o in runs],
                                "ssm_answers": [o.ssm_answers for o in runs],
                                "restart_ladder_median_min": r_med, "ratio_median_vs_replace": r_med / p_med}
        moto_med = out[label]["moto"]["restart_ladder_median_min"]
        real_med = out[label]["realistic"]["restart_ladder_median_min"]
        out[label]["realistic_vs_moto"] = real_med / moto_med
        out[label]["diagnostics_vs_realistic"] = out[label]["realistic+diagnostics"]["restart_ladder_median_min"] / real_med
    print(table(rows, ["schedule", "SSM", "failure offset min", "restart ladder: healthy after min",
                       "rungs (ended by the last)", "replace: healthy after min", "ratio"]))
    for label in out:
        print(f"{label}: realistic SSM / moto SSM, restart ladder medians: {out[label]['realistic_vs_moto']:.3f}; "
              f"with diagnostics first / without: {out[label]['diagnostics_vs_realistic']:.3f}")
    notes = sorted({n for label in out for mode in modes for ns in out[label][mode]["failed_rung_notes"] for n in ns})
    for n in notes:
        print(f"failed rung: {n}")
    write("ladder", {"args": vars(args), "offsets_min": offsets, **out})
    return 0


if __name__ == "__main__":
    sys.exit(main())
