"""The event rules in the SAM template (issue 22): EMR state changes and alarm state changes
for alarms named with the configured prefix invoke the function (unqualified, as the schedule
does: the read-only door), undeliverable events go to a dead-letter queue that pages, and the
us-east-1 forwarding role for Route 53 health-check alarms exists only when asked for."""

from __future__ import annotations

import json
from typing import Any

import boto3

from monitor import triggers
from tests.deploy.test_template import PROD_LIKE, aws, deploy  # noqa: F401  (aws: the fixture)

PAGE = {"Ref": "PageTopic"}


def test_the_rules_match_exactly_the_events_the_handler_serves(translated: dict[str, Any]) -> None:
    res = translated["Resources"]
    emr = res["EmrStateRule"]["Properties"]["EventPattern"]
    assert emr == {"source": [triggers.EMR_SOURCE], "detail-type": sorted(triggers.DETAIL_TYPES[triggers.EMR_SOURCE],
                                                                         key=emr["detail-type"].index)}
    assert set(emr["detail-type"]) == triggers.DETAIL_TYPES[triggers.EMR_SOURCE]
    alarm = res["AlarmStateRule"]["Properties"]["EventPattern"]
    assert alarm["source"] == [triggers.ALARM_SOURCE] and alarm["detail-type"] == [triggers.ALARM_CHANGE]
    assert alarm["detail"] == {"alarmName": [{"prefix": {"Ref": "AlarmNamePrefix"}}]}
    for name in ("EmrStateRule", "AlarmStateRule"):
        [target] = res[name]["Properties"]["Targets"]
        assert target["Arn"] == {"Fn::GetAtt": ["Function", "Arn"]}  # unqualified, as the schedule
        assert target["DeadLetterConfig"] == {"Arn": {"Fn::GetAtt": ["EventDeadLetterQueue", "Arn"]}}
        perm = res[name.replace("Rule", "Permission")]["Properties"]
        assert perm["Principal"] == "events.amazonaws.com" and perm["SourceArn"] == {"Fn::GetAtt": [name, "Arn"]}
    assert res["EventDeadLetterAlarm"]["Properties"]["AlarmActions"] == [PAGE]
    assert res["AlarmForwardingRole"]["Condition"] == "ForwardsAlarms"


def test_the_rules_deploy_to_moto_and_target_the_function(translated: dict[str, Any], aws: dict[str, str]) -> None:  # noqa: F811
    deploy(translated, {"Environment": "test", **aws, **PROD_LIKE, "AlarmNamePrefix": "hive-",
                        "ForwardRoute53Alarms": "true"})
    events = boto3.client("events")
    fn = boto3.client("lambda").get_function(FunctionName="sentinel-test")["Configuration"]["FunctionArn"]
    rules = {r["Name"]: r for r in events.list_rules()["Rules"]}
    emr = json.loads(rules["sentinel-test-emr-state"]["EventPattern"])
    assert emr["source"] == ["aws.emr"] and set(emr["detail-type"]) == triggers.DETAIL_TYPES["aws.emr"]
    alarm = json.loads(rules["sentinel-test-alarm-state"]["EventPattern"])
    assert alarm["detail"] == {"alarmName": [{"prefix": "hive-"}]}
    dlq = boto3.client("sqs").get_queue_url(QueueName="sentinel-test-events-dlq")["QueueUrl"]
    dlq_arn = boto3.client("sqs").get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    for name in ("sentinel-test-emr-state", "sentinel-test-alarm-state"):
        [target] = events.list_targets_by_rule(Rule=name)["Targets"]
        assert target["Arn"] == fn
        assert target["DeadLetterConfig"]["Arn"] == dlq_arn
