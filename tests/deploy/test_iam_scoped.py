"""The generated IAM policy, as CloudFormation deploys it (moto), evaluated against the exact
AWS calls of a whole recovery (all allowed) and against the same calls aimed at another
cluster, record, zone, load balancer, role or key (all denied).

The calls are captured with botocore ``before-parameter-build`` hooks on the clients the
runbook uses, so nothing the code sends escapes the audit: a change in recover/ that calls
something the policy does not allow fails here, not with AccessDenied during an outage.
The evaluator is tests/deploy/policy_eval.py (why our own: its docstring).
"""

from __future__ import annotations

import copy
import io
import json
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

import boto3
import pytest

from monitor.core.state.memory import MemoryStateStore
from recover import runbook
from recover.calls import AwsCalls
from recover.incident import TARGET_TAG
from recover.sealed import unseal_spec
from tests.deploy.conftest import CODE_BUCKET, CODE_KEY
from tests.deploy.policy_eval import Request, Unsupported, evaluate
from tests.deploy.test_template import deploy, role_policy
from tests.recover_fixtures import (
    ACCOUNT,
    RECORD,
    REGION,
    TARGET,
    Harness,
    World,
    moto_world,
    new_clusters,
    real_now_clock,
    recovery_config,
    set_steps,
)

SERVICES = ("emr", "elbv2", "elb", "route53", "kms")
ROLE = f"arn:aws:iam::{ACCOUNT}:role/"
IAM_PREFIX = {"emr": "elasticmapreduce", "elbv2": "elasticloadbalancing", "elb": "elasticloadbalancing"}


# ------------------------------------------------------------------ calls → IAM requests


def cluster_arn(cluster_id: str) -> str:
    return f"arn:aws:elasticmapreduce:{REGION}:{ACCOUNT}:cluster/{cluster_id}"


def tag_context(prefix: str, tags: list[dict[str, str]]) -> dict[str, Any]:
    return {f"aws:{prefix}/{t['Key']}": t["Value"] for t in tags}


@dataclass
class Calls:
    """Every API call made through the shared clients, with its parameters."""

    world: World
    seen: list[tuple[str, str, dict[str, Any]]]

    def requests(self, key_arn: str) -> list[Request]:
        out: list[Request] = []
        for service, op, params in self.seen:
            out += to_requests(self.world, service, op, params, key_arn)
        return out


def to_requests(world: World, service: str, op: str, params: dict[str, Any], key_arn: str) -> list[Request]:
    """What IAM authorises for one API call (action, resource ARN, condition keys)."""
    action = f"{IAM_PREFIX.get(service, service)}:{op}"
    if service == "emr":
        if op == "RunJobFlow":
            tags = params.get("Tags", [])
            ctx = {**tag_context("RequestTag", tags), "aws:TagKeys": [t["Key"] for t in tags]}
            passed = [Request("iam:PassRole", ROLE + params["ServiceRole"],
                              {"iam:PassedToService": "elasticmapreduce.amazonaws.com"}),
                      Request("iam:PassRole", ROLE + params["JobFlowRole"],  # the instance profile's role
                              {"iam:PassedToService": "ec2.amazonaws.com"})]
            if params.get("AutoScalingRole"):
                passed.append(Request("iam:PassRole", ROLE + params["AutoScalingRole"],
                                      {"iam:PassedToService": "elasticmapreduce.amazonaws.com"}))
            return [Request(action, "*", ctx), *passed]
        ids = params.get("JobFlowIds") or [params.get("ResourceId") or params.get("ClusterId")]
        out = []
        for cid in ids:
            if cid is None:
                out.append(Request(action, "*"))
                continue
            tags = world.emr().describe_cluster(ClusterId=cid)["Cluster"].get("Tags", [])
            ctx = tag_context("ResourceTag", tags)
            if op == "AddTags":
                ctx |= {**tag_context("RequestTag", params["Tags"]), "aws:TagKeys": [t["Key"] for t in params["Tags"]]}
            out.append(Request(action, cluster_arn(cid), ctx))
        return out
    if service == "elbv2" and "TargetGroupArn" in params:
        return [Request(action, params["TargetGroupArn"])]
    if service == "elb" and op.endswith("LoadBalancer"):
        return [Request(action, f"arn:aws:elasticloadbalancing:{REGION}:{ACCOUNT}:loadbalancer/"
                                f"{params['LoadBalancerName']}")]
    if service == "route53":
        if op == "GetChange":
            return [Request(action, "arn:aws:route53:::change/" + params["Id"].split("/")[-1])]
        zone = "arn:aws:route53:::hostedzone/" + params["HostedZoneId"].split("/")[-1]
        if op == "ChangeResourceRecordSets":
            changes = params["ChangeBatch"]["Changes"]
            return [Request(action, zone, {
                "route53:ChangeResourceRecordSetsNormalizedRecordNames":
                    [c["ResourceRecordSet"]["Name"].lower().rstrip(".") for c in changes],
                "route53:ChangeResourceRecordSetsActions": [c["Action"] for c in changes],
                "route53:ChangeResourceRecordSetsRecordTypes": [c["ResourceRecordSet"]["Type"] for c in changes]})]
        return [Request(action, zone)]
    if service == "kms":
        ctx = {f"kms:EncryptionContext:{k}": v for k, v in (params.get("EncryptionContext") or {}).items()}
        return [Request(action, params.get("KeyId") or key_arn, ctx)]
    return [Request(action, "*")]


