"""Shared moto world for the recovery tests: a persistent EMR cluster with everything the
clone must copy, a target group, a classic ELB and a Route 53 record pointing at its master,
an SNS page topic read back through SQS; plus helpers to force EMR states through moto's
backend, count AWS calls with botocore event hooks, and crash on the Nth changing call.

Call :func:`seed_world` inside ``mock_aws()``.
"""

from __future__ import annotations

import contextlib
import json
import os
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from checks.base import CheckResult, Deadline, EndpointOverride, Status
from monitor.config import Config, parse_config
from monitor.core.aws import ClientFactory
from monitor.core.resolve import HostResolver
from monitor.core.state.base import Lease, StateStore
from monitor.metrics import MetricsRecorder
from monitor.notify import Notifier
from monitor.sandbox.seed import Pager
from recover.calls import MUTATING, _api_name
from recover.context import RecoveryContext
from tests.fakes import FakeClock

REGION = "us-east-1"
ACCOUNT = "123456789012"
CLUSTER_NAME = "RC.HIVE.ADHOC"
RECORD = "hive.internal.example.com"
TARGET = "prod-hive"
MUTATING_API = frozenset(_api_name(op) for op in MUTATING)
METASTORE_PASSWORD = "metastore-pw-123"  # noqa: S105 - a fake value the plan must mask

SEED_REQUEST: dict[str, Any] = {
    "Name": CLUSTER_NAME,
    "ReleaseLabel": "emr-6.15.0",
    "LogUri": "s3://rc-emr-logs/hive/",
    "Applications": [{"Name": "Hadoop"}, {"Name": "Hive"}, {"Name": "Tez"}],
    "Configurations": [
        {"Classification": "hive-site", "Properties": {"hive.server2.authentication": "CUSTOM",
                                                      "hive.server2.enable.doAs": "false",
                                                      "javax.jdo.option.ConnectionPassword": METASTORE_PASSWORD}},
        {"Classification": "hadoop-env", "Properties": {},
         "Configurations": [{"Classification": "export", "Properties": {"JAVA_HOME": "/usr/lib/jvm/java-17"}}]},
    ],
    "Instances": {
        "InstanceGroups": [
            {"Name": "master", "InstanceRole": "MASTER", "InstanceType": "m5.xlarge", "InstanceCount": 1,
             "Market": "ON_DEMAND",
             "EbsConfiguration": {"EbsBlockDeviceConfigs": [
                 {"VolumeSpecification": {"VolumeType": "gp3", "SizeInGB": 100}, "VolumesPerInstance": 1}]}},
            {"Name": "core", "InstanceRole": "CORE", "InstanceType": "r5.2xlarge", "InstanceCount": 3,
             "Market": "ON_DEMAND"},
            {"Name": "task-spot", "InstanceRole": "TASK", "InstanceType": "r5.xlarge", "InstanceCount": 2,
             "Market": "SPOT", "BidPrice": "0.25"},
        ],
        "Ec2KeyName": "rc-emr",
        "KeepJobFlowAliveWhenNoSteps": True,
        "TerminationProtected": False,
        "EmrManagedMasterSecurityGroup": "sg-0master",
        "EmrManagedSlaveSecurityGroup": "sg-0slave",
        "ServiceAccessSecurityGroup": "sg-0service",
        "AdditionalMasterSecurityGroups": ["sg-0extra1", "sg-0extra2"],
        "AdditionalSlaveSecurityGroups": ["sg-0extra3"],
    },
    "BootstrapActions": [
        {"Name": "install auth jar", "ScriptBootstrapAction": {"Path": "s3://rc-emr-bootstrap/install-auth.sh",
                                                               "Args": ["--jar", "rc-hive-auth.jar"]}},
        {"Name": "tune os", "ScriptBootstrapAction": {"Path": "s3://rc-emr-bootstrap/tune.sh"}},
    ],
    "Steps": [
        {"Name": "enable ssl", "ActionOnFailure": "CANCEL_AND_WAIT",
         "HadoopJarStep": {"Jar": "command-runner.jar", "Args": ["bash", "-c", "/opt/rc/enable-ssl.sh"]}},
        {"Name": "warm metastore", "ActionOnFailure": "CONTINUE",
         "HadoopJarStep": {"Jar": "command-runner.jar", "Args": ["hive", "-e", "SHOW DATABASES"],
                           "Properties": [{"Key": "mapreduce.job.queuename", "Value": "setup"}]}},
    ],
    "JobFlowRole": "EMR_EC2_DefaultRole",
    "ServiceRole": "EMR_DefaultRole",
    "AutoScalingRole": "EMR_AutoScaling_DefaultRole",
    "SecurityConfiguration": "rc-hive-tls",
    "EbsRootVolumeSize": 32,
    "CustomAmiId": "ami-0123456789abcdef0",
    "StepConcurrencyLevel": 1,
    "VisibleToAllUsers": True,
    # sentinel:target marks the cluster as the target's to change (the operator tags the first
    # one by hand; sentinel tags every cluster it launches).
    "Tags": [{"Key": "team", "Value": "rc"}, {"Key": "env", "Value": "test"}, {"Key": "sentinel:target", "Value": "prod-hive"}],
}


