"""Notifications to people through SNS: pages (on-call) and info messages.

Every message says what happened, what sentinel did, and what to run next. Text passes a
redactor (known secret values → ``****``) before it leaves the process; a failed publish
never fails the tick: it is recorded in the report and logged.

A page SNS did not accept is not lost: :meth:`Notifier.undelivered` hands it to the tick, which
keeps it in the target's state (``pending_pages``, :func:`pending_entry`) and retries it on every
later tick with :meth:`Notifier.redeliver`, marked late and carrying its original time.

Every message also ends with the same "at a glance" block, added here and nowhere else, so a
new message kind gets it without anyone remembering to: the target, what failed, since when
(in ``notify.timezone`` and in UTC: on-call thinks in local time, logs and AWS speak UTC), what
sentinel did or will do, and the exact command to run next (:data:`KIND_GUIDE`, with a
default for kinds it does not list).
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from typing import Any, Literal

from monitor.core.aws import error_code
from monitor.core.clock import iso, zone
from monitor.core.errors import StateError
from monitor.core.state.base import TargetState

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
    at: str | None = None  # when it was first sent (ISO); a late delivery keeps the original
    pending_id: str | None = None  # set on a redelivery of a kept page
    attempts: int = 1

    def to_dict(self) -> dict[str, Any]:
        out = {"severity": self.severity, "target": self.target, "kind": self.kind,
               "subject": self.subject, "delivered": self.delivered, "error": self.error}
        if self.pending_id:
            out.update(late=True, first_at=self.at, attempts=self.attempts)
        return out

    @property
    def retryable(self) -> bool:
        """A page SNS refused (not a dry run, not a missing topic): keep it and send it again."""
        return self.severity == "page" and not self.delivered and (self.error or "").startswith("sns publish failed")


MAX_PENDING = 20  # pages kept per target; beyond it the oldest is dropped (and said in the next)
MAX_PENDING_BODY = 6000  # characters of a kept page's body (DynamoDB items stay small)


def pending_entry(msg: Message) -> dict[str, Any]:
    """What the target's state keeps of an undelivered page (``TargetState.pending_pages``)."""
    return {"id": msg.pending_id or uuid.uuid4().hex[:12], "kind": msg.kind, "severity": msg.severity,
            "subject": msg.subject, "body": msg.body[:MAX_PENDING_BODY], "first_at": msg.at,
            "attempts": msg.attempts, "error": msg.error}


@dataclass(frozen=True)
class PageFacts:
    """What the glance block says about a target: what failed, since when, the incident."""

    failed: str | None = None  # "hive-via-elb CRITICAL (no_backend)"; None = nothing failing now
    since: datetime | None = None
    since_label: str = "Since"
    incident: str | None = None  # "prod-hive-2026... in WAIT_READY"


# kind -> (what sentinel did / will do, the command to run next; {t} = the target). A kind not
# listed (a new one) gets DEFAULT_GUIDE: the block is still complete.
KIND_GUIDE: dict[str, tuple[str, str]] = {
    "confirmed": ("paged; no automatic recovery (the reason is above)",
                  "sentinel status --target {t}   then, once what blocks it is fixed: sentinel recover --target {t}"),
    "unknown": ("nothing: no automatic action while it cannot judge the target",
                "sentinel check --target {t}"),
    "resolved": ("nothing more: every check is OK again, automation continues", "sentinel status --target {t}"),
    "flapping": ("paged once; flapping never starts a relaunch (recovery.when.on_flapping: restart may allow a "
                 "restart rung); an info message follows when it is steady again",
                 "sentinel status --target {t}   and watch it: sentinel check --target {t}"),
    "flapping-cleared": ("nothing more: the check is steady again, its failures are judged as usual",
                         "sentinel status --target {t}"),
    "state-unreadable": ("stopped every automatic action for this target (fail closed) until its state table "
                         "is readable", "sentinel status --target {t}"),
    "incident-orphaned": ("nothing: the target is gone from the config, so nobody advances or rolls back the "
                          "incident", "put the target back in the config, then: sentinel abort --target {t} "
                          "--reason \"target removed\""),
    "recovery-started": ("started an automatic recovery; it advances one phase or more every tick",
                         "sentinel status --target {t}   (to stop it: sentinel abort --target {t} --reason \"...\")"),
    "recovery-succeeded": ("recovered the target; automation continues", "sentinel status --target {t}"),
    "recovery-escalated": ("stopped the recovery and paused automation for this target until `sentinel ack`",
                           "sentinel status --target {t}   then, when handled: sentinel ack --target {t}"),
    "recovery-stalled": ("keeps the recovery where it is (it is not advancing); nothing is rolled back",
                         "sentinel status --target {t}   or end it: sentinel abort --target {t} --reason \"...\""),
    "recovery-aborted": ("rolled back what the phase allows and paused automation for this target",
                         "sentinel status --target {t}   then: sentinel ack --target {t}"),
    "recovery-dry-run": ("changed nothing: recovery is in dry-run mode", "sentinel plan --target {t}"),
    "recovery-climbing": ("tried the next rung of the recovery ladder (the one before did not help)",
                          "sentinel status --target {t}   (to stop it: sentinel abort --target {t} --reason \"...\")"),
    "recovery-failed": ("is rolling back what it can; a page follows when it stops", "sentinel status --target {t}"),
    "approval-needed": ("waits for a person's yes before the rung above acts (recovery.approval); nobody answering "
                        "follows on_timeout", "sentinel approve --target {t} --reason \"...\"   or: sentinel deny "
                        "--target {t} --reason \"...\""),
    "approval-answered": ("recorded the answer (who and why are above) and acted on it", "sentinel status --target {t}"),
    "recovery-recurring": ("fixed it again; the same rung keeps fixing it (with then: pause, that rung is now "
                           "skipped until `sentinel ack`)",
                           "sentinel status --target {t}   then, once the cause is handled: sentinel ack --target {t}"),
}
DEFAULT_GUIDE = ("see above", "sentinel status --target {t}")


