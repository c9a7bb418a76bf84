"""Loading: YAML text or a file → :class:`Config`, validated twice (the shape, then the
cross-field rules); every problem is raised as one line of a ``ConfigError``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from monitor.config.dispatch import Config
from monitor.config.messages import format_validation_error
from monitor.config.rules import cross_field_errors
from monitor.core.errors import ConfigError


def parse_config(raw: Any) -> Config:
    if not isinstance(raw, dict):
        raise ConfigError(["(top level): must be a mapping"])
    try:
        config = Config.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, raw)) from None
    errors = cross_field_errors(raw, config)
    if errors:
        raise ConfigError(errors)
    return config


def load_config(path: str | Path) -> Config:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read ({exc.strerror or exc})"]) from None
    return loads_config(text, source=str(path))


def loads_config(text: str, *, source: str = "<config>") -> Config:
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        raise ConfigError([f"{source}:{where}: invalid YAML ({getattr(exc, 'problem', exc)})"]) from None
    return parse_config(raw)
