"""The import graph of olmo_cli: data flows one way and nothing imports in a circle.

    cli -> (evaluate | sweeps | generate | quantize) -> loading -> checkpoints -> sources -> hub -> revisions

A module may import its own layer and the layers below it, never one above (inside functions
too: a lazy import is still a dependency). Module-level imports form no cycle. Packages named
here that do not exist yet (evaluate, sweeps) simply have no modules to check.
"""

from __future__ import annotations

import ast
from functools import cache, lru_cache
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "olmo_cli"

# Highest first. The base modules (errors, reporting, paths, jsonfiles, the package itself) sit
# below everything and may be imported by anyone.
LAYERS = (
    ("cli",),
    ("evaluate", "sweeps", "generate", "quantize"),
    ("loading",),
    ("checkpoints",),
    ("sources",),
    ("hub",),
    ("revisions",),
)
# The quantization method table and the memory release are what loading quantizes and frees
# with: they sit with loading, below the quantize command core (quantize.run) that uses them.
# `python -m olmo_cli` runs the CLI, so __main__ is part of it.
PLACED = {
    "olmo_cli.quantize.methods": "loading",
    "olmo_cli.quantize.memory": "loading",
    "olmo_cli.__main__": "cli",
    "olmo_cli.generate_llama": "generate",  # generation through llama.cpp, beside the torch path's module
}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@lru_cache(maxsize=1)
def modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def rank(module: str) -> int:
    """0 for the top layer (cli), growing downwards; len(LAYERS) for the base modules."""
    parts = module.split(".")
    top = PLACED.get(module) or (parts[1] if len(parts) > 1 else "")
    for index, names in enumerate(LAYERS):
        if top in names:
            return index
    return len(LAYERS)


@cache
def parsed(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"))


def imports(path: Path, known: set[str], *, top_level_only: bool) -> set[str]:
    """The olmo_cli modules `path` imports (the module itself when a name is a submodule)."""
    tree = parsed(path)
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    found: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith("olmo_cli"))
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("olmo_cli"):
            for alias in node.names:
                candidate = f"{node.module}.{alias.name}"
                found.add(candidate if candidate in known else node.module)
    return {name for name in found if name in known}


def test_rank_places_modules_in_their_layer():
    assert rank("olmo_cli.cli.app") == 0
    assert rank("olmo_cli.generate") == rank("olmo_cli.quantize.run") == 1
    assert rank("olmo_cli.quantize.methods") == rank("olmo_cli.loading.model") == 2
    assert rank("olmo_cli.revisions.names") == 6
    assert rank("olmo_cli.errors") == rank("olmo_cli") == len(LAYERS)


def test_no_module_imports_a_layer_above_its_own():
    known = set(modules())
    upward = [
        f"{name} imports {target}"
        for name, path in modules().items()
        for target in sorted(imports(path, known, top_level_only=False))
        if rank(target) < rank(name)
    ]
    assert upward == []


def test_module_level_imports_have_no_cycles():
    known = set(modules())
    graph = {name: imports(path, known, top_level_only=True) - {name} for name, path in modules().items()}
    cycles: list[list[str]] = []
    state: dict[str, int] = {}  # 1 on the current path, 2 done

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for target in sorted(graph[node]):
            if state.get(target) == 1:
                cycles.append([*path[path.index(target) :], target])
            elif target not in state:
                visit(target, [*path, target])
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
    assert cycles == []


def test_the_checks_see_real_edges():
    """Guard against a checker that finds nothing because it reads nothing."""
    known = set(modules())
    assert "olmo_cli.hub.refs" in imports(modules()["olmo_cli.hub.resolve"], known, top_level_only=True)
    assert len(known) > 50
