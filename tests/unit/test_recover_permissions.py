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
    # KMS: only the Kms facade calls it (sealed specs), and only there are its names calls
    # (``run.verify`` elsewhere is sentinel's own verify step, not kms:Verify).
    kms_source = (RECOVER / "facades.py").read_text()
    for op in session.get_service_model("kms").operation_names:
        if re.search(rf"\.{xform_name(op)}\(", kms_source):
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
    ops = {xform_name(op) for s in ("emr", "elbv2", "elb", "route53", "ssm", "s3")
           for op in session.get_service_model(s).operation_names}
    assert set(MUTATING) <= ops


def test_every_facade_method_declares_the_action_of_the_operation_it_calls() -> None:
    """The permissions sit beside each call: a facade method calling ``terminate_job_flows``
    must declare ``elasticmapreduce:TerminateJobFlows``."""
    import inspect

    from recover.facades import FACADES

    prefixes = {**IAM_PREFIX, "kms": "kms"}
    checked = 0
    for cls in FACADES:
        for name, fn in vars(cls).items():
            if name.startswith("_") or not callable(fn):
                continue
            declared = set(getattr(fn, "permissions", ()))
            assert declared, f"{cls.__name__}.{name} declares no permission"
            source = inspect.getsource(fn)
            ops = set(re.findall(r"_call\(\"([a-z_]+)\"", source))
            ops |= set(re.findall(r"collect\(self\.client, \"([a-z_]+)\"", source))
            ops |= set(re.findall(r"\.call\(\"[a-z0-9]+\", \"([a-z_]+)\"", source))
            ops |= set(re.findall(r"self\._client\.([a-z_]+)\(", source))
            for op in ops:
                action = f"{prefixes[cls.service]}:{''.join(p.capitalize() for p in op.split('_'))}"
                assert action in declared, f"{cls.__name__}.{name} calls {op} without declaring {action}"
                checked += 1
    assert checked > 25
