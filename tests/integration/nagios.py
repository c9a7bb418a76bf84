"""Start and stop a real Nagios Core 4 (Debian's ``nagios4-core``) for integration tests.

Everything lives in one temporary directory: the main config, the objects, the status file,
the perfdata file, the external command pipe, the check-result spool and the log. Time runs in
seconds (``interval_length=1``) so a SOFT → HARD transition takes seconds, not minutes. Nagios
runs in the foreground as the test's own child process and is stopped by its PID; it binds no
port (it only runs the plugin, which talks to 127.0.0.1).
"""

from __future__ import annotations

import contextlib
import grp
import os
import pwd
import re
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

HOST = "hive-host"
SERVICE = "sentinel-hive"


def nagios_binary() -> str | None:
    """The nagios4 executable, or None when Nagios Core 4 is not installed."""
    for candidate in ("/usr/sbin/nagios4", shutil.which("nagios4"), shutil.which("nagios")):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


def _user() -> tuple[str, str]:
    """Nagios drops privileges to ``nagios_user``: the current user (root in CI runs it as root)."""
    entry = pwd.getpwuid(os.getuid())
    return entry.pw_name, grp.getgrgid(entry.pw_gid).gr_name


def main_config(workdir: Path, *, max_attempts: int, retry_s: int, interval_s: int) -> dict[str, str]:
    """The files of a self-contained Nagios: ``nagios.cfg``, ``objects.cfg``."""
    user, group = _user()
    w = workdir
    main = f"""
log_file={w}/nagios.log
cfg_file={w}/objects.cfg
object_cache_file={w}/objects.cache
precached_object_file={w}/objects.precache
resource_file={w}/resource.cfg
status_file={w}/status.dat
status_update_interval=1
state_retention_file={w}/retention.dat
retain_state_information=0
use_retained_program_state=0
nagios_user={user}
nagios_group={group}
check_external_commands=1
command_file={w}/nagios.cmd
lock_file={w}/nagios.lock
temp_file={w}/nagios.tmp
temp_path={w}
query_socket={w}/nagios.qh
check_result_path={w}/checkresults
check_result_reaper_frequency=1
max_check_result_reaper_time=2
event_broker_options=0
use_syslog=0
log_rotation_method=n
enable_notifications=0
execute_service_checks=1
accept_passive_service_checks=0
enable_event_handlers=0
enable_flap_detection=0
interval_length=1
service_inter_check_delay_method=n
host_inter_check_delay_method=n
max_concurrent_checks=2
service_check_timeout=30
check_service_freshness=0
check_host_freshness=0
process_performance_data=1
service_perfdata_file={w}/service-perfdata
service_perfdata_file_template=$TIMET$\\t$SERVICEDESC$\\t$SERVICESTATE$\\t$SERVICESTATETYPE$\\t$SERVICEATTEMPT$\\t$SERVICEPERFDATA$
service_perfdata_file_mode=a
service_perfdata_file_processing_interval=0
illegal_macro_output_chars=`~$&|'"<>
date_format=iso8601
"""
    objects = f"""
define command {{
    command_name    check_sentinel
    command_line    {w}/check_sentinel
}}
define command {{
    command_name    host_up
    command_line    /bin/true
}}
define timeperiod {{
    timeperiod_name 24x7
    alias           always
    sunday          00:00-24:00
    monday          00:00-24:00
    tuesday         00:00-24:00
    wednesday       00:00-24:00
    thursday        00:00-24:00
    friday          00:00-24:00
    saturday        00:00-24:00
}}
define contact {{
    contact_name                    nobody
    host_notifications_enabled      0
    service_notifications_enabled   0
    host_notification_period        24x7
    service_notification_period     24x7
    host_notification_options       n
    service_notification_options    n
    host_notification_commands      host_up
    service_notification_commands   host_up
}}
define host {{
    host_name               {HOST}
    address                 127.0.0.1
    check_command           host_up
    max_check_attempts      1
    check_interval          60
    active_checks_enabled   1
    check_period            24x7
    contacts                nobody
    notification_period     24x7
}}
define service {{
    host_name               {HOST}
    service_description     {SERVICE}
    check_command           check_sentinel
    max_check_attempts      {max_attempts}
    check_interval          {interval_s}
    retry_interval          {retry_s}
    check_period            24x7
    contacts                nobody
    notification_period     24x7
    active_checks_enabled   1
    process_perf_data       1
}}
"""
    return {"nagios.cfg": main, "objects.cfg": objects, "resource.cfg": "$USER1$=/usr/lib/nagios/plugins\n"}


