"""``sentinel sandbox``: the whole story offline, in about ten seconds, with no AWS account.

The production topology, on loopback: ``client → hive.internal.example.com:443 (an alias
record to the load balancer; TLS with the ELB's certificate) → master:10000 (HiveServer2, its
own certificate)``, plus ``hive-master.internal.example.com``, a CNAME to the master that the
recovery re-points (``routing.route53.record``); the load balancer's name is not sentinel's:
the recovery re-registers targets behind it. Names resolve as in the VPC
(:mod:`monitor.sandbox.dns`): through moto's Route 53 records as they are now, then
``host_aliases`` for what would be IP addresses. moto plays the AWS account (seeded by
:mod:`monitor.sandbox.seed`); two HiveServer2 stubs on 127.0.0.1 play the old and the new
cluster's HiveServer2 (TLS with the *master* certificate, ``*.ec2.internal`` from an EMR CA;
SASL PLAIN, the password read from credstash); a TLS-terminating load balancer stand-in
(:class:`~monitor.sandbox.elb.TlsTerminatingProxy`) answers on its own port with the *ELB's*
certificate (another CA) and forwards to whichever master the target group has registered,
on the registered port. With no live backend it completes TLS, then closes, as an ELB does.
A simulated clock moves 10 minutes per tick, as EventBridge would; nothing sleeps for real
except the checks.

Story: two healthy ticks; the old HiveServer2 process dies; through the ELB the check sees
TLS complete and the connection closed (CRITICAL ``no_backend``); the failure is confirmed;
the runbook relaunches the cluster with its steps, waits for it, verifies the new master
directly on its own port and certificate (``recovery.verify.master``), re-points the target
group and the master's DNS record, verifies through the load balancer, retires the old
cluster; the pages on-call received.
"""

from __future__ import annotations

import contextlib
import io
import os
import secrets
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TextIO

from monitor.report import TickReport
from monitor.sandbox.judgement import DEMO_DIAGNOSTICS, DEMO_JUDGEMENT, approve, evidence
from monitor.sandbox.ssm import RealisticSsm

SANDBOX_ENV = {
    "AWS_ACCESS_KEY_ID": "sandbox", "AWS_SECRET_ACCESS_KEY": "sandbox", "AWS_SESSION_TOKEN": "sandbox",
    "AWS_DEFAULT_REGION": "us-east-1", "SENTINEL_LOOPBACK_ONLY": "1",
}
MAX_TICKS = 20
TICK = timedelta(minutes=10)


class SimClock:
    """EventBridge's schedule, simulated: each tick is 10 minutes after the previous one."""

    def __init__(self) -> None:
        self.t = datetime.now(UTC).replace(microsecond=0)

    def now(self) -> datetime:
        return self.t

    def advance(self, delta: timedelta) -> None:
        self.t += delta


@contextlib.contextmanager
def sandbox_env() -> Iterator[None]:
    """Fake credentials so boto3 can never reach AWS; restored afterwards."""
    saved = {k: os.environ.get(k) for k in [*SANDBOX_ENV, "AWS_PROFILE", "AWS_ENDPOINT_URL"]}
    os.environ.update(SANDBOX_ENV)
    os.environ.pop("AWS_PROFILE", None)
    os.environ.pop("AWS_ENDPOINT_URL", None)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


# The demo's remediation ladder: restart HiveServer2 first (SSM Run Command), relaunch when
# that does not help.
DEMO_LADDER: list[dict[str, Any]] = [
    {"rung": "restart_service", "via": "ssm", "warmup_s": 30, "verify_timeout_min": 5, "max_per_window": 2},
    {"rung": "replace"},
]


