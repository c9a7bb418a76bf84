"""The CLI as a new user meets it: every command and option explains itself, errors carry one
prefix, a missing AWS login says what to set, the demo without its dependencies says how to get
them, and a recovery started by hand shows its progress."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pytest
import yaml

from checks.base import Status
from monitor.cli import _parser, main
from monitor.core.state.memory import MemoryStateStore
from tests.fakes import Script, services
from tests.functional.test_handler import write_config
from tests.recover_fixtures import TARGET, cli_services, moto_world, recovery_raw

TOPIC = "arn:aws:sns:us-east-1:123456789012:sentinel-pages"


def _subparsers(p: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in p._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def test_every_command_and_option_has_a_help_line() -> None:
    p = _parser()
    sub_action = next(a for a in p._actions if isinstance(a, argparse._SubParsersAction))
    listed = {a.dest: a.help for a in sub_action._choices_actions}
    missing = []
    for name, sp in _subparsers(p).items():
        if not listed.get(name):
            missing.append(f"{name} (command)")
        for a in sp._actions:
            if isinstance(a, argparse._HelpAction) or a.help == argparse.SUPPRESS:
                continue
            if not a.help:
                missing.append(f"{name} {'/'.join(a.option_strings) or a.dest}")
    assert missing == []


def test_an_unknown_target_is_one_usage_line_not_error_usage(tmp_path: Path, fake_checks: Script,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    cfg = write_config(tmp_path / "s.yaml", TOPIC)
    code = main(["tick", "-c", str(cfg), "--target", "nope"],
                services_factory=lambda c, a: services(c, store=MemoryStateStore()))
    out = capsys.readouterr().out
    assert code == 2
    assert "usage: unknown target(s): nope" in out and "error: usage:" not in out


def test_config_errors_carry_one_prefix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("SENTINEL_CONFIG", raising=False)
    assert main(["validate"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("config: no config given") and "config: config:" not in err
    assert main(["validate", "-c", str(tmp_path / "missing.yaml")]) == 2
    assert capsys.readouterr().err.startswith(f"config: {tmp_path / 'missing.yaml'}: cannot read")


def test_missing_credentials_say_what_to_set(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fake_checks: Script,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
                "AWS_ENDPOINT_URL", "AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
                "AWS_WEB_IDENTITY_TOKEN_FILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    cfg = write_config(tmp_path / "s.yaml", TOPIC)
    assert main(["status", "-c", str(cfg), "--target", "prod-hive"]) == 3
    err = capsys.readouterr().err
    assert "AWS_PROFILE" in err and "--profile" in err and "AWS_REGION" in err, err


def test_sandbox_without_moto_says_how_to_get_it(monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setitem(sys.modules, "moto", None)  # import moto -> ModuleNotFoundError
    assert main(["sandbox"]) == 2
    err = capsys.readouterr().err
    assert "pip install 'sentinel[sandbox]'" in err and "Traceback" not in err


def test_pyproject_declares_the_sandbox_extra_and_an_spdx_license() -> None:
    import tomllib

    meta = tomllib.loads((Path(__file__).resolve().parents[2] / "pyproject.toml").read_text())
    project = meta["project"]
    assert project["license"] == "Apache-2.0"  # an SPDX string, not the deprecated table
    assert any(dep.startswith("moto[") for dep in project["optional-dependencies"]["sandbox"])


def test_example_config_header_names_a_file_that_exists() -> None:
    root = Path(__file__).resolve().parents[2]
    lines = (root / "deploy" / "sentinel.example.yaml").read_text().splitlines()
    header = next(line for line in lines if line.startswith("#") and "sentinel validate -c " in line)
    path = header.split("sentinel validate -c ", 1)[1].split("`", 1)[0]
    assert (root / path).is_file()


def test_recover_from_the_cli_shows_each_phase_on_stderr(tmp_path: Path, fake_checks: Script,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    with moto_world() as world:
        cfg = tmp_path / "s.yaml"
        cfg.write_text(yaml.safe_dump(recovery_raw(world)))
        factory = cli_services(world, MemoryStateStore())

        fake_checks.set("hive", Status.CRITICAL, "timeout")
        main(["recover", "-c", str(cfg), "--target", TARGET, "--force", "--yes"], services_factory=factory)
    err = capsys.readouterr().err.splitlines()
    progress = [line for line in err if line.startswith("[")]
    assert any(line.endswith(f"{TARGET}: phase SNAPSHOT") for line in progress), err
    assert any(line.endswith(f"{TARGET}: phase WAIT_READY") for line in progress), err
    assert any(f"{TARGET}: page sent: recovery started" in line for line in progress), err