# ------------------------------------------------------------------ the world: a stack and a recovery


@dataclass
class Audit:
    world: World
    statements: list[dict[str, Any]]
    calls: Calls
    key_arn: str

    def allowed(self, request: Request) -> bool:
        return bool(evaluate(self.statements, request))


@pytest.fixture(scope="module")
def audit(translated: dict[str, Any]) -> Iterator[Audit]:
    with pytest.MonkeyPatch.context() as mp, moto_world() as world:
        from checks import registry

        mp.setitem(registry.REGISTRY, "fake", "tests.fakes:FakeCheck")
        registry.check_class.cache_clear()
        key_arn = world.clients.client("kms").create_key(Description="sentinel specs")["KeyMetadata"]["Arn"]
        statements = deploy_stack(translated, world, key_arn)
        # The one-time step README describes: the first cluster gets the ownership tag by hand.
        world.emr().add_tags(ResourceId=world.cluster_id, Tags=[{"Key": TARGET_TAG, "Value": TARGET}])
        seen: list[tuple[str, str, dict[str, Any]]] = []

        def capture(params: dict[str, Any], model: Any, **_: Any) -> None:
            seen.append((model.service_model.service_name if model.service_model.service_name != "elasticmapreduce"
                         else "emr", model.name, json.loads(json.dumps(params, default=str))))

        clients = [world.clients.client(s) for s in SERVICES]
        changing = getattr(world.clients, "changing_client", None)  # changing calls: a client without retries
        if changing is not None:
            clients += [changing(s) for s in SERVICES]
        for c in clients:
            c.meta.events.register("before-parameter-build", capture)
        try:
            h = Harness(world, recovery_config(world, spec={"source": "clone", "kms_key_id": key_arn}),
                        MemoryStateStore(), real_now_clock())
            first = runbook.start(h.rctx(), h.store.get(TARGET), reason="test").report
            assert first["phase"] == "WAIT_READY", first["summary"]
            [new] = new_clusters(world)
            set_steps(new, "COMPLETED")
            last = runbook.advance(h.rctx(), h.store.get(TARGET)).report
            if last["phase"] == "RETIRE_OLD":  # waiting out the DNS TTL before retiring the old cluster
                h.clock.advance(minutes=5)
                last = runbook.advance(h.rctx(), h.store.get(TARGET)).report
            assert last["phase"] == "DONE", last["summary"]
            inc = h.store.get(TARGET).incident or {}
            unseal_spec(AwsCalls(world.clients), inc["spec"])  # LAUNCH's unseal: the Decrypt it makes
        finally:
            for c in clients:
                c.meta.events.unregister("before-parameter-build", capture)
        try:
            yield Audit(world, statements, Calls(world, list(seen)), key_arn)
        finally:
            registry.check_class.cache_clear()


