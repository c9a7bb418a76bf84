"""AWS answering late, throttled or not at all (issue 18): one such answer must never fail a
phase, climb a rung, escalate or spend a budget. Each test reproduces one answer seen from
outside on moto and fails without its fix."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.exceptions import ReadTimeoutError

from monitor.sandbox.ssm import RealisticSsm
from tests.fakes import Script
from tests.recover_fixtures import (
    RESTART_THEN_REPLACE,
    TARGET,
    CallLog,
    FailCalls,
    Harness,
    World,
    both_clients,
    emr_backend,
    finish_incident,
    moto_world,
    new_clusters,
    old_master_broken,
    recovery_config,
    set_cluster_state,
    timed_harness,
)


@pytest.fixture
def world() -> Iterator[World]:
    with moto_world() as w:
        yield w


def make(world: World, monkeypatch: pytest.MonkeyPatch, **recovery: Any) -> Harness:
    return timed_harness(world, recovery_config(world, **recovery), monkeypatch)


@contextlib.contextmanager
def realistic_ssm(world: World, *, invisible_polls: int, running_polls: int) -> Iterator[None]:
    """The sandbox's SSM as it answers in production (``InvocationDoesNotExist`` for the first
    polls after SendCommand, then ``InProgress``), on both SSM clients of the world."""
    ssm = RealisticSsm(invisible_polls, running_polls)
    clients = both_clients(world.clients, "ssm")
    for c in clients:
        ssm.register(c)
    try:
        yield
    finally:
        for c in clients:
            ssm.unregister(c)


class TimeoutAfterEffect:
    """The ``op`` call reaches AWS and takes effect; its answer is lost (a read timeout)."""

    def __init__(self, world: World, service: str, op: str, times: int = 1) -> None:
        self.op, self.left = op, times
        self._clients = both_clients(world.clients, service)
        for c in self._clients:
            c.meta.events.register("after-call", self._after)

    def _after(self, model: Any, **_: Any) -> None:
        if model.name == self.op and self.left > 0:
            self.left -= 1
            raise ReadTimeoutError(endpoint_url="https://injected.invalid")

    def close(self) -> None:
        for c in self._clients:
            c.meta.events.unregister("after-call", self._after)


class Unlisted:
    """ListCommands does not list anything yet (it lags behind SendCommand)."""

    def __init__(self, world: World) -> None:
        self._clients = both_clients(world.clients, "ssm")
        for c in self._clients:
            c.meta.events.register("after-call", self._after)

    def _after(self, parsed: dict[str, Any], model: Any, **_: Any) -> None:
        if model.name == "ListCommands":
            parsed["Commands"] = []

    def close(self) -> None:
        for c in self._clients:
            c.meta.events.unregister("after-call", self._after)


def _finish(h: Harness, world: World, ticks: int = 15) -> dict[str, Any]:
    return finish_incident(h, ticks=ticks, every_min=3)


# ------------------------------------------------------------------ SSM: not visible yet

def test_a_restart_ssm_does_not_show_yet_is_waited_for_not_climbed_to_a_relaunch(
        world: World, fake_checks: Script, monkeypatch: pytest.MonkeyPatch) -> None:
    h = make(world, monkeypatch, ladder=RESTART_THEN_REPLACE)
    with realistic_ssm(world, invisible_polls=2, running_polls=2), CallLog(world.clients) as log:
        report = h.start()
    assert report["phase"] == "DONE", report
    assert log.count("SendCommand") == 1 and log.count("RunJobFlow") == 0 and new_clusters(world) == []
    assert [r["outcome"] for r in h.incident()["rungs"]] == ["recovered"]


def test_a_restart_not_visible_for_its_whole_timeout_still_climbs(
        world: World, fake_checks: Script, monkeypatch: pytest.MonkeyPatch) -> None:
    """Not visible is bounded by the rung's timeout_min: a command SSM never shows is a failure."""
    h = make(world, monkeypatch, ladder=RESTART_THEN_REPLACE)
    with realistic_ssm(world, invisible_polls=10_000, running_polls=0):
        report = h.start()
        assert report["phase"] == "RESTART" and "not visible yet" in report["waiting"], report
        h.clock.advance(minutes=11)
        report = h.advance()
    assert report["phase"] in ("LAUNCH", "WAIT_READY"), report
    assert "InvocationDoesNotExist" in h.incident()["rungs"][0]["note"]


