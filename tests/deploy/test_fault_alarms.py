"""The alarms on sentinel's own faults (issue 18, DESIGN §11): pages SNS has not accepted
(``PagesNotDelivered``) and ticks SQS refused to the dispatcher (``TicksNotEnqueued``).

Each must page, be judged over one tick period, stay quiet on no data (both metrics are emitted
only when something went wrong), tell on-call what it means and what to run, and watch the
exact series Powertools prints: ``service=sentinel-<env>`` and nothing else."""

from __future__ import annotations

import ast
import json
from pathlib import Path
from typing import Any

import pytest

from monitor.metrics import MetricsRecorder
from tests.deploy.test_template import sub

ROOT = Path(__file__).resolve().parents[2]
PAGE = {"Ref": "PageTopic"}
INFO = {"Ref": "InfoTopic"}
PARAMS = {"Environment": "test", "MetricsNamespace": "Sentinel"}
SERVICE_ENV = {"Fn::Sub": "sentinel-${Environment}"}


def _alarm(translated: dict[str, Any], name: str) -> dict[str, Any]:
    alarm: dict[str, Any] = translated["Resources"][name]
    assert alarm["Type"] == "AWS::CloudWatch::Alarm"
    return alarm


def _judged_once_per_tick(p: dict[str, Any], statistic: str) -> None:
    assert p["Namespace"] == {"Ref": "MetricsNamespace"}
    assert p["Dimensions"] == [{"Name": "service", "Value": SERVICE_ENV}]
    assert (p["Statistic"], p["Period"], p["EvaluationPeriods"]) == (statistic, {"Ref": "AlarmPeriodSeconds"}, 1)
    assert "DatapointsToAlarm" not in p or p["DatapointsToAlarm"] == 1
    assert (p["Threshold"], p["ComparisonOperator"]) == (1, "GreaterThanOrEqualToThreshold")
    assert p["TreatMissingData"] == "notBreaching"  # emitted only when > 0: no data = nothing wrong


def test_pages_not_delivered_pages_through_the_page_topic_and_the_info_topic(translated: dict[str, Any]) -> None:
    alarm = _alarm(translated, "PagesNotDeliveredAlarm")
    assert "Condition" not in alarm  # every deployment pages
    p = alarm["Properties"]
    assert sub(p["AlarmName"], **PARAMS) == "sentinel-test-pages-not-delivered"
    assert p["MetricName"] == "PagesNotDelivered"
    _judged_once_per_tick(p, "Maximum")
    # The function's pages are what cannot get out: CloudWatch publishes this one, to the page
    # topic and to the template's only other path to people (deploy/README.md says the rest).
    assert p["AlarmActions"] == [PAGE, INFO] and p["OKActions"] == [PAGE, INFO]


def test_pages_not_delivered_tells_on_call_what_it_means_and_what_to_run(translated: dict[str, Any]) -> None:
    text = " ".join(sub(_alarm(translated, "PagesNotDeliveredAlarm")["Properties"]["AlarmDescription"],
                        **PARAMS).split())
    assert "PagesNotDelivered" in text and "SNS has not accepted" in text
    assert "retries them every tick" in text
    assert "`sentinel invoke --function sentinel-test status`" in text
    assert "logs (/aws/lambda/sentinel-test)" in text
    assert "AccessDenied" in text and "notify.page_topic_arn" in text
    assert len(text) <= 1024  # CloudWatch's limit


def test_ticks_not_enqueued_pages_and_follows_the_work_queue(translated: dict[str, Any]) -> None:
    res = translated["Resources"]
    alarm = _alarm(translated, "TicksNotEnqueuedAlarm")
    # Exists exactly when the queue does (today: always; the template sets dispatch: queue).
    assert alarm.get("Condition") == res["WorkQueue"].get("Condition")
    p = alarm["Properties"]
    assert sub(p["AlarmName"], **PARAMS) == "sentinel-test-ticks-not-enqueued"
    assert p["MetricName"] == "TicksNotEnqueued"
    _judged_once_per_tick(p, "Sum")
    assert p["AlarmActions"] == [PAGE] and p["OKActions"] == [PAGE]
    text = " ".join(sub(p["AlarmDescription"], **PARAMS).split())
    assert "ticked those targets itself" in text and "ticks not queued" in text  # the log line to look for
    assert "AccessDenied" in text and "sentinel-test-ticks" in text
    assert len(text) <= 1024


