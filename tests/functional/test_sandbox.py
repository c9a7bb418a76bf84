"""`sentinel sandbox` runs the whole story offline and ends recovered."""

from __future__ import annotations

import io
import os

from monitor.sandbox.demo import run_sandbox


def test_sandbox_detects_relaunches_repoints_and_retires() -> None:
    before = dict(os.environ)
    out = io.StringIO()
    assert run_sandbox(out) == 0
    text = out.getvalue()
    assert "verdict: failing (1 in a row)" in text
    assert "recovery started" in text
    assert "VERIFY_NEW -> REPOINT" in text and "VERIFY_PATH -> RETIRE_OLD" in text
    assert "RETIRE_OLD -> DONE" in text
    assert "Recovered: incident" in text
    assert dict(os.environ) == before  # the fake credentials are not left behind


def test_sandbox_prints_the_final_tick_report() -> None:
    import json

    out = io.StringIO()
    run_sandbox(out)
    text = out.getvalue()
    start = text.index("The last tick's TickReport")
    body = text[text.index("{", start): text.index("\nRecovered:", start)]
    report = json.loads(body)
    assert report["exit_code"] == 0 and report["targets"][0]["recovery"]["phase"] == "DONE"
