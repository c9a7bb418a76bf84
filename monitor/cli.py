"""The ``sentinel`` command (DESIGN §5). It runs the same functions as the Lambda.

Exit codes: 0 ok, 1 a check or recovery reported a problem, 2 usage/config error, 3 unknown.
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

from checks.base import Deadline
from monitor import render
from monitor.core.errors import ConfigError, SentinelError, StateError, UsageError
from monitor.events import request_from
from monitor.report import EXIT_OK, EXIT_UNKNOWN, EXIT_USAGE, TickReport

CLI_DEADLINE_S = 900.0

ServicesFactory = Callable[[Any, argparse.Namespace], Any]


def build_parser() -> argparse.ArgumentParser:
    """The whole command line (the docs test parses every ``sentinel ...`` line shown in the docs with it)."""
    p = argparse.ArgumentParser(prog="sentinel", description="Monitor and self-heal EMR/HiveServer2 clusters.")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, help_: str, *, target: str | None = None, json_flag: bool = True) -> argparse.ArgumentParser:
        sp = sub.add_parser(name, help=help_, description=help_)
        sp.add_argument("-c", "--config", help="config file or ssm:/name (default: $SENTINEL_CONFIG)")
        sp.add_argument("--profile", default=os.environ.get("AWS_PROFILE"), help="AWS profile")
        sp.add_argument("--region", help="override the config's region for AWS calls")
        sp.add_argument("--endpoint-url", default=os.environ.get("AWS_ENDPOINT_URL"), help=argparse.SUPPRESS)
        if target == "required":
            sp.add_argument("--target", required=True, help="target name")
        elif target == "optional":
            sp.add_argument("--target", help="only this target")
        if json_flag:
            sp.add_argument("--json", action="store_true", help="print the JSON report")
        return sp

    val = sub.add_parser("validate", help="validate the config (exit 0 or 2)",
                         description="Validate the config file: every error names its path; exit 0 or 2.")
    val.add_argument("-c", "--config", help="config file or ssm:/name (default: $SENTINEL_CONFIG)")
    tick = add("tick", "run one tick (same code as the Lambda)", target="optional")
    tick.add_argument("--dry-run", action="store_true", help="run everything, change nothing, send nothing")
    chk = add("check", "run the checks only; never changes state", target="required")
    chk.add_argument("--nagios", action="store_true", help="one Nagios line with perfdata; exit 0/1/2/3")
    add("plan", "print the recovery plan: every AWS call it would make", target="required")
    rec = add("recover", "start a recovery now (lease, budget and vetoes still apply)", target="required")
    rec.add_argument("--force", action="store_true", help="skip the consecutive-failure threshold only")
    rec.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    add("status", "state, last results, incident timeline", target="optional")
    sil = add("silence", "silence pages and/or actions for a while", target="required")
    sil.add_argument("--for", dest="duration", required=True, help="e.g. 30m, 2h, 1d (max 14d)")
    sil.add_argument("--reason", required=True, help="why (audited; shown in status and pages)")
    sil.add_argument("--actions-only", action="store_true", help="keep paging, only stop automatic actions")
    add("unsilence", "remove manual silences", target="required")
    add("ack", "clear an escalation and resume automation", target="required")
    abt = add("abort", "end a running recovery: roll back what its phase allows, page, pause automation",
              target="required")
    abt.add_argument("--reason", required=True, help="why (audited and paged)")
    abt.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    apr = add("approve", "let a rung waiting for approval (phase APPROVAL) act now", target="required")
    apr.add_argument("--reason", required=True, help="why (audited and sent to the info topic)")
    apr.add_argument("--rung", choices=["replace", "restart_service"],
                     help="the rung the approval page asks about (refused if another one is waiting)")
    apr.add_argument("--incident", help="the incident the approval page names (refused if another one runs)")
    dny = add("deny", "refuse a rung waiting for approval: the incident escalates, nothing is changed",
              target="required")
    dny.add_argument("--reason", required=True, help="why (audited and sent to the info topic)")
    dny.add_argument("--rung", choices=["replace", "restart_service"], help="the rung the approval page asks about")
    dny.add_argument("--incident", help="the incident the approval page names")
    inv = sub.add_parser("invoke", help="run an action in the deployed Lambda",
                         description="Run an action in the deployed Lambda (its readonly or operator alias) "
                                     "and print its report.")
    inv.add_argument("--function", required=True, help="the function name (stack output FunctionName, "
                                                       "sentinel-<env>)")
    inv.add_argument("--region", help="the function's region (default: AWS_REGION / the profile's)")
    inv.add_argument("--profile", default=os.environ.get("AWS_PROFILE"), help="AWS profile (default: $AWS_PROFILE)")
    inv.add_argument("action", choices=["tick", "check", "plan", "status", "recover", "silence", "unsilence", "ack",
                                        "abort", "approve", "deny"],
                     help="what the Lambda should do: tick, check, plan, status (readonly alias); recover, "
                          "silence, unsilence, ack, abort, approve, deny (operator alias)")
    inv.add_argument("--target", help="target name (required by every action but tick and status)")
    inv.add_argument("--dry-run", action="store_true", help="tick: run everything, change nothing, send nothing")
    inv.add_argument("--force", action="store_true", help="recover: skip the consecutive-failure threshold only")
    inv.add_argument("--for", dest="duration", help="silence: how long, e.g. 30m, 2h, 1d (max 14d)")
    inv.add_argument("--reason", help="silence, abort, approve, deny: why (audited)")
    inv.add_argument("--actions-only", action="store_true", help="silence: keep paging, only stop automatic actions")
    inv.add_argument("--rung", choices=["replace", "restart_service"], help="approve, deny: the rung asked about")
    inv.add_argument("--incident", help="approve, deny: the incident the approval page names")
    inv.add_argument("--yes", action="store_true", help="do not ask for confirmation (recover)")
    inv.add_argument("--json", action="store_true", help="print the JSON report")
    sbx = sub.add_parser("sandbox", help="offline end-to-end demo (moto + local HiveServer2 server)",
                         description="The whole story offline, no AWS account: an outage detected and healed. "
                                     "Needs the demo dependencies: pip install 'sentinel[sandbox]'.")
    sbx.add_argument("--json", action="store_true",
                     help="print only the last tick's TickReport on stdout (the story goes to stderr)")
    sbx.add_argument("--ha", action="store_true",
                     help="the story of a cluster with three primary nodes: a hung primary restarted alone, "
                          "a lost primary waited for while EMR replaces it (no relaunch)")
    sub.add_parser("schema", help="print the config file's JSON Schema (exit 0)",
                   description="Print the JSON Schema of the config file, generated from the models (keys, types, "
                               "bounds, descriptions; the cross-field rules stay validate's). Editors that speak "
                               "YAML (yaml-language-server) complete and check a config whose first line is "
                               "'# yaml-language-server: $schema=<path or URL of the schema>'; the repository "
                               "keeps it as docs/sentinel.schema.json.")
    return p


_parser = build_parser  # the name tests used before build_parser was public


def _who() -> str:
    try:
        return os.environ.get("SENTINEL_USER") or getpass.getuser()
    except Exception:
        return "unknown"


def _default_services(config: Any, args: argparse.Namespace) -> Any:
    from monitor.runtime import build_services

    if getattr(args, "region", None):
        config = config.model_copy(update={"region": args.region})
    return build_services(config, profile=args.profile, endpoint_url=args.endpoint_url)


CREDENTIAL_ERRORS = ("NoCredentialsError", "PartialCredentialsError", "Unable to locate credentials", "NoRegionError",
                     "You must specify a region")


def _credentials_hint(text: str) -> None:
    """botocore's "Unable to locate credentials" names nothing to set: say what to set."""
    if any(marker in text for marker in CREDENTIAL_ERRORS):
        print("hint: AWS credentials or region missing: set AWS_PROFILE (or pass --profile NAME), or "
              "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY; and AWS_REGION (or pass --region, or set `region:` "
              "in the config)", file=sys.stderr)


