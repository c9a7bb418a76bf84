"""The sandbox with a cluster of three primary nodes (``sentinel sandbox --ha``, and tests).

The same fake account as the demo (:mod:`monitor.sandbox.seed`, ``primaries=3``): the three
primaries registered with the target group, one HiveServer2 stub per primary (each primary's
private name aliased to its own port), the load balancer's stand-in routing around a primary
whose HiveServer2 does not serve (its health check), and a second check, ``hive-primaries``
(``per_primary: true``), that asks each primary directly.

moto creates the three MASTER instances, but every instance of a group shares the group's
state, so it cannot lose one or replace it. :class:`EmrReplacesPrimaries` is the sandbox's
only shim for that, documented here: a botocore ``after-call`` hook on ListInstances that
shows a lost primary TERMINATED and EMR's replacement (a new instance id, the same private
name and address, as EMR keeps the IP) PROVISIONING until its ``ready_at``, then RUNNING.
Its HiveServer2 stub stops when the primary is lost and answers again once the replacement
runs. Nothing else of moto is patched.
"""

from __future__ import annotations

import contextlib
import copy
import io
import secrets
import sys
import tempfile
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, TextIO

from monitor.core.clock import Clock
from monitor.report import TickReport
from monitor.sandbox.demo import TICK, SimClock, progress_new_clusters, sandbox_config, sandbox_env, simulated_waits

HA_LADDER: list[dict[str, Any]] = [
    {"rung": "restart_service", "via": "ssm", "warmup_s": 30, "verify_timeout_min": 5, "max_per_window": 2},
    {"rung": "replace"},
]


class EmrReplacesPrimaries:
    """What EMR does when a primary is lost, shown through ListInstances (see the module)."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.lost: dict[str, dict[str, Any]] = {}  # instance id -> replacement id, ready_at

    def lose(self, instance_id: str, *, ready_after: timedelta | None) -> str:
        """``instance_id`` is gone; EMR's replacement runs ``ready_after`` later (None: never)."""
        replacement = f"i-{secrets.token_hex(8)}"
        ready_at = self.clock.now() + ready_after if ready_after is not None else None
        self.lost[instance_id] = {"replacement": replacement, "ready_at": ready_at}
        return replacement

    def replaced(self, instance_id: str, now: datetime) -> bool:
        lost = self.lost.get(instance_id)
        return lost is not None and lost["ready_at"] is not None and now >= lost["ready_at"]

    def register(self, client: Any) -> None:
        client.meta.events.register("after-call", self._after)

    def unregister(self, client: Any) -> None:
        client.meta.events.unregister("after-call", self._after)

    def _after(self, parsed: dict[str, Any], model: Any, **_: Any) -> None:
        if model.name != "ListInstances" or not self.lost:
            return
        rows: list[dict[str, Any]] = []
        for inst in parsed.get("Instances", []):
            lost = self.lost.get(str(inst.get("Ec2InstanceId")))
            if lost is None:
                rows.append(inst)
                continue
            gone = copy.deepcopy(inst)
            gone["Status"] = {**(inst.get("Status") or {}), "State": "TERMINATED"}
            new = copy.deepcopy(inst)
            new["Ec2InstanceId"], new["Id"] = lost["replacement"], f"ci-{lost['replacement'][2:]}"
            up = self.replaced(str(inst.get("Ec2InstanceId")), self.clock.now())
            new["Status"] = {**(inst.get("Status") or {}), "State": "RUNNING" if up else "PROVISIONING"}
            rows += [gone, new]
        parsed["Instances"] = rows


