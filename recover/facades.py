"""Typed facades over every AWS call recover/ makes, each with the IAM actions it needs and
its fault contract declared beside it (the way cloud-custodian's actions declare theirs).

Why: the runbook's most dangerous code used to call an untyped, dynamic client
(``emr.terminate_job_flows(**anything)``). Here each operation has a signature, returns the
part of the answer the runbook uses, and says what permission it takes; the IAM generator
(``recover.permissions``, ``deploy/iam.py``) reads :func:`declared_permissions`, so a new call
cannot be forgotten in the policy. Every call still goes through
:class:`recover.calls.AwsCalls` — the one place that records it, fences a changing one under
the lease, sends it without botocore retries, and answers it in a dry run.

Fault contract (:mod:`monitor.core.faults`): every call's errors are classified there (transient,
final, and for a changing call whether it may have taken effect). What only the call site
knows is declared here: ``not_visible`` names the error codes that mean "created a moment
ago, not visible yet" for this operation (SSM ``InvocationDoesNotExist`` right after
SendCommand). An answer that is not an error but lags (ListClusters/ListCommands not listing
a fresh send yet) is handled by the caller's settle window (``recover.phases``).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import datetime
from typing import Any, ClassVar, TypeVar, cast

from monitor.core.faults import AwsError, Fault
from recover.calls import AwsCalls, RecordingClient, collect

F = TypeVar("F", bound=Callable[..., Any])


def needs(*actions: str, not_visible: tuple[str, ...] = ()) -> Callable[[F], F]:
    """Declare the IAM actions a facade method needs and the error codes that mean "not
    visible yet" for it (raised as :class:`AwsError` with ``Fault.NOT_VISIBLE``)."""

    def mark(fn: F) -> F:
        if not_visible:
            codes, inner = frozenset(not_visible), fn

            @functools.wraps(inner)
            def wrapped(*args: Any, **kwargs: Any) -> Any:
                try:
                    return inner(*args, **kwargs)
                except AwsError as exc:
                    if exc.code in codes and exc.fault is Fault.FINAL:
                        exc.fault = Fault.NOT_VISIBLE
                    raise

            fn = cast(F, wrapped)
        fn.permissions = actions  # type: ignore[attr-defined]
        fn.not_visible = tuple(not_visible)  # type: ignore[attr-defined]
        return fn

    return mark


class Facade:
    service: ClassVar[str]

    def __init__(self, aws: AwsCalls) -> None:
        self.client: RecordingClient = aws.client(self.service)

    def _call(self, op: str, **params: Any) -> dict[str, Any]:
        response: dict[str, Any] = getattr(self.client, op)(**params)
        return response