def sandbox_config(seeded: Any, ca_file: str, aliases: dict[str, str], *, master_port: int = 10000,
                   master_ca_file: str | None = None, ladder: bool = False) -> dict[str, Any]:
    """``ca_file`` verifies the load balancer's certificate, ``master_ca_file`` the masters'
    own (``*.ec2.internal``); ``master_port`` is where a master's HiveServer2 listens (the
    target group's port, and VERIFY_NEW's). ``ladder``: restart before relaunching."""
    from monitor.sandbox.seed import CLUSTER_NAME, CREDSTASH_KEY, LB_NAME, MASTER_RECORD

    master_tls: dict[str, Any] = {"verify": True, "server_hostname": "*.ec2.internal"}
    if master_ca_file:
        master_tls["ca_file"] = master_ca_file

    return {
        "version": 1, "region": "us-east-1", "state_table": "sentinel-state",
        "notify": {"page_topic_arn": seeded.page_topic},
        "host_aliases": aliases,
        "targets": [{
            "name": "prod-hive",
            "cluster": {"name": CLUSTER_NAME},
            "checks": [
                {"type": "hiveserver2", "name": "hive-via-elb", "host": LB_NAME, "port": 443,
                 "tls": {"verify": True, "ca_file": ca_file}, "auth": "CUSTOM",
                 "credentials": {"provider": "credstash", "username": "rcapp", "key": CREDSTASH_KEY,
                                 "table": "credential-store", "context": {"env": "sandbox"}},
                 "timeout_s": 2, "attempts": 1},
                {"type": "emr_state", "name": "cluster-state"},
            ],
            "recovery": {
                "enabled": True,
                "when": {"checks": ["hive-via-elb"], "consecutive_failures": 2},
                "strategy": "replace",
                "spec": {"source": "clone"},
                "routing": {"target_group_arn": seeded.target_group_arn, "target_port": master_port,
                            # the master's own record, never the load balancer's name (DESIGN §11)
                            "route53": {"zone_id": seeded.zone_id, "record": MASTER_RECORD, "type": "CNAME",
                                        "ttl": 60}},
                "verify": {"checks": ["hive-via-elb"], "master": {"port": master_port, "tls": master_tls}},
                "retire_old": "terminate",
                "limits": {"max_recoveries": 1, "window_hours": 6, "launch_timeout_min": 45},
                **({"ladder": DEMO_LADDER, **DEMO_JUDGEMENT} if ladder else {}),
            },
        }],
    }


def _emr_backend() -> Any:
    from moto.emr.models import emr_backends

    return emr_backends["123456789012"]["us-east-1"]  # moto's default account


def progress_new_clusters(old_id: str) -> list[str]:
    """What EMR does between two ticks: a new cluster finishes its setup steps (moto never
    runs steps, so the sandbox completes them)."""
    moved = []
    for cid, cluster in _emr_backend().clusters.items():
        if cid == old_id or cluster.state.startswith("TERMINAT"):
            continue
        for step in cluster.steps:
            if step.state in ("PENDING", "RUNNING"):
                step.state = "COMPLETED"
                moved.append(f"{cid}'s setup step '{step.name}' COMPLETED")
    return moved


def _names(resolver: Any) -> list[str]:
    """Where the two names lead now, through Route 53 (after the story: the new master)."""
    from monitor.sandbox.seed import LB_NAME, MASTER_RECORD

    follow = getattr(resolver, "follow", None)
    if follow is None:
        return []
    return [f"names now: {LB_NAME} -> {follow(LB_NAME)} (the load balancer, unchanged); "
            f"{MASTER_RECORD} -> {follow(MASTER_RECORD)} (re-pointed to the new master)"]


_sandbox_env = sandbox_env  # the name tests have used


@contextlib.contextmanager
def simulated_waits(clock: SimClock) -> Iterator[None]:
    """The runbook's in-invocation waits (a restart's warm-up) are simulated time, not sleeps."""
    from recover import phases

    sleep = phases.SLEEP
    phases.SLEEP = lambda seconds: clock.advance(timedelta(seconds=seconds))
    try:
        yield
    finally:
        phases.SLEEP = sleep

class MissingDemoDependencies(RuntimeError):
    """The sandbox needs moto (and credstash): an optional extra, not a Lambda dependency."""


TickHook = Callable[[datetime, TickReport], None]


def run_sandbox(out: TextIO | None = None, *, as_json: bool = False, on_tick: TickHook | None = None) -> int:
    """Tell the story on ``out`` (stdout). With ``as_json`` the story goes to stderr and stdout
    gets only the last tick's TickReport, so ``sentinel sandbox --json | jq`` works. ``on_tick``
    sees every tick's report at its simulated time (the dashboard rendering uses its metrics)."""
    try:
        import moto  # noqa: F401
    except ModuleNotFoundError as exc:
        raise MissingDemoDependencies(
            f"`sentinel sandbox` needs the demo dependencies ({exc.name} is not installed): "
            "pip install 'sentinel[sandbox]' (or, in a checkout, `make install`)") from exc
    story = sys.stderr if as_json else (out or sys.stdout)
    with sandbox_env():
        from moto import mock_aws

        with tempfile.TemporaryDirectory(prefix="sentinel-sandbox-") as tmp, mock_aws():
            code, report = _run(story, tmp, on_tick)
    if as_json and report is not None:
        (out or sys.stdout).write(report.to_json() + "\n")
    return code