@dataclass
class HaWorld:
    seeded: Any
    stubs: list[Any]  # HiveServer2Stub per primary, in seeded.primaries' order
    elb: Any
    services: Any
    clock: SimClock
    emr: EmrReplacesPrimaries
    restarted: list[str] = field(default_factory=list)  # instance ids SSM restarted HiveServer2 on
    _hooks: list[tuple[Any, str, Any]] = field(default_factory=list)

    def stub_of(self, instance_id: str) -> Any:
        return self.stubs[[p["instance_id"] for p in self.seeded.primaries].index(instance_id)]

    def lose(self, index: int, *, ready_after: timedelta | None) -> str:
        """Primary ``index`` is terminated (its HiveServer2 gone); EMR replaces it."""
        primary = self.seeded.primaries[index]["instance_id"]
        self.stubs[index].stop()
        return self.emr.lose(primary, ready_after=ready_after)

    def between_ticks(self) -> None:
        """What EMR does between two ticks: new clusters finish their steps; a replacement that
        is running has its HiveServer2 answering again."""
        progress_new_clusters(self.seeded.cluster_id)
        for index, primary in enumerate(self.seeded.primaries):
            stub = self.stubs[index]
            if self.emr.replaced(primary["instance_id"], self.clock.now()) and not stub.serving and stub.mode == "ok":
                stub.start(stub.port)

    def tick(self, n: int) -> TickReport:
        from checks.base import Deadline
        from monitor.cycle import run_tick
        from monitor.runtime import new_invocation

        if n > 1:
            self.clock.advance(TICK)
            self.between_ticks()
        return run_tick(new_invocation(self.services, request_id=f"ha-{n:02d}"), deadline=Deadline.after(60))

    def stop(self) -> None:
        for client, event, hook in self._hooks:
            client.meta.events.unregister(event, hook)
        self.elb.stop()
        for stub in self.stubs:
            stub.stop()


def build_ha_world(tmp: str) -> HaWorld:
    """Seed moto with a three-primary cluster, start a stub per primary and the load
    balancer's stand-in, build sentinel's services. Call inside ``mock_aws`` with fake credentials."""
    from monitor.config import parse_config
    from monitor.core.resolve import HostResolver
    from monitor.runtime import build_services
    from monitor.sandbox.certs import make_certs
    from monitor.sandbox.dns import ZoneResolver
    from monitor.sandbox.elb import TlsTerminatingProxy, registered_backend
    from monitor.sandbox.hs2_server import HiveServer2Stub
    from monitor.sandbox.motolock import serialize, serialize_all
    from monitor.sandbox.seed import LB_NAME, ZONE_NAME, seed

    password = secrets.token_urlsafe(18)
    with contextlib.redirect_stdout(io.StringIO()):  # credstash prints its table creation
        seeded = seed(password, primaries=3)
    elb_certs = make_certs(tmp, (LB_NAME, "localhost"), ca_name="sandbox ELB CA", prefix="elb-")
    master_certs = make_certs(tmp, ("*.ec2.internal",), ca_name="sandbox EMR CA", prefix="master-")
    stubs = [HiveServer2Stub(password=password, certfile=master_certs.cert_file,
                             keyfile=master_certs.key_file).start() for _ in seeded.primaries]
    new = HiveServer2Stub(password=password, certfile=master_certs.cert_file, keyfile=master_certs.key_file).start()
    # Each primary's private name leads to its own stub; any other (a relaunched cluster's) to `new`.
    aliases = {p["private_dns"]: f"127.0.0.1:{s.port}" for p, s in zip(seeded.primaries, stubs, strict=True)}
    aliases["ip-*.ec2.internal"] = f"127.0.0.1:{new.port}"
    by_port = {s.port: s for s in [*stubs, new]}
    elb = TlsTerminatingProxy(registered_backend(seeded, HostResolver(aliases),
                                          healthy=lambda _host, port: bool(by_port[port].serving)
                                          if port in by_port else True),
                              certfile=elb_certs.cert_file, keyfile=elb_certs.key_file).start()
    aliases[seeded.load_balancer_dns] = f"127.0.0.1:{elb.port}"
    raw = sandbox_config(seeded, elb_certs.ca_file, aliases, master_port=10000, master_ca_file=master_certs.ca_file)
    target = raw["targets"][0]
    lb_check = target["checks"][0]
    target["checks"].insert(1, {**lb_check, "name": "hive-primaries", "per_primary": True})
    rec = target["recovery"]
    rec["when"]["checks"] = ["hive-via-elb", "hive-primaries"]
    rec["ladder"] = HA_LADDER
    rec["allow_termination_protected"] = True  # EMR forces protection on for three primaries
    rec["ha"] = {"replace_wait_min": 20}
    config = parse_config(raw)
    clock = SimClock()
    serialize_all(seeded.clients)
    for name in ("route53", "elbv2"):
        serialize(seeded.clients.changing_client(name))
    services = build_services(config, clients=seeded.clients, clock=clock)
    services.resolver = ZoneResolver(seeded.clients.client("route53"), seeded.zone_id, ZONE_NAME, config.host_aliases)
    # stubs[3] answers for any other primary (a relaunched cluster's)
    world = HaWorld(seeded, [*stubs, new], elb, services, clock, EmrReplacesPrimaries(clock))
    _wire(world)
    return world