def without_unsupported(translated: dict[str, Any]) -> dict[str, Any]:
    """The template minus what moto's CloudFormation cannot create and the IAM audit does not
    need (the dashboard: its body refers to alarms moto skips)."""
    tpl = copy.deepcopy(translated)
    dropped = {name for name, r in tpl["Resources"].items() if r.get("Type") == "AWS::CloudWatch::Dashboard"}
    for name in dropped:
        del tpl["Resources"][name]
    outputs = tpl.get("Outputs") or {}
    for name in [k for k, v in outputs.items() if any(d in json.dumps(v) for d in dropped)]:
        del outputs[name]
    return tpl


def deploy_stack(translated: dict[str, Any], world: World, key_arn: str) -> list[dict[str, Any]]:
    ec2 = boto3.client("ec2", region_name=REGION)
    vpc = ec2.describe_subnets(SubnetIds=[world.subnet])["Subnets"][0]["VpcId"]
    sg = ec2.create_security_group(GroupName="sentinel-fn", Description="sentinel", VpcId=vpc)["GroupId"]
    s3 = boto3.client("s3", region_name=REGION)
    s3.create_bucket(Bucket=CODE_BUCKET)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("monitor/handler.py", "def lambda_handler(event, context):\n    return {}\n")
    s3.put_object(Bucket=CODE_BUCKET, Key=CODE_KEY, Body=buf.getvalue())
    elb_arn = f"arn:aws:elasticloadbalancing:{REGION}:{ACCOUNT}:loadbalancer/{world.elb_name}"
    deploy(without_unsupported(translated), {
        "Environment": "audit", "SubnetIds": world.subnet, "SecurityGroupIds": sg,
        "EmrServiceRoleArn": ROLE + "EMR_DefaultRole", "EmrInstanceRoleArn": ROLE + "EMR_EC2_DefaultRole",
        "EmrAutoScalingRoleArn": ROLE + "EMR_AutoScaling_DefaultRole",
        "RecoveryTargets": f"{TARGET},stage-hive", "LoadBalancerArns": f"{world.tg_arn},{elb_arn}",
        "HostedZoneId": world.zone_id, "DnsRecordNames": RECORD, "SpecKeyArn": key_arn,
    }, name="sentinel-audit")
    return role_policy("sentinel-audit")


# ------------------------------------------------------------------ allowed: the recovery as it ran


def test_every_call_of_a_whole_recovery_is_allowed(audit: Audit) -> None:
    requests = audit.calls.requests(audit.key_arn)
    actions = {r.action for r in requests}
    # the changing calls of a replace recovery, the PassRole it implies and the sealing
    assert {"elasticmapreduce:RunJobFlow", "elasticmapreduce:TerminateJobFlows", "iam:PassRole",
            "elasticloadbalancing:RegisterTargets", "elasticloadbalancing:DeregisterTargets",
            "elasticloadbalancing:RegisterInstancesWithLoadBalancer",
            "elasticloadbalancing:DeregisterInstancesFromLoadBalancer", "route53:ChangeResourceRecordSets",
            "kms:Encrypt", "kms:Decrypt"} <= actions
    refused = [r for r in requests if not audit.allowed(r)]
    assert refused == []
    assert len(requests) >= 30


def test_retire_keep_and_unprotect_are_allowed_on_the_targets_own_cluster(audit: Audit) -> None:
    owned = cluster_arn(audit.world.cluster_id)
    tags = {f"aws:ResourceTag/{TARGET_TAG}": TARGET}
    assert audit.allowed(Request("elasticmapreduce:SetTerminationProtection", owned, tags))
    assert audit.allowed(Request("elasticmapreduce:AddTags", owned, {
        **tags, "aws:RequestTag/sentinel:retired-by": "inc-1", "aws:TagKeys": ["sentinel:retired-by"]}))


# ------------------------------------------------------------------ denied: the same calls aimed elsewhere


def changing(audit: Audit, action: str) -> Request:
    found = [r for r in audit.calls.requests(audit.key_arn) if r.action == action]
    assert found, action
    return found[0]