@dataclass
class World:
    clients: ClientFactory
    cluster_id: str
    master_instance: str
    master_dns: str
    tg_arn: str
    elb_name: str
    zone_id: str
    pager: Pager
    subnet: str

    @property
    def page_topic(self) -> str:
        return self.pager.topic_arn

    def pages(self) -> list[dict[str, Any]]:
        """Messages published to the page topic (SNS envelopes), read back through SQS."""
        return self.pager.messages()

    def emr(self) -> Any:
        return self.clients.client("emr")

    def tg_targets(self) -> list[str]:
        desc = self.clients.client("elbv2").describe_target_health(TargetGroupArn=self.tg_arn)
        return sorted(d["Target"]["Id"] for d in desc["TargetHealthDescriptions"])

    def elb_instances(self) -> list[str]:
        lb = self.clients.client("elb").describe_load_balancers(LoadBalancerNames=[self.elb_name])
        return sorted(i["InstanceId"] for i in lb["LoadBalancerDescriptions"][0]["Instances"])

    def record_value(self) -> str:
        rs = self.clients.client("route53").list_resource_record_sets(
            HostedZoneId=self.zone_id, StartRecordName=RECORD, StartRecordType="CNAME", MaxItems="1")
        return str(rs["ResourceRecordSets"][0]["ResourceRecords"][0]["Value"])

    def clusters(self, *states: str) -> list[dict[str, Any]]:
        kwargs = {"ClusterStates": list(states)} if states else {}
        return list(self.emr().list_clusters(**kwargs)["Clusters"])

    def master_of(self, cluster_id: str) -> dict[str, Any]:
        inst = self.emr().list_instances(ClusterId=cluster_id, InstanceGroupTypes=["MASTER"])["Instances"][0]
        return dict(inst)


_SHARED: list[ClientFactory] = []


def shared_clients() -> ClientFactory:
    """One client factory for all recovery tests: boto3 clients are slow to create (service
    model parsing) and moto intercepts clients made before ``mock_aws`` started too, with a
    fresh backend each time. Hooks a test registers must be removed (CallLog.close)."""
    if not _SHARED:
        _SHARED.append(ClientFactory(REGION))
    return _SHARED[0]


@contextlib.contextmanager
def moto_world(**kw: Any) -> Iterator[World]:
    """``mock_aws`` with a seeded world. moto's EC2 backend would load ~1300 default AMIs at
    creation and again at reset (0.15 s each time): none of these tests needs them."""
    from moto import mock_aws

    before = os.environ.get("MOTO_EC2_LOAD_DEFAULT_AMIS")
    os.environ["MOTO_EC2_LOAD_DEFAULT_AMIS"] = "false"
    try:
        with mock_aws():
            yield seed_world(**kw)
    finally:
        if before is None:
            os.environ.pop("MOTO_EC2_LOAD_DEFAULT_AMIS", None)
        else:
            os.environ["MOTO_EC2_LOAD_DEFAULT_AMIS"] = before


