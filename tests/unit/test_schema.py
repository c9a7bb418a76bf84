"""Issue 20 item 4: the config as a JSON Schema (``sentinel schema``), generated from the models.

The example config validates against it with a standard validator (jsonschema), a config the
models refuse for its shape is refused by the schema too, and the committed copy that editors
load (``docs/sentinel.schema.json``, named by the example's ``yaml-language-server`` line) is
exactly what ``sentinel schema`` prints.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from monitor.cli import main
from monitor.config import ConfigError, parse_config
from monitor.schema import SCHEMA_FILE, config_schema

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "deploy" / "sentinel.example.yaml"
HOOK = "# yaml-language-server: $schema="


def _printed_schema(capsys: pytest.CaptureFixture[str]) -> str:
    assert main(["schema"]) == 0
    return capsys.readouterr().out


def _as_json(raw: Any) -> Any:
    """What an editor validates: YAML's timestamps are strings in JSON."""
    return json.loads(json.dumps(raw, default=str))


def _validator() -> jsonschema.Draft202012Validator:
    schema = config_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def _example() -> dict[str, Any]:
    raw = yaml.safe_load(EXAMPLE.read_text())
    assert isinstance(raw, dict)
    return raw


def test_sentinel_schema_prints_a_json_schema_with_descriptions_and_bounds(capsys: pytest.CaptureFixture[str]) -> None:
    schema = json.loads(_printed_schema(capsys))
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["title"] == "sentinel config"
    assert schema["additionalProperties"] is False
    defs = schema["$defs"]
    when = defs["When"]["properties"]
    assert when["recheck_after_s"]["maximum"] == 900 and when["recheck_after_s"]["description"]
    assert defs["Limits"]["properties"]["window_hours"]["maximum"] == 720
    # the checks: one schema per registered type, chosen by `type`
    items = defs["Target"]["properties"]["checks"]["items"]
    types = {defs[ref["$ref"].rsplit("/", 1)[-1]]["properties"]["type"]["const"] for ref in items["oneOf"]}
    assert types == {"hiveserver2", "route53_health", "dns_query_rate", "emr_state"}
    assert defs["HiveServer2Config"]["properties"]["port"]["maximum"] == 65535


def test_the_example_config_validates_against_the_schema(capsys: pytest.CaptureFixture[str]) -> None:
    schema = json.loads(_printed_schema(capsys))
    raw = _example()
    parse_config(raw)
    errors = [f"{e.json_path}: {e.message}" for e in jsonschema.Draft202012Validator(schema).iter_errors(_as_json(raw))]
    assert errors == []


def test_the_committed_schema_is_current(capsys: pytest.CaptureFixture[str]) -> None:
    assert SCHEMA_FILE.read_text(encoding="utf-8") == _printed_schema(capsys), \
        "docs/sentinel.schema.json is stale: run python -m monitor.schema --write"


def test_the_example_carries_the_editor_hook_to_the_committed_schema() -> None:
    first = EXAMPLE.read_text().splitlines()[0]
    assert first.startswith(HOOK)
    assert (EXAMPLE.parent / first[len(HOOK):].strip()).resolve() == SCHEMA_FILE


def _set(raw: dict[str, Any], path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    out = copy.deepcopy(raw)
    node: Any = out
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value
    return out


SHAPE_ERRORS = {
    "unknown top-level key": (("colour",), "blue"),
    "unknown key in notify": (("notify", "pager"), "x"),
    "unknown key in a check": (("targets", 0, "checks", 0, "hots"), "x"),
    "unknown key in recovery.when": (("targets", 0, "recovery", "when", "consecutive"), 2),
    "unknown check type": (("targets", 0, "checks", 0, "type"), "ping"),
    "wrong type: port": (("targets", 0, "checks", 0, "port"), "https"),
    "wrong type: tls true": (("targets", 0, "checks", 0, "tls"), True),
    "wrong type: targets mapping": (("targets",), {"prod": 1}),
    "wrong type: max_workers": (("max_workers",), [8]),
    "out of bounds: recheck_after_s": (("targets", 0, "recovery", "when", "recheck_after_s"), 901),
    "out of bounds: window_hours": (("targets", 0, "recovery", "limits", "window_hours"), 1e300),
    "bad enum: strategy": (("targets", 0, "recovery", "strategy"), "pray"),
    "bad pattern: target name": (("targets", 0, "name"), "Prod Hive"),
    "bad value: version": (("version",), 2),
}


@pytest.mark.parametrize("case", sorted(SHAPE_ERRORS))
def test_a_shape_the_models_refuse_the_schema_refuses(case: str) -> None:
    path, value = SHAPE_ERRORS[case]
    raw = _set(_example(), path, value)
    with pytest.raises(ConfigError):
        parse_config(raw)
    assert list(_validator().iter_errors(_as_json(raw))), f"the schema accepts {case}"