def test_terminate_unprotect_and_tag_are_denied_on_a_cluster_sentinel_does_not_own(audit: Audit) -> None:
    term = changing(audit, "elasticmapreduce:TerminateJobFlows")
    assert audit.allowed(term)
    other = cluster_arn("j-SOMEONEELSES")
    for ctx in ({}, {f"aws:ResourceTag/{TARGET_TAG}": "other-hive"}, {"aws:ResourceTag/team": "rc"}):
        for action in ("elasticmapreduce:TerminateJobFlows", "elasticmapreduce:SetTerminationProtection"):
            assert not audit.allowed(Request(action, other, ctx)), (action, ctx)
    # the attack the tag condition must stop: tag a foreign cluster as ours, then terminate it
    claim = {f"aws:RequestTag/{TARGET_TAG}": TARGET, "aws:TagKeys": [TARGET_TAG]}
    assert not audit.allowed(Request("elasticmapreduce:AddTags", other, claim))


def test_launch_is_denied_without_the_ownership_tag_or_for_another_target(audit: Audit) -> None:
    run = changing(audit, "elasticmapreduce:RunJobFlow")
    assert audit.allowed(run)
    untagged = {k: v for k, v in run.context.items() if TARGET_TAG not in k and k != "aws:TagKeys"}
    untagged["aws:TagKeys"] = [k for k in run.values("aws:TagKeys") or [] if k != TARGET_TAG]
    assert not audit.allowed(replace(run, context=untagged))
    assert not audit.allowed(replace(run, context={**run.context, f"aws:RequestTag/{TARGET_TAG}": "evil-hive"}))
    assert audit.allowed(replace(run, context={**run.context, f"aws:RequestTag/{TARGET_TAG}": "stage-hive"}))


def test_pass_role_is_denied_for_another_role_or_another_service(audit: Audit) -> None:
    passes = [r for r in audit.calls.requests(audit.key_arn) if r.action == "iam:PassRole"]
    assert len(passes) == 3 and all(audit.allowed(p) for p in passes)
    service_role = passes[0]
    assert not audit.allowed(replace(service_role, resource=ROLE + "AdminRole"))
    assert not audit.allowed(replace(service_role, context={"iam:PassedToService": "lambda.amazonaws.com"}))
    assert not audit.allowed(replace(service_role, context={}))


def test_repointing_is_denied_for_another_target_group_or_load_balancer(audit: Audit) -> None:
    for action in ("elasticloadbalancing:RegisterTargets", "elasticloadbalancing:DeregisterTargets"):
        req = changing(audit, action)
        assert not audit.allowed(replace(req, resource=req.resource.replace("targetgroup/hive/", "targetgroup/billing/")))
    for action in ("elasticloadbalancing:RegisterInstancesWithLoadBalancer",
                   "elasticloadbalancing:DeregisterInstancesFromLoadBalancer"):
        req = changing(audit, action)
        assert not audit.allowed(replace(req, resource=req.resource.rsplit("/", 1)[0] + "/billing-classic"))


def test_dns_changes_are_denied_for_another_record_zone_or_action(audit: Audit) -> None:
    change = changing(audit, "route53:ChangeResourceRecordSets")
    assert audit.allowed(change)
    names = "route53:ChangeResourceRecordSetsNormalizedRecordNames"
    assert not audit.allowed(replace(change, context={**change.context, names: ["billing.internal.example.com"]}))
    assert not audit.allowed(replace(change, context={**change.context, names: [RECORD, "billing.internal.example.com"]}))
    assert not audit.allowed(replace(change, resource="arn:aws:route53:::hostedzone/ZOTHERZONE"))
    assert not audit.allowed(replace(change, context={**change.context,
                                                      "route53:ChangeResourceRecordSetsActions": ["DELETE"]}))


def test_sealing_is_denied_with_another_key_or_encryption_context(audit: Audit) -> None:
    enc = changing(audit, "kms:Encrypt")
    dec = changing(audit, "kms:Decrypt")
    assert audit.allowed(enc) and audit.allowed(dec)
    assert not audit.allowed(replace(enc, resource=enc.resource.rsplit("/", 1)[0] + "/another-key"))
    assert not audit.allowed(replace(dec, context={"kms:EncryptionContext:env": "prod"}))


def resolve(value: Any, params: dict[str, Any]) -> Any:
    """Enough of CloudFormation for one generated statement: Ref, Fn::Sub, Fn::If dropped."""
    if isinstance(value, dict) and "Ref" in value:
        return params[value["Ref"]]
    if isinstance(value, dict) and "Fn::Sub" in value:
        text = value["Fn::Sub"]
        for k, v in params.items():
            text = text.replace("${" + k + "}", str(v))
        return text
    if isinstance(value, dict):
        return {k: resolve(v, params) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve(v, params) for v in value]
    return value


