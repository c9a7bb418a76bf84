"""Least privilege, both ways: the template allows exactly what the code declares, and the
code declares every AWS API it calls (scanned from the source, botocore names → IAM actions)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from deploy import iam


def test_template_code_and_declarations_agree(template: dict[str, Any]) -> None:
    assert iam.audit(template) == []


def test_the_cli_check_passes(capsys: pytest.CaptureFixture[str]) -> None:
    assert iam.main(["--check"]) == 0
    assert "agree" in capsys.readouterr().out


def test_every_declared_action_is_a_real_api_operation() -> None:
    assert iam.unknown_actions(iam.declared_actions()) == []
    assert iam.unknown_actions(["elasticmapreduce:DescribeClustr", "emr:DescribeCluster"]) == [
        "elasticmapreduce:DescribeClustr is not an operation of elasticmapreduce (typo or wrong IAM prefix?)",
        "emr:DescribeCluster is not an operation of emr (typo or wrong IAM prefix?)",
    ]


def test_recover_permissions_are_read_when_audited_not_copied(monkeypatch: pytest.MonkeyPatch,
                                                              template: dict[str, Any]) -> None:
    import recover.permissions

    monkeypatch.setitem(recover.permissions.PERMISSIONS, "extra", ("elasticmapreduce:ModifyCluster",))
    assert iam.declared_sources()["recover:extra"] == ("elasticmapreduce:ModifyCluster",)
    problems = iam.audit(template)
    assert any("not the generated one" in p and "lacks declared ['elasticmapreduce:ModifyCluster']" in p
               for p in problems)
    assert "elasticmapreduce:ModifyCluster is declared but nothing calls it" in problems


# ------------------------------------------------------------------ code → declared


def scan_text(tmp_path: Path, code: str, **kw: Any) -> dict[str, iam.Found]:
    path = tmp_path / "mod.py"
    path.write_text(code)
    return iam.scan([path], root=tmp_path, **kw)


def test_a_client_call_nobody_declared_fails(tmp_path: Path) -> None:
    found = scan_text(tmp_path, "def grow(emr):\n    emr.add_instance_groups(JobFlowId='j-1', InstanceGroups=[])\n")
    problems = iam.undeclared_calls(found, iam.declared_actions())
    assert problems == ["code calls add_instance_groups (elasticmapreduce:AddInstanceGroups) but no module "
                        "declares it: mod.py:2"]


def test_operation_names_in_strings_count(tmp_path: Path) -> None:
    """getattr dispatch (``_call("delete_item")``) and paginators name the operation as a string."""
    found = scan_text(tmp_path, "def f(store, emr):\n    store._call('delete_item')\n"
                                "    emr.get_paginator('list_security_configurations')\n")
    problems = iam.undeclared_calls(found, iam.declared_actions())
    assert [p.split(" (")[0] for p in problems] == ["code calls delete_item", "code calls list_security_configurations"]


def test_a_new_service_client_is_scanned_too(tmp_path: Path) -> None:
    found = scan_text(tmp_path, "def f(clients):\n    clients.client('ec2').describe_instances()\n")
    assert found["describe_instances"].actions == {"ec2:DescribeInstances"}
    assert iam.undeclared_calls(found, iam.declared_actions())


def test_comments_and_docstrings_are_not_calls(tmp_path: Path) -> None:
    found = scan_text(tmp_path, '"""We never call emr.run_job_flow( here."""\n# sns.create_topic(Name=...)\nx = 1\n')
    assert found == {}


def test_words_that_are_not_aws_calls_are_ignored_with_a_reason(tmp_path: Path) -> None:
    found = scan_text(tmp_path, "def f(run):\n    return run.verify(['hive'], None)\n")
    assert found == {}
    assert "verify" in iam.NOT_AWS_CALLS


def test_transactions_are_covered_by_their_item_actions(tmp_path: Path) -> None:
    found = scan_text(tmp_path, "def f(ddb):\n    ddb.transact_write_items(TransactItems=[])\n")
    assert iam.undeclared_calls(found, frozenset({"dynamodb:PutItem"})) == []
    assert iam.undeclared_calls(found, frozenset({"sns:Publish"}))


def test_the_real_source_scan_sees_the_calls_we_know_about() -> None:
    found = iam.scan(iam.source_files())
    for op in ("describe_cluster", "list_clusters", "get_item", "transact_write_items", "publish",
               "get_parameter", "get_secret_value", "get_health_check_status", "get_metric_statistics"):
        assert op in found, op
    assert not any("monitor/sandbox/" in w for f in found.values() for w in f.where)
    assert not any("monitor/invoke.py" in w for f in found.values() for w in f.where)


# ------------------------------------------------------------------ declared → template


def test_a_declared_action_nothing_calls_fails() -> None:
    found = {**iam.scan(iam.third_party_files(iam.declared_sources())), **iam.scan(iam.source_files())}
    declared = iam.declared_actions() | {"elasticmapreduce:ModifyCluster"}
    assert iam.unused_declarations(found, declared) == ["elasticmapreduce:ModifyCluster is declared but nothing calls it"]


def test_credstash_calls_count_as_used() -> None:
    """kms:Decrypt is called by the credstash library, not by our code: its source is scanned."""
    ours = iam.scan(iam.source_files())
    assert all(w.startswith(("recover/facades.py:", "recover/sealed.py:")) for w in ours["decrypt"].where)  # sealed specs
    theirs = iam.scan(iam.third_party_files(["secrets:credstash"]))
    assert "decrypt" in theirs


def test_a_template_allowing_more_than_declared_fails(template: dict[str, Any]) -> None:
    tpl = copy.deepcopy(template)
    doc = iam.template_policies(tpl)[0]
    doc["Statement"].append({"Sid": "Extra", "Effect": "Allow", "Action": ["s3:GetObject"], "Resource": ["*"]})
    problems = iam.audit(tpl)
    assert len(problems) == 1
    assert "allows undeclared ['s3:GetObject']" in problems[0]


def test_a_template_with_a_wider_scope_fails(template: dict[str, Any]) -> None:
    tpl = copy.deepcopy(template)
    for stmt in iam.template_policies(tpl)[0]["Statement"]:
        if stmt.get("Sid") == "StateTable":
            stmt["Resource"] = ["*"]
    assert any("scopes differ" in p for p in iam.audit(tpl))


def test_write_is_idempotent_and_repairs_drift(tmp_path: Path) -> None:
    path = tmp_path / "template.yaml"
    path.write_text(iam.TEMPLATE.read_text())
    assert iam.write_template(path) is False
    path.write_text(path.read_text().replace("sns:Publish", "sns:*"))
    assert iam.write_template(path) is True
    assert path.read_text() == iam.TEMPLATE.read_text()


# ------------------------------------------------------------------ scoping


def statements_by_sid() -> dict[str, dict[str, Any]]:
    out = {}
    for stmt in iam.policy_statements():
        body = stmt["Fn::If"][1] if "Fn::If" in stmt else stmt
        out[body["Sid"]] = {"when": stmt["Fn::If"][0] if "Fn::If" in stmt else None, **body}
    return out


def test_kms_decrypt_only_on_the_credstash_key_with_the_env_context() -> None:
    s = statements_by_sid()
    key = s["CredstashKey"]
    assert key["Action"] == ["kms:Decrypt"] and key["Resource"] == [{"Ref": "CredstashKeyArn"}]
    assert key["Condition"]["Fn::If"][1] == {"StringEquals": {"kms:EncryptionContext:env": {"Ref": "CredstashContextEnv"}}}
    via_ssm = s["SsmSecureStringDecrypt"]
    assert via_ssm["Condition"]["StringEquals"]["kms:ViaService"] == {"Fn::Sub": "ssm.${AWS::Region}.amazonaws.com"}
    seal = s["SealSpecs"]
    assert seal["Resource"] == [{"Ref": "SpecKeyArn"}] and seal["when"] == "SealsSpecs"
    assert seal["Condition"] == {"StringEquals": {"kms:EncryptionContext:sentinel:use": "emr-spec"}}
    assert {sid for sid, st in s.items() if "kms:Decrypt" in st["Action"]} == {
        "CredstashKey", "SsmSecureStringDecrypt", "SealSpecs"}


def test_pass_role_only_for_the_role_parameters_and_only_with_recovery() -> None:
    s = statements_by_sid()
    assert s["PassEmrRoles"]["Action"] == ["iam:PassRole"]
    assert s["PassEmrRoles"]["Resource"][:2] == [{"Ref": "EmrServiceRoleArn"}, {"Ref": "EmrInstanceRoleArn"}]
    assert s["PassEmrRoles"]["when"] == "RecoveryEnabled"
    assert [sid for sid, st in s.items() if "iam:PassRole" in st["Action"]] == ["PassEmrRoles"]


def test_dynamodb_only_on_the_state_and_credstash_tables() -> None:
    s = statements_by_sid()
    with_ddb = {sid for sid, st in s.items() if any(a.startswith("dynamodb:") for a in st["Action"])}
    assert with_ddb == {"StateTable", "CredstashTable"}
    assert s["StateTable"]["Resource"] == [{"Fn::GetAtt": ["StateTable", "Arn"]}]
    assert s["CredstashTable"]["Action"] == ["dynamodb:GetItem", "dynamodb:Query"]  # read only


def test_sns_publish_only_to_the_stack_topics() -> None:
    s = statements_by_sid()
    assert s["Notify"]["Resource"] == [{"Ref": "PageTopic"}, {"Ref": "InfoTopic"}]


def test_every_write_outside_bookkeeping_exists_only_with_recovery(template: dict[str, Any]) -> None:
    conditions = template["Conditions"]
    with_recovery = {"RecoveryEnabled"} | {name for name, cond in conditions.items()
                                           if {"Condition": "RecoveryEnabled"} in cond.get("Fn::And", [])}
    assert {"RecoversLoadBalancers", "RecoversDns", "SealsSpecs"} <= with_recovery
    for sid, st in statements_by_sid().items():
        writes = [a for a in st["Action"] if not a.split(":")[1].startswith(iam.READ_VERBS)]
        if writes and sid not in ("StateTable", "Notify", "WorkQueue", "CredstashKey", "SsmSecureStringDecrypt",
                                  "OutageLedger"):
            assert st["when"] in with_recovery, (sid, writes)


def test_an_unscoped_new_permission_is_an_error() -> None:
    with pytest.raises(iam.PolicyError, match="notify: no scope rule for sns:CreateTopic"):
        iam.assign({"notify": ["sns:CreateTopic"]})


def test_checks_may_only_declare_reads() -> None:
    assert iam.write_actions_in_read_only_sources(iam.declared_sources()) == []
    assert iam.write_actions_in_read_only_sources({"check:bad": ("elasticmapreduce:TerminateJobFlows",)}) == [
        "check:bad declares elasticmapreduce:TerminateJobFlows: checks only read (DESIGN §1)"]


def test_oncall_needs_only_invoke_function_through_its_door() -> None:
    fn = "arn:aws:lambda:us-east-1:123456789012:function:sentinel-prod"
    doc = iam.oncall_policy(fn)
    assert doc["Statement"] == [{"Effect": "Allow", "Action": ["lambda:InvokeFunction"],
                                 "Resource": [fn, f"{fn}:readonly"]}]
    operator = iam.oncall_policy(fn, "operator")
    assert operator["Statement"][0]["Resource"] == [fn, f"{fn}:readonly", f"{fn}:operator"]


@pytest.mark.parametrize(("resource", "door"), [("InvokePolicy", "readonly"), ("OperatorInvokePolicy", "operator")])
def test_the_template_invoke_policies_are_the_oncall_ones(template: dict[str, Any], resource: str, door: str) -> None:
    doc = template["Resources"][resource]["Properties"]["PolicyDocument"]
    granted = []
    for st in doc["Statement"]:
        assert (st["Effect"], st["Action"]) == ("Allow", "lambda:InvokeFunction")
        for r in st["Resource"] if isinstance(st["Resource"], list) else [st["Resource"]]:
            granted.append("FN" if r == {"Fn::GetAtt": ["Function", "Arn"]} else r["Fn::Sub"].replace("${Function.Arn}", "FN"))
    assert granted == iam.oncall_policy("FN", door)["Statement"][0]["Resource"]