def _show_progress(inv: Any) -> None:
    """A recovery started from the CLI can run for many minutes: print each phase as the
    runbook enters it (its ``RecoveryPhase`` metric) and each message it sends, on stderr."""
    import time as _time

    from recover.incident import PHASE_INDEX

    names = {number: phase.value for phase, number in PHASE_INDEX.items()}
    put = inv.metrics.put
    last: dict[str, str] = {}

    def say(text: str) -> None:
        print(f"[{_time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)

    def put_and_show(name: str, value: float, unit: str = "Count", **dimensions: str) -> None:
        put(name, value, unit, **dimensions)
        target = dimensions.get("target", "")
        if name == "RecoveryPhase" and last.get(target) != names.get(int(value)):
            last[target] = names.get(int(value), str(value))
            say(f"{target}: phase {last[target]}")

    inv.metrics.put = put_and_show
    inv.notifier.on_send = lambda msg: say(f"{msg.target}: {msg.severity} sent: {msg.subject.split(': ', 1)[-1]}"
                                           if msg.delivered else
                                           f"{msg.target}: {msg.severity} ({msg.kind}): "
                                           f"{msg.subject.split(': ', 1)[-1]}")


def _why_no_recovery(report: TickReport) -> None:
    """A person asked for a recovery: when none started or advanced (healthy, below the
    threshold, blocked), the report says so and why, whatever the exit code. A busy lease is
    already an error (exit 3): the command did nothing."""
    for t in report.targets:
        decision = t.decision or {}
        if t.recovery is not None or t.error or t.skipped or not decision or \
                any(a.startswith("recovery not started") for a in t.actions):
            continue
        if decision.get("blocked_by"):
            why = "blocked: " + "; ".join(decision["blocked_by"])
        elif decision.get("verdict") in ("ok", "degraded"):
            why = "the trigger checks do not fail"
        else:
            why = "; ".join(decision.get("reasons") or ["failure not confirmed"]) + " (--force skips the threshold)"
        t.notes.append(f"no recovery started: {why}")


def _emit(report: TickReport, as_json: bool) -> int:
    out(report.to_json() if as_json else render.text(report))
    return report.exit_code


def out(text: str) -> None:
    """Print to stdout; a reader that went away (``sentinel check --json | head``) is not an
    error: the rest of the output is dropped quietly and the exit code stays the verdict's."""
    try:
        print(text, flush=True)
    except BrokenPipeError:
        _drop_stdout()


def _drop_stdout() -> None:
    """Point stdout at /dev/null, so the interpreter's final flush cannot fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


def main(argv: Sequence[str] | None = None, *, services_factory: ServicesFactory | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return _run(args, services_factory or _default_services)
    except BrokenPipeError:  # output written elsewhere than out() (plan, invoke, sandbox)
        _drop_stdout()
        return EXIT_OK
    except ConfigError as exc:
        for line in exc.errors:
            print(render.prefixed("config", line), file=sys.stderr)
        return EXIT_USAGE
    except UsageError as exc:
        print(render.prefixed("usage", str(exc)), file=sys.stderr)
        return EXIT_USAGE
    except StateError as exc:
        print(render.prefixed("state", str(exc)), file=sys.stderr)
        _credentials_hint(str(exc))
        return EXIT_UNKNOWN
    except SentinelError as exc:
        print(render.prefixed("error", str(exc)), file=sys.stderr)
        return EXIT_UNKNOWN
    except Exception as exc:  # a bug or corrupt data: one line, not a traceback (SENTINEL_DEBUG=1 shows it)
        if os.environ.get("SENTINEL_DEBUG") == "1":
            raise
        if type(exc).__name__ in ("NoCredentialsError", "PartialCredentialsError", "NoRegionError"):
            print(f"error: {exc}", file=sys.stderr)
            _credentials_hint(type(exc).__name__)
            return EXIT_UNKNOWN
        if type(exc).__name__ == "MissingDemoDependencies":
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_USAGE
        print(f"error: internal error ({type(exc).__name__}: {str(exc)[:300]}); "
              "set SENTINEL_DEBUG=1 for the traceback", file=sys.stderr)
        return EXIT_UNKNOWN


def _run(args: argparse.Namespace, services_factory: ServicesFactory) -> int:
    from monitor.loader import config_source, load

    if args.command == "sandbox" and args.ha:
        from monitor.sandbox.ha import run_ha_sandbox

        return int(run_ha_sandbox())
    if args.command == "sandbox":
        from monitor.sandbox import run_sandbox

        return int(run_sandbox(as_json=args.json))
    if args.command == "schema":
        from monitor.schema import schema_text

        out(schema_text().rstrip("\n"))
        return EXIT_OK
    if args.command == "invoke":
        from monitor.invoke import invoke_cli

        return int(invoke_cli(args))
    config = load(config_source(args.config))
    if args.command == "validate":
        print(f"ok: {len(config.targets)} target(s), "
              f"{sum(len(t.checks) for t in config.targets)} check(s)")
        return EXIT_OK
    from monitor.dispatch import dispatch
    from monitor.runtime import new_invocation

    services = services_factory(config, args)
    if args.command == "plan":
        from recover.plan import print_plan

        return int(print_plan(services, args.target, as_json=args.json))
    if args.command == "recover" and not args.yes and sys.stdin.isatty():
        answer = input(f"Start a recovery of {args.target} (relaunch its cluster)? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            print("aborted")
            return EXIT_USAGE
    if args.command == "abort" and not args.yes and sys.stdin.isatty():
        answer = input(f"Abort the recovery of {args.target} (roll back what it can)? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            print("aborted nothing")
            return EXIT_USAGE
    req = request_from({
        "action": args.command,
        "target": getattr(args, "target", None),
        "dry_run": bool(getattr(args, "dry_run", False)),
        "force": bool(getattr(args, "force", False)),
        "requested_by": _who(),
        "for": getattr(args, "duration", None),
        "reason": getattr(args, "reason", None),
        "actions_only": bool(getattr(args, "actions_only", False)),
        **{k: getattr(args, k) for k in ("rung", "incident") if getattr(args, k, None)},
    })
    inv = new_invocation(services, dry_run=req.dry_run, requested_by=req.requested_by)
    if args.command in ("recover", "abort", "approve"):  # a person waits: one stderr line per phase and per message
        _show_progress(inv)
    report = dispatch(inv, req, Deadline.after(CLI_DEADLINE_S))
    if args.command == "recover":
        _why_no_recovery(report)
    _credentials_hint(report.to_json())
    if args.command == "check" and args.nagios:
        line, code = render.nagios(report)
        out(line)
        return code
    return _emit(report, args.json)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
