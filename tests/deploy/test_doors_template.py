"""The template's two doors (DESIGN §10): aliases `readonly` and `operator` on the one function,
and invoke policies whose ARNs agree with what the handler reads: nothing the read-only policy
grants opens the operator door; the operator policy does; no policy grants a wildcard."""

from __future__ import annotations

import argparse
import fnmatch
import re
from collections.abc import Iterator
from typing import Any

import boto3

from monitor.events import door_of
from tests.deploy.test_template import PROD_LIKE, aws, deploy, resources_of

FN = "arn:aws:lambda:us-east-1:123456789012:function:sentinel-test"
QUALIFIERS = ["", ":readonly", ":operator", ":$LATEST", ":1", ":OPERATOR"]
__all__ = ["aws"]  # the moto fixture, shared with test_template


def resolve(value: Any) -> list[str]:
    """A policy Resource with the function's ARN filled in (enough for these statements)."""
    if isinstance(value, list):
        return [r for v in value for r in resolve(v)]
    if isinstance(value, dict) and value.get("Fn::GetAtt") == ["Function", "Arn"]:
        return [FN]
    if isinstance(value, dict) and "Fn::Sub" in value:
        return [value["Fn::Sub"].replace("${Function.Arn}", FN)]
    if isinstance(value, str):
        return [value]
    raise AssertionError(f"unexpected resource {value!r}")


def invoke_grants(policy: dict[str, Any]) -> list[str]:
    out: list[str] = []
    for st in policy["Properties"]["PolicyDocument"]["Statement"]:
        actions = st["Action"] if isinstance(st["Action"], list) else [st["Action"]]
        assert st["Effect"] == "Allow" and actions == ["lambda:InvokeFunction"]
        out += resolve(st["Resource"])
    return out


def allows(grants: list[str], arn: str) -> bool:
    """IAM resource matching: the whole ARN, ``*`` and ``?`` as wildcards (no prefix match)."""
    return any(fnmatch.fnmatchcase(arn, g.replace("[", "[[]")) for g in grants)


def door(arn: str) -> str:
    return door_of(argparse.Namespace(invoked_function_arn=arn))


def test_one_function_two_aliases(translated: dict[str, Any]) -> None:
    aliases = resources_of(translated, "AWS::Lambda::Alias")
    assert sorted(a["Properties"]["Name"] for a in aliases.values()) == ["operator", "readonly"]
    for alias in aliases.values():
        assert alias["Properties"]["FunctionName"] == {"Ref": "Function"}
        assert alias["Properties"]["FunctionVersion"] == "$LATEST"
    assert len(resources_of(translated, "AWS::Lambda::Function")) == 1


def test_the_readonly_policy_never_opens_the_operator_door(translated: dict[str, Any]) -> None:
    grants = invoke_grants(translated["Resources"]["InvokePolicy"])
    allowed = [FN + q for q in QUALIFIERS if allows(grants, FN + q)]
    assert allowed == [FN, FN + ":readonly"]
    assert {door(arn) for arn in allowed} == {"readonly"}


def test_the_operator_policy_opens_both_doors(translated: dict[str, Any]) -> None:
    grants = invoke_grants(translated["Resources"]["OperatorInvokePolicy"])
    allowed = [FN + q for q in QUALIFIERS if allows(grants, FN + q)]
    assert allowed == [FN, FN + ":readonly", FN + ":operator"]
    assert door(FN + ":operator") == "operator"


def test_no_statement_anywhere_grants_invoke_by_wildcard(translated: dict[str, Any]) -> None:
    def statements(node: Any) -> Iterator[dict[str, Any]]:
        if isinstance(node, dict):
            if "Effect" in node and "Action" in node:
                yield node
            for v in node.values():
                yield from statements(v)
        elif isinstance(node, list):
            for v in node:
                yield from statements(v)

    for st in statements(translated["Resources"]):
        actions = st["Action"] if isinstance(st["Action"], list) else [st["Action"]]
        if any(re.fullmatch(a.replace("*", ".*"), "lambda:InvokeFunction") for a in actions if isinstance(a, str)):
            for arn in resolve(st["Resource"]):
                assert "*" not in arn, st


def test_schedule_and_alarm_trigger_invoke_the_readonly_door(translated: dict[str, Any]) -> None:
    rule = translated["Resources"]["FunctionSchedule"]["Properties"]
    assert rule["Targets"][0]["Arn"] == {"Fn::GetAtt": ["Function", "Arn"]}  # unqualified: read-only
    sub = translated["Resources"]["TriggerSubscription"]["Properties"]
    assert sub["Endpoint"] == {"Fn::GetAtt": ["Function", "Arn"]}
    assert door(FN) == "readonly"


def test_deployed_stack_outputs_both_doors_and_their_policies(translated: dict[str, Any], aws: dict[str, str]) -> None:
    outputs = deploy(translated, {"Environment": "test", **aws, **PROD_LIKE})
    fn_arn = boto3.client("lambda").get_function(FunctionName="sentinel-test")["Configuration"]["FunctionArn"]
    assert outputs["ReadonlyAliasArn"] == f"{fn_arn}:readonly"
    assert outputs["OperatorAliasArn"] == f"{fn_arn}:operator"
    iam = boto3.client("iam")

    def granted(policy_arn: str) -> list[str]:
        pol = iam.get_policy(PolicyArn=policy_arn)["Policy"]
        doc = iam.get_policy_version(PolicyArn=policy_arn, VersionId=pol["DefaultVersionId"])["PolicyVersion"]["Document"]
        return [r for st in doc["Statement"] for r in (st["Resource"] if isinstance(st["Resource"], list)
                                                          else [st["Resource"]])]

    assert sorted(granted(outputs["InvokePolicyArn"])) == sorted([fn_arn, f"{fn_arn}:readonly"])
    assert sorted(granted(outputs["OperatorInvokePolicyArn"])) == sorted(
        [fn_arn, f"{fn_arn}:readonly", f"{fn_arn}:operator"])
