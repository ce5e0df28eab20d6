"""The layer rule of docs/architecture.md, checked with ``ast`` over ``src/goodfit``.

parts (optim, nn, schedules, init, regularize, data + the leaves hooks, checks, errors, atomic)
  <- library (train, select, diagnose, report) <- application (app). Imports point down only:
a part imports no library or application module, the loop (train) imports none of select,
diagnose and report, no library module imports the application, and no two subpackages import
each other (directly or around a cycle). Modules stay under 600 lines, functions under 80 lines
of code (docstring not counted).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "goodfit"
PARTS = {
    "optim",
    "nn",
    "schedules",
    "init",
    "regularize",
    "data",
    "hooks",
    "checks",
    "errors",
    "atomic",
    "_version",
}
LIBRARY = {"train", "select", "diagnose", "report", "ensemble"}
APPLICATION = {"app", "__main__"}  # __main__: `python -m goodfit`, the front
#: Modules at the top of the package that only gather names for users (``import goodfit``).
GATHERERS = {"goodfit", "goodfit.callbacks"}


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted(SRC.rglob("*.py")):
        parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


MODULES = _modules()


def _resolve(name: str) -> str | None:
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _imports(module: str, path: Path) -> set[str]:
    """The goodfit modules that ``module`` imports (relative imports resolved, TYPE_CHECKING
    blocks included: an annotation's import is still a dependency)."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                root = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(root + ([node.module] if node.module else []))
            names = [f"{base}.{a.name}" for a in node.names] + [base]
        for name in names:
            target = _resolve(name) if name.startswith("goodfit") else None
            if target and target != module:
                found.add(target)
    return found


def _top(module: str) -> str:
    return module.split(".")[1] if "." in module else ""


def _layer(module: str) -> str:
    top = _top(module)
    if module in GATHERERS:
        return "gatherer"
    if top in APPLICATION:
        return "application"
    if top in LIBRARY:
        return "library"
    if top in PARTS:
        return "part"
    raise AssertionError(f"{module} is in no layer: add its package to one in this test")


def test_every_module_belongs_to_a_layer():
    for module in MODULES:
        _layer(module)


def test_imports_point_down_only():
    bad = []
    for module, path in MODULES.items():
        layer = _layer(module)
        for target in _imports(module, path):
            to = _layer(target)
            if layer == "part" and to in ("library", "application", "gatherer"):
                bad.append(f"part {module} imports {target}")
            elif layer == "library" and to in ("application", "gatherer"):
                bad.append(f"library {module} imports {target}")
            elif _top(module) == "train" and _top(target) in {"select", "diagnose", "report"}:
                bad.append(f"the loop {module} imports {target}")
    assert not bad, "\n".join(bad)


def test_no_two_subpackages_import_each_other():
    edges: dict[str, set[str]] = {}
    for module, path in MODULES.items():
        if _layer(module) == "gatherer":
            continue
        for target in _imports(module, path):
            a, b = _top(module), _top(target)
            if a and b and a != b and _layer(target) != "gatherer":
                edges.setdefault(a, set()).add(b)

    def reaches(start: str, goal: str, seen: set[str]) -> bool:
        for nxt in edges.get(start, ()):
            if nxt == goal or (nxt not in seen and reaches(nxt, goal, seen | {nxt})):
                return True
        return False

    cycles = sorted(
        f"{a} -> {b} -> ... -> {a}" for a in edges for b in edges[a] if reaches(b, a, {b})
    )
    assert not cycles, "\n".join(cycles)


@pytest.mark.parametrize("module", sorted(MODULES))
def test_sizes(module):
    path = MODULES[module]
    lines = path.read_text().splitlines()
    assert len(lines) <= 600, f"{path} has {len(lines)} lines (split it by concept)"
    for node in ast.walk(ast.parse("\n".join(lines))):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                body = body[1:]
            if body:
                n = body[-1].end_lineno - body[0].lineno + 1
                assert n <= 80, f"{module}.{node.name} has {n} lines of code"


def test_the_check_catches_a_wrong_import(tmp_path, monkeypatch):
    """The import check itself: a part importing the loop is reported."""
    fake = tmp_path / "fake.py"
    fake.write_text("from goodfit.train.loop import fit\nfrom goodfit.app import run_config\n")
    found = _imports("goodfit.optim.fake", fake)
    assert {"goodfit.train.loop", "goodfit.app"} <= found
    assert _layer("goodfit.optim.fake") == "part" and _layer("goodfit.train.loop") == "library"
