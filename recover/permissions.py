"""IAM actions the recovery runbook calls, by purpose (read by the IAM policy generator).

Kept next to the code that calls them; tests/unit/test_recover_permissions.py checks this
list against the AWS calls recover/ actually makes (every call is recorded by
:class:`recover.calls.AwsCalls`, so the test sees all of them).
"""

from __future__ import annotations

PERMISSIONS: dict[str, tuple[str, ...]] = {
    "snapshot": (
        "elasticmapreduce:ListClusters",
        "elasticmapreduce:DescribeCluster",
        "elasticmapreduce:ListInstanceGroups",
        "elasticmapreduce:ListInstanceFleets",
        "elasticmapreduce:ListBootstrapActions",
        "elasticmapreduce:ListSteps",
        "elasticmapreduce:ListInstances",
        "elasticmapreduce:GetManagedScalingPolicy",
        "elasticmapreduce:GetAutoTerminationPolicy",
        "elasticloadbalancing:DescribeTargetHealth",
        "elasticloadbalancing:DescribeLoadBalancers",
        "route53:ListResourceRecordSets",
    ),
    "launch": (
        "elasticmapreduce:RunJobFlow",
        "elasticmapreduce:AddTags",  # RunJobFlow with Tags needs it
        "elasticmapreduce:ListClusters",
        "elasticmapreduce:DescribeCluster",
        "iam:PassRole",  # the service role and the EC2 instance profile's role (not an API call of ours)
    ),
    "wait": ("elasticmapreduce:DescribeCluster", "elasticmapreduce:ListSteps", "elasticmapreduce:ListInstances"),
    "repoint": (
        "elasticloadbalancing:RegisterTargets",
        "elasticloadbalancing:DeregisterTargets",
        "elasticloadbalancing:DescribeTargetHealth",
        "elasticloadbalancing:DescribeLoadBalancers",
        "elasticloadbalancing:RegisterInstancesWithLoadBalancer",
        "elasticloadbalancing:DeregisterInstancesFromLoadBalancer",
        "route53:ListResourceRecordSets",
        "route53:ChangeResourceRecordSets",
        "route53:GetChange",
    ),
    "seal": (  # recover/sealed.py, with recovery.spec.kms_key_id: secret properties in stored specs
        "kms:Encrypt",
        "kms:Decrypt",
    ),
    "restart": (  # the restart_service rung (recovery.ladder)
        "elasticmapreduce:ListClusters",
        "elasticmapreduce:DescribeCluster",
        "elasticmapreduce:ListInstances",
        "elasticmapreduce:AddJobFlowSteps",  # via: step (owned clusters only)
        "elasticmapreduce:DescribeStep",
        "elasticmapreduce:ListSteps",
        "elasticmapreduce:CancelSteps",
        "ssm:SendCommand",  # via: ssm (AWS-RunShellScript, instances of owned clusters only)
        "ssm:GetCommandInvocation",
        "ssm:ListCommands",
        "ssm:CancelCommand",
    ),
    "retire": (
        "elasticmapreduce:DescribeCluster",
        "elasticmapreduce:SetTerminationProtection",
        "elasticmapreduce:TerminateJobFlows",
        "elasticmapreduce:AddTags",  # retire_old: keep tags the kept cluster
    ),
}

# Calls that are not AWS API operations of ours but need a permission all the same.
IMPLICIT = frozenset({"iam:PassRole"})


def all_actions() -> frozenset[str]:
    return frozenset(a for actions in PERMISSIONS.values() for a in actions)
