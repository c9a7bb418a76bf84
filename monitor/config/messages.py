"""Pydantic's validation errors in the YAML user's words: one line per problem, starting with
the path the user wrote (``targets[0].checks[1].timeout_s: must be > 0``)."""

from __future__ import annotations

import re
from typing import Any

from pydantic import ValidationError

_UNION_SCALAR_TAGS = {"str", "int", "float", "bool", "none", "list", "dict", "datetime", "is-instance"}
_PLAIN_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
MAX_ERROR_LINES = 50  # a hostile file with 10 000 bad keys gets 50 lines and a count


def _is_union_tag(part: str, node: Any) -> bool:
    """Pydantic names the member of a union it tried (``TlsConfig``, ``literal[False]``,
    ``str``...) in the error location. The user never wrote those; a key they wrote is never
    one (our keys are snake_case)."""
    if isinstance(node, dict) and part in node:
        return False
    return part[:1].isupper() or "[" in part or part in _UNION_SCALAR_TAGS


def _key(part: str) -> str:
    return f".{part}" if _PLAIN_KEY.match(part) else "[" + repr(part if len(part) <= 64 else part[:64] + "...") + "]"


def _walk(loc: tuple[int | str, ...], raw: Any) -> tuple[str, tuple[str, Any, str] | None]:
    """The user's path of ``loc`` (``a.b[0].c``) and, when it passes through a union, (the
    path of the union field, the raw value written there, the member pydantic tried).

    The path drops what pydantic inserts that the user never wrote — check-type tags
    (``checks[1].hiveserver2.port`` → ``checks[1].port``) and union members
    (``tls.TlsConfig.ca_file`` → ``tls.ca_file``) — by walking the raw input; a key that is
    not a plain name is quoted (``host_aliases['*.internal']``)."""
    out = ""
    node = raw
    union: tuple[str, Any, str] | None = None
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
            node = node[part] if isinstance(node, list) and 0 <= part < len(node) else None
            continue
        if part.startswith("function-") or part == "[key]":
            continue
        if isinstance(node, dict) and part not in node and part in (node.get("type"), node.get("kind")):
            continue
        if _is_union_tag(part, node):
            if union is None:
                union = (out, node, part)
            continue
        out += _key(part) if out else (part if _PLAIN_KEY.match(part) else _key(part))
        node = node.get(part) if isinstance(node, dict) else None
    return out, union


_MSG_REWRITES = [
    (re.compile(r"^Input should be greater than (\S+)$"), r"must be > \1"),
    (re.compile(r"^Input should be greater than or equal to (\S+)$"), r"must be >= \1"),
    (re.compile(r"^Input should be less than or equal to (\S+)$"), r"must be <= \1"),
    (re.compile(r"^Input should be less than (\S+)$"), r"must be < \1"),
    (re.compile(r"^Extra inputs are not permitted$"), "unknown key"),
    (re.compile(r"^Field required$"), "required"),
    (re.compile(r"^Value error, "), ""),
    (re.compile(r"^String should match pattern '(.*)'$"), r"must match \1"),
    (re.compile(r"^String should have at most (\d+) characters?$"), r"at most \1 characters"),
    (re.compile(r"^Input should be a valid dictionary(?: or instance of \w+)?$"), "must be a mapping"),
    (re.compile(r"^(?:List|Dictionary) should have at most (\d+) items? after validation, not (\d+)$"),
     r"at most \1 entries (got \2)"),
]


def _message(err: dict[str, Any]) -> str:
    msg = str(err["msg"])
    for pattern, repl in _MSG_REWRITES:
        msg = pattern.sub(repl, msg)
    return msg


_TAG_WORDS = {"str": "a string", "int": "an integer", "float": "a number", "bool": "true or false",
              "none": "null", "datetime": "a date-time"}


def _describe_tag(tag: str) -> str:
    """What a union member accepts, in the YAML user's words."""
    if tag.startswith("literal["):
        inner = tag[len("literal["):-1]
        return inner.replace("False", "false").replace("True", "true").replace("None", "null")
    if tag.startswith("list["):
        return "a list"
    if tag[:1].isupper() or tag.startswith("dict["):
        return "a mapping"
    return _TAG_WORDS.get(tag, tag)


def _yaml_word(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, int | float):
        return "a number"
    return type(value).__name__


def _union_lines(path: str, value: Any, members: list[tuple[str, str]]) -> list[str]:
    """One union field's errors, as the user would want them: when a mapping was written,
    only the mapping member's errors (not "should be False" from the ``false`` member); for
    anything else, one line saying what the field accepts."""
    models: dict[str, list[str]] = {}
    for tag, line in members:
        if tag[:1].isupper():
            models.setdefault(tag, []).append(line)
    if isinstance(value, dict) and models:
        return min(models.values(), key=len)
    accepted: list[str] = []
    for tag, _ in members:
        word = _describe_tag(tag)
        if word not in accepted:
            accepted.append(word)
    return [f"{path}: must be {' or '.join(accepted)}, not {_yaml_word(value)}"]


def format_validation_error(exc: ValidationError, raw: Any) -> list[str]:
    lines: list[str] = []
    unions: dict[str, tuple[Any, list[tuple[str, str]]]] = {}
    for err in exc.errors():
        path, union = _walk(tuple(err["loc"]), raw)
        msg = _message(dict(err))
        if err["type"] == "union_tag_invalid":
            ctx = err.get("ctx") or {}
            path = f"{path}.{ctx.get('discriminator', '').strip(chr(39))}"
            msg = f"unknown value {ctx.get('tag')!r} (valid: {ctx.get('expected_tags')})"
        elif err["type"] == "union_tag_not_found":
            ctx = err.get("ctx") or {}
            path = f"{path}.{ctx.get('discriminator', '').strip(chr(39))}"
            msg = "required"
        if msg.startswith("type: ") and not path.endswith(".type"):
            path, msg = f"{path}.type", msg[len("type: "):]
        line = f"{path}: {msg}" if path else msg
        if union is not None:
            upath, value, tag = union
            if upath not in unions:
                unions[upath] = (value, [])
                lines.append(f"\0{upath}")  # placeholder: the union's lines go here, once
            unions[upath][1].append((tag, line))
            continue
        lines.append(line)
    out: list[str] = []
    for line in lines:
        if line.startswith("\0"):
            value, members = unions[line[1:]]
            out.extend(_union_lines(line[1:], value, members))
        else:
            out.append(line)
    if len(out) > MAX_ERROR_LINES:
        out = [*out[:MAX_ERROR_LINES], f"... and {len(out) - MAX_ERROR_LINES} more error(s)"]
    return out
