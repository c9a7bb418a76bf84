"""The fault matrix (issue 18, item 5): every AWS call site of a whole incident, each hit by
one fault, must end the incident the way the fault-free run ends it.

Why: the runbook's guarantees (one launch, one restart command, no escalation for a
transient fault, a page for every step a person must know about, a page when it stalls)
are easy to keep on the happy path and easy to lose on the one call nobody thought about.
A matrix finds that call: the fault-free incident (restart rung does not help, the ladder
climbs once to replace, DONE) is recorded call by call through botocore hooks; each distinct
site (incident phase, service, operation) then gets a throttle, a 5xx, for changing calls a
read timeout after the call took effect, and where AWS has one a "not visible yet" answer,
each in a fresh moto world with the whole incident replayed through the real tick on a
simulated clock (tests/faults.py says how each fault is injected). An injected error is
answered past botocore's retry loop, so the reading clients' one retry does not absorb it:
one injected error is one failed logical call (as if both attempts had been throttled).
Duplicate pages are printed as an observation; they do not fail a cell.
"""

from __future__ import annotations

import time

import pytest

from tests.fakes import Script
from tests.faults import Outcome, broken, duplicates, matrix, run_incident

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


def test_the_fault_free_incident_climbs_once_and_ends_done_on_replace(
        fake_checks: Script, monkeypatch: pytest.MonkeyPatch) -> None:
    base = run_incident(fake_checks, monkeypatch)
    _assert_is_the_story(base)


def test_every_call_site_survives_every_fault_like_the_fault_free_run(
        fake_checks: Script, monkeypatch: pytest.MonkeyPatch) -> None:
    started = time.monotonic()
    base = run_incident(fake_checks, monkeypatch)
    _assert_is_the_story(base)
    cells = matrix(base)
    failed: list[str] = []
    doubled: list[str] = []
    for fault in cells:
        out = run_incident(fake_checks, monkeypatch, fault)
        why = broken(out, base)
        if why:
            failed.append(f"  {fault} -> " + " | ".join(why))
        doubled += [f"  {fault} -> page {kind} delivered {out.pages.count(kind)} times" for kind in duplicates(out, base)]
    held = len(cells) - len(failed)
    print(f"\nfault matrix: {len(base.sites())} sites, {len(cells)} cells, {time.monotonic() - started:.0f} s")
    print(f"fault matrix: {held}/{len(cells)} cells held")
    print("\n".join(failed))
    if doubled:
        print("duplicate pages (an observation, not a failure):\n" + "\n".join(doubled))
    assert held == len(cells), f"{len(failed)} of {len(cells)} cells broke an invariant:\n" + "\n".join(failed)


def _assert_is_the_story(base: Outcome) -> None:
    """The harness itself: the fault-free run restarts once, climbs once, waits in APPROVAL
    (nobody answers; on_timeout: proceed), relaunches once."""
    assert (base.final_phase, base.final_rung) == ("DONE", "replace"), base
    assert base.ladder == ["restart_service failed in VERIFY", "replace recovered"], base.ladder
    assert (base.run_job_flows, base.send_commands, base.diagnose_commands) == (1, 1, 1)
    assert base.phases_seen[0] == "DIAGNOSE" and any(s.op == "PutObject" for s in base.sites())
    assert "APPROVAL" in base.phases_seen  # the relaunch waited for approval, then proceeded (on_timeout)
    assert base.pages == ["recovery-started", "recovery-climbing", "approval-needed", "recovery-succeeded"], base.pages
    assert not base.stalls and not base.errors, (base.stalls, base.errors)