def seed_world(*, protected: bool = False, request: dict[str, Any] | None = None, record_ttl: int = 0) -> World:
    clients = shared_clients()
    pager = Pager.create(clients)

    ec2 = clients.client("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.1.0/24", AvailabilityZone="us-east-1a")["Subnet"]["SubnetId"]

    emr = clients.client("emr")
    emr.create_security_configuration(Name="rc-hive-tls", SecurityConfiguration=json.dumps(
        {"EncryptionConfiguration": {"EnableInTransitEncryption": False, "EnableAtRestEncryption": False}}))
    req = json.loads(json.dumps(request or SEED_REQUEST))
    req["Instances"]["Ec2SubnetId"] = subnet
    sgs = {name: ec2.create_security_group(GroupName=name, Description=name, VpcId=vpc)["GroupId"]
           for name in ("sg-0master", "sg-0slave", "sg-0service", "sg-0extra1", "sg-0extra2", "sg-0extra3")}
    inst = req["Instances"]
    for key in ("EmrManagedMasterSecurityGroup", "EmrManagedSlaveSecurityGroup", "ServiceAccessSecurityGroup"):
        if key in inst:
            inst[key] = sgs[inst[key]]
    for key in ("AdditionalMasterSecurityGroups", "AdditionalSlaveSecurityGroups"):
        if key in inst:
            inst[key] = [sgs[g] for g in inst[key]]
    req["Instances"]["TerminationProtected"] = protected
    cluster_id = emr.run_job_flow(**req)["JobFlowId"]
    set_steps(cluster_id, "COMPLETED")
    master = emr.list_instances(ClusterId=cluster_id, InstanceGroupTypes=["MASTER"])["Instances"][0]

    elbv2 = clients.client("elbv2")
    tg = elbv2.create_target_group(Name="hive", Protocol="TCP", Port=10000, VpcId=vpc,
                                   TargetType="instance")["TargetGroups"][0]["TargetGroupArn"]
    elbv2.register_targets(TargetGroupArn=tg, Targets=[{"Id": master["Ec2InstanceId"], "Port": 10000}])
    elb = clients.client("elb")
    elb.create_load_balancer(LoadBalancerName="hive-classic", AvailabilityZones=["us-east-1a"],
                             Listeners=[{"Protocol": "TCP", "LoadBalancerPort": 443, "InstancePort": 10000}])
    elb.register_instances_with_load_balancer(LoadBalancerName="hive-classic",
                                              Instances=[{"InstanceId": master["Ec2InstanceId"]}])
    r53 = clients.client("route53")
    zone = r53.create_hosted_zone(Name="internal.example.com", CallerReference=uuid.uuid4().hex)["HostedZone"]["Id"]
    zone_id = zone.split("/")[-1]
    r53.change_resource_record_sets(HostedZoneId=zone_id, ChangeBatch={"Changes": [{"Action": "UPSERT", "ResourceRecordSet": {
        "Name": RECORD, "Type": "CNAME", "TTL": record_ttl, "ResourceRecords": [{"Value": master["PrivateDnsName"]}]}}]})
    return World(clients, cluster_id, master["Ec2InstanceId"], master["PrivateDnsName"], tg, "hive-classic",
                 zone_id, pager, subnet)


# ------------------------------------------------------------------ moto backend (states do not progress)

def emr_backend() -> Any:
    from moto.emr.models import emr_backends

    return emr_backends[ACCOUNT][REGION]


def set_steps(cluster_id: str, state: str, *, names: Sequence[str] | None = None) -> None:
    for step in emr_backend().clusters[cluster_id].steps:
        if names is None or step.name in names:
            step.state = state


def set_cluster_state(cluster_id: str, state: str) -> None:
    emr_backend().clusters[cluster_id].state = state


def new_clusters(world: World) -> list[str]:
    """Clusters other than the seeded one (any state)."""
    return sorted(c["Id"] for c in world.clusters() if c["Id"] != world.cluster_id)


# ------------------------------------------------------------------ config and context

