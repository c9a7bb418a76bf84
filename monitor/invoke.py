"""``sentinel invoke``: run an action in the deployed Lambda and print its report.

Why on-call uses this rather than ``sentinel tick -c ...`` from a laptop: the Lambda runs
inside the VPC (it reaches the internal ELB), with the function's own least-privilege role,
the deployed config and the same lease as the schedule. On-call needs only
``lambda:InvokeFunction`` on the function (the stack's ``InvokePolicyArn`` output).

The invocation is synchronous (``RequestResponse``) and never retried by the client: a
``recover`` sent twice must not be the CLI's doing (the lease would stop the second, but it
would still page). The read timeout outlasts the longest Lambda timeout (900 s) for the
same reason: botocore's default (60 s) would time out and re-send a long tick.

Exit codes (DESIGN §5): the report's ``exit_code``; 2 for a usage error found before
invoking; 3 when the function itself failed (timeout, crash) or AWS refused the call.
"""

from __future__ import annotations

import argparse
import base64
import getpass
import json
import os
import sys
from collections.abc import Callable
from typing import Any

from monitor.report import EXIT_UNKNOWN, EXIT_USAGE

# The longest Lambda timeout is 900 s; wait a little longer for the response.
READ_TIMEOUT_S = 910
CONNECT_TIMEOUT_S = 10
TARGETED = ("recover", "silence", "unsilence", "ack", "abort", "plan", "approve", "deny")
# The two doors (DESIGN §10): each action goes through the alias that allows it, so a person
# with only the read-only door can still run tick/check/status/plan with this command.
OPERATOR_ACTIONS = ("recover", "abort", "silence", "unsilence", "ack", "approve", "deny")
READONLY_ALIAS, OPERATOR_ALIAS = "readonly", "operator"
LOG_TAIL_LINES = 10

LambdaClientFactory = Callable[[str | None, str | None], Any]


def lambda_client(region: str | None, profile: str | None) -> Any:
    """A Lambda client that waits for long invocations and never re-sends one."""
    import boto3
    from botocore.config import Config

    session = boto3.session.Session(profile_name=profile)
    return session.client("lambda", region_name=region, config=Config(
        read_timeout=READ_TIMEOUT_S, connect_timeout=CONNECT_TIMEOUT_S, retries={"total_max_attempts": 1}))


# Tests replace this (there is no Lambda to call offline: moto would need Docker).
client_factory: LambdaClientFactory = lambda_client


def requested_by() -> str:
    """Who asked (recorded in the audit trail): $SENTINEL_USER, else the local login name."""
    try:
        who = os.environ.get("SENTINEL_USER") or getpass.getuser()
    except Exception:
        who = "unknown"
    return who[:128]


def build_event(args: argparse.Namespace) -> dict[str, Any]:
    """The manual event (DESIGN §4; keys as monitor.events.Request accepts them)."""
    event: dict[str, Any] = {
        "action": args.action,
        "target": getattr(args, "target", None),
        "dry_run": bool(getattr(args, "dry_run", False)),
        "force": bool(getattr(args, "force", False)),
        "requested_by": requested_by(),
        "for": getattr(args, "duration", None),
        "reason": getattr(args, "reason", None),
    }
    if getattr(args, "actions_only", False):  # silence --actions-only, once the invoke parser has it
        event["actions_only"] = True
    for key in ("rung", "incident"):  # approve, deny: the ask answered
        if getattr(args, key, None):
            event[key] = getattr(args, key)
    return event


def door_for(action: str) -> str:
    """The function alias (invoke ``Qualifier``) for ``action``: ``operator`` for actions that
    change sentinel's state by hand, ``readonly`` for the rest."""
    return OPERATOR_ALIAS if action in OPERATOR_ACTIONS else READONLY_ALIAS


def usage_problem(event: dict[str, Any]) -> str | None:
    """What the handler would reject anyway, found before paying for an invocation."""
    if event["action"] in TARGETED and not event["target"]:
        return f"usage: sentinel invoke {event['action']} needs --target"
    if event["action"] == "silence" and not (event["for"] and event["reason"]):
        return "usage: sentinel invoke silence needs --for (e.g. 2h) and --reason"
    if event["action"] in ("abort", "approve", "deny") and not event["reason"]:
        return f"usage: sentinel invoke {event['action']} needs --reason"
    return None


def _confirmed(args: argparse.Namespace, event: dict[str, Any]) -> bool:
    if event["action"] != "recover" or event["dry_run"] or getattr(args, "yes", False) or not sys.stdin.isatty():
        return True
    answer = input(f"Start a recovery of {event['target']} in {args.function} (relaunch its cluster)? [y/N] ")
    return answer.strip().lower() in ("y", "yes")


def invoke_cli(args: argparse.Namespace, *, factory: LambdaClientFactory | None = None) -> int:
    """Run ``args.action`` in the function ``args.function``; print its report; return the exit code."""
    event = build_event(args)
    problem = usage_problem(event)
    if problem:
        print(problem, file=sys.stderr)
        return EXIT_USAGE
    if not _confirmed(args, event):
        print("aborted")
        return EXIT_USAGE
    try:
        client = (factory or client_factory)(getattr(args, "region", None), getattr(args, "profile", None))
        resp = client.invoke(FunctionName=args.function, Qualifier=door_for(event["action"]),
                             InvocationType="RequestResponse", LogType="Tail", Payload=json.dumps(event).encode())
    except Exception as exc:
        code, message = _describe(exc, args)
        print(message, file=sys.stderr)
        return code
    return _handle_response(resp, args)