class Emr(Facade):
    service = "emr"

    @needs("elasticmapreduce:DescribeCluster")
    def describe_cluster(self, cluster_id: str) -> dict[str, Any]:
        return dict(self._call("describe_cluster", ClusterId=cluster_id)["Cluster"])

    # The id RunJobFlow just returned may not be describable for a moment: EMR answers
    # InvalidRequestException ("Cluster id ... is not valid") until it is.
    @needs("elasticmapreduce:DescribeCluster", not_visible=("InvalidRequestException", "ClusterNotFound"))
    def describe_launched(self, cluster_id: str) -> dict[str, Any]:
        return dict(self._call("describe_cluster", ClusterId=cluster_id)["Cluster"])

    @needs("elasticmapreduce:ListClusters", "elasticmapreduce:DescribeCluster")
    def find(self, ref: Any) -> dict[str, Any] | None:
        """The target's cluster (:func:`monitor.core.clusters.find_cluster`: by id, or the one active
        cluster with that name); raises ClusterLookupError when the name is ambiguous."""
        from monitor.core.clusters import find_cluster

        return find_cluster(self.client, ref)

    @needs("elasticmapreduce:ListClusters")
    def list_clusters(self, *, created_after: datetime, states: list[str] | None = None) -> list[dict[str, Any]]:
        params: dict[str, Any] = {"CreatedAfter": created_after}
        if states:
            params["ClusterStates"] = states
        return collect(self.client, "list_clusters", "Clusters", **params)

    @needs("elasticmapreduce:ListClusters")
    def list_clusters_page(self, *, created_after: datetime, states: list[str]) -> list[dict[str, Any]]:
        """One page only (the newest clusters come first)."""
        page = self._call("list_clusters", ClusterStates=states, CreatedAfter=created_after)
        return list(page.get("Clusters", []))

    @needs("elasticmapreduce:ListInstances")
    def list_instances(self, cluster_id: str, *, fleet: bool, role: str = "MASTER") -> list[dict[str, Any]]:
        params: dict[str, Any] = {"ClusterId": cluster_id}
        if fleet:
            params["InstanceFleetType"] = role
        else:
            params["InstanceGroupTypes"] = [role]
        return collect(self.client, "list_instances", "Instances", **params)

    @needs("elasticmapreduce:ListInstanceGroups")
    def list_instance_groups(self, cluster_id: str) -> list[dict[str, Any]]:
        return collect(self.client, "list_instance_groups", "InstanceGroups", ClusterId=cluster_id)

    @needs("elasticmapreduce:ListInstanceFleets")
    def list_instance_fleets(self, cluster_id: str) -> list[dict[str, Any]]:
        return collect(self.client, "list_instance_fleets", "InstanceFleets", ClusterId=cluster_id)

    @needs("elasticmapreduce:ListBootstrapActions")
    def list_bootstrap_actions(self, cluster_id: str) -> list[dict[str, Any]]:
        return collect(self.client, "list_bootstrap_actions", "BootstrapActions", ClusterId=cluster_id)

    @needs("elasticmapreduce:ListSteps")
    def list_steps(self, cluster_id: str) -> list[dict[str, Any]]:
        return collect(self.client, "list_steps", "Steps", ClusterId=cluster_id)

    @needs("elasticmapreduce:DescribeStep")
    def describe_step(self, cluster_id: str, step_id: str) -> dict[str, Any]:
        return dict(self._call("describe_step", ClusterId=cluster_id, StepId=step_id)["Step"])

    @needs("elasticmapreduce:GetManagedScalingPolicy")
    def get_managed_scaling_policy(self, cluster_id: str) -> dict[str, Any] | None:
        return self._call("get_managed_scaling_policy", ClusterId=cluster_id).get("ManagedScalingPolicy")

    @needs("elasticmapreduce:GetAutoTerminationPolicy")
    def get_auto_termination_policy(self, cluster_id: str) -> dict[str, Any] | None:
        return self._call("get_auto_termination_policy", ClusterId=cluster_id).get("AutoTerminationPolicy")

    # ---------------------------------------------------------------- changing
    @needs("elasticmapreduce:RunJobFlow", "elasticmapreduce:AddTags", "iam:PassRole")
    def run_job_flow(self, request: dict[str, Any], *, record: dict[str, Any]) -> str:
        """``request`` is sent; ``record`` (the sealed form) is what the call record keeps.
        AddTags: RunJobFlow with Tags needs it; PassRole: the service and instance roles."""
        aws = self.client.calls
        return str(aws.call("emr", "run_job_flow", request, record_params=record)["JobFlowId"])

    @needs("elasticmapreduce:TerminateJobFlows")
    def terminate_job_flows(self, cluster_id: str) -> None:
        self._call("terminate_job_flows", JobFlowIds=[cluster_id])

    @needs("elasticmapreduce:SetTerminationProtection")
    def set_termination_protection(self, cluster_id: str, protected: bool) -> None:
        self._call("set_termination_protection", JobFlowIds=[cluster_id], TerminationProtected=protected)

    @needs("elasticmapreduce:AddTags")
    def add_tags(self, cluster_id: str, tags: dict[str, str]) -> None:
        self._call("add_tags", ResourceId=cluster_id, Tags=[{"Key": k, "Value": v} for k, v in tags.items()])

    @needs("elasticmapreduce:AddJobFlowSteps")
    def add_job_flow_steps(self, cluster_id: str, steps: list[dict[str, Any]]) -> list[str]:
        return [str(s) for s in self._call("add_job_flow_steps", JobFlowId=cluster_id, Steps=steps)["StepIds"]]

    @needs("elasticmapreduce:CancelSteps")
    def cancel_steps(self, cluster_id: str, step_ids: list[str]) -> None:
        self._call("cancel_steps", ClusterId=cluster_id, StepIds=step_ids)


