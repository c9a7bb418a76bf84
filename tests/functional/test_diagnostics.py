"""recovery.diagnostics on moto (issue 21): DIAGNOSE runs a read-only command on the current
master before the first rung acts, keeps its masked output, and never holds up the fix. moto
runs no command: a botocore hook answers GetCommandInvocation for the diagnostics command."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from monitor import actions, render
from monitor.core.clock import parse_iso
from monitor.runtime import new_invocation
from recover import runbook
from tests.fakes import Script, services
from tests.recover_fixtures import (
    RESTART_THEN_REPLACE,
    TARGET,
    CallLog,
    Crash,
    CrashOnCall,
    FailCalls,
    Harness,
    World,
    both_clients,
    moto_world,
    new_clusters,
    recovery_config,
    timed_harness,
)

BUCKET = "diag-bucket"
CREDSTASH_PASSWORD = "Cr3dst4shPassw0rd"  # what the secrets cache holds for the hive check
OUTPUT = ("== systemctl status hive-server2\nActive: active (running)\n"
          "== hive-server2.log (last 200 lines)\n"
          f"INFO connecting to the metastore as hive with {CREDSTASH_PASSWORD}\n"
          "DEBUG javax.jdo.option.ConnectionPassword=hunter2 url=jdbc:mysql://db:3306/hive\n"
          "== thread dump\n\"HiveServer2-Handler-Pool\" #42 prio=5 WAITING\n")


@pytest.fixture
def world() -> Iterator[World]:
    with moto_world() as w:
        w.clients.client("s3").create_bucket(Bucket=BUCKET)
        yield w


class Host:
    """The master as SSM reports it: the diagnostics command prints ``output`` and ends with
    ``status``; every other command (the restart) succeeds."""

    def __init__(self, world: World, *, status: str = "Success", output: str = OUTPUT) -> None:
        self.status, self.output, self.diagnose_ids = status, output, set[str]()
        self._clients = both_clients(world.clients, "ssm")
        for c in self._clients:
            c.meta.events.register("after-call", self._hook)

    def _hook(self, parsed: dict[str, Any], model: Any, **_: Any) -> None:
        command = parsed.get("Command") or {}  # absent when the call failed
        if model.name == "SendCommand" and str(command.get("Comment", "")).startswith("sentinel diagnose"):
            self.diagnose_ids.add(parsed["Command"]["CommandId"])
        if model.name == "GetCommandInvocation" and parsed.get("CommandId") in self.diagnose_ids:
            parsed.update(Status=self.status, StandardOutputContent=self.output if self.status == "Success" else "")

    def close(self) -> None:
        for c in self._clients:
            c.meta.events.unregister("after-call", self._hook)

    def __enter__(self) -> Host:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def make(world: World, monkeypatch: pytest.MonkeyPatch, **diagnostics: Any) -> Harness:
    diag = {"timeout_s": 60, **diagnostics}
    return timed_harness(world, recovery_config(world, ladder=RESTART_THEN_REPLACE, diagnostics=diag), monkeypatch)


def start(h: Harness) -> dict[str, Any]:
    """A tick starts the recovery; the invocation's secrets cache holds the check's password."""
    ctx = h.rctx()
    ctx.secrets = lambda: [CREDSTASH_PASSWORD]
    return runbook.start(ctx, h.store.get(TARGET), reason="hive CRITICAL").report


def advance(h: Harness) -> dict[str, Any]:
    ctx = h.rctx()
    ctx.secrets = lambda: [CREDSTASH_PASSWORD]
    return runbook.advance(ctx, h.store.get(TARGET)).report


def status_text(h: Harness, world: World) -> str:
    svc = services(h.config, store=h.store, clients=world.clients, clock=h.clock)
    rep = actions.status(new_invocation(svc), [TARGET])
    return render.text(rep) + json.dumps(rep.data, default=str)


def comments(world: World) -> list[str]:
    return [str(c.get("Comment")) for c in world.clients.client("ssm").list_commands()["Commands"]]


# ------------------------------------------------------------------ what is kept, and where

def test_diagnostics_run_before_the_restart_and_no_secret_reaches_state_status_page_or_s3(
        world: World, fake_checks: Script, monkeypatch: pytest.MonkeyPatch) -> None:
    h = make(world, monkeypatch, s3_uri=f"s3://{BUCKET}/sentinel/diag")
    with Host(world), CallLog(world.clients) as log:
        report = start(h)
    assert report["phase"] == "DONE", report
    inc = h.incident()
    assert [t["phase"] for t in inc["timeline"]][:3] == ["DIAGNOSE", "RESTART", "VERIFY"]
    assert log.count("SendCommand") == 2 and sorted(comments(world))[0].startswith("sentinel diagnose")
    diag = inc["diagnostics"]
    assert diag["status"] == "Success" and "Active: active (running)" in diag["output"]
    assert "ConnectionPassword=****" in diag["output"] and "as hive with ****" in diag["output"]
    key = f"sentinel/diag/{TARGET}/{inc['id']}.txt"
    assert diag["s3"] == f"s3://{BUCKET}/{key}"
    in_s3 = world.clients.client("s3").get_object(Bucket=BUCKET, Key=key)["Body"].read().decode()
    assert "HiveServer2-Handler-Pool" in in_s3
    pages = [p["Message"] for p in world.pages()]
    assert "Diagnostics: Success" in pages[-1] and "Active: active (running)" in pages[-1]
    shown = status_text(h, world)
    assert "diagnostics: Success" in shown and "HiveServer2-Handler-Pool" in shown
    for where, text in {"state": h.store.get(TARGET).to_json(), "status": shown, "pages": "\n".join(pages),
                        "s3": in_s3}.items():
        assert CREDSTASH_PASSWORD not in text and "hunter2" not in text, where


def test_output_beyond_4_kb_is_cut_on_the_incident_and_whole_in_s3(
        world: World, fake_checks: Script, monkeypatch: pytest.MonkeyPatch) -> None:
    h = make(world, monkeypatch, s3_uri=f"s3://{BUCKET}")
    big = OUTPUT + "".join(f"\"pool-{i}\" #{i} prio=5 RUNNABLE\n" for i in range(600))
    with Host(world, output=big):
        assert start(h)["phase"] == "DONE"
    diag = h.incident()["diagnostics"]
    assert diag["truncated"] and len(diag["output"].encode()) <= 4096 < diag["bytes"]
    in_s3 = world.clients.client("s3").get_object(Bucket=BUCKET, Key=f"{TARGET}/{h.incident()['id']}.txt")
    assert "pool-599" in in_s3["Body"].read().decode()


# ------------------------------------------------------------------ bounded, never in the way

def test_a_diagnostics_command_that_hangs_is_cancelled_at_its_timeout_and_the_fix_proceeds(
        world: World, fake_checks: Script, monkeypatch: pytest.MonkeyPatch) -> None:
    h = make(world, monkeypatch)
    with Host(world, status="InProgress"), CallLog(world.clients, event="before-call") as log:
        report = start(h)
    assert report["phase"] == "DONE", report
    inc = h.incident()
    diag = inc["diagnostics"]
    # moto has no CancelCommand (NotImplemented): the cancel is sent, its failure noted, the fix goes on.
    assert diag["status"] == "TimedOut" and "cancel" in diag["note"] and log.count("CancelCommand") == 1
    waited = parse_iso(inc["restart"]["sent_at"]) - parse_iso(inc["started_at"])
    assert timedelta(seconds=60) <= waited <= timedelta(seconds=66), waited  # the fix waited timeout_s, no more
    assert [r["outcome"] for r in inc["rungs"]] == ["recovered"] and new_clusters(world) == []


def test_a_hang_past_the_invocations_end_is_cancelled_by_the_next_tick(
        world: World, fake_checks: Script, monkeypatch: pytest.MonkeyPatch) -> None:
    h = make(world, monkeypatch, timeout_s=20)  # below SSM's 30-s minimum delivery timeout: still accepted
    with Host(world, status="InProgress"), CallLog(world.clients, event="before-call") as log:
        ctx = h.rctx(deadline_s=8)  # this invocation has time for one look, not for a wait
        report = runbook.start(ctx, h.store.get(TARGET), reason="hive CRITICAL").report
        assert report["phase"] == "DIAGNOSE" and "acts at the latest" in report["waiting"], report
        h.clock.advance(minutes=2)
        report = advance(h)
    assert report["phase"] == "DONE", report
    assert log.count("CancelCommand") == 1 and h.incident()["diagnostics"]["status"] == "TimedOut"
    assert "timeout_s 20" in h.incident()["diagnostics"]["note"]


def test_no_master_to_diagnose_is_a_note_not_a_failure(
        world: World, fake_checks: Script, monkeypatch: pytest.MonkeyPatch) -> None:
    h = make(world, monkeypatch)
    with Host(world), FailCalls(world.clients, "emr", "ListInstances", code="AccessDeniedException"):
        report = start(h)
    inc = h.incident()
    assert inc["diagnostics"]["status"] == "error" and "AccessDenied" in inc["diagnostics"]["note"]
    assert report["phase"] == "DONE" and inc["timeline"][1]["phase"] == "RESTART", report


# ------------------------------------------------------------------ AWS on a bad day

@pytest.mark.parametrize("listed", [True, False], ids=["listed", "not-listed"])
def test_a_crash_right_after_the_diagnostics_send_never_sends_it_twice(
        world: World, fake_checks: Script, monkeypatch: pytest.MonkeyPatch, listed: bool) -> None:
    h = make(world, monkeypatch)
    with Host(world), CallLog(world.clients) as log:
        with CrashOnCall(world.clients, 1, after=True), pytest.raises(Crash, match="SendCommand"):
            start(h)
        assert h.incident()["phase"] == "DIAGNOSE"
        with monkeypatch.context() as mp:
            if not listed:  # ListCommands lags behind the send: the send is not repeated
                for c in both_clients(world.clients, "ssm"):
                    mp.setattr(c, "list_commands", lambda **_: {"Commands": []})
            report = advance(h)
    assert report["phase"] == "DONE", report
    diag = h.incident()["diagnostics"]
    assert [c for c in comments(world) if c.startswith("sentinel diagnose")] == [f"sentinel diagnose {h.incident()['id']}"]
    assert log.count("SendCommand") == 2  # one diagnostics command, one restart
    if listed:
        assert diag["status"] == "Success" and "Active: active" in diag["output"]
    else:
        assert diag["status"] == "not sent" and "never twice" in diag["note"]


def test_transient_ssm_answers_are_polled_through(
        world: World, fake_checks: Script, monkeypatch: pytest.MonkeyPatch) -> None:
    h = make(world, monkeypatch)
    with Host(world), CallLog(world.clients) as log, \
            FailCalls(world.clients, "ssm", "SendCommand", code="ThrottlingException"), \
            FailCalls(world.clients, "ssm", "GetCommandInvocation", code="InvocationDoesNotExist", times=2), \
            FailCalls(world.clients, "ssm", "GetCommandInvocation", code="ThrottlingException", times=1):
        report = start(h)
    assert report["phase"] == "DONE", report
    diag = h.incident()["diagnostics"]
    assert diag["status"] == "Success" and "Active: active" in diag["output"], diag
    assert log.count("SendCommand") == 3  # the throttled one (answered by the hook), then one of each
    assert len(comments(world)) == 2 and [r["outcome"] for r in h.incident()["rungs"]] == ["recovered"]


def test_an_s3_write_that_fails_is_noted_and_the_output_is_still_kept(
        world: World, fake_checks: Script, monkeypatch: pytest.MonkeyPatch) -> None:
    h = make(world, monkeypatch, s3_uri="s3://no-such-bucket/x")
    with Host(world):
        assert start(h)["phase"] == "DONE"
    diag = h.incident()["diagnostics"]
    assert "not written to S3 (NoSuchBucket)" in diag["note"] and "Active: active" in diag["output"]


# ------------------------------------------------------------------ dry run and plan

def test_a_plan_records_the_diagnostics_command_first_and_sends_nothing(
        world: World, fake_checks: Script, monkeypatch: pytest.MonkeyPatch) -> None:
    h = make(world, monkeypatch, s3_uri=f"s3://{BUCKET}")
    h.dry_run = True
    with CallLog(world.clients) as log:
        report = runbook.start(h.rctx(), h.store.get(TARGET), reason="plan").report
    plan = report["plan"]
    sends = [c for c in plan["calls"] if c["call"] == "ssm.send_command"]
    assert sends[0]["phase"] == "DIAGNOSE" and sends[0]["params"]["Comment"].startswith("sentinel diagnose")
    assert not sends[0]["sent"] and log.count("SendCommand") == 0
    # bounded on the host too (the script is killed after timeout_s even if no cancel arrives)
    assert sends[0]["params"]["Parameters"]["executionTimeout"] == ["60"] and sends[0]["params"]["TimeoutSeconds"] == 60
    assert plan["rungs"][0]["phases"][0]["phase"] == "DIAGNOSE"
    assert not any(c["phase"] == "DIAGNOSE" for r in plan["rungs"][1:] for c in r["calls"])
