"""IAM actions the recovery runbook needs (read by the IAM policy generator, deploy/iam.py).

Declared beside the code that makes each call: every AWS operation recover/ uses is a method
of a facade in :mod:`recover.facades`, decorated with the actions it needs. This module only
collects them, so a new call cannot be left out of the policy;
tests/unit/test_recover_permissions.py checks the declarations against the operations the
source calls.
"""

from __future__ import annotations

from recover.facades import declared_permissions

# By service (emr, elbv2, elb, route53, ssm, kms): purposes are labels only for the generator.
PERMISSIONS: dict[str, tuple[str, ...]] = declared_permissions()

# Calls that are not AWS API operations of ours but need a permission all the same.
IMPLICIT = frozenset({"iam:PassRole"})


def all_actions() -> frozenset[str]:
    return frozenset(a for actions in PERMISSIONS.values() for a in actions)
