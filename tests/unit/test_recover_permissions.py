"""permissions.py says exactly which IAM actions recover/ needs: every AWS operation the
code calls is listed, and nothing is listed that the code does not call (iam:PassRole
aside: RunJobFlow needs it without us calling IAM)."""

from __future__ import annotations

import re
from pathlib import Path

import botocore.session
from botocore import xform_name

from recover.calls import IAM_PREFIX, MUTATING
from recover.permissions import IMPLICIT, all_actions

RECOVER = Path(__file__).resolve().parents[2] / "recover"


def _operations_in_source() -> dict[str, set[str]]:
    """Method names of the four services that appear as calls in recover/, each with the IAM
    actions it may mean (``add_tags`` exists in EMR and ELB)."""
    source = "\n".join(p.read_text() for p in RECOVER.glob("*.py") if p.name != "permissions.py")
    session = botocore.session.get_session()
    found: dict[str, set[str]] = {}
    for service, prefix in IAM_PREFIX.items():
        for op in session.get_service_model(service).operation_names:
            snake = xform_name(op)
            if re.search(rf"[.\"']{snake}[\"'(]", source):
                found.setdefault(snake, set()).add(f"{prefix}:{op}")
    # KMS: only recover/sealed.py calls it (sealed specs), and only there are its names calls
    # (``run.verify`` elsewhere is sentinel's own verify step, not kms:Verify).
    sealed = (RECOVER / "sealed.py").read_text()
    for op in session.get_service_model("kms").operation_names:
        if re.search(rf"\.{xform_name(op)}\(", sealed):
            found.setdefault(xform_name(op), set()).add(f"kms:{op}")
    return found


def test_every_operation_called_is_permitted_and_every_permission_is_used() -> None:
    called = _operations_in_source()
    assert len(called) > 10, "the scan found almost nothing: the regex is broken"
    missing = sorted(op for op, actions in called.items() if not actions & all_actions())
    assert missing == []
    every = set().union(*called.values())
    assert all_actions() - IMPLICIT <= every, sorted(all_actions() - IMPLICIT - every)


def test_the_mutating_set_names_real_operations() -> None:
    session = botocore.session.get_session()
    ops = {xform_name(op) for s in ("emr", "elbv2", "elb", "route53", "ssm")
           for op in session.get_service_model(s).operation_names}
    assert set(MUTATING) <= ops
