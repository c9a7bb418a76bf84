"""Draw the stack's CloudWatch dashboard (deploy/template.yaml) as an SVG, with the metrics one
`sentinel sandbox` run emitted: ``.venv/bin/python docs/render_dashboard.py`` → docs/dashboard.svg.

A rendering, not a screenshot of a real account: the widgets, their queries, thresholds and
layout are the template's own (read through :mod:`deploy.dashboard`, the module the deploy tests
use); each query is evaluated here over the sandbox's metric points, grouped as CloudWatch would
(GROUP BY target, SEARCH per target and check). AWS/Lambda metrics and alarm states do not exist
offline and are drawn as such. No plotting library: plain SVG.
"""

from __future__ import annotations

import io
import sys
from collections.abc import Callable
from datetime import datetime
from html import escape
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from deploy import cfn_yaml, dashboard  # noqa: E402
from deploy.dashboard import MetricRef  # noqa: E402

PARAMS = {"Environment": "sandbox", "MetricsNamespace": "Sentinel", "AWS::Region": "us-east-1",
          "AWS::Partition": "aws", "AWS::AccountId": "123456789012", "AlarmPeriodSeconds": "600", "Timeout": "300",
          "DashboardDnsWarnPerSecond": "700", "DashboardDnsCriticalPerSecond": "900", "Function": "sentinel-sandbox",
          "TargetName": "", "HasTargetName": ""}
UNIT_W, UNIT_H, PAD = 52, 34, 6
COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22"]
STAT: dict[str, Callable[[list[float]], float]] = {"Maximum": max, "Sum": sum, "Average": lambda v: sum(v) / len(v),
                                                   "Minimum": min}
Series = dict[str, list[tuple[datetime, float]]]


def sandbox_points() -> list[tuple[datetime, dict[str, Any]]]:
    """Every metric point of one sandbox run, at its tick's simulated time."""
    from monitor.sandbox.demo import run_sandbox

    points: list[tuple[datetime, dict[str, Any]]] = []
    story = io.StringIO()
    if run_sandbox(story, on_tick=lambda at, report: points.extend((at, p) for p in report.metrics)) != 0:
        sys.exit("the sandbox run did not recover; not drawing it:\n" + story.getvalue()[-2000:])
    return points


def evaluate(ref: MetricRef, points: list[tuple[datetime, dict[str, Any]]], label: str | None) -> Series:
    """The series a query draws: points of that name whose dimension set (plus Powertools'
    ``service``) is the query's, one line per value of its per-dimensions, one value per tick."""
    grouped: dict[str, dict[datetime, list[float]]] = {}
    for at, p in points:
        if p["name"] != ref.name or frozenset(p["dimensions"]) | {"service"} != ref.dimensions:
            continue
        key = label or "/".join(p["dimensions"].get(d, "?") for d in sorted(ref.per, reverse=True)) or ref.name
        grouped.setdefault(key, {}).setdefault(at, []).append(float(p["value"]))
    fn = STAT.get(ref.stat, max)
    return {k: sorted((at, float(fn(v))) for at, v in by_t.items()) for k, by_t in grouped.items()}


def _text(x: float, y: float, s: str, size: int = 11, *, anchor: str = "start", weight: str = "normal",
          color: str = "#16191f") -> str:
    return (f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" text-anchor="{anchor}" font-weight="{weight}" '
            f'fill="{color}">{escape(s)}</text>')


