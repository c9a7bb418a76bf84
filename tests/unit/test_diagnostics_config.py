"""recovery.diagnostics and recovery.limits.recurring (DESIGN §11) in the config: a bad value
exits 2 from `sentinel validate`, naming the key."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from monitor.cli import main
from monitor.config import parse_config

EXAMPLE = Path(__file__).resolve().parents[2] / "deploy" / "sentinel.example.yaml"


def _with(tmp_path: Path, **recovery: Any) -> str:
    raw = copy.deepcopy(yaml.safe_load(EXAMPLE.read_text()))
    rec = raw["targets"][0]["recovery"]
    for key, value in recovery.items():
        if key == "limits":
            rec["limits"] = {**rec.get("limits", {}), **value}
        else:
            rec[key] = value
    path = tmp_path / "sentinel.yaml"
    path.write_text(yaml.safe_dump(raw))
    return str(path)


def test_the_documented_keys_validate(tmp_path: Path) -> None:
    cfg = _with(tmp_path, diagnostics={"via": "ssm", "command": "uptime", "timeout_s": 60,
                                       "s3_uri": "s3://acme-diag/sentinel"},
                limits={"recurring": {"count": 3, "days": 7, "then": "pause"}})
    assert main(["validate", "-c", cfg]) == 0
    rec = parse_config(yaml.safe_load(Path(cfg).read_text())).targets[0].recovery
    assert rec.diagnostics is not None and rec.diagnostics.bucket == "acme-diag" and rec.diagnostics.prefix == "sentinel"
    assert rec.limits.recurring is not None and rec.limits.recurring.then == "pause"


@pytest.mark.parametrize(("recovery", "named"), [
    ({"diagnostics": {"timeout_s": 0}}, "targets[0].recovery.diagnostics.timeout_s"),
    ({"diagnostics": {"timeout_s": 3600}}, "targets[0].recovery.diagnostics.timeout_s"),
    ({"diagnostics": {"via": "step"}}, "targets[0].recovery.diagnostics.via"),
    ({"diagnostics": {"command": ""}}, "targets[0].recovery.diagnostics.command"),
    ({"diagnostics": {"s3_uri": "https://bucket/x"}}, "targets[0].recovery.diagnostics.s3_uri"),
    ({"diagnostics": {"timeout": 60}}, "targets[0].recovery.diagnostics.timeout"),
    ({"limits": {"recurring": {"count": 1}}}, "targets[0].recovery.limits.recurring.count"),
    ({"limits": {"recurring": {"days": 0}}}, "targets[0].recovery.limits.recurring.days"),
    ({"limits": {"recurring": {"then": "stop"}}}, "targets[0].recovery.limits.recurring.then"),
], ids=lambda v: v if isinstance(v, str) else "")
def test_bad_values_exit_2_naming_the_key(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                          recovery: dict[str, Any], named: str) -> None:
    assert main(["validate", "-c", _with(tmp_path, **recovery)]) == 2
    err = capsys.readouterr().err
    assert f"config: {named}:" in err, err
