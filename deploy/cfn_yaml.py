"""Read a CloudFormation/SAM YAML template into plain data (short tags → long form).

Why our own 40 lines instead of cfn-lint's decoder: ``deploy/iam.py`` runs in ``make``
targets and in tests, and should need only PyYAML. ``!Ref X`` becomes ``{"Ref": "X"}``,
``!GetAtt A.B`` becomes ``{"Fn::GetAtt": ["A", "B"]}``, every other ``!Fn`` becomes
``{"Fn::Fn": value}`` — the same JSON form CloudFormation and aws-sam-translator accept.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

_FUNCTIONS = ("And", "Base64", "Cidr", "Equals", "FindInMap", "GetAZs", "If", "ImportValue", "Join", "Not",
              "Or", "Select", "Split", "Sub", "Transform", "Length", "ToJsonString")


class _Loader(yaml.SafeLoader):
    """SafeLoader plus the CloudFormation short-form tags."""


def _value(loader: yaml.SafeLoader, node: yaml.Node) -> Any:
    if isinstance(node, yaml.ScalarNode):
        return loader.construct_scalar(node)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node, deep=True)
    assert isinstance(node, yaml.MappingNode)
    return loader.construct_mapping(node, deep=True)


def _ref(loader: yaml.SafeLoader, node: yaml.Node) -> Any:
    return {"Ref": _value(loader, node)}


def _condition(loader: yaml.SafeLoader, node: yaml.Node) -> Any:
    return {"Condition": _value(loader, node)}


def _get_att(loader: yaml.SafeLoader, node: yaml.Node) -> Any:
    value = _value(loader, node)
    if isinstance(value, str):
        resource, _, attribute = value.partition(".")
        value = [resource, attribute]
    return {"Fn::GetAtt": value}


def _function(name: str) -> Any:
    def construct(loader: yaml.SafeLoader, node: yaml.Node) -> Any:
        return {f"Fn::{name}": _value(loader, node)}

    return construct


_Loader.add_constructor("!Ref", _ref)
_Loader.add_constructor("!Condition", _condition)
_Loader.add_constructor("!GetAtt", _get_att)
for _name in _FUNCTIONS:
    _Loader.add_constructor(f"!{_name}", _function(_name))


def loads(text: str) -> dict[str, Any]:
    data = yaml.load(text, Loader=_Loader)  # noqa: S506 - _Loader is a SafeLoader subclass
    if not isinstance(data, dict):
        raise TypeError("template is not a YAML mapping")
    return data


def load(path: str | Path) -> dict[str, Any]:
    return loads(Path(path).read_text())
