"""Read a counter from CloudWatch for ``dns_query_rate`` (e.g. the CloudWatch agent's
``ethtool_linklocal_allowance_exceeded``: packets the ENA dropped at the 1024 pps per-ENI limit
for link-local services — the VPC DNS resolver, IMDS, Time Sync).

Two shapes of metric, chosen by ``counter`` in the source config:

- ``delta``: each datapoint is the count *within* its period (what the agent publishes after a
  cumulative-to-delta conversion, or any count metric). The increase over a window is the sum
  of the datapoints. Windows are whole minutes, ``[start, end)`` with ``end`` the last whole
  minute at least ``delay_s`` ago (data arrives late), and each tick starts where the previous
  one ended (its sample's ``at``), so no minute is counted twice or skipped.
- ``cumulative``: each datapoint is the raw counter since the interface came up; the newest
  datapoint is a sample like a bind counter, and the rate comes from its difference with the
  previous sample (a decrease = the interface or instance was reset).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from checks.aws_calls import call_with_backoff, regional_client
from checks.base import CheckContext
from checks.dns_rate import Sample

if TYPE_CHECKING:
    from checks.dns_query_rate import CloudWatchSource

MAX_DATAPOINTS = 1440  # GetMetricStatistics' limit per call


class NoDatapoints(Exception):
    """The metric had no datapoints in the window: nothing was measured."""


@dataclass(frozen=True)
class Window:
    start: datetime
    end: datetime

    @property
    def seconds(self) -> float:
        return (self.end - self.start).total_seconds()


def floor_minute(ts: datetime) -> datetime:
    return ts.astimezone(UTC).replace(second=0, microsecond=0)


def delta_window(prev: Sample | None, source: str, now: datetime, *, delay_s: float, lookback_s: float,
                 max_age_s: float) -> tuple[Window, bool]:
    """The window to sum, and whether it continues the previous sample (else a fresh lookback)."""
    end = floor_minute(now - timedelta(seconds=delay_s))
    if prev is not None and prev.source == source:
        start = floor_minute(prev.at)
        if start < end and (end - start).total_seconds() <= max_age_s:
            return Window(start, end), True
    return Window(end - timedelta(seconds=max(60.0, lookback_s)), end), False


def _request(source: CloudWatchSource, window: Window, statistic: str) -> dict[str, Any]:
    period = max(60, math.ceil(window.seconds / MAX_DATAPOINTS / 60) * 60)
    return {
        "Namespace": source.namespace,
        "MetricName": source.metric,
        "Dimensions": [{"Name": k, "Value": v} for k, v in sorted(source.dimensions.items())],
        "StartTime": window.start,
        "EndTime": window.end,
        "Period": period,
        "Statistics": [statistic],
    }


def sum_in_window(ctx: CheckContext, source: CloudWatchSource, window: Window) -> tuple[float, int]:
    """(sum of the statistic over the window's datapoints, number of datapoints)."""
    cloudwatch = regional_client(ctx, "cloudwatch")
    request = _request(source, window, source.statistic)
    points = call_with_backoff(lambda: cloudwatch.get_metric_statistics(**request), ctx.deadline)["Datapoints"]
    if not points:
        raise NoDatapoints(f"no datapoints for {source.namespace}/{source.metric} {dict(source.dimensions)} "
                           f"between {window.start:%H:%M} and {window.end:%H:%M} UTC")
    return sum(float(p[source.statistic]) for p in points), len(points)


def latest_value(ctx: CheckContext, source: CloudWatchSource, now: datetime, lookback_s: float) -> tuple[float, datetime]:
    """(newest datapoint's value, its timestamp) for a cumulative counter."""
    cloudwatch = regional_client(ctx, "cloudwatch")
    end = now.astimezone(UTC)
    window = Window(floor_minute(end - timedelta(seconds=max(60.0, lookback_s))), end)
    request = _request(source, window, source.statistic)
    points = call_with_backoff(lambda: cloudwatch.get_metric_statistics(**request), ctx.deadline)["Datapoints"]
    if not points:
        raise NoDatapoints(f"no datapoints for {source.namespace}/{source.metric} {dict(source.dimensions)} "
                           f"in the last {lookback_s:.0f} s")
    newest = max(points, key=lambda p: p["Timestamp"])
    return float(newest[source.statistic]), newest["Timestamp"].astimezone(UTC)
