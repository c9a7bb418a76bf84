"""The import graph of monitor/ checks/ recover/ deploy/, read with ``ast`` (issue 20, items 1-2).

Three rules, each a test that names what breaks it:

1. **No circle between files.** Every import counts, module-level or inside a function, except an
   import under ``if TYPE_CHECKING:`` (it never runs, so it cannot make a circle at import time or
   hide one at run time; it only lets an annotation name a class from a module that imports this one).
2. **No private name across modules.** ``from x import _y`` (x a project module) is a sign the
   piece lives in the wrong room; move it to a module both sides may import and make it public.
3. **No import goes up a layer.** The layers, bottom to top (a module may import its own layer and
   any layer below):

   0. ``monitor.core``: clock, errors, aws (client factory), faults (the fault contract), secrets,
      resolve, state, outages (the ledger of dependency outages), clusters (the EMR tags and the
      cluster lookup, which checks/emr_state.py reads): what every package may use.
   1. ``checks``: the plugins, read-only probes.
   2. monitor's model: config and its loader, events, report, runner, notify, metrics, policy,
      flap, runtime. It stays in monitor/ beside the top (no subpackage yet), so ``LAYERS`` names
      the top-layer modules one by one and everything else in monitor/ outside core is layer 2.
   3. ``recover``: the only package that changes the world.
   4. the top: the tick (``monitor.cycle``), actions, queue, dispatch, handler, CLI, sandbox and
      the reports and invocations they print.
   5. ``deploy``: builds and describes the whole thing.

   No allow-list: nothing breaks these rules. What stays lazy, and why it is not a dodge: the tick
   (layer 4) imports ``recover`` (layer 3) inside functions, and so do the CLI, the plan report and
   the sandbox, so that ``import monitor.handler`` does not load recover/ (cold start;
   ``test_handler_cold_import_does_not_load_recover``). That is an import *down* a layer, never a
   circle; ``LAZY_FOR_COLD_START`` lists those modules, and a test fails when a new one appears or
   one of them stops importing recover/ lazily (so the list can only shrink). Other function-level
   imports (boto3-backed clients, moto in the sandbox, deploy's) are there to keep an optional or
   heavy dependency off the import path; the circle rule counts them all the same.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("monitor", "checks", "recover", "deploy")

# Layer of a module: the longest matching prefix wins.
LAYERS: dict[str, int] = {
    "monitor.core": 0,
    "checks": 1,
    "monitor": 2,  # monitor's model; the top-layer modules are listed below
    "recover": 3,
    "monitor.cycle": 4,
    "monitor.actions": 4,
    "monitor.queue": 4,
    "monitor.fanout": 4,
    "monitor.triggers": 4,  # EventBridge events -> ticks (queued or inline): a dispatcher, like fanout
    "monitor.dispatch": 4,
    "monitor.handler": 4,
    "monitor.cli": 4,
    "monitor.sandbox": 4,
    "monitor.plan_report": 4,
    "monitor.invoke": 4,
    "monitor.render": 4,
    "deploy": 5,
}

# Modules that import down a layer inside functions so that the handler's cold start stays light.
LAZY_FOR_COLD_START = frozenset({"monitor.cycle", "monitor.cli", "monitor.plan_report", "monitor.sandbox.demo"})


@dataclass(frozen=True)
class Edge:
    src: str
    dst: str
    line: int
    names: tuple[str, ...]
    in_function: bool

    def __str__(self) -> str:
        where = " (inside a function)" if self.in_function else ""
        return f"{self.src}:{self.line} -> {self.dst}{where}"


def modules(root: Path, packages: Iterable[str]) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(tree: ast.AST) -> Iterator[tuple[ast.Import | ast.ImportFrom, bool]]:
    """Every import node with whether it sits inside a function; skips ``if TYPE_CHECKING:`` bodies."""
    def walk(node: ast.AST, in_function: bool) -> Iterator[tuple[ast.Import | ast.ImportFrom, bool]]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child.test):
                for other in child.orelse:
                    yield from walk(other, in_function)
                continue
            if isinstance(child, ast.Import | ast.ImportFrom):
                yield child, in_function
            yield from walk(child, in_function or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef))
    yield from walk(tree, False)


def _owner(name: str, known: dict[str, Path]) -> str | None:
    while name and name not in known:
        name = name.rpartition(".")[0]
    return name or None


def edges(root: Path, packages: Iterable[str]) -> list[Edge]:
    known = modules(root, packages)
    found: list[Edge] = []
    for src, path in known.items():
        is_package = path.name == "__init__.py"
        for node, in_function in _imports(ast.parse(path.read_text(), str(path))):
            targets: list[tuple[str, tuple[str, ...]]] = []
            if isinstance(node, ast.Import):
                targets = [(alias.name, ()) for alias in node.names]
            else:
                base = node.module or ""
                if node.level:
                    parts = src.split(".")[: len(src.split(".")) if is_package else -1]
                    parts = parts[: len(parts) - (node.level - 1)]
                    base = ".".join([*parts, *([node.module] if node.module else [])])
                for alias in node.names:
                    sub = f"{base}.{alias.name}"
                    targets.append((sub, ()) if sub in known else (base, (alias.name,)))
            for target, names in targets:
                dst = _owner(target, known)
                if dst is not None and dst != src:
                    found.append(Edge(src, dst, node.lineno, names, in_function))
    return found


def cycles(found: list[Edge]) -> list[list[Edge]]:
    """Each strongly connected set of two or more files, as the edges that close it (Tarjan)."""
    graph: dict[str, set[str]] = {}
    for e in found:
        graph.setdefault(e.src, set()).add(e.dst)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[set[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.add(w)
                if w == v:
                    break
            if len(component) > 1:
                components.append(component)

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return [sorted({e for e in found if e.src in c and e.dst in c}, key=lambda e: (e.src, e.line, e.dst))
            for c in components]


def private_imports(found: list[Edge]) -> list[str]:
    return [f"{e}: imports {n}" for e in found for n in e.names if n.startswith("_")]


def layer(module: str, layers: dict[str, int]) -> int:
    owner = _owner(module, dict.fromkeys(layers, Path()))
    assert owner is not None, f"{module} is in no layer: add it to LAYERS"
    return layers[owner]


def upward(found: list[Edge], layers: dict[str, int]) -> list[str]:
    return [f"{e} goes up from layer {layer(e.src, layers)} to {layer(e.dst, layers)}"
            for e in found if layer(e.dst, layers) > layer(e.src, layers)]


def _describe(circles: list[list[Edge]]) -> str:
    return "\n".join("circle: " + ", ".join(sorted({e.src for e in c})) + "\n  "
                     + "\n  ".join(dict.fromkeys(map(str, c)))
                     for c in circles)


@pytest.fixture(scope="module")
def project_edges() -> list[Edge]:
    return edges(ROOT, PACKAGES)


# ------------------------------------------------------------------ the project


def test_no_file_imports_itself_through_a_circle(project_edges: list[Edge]) -> None:
    circles = cycles(project_edges)
    assert not circles, _describe(circles)


def test_no_private_name_is_imported_from_another_module(project_edges: list[Edge]) -> None:
    assert private_imports(project_edges) == []


def test_no_import_goes_up_a_layer(project_edges: list[Edge]) -> None:
    assert upward(project_edges, LAYERS) == []


def test_every_module_has_a_layer(project_edges: list[Edge]) -> None:
    for module in modules(ROOT, PACKAGES):
        layer(module, LAYERS)


def test_lazy_imports_kept_for_cold_start_are_still_lazy(project_edges: list[Edge]) -> None:
    lazy = {e.src for e in project_edges
            if e.in_function and layer(e.src, LAYERS) > layer("recover", LAYERS) and e.dst.startswith("recover")}
    assert lazy <= LAZY_FOR_COLD_START, f"new lazy imports of recover/: {sorted(lazy - LAZY_FOR_COLD_START)}"
    assert lazy >= LAZY_FOR_COLD_START, f"no longer lazy, shrink the list: {sorted(LAZY_FOR_COLD_START - lazy)}"


def test_handler_cold_import_does_not_load_recover() -> None:
    code = ("import sys, monitor.handler; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'recover' or m in ('pyhive', 'thrift')))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# ------------------------------------------------------------------ the checker on planted packages


def _plant(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def test_a_planted_cycle_through_a_function_level_import_is_named(tmp_path: Path) -> None:
    root = _plant(tmp_path, {
        "pkg/__init__.py": "",
        "pkg/a.py": "from pkg.b import thing\n",
        "pkg/b.py": "def thing():\n    from pkg import c\n    return c\n",
        "pkg/c.py": "import pkg.a\n",
        "pkg/d.py": "from pkg.a import thing\n",  # imports into the circle, is not part of it
    })
    circles = cycles(edges(root, ["pkg"]))
    assert [sorted({e.src for e in c}) for c in circles] == [["pkg.a", "pkg.b", "pkg.c"]]
    message = _describe(circles)
    assert "pkg.b:2 -> pkg.c (inside a function)" in message and "pkg.d" not in message


def test_a_planted_relative_import_cycle_is_named(tmp_path: Path) -> None:
    root = _plant(tmp_path, {"pkg/__init__.py": "", "pkg/sub/__init__.py": "",
                             "pkg/sub/x.py": "from . import y\n", "pkg/sub/y.py": "from ..sub.x import z\n"})
    assert [sorted({e.src for e in c}) for c in cycles(edges(root, ["pkg"]))] == [["pkg.sub.x", "pkg.sub.y"]]


def test_a_type_checking_import_does_not_make_a_cycle(tmp_path: Path) -> None:
    root = _plant(tmp_path, {
        "pkg/__init__.py": "",
        "pkg/a.py": "from pkg.b import B\n",
        "pkg/b.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.a import A\nclass B: ...\n",
    })
    assert cycles(edges(root, ["pkg"])) == []


def test_a_planted_private_import_is_named(tmp_path: Path) -> None:
    root = _plant(tmp_path, {"pkg/__init__.py": "", "pkg/a.py": "def _hidden(): ...\n",
                             "pkg/b.py": "def f():\n    from pkg.a import _hidden\n"})
    assert private_imports(edges(root, ["pkg"])) == ["pkg.b:2 -> pkg.a (inside a function): imports _hidden"]


def test_a_planted_upward_import_is_named(tmp_path: Path) -> None:
    root = _plant(tmp_path, {"low/__init__.py": "", "low/ground.py": "from high import top\n",
                             "high/__init__.py": "", "high/top.py": "from low import ground\n"})
    found = edges(root, ["low", "high"])
    assert upward(found, {"low": 0, "high": 1}) == ["low.ground:1 -> high.top goes up from layer 0 to 1"]
