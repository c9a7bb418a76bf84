"""moto-backed account helpers shared by functional tests."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from monitor.aws import ClientFactory
from monitor.state.dynamodb import create_table


@dataclass
class Account:
    clients: ClientFactory
    page_topic: str
    queue_url: str

    def messages(self) -> list[dict[str, Any]]:
        """Everything published to the page topic, read back through the SQS subscription."""
        sqs = self.clients.client("sqs")
        out: list[dict[str, Any]] = []
        while True:
            resp = sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0)
            batch = resp.get("Messages", [])
            if not batch:
                return out
            for m in batch:
                out.append(json.loads(m["Body"]))
                sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=m["ReceiptHandle"])


def seed_account(table: str = "sentinel-state") -> Account:
    """State table, page topic and an SQS queue subscribed to it (call inside mock_aws)."""
    clients = ClientFactory("us-east-1")
    create_table(clients.client("dynamodb"), table)
    topic = clients.client("sns").create_topic(Name="sentinel-pages")["TopicArn"]
    sqs = clients.client("sqs")
    queue_url = sqs.create_queue(QueueName="pages")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    clients.client("sns").subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)
    return Account(clients, topic, queue_url)


class LambdaContext:
    function_name = "sentinel"
    memory_limit_in_mb = 256
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:sentinel"

    def __init__(self, request_id: str = "req-1", remaining_ms: int = 60_000) -> None:
        self.aws_request_id = request_id
        self._remaining = remaining_ms

    def get_remaining_time_in_millis(self) -> int:
        return self._remaining
