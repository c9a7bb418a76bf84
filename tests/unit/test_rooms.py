"""Rooms sized to one job (issue 20, item 3): no module under monitor/ checks/ recover/ deploy/
is over ``MAX_LINES`` lines unless its module docstring has a line starting with ``Size:`` that
says why it is one room anyway."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("monitor", "checks", "recover", "deploy")
MAX_LINES = 400


def size_reason(path: Path) -> str | None:
    """The text after ``Size:`` in the module docstring, or None."""
    doc = ast.get_docstring(ast.parse(path.read_text(), str(path))) or ""
    for line in doc.splitlines():
        if line.strip().startswith("Size:"):
            return line.strip()[len("Size:"):].strip() or None
    return None


def oversized(root: Path, packages: tuple[str, ...] = PACKAGES, limit: int = MAX_LINES) -> list[str]:
    found = []
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            lines = len(path.read_text().splitlines())
            if lines > limit and size_reason(path) is None:
                found.append(f"{path.relative_to(root)}: {lines} lines (> {limit}) and no 'Size:' line in its docstring")
    return found


def test_no_module_is_over_the_limit_without_a_reason() -> None:
    assert oversized(ROOT) == []


def test_a_planted_big_module_is_named_until_it_gives_a_reason(tmp_path: Path) -> None:
    body = "x = 1\n" * 10
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "big.py").write_text('"""A big room."""\n' + body)
    (tmp_path / "pkg" / "small.py").write_text(body[:12])
    assert oversized(tmp_path, ("pkg",), limit=5) == ["pkg/big.py: 11 lines (> 5) and no 'Size:' line in its docstring"]
    (tmp_path / "pkg" / "big.py").write_text('"""A big room.\n\nSize:\n"""\n' + body)  # an empty reason is none
    assert len(oversized(tmp_path, ("pkg",), limit=5)) == 1
    (tmp_path / "pkg" / "big.py").write_text('"""A big room.\n\nSize: one table, read top to bottom.\n"""\n' + body)
    assert oversized(tmp_path, ("pkg",), limit=5) == []
