"""The stack's CloudWatch dashboard (and its alarms) read only metrics the code emits, with the
exact dimension sets CloudWatch will hold — Powertools adds ``service`` to every metric, and a
widget or alarm that leaves it out (or adds a dimension nobody sets) shows nothing, silently.

What the code emits is collected two ways that must agree: every ``metrics.put("Name", …,
dim=…)`` call in monitor/, recover/ and checks/ (read with ``ast``, so a metric added tomorrow is
covered), and the EMF that Powertools prints for the points a whole sandbox run (healthy ticks,
an outage, a relaunch) recorded."""

from __future__ import annotations

import ast
import contextlib
import io
import json
from pathlib import Path
from typing import Any

import pytest

from deploy import dashboard
from deploy.dashboard import MetricRef
from recover.incident import PHASE_INDEX

ROOT = Path(__file__).resolve().parents[2]
PARAMS = {"Environment": "test", "MetricsNamespace": "Sentinel", "AWS::Region": "us-east-1", "AWS::Partition": "aws",
          "AWS::AccountId": "123456789012",
          "AlarmPeriodSeconds": "600", "Timeout": "300", "DashboardDnsWarnPerSecond": "700",
          "DashboardDnsCriticalPerSecond": "900", "Function": "sentinel-test", "TargetName": "prod-hive"}
SERVICE = "sentinel-test"
Emitted = dict[str, set[frozenset[str]]]


