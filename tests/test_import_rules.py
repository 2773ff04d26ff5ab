"""Keeps the dependency direction of design.md true by walking every module's imports."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import medvision

SRC = Path(medvision.__file__).parent
HEAVY = {
    "torch",
    "transformers",
    "vllm",
    "trl",
    "peft",
    "ray",
    "SimpleITK",
    "openai",
    "bitsandbytes",
    "matplotlib",
    "datasets",
    "nilearn",
}

#: package -> medvision packages it must never import (top level or lazily).
FORBIDDEN = {
    "geometry": {
        "volumes",
        "catalog",
        "annotate",
        "store",
        "builder",
        "mini",
        "tasks",
        "backends",
        "parsing",
        "metrics",
        "runs",
        "reports",
        "training",
        "cli",
        "schema",
    },
    "volumes": {
        "catalog",
        "annotate",
        "store",
        "builder",
        "mini",
        "tasks",
        "backends",
        "parsing",
        "metrics",
        "runs",
        "reports",
        "training",
        "cli",
    },
    "tasks": {"backends", "runs", "cli", "store", "builder"},
    "parsing": {"backends", "runs", "cli", "store", "builder", "metrics"},
    "metrics": {"backends", "runs", "cli", "builder", "tasks", "parsing"},
    "backends": {
        "tasks",
        "metrics",
        "parsing",
        "store",
        "catalog",
        "annotate",
        "builder",
        "runs",
        "reports",
        "mini",
        "cli",
    },
    "reports": {"backends", "runs", "cli", "builder"},
    "store": {"backends", "runs", "cli", "tasks", "metrics"},
}


def _imports(path: Path) -> list[tuple[str, bool]]:
    """(module, at_top_level) for every import in a file."""
    tree = ast.parse(path.read_text())
    top = {id(n) for n in tree.body}
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(a.name, id(node) in top) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append((node.module, id(node) in top))
    return out


def _all_imports() -> list[tuple[Path, str, str, bool]]:
    """(file relative to src, its package, imported module, at top level) for every import."""
    out = []
    for path in SRC.rglob("*.py"):
        rel = path.relative_to(SRC)
        pkg = rel.parts[0] if len(rel.parts) > 1 else rel.stem
        out += [(rel, pkg, module, top) for module, top in _imports(path)]
    return out


def test_layering_rules_hold() -> None:
    problems = [
        f"{rel} imports {module}"
        for rel, pkg, module, _top in _all_imports()
        if module.startswith("medvision.") and module.split(".")[1] in FORBIDDEN.get(pkg, set())
    ]
    assert not problems, "\n".join(problems)


def test_heavy_dependencies_are_imported_lazily() -> None:
    problems = [
        f"{rel} imports {module} at module level"
        for rel, _pkg, module, top in _all_imports()
        if top and module.split(".")[0] in HEAVY
    ]
    assert not problems, "\n".join(problems)


def test_importing_every_module_loads_no_heavy_dependency() -> None:
    modules = [
        "medvision." + ".".join(p.relative_to(SRC).with_suffix("").parts).removesuffix(".__init__")
        for p in sorted(SRC.rglob("*.py"))
    ]
    code = (
        "import importlib, sys\n"
        f"for m in {modules!r}: importlib.import_module(m.removesuffix('.'))\n"
        f"print(sorted(h for h in {sorted(HEAVY)!r} if h in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr
