"""`sentinel sandbox` runs the whole story offline and ends recovered."""

from __future__ import annotations

import io
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from checks.base import Status
from monitor.sandbox.demo import run_sandbox

WIDTH = 80


@dataclass
class Story:
    text: str
    code: int
    seconds: float
    pages: list[dict[str, Any]]
    env_unchanged: bool


@pytest.fixture(scope="module")
def story() -> Story:
    """One run of the demo for the tests that read it (at 80 columns), with the pages on-call got."""
    from monitor.sandbox import timeline

    pages: list[dict[str, Any]] = []
    original = timeline.Printer.pages

    def keep(self: timeline.Printer, messages: list[dict[str, Any]]) -> None:
        pages.extend(messages)
        original(self, messages)

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("COLUMNS", str(WIDTH))
        mp.setattr(timeline.Printer, "pages", keep)
        before = dict(os.environ)
        out = io.StringIO()
        started = time.monotonic()
        code = run_sandbox(out)
        seconds = time.monotonic() - started
        unchanged = dict(os.environ) == before
    return Story(out.getvalue(), code, seconds, pages, unchanged)


def _flat(text: str) -> str:
    return " ".join(text.split())


def test_sandbox_detects_relaunches_repoints_and_retires(story: Story) -> None:
    text = story.text
    assert story.code == 0
    assert "verdict: failing (1 in a row)" in text
    assert "CRITICAL hive-via-elb   no_backend:" in text  # the dead backend, as seen through the ELB
    assert "recovery started" in text
    assert "VERIFY_NEW -> REPOINT" in text and "VERIFY_PATH -> RETIRE_OLD" in text
    assert "RETIRE_OLD -> DONE" in text
    assert "Recovered: incident" in text
    assert story.env_unchanged  # the fake credentials are not left behind


def test_sandbox_runs_in_under_ten_seconds(story: Story) -> None:
    assert story.seconds < 10.0, f"the demo took {story.seconds:.1f} s"


def test_no_line_is_cut_and_lines_fit_the_terminal(story: Story) -> None:
    """Wrapped, never cut: what was lost before is there, and only a single unbreakable word
    (an ARN) may make a line longer than the terminal."""
    flat = _flat(story.text)
    for whole in ("item(s) not copied", "(0 of 45 min)", "from target group;", "is retired after that",
                  "via hive.internal.example.com:443 (tls verified)"):
        assert whole in flat, whole
    for line in story.text.splitlines():
        assert len(line) <= WIDTH or max(len(w) for w in line.split()) > WIDTH // 2, line


def _tick_blocks(text: str) -> list[str]:
    """The story's ticks, each flattened to one line (what happened between this tick and the
    next one is at the end of its block)."""
    return [_flat(b) for b in re.split(r"\n(?=tick +\d+ )", text.split("What on-call received", maxsplit=1)[0])]


def test_the_phases_show_in_the_tick_where_they_happen(story: Story) -> None:
    blocks = _tick_blocks(story.text)
    where = {phase: next(i for i, b in enumerate(blocks) if f"phase {phase}" in b)
             for phase in ("WAIT_READY -> VERIFY_NEW", "VERIFY_NEW -> REPOINT", "REPOINT -> VERIFY_PATH",
                           "RETIRE_OLD -> DONE")}
    assert where["WAIT_READY -> VERIFY_NEW"] == where["VERIFY_NEW -> REPOINT"] == where["REPOINT -> VERIFY_PATH"]
    assert where["RETIRE_OLD -> DONE"] == where["REPOINT -> VERIFY_PATH"] + 1
    assert "AWS: elbv2.register_targets, elbv2.deregister_targets, route53.change_resource_record_sets" in \
        blocks[where["REPOINT -> VERIFY_PATH"]]


def test_no_contradiction_between_waiting_steps_and_completed_steps(story: Story) -> None:
    """The steps complete *between* ticks (EMR's work), after the tick that said they had not."""
    blocks = [b for b in _tick_blocks(story.text) if "setup step(s) not completed yet" in b]
    for block in blocks:  # (the approval's command launched between two ticks: EMR finished before the next)
        during, _, between = block.partition("between ticks, EMR:")
        assert "' COMPLETED" not in during
        assert between.count("' COMPLETED") == 2
    assert _flat(story.text).count("setup step 'enable ssl' COMPLETED") == 1


def test_a_warning_tick_says_why(story: Story) -> None:
    lines = story.text.splitlines()
    warned = [i for i, line in enumerate(lines) if re.match(r"tick +\d+ .* WARNING ", line)]
    assert warned
    for i in warned:
        assert lines[i + 1].strip().startswith("why WARNING: clients are served by the new cluster again")


def test_time_to_recover_says_from_what(story: Story) -> None:
    flat = _flat(story.text)
    # act 2: failing at tick 6, confirmed at tick 7 (the restart rung tries, waits, gives up at tick 8 and
    # climbs to the approval, answered at once), the relaunch serves at tick 9 (+30 s of the restart warm-up,
    # +10 s of SSM polls, +5 s of the claim settle, +5 s of the diagnostics' polls)
    assert re.search(r"30\.8 min from the first failed check at \d\d:\d\d", flat)
    assert re.search(r"20\.8 min from detection \(failure confirmed\) at \d\d:\d\d", flat)
    assert re.search(r"20\.8 min from the recovery's start at \d\d:\d\d", flat)
    assert "recovered in 20.8 min from recovery start" in flat


def test_an_unsent_reason_is_said_once(story: Story) -> None:
    assert _flat(story.text).count("not sent: no info_topic_arn configured") == 1
    assert _flat(story.text).count("(not sent, as above)") >= 1


def test_the_tick_report_is_only_printed_with_json(story: Story, capsys: pytest.CaptureFixture[str]) -> None:
    import json

    assert '"exit_code"' not in story.text and "TickReport" not in story.text
    assert run_sandbox(as_json=True) == 0
    captured = capsys.readouterr()
    report = json.loads(captured.out)  # stdout: the report alone
    assert report["exit_code"] == 0 and report["targets"][0]["recovery"]["phase"] == "DONE"
    assert "tick  1" in captured.err  # the story, on stderr


def test_the_ladder_restarts_first_and_climbs_to_a_relaunch_only_when_that_does_not_help(story: Story) -> None:
    """Act 1: a wedged HiveServer2 (metastore overload): diagnostics first, then a restart fixes
    it, no cluster change, although SSM answers as it does in production (InvocationDoesNotExist
    right after the send, then InProgress; and the 5-s settle of the claim tag).
    Act 2: the process is gone; the restart does not help; the relaunch waits for a person's yes
    (recovery.approval), which `sentinel approve` gives."""
    subjects = [p["Subject"] for p in story.pages]
    assert subjects == [
        "[sentinel PAGE] prod-hive: recovery started (restart_service)",
        "[sentinel PAGE] prod-hive: restarted HiveServer2: healthy again in 0.8 min",
        "[sentinel PAGE] prod-hive: recovery started (restart_service)",
        "[sentinel PAGE] prod-hive: recovery climbing to replace",
        "[sentinel PAGE] prod-hive: APPROVAL needed: replace for prod-hive",
        "[sentinel PAGE] prod-hive: recovered in 20.8 min from recovery start",
    ], subjects
    flat = _flat(story.text)
    assert flat.count("phase RESTART -> VERIFY") == 2 and "phase VERIFY -> DONE" in flat
    assert "phase VERIFY -> APPROVAL" in flat and "LAUNCH emr.run_job_flow (Name=RC.HIVE.ADHOC)" in flat  # its plan


def test_act_1_collects_diagnostics_before_the_restart_and_the_page_carries_them(story: Story) -> None:
    flat = _flat(story.text)
    assert flat.index("SSM Run Command collects diagnostics") < flat.index("SSM Run Command restarts hive-server2")
    assert "DIAGNOSE -> RESTART" in flat
    [fixed] = [p for p in story.pages if "healthy again" in p["Subject"]]
    assert "Diagnostics: Success" in fixed["Message"] and "connections to the metastore (9083)" in fixed["Message"]
    assert "attached to '[sentinel PAGE] prod-hive: restarted HiveServer2" in flat


def test_act_2_waits_for_approval_and_a_command_answers_it(story: Story) -> None:
    flat = _flat(story.text)
    [ask] = [p for p in story.pages if "APPROVAL needed" in p["Subject"]]
    assert "sentinel approve --target prod-hive --reason" in ask["Message"] and "emr.run_job_flow" in ask["Message"]
    assert "on-call answers with the command the page names: sentinel approve --target prod-hive --rung replace" in flat
    assert "the relaunch started in that command: WAIT_READY" in flat
    assert flat.index("sentinel approve exit") < flat.index("RETIRE_OLD -> DONE")


def test_pages_the_sandbox_sent_carry_the_glance_block(story: Story) -> None:
    assert len(story.pages) == 6
    for page in story.pages:
        body = page["Message"]
        assert "-- at a glance --" in body and "Target:" in body and "sentinel status --target prod-hive" in body
        assert re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d UTC", body)


def test_sandbox_topology_dead_backend_is_no_backend_and_verify_new_uses_the_master_endpoint(
        tmp_path: Path) -> None:
    """The demo's world as production is wired: a dead HiveServer2 behind the TLS-terminating
    load balancer is CRITICAL no_backend (and starts the recovery after 2 ticks); VERIFY_NEW
    reaches the new master on its own port and certificate, not the ELB's."""
    from moto import mock_aws

    from monitor.sandbox.demo import _sandbox_env, build_world, tick_until_recovered
    from monitor.sandbox.seed import LB_NAME, MASTER_RECORD

    with _sandbox_env(), mock_aws():
        w = build_world(str(tmp_path))
        try:
            # names resolve as in the VPC (monitor/sandbox/dns.py): through Route 53 as it is now
            resolver = w.services.resolver
            before = resolver.resolve(MASTER_RECORD, w.new.port)
            reports = tick_until_recovered(w)
            events = w.services.store.events("prod-hive", limit=60)
            phase = (w.services.store.get("prod-hive").incident or {}).get("phase")
            after, lb = resolver.resolve(MASTER_RECORD, w.new.port), resolver.resolve(LB_NAME, 443)
            records = {r["Name"].rstrip("."): r for r in w.seeded.clients.client("route53").list_resource_record_sets(
                HostedZoneId=w.seeded.zone_id)["ResourceRecordSets"]}
        finally:
            w.stop()
    hive = next(c for c in reports[2].targets[0].checks if c.name == "hive-via-elb")
    assert (hive.status, hive.error_kind) == (Status.CRITICAL, "no_backend"), hive.summary
    assert hive.observed["phase"] == "auth" and hive.observed["load_balancer"] is True
    assert w.elb.closed_without_backend >= 1
    verified = next(e for e in events if e.message.startswith("VERIFY_NEW -> REPOINT"))
    assert f".ec2.internal:{w.new.port}" in verified.message  # the master's own port, not the ELB's 443
    assert phase == "DONE"
    assert w.new.counters.logins >= 2  # VERIFY_NEW directly (its *.ec2.internal cert), then VERIFY_PATH via the ELB
    # the master's record led to the old master's HiveServer2, and now to the new one's; the
    # clients' name still leads to the load balancer, its alias record untouched
    assert before.port == w.old.port and (after.host, after.port) == ("127.0.0.1", w.new.port)
    assert after.server_hostname == MASTER_RECORD and lb.port == w.elb.port
    assert records[LB_NAME]["AliasTarget"]["DNSName"].rstrip(".") == w.seeded.load_balancer_dns
    assert records[MASTER_RECORD]["ResourceRecords"][0]["Value"] not in (w.seeded.master_dns, "")


def test_the_sandbox_config_passes_the_topology_rule() -> None:
    """Clients dial the load balancer's name; the record the recovery re-points is the
    master's own; neither name has a host_aliases entry (they resolve through Route 53)."""
    import contextlib
    import fnmatch

    from moto import mock_aws

    from monitor.config import parse_config, topology_errors
    from monitor.sandbox.demo import _sandbox_env, sandbox_config
    from monitor.sandbox.seed import LB_NAME, MASTER_RECORD, seed

    with _sandbox_env(), mock_aws(), contextlib.redirect_stdout(io.StringIO()):
        seeded = seed("pw")
        aliases = {seeded.master_dns: "127.0.0.1:10001", "ip-*.ec2.internal": "127.0.0.1",
                   seeded.load_balancer_dns: "127.0.0.1:8443"}
        config = parse_config(sandbox_config(seeded, "elb-ca.pem", aliases, master_ca_file="master-ca.pem"))
    target = config.targets[0]
    routing = target.recovery.routing
    assert routing.target_group_arn and routing.route53 is not None and topology_errors(target) == []
    assert target.check("hive-via-elb").host == LB_NAME  # type: ignore[attr-defined]
    assert routing.route53.record == MASTER_RECORD
    assert not [p for p in config.host_aliases for name in (LB_NAME, MASTER_RECORD) if fnmatch.fnmatchcase(name, p)]