def _describe(exc: BaseException, args: argparse.Namespace) -> tuple[int, str]:
    """An exit code and a message that says what to do, for a failure before any report."""
    from monitor.core.aws import error_code

    fn, region = args.function, getattr(args, "region", None) or "the default region"
    code = error_code(exc)
    name = type(exc).__name__
    if code.startswith("AccessDenied") or code in ("UnrecognizedClientException", "ExpiredTokenException"):
        door = door_for(str(getattr(args, "action", "")))
        output = "OperatorInvokePolicyArn" if door == OPERATOR_ALIAS else "InvokePolicyArn"
        return EXIT_UNKNOWN, (f"error: not allowed to invoke {fn}:{door} ({code}). This action needs "
                              f"lambda:InvokeFunction on the function's '{door}' alias: attach the stack's "
                              f"{output} output to your role, or check your credentials.")
    if code == "ResourceNotFoundException":
        return EXIT_UNKNOWN, (f"error: no function {fn!r} in {region} ({code}). The stack names it "
                              "sentinel-<env>; check --function and --region.")
    if name == "NoRegionError":
        return EXIT_USAGE, "usage: no AWS region: pass --region or set AWS_REGION"
    if name == "ProfileNotFound":
        return EXIT_USAGE, f"usage: {exc}"
    if name in ("NoCredentialsError", "PartialCredentialsError"):
        return EXIT_UNKNOWN, f"error: no AWS credentials ({exc}); log in (e.g. aws sso login) or pass --profile"
    if name in ("ReadTimeoutError", "ConnectTimeoutError", "EndpointConnectionError"):
        return EXIT_UNKNOWN, (f"error: no answer from Lambda ({name}): the action may still be running; "
                              f"check with `sentinel invoke --function {fn} status`")
    return EXIT_UNKNOWN, f"error: invoking {fn} failed: {code}: {str(exc)[:300]}"


def _payload(resp: dict[str, Any]) -> bytes:
    body = resp.get("Payload", b"")
    data = body.read() if hasattr(body, "read") else body
    return data if isinstance(data, bytes) else str(data).encode()


def _log_tail(resp: dict[str, Any]) -> list[str]:
    raw = resp.get("LogResult")
    if not raw:
        return []
    try:
        text = base64.b64decode(raw).decode("utf-8", "replace")
    except (ValueError, TypeError):
        return []
    return text.strip().splitlines()[-LOG_TAIL_LINES:]


def _handle_response(resp: dict[str, Any], args: argparse.Namespace) -> int:
    raw = _payload(resp)
    try:
        payload: Any = json.loads(raw) if raw else None
    except ValueError:
        payload = None
    if resp.get("FunctionError"):
        err = payload if isinstance(payload, dict) else {}
        err_type = err.get("errorType", "error")
        message = err.get("errorMessage", raw.decode("utf-8", "replace")[:500] or "no details")
        if getattr(args, "json", False):
            print(json.dumps({"function_error": resp["FunctionError"], **err}, indent=2))
        print(f"error: {args.function} failed ({resp['FunctionError']}): {err_type}: {message}", file=sys.stderr)
        for line in _log_tail(resp):
            print(f"  log: {line}", file=sys.stderr)
        return EXIT_UNKNOWN
    if not isinstance(payload, dict) or "exit_code" not in payload:
        print(f"error: {args.function} returned no sentinel report: {raw[:300]!r}", file=sys.stderr)
        return EXIT_UNKNOWN
    print(json.dumps(payload, indent=2) if getattr(args, "json", False) else render_text(payload))
    code = payload["exit_code"]
    return code if isinstance(code, int) and 0 <= code <= EXIT_UNKNOWN else EXIT_UNKNOWN


def render_text(payload: dict[str, Any]) -> str:
    """The same text as the local CLI; a report from a newer/older deployed version that no
    longer fits the local classes still prints (as JSON) rather than failing."""
    from monitor import render

    try:
        return render.text(report_from_dict(payload))
    except (KeyError, TypeError, ValueError, AttributeError):
        return json.dumps(payload, indent=2)


def report_from_dict(data: dict[str, Any]) -> Any:
    """A TickReport rebuilt from the Lambda's JSON (what ``TickReport.to_dict`` wrote)."""
    from checks.base import CheckResult, Status
    from monitor.report import TargetReport, TickReport

    targets = [
        TargetReport(
            target=str(t["target"]),
            status=Status[str(t.get("status", "UNKNOWN"))],
            checks=[CheckResult.from_dict(c) for c in t.get("checks") or []],
            decision=t.get("decision"),
            recovery=t.get("recovery"),
            actions=list(t.get("actions") or []),
            skipped=t.get("skipped"),
            error=t.get("error"),
            state_version=t.get("state_version"),
            notes=list(t.get("notes") or []),
        )
        for t in data.get("targets") or []
    ]
    return TickReport(
        action=str(data.get("action", "?")),
        started_at=str(data.get("started_at", "")),
        finished_at=str(data.get("finished_at", "")),
        duration_ms=float(data.get("duration_ms") or 0.0),
        request_id=data.get("request_id"),
        dry_run=bool(data.get("dry_run", False)),
        targets=targets,
        notifications=list(data.get("notifications") or []),
        metrics=list(data.get("metrics") or []),
        errors=[str(e) for e in data.get("errors") or []],
        data=data.get("data"),
    )