def emitted_in_code() -> Emitted:
    """Metric name → the dimension sets its ``put`` calls pass (keyword arguments)."""
    out: Emitted = {}
    for path in [*ROOT.glob("monitor/**/*.py"), *ROOT.glob("recover/**/*.py"), *ROOT.glob("checks/**/*.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "put"):
                continue
            receiver = ast.unparse(node.func.value)
            if not (receiver == "m" or receiver.endswith("metrics")) or not node.args:
                continue
            first = node.args[0]
            if isinstance(first, ast.Constant) and isinstance(first.value, str):
                out.setdefault(first.value, set()).add(frozenset(k.arg for k in node.keywords if k.arg))
    return out


@pytest.fixture(scope="module")
def sandbox_emf() -> list[dict[str, Any]]:
    """The EMF records Powertools prints for every point a full sandbox run recorded."""
    from monitor.metrics import MetricsRecorder
    from monitor.sandbox.demo import run_sandbox

    points: list[dict[str, Any]] = []
    assert run_sandbox(io.StringIO(), on_tick=lambda _at, report: points.extend(report.metrics)) == 0
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("POWERTOOLS_SERVICE_NAME", SERVICE)
        rec = MetricsRecorder("Sentinel", emit=True)
        for p in points:
            rec.put(p["name"], p["value"], p["unit"], **p["dimensions"])
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            rec.flush()
    return [json.loads(line) for line in buf.getvalue().splitlines() if line.startswith("{")]


@pytest.fixture(scope="module")
def emitted(sandbox_emf: list[dict[str, Any]]) -> Emitted:
    """What CloudWatch will hold: the code's dimension sets plus ``service``, checked against
    what the sandbox run really printed."""
    code = emitted_in_code()
    for record in sandbox_emf:
        meta = record["_aws"]["CloudWatchMetrics"][0]
        name, dims = meta["Metrics"][0]["Name"], frozenset(meta["Dimensions"][0])
        assert record["service"] == SERVICE and "service" in dims, record  # Powertools adds it
        # a put may name `service` itself (it then overrides Powertools' value, see test_fault_alarms)
        assert dims in {d | {"service"} for d in code.get(name, set())}, (name, dims, code.get(name))
    return {name: {dims | {"service"} for dims in sets} for name, sets in code.items()}


@pytest.fixture(scope="module")
def body(translated: dict[str, Any]) -> dict[str, Any]:
    return dashboard.body(translated, PARAMS)


def _widgets(body: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [w for w in body["widgets"] if w["type"] == kind]


def _check(ref: MetricRef, emitted: Emitted, where: str) -> None:
    if ref.namespace == "AWS/Lambda":  # AWS's own metrics: only this function's
        assert ref.pinned == {"FunctionName": PARAMS["Function"]}, where
        return
    if ref.namespace == "AWS/SQS":  # the work queue's own metrics: one queue of this stack
        assert set(ref.pinned) == {"QueueName"}, where
        return
    assert ref.namespace == PARAMS["MetricsNamespace"], where
    assert ref.name in emitted, f"{where}: {ref.name} is never emitted"
    assert ref.dimensions in emitted[ref.name], \
        f"{where}: {ref.name} by {sorted(ref.dimensions)}; emitted by {[sorted(d) for d in emitted[ref.name]]}"
    assert ref.pinned.get("service") == SERVICE, f"{where}: {ref.name} not pinned to service={SERVICE}"


def test_the_sandbox_run_emits_the_core_metrics(sandbox_emf: list[dict[str, Any]]) -> None:
    names = {r["_aws"]["CloudWatchMetrics"][0]["Metrics"][0]["Name"] for r in sandbox_emf}
    assert {"Heartbeat", "TargetStatus", "CheckStatus", "CheckLatencyMs", "ConsecutiveFailures", "RecoveryStarted",
            "RecoveryPhase", "RecoverySucceeded", "TimeToRecoverSeconds"} <= names


def test_every_dashboard_metric_is_emitted_with_the_same_dimensions(body: dict[str, Any], emitted: Emitted) -> None:
    for w in _widgets(body, "metric"):
        refs = dashboard.metric_refs(w)
        assert refs, w["properties"]["title"]
        for ref in refs:
            _check(ref, emitted, w["properties"]["title"])


def test_every_alarm_metric_is_emitted_with_the_same_dimensions(translated: dict[str, Any], emitted: Emitted) -> None:
    alarms = {k: r for k, r in translated["Resources"].items() if r["Type"] == "AWS::CloudWatch::Alarm"}
    assert alarms
    for name, alarm in alarms.items():
        refs = dashboard.alarm_refs(alarm["Properties"], PARAMS)
        assert refs, name
        for ref in refs:
            _check(ref, emitted, name)


def test_per_target_widgets_draw_one_line_per_target(body: dict[str, Any]) -> None:
    """No target is named in the template: per-target series come from GROUP BY / SEARCH."""
    text = json.dumps(body)
    assert "prod-hive" not in text
    per: dict[str, tuple[str, ...]] = {}
    for w in _widgets(body, "metric"):
        for ref in dashboard.metric_refs(w):
            per.setdefault(ref.name, ref.per)
    for name in ("TargetStatus", "ConsecutiveFailures", "RecoveryPhase", "TimeToRecoverSeconds"):
        assert per[name] == ("target",), name
    for name in ("CheckStatus", "CheckLatencyMs", "DnsQueriesPerSecond"):
        assert per[name] == ("check", "target"), name


def test_the_dashboard_shows_what_on_call_looks_at_first(body: dict[str, Any]) -> None:
    shown = {ref.name for w in _widgets(body, "metric") for ref in dashboard.metric_refs(w)}
    assert {"TargetStatus", "CheckStatus", "CheckLatencyMs", "DnsQueriesPerSecond", "ConsecutiveFailures",
            "RecoveryPhase", "TimeToRecoverSeconds", "Heartbeat", "Errors", "Duration"} <= shown
    for w in body["widgets"]:
        assert w["x"] >= 0 and w["x"] + w["width"] <= 24, w


@pytest.mark.parametrize("target_name", ["prod-hive", ""])
def test_the_alarm_widget_lists_every_alarm_the_stack_creates(translated: dict[str, Any], target_name: str) -> None:
    res = translated["Resources"]
    params = {**PARAMS, "TargetName": target_name, "HasTargetName": "1" if target_name else ""}
    created = {dashboard.substitute(r["Properties"]["AlarmName"], params) for r in res.values()
               if r["Type"] == "AWS::CloudWatch::Alarm"
               and r.get("Condition") in (None, "HasTargetName" if target_name else "AllTargets")}
    (widget,) = _widgets(dashboard.body(translated, params), "alarm")
    prefix = "arn:aws:cloudwatch:us-east-1:123456789012:alarm:"
    assert all(arn.startswith(prefix) for arn in widget["properties"]["alarms"])
    assert {arn.removeprefix(prefix) for arn in widget["properties"]["alarms"]} == created


def test_thresholds_and_phases_are_drawn_where_they_apply(body: dict[str, Any], template: dict[str, Any]) -> None:
    def lines(title_start: str) -> dict[str, float]:
        w = next(w for w in _widgets(body, "metric") if w["properties"]["title"].startswith(title_start))
        return {a["label"]: a["value"] for a in w["properties"]["annotations"]["horizontal"]}

    assert lines("DNS queries per second") == {"warn_per_s": 700, "critical_per_s": 900}
    assert {k: template["Parameters"][k]["Default"] for k in ("DashboardDnsWarnPerSecond",
                                                              "DashboardDnsCriticalPerSecond")} == \
        {"DashboardDnsWarnPerSecond": 700, "DashboardDnsCriticalPerSecond": 900}
    numbers = {phase.value: n for phase, n in PHASE_INDEX.items()}
    for label, value in lines("Recovery phase").items():
        assert numbers[label] == value, label  # the RecoveryPhase metric's own numbering
    assert lines("Target status") == {"WARNING": 1, "CRITICAL": 2, "UNKNOWN": 3}
    assert lines("Lambda duration") == {"timeout": 300_000}


def test_the_readme_picture_draws_every_widget_from_metric_points(sandbox_emf: list[dict[str, Any]]) -> None:
    """docs/render_dashboard.py (the README's picture) reads the template's widgets and draws
    the series of the points it is given; here the sandbox run's own points."""
    import importlib.util
    from datetime import UTC, datetime, timedelta

    spec = importlib.util.spec_from_file_location("render_dashboard", ROOT / "docs" / "render_dashboard.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    t0 = datetime(2026, 12, 1, 4, 0, tzinfo=UTC)
    points = []
    for i, record in enumerate(sandbox_emf):
        meta = record["_aws"]["CloudWatchMetrics"][0]
        name = meta["Metrics"][0]["Name"]
        dims = {d: record[d] for d in meta["Dimensions"][0] if d != "service"}
        value = record[name][0] if isinstance(record[name], list) else record[name]
        points.append((t0 + timedelta(minutes=i), {"name": name, "value": value, "unit": "None",
                                                    "dimensions": dims}))
    svg = module.render(points)
    assert svg.startswith("<svg") and "not a screenshot of a real AWS account" in svg
    for title in ("Target status", "Check status", "Check latency", "DNS queries per second", "Recovery phase",
                  "Time to recover", "Heartbeat", "Lambda errors", "Alarms"):
        assert title in svg, title
    assert "prod-hive/hive-via-elb" in svg  # one line per target and check
    assert (ROOT / "docs" / "dashboard.svg").is_file()
