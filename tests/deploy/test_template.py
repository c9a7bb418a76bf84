"""The SAM template: lints, translates offline, deploys into moto's CloudFormation, and its
alarms watch the metrics the code really emits (names, namespace and dimension set)."""

from __future__ import annotations

import ast
import io
import json
import re
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from deploy import iam, stack
from monitor.metrics import MetricsRecorder
from tests.deploy.conftest import CODE_BUCKET, CODE_KEY, SAM_MANAGED_POLICIES, TEMPLATE_PATH

PAGE = {"Ref": "PageTopic"}
INFO = {"Ref": "InfoTopic"}


def resources_of(tpl: dict[str, Any], rtype: str) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in tpl["Resources"].items() if v["Type"] == rtype}


def sub(value: Any, **params: str) -> Any:
    """Evaluate a plain ``Fn::Sub`` string with the given parameters (enough for names)."""
    if isinstance(value, dict) and "Fn::Sub" in value:
        return re.sub(r"\$\{(\w+)\}", lambda m: params[m.group(1)], value["Fn::Sub"])
    if isinstance(value, dict) and "Ref" in value:
        return params[value["Ref"]]
    return value


# ------------------------------------------------------------------ lint and translation


def test_cfn_lint_finds_nothing() -> None:
    cfn_lint = Path(sys.executable).with_name("cfn-lint")
    proc = subprocess.run([str(cfn_lint), str(TEMPLATE_PATH)], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_sam_translates_offline_into_plain_cloudformation(translated: dict[str, Any]) -> None:
    types = {v["Type"] for v in translated["Resources"].values()}
    assert not any(t.startswith("AWS::Serverless::") for t in types)
    assert {"AWS::Lambda::Function", "AWS::IAM::Role", "AWS::Events::Rule", "AWS::Lambda::Permission",
            "AWS::DynamoDB::Table", "AWS::SNS::Topic", "AWS::CloudWatch::Alarm",
            "AWS::Lambda::EventInvokeConfig", "AWS::Logs::LogGroup", "AWS::IAM::ManagedPolicy"} <= types


def test_function_runs_the_handler_on_python312_inside_the_vpc(translated: dict[str, Any]) -> None:
    fn = translated["Resources"]["Function"]["Properties"]
    assert fn["Runtime"] == "python3.12"
    assert fn["Handler"] == "monitor.handler.lambda_handler"
    assert fn["Architectures"] == ["x86_64"]  # the zip's wheels are manylinux x86_64
    assert fn["Code"] == {"S3Bucket": CODE_BUCKET, "S3Key": CODE_KEY}
    assert fn["MemorySize"] == {"Ref": "MemorySize"} and fn["Timeout"] == {"Ref": "Timeout"}
    assert fn["VpcConfig"] == {"SubnetIds": {"Ref": "SubnetIds"}, "SecurityGroupIds": {"Ref": "SecurityGroupIds"}}
    env = fn["Environment"]["Variables"]
    assert set(env) == {"SENTINEL_CONFIG", "POWERTOOLS_SERVICE_NAME", "POWERTOOLS_METRICS_NAMESPACE",
                        "POWERTOOLS_LOG_LEVEL", "SENTINEL_QUEUE_URL", "SENTINEL_DISPATCH", "SENTINEL_SCHEDULE_S",
                        "SENTINEL_DEPLOYMENT"}
    assert env["SENTINEL_SCHEDULE_S"] == {"Fn::Sub": "${AlarmPeriodSeconds}"}  # the dispatcher probes one interval
    assert env["SENTINEL_DEPLOYMENT"] == {"Fn::Sub": "${AWS::StackName}@${AWS::Region}"}  # the claim tag names it
    assert env["SENTINEL_CONFIG"] == {"Fn::If": ["UseSsmConfig", {"Fn::Sub": "ssm:/sentinel/${Environment}/config"},
                                                 "sentinel.yaml"]}
    assert env["POWERTOOLS_METRICS_NAMESPACE"] == {"Ref": "MetricsNamespace"}
    invoke_config = translated["Resources"]["FunctionEventInvokeConfig"]["Properties"]
    assert invoke_config["MaximumRetryAttempts"] == 0


def test_schedule_is_ten_minutes_by_default(template: dict[str, Any], translated: dict[str, Any]) -> None:
    assert template["Parameters"]["ScheduleExpression"]["Default"] == "rate(10 minutes)"
    rule = translated["Resources"]["FunctionSchedule"]["Properties"]
    assert rule["ScheduleExpression"] == {"Ref": "ScheduleExpression"}
    assert rule["Targets"][0]["Arn"] == {"Fn::GetAtt": ["Function", "Arn"]}


def test_state_table_matches_the_store(template: dict[str, Any]) -> None:
    table = template["Resources"]["StateTable"]
    props = table["Properties"]
    assert props["KeySchema"] == [{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}]
    assert {(a["AttributeName"], a["AttributeType"]) for a in props["AttributeDefinitions"]} == {("pk", "S"), ("sk", "S")}
    assert props["BillingMode"] == "PAY_PER_REQUEST"
    assert props["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}
    assert props["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert table["DeletionPolicy"] == "Retain"  # the audit trail outlives a stack delete


def test_page_subscriptions_exist_only_when_given(template: dict[str, Any]) -> None:
    subs = resources_of(template, "AWS::SNS::Subscription")
    conditions = template["Conditions"]
    for name in ("PageEmailSubscription", "PageHttpsSubscription", "InfoEmailSubscription"):
        cond = subs[name]["Condition"]
        assert conditions[cond]["Fn::Not"][0]["Fn::Equals"][1] == ""


def test_the_function_policy_is_the_generated_one(template: dict[str, Any], translated: dict[str, Any]) -> None:
    assert iam.template_policies(template) == [iam.policy_document()]
    role = translated["Resources"]["FunctionRole"]["Properties"]
    assert role["Policies"][0]["PolicyDocument"] == iam.policy_document()
    assert sorted(role["ManagedPolicyArns"]) == sorted(SAM_MANAGED_POLICIES.values())


# ------------------------------------------------------------------ alarms


def test_heartbeat_alarm_pages_when_the_monitor_stops(translated: dict[str, Any]) -> None:
    hb = translated["Resources"]["HeartbeatAlarm"]["Properties"]
    assert hb["MetricName"] == "Heartbeat" and hb["Namespace"] == {"Ref": "MetricsNamespace"}
    assert hb["TreatMissingData"] == "breaching"
    assert hb["ComparisonOperator"] == "LessThanThreshold" and hb["Threshold"] == 1
    assert hb["Period"] == {"Ref": "AlarmPeriodSeconds"} and 2 <= hb["EvaluationPeriods"] <= 3
    assert hb["AlarmActions"] == [PAGE]


def test_every_alarm_pages(translated: dict[str, Any]) -> None:
    alarms = resources_of(translated, "AWS::CloudWatch::Alarm")
    assert set(alarms) == {"HeartbeatAlarm", "TargetUnhealthyAlarm", "AllTargetsUnhealthyAlarm", "RecoveryEscalatedAlarm",
                           "AllTargetsRecoveryEscalatedAlarm", "FunctionErrorsAlarm", "FunctionThrottlesAlarm",
                           "StaleTargetAlarm", "DeadLetterQueueAlarm", "QueueAgeAlarm", "TicksNotEnqueuedAlarm",
                           "PagesNotDeliveredAlarm", "EventDeadLetterAlarm"}
    for name, alarm in alarms.items():
        # pages-not-delivered also goes to the info topic: the page topic may be what is broken
        assert alarm["Properties"]["AlarmActions"] == [PAGE, *([INFO] if name == "PagesNotDeliveredAlarm" else [])], \
            name


def test_target_and_recovery_alarms_have_a_per_target_and_an_all_targets_form(translated: dict[str, Any]) -> None:
    res = translated["Resources"]
    unhealthy = res["TargetUnhealthyAlarm"]
    assert unhealthy["Condition"] == "HasTargetName"
    p = unhealthy["Properties"]
    assert (p["MetricName"], p["Threshold"], p["ComparisonOperator"]) == ("TargetStatus", 2, "GreaterThanOrEqualToThreshold")
    assert {d["Name"]: d["Value"] for d in p["Dimensions"]}["target"] == {"Ref": "TargetName"}
    assert p["TreatMissingData"] == "notBreaching"  # the heartbeat covers "no data"
    escalated = res["RecoveryEscalatedAlarm"]["Properties"]
    assert (escalated["MetricName"], escalated["Threshold"], escalated["Statistic"]) == ("RecoveryFailed", 1, "Sum")
    for name, metric in (("AllTargetsUnhealthyAlarm", "MAX(TargetStatus)"), ("AllTargetsRecoveryEscalatedAlarm",
                                                                             "SUM(RecoveryFailed)")):
        alarm = res[name]
        assert alarm["Condition"] == "AllTargets"
        query = alarm["Properties"]["Metrics"][0]["Expression"]["Fn::Sub"]
        assert query.startswith(f"SELECT {metric} FROM SCHEMA(")
        assert "SEARCH" not in query  # alarms cannot use SEARCH


def test_lambda_error_and_throttle_alarms_watch_this_function(translated: dict[str, Any]) -> None:
    for name, metric in (("FunctionErrorsAlarm", "Errors"), ("FunctionThrottlesAlarm", "Throttles")):
        p = translated["Resources"][name]["Properties"]
        assert (p["Namespace"], p["MetricName"]) == ("AWS/Lambda", metric)
        assert p["Dimensions"] == [{"Name": "FunctionName", "Value": {"Ref": "Function"}}]


def _emitted(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> dict[str, dict[str, Any]]:
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "sentinel-test")
    rec = MetricsRecorder("Sentinel", emit=True)
    rec.put("Heartbeat", 1)
    rec.put("TargetStatus", 2, "None", target="prod-hive")
    rec.put("RecoveryFailed", 1, "Count", target="prod-hive")
    capsys.readouterr()
    rec.flush()
    out = {}
    for line in capsys.readouterr().out.splitlines():
        emf = json.loads(line)
        meta = emf["_aws"]["CloudWatchMetrics"][0]
        out[meta["Metrics"][0]["Name"]] = {"namespace": meta["Namespace"], "dims": set(meta["Dimensions"][0]),
                                           "values": {d: emf[d] for d in meta["Dimensions"][0]}}
    return out


def test_alarm_dimensions_are_exactly_what_powertools_emits(
    translated: dict[str, Any], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    """CloudWatch matches the full dimension set: Powertools adds ``service`` to every metric
    (POWERTOOLS_SERVICE_NAME), so an alarm without it would never see a datapoint — and the
    heartbeat alarm, missing data being breaching, would page forever."""
    emitted = _emitted(capsys, monkeypatch)
    params = {"Environment": "test", "TargetName": "prod-hive", "MetricsNamespace": "Sentinel"}
    fn_env = translated["Resources"]["Function"]["Properties"]["Environment"]["Variables"]
    assert sub(fn_env["POWERTOOLS_SERVICE_NAME"], **params) == "sentinel-test"
    for alarm_name in ("HeartbeatAlarm", "TargetUnhealthyAlarm", "RecoveryEscalatedAlarm"):
        p = translated["Resources"][alarm_name]["Properties"]
        metric = emitted[p["MetricName"]]
        assert sub(p["Namespace"], **params) == metric["namespace"]
        alarm_dims = {d["Name"]: sub(d["Value"], **params) for d in p["Dimensions"]}
        assert alarm_dims == metric["values"], alarm_name


# ------------------------------------------------------------------ deployed into moto


@pytest.fixture
def aws() -> Iterator[dict[str, str]]:
    with mock_aws():
        ec2 = boto3.client("ec2")
        vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
        subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.1.0/24")["Subnet"]["SubnetId"]
        sg = ec2.create_security_group(GroupName="sentinel", Description="sentinel", VpcId=vpc)["GroupId"]
        s3 = boto3.client("s3")
        s3.create_bucket(Bucket=CODE_BUCKET)
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as zf:
            zf.writestr("monitor/handler.py", "def lambda_handler(event, context):\n    return {}\n")
        s3.put_object(Bucket=CODE_BUCKET, Key=CODE_KEY, Body=buf.getvalue())
        yield {"SubnetIds": subnet, "SecurityGroupIds": sg}


PROD_LIKE = {
    "EmrServiceRoleArn": "arn:aws:iam::123456789012:role/EMR_DefaultRole",
    "EmrInstanceRoleArn": "arn:aws:iam::123456789012:role/EMR_EC2_DefaultRole",
    "CredstashKeyArn": "arn:aws:kms:us-east-1:123456789012:key/0000-1111",
    "CredstashContextEnv": "test",
    "RecoveryTargets": "prod-hive,stage-hive",
    "LoadBalancerArns": "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/hive/0123456789abcdef,"
                        "arn:aws:elasticloadbalancing:us-east-1:123456789012:loadbalancer/hive-classic",
    "HostedZoneId": "Z0123456789ABCDEFGHIJ",
    "DnsRecordNames": "hive.internal.example.com",
    "SpecKeyArn": "arn:aws:kms:us-east-1:123456789012:key/2222-3333",
    "DiagnosticsBucket": "sentinel-diagnostics",
}


def deploy(translated: dict[str, Any], params: dict[str, str], name: str = "sentinel-test") -> dict[str, Any]:
    cf = boto3.client("cloudformation")
    cf.create_stack(StackName=name, TemplateBody=json.dumps(translated), Capabilities=["CAPABILITY_IAM"],
                    Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in params.items()])
    stack_ = cf.describe_stacks(StackName=name)["Stacks"][0]
    assert stack_["StackStatus"] == "CREATE_COMPLETE", stack_.get("StackStatusReason")
    return {o["OutputKey"]: o["OutputValue"] for o in stack_.get("Outputs", [])}


def role_policy(function_name: str) -> list[dict[str, Any]]:
    iam_client = boto3.client("iam")
    role = boto3.client("lambda").get_function(FunctionName=function_name)["Configuration"]["Role"].split("/")[-1]
    names = iam_client.list_role_policies(RoleName=role)["PolicyNames"]
    assert len(names) == 1
    doc = iam_client.get_role_policy(RoleName=role, PolicyName=names[0])["PolicyDocument"]
    if isinstance(doc, str):  # moto keeps a CloudFormation-made inline policy as the dict's repr
        doc = ast.literal_eval(doc)
    return [s for s in doc["Statement"] if s]  # moto leaves a dropped (AWS::NoValue) statement as None


def test_stack_deploys_into_moto_with_every_resource(translated: dict[str, Any], aws: dict[str, str]) -> None:
    outputs = deploy(translated, {"Environment": "test", **aws, **PROD_LIKE})
    assert outputs["FunctionName"] == "sentinel-test"
    assert outputs["StateTableName"] == "sentinel-test-state"
    assert outputs["PageTopicArn"].endswith(":sentinel-test-pages")
    assert outputs["ConfigParameterName"] == "/sentinel/test/config"

    fn = boto3.client("lambda").get_function(FunctionName="sentinel-test")["Configuration"]
    assert (fn["Runtime"], fn["Handler"], fn["Timeout"], fn["MemorySize"]) == (
        "python3.12", "monitor.handler.lambda_handler", 300, 512)
    assert fn["Environment"]["Variables"] == {
        "SENTINEL_CONFIG": "ssm:/sentinel/test/config", "POWERTOOLS_SERVICE_NAME": "sentinel-test",
        "POWERTOOLS_METRICS_NAMESPACE": "Sentinel", "POWERTOOLS_LOG_LEVEL": "INFO", "SENTINEL_DISPATCH": "queue",
        "SENTINEL_SCHEDULE_S": "600", "SENTINEL_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/sentinel-test-ticks",
        "SENTINEL_DEPLOYMENT": "sentinel-test@us-east-1"}
    assert fn["VpcConfig"]["SubnetIds"] == [aws["SubnetIds"]]

    events = boto3.client("events")
    rules = [r for r in events.list_rules()["Rules"] if "ScheduleExpression" in r]  # the event rules: test_events_template
    assert [r["ScheduleExpression"] for r in rules] == ["rate(10 minutes)"]
    assert rules[0]["State"] == "ENABLED"
    targets = events.list_targets_by_rule(Rule=rules[0]["Name"])["Targets"]
    assert [t["Arn"] for t in targets] == [fn["FunctionArn"]]

    table = boto3.client("dynamodb").describe_table(TableName="sentinel-test-state")["Table"]
    assert table["KeySchema"] == [{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}]
    assert table["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    # moto's CloudFormation ignores TimeToLiveSpecification and PITR: asserted on the template above.

    topics = {t["TopicArn"].rsplit(":", 1)[1] for t in boto3.client("sns").list_topics()["Topics"]}
    assert topics == {"sentinel-test-pages", "sentinel-test-info"}

    statements = role_policy("sentinel-test")
    used = iam.assign(iam.declared_sources())
    assert {s["Sid"] for s in statements} == {s.sid for s in iam.SCOPES if used[s.sid]}
    allowed = {a for s in statements for a in s["Action"]}
    assert allowed == iam.declared_actions()
    by_sid = {s["Sid"]: s for s in statements}
    assert by_sid["StateTable"]["Resource"] == ["arn:aws:dynamodb:us-east-1:123456789012:table/sentinel-test-state"]
    assert by_sid["CredstashKey"]["Resource"] == [PROD_LIKE["CredstashKeyArn"]]
    assert by_sid["DiagnosticsOutput"]["Resource"] == ["arn:aws:s3:::sentinel-diagnostics/*"]
    assert by_sid["CredstashKey"]["Condition"] == {"StringEquals": {"kms:EncryptionContext:env": "test"}}
    # (moto leaves the AWS::NoValue of the absent autoscaling role as None; CloudFormation drops it)
    assert [r for r in by_sid["PassEmrRoles"]["Resource"] if r] == [PROD_LIKE["EmrServiceRoleArn"],
                                                                     PROD_LIKE["EmrInstanceRoleArn"]]
    assert sorted(by_sid["Notify"]["Resource"]) == sorted(
        f"arn:aws:sns:us-east-1:123456789012:{t}" for t in ("sentinel-test-pages", "sentinel-test-info"))
    # (moto does not attach AWS managed policies; the translated role lists them, asserted above)


def test_monitor_only_stack_grants_no_write_action(translated: dict[str, Any], aws: dict[str, str]) -> None:
    deploy(translated, {"Environment": "watch", "EnableRecovery": "false", **aws})
    statements = role_policy("sentinel-watch")
    allowed = {a for s in statements for a in s["Action"]}
    writes = {a for a in allowed if not a.split(":")[1].startswith(iam.READ_VERBS)}
    # what remains is the tick's own bookkeeping: its state table, its topics, its work queue and
    # the outage ledger (monitor/core/outages.py: which state-table outage was paged, kept outside the table)
    assert writes == {"dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:ConditionCheckItem", "sns:Publish",
                      "kms:Decrypt", "sqs:SendMessage", "sqs:ReceiveMessage", "sqs:DeleteMessage",
                      "ssm:PutParameter", "ssm:DeleteParameter"}
    assert {s["Sid"] for s in statements} == {"StateTable", "CredstashTable", "SsmParameters", "SsmSecureStringDecrypt",
                                              "SecretsManager", "Notify", "WorkQueue", "OutageLedger", "Read"}
    [ledger] = [s for s in statements if s["Sid"] == "OutageLedger"]
    assert ledger["Resource"] == ["arn:aws:ssm:us-east-1:123456789012:parameter/sentinel/sentinel-watch-state/outages/*"]


def test_packaged_config_source_sets_the_file_path(translated: dict[str, Any], aws: dict[str, str]) -> None:
    deploy(translated, {"Environment": "file", "ConfigSource": "file", **aws, **PROD_LIKE})
    env = boto3.client("lambda").get_function(FunctionName="sentinel-file")["Configuration"]["Environment"]
    assert env["Variables"]["SENTINEL_CONFIG"] == "sentinel.yaml"


def test_samconfig_environments_deploy(translated: dict[str, Any], aws: dict[str, str]) -> None:
    """dev and prod overrides are accepted by the template (subnets swapped for moto's)."""
    for env in ("dev", "prod"):
        params = {**stack.parameter_overrides(env), **aws}
        deploy(translated, params, name=f"sentinel-{env}")
        fn = boto3.client("lambda").get_function(FunctionName=f"sentinel-{env}")["Configuration"]
        assert fn["Environment"]["Variables"]["SENTINEL_CONFIG"] == f"ssm:/sentinel/{env}/config"
