"""Metrics (DESIGN §9) through Powertools' EMF: printed as structured log lines that
CloudWatch turns into metrics, so the Lambda needs no PutMetricData call or permission.

Points are collected during the tick (they also go into the report) and flushed once at
the end. The CLI does not emit EMF (it would mix JSON into its output); it shows the
points in ``--json`` instead.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

UNITS = {"Count", "Milliseconds", "Seconds", "None", "Count/Second"}


@dataclass
class Point:
    name: str
    value: float
    unit: str
    dimensions: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "value": self.value, "unit": self.unit, "dimensions": self.dimensions}


class MetricsRecorder:
    def __init__(self, namespace: str, *, emit: bool) -> None:
        self.namespace = namespace
        self.emit = emit
        self.points: list[Point] = []
        self._lock = threading.Lock()

    def put(self, name: str, value: float, unit: str = "Count", **dimensions: str) -> None:
        if unit not in UNITS:
            raise ValueError(f"unit {unit!r} not in {sorted(UNITS)}")
        with self._lock:
            self.points.append(Point(name, float(value), unit, dict(dimensions)))

    def flush(self) -> int:
        """Emit every point as EMF (when enabled); returns how many were emitted."""
        with self._lock:
            points, self.points = self.points, []
        if not self.emit:
            return 0
        from aws_lambda_powertools.metrics import MetricUnit, single_metric

        for p in points:
            with single_metric(name=p.name, unit=MetricUnit(p.unit), value=p.value, namespace=self.namespace) as m:
                for key, val in p.dimensions.items():
                    m.add_dimension(name=key, value=val)
        return len(points)