def test_the_dispatcher_emits_ticks_not_enqueued_as_the_alarm_reads_it() -> None:
    """A Count, no dimension of its own: the alarm's {service} is what Powertools adds."""
    calls = [node for node in ast.walk(ast.parse((ROOT / "monitor" / "fanout.py").read_text()))
             if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "put"
             and ast.unparse(node.func.value).endswith("metrics") and node.args
             and ast.unparse(node.args[0]) == "'TicksNotEnqueued'"]
    assert calls, "monitor/fanout.py no longer emits TicksNotEnqueued: its alarm would never fire"
    for call in calls:
        assert [ast.unparse(a) for a in call.args[2:]] == ["'Count'"] and not call.keywords, ast.unparse(call)


@pytest.mark.parametrize(("alarm_name", "metric"), [("PagesNotDeliveredAlarm", "PagesNotDelivered"),
                                                    ("TicksNotEnqueuedAlarm", "TicksNotEnqueued")])
def test_the_alarm_reads_the_series_powertools_prints(
    translated: dict[str, Any], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
    alarm_name: str, metric: str,
) -> None:
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "sentinel-test")  # what the template sets
    fn_env = translated["Resources"]["Function"]["Properties"]["Environment"]["Variables"]
    assert sub(fn_env["POWERTOOLS_SERVICE_NAME"], **PARAMS) == "sentinel-test"
    rec = MetricsRecorder("Sentinel", emit=True)
    rec.put(metric, 2, "Count")
    capsys.readouterr()
    rec.flush()
    (line,) = capsys.readouterr().out.splitlines()
    emf = json.loads(line)
    meta = emf["_aws"]["CloudWatchMetrics"][0]
    p = translated["Resources"][alarm_name]["Properties"]
    assert sub(p["Namespace"], **PARAMS) == meta["Namespace"]
    assert {d["Name"]: sub(d["Value"], **PARAMS) for d in p["Dimensions"]} == {d: emf[d] for d in meta["Dimensions"][0]}


def test_no_metric_names_its_own_service_value(capsys: pytest.CaptureFixture[str],
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """A ``put(..., service="sentinel")`` replaces Powertools' ``service=sentinel-<env>`` in the
    EMF (shown below), so every alarm pinned to ``sentinel-<env>`` would never see that series,
    and dev and prod would share it. A put that wants ``service`` in its point (``tick --json``)
    must pass the Powertools service name, not a literal."""
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "sentinel-test")
    rec = MetricsRecorder("Sentinel", emit=True)
    rec.put("PagesNotDelivered", 1, "Count", service="sentinel")
    capsys.readouterr()
    rec.flush()
    assert json.loads(capsys.readouterr().out)["service"] == "sentinel"  # the override this test is about

    literal = []
    for path in sorted([*ROOT.glob("monitor/**/*.py"), *ROOT.glob("recover/**/*.py"), *ROOT.glob("checks/**/*.py")]):
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "put"
                    and (ast.unparse(node.func.value) == "m" or ast.unparse(node.func.value).endswith("metrics"))):
                literal += [f"{path.relative_to(ROOT)}:{node.lineno}: {ast.unparse(node)}" for k in node.keywords
                            if k.arg == "service" and isinstance(k.value, ast.Constant)]
    assert not literal, ("service= given as a literal overrides POWERTOOLS_SERVICE_NAME (sentinel-<env>), which "
                         "the alarms pin: pass os.environ.get('POWERTOOLS_SERVICE_NAME', ...) or leave it out:\n"
                         + "\n".join(literal))
