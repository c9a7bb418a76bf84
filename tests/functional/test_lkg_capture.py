"""While the target is healthy the tick keeps a last-known-good spec of its cluster."""

from __future__ import annotations

from checks.base import Deadline, Status
from monitor.core.state.memory import MemoryStateStore
from monitor.cycle import run_tick
from monitor.runtime import new_invocation
from tests.fakes import Script, services
from tests.recover_fixtures import TARGET, moto_world, real_now_clock, recovery_config


def test_healthy_tick_captures_the_spec_and_a_failing_one_does_not(fake_checks: Script) -> None:
    with moto_world() as world:
        store = MemoryStateStore()
        svc = services(recovery_config(world), store=store, clients=world.clients, clock=real_now_clock())
        fake_checks.set("hive", Status.CRITICAL)
        run_tick(new_invocation(svc), deadline=Deadline.after(60))
        assert store.get_spec(TARGET) is None  # never capture a broken cluster's spec
        fake_checks.set("hive", Status.OK)
        report = run_tick(new_invocation(svc), deadline=Deadline.after(60))
        spec = store.get_spec(TARGET)
        assert spec is not None and spec["cluster_id"] == world.cluster_id
        assert any("last known good spec saved" in a for a in report.targets[0].actions)
        again = run_tick(new_invocation(svc), deadline=Deadline.after(60))
        assert not any("last known good" in a for a in again.targets[0].actions)  # fresh: not re-captured