@dataclass
class ServiceStatus:
    """A servicestatus block of status.dat, the fields the tests read."""

    state: int
    state_type: int  # 0 SOFT, 1 HARD
    attempt: int
    output: str
    perfdata: str
    checks: int = 0

    @property
    def label(self) -> str:
        name = {0: "OK", 1: "WARNING", 2: "CRITICAL", 3: "UNKNOWN"}[self.state]
        return f"{'HARD' if self.state_type else 'SOFT'} {name} {self.attempt}"


def parse_status(text: str, service: str = SERVICE) -> ServiceStatus | None:
    for block in re.findall(r"servicestatus \{(.*?)\n\s*\}", text, re.S):
        fields = dict(
            line.strip().split("=", 1) for line in block.strip().splitlines() if "=" in line
        )
        if fields.get("service_description") == service and fields.get("has_been_checked") == "1":
            return ServiceStatus(int(fields["current_state"]), int(fields["state_type"]),
                                 int(fields["current_attempt"]), fields.get("plugin_output", ""),
                                 fields.get("performance_data", ""))
    return None


@dataclass
class Nagios:
    workdir: Path
    plugin: str  # the shell script Nagios runs as the service check
    max_attempts: int = 3
    retry_s: int = 1
    interval_s: int = 2
    proc: subprocess.Popen[bytes] | None = None
    binary: str = field(default_factory=lambda: nagios_binary() or "nagios4")

    def start(self, timeout: float = 20.0) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        (self.workdir / "checkresults").mkdir(exist_ok=True)
        for name, body in main_config(self.workdir, max_attempts=self.max_attempts, retry_s=self.retry_s,
                                      interval_s=self.interval_s).items():
            (self.workdir / name).write_text(body)
        script = self.workdir / "check_sentinel"
        script.write_text(self.plugin)
        script.chmod(0o700)
        cfg = str(self.workdir / "nagios.cfg")
        verify = subprocess.run([self.binary, "-v", cfg], check=False, capture_output=True, text=True, timeout=30)
        if verify.returncode != 0:
            raise RuntimeError(f"nagios -v failed:\n{verify.stdout[-2000:]}")
        self.proc = subprocess.Popen([self.binary, cfg], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                     cwd=self.workdir, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"nagios exited {self.proc.returncode}: {self.log()[-2000:]}")
            if (self.workdir / "status.dat").exists():
                return
            time.sleep(0.1)
        raise RuntimeError(f"nagios wrote no status.dat in {timeout:.0f}s: {self.log()[-2000:]}")

    def log(self) -> str:
        with contextlib.suppress(OSError):
            return (self.workdir / "nagios.log").read_text()
        return ""

    def status(self) -> ServiceStatus | None:
        with contextlib.suppress(OSError):
            return parse_status((self.workdir / "status.dat").read_text())
        return None

    def perfdata_lines(self) -> list[list[str]]:
        with contextlib.suppress(OSError):
            text = (self.workdir / "service-perfdata").read_text()
            return [line.split("\t") for line in text.splitlines() if line.strip()]
        return []

    def stop(self) -> None:
        """Stop by PID: SIGTERM, then SIGKILL after 5 s (Nagios' workers are in its session)."""
        if self.proc is None or self.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=5)
