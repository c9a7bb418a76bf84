"""Notifications to people through SNS: pages (on-call) and info messages.

Every message says what happened, what sentinel did, and what to run next. Text passes a
redactor (known secret values → ``****``) before it leaves the process; a failed publish
never fails the tick: it is recorded in the report and logged.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from monitor.aws import error_code

Severity = Literal["page", "info"]
PERMISSIONS = ("sns:Publish",)


@dataclass
class Message:
    severity: Severity
    target: str
    subject: str
    body: str
    kind: str  # e.g. "confirmed", "unknown", "state-unreadable", "recovery-started"
    delivered: bool = False
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"severity": self.severity, "target": self.target, "kind": self.kind,
                "subject": self.subject, "delivered": self.delivered, "error": self.error}


class Notifier:
    def __init__(
        self,
        sns: Any,
        page_topic_arn: str,
        info_topic_arn: str | None,
        *,
        redact: Callable[[str], str] = lambda s: s,
        dry_run: bool = False,
        log: Callable[..., None] | None = None,
    ) -> None:
        self._sns = sns
        self.page_topic_arn = page_topic_arn
        self.info_topic_arn = info_topic_arn
        self._redact = redact
        self.dry_run = dry_run
        self._log = log
        self.sent: list[Message] = []
        self._lock = threading.Lock()

    def page(self, target: str, kind: str, subject: str, body: str) -> Message:
        return self._send(Message("page", target, subject, body, kind))

    def info(self, target: str, kind: str, subject: str, body: str) -> Message:
        return self._send(Message("info", target, subject, body, kind))

    def _send(self, msg: Message) -> Message:
        msg.subject = self._redact(_subject(msg))
        msg.body = self._redact(msg.body)
        topic = self.page_topic_arn if msg.severity == "page" else (self.info_topic_arn or None)
        if topic is None:
            msg.error = "no info_topic_arn configured"
        elif self.dry_run:
            msg.error = "dry run: not sent"
        else:
            try:
                self._sns.publish(
                    TopicArn=topic,
                    Subject=msg.subject,
                    Message=msg.body,
                    MessageAttributes={
                        "target": {"DataType": "String", "StringValue": msg.target},
                        "kind": {"DataType": "String", "StringValue": msg.kind},
                        "severity": {"DataType": "String", "StringValue": msg.severity},
                    },
                )
                msg.delivered = True
            except Exception as exc:
                msg.error = f"sns publish failed ({error_code(exc)})"
                if self._log:
                    self._log("notification failed", target=msg.target, kind=msg.kind, error=msg.error)
        with self._lock:
            self.sent.append(msg)
        return msg


def _subject(msg: Message) -> str:
    """SNS subjects: at most 100 printable ASCII characters, no newlines."""
    prefix = "[sentinel PAGE]" if msg.severity == "page" else "[sentinel]"
    text = f"{prefix} {msg.target}: {msg.subject}"
    text = "".join(ch if 32 <= ord(ch) < 127 else "?" for ch in text)
    return text if len(text) <= 100 else text[:97] + "..."