@dataclass
class DemoWorld:
    """Everything the story runs on; ``stop()`` ends the servers and the proxy."""

    seeded: Any
    old: Any  # HiveServer2Stub of the old master
    new: Any  # HiveServer2Stub answering for any new master
    elb: Any  # TlsTerminatingProxy
    services: Any
    clock: SimClock
    raw: dict[str, Any] = field(default_factory=dict)  # the config file, as YAML would load it

    def stop(self) -> None:
        self.elb.stop()
        self.old.stop()
        self.new.stop()


def build_world(tmp: str, *, ladder: bool = False) -> DemoWorld:
    """Seed moto, start the two HiveServer2 stubs and the load balancer stand-in, and build
    sentinel's services on a simulated clock. Call inside ``mock_aws`` with fake credentials."""
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
        seeded = seed(password)
    # Two CAs, as in production: the ELB's certificate for the name clients use, and the
    # masters' own for *.ec2.internal.
    elb_certs = make_certs(tmp, (LB_NAME, "localhost"), ca_name="sandbox ELB CA", prefix="elb-")
    master_certs = make_certs(tmp, ("*.ec2.internal",), ca_name="sandbox EMR CA", prefix="master-")
    old = HiveServer2Stub(password=password, certfile=master_certs.cert_file, keyfile=master_certs.key_file).start()
    new = HiveServer2Stub(password=password, certfile=master_certs.cert_file, keyfile=master_certs.key_file).start()
    # A new master listens on new.port (its "10000"): its name maps to loopback, the port is the
    # one config gives (verify.master.port, routing.target_port). The old master was
    # registered on 10000 by the seed, so its alias carries its port.
    aliases = {seeded.master_dns: f"127.0.0.1:{old.port}", "ip-*.ec2.internal": "127.0.0.1"}
    elb = TlsTerminatingProxy(registered_backend(seeded, HostResolver(aliases)), certfile=elb_certs.cert_file,
                              keyfile=elb_certs.key_file).start()
    # What would be the load balancer's addresses. The names clients and sentinel dial
    # (hive.internal..., hive-master.internal...) have no alias: they resolve through Route 53.
    aliases[seeded.load_balancer_dns] = f"127.0.0.1:{elb.port}"
    raw = sandbox_config(seeded, elb_certs.ca_file, aliases, master_port=new.port,
                         master_ca_file=master_certs.ca_file, ladder=ladder)
    config = parse_config(raw)
    clock = SimClock()
    serialize_all(seeded.clients)  # the load-balancer thread calls moto while ticks run
    for name in ("route53", "elbv2"):  # REPOINT's changing calls, while checks resolve and the ELB routes
        serialize(seeded.clients.changing_client(name))
    services = build_services(config, clients=seeded.clients, clock=clock)
    services.resolver = ZoneResolver(seeded.clients.client("route53"), seeded.zone_id, ZONE_NAME, config.host_aliases)
    return DemoWorld(seeded, old, new, elb, services, clock, raw)


def tick_until_recovered(w: DemoWorld, *, dies_at: int = 3, max_ticks: int = 9) -> list[TickReport]:
    """The plain story (no ladder) for tests and benches: ticks 10 simulated minutes apart,
    the old HiveServer2 process dies before tick ``dies_at``, until the incident ends."""
    from checks.base import Deadline
    from monitor.cycle import run_tick
    from monitor.runtime import new_invocation

    reports = []
    for n in range(1, max_ticks + 1):
        if n == dies_at:
            w.old.stop()
        if n > 1:
            w.clock.advance(TICK)
            progress_new_clusters(w.seeded.cluster_id)
        reports.append(run_tick(new_invocation(w.services, request_id=f"t{n}"), deadline=Deadline.after(60)))
        if (w.services.store.get("prod-hive").incident or {}).get("phase") in ("DONE", "ESCALATED"):
            break
    return reports