def _wire(world: HaWorld) -> None:
    """The EMR shim on every EMR client; SSM's restart revives a wedged primary's HiveServer2."""
    clients = world.services.clients
    for client in (clients.client("emr"), clients.changing_client("emr")):
        world.emr.register(client)
        world._hooks.append((client, "after-call", world.emr._after))
    sent: list[str] = []

    def params(params: dict[str, Any], model: Any, **_: Any) -> None:
        if model.name == "SendCommand":
            sent[:] = list(params.get("InstanceIds") or [])

    def restarted(model: Any, **_: Any) -> None:
        if model.name != "SendCommand":
            return
        for instance in sent:
            world.restarted.append(instance)
            with contextlib.suppress(ValueError):
                stub = world.stub_of(instance)
                if stub.mode != "ok":
                    stub.mode = "ok"
    for client in (clients.client("ssm"), clients.changing_client("ssm")):
        client.meta.events.register("before-parameter-build", params)
        client.meta.events.register("after-call", restarted)
        world._hooks += [(client, "before-parameter-build", params), (client, "after-call", restarted)]


def run_ha_sandbox(out: TextIO | None = None) -> int:
    """The three-primary story: one primary's HiveServer2 wedges (restarted there alone), then a
    primary is lost and EMR replaces it (waited for, not relaunched). Exit 0 when no cluster
    was launched and every primary serves at the end."""
    from moto import mock_aws

    from monitor.sandbox.timeline import Printer

    story = out or sys.stdout
    p = Printer(story)
    p.title("sentinel sandbox --ha: a cluster with three primary nodes")
    with sandbox_env(), tempfile.TemporaryDirectory(prefix="sentinel-sandbox-ha-") as tmp, mock_aws():
        w = build_ha_world(tmp)
        try:
            with simulated_waits(w.clock):
                for n in range(1, 11):
                    if n == 2:
                        w.stubs[1].mode = "hang_after_connect"
                        p.event(w.clock.now(), f"act 1: HiveServer2 on primary {w.seeded.primaries[1]['instance_id']} "
                                               "hangs (the load balancer routes around it)")
                    if n == 6:
                        gone = w.seeded.primaries[2]["instance_id"]
                        w.lose(2, ready_after=timedelta(minutes=15))
                        p.event(w.clock.now(), f"act 2: primary {gone} is terminated; EMR replaces it (same private "
                                               "address, ready in 15 min)")
                    p.tick(n, w.clock.now(), w.tick(n))
                events = w.services.store.events("prod-hive", limit=60)
                p.pages(w.seeded.pages())
                p.timeline(events)
                launched = [c for c in w.seeded.clients.client("emr").list_clusters()["Clusters"]
                            if c["Id"] != w.seeded.cluster_id]
                serving = all(s.serving for s in w.stubs[:3])
        finally:
            w.stop()
    story.write(f"\nclusters launched: {len(launched)}; every primary serves: {serving}; "
                f"HiveServer2 restarted on: {', '.join(w.restarted) or 'none'}\n")
    return 0 if not launched and serving else 1