def recovery_raw(world: World, *, cluster_name: str = CLUSTER_NAME, **recovery: Any) -> dict[str, Any]:
    """The config file (as YAML would load it) of one target on the seeded world."""
    rec: dict[str, Any] = {
        "enabled": True, "when": {"checks": ["hive"], "consecutive_failures": 2},
        "strategy": "replace", "spec": {"source": "clone"},
        "routing": {"target_group_arn": world.tg_arn, "load_balancer_name": world.elb_name,
                    "route53": {"zone_id": world.zone_id, "record": RECORD, "type": "CNAME", "ttl": 0}},
        "verify": {"checks": ["hive"], "master": {"port": 10000}}, "retire_old": "terminate",
        "limits": {"max_recoveries": 1, "window_hours": 6, "launch_timeout_min": 45},
    }
    rec.update(recovery)
    return {
        "version": 1, "region": REGION, "state_table": "sentinel-state",
        "notify": {"page_topic_arn": world.page_topic},
        "host_aliases": {"ip-10-*.ec2.internal": "127.0.0.1"},
        "targets": [{"name": TARGET, "cluster": {"name": cluster_name},
                     "checks": [{"type": "fake", "name": "hive"}, {"type": "fake", "name": "dns"}],
                     "recovery": rec}],
    }


def recovery_config(world: World, *, cluster_name: str = CLUSTER_NAME, **recovery: Any) -> Config:
    return parse_config(recovery_raw(world, cluster_name=cluster_name, **recovery))


class FakeVerify:
    """``rctx.run_checks`` stand-in: records (names, host_override); answers by host."""

    def __init__(self, default: Status = Status.OK) -> None:
        self.default = default
        self.by_host: dict[str | None, Status] = {}
        # When set, how the normal path (no host override) answers now (see old_master_broken).
        self.path: Callable[[], Status] | None = None
        self.calls: list[tuple[list[str], str | None]] = []
        self.endpoints: list[EndpointOverride | None] = []

    def __call__(self, names: Sequence[str], endpoint: EndpointOverride | None) -> list[CheckResult]:
        host_override = endpoint.host if endpoint else None
        self.calls.append((list(names), host_override))
        self.endpoints.append(endpoint)
        status = self.by_host.get(host_override, self.default)
        if host_override is None and self.path is not None:
            status = self.path()
        return [CheckResult(n, "fake", status, f"{n} via {host_override or 'normal path'} is {status.name}")
                for n in names]


@dataclass
class Harness:
    """One target's recovery driven tick by tick, each tick a new invocation with its own lease."""

    world: World
    config: Config
    store: StateStore
    clock: FakeClock
    verify: FakeVerify = field(default_factory=FakeVerify)
    notifiers: list[Notifier] = field(default_factory=list)
    metrics: list[MetricsRecorder] = field(default_factory=list)
    lease: Lease | None = None
    dry_run: bool = False
    invocations: int = 0

    def new_lease(self) -> Lease:
        """A new invocation: the previous lease expired (or was released) long ago."""
        owner = f"inv-{uuid.uuid4().hex[:8]}"
        self.invocations += 1  # each acquisition happens "a day later", after the last lease expired
        self.lease = self.store.acquire_lease(TARGET, owner, 60, self.clock.now() + timedelta(days=self.invocations))
        return self.lease

    def rctx(self, *, deadline_s: float = 120.0, new_lease: bool = True) -> RecoveryContext:
        if new_lease or self.lease is None:
            self.new_lease()
        cfg = self.config
        notifier = Notifier(self.world.clients.client("sns"), cfg.notify.page_topic_arn, cfg.notify.info_topic_arn)
        metrics = MetricsRecorder(cfg.metrics_namespace, emit=False)
        self.notifiers.append(notifier)
        self.metrics.append(metrics)
        return RecoveryContext(
            config=cfg, target=cfg.targets[0], clients=self.world.clients, store=self.store, lease=self.lease,
            clock=self.clock, deadline=Deadline.after(deadline_s), resolver=HostResolver(cfg.host_aliases),
            notifier=notifier, metrics=metrics, run_checks=self.verify, dry_run=self.dry_run,
        )

    def start(self, reason: str = "hive CRITICAL") -> dict[str, Any]:
        """A new invocation starts a recovery (the policy already said yes); its report."""
        from recover import runbook

        return runbook.start(self.rctx(), self.store.get(TARGET), reason=reason).report

    def advance(self) -> dict[str, Any]:
        """A new invocation advances the incident; its report."""
        from recover import runbook

        return runbook.advance(self.rctx(), self.store.get(TARGET)).report

    def incident(self) -> dict[str, Any]:
        inc = self.store.get(TARGET).incident
        assert inc is not None
        return inc

    def sent(self) -> list[tuple[str, str]]:
        return [(m.severity, m.kind) for n in self.notifiers for m in n.sent]

    def metric_names(self) -> list[str]:
        return [p.name for m in self.metrics for p in m.points]


