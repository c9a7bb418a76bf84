"""Two deployments, one actor (issue 19, item 7): a primary and a standby sentinel, each with
its own state table (so their leases never meet), watch one EMR cluster. However their ticks
interleave, exactly one of them changes the cluster; the other stands down and pages, naming
the one that acts."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from monitor.core.state.memory import MemoryStateStore
from recover import claim, phases
from tests.fakes import Script
from tests.recover_fixtures import (
    RESTART_THEN_REPLACE,
    TARGET,
    CallLog,
    Harness,
    World,
    moto_world,
    new_clusters,
    real_now_clock,
    recovery_config,
    set_steps,
)


@pytest.fixture
def world() -> Iterator[World]:
    with moto_world() as w:
        yield w


class Deployments:
    """Two harnesses on one moto world: ``a`` and ``b``, one clock, separate state tables."""

    def __init__(self, world: World, monkeypatch: pytest.MonkeyPatch, **recovery: Any) -> None:
        self.world, self.mp = world, monkeypatch
        clock = real_now_clock()
        self.h = {name: Harness(world, recovery_config(world, **recovery), MemoryStateStore(), clock)
                  for name in ("a", "b")}
        self.clock = clock
        self.during_settle: Callable[[], None] | None = None
        monkeypatch.setattr(phases, "SLEEP", self._sleep)

    def _sleep(self, seconds: float) -> None:
        self.clock.advance(seconds=seconds)
        if seconds == claim.SETTLE_S and self.during_settle is not None:
            act, self.during_settle = self.during_settle, None
            act()  # the other deployment runs while this one waits for its tags to settle

    def as_(self, name: str, step: Callable[[Harness], dict[str, Any]]) -> dict[str, Any]:
        self.mp.setenv("SENTINEL_DEPLOYMENT", f"sentinel-{name}@us-east-{1 if name == 'a' else 2}")
        return step(self.h[name])

    def start(self, name: str) -> dict[str, Any]:
        return self.as_(name, lambda h: h.start())

    def pages(self, name: str) -> list[tuple[str, str]]:
        return self.h[name].sent()


def test_two_deployments_racing_through_snapshot_and_launch_launch_once(
        world: World, fake_checks: Script, monkeypatch: pytest.MonkeyPatch) -> None:
    d = Deployments(world, monkeypatch)
    out: dict[str, dict[str, Any]] = {}
    d.during_settle = lambda: out.setdefault("b", d.start("b"))  # b ticks between a's SNAPSHOT and LAUNCH
    with CallLog(world.clients) as log:
        out["a"] = d.start("a")
    assert log.count("RunJobFlow") == 1 and len(new_clusters(world)) == 1
    assert out["a"]["phase"] == "WAIT_READY", out["a"]
    assert out["b"]["phase"] == "ESCALATED", out["b"]
    b_incident = d.h["b"].incident()
    assert "stood down: deployment sentinel-a@us-east-1" in b_incident["escalation"]
    [(severity, kind)] = [p for p in d.pages("b") if p[1] == "recovery-escalated"]
    assert severity == "page"
    page = [m for n in d.h["b"].notifiers for m in n.sent if m.kind == "recovery-escalated"][0]
    assert "sentinel-a@us-east-1" in page.body


def test_a_deployment_that_paused_between_its_read_and_its_write_stands_down(
        world: World, fake_checks: Script, monkeypatch: pytest.MonkeyPatch) -> None:
    """a reads no claim, then pauses before writing its own; b runs its whole claim (read, write,
    settle, read back) in that pause and launches. a's write must not take the cluster from b:
    one tag key per deployment keeps b's claim, the earlier claim acts, a stands down."""
    d = Deployments(world, monkeypatch)
    out: dict[str, dict[str, Any]] = {}
    armed = {"on": True}

    def pause_before_a_writes(model: Any, **_: Any) -> None:
        if model.name == "AddTags" and armed["on"]:
            armed["on"] = False
            out["b"] = d.start("b")

    clients = [world.clients.client("emr"), world.clients.changing_client("emr")]
    for c in clients:
        c.meta.events.register("before-call", pause_before_a_writes)
    try:
        with CallLog(world.clients) as log:
            out["a"] = d.start("a")
    finally:
        for c in clients:
            c.meta.events.unregister("before-call", pause_before_a_writes)
    assert log.count("RunJobFlow") == 1 and len(new_clusters(world)) == 1
    assert out["b"]["phase"] == "WAIT_READY", out["b"]
    assert out["a"]["phase"] == "ESCALATED", out["a"]
    assert "stood down: deployment sentinel-b@us-east-2 claimed first" in str(d.h["a"].incident()["escalation"])
    tags = {t["Key"]: t["Value"] for t in world.emr().describe_cluster(ClusterId=world.cluster_id)["Cluster"]["Tags"]}
    assert tags[claim.key("sentinel-a@us-east-1")].endswith("@released")  # a took its claim back
    assert not tags[claim.key("sentinel-b@us-east-2")].endswith("@released")


def test_a_restart_claims_the_cluster_and_releases_it_when_done(
        world: World, fake_checks: Script, monkeypatch: pytest.MonkeyPatch) -> None:
    d = Deployments(world, monkeypatch, ladder=RESTART_THEN_REPLACE)
    report = d.start("a")
    assert report["phase"] == "DONE", report
    tags = {t["Key"]: t["Value"] for t in world.emr().describe_cluster(ClusterId=world.cluster_id)["Cluster"]["Tags"]}
    assert tags[claim.CLAIM_TAG] == f"sentinel-a@us-east-1/{d.h['a'].incident()['id']}"  # DESIGN §11's tag
    assert tags[claim.key("sentinel-a@us-east-1")].endswith("@released")
    # the standby may act on a later failure at once
    with CallLog(world.clients) as log:
        assert d.start("b")["phase"] == "DONE"
    assert log.count("SendCommand") == 1


def test_a_claim_older_than_its_ttl_does_not_block(
        world: World, fake_checks: Script, monkeypatch: pytest.MonkeyPatch) -> None:
    d = Deployments(world, monkeypatch)
    stale = d.clock.now().replace(year=d.clock.now().year - 1)
    world.emr().add_tags(ResourceId=world.cluster_id, Tags=[
        {"Key": claim.key("sentinel-b@us-east-2"), "Value": f"prod-hive-old@{stale.isoformat()}"}])
    report = d.start("a")
    assert report["phase"] == "WAIT_READY", report
    for cid in new_clusters(world):
        set_steps(cid, "COMPLETED")
    assert d.h["a"].store.get(TARGET).incident is not None


def test_the_deployment_id_is_bounded_and_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SENTINEL_DEPLOYMENT", raising=False)
    assert claim.deployment_id() == "default"
    monkeypatch.setenv("SENTINEL_DEPLOYMENT", "stack name/with*odd chars" + "x" * 300)
    got = claim.deployment_id()
    assert len(got) == 100 and "/" not in got and "*" not in got
