"""IAM actions the recovery runbook calls, by purpose (read by the IAM policy generator).

Kept next to the code that calls them; the IAM coverage test checks this list against the
AWS calls recover/ actually makes.
"""

from __future__ import annotations

PERMISSIONS: dict[str, tuple[str, ...]] = {
    "snapshot": (
        "elasticmapreduce:DescribeCluster",
        "elasticmapreduce:ListInstanceGroups",
        "elasticmapreduce:ListInstanceFleets",
        "elasticmapreduce:ListBootstrapActions",
        "elasticmapreduce:ListSteps",
        "elasticmapreduce:DescribeStep",
        "elasticmapreduce:GetManagedScalingPolicy",
        "elasticmapreduce:GetAutoTerminationPolicy",
    ),
    "launch": (
        "elasticmapreduce:RunJobFlow",
        "elasticmapreduce:AddTags",
        "elasticmapreduce:ListClusters",
        "iam:PassRole",
    ),
    "wait": ("elasticmapreduce:DescribeCluster", "elasticmapreduce:ListSteps", "elasticmapreduce:ListInstances"),
    "repoint": (
        "elasticloadbalancing:RegisterTargets",
        "elasticloadbalancing:DeregisterTargets",
        "elasticloadbalancing:DescribeTargetHealth",
        "elasticloadbalancing:RegisterInstancesWithLoadBalancer",
        "elasticloadbalancing:DeregisterInstancesFromLoadBalancer",
        "route53:ChangeResourceRecordSets",
        "route53:GetChange",
    ),
    "retire": ("elasticmapreduce:SetTerminationProtection", "elasticmapreduce:TerminateJobFlows"),
}
