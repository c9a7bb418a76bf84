"""Where the config comes from: ``-c``/``SENTINEL_CONFIG`` naming a file, or
``ssm:/parameter/name`` (the SAM template's default delivery: change config without a
redeploy). Cached per warm container for a short TTL, keyed by source; a cache miss just
loads again, so correctness never depends on it."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

from monitor.config import Config, load_config, loads_config
from monitor.core.errors import ConfigError

DEFAULT_PATHS = ("sentinel.yaml", "config/sentinel.yaml")
CONFIG_TTL_S = 60.0


def config_source(explicit: str | None) -> str:
    source = explicit or os.environ.get("SENTINEL_CONFIG")
    if source:
        return source
    root = Path(os.environ.get("LAMBDA_TASK_ROOT", "."))
    for rel in DEFAULT_PATHS:
        if (root / rel).exists():
            return str(root / rel)
    raise ConfigError(["config: no config given (use -c CONFIG or set SENTINEL_CONFIG)"])


def load(source: str, *, ssm_client: Any = None) -> Config:
    if source.startswith("ssm:"):
        name = source[4:]
        if ssm_client is None:
            import boto3

            ssm_client = boto3.client("ssm")
        try:
            text = ssm_client.get_parameter(Name=name, WithDecryption=True)["Parameter"]["Value"]
        except Exception as exc:
            code = getattr(exc, "response", {}).get("Error", {}).get("Code", type(exc).__name__)
            raise ConfigError([f"config: cannot read SSM parameter {name!r} ({code})"]) from None
        return loads_config(str(text), source=source)
    return load_config(source)


class ConfigCache:
    def __init__(self, ttl_s: float = CONFIG_TTL_S) -> None:
        self.ttl_s = ttl_s
        self._lock = threading.Lock()
        self._entry: tuple[str, float, float, Config] | None = None  # source, mtime, loaded_at, config

    def get(self, source: str) -> Config:
        mtime = _mtime(source)
        now = time.monotonic()
        with self._lock:
            e = self._entry
            if e and e[0] == source and e[1] == mtime and now - e[2] < self.ttl_s:
                return e[3]
        config = load(source)
        with self._lock:
            self._entry = (source, mtime, now, config)
        return config


def _mtime(source: str) -> float:
    if source.startswith("ssm:"):
        return 0.0
    try:
        return os.stat(source).st_mtime
    except OSError:
        return -1.0
