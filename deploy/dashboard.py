"""Read the stack's CloudWatch dashboard (and alarms) as data: which metrics, with which
dimension sets, each widget draws.

CloudWatch shows nothing, silently, for a metric name or dimension set nobody emits (Powertools
adds ``service`` to every metric: a query without it matches no series). The deploy tests use
this module to prove every reference is one the code emits; ``docs/render_dashboard.py`` uses
it to draw the README's picture from the metrics a sandbox run emitted.

Three reference forms are understood, the ones the template uses:
``[namespace, name, dim, value, ..., {options}]``; a Metrics Insights
``SELECT FN(Name) FROM SCHEMA("ns", d1, d2) WHERE d = 'v' [GROUP BY d]``; a
``SEARCH('{ns,d1,d2} MetricName="Name" d="v"', 'Stat', period)``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

SELECT = re.compile(
    r"SELECT\s+(?P<fn>[A-Z]+)\((?P<name>\w+)\)\s+FROM\s+SCHEMA\(\s*\"(?P<ns>[^\"]+)\"\s*,\s*(?P<dims>[\w\s,]+)\)"
    r"(?:\s+WHERE\s+(?P<where>.+?))?(?:\s+GROUP\s+BY\s+(?P<group>[\w\s,]+))?\s*$", re.S)
SEARCH = re.compile(r"SEARCH\(\s*'\{(?P<schema>[^}]+)\}\s+(?P<terms>[^']*)'\s*,\s*'(?P<stat>\w+)'")
TERM = re.compile(r"(\w+)=\"([^\"]*)\"")
WHERE_TERM = re.compile(r"(\w+)\s*=\s*'([^']*)'")
SUB_VAR = re.compile(r"\$\{([^}]+)\}")


@dataclass(frozen=True)
class MetricRef:
    """One metric a widget or alarm reads: its namespace, name, the exact dimension set, the
    dimension values it pins (``service``...) and the dimensions it draws one line per."""

    namespace: str
    name: str
    dimensions: frozenset[str]
    pinned: dict[str, str] = field(default_factory=dict, hash=False, compare=False)
    per: tuple[str, ...] = ()
    stat: str = "Maximum"


def substitute(value: Any, params: dict[str, str]) -> str:
    """Resolve an ``Fn::Sub`` (string or ``[template, {vars}]``) with ``params`` and, for the
    list form, the variables (``Fn::If``: the first branch when ``params[condition]`` is set)."""
    if isinstance(value, dict) and "Fn::Sub" in value:
        value = value["Fn::Sub"]
    template, variables = (value[0], value[1]) if isinstance(value, list) else (value, {})
    resolved = dict(params)
    for key, expr in variables.items():
        resolved[key] = _resolve(expr, params)

    def one(m: re.Match[str]) -> str:
        key = m.group(1)
        if key in resolved:
            return resolved[key]
        raise KeyError(f"no value for ${{{key}}}")

    return SUB_VAR.sub(one, template)


def _resolve(expr: Any, params: dict[str, str]) -> str:
    if isinstance(expr, dict) and "Fn::If" in expr:
        cond, yes, no = expr["Fn::If"]
        return _resolve(yes if params.get(cond) else no, params)
    if isinstance(expr, dict) and "Fn::Sub" in expr:
        return substitute(expr, params)
    if isinstance(expr, dict) and "Ref" in expr:
        return str(params[expr["Ref"]])
    return str(expr)


def body(template: dict[str, Any], params: dict[str, str], resource: str = "Dashboard") -> dict[str, Any]:
    """The dashboard body as CloudWatch would receive it."""
    parsed: dict[str, Any] = json.loads(substitute(template["Resources"][resource]["Properties"]["DashboardBody"],
                                                   params))
    return parsed


def expression_refs(expression: str) -> list[MetricRef]:
    """The metrics a Metrics Insights query or a SEARCH reads (empty for other math)."""
    m = SELECT.search(expression)
    if m:
        dims = frozenset(d.strip() for d in m.group("dims").split(",") if d.strip())
        pinned = dict(WHERE_TERM.findall(m.group("where") or ""))
        per = tuple(d.strip() for d in (m.group("group") or "").split(",") if d.strip())
        return [MetricRef(m.group("ns"), m.group("name"), dims, pinned, per,
                          {"MAX": "Maximum", "SUM": "Sum", "AVG": "Average", "MIN": "Minimum"}.get(m.group("fn"),
                                                                                                  "Maximum"))]
    s = SEARCH.search(expression)
    if s:
        ns, *names = [p.strip() for p in s.group("schema").split(",")]
        terms = dict(TERM.findall(s.group("terms")))
        name = terms.pop("MetricName")
        dim_set = frozenset(names)
        return [MetricRef(ns, name, dim_set, terms, tuple(sorted(dim_set - set(terms))), s.group("stat"))]
    return []


def metric_refs(widget: dict[str, Any]) -> list[MetricRef]:
    """Every metric a ``metric`` widget reads, in order."""
    props = widget.get("properties", {})
    out: list[MetricRef] = []
    for row in props.get("metrics", []):
        opts = row[-1] if row and isinstance(row[-1], dict) else {}
        if "expression" in opts:
            out.extend(expression_refs(opts["expression"]))
            continue
        parts = [p for p in row if not isinstance(p, dict)]
        ns, name, rest = parts[0], parts[1], parts[2:]
        pinned = dict(zip(rest[::2], rest[1::2], strict=True))
        out.append(MetricRef(ns, name, frozenset(pinned), pinned, (), opts.get("stat", props.get("stat", "Average"))))
    return out


def alarm_refs(props: dict[str, Any], params: dict[str, str]) -> list[MetricRef]:
    """The metrics a (translated) ``AWS::CloudWatch::Alarm`` reads."""
    if "MetricName" in props:
        dims = {d["Name"]: _value(d["Value"], params) for d in props.get("Dimensions", [])}
        return [MetricRef(_value(props["Namespace"], params), props["MetricName"], frozenset(dims), dims)]
    out: list[MetricRef] = []
    for q in props.get("Metrics", []):
        if "Expression" in q:
            out.extend(expression_refs(_value(q["Expression"], params)))
    return out


def _value(v: Any, params: dict[str, str]) -> str:
    if isinstance(v, dict) and "Fn::Sub" in v:
        return substitute(v, params)
    if isinstance(v, dict) and "Ref" in v:
        return str(params.get(v["Ref"], v["Ref"]))
    return str(v)
