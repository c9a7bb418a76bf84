"""What every config model shares: frozen, unknown keys rejected, and the name rule."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TypeVar

from pydantic import BaseModel, ConfigDict

NAME_RE = r"^[a-z0-9]([a-z0-9-]{0,62})$"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


T = TypeVar("T")


def named(items: Iterable[T], name: str) -> T:
    """The item whose ``name`` is ``name`` (targets, checks); KeyError when there is none."""
    for item in items:
        if getattr(item, "name", None) == name:
            return item
    raise KeyError(name)
