"""What every config model shares: frozen, unknown keys rejected, and the name rule."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

NAME_RE = r"^[a-z0-9]([a-z0-9-]{0,62})$"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
