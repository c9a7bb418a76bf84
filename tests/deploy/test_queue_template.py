"""The work queue in the SAM template (dispatch: queue): the queue, its dead-letter queue, the
event-source mapping that feeds the function, the alarms that watch them, and IAM that names
this queue only (never the DLQ, never every queue)."""

from __future__ import annotations

from typing import Any

from deploy import iam
from monitor import queue

PAGE = {"Ref": "PageTopic"}


def test_the_mapping_feeds_one_message_per_invocation_with_partial_batch_failures(translated: dict[str, Any]) -> None:
    res = translated["Resources"]
    [mapping] = [r for r in res.values() if r["Type"] == "AWS::Lambda::EventSourceMapping"]
    p = mapping["Properties"]
    assert p["EventSourceArn"] == {"Fn::GetAtt": ["WorkQueue", "Arn"]}
    assert p["FunctionName"] == {"Ref": "Function"}  # unqualified: the read-only door, which serves tick
    assert p["BatchSize"] == 1 and p["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert p["ScalingConfig"] == {"MaximumConcurrency": {"Ref": "QueueMaximumConcurrency"}}


def test_poison_messages_are_redriven_to_the_dead_letter_queue(translated: dict[str, Any]) -> None:
    res = translated["Resources"]
    q = res["WorkQueue"]["Properties"]
    assert q["RedrivePolicy"] == {"deadLetterTargetArn": {"Fn::GetAtt": ["DeadLetterQueue", "Arn"]},
                                  "maxReceiveCount": {"Ref": "QueueMaxReceiveCount"}}
    assert q["VisibilityTimeout"] == {"Ref": "Timeout"}  # Lambda refuses a shorter one
    assert res["DeadLetterQueue"]["Properties"]["MessageRetentionPeriod"] == 1209600
    assert translated["Parameters"]["QueueMaxReceiveCount"]["Default"] == 3


def test_the_function_learns_the_queue_and_the_queue_default_from_its_environment(translated: dict[str, Any]) -> None:
    env = translated["Resources"]["Function"]["Properties"]["Environment"]["Variables"]
    assert env[queue.QUEUE_URL_ENV] == {"Ref": "WorkQueue"} and env[queue.DISPATCH_ENV] == "queue"


def test_only_this_queue_is_allowed_and_only_what_sending_and_the_mapping_need() -> None:
    statements = {s.get("Sid"): s for s in iam.policy_statements() if isinstance(s, dict) and "Sid" in s}
    wq = statements["WorkQueue"]
    assert wq["Resource"] == [{"Fn::GetAtt": ["WorkQueue", "Arn"]}]
    assert wq["Action"] == ["sqs:DeleteMessage", "sqs:GetQueueAttributes", "sqs:ReceiveMessage", "sqs:SendMessage"]
    sqs_sids = {sid for sid, s in statements.items() if any(a.startswith("sqs:") for a in s["Action"])}
    assert sqs_sids == {"WorkQueue"}


def test_sam_attaches_no_queue_policy_of_its_own(translated: dict[str, Any]) -> None:
    role = translated["Resources"]["FunctionRole"]["Properties"]
    managed = " ".join(str(a) for a in role.get("ManagedPolicyArns", []))
    assert "SQS" not in managed  # AWSLambdaSQSQueueExecutionRole would allow every queue


def test_the_queue_side_pages_when_it_stops_working(translated: dict[str, Any]) -> None:
    res = translated["Resources"]
    dlq = res["DeadLetterQueueAlarm"]["Properties"]
    assert (dlq["Namespace"], dlq["MetricName"], dlq["Threshold"], dlq["ComparisonOperator"]) == (
        "AWS/SQS", "ApproximateNumberOfMessagesVisible", 0, "GreaterThanThreshold")
    assert dlq["Dimensions"] == [{"Name": "QueueName", "Value": {"Fn::GetAtt": ["DeadLetterQueue", "QueueName"]}}]
    age = res["QueueAgeAlarm"]["Properties"]
    assert (age["MetricName"], age["Threshold"]) == ("ApproximateAgeOfOldestMessage", {"Ref": "QueueAgeAlarmSeconds"})
    assert translated["Parameters"]["QueueAgeAlarmSeconds"]["Default"] > queue.MAX_DELAY_S  # a re-check's delay is no backlog
    stale = res["StaleTargetAlarm"]["Properties"]
    assert (stale["MetricName"], stale["Statistic"], stale["Threshold"]) == (
        "StalestTickSeconds", "Maximum", {"Ref": "StaleTickSeconds"})
    assert translated["Parameters"]["StaleTickSeconds"]["Default"] == 2 * translated["Parameters"][
        "AlarmPeriodSeconds"]["Default"]  # two intervals
    for name in ("DeadLetterQueueAlarm", "QueueAgeAlarm", "StaleTargetAlarm"):
        assert res[name]["Properties"]["AlarmActions"] == [PAGE], name
