"""The package docstring's layer list is the code's: no module imports from a
layer below it, every module is in the list, and docs/design.md shows the
same layers in the same order."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import wheelvet

SRC = Path(wheelvet.__file__).parent
ROOT = SRC.parents[1]


def layers() -> dict[str, int]:
    out = {}
    for n, line in re.findall(r"^(\d+)\. (.+?):", wheelvet.__doc__, re.M):
        for name in re.findall(r"``(\w+)``", line):
            out[name] = int(n)
    return out


def top(module: Path) -> str:
    rel = module.relative_to(SRC).parts
    return rel[0][:-3] if len(rel) == 1 else rel[0]


def imports(module: Path) -> set[str]:
    """The top-level wheelvet modules a module imports (relative imports resolved)."""
    depth_base = module.relative_to(SRC).parts[:-1]
    found = set()
    for node in ast.walk(ast.parse(module.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = depth_base[: len(depth_base) - (node.level - 1)]
            parts = (*base, *(node.module.split(".") if node.module else ()))
            if parts:
                found.add(parts[0])
            else:  # from . import x / from .. import x
                found |= {alias.name for alias in node.names} - {"__version__"}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("wheelvet."):
            found.add(node.module.split(".")[1])
    return found


def test_no_module_imports_from_a_layer_below_it():
    rank = layers()
    modules = [p for p in SRC.rglob("*.py") if p.name not in ("__init__.py", "__main__.py") or p.parent != SRC]
    problems = []
    for module in modules:
        me = top(module)
        assert me in rank, f"{me} is in no layer of wheelvet/__init__.py"
        for other in imports(module) - {me}:
            if other in rank and rank[other] > rank[me]:
                problems.append(f"{module.relative_to(SRC)} ({me}, layer {rank[me]}) imports {other} (layer {rank[other]})")
    assert not problems, problems


def test_design_md_shows_the_same_layers():
    table = (ROOT / "docs" / "design.md").read_text().split("## Layers", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| (\d+) \| [^|]+ \| ([^|]+) \|", table, re.M)
    shown = {name: int(n) for n, cell in rows for name in re.findall(r"`(\w+)(?:/|\.py)?`", cell)}
    assert shown == layers()