def test_a_restart_command_is_allowed_only_on_the_targets_instances_with_the_shell_document() -> None:
    """ssm:SendCommand (the restart rung) touches two resources that need different
    conditions: the generator puts one action in two statements."""
    from deploy import iam

    statements = [s["Fn::If"][1] for s in iam.policy_statements({"recover:restart": ["ssm:SendCommand"]})]
    assert [s["Sid"] for s in statements] == ["RestartOnOwnedInstances", "RestartDocument"]
    params = {"AWS::Partition": "aws", "AWS::Region": REGION, "AWS::AccountId": ACCOUNT, "RecoveryTargets": [TARGET]}
    policy = resolve(statements, params)
    owned = {f"aws:ResourceTag/{TARGET_TAG}": TARGET}
    instance = f"arn:aws:ec2:{REGION}:{ACCOUNT}:instance/i-0abc"
    document = f"arn:aws:ssm:{REGION}::document/AWS-RunShellScript"
    assert evaluate(policy, Request("ssm:SendCommand", instance, owned))
    assert evaluate(policy, Request("ssm:SendCommand", document))
    assert not evaluate(policy, Request("ssm:SendCommand", instance, {f"aws:ResourceTag/{TARGET_TAG}": "other"}))
    assert not evaluate(policy, Request("ssm:SendCommand", instance))
    assert not evaluate(policy, Request("ssm:SendCommand", f"arn:aws:ssm:{REGION}::document/AWS-RunPowerShellScript"))


# ------------------------------------------------------------------ the template's defaults and the evaluator


def test_no_zone_or_load_balancer_parameter_defaults_to_everything(template: dict[str, Any]) -> None:
    params = template["Parameters"]
    assert params["HostedZoneId"]["Default"] == "" and params["LoadBalancerArns"]["Default"] == ""
    assert not [name for name, p in params.items() if "*" in str(p.get("Default", ""))]
    assert "RecoveryTargets" in params and "DnsRecordNames" in params and "SpecKeyArn" in params


def test_the_evaluator_follows_iam_semantics_for_the_subset_it_supports() -> None:
    allow = {"Sid": "A", "Effect": "Allow", "Action": ["ec2:Describe*"], "Resource": "*"}
    deny = {"Sid": "D", "Effect": "Deny", "Action": "ec2:DescribeImages", "Resource": "*"}
    assert evaluate([allow], Request("EC2:DescribeInstances", "*"))  # actions are case-insensitive
    assert not evaluate([allow, deny], Request("ec2:DescribeImages", "*"))  # an explicit deny wins
    assert not evaluate([], Request("ec2:DescribeImages", "*"))  # implicit deny
    every = {"Effect": "Allow", "Action": "a:B", "Resource": "*",
             "Condition": {"ForAllValues:StringEquals": {"k": ["x", "y"]}}}
    assert evaluate([every], Request("a:B", "*", {"k": ["x"]}))
    assert evaluate([every], Request("a:B", "*"))  # ForAllValues on a missing key: vacuously true
    assert not evaluate([every], Request("a:B", "*", {"k": ["x", "z"]}))
    anyv = {"Effect": "Allow", "Action": "a:B", "Resource": "arn:x:?:*",
            "Condition": {"ForAnyValue:StringLike": {"k": "x*"}, "StringEquals": {"j": ["1", "2"]}}}
    assert evaluate([anyv], Request("a:B", "arn:x:1:r", {"k": ["q", "xy"], "J": "2"}))  # keys case-insensitive
    assert not evaluate([anyv], Request("a:B", "arn:x:12:r", {"k": ["xy"], "j": "2"}))  # ? is one character
    assert not evaluate([anyv], Request("a:B", "arn:x:1:r", {"k": ["xy"]}))  # operators are ANDed
    with pytest.raises(Unsupported):
        evaluate([{"Effect": "Allow", "NotAction": "a:B", "Resource": "*"}], Request("a:C", "*"))
    with pytest.raises(Unsupported):
        evaluate([{"Effect": "Allow", "Action": "a:B", "Resource": "*",
                   "Condition": {"NumericLessThan": {"k": "1"}}}], Request("a:B", "*", {"k": "0"}))
