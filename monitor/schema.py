"""The config file as a JSON Schema (DESIGN §11 "Schema"), generated from the models.

``sentinel schema`` prints :func:`config_schema`; ``docs/sentinel.schema.json`` is the same
text committed (editors load it through the ``# yaml-language-server: $schema=...`` line of a
config), and the reference part of ``docs/configuration.md`` is :func:`reference_markdown`.
Both are regenerated with ``python -m monitor.schema --write`` and a test fails when either is
stale.

The schema is the *shape* only (keys, types, bounds, enums): the cross-field rules (names
unique, referenced checks exist, topology, ...) are ``sentinel validate``'s, so a file the
schema accepts can still be refused by ``validate``; a file ``validate`` accepts always
matches the schema.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, Union

from pydantic import Field, TypeAdapter

from checks import registry
from monitor.config import Config

SCHEMA_ID = "https://github.com/sentinel/sentinel/docs/sentinel.schema.json"
ROOT = Path(__file__).resolve().parent.parent
SCHEMA_FILE = ROOT / "docs" / "sentinel.schema.json"
CONFIG_DOC = ROOT / "docs" / "configuration.md"
BEGIN = "<!-- BEGIN GENERATED REFERENCE (python -m monitor.schema --write) -->"
END = "<!-- END GENERATED REFERENCE -->"


def _check_union_schema() -> dict[str, Any]:
    """``targets[].checks[]`` is validated by the model its ``type`` names (checks/registry.py,
    imported on first use), which pydantic sees as the base ``CheckConfig``; the schema says
    what each type accepts: a ``oneOf`` discriminated by ``type``."""
    models = tuple(registry.config_model(name) for name in sorted(registry.REGISTRY))
    union: Any = Annotated[Union[models], Field(discriminator="type")]  # noqa: UP007 - a runtime tuple
    return TypeAdapter(union).json_schema(ref_template="#/$defs/{model}")


def config_schema() -> dict[str, Any]:
    schema = Config.model_json_schema(ref_template="#/$defs/{model}")
    defs: dict[str, Any] = schema["$defs"]
    checks = _check_union_schema()
    for name, definition in checks.pop("$defs", {}).items():
        if name in defs and defs[name] != definition:
            raise RuntimeError(f"schema: two models are named {name!r}")
        defs[name] = definition
    items = defs["Target"]["properties"]["checks"]
    items["items"] = checks
    items["description"] = "What to ask, each a check plugin chosen by `type` (checks/README.md)."
    defs.pop("CheckConfig", None)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        **{k: v for k, v in schema.items() if k != "$defs"},
        "title": "sentinel config",
        "$defs": dict(sorted(defs.items())),
    }


def schema_text() -> str:
    return json.dumps(config_schema(), indent=2, ensure_ascii=False) + "\n"


# ---------------------------------------------------------------- the reference in Markdown

def _resolve(node: dict[str, Any], defs: dict[str, Any]) -> tuple[str | None, dict[str, Any]]:
    ref = node.get("$ref")
    if isinstance(ref, str):
        name = ref.rsplit("/", 1)[-1]
        return name, defs[name]
    return None, node


def _type_of(node: dict[str, Any], defs: dict[str, Any]) -> str:
    name, node = _resolve(node, defs)
    if name is not None:
        return f"[{name}](#{name.lower()})"
    if "const" in node:
        return json.dumps(node["const"])
    if "enum" in node:
        return " \\| ".join(json.dumps(v) for v in node["enum"])
    for key in ("anyOf", "oneOf"):
        if key in node:
            parts = [_type_of(member, defs) for member in node[key]]
            return " \\| ".join(p for p in parts if p != "null") + (" \\| null" if "null" in parts else "")
    kind = node.get("type")
    if kind == "array":
        return f"list of {_type_of(node.get('items', {}), defs)}"
    if kind == "object" and isinstance(node.get("additionalProperties"), dict):
        return f"map of {_type_of(node['additionalProperties'], defs)}"
    if node.get("format") == "date-time":
        return "date-time"
    return str(kind or "any")


_BOUNDS = (("minimum", ">= {}"), ("exclusiveMinimum", "> {}"), ("maximum", "<= {}"), ("exclusiveMaximum", "< {}"),
           ("minLength", "length >= {}"), ("maxLength", "length <= {}"), ("minItems", ">= {} items"),
           ("maxItems", "<= {} items"), ("maxProperties", "<= {} entries"), ("pattern", "matches `{}`"))


def _bounds(node: dict[str, Any]) -> str:
    found: list[str] = []
    for member in [node, *node.get("anyOf", [])]:
        for key, text in _BOUNDS:
            if key in member:
                value = member[key]
                found.append(text.format(value if key != "pattern" else str(value).replace("|", "\\|")))
    return ", ".join(found)


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def reference_markdown(schema: dict[str, Any] | None = None) -> str:
    """One table per model (the top level first): key, type, default, bounds, meaning."""
    schema = schema or config_schema()
    defs: dict[str, Any] = schema["$defs"]
    sections = [("Config (top level)", "config-top-level", schema)]
    sections += [(name, name.lower(), defs[name]) for name in sorted(defs)]
    out: list[str] = []
    for title, _anchor, model in sections:
        out.append(f"### {title}\n")
        if model.get("description"):
            out.append(_cell(model["description"]) + "\n")
        required = set(model.get("required", []))
        out.append("| key | type | default | bounds | meaning |")
        out.append("|---|---|---|---|---|")
        for key, prop in model.get("properties", {}).items():
            default = "**required**" if key in required else (
                f"`{json.dumps(prop['default'])}`" if "default" in prop else "")
            out.append(f"| `{key}` | {_type_of(prop, defs)} | {default} | {_cell(_bounds(prop))} | "
                       f"{_cell(prop.get('description', ''))} |")
        out.append("")
    return "\n".join(out)


def with_reference(doc: str, reference: str) -> str:
    """``doc`` with the text between the BEGIN and END markers replaced by ``reference``."""
    head, sep, rest = doc.partition(BEGIN)
    _, sep2, tail = rest.partition(END)
    if not sep or not sep2:
        raise ValueError(f"markers {BEGIN!r} ... {END!r} not found")
    return f"{head}{BEGIN}\n\n{reference}\n{END}{tail}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m monitor.schema",
                                     description="Regenerate docs/sentinel.schema.json and the reference in "
                                                 "docs/configuration.md from the config models.")
    parser.add_argument("--write", action="store_true", help="write the files (default: print the schema)")
    args = parser.parse_args(argv)
    if not args.write:
        sys.stdout.write(schema_text())
        return 0
    SCHEMA_FILE.write_text(schema_text(), encoding="utf-8")
    CONFIG_DOC.write_text(with_reference(CONFIG_DOC.read_text(encoding="utf-8"), reference_markdown()),
                          encoding="utf-8")
    print(f"wrote {SCHEMA_FILE.relative_to(ROOT)} and {CONFIG_DOC.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