class Elbv2(Facade):
    service = "elbv2"

    @needs("elasticloadbalancing:DescribeTargetHealth")
    def describe_target_health(self, arn: str, targets: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
        params: dict[str, Any] = {"TargetGroupArn": arn}
        if targets:
            params["Targets"] = targets
        return list(self._call("describe_target_health", **params).get("TargetHealthDescriptions", []))

    @needs("elasticloadbalancing:RegisterTargets")
    def register_targets(self, arn: str, targets: list[dict[str, Any]]) -> None:
        self._call("register_targets", TargetGroupArn=arn, Targets=targets)

    @needs("elasticloadbalancing:DeregisterTargets")
    def deregister_targets(self, arn: str, targets: list[dict[str, Any]]) -> None:
        self._call("deregister_targets", TargetGroupArn=arn, Targets=targets)


class Elb(Facade):
    service = "elb"

    @needs("elasticloadbalancing:DescribeLoadBalancers")
    def instances(self, name: str) -> list[str]:
        lbs = self._call("describe_load_balancers", LoadBalancerNames=[name]).get("LoadBalancerDescriptions", [])
        return [str(i["InstanceId"]) for lb in lbs for i in lb.get("Instances", [])]

    @needs("elasticloadbalancing:RegisterInstancesWithLoadBalancer")
    def register_instances(self, name: str, instance_ids: list[str]) -> None:
        self._call("register_instances_with_load_balancer", LoadBalancerName=name,
                   Instances=[{"InstanceId": i} for i in instance_ids])

    @needs("elasticloadbalancing:DeregisterInstancesFromLoadBalancer")
    def deregister_instances(self, name: str, instance_ids: list[str]) -> None:
        self._call("deregister_instances_from_load_balancer", LoadBalancerName=name,
                   Instances=[{"InstanceId": i} for i in instance_ids])


class Route53(Facade):
    service = "route53"

    @needs("route53:ListResourceRecordSets")
    def record_sets(self, zone_id: str, name: str, rtype: str) -> list[dict[str, Any]]:
        resp = self._call("list_resource_record_sets", HostedZoneId=zone_id, StartRecordName=name,
                          StartRecordType=rtype, MaxItems="1")
        return list(resp.get("ResourceRecordSets", []))

    @needs("route53:ChangeResourceRecordSets")
    def change(self, zone_id: str, action: str, record_set: dict[str, Any], comment: str) -> str:
        resp = self._call("change_resource_record_sets", HostedZoneId=zone_id, ChangeBatch={
            "Comment": comment, "Changes": [{"Action": action, "ResourceRecordSet": record_set}]})
        return str(resp["ChangeInfo"]["Id"])

    @needs("route53:GetChange")
    def change_status(self, change_id: str) -> str:
        return str(self._call("get_change", Id=change_id)["ChangeInfo"]["Status"])


class Ssm(Facade):
    service = "ssm"

    @needs("ssm:SendCommand")
    def run_shell(self, instance_id: str, command: str, *, comment: str, timeout_s: int,
                  execution_timeout_s: int | None = None) -> str:
        """``timeout_s``: SSM's delivery timeout (at least 30, SSM's minimum); ``execution_timeout_s``:
        the host kills the script after it (AWS-RunShellScript ``executionTimeout``), even when a
        CancelCommand never arrives."""
        parameters: dict[str, list[str]] = {"commands": [command]}
        if execution_timeout_s is not None:
            parameters["executionTimeout"] = [str(execution_timeout_s)]
        resp = self._call("send_command", InstanceIds=[instance_id], DocumentName="AWS-RunShellScript",
                          Parameters=parameters, Comment=comment[:100], TimeoutSeconds=max(30, timeout_s))
        return str(resp["Command"]["CommandId"])

    # Right after SendCommand the invocation may not exist yet (AWS documents it; botocore's
    # CommandExecuted waiter retries exactly this code).
    @needs("ssm:GetCommandInvocation", not_visible=("InvocationDoesNotExist",))
    def invocation(self, command_id: str, instance_id: str) -> dict[str, Any]:
        return self._call("get_command_invocation", CommandId=command_id, InstanceId=instance_id)

    @needs("ssm:ListCommands")
    def commands(self, instance_id: str) -> list[dict[str, Any]]:
        return list(self._call("list_commands", InstanceId=instance_id).get("Commands", []))

    @needs("ssm:CancelCommand")
    def cancel(self, command_id: str, instance_id: str) -> None:
        self._call("cancel_command", CommandId=command_id, InstanceIds=[instance_id])


class S3(Facade):
    service = "s3"

    @needs("s3:PutObject")
    def put_text(self, bucket: str, key: str, text: str) -> None:
        """Write ``text`` (already masked) to ``s3://bucket/key``; the call record keeps its
        size, not the text (records reach reports and plans)."""
        body = text.encode("utf-8")
        self.client.calls.call("s3", "put_object", {"Bucket": bucket, "Key": key, "Body": body,
                                                    "ContentType": "text/plain; charset=utf-8"},
                               record_params={"Bucket": bucket, "Key": key, "Body": f"<{len(body)} bytes>"})


class Kms:
    """KMS for sealed specs (recover/sealed.py): called on a plain client, not recorded (the
    values are secrets; the call record would hold them)."""

    service = "kms"

    def __init__(self, client: Any) -> None:
        self._client = client

    @needs("kms:Encrypt")
    def encrypt(self, key_id: str, plaintext: bytes, context: dict[str, str]) -> bytes:
        return bytes(self._client.encrypt(KeyId=key_id, Plaintext=plaintext, EncryptionContext=context)["CiphertextBlob"])

    @needs("kms:Decrypt")
    def decrypt(self, blob: bytes, context: dict[str, str]) -> bytes:
        return bytes(self._client.decrypt(CiphertextBlob=blob, EncryptionContext=context)["Plaintext"])


FACADES: tuple[type[Any], ...] = (Emr, Elbv2, Elb, Route53, Ssm, S3, Kms)


def declared_permissions() -> dict[str, tuple[str, ...]]:
    """Every IAM action a facade method declares, by service."""
    out: dict[str, tuple[str, ...]] = {}
    for cls in FACADES:
        actions = {a for fn in vars(cls).values() if callable(fn) for a in getattr(fn, "permissions", ())}
        out[cls.service] = tuple(sorted(actions))
    return out
