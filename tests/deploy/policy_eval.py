"""A small IAM policy evaluator for the subset sentinel's generated policy uses.

Why our own: the well-kept Python IAM tools on PyPI lint or expand policies
(policyuniverse, parliament, cloudsplaining, policy_sentry) or compute a principal's
effective permissions without a request context (iam-ape); none evaluates a *request* with
its condition keys. moto's ``access_control`` evaluates only StringEquals-style trust
conditions and answers DENIED (not "not applicable") when an Allow's condition fails. The
IAM policy simulator is an AWS API (no real AWS in these tests).

Supported, as the IAM policy evaluation logic documents it for identity policies:
``Effect`` Allow/Deny (an explicit Deny wins, no Allow means implicit deny); ``Action`` and
``Resource`` (string or list, ``*``/``?`` wildcards, actions case-insensitive); ``Condition``
blocks (operators ANDed, keys within an operator ANDed, values within a key ORed; keys
case-insensitive) with ``StringEquals``, ``StringNotEquals``, ``StringLike``,
``StringNotLike``, ``Bool``, ``Null``, and the ``ForAllValues:``/``ForAnyValue:`` set
qualifiers of the string operators. Anything else (``NotAction``, ``NotResource``, another
operator, ``...IfExists``) raises :class:`Unsupported`, so a policy outside the subset can
never pass a test by accident.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

ContextValue = str | Sequence[str]


class Unsupported(Exception):
    """The policy uses an element or operator this evaluator does not implement."""


@dataclass(frozen=True)
class Request:
    action: str
    resource: str
    context: Mapping[str, ContextValue] = field(default_factory=dict)

    def values(self, key: str) -> list[str] | None:
        """The context values of ``key`` (case-insensitive), None when absent."""
        for k, v in self.context.items():
            if k.lower() == key.lower():
                return [v] if isinstance(v, str) else list(v)
        return None


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list | tuple) else [value]


def _glob(pattern: str, value: str, *, case: bool = True) -> bool:
    """IAM wildcards: ``*`` any run of characters, ``?`` one character (nothing else is special)."""
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, value, 0 if case else re.IGNORECASE) is not None


def _equals(pattern: str, value: str) -> bool:
    return pattern == value


def _like(pattern: str, value: str) -> bool:
    return _glob(pattern, value)


_STRING_OPS: dict[str, Callable[[str, str], bool]] = {
    "StringEquals": _equals,
    "StringNotEquals": lambda p, v: not _equals(p, v),
    "StringLike": _like,
    "StringNotLike": lambda p, v: not _like(p, v),
}
_NEGATED = {"StringNotEquals", "StringNotLike"}


def _key_matches(operator: str, expected: list[str], actual: list[str] | None) -> bool:
    qualifier, _, op = operator.rpartition(":")
    if op.endswith("IfExists") or qualifier not in ("", "ForAllValues", "ForAnyValue"):
        raise Unsupported(f"condition operator {operator}")
    if op == "Null":
        want_absent = [str(e).lower() == "true" for e in expected]
        return (actual is None) in want_absent
    if op == "Bool":
        return actual is not None and any(str(a).lower() == str(e).lower() for a in actual for e in expected)
    if op not in _STRING_OPS:
        raise Unsupported(f"condition operator {operator}")
    test = _STRING_OPS[op]

    def one(value: str) -> bool:
        if op in _NEGATED:  # "not equal to any of the listed values"
            return all(test(str(e), value) for e in expected)
        return any(test(str(e), value) for e in expected)

    if qualifier == "ForAllValues":
        return all(one(v) for v in actual or [])  # an absent or empty key: vacuously true
    if qualifier == "ForAnyValue":
        return any(one(v) for v in actual or [])
    if actual is None:
        return op in _NEGATED  # a negated operator on a missing key matches
    return any(one(v) for v in actual)


def conditions_hold(block: Mapping[str, Any] | None, request: Request) -> bool:
    for operator, keys in (block or {}).items():
        for key, expected in keys.items():
            if not _key_matches(operator, [str(e) for e in _as_list(expected)], request.values(key)):
                return False
    return True


def _applies(statement: Mapping[str, Any], request: Request) -> bool:
    for unsupported in ("NotAction", "NotResource", "NotPrincipal", "Principal"):
        if unsupported in statement:
            raise Unsupported(f"statement element {unsupported}")
    actions = _as_list(statement.get("Action"))
    if not any(_glob(str(a), request.action, case=False) for a in actions):
        return False
    resources = [r for r in _as_list(statement.get("Resource")) if r is not None]
    if not any(_glob(str(r), request.resource) for r in resources):
        return False
    return conditions_hold(statement.get("Condition"), request)


@dataclass
class Decision:
    allowed: bool
    by: list[str]  # the Sids (or indexes) of the statements that decided

    def __bool__(self) -> bool:
        return self.allowed


def evaluate(statements: Iterable[Mapping[str, Any]], request: Request) -> Decision:
    allows, denies = [], []
    for i, st in enumerate(statements):
        if not st:
            continue
        if _applies(st, request):
            sid = str(st.get("Sid", i))
            effect = st.get("Effect")
            if effect == "Deny":
                denies.append(sid)
            elif effect == "Allow":
                allows.append(sid)
            else:
                raise Unsupported(f"Effect {effect!r}")
    if denies:
        return Decision(False, denies)
    return Decision(bool(allows), allows)
