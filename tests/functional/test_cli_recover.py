"""`sentinel plan` and `sentinel recover` through the CLI, on a moto world."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from checks.base import Status
from monitor.cli import main
from monitor.core.state.memory import MemoryStateStore
from tests.fakes import Script
from tests.recover_fixtures import TARGET, cli_services, moto_world, new_clusters, recovery_raw


def test_plan_then_forced_recover(tmp_path: Path, fake_checks: Script, capsys: pytest.CaptureFixture[str]) -> None:
    with moto_world() as world:
        cfg = tmp_path / "s.yaml"
        cfg.write_text(yaml.safe_dump(recovery_raw(world)))
        store = MemoryStateStore()
        factory = cli_services(world, store)

        assert main(["plan", "-c", str(cfg), "--target", TARGET], services_factory=factory) == 0
        assert "CHANGE emr.run_job_flow" in capsys.readouterr().out
        assert new_clusters(world) == []  # a plan changes nothing

        # healthy: a forced recover does not relaunch a working cluster
        assert main(["recover", "-c", str(cfg), "--target", TARGET, "--force", "--yes", "--json"],
                    services_factory=factory) == 0
        assert json.loads(capsys.readouterr().out)["targets"][0]["recovery"] is None

        fake_checks.set("hive", Status.CRITICAL, "timeout")
        code = main(["recover", "-c", str(cfg), "--target", TARGET, "--force", "--yes", "--json"],
                    services_factory=factory)
        report = json.loads(capsys.readouterr().out)
        assert code == 1
        assert report["targets"][0]["recovery"]["phase"] is not None
        assert len(new_clusters(world)) == 1
        assert store.get(TARGET).incident is not None