# The restart rung most ladder tests use: SSM Run Command, 10 min to finish, 60 s warm-up.
SSM_RUNG: dict[str, Any] = {"rung": "restart_service", "via": "ssm", "timeout_min": 10, "warmup_s": 60,
                            "verify_timeout_min": 5}
RESTART_THEN_REPLACE: list[dict[str, Any]] = [SSM_RUNG, {"rung": "replace"}]


def timed_harness(world: World, config: Config, monkeypatch: Any) -> Harness:
    """A harness on a fresh in-memory state whose in-invocation waits (``recover.phases.SLEEP``:
    a restart's warm-up, polls) are simulated time passing on its clock."""
    from monitor.core.state.memory import MemoryStateStore
    from recover import phases

    h = Harness(world, config, MemoryStateStore(), real_now_clock())
    monkeypatch.setattr(phases, "SLEEP", lambda s: h.clock.advance(seconds=s))
    return h


def old_master_broken(h: Harness) -> None:
    """The normal path as it is during a real recovery: it leads to the old, failing master
    (CRITICAL) until REPOINT has moved the routing, then answers as the new master does. The
    trigger checks re-run before a destroying call (``terminate_first``) see the failure."""

    def path() -> Status:
        incident = h.store.get(TARGET).incident or {}
        moved = (incident.get("repoint") or {}).get("done_at")
        return h.verify.by_host.get(None, h.verify.default) if moved else Status.CRITICAL

    h.verify.path = path


def finish_incident(h: Harness, *, ticks: int = 12, every_min: float = 2) -> dict[str, Any]:
    """Advance the incident tick by tick (completing new clusters' setup steps, which moto never
    runs) until DONE or ESCALATED; its last report."""
    report: dict[str, Any] = {}
    for _ in range(ticks):
        for cid in new_clusters(h.world):
            set_steps(cid, "COMPLETED")
        report = h.advance()
        if report["phase"] in ("DONE", "ESCALATED"):
            return report
        h.clock.advance(minutes=every_min)
    raise AssertionError(f"not finished: {report}")


def real_now_clock() -> FakeClock:
    """moto stamps clusters with the real time; the runbook's clock starts there and moves on."""
    return FakeClock(datetime.now(UTC))


def cli_services(world: World, store: StateStore, clock: FakeClock | None = None) -> Callable[[Any, Any], Any]:
    """The CLI's ``services_factory`` for a moto world: its clients, this store, and ``clock``
    (else a clock at the real now for each CLI call, since moto stamps clusters with it)."""
    from tests.fakes import services

    def factory(config: Any, args: Any) -> Any:
        return services(config, store=store, clients=world.clients, clock=clock or real_now_clock())

    return factory


# ------------------------------------------------------------------ call counting and crashes

def both_clients(clients: ClientFactory, service: str) -> list[Any]:
    """The reading client and the one changing calls go through (no botocore retries)."""
    return [clients.client(service), clients.changing_client(service)]


class CallLog:
    """Every AWS API call made through ``clients`` that reached AWS (botocore ``after-call``
    hooks: a call a crash prevented is not counted)."""

    SERVICES = ("emr", "elbv2", "elb", "route53", "ssm")

    def __init__(self, clients: ClientFactory, *, event: str = "after-call") -> None:
        self.calls: list[tuple[str, str]] = []
        self._event = event  # "before-call" also counts calls that failed before reaching AWS
        self._clients = [c for service in self.SERVICES for c in both_clients(clients, service)]
        for client in self._clients:
            client.meta.events.register(event, self._record)

    def close(self) -> None:
        for client in self._clients:
            client.meta.events.unregister(self._event, self._record)

    def __enter__(self) -> CallLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _record(self, model: Any, **_: Any) -> None:
        self.calls.append((model.service_model.service_name, model.name))

    def mutating(self) -> list[tuple[str, str]]:
        return [c for c in self.calls if c[1] in MUTATING_API]

    def count(self, op: str) -> int:
        return sum(1 for _, name in self.calls if name == op)