def _run(out: TextIO, tmp: str, on_tick: TickHook | None = None) -> tuple[int, TickReport | None]:
    from checks.base import Deadline
    from monitor.cycle import run_tick
    from monitor.runtime import new_invocation
    from monitor.sandbox.timeline import Printer
    from recover import phases

    p = Printer(out)
    p.title("sentinel sandbox: two EMR/HiveServer2 outages, detected and healed offline")
    w = build_world(tmp, ladder=True)
    seeded, old, new, clock, services = w.seeded, w.old, w.new, w.clock, w.services
    p.setup(seeded, old.port, new.port, w.elb.port)
    outcome = 1
    report = None
    act: dict[str, Any] = {"n": 1, "second_from": 0, "first": None, "diagnose": set(), "approved": False}

    def restart(model: Any, parsed: dict[str, Any] | None = None, **_: Any) -> None:
        """What SSM Run Command does to the stub: the diagnostics command prints what the wedged
        master looks like; the restart, in act 1 (a wedged HiveServer2), makes it answer again;
        in act 2 (the process is gone for good) it does not come back."""
        parsed = parsed or {}
        if model.name == "GetCommandInvocation" and parsed.get("CommandId") in act["diagnose"] \
                and parsed.get("Status") == "Success":
            parsed["StandardOutputContent"] = DEMO_DIAGNOSTICS
            return
        if model.name != "SendCommand":
            return
        command = parsed.get("Command") or {}
        if str(command.get("Comment", "")).startswith("sentinel diagnose"):
            act["diagnose"].add(command.get("CommandId"))
            p.event(clock.now(), "SSM Run Command collects diagnostics on the master before any fix (unit "
                                 "status, open files, metastore connections, a thread dump)")
            return
        if act["n"] == 1:
            old.mode = "ok"
            p.event(clock.now(), "SSM Run Command restarts hive-server2 on the master: it answers again")
        else:
            p.event(clock.now(), "SSM Run Command restarts hive-server2 on the master: it does not come back")

    ssm = RealisticSsm()
    ssm_clients = (services.clients.client("ssm"), services.clients.changing_client("ssm"))
    for c in ssm_clients:
        c.meta.events.register("after-call", restart)
        ssm.register(c)
    sleep = phases.SLEEP
    phases.SLEEP = lambda seconds: clock.advance(timedelta(seconds=seconds))  # a warm-up is simulated time
    try:
        for n in range(1, MAX_TICKS + 1):
            if n == 3:
                old.mode = "query_error"
                p.event(clock.now(), "act 1: the shared metastore is overloaded: HiveServer2 answers SHOW "
                                     "DATABASES with an error (a restart can fix this)")
            if n == act["second_from"]:
                act["n"] = 2
                old.stop()
                p.event(clock.now(), "act 2: the old cluster's HiveServer2 process dies: the load balancer still "
                                     "completes TLS, then closes the connection (no healthy backend)")
            if n > 1:
                clock.advance(TICK)
                p.between(clock.now(), progress_new_clusters(seeded.cluster_id))
            inv = new_invocation(services, request_id=f"tick-{n:02d}")
            report = run_tick(inv, deadline=Deadline.after(60))
            p.tick(n, clock.now(), report)
            if on_tick is not None:
                on_tick(clock.now(), report)
            incident = services.store.get("prod-hive").incident or {}
            if incident.get("phase") == "APPROVAL" and not act["approved"]:
                act["approved"] = True
                approve(p, services, clock.now())
                incident = services.store.get("prod-hive").incident or {}
            if incident.get("phase") in ("DONE", "ESCALATED") and incident.get("id") != act.get("first"):
                outcome = 0 if incident.get("phase") == "DONE" else 1
                if act["n"] == 2 or outcome:
                    break
                act["first"] = incident.get("id")
                act["second_from"] = n + 2  # one healthy tick, then act 2
        events = services.store.events("prod-hive", limit=60)
        pages = seeded.pages()
        p.pages(pages)
        evidence(p, pages)
        p.timeline(events)
        p.summary(services.store.get("prod-hive"), seeded, new.counters.queries, events, _names(services.resolver))
    finally:
        phases.SLEEP = sleep
        for c in ssm_clients:
            c.meta.events.unregister("after-call", restart)
            ssm.unregister(c)
        w.stop()
    return outcome, report