def metric_widget(w: dict[str, Any], points: list[tuple[datetime, dict[str, Any]]], t0: datetime,
                  t1: datetime) -> list[str]:
    props = w["properties"]
    x, y = float(w["x"] * UNIT_W + PAD), float(w["y"] * UNIT_H + 40 + PAD)
    wd, ht = float(w["width"] * UNIT_W - 2 * PAD), float(w["height"] * UNIT_H - 2 * PAD)
    out = [f'<rect x="{x}" y="{y}" width="{wd}" height="{ht}" fill="#fff" stroke="#d5dbdb"/>',
           _text(x + 8, y + 16, props["title"], 12, weight="bold")]
    series: Series = {}
    for row in props["metrics"]:
        opts = row[-1] if isinstance(row[-1], dict) else {}
        for ref in dashboard.metric_refs({"properties": {**props, "metrics": [row]}}):
            label = opts.get("label") or (ref.stat.lower() if ref.namespace == "AWS/Lambda" else None)
            series.update(evaluate(ref, points, label or None))
    px, py, pw, ph = x + 44, y + 28, wd - 56, ht - 62
    annotations = props.get("annotations", {}).get("horizontal", [])
    values = [v for s in series.values() for _, v in s] + [float(a["value"]) for a in annotations]
    axis = props.get("yAxis", {}).get("left", {})
    lo = float(axis.get("min", min(0.0, *values) if values else 0.0))
    hi = float(axis.get("max", max(values, default=1.0) * 1.1 or 1.0))
    hi = hi if hi > lo else lo + 1

    def sx(t: datetime) -> float:
        return px + 8 + (pw - 24) * ((t - t0).total_seconds() / max(1.0, (t1 - t0).total_seconds()))

    def sy(v: float) -> float:
        return py + ph - ph * (v - lo) / (hi - lo)

    out.append(f'<line x1="{px}" y1="{py + ph}" x2="{px + pw}" y2="{py + ph}" stroke="#aab7b8"/>')
    for v in (lo, (lo + hi) / 2, hi):
        out.append(_text(px - 4, sy(v) + 4, f"{v:.3g}", 9, anchor="end", color="#687078"))
    for t in (t0, t0 + (t1 - t0) / 2, t1):
        out.append(_text(sx(t), py + ph + 13, f"{t:%H:%M}", 9, anchor="middle", color="#687078"))
    for a in annotations:
        ay, color = sy(float(a["value"])), a.get("color", "#7d8998")
        out.append(f'<line x1="{px}" y1="{ay:.1f}" x2="{px + pw}" y2="{ay:.1f}" stroke="{color}" '
                   'stroke-dasharray="5,3"/>')
        out.append(_text(px + pw - 2, ay - 3, a["label"], 9, anchor="end", color=color))
    if not series:
        why = ("AWS/Lambda metrics come from the real function" if "Lambda" in props["title"]
               else "no dns_query_rate check in the sandbox" if "DNS" in props["title"]
               else "no data in the sandbox run")
        out.append(_text(px + pw / 2, py + ph / 2, f"(no data: {why})", 11, anchor="middle", color="#687078"))
    legend_x = px
    for i, (name, pts) in enumerate(sorted(series.items())):
        color = COLORS[i % len(COLORS)]
        if props.get("view") == "bar":
            bw = max(4.0, pw / 40)
            for t, v in pts:
                out.append(f'<rect x="{sx(t) - bw + i * bw:.1f}" y="{sy(v):.1f}" width="{bw:.1f}" '
                           f'height="{sy(lo) - sy(v):.1f}" fill="{color}"/>')
        else:
            path = " ".join(f"{sx(t):.1f},{sy(v):.1f}" for t, v in pts)
            out.append(f'<polyline points="{path}" fill="none" stroke="{color}" stroke-width="2"/>')
            out += [f'<circle cx="{sx(t):.1f}" cy="{sy(v):.1f}" r="2.5" fill="{color}"/>' for t, v in pts]
        out.append(f'<rect x="{legend_x}" y="{y + ht - 14}" width="10" height="10" fill="{color}"/>')
        out.append(_text(legend_x + 14, y + ht - 5, name, 10))
        legend_x += 24 + 6.2 * len(name)
    return out


def alarm_widget(w: dict[str, Any]) -> list[str]:
    props = w["properties"]
    x, y = w["x"] * UNIT_W + PAD, w["y"] * UNIT_H + 40 + PAD
    wd, ht = w["width"] * UNIT_W - 2 * PAD, w["height"] * UNIT_H - 2 * PAD
    out = [f'<rect x="{x}" y="{y}" width="{wd}" height="{ht}" fill="#fff" stroke="#d5dbdb"/>',
           _text(x + 8, y + 16, props["title"] + "  (alarm states are not evaluated offline)", 12, weight="bold")]
    names = [arn.rsplit(":", 1)[1] for arn in props["alarms"]]
    col = (wd - 16) / len(names)
    for i, name in enumerate(names):
        out.append(f'<rect x="{x + 8 + i * col:.1f}" y="{y + 28}" width="{col - 8:.1f}" height="{ht - 40}" '
                   'fill="#f2f3f3" stroke="#aab7b8"/>')
        out.append(_text(x + 8 + i * col + (col - 8) / 2, y + 28 + (ht - 40) / 2 + 4, name, 10, anchor="middle"))
    return out


def text_widget(w: dict[str, Any]) -> list[str]:
    x, y = w["x"] * UNIT_W + PAD, w["y"] * UNIT_H + 40 + PAD
    lines = w["properties"]["markdown"].splitlines()
    out = [_text(x + 4, y + 16, lines[0].lstrip("# "), 15, weight="bold")]
    out += [_text(x + 4, y + 34 + 14 * i, line, 11) for i, line in enumerate(lines[1:])]
    return out


def render(points: list[tuple[datetime, dict[str, Any]]]) -> str:
    body = dashboard.body(cfn_yaml.load(ROOT / "deploy" / "template.yaml"), PARAMS)
    times = [at for at, _ in points]
    t0, t1 = min(times), max(times)
    height = max(w["y"] + w["height"] for w in body["widgets"]) * UNIT_H + 50
    width = 24 * UNIT_W
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" font-family="Helvetica, Arial, sans-serif">',
           f'<rect width="{width}" height="{height}" fill="#f2f3f3"/>',
           _text(PAD + 4, 26, "A rendering of the dashboard in deploy/template.yaml with the metrics one `sentinel "
                 "sandbox` run emitted (simulated 10-minute ticks) - not a screenshot of a real AWS account.", 12,
                 color="#687078")]
    for w in body["widgets"]:
        if w["type"] == "metric":
            out += metric_widget(w, points, t0, t1)
        elif w["type"] == "alarm":
            out += alarm_widget(w)
        elif w["type"] == "text":
            out += text_widget(w)
    out.append("</svg>")
    return "\n".join(out) + "\n"


def main() -> int:
    target = ROOT / "docs" / "dashboard.svg"
    target.write_text(render(sandbox_points()))
    print(f"wrote {target.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
