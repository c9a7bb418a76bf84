"""The default shell commands sentinel sends to a master (monitor/config/recovery.py), run by
bash against fake ``sudo``/``systemctl``/``sleep`` on PATH: what they call, in what order, and
the exit code the restart rung judges by."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from monitor.config import DEFAULT_DIAGNOSTICS_COMMAND, DEFAULT_RESTART_COMMAND, Recovery, RestartRung


def _fake_bin(tmp_path: Path, *, active_after: int) -> Path:
    """``systemctl is-active`` answers "active" from its ``active_after``-th call on (0: never)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "calls.log"
    scripts = {
        "sudo": '#!/bin/sh\n[ "$1" = "-u" ] && shift 2\nexec "$@"\n',
        "sleep": "#!/bin/sh\nexit 0\n",
        "systemctl": f"""#!/bin/sh
echo "systemctl $*" >> {log}
if [ "$1" = is-active ]; then
  n=$(grep -c is-active {log})
  if [ {active_after} -gt 0 ] && [ "$n" -ge {active_after} ]; then echo active; exit 0; fi
  echo activating; exit 3
fi
exit 0
""",
    }
    for name, text in scripts.items():
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    return log


def _run(tmp_path: Path, command: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PATH": f"{tmp_path / 'bin'}:{os.environ['PATH']}"}
    return subprocess.run(["bash", "-c", command], env=env, capture_output=True, text=True, timeout=30, check=False)


def test_the_default_restart_stops_then_starts_the_unit_and_never_uses_restart() -> None:
    assert RestartRung(rung="restart_service").command == DEFAULT_RESTART_COMMAND
    words = DEFAULT_RESTART_COMMAND.split()
    assert "restart" not in words
    stop, start = DEFAULT_RESTART_COMMAND.index("systemctl stop hive-server2"), \
        DEFAULT_RESTART_COMMAND.index("systemctl start hive-server2")
    assert stop < start < DEFAULT_RESTART_COMMAND.index("is-active")
    assert _valid_bash(DEFAULT_RESTART_COMMAND)


def test_the_default_restart_exits_0_once_the_unit_is_active(tmp_path: Path) -> None:
    log = _fake_bin(tmp_path, active_after=3)  # activating for two looks, then active
    done = _run(tmp_path, DEFAULT_RESTART_COMMAND)
    assert done.returncode == 0, done.stderr
    calls = log.read_text().splitlines()
    assert calls[:2] == ["systemctl stop hive-server2", "systemctl start hive-server2"]
    assert calls[2:] == ["systemctl is-active --quiet hive-server2"] * 3


def test_the_default_restart_fails_when_the_unit_never_becomes_active(tmp_path: Path) -> None:
    _fake_bin(tmp_path, active_after=0)
    done = _run(tmp_path, DEFAULT_RESTART_COMMAND)
    assert done.returncode != 0 and "activating" in done.stdout  # SSM: Failed, so the rung climbs


def test_the_default_diagnostics_collect_what_on_call_needs() -> None:
    cmd = Recovery.model_validate({"diagnostics": {}}).diagnostics
    assert cmd is not None and cmd.command == DEFAULT_DIAGNOSTICS_COMMAND and cmd.timeout_s == 60
    for part in ("systemctl status hive-server2", "tail -n 200 /var/log/hive/hive-server2.log", "jstack",
                 "kill -3", "/proc/$PID/fd", "9083"):
        assert part in DEFAULT_DIAGNOSTICS_COMMAND, part
    # the small parts first: SSM keeps only the first 24,000 characters of the output
    assert DEFAULT_DIAGNOSTICS_COMMAND.index("9083") < DEFAULT_DIAGNOSTICS_COMMAND.index("tail -n 200") \
        < DEFAULT_DIAGNOSTICS_COMMAND.index("jstack")
    assert _valid_bash(DEFAULT_DIAGNOSTICS_COMMAND)


def _valid_bash(command: str) -> bool:
    return subprocess.run(["bash", "-n", "-c", command], capture_output=True, check=False).returncode == 0
