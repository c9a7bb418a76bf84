"""A RunJobFlow request read from ``recovery.spec.path`` (a JSON file), and the error of a spec
that cannot be had. SNAPSHOT reads it (recover/spec.py) and LAUNCH reads it again for a
secret that refers to it (recover/sealed.py), so it sits below both.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


class SpecError(Exception):
    """No usable spec: the message says why and what to do."""


def read_spec_file(path: str) -> dict[str, Any]:
    candidates = [Path(path)]
    config_path = os.environ.get("SENTINEL_CONFIG")
    if not Path(path).is_absolute() and config_path:
        candidates.append(Path(config_path).parent / path)
    for candidate in candidates:
        if candidate.is_file():
            try:
                data = json.loads(candidate.read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                raise SpecError(f"spec file {candidate}: {exc}") from exc
            if not isinstance(data, dict):
                raise SpecError(f"spec file {candidate}: must be a JSON object (a RunJobFlow request)")
            return data
    raise SpecError(f"spec file {path} not found")