def test_a_send_command_whose_answer_was_lost_is_not_resent_before_listcommands_settles(
        world: World, fake_checks: Script, monkeypatch: pytest.MonkeyPatch) -> None:
    h = make(world, monkeypatch, ladder=RESTART_THEN_REPLACE)
    lost, lag = TimeoutAfterEffect(world, "ssm", "SendCommand"), Unlisted(world)
    try:
        with CallLog(world.clients, event="before-call") as log:  # the lost answer raises in after-call
            report = h.start()
            assert report["phase"] == "RESTART" and "transient" in report["waiting"], report
            h.clock.advance(seconds=30)
            report = h.advance()  # ListCommands does not list it yet: wait, do not resend
            assert report["phase"] == "RESTART" and "before any resend" in report["waiting"], report
            lag.close()  # ListCommands catches up: the command is adopted, not sent again
            report = h.advance()
    finally:
        lost.close()
        lag.close()
    assert report["phase"] == "DONE", report
    assert log.count("SendCommand") == 1 and new_clusters(world) == []


# ------------------------------------------------------------------ KMS throttled

def _kms_key(world: World) -> str:
    return str(world.clients.client("kms").create_key(Description="sentinel specs")["KeyMetadata"]["Arn"])


@pytest.mark.parametrize("strategy", ["replace", "terminate_first"])
def test_one_throttled_kms_decrypt_at_launch_waits_and_launches_on_the_next_tick(
        world: World, fake_checks: Script, monkeypatch: pytest.MonkeyPatch, strategy: str) -> None:
    h = make(world, monkeypatch, strategy=strategy, spec={"source": "clone", "kms_key_id": _kms_key(world)})
    old_master_broken(h)  # terminate_first re-confirms the failure before terminating the old cluster
    # botocore retries a read once (two attempts): both fail, so the call fails once.
    with FailCalls(world.clients, "kms", "Decrypt", code="ThrottlingException", times=2):
        report = h.start()
    assert report["phase"] == "LAUNCH" and "ThrottlingException" in report["waiting"], report
    assert "transient" in report["waiting"] and len(h.store.get(TARGET).recoveries) == 1
    assert new_clusters(world) == []
    report = _finish(h, world)
    assert report["phase"] == "DONE", report
    assert len(new_clusters(world)) == 1 and len(h.store.get(TARGET).recoveries) == 1


def test_one_throttled_kms_encrypt_at_snapshot_waits(world: World, fake_checks: Script,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    h = make(world, monkeypatch, spec={"source": "clone", "kms_key_id": _kms_key(world)})
    with FailCalls(world.clients, "kms", "Encrypt", code="KMSInternalException", times=2):
        report = h.start()
    assert report["phase"] == "SNAPSHOT" and "KMSInternalException" in report["waiting"], report
    assert _finish(h, world)["phase"] == "DONE"


def test_a_disabled_kms_key_is_final_and_fails_the_launch(world: World, fake_checks: Script,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    h = make(world, monkeypatch, spec={"source": "clone", "kms_key_id": _kms_key(world)})
    with FailCalls(world.clients, "kms", "Decrypt", code="DisabledException", times=2):
        report = h.start()
    assert report["phase"] == "ESCALATED" and new_clusters(world) == []
    assert "DisabledException" in h.incident()["failed"]["error"]


# ------------------------------------------------------------------ LAUNCH prefers a live cluster

def test_launch_keeps_the_live_resend_over_a_lost_send_found_dead(
        world: World, fake_checks: Script, monkeypatch: pytest.MonkeyPatch) -> None:
    h = make(world, monkeypatch)
    lost = TimeoutAfterEffect(world, "emr", "RunJobFlow")
    try:
        report = h.start()
    finally:
        lost.close()
    assert report["phase"] == "LAUNCH", report
    [first] = new_clusters(world)
    set_cluster_state(first, "TERMINATED_WITH_ERRORS")  # the lost send's cluster died at once
    h.clock.advance(minutes=1)
    report = h.advance()
    assert report["phase"] == "LAUNCH" and "before any resend" in report["waiting"], report
    h.clock.advance(minutes=5)
    with CallLog(world.clients) as log:
        report = h.advance()
    assert log.count("RunJobFlow") == 1 and log.count("TerminateJobFlows") == 0
    [second] = [c for c in new_clusters(world) if c != first]
    assert h.incident()["new"]["cluster_id"] == second
    assert _finish(h, world)["phase"] == "DONE"
    assert emr_backend().clusters[second].state == "WAITING"


def test_launch_gives_up_when_every_launched_cluster_ended(
        world: World, fake_checks: Script, monkeypatch: pytest.MonkeyPatch) -> None:
    h = make(world, monkeypatch)
    for _ in range(2):
        lost = TimeoutAfterEffect(world, "emr", "RunJobFlow")
        try:
            h.advance() if h.store.get(TARGET).incident else h.start()
        finally:
            lost.close()
        for cid in new_clusters(world):
            set_cluster_state(cid, "TERMINATED_WITH_ERRORS")
        h.clock.advance(minutes=6)
    report = h.advance()
    assert report["phase"] == "ESCALATED" and len(new_clusters(world)) == 2, report
    assert "every cluster launched for this incident ended" in h.incident()["failed"]["error"]