class Crash(BaseException):
    """The Lambda dying (timeout, OOM): not an Exception, so no handler in the code catches it."""


class CrashOnCall:
    """Raise :class:`Crash` right after (or before) the ``n``-th changing AWS call."""

    def __init__(self, clients: ClientFactory, n: int, *, after: bool = True) -> None:
        self.n, self.seen, self.after, self.armed = n, 0, after, True
        event = "after-call" if after else "before-call"
        self._handlers: list[tuple[Any, Callable[..., None]]] = []
        for service in CallLog.SERVICES:
            for client in both_clients(clients, service):
                client.meta.events.register(event, self._hook)
                self._handlers.append((client, self._hook))
        self._event = event

    def _hook(self, model: Any, **_: Any) -> None:
        if not self.armed or model.name not in MUTATING_API:
            return
        self.seen += 1
        if self.seen == self.n:
            raise Crash(f"crash {'after' if self.after else 'before'} {model.name} (changing call #{self.n})")

    def disarm(self) -> None:
        self.armed = False
        for client, handler in self._handlers:
            client.meta.events.unregister(self._event, handler)
        self._handlers = []

    def __enter__(self) -> CrashOnCall:
        return self

    def __exit__(self, *exc: object) -> None:
        self.disarm()


class FailCalls:
    """Answer the next ``times`` calls of the API operation ``op`` (e.g. ``ListSteps``) with
    an AWS error, without reaching moto (a botocore ``before-call`` short-circuit)."""

    def __init__(self, clients: ClientFactory, service: str, op: str, code: str = "ThrottlingException",
                 times: int = 1) -> None:
        self.op, self.code, self.left = op, code, times
        self._clients = both_clients(clients, service)
        for client in self._clients:
            client.meta.events.register("before-call", self._hook)

    def _hook(self, model: Any, **_: Any) -> Any:
        if model.name != self.op or self.left <= 0:
            return None
        from botocore.awsrequest import AWSResponse

        self.left -= 1
        status = 400
        return (AWSResponse("https://injected.invalid", status, {}, None),
                {"Error": {"Code": self.code, "Message": "injected by the test"},
                 "ResponseMetadata": {"HTTPStatusCode": status}})

    def close(self) -> None:
        for client in self._clients:
            client.meta.events.unregister("before-call", self._hook)

    def __enter__(self) -> FailCalls:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class BeforeCall:
    """Run ``fn(api_params)`` just before every ``op`` call (e.g. ``RunJobFlow``) made with
    ``client``; when it returns a dict, that is the call's (successful) response and AWS is
    not called. botocore's ``before-call`` sees the serialized request only, so the API
    parameters are captured at ``before-parameter-build``."""

    def __init__(self, client: Any, op: str, fn: Callable[[dict[str, Any]], dict[str, Any] | None]) -> None:
        self._client, self._op, self._fn = client, op, fn
        self._params: dict[str, Any] = {}
        client.meta.events.register("before-parameter-build", self._capture)
        client.meta.events.register("before-call", self._call)

    def _capture(self, params: dict[str, Any], model: Any, **_: Any) -> None:
        if model.name == self._op:
            self._params = dict(params)

    def _call(self, model: Any, **_: Any) -> Any:
        if model.name != self._op:
            return None
        parsed = self._fn(self._params)
        if parsed is None:
            return None
        from botocore.awsrequest import AWSResponse

        return AWSResponse("https://injected.invalid", 200, {}, None), parsed

    def close(self) -> None:
        self._client.meta.events.unregister("before-parameter-build", self._capture)
        self._client.meta.events.unregister("before-call", self._call)

    def __enter__(self) -> BeforeCall:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