def facts_from_state(state: TargetState) -> PageFacts:
    """The glance facts from a stored TargetState (the runbook's pages: the tick's own facts,
    when it noted them, are fresher). A finished incident still says when it started."""
    failing = [r for r in (state.last_results or []) if r.get("status") not in ("OK", None)]
    inc = state.incident or {}
    since, label = (state.failing_since, "Failing since") if state.failing_since else \
        (inc.get("started_at"), "Incident started")
    return PageFacts(
        failed=", ".join(_failed_text(r.get("name"), r.get("status"), r.get("error_kind")) for r in failing) or None,
        since=_parse(since),
        since_label=label,
        incident=f"{inc.get('id')} in {inc.get('phase')}" if inc.get("id") else None,
    )


def _failed_text(name: Any, status: Any, kind: Any) -> str:
    return f"{name} {status}" + (f" ({kind})" if kind else "")


def _parse(ts: str | None) -> datetime | None:
    if not ts:
        return None
    try:
        parsed = datetime.fromisoformat(ts.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def when(ts: datetime, tz: tzinfo) -> str:
    """``2026-12-01 05:09 CET (Europe/Berlin) = 04:09 UTC``; UTC alone when the zone is UTC."""
    utc = ts.astimezone(UTC)
    key = getattr(tz, "key", "UTC")
    if tz is UTC or key in ("UTC", "Etc/UTC"):
        return f"{utc:%Y-%m-%d %H:%M} UTC"
    local = ts.astimezone(tz)
    day = "" if local.date() == utc.date() else f"{utc:%Y-%m-%d} "
    return f"{local:%Y-%m-%d %H:%M %Z} ({key}) = {day}{utc:%H:%M} UTC"


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
        timezone: str = "UTC",
        facts: Callable[[str], PageFacts | None] | None = None,
        now: Callable[[], datetime] | None = None,
    ) -> None:
        self._sns = sns
        self.page_topic_arn = page_topic_arn
        self.info_topic_arn = info_topic_arn
        self._redact = redact
        self.dry_run = dry_run
        self._log = log
        self.tz: tzinfo = zone(timezone)
        self._facts = facts
        self._now = now or (lambda: datetime.now(UTC))
        self._noted: dict[str, PageFacts] = {}
        # Called after each message (sent or not): the CLI shows a recovery's progress with it.
        self.on_send: Callable[[Message], None] | None = None
        self.sent: list[Message] = []
        self._lock = threading.Lock()

    def note(self, target: str, facts: PageFacts) -> None:
        """Facts the tick knows first-hand (this tick's results): used instead of reading state."""
        with self._lock:
            self._noted[target] = facts

    def undelivered(self, target: str) -> list[Message]:
        """This invocation's pages to ``target`` that SNS did not take (redeliveries included)."""
        with self._lock:
            return [m for m in self.sent if m.target == target and m.retryable]

    def redeliver(self, target: str, entry: dict[str, Any]) -> Message:
        """Send a kept page again, marked late, with its original time."""
        first = _parse(entry.get("first_at"))
        attempts = int(entry.get("attempts") or 1) + 1
        first_text = when(first, self.tz) if first else "an earlier tick"
        body = (f"Delivered late: first sent at {first_text}; SNS did not accept it then "
                f"({entry.get('error') or 'unknown error'}). Attempt {attempts}.\n\n{entry.get('body', '')}")
        subject = str(entry.get("subject") or "")
        if "(late)" not in subject:
            subject = subject.replace("] ", "] (late) ", 1)
            subject = subject if len(subject) <= 100 else subject[:97] + "..."
        msg = Message("page" if entry.get("severity") != "info" else "info", target, subject, body,
                      str(entry.get("kind") or "page"), at=entry.get("first_at"),
                      pending_id=str(entry.get("id") or ""), attempts=attempts)
        return self._publish(msg)

    def page(self, target: str, kind: str, subject: str, body: str) -> Message:
        return self._send(Message("page", target, subject, self._with_glance(target, kind, body), kind))

    def info(self, target: str, kind: str, subject: str, body: str) -> Message:
        return self._send(Message("info", target, subject, self._with_glance(target, kind, body), kind))

    def _with_glance(self, target: str, kind: str, body: str) -> str:
        return body.rstrip("\n") + "\n\n" + self.glance(target, kind)

    def glance(self, target: str, kind: str) -> str:
        """The block every message ends with. Never fails: a fact it cannot get says so."""
        facts = self._noted.get(target)
        if facts is None and self._facts is not None:
            try:
                facts = self._facts(target)
            except StateError:  # the block says what it cannot know
                facts = PageFacts(failed="unknown (state table unreadable)")
            except Exception as exc:  # a page goes out even if its glance is incomplete
                facts = PageFacts(failed=f"unknown ({type(exc).__name__} reading state)")
        facts = facts or PageFacts()
        did, nxt = KIND_GUIDE.get(kind, DEFAULT_GUIDE)
        since = when(facts.since, self.tz) if facts.since else f"not known; sent {when(self._now(), self.tz)}"
        rows = [("Target", target),
                ("Had failed" if kind in ("resolved", "recovery-succeeded") else "Failed",
                 facts.failed or "nothing failing now"),
                (facts.since_label, since)]
        if facts.incident:
            rows.append(("Incident", facts.incident))
        rows += [("sentinel", did), ("Next", nxt.format(t=target))]
        pad = max(len(label) for label, _ in rows) + 2
        lines = ["-- at a glance --", *(f"{label + ':':<{pad}}{value}" for label, value in rows)]
        return "\n".join(lines)

    def _send(self, msg: Message) -> Message:
        msg.subject = self._redact(_subject(msg))
        msg.body = self._redact(msg.body)
        msg.at = iso(self._now())
        return self._publish(msg)

    def _publish(self, msg: Message) -> Message:
        topic = self.page_topic_arn if msg.severity == "page" else (self.info_topic_arn or None)
        if topic is None:
            msg.error = "no info_topic_arn configured"
        elif self.dry_run:
            msg.error = "dry run: not sent"
        else:
            try:
                attributes = {
                    "target": {"DataType": "String", "StringValue": msg.target},
                    "kind": {"DataType": "String", "StringValue": msg.kind},
                    "severity": {"DataType": "String", "StringValue": msg.severity},
                }
                if msg.pending_id:
                    attributes["late"] = {"DataType": "String", "StringValue": "true"}
                self._sns.publish(TopicArn=topic, Subject=msg.subject, Message=msg.body,
                                  MessageAttributes=attributes)
                msg.delivered = True
            except Exception as exc:
                msg.error = f"sns publish failed ({error_code(exc)})"
                if self._log:
                    self._log("notification failed", target=msg.target, kind=msg.kind, error=msg.error)
        with self._lock:
            self.sent.append(msg)
        if self.on_send is not None:
            self.on_send(msg)
        return msg


def _subject(msg: Message) -> str:
    """SNS subjects: at most 100 printable ASCII characters, no newlines."""
    prefix = "[sentinel PAGE]" if msg.severity == "page" else "[sentinel]"
    text = f"{prefix} {msg.target}: {msg.subject}"
    text = "".join(ch if 32 <= ord(ch) < 127 else "?" for ch in text)
    return text if len(text) <= 100 else text[:97] + "..."
