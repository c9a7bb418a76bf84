"""moto-backed account helpers shared by functional tests."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from monitor.core.aws import ClientFactory
from monitor.core.state.dynamodb import create_table
from monitor.sandbox.seed import Pager


@dataclass
class Account:
    clients: ClientFactory
    pager: Pager

    @property
    def page_topic(self) -> str:
        return self.pager.topic_arn

    def messages(self) -> list[dict[str, Any]]:
        """Everything published to the page topic, read back through the SQS subscription."""
        return self.pager.messages()


def seed_account(table: str = "sentinel-state") -> Account:
    """State table, page topic and an SQS queue subscribed to it (call inside mock_aws)."""
    clients = ClientFactory("us-east-1")
    create_table(clients.client("dynamodb"), table)
    return Account(clients, Pager.create(clients))


class LambdaContext:
    function_name = "sentinel"
    memory_limit_in_mb = 256
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:sentinel"

    def __init__(self, request_id: str = "req-1", remaining_ms: int = 60_000, qualifier: str | None = None) -> None:
        self.aws_request_id = request_id
        self._remaining = remaining_ms
        if qualifier is not None:  # invoked through an alias (a door): arn:...:function:sentinel:<qualifier>
            self.invoked_function_arn = f"{LambdaContext.invoked_function_arn}:{qualifier}"

    def get_remaining_time_in_millis(self) -> int:
        return self._remaining
